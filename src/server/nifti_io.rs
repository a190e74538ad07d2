//! Reading NIfTI-1 files as they arrive (import, stored masks) and writing label masks.
//!
//! Masks are stored as uint8 `.nii.gz` with the geometry (dims, pixdim, qform/sform) of the
//! file they derive from, so every viewer and `nibabel` reads them without conversion.

use std::io::{Cursor, Read, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use nifti::{InMemNiftiObject, NiftiHeader, NiftiObject, NiftiType};

use super::AppError;

/// Largest decompressed volume accepted (2 GiB), so a tiny gzip bomb cannot exhaust memory.
const MAX_VOLUME_BYTES: u64 = 2 << 30;
/// Header (348 bytes) plus the 4-byte extension flag; voxel data starts here in files we write.
const VOX_OFFSET: usize = 352;

/// Geometry and type of a stored volume, as listed with its artifact.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeMeta {
    pub dims: [u32; 3],
    pub voxel_type: &'static str,
    pub spacing_mm: [f32; 3],
}

/// A parsed volume: its header, metadata and raw voxel bytes in file order (i fastest).
pub struct Volume {
    pub header: NiftiHeader,
    pub meta: VolumeMeta,
    object: InMemNiftiObject,
}

fn refuse(what: &str, detail: impl std::fmt::Display) -> AppError {
    AppError::Unprocessable(format!("{what} is not a readable NIfTI-1 volume: {detail}"))
}

/// Gunzips when the bytes are gzip, passes plain `.nii` through.
pub fn decompress(what: &str, bytes: &[u8]) -> Result<Vec<u8>, AppError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes.to_vec());
    }
    let mut raw = Vec::with_capacity(bytes.len() * 4);
    GzDecoder::new(bytes)
        .take(MAX_VOLUME_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(|e| refuse(what, format!("the gzip stream is damaged or truncated ({e})")))?;
    if raw.len() as u64 > MAX_VOLUME_BYTES {
        return Err(refuse(what, "it is larger than 2 GiB uncompressed"));
    }
    Ok(raw)
}

pub fn gzip(bytes: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 8 + 64), Compression::new(level));
    encoder.write_all(bytes).expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

fn voxel_type_name(datatype: NiftiType) -> Option<&'static str> {
    Some(match datatype {
        NiftiType::Uint8 => "uint8",
        NiftiType::Int8 => "int8",
        NiftiType::Int16 => "int16",
        NiftiType::Uint16 => "uint16",
        NiftiType::Int32 => "int32",
        NiftiType::Uint32 => "uint32",
        NiftiType::Float32 => "float32",
        NiftiType::Float64 => "float64",
        _ => return None,
    })
}

impl Volume {
    /// Parses a `.nii` or `.nii.gz` file; `what` names it in error messages.
    pub fn parse(what: &str, bytes: &[u8]) -> Result<Volume, AppError> {
        let raw = decompress(what, bytes)?;
        let object = InMemNiftiObject::from_reader(Cursor::new(&raw)).map_err(|e| refuse(what, e))?;
        let header = object.header().clone();
        let dim = header.dim().map_err(|e| refuse(what, e))?;
        let is_3d = dim.len() == 3 || (dim.len() == 4 && dim[3] == 1);
        if !is_3d {
            return Err(AppError::Unprocessable(format!(
                "{what} has {} dimensions {dim:?}; only single 3-D volumes are supported",
                dim.len()
            )));
        }
        let datatype = header.data_type().map_err(|e| refuse(what, e))?;
        let voxel_type = voxel_type_name(datatype).ok_or_else(|| {
            AppError::Unprocessable(format!("{what} has voxel type {datatype:?}, which is not supported"))
        })?;
        let pixdim = |axis: usize| header.pixdim[axis].abs();
        let meta = VolumeMeta {
            dims: [dim[0] as u32, dim[1] as u32, dim[2] as u32],
            voxel_type,
            spacing_mm: [pixdim(1), pixdim(2), pixdim(3)],
        };
        Ok(Volume { header, meta, object })
    }

    pub fn voxel_count(&self) -> usize {
        self.meta.dims.iter().map(|&d| d as usize).product()
    }

