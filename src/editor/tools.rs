//! Mask editing on a displayed slice: brush, eraser (a brush that paints 0), a brush limited
//! to an intensity range, and 2-D flood fill, all within the paint rule's editable area.
//! Every edit is recorded as a [`Delta`] (which voxels changed, from what, to what) so undo
//! and redo cost memory in proportion to the edit, not the volume.

use std::collections::HashSet;

use crate::geometry::{SliceGeometry, VoxelBox};
use crate::nifti_io::Samples;

/// Voxels changed by one edit: index, old label, new label.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    changes: Vec<(u32, u8, u8)>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Each changed voxel: index, old label, new label.
    pub fn changes(&self) -> &[(u32, u8, u8)] {
        &self.changes
    }

    /// Sets every voxel of `indices` that `area` lets `value` be written on.
    pub fn set_all(mask: &mut [u8], indices: &[u32], value: u8, area: EditableArea) -> Delta {
        let mut delta = Delta::default();
        for &index in indices {
            if area.allows(mask[index as usize], value) {
                delta.set(mask, index as usize, value);
            }
        }
        delta
    }

    fn set(&mut self, mask: &mut [u8], index: usize, value: u8) {
        let old = mask[index];
        if old != value {
            self.changes.push((index as u32, old, value));
            mask[index] = value;
        }
    }
}

/// Which voxels painting may change (3D Slicer's "editable area"). Erasing (painting 0) is
/// limited only by [`EditableArea::InsideLabel`], so the eraser never reaches outside it either.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EditableArea {
    /// Paint over every label.
    #[default]
    Everywhere,
    /// Paint only where no label is yet, so other structures are never overwritten.
    Background,
    /// Paint only inside this label (for example a lesion inside its organ).
    InsideLabel(u8),
}

impl EditableArea {
    /// Whether a voxel labelled `old` may become `new`.
    pub fn allows(self, old: u8, new: u8) -> bool {
        match self {
            EditableArea::Everywhere => true,
            EditableArea::Background => new == 0 || old == 0 || old == new,
            EditableArea::InsideLabel(inside) => old == inside || old == new,
        }
    }
}

/// What a stroke paints and where it may.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Paint {
    /// Label value to write; 0 erases.
    pub value: u8,
    /// Brush radius in millimetres (at least one voxel is always painted).
    pub radius_mm: f32,
    /// Paint only voxels whose image intensity lies in this range.
    pub intensity_range: Option<(f32, f32)>,
    pub area: EditableArea,
}

impl Paint {
    fn allows(&self, image: &Samples, mask: &[u8], index: usize) -> bool {
        if !self.area.allows(mask[index], self.value) {
            return false;
        }
        match self.intensity_range {
            None => true,
            Some((low, high)) => {
                let value = image.get(index);
                value >= low && value <= high
            }
        }
    }
}

/// A brush stroke in progress: stamps discs along the pointer's path on one slice.
pub struct Stroke {
    paint: Paint,
    slice: usize,
    last: Option<(f64, f64)>,
    delta: Delta,
    /// Voxels the brush has covered since the last [`Stroke::take_dirty`]: what to redraw.
    dirty: Option<VoxelBox>,
}

impl Stroke {
    pub fn begin(paint: Paint, slice: usize) -> Stroke {
        Stroke { paint, slice, last: None, delta: Delta::default(), dirty: None }
    }

    /// The voxels covered since the last call, so a repaint can stay within them.
    pub fn take_dirty(&mut self) -> Option<VoxelBox> {
        self.dirty.take()
    }

    /// Moves the brush to (`col`, `row`) in slice pixels (fractional), painting the path
    /// from the previous position so quick drags leave no gaps.
    pub fn extend_to(&mut self, geometry: &SliceGeometry, image: &Samples, mask: &mut [u8], col: f64, row: f64) {
        let from = self.last.unwrap_or((col, row));
        let spacing = geometry.spacing_across.min(geometry.spacing_down) as f64;
        let step = (self.paint.radius_mm as f64 / spacing / 2.0).max(0.5);
        let distance = ((col - from.0).powi(2) + (row - from.1).powi(2)).sqrt();
        let stamps = (distance / step).ceil().max(1.0) as usize;
        for n in 1..=stamps {
            let t = n as f64 / stamps as f64;
            self.stamp(geometry, image, mask, from.0 + (col - from.0) * t, from.1 + (row - from.1) * t);
        }
        self.last = Some((col, row));
    }

