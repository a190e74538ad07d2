//! The hospital's PACS over DICOMweb (`crate::server::dicomweb`): studies searched by what a
//! coordinator knows (a patient's ID or pseudonym, an accession number, a modality, a date) and
//! shown by pseudonym; a series retrieved into scratch and imported as `dicom_import` imports
//! uploads; an approved mask version stored back as a Segmentation that carries the study's
//! patient and study modules as the PACS holds them.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::access::{CaseAccess, SendToPacs};
use super::audit::{self, AuditAction, AuditEvent};
use super::cases::{self, DicomSource};
use super::dicom_export;
use super::dicom_import::{self, DicomImport};
use super::pacs_outbox;
use crate::api::{CaseId, CaseSummary, MaskRef, PacsImport, PacsQuery, PacsQueued, PacsSent, PacsSeries, PacsStudy};
use crate::server::clock::now_ms;
use crate::server::dicom::files::MAX_FILES;
use crate::server::dicom::headers::{PatientRecord, SourceFile};
use crate::server::dicom::pseudonym::pseudonym;
use crate::server::dicom::seg::segmentation_uids;
use crate::server::dicom::SeriesChoice;
use crate::server::dicomweb::{DicomWebClient, PacsError, Retrieval, StudyMatch, StudyQuery, MAX_MATCHES};
use crate::server::error::AppError;
use crate::server::scratch::ScratchDir;
use crate::server::state::AppState;

impl From<PacsError> for AppError {
    fn from(error: PacsError) -> AppError {
        match error {
            PacsError::Unreachable(detail) => AppError::Unavailable { service: "the PACS", detail },
            refused @ PacsError::Refused(_) => AppError::Unprocessable(refused.to_string()),
        }
    }
}

pub(super) fn client(state: &AppState) -> Result<&DicomWebClient, AppError> {
    state.pacs.as_ref().ok_or_else(|| AppError::Conflict("no PACS is configured here (--dicomweb-url)".into()))
}

/// The studies matching `query`, each with its series, patients by pseudonym.
pub async fn search(state: &AppState, query: &PacsQuery) -> Result<Vec<PacsStudy>, AppError> {
    let pacs = client(state)?;
    let given = |value: &Option<String>| value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    let fields = [
        ("patient", &query.patient),
        ("accession", &query.accession),
        ("modality", &query.modality),
        ("date", &query.date),
    ];
    if let Some((name, _)) = fields.iter().find(|(_, value)| value.as_deref().is_some_and(|v| v.len() > 64)) {
        return Err(AppError::BadRequest(format!("`{name}` is longer than 64 characters")));
    }
    if let Some(date) = given(&query.date) {
        let valid = date
            .split('-')
            .all(|part| part.is_empty() || (part.len() == 8 && part.bytes().all(|b| b.is_ascii_digit())));
        if !valid || date.len() > 17 {
            return Err(AppError::BadRequest(format!("date {date:?} should be YYYYMMDD or YYYYMMDD-YYYYMMDD")));
        }
    }
    let mut patient_ids = vec![given(&query.patient)];
    // A pseudonym stands for the PatientIDs seglab kept for it (none where identifiers are not kept).
    if let Some(patient) = given(&query.patient).filter(|p| p.to_uppercase().starts_with("P-")) {
        let kept: Vec<Option<String>> = sqlx::query_scalar(
            "SELECT DISTINCT i.patient_id FROM case_dicom d JOIN case_dicom_identity i ON i.case_id = d.case_id
             WHERE d.pseudonym = $1 AND i.patient_id IS NOT NULL",
        )
        .bind(patient.to_uppercase())
        .fetch_all(&state.db.pool)
        .await?;
        if kept.is_empty() {
            return Ok(Vec::new());
        }
        patient_ids = kept;
    }
    let key = dicom_import::pseudonym_key(state).await?;
    let mut studies = Vec::new();
    for patient_id in patient_ids {
        let study_query = StudyQuery {
            patient_id,
            accession_number: given(&query.accession),
            modality: given(&query.modality).map(|m| m.to_uppercase()),
            study_date: given(&query.date),
            study_instance_uid: None,
        };
        for found in pacs.search_studies(&study_query).await? {
            let series = pacs
                .search_series(&found.study_instance_uid)
                .await?
                .into_iter()
                .map(|s| PacsSeries {
                    series_instance_uid: s.series_instance_uid,
                    modality: s.modality,
                    series_description: s.series_description,
                    series_number: s.series_number,
                    instances: s.instances,
                })
                .collect();
            let patient = PatientRecord {
                patient_id: found.patient_id.clone(),
                issuer_of_patient_id: found.issuer_of_patient_id.clone(),
                ..PatientRecord::default()
            };
            studies.push(PacsStudy {
                pseudonym: pseudonym(&key, &patient, &found.study_instance_uid),
                study_instance_uid: found.study_instance_uid,
                study_date: found.study_date,
                study_description: found.study_description,
                modalities: found.modalities,
                series,
            });
        }
    }
    // A pseudonym may stand for several PatientIDs: the answer stays within one search's cap.
    studies.truncate(MAX_MATCHES);
    Ok(studies)
}

