//! Mask versions, shared by imports, label saves and model pre-labels: fresh object keys,
//! storing a version in slabs (only those that differ from the version it replaces), loading
//! a version (through the decoded-mask cache), committing a stored version as the case's
//! current mask by compare-and-swap of the case's head, and writing a version's `.nii.gz`
//! when someone first asks for it.

use crate::api::{ArtifactKind, CaseId, MaskRef};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use super::volume_slabs::{self, PackedSlab, SlabManifest, StoredSlab};
use crate::nifti_io::{gzip_mask_slabs, mask_header, Volume, VoxelType};
use crate::server::error::AppError;
use crate::server::mask_cache::DecodedMask;
use crate::server::state::AppState;
use crate::slabs::SLAB_GZIP_LEVEL;

/// A mask version (or model prediction) from the cache, or fetched from storage: from its
/// slabs when it has them, else from its file.
pub(crate) async fn load_mask(state: &AppState, object_ref: &str) -> Result<Arc<DecodedMask>, AppError> {
    if let Some(mask) = state.heads.get(object_ref) {
        return Ok(mask);
    }
    // Predictions have no `objects` row: they are read from their file.
    let stored: Option<(CaseId, String)> =
        sqlx::query_as("SELECT case_id, slabs_json FROM objects WHERE object_ref = $1")
            .bind(object_ref)
            .fetch_optional(&state.db.pool)
            .await?;
    let sliced = match stored {
        Some((case_id, slabs_json)) => SlabManifest::parse(&slabs_json)?.map(|manifest| (case_id, manifest)),
        None => None,
    };
    let mask = match sliced {
        Some((case_id, manifest)) => {
            let slabs = volume_slabs::load(state, &case_id, &manifest).await?;
            let header = nifti::NiftiHeader::from_reader(&manifest.header_bytes()?[..]).map_err(AppError::internal)?;
            DecodedMask { header, grid: manifest.grid, slabs }
        }
        None => {
            let bytes = state.store.get(object_ref).await?;
            let max_voxels = state.config.max_volume_voxels;
            tokio::task::spawn_blocking(move || -> Result<DecodedMask, AppError> {
                let volume = Volume::parse_within("stored mask", &bytes, max_voxels)?;
                let (header, dims) = (volume.header.clone(), volume.meta.dims);
                Ok(DecodedMask::from_labels(header, dims, &volume.into_labels("stored mask")?))
            })
            .await
            .map_err(AppError::internal)??
        }
    };
    let mask = Arc::new(mask);
    state.heads.insert(object_ref.to_string(), mask.clone());
    Ok(mask)
}

/// A mask version's voxels stored in slabs, ready to commit (with [`commit`]).
pub struct StoredVersion {
    pub object_ref: MaskRef,
    pub manifest: SlabManifest,
    /// The slabs this version wrote (the others it shares with the version it replaces).
    pub written: Vec<StoredSlab>,
    pub mask: DecodedMask,
}

/// Stores `mask` as a new version of `case_id` made from `base` (the version it replaces and
/// its manifest), writing only the slabs listed in `changed`; with no base manifest, every
/// slab is written. Compression runs off the async threads.
pub(crate) async fn store_version(
    state: &AppState,
    case_id: &CaseId,
    base: Option<&SlabManifest>,
    mask: DecodedMask,
    changed: Vec<usize>,
) -> Result<StoredVersion, AppError> {
    let base = base.filter(|manifest| manifest.grid == mask.grid);
    let to_write: Vec<usize> = match base {
        Some(_) => changed,
        None => (0..mask.grid.count()).collect(),
    };
    let slabs: Vec<Arc<[u8]>> = to_write.iter().map(|&index| mask.slabs[index].clone()).collect();
    let packed = tokio::task::spawn_blocking(move || slabs.iter().map(|raw| PackedSlab::pack(raw)).collect::<Vec<_>>())
        .await
        .map_err(AppError::internal)?;
    let mut ids = match base {
        Some(manifest) => manifest.slabs.clone(),
        None => vec![String::new(); mask.grid.count()],
    };
    for (&index, slab) in to_write.iter().zip(&packed) {
        ids[index] = slab.id().to_string();
    }
    let written = volume_slabs::put(state, case_id, packed).await?;
    let manifest = SlabManifest::new(mask.grid, &mask_header(&mask.header, mask.grid.dims), ids);
    Ok(StoredVersion { object_ref: MaskRef::fresh(case_id), manifest, written, mask })
}

/// A chain of mask versions, each made from the one before: a case's own mask, or one reader's
/// reading of a case read by several readers. Its head (current version) is a column of the
/// row that holds it.
#[derive(Clone, Copy, Debug)]
pub enum Chain<'a> {
    Case(&'a CaseId),
    /// By the reading's id.
    Reading(&'a str),
}

impl<'a> Chain<'a> {
    /// The reading of the caller (`my_reading`, when open) or else the case's own mask.
    pub fn of(case_id: &'a CaseId, my_reading: Option<&'a str>) -> Chain<'a> {
        my_reading.map_or(Chain::Case(case_id), Chain::Reading)
    }

    /// The table holding the head, its column naming the case, and the key of the row.
    pub(super) fn holder(&self) -> (&'static str, &'static str, &'a str) {
        match *self {
            Chain::Case(case_id) => ("cases", "id", case_id.as_str()),
            Chain::Reading(reading) => ("readings", "case_id", reading),
        }
    }

    /// The reading, for the rows that record which chain a version continues.
    pub fn reading(&self) -> Option<&'a str> {
        match *self {
            Chain::Case(_) => None,
            Chain::Reading(reading) => Some(reading),
        }
    }

    /// The current version.
    pub async fn head(&self, conn: &mut AnyConnection) -> Result<MaskRef, AppError> {
        let (table, _, key) = self.holder();
        Ok(sqlx::query_scalar(&format!("SELECT head_mask_ref FROM {table} WHERE id = $1"))
            .bind(key)
            .fetch_one(&mut *conn)
            .await?)
    }
}

