//! Series imported from the PACS in the background. A coordinator asks for a series
//! (`POST /pacs/import`) and gets a job at once; workers on every instance with a PACS claim
//! due jobs under a lease, a few at a time, and run `pacs::import` (WADO-RS into scratch, then
//! the DICOM import's checks), writing how many instances have arrived as they do. A PACS that
//! cannot be reached is tried again after a wait that doubles with each attempt; a refusal (by
//! the PACS, or by the import's checks) fails the job with its reason. Asking for a series
//! imported before gives its case; asking again while it is being imported gives that job.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::{cases, pacs};
use crate::api::{CaseId, PacsImport, PacsImportJob, PacsImportStatus};
use crate::server::clock::now_ms;
use crate::server::dicomweb::{uid_path, Retrieval};
use crate::server::error::AppError;
use crate::server::identity::User;
use crate::server::state::AppState;

/// Series imported at once by one instance (each also holds one of the imports' permits).
const IMPORTS_AT_ONCE: usize = 2;
/// How often an idle worker looks for a queued import.
const POLL: Duration = Duration::from_secs(1);
/// How long a claimed import is its instance's: longer than an import can take. A job whose
/// instance stopped is taken over after it.
const LEASE_MS: i64 = 30 * 60 * 1000;
/// How often a running import's progress is written.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Attempts before a PACS that stays unreachable fails the import.
const MAX_ATTEMPTS: i64 = 8;
/// The longest wait between two attempts.
const MAX_RETRY_WAIT_MS: i64 = 10 * 60 * 1000;
/// As a case's name (`cases::import_case`).
const MAX_NAME_CHARS: usize = 200;
/// Jobs `GET /pacs/imports` lists.
const LISTED: i64 = 50;

#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    study_instance_uid: String,
    series_instance_uid: String,
    name: Option<String>,
    labels: String,
    requested_by: String,
    status: String,
    instances_total: i64,
    instances_done: i64,
    attempts: i64,
    case_id: Option<CaseId>,
    error: Option<String>,
    created_at: i64,
}

const COLUMNS: &str =
    "id, study_instance_uid, series_instance_uid, name, labels, requested_by, status, instances_total,
     instances_done, attempts, case_id, error, created_at";

impl JobRow {
    fn job(self) -> Result<PacsImportJob, AppError> {
        let status = PacsImportStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == self.status)
            .ok_or_else(|| AppError::internal(format!("a PACS import in state {:?}", self.status)))?;
        Ok(PacsImportJob {
            id: self.id,
            study_instance_uid: self.study_instance_uid,
            series_instance_uid: self.series_instance_uid,
            status,
            instances_total: self.instances_total as u64,
            instances_done: self.instances_done as u64,
            attempts: self.attempts as u64,
            case_id: self.case_id,
            error: self.error,
            created_at_ms: self.created_at,
        })
    }
}

async fn row(state: &AppState, id: &str) -> Result<Option<JobRow>, AppError> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM pacs_imports WHERE id = $1"))
        .bind(id)
        .fetch_optional(&state.db.pool)
        .await?)
}

