//! Cases, their artifacts and label saves as they travel between the server and its clients.

use serde::{Deserialize, Serialize};

use super::ids::{CaseId, MaskRef, UserName};

use crate::nifti_io::VoxelType;

/// One row of the case list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CaseSummary {
    pub id: CaseId,
    pub name: String,
    /// Volume size in voxels along i, j, k.
    pub dims: [u32; 3],
    /// NIfTI voxel type of the image, e.g. `int16`.
    pub image_voxel_type: VoxelType,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// What an object in storage is to its case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    Image,
    Mask,
}

impl ArtifactKind {
    /// The name stored with the object, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Image => "image",
            ArtifactKind::Mask => "mask",
        }
    }

    pub fn parse(name: &str) -> Option<ArtifactKind> {
        [ArtifactKind::Image, ArtifactKind::Mask].into_iter().find(|kind| kind.as_str() == name)
    }
}

/// One stored object of a case, with a short-lived URL the browser fetches directly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Artifact {
    pub kind: ArtifactKind,
    /// Immutable object reference (the storage key); mask versions are never overwritten.
    pub object_ref: String,
    /// Presigned GET URL, valid until `url_expires_at_ms`, for this one object only; for a
    /// mask version whose `.nii.gz` is not written yet, the API path that writes it and
    /// redirects to such a URL.
    pub url: String,
    pub url_expires_at_ms: i64,
    pub size_bytes: i64,
    pub dims: [u32; 3],
    pub voxel_type: VoxelType,
    /// Voxel spacing in millimetres along i, j, k.
    pub spacing_mm: [f32; 3],
    pub created_at_ms: i64,
    /// The same voxels in slabs of whole k-slices, for viewers that draw before the whole
    /// volume has arrived.
    pub slabs: VolumeSlabs,
}

/// A volume's voxels in slabs of `depth` k-slices (the last may be thinner), each a gzip
/// object of the file's voxel bytes for those slices (i fastest, as in the file), in k order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct VolumeSlabs {
    pub depth: u32,
    /// The volume's NIfTI-1 header (348 bytes), base64: its type, scaling and placement.
    pub header: String,
    /// Presigned GET URLs of the distinct stored slabs, valid as long as the artifact's `url`.
    pub urls: Vec<String>,
    /// For each slab in k order, the index in `urls` of its stored slab: positions holding the
    /// same stored slab (the zeros of a new case's mask) list it once.
    pub slabs: Vec<u32>,
}

/// A label value a mask may hold, with its display name and colour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct LabelDef {
    pub value: u8,
    pub name: String,
    /// CSS colour, `#rrggbb`.
    pub color: String,
    /// What the label is, coded (a DICOM SEG's segmented property type), when its import
    /// named one (`3=left kidney|SCT:64033007`); else one follows from the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ConceptCode>,
    /// The code's category (`…|SCT:123037004|SCT:64033007`); else one follows from the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<ConceptCode>,
}

/// A coded concept: a coding scheme and a code in it, such as `SCT:10200004` (SNOMED CT, liver).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ConceptCode {
    pub scheme: String,
    pub value: String,
}

impl ConceptCode {
    /// `SCHEME:VALUE`: a scheme of 1–16 capitals, digits or `-`, a value of 1–16 letters,
    /// digits, `.` or `-`.
    pub fn parse(text: &str) -> Option<ConceptCode> {
        let (scheme, value) = text.trim().split_once(':')?;
        let scheme_ok = (1..=16).contains(&scheme.len())
            && scheme.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
        let value_ok = (1..=16).contains(&value.len())
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        (scheme_ok && value_ok).then(|| ConceptCode { scheme: scheme.to_string(), value: value.to_string() })
    }
}

/// Body of `POST /labels`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SaveLabelRequest {
    /// Text, read as a case id by the server: one that cannot be is no such case (404), as
    /// in a path.
    pub case_id: String,
    /// The mask version the edits were made on (`current_mask_ref` when the case was opened).
    /// Text: one that is not the current version, whatever it is, is a stale base (409).
    pub base_mask_ref: String,
    /// Base64 of [`crate::edits::MaskEdits::encode`]: the changed voxels and their new labels.
    pub edits: String,
}

/// Answer of a successful `POST /labels` (201).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct LabelSaved {
    pub label_id: String,
    /// The new current mask version.
    pub new_mask_ref: MaskRef,
    pub voxels_changed: u64,
}

/// One saved mask version in a case's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct MaskVersion {
    pub label_id: String,
    pub username: UserName,
    pub old_mask_ref: MaskRef,
    pub new_mask_ref: MaskRef,
    pub voxels_changed: i64,
    pub created_at_ms: i64,
    /// Where `new_mask_ref` downloads as a `.nii.gz`: a presigned URL, or, for a version whose
    /// file is not written yet, the API path that writes it and redirects there.
    pub url: String,
}

/// Answer of `GET /cases/{id}/overview`: everything the case page shows, read under one access
/// decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CaseOpened {
    /// With the newest mask versions.
    pub artifacts: CaseArtifacts,
    pub review: CaseReview,
    /// The case's model jobs the caller may see, newest first.
    pub jobs: Vec<super::registry::Job>,
}

