//! The viewer and mask editor's logic, free of the browser so it is unit-tested natively and
//! compiled unchanged into the WASM front end (`crate::browser` draws and listens).

pub mod orientation;
pub mod render;
pub mod tools;
pub mod ui;

use crate::edits::MaskEdits;
use crate::nifti_io::{Samples, Volume, VolumeError};
use orientation::Orientation;
use tools::{Delta, History};

/// An opened case: the image, the mask version edits are based on, and the mask being edited.
pub struct Editor {
    pub image: Samples,
    pub dims: [usize; 3],
    pub spacing: [f32; 3],
    pub orientation: Orientation,
    /// Intensities at the 0.5th and 99.5th percentiles, for the default window.
    pub robust_range: (f32, f32),
    /// Reference and voxels of the saved version the edits apply to.
    pub base_ref: String,
    base: Vec<u8>,
    /// The mask as shown and edited.
    pub mask: Vec<u8>,
    pub history: History,
}

impl Editor {
    /// From the downloaded image and mask files; refuses a mask that does not fit the image.
    pub fn open(image_file: &[u8], mask_file: &[u8], mask_ref: String) -> Result<Editor, VolumeError> {
        let image = Volume::parse("image", image_file)?;
        let mask = Volume::parse("mask", mask_file)?;
        if image.meta.dims != mask.meta.dims {
            return Err(VolumeError(format!(
                "the mask's size {:?} differs from the image's {:?}",
                mask.meta.dims, image.meta.dims
            )));
        }
        let dims = image.meta.dims.map(|d| d as usize);
        let spacing = image.meta.spacing_mm.map(|s| if s > 0.0 { s } else { 1.0 });
        let orientation = Orientation::from_affine(&image.affine());
        let image = image.into_samples("image")?;
        let robust_range = image.percentiles(0.005, 0.995);
        let base = mask.into_labels("mask")?;
        Ok(Editor {
            image,
            dims,
            spacing,
            orientation,
            robust_range,
            base_ref: mask_ref,
            mask: base.clone(),
            base,
            history: History::default(),
        })
    }

    /// Records an edit already applied to `mask`.
    pub fn record(&mut self, delta: Delta) {
        self.history.push(delta);
    }

    /// What changed since the base version: what a save sends.
    pub fn unsaved_edits(&self) -> MaskEdits {
        MaskEdits::diff(&self.base, &self.mask)
    }

    /// The edits were saved as version `new_ref`: it becomes the base. Undo history stays, so
    /// a saved edit can still be undone (and the undo saved as a new version).
    pub fn saved(&mut self, new_ref: String, saved: &MaskEdits) {
        saved.apply(&mut self.base);
        self.base_ref = new_ref;
    }

    /// Moves onto a newer version `base` (someone else's save, or a restore) and applies
    /// `edits` on top: the person's own changes win where both touched a voxel.
    pub fn rebase(&mut self, base_ref: String, base_file: &[u8], edits: &MaskEdits) -> Result<(), VolumeError> {
        let base = Self::labels_of(base_file, self.mask.len())?;
        let mut mask = base.clone();
        edits.apply(&mut mask);
        self.base = base;
        self.base_ref = base_ref;
        self.mask = mask;
        self.history.clear();
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::tools::{Paint, Stroke};
    use super::*;
    use crate::nifti_io::{encode_mask, encode_volume, gzip};
    use nifti::{NiftiHeader, NiftiType};

    fn files(dims: [u32; 3]) -> (Vec<u8>, Vec<u8>) {
        let header = NiftiHeader { pixdim: [1.0; 8], sform_code: 1, srow_x: [-1.0, 0.0, 0.0, 0.0], srow_y: [0.0, -1.0, 0.0, 0.0], srow_z: [0.0, 0.0, 1.0, 0.0], ..NiftiHeader::default() };
        let n = dims.iter().product::<u32>() as usize;
        let image: Vec<u8> = (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect();
        (gzip(&encode_volume(&header, dims, NiftiType::Float32, &image), 1), gzip(&encode_mask(&header, dims, &vec![0; n]), 1))
    }

    #[test]
    fn edits_since_the_base_survive_a_save_and_a_rebase() {
        let (image, mask) = files([8, 8, 4]);
        let mut editor = Editor::open(&image, &mask, "v1".into()).unwrap();
        assert_eq!(editor.orientation.axis_codes(), "LPS");
        assert_eq!(editor.image.get(9), 9.0);
        let geometry = editor.orientation.slice_geometry(orientation::Plane::Axial, editor.dims, editor.spacing);
        let mut stroke = Stroke::begin(Paint { value: 1, radius_mm: 1.0, intensity_range: None }, 2);
        stroke.extend_to(&geometry, &editor.image, &mut editor.mask, 4.5, 4.5);
        editor.record(stroke.finish());
        let edits = editor.unsaved_edits();
        assert_eq!(edits.voxel_count(), 5);
        editor.saved("v2".into(), &edits);
        assert_eq!(editor.unsaved_edits().voxel_count(), 0);

        // Undo after the save is itself an unsaved change.
        assert!(editor.history.undo(&mut editor.mask));
        let undo = editor.unsaved_edits();
        assert_eq!(undo.voxel_count(), 5);

        // Someone else saved v3 (all zeros here): the undo's edits are re-applied on it.
        let (_, v3) = files([8, 8, 4]);
        editor.rebase("v3".into(), &v3, &undo).unwrap();
        assert_eq!(editor.base_ref, "v3");
        assert_eq!(editor.unsaved_edits().voxel_count(), 0, "undo sets zeros, v3 is zeros");
    }

    #[test]
    fn a_mask_of_another_size_is_refused() {
        let (image, _) = files([8, 8, 4]);
        let (_, mask) = files([8, 8, 3]);
        let err = Editor::open(&image, &mask, "v1".into()).err().unwrap();
        assert!(err.0.contains("differs"), "{err}");
    }
}
