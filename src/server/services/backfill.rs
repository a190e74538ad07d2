//! Backfills: "evaluate this version on all labelled cases". One job per labelled case that
//! the version has not predicted yet, queued as shadow runs behind every job of imports and
//! people (`jobs::Trigger::Backfill`), so interactive runs never wait. The background
//! evaluator scores each result as it arrives. Progress is counted from the jobs themselves;
//! cancelling removes the jobs still queued (running ones finish).

use serde_json::json;
use uuid::Uuid;

use super::audit::{self, AuditAction, AuditEvent};
use super::jobs;
use crate::api::{BackfillProgress, CaseId, JobStatus, ModelId, ModelState};
use crate::server::clock::now_ms;
use crate::server::error::AppError;
use crate::server::identity::{Role, User};
use crate::server::state::AppState;

/// `POST /models/{id}/backfill`: queues the version's jobs; one unfinished backfill per
/// version at a time, however many ask at once.
pub async fn start(state: &AppState, user: &User, model_id: &ModelId) -> Result<BackfillProgress, AppError> {
    user.require_any(&Role::COORDINATORS, "starting a backfill")?;
    let mut tx = state.db.pool.begin().await?;
    // A write first: SQLite takes its write lock before any read, and PostgreSQL locks the
    // version's row until commit, so of two starts at once the later one sees the earlier's jobs.
    let locked =
        sqlx::query("UPDATE models SET updated_at = updated_at WHERE id = $1").bind(model_id).execute(&mut *tx).await?;
    if locked.rows_affected() == 0 {
        return Err(AppError::NotFound(format!("model {model_id}")));
    }
    let (name, version, model_state): (String, String, ModelState) =
        sqlx::query_as("SELECT name, version, state FROM models WHERE id = $1")
            .bind(model_id)
            .fetch_one(&mut *tx)
            .await?;
    if !matches!(model_state, ModelState::Shadow | ModelState::Registered) {
        return Err(AppError::Conflict(format!(
            "{name} {version} is {model_state}; a backfill evaluates a shadow or registered version (production runs on every new case already)"
        )));
    }
    let running: Option<String> = sqlx::query_scalar(
        "SELECT b.id FROM backfills b
         WHERE b.model_id = $1 AND EXISTS (SELECT 1 FROM model_jobs j WHERE j.backfill_id = b.id AND j.status IN ($2, $3))
         LIMIT 1",
    )
    .bind(model_id)
    .bind(JobStatus::Queued.as_str())
    .bind(JobStatus::Running.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(running) = running {
        return Err(AppError::Conflict(format!(
            "backfill {running} of this version is still running; cancel it or wait"
        )));
    }
    let cases: Vec<CaseId> = sqlx::query_scalar(
        "SELECT c.id FROM cases c
         WHERE EXISTS (SELECT 1 FROM labels l WHERE l.case_id = c.id)
           AND NOT EXISTS (SELECT 1 FROM predictions p WHERE p.case_id = c.id AND p.model_id = $1)
           AND NOT EXISTS (SELECT 1 FROM model_jobs j WHERE j.case_id = c.id AND j.model_id = $1 AND j.status IN ($2, $3))
         ORDER BY c.created_at, c.id",
    )
    .bind(model_id)
    .bind(JobStatus::Queued.as_str())
    .bind(JobStatus::Running.as_str())
    .fetch_all(&mut *tx)
    .await?;
    if cases.is_empty() {
        return Err(AppError::Conflict(format!(
            "every labelled case already has a prediction of {name} {version} (or one is on its way)"
        )));
    }
    let id = Uuid::new_v4().to_string();
    sqlx::query("INSERT INTO backfills (id, model_id, created_by, total, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&id)
        .bind(model_id)
        .bind(&user.id)
        .bind(cases.len() as i64)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    jobs::enqueue_backfill(&mut tx, state, &id, model_id, &cases).await?;
    let details =
        json!({ "backfill_id": id, "model_id": model_id, "name": name, "version": version, "cases": cases.len() });
    audit::record(
        &mut tx,
        &state.db,
        AuditEvent { action: AuditAction::BackfillStarted, user_id: Some(&user.id), case_id: None, details },
    )
    .await?;
    tx.commit().await?;
    state.jobs_ready.notify_waiters();
    tracing::info!(backfill_id = %id, %model_id, cases = cases.len(), "backfill started");
    progress(state, &id).await
}

/// `GET /backfills/{id}`.
pub async fn progress(state: &AppState, id: &str) -> Result<BackfillProgress, AppError> {
    #[derive(sqlx::FromRow)]
    struct BackfillRow {
        model_id: ModelId,
        total: i64,
        cancelled_jobs: i64,
        cancelled_at: Option<i64>,
        created_at: i64,
    }
    let backfill: BackfillRow =
        sqlx::query_as("SELECT model_id, total, cancelled_jobs, cancelled_at, created_at FROM backfills WHERE id = $1")
            .bind(id)
            .fetch_optional(&state.db.pool)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("backfill {id}")))?;
    let counts: Vec<(JobStatus, i64, i64)> = sqlx::query_as(
        "SELECT status, COUNT(*) AS jobs, MAX(updated_at) AS last FROM model_jobs WHERE backfill_id = $1 GROUP BY status",
    )
    .bind(id)
    .fetch_all(&state.db.pool)
    .await?;
    let created_at = backfill.created_at;
    let mut progress = BackfillProgress {
        id: id.to_string(),
        model_id: backfill.model_id,
        total: backfill.total as u64,
        succeeded: 0,
        failed: 0,
        running: 0,
        queued: 0,
        cancelled: backfill.cancelled_jobs as u64,
        created_at_ms: created_at,
        cancelled_at_ms: backfill.cancelled_at,
        finished: false,
        per_minute: None,
        eta_ms: None,
    };
    let mut last_finish = created_at;
    for (status, jobs, last) in counts {
        let jobs = jobs as u64;
        match status {
            JobStatus::Succeeded => progress.succeeded = jobs,
            JobStatus::Failed => progress.failed = jobs,
            JobStatus::Running => progress.running = jobs,
            JobStatus::Queued => progress.queued = jobs,
        }
        if matches!(status, JobStatus::Succeeded | JobStatus::Failed) {
            last_finish = last_finish.max(last);
        }
    }
    let done = progress.succeeded + progress.failed;
    let remaining = progress.running + progress.queued;
    progress.finished = remaining == 0;
    let minutes = (last_finish - created_at) as f64 / 60_000.0;
    if done > 0 && minutes > 0.0 {
        let per_minute = done as f64 / minutes;
        progress.per_minute = Some(per_minute);
        progress.eta_ms = (remaining > 0).then(|| (remaining as f64 / per_minute * 60_000.0) as i64);
    }
    Ok(progress)
}

