//! Saving a labeler's edits: the label-save arrow of the design. The edits are applied to the
//! case's current mask (or, on a case read by several readers, the caller's reading), the
//! slabs they change are written as new objects (never overwriting; the others are shared with
//! the version before), and one transaction records the new version, the label, the audit row
//! and the idempotent response and moves the head, but only if the head is still the version
//! the edits were based on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::access::{CaseAccess, Save};
use super::audit::{self, AuditAction, AuditEvent};
use super::idempotency::{self, Claim, IdempotencyKey};
use super::mask_versions::{self, load_mask, Chain, NewVersion, StoredVersion};
use super::volume_slabs::SlabManifest;
use super::workflow;
use crate::api::{ApiError, CaseId, ErrorBody, ErrorCode, LabelDef, LabelSaved, MaskRef, SaveLabelRequest};
use crate::edits::{LabelChanges, MaskEdits};
use crate::server::clock::now_ms;
use crate::server::error::AppError;
use crate::server::mask_cache::DecodedMask;
use crate::server::rows::Dims;
use crate::server::state::AppState;
use crate::server::telemetry;
use crate::slabs::edit_slabs;

/// The HTTP answer of a save: a fresh one, or the stored one for a repeated key.
#[derive(Debug)]
pub struct SaveOutcome {
    pub status: u16,
    pub body: String,
    pub replayed: bool,
    /// Bytes of slabs this save wrote (none for a replay).
    pub written_bytes: u64,
}

impl SaveOutcome {
    /// The answer as a server function gives it: the saved version, or the error the REST
    /// answer carries.
    pub fn into_saved(self) -> Result<LabelSaved, ApiError> {
        let unreadable = |err: serde_json::Error| ApiError::new(ErrorCode::Internal, format!("a stored answer: {err}"));
        match self.status {
            200..=299 => serde_json::from_str(&self.body).map_err(unreadable),
            _ => Err(serde_json::from_str::<ErrorBody>(&self.body).map_err(unreadable)?.error),
        }
    }
}

/// Saves `request` once per idempotency key, as the caller `access` was granted to, and
/// counts the save by outcome in the metrics.
pub async fn save_label(
    state: &AppState,
    access: CaseAccess<Save>,
    key: &IdempotencyKey,
    request: &SaveLabelRequest,
) -> Result<SaveOutcome, AppError> {
    let started = Instant::now();
    let result = save_once(state, access, key, request).await;
    let outcome = match &result {
        Ok(saved) if saved.replayed => "replayed",
        Err(AppError::StaleBase { .. } | AppError::KeyInUse | AppError::Conflict(_)) => "conflict",
        other => telemetry::outcome(other),
    };
    metrics::counter!("seglab_label_saves_total", "outcome" => outcome).increment(1);
    metrics::histogram!("seglab_label_save_duration_seconds", "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    if let Some(saved) = result.as_ref().ok().filter(|saved| !saved.replayed) {
        metrics::histogram!("seglab_label_save_written_bytes").record(saved.written_bytes as f64);
    }
    result
}

async fn save_once(
    state: &AppState,
    mut access: CaseAccess<Save>,
    key: &IdempotencyKey,
    request: &SaveLabelRequest,
) -> Result<SaveOutcome, AppError> {
    if access.case_id().as_str() != request.case_id {
        return Err(AppError::internal(format!(
            "a permission to save on case {} used for case {}",
            access.case_id(),
            request.case_id
        )));
    }
    let user = access.user().clone();
    let edits = base64::engine::general_purpose::STANDARD
        .decode(request.edits.as_bytes())
        .map_err(|e| AppError::BadRequest(format!("`edits` is not valid base64: {e}")))?;
    let fingerprint = hex::encode(Sha256::digest(serde_json::to_vec(request).map_err(AppError::internal)?));
    match idempotency::claim(&state.db, &user.id, key, &fingerprint).await? {
        Claim::Replay { status, body } => return Ok(SaveOutcome { status, body, replayed: true, written_bytes: 0 }),
        Claim::Run => {}
    }
    match apply_and_commit(state, &mut access, key, request, &edits).await {
        Ok((body, written_bytes)) => Ok(SaveOutcome { status: 201, body, replayed: false, written_bytes }),
        Err(err) => {
            if let Err(release_err) = idempotency::release(&state.db, &user.id, key).await {
                tracing::warn!(%release_err, "could not release idempotency key; it frees itself after its lease");
            }
            Err(err)
        }
    }
}

