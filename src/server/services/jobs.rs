//! The durable job queue of the orchestrator, in the `model_jobs` table: enqueueing (inside
//! the trigger's own transaction, so no trigger is lost), claiming with a lease (PostgreSQL:
//! `FOR UPDATE SKIP LOCKED`; SQLite serialises writers), and recording each attempt's end:
//! success with its output, failure with a backoff or for good, or a hand-back on shutdown.
//! A job whose worker crashed becomes claimable again when its lease runs out.

use serde_json::json;
use sqlx::AnyConnection;
use uuid::Uuid;

use super::access::{blinded_to_models_condition, readable_condition, CaseAccess, Read};
use super::audit::{self, AuditAction, AuditEvent};
use crate::api::{CaseId, Job, JobStatus, ModelId, ModelState, ModelSummary};
use crate::server::clock::now_ms;
use crate::server::db::Backend;
use crate::server::error::AppError;
use crate::server::identity::User;
use crate::server::state::AppState;

/// What made a run happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A new case arrived.
    CaseImport,
    /// Someone asked for it ("run models on this case").
    Manual,
    /// "Evaluate this version on all labelled cases" (`services::backfill`).
    Backfill,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::CaseImport => "case_import",
            Trigger::Manual => "manual",
            Trigger::Backfill => "backfill",
        }
    }

    /// Lower runs first: imports and people never wait behind a backfill.
    fn priority(self) -> i64 {
        match self {
            Trigger::CaseImport | Trigger::Manual => 0,
            Trigger::Backfill => 1,
        }
    }
}

/// Enqueues one job per model in `active` for `case_id` inside the caller's transaction.
pub(crate) async fn enqueue(
    tx: &mut AnyConnection,
    state: &AppState,
    active: &[ModelSummary],
    case_id: &CaseId,
    trigger: Trigger,
    user_id: Option<&str>,
) -> Result<String, AppError> {
    let run_id = Uuid::new_v4().to_string();
    let at = now_ms();
    let mut jobs = Vec::new();
    for model in active {
        let job =
            NewJob { run_id: &run_id, case_id, model_id: &model.id, role: model.state, trigger, backfill_id: None };
        let job_id = insert(tx, state, job, at).await?;
        jobs.push(
            json!({ "job_id": job_id, "model_id": model.id, "version": model.version, "role": model.state.as_str() }),
        );
    }
    if !jobs.is_empty() {
        audit::record(
            tx,
            &state.db,
            AuditEvent {
                action: AuditAction::ModelRun,
                user_id,
                case_id: Some(case_id),
                details: json!({ "run_id": run_id, "trigger": trigger.as_str(), "jobs": jobs }),
            },
        )
        .await?;
    }
    Ok(run_id)
}

/// One job to queue.
struct NewJob<'a> {
    run_id: &'a str,
    case_id: &'a CaseId,
    model_id: &'a ModelId,
    role: ModelState,
    trigger: Trigger,
    backfill_id: Option<&'a str>,
}

/// Queues `job` under a new id, which it returns.
async fn insert(tx: &mut AnyConnection, state: &AppState, job: NewJob<'_>, at: i64) -> Result<String, AppError> {
    let job_id = Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO model_jobs (id, run_id, case_id, model_id, role, trigger_kind, status, attempts,
                                 max_attempts, next_attempt_at, created_at, updated_at, priority, backfill_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $9, $9, $10, $11)",
    )
    .bind(&job_id)
    .bind(job.run_id)
    .bind(job.case_id)
    .bind(job.model_id)
    .bind(job.role.as_str())
    .bind(job.trigger.as_str())
    .bind(JobStatus::Queued.as_str())
    .bind(state.config.orchestrator.job_max_attempts as i64)
    .bind(at)
    .bind(job.trigger.priority())
    .bind(job.backfill_id)
    .execute(&mut *tx)
    .await?;
    Ok(job_id)
}

/// Enqueues the jobs of backfill `backfill_id` (also their run id): `model_id` on each case,
/// as shadow runs (their output goes apart and never pre-labels a case), behind every job of
/// imports and people.
pub(crate) async fn enqueue_backfill(
    tx: &mut AnyConnection,
    state: &AppState,
    backfill_id: &str,
    model_id: &ModelId,
    case_ids: &[CaseId],
) -> Result<(), AppError> {
    let at = now_ms();
    for case_id in case_ids {
        let job = NewJob {
            run_id: backfill_id,
            case_id,
            model_id,
            role: ModelState::Shadow,
            trigger: Trigger::Backfill,
            backfill_id: Some(backfill_id),
        };
        insert(tx, state, job, at).await?;
    }
    Ok(())
}

