//! The viewer and mask editor, in one folder. This module and its shared children are the
//! editor's logic, free of the browser so it is unit-tested natively and compiled unchanged
//! into the WASM front end: rendering (`render`), tools and paint rules (`tools`), 3-D steps
//! previewed before they apply (`preview`), the saved version kept in blocks (`saved_base`),
//! predictions and readings over the mask (`overlays`) and against it (`disagreement`), the
//! keyboard shortcuts (`shortcuts`), and the contract between the controls and the browser
//! controller (`ui`). `panel` is the controls and views as a Leptos component, rendered on the
//! server and hydrated; `browser` (hydrate only) downloads, draws, listens and saves.

#[cfg(feature = "hydrate")]
pub mod browser;
pub mod disagreement;
pub mod overlays;
pub mod panel;
pub mod preview;
pub mod render;
pub mod saved_base;
pub mod shortcuts;
pub mod tools;
pub mod ui;

use crate::api::MaskRef;
use crate::edits::MaskEdits;
use crate::geometry::Orientation;
use crate::mask_ops::components::{self, Islands};
use crate::mask_ops::{grow, interpolate, morphology, Grid};
use crate::nifti_io::{Samples, Volume, VolumeError};
use preview::{Preview, PreviewKind};
use saved_base::SavedBase;
use tools::{Delta, EditableArea, History};

/// Morphological smoothing of one label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Smoothing {
    /// Removes spurs and thin bridges narrower than the ball.
    Opening,
    /// Fills gaps and notches narrower than the ball.
    Closing,
}

/// An opened case: the image, the mask version edits are based on, and the mask being edited.
pub struct Editor {
    pub image: Samples,
    pub dims: [usize; 3],
    pub spacing: [f32; 3],
    /// Voxel to scanner (RAS+ mm) coordinates, rows x, y, z.
    pub affine: [[f64; 4]; 3],
    pub orientation: Orientation,
    /// Intensities at the 0.5th and 99.5th percentiles, for the default window.
    pub robust_range: (f32, f32),
    /// Reference and voxels of the saved version the edits apply to.
    pub base_ref: MaskRef,
    base: SavedBase,
    /// The mask as shown and edited.
    pub mask: Vec<u8>,
    pub history: History,
    /// Voxels per label value in `mask`, kept up to date by every edit.
    pub counts: [u64; 256],
    /// A 3-D edit shown but not applied yet.
    pub preview: Option<Preview>,
}

impl Editor {
    /// From whole image and mask files (the tests' way in; the viewer fills slabs).
    #[cfg(test)]
    pub fn open(image_file: &[u8], mask_file: &[u8], mask_ref: MaskRef) -> Result<Editor, VolumeError> {
        let mut editor =
            Self::from_volumes(Volume::parse("image", image_file)?, Volume::parse("mask", mask_file)?, mask_ref)?;
        editor.loaded();
        Ok(editor)
    }

    /// For an image and mask arriving in slabs (see `crate::slabs`), from their headers: every
    /// voxel 0 until [`Editor::fill_image_slab`] and [`Editor::fill_mask_slab`] write it, and
    /// [`Editor::loaded`] once all have.
    pub fn awaiting_slabs(image_header: &[u8], mask_header: &[u8], mask_ref: MaskRef) -> Result<Editor, VolumeError> {
        let mut editor =
            Self::from_volumes(Volume::zeroed("image", image_header)?, Volume::zeroed("mask", mask_header)?, mask_ref)?;
        // Known without reading the voxels: reading 1.2 GB of zeros (a 1024×1024×400 int16
        // case) delayed its first slice by 0.4 s.
        editor.counts[0] = editor.mask.len() as _;
        Ok(editor)
    }

    /// Writes an image slab: the file's bytes of the voxels from `first` on.
    pub fn fill_image_slab(&mut self, first: usize, raw: &[u8]) {
        self.image.write_file_bytes(first, raw);
    }