/// `POST /pacs/import`: the job importing `request`'s series, made now (or the one already
/// at work on it); a series imported before is a finished job with its case.
pub async fn enqueue(state: &AppState, user: &User, request: &PacsImport) -> Result<PacsImportJob, AppError> {
    pacs::client(state)?;
    // Refused now, with nothing stored, rather than after the retrieval.
    uid_path(&request.study_instance_uid)?;
    uid_path(&request.series_instance_uid)?;
    cases::parse_label_text(request.labels.as_deref().unwrap_or_default())?;
    if request.name.as_deref().is_some_and(|name| name.trim().chars().count() > MAX_NAME_CHARS) {
        return Err(AppError::Unprocessable(format!("a case name holds at most {MAX_NAME_CHARS} characters")));
    }
    let series = request.series_instance_uid.as_str();
    let working: Option<String> = sqlx::query_scalar(
        "SELECT id FROM pacs_imports WHERE series_instance_uid = $1 AND status IN ($2, $3) ORDER BY created_at LIMIT 1",
    )
    .bind(series)
    .bind(PacsImportStatus::Queued.as_str())
    .bind(PacsImportStatus::Running.as_str())
    .fetch_optional(&state.db.pool)
    .await?;
    if let Some(id) = working {
        return get(state, &id).await;
    }
    let existing = cases::case_of_series(state, series).await?;
    let (status, case_id) = match &existing {
        Some(case) => (PacsImportStatus::Succeeded, Some(&case.id)),
        None => (PacsImportStatus::Queued, None),
    };
    let (id, now) = (Uuid::new_v4().to_string(), now_ms());
    sqlx::query(
        "INSERT INTO pacs_imports (id, study_instance_uid, series_instance_uid, name, labels, requested_by, status,
                                   next_attempt_at, case_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8, $8)",
    )
    .bind(&id)
    .bind(&request.study_instance_uid)
    .bind(series)
    .bind(request.name.as_deref().filter(|name| !name.trim().is_empty()))
    .bind(request.labels.as_deref().unwrap_or_default())
    .bind(&user.id)
    .bind(status.as_str())
    .bind(now)
    .bind(case_id)
    .execute(&state.db.pool)
    .await?;
    get(state, &id).await
}

/// `GET /pacs/imports/{id}`.
pub async fn get(state: &AppState, id: &str) -> Result<PacsImportJob, AppError> {
    row(state, id).await?.ok_or_else(|| AppError::NotFound(format!("PACS import {id}")))?.job()
}

/// `GET /pacs/imports`: the latest jobs, newest first.
pub async fn list(state: &AppState) -> Result<Vec<PacsImportJob>, AppError> {
    let rows: Vec<JobRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM pacs_imports ORDER BY created_at DESC, id LIMIT $1"))
            .bind(LISTED)
            .fetch_all(&state.db.pool)
            .await?;
    rows.into_iter().map(JobRow::job).collect()
}

/// How many series imports are queued or running.
pub async fn unfinished(state: &AppState) -> Result<i64, AppError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM pacs_imports WHERE status IN ($1, $2)")
        .bind(PacsImportStatus::Queued.as_str())
        .bind(PacsImportStatus::Running.as_str())
        .fetch_one(&state.db.pool)
        .await?)
}

/// Claims the import due first: a queued one whose attempt is due, or a running one whose
/// instance stopped (its lease ran out). `None` when none is due.
async fn claim(state: &AppState) -> Result<Option<JobRow>, AppError> {
    let now = now_ms();
    let due: Option<String> = sqlx::query_scalar(
        "SELECT id FROM pacs_imports WHERE status IN ($1, $2) AND next_attempt_at <= $3 AND claimed_until < $3
         ORDER BY next_attempt_at, created_at LIMIT 1",
    )
    .bind(PacsImportStatus::Queued.as_str())
    .bind(PacsImportStatus::Running.as_str())
    .bind(now)
    .fetch_optional(&state.db.pool)
    .await?;
    let Some(id) = due else { return Ok(None) };
    // Another worker may have claimed it since: only one update finds it unclaimed.
    let claimed = sqlx::query(
        "UPDATE pacs_imports SET status = $2, claimed_until = $3, attempts = attempts + 1, instances_done = 0,
                                 updated_at = $4
         WHERE id = $1 AND claimed_until < $4 AND status IN ($5, $2)",
    )
    .bind(&id)
    .bind(PacsImportStatus::Running.as_str())
    .bind(now + LEASE_MS)
    .bind(now)
    .bind(PacsImportStatus::Queued.as_str())
    .execute(&state.db.pool)
    .await?;
    match claimed.rows_affected() {
        1 => row(state, &id).await,
        _ => Ok(None),
    }
}

