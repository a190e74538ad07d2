//! Importing DICOM series as cases: the files are converted off the async threads (see
//! `crate::server::dicom`), then each chosen series is imported as a case by `cases`, with its
//! identity (study, series, frame of reference, modality, source images) recorded beside it.
//! And a Segmentation made elsewhere on such a series, saved as the case's next mask version.

use std::path::Path;

use base64::Engine;

use super::access::{CaseAccess, ReadPatient, Save};
use super::audit::{self, AuditAction, AuditEvent};
use super::cases::{self, CaseFile, DicomSource, NewCase};
use super::idempotency::IdempotencyKey;
use super::labels::{self, SaveOutcome};
use super::mask_versions;
use crate::api::{CaseSummary, MaskRef, SaveLabelRequest};
use crate::edits::MaskEdits;
use crate::server::config::IdentifierPolicy;
use crate::server::dicom::headers::{PatientRecord, SeriesIdentity, SourceFile};
use crate::server::dicom::pseudonym::pseudonym;
use crate::server::dicom::seg_reader::{self, SegTarget};
use crate::server::dicom::{self, SeriesChoice};
use crate::server::error::AppError;
use crate::server::state::AppState;
use crate::server::telemetry;

/// A DICOM import as it arrives.
pub struct DicomImport {
    /// DICOM files and zips of them.
    pub files: Vec<SourceFile>,
    pub series: SeriesChoice,
    /// The case's name; by default the series' modality and description. With several series,
    /// each case's name is this followed by its series' description.
    pub name: Option<String>,
    pub labels: Vec<(u8, String)>,
}

/// Converts and imports the chosen series, one case each, in SeriesNumber order; a series
/// imported before answers with its case. A refusal (422, naming the file or series and the
/// problem) comes before anything is stored.
pub async fn import_dicom(
    state: &AppState,
    user_id: Option<&str>,
    import: DicomImport,
) -> Result<Vec<CaseSummary>, AppError> {
    let result = convert_and_import(state, user_id, import).await;
    metrics::counter!("seglab_imports_total", "format" => "dicom", "outcome" => telemetry::outcome(&result))
        .increment(1);
    result
}

async fn convert_and_import(
    state: &AppState,
    user_id: Option<&str>,
    import: DicomImport,
) -> Result<Vec<CaseSummary>, AppError> {
    let DicomImport { files, series, name, labels } = import;
    let max_voxels = state.config.max_volume_voxels;
    let scratch = state.config.scratch_dir();
    let converted = {
        let _slot = state.imports.acquire().await.map_err(AppError::internal)?;
        tokio::task::spawn_blocking(move || dicom::convert(files, &series, max_voxels, &scratch))
            .await
            .map_err(AppError::internal)?
            .map_err(AppError::Unprocessable)?
    };
    let key = pseudonym_key(state).await?;
    let keep_identifiers = state.config.dicom_identifiers == IdentifierPolicy::Keep;
    let several = converted.len() > 1;
    let mut cases = Vec::with_capacity(converted.len());
    for series in converted {
        let name = match &name {
            Some(name) if several => format!("{name} {}", describe(&series.identity)),
            Some(name) => name.clone(),
            None => describe(&series.identity),
        };
        let series_uid = series.identity.series_instance_uid.clone();
        let new_case = NewCase {
            name,
            image: CaseFile::Path(series.nifti.path().to_path_buf()),
            mask: None,
            labels: labels.clone(),
            dicom: Some(DicomSource {
                pseudonym: pseudonym(&key, &series.patient, &series.identity.study_instance_uid),
                patient: keep_identifiers.then_some(series.patient),
                identity: series.identity,
                source_images: series.source_images,
                geometry: series.geometry,
            }),
        };
        if let Some(existing) = cases::case_of_series(state, &series_uid).await? {
            cases.push(existing);
            continue;
        }
        match cases::import_case(state, user_id, new_case).await {
            Ok(case) => cases.push(case),
            // An import of the same series that committed first: its case is the answer.
            Err(err) => cases.push(cases::case_of_series(state, &series_uid).await?.ok_or(err)?),
        }
    }
    Ok(cases)
}

