//! Mask versions of DICOM cases as DICOM Segmentation objects (see `crate::server::dicom::seg`),
//! written on request from the version's voxels and the series recorded at import.

use super::access::{CaseAccess, Read};
use super::cases::{self, DicomSource};
use super::mask_versions;
use crate::api::{ArtifactKind, CaseId, MaskRef};
use crate::server::dicom::seg::{self, SegSource, Segment};
use crate::server::dicomweb::StudyMatch;
use crate::server::error::AppError;
use crate::server::state::AppState;

/// Mask version `cases/{case}/masks/{file}` of a case imported from DICOM, as a binary
/// Segmentation (a DICOM Part 10 file); its file name is the second value.
pub(crate) async fn segmentation(
    state: &AppState,
    access: &CaseAccess<Read>,
    file: &str,
) -> Result<(Vec<u8>, String), AppError> {
    let case_id = access.case_id();
    let mask_ref = MaskRef::parse(&format!("cases/{case_id}/masks/{file}"))
        .map_err(|_| AppError::NotFound(format!("mask version {file} of case {case_id}")))?;
    let bytes = of_version(state, case_id, &mask_ref, None)
        .await?
        .ok_or_else(|| {
            AppError::Conflict(format!(
                "case {case_id} was not imported from DICOM, so it has no source series for a segmentation to reference"
            ))
        })?
        .ok_or_else(|| {
            AppError::Unprocessable("the mask is empty: a segmentation needs at least one labelled voxel".into())
        })?;
    let name = file.trim_end_matches(".nii.gz");
    Ok((bytes, format!("{name}.seg.dcm")))
}

/// The Segmentation of one mask version of `case_id`: `None` when the case was not imported
/// from DICOM, `Some(None)` when the version has no labelled voxel. With `study` (as the PACS
/// holds it), the copy for the PACS; without, a de-identified one. Callers decide access.
pub(crate) async fn of_version(
    state: &AppState,
    case_id: &CaseId,
    mask_ref: &MaskRef,
    study: Option<StudyMatch>,
) -> Result<Option<Option<Vec<u8>>>, AppError> {
    let saved_at: i64 =
        sqlx::query_scalar("SELECT created_at FROM objects WHERE object_ref = $1 AND case_id = $2 AND kind = $3")
            .bind(mask_ref)
            .bind(case_id)
            .bind(ArtifactKind::Mask)
            .fetch_optional(&state.db.pool)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("mask version {mask_ref}")))?;
    let Some((DicomSource { identity, source_images, geometry, .. }, labels)) =
        cases::dicom_source(state, case_id).await?
    else {
        return Ok(None);
    };
    let mask = mask_versions::load_mask(state, mask_ref.as_str()).await?;
    let (case_key, mask_key) = (case_id.to_string(), mask_ref.to_string());
    let _slot = state.imports.acquire().await.map_err(AppError::internal)?;
    let bytes = tokio::task::spawn_blocking(move || {
        let segments: Vec<Segment> = labels
            .into_iter()
            .map(|label| Segment {
                value: label.value,
                label: label.name,
                color: label.color,
                code: label.code,
                category: label.category,
            })
            .collect();
        let source = SegSource {
            identity: &identity,
            source_images: &source_images,
            geometry: &geometry,
            case_key: &case_key,
            mask_key: &mask_key,
            saved_at_ms: saved_at,
            study: study.as_ref(),
        };
        seg::write_seg(&source, &segments, mask.dims(), &mask.labels())
    })
    .await
    .map_err(AppError::internal)?
    .map_err(AppError::internal)?;
    Ok(Some(bytes))
}