/// A mask version already written to storage, to become the head of its chain.
pub struct NewVersion<'a> {
    pub case_id: &'a CaseId,
    pub chain: Chain<'a>,
    /// The version the new one was made from; it must still be the case's current mask.
    pub replaces: &'a MaskRef,
    pub stored: &'a StoredVersion,
    pub created_at: i64,
}

/// Inside the caller's transaction: moves the head of the version's chain from `replaces`
/// to the new version and records the version's object (geometry copied from the version it
/// replaces; its file not written yet) and its new slabs. Returns `false`, changing nothing, when the head is no
/// longer `replaces`: someone committed another version first, and this one must not silently
/// discard theirs.
pub async fn commit(tx: &mut AnyConnection, version: &NewVersion<'_>) -> Result<bool, AppError> {
    let (table, _, key) = version.chain.holder();
    let moved = sqlx::query(&format!("UPDATE {table} SET head_mask_ref = $1 WHERE id = $2 AND head_mask_ref = $3"))
        .bind(&version.stored.object_ref)
        .bind(key)
        .bind(version.replaces)
        .execute(&mut *tx)
        .await?;
    if moved.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO objects (object_ref, case_id, kind, size_bytes, sha256, dim_i, dim_j, dim_k,
                              voxel_type, spacing_i, spacing_j, spacing_k, created_at, slabs_json, file_stored)
         SELECT $1, case_id, $5, 0, '', dim_i, dim_j, dim_k, $6, spacing_i, spacing_j, spacing_k, $2, $3, 0
         FROM objects WHERE object_ref = $4",
    )
    .bind(&version.stored.object_ref)
    .bind(version.created_at)
    .bind(version.stored.manifest.to_json())
    .bind(version.replaces)
    .bind(ArtifactKind::Mask.as_str())
    .bind(VoxelType::Uint8.as_str())
    .execute(&mut *tx)
    .await?;
    volume_slabs::record(tx, version.case_id, &version.stored.written, version.created_at).await?;
    Ok(true)
}

/// Where mask version `object_ref` downloads as a `.nii.gz`: a presigned URL once its file is
/// written, else the API path (the same as the key) that writes it and redirects.
pub(crate) async fn file_url(state: &AppState, object_ref: &str, file_stored: bool) -> Result<String, AppError> {
    if file_stored {
        state.store.presign_get(object_ref)
    } else {
        Ok(format!("/{object_ref}"))
    }
}

/// Writes the `.nii.gz` of mask version `object_ref` from its slabs unless it is written
/// already; its hex SHA-256. Within an instance one request writes a version's file while the
/// others asking for it wait, and only a few are written at once. Writers in different
/// instances write the same bytes, and the first record stands.
pub(crate) async fn ensure_file(state: &AppState, object_ref: &str) -> Result<String, AppError> {
    if let Some(sha256) = stored_file(state, object_ref).await? {
        return Ok(sha256);
    }
    let turn = state.mask_files.turn(object_ref).await;
    // Written by the request this one waited for?
    if let Some(sha256) = stored_file(state, object_ref).await? {
        return Ok(sha256);
    }
    turn.did_work();
    let mask = load_mask(state, object_ref).await?;
    let file =
        tokio::task::spawn_blocking(move || gzip_mask_slabs(&mask.header, mask.dims(), &mask.slabs, SLAB_GZIP_LEVEL))
            .await
            .map_err(AppError::internal)?;
    let (size, sha256) = (file.len() as i64, hex::encode(Sha256::digest(&file)));
    state.store.put(object_ref, file).await?;
    sqlx::query(
        "UPDATE objects SET file_stored = 1, size_bytes = $1, sha256 = $2 WHERE object_ref = $3 AND file_stored = 0",
    )
    .bind(size)
    .bind(&sha256)
    .bind(object_ref)
    .execute(&state.db.pool)
    .await?;
    tracing::info!(%object_ref, size, "mask version file written");
    Ok(sha256)
}

/// The SHA-256 of mask version `object_ref`'s file when it is written.
async fn stored_file(state: &AppState, object_ref: &str) -> Result<Option<String>, AppError> {
    let (file_stored, sha256): (i64, String) =
        sqlx::query_as("SELECT file_stored, sha256 FROM objects WHERE object_ref = $1 AND kind = $2")
            .bind(object_ref)
            .bind(ArtifactKind::Mask)
            .fetch_optional(&state.db.pool)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("mask version {object_ref}")))?;
    Ok((file_stored == 1).then_some(sha256))
}
