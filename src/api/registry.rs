//! The model registry's data shapes, shared by the REST API, the server functions and the
//! model pages: the model card, lifecycle states, orchestrator jobs, and evaluations.
//!
//! The card follows Model Cards for Model Reporting (intended use, limitations, metrics),
//! Hugging Face's model-index (reported metrics with their dataset) and MONAI bundle metadata
//! (input spec, label map). Unknown fields are refused so a typo is never silently dropped.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::ids::{CaseId, ModelId, UserName};

/// What a model version declares about itself (`POST /models`, field `card`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// Model name, shared by all its versions: lowercase letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// Semantic version `MAJOR.MINOR.PATCH[-pre]`, unique per name.
    pub version: String,
    pub task: Task,
    pub modality: Modality,
    /// Label value (as a string key, 1–255) → name; must match the cases' label names.
    pub label_map: BTreeMap<String, String>,
    pub input_spec: InputSpec,
    /// Which label value each output channel stands for (channel 0 is usually background, 0).
    pub output_channels: Vec<u8>,
    pub intended_use: String,
    pub limitations: String,
    /// SPDX licence identifier, e.g. `Apache-2.0`.
    pub license: String,
    #[serde(default)]
    pub metrics: Vec<ReportedMetric>,
    pub artifact: ArtifactSpec,
    /// Ids of the dataset snapshots the model was trained on: their train and validation cases
    /// are left out of its evaluation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub training_datasets: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Segmentation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Modality {
    CT,
    MR,
    PET,
    US,
    #[serde(rename = "other")]
    Other,
}

/// What the model expects as input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Voxel type the model was trained on (`float32`, `int16`, …); the runner converts to f32.
    pub voxel_type: String,
    /// Expected orientation as three axis codes, e.g. `RAS`.
    pub orientation: String,
    /// Expected voxel spacing in mm, if the model depends on it.
    #[serde(default)]
    pub spacing_mm: Option<[f32; 3]>,
    pub intensity_normalisation: Normalisation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Normalisation {
    /// Intensities as stored (after the NIfTI scaling).
    None,
    /// Zero mean, unit standard deviation over the volume.
    Zscore,
    /// Scaled to 0..1 between the volume's minimum and maximum.
    Minmax,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReportedMetric {
    pub name: String,
    pub value: f64,
    pub dataset: String,
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ArtifactSpec {
    pub format: ArtifactFormat,
    /// Hex SHA-256 of the uploaded artifact; the upload is refused when it differs.
    pub sha256: String,
    /// `oip-v2`: the inference server's base URL (default: the instance's `--oip-endpoint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `oip-v2`: the model's name on that server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
}

/// How a version runs: in process with tract (`onnx`), or on a remote Open Inference Protocol
/// v2 server serving the same ONNX network (`oip-v2`; the uploaded file is its record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum ArtifactFormat {
    #[serde(rename = "onnx")]
    Onnx,
    #[serde(rename = "oip-v2")]
    OipV2,
}

/// Where a model version is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ModelState {
    Registered,
    Shadow,
    Production,
    Archived,
}

impl ModelState {
    pub const ALL: [ModelState; 4] =
        [ModelState::Registered, ModelState::Shadow, ModelState::Production, ModelState::Archived];

    pub fn as_str(self) -> &'static str {
        match self {
            ModelState::Registered => "registered",
            ModelState::Shadow => "shadow",
            ModelState::Production => "production",
            ModelState::Archived => "archived",
        }
    }

    pub fn parse(text: &str) -> Option<ModelState> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// States this one may move to. Production is only reached through shadow, so every
    /// production model has been measured against human labels first.
    pub fn allowed_next(self) -> &'static [ModelState] {
        match self {
            ModelState::Registered => &[ModelState::Shadow, ModelState::Archived],
            ModelState::Shadow => &[ModelState::Production, ModelState::Registered],
            ModelState::Production => &[ModelState::Archived],
            // Back only through shadow: production is always measured first.
            ModelState::Archived => &[ModelState::Shadow],
        }
    }
}

impl fmt::Display for ModelState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A registered model version as listed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ModelSummary {
    pub id: ModelId,
    pub name: String,
    pub version: String,
    pub state: ModelState,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Answer of `POST /models` (201): the seed's `{model_id}`, with what identifies the version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ModelRegistered {
    pub model_id: ModelId,
    pub name: String,
    pub version: String,
    pub state: ModelState,
}

/// Answer of `GET /models/production-at?name=&at=`: which version of `name` was in production
/// at `at` (milliseconds since the Unix epoch); both null when none was.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ProductionAt {
    pub name: String,
    pub at: i64,
    pub model_id: Option<ModelId>,
    pub version: Option<String>,
}

/// One model version with its card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ModelDetail {
    #[serde(flatten)]
    pub summary: ModelSummary,
    pub card: ModelCard,
    pub allowed_next: Vec<ModelState>,
}

/// One change of a version's state, from the audit log: `GET /models/timeline?name=`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct StateChange {
    pub at_ms: i64,
    pub model_id: ModelId,
    pub version: String,
    /// `None` for the registration.
    pub from: Option<ModelState>,
    pub to: ModelState,
    /// Who made the change.
    pub by: Option<UserName>,
    /// Why, when it followed from another change ("replaced by 2.0.0") or was a rollback.
    pub reason: Option<String>,
    pub rollback: bool,
}