/// Does the save and returns the JSON body of its 201 answer (also stored for replays) and
/// the bytes it wrote: reads the case's current version, writes the edited one beside it, then
/// commits.
async fn apply_and_commit(
    state: &AppState,
    access: &mut CaseAccess<Save>,
    key: &IdempotencyKey,
    request: &SaveLabelRequest,
    encoded_edits: &[u8],
) -> Result<(String, u64), AppError> {
    let case_id = access.case_id().clone();
    let reading = access.facts().open_reading().map(str::to_string);
    let chain = Chain::of(&case_id, reading.as_deref());
    let head = current_head(state, chain).await?;
    if head.head_mask_ref.as_str() != request.base_mask_ref {
        return Err(AppError::StaleBase { base: request.base_mask_ref.clone(), current: head.head_mask_ref });
    }
    let edits = head.decode(encoded_edits)?;
    let edited = write_edited(state, &case_id, &head, edits).await?;
    let saved = LabelSaved {
        label_id: Uuid::new_v4().to_string(),
        new_mask_ref: edited.stored.object_ref.clone(),
        voxels_changed: edited.voxels_changed,
    };
    let body = serde_json::to_string(&saved).map_err(AppError::internal)?;
    commit(state, access, key, chain, &head.head_mask_ref, &edited, &saved, &body).await?;
    let written_bytes = edited.stored.written.iter().map(|slab| slab.size_bytes as u64).sum();
    // Committed: the next save on this case edits the new version straight from memory, and
    // the evaluator scores the models against it.
    state.heads.insert(saved.new_mask_ref.to_string(), Arc::new(edited.stored.mask));
    state.evaluations_ready.notify_one();
    tracing::info!(%case_id, label_id = %saved.label_id, voxels_changed = saved.voxels_changed, "label saved");
    Ok((body, written_bytes))
}

/// The current mask version of the case (or of the caller's reading of it), which a save's
/// edits must be based on.
#[derive(sqlx::FromRow)]
struct CurrentHead {
    head_mask_ref: MaskRef,
    labels_json: String,
    #[sqlx(flatten)]
    dims: Dims,
    slabs_json: String,
}

async fn current_head(state: &AppState, chain: Chain<'_>) -> Result<CurrentHead, AppError> {
    let (table, case_column, key) = chain.holder();
    sqlx::query_as(&format!(
        "SELECT c.labels_json, h.head_mask_ref, o.dim_i, o.dim_j, o.dim_k, o.slabs_json
         FROM {table} h JOIN cases c ON c.id = h.{case_column} JOIN objects o ON o.object_ref = h.head_mask_ref
         WHERE h.id = $1"
    ))
    .bind(key)
    .fetch_optional(&state.db.pool)
    .await?
    .ok_or_else(|| AppError::NotFound(format!("mask chain {key}")))
}

impl CurrentHead {
    /// The encoded edits, checked against this version's size and the case's labels.
    fn decode(&self, encoded: &[u8]) -> Result<MaskEdits, AppError> {
        let labels: Vec<LabelDef> = serde_json::from_str(&self.labels_json).map_err(AppError::internal)?;
        let allowed: Vec<u8> = labels.iter().map(|l| l.value).collect();
        let voxel_count = self.dims.voxels().iter().map(|&d| u64::from(d)).product();
        MaskEdits::decode(encoded, voxel_count, &allowed).map_err(|e| AppError::Unprocessable(e.to_string()))
    }
}

/// A new mask version, stored but not yet the case's.
struct EditedVersion {
    stored: StoredVersion,
    count_changes: LabelChanges,
    voxels_changed: u64,
    runs: usize,
}