    /// The voxels as label values, refusing anything that is not an integer in 0..=255.
    pub fn into_labels(self, what: &str) -> Result<Vec<u8>, AppError> {
        let datatype = self.header.data_type().map_err(|e| refuse(what, e))?;
        let unscaled = matches!(self.header.scl_slope, s if s == 0.0 || s == 1.0 || !s.is_finite())
            && self.header.scl_inter == 0.0;
        let little = self.header.endianness == nifti::Endianness::Little;
        let raw = self.object.into_volume().into_raw_data();
        if datatype == NiftiType::Uint8 && unscaled {
            return Ok(raw); // the stored form of every mask we write: no conversion
        }
        let (slope, inter) = if unscaled {
            (1.0, 0.0)
        } else {
            (self.header.scl_slope as f64, self.header.scl_inter as f64)
        };
        let size = datatype.size_of();
        let read = |b: &[u8]| -> f64 {
            macro_rules! num {
                ($t:ty) => {{
                    let bytes = b.try_into().expect("chunk of the type's size");
                    (if little { <$t>::from_le_bytes(bytes) } else { <$t>::from_be_bytes(bytes) }) as f64
                }};
            }
            match datatype {
                NiftiType::Uint8 => b[0] as f64,
                NiftiType::Int8 => b[0] as i8 as f64,
                NiftiType::Int16 => num!(i16),
                NiftiType::Uint16 => num!(u16),
                NiftiType::Int32 => num!(i32),
                NiftiType::Uint32 => num!(u32),
                NiftiType::Float32 => num!(f32),
                _ => num!(f64),
            }
        };
        raw.chunks_exact(size)
            .enumerate()
            .map(|(index, chunk)| {
                let value = read(chunk) * slope + inter;
                if value.fract() == 0.0 && (0.0..=255.0).contains(&value) {
                    Ok(value as u8)
                } else {
                    Err(AppError::Unprocessable(format!(
                        "{what} holds {value} at voxel {index}; label masks hold integers 0–255"
                    )))
                }
            })
            .collect()
    }

    /// True when both volumes sample the same grid in the same place: same size, spacing,
    /// and voxel-to-world transforms (sform and qform).
    pub fn same_geometry(&self, other: &Volume) -> bool {
        let placement = |h: &NiftiHeader| {
            let mut values = vec![h.pixdim[1], h.pixdim[2], h.pixdim[3]];
            values.extend(h.srow_x.iter().chain(&h.srow_y).chain(&h.srow_z));
            values.extend([h.quatern_b, h.quatern_c, h.quatern_d, h.quatern_x, h.quatern_y, h.quatern_z]);
            values
        };
        self.meta.dims == other.meta.dims
            && placement(&self.header)
                .iter()
                .zip(placement(&other.header).iter())
                .all(|(x, y)| (x - y).abs() <= 1e-3 * (1.0 + x.abs()))
    }
}

/// A uint8 label mask as an uncompressed NIfTI-1 file with the geometry of `reference`.
pub fn encode_mask(reference: &NiftiHeader, dims: [u32; 3], labels: &[u8]) -> Vec<u8> {
    encode_volume(reference, dims, NiftiType::Uint8, labels)
}

/// A uint8 label mask as a `.nii.gz`, compressed without first copying the voxels.
pub fn gzip_mask(reference: &NiftiHeader, dims: [u32; 3], labels: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(labels.len() / 16 + 1024), Compression::new(level));
    encoder.write_all(&volume_header(reference, dims, NiftiType::Uint8)).expect("writing to a Vec cannot fail");
    encoder.write_all(labels).expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

/// An uncompressed single-file NIfTI-1 volume with the geometry of `reference`; `voxels` are
/// little-endian values of `datatype` in file order (i fastest).
pub fn encode_volume(reference: &NiftiHeader, dims: [u32; 3], datatype: NiftiType, voxels: &[u8]) -> Vec<u8> {
    let mut out = volume_header(reference, dims, datatype);
    out.extend_from_slice(voxels);
    out
}