    /// Writes a mask slab (uint8 labels) from voxel `first` on, as saved and as shown (before
    /// any edit).
    pub fn fill_mask_slab(&mut self, first: usize, labels: &[u8]) {
        self.mask[first..first + labels.len()].copy_from_slice(labels);
    }

    /// Every slab is in: counts and the default window are computed from the whole volume.
    pub fn loaded(&mut self) {
        self.robust_range = self.image.percentiles(0.005, 0.995);
        self.recount();
    }

    /// The editor on `image` and `mask`, its counts and window not yet computed (see
    /// [`Editor::loaded`]).
    fn from_volumes(image: Volume, mask: Volume, mask_ref: MaskRef) -> Result<Editor, VolumeError> {
        if image.meta.dims != mask.meta.dims {
            return Err(VolumeError(format!(
                "the mask's size {:?} differs from the image's {:?}",
                mask.meta.dims, image.meta.dims
            )));
        }
        let dims = image.meta.dims.map(|d| d as usize);
        let spacing = image.meta.spacing_mm.map(|s| if s > 0.0 { s } else { 1.0 });
        let affine = image.affine();
        let orientation = Orientation::from_affine(&affine);
        let image = image.into_samples("image")?;
        let mask = mask.into_labels("mask")?;
        Ok(Editor {
            image,
            dims,
            spacing,
            affine,
            orientation,
            robust_range: (0.0, 1.0),
            base_ref: mask_ref,
            base: SavedBase::same_as_mask(mask.len()),
            mask,
            history: History::default(),
            counts: [0; 256],
            preview: None,
        })
    }

    pub fn grid(&self) -> Grid {
        Grid { dims: self.dims, spacing: self.spacing }
    }

    /// Scanner coordinates (mm, RAS+) of a voxel's centre.
    pub fn scanner_mm(&self, ijk: [usize; 3]) -> [f64; 3] {
        self.affine.map(|row| row[0] * ijk[0] as f64 + row[1] * ijk[1] as f64 + row[2] * ijk[2] as f64 + row[3])
    }

    fn recount(&mut self) {
        self.counts = [0; 256];
        for &label in &self.mask {
            self.counts[label as usize] += 1;
        }
    }

    /// Records an edit already applied to `mask`: one undoable step.
    pub fn record(&mut self, delta: Delta) {
        self.base.keep_before(&self.mask, &delta);
        count(&mut self.counts, &delta, false);
        self.history.push(delta);
    }

    /// Reverts the newest edit; false when there is none.
    pub fn undo(&mut self) -> bool {
        if let Some(delta) = self.history.next_undo() {
            self.base.keep_for(&self.mask, delta);
        }
        let Some(delta) = self.history.undo(&mut self.mask) else { return false };
        count(&mut self.counts, delta, true);
        true
    }

    /// Re-applies the newest undone edit; false when there is none.
    pub fn redo(&mut self) -> bool {
        if let Some(delta) = self.history.next_redo() {
            self.base.keep_for(&self.mask, delta);
        }
        let Some(delta) = self.history.redo(&mut self.mask) else { return false };
        count(&mut self.counts, delta, false);
        true
    }

    /// Sets `indices` to `value` where `area` allows, as one undoable step; the voxels changed.
    fn set_voxels(&mut self, indices: &[u32], value: u8, area: EditableArea) -> usize {
        let delta = Delta::set_all(&mut self.mask, indices, value, area);
        let changed = delta.len();
        self.record(delta);
        changed
    }

    /// Proposes filling the empty slices between `label`'s painted slices along voxel `axis`.
    pub fn preview_fill_between(&mut self, label: u8, axis: usize) -> &Preview {
        let voxels = interpolate::fill_between_slices(&self.mask, self.grid(), label, axis);
        self.preview.insert(Preview::new(PreviewKind::FillBetween { axis }, label, voxels, self.mask.len(), false))
    }

