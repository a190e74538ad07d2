//! Fill between slices: shape-based interpolation of a label across the empty slices between
//! painted ones, as 3D Slicer's "Fill between slices" effect does.

use super::distance::squared_distance_transform;
use super::Grid;

/// Indices (ascending) of the voxels to set to `label` so that every run of empty slices
/// (along voxel axis `axis`) between two slices holding `label` is filled by interpolating the
/// two slices' shapes: each key slice's signed distance (in mm, in-plane spacing, negative
/// inside), blended linearly by position between the two, inside where the blend is <= 0.
/// Voxels already `label` are not listed. Slices before the first and after the last painted
/// slice are untouched.
///
/// Both signed distances are positive outside both shapes, so the fill stays within the union
/// of the two key slices' shapes (seen along `axis`). Shapes that do not overlap at all are
/// not bridged.
pub fn fill_between_slices(mask: &[u8], grid: Grid, label: u8, axis: usize) -> Vec<u32> {
    grid.check(mask.len());
    assert!(axis < 3, "axis {axis} is not 0, 1 or 2");
    let plane = Plane::across(grid, axis);
    let boxes = slice_boxes(mask, grid, label, axis);
    let painted: Vec<usize> = (0..boxes.len()).filter(|&s| boxes[s].is_some()).collect();
    let mut fill = Vec::new();
    for pair in painted.windows(2) {
        let (first, last) = (pair[0], pair[1]);
        if last == first + 1 {
            continue;
        }
        let (from_a, to_a) = boxes[first].expect("a painted slice has a box");
        let (from_b, to_b) = boxes[last].expect("a painted slice has a box");
        // One pixel of margin: every inside pixel then has its nearest outside pixel in the
        // region. The margin may lie outside the volume, where everything is outside.
        let region = Region {
            from: [0, 1].map(|a| from_a[a].min(from_b[a]) as isize - 1),
            size: [0, 1].map(|a| to_a[a].max(to_b[a]) - from_a[a].min(from_b[a]) + 2),
        };
        let distance_first = plane.signed_distance(mask, label, first, &region);
        let distance_last = plane.signed_distance(mask, label, last, &region);
        for slice in first + 1..last {
            let t = (slice - first) as f32 / (last - first) as f32;
            for (pixel, (&a, &b)) in distance_first.iter().zip(&distance_last).enumerate() {
                if (1.0 - t) * a + t * b > 0.0 {
                    continue;
                }
                // Slices between key slices hold no `label` voxel: all of these are new.
                if let Some(voxel) = plane.voxel(slice, region.at(pixel)) {
                    fill.push(voxel as u32);
                }
            }
        }
    }
    fill.sort_unstable();
    fill
}

/// The half-open box `[from, to)` of a label in one slice, in-plane `[u, v]`; `None` when the
/// slice lacks the label.
type SliceBox = Option<([usize; 2], [usize; 2])>;

/// The box of `label` in each slice across `axis`, from one pass over the mask.
fn slice_boxes(mask: &[u8], grid: Grid, label: u8, axis: usize) -> Vec<SliceBox> {
    let [ni, nj, nk] = grid.dims;
    let mut boxes: Vec<SliceBox> = vec![None; grid.dims[axis]];
    let mut include = |ijk: [usize; 3], length: usize| {
        let (u, v) = match axis {
            0 => ([ijk[1], ijk[1] + 1], ijk[2]),
            1 => ([ijk[0], ijk[0] + length], ijk[2]),
            _ => ([ijk[0], ijk[0] + length], ijk[1]),
        };
        let slice_box = &mut boxes[ijk[axis]];
        *slice_box = Some(match *slice_box {
            None => ([u[0], v], [u[1], v + 1]),
            Some((from, to)) => ([from[0].min(u[0]), from[1].min(v)], [to[0].max(u[1]), to[1].max(v + 1)]),
        });
    };
    for k in 0..nk {
        for j in 0..nj {
            let row = &mask[ni * (j + nj * k)..][..ni];
            if !row.contains(&label) {
                continue;
            }
            if axis == 0 {
                // Each voxel is in a slice of its own.
                for (i, _) in row.iter().enumerate().filter(|(_, &v)| v == label) {
                    include([i, j, k], 1);
                }
            } else {
                let first = row.iter().position(|&v| v == label).expect("the row holds the label");
                let last = row.iter().rposition(|&v| v == label).expect("the row holds the label");
                include([first, j, k], last + 1 - first);
            }
        }
    }
    boxes
}

/// The slices across one axis: which volume axes run along a slice's u and v.
struct Plane {
    grid: Grid,
    axis: usize,
    in_plane: [usize; 2],
}