/// The 352 bytes before the voxels: header and an empty extension flag.
///
/// Written by hand (the `nifti` crate writes only to paths): this is on the label-save path.
fn volume_header(reference: &NiftiHeader, dims: [u32; 3], datatype: NiftiType) -> Vec<u8> {
    let mut out = Vec::with_capacity(VOX_OFFSET);
    let mut put = |bytes: &[u8]| out.extend_from_slice(bytes);
    put(&348i32.to_le_bytes());
    put(&[0u8; 10 + 18]); // data_type, db_name (unused ANALYZE fields)
    put(&0i32.to_le_bytes()); // extents
    put(&0i16.to_le_bytes()); // session_error
    put(&[b'r', reference.dim_info]);
    let mut dim = [1i16; 8];
    dim[0] = 3;
    for axis in 0..3 {
        dim[axis + 1] = dims[axis] as i16;
    }
    dim.iter().for_each(|d| put(&d.to_le_bytes()));
    for p in [reference.intent_p1, reference.intent_p2, reference.intent_p3] {
        put(&p.to_le_bytes());
    }
    put(&0i16.to_le_bytes()); // intent_code: none
    put(&(datatype as i16).to_le_bytes());
    put(&((datatype.size_of() * 8) as i16).to_le_bytes()); // bitpix
    put(&0i16.to_le_bytes()); // slice_start
    let mut pixdim = reference.pixdim;
    pixdim[4..].iter_mut().for_each(|p| *p = if *p == 0.0 { 1.0 } else { *p });
    pixdim.iter().for_each(|p| put(&p.to_le_bytes()));
    put(&(VOX_OFFSET as f32).to_le_bytes());
    put(&1f32.to_le_bytes()); // scl_slope
    put(&0f32.to_le_bytes()); // scl_inter
    put(&0i16.to_le_bytes()); // slice_end
    put(&[0u8, reference.xyzt_units]); // slice_code, units
    for v in [0f32, 0.0, 0.0, 0.0] {
        put(&v.to_le_bytes()); // cal_max, cal_min, slice_duration, toffset
    }
    put(&0i32.to_le_bytes()); // glmax
    put(&0i32.to_le_bytes()); // glmin
    let mut descrip = [0u8; 80];
    descrip[..6].copy_from_slice(b"seglab");
    put(&descrip);
    put(&[0u8; 24]); // aux_file
    put(&reference.qform_code.to_le_bytes());
    put(&reference.sform_code.to_le_bytes());
    for q in [
        reference.quatern_b,
        reference.quatern_c,
        reference.quatern_d,
        reference.quatern_x,
        reference.quatern_y,
        reference.quatern_z,
    ] {
        put(&q.to_le_bytes());
    }
    for row in [reference.srow_x, reference.srow_y, reference.srow_z] {
        row.iter().for_each(|v| put(&v.to_le_bytes()));
    }
    put(&[0u8; 16]); // intent_name
    put(b"n+1\0");
    put(&[0u8; 4]); // no extensions
    debug_assert_eq!(out.len(), VOX_OFFSET);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> NiftiHeader {
        NiftiHeader {
            pixdim: [1.0, 0.8, 0.9, 2.5, 0.0, 0.0, 0.0, 0.0],
            sform_code: 1,
            srow_x: [-0.8, 0.0, 0.0, 90.0],
            srow_y: [0.0, 0.9, 0.0, -126.0],
            srow_z: [0.0, 0.0, 2.5, -72.0],
            ..NiftiHeader::default()
        }
    }

    #[test]
    fn written_mask_reads_back_with_geometry_and_voxels() {
        let dims = [5, 4, 3];
        let labels: Vec<u8> = (0..60).map(|i| (i % 7) as u8).collect();
        let file = gzip_mask(&reference(), dims, &labels, 6);
        assert_eq!(decompress("mask", &file).unwrap(), encode_mask(&reference(), dims, &labels));
        let volume = Volume::parse("mask", &file).unwrap();
        assert_eq!(volume.meta.dims, dims);
        assert_eq!(volume.meta.voxel_type, "uint8");
        assert_eq!(volume.meta.spacing_mm, [0.8, 0.9, 2.5]);
        assert_eq!(volume.header.srow_x, reference().srow_x);
        assert_eq!(volume.header.sform_code, 1);
        assert_eq!(volume.into_labels("mask").unwrap(), labels);
    }

    #[test]
    fn truncated_and_foreign_files_are_refused() {
        let file = gzip_mask(&reference(), [5, 4, 3], &[0; 60], 6);
        let err = Volume::parse("image", &file[..file.len() / 2]).err().unwrap();
        assert!(err.to_string().contains("truncated"), "{err}");
        let raw = encode_mask(&reference(), [5, 4, 3], &[0; 60]);
        assert!(Volume::parse("image", &raw[..raw.len() - 10]).is_err());
        let err = Volume::parse("image", b"PK\x03\x04 this is a zip file").err().unwrap();
        assert!(err.to_string().contains("not a readable NIfTI-1 volume"), "{err}");
    }

    #[test]
    fn non_label_values_are_refused() {
        let mut file = encode_mask(&reference(), [2, 1, 1], &[0, 1]);
        // Patch scl_slope to 0.5 so voxel 1 reads as 0.5.
        file[112..116].copy_from_slice(&0.5f32.to_le_bytes());
        let err = Volume::parse("mask", &file).unwrap().into_labels("mask").err().unwrap();
        assert!(err.to_string().contains("integers 0–255"), "{err}");
    }
}
