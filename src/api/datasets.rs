//! Dataset snapshots as they travel between the server and its clients: what to freeze, the
//! snapshot, and its manifest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::CaseId;

/// Which part of a snapshot a case is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Validation,
    Test,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }

    pub fn parse(name: &str) -> Option<Split> {
        [Split::Train, Split::Validation, Split::Test].into_iter().find(|split| split.as_str() == name)
    }
}

/// The most entries `case_ids` and `splits` of a [`NewDataset`] may hold each: a request
/// past it is refused before any work.
pub const MAX_LISTED_CASES: usize = 10_000;

/// Body of `POST /datasets`: which approved cases to freeze and how to split them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewDataset {
    pub name: String,
    /// Only these cases (each must be approved), at most [`MAX_LISTED_CASES`]; absent: every
    /// approved case.
    #[serde(default)]
    pub case_ids: Option<Vec<CaseId>>,
    /// Only cases whose name contains this (any case).
    #[serde(default)]
    pub name_contains: Option<String>,
    /// Fractions of the cases drawn for validation and test, by a hash of the seed and the
    /// case id: the same request gives the same split.
    #[serde(default)]
    pub validation_fraction: f64,
    #[serde(default)]
    pub test_fraction: f64,
    #[serde(default)]
    pub seed: u64,
    /// Splits given for some cases (at most [`MAX_LISTED_CASES`]), overriding the drawn ones.
    #[serde(default)]
    pub splits: BTreeMap<CaseId, Split>,
}

/// A snapshot as listed and as `POST /datasets` answers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DatasetSummary {
    pub id: String,
    pub name: String,
    pub version: i64,
    pub created_by: super::ids::UserName,
    pub created_at_ms: i64,
    /// Cases per split.
    pub train: u64,
    pub validation: u64,
    pub test: u64,
}

/// One stored file of a manifest entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ManifestFile {
    pub object_ref: String,
    pub sha256: String,
    /// Presigned GET URL, short-lived.
    pub url: String,
}

/// One case of a snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ManifestCase {
    pub case_id: CaseId,
    pub case_name: String,
    pub split: Split,
    pub image: ManifestFile,
    /// The approved mask version.
    pub mask: ManifestFile,
    /// A case read by several readers: each reading, in the order they were taken (the
    /// approved mask is their adjudication).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readings: Vec<ManifestReading>,
}

/// One reader's reading of a snapshot's case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ManifestReading {
    pub reader: super::ids::UserName,
    pub mask: ManifestFile,
}

/// Answer of `GET /datasets/{id}/manifest`: everything a training script needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Manifest {
    pub dataset: DatasetSummary,
    /// Label value → name.
    #[cfg_attr(feature = "ssr", schema(value_type = BTreeMap<String, String>))]
    pub label_map: BTreeMap<u8, String>,
    pub cases: Vec<ManifestCase>,
}
