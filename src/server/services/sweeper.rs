//! Housekeeping that keeps storage and the database tidy after failures: objects written by a
//! save or import whose transaction never committed (a crash, a lost database) are deleted
//! once old enough that no save can still be committing them, and expired idempotency keys
//! are forgotten.

use std::collections::HashSet;
use std::time::Duration;

use sqlx::Row;
use tokio_util::sync::CancellationToken;

use super::idempotency;
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
    let known: HashSet<String> =
        sqlx::query("SELECT object_ref FROM objects UNION SELECT object_ref FROM predictions")
            .fetch_all(&state.db.pool)
            .await?
            .into_iter()
            .map(|row| row.get("object_ref"))
            .collect();
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

/// Runs the housekeeping periodically until `shutdown`.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
        if let Err(err) = sweep_orphans(&state, ORPHAN_MIN_AGE).await {
            tracing::warn!(%err, "orphan sweep failed; will retry");
        }
        if let Err(err) = idempotency::purge_expired(&state.db).await {
            tracing::warn!(%err, "idempotency key purge failed; will retry");
        }
    }
}
