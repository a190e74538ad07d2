//! DICOM out: a mask version of a case imported from DICOM as a binary Segmentation object
//! (PS3.3 A.51), one segment per label present, one frame per segment and slice that holds any
//! of it, each frame placed at its source slice and referencing it.
//!
//! The object is a pure function of the mask and the case: its UIDs derive from the case and
//! the mask version, its dates from the version's save, so writing it twice gives the same bytes
//! (and a PACS receiving it twice keeps one instance).

use std::borrow::Cow;

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use sha2::{Digest, Sha256};

use super::headers::SeriesIdentity;
use super::{SeriesGeometry, SourceImage};
use crate::api::ConceptCode;
use crate::display::UtcTime;
use crate::server::dicomweb::StudyMatch;

/// A coded concept: value, scheme, meaning (PS3.3 8.8).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Code {
    pub value: Cow<'static, str>,
    pub scheme: Cow<'static, str>,
    pub meaning: Cow<'static, str>,
}

const fn sct(value: &'static str, meaning: &'static str) -> Code {
    Code { value: Cow::Borrowed(value), scheme: Cow::Borrowed("SCT"), meaning: Cow::Borrowed(meaning) }
}

const fn dcm(value: &'static str, meaning: &'static str) -> Code {
    Code { value: Cow::Borrowed(value), scheme: Cow::Borrowed("DCM"), meaning: Cow::Borrowed(meaning) }
}

const ANATOMICAL_STRUCTURE: Code = sct("123037004", "Anatomical Structure");
const ALTERED_STRUCTURE: Code = sct("49755003", "Morphologically Altered Structure");
const TISSUE: Code = sct("85756007", "Tissue");

/// The SNOMED CT category and type of a label, from its name: common structures by name, a
/// generic "Tissue" otherwise (DICOM CID 7150 and 7151).
pub(crate) fn codes_for(name: &str) -> (Code, Code) {
    let name = name.to_lowercase();
    let anatomy = [
        ("liver", sct("10200004", "Liver")),
        ("kidney", sct("64033007", "Kidney")),
        ("spleen", sct("78961009", "Spleen")),
        ("pancreas", sct("15776009", "Pancreas")),
        ("lung", sct("39607008", "Lung")),
        ("heart", sct("80891009", "Heart")),
        ("aorta", sct("15825003", "Aorta")),
        ("bladder", sct("89837001", "Urinary bladder")),
        ("prostate", sct("41216001", "Prostate")),
        ("ventricle", sct("35764002", "Cerebral ventricle")),
        ("brain", sct("12738006", "Brain")),
        ("bone", sct("272673000", "Bone")),
        ("vessel", sct("59820001", "Blood vessel")),
    ];
    let altered = [
        ("tumour", sct("108369006", "Neoplasm")),
        ("tumor", sct("108369006", "Neoplasm")),
        ("neoplasm", sct("108369006", "Neoplasm")),
        ("lesion", sct("52988006", "Lesion")),
    ];
    if let Some((_, code)) = altered.iter().find(|(word, _)| name.contains(word)) {
        return (ALTERED_STRUCTURE, code.clone());
    }
    if let Some((_, code)) = anatomy.iter().find(|(word, _)| name.contains(word)) {
        return (ANATOMICAL_STRUCTURE, code.clone());
    }
    (TISSUE, TISSUE)
}

/// A segment's category and type: as its label codes them, else from its name. A given type
/// takes the label's name as its meaning; a given category its usual meaning when it is one of
/// the three above.
fn segment_codes(segment: &Segment) -> (Code, Code) {
    let (category, kind) = codes_for(&segment.label);
    let given = |code: &ConceptCode, meaning: String| Code {
        value: Cow::Owned(code.value.clone()),
        scheme: Cow::Owned(code.scheme.clone()),
        meaning: Cow::Owned(meaning),
    };
    let category = match &segment.category {
        Some(code) => {
            let known = [ANATOMICAL_STRUCTURE, ALTERED_STRUCTURE, TISSUE]
                .into_iter()
                .find(|known| known.scheme == code.scheme.as_str() && known.value == code.value.as_str());
            known.unwrap_or_else(|| given(code, format!("{}:{}", code.scheme, code.value)))
        }
        None => category,
    };
    let kind = match &segment.code {
        Some(code) => given(code, segment.label.clone()),
        None => kind,
    };
    (category, kind)
}

