//! Mask versions, shared by label saves and model pre-labels: fresh object keys, loading a
//! version (through the decoded-mask cache), and committing a stored version as the case's
//! current mask by compare-and-swap of the case's head.

use std::sync::Arc;

use sqlx::AnyConnection;
use uuid::Uuid;

use crate::nifti_io::Volume;
use crate::server::error::AppError;
use crate::server::mask_cache::DecodedMask;
use crate::server::state::AppState;

/// A fresh, never-used key for a mask version of `case_id`.
pub fn mask_object_ref(case_id: &str) -> String {
    format!("cases/{case_id}/masks/{}.nii.gz", Uuid::new_v4())
}

/// A mask version from the cache, or fetched from storage and decoded.
pub async fn load_mask(state: &AppState, object_ref: &str) -> Result<Arc<DecodedMask>, AppError> {
    if let Some(mask) = state.heads.get(object_ref) {
        return Ok(mask);
    }
    let bytes = state.store.get(object_ref).await?;
    let max_voxels = state.config.max_volume_voxels;
    let mask = tokio::task::spawn_blocking(move || -> Result<DecodedMask, AppError> {
        let volume = Volume::parse_within("stored mask", &bytes, max_voxels)?;
        let (header, dims) = (volume.header.clone(), volume.meta.dims);
        Ok(DecodedMask { header, dims, labels: volume.into_labels("stored mask")? })
    })
    .await
    .map_err(AppError::internal)??;
    let mask = Arc::new(mask);
    state.heads.insert(object_ref.to_string(), mask.clone());
    Ok(mask)
}

/// A mask version already written to storage, to become its case's current mask.
pub struct NewVersion<'a> {
    pub case_id: &'a str,
    /// The version the new one was made from; it must still be the case's current mask.
    pub replaces: &'a str,
    /// Where the new version is stored.
    pub object_ref: &'a str,
    /// The stored file's size and hex SHA-256.
    pub size_bytes: i64,
    pub sha256: &'a str,
    pub created_at: i64,
}

/// Inside the caller's transaction: moves the case's head from `replaces` to the new version
/// and records the version's object (geometry copied from the version it replaces). Returns
/// `false`, changing nothing, when the head is no longer `replaces`: someone committed another
/// version first, and this one must not silently discard theirs.
pub async fn commit(tx: &mut AnyConnection, version: &NewVersion<'_>) -> Result<bool, AppError> {
    let moved = sqlx::query("UPDATE cases SET head_mask_ref = $1 WHERE id = $2 AND head_mask_ref = $3")
        .bind(version.object_ref)
        .bind(version.case_id)
        .bind(version.replaces)
        .execute(&mut *tx)
        .await?;
    if moved.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO objects (object_ref, case_id, kind, size_bytes, sha256, dim_i, dim_j, dim_k,
                              voxel_type, spacing_i, spacing_j, spacing_k, created_at)
         SELECT $1, case_id, 'mask', $2, $3, dim_i, dim_j, dim_k, 'uint8', spacing_i, spacing_j, spacing_k, $4
         FROM objects WHERE object_ref = $5",
    )
    .bind(version.object_ref)
    .bind(version.size_bytes)
    .bind(version.sha256)
    .bind(version.created_at)
    .bind(version.replaces)
    .execute(&mut *tx)
    .await?;
    Ok(true)
}