/// Who the patient of a case imported from DICOM is, for an admin: as the import kept it (all
/// `None` where the deployment keeps no identifiers). Every reading is audited.
pub async fn patient(state: &AppState, access: &CaseAccess<ReadPatient>) -> Result<PatientRecord, AppError> {
    let case_id = access.case_id();
    let record = cases::patient_record(state, case_id).await?.ok_or_else(|| {
        AppError::NotFound(format!("case {case_id} was not imported from DICOM; it has no patient record"))
    })?;
    let mut tx = state.db.pool.begin().await?;
    audit::record(
        &mut tx,
        &state.db,
        AuditEvent {
            action: AuditAction::PatientRead,
            user_id: Some(access.user().id.as_str()),
            case_id: Some(case_id),
            details: serde_json::json!({ "kept": record != PatientRecord::default() }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(record)
}

/// The deployment's pseudonym key: made (random) by the first import, then shared by every
/// instance through the database.
pub(crate) async fn pseudonym_key(state: &AppState) -> Result<Vec<u8>, AppError> {
    let read = || sqlx::query_scalar::<_, String>("SELECT key_hex FROM deployment_keys WHERE name = 'pseudonym'");
    let key = match read().fetch_optional(&state.db.pool).await? {
        Some(key) => key,
        None => {
            // The first import: whichever instance writes first, every one reads that key.
            let fresh = hex::encode(rand::random::<[u8; 32]>());
            sqlx::query(
                "INSERT INTO deployment_keys (name, key_hex) VALUES ('pseudonym', $1) ON CONFLICT (name) DO NOTHING",
            )
            .bind(&fresh)
            .execute(&state.db.pool)
            .await?;
            read().fetch_one(&state.db.pool).await?
        }
    };
    hex::decode(key).map_err(AppError::internal)
}

/// Saves the Segmentation at `seg` (made on the case's series by any tool) as the case's next
/// mask version on `base_mask_ref`: a label save of the voxels where it differs from that
/// version, so it is versioned, audited and once per idempotency key like any save.
pub async fn import_segmentation(
    state: &AppState,
    access: CaseAccess<Save>,
    key: &IdempotencyKey,
    base_mask_ref: &str,
    seg: &Path,
) -> Result<SaveOutcome, AppError> {
    let case_id = access.case_id().clone();
    let (DicomSource { identity, source_images, geometry, .. }, labels) =
        cases::dicom_source(state, &case_id).await?.ok_or_else(|| {
            AppError::Conflict(format!(
                "case {case_id} was not imported from DICOM: a segmentation has no series to lie on"
            ))
        })?;
    let base = MaskRef::parse(base_mask_ref)
        .ok()
        .filter(|base| base.as_str().starts_with(&format!("cases/{case_id}/")))
        .ok_or_else(|| AppError::Conflict(format!("{base_mask_ref:?} is not a mask version of case {case_id}")))?;
    let base_mask = mask_versions::load_mask(state, base.as_str()).await?;
    let seg = seg.to_path_buf();
    let edits = {
        let _slot = state.imports.acquire().await.map_err(AppError::internal)?;
        tokio::task::spawn_blocking(move || {
            let target = SegTarget {
                frame_of_reference_uid: identity.frame_of_reference_uid.as_deref(),
                source_images: &source_images,
                geometry: &geometry,
                dims: base_mask.dims(),
                labels: &labels,
            };
            let read = seg_reader::read_seg(&seg, &target)?;
            Ok::<_, String>(MaskEdits::diff(&base_mask.labels(), &read).encode())
        })
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::Unprocessable)?
    };
    let request = SaveLabelRequest {
        case_id: case_id.to_string(),
        base_mask_ref: base.to_string(),
        edits: base64::engine::general_purpose::STANDARD.encode(edits),
    };
    labels::save_label(state, access, key, &request).await
}

/// `CT Thorax 1.0 B31f`, or `MR series 3` without a description.
fn describe(identity: &SeriesIdentity) -> String {
    let what = match (&identity.series_description, identity.series_number) {
        (description, _) if !description.is_empty() => description.clone(),
        (_, Some(number)) => format!("series {number}"),
        (_, None) => "series".to_string(),
    };
    let name = format!("{} {what}", identity.modality);
    name.chars().take(200).collect()
}