/// The latest backfill of `model_id`, if any.
pub(crate) async fn latest(state: &AppState, model_id: &ModelId) -> Result<Option<BackfillProgress>, AppError> {
    let id: Option<String> =
        sqlx::query_scalar("SELECT id FROM backfills WHERE model_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1")
            .bind(model_id)
            .fetch_optional(&state.db.pool)
            .await?;
    match id {
        Some(id) => Ok(Some(progress(state, &id).await?)),
        None => Ok(None),
    }
}

/// `POST /backfills/{id}/cancel`: removes the jobs still queued; running ones finish.
pub async fn cancel(state: &AppState, user: &User, id: &str) -> Result<BackfillProgress, AppError> {
    user.require_any(&Role::COORDINATORS, "cancelling a backfill")?;
    let at = now_ms();
    let mut tx = state.db.pool.begin().await?;
    // The write first: SQLite takes its write lock before any read.
    let removed = sqlx::query("DELETE FROM model_jobs WHERE backfill_id = $1 AND status = $2")
        .bind(id)
        .bind(JobStatus::Queued.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let updated = sqlx::query(
        "UPDATE backfills SET cancelled_jobs = cancelled_jobs + $1, cancelled_at = COALESCE(cancelled_at, $2) WHERE id = $3",
    )
    .bind(removed as i64)
    .bind(at)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(AppError::NotFound(format!("backfill {id}")));
    }
    let details = json!({ "backfill_id": id, "removed_jobs": removed });
    audit::record(
        &mut tx,
        &state.db,
        AuditEvent { action: AuditAction::BackfillCancelled, user_id: Some(&user.id), case_id: None, details },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(backfill_id = %id, removed, "backfill cancelled");
    progress(state, id).await
}
