//! Decoding a checked series into one NIfTI volume, a plane at a time, straight to a file.
//!
//! The stored type follows dcm2niix: the series' own sample type with its rescale in
//! `scl_slope`/`scl_inter` when every plane shares one rescale (unsigned 16-bit samples that all
//! fit become signed 16-bit), and float32 with the rescale applied when planes differ.

use std::io::{Seek, SeekFrom, Write};

use dicom_object::DefaultDicomObject;
use dicom_pixeldata::PixelDecoder;

use super::geometry::Grid;
use super::headers::{PixelFormat, SourceFile};
use crate::nifti_io::{image_header, VoxelType};

/// Offset of the NIfTI-1 header's `datatype` field.
const DATATYPE_OFFSET: u64 = 70;

/// Writes the grid's planes, decoded, as an uncompressed `.nii` to `out`.
pub(crate) fn write_nifti(
    files: &[SourceFile],
    pixels: PixelFormat,
    grid: &Grid,
    out: &mut (impl Write + Seek),
) -> Result<(), String> {
    let shared_rescale = grid.planes.iter().all(|plane| plane.rescale == grid.planes[0].rescale);
    let stored = match (pixels.bits_allocated, pixels.signed) {
        (8, false) => VoxelType::Uint8,
        (8, true) => VoxelType::Int8,
        (_, false) => VoxelType::Uint16,
        (_, true) => VoxelType::Int16,
    };
    let (voxel_type, scaling) = if shared_rescale {
        let (slope, intercept) = grid.planes[0].rescale;
        (stored, (slope as f32, intercept as f32))
    } else {
        (VoxelType::Float32, (1.0, 0.0))
    };
    let io = |e: std::io::Error| format!("cannot write the converted volume: {e}");
    out.write_all(&image_header(grid.dims, &grid.affine, voxel_type, scaling)).map_err(io)?;

    let plane_samples = grid.dims[0] as usize * grid.dims[1] as usize;
    let mut open: Option<(usize, DefaultDicomObject)> = None;
    let mut largest_unsigned = 0u16;
    let mut buffer = Vec::with_capacity(plane_samples * 4);
    for plane in &grid.planes {
        let file = &files[plane.file];
        if open.as_ref().map(|(index, _)| *index) != Some(plane.file) {
            let object = dicom_object::open_file(&file.path).map_err(|e| format!("{}: {e}", file.name))?;
            open = Some((plane.file, object));
        }
        let object = open.as_ref().map(|(_, object)| object).ok_or("no file is open")?;
        let decoded = object
            .decode_pixel_data_frame(plane.frame)
            .map_err(|e| format!("{}: cannot decode frame {}: {e}", file.name, plane.frame + 1))?;
        let data = decoded.frame_data(0).map_err(|e| format!("{}: {e}", file.name))?;
        let sample_bytes = usize::from(pixels.bits_allocated / 8);
        if data.len() < plane_samples * sample_bytes {
            return Err(format!(
                "{}: frame {} holds {} bytes of pixels, fewer than its {} × {} samples",
                file.name,
                plane.frame + 1,
                data.len(),
                grid.dims[0],
                grid.dims[1]
            ));
        }
        let data = &data[..plane_samples * sample_bytes];
        buffer.clear();
        let sample = |index: usize| -> f64 {
            match (sample_bytes, pixels.signed) {
                (1, false) => f64::from(data[index]),
                (1, true) => f64::from(data[index] as i8),
                (_, false) => f64::from(u16::from_ne_bytes([data[2 * index], data[2 * index + 1]])),
                (_, true) => f64::from(i16::from_ne_bytes([data[2 * index], data[2 * index + 1]])),
            }
        };
        match voxel_type {
            VoxelType::Float32 => {
                let (slope, intercept) = plane.rescale;
                for index in 0..plane_samples {
                    buffer.extend_from_slice(&((sample(index) * slope + intercept) as f32).to_le_bytes());
                }
            }
            VoxelType::Uint8 | VoxelType::Int8 => buffer.extend_from_slice(data),
            _ => {
                for pair in data.chunks_exact(2) {
                    let value = [pair[0], pair[1]];
                    if !pixels.signed {
                        largest_unsigned = largest_unsigned.max(u16::from_ne_bytes(value));
                    }
                    buffer.extend_from_slice(&u16::from_ne_bytes(value).to_le_bytes());
                }
            }
        }
        out.write_all(&buffer).map_err(io)?;
    }
    if voxel_type == VoxelType::Uint16 && largest_unsigned <= i16::MAX as u16 {
        out.seek(SeekFrom::Start(DATATYPE_OFFSET)).map_err(io)?;
        out.write_all(&(VoxelType::Int16.nifti_type() as i16).to_le_bytes()).map_err(io)?;
        out.seek(SeekFrom::End(0)).map_err(io)?;
    }
    Ok(())
}
