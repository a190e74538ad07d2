//! DICOM Segmentation in: a SEG another tool made on a case's series (3D Slicer, highdicom,
//! MONAI Label, a PACS) read back as that case's label map, frame by frame placed on the slice
//! whose position it carries, segment by segment matched to the case's labels by name.

use std::path::Path;

use dicom_dictionary_std::{tags, uids};
use dicom_object::{InMemDicomObject, OpenFileOptions};

use super::headers::{floats, functional_group, integer, text, three};
use super::{SeriesGeometry, SourceImage};
use crate::api::LabelDef;

/// The case a SEG is read onto: its series' layout and its labels.
pub(crate) struct SegTarget<'a> {
    pub frame_of_reference_uid: Option<&'a str>,
    pub source_images: &'a [SourceImage],
    pub geometry: &'a SeriesGeometry,
    /// Columns, rows, slices.
    pub dims: [u32; 3],
    pub labels: &'a [LabelDef],
}

/// The label map (one byte per voxel, i fastest) of the SEG at `path`. Where segments overlap,
/// the one listed later wins. Refused, with the reason, when the file is not a SEG of this
/// series' grid or names a segment the case has no label for.
pub(crate) fn read_seg(path: &Path, target: &SegTarget<'_>) -> Result<Vec<u8>, String> {
    let object = OpenFileOptions::new().open_file(path).map_err(|e| format!("the file is not DICOM ({e})"))?;
    let sop_class = text(&object, tags::SOP_CLASS_UID).unwrap_or_default();
    if sop_class != uids::SEGMENTATION_STORAGE {
        return Err(format!("the file is not a DICOM Segmentation (its SOP class is {sop_class:?})"));
    }
    let syntax = object.meta().transfer_syntax().trim_end_matches('\0').trim();
    if ![uids::EXPLICIT_VR_LITTLE_ENDIAN, uids::IMPLICIT_VR_LITTLE_ENDIAN, uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN]
        .contains(&syntax)
    {
        return Err(format!("segmentations with compressed pixel data (transfer syntax {syntax}) are not read"));
    }
    if let (Some(ours), Some(theirs)) = (target.frame_of_reference_uid, text(&object, tags::FRAME_OF_REFERENCE_UID)) {
        if ours != theirs {
            return Err(format!(
                "the segmentation is in frame of reference {theirs}, the case's series in {ours}: it was made on another series"
            ));
        }
    }
    let [columns, rows, slices] = target.dims.map(|d| d as usize);
    let (seg_rows, seg_columns) = (integer(&object, tags::ROWS), integer(&object, tags::COLUMNS));
    if seg_rows != Some(rows as i64) || seg_columns != Some(columns as i64) {
        return Err(format!(
            "the segmentation's frames are {}×{} pixels, the series' images {columns}×{rows}",
            seg_columns.unwrap_or(0),
            seg_rows.unwrap_or(0)
        ));
    }
    let kind = text(&object, tags::SEGMENTATION_TYPE).unwrap_or_default();
    let bits = integer(&object, tags::BITS_ALLOCATED).unwrap_or(0);
    let fractional_max = match (kind.as_str(), bits) {
        ("BINARY", 1) => None,
        ("FRACTIONAL", 8) => Some(integer(&object, tags::MAXIMUM_FRACTIONAL_VALUE).filter(|m| *m > 0).unwrap_or(255)),
        _ => return Err(format!("segmentation type {kind:?} with {bits} bits per pixel is not read")),
    };

    let values = segment_values(&object, target.labels)?;
    let frames = object
        .get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .and_then(|e| e.items())
        .ok_or("the segmentation has no per-frame functional groups")?;
    let declared = integer(&object, tags::NUMBER_OF_FRAMES).unwrap_or(0);
    if declared != frames.len() as i64 || frames.len() > values.len() * slices {
        return Err(format!(
            "the segmentation declares {declared} frames and describes {}, for {} segments on {slices} slices",
            frames.len(),
            values.len()
        ));
    }
    let plane = rows * columns;
    let pixels = object
        .element(tags::PIXEL_DATA)
        .map_err(|_| "the segmentation has no pixel data".to_string())?
        .to_bytes()
        .map_err(|e| format!("the segmentation's pixel data cannot be read ({e})"))?;
    let needed = match fractional_max {
        None => (frames.len() * plane).div_ceil(8),
        Some(_) => frames.len() * plane,
    };
    if pixels.len() < needed {
        return Err(format!(
            "the pixel data is truncated: {} bytes for {} frames, {needed} needed",
            pixels.len(),
            frames.len()
        ));
    }

    let mut labels = vec![0u8; plane * slices];
    for (index, frame) in frames.iter().enumerate() {
        let number = functional_group(&object, Some(frame), tags::SEGMENT_IDENTIFICATION_SEQUENCE)
            .and_then(|item| integer(item, tags::REFERENCED_SEGMENT_NUMBER))
            .ok_or_else(|| format!("frame {} names no segment", index + 1))?;
        let value = values.iter().find(|(n, _)| *n == number).map(|(_, value)| *value).ok_or_else(|| {
            format!("frame {} is of segment {number}, which the segmentation does not describe", index + 1)
        })?;
        let k = slice_of(&object, frame, target).map_err(|e| format!("frame {}: {e}", index + 1))?;
        let slice = &mut labels[k * plane..(k + 1) * plane];
        match fractional_max {
            None => {
                let first = index * plane;
                for (offset, voxel) in slice.iter_mut().enumerate() {
                    let bit = first + offset;
                    if pixels[bit / 8] & (1 << (bit % 8)) != 0 {
                        *voxel = value;
                    }
                }
            }
            Some(max) => {
                let samples = &pixels[index * plane..(index + 1) * plane];
                for (voxel, &sample) in slice.iter_mut().zip(samples) {
                    if i64::from(sample) * 2 >= max {
                        *voxel = value;
                    }
                }
            }
        }
    }
    Ok(labels)
}