/// Answer of `GET /cases/{id}/artifacts`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CaseArtifacts {
    pub case_id: CaseId,
    pub case_name: String,
    pub labels: Vec<LabelDef>,
    /// Reference of the mask version a save must name as its base.
    pub current_mask_ref: MaskRef,
    /// The image and the current mask.
    pub artifacts: Vec<Artifact>,
    /// Saved mask versions, newest first, at most 200 of them; only with `?history=true`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<MaskVersion>,
    /// How many mask versions were saved in all (with `?history=true`).
    #[serde(default)]
    pub history_total: i64,
    /// Where the case stands in labeling and review.
    pub workflow: CaseWorkflow,
    /// The version a reviewer compares the current mask with.
    pub review_base: ReviewBase,
    /// The latest prediction of each production and shadow version, for ML engineers and
    /// admins only (labelers never see model outputs here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predictions: Vec<CasePrediction>,
    /// The DICOM series the case was imported from, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<SeriesInfo>,
    /// The readings of a case read by several readers, once the caller may compare them (every
    /// reading submitted): the adjudicator draws them over the mask.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readings: Vec<super::readings::Reading>,
}

/// The DICOM series a case was imported from, as its page shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SeriesInfo {
    pub modality: String,
    pub series_description: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    /// The series' own display window (WindowCenter, WindowWidth), in the image's values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<[f64; 2]>,
    /// The patient's pseudonym: the same for every series of one patient.
    pub pseudonym: String,
}

/// A model version's latest prediction on a case, with a presigned URL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CasePrediction {
    /// The version's state now: production or shadow.
    pub role: super::registry::ModelState,
    pub model_id: super::ids::ModelId,
    pub model_name: String,
    pub model_version: String,
    pub object_ref: String,
    pub url: String,
    pub created_at_ms: i64,
}

/// The mask version a review compares with: the last approved one, else the one the case was
/// imported with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ReviewBase {
    pub mask_ref: MaskRef,
    /// Whether `mask_ref` is the last approved version (else the imported one).
    pub approved: bool,
    /// Where `mask_ref` downloads as a `.nii.gz` (see [`MaskVersion::url`]).
    pub url: String,
}

/// Where a case stands: `new → in_progress → submitted → approved`, with `changes_requested`
/// sending it back to its labeler and a reopened approval going back to `in_progress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    New,
    InProgress,
    Submitted,
    ChangesRequested,
    Approved,
}

impl CaseStatus {
    pub const ALL: [CaseStatus; 5] = [
        CaseStatus::New,
        CaseStatus::InProgress,
        CaseStatus::Submitted,
        CaseStatus::ChangesRequested,
        CaseStatus::Approved,
    ];

    /// The name stored in the database and used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::New => "new",
            CaseStatus::InProgress => "in_progress",
            CaseStatus::Submitted => "submitted",
            CaseStatus::ChangesRequested => "changes_requested",
            CaseStatus::Approved => "approved",
        }
    }

    pub fn parse(name: &str) -> Option<CaseStatus> {
        CaseStatus::ALL.into_iter().find(|status| status.as_str() == name)
    }
}

/// A case's status, who labels and who reviews it, and the mask version last approved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CaseWorkflow {
    pub status: CaseStatus,
    /// Username of the labeler the case is assigned to.
    pub assignee: Option<UserName>,
    /// Username of the reviewer the case is assigned to; any reviewer may review when none is.
    pub reviewer: Option<UserName>,
    /// The mask version a reviewer approved last; later saves do not change it.
    pub approved_mask_ref: Option<MaskRef>,
    /// Readable only by its labeler and reviewer, ML engineers and admins.
    #[serde(default)]
    pub restricted: bool,
    /// Independent readings the case needs (1: one labeler); see `GET /cases/{id}/readings`.
    #[serde(default = "one_reading")]
    pub readings_required: u32,
}

fn one_reading() -> u32 {
    1
}

/// Body of `PUT /cases/{id}/assignment`: usernames, or null to leave the case unassigned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AssignCase {
    pub assignee: Option<UserName>,
    #[serde(default)]
    pub reviewer: Option<UserName>,
    /// Whether only the case's labeler and reviewer (and ML engineers and admins) may read it;
    /// absent: unchanged.
    #[serde(default)]
    pub restricted: Option<bool>,
}

/// The active users a case can be assigned to, by username: the assignment form's choices.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AssignablePeople {
    pub labelers: Vec<UserName>,
    pub reviewers: Vec<UserName>,
}

/// Body of `PUT /cases/{id}/status`. Requesting changes and reopening need a comment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChangeStatus {
    pub status: CaseStatus,
    #[serde(default)]
    pub comment: Option<String>,
    /// The voxel (i, j, k) the comment points at.
    #[serde(default)]
    pub anchor: Option<[u32; 3]>,
}

