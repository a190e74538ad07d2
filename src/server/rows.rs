//! Rows of the tables that several services read, decoded by `sqlx::FromRow` (typed ids and
//! enums through their parsers, see `db`), so that no rule reads a column by its name. A
//! query with a shape of its own declares its row beside it.

use sqlx::FromRow;

use crate::api::{ArtifactKind, CaseId};
use crate::nifti_io::VoxelType;

/// A volume's size in voxels, from the `dim_i, dim_j, dim_k` columns of `objects`.
#[derive(Clone, Copy, Debug, FromRow)]
pub struct Dims {
    pub dim_i: i64,
    pub dim_j: i64,
    pub dim_k: i64,
}

impl Dims {
    pub fn voxels(self) -> [u32; 3] {
        [self.dim_i, self.dim_j, self.dim_k].map(|d| d as u32)
    }
}

/// A stored volume (`objects`): an image or a mask version.
#[derive(Clone, Debug, FromRow)]
pub struct ObjectRow {
    pub object_ref: String,
    pub case_id: CaseId,
    pub kind: ArtifactKind,
    pub size_bytes: i64,
    pub sha256: String,
    #[sqlx(flatten)]
    pub dims: Dims,
    pub voxel_type: VoxelType,
    pub spacing_i: f64,
    pub spacing_j: f64,
    pub spacing_k: f64,
    pub created_at: i64,
    /// The slab manifest (see `services::volume_slabs`); empty for a volume stored only as a file.
    pub slabs_json: String,
    /// 1 when the volume's `.nii.gz` file is stored too.
    pub file_stored: i64,
}

impl ObjectRow {
    /// The columns, in a statement reading `objects` as `alias`.
    pub fn columns(alias: &str) -> String {
        [
            "object_ref",
            "case_id",
            "kind",
            "size_bytes",
            "sha256",
            "dim_i",
            "dim_j",
            "dim_k",
            "voxel_type",
            "spacing_i",
            "spacing_j",
            "spacing_k",
            "created_at",
            "slabs_json",
            "file_stored",
        ]
        .map(|column| format!("{alias}.{column}"))
        .join(", ")
    }

    pub fn spacing_mm(&self) -> [f32; 3] {
        [self.spacing_i, self.spacing_j, self.spacing_k].map(|s| s as f32)
    }

    pub fn file_stored(&self) -> bool {
        self.file_stored == 1
    }
}
