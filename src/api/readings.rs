//! Several readers per case: the plan of a case's readings, the readings an adjudicator
//! compares, the agreement between readers, and the consensus an adjudication starts from.

use serde::{Deserialize, Serialize};

use super::ids::{MaskRef, UserName};

/// Body of `PUT /cases/{id}/readings`: how many independent readings the case needs (1 to 8;
/// 1 is the single-labeler workflow) and whether its readers are blinded to the models'
/// predictions until every reading is submitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReadingPlan {
    pub required: u32,
    #[serde(default)]
    pub blind: bool,
}

/// Body of `POST /cases/{id}/readings`: a reader takes a reading (no `reader`, or themselves);
/// a coordinator gives one to `reader`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TakeReading {
    #[serde(default)]
    pub reader: Option<UserName>,
}

/// One reading of a case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Reading {
    pub id: String,
    pub reader: UserName,
    /// The reading's current mask version, and where its `.nii.gz` downloads.
    pub mask_ref: MaskRef,
    pub url: String,
    pub submitted: bool,
}

/// `GET /cases/{id}/readings`: the case's readings as the caller may see them. A reader sees
/// only their own until every reading is submitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CaseReadings {
    pub required: u32,
    pub blind: bool,
    pub taken: u32,
    pub submitted: u32,
    pub readings: Vec<Reading>,
}

/// Agreement between two readers on one label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PairAgreement {
    pub readers: [UserName; 2],
    /// None when neither gave the label.
    pub dice: Option<f64>,
    /// None unless both gave the label.
    pub hd95_mm: Option<f64>,
}

/// One reader against the STAPLE consensus on one label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ReaderAgreement {
    pub reader: UserName,
    pub dice: Option<f64>,
    pub hd95_mm: Option<f64>,
    /// STAPLE's estimates of the reader's sensitivity and specificity.
    pub sensitivity: f64,
    pub specificity: f64,
}

/// Agreement on one label of a case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct LabelAgreement {
    pub label: u8,
    pub name: String,
    pub pairs: Vec<PairAgreement>,
    /// The mean of the pairs' figures that are defined.
    pub mean_dice: Option<f64>,
    pub mean_hd95_mm: Option<f64>,
    pub readers: Vec<ReaderAgreement>,
}

/// `GET /cases/{id}/agreement`: how much the submitted readings agree, per label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CaseAgreement {
    pub readers: Vec<UserName>,
    pub labels: Vec<LabelAgreement>,
    /// Voxels where the readers do not all give the same value.
    pub disagreeing_voxels: u64,
    /// The voxel to look at first: in the axial slice with the most disagreement, the
    /// disagreeing voxel nearest their centre.
    pub most_disagreement_at: Option<[u32; 3]>,
}

/// How a consensus is formed from the readings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsensusMethod {
    /// STAPLE per label, each voxel taking its most probable label of probability ≥ ½.
    Staple,
    /// Each voxel the value most readers gave; a tie leaves it background.
    MajorityVote,
}

/// Body of `POST /cases/{id}/consensus`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConsensusRequest {
    pub method: ConsensusMethod,
}

/// Five figures of a distribution: its least and greatest values and its quartiles (linearly
/// interpolated), over `n` values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Spread {
    pub n: u64,
    pub min: f64,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub max: f64,
}

/// One label across cases: the spread of each case's mean Dice between its readers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct LabelSpread {
    pub label: u8,
    pub name: String,
    pub mean_dice: Spread,
}

/// One reader across the cases they read: the spread of their Dice against each case's STAPLE
/// consensus (per case and label), and STAPLE's mean estimates of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ReaderSpread {
    pub reader: UserName,
    pub cases: u64,
    pub dice_vs_staple: Spread,
    pub mean_sensitivity: f64,
    pub mean_specificity: f64,
}

/// A case readers agree little on: the mean over its labels of the mean Dice between readers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CaseSpread {
    pub case_id: super::ids::CaseId,
    pub case_name: String,
    pub readers: u32,
    pub mean_dice: f64,
}

/// `GET /agreement`: how much readers agree across the cases a worklist filter selects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AgreementOverview {
    /// Cases the filter selects that are read by several readers.
    pub cases: u64,
    /// Of them, those whose agreement is measured.
    pub measured: u64,
    /// Every reading submitted, the agreement not measured yet (the background is on it).
    pub pending: u64,
    pub labels: Vec<LabelSpread>,
    /// Readers in name order.
    pub readers: Vec<ReaderSpread>,
    /// The measured cases with the lowest agreement, lowest first, at most
    /// [`AgreementOverview::LEAST_AGREED`].
    pub least_agreed: Vec<CaseSpread>,
    /// The charts of the spreads as SVG; none before a case is measured.
    pub chart_svg: Option<String>,
}

impl AgreementOverview {
    pub const LEAST_AGREED: usize = 20;
}

/// Answer of `PUT /readings?{worklist filters}`: the cases the filter selects that were
/// planned, and those left as they were (labelled already, or with more readings taken).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PlannedCases {
    pub planned: u64,
    pub skipped: u64,
}