/// What the model page shows of one version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ModelOverview {
    pub detail: ModelDetail,
    /// Production against shadow: for ML engineers and admins.
    pub evaluation: Option<PairedEvaluation>,
    /// The evaluation's charts as SVG markup, drawn by the server.
    pub chart_svg: Option<String>,
    pub jobs: Vec<Job>,
    /// Every registration and state change of the versions of this name.
    pub timeline: Vec<StateChange>,
    /// The version a rollback of this (production) version would restore, for those who may.
    pub rollback_to: Option<String>,
    /// This version's latest backfill, for ML engineers and admins.
    pub backfill: Option<BackfillProgress>,
    /// A shadow or registered version may be backfilled by the caller.
    pub may_backfill: bool,
    /// A registered version scored on its own (its backfill's result), for ML engineers and admins.
    pub own_evaluation: Option<VersionEvaluation>,
}

/// A backfill's progress: `POST /models/{id}/backfill`, `GET /backfills/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct BackfillProgress {
    pub id: String,
    pub model_id: ModelId,
    /// Jobs queued when it started: one per labelled case without a prediction of the version.
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub running: u64,
    pub queued: u64,
    /// Jobs still queued when it was cancelled (they were removed).
    pub cancelled: u64,
    pub created_at_ms: i64,
    pub cancelled_at_ms: Option<i64>,
    /// Every job succeeded, failed or was cancelled.
    pub finished: bool,
    /// Jobs finished per minute so far.
    pub per_minute: Option<f64>,
    /// Expected time left at that rate.
    pub eta_ms: Option<i64>,
}

/// Answer of `POST /models/{id}/rollback`: the version back in production and the one archived.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Rollback {
    pub restored: ModelSummary,
    pub archived: ModelSummary,
}

/// `GET /models/active`: what runs for one model name, read in one snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ActiveModels {
    pub name: String,
    pub production: Option<ModelSummary>,
    pub shadow: Option<ModelSummary>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobStatus {
    pub const ALL: [JobStatus; 4] = [JobStatus::Queued, JobStatus::Running, JobStatus::Succeeded, JobStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<JobStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One orchestrator job: one model version run on one case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Job {
    pub id: String,
    pub run_id: String,
    pub case_id: CaseId,
    pub model_id: ModelId,
    pub model_name: String,
    pub model_version: String,
    /// `production` or `shadow`: the model's state when the run was triggered.
    pub role: ModelState,
    pub trigger: String,
    pub status: JobStatus,
    pub attempts: i64,
    pub max_attempts: i64,
    pub last_error: Option<String>,
    /// Where the job stored its prediction: for ML engineers and admins, once it succeeded.
    #[serde(default)]
    pub output_ref: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Answer of `POST /cases/{id}/runs`: the jobs one trigger enqueued.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RunStarted {
    pub run_id: String,
    pub jobs: Vec<Job>,
}

/// Figures of one metric over cases.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Stats {
    pub mean: f64,
    pub median: f64,
    pub cases: usize,
}

/// Agreement with human labels for one label value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct LabelStats {
    pub label: u8,
    pub name: String,
    /// Over the cases evaluated; none before the first one.
    /// Over the cases whose human mask holds the label (MONAI's `ignore_empty=True`).
    pub dice: Option<Stats>,
    /// Over the cases where both masks hold the label (HD95 is undefined otherwise).
    pub hd95_mm: Option<Stats>,
    /// On the cases read by several readers, the version against its readers; none without
    /// such a case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub against_readers: Option<AgainstReaders>,
}

/// A version against people, on the cases read by several readers: its Dice against each
/// case's adjudicated mask next to each reader's own Dice against it (one value per reading).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AgainstReaders {
    pub model_dice: Stats,
    pub readers_dice: Stats,
    /// The lowest of the readers' mean Dice over these cases.
    pub least_reader_mean: f64,
    /// Whether the version's mean Dice is at least the least close reader's: within
    /// inter-reader variability.
    pub within_readers: bool,
}

/// One model version's agreement with human labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ModelScore {
    pub model: ModelSummary,
    pub labels: Vec<LabelStats>,
}

/// Production's and shadow's Dice for one label of one case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PairedDice {
    pub case_id: CaseId,
    pub case_name: String,
    pub label: u8,
    pub production_dice: f64,
    pub shadow_dice: f64,
}

/// `GET /models/evaluation?name=`: production against shadow on the same human-labelled cases.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PairedEvaluation {
    pub name: String,
    /// Cases with a human label and predictions of both versions.
    pub paired_cases: usize,
    pub production: Option<ModelScore>,
    pub shadow: Option<ModelScore>,
    /// The ten largest |production − shadow| Dice first.
    pub disagreements: Vec<PairedDice>,
    /// Every paired case and label, by case: the scatter of the model page.
    #[serde(default)]
    pub pairs: Vec<PairedDice>,
    /// Cases left out because a version was trained (or validated) on them.
    #[serde(default)]
    pub excluded_training_cases: usize,
    /// Cases left out until the background evaluator has scored them.
    #[serde(default)]
    pub pending_cases: usize,
    /// Evaluated cases whose human mask started from an evaluated version's own pre-label:
    /// agreement there is inflated by anchoring.
    #[serde(default)]
    pub anchored_cases: Vec<AnchoredCase>,
}

/// `GET /models/{id}/evaluation`: one version against human labels, whatever its state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct VersionEvaluation {
    pub score: ModelScore,
    /// Predicted labelled cases the background evaluator has not scored yet.
    pub pending_cases: usize,
    pub excluded_training_cases: usize,
}

/// A case whose human mask began as a model version's pre-label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AnchoredCase {
    pub case_id: CaseId,
    pub case_name: String,
    pub model_version: String,
}