/// One label of the mask as a segment.
pub(crate) struct Segment {
    pub value: u8,
    pub label: String,
    /// `#rrggbb`.
    pub color: String,
    /// The label's own codes, where its import gave them.
    pub code: Option<ConceptCode>,
    pub category: Option<ConceptCode>,
}

/// What a Segmentation of a case is written from.
pub(crate) struct SegSource<'a> {
    pub identity: &'a SeriesIdentity,
    pub source_images: &'a [SourceImage],
    pub geometry: &'a SeriesGeometry,
    /// Ties the object's UIDs to the case (its series) and the mask version (its instance).
    pub case_key: &'a str,
    pub mask_key: &'a str,
    /// When the mask version was saved (milliseconds since the epoch): the content date.
    pub saved_at_ms: i64,
    /// The study as the PACS holds it, for a copy going back there; `None` for a
    /// de-identified copy (a download), whose patient and study attributes stay empty.
    pub study: Option<&'a StudyMatch>,
}

/// The Series and SOP Instance UIDs of a case's segmentation of one mask version: derived
/// from the case and the version, so the same version always has the same UIDs (and a PACS
/// receiving it twice keeps one instance); a de-identified copy has its own (PS3.15).
pub(crate) fn segmentation_uids(case_key: &str, mask_key: &str, identified: bool) -> (String, String) {
    let copy = if identified { "" } else { " de-identified" };
    (
        derived_uid(&format!("seglab segmentation series {case_key}{copy}")),
        derived_uid(&format!("seglab segmentation {mask_key}{copy}")),
    )
}