/// Which jobs to list.
pub enum JobFilter<'a> {
    Case(&'a CaseAccess<Read>),
    Run(&'a str),
    Model(&'a ModelId),
}

/// In `last_error`, what an inference server said itself follows this character (the ASCII
/// unit separator, never in our own messages).
const SERVER_WORDS: char = '\u{1f}';

/// `err` as a job's `last_error` keeps it, an inference server's own words set apart.
pub(crate) fn stored_error(err: &AppError) -> String {
    match err {
        AppError::InferenceServer { summary, detail } => format!("{summary}{SERVER_WORDS}{detail}"),
        other => other.to_string(),
    }
}

/// A stored `last_error` as its reader sees it: what an inference server said (which may
/// carry anything) only for ML engineers and admins, our summary for everyone.
fn readable_error(stored: String, is_coordinator: bool) -> String {
    match stored.split_once(SERVER_WORDS) {
        Some((summary, said)) if is_coordinator => format!("{summary}: {said}"),
        Some((summary, _)) => summary.to_string(),
        None => stored,
    }
}

/// A job with its model's name and version, as listed.
#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    run_id: String,
    case_id: CaseId,
    model_id: ModelId,
    name: String,
    version: String,
    role: ModelState,
    trigger_kind: String,
    status: JobStatus,
    attempts: i64,
    max_attempts: i64,
    last_error: Option<String>,
    output_ref: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl JobRow {
    /// The job as `is_coordinator` may see it: outputs and inference servers' words for ML
    /// engineers and admins only.
    fn seen_by(self, is_coordinator: bool) -> Job {
        Job {
            id: self.id,
            run_id: self.run_id,
            case_id: self.case_id,
            model_id: self.model_id,
            model_name: self.name,
            model_version: self.version,
            role: self.role,
            trigger: self.trigger_kind,
            status: self.status,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            last_error: self.last_error.map(|stored| readable_error(stored, is_coordinator)),
            output_ref: self.output_ref.filter(|_| is_coordinator),
            created_at_ms: self.created_at,
            updated_at_ms: self.updated_at,
        }
    }
}

/// The jobs `user` may see: those of cases they may read, and shadow jobs only for ML
/// engineers and admins (labelers never see what a shadow version did).
pub(crate) async fn list_jobs(state: &AppState, user: &User, filter: JobFilter<'_>) -> Result<Vec<Job>, AppError> {
    let (column, value) = match filter {
        JobFilter::Case(access) => ("j.case_id", access.case_id().as_str()),
        JobFilter::Run(id) => ("j.run_id", id),
        JobFilter::Model(id) => ("j.model_id", id.as_str()),
    };
    let roles = if user.is_coordinator() { "" } else { "AND j.role = $3" };
    let sql = format!(
        "SELECT j.id, j.run_id, j.case_id, j.model_id, m.name, m.version, j.role, j.trigger_kind, j.status,
                j.attempts, j.max_attempts, j.last_error, j.output_ref, j.created_at, j.updated_at
         FROM model_jobs j JOIN models m ON m.id = j.model_id JOIN cases c ON c.id = j.case_id
         WHERE {column} = $1 AND {readable} AND NOT {blinded} {roles}
         ORDER BY j.created_at DESC, m.name, j.role LIMIT 200",
        readable = readable_condition(user, 2),
        blinded = blinded_to_models_condition(2),
    );
    let mut query = sqlx::query_as::<_, JobRow>(&sql).bind(value).bind(&user.id);
    // Bound only where the statement names it: PostgreSQL refuses an unused parameter.
    if !user.is_coordinator() {
        query = query.bind(ModelState::Production);
    }
    let rows = query.fetch_all(&state.db.pool).await?;
    Ok(rows.into_iter().map(|row| row.seen_by(user.is_coordinator())).collect())
}

/// A claimed job.
#[derive(sqlx::FromRow)]
pub struct Claimed {
    pub id: String,
    pub case_id: CaseId,
    pub model_id: ModelId,
    pub role: ModelState,
    pub attempts: i64,
    pub max_attempts: i64,
}

/// The queued jobs of one priority (0 runs first), and when the oldest was queued.
#[derive(sqlx::FromRow)]
pub struct QueueDepth {
    pub priority: i64,
    pub queued: i64,
    pub oldest_created_at: i64,
}

/// The queue as the metrics report it: queued jobs per priority.
pub async fn queue_depths(state: &AppState) -> Result<Vec<QueueDepth>, AppError> {
    Ok(sqlx::query_as(
        "SELECT priority, COUNT(*) AS queued, MIN(created_at) AS oldest_created_at
         FROM model_jobs WHERE status = $1 GROUP BY priority",
    )
    .bind(JobStatus::Queued.as_str())
    .fetch_all(&state.db.pool)
    .await?)
}

/// Takes the next due job for `worker`, with a lease of the job timeout plus a margin.
pub async fn claim(state: &AppState, worker: &str) -> Result<Option<Claimed>, AppError> {
    let now = now_ms();
    // A job whose worker vanished during its last attempt (a crash, perhaps caused by the job)
    // is not tried again.
    sqlx::query(
        "UPDATE model_jobs SET status = $2, lease_until = NULL, worker = NULL, updated_at = $1,
                last_error = 'the worker stopped during the last attempt (crash or kill)'
         WHERE status = $3 AND lease_until < $1 AND attempts >= max_attempts",
    )
    .bind(now)
    .bind(JobStatus::Failed.as_str())
    .bind(JobStatus::Running.as_str())
    .execute(&state.db.pool)
    .await?;
    // The margin lets an attempt that hit its timeout record the failure itself; it is never
    // more than the timeout, so a short timeout also means a crashed instance's job is soon
    // taken up elsewhere.
    let timeout = state.config.orchestrator.job_timeout_secs as i64;
    let lease = now + (timeout + timeout.clamp(1, 30)) * 1000;
    // PostgreSQL: skip rows another instance is claiming; SQLite runs one writer at a time.
    let lock = match state.db.backend {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let claimed = sqlx::query_as(&format!(
        "UPDATE model_jobs SET status = $4, attempts = attempts + 1, lease_until = $1, worker = $2, updated_at = $3
         WHERE id = (SELECT id FROM model_jobs
                     WHERE (status = $5 AND next_attempt_at <= $3)
                        OR (status = $4 AND lease_until < $3 AND attempts < max_attempts)
                     ORDER BY priority, next_attempt_at, created_at LIMIT 1 {lock})
         RETURNING id, case_id, model_id, role, attempts, max_attempts"
    ))
    .bind(lease)
    .bind(worker)
    .bind(now)
    .bind(JobStatus::Running.as_str())
    .bind(JobStatus::Queued.as_str())
    .fetch_optional(&state.db.pool)
    .await?;
    Ok(claimed)
}

/// Marks `job` succeeded with its output and records the prediction, inside the caller's
/// transaction; `false` when this worker no longer holds the job (its lease ran out and
/// another worker took it over, whose result will count).
pub(crate) async fn succeed(
    tx: &mut AnyConnection,
    job: &Claimed,
    worker: &str,
    output_ref: &str,
    at: i64,
) -> Result<bool, AppError> {
    let finished = sqlx::query(
        "UPDATE model_jobs SET status = $5, output_ref = $1, lease_until = NULL, last_error = NULL, updated_at = $2
         WHERE id = $3 AND worker = $4 AND status = $6",
    )
    .bind(output_ref)
    .bind(at)
    .bind(&job.id)
    .bind(worker)
    .bind(JobStatus::Succeeded.as_str())
    .bind(JobStatus::Running.as_str())
    .execute(&mut *tx)
    .await?;
    if finished.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO predictions (id, job_id, case_id, model_id, role, object_ref, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(&job.id)
    .bind(&job.case_id)
    .bind(&job.model_id)
    .bind(job.role)
    .bind(output_ref)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    Ok(true)
}

/// Records a failed attempt: back to the queue after a backoff, or failed for good.
pub(crate) async fn fail(state: &AppState, job: &Claimed, worker: &str, error: &str) -> Result<(), AppError> {
    let now = now_ms();
    let final_attempt = job.attempts >= job.max_attempts;
    let backoff = state.config.orchestrator.job_retry_base_ms as i64 * (1i64 << (job.attempts - 1).clamp(0, 16));
    sqlx::query(
        "UPDATE model_jobs SET status = $1, next_attempt_at = $2, last_error = $3, lease_until = NULL, worker = NULL, updated_at = $4
         WHERE id = $5 AND worker = $6 AND status = $7",
    )
    .bind(if final_attempt { JobStatus::Failed } else { JobStatus::Queued }.as_str())
    .bind(now + backoff)
    .bind(error)
    .bind(now)
    .bind(&job.id)
    .bind(worker)
    .bind(JobStatus::Running.as_str())
    .execute(&state.db.pool)
    .await?;
    tracing::warn!(job_id = %job.id, attempt = job.attempts, final_attempt, %error, "model job failed");
    Ok(())
}

/// Hands a job back on shutdown: the interrupted attempt does not count.
pub async fn release(state: &AppState, job: &Claimed, worker: &str) -> Result<(), AppError> {
    sqlx::query(
        "UPDATE model_jobs SET status = $4, attempts = attempts - 1, lease_until = NULL, worker = NULL, next_attempt_at = $1, updated_at = $1
         WHERE id = $2 AND worker = $3 AND status = $5",
    )
    .bind(now_ms())
    .bind(&job.id)
    .bind(worker)
    .bind(JobStatus::Queued.as_str())
    .bind(JobStatus::Running.as_str())
    .execute(&state.db.pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inference_servers_words_are_for_coordinators_only() {
        let refused = AppError::InferenceServer {
            summary: "the inference server refused the request (status 400) (attempt 1)".into(),
            detail: "POST http://gpu:8080/v2/models/m/infer answered: secret".into(),
        };
        let stored = stored_error(&refused);
        assert_eq!(
            readable_error(stored.clone(), false),
            "the inference server refused the request (status 400) (attempt 1)"
        );
        assert_eq!(readable_error(stored, true), refused.to_string());
        // Our own messages read the same for everyone.
        let ours = stored_error(&AppError::Unprocessable("the case image is stored LPS; the model expects RAS".into()));
        assert_eq!(readable_error(ours.clone(), false), ours);
    }
}
