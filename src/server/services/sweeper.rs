//! Housekeeping that keeps storage and the database tidy after failures: objects (files and
//! slabs) written by a save or import whose transaction never committed (a crash, a lost
//! database) are deleted once old enough that no save can still be committing them, expired
//! idempotency keys and ended login-failure windows are forgotten, and cases whose label
//! counts are not known yet (imported before the worklist kept them) are counted from their
//! current mask.

use std::collections::HashSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::mask_versions::load_mask;
use super::{idempotency, sso};
use crate::api::CaseId;
use crate::mask_ops::label_counts;
use crate::server::clock::now_ms;
use crate::server::error::AppError;
use crate::server::state::AppState;

/// An unreferenced object younger than this may belong to a save still in flight.
pub const ORPHAN_MIN_AGE: Duration = Duration::from_secs(3600);
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Deletes stored case objects and model predictions no database row references and older
/// than `min_age`; returns how many were deleted.
pub async fn sweep_orphans(state: &AppState, min_age: Duration) -> Result<usize, AppError> {
    let mut stored = state.store.list_with_age("cases/").await?;
    stored.extend(state.store.list_with_age("predictions/").await?);
    let known: Vec<String> = sqlx::query_scalar(
        "SELECT object_ref FROM objects UNION SELECT object_ref FROM predictions UNION SELECT object_ref FROM slabs",
    )
    .fetch_all(&state.db.pool)
    .await?;
    let known: HashSet<String> = known.into_iter().collect();
    let cutoff = now_ms() - min_age.as_millis() as i64;
    let mut deleted = 0;
    for (object_ref, modified) in stored {
        if modified <= cutoff && !known.contains(&object_ref) {
            state.store.delete(&object_ref).await?;
            tracing::info!(%object_ref, "deleted unreferenced object");
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Most cases counted in one pass (each loads one mask, one at a time).
const COUNTS_PER_PASS: i64 = 1000;

/// Counts the voxels per label of up to [`COUNTS_PER_PASS`] cases whose counts are not known,
/// from their current mask; returns how many were counted. A case saved meanwhile keeps its
/// unknown counts until the next pass (compare-and-set on the mask it was counted from).
pub async fn count_unknown_labels(state: &AppState) -> Result<usize, AppError> {
    let cases: Vec<(CaseId, String)> =
        sqlx::query_as("SELECT id, head_mask_ref FROM cases WHERE label_counts_json = '' ORDER BY id LIMIT $1")
            .bind(COUNTS_PER_PASS)
            .fetch_all(&state.db.pool)
            .await?;
    let mut counted = 0;
    for (case_id, mask_ref) in cases {
        let mask = match load_mask(state, &mask_ref).await {
            Ok(mask) => mask,
            Err(err) => {
                tracing::warn!(%case_id, %mask_ref, %err, "cannot count the labels of this case's mask");
                continue;
            }
        };
        let counts =
            tokio::task::spawn_blocking(move || label_counts(&mask.labels())).await.map_err(AppError::internal)?;
        let updated = sqlx::query(
            "UPDATE cases SET label_counts_json = $1 WHERE id = $2 AND head_mask_ref = $3 AND label_counts_json = ''",
        )
        .bind(serde_json::to_string(&counts).map_err(AppError::internal)?)
        .bind(&case_id)
        .bind(&mask_ref)
        .execute(&state.db.pool)
        .await?;
        counted += updated.rows_affected() as usize;
    }
    Ok(counted)
}

async fn count_labels(state: &AppState) {
    match count_unknown_labels(state).await {
        Ok(0) => {}
        Ok(counted) => tracing::info!(counted, "counted the labels of cases imported before counts were kept"),
        Err(err) => tracing::warn!(%err, "label counting failed; will retry"),
    }
}

/// Counts unknown label counts at start (cases from before they were kept show them soon),
/// then runs all the housekeeping periodically until `shutdown`.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    count_labels(&state).await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
        count_labels(&state).await;
        if let Err(err) = sweep_orphans(&state, ORPHAN_MIN_AGE).await {
            tracing::warn!(%err, "orphan sweep failed; will retry");
        }
        if let Err(err) = idempotency::purge_expired(&state.db).await {
            tracing::warn!(%err, "idempotency key purge failed; will retry");
        }
        if let Err(err) = state.logins.purge_ended(&state.db).await {
            tracing::warn!(%err, "purge of ended login-failure windows failed; will retry");
        }
        if let Err(err) = sso::purge_abandoned(&state).await {
            tracing::warn!(%err, "purge of abandoned sign-on attempts failed; will retry");
        }
    }
}