/// The Segmentation of `labels` (one byte per voxel, i fastest, volume `dims` in the order of
/// `source.source_images`) as a DICOM Part 10 file; `None` when no segment has a voxel.
pub(crate) fn write_seg(
    source: &SegSource<'_>,
    segments: &[Segment],
    dims: [u32; 3],
    labels: &[u8],
) -> Result<Option<Vec<u8>>, String> {
    let [columns, rows, slices] = dims.map(|d| d as usize);
    if source.source_images.len() != slices || labels.len() != columns * rows * slices {
        return Err(format!(
            "the mask ({columns}×{rows}×{slices}) does not match the {} source images",
            source.source_images.len()
        ));
    }
    let plane = columns * rows;
    // Frames: per segment, each slice holding any of it, in slice order.
    let present: Vec<&Segment> = segments.iter().filter(|segment| labels.contains(&segment.value)).collect();
    let mut frames: Vec<(u16, usize)> = Vec::new();
    for (number, segment) in present.iter().enumerate() {
        for k in 0..slices {
            if labels[k * plane..(k + 1) * plane].contains(&segment.value) {
                frames.push((number as u16 + 1, k));
            }
        }
    }
    if frames.is_empty() {
        return Ok(None);
    }
    // Frames of one bit per pixel, packed least significant bit first, end to end.
    let mut pixels = vec![0u8; (frames.len() * plane).div_ceil(8).next_multiple_of(2)];
    for (index, &(number, k)) in frames.iter().enumerate() {
        let value = present[usize::from(number) - 1].value;
        let first_bit = index * plane;
        for (offset, _) in labels[k * plane..(k + 1) * plane].iter().enumerate().filter(|(_, &v)| v == value) {
            let bit = first_bit + offset;
            pixels[bit / 8] |= 1 << (bit % 8);
        }
    }

    let identity = source.identity;
    let (series_uid, instance_uid) = segmentation_uids(source.case_key, source.mask_key, source.study.is_some());
    let organization_uid = derived_uid(&format!("seglab dimensions {}", source.case_key));
    let (date, time) = date_time(source.saved_at_ms);
    let multi_frame = source.source_images.iter().any(|image| image.frame.is_some());

    let mut seg = InMemDicomObject::new_empty();
    let text = |object: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str| {
        object.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
    };
    text(&mut seg, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    text(&mut seg, tags::SOP_CLASS_UID, VR::UI, uids::SEGMENTATION_STORAGE);
    text(&mut seg, tags::SOP_INSTANCE_UID, VR::UI, &instance_uid);
    text(&mut seg, tags::STUDY_INSTANCE_UID, VR::UI, &identity.study_instance_uid);
    text(&mut seg, tags::SERIES_INSTANCE_UID, VR::UI, &series_uid);
    text(&mut seg, tags::MODALITY, VR::CS, "SEG");
    text(&mut seg, tags::SERIES_NUMBER, VR::IS, "901");
    text(&mut seg, tags::SERIES_DESCRIPTION, VR::LO, "seglab segmentation");
    text(&mut seg, tags::INSTANCE_NUMBER, VR::IS, "1");
    text(&mut seg, tags::CONTENT_DATE, VR::DA, &date);
    text(&mut seg, tags::CONTENT_TIME, VR::TM, &time);
    text(&mut seg, tags::SERIES_DATE, VR::DA, &date);
    text(&mut seg, tags::SERIES_TIME, VR::TM, &time);
    // The patient and study modules: as the PACS holds them for a copy going back there,
    // present and empty (type 2) in a de-identified copy.
    let study = source.study.cloned().unwrap_or_default();
    for (tag, vr, value) in [
        (tags::PATIENT_NAME, VR::PN, &study.patient_name),
        (tags::PATIENT_ID, VR::LO, &study.patient_id),
        (tags::ISSUER_OF_PATIENT_ID, VR::LO, &study.issuer_of_patient_id),
        (tags::PATIENT_BIRTH_DATE, VR::DA, &study.patient_birth_date),
        (tags::PATIENT_SEX, VR::CS, &study.patient_sex),
        (tags::STUDY_DATE, VR::DA, &study.study_date),
        (tags::STUDY_TIME, VR::TM, &study.study_time),
        (tags::REFERRING_PHYSICIAN_NAME, VR::PN, &study.referring_physician_name),
        (tags::STUDY_ID, VR::SH, &study.study_id),
        (tags::ACCESSION_NUMBER, VR::SH, &study.accession_number),
        (tags::POSITION_REFERENCE_INDICATOR, VR::LO, &None),
        (tags::CONTENT_CREATOR_NAME, VR::PN, &None),
    ] {
        match value {
            Some(value) => text(&mut seg, tag, vr, value),
            None if tag == tags::ISSUER_OF_PATIENT_ID => {}
            None => {
                seg.put(DataElement::new(tag, vr, PrimitiveValue::Empty));
            }
        }
    }
    if let Some(frame_of_reference) = &identity.frame_of_reference_uid {
        text(&mut seg, tags::FRAME_OF_REFERENCE_UID, VR::UI, frame_of_reference);
    }
    text(&mut seg, tags::MANUFACTURER, VR::LO, "seglab");
    text(&mut seg, tags::MANUFACTURER_MODEL_NAME, VR::LO, "seglab");
    text(&mut seg, tags::DEVICE_SERIAL_NUMBER, VR::LO, "1");
    text(&mut seg, tags::SOFTWARE_VERSIONS, VR::LO, env!("CARGO_PKG_VERSION"));
    text(&mut seg, tags::IMAGE_TYPE, VR::CS, "DERIVED\\PRIMARY");
    text(&mut seg, tags::CONTENT_LABEL, VR::CS, "SEGLAB");
    text(&mut seg, tags::CONTENT_DESCRIPTION, VR::LO, "Mask version saved in seglab");
    text(&mut seg, tags::SEGMENTATION_TYPE, VR::CS, "BINARY");
    text(&mut seg, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    text(&mut seg, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
    text(&mut seg, tags::NUMBER_OF_FRAMES, VR::IS, &frames.len().to_string());
    for (tag, value) in [
        (tags::SAMPLES_PER_PIXEL, 1u16),
        (tags::ROWS, rows as u16),
        (tags::COLUMNS, columns as u16),
        (tags::BITS_ALLOCATED, 1),
        (tags::BITS_STORED, 1),
        (tags::HIGH_BIT, 0),
        (tags::PIXEL_REPRESENTATION, 0),
    ] {
        seg.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
    }

    seg.put(sequence(
        tags::SEGMENT_SEQUENCE,
        present
            .iter()
            .enumerate()
            .map(|(index, segment)| {
                let (category, kind) = segment_codes(segment);
                let mut item = InMemDicomObject::new_empty();
                item.put(DataElement::new(tags::SEGMENT_NUMBER, VR::US, PrimitiveValue::from(index as u16 + 1)));
                text(&mut item, tags::SEGMENT_LABEL, VR::LO, &segment.label);
                text(&mut item, tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "MANUAL");
                item.put(sequence(tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE, vec![code_item(&category)]));
                item.put(sequence(tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE, vec![code_item(&kind)]));
                item.put(DataElement::new(
                    tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE,
                    VR::US,
                    PrimitiveValue::U16(cie_lab(&segment.color)[..].into()),
                ));
                item
            })
            .collect(),
    ));

    let mut organization = InMemDicomObject::new_empty();
    text(&mut organization, tags::DIMENSION_ORGANIZATION_UID, VR::UI, &organization_uid);
    seg.put(sequence(tags::DIMENSION_ORGANIZATION_SEQUENCE, vec![organization]));
    text(&mut seg, tags::DIMENSION_ORGANIZATION_TYPE, VR::CS, "3D");
    let dimension = |index: Tag, group: Tag, label: &str| {
        let mut item = InMemDicomObject::new_empty();
        item.put(DataElement::new(tags::DIMENSION_INDEX_POINTER, VR::AT, PrimitiveValue::Tags([index][..].into())));
        item.put(DataElement::new(tags::FUNCTIONAL_GROUP_POINTER, VR::AT, PrimitiveValue::Tags([group][..].into())));
        item.put(DataElement::new(
            tags::DIMENSION_ORGANIZATION_UID,
            VR::UI,
            PrimitiveValue::from(organization_uid.as_str()),
        ));
        item.put(DataElement::new(tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, PrimitiveValue::from(label)));
        item
    };
    seg.put(sequence(
        tags::DIMENSION_INDEX_SEQUENCE,
        vec![
            dimension(
                tags::REFERENCED_SEGMENT_NUMBER,
                tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                "ReferencedSegmentNumber",
            ),
            dimension(tags::IMAGE_POSITION_PATIENT, tags::PLANE_POSITION_SEQUENCE, "ImagePositionPatient"),
        ],
    ));

    let geometry = source.geometry;
    let mut measures = InMemDicomObject::new_empty();
    text(&mut measures, tags::PIXEL_SPACING, VR::DS, &decimals(&geometry.pixel_spacing));
    text(&mut measures, tags::SLICE_THICKNESS, VR::DS, &decimals(&[geometry.slice_spacing]));
    text(&mut measures, tags::SPACING_BETWEEN_SLICES, VR::DS, &decimals(&[geometry.slice_spacing]));
    let mut orientation = InMemDicomObject::new_empty();
    text(&mut orientation, tags::IMAGE_ORIENTATION_PATIENT, VR::DS, &decimals(&geometry.orientation));
    let mut shared = InMemDicomObject::new_empty();
    shared.put(sequence(tags::PIXEL_MEASURES_SEQUENCE, vec![measures]));
    shared.put(sequence(tags::PLANE_ORIENTATION_SEQUENCE, vec![orientation]));
    seg.put(sequence(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared]));

    let source_reference = |image: &SourceImage| {
        let mut item = InMemDicomObject::new_empty();
        text(&mut item, tags::REFERENCED_SOP_CLASS_UID, VR::UI, &identity.sop_class_uid);
        text(&mut item, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &image.sop_instance_uid);
        if let Some(frame) = image.frame.filter(|_| multi_frame) {
            text(&mut item, tags::REFERENCED_FRAME_NUMBER, VR::IS, &frame.to_string());
        }
        item
    };
    let per_frame = frames
        .iter()
        .map(|&(number, k)| {
            let image = &source.source_images[k];
            let mut reference = source_reference(image);
            reference.put(sequence(
                tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
                vec![code_item(&dcm("121322", "Source image for image processing operation"))],
            ));
            let mut derivation = InMemDicomObject::new_empty();
            derivation.put(sequence(tags::DERIVATION_CODE_SEQUENCE, vec![code_item(&dcm("113076", "Segmentation"))]));
            // Each frame lies on its source image's pixel grid.
            text(&mut reference, tags::SPATIAL_LOCATIONS_PRESERVED, VR::CS, "YES");
            derivation.put(sequence(tags::SOURCE_IMAGE_SEQUENCE, vec![reference]));
            let mut content = InMemDicomObject::new_empty();
            content.put(DataElement::new(
                tags::DIMENSION_INDEX_VALUES,
                VR::UL,
                PrimitiveValue::U32([u32::from(number), k as u32 + 1].into()),
            ));
            let mut position = InMemDicomObject::new_empty();
            text(&mut position, tags::IMAGE_POSITION_PATIENT, VR::DS, &decimals(&image.position));
            let mut identification = InMemDicomObject::new_empty();
            identification.put(DataElement::new(tags::REFERENCED_SEGMENT_NUMBER, VR::US, PrimitiveValue::from(number)));
            let mut frame = InMemDicomObject::new_empty();
            frame.put(sequence(tags::DERIVATION_IMAGE_SEQUENCE, vec![derivation]));
            frame.put(sequence(tags::FRAME_CONTENT_SEQUENCE, vec![content]));
            frame.put(sequence(tags::PLANE_POSITION_SEQUENCE, vec![position]));
            frame.put(sequence(tags::SEGMENT_IDENTIFICATION_SEQUENCE, vec![identification]));
            frame
        })
        .collect();
    seg.put(sequence(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame));

    // Every source instance once, in slice order.
    let mut instances: Vec<&SourceImage> = Vec::new();
    for image in source.source_images {
        if !instances.iter().any(|seen| seen.sop_instance_uid == image.sop_instance_uid) {
            instances.push(image);
        }
    }
    let mut referenced_series = InMemDicomObject::new_empty();
    text(&mut referenced_series, tags::SERIES_INSTANCE_UID, VR::UI, &identity.series_instance_uid);
    referenced_series.put(sequence(
        tags::REFERENCED_INSTANCE_SEQUENCE,
        instances
            .iter()
            .map(|image| {
                let mut item = InMemDicomObject::new_empty();
                text(&mut item, tags::REFERENCED_SOP_CLASS_UID, VR::UI, &identity.sop_class_uid);
                text(&mut item, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &image.sop_instance_uid);
                item
            })
            .collect(),
    ));
    seg.put(sequence(tags::REFERENCED_SERIES_SEQUENCE, vec![referenced_series]));
    seg.put(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(pixels)));

    let file = seg
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .map_err(|e| format!("cannot write the segmentation's meta header: {e}"))?;
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).map_err(|e| format!("cannot write the segmentation: {e}"))?;
    Ok(Some(bytes))
}