    /// Proposes `label` on the voxels connected to `seed` whose intensity is in `range`.
    pub fn preview_grow(&mut self, label: u8, seed: [usize; 3], range: (f32, f32), cap: usize) -> &Preview {
        let image = &self.image;
        let grown = grow::grow_region(|index| image.get(index), self.grid(), seed, range, cap);
        self.preview.insert(Preview::new(
            PreviewKind::Grow { seed },
            label,
            grown.voxels,
            self.mask.len(),
            grown.capped,
        ))
    }

    /// Applies the proposed edit where `area` allows; the voxels changed.
    pub fn apply_preview(&mut self, area: EditableArea) -> usize {
        match self.preview.take() {
            Some(preview) => self.set_voxels(preview.voxels(), preview.value, area),
            None => 0,
        }
    }

    /// Removes `label`'s islands by `rule`; the voxels cleared. Only `label` is touched, so
    /// no paint rule applies.
    pub fn remove_islands(&mut self, label: u8, rule: Islands) -> usize {
        let voxels = components::remove_islands(&self.mask, self.grid(), label, rule);
        self.set_voxels(&voxels, 0, EditableArea::Everywhere)
    }

    /// Fills the holes `label` encloses in 3-D where `area` allows; the voxels filled.
    pub fn fill_holes(&mut self, label: u8, area: EditableArea) -> usize {
        let voxels = components::enclosed_holes(&self.mask, self.grid(), label);
        self.set_voxels(&voxels, label, area)
    }

    /// Smooths `label` with a ball of `radius_mm`; the voxels changed. Closing adds voxels
    /// (where `area` allows); opening only removes `label`'s own.
    pub fn smooth(&mut self, label: u8, smoothing: Smoothing, radius_mm: f32, area: EditableArea) -> usize {
        match smoothing {
            Smoothing::Opening => {
                let voxels = morphology::opening(&self.mask, self.grid(), label, radius_mm);
                self.set_voxels(&voxels, 0, EditableArea::Everywhere)
            }
            Smoothing::Closing => {
                let voxels = morphology::closing(&self.mask, self.grid(), label, radius_mm);
                self.set_voxels(&voxels, label, area)
            }
        }
    }

    /// What changed since the base version: what a save sends.
    pub fn unsaved_edits(&self) -> MaskEdits {
        self.base.edits(&self.mask)
    }

    /// The edits were saved as version `new_ref`: it becomes the base. Undo history stays, so
    /// a saved edit can still be undone (and the undo saved as a new version).
    pub fn saved(&mut self, new_ref: MaskRef, saved: &MaskEdits) {
        self.base.apply(&self.mask, saved);
        self.base_ref = new_ref;
    }

    /// Moves onto a newer version `base` (someone else's save, or a restore) and applies
    /// `edits` on top: the person's own changes win where both touched a voxel.
    pub fn rebase(&mut self, base_ref: MaskRef, base_file: &[u8], edits: &MaskEdits) -> Result<(), VolumeError> {
        let mut mask = Self::labels_of(base_file, self.mask.len())?;
        self.base = SavedBase::with_edits(&mask, edits);
        edits.apply(&mut mask);
        self.base_ref = base_ref;
        self.mask = mask;
        self.history.clear();
        self.preview = None;
        self.recount();
        Ok(())
    }

    /// Re-applies edits kept from an earlier visit; they cannot be undone one by one.
    pub fn restore(&mut self, edits: &MaskEdits) {
        self.base.keep_runs(&self.mask, edits);
        edits.apply(&mut self.mask);
        self.history.clear();
        self.preview = None;
        self.recount();
    }

    /// Shows another version's voxels in place of the edited mask (read-only viewing).
    pub fn labels_of(file: &[u8], voxel_count: usize) -> Result<Vec<u8>, VolumeError> {
        let labels = Volume::parse("mask version", file)?.into_labels("mask version")?;
        if labels.len() != voxel_count {
            return Err(VolumeError("that mask version has a different size".into()));
        }
        Ok(labels)
    }
}