/// A box of pixels in a slice, possibly reaching outside the volume.
struct Region {
    from: [isize; 2],
    size: [usize; 2],
}

impl Region {
    /// In-plane coordinates of the region's `pixel` (u fastest).
    fn at(&self, pixel: usize) -> [isize; 2] {
        [self.from[0] + (pixel % self.size[0]) as isize, self.from[1] + (pixel / self.size[0]) as isize]
    }
}

impl Plane {
    fn across(grid: Grid, axis: usize) -> Self {
        let in_plane = match axis {
            0 => [1, 2],
            1 => [0, 2],
            _ => [0, 1],
        };
        Plane { grid, axis, in_plane }
    }

    /// The volume index of in-plane position `[u, v]` of `slice`; `None` outside the volume.
    fn voxel(&self, slice: usize, [u, v]: [isize; 2]) -> Option<usize> {
        let [u_axis, v_axis] = self.in_plane;
        if u < 0 || v < 0 || u as usize >= self.grid.dims[u_axis] || v as usize >= self.grid.dims[v_axis] {
            return None;
        }
        let mut ijk = [0; 3];
        ijk[self.axis] = slice;
        ijk[u_axis] = u as usize;
        ijk[v_axis] = v as usize;
        Some(self.grid.index(ijk))
    }

