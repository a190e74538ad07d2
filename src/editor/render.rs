//! Turning one slice of image and mask into RGBA pixels: grey levels through a window, label
//! colours blended on top (filled or as outlines), a proposed edit striped in its label's
//! colour, and other segmentations (predictions, readings) drawn over the mask or compared
//! with it.

use super::preview::Preview;
use crate::geometry::{PixelRect, SliceGeometry};
use crate::nifti_io::Samples;

/// Intensity window: `center ± width / 2` maps to black..white.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub center: f32,
    pub width: f32,
}

impl Window {
    /// Window presets by modality, as radiology viewers name them.
    pub const CT_PRESETS: [(&'static str, Window); 4] = [
        ("Soft tissue", Window { center: 40.0, width: 400.0 }),
        ("Lung", Window { center: -600.0, width: 1500.0 }),
        ("Bone", Window { center: 400.0, width: 1800.0 }),
        ("Brain", Window { center: 40.0, width: 80.0 }),
    ];

    /// The window spanning intensities `low..high`.
    pub fn spanning(low: f32, high: f32) -> Window {
        Window { center: (low + high) / 2.0, width: (high - low).max(f32::EPSILON) }
    }

    /// Dragging by (`dx`, `dy`) screen pixels: right widens, down raises the level, scaled so
    /// a 500-pixel drag covers `range`.
    pub fn dragged(self, dx: f64, dy: f64, range: f32) -> Window {
        let per_pixel = range / 500.0;
        Window {
            center: self.center + dy as f32 * per_pixel,
            width: (self.width + dx as f32 * per_pixel).max(range / 1000.0).max(f32::EPSILON),
        }
    }

    #[inline]
    fn grey(&self, value: f32) -> u8 {
        let t = (value - (self.center - self.width / 2.0)) / self.width;
        if t.is_nan() {
            0
        } else {
            (t.clamp(0.0, 1.0) * 255.0 + 0.5) as u8
        }
    }
}

/// How the mask is drawn over the image.
#[derive(Clone, Debug, PartialEq)]
pub struct Overlay {
    /// Colour of each label value; value 0 is never drawn.
    pub colors: [[u8; 3]; 256],
    /// 0 (invisible) to 1 (opaque).
    pub opacity: f32,
    /// Only the edges of each labelled region, fully opaque.
    pub outline: bool,
    /// Labels not drawn.
    pub hidden: [bool; 256],
}

impl Overlay {
    /// From `(value, "#rrggbb")` pairs; unknown values get a visible default.
    pub fn new<'a>(labels: impl IntoIterator<Item = (u8, &'a str)>, opacity: f32, outline: bool) -> Overlay {
        let mut colors = [[255, 255, 0]; 256];
        for (value, css) in labels {
            if let Some(rgb) = parse_hex_color(css) {
                colors[value as usize] = rgb;
            }
        }
        Overlay { colors, opacity, outline, hidden: [false; 256] }
    }
}

/// `#rrggbb` to RGB.
pub fn parse_hex_color(css: &str) -> Option<[u8; 3]> {
    let hex = css.strip_prefix('#').filter(|h| h.len() == 6)?;
    let byte = |at: usize| u8::from_str_radix(&hex[at..at + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

/// Colours of the voxels a review compares: labelled now but not in the reference version (or
/// with another label), and labelled there but cleared now.
pub const ADDED: [u8; 3] = [34, 197, 94];
pub const REMOVED: [u8; 3] = [239, 68, 68];

/// Colours of the voxels where a prediction and the human mask disagree: labelled (that way)
/// only by the person, or only by the model.
pub const HUMAN_ONLY: [u8; 3] = [250, 204, 21];
pub const PREDICTION_ONLY: [u8; 3] = [217, 70, 239];

/// Colour of the voxels where the readings of a case differ, as the adjudicator highlights them.
pub const CONTESTED: [u8; 3] = [255, 64, 129];

/// How another segmentation (a prediction, a reading) is drawn over the image and mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverlayStyle {
    Outline,
    Fill,
}

/// One segmentation drawn over the mask, in one colour whatever its labels.
#[derive(Clone, Copy)]
pub struct OverlayLayer<'a> {
    pub labels: &'a [u8],
    pub style: OverlayStyle,
    pub color: [u8; 3],
}

/// What is drawn over the image.
#[derive(Clone, Copy)]
pub struct Layers<'a> {
    pub mask: &'a [u8],
    /// A proposed edit, striped.
    pub preview: Option<&'a Preview>,
    /// The version a review compares with: voxels that differ are drawn as added or removed.
    pub reference: Option<&'a [u8]>,
    /// A segmentation compared with the mask: voxels that differ are drawn as only in the mask
    /// or only in it.
    pub disagreement: Option<&'a [u8]>,
    /// Voxels where the readings differ, highlighted.
    pub contested: Option<&'a [bool]>,
    /// Segmentations drawn over the mask.
    pub overlays: &'a [OverlayLayer<'a>],
}