/// Voxels labelled in `now` but not (or otherwise) in `before`, and labelled in `before` but
/// cleared in `now`: what a reviewer sees added and removed.
pub fn changes_between(before: &[u8], now: &[u8]) -> (u64, u64) {
    let (mut added, mut removed) = (0, 0);
    for (&was, &is) in before.iter().zip(now) {
        if was != is {
            if is != 0 {
                added += 1;
            } else {
                removed += 1;
            }
        }
    }
    (added, removed)
}

/// Follows a delta applied forwards (or, with `undone`, reverted) in the label counts.
fn count(counts: &mut [u64; 256], delta: &Delta, undone: bool) {
    for &(_, old, new) in delta.changes() {
        let (from, to) = if undone { (new, old) } else { (old, new) };
        counts[from as usize] -= 1;
        counts[to as usize] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::tools::{Paint, Stroke};
    use super::*;
    use crate::nifti_io::{encode_mask, encode_volume, gzip};
    use nifti::{NiftiHeader, NiftiType};

    /// The mask version named `name` of one case, the same for the same name.
    fn version(name: &str) -> MaskRef {
        let case = "5f0c2a1e-0000-4000-8000-000000000000";
        let number = name.trim_start_matches('v');
        MaskRef::parse(&format!("cases/{case}/masks/00000000-0000-4000-8000-00000000000{number}.nii.gz")).unwrap()
    }

    fn files(dims: [u32; 3]) -> (Vec<u8>, Vec<u8>) {
        let header = NiftiHeader {
            pixdim: [1.0; 8],
            sform_code: 1,
            srow_x: [-1.0, 0.0, 0.0, 0.0],
            srow_y: [0.0, -1.0, 0.0, 0.0],
            srow_z: [0.0, 0.0, 1.0, 0.0],
            ..NiftiHeader::default()
        };
        let n = dims.iter().product::<u32>() as usize;
        let image: Vec<u8> = (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect();
        (
            gzip(&encode_volume(&header, dims, NiftiType::Float32, &image), 1),
            gzip(&encode_mask(&header, dims, &vec![0; n]), 1),
        )
    }

    #[test]
    fn an_editor_filled_slab_by_slab_equals_one_opened_from_the_files() {
        use crate::slabs::SlabGrid;
        let dims = [9, 7, 11];
        let header = NiftiHeader { pixdim: [1.0; 8], ..NiftiHeader::default() };
        let n = dims.iter().product::<u32>() as usize;
        let image: Vec<u8> = (0..n).flat_map(|i| ((i * 37 % 1000) as i16 - 300).to_le_bytes()).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 5 == 0) as u8 * 2).collect();
        let image_file = encode_volume(&header, dims, NiftiType::Int16, &image);
        let mask_file = encode_mask(&header, dims, &labels);
        let whole = Editor::open(&image_file, &mask_file, version("v1")).unwrap();

        let mut filled = Editor::awaiting_slabs(&image_file[..348], &mask_file[..348], version("v1")).unwrap();
        for (file, voxel_bytes) in [(&image_file, 2), (&mask_file, 1)] {
            let grid = SlabGrid { dims, voxel_bytes, depth: 3 };
            for index in (0..grid.count()).rev() {
                let range = grid.byte_range(index);
                let slab = &file[352 + range.start..352 + range.end];
                match voxel_bytes {
                    2 => filled.fill_image_slab(range.start / 2, slab),
                    _ => filled.fill_mask_slab(range.start, slab),
                }
            }
        }
        filled.loaded();
        assert!((0..n).all(|i| filled.image.get(i) == whole.image.get(i)));
        assert_eq!(filled.mask, whole.mask);
        assert_eq!(filled.counts, whole.counts);
        assert_eq!(filled.robust_range, whole.robust_range);
        assert_eq!(filled.unsaved_edits().voxel_count(), 0);
    }

    #[test]
    fn edits_since_the_base_survive_a_save_and_a_rebase() {
        let (image, mask) = files([8, 8, 4]);
        let mut editor = Editor::open(&image, &mask, version("v1")).unwrap();
        assert_eq!(editor.orientation.axis_codes(), "LPS");
        assert_eq!(editor.image.get(9), 9.0);
        let geometry = editor.orientation.slice_geometry(crate::geometry::Plane::Axial, editor.dims, editor.spacing);
        let mut stroke = Stroke::begin(
            Paint { value: 1, radius_mm: 1.0, intensity_range: None, area: tools::EditableArea::Everywhere },
            2,
        );
        stroke.extend_to(&geometry, &editor.image, &mut editor.mask, 4.5, 4.5);
        editor.record(stroke.finish());
        let edits = editor.unsaved_edits();
        assert_eq!(edits.voxel_count(), 5);
        editor.saved(version("v2"), &edits);
        assert_eq!(editor.unsaved_edits().voxel_count(), 0);

        // Undo after the save is itself an unsaved change.
        assert!(editor.undo());
        let undo = editor.unsaved_edits();
        assert_eq!(undo.voxel_count(), 5);

        // Someone else saved v3 (all zeros here): the undo's edits are re-applied on it.
        let (_, v3) = files([8, 8, 4]);
        editor.rebase(version("v3"), &v3, &undo).unwrap();
        assert_eq!(editor.base_ref, version("v3"));
        assert_eq!(editor.unsaved_edits().voxel_count(), 0, "undo sets zeros, v3 is zeros");
    }

    #[test]
    fn changes_between_versions_count_added_and_removed_voxels() {
        assert_eq!(changes_between(&[0, 1, 1, 2, 0], &[1, 1, 0, 1, 0]), (2, 1));
    }

    #[test]
    fn a_mask_of_another_size_is_refused() {
        let (image, _) = files([8, 8, 4]);
        let (_, mask) = files([8, 8, 3]);
        let err = Editor::open(&image, &mask, version("v1")).err().unwrap();
        assert!(err.0.contains("differs"), "{err}");
    }

    #[test]
    fn a_3d_tool_is_one_undoable_step_and_the_counts_follow() {
        let (image, mask) = files([16, 16, 11]);
        let mut editor = Editor::open(&image, &mask, version("v1")).unwrap();
        let grid = editor.grid();
        // Label 2 on slices 0 and 10 (3×3 squares); another label (1) in the way on slice 5.
        for k in [0, 10] {
            for (i, j) in (6..9).flat_map(|i| (6..9).map(move |j| (i, j))) {
                editor.mask[grid.index([i, j, k])] = 2;
            }
        }
        editor.mask[grid.index([7, 7, 5])] = 1;
        editor.recount();
        assert_eq!((editor.counts[1], editor.counts[2]), (1, 18));

        let preview = editor.preview_fill_between(2, 2);
        assert_eq!(preview.voxels().len(), 9 * 9, "nine slices of 3×3 between");
        // Only over background: the label-1 voxel stays.
        assert_eq!(editor.apply_preview(EditableArea::Background), 80);
        assert!(editor.preview.is_none());
        assert_eq!((editor.counts[0], editor.counts[1], editor.counts[2]), (16 * 16 * 11 - 99, 1, 98));
        assert_eq!(editor.mask[grid.index([7, 7, 5])], 1);

        assert!(editor.undo());
        assert_eq!(editor.counts[2], 18);
        assert!(editor.redo());
        assert_eq!(editor.counts[2], 98);
        assert_eq!(editor.counts.iter().sum::<u64>(), 16 * 16 * 11);
        assert_eq!(editor.counts[2], editor.mask.iter().filter(|&&v| v == 2).count() as u64);

        // A stray voxel of label 2 is an island; keeping the largest removes only it.
        editor.mask[grid.index([0, 0, 0])] = 2;
        editor.recount();
        assert_eq!(editor.remove_islands(2, Islands::KeepLargest), 1);
        assert_eq!(editor.counts[2], 98);
    }
}
