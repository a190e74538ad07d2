//! Test data: cases made through the import service, and the one NIfTI writer of the tests.

use nifti::{NiftiHeader, NiftiType};
use seglab::nifti_io::{encode_mask, encode_volume, gzip};
use seglab::server::services::cases::{import_case, NewCase};

use crate::common::TestApp;

/// The header of test volumes: 1 mm voxels and an sform (all zero unless a test sets it).
pub fn header() -> NiftiHeader {
    NiftiHeader { pixdim: [1.0; 8], sform_code: 1, ..NiftiHeader::default() }
}

/// `voxels` (file order, little-endian) of type `kind` as a `.nii.gz`.
pub fn volume_file(header: &NiftiHeader, dims: [u32; 3], kind: NiftiType, voxels: &[u8]) -> Vec<u8> {
    gzip(&encode_volume(header, dims, kind, voxels), 1)
}

/// A label mask (one byte per voxel) as a `.nii.gz`.
pub fn mask_file(header: &NiftiHeader, dims: [u32; 3], labels: &[u8]) -> Vec<u8> {
    gzip(&encode_mask(header, dims, labels), 1)
}

/// The voxel values of an image, from each voxel's index in file order.
enum Fill {
    Int16(Box<dyn Fn(usize) -> i16 + Send + Sync>),
    Float32(Box<dyn Fn(usize) -> f32 + Send + Sync>),
    Uint8(Box<dyn Fn(usize) -> u8 + Send + Sync>),
}

enum FirstMask {
    Empty,
    Labels(Vec<u8>),
}

/// A case to import: by default a 10×8×6 int16 ramp (index mod 50) with [`header`], an empty
/// mask and label 1 "organ"; each method changes one of these.
pub struct CaseBuilder {
    name: String,
    header: NiftiHeader,
    dims: [u32; 3],
    fill: Fill,
    mask: FirstMask,
    labels: Vec<(u8, String)>,
}

impl CaseBuilder {
    pub fn new(name: &str) -> CaseBuilder {
        CaseBuilder {
            name: name.into(),
            header: header(),
            dims: [10, 8, 6],
            fill: Fill::Int16(Box::new(|index| (index % 50) as i16)),
            mask: FirstMask::Empty,
            labels: vec![(1, "organ".into())],
        }
    }

    pub fn dims(mut self, dims: [u32; 3]) -> CaseBuilder {
        self.dims = dims;
        self
    }

    pub fn header(mut self, header: NiftiHeader) -> CaseBuilder {
        self.header = header;
        self
    }

    /// Voxel size in mm.
    pub fn spacing(mut self, [x, y, z]: [f32; 3]) -> CaseBuilder {
        self.header.pixdim[1..4].copy_from_slice(&[x, y, z]);
        self
    }

    pub fn int16(mut self, value: impl Fn(usize) -> i16 + Send + Sync + 'static) -> CaseBuilder {
        self.fill = Fill::Int16(Box::new(value));
        self
    }

    pub fn float32(mut self, value: impl Fn(usize) -> f32 + Send + Sync + 'static) -> CaseBuilder {
        self.fill = Fill::Float32(Box::new(value));
        self
    }

    pub fn uint8(mut self, value: impl Fn(usize) -> u8 + Send + Sync + 'static) -> CaseBuilder {
        self.fill = Fill::Uint8(Box::new(value));
        self
    }

    /// The first mask's labels, one byte per voxel.
    pub fn mask(mut self, labels: Vec<u8>) -> CaseBuilder {
        self.mask = FirstMask::Labels(labels);
        self
    }

    pub fn labels(mut self, labels: &[(u8, &str)]) -> CaseBuilder {
        self.labels = labels.iter().map(|(value, name)| (*value, name.to_string())).collect();
        self
    }

    pub fn voxel_count(&self) -> usize {
        self.dims.iter().map(|&d| d as usize).product()
    }

    /// The image as a `.nii.gz`.
    pub fn image_file(&self) -> Vec<u8> {
        let count = self.voxel_count();
        let (kind, voxels): (NiftiType, Vec<u8>) = match &self.fill {
            Fill::Int16(value) => (NiftiType::Int16, (0..count).flat_map(|i| value(i).to_le_bytes()).collect()),
            Fill::Float32(value) => (NiftiType::Float32, (0..count).flat_map(|i| value(i).to_le_bytes()).collect()),
            Fill::Uint8(value) => (NiftiType::Uint8, (0..count).map(value).collect()),
        };
        volume_file(&self.header, self.dims, kind, &voxels)
    }

    /// Imports the case through the service; returns its id.
    pub async fn import(self, app: &TestApp) -> String {
        let image = self.image_file();
        let mask = match &self.mask {
            FirstMask::Empty => mask_file(&self.header, self.dims, &vec![0; self.voxel_count()]),
            FirstMask::Labels(labels) => mask_file(&self.header, self.dims, labels),
        };
        let case =
            NewCase { name: self.name, image: image.into(), mask: Some(mask.into()), labels: self.labels, dicom: None };
        import_case(&app.state, None, case).await.expect("import the test case").id.to_string()
    }
}