impl<'a> Layers<'a> {
    /// The mask alone.
    pub fn mask(mask: &'a [u8]) -> Layers<'a> {
        Layers { mask, preview: None, reference: None, disagreement: None, contested: None, overlays: &[] }
    }
}

/// Whether the voxel at (`row`, `col`) of a slice, holding `label` in `labels`, lies on the
/// edge of its region: a 4-neighbour in the slice holds another label, or it is at the border.
#[inline]
fn on_edge(
    labels: &[u8],
    label: u8,
    (row, col): (usize, usize),
    (width, height): (usize, usize),
    walk: (usize, isize, isize),
) -> bool {
    let (origin, col_step, row_step) = walk;
    let at =
        |row: usize, col: usize| labels[(origin as isize + col as isize * col_step + row as isize * row_step) as usize];
    row == 0
        || col == 0
        || row + 1 == height
        || col + 1 == width
        || at(row - 1, col) != label
        || at(row + 1, col) != label
        || at(row, col - 1) != label
        || at(row, col + 1) != label
}

fn blend(rgb: &mut [u8; 3], color: [u8; 3], alpha: u32) {
    for channel in 0..3 {
        let (under, over) = (rgb[channel] as u32, color[channel] as u32);
        rgb[channel] = ((under * (256 - alpha) + over * alpha) >> 8) as u8;
    }
}

/// Fills `region` of `out` (the whole slice: width × height × 4 bytes, rows top to bottom)
/// with slice `slice`; the rest of `out` is left as it was.
#[allow(clippy::too_many_arguments)] // each is one independent input of the picture
pub fn render_slice(
    image: &Samples,
    layers: Layers,
    geometry: &SliceGeometry,
    slice: usize,
    window: Window,
    overlay: &Overlay,
    region: PixelRect,
    out: &mut [u8],
) {
    let Layers { mask, preview, reference, disagreement, contested, overlays } = layers;
    let (width, height) = (geometry.width, geometry.height);
    assert_eq!(out.len(), width * height * 4, "output buffer size");
    assert!(region.col + region.width <= width && region.row + region.height <= height, "region within the slice");
    let walk = geometry.walk(slice);
    let (origin, col_step, row_step) = walk;
    let alpha = (overlay.opacity.clamp(0.0, 1.0) * 256.0) as u32;
    for row in region.row..region.row + region.height {
        let mut index = origin as isize + row as isize * row_step + region.col as isize * col_step;
        for col in region.col..region.col + region.width {
            let voxel = index as usize;
            let grey = window.grey(image.get(voxel));
            let label = mask[voxel];
            let pixel = &mut out[(row * width + col) * 4..][..4];
            let mut rgb = [grey; 3];
            if let Some(preview) = preview.filter(|p| p.contains(voxel)) {
                // Diagonal stripes: unlike any applied label, filled or outlined.
                if (row + col) % 6 < 3 {
                    rgb = overlay.colors[preview.value as usize];
                }
            } else if reference.is_some_and(|reference| reference[voxel] != label) {
                rgb = if label != 0 { ADDED } else { REMOVED };
            } else if disagreement.is_some_and(|predicted| predicted[voxel] != label) {
                rgb = if label != 0 { HUMAN_ONLY } else { PREDICTION_ONLY };
            } else if contested.is_some_and(|contested| contested[voxel]) {
                rgb = CONTESTED;
            } else {
                if label != 0 && !overlay.hidden[label as usize] {
                    let color = overlay.colors[label as usize];
                    if !overlay.outline {
                        blend(&mut rgb, color, alpha);
                    } else if on_edge(mask, label, (row, col), (width, height), walk) {
                        rgb = color;
                    }
                }
                for layer in overlays {
                    let predicted = layer.labels[voxel];
                    if predicted == 0 {
                        continue;
                    }
                    match layer.style {
                        OverlayStyle::Fill => blend(&mut rgb, layer.color, 112),
                        OverlayStyle::Outline
                            if on_edge(layer.labels, predicted, (row, col), (width, height), walk) =>
                        {
                            rgb = layer.color
                        }
                        OverlayStyle::Outline => {}
                    }
                }
            }
            pixel.copy_from_slice(&[rgb[0], rgb[1], rgb[2], 255]);
            index += col_step;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Orientation, Plane};
    use crate::nifti_io::{encode_volume, Volume};
    use nifti::{NiftiHeader, NiftiType};

    fn volume(dims: [u32; 3], values: &[i16]) -> Samples {
        let header = NiftiHeader { pixdim: [1.0; 8], ..NiftiHeader::default() };
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Volume::parse("image", &encode_volume(&header, dims, NiftiType::Int16, &bytes))
            .unwrap()
            .into_samples("image")
            .unwrap()
    }

    #[test]
    fn window_maps_intensities_to_grey_and_mask_blends_on_top() {
        let dims = [2, 1, 1];
        let image = volume(dims, &[0, 100]);
        let geometry = Orientation::from_affine(&[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
            .slice_geometry(Plane::Axial, [2, 1, 1], [1.0; 3]);
        let mut out = vec![0; 8];
        let window = Window::spanning(0.0, 100.0);
        let no_labels = Overlay::new([], 0.5, false);
        render_slice(&image, Layers::mask(&[0, 0]), &geometry, 0, window, &no_labels, geometry.whole(), &mut out);
        // Radiological: voxel i=1 (more to the right) is drawn on the left.
        assert_eq!(out, [255, 255, 255, 255, 0, 0, 0, 255]);
        let red = Overlay::new([(1, "#ff0000")], 0.5, false);
        render_slice(&image, Layers::mask(&[1, 0]), &geometry, 0, window, &red, geometry.whole(), &mut out);
        assert_eq!(&out[4..8], &[127, 0, 0, 255], "half red over black");
        assert_eq!(&out[..4], &[255, 255, 255, 255]);
        let mut hidden = red.clone();
        hidden.hidden[1] = true;
        render_slice(&image, Layers::mask(&[1, 0]), &geometry, 0, window, &hidden, geometry.whole(), &mut out);
        assert_eq!(&out[4..8], &[0, 0, 0, 255], "a hidden label is not drawn");
    }

    #[test]
    fn outline_mode_draws_only_region_edges() {
        let dims = [5, 5, 1];
        let image = volume(dims, &[0; 25]);
        let geometry = Orientation::from_affine(&[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
            .slice_geometry(Plane::Axial, [5, 5, 1], [1.0; 3]);
        let mut mask = vec![0u8; 25];
        for j in 1..4 {
            for i in 1..4 {
                mask[i + 5 * j] = 2;
            }
        }
        let mut out = vec![0; 100];
        render_slice(
            &image,
            Layers::mask(&mask),
            &geometry,
            0,
            Window::spanning(0.0, 1.0),
            &Overlay::new([(2, "#00ff00")], 1.0, true),
            geometry.whole(),
            &mut out,
        );
        let green = |col: usize, row: usize| out[(row * 5 + col) * 4 + 1] == 255;
        assert!(green(1, 1) && green(3, 2) && green(2, 3), "edges drawn");
        assert!(!green(2, 2), "the inside stays clear");
        assert!(!green(0, 0), "outside stays clear");
    }

    #[test]
    fn dragging_the_window_and_parsing_colours() {
        let window = Window::spanning(0.0, 1000.0).dragged(250.0, -50.0, 1000.0);
        assert_eq!(window, Window { center: 400.0, width: 1500.0 });
        assert_eq!(parse_hex_color("#1f77b4"), Some([0x1f, 0x77, 0xb4]));
        assert_eq!(parse_hex_color("red"), None);
    }

    #[test]
    fn a_preview_is_striped_over_whatever_is_below() {
        use crate::editor::preview::{Preview, PreviewKind};
        let dims = [6, 6, 1];
        let image = volume(dims, &[0; 36]);
        let geometry = Orientation::from_affine(&[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
            .slice_geometry(Plane::Axial, [6, 6, 1], [1.0; 3]);
        let preview = Preview::new(PreviewKind::FillBetween { axis: 2 }, 3, (0..36).collect(), 36, false);
        let mut out = vec![0; 36 * 4];
        let layers = Layers { preview: Some(&preview), ..Layers::mask(&[0; 36]) };
        render_slice(
            &image,
            layers,
            &geometry,
            0,
            Window::spanning(0.0, 1.0),
            &Overlay::new([(3, "#0000ff")], 0.5, false),
            geometry.whole(),
            &mut out,
        );
        let blue = out.chunks(4).filter(|p| p == &[0, 0, 255, 255]).count();
        let black = out.chunks(4).filter(|p| p == &[0, 0, 0, 255]).count();
        assert_eq!((blue, black), (18, 18), "half the pixels in stripes of full colour");
    }

    #[test]
    fn a_region_redraws_only_its_pixels() {
        let dims = [4, 4, 1];
        let image = volume(dims, &[100; 16]);
        let geometry = Orientation::from_affine(&[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
            .slice_geometry(Plane::Axial, [4, 4, 1], [1.0; 3]);
        let mut out = vec![7; 64];
        let region = PixelRect { col: 1, row: 2, width: 2, height: 1 };
        render_slice(
            &image,
            Layers::mask(&[0; 16]),
            &geometry,
            0,
            Window::spanning(0.0, 100.0),
            &Overlay::new([], 0.5, false),
            region,
            &mut out,
        );
        let white: Vec<usize> = (0..16).filter(|p| out[p * 4] == 255).collect();
        assert_eq!(white, vec![9, 10], "row 2, columns 1 and 2");
        assert!((0..16).filter(|p| ![9, 10].contains(p)).all(|p| out[p * 4..p * 4 + 4] == [7; 4]));
    }

    #[test]
    fn against_a_reference_added_and_removed_voxels_have_their_colours() {
        let dims = [4, 1, 1];
        let image = volume(dims, &[0; 4]);
        let geometry = Orientation::from_affine(&[[-1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
            .slice_geometry(Plane::Axial, [4, 1, 1], [1.0; 3]);
        let mut out = vec![0; 16];
        // Voxels: unchanged label, added, removed, relabelled (counts as added).
        let layers = Layers { reference: Some(&[1, 0, 1, 1]), ..Layers::mask(&[1, 1, 0, 2]) };
        render_slice(
            &image,
            layers,
            &geometry,
            0,
            Window::spanning(0.0, 1.0),
            &Overlay::new([(1, "#0000ff")], 1.0, false),
            geometry.whole(),
            &mut out,
        );
        let pixels: Vec<[u8; 3]> = out.chunks(4).map(|p| [p[0], p[1], p[2]]).collect();
        assert_eq!(pixels, vec![[0, 0, 255], ADDED, REMOVED, ADDED]);
    }

    #[test]
    fn a_prediction_is_compared_or_drawn_over_the_mask() {
        let dims = [4, 1, 1];
        let image = volume(dims, &[0; 4]);
        let geometry = Orientation::from_affine(&[[-1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
            .slice_geometry(Plane::Axial, [4, 1, 1], [1.0; 3]);
        let overlay = Overlay::new([(1, "#0000ff")], 1.0, false);
        let (mask, predicted) = ([1, 1, 0, 0], [1, 0, 1, 0]);
        let pixels = |layers: Layers| {
            let mut out = vec![0; 16];
            render_slice(
                &image,
                layers,
                &geometry,
                0,
                Window::spanning(0.0, 1.0),
                &overlay,
                geometry.whole(),
                &mut out,
            );
            out.chunks(4).map(|p| [p[0], p[1], p[2]]).collect::<Vec<[u8; 3]>>()
        };
        // Agreeing, only the person's, only the model's, neither.
        assert_eq!(
            pixels(Layers { disagreement: Some(&predicted), ..Layers::mask(&mask) }),
            vec![[0, 0, 255], HUMAN_ONLY, PREDICTION_ONLY, [0, 0, 0]]
        );
        // Outlined in one row, every labelled voxel is an edge; a fill blends over what is below.
        let outline = [OverlayLayer { labels: &predicted, style: OverlayStyle::Outline, color: [255, 0, 0] }];
        assert_eq!(
            pixels(Layers { overlays: &outline, ..Layers::mask(&mask) }),
            vec![[255, 0, 0], [0, 0, 255], [255, 0, 0], [0, 0, 0]]
        );
        let fill = [OverlayLayer { labels: &predicted, style: OverlayStyle::Fill, color: [255, 0, 0] }];
        let filled = pixels(Layers { overlays: &fill, ..Layers::mask(&mask) });
        assert_eq!(filled[2], [111, 0, 0], "112/256 of red over black");
        assert_eq!(filled[3], [0, 0, 0]);
        // Where the readings differ, the highlight replaces what is below.
        let contested = [false, true, true, false];
        assert_eq!(
            pixels(Layers { contested: Some(&contested), ..Layers::mask(&mask) }),
            vec![[0, 0, 255], CONTESTED, CONTESTED, [0, 0, 0]]
        );
    }
}