/// Segment number → the case's label value, matched by name (SegmentLabel, case and spaces
/// aside).
fn segment_values(object: &InMemDicomObject, labels: &[LabelDef]) -> Result<Vec<(i64, u8)>, String> {
    let segments = object
        .get(tags::SEGMENT_SEQUENCE)
        .and_then(|e| e.items())
        .filter(|items| !items.is_empty())
        .ok_or("the segmentation describes no segment")?;
    let known = || labels.iter().map(|label| label.name.as_str()).collect::<Vec<_>>().join(", ");
    segments
        .iter()
        .map(|segment| {
            let number = integer(segment, tags::SEGMENT_NUMBER).ok_or("a segment has no SegmentNumber")?;
            let name = text(segment, tags::SEGMENT_LABEL).unwrap_or_default();
            let label = labels
                .iter()
                .find(|label| label.name.trim().eq_ignore_ascii_case(name.trim()))
                .ok_or_else(|| format!("segment {number} ({name:?}) matches no label of this case ({})", known()))?;
            Ok((number, label.value))
        })
        .collect()
}

/// The slice a frame lies on: the one at its ImagePositionPatient (within a tenth of the slice
/// spacing), which places frames of tools that reference no source image too.
fn slice_of(object: &InMemDicomObject, frame: &InMemDicomObject, target: &SegTarget<'_>) -> Result<usize, String> {
    let geometry = target.geometry;
    if let Some(orientation) = functional_group(object, Some(frame), tags::PLANE_ORIENTATION_SEQUENCE)
        .and_then(|item| floats(item, tags::IMAGE_ORIENTATION_PATIENT))
    {
        if orientation.len() != 6 || orientation.iter().zip(geometry.orientation).any(|(a, b)| (a - b).abs() > 1e-3) {
            return Err(format!("its orientation {orientation:?} is not the series' {:?}", geometry.orientation));
        }
    }
    let position = functional_group(object, Some(frame), tags::PLANE_POSITION_SEQUENCE)
        .ok_or("it has no PlanePositionSequence")
        .and_then(|item| {
            three(item, tags::IMAGE_POSITION_PATIENT, "ImagePositionPatient")
                .map_err(|_| "it has no ImagePositionPatient")
        })?;
    let tolerance = (geometry.slice_spacing / 10.0).max(1e-3);
    target
        .source_images
        .iter()
        .position(|image| distance(&image.position, &position) <= tolerance)
        .ok_or_else(|| format!("no slice of the series is at {position:?} mm"))
}

fn distance(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt()
}