    /// Signed distance in mm over `region` of `slice`: to the nearest inside pixel centre for an
    /// outside pixel, minus the distance to the nearest outside pixel centre for an inside one.
    /// Both sides are measured to the other side's pixel centres, so the zero level lies
    /// half-way between the boundary pixels on either side.
    fn signed_distance(&self, mask: &[u8], label: u8, slice: usize, region: &Region) -> Vec<f32> {
        let pixels = region.size[0] * region.size[1];
        let inside: Vec<bool> =
            (0..pixels).map(|pixel| self.voxel(slice, region.at(pixel)).is_some_and(|v| mask[v] == label)).collect();
        let outside: Vec<bool> = inside.iter().map(|&inside| !inside).collect();
        let dims = [region.size[0], region.size[1], 1];
        let spacing = [self.grid.spacing[self.in_plane[0]] as f64, self.grid.spacing[self.in_plane[1]] as f64, 1.0];
        let to_inside = squared_distance_transform(&inside, dims, spacing);
        let to_outside = squared_distance_transform(&outside, dims, spacing);
        to_inside.iter().zip(&to_outside).map(|(a, b)| (a.sqrt() - b.sqrt()) as f32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disc in a slice: centre u, centre v (in pixels) and radius in mm.
    type Disc = (f32, f32, f32);

    /// A mask of `slices` slices across `axis`, each `size` pixels, with `shapes` painted: for
    /// each slice, discs of label 1.
    fn painted(
        axis: usize,
        size: [usize; 2],
        spacing: [f32; 2],
        slices: usize,
        shapes: &[(usize, &[Disc])],
    ) -> (Vec<u8>, Grid) {
        let plane = Plane::across(Grid { dims: [1; 3], spacing: [1.0; 3] }, axis);
        let mut dims = [slices; 3];
        let mut voxel_spacing = [1.0; 3];
        for a in 0..2 {
            dims[plane.in_plane[a]] = size[a];
            voxel_spacing[plane.in_plane[a]] = spacing[a];
        }
        let grid = Grid { dims, spacing: voxel_spacing };
        let plane = Plane::across(grid, axis);
        let mut mask = vec![0; grid.len()];
        for &(slice, discs) in shapes {
            for v in 0..size[1] {
                for u in 0..size[0] {
                    let (x, y) = (u as f32, v as f32);
                    if discs
                        .iter()
                        .any(|&(cu, cv, r)| ((x - cu) * spacing[0]).powi(2) + ((y - cv) * spacing[1]).powi(2) <= r * r)
                    {
                        mask[plane.voxel(slice, [u as isize, v as isize]).expect("in the volume")] = 1;
                    }
                }
            }
        }
        (mask, grid)
    }

    /// The filled pixels of `slice`, as in-plane `[u, v]`.
    fn filled_in(fill: &[u32], grid: Grid, axis: usize, slice: usize) -> Vec<[usize; 2]> {
        let plane = Plane::across(grid, axis);
        fill.iter()
            .map(|&v| grid.coords(v as usize))
            .filter(|ijk| ijk[axis] == slice)
            .map(|ijk| [ijk[plane.in_plane[0]], ijk[plane.in_plane[1]]])
            .collect()
    }

    /// Checks that `pixels` form a disc of radius `radius` mm around `centre`: its area within
    /// 3 % and its extent along u and v within a voxel.
    fn assert_disc(pixels: &[[usize; 2]], centre: [f32; 2], spacing: [f32; 2], radius: f32) {
        let area = pixels.len() as f32 * spacing[0] * spacing[1];
        let expected = std::f32::consts::PI * radius * radius;
        assert!((area / expected - 1.0).abs() < 0.03, "area {area} mm² against {expected}");
        for a in 0..2 {
            let extent = pixels.iter().map(|p| (p[a] as f32 - centre[a]).abs() * spacing[a]).fold(0.0, f32::max);
            assert!((extent - radius).abs() <= spacing[a], "extent {extent} mm along in-plane axis {a}");
        }
    }

    #[test]
    fn discs_of_radius_10_and_20_give_15_half_way_along_each_axis() {
        for axis in 0..3 {
            let (mask, grid) =
                painted(axis, [64, 64], [1.0, 1.0], 11, &[(0, &[(32.0, 32.0, 10.0)]), (10, &[(32.0, 32.0, 20.0)])]);
            let fill = fill_between_slices(&mask, grid, 1, axis);
            assert!(fill.windows(2).all(|pair| pair[0] < pair[1]), "ascending");
            assert_disc(&filled_in(&fill, grid, axis, 5), [32.0, 32.0], [1.0, 1.0], 15.0);
            assert_disc(&filled_in(&fill, grid, axis, 2), [32.0, 32.0], [1.0, 1.0], 12.0);
            assert!(
                filled_in(&fill, grid, axis, 0).is_empty() && filled_in(&fill, grid, axis, 10).is_empty(),
                "key slices stay"
            );
        }
    }

    #[test]
    fn anisotropic_spacing_interpolates_in_mm() {
        // 0.5 mm along u: circles in mm are ellipses twice as wide in voxels.
        let spacing = [0.5, 1.0];
        let (mask, grid) =
            painted(2, [100, 64], spacing, 11, &[(0, &[(50.0, 32.0, 10.0)]), (10, &[(50.0, 32.0, 20.0)])]);
        let fill = fill_between_slices(&mask, grid, 1, 2);
        assert_disc(&filled_in(&fill, grid, 2, 5), [50.0, 32.0], spacing, 15.0);
    }

    #[test]
    fn one_blob_to_two_stays_within_the_key_shapes() {
        let one: &[Disc] = &[(32.0, 32.0, 8.0)];
        // Blobs that overlap the single one (seen along the axis), as when a structure splits.
        let two: &[Disc] = &[(20.0, 30.0, 7.0), (44.0, 34.0, 7.0)];
        let (mask, grid) = painted(1, [64, 64], [1.0, 1.0], 11, &[(0, one), (10, two)]);
        let fill = fill_between_slices(&mask, grid, 1, 1);
        let plane = Plane::across(grid, 1);
        let in_a_key_shape = |[u, v]: [usize; 2]| {
            [0, 10].iter().any(|&s| mask[plane.voxel(s, [u as isize, v as isize]).expect("in the volume")] == 1)
        };
        for slice in 1..10 {
            let pixels = filled_in(&fill, grid, 1, slice);
            assert!(!pixels.is_empty(), "slice {slice} is filled");
            assert!(pixels.iter().all(|&p| in_a_key_shape(p)), "slice {slice} leaves the key shapes");
        }
        // Near the two-blob end, there are two blobs: the gap between them stays empty.
        assert!(!filled_in(&fill, grid, 1, 9).iter().any(|&[u, _]| u == 32));
    }

    #[test]
    fn only_gaps_between_painted_slices_are_filled() {
        let disc: &[Disc] = &[(20.0, 20.0, 6.0)];
        let (mut mask, grid) = painted(2, [40, 40], [1.0, 1.0], 16, &[(3, disc), (6, disc), (7, disc), (12, disc)]);
        // A voxel of another label is listed; the caller decides.
        mask[grid.index([21, 20, 9])] = 2;
        let fill = fill_between_slices(&mask, grid, 1, 2);
        let slices: Vec<usize> = (0..16).filter(|&s| !filled_in(&fill, grid, 2, s).is_empty()).collect();
        assert_eq!(slices, [4, 5, 8, 9, 10, 11]);
        // Between two equal shapes, the same shape.
        let disc_pixels = mask[grid.index([0, 0, 3])..grid.index([0, 0, 4])].iter().filter(|&&v| v == 1).count();
        assert!((4..12).filter(|&s| s != 6 && s != 7).all(|s| filled_in(&fill, grid, 2, s).len() == disc_pixels));
        assert!(fill.contains(&(grid.index([21, 20, 9]) as u32)));
        assert!(fill_between_slices(&mask, grid, 3, 2).is_empty(), "an absent label fills nothing");
    }
}
