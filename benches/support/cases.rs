//! Cases the benchmarks work on, imported straight through the service (`#[path]`-included):
//! empty ones of any size, and CT-like ones.
#![allow(dead_code)] // each benchmark uses a different part

use seglab::api::CaseId;
use seglab::nifti_io::{encode_volume, gzip, gzip_mask};
use seglab::server::services::cases::{import_case, NewCase};

use crate::common::TestApp;

/// The file of an all-zero uint8 volume of `dims`, 1 mm voxels in scanner space: an empty
/// case's image, whose mask the import makes empty too.
pub fn zero_volume(dims: [u32; 3]) -> Vec<u8> {
    let header = nifti::NiftiHeader {
        pixdim: [1.0; 8],
        sform_code: 1,
        srow_x: [1.0, 0.0, 0.0, 0.0],
        srow_y: [0.0, 1.0, 0.0, 0.0],
        srow_z: [0.0, 0.0, 1.0, 0.0],
        ..nifti::NiftiHeader::default()
    };
    let voxels = dims.iter().map(|&d| d as usize).product();
    gzip_mask(&header, dims, &vec![0u8; voxels], 1)
}

/// Imports a case named `name` with `image` (and `mask`, or an empty one), labelled 1 organ and
/// 2 lesion.
pub async fn import(app: &TestApp, name: String, image: Vec<u8>, mask: Option<Vec<u8>>) -> CaseId {
    let labels = vec![(1, "organ".into()), (2, "lesion".into())];
    let new = NewCase { name, image: image.into(), mask: mask.map(Into::into), labels, dicom: None };
    import_case(&app.state, None, new).await.unwrap().id
}

/// The size of a CT series: 512×512, 300 slices.
pub const CT: [usize; 3] = [512, 512, 300];

/// A CT-like int16 volume of `dims` whose slabs all differ, and a mask with a disc in every
/// slice.
fn ct_case(dims: [usize; 3]) -> (Vec<u8>, Vec<u8>) {
    let [ni, nj, nk] = dims;
    let header = nifti::NiftiHeader {
        pixdim: [1.0, 0.7, 0.7, 1.0, 0.0, 0.0, 0.0, 0.0],
        sform_code: 1,
        srow_x: [0.7, 0.0, 0.0, 0.0],
        srow_y: [0.0, 0.7, 0.0, 0.0],
        srow_z: [0.0, 0.0, 1.0, 0.0],
        ..nifti::NiftiHeader::default()
    };
    let mut voxels = Vec::with_capacity(ni * nj * nk * 2);
    let mut labels = vec![0u8; ni * nj * nk];
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                let (x, y) = (i as i32 - ni as i32 / 2, j as i32 - nj as i32 / 2);
                let inside = x * x + y * y < (ni * ni / 7) as i32;
                let value: i16 = if inside { 40 + ((i * 7 + j * 13 + k * 31) % 97) as i16 } else { -1000 };
                voxels.extend_from_slice(&value.to_le_bytes());
                let radius = 20 + (k % 40) as i32;
                if (x - 30) * (x - 30) + y * y < radius * radius {
                    labels[i + ni * (j + nj * k)] = 1 + (k % 2) as u8;
                }
            }
        }
    }
    let dims = dims.map(|d| d as u32);
    let image = gzip(&encode_volume(&header, dims, nifti::NiftiType::Int16, &voxels), 1);
    (image, gzip_mask(&header, dims, &labels, 1))
}

/// Imports [`ct_case`] of `dims`; its id.
pub async fn import_ct(app: &TestApp, dims: [usize; 3]) -> String {
    let (image, mask) = ct_case(dims);
    import(app, format!("CT {}×{}×{}", dims[0], dims[1], dims[2]), image, Some(mask)).await.to_string()
}