fn sequence(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

fn code_item(code: &Code) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    item.put(DataElement::new(tags::CODE_VALUE, VR::SH, PrimitiveValue::from(code.value.as_ref())));
    item.put(DataElement::new(tags::CODING_SCHEME_DESIGNATOR, VR::SH, PrimitiveValue::from(code.scheme.as_ref())));
    item.put(DataElement::new(tags::CODE_MEANING, VR::LO, PrimitiveValue::from(code.meaning.as_ref())));
    item
}

/// A UID under the UUID-derived root `2.25` (PS3.5 B.2), from the first 16 bytes of a hash.
fn derived_uid(seed: &str) -> String {
    let digest = Sha256::digest(seed.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    format!("2.25.{}", u128::from_be_bytes(bytes))
}

/// Decimal strings of at most 16 characters (DS), joined by backslashes.
fn decimals(values: &[f64]) -> String {
    values
        .iter()
        .map(|value| {
            let mut text = format!("{value:.6}");
            while text.contains('.') && (text.ends_with('0') || text.ends_with('.')) {
                text.pop();
            }
            if text == "-0" {
                text = "0".into();
            }
            text.chars().take(16).collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\\")
}

/// `YYYYMMDD` and `HHMMSS` (UTC) of a time in milliseconds since the epoch.
fn date_time(ms: i64) -> (String, String) {
    let UtcTime { year, month, day, ms_of_day } = UtcTime::of(ms);
    let seconds = ms_of_day / 1000;
    (
        format!("{year:04}{month:02}{day:02}"),
        format!("{:02}{:02}{:02}", seconds / 3600, seconds % 3600 / 60, seconds % 60),
    )
}

/// A `#rrggbb` colour as DICOM's scaled CIELab (PS3.3 C.10.7.1.1): L* 0–100 and a*, b*
/// −128–127 mapped to 0–65535, from sRGB under D65.
fn cie_lab(color: &str) -> [u16; 3] {
    let channel = |index: usize| {
        let value = u8::from_str_radix(color.get(1 + 2 * index..3 + 2 * index).unwrap_or("80"), 16).unwrap_or(128);
        let c = f64::from(value) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let (r, g, b) = (channel(0), channel(1), channel(2));
    let x = (0.412_456_4 * r + 0.357_576_1 * g + 0.180_437_5 * b) / 0.950_47;
    let y = 0.212_672_9 * r + 0.715_152_2 * g + 0.072_175 * b;
    let z = (0.019_333_9 * r + 0.119_192 * g + 0.950_304_1 * b) / 1.088_83;
    let f = |t: f64| if t > 216.0 / 24_389.0 { t.cbrt() } else { (24_389.0 / 27.0 * t + 16.0) / 116.0 };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    let (l, a, b) = (116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz));
    [
        (l / 100.0 * 65535.0).round().clamp(0.0, 65535.0) as u16,
        ((a + 128.0) / 255.0 * 65535.0).round().clamp(0.0, 65535.0) as u16,
        ((b + 128.0) / 255.0 * 65535.0).round().clamp(0.0, 65535.0) as u16,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_colours_and_decimals_are_written_as_dicom_reads_them() {
        assert_eq!(date_time(0), ("19700101".into(), "000000".into()));
        assert_eq!(date_time(1_796_300_000_000), ("20261203".into(), "121320".into()));
        assert_eq!(cie_lab("#ffffff"), [65535, 32896, 32896]);
        assert_eq!(cie_lab("#000000")[0], 0);
        assert_eq!(decimals(&[0.5, -0.0, 1.0 / 3.0, -123.25]), "0.5\\0\\0.333333\\-123.25");
        assert!(derived_uid("x").starts_with("2.25.") && derived_uid("x").len() <= 64);
    }

    #[test]
    fn a_label_s_own_codes_come_before_those_of_its_name() {
        let code = |text: &str| ConceptCode::parse(text);
        let segment = |label: &str, category: Option<&str>, kind: Option<&str>| Segment {
            value: 1,
            label: label.into(),
            color: "#ff0000".into(),
            code: kind.and_then(code),
            category: category.and_then(code),
        };
        let (category, kind) = segment_codes(&segment("left kidney", None, Some("SCT:64033007")));
        assert_eq!(
            (category, kind.value.as_ref(), kind.meaning.as_ref()),
            (ANATOMICAL_STRUCTURE, "64033007", "left kidney")
        );
        let (category, kind) = segment_codes(&segment("mass", Some("SCT:49755003"), Some("SCT:4147007")));
        assert_eq!((category, kind.value.as_ref()), (ALTERED_STRUCTURE, "4147007"));
        assert_eq!(segment_codes(&segment("organ", None, None)), (TISSUE, TISSUE));
    }

    #[test]
    fn labels_get_codes_by_name() {
        assert_eq!(codes_for("Liver").1.value, "10200004");
        assert_eq!(codes_for("liver tumour").0, ALTERED_STRUCTURE);
        assert_eq!(codes_for("organ"), (TISSUE, TISSUE));
    }
}
