//! The hospital's PACS as seglab shows it: a study search, a series import, a segmentation sent
//! back. Patients appear by pseudonym only.

use serde::{Deserialize, Serialize};

use super::ids::{CaseId, MaskRef};

/// A study search (`GET /pacs/studies`); empty fields match anything.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema, utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct PacsQuery {
    /// A PatientID, or a pseudonym (`P-…`) of a patient seglab has imported before.
    #[serde(default)]
    pub patient: Option<String>,
    #[serde(default)]
    pub accession: Option<String>,
    #[serde(default)]
    pub modality: Option<String>,
    /// `YYYYMMDD`, or a range `YYYYMMDD-YYYYMMDD`.
    #[serde(default)]
    pub date: Option<String>,
}

/// A study the PACS holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PacsStudy {
    pub study_instance_uid: String,
    /// The patient's pseudonym, the one their cases show.
    pub pseudonym: String,
    pub study_date: Option<String>,
    pub study_description: Option<String>,
    pub modalities: Vec<String>,
    pub series: Vec<PacsSeries>,
}

/// A series of a study.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PacsSeries {
    pub series_instance_uid: String,
    pub modality: String,
    pub series_description: String,
    pub series_number: Option<i64>,
    pub instances: Option<i64>,
}

/// `POST /pacs/import`: one series of a study, retrieved and imported as a case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PacsImport {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `1=liver,2=tumour`.
    #[serde(default)]
    pub labels: Option<String>,
}

/// A segmentation stored in the PACS (`POST /cases/{id}/pacs`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PacsSent {
    /// The approved mask version sent.
    pub mask_ref: MaskRef,
    pub sop_instance_uid: String,
    pub series_instance_uid: String,
}

/// A segmentation queued for the PACS (`GET /pacs/outbox`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PacsQueued {
    pub case_id: CaseId,
    pub mask_ref: MaskRef,
    pub enqueued_at_ms: i64,
    pub attempts: i64,
    /// When the next attempt is due; `None` once sent, or given up on (a refusal).
    pub next_attempt_at_ms: Option<i64>,
    pub sent_at_ms: Option<i64>,
    pub last_error: Option<String>,
}

/// Where a background import from the PACS stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PacsImportStatus {
    /// Waiting for its first attempt, or for the next one after the PACS could not be reached.
    Queued,
    Running,
    Succeeded,
    /// Refused by the PACS or by the import's checks; not retried.
    Failed,
}

impl PacsImportStatus {
    pub const ALL: [PacsImportStatus; 4] =
        [PacsImportStatus::Queued, PacsImportStatus::Running, PacsImportStatus::Succeeded, PacsImportStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            PacsImportStatus::Queued => "queued",
            PacsImportStatus::Running => "running",
            PacsImportStatus::Succeeded => "succeeded",
            PacsImportStatus::Failed => "failed",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, PacsImportStatus::Succeeded | PacsImportStatus::Failed)
    }
}

/// A series being imported from the PACS in the background (`POST /pacs/import` answers it,
/// `GET /pacs/imports/{id}` follows it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PacsImportJob {
    pub id: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub status: PacsImportStatus,
    /// Instances of the series, once listed, and those retrieved so far in this attempt.
    pub instances_total: u64,
    pub instances_done: u64,
    pub attempts: u64,
    /// The case made from the series, once imported.
    pub case_id: Option<CaseId>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    pub created_at_ms: i64,
}