/// The queued sends, newest first (`pacs_outbox::list`).
pub async fn outbox(state: &AppState) -> Result<Vec<PacsQueued>, AppError> {
    pacs_outbox::list(state).await
}

/// Retrieves one series (WADO-RS) into scratch and imports it as `dicom_import::import_dicom`
/// imports an upload: the same checks, bounds and refusals.
pub async fn import(
    state: &AppState,
    user_id: &str,
    request: &PacsImport,
    progress: &Retrieval,
) -> Result<Vec<CaseSummary>, AppError> {
    let pacs = client(state)?;
    // A series imported before answers with its case, without retrieving it again.
    if let Some(existing) = cases::case_of_series(state, &request.series_instance_uid).await? {
        return Ok(vec![existing]);
    }
    let labels = cases::parse_label_text(request.labels.as_deref().unwrap_or_default())?;
    let dir = ScratchDir::create(&state.config.scratch_dir()).map_err(AppError::internal)?;
    // As a zip upload is bounded: two bytes a voxel of the budget, and room for headers.
    let max_bytes = state.config.max_volume_voxels.saturating_mul(2).saturating_add(64 << 20);
    let files = pacs
        .retrieve_series(
            &request.study_instance_uid,
            &request.series_instance_uid,
            dir.path(),
            (MAX_FILES, max_bytes),
            progress,
        )
        .await?;
    let import = DicomImport {
        files: files
            .into_iter()
            .enumerate()
            .map(|(number, path)| SourceFile { path, name: format!("PACS instance {}", number + 1) })
            .collect(),
        series: SeriesChoice::Uid(request.series_instance_uid.clone()),
        name: request.name.clone().filter(|n| !n.trim().is_empty()),
        labels,
    };
    dicom_import::import_dicom(state, Some(user_id), import).await
}

/// Stores the case's approved mask version in the PACS as a Segmentation of its series, with
/// the study's patient and study modules as the PACS holds them. Its UIDs derive from the
/// version: sending again stores nothing new. A PACS that cannot be reached is a 503, and the
/// version is queued for the sender, which retries.
pub async fn send(state: &AppState, access: &CaseAccess<SendToPacs>) -> Result<PacsSent, AppError> {
    client(state)?;
    let case_id = access.case_id();
    let approved = access.facts().workflow.approved_mask_ref.clone().ok_or_else(|| {
        AppError::Conflict(format!(
            "case {case_id} has no approved mask version to send; a reviewer approves one first"
        ))
    })?;
    match send_version(state, case_id, &approved, Some(access.user().id.as_str())).await {
        Err(AppError::Unavailable { service, detail }) => {
            pacs_outbox::enqueue_approved(&mut *state.db.pool.acquire().await?, case_id, now_ms()).await?;
            let detail = format!("{detail}; the segmentation is queued and will be sent when the PACS answers");
            Err(AppError::Unavailable { service, detail })
        }
        sent => sent,
    }
}