    /// Paints the voxels whose centres lie within the brush radius of (`col`, `row`), and
    /// always the voxel under it.
    fn stamp(&mut self, geometry: &SliceGeometry, image: &Samples, mask: &mut [u8], col: f64, row: f64) {
        let (sx, sy) = (geometry.spacing_across as f64, geometry.spacing_down as f64);
        let radius = self.paint.radius_mm as f64;
        let (under_col, under_row) = (col.floor() as i64, row.floor() as i64);
        let (reach_cols, reach_rows) = ((radius / sx).ceil() as i64 + 1, (radius / sy).ceil() as i64 + 1);
        let clamp = |value: i64, size: usize| value.clamp(0, size as i64 - 1) as usize;
        let corner = |dc: i64, dr: i64| {
            geometry.voxel(self.slice, clamp(under_col + dc, geometry.width), clamp(under_row + dr, geometry.height))
        };
        let covered = VoxelBox::spanning(corner(-reach_cols, -reach_rows), corner(reach_cols, reach_rows));
        self.dirty = Some(self.dirty.map_or(covered, |dirty| dirty.union(covered)));
        for r in under_row - reach_rows..=under_row + reach_rows {
            for c in under_col - reach_cols..=under_col + reach_cols {
                if c < 0 || r < 0 || c as usize >= geometry.width || r as usize >= geometry.height {
                    continue;
                }
                let (dx, dy) = ((c as f64 + 0.5 - col) * sx, (r as f64 + 0.5 - row) * sy);
                let inside = (c, r) == (under_col, under_row) || dx * dx + dy * dy <= radius * radius;
                if !inside {
                    continue;
                }
                let index = geometry.index(self.slice, c as usize, r as usize);
                if self.paint.allows(image, mask, index) {
                    self.delta.set(mask, index, self.paint.value);
                }
            }
        }
    }

    /// The slice this stroke paints on.
    pub fn slice(&self) -> usize {
        self.slice
    }

    pub fn finish(self) -> Delta {
        self.delta
    }
}

/// Fills the 4-connected region of the slice that holds the same label as (`col`, `row`)
/// (and, with an intensity range, lies inside it) with `paint.value`.
pub fn flood_fill(
    geometry: &SliceGeometry,
    image: &Samples,
    mask: &mut [u8],
    slice: usize,
    (col, row): (usize, usize),
    paint: Paint,
) -> Delta {
    let mut delta = Delta::default();
    let seed_index = geometry.index(slice, col, row);
    let target = mask[seed_index];
    if target == paint.value || !paint.allows(image, mask, seed_index) {
        return delta;
    }
    let mut seen = HashSet::new();
    let mut pending = vec![(col, row)];
    while let Some((c, r)) = pending.pop() {
        if !seen.insert((c, r)) {
            continue;
        }
        let index = geometry.index(slice, c, r);
        if mask[index] != target || !paint.allows(image, mask, index) {
            continue;
        }
        delta.set(mask, index, paint.value);
        if c > 0 {
            pending.push((c - 1, r));
        }
        if r > 0 {
            pending.push((c, r - 1));
        }
        if c + 1 < geometry.width {
            pending.push((c + 1, r));
        }
        if r + 1 < geometry.height {
            pending.push((c, r + 1));
        }
    }
    delta
}

/// Undo and redo stacks of deltas.
#[derive(Default)]
pub struct History {
    undo: Vec<Delta>,
    redo: Vec<Delta>,
}

impl History {
    /// Most edits kept for undo; older ones stay in the mask but can no longer be undone.
    const LIMIT: usize = 500;
    /// Most changed voxels kept for undo over all edits (8 bytes each: 256 MB), so a few 3-D
    /// edits of millions of voxels cannot exhaust the tab's memory. The newest edit is always kept.
    const MAX_CHANGES: usize = 32_000_000;

    /// Records an edit already applied to the mask; a new edit ends the redo chain.
    pub fn push(&mut self, delta: Delta) {
        if delta.is_empty() {
            return;
        }
        self.redo.clear();
        self.undo.push(delta);
        let mut kept: usize = self.undo.iter().map(Delta::len).sum();
        while self.undo.len() > Self::LIMIT || (kept > Self::MAX_CHANGES && self.undo.len() > 1) {
            kept -= self.undo.remove(0).len();
        }
    }

