//! Demo content for a fresh installation: generated phantom volumes with initial masks, and a
//! user to try the API with. Generated rather than shipped, so the repository stays small.

use nifti::{NiftiHeader, NiftiType};

use super::error::AppError;
use super::services::cases::{import_case, NewCase};
use super::services::users::{add_user, user_count};
use super::state::AppState;
use crate::nifti_io::{encode_volume, gzip, gzip_mask};
use crate::server::identity::Role;

/// How a phantom's voxel axes run in the patient.
#[derive(Clone, Copy, PartialEq)]
enum Storage {
    /// i towards the patient's right, j anterior, k superior.
    Ras,
    /// i towards the left, j posterior, k superior: how DICOM-converted CT is often stored.
    Lps,
}

/// A header placing the volume centred on the origin with axes stored as `storage` says.
fn header(dims: [u32; 3], spacing: [f32; 3], storage: Storage) -> NiftiHeader {
    let sign = |axis: usize| if storage == Storage::Lps && axis < 2 { -1.0 } else { 1.0 };
    let step = |axis: usize| sign(axis) * spacing[axis];
    let centre = |axis: usize| -(dims[axis] as f32 - 1.0) * step(axis) / 2.0;
    NiftiHeader {
        pixdim: [1.0, spacing[0], spacing[1], spacing[2], 1.0, 1.0, 1.0, 1.0],
        xyzt_units: 2, // millimetres
        sform_code: 1,
        qform_code: 1,
        srow_x: [step(0), 0.0, 0.0, centre(0)],
        srow_y: [0.0, step(1), 0.0, centre(1)],
        srow_z: [0.0, 0.0, step(2), centre(2)],
        // LPS is RAS turned 180° about the z axis.
        quatern_d: if storage == Storage::Lps { 1.0 } else { 0.0 },
        quatern_x: centre(0),
        quatern_y: centre(1),
        quatern_z: centre(2),
        ..NiftiHeader::default()
    }
}

/// Voxel centres in normalised coordinates (-1..1 along each axis), in file order.
fn grid(dims: [u32; 3]) -> impl Iterator<Item = [f32; 3]> {
    let [ni, nj, nk] = dims;
    let norm = |v: u32, n: u32| 2.0 * (v as f32 + 0.5) / n as f32 - 1.0;
    (0..nk).flat_map(move |k| (0..nj).flat_map(move |j| (0..ni).map(move |i| [norm(i, ni), norm(j, nj), norm(k, nk)])))
}

fn inside_ellipsoid(p: [f32; 3], centre: [f32; 3], radii: [f32; 3]) -> bool {
    (0..3).map(|a| ((p[a] - centre[a]) / radii[a]).powi(2)).sum::<f32>() <= 1.0
}

/// Small deterministic noise in -1..1, so images are not flat.
fn noise(index: usize) -> f32 {
    let x = (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    (x % 2001) as f32 / 1000.0 - 1.0
}

struct Phantom {
    name: &'static str,
    labels: &'static [(u8, &'static str)],
    image: Vec<u8>,
    mask: Vec<u8>,
}

fn head_phantom() -> Phantom {
    let dims = [128, 128, 96];
    let h = header(dims, [1.5, 1.5, 1.5], Storage::Ras);
    let mut image = Vec::new();
    let mut mask = Vec::new();
    for (index, p) in grid(dims).enumerate() {
        let mut value = 0.0;
        let mut label = 0u8;
        if inside_ellipsoid(p, [0.0, 0.0, 0.0], [0.69, 0.92, 0.81]) {
            value = 800.0; // scalp
            if inside_ellipsoid(p, [0.0, -0.02, 0.0], [0.66, 0.87, 0.78]) {
                value = 400.0; // brain
            }
            for centre in [[0.22, 0.0, 0.1], [-0.22, 0.0, 0.1]] {
                if inside_ellipsoid(p, centre, [0.11, 0.31, 0.2]) {
                    value = 150.0;
                    label = 1; // ventricle
                }
            }
            if inside_ellipsoid(p, [0.1, 0.45, -0.2], [0.09, 0.09, 0.09]) {
                value = 650.0;
                label = 2; // lesion
            }
            value += 20.0 * noise(index);
        }
        image.extend_from_slice(&(value as i16).to_le_bytes());
        mask.push(label);
    }
    Phantom {
        name: "Demo head phantom (MR, int16)",
        labels: &[(1, "ventricle"), (2, "lesion")],
        image: gzip(&encode_volume(&h, dims, NiftiType::Int16, &image), 6),
        mask: gzip_mask(&h, dims, &mask, 6),
    }
}

