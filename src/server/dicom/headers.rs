//! Reading what an import's files are before any pixel is decoded: each file's header (up to
//! the pixel data), grouped into series by SeriesInstanceUID, each image plane with its
//! position, orientation, spacing and rescale. Single-frame files give one plane each;
//! enhanced multi-frame files give one per frame, from their functional groups.

use std::collections::BTreeMap;
use std::path::PathBuf;

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::geometry::Plane;

/// A file offered for import: where it is now, and the name its sender gave it (for messages).
pub struct SourceFile {
    pub path: PathBuf,
    pub name: String,
}

/// How a series stores its samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PixelFormat {
    pub bits_allocated: u16,
    pub signed: bool,
}

/// Who a series is in the hospital's records: what a case keeps to find it again, to show it
/// and to send a segmentation of it back.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeriesIdentity {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub frame_of_reference_uid: Option<String>,
    pub sop_class_uid: String,
    pub modality: String,
    pub series_description: String,
    pub series_number: Option<i64>,
    /// The first WindowCenter and WindowWidth, in rescaled units.
    pub window: Option<(f64, f64)>,
}

/// Who the patient is and which visit it was: the identifying attributes of DICOM PS3.15's
/// Basic Application Level Confidentiality Profile that a series carries. Labelers never see
/// them; a deployment keeps them for admins, or not at all.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PatientRecord {
    pub patient_name: Option<String>,
    pub patient_id: Option<String>,
    pub issuer_of_patient_id: Option<String>,
    pub patient_birth_date: Option<String>,
    pub patient_sex: Option<String>,
    pub accession_number: Option<String>,
    pub study_date: Option<String>,
    pub study_description: Option<String>,
    pub institution_name: Option<String>,
    pub referring_physician_name: Option<String>,
}

impl PatientRecord {
    fn read(object: &InMemDicomObject) -> PatientRecord {
        PatientRecord {
            patient_name: text(object, tags::PATIENT_NAME),
            patient_id: text(object, tags::PATIENT_ID),
            issuer_of_patient_id: text(object, tags::ISSUER_OF_PATIENT_ID),
            patient_birth_date: text(object, tags::PATIENT_BIRTH_DATE),
            patient_sex: text(object, tags::PATIENT_SEX),
            accession_number: text(object, tags::ACCESSION_NUMBER),
            study_date: text(object, tags::STUDY_DATE),
            study_description: text(object, tags::STUDY_DESCRIPTION),
            institution_name: text(object, tags::INSTITUTION_NAME),
            referring_physician_name: text(object, tags::REFERRING_PHYSICIAN_NAME),
        }
    }
}

/// One series of an import, its planes not yet sorted.
pub(crate) struct Series {
    pub identity: SeriesIdentity,
    /// As its first file gives it.
    pub patient: PatientRecord,
    pub planes: Vec<Plane>,
    pub pixels: PixelFormat,
    /// Slice spacing when the series has a single plane (SpacingBetweenSlices, else SliceThickness).
    pub single_spacing: f64,
}

impl Series {
    /// The series as a person picks it from a list.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} ({} {:?}, {} images)",
            self.identity.series_instance_uid,
            self.identity.modality,
            self.identity.series_description,
            self.planes.len()
        )
    }
}

/// Media Storage Directory (a DICOMDIR): an index of files, not an image.
const DICOMDIR_CLASS: &str = "1.2.840.10008.1.3.10";