/// Applies `edits` to `head` and stores the result. Only the slabs the edits touch are copied,
/// edited and written; the rest are shared with the version the edits replace.
async fn write_edited(
    state: &AppState,
    case_id: &CaseId,
    head: &CurrentHead,
    edits: MaskEdits,
) -> Result<EditedVersion, AppError> {
    let base_manifest = SlabManifest::parse(&head.slabs_json)?;
    let base = load_mask(state, head.head_mask_ref.as_str()).await?;
    let (voxels_changed, runs) = (edits.voxel_count(), edits.runs().len());
    let (edited, count_changes) = {
        let base = base.clone();
        tokio::task::spawn_blocking(move || edit_slabs(&base.grid, &base.slabs, &edits))
            .await
            .map_err(AppError::internal)?
    };
    let mut slabs = base.slabs.clone();
    let changed: Vec<usize> = edited.iter().map(|(index, _)| *index).collect();
    for (index, slab) in edited {
        slabs[index] = Arc::from(slab);
    }
    let mask = DecodedMask { header: base.header.clone(), grid: base.grid, slabs };
    let stored = mask_versions::store_version(state, case_id, base_manifest.as_ref(), mask, changed).await?;
    Ok(EditedVersion { stored, count_changes, voxels_changed, runs })
}

/// One transaction: moves the head of `chain` from `replaced` to the edited
/// version (or refuses as stale when another save moved it first), applies the workflow's
/// rules of a save, and records the label, the audit row and the answer for replays.
#[allow(clippy::too_many_arguments)]
async fn commit(
    state: &AppState,
    access: &mut CaseAccess<Save>,
    key: &IdempotencyKey,
    chain: Chain<'_>,
    replaced: &MaskRef,
    edited: &EditedVersion,
    saved: &LabelSaved,
    body: &str,
) -> Result<(), AppError> {
    let (user, case_id) = (access.user().clone(), access.case_id().clone());
    let created_at = now_ms();
    let mut tx = state.db.pool.begin().await?;
    let version = NewVersion { case_id: &case_id, chain, replaces: replaced, stored: &edited.stored, created_at };
    if !mask_versions::commit(&mut tx, &version).await? {
        tx.rollback().await?;
        let current = chain.head(&mut *state.db.pool.acquire().await?).await?;
        return Err(AppError::StaleBase { base: replaced.to_string(), current });
    }
    workflow::on_save(&mut tx, state, access).await?;
    // The case's label counts are its own mask's: a reading's would tell the other readers.
    if chain.reading().is_none() {
        update_label_counts(&mut tx, &case_id, &edited.count_changes).await?;
    }
    sqlx::query(
        "INSERT INTO labels (id, case_id, user_id, old_mask_ref, new_mask_ref, voxels_changed, runs, created_at, reading_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&saved.label_id)
    .bind(&case_id)
    .bind(&user.id)
    .bind(replaced)
    .bind(&saved.new_mask_ref)
    .bind(edited.voxels_changed as i64)
    .bind(edited.runs as i64)
    .bind(created_at)
    .bind(chain.reading())
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &state.db,
        AuditEvent {
            action: AuditAction::LabelEdit,
            user_id: Some(&user.id),
            case_id: Some(&case_id),
            details: json!({
                "label_id": saved.label_id,
                "old_mask_ref": replaced,
                "new_mask_ref": saved.new_mask_ref,
                "voxels_changed": edited.voxels_changed,
                "runs": edited.runs,
                "reading_id": chain.reading(),
            }),
        },
    )
    .await?;
    idempotency::complete(&mut tx, &user.id, key, 201, body).await?;
    tx.commit().await?;
    Ok(())
}

/// Inside the save's transaction (the case's row is locked): adds the edit's changes to the
/// case's label counts, unless those are not known (cases imported before they were kept).
async fn update_label_counts(
    tx: &mut sqlx::AnyConnection,
    case_id: &CaseId,
    changes: &LabelChanges,
) -> Result<(), AppError> {
    let stored: String = sqlx::query_scalar("SELECT label_counts_json FROM cases WHERE id = $1")
        .bind(case_id)
        .fetch_one(&mut *tx)
        .await?;
    if stored.is_empty() || changes.is_empty() {
        return Ok(());
    }
    let mut counts: BTreeMap<u8, i64> = serde_json::from_str(&stored).map_err(AppError::internal)?;
    for (label, change) in changes {
        *counts.entry(*label).or_insert(0) += change;
    }
    counts.retain(|_, count| *count > 0);
    sqlx::query("UPDATE cases SET label_counts_json = $1 WHERE id = $2")
        .bind(serde_json::to_string(&counts).map_err(AppError::internal)?)
        .bind(case_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