/// How an attempt ended, as the job's row records it.
async fn finish(
    state: &AppState,
    id: &str,
    status: PacsImportStatus,
    next_attempt_at: i64,
    case_id: Option<&CaseId>,
    error: Option<&str>,
) -> Result<(), AppError> {
    let error: Option<String> = error.map(|e| e.chars().take(1000).collect());
    sqlx::query(
        "UPDATE pacs_imports SET status = $2, next_attempt_at = $3, case_id = $4, error = $5, claimed_until = 0,
                                 updated_at = $6
         WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(next_attempt_at)
    .bind(case_id)
    .bind(error)
    .bind(now_ms())
    .execute(&state.db.pool)
    .await?;
    Ok(())
}

/// Writes how many of the series' instances have arrived.
async fn record_progress(state: &AppState, id: &str, progress: &Retrieval) -> Result<(), AppError> {
    sqlx::query("UPDATE pacs_imports SET instances_total = $2, instances_done = $3, updated_at = $4 WHERE id = $1")
        .bind(id)
        .bind(progress.instances.load(Ordering::Relaxed) as i64)
        .bind(progress.retrieved.load(Ordering::Relaxed) as i64)
        .bind(now_ms())
        .execute(&state.db.pool)
        .await?;
    Ok(())
}

/// Runs one attempt of `job`, writing its progress while the series arrives.
async fn attempt(state: &AppState, job: JobRow) -> Result<(), AppError> {
    let request = PacsImport {
        study_instance_uid: job.study_instance_uid.clone(),
        series_instance_uid: job.series_instance_uid.clone(),
        name: job.name.clone(),
        labels: Some(job.labels.clone()),
    };
    let progress = Retrieval::default();
    let imported = pacs::import(state, &job.requested_by, &request, &progress);
    tokio::pin!(imported);
    let result = loop {
        tokio::select! {
            result = &mut imported => break result,
            _ = tokio::time::sleep(PROGRESS_EVERY) => record_progress(state, &job.id, &progress).await?,
        }
    };
    record_progress(state, &job.id, &progress).await?;
    match result {
        Ok(cases) => {
            let case_id = cases.first().map(|case| &case.id);
            finish(state, &job.id, PacsImportStatus::Succeeded, i64::MAX, case_id, None).await
        }
        Err(down @ AppError::Unavailable { .. }) if job.attempts < MAX_ATTEMPTS => {
            let wait = pacs::retry_wait(state, job.attempts, MAX_RETRY_WAIT_MS);
            tracing::info!(import_id = %job.id, attempts = job.attempts, wait_ms = wait, error = %down, "the PACS import waits");
            finish(state, &job.id, PacsImportStatus::Queued, now_ms() + wait, None, Some(&down.to_string())).await
        }
        Err(failed) => {
            tracing::warn!(import_id = %job.id, error = %failed, "the PACS import failed");
            finish(state, &job.id, PacsImportStatus::Failed, i64::MAX, None, Some(&failed.to_string())).await
        }
    }
}

/// Hands an import back on shutdown: queued again at once, the interrupted attempt not
/// counted.
async fn release(state: &AppState, id: &str) -> Result<(), AppError> {
    let now = now_ms();
    sqlx::query(
        "UPDATE pacs_imports SET status = $2, claimed_until = 0, attempts = attempts - 1, next_attempt_at = $3,
                                 updated_at = $3
         WHERE id = $1 AND status = $4",
    )
    .bind(id)
    .bind(PacsImportStatus::Queued.as_str())
    .bind(now)
    .bind(PacsImportStatus::Running.as_str())
    .execute(&state.db.pool)
    .await?;
    Ok(())
}

async fn worker(state: AppState, shutdown: CancellationToken) {
    loop {
        match claim(&state).await {
            Ok(Some(job)) => {
                let id = job.id.clone();
                let result = tokio::select! {
                    result = attempt(&state, job) => result,
                    // Stopping: the import is handed back whole for the next instance.
                    _ = shutdown.cancelled() => release(&state, &id).await,
                };
                if let Err(err) = result {
                    tracing::warn!(import_id = %id, %err, "could not record a PACS import");
                }
                continue;
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(%err, "could not read the PACS imports"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Starts this instance's import workers, where a PACS is configured.
pub fn start(state: &AppState, shutdown: &CancellationToken, tasks: &TaskTracker) {
    if state.pacs.is_some() {
        for _ in 0..IMPORTS_AT_ONCE {
            tasks.spawn(worker(state.clone(), shutdown.clone()));
        }
    }
}