/// Reads every file's header and groups the images into series, in SeriesNumber order. A file
/// that is not DICOM, or an image seglab cannot decode, refuses the whole import with its name;
/// DICOM objects without pixels (a DICOMDIR, reports) are passed over.
pub(crate) fn read_series(files: &[SourceFile]) -> Result<Vec<Series>, String> {
    let mut by_uid: BTreeMap<String, Series> = BTreeMap::new();
    for (index, file) in files.iter().enumerate() {
        let object = OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(&file.path)
            .map_err(|e| format!("{} is not a DICOM file ({e})", file.name))?;
        let sop_class_uid = text(&object, tags::SOP_CLASS_UID).unwrap_or_default();
        if sop_class_uid == DICOMDIR_CLASS || object.get(tags::ROWS).is_none() {
            continue;
        }
        let fail = |what: String| format!("{}: {what}", file.name);
        let uid = object.meta().transfer_syntax().trim_end_matches('\0').trim().to_string();
        let syntax = TransferSyntaxRegistry.get(&uid).ok_or_else(|| fail(format!("unknown transfer syntax {uid}")))?;
        if !syntax.can_decode_all() {
            return Err(fail(format!("transfer syntax {} ({uid}) cannot be decoded by seglab", syntax.name())));
        }
        let (planes, pixels) = planes_of(&object, index).map_err(fail)?;
        let required = |tag: Tag, name: &str| text(&object, tag).ok_or_else(|| fail(format!("{name} is missing")));
        let identity = SeriesIdentity {
            study_instance_uid: required(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?,
            series_instance_uid: required(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
            frame_of_reference_uid: text(&object, tags::FRAME_OF_REFERENCE_UID),
            sop_class_uid,
            modality: text(&object, tags::MODALITY).unwrap_or_else(|| "OT".into()),
            series_description: text(&object, tags::SERIES_DESCRIPTION).unwrap_or_default(),
            series_number: integer(&object, tags::SERIES_NUMBER),
            window: window(&object),
        };
        let single_spacing = thickness(&object)
            .or_else(|| functional_group(&object, None, tags::PIXEL_MEASURES_SEQUENCE).and_then(thickness))
            .unwrap_or(1.0);
        match by_uid.get_mut(&identity.series_instance_uid) {
            Some(series) => {
                if series.pixels != pixels {
                    return Err(fail(format!(
                        "the series mixes sample formats ({} and {} bits allocated, signed {} and {})",
                        series.pixels.bits_allocated, pixels.bits_allocated, series.pixels.signed, pixels.signed
                    )));
                }
                series.planes.extend(planes);
            }
            None => {
                let patient = PatientRecord::read(&object);
                let series = Series { identity, patient, planes, pixels, single_spacing };
                by_uid.insert(series.identity.series_instance_uid.clone(), series);
            }
        }
    }
    let mut series: Vec<Series> = by_uid.into_values().collect();
    series.sort_by_key(|s| s.identity.series_number);
    Ok(series)
}

/// The image planes of one file, and how it stores samples.
fn planes_of(object: &InMemDicomObject, file: usize) -> Result<(Vec<Plane>, PixelFormat), String> {
    let samples = integer(object, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let photometric = text(object, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    if samples != 1 || !photometric.starts_with("MONOCHROME") {
        return Err(format!(
            "it holds {photometric} images with {samples} samples per pixel; only greyscale (MONOCHROME1/2) images are volumes"
        ));
    }
    let bits_allocated = integer(object, tags::BITS_ALLOCATED).unwrap_or(0);
    if bits_allocated != 8 && bits_allocated != 16 {
        return Err(format!("it stores {bits_allocated} bits per sample; only 8 and 16 are supported"));
    }
    let pixels = PixelFormat {
        bits_allocated: bits_allocated as u16,
        signed: integer(object, tags::PIXEL_REPRESENTATION) == Some(1),
    };
    let rows = positive(object, tags::ROWS, "Rows")?;
    let columns = positive(object, tags::COLUMNS, "Columns")?;
    let sop_instance_uid = text(object, tags::SOP_INSTANCE_UID).ok_or("SOPInstanceUID is missing")?;
    let top_rescale = rescale(object);
    let per_frame = object.get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|e| e.items());
    let Some(per_frame) = per_frame else {
        if integer(object, tags::NUMBER_OF_FRAMES).unwrap_or(1) > 1 {
            return Err("it holds several frames without per-frame positions (functional groups)".into());
        }
        let plane = Plane {
            file,
            frame: 0,
            sop_instance_uid,
            rows,
            columns,
            position: three(object, tags::IMAGE_POSITION_PATIENT, "ImagePositionPatient")?,
            orientation: six(object, tags::IMAGE_ORIENTATION_PATIENT)?,
            pixel_spacing: two(object, tags::PIXEL_SPACING)?,
            rescale: top_rescale.unwrap_or((1.0, 0.0)),
        };
        return Ok((vec![plane], pixels));
    };
    let frames = integer(object, tags::NUMBER_OF_FRAMES).unwrap_or(0);
    if frames != per_frame.len() as i64 {
        return Err(format!("NumberOfFrames is {frames} but {} frames are described", per_frame.len()));
    }
    let planes = per_frame
        .iter()
        .enumerate()
        .map(|(frame, item)| {
            let group = |tag| functional_group(object, Some(item), tag).ok_or(tag);
            let missing = |tag: Tag| format!("frame {} has no {tag} functional group", frame + 1);
            Ok(Plane {
                file,
                frame: frame as u32,
                sop_instance_uid: sop_instance_uid.clone(),
                rows,
                columns,
                position: three(
                    group(tags::PLANE_POSITION_SEQUENCE).map_err(missing)?,
                    tags::IMAGE_POSITION_PATIENT,
                    "ImagePositionPatient",
                )?,
                orientation: six(
                    group(tags::PLANE_ORIENTATION_SEQUENCE).map_err(missing)?,
                    tags::IMAGE_ORIENTATION_PATIENT,
                )?,
                pixel_spacing: two(group(tags::PIXEL_MEASURES_SEQUENCE).map_err(missing)?, tags::PIXEL_SPACING)?,
                rescale: group(tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE)
                    .ok()
                    .and_then(rescale)
                    .or(top_rescale)
                    .unwrap_or((1.0, 0.0)),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok((planes, pixels))
}

/// A functional group's first item: the frame's own, else the shared one.
pub(super) fn functional_group<'a>(
    object: &'a InMemDicomObject,
    frame: Option<&'a InMemDicomObject>,
    tag: Tag,
) -> Option<&'a InMemDicomObject> {
    let in_item = |item: &'a InMemDicomObject| item.get(tag).and_then(|e| e.items()).and_then(|items| items.first());
    frame.and_then(in_item).or_else(|| {
        object
            .get(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)
            .and_then(|e| e.items())
            .and_then(|items| items.first())
            .and_then(in_item)
    })
}

fn thickness(measures: &InMemDicomObject) -> Option<f64> {
    [tags::SPACING_BETWEEN_SLICES, tags::SLICE_THICKNESS]
        .into_iter()
        .find_map(|tag| floats(measures, tag).and_then(|v| v.first().copied()).filter(|s| *s > 0.0))
}

fn rescale(object: &InMemDicomObject) -> Option<(f64, f64)> {
    let slope = floats(object, tags::RESCALE_SLOPE).and_then(|v| v.first().copied());
    let intercept = floats(object, tags::RESCALE_INTERCEPT).and_then(|v| v.first().copied());
    (slope.is_some() || intercept.is_some()).then(|| (slope.unwrap_or(1.0), intercept.unwrap_or(0.0)))
}

fn window(object: &InMemDicomObject) -> Option<(f64, f64)> {
    let source = functional_group(object, None, tags::FRAME_VOILUT_SEQUENCE).unwrap_or(object);
    let center = floats(source, tags::WINDOW_CENTER)?.first().copied()?;
    let width = floats(source, tags::WINDOW_WIDTH)?.first().copied()?;
    (width > 0.0).then_some((center, width))
}

pub(super) fn text(object: &InMemDicomObject, tag: Tag) -> Option<String> {
    let value = object.get(tag)?.to_str().ok()?;
    let value = value.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!value.is_empty()).then(|| value.to_string())
}

pub(super) fn integer(object: &InMemDicomObject, tag: Tag) -> Option<i64> {
    object.get(tag)?.to_int::<i64>().ok()
}

pub(super) fn floats(object: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    object.get(tag)?.to_multi_float64().ok().filter(|v| v.iter().all(|x| x.is_finite()))
}

fn positive(object: &InMemDicomObject, tag: Tag, name: &str) -> Result<u32, String> {
    integer(object, tag)
        .filter(|v| (1..=65535).contains(v))
        .map(|v| v as u32)
        .ok_or_else(|| format!("{name} is missing or zero"))
}

pub(super) fn exactly<const N: usize>(object: &InMemDicomObject, tag: Tag, name: &str) -> Result<[f64; N], String> {
    let values = floats(object, tag).ok_or_else(|| format!("{name} is missing"))?;
    values.try_into().map_err(|values: Vec<f64>| format!("{name} has {} values, not {N}", values.len()))
}

pub(super) fn three(object: &InMemDicomObject, tag: Tag, name: &str) -> Result<[f64; 3], String> {
    exactly(object, tag, name)
}

pub(super) fn six(object: &InMemDicomObject, tag: Tag) -> Result<[f64; 6], String> {
    exactly(object, tag, "ImageOrientationPatient")
}

fn two(object: &InMemDicomObject, tag: Tag) -> Result<[f64; 2], String> {
    let spacing: [f64; 2] = exactly(object, tag, "PixelSpacing")?;
    if spacing.iter().any(|s| *s <= 0.0) {
        return Err(format!("PixelSpacing {spacing:?} is not positive"));
    }
    Ok(spacing)
}