/// What the caller may do with a case now, so pages show only the controls that work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CaseActions {
    pub take: bool,
    pub save: bool,
    pub submit: bool,
    /// Approve or request changes.
    pub review: bool,
    pub reopen: bool,
    pub assign: bool,
    pub run_models: bool,
    /// Store the approved mask version in the PACS (a case imported from DICOM, once approved).
    pub send_to_pacs: bool,
    /// Start the adjudication of a case read by several readers from their consensus.
    #[serde(default)]
    pub adjudicate: bool,
    /// Set how many readings the case needs and whether its readers are blinded.
    #[serde(default)]
    pub plan_readings: bool,
    /// Take one of the case's readings.
    #[serde(default)]
    pub take_reading: bool,
    /// See every reading and their agreement.
    #[serde(default)]
    pub compare_readings: bool,
}

/// A case's workflow, the caller's possible actions, and the comments: the review panel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CaseReview {
    pub workflow: CaseWorkflow,
    pub actions: CaseActions,
    pub comments: Vec<CaseComment>,
    /// Whom the case can be assigned to, for those who may assign it.
    pub assignable: Option<AssignablePeople>,
}

/// A reviewer's or labeler's comment on a case (`GET /cases/{id}/comments`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CaseComment {
    pub id: String,
    pub username: UserName,
    pub body: String,
    pub anchor: Option<[u32; 3]>,
    pub created_at_ms: i64,
}

/// How `GET /worklist` orders cases.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WorklistSort {
    #[default]
    Created,
    Name,
    /// In workflow order: new, in progress, changes requested, submitted, approved.
    Status,
    LastSaved,
}

/// Which cases `GET /worklist` lists, and in what order (query parameters).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema, utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct WorklistQuery {
    #[serde(default)]
    pub status: Option<CaseStatus>,
    /// `me`, `none` (unassigned) or a username; absent: everyone's cases.
    #[serde(default)]
    pub assignee: Option<String>,
    /// Part of the case name, in any case.
    #[serde(default)]
    pub q: Option<String>,
    /// Cases imported from DICOM series of this modality (`CT`, `MR`, …).
    #[serde(default)]
    pub modality: Option<String>,
    /// Cases of the patient with this pseudonym.
    #[serde(default)]
    pub patient: Option<String>,
    /// Cases imported from series of this study (its StudyInstanceUID).
    #[serde(default)]
    pub study: Option<String>,
    #[serde(default)]
    pub sort: WorklistSort,
    #[serde(default)]
    pub desc: bool,
    /// From 1.
    #[serde(default = "WorklistQuery::first_page")]
    #[cfg_attr(feature = "ssr", param(minimum = 1, maximum = 1000000), schema(minimum = 1, maximum = 1000000))]
    pub page: u32,
    /// At most 200.
    #[serde(default = "WorklistQuery::default_per_page")]
    #[cfg_attr(feature = "ssr", param(minimum = 1, maximum = 200), schema(minimum = 1, maximum = 200))]
    pub per_page: u32,
}

/// The last page a listing may ask for (as documented): far past any real list, and small
/// enough that an offset never overflows.
pub const MAX_PAGE: u32 = 1_000_000;

impl WorklistQuery {
    pub const MAX_PER_PAGE: u32 = 200;

    fn first_page() -> u32 {
        1
    }

    fn default_per_page() -> u32 {
        50
    }
}

impl Default for WorklistQuery {
    fn default() -> Self {
        WorklistQuery {
            status: None,
            assignee: None,
            q: None,
            modality: None,
            patient: None,
            study: None,
            sort: WorklistSort::default(),
            desc: false,
            page: Self::first_page(),
            per_page: Self::default_per_page(),
        }
    }
}

/// One case in the worklist.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct WorklistRow {
    pub id: CaseId,
    pub name: String,
    pub dims: [u32; 3],
    pub status: CaseStatus,
    pub assignee: Option<UserName>,
    pub reviewer: Option<UserName>,
    pub last_saved_by: Option<UserName>,
    pub last_saved_at_ms: Option<i64>,
    pub created_at_ms: i64,
    /// Voxels per label value in the current mask; none where not known.
    #[cfg_attr(feature = "ssr", schema(value_type = Option<std::collections::BTreeMap<String, u64>>))]
    pub label_counts: Option<std::collections::BTreeMap<u8, u64>>,
    /// Where the readings of a case read by several readers stand; none for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readings: Option<RowReadings>,
}

/// A worklist row's readings: how many the case needs, are taken and are submitted, and the
/// caller's own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RowReadings {
    pub required: u32,
    pub taken: u32,
    pub submitted: u32,
    /// `Some(submitted)` when the caller reads the case.
    pub mine: Option<bool>,
}

/// How many cases (matching the other filters) have a status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct StatusCount {
    pub status: CaseStatus,
    pub cases: u64,
}

/// Answer of `GET /worklist`: one page of cases, how many match in all, and the counts per
/// status (with every filter but the status one), with the query applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Worklist {
    pub query: WorklistQuery,
    pub rows: Vec<WorklistRow>,
    pub total: u64,
    pub counts: Vec<StatusCount>,
}

/// Answer of `GET /worklist/next`: the case to open next.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NextCase {
    pub id: CaseId,
    pub name: String,
}