fn abdomen_phantom() -> Phantom {
    let dims = [192, 160, 64];
    // Stored LPS, so the viewer must flip it to show the liver on the patient's right
    // (screen left) and the spine posterior (screen bottom).
    let h = header(dims, [1.0, 1.0, 2.5], Storage::Lps);
    let mut image = Vec::new();
    let mut mask = Vec::new();
    for (index, p) in grid(dims).enumerate() {
        let [x, y, _] = p;
        let mut hu = -1000.0; // air
        let mut label = 0u8;
        if (x / 0.9).powi(2) + (y / 0.75).powi(2) <= 1.0 {
            hu = -100.0; // fat
            if (x / 0.8).powi(2) + (y / 0.65).powi(2) <= 1.0 {
                hu = 40.0; // soft tissue
            }
            // In LPS voxel order: negative x is the patient's right, positive y posterior.
            if inside_ellipsoid(p, [-0.35, -0.15, 0.0], [0.35, 0.3, 0.7]) {
                hu = 60.0;
                label = 1; // liver
            }
            for cx in [-0.3, 0.3] {
                if inside_ellipsoid(p, [cx, 0.35, 0.0], [0.1, 0.13, 0.35]) {
                    hu = 30.0; // kidneys, left unlabelled for the labeler
                }
            }
            if x * x + (y - 0.55).powi(2) <= 0.1 * 0.1 {
                hu = 700.0; // spine
            }
            hu += 8.0 * noise(index);
        }
        image.extend_from_slice(&(hu as i16).to_le_bytes());
        mask.push(label);
    }
    Phantom {
        name: "Demo abdomen phantom (CT, int16)",
        labels: &[(1, "liver"), (2, "kidney")],
        image: gzip(&encode_volume(&h, dims, NiftiType::Int16, &image), 6),
        mask: gzip_mask(&h, dims, &mask, 6),
    }
}

fn blob_phantom() -> Phantom {
    let dims = [64, 64, 64];
    let h = header(dims, [2.0, 2.0, 2.0], Storage::Ras);
    let mut image = Vec::new();
    for (index, [x, y, z]) in grid(dims).enumerate() {
        let r2 = x * x + y * y + z * z;
        let value = (-r2 * 4.0).exp() + 0.05 * noise(index);
        image.extend_from_slice(&value.to_le_bytes());
    }
    Phantom {
        name: "Demo blob (float32, unlabelled)",
        labels: &[(1, "blob")],
        image: gzip(&encode_volume(&h, dims, NiftiType::Float32, &image), 6),
        mask: gzip_mask(&h, dims, &vec![0; 64 * 64 * 64], 6),
    }
}

/// The demo user's credentials, printed once when they are created.
pub struct DemoLogin {
    pub password: String,
    pub token: String,
}

/// On an empty installation, creates the demo cases and the user `demo` with `password` (a
/// random one when `None`); returns the credentials, or `None` when there was something already.
pub async fn seed_if_empty(state: &AppState, password: Option<String>) -> Result<Option<DemoLogin>, AppError> {
    if user_count(&state.db).await? > 0 {
        return Ok(None);
    }
    let phantoms = tokio::task::spawn_blocking(|| [head_phantom(), abdomen_phantom(), blob_phantom()])
        .await
        .map_err(AppError::internal)?;
    for phantom in phantoms {
        let new_case = NewCase {
            name: phantom.name.to_string(),
            image: phantom.image.into(),
            mask: Some(phantom.mask.into()),
            labels: phantom.labels.iter().map(|(v, n)| (*v, n.to_string())).collect(),
            dicom: None,
        };
        import_case(state, None, new_case).await?;
    }
    let password = password.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_string());
    let (_, token) = add_user(&state.db, "demo", &Role::ALL, Some(&password)).await?;
    Ok(Some(DemoLogin { password, token }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nifti_io::Volume;

    #[test]
    fn phantoms_are_valid_volumes_with_labelled_masks() {
        for phantom in [head_phantom(), abdomen_phantom(), blob_phantom()] {
            let image = Volume::parse("image", &phantom.image).unwrap();
            let mask = Volume::parse("mask", &phantom.mask).unwrap();
            assert!(image.info().same_geometry(&mask.info()), "{}", phantom.name);
            // Readers that prefer the qform must place the voxels where the sform does.
            let sform = image.affine();
            let mut qform_only = Volume::parse("image", &phantom.image).unwrap();
            qform_only.header.sform_code = 0;
            let qform = qform_only.affine();
            for (s, q) in sform.iter().flatten().zip(qform.iter().flatten()) {
                assert!((s - q).abs() < 1e-4, "{}: sform {sform:?} vs qform {qform:?}", phantom.name);
            }
            let labels = mask.into_labels("mask").unwrap();
            let labelled = labels.iter().filter(|v| **v > 0).count();
            if phantom.name.contains("unlabelled") {
                assert_eq!(labelled, 0);
            } else {
                assert!(labelled > 100, "{}: {labelled} labelled voxels", phantom.name);
            }
        }
    }
}