    /// Reverts the newest edit and returns it; none when there is nothing to undo.
    pub fn undo(&mut self, mask: &mut [u8]) -> Option<&Delta> {
        let delta = self.undo.pop()?;
        for &(index, old, _) in delta.changes.iter().rev() {
            mask[index as usize] = old;
        }
        self.redo.push(delta);
        self.redo.last()
    }

    /// Re-applies the newest undone edit and returns it; none when there is nothing to redo.
    pub fn redo(&mut self, mask: &mut [u8]) -> Option<&Delta> {
        let delta = self.redo.pop()?;
        for &(index, _, new) in &delta.changes {
            mask[index as usize] = new;
        }
        self.undo.push(delta);
        self.undo.last()
    }

    /// The edit [`History::undo`] would revert next.
    pub fn next_undo(&self) -> Option<&Delta> {
        self.undo.last()
    }

    /// The edit [`History::redo`] would re-apply next.
    pub fn next_redo(&self) -> Option<&Delta> {
        self.redo.last()
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    pub fn clear(&mut self) {
        self.undo.clear();
        self.redo.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Orientation, Plane};
    use crate::nifti_io::{encode_volume, Volume};
    use nifti::{NiftiHeader, NiftiType};

    const IDENTITY: [[f64; 4]; 3] = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]];

    fn ramp(dims: [u32; 3]) -> Samples {
        let header = NiftiHeader { pixdim: [1.0; 8], ..NiftiHeader::default() };
        let n = dims.iter().product::<u32>() as usize;
        // Intensity = i, so columns have known values.
        let bytes: Vec<u8> = (0..n).flat_map(|index| ((index % dims[0] as usize) as i16).to_le_bytes()).collect();
        Volume::parse("image", &encode_volume(&header, dims, NiftiType::Int16, &bytes))
            .unwrap()
            .into_samples("image")
            .unwrap()
    }

    fn axial(dims: [usize; 3]) -> SliceGeometry {
        Orientation::from_affine(&IDENTITY).slice_geometry(Plane::Axial, dims, [1.0; 3])
    }

    #[test]
    fn brush_paints_a_disc_and_undo_redo_restore_exactly() {
        let dims = [20, 20, 3];
        let (image, geometry) = (ramp([20, 20, 3]), axial(dims));
        let mut mask = vec![0u8; 1200];
        let paint = Paint { value: 1, radius_mm: 2.0, intensity_range: None, area: EditableArea::Everywhere };
        let mut stroke = Stroke::begin(paint, 1);
        stroke.extend_to(&geometry, &image, &mut mask, 10.5, 10.5);
        // The disc's voxels and a margin; screen (col, row) = (10, 10) is voxel (9, 9) here.
        assert_eq!(stroke.take_dirty(), Some(VoxelBox { lo: [6, 6, 1], hi: [12, 12, 1] }));
        assert_eq!(stroke.take_dirty(), None);
        let delta = stroke.finish();
        assert_eq!(delta.len(), 13, "a radius-2 disc on a 1 mm grid");
        assert!(mask[..400].iter().all(|&v| v == 0), "other slices untouched");
        let painted = mask.clone();
        let mut history = History::default();
        history.push(delta);
        assert!(history.undo(&mut mask).is_some());
        assert!(mask.iter().all(|&v| v == 0));
        assert_eq!(history.redo(&mut mask).map(Delta::len), Some(13));
        assert_eq!(mask, painted);
        assert!(history.redo(&mut mask).is_none());
    }

    #[test]
    fn a_drag_leaves_no_gaps_and_the_eraser_clears() {
        let dims = [40, 10, 1];
        let (image, geometry) = (ramp([40, 10, 1]), axial(dims));
        let mut mask = vec![0u8; 400];
        let mut stroke =
            Stroke::begin(Paint { value: 2, radius_mm: 1.0, intensity_range: None, area: EditableArea::Everywhere }, 0);
        stroke.extend_to(&geometry, &image, &mut mask, 2.5, 5.5);
        stroke.extend_to(&geometry, &image, &mut mask, 37.5, 5.5);
        stroke.finish();
        assert!((2..=37).all(|col| mask[geometry.index(0, col, 5)] == 2), "continuous line");
        let mut eraser = Stroke::begin(
            Paint { value: 0, radius_mm: 30.0, intensity_range: None, area: EditableArea::Everywhere },
            0,
        );
        eraser.extend_to(&geometry, &image, &mut mask, 20.0, 5.0);
        assert!(eraser.finish().len() > 30);
        assert!(mask.iter().all(|&v| v == 0));
    }

    #[test]
    fn threshold_brush_and_fill_respect_the_intensity_range() {
        let dims = [20, 20, 1];
        let (image, geometry) = (ramp([20, 20, 1]), axial(dims));
        let mut mask = vec![0u8; 400];
        let limited =
            Paint { value: 1, radius_mm: 50.0, intensity_range: Some((5.0, 9.0)), area: EditableArea::Everywhere };
        let mut stroke = Stroke::begin(limited, 0);
        stroke.extend_to(&geometry, &image, &mut mask, 10.0, 10.0);
        assert_eq!(stroke.finish().len(), 5 * 20, "only columns with i in 5..=9");
        assert!((0..400).all(|index| (mask[index] == 1) == (5..=9).contains(&(index % 20))));

        // Fill the unlabelled area left of the band (screen right is i decreasing).
        let seed = (19, 0); // i = 0
        let fill = flood_fill(
            &geometry,
            &image,
            &mut mask,
            0,
            seed,
            Paint { value: 3, radius_mm: 1.0, intensity_range: None, area: EditableArea::Everywhere },
        );
        assert_eq!(fill.len(), 5 * 20, "i in 0..=4, stopped by the band");
        assert!((0..400).all(|index| (mask[index] == 3) == (index % 20 < 5)));
        let nothing = flood_fill(
            &geometry,
            &image,
            &mut mask,
            0,
            seed,
            Paint { value: 3, radius_mm: 1.0, intensity_range: None, area: EditableArea::Everywhere },
        );
        assert!(nothing.is_empty());
    }

    #[test]
    fn paint_rules_limit_what_a_stroke_and_a_3d_edit_may_change() {
        let dims = [10, 1, 1];
        let (image, geometry) = (ramp([10, 1, 1]), axial(dims));
        let organ = [0, 0, 1, 1, 1, 1, 2, 2, 0, 0];
        let brush = |area| Paint { value: 3, radius_mm: 20.0, intensity_range: None, area };
        let painted = |area| {
            let mut mask = organ.to_vec();
            let mut stroke = Stroke::begin(brush(area), 0);
            stroke.extend_to(&geometry, &image, &mut mask, 5.0, 0.5);
            stroke.finish();
            mask
        };
        assert_eq!(painted(EditableArea::Everywhere), vec![3; 10]);
        assert_eq!(painted(EditableArea::Background), vec![3, 3, 1, 1, 1, 1, 2, 2, 3, 3]);
        assert_eq!(painted(EditableArea::InsideLabel(1)), vec![0, 0, 3, 3, 3, 3, 2, 2, 0, 0]);

        // The eraser inside label 1 leaves label 2 alone.
        let mut mask = vec![1, 1, 2, 2, 0, 0, 0, 0, 0, 0];
        let all: Vec<u32> = (0..10).collect();
        let erased = Delta::set_all(&mut mask, &all, 0, EditableArea::InsideLabel(1));
        assert_eq!((erased.len(), mask), (2, vec![0, 0, 2, 2, 0, 0, 0, 0, 0, 0]));
        let mut mask = vec![1, 1, 2, 2, 0, 0, 0, 0, 0, 0];
        let filled = Delta::set_all(&mut mask, &all, 2, EditableArea::Background);
        assert_eq!(filled.changes(), &[(4, 0, 2), (5, 0, 2), (6, 0, 2), (7, 0, 2), (8, 0, 2), (9, 0, 2)]);
    }

    #[test]
    fn undo_history_is_bounded_by_the_voxels_it_holds() {
        let big = |value: u8| {
            let mut mask = vec![0u8; History::MAX_CHANGES / 2 + 1];
            let all: Vec<u32> = (0..mask.len() as u32).collect();
            Delta::set_all(&mut mask, &all, value, EditableArea::Everywhere)
        };
        let mut history = History::default();
        history.push(big(1));
        history.push(big(2));
        assert_eq!(history.undo.len(), 1, "two halves and a bit exceed the budget: the oldest goes");
        history.push(big(3));
        assert_eq!(history.undo.len(), 1);
        assert!(history.can_undo());
    }
}