/// Stores mask version `mask_ref` of `case_id` in the PACS (see [`send`]); audited as sent by
/// `user_id`, or by seglab itself.
async fn send_version(
    state: &AppState,
    case_id: &CaseId,
    mask_ref: &MaskRef,
    user_id: Option<&str>,
) -> Result<PacsSent, AppError> {
    let pacs = client(state)?;
    let (DicomSource { identity, .. }, _) = cases::dicom_source(state, case_id).await?.ok_or_else(|| {
        AppError::Conflict(format!("case {case_id} was not imported from DICOM, so it has no study to send to"))
    })?;
    let query = StudyQuery { study_instance_uid: Some(identity.study_instance_uid.clone()), ..StudyQuery::default() };
    let study: StudyMatch =
        pacs.search_studies(&query).await?.into_iter().next().ok_or_else(|| {
            AppError::Conflict(format!("the PACS no longer holds study {}", identity.study_instance_uid))
        })?;
    let bytes = dicom_export::of_version(state, case_id, mask_ref, Some(study))
        .await?
        .ok_or_else(|| AppError::internal("a case with a series lost it"))?
        .ok_or_else(|| {
            AppError::Unprocessable("the approved mask version is empty: there is no segment to send".into())
        })?;
    pacs.store(bytes).await?;
    let (series_instance_uid, sop_instance_uid) = segmentation_uids(case_id.as_str(), mask_ref.as_str(), true);
    let mut tx = state.db.pool.begin().await?;
    audit::record(
        &mut tx,
        &state.db,
        AuditEvent {
            action: AuditAction::SegmentationSent,
            user_id,
            case_id: Some(case_id),
            details: serde_json::json!({ "mask_ref": mask_ref, "sop_instance_uid": sop_instance_uid }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(PacsSent { mask_ref: mask_ref.clone(), sop_instance_uid, series_instance_uid })
}

/// How often an idle sender looks for a queued send.
const SENDER_POLL: Duration = Duration::from_secs(1);
/// How long a claimed send is this instance's: longer than a send can take.
const SEND_LEASE_MS: i64 = 10 * 60 * 1000;
/// The longest wait between two attempts.
const MAX_RETRY_WAIT_MS: i64 = 60 * 60 * 1000;

/// Starts this instance's PACS sender, where a PACS is configured.
pub fn start(state: &AppState, shutdown: &CancellationToken, tasks: &TaskTracker) {
    if state.pacs.is_some() {
        tasks.spawn(sender(state.clone(), shutdown.clone()));
    }
}

/// Sends the queued segmentations, one at a time: a PACS that cannot be reached is tried again
/// after a wait that doubles with each attempt; one that refuses the object is not.
async fn sender(state: AppState, shutdown: CancellationToken) {
    loop {
        match pacs_outbox::claim(&state, now_ms(), SEND_LEASE_MS).await {
            Ok(Some(due)) => {
                if let Err(err) = attempt(&state, &due).await {
                    tracing::warn!(%err, case_id = %due.case_id, "could not record a PACS send");
                }
                continue;
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(%err, "could not read the PACS outbox"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SENDER_POLL) => {}
        }
    }
}

/// The wait before the next attempt with the PACS after `attempts` failed ones: from
/// `--pacs-retry-base-ms`, doubling with each, at most `longest` ms.
pub(super) fn retry_wait(state: &AppState, attempts: i64, longest: i64) -> i64 {
    let base = state.config.dicomweb.pacs_retry_base_ms as i64;
    base.saturating_mul(1 << (attempts - 1).clamp(0, 30)).min(longest)
}

async fn attempt(state: &AppState, due: &pacs_outbox::Due) -> Result<(), AppError> {
    match send_version(state, &due.case_id, &due.mask_ref, None).await {
        Ok(_) => pacs_outbox::sent(state, due, now_ms()).await,
        Err(down @ AppError::Unavailable { .. }) => {
            let wait = retry_wait(state, due.attempts, MAX_RETRY_WAIT_MS);
            tracing::info!(case_id = %due.case_id, attempts = due.attempts, wait_ms = wait, error = %down, "the send waits");
            pacs_outbox::failed(state, due, now_ms() + wait, &down.to_string()).await
        }
        Err(refused) => {
            tracing::warn!(case_id = %due.case_id, error = %refused, "the PACS send was refused; it is not retried");
            pacs_outbox::failed(state, due, i64::MAX, &refused.to_string()).await
        }
    }
}
