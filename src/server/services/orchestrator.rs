//! The orchestrator: each run trigger (a case imported, or "run models on this case") takes
//! one snapshot of the active model versions and enqueues one job per version, pinned to its
//! id, in the database. Workers in every app instance claim jobs with a lease (PostgreSQL:
//! `FOR UPDATE SKIP LOCKED`; SQLite serialises writers), run the model, and store the output:
//! production results under `predictions/production/…` (and as the case's first mask while
//! no person has labelled it), shadow results under `predictions/shadow/…`, never shown to
//! labelers. Failures retry with exponential backoff up to the attempt limit; a job whose
//! worker stopped or crashed becomes claimable again when its lease runs out, and a clean
//! shutdown hands running jobs back at once.

use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::audit::{self, AuditEvent};
use super::models;
use super::users::{Role, User};
use crate::models::{Job, JobStatus, ModelState, ModelSummary, RunStarted};
use crate::nifti_io::{gzip_mask, Volume};
use crate::server::db::Backend;
use crate::server::inference::{Image, ModelVersion};
use crate::server::services::cases::{mask_object_ref, record_mask_version};
use crate::server::services::labels::load_mask;
use crate::server::{now_ms, AppError, AppState};
use crate::viewer::orientation::Orientation;

/// How long an idle worker waits before looking for due retries.
const IDLE_POLL: Duration = Duration::from_secs(1);
const GZIP_LEVEL: u32 = 1;

/// Enqueues one job per model in `active` for `case_id` inside the caller's transaction.
pub async fn enqueue(
    tx: &mut AnyConnection,
    state: &AppState,
    active: &[ModelSummary],
    case_id: &str,
    trigger: &str,
    user_id: Option<&str>,
) -> Result<String, AppError> {
    let run_id = Uuid::new_v4().to_string();
    let at = now_ms();
    let mut jobs = Vec::new();
    for model in active {
        let job_id = Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO model_jobs (id, run_id, case_id, model_id, role, trigger_kind, status, attempts,
                                     max_attempts, next_attempt_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7, $8, $8, $8)",
        )
        .bind(&job_id)
        .bind(&run_id)
        .bind(case_id)
        .bind(&model.id)
        .bind(model.state.as_str())
        .bind(trigger)
        .bind(state.config.orchestrator.job_max_attempts as i64)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        jobs.push(json!({ "job_id": job_id, "model_id": model.id, "version": model.version, "role": model.state.as_str() }));
    }
    if !jobs.is_empty() {
        audit::record(
            tx,
            AuditEvent {
                action: "model_run",
                user_id,
                case_id: Some(case_id),
                details: json!({ "run_id": run_id, "trigger": trigger, "jobs": jobs }),
            },
        )
        .await?;
    }
    Ok(run_id)
}

/// A manual trigger by an ML engineer or admin: runs every active model version on `case_id`.
pub async fn run_on_case(state: &AppState, case_id: &str, user: &User) -> Result<RunStarted, AppError> {
    user.require_any(&[Role::MlEngineer, Role::Admin], "run models")?;
    let exists = sqlx::query("SELECT id FROM cases WHERE id = $1").bind(case_id).fetch_optional(&state.db.pool).await?;
    if exists.is_none() {
        return Err(AppError::NotFound(format!("case {case_id}")));
    }
    let active = models::all_active(state).await?;
    if active.is_empty() {
        return Err(AppError::Conflict("no model version is in production or shadow; promote one first".into()));
    }
    let mut tx = state.db.pool.begin().await?;
    let run_id = enqueue(&mut tx, state, &active, case_id, "manual", Some(&user.id)).await?;
    tx.commit().await?;
    state.jobs_ready.notify_waiters();
    Ok(RunStarted { run_id: run_id.clone(), jobs: list_jobs(state, JobFilter::Run(&run_id)).await? })
}

/// Which jobs to list.
pub enum JobFilter<'a> {
    Case(&'a str),
    Run(&'a str),
    Model(&'a str),
}

fn job(row: &AnyRow) -> Result<Job, AppError> {
    let status: String = row.get("status");
    let role: String = row.get("role");
    Ok(Job {
        id: row.get("id"),
        run_id: row.get("run_id"),
        case_id: row.get("case_id"),
        model_id: row.get("model_id"),
        model_name: row.get("name"),
        model_version: row.get("version"),
        role: ModelState::parse(&role).ok_or_else(|| AppError::Internal(format!("unknown job role {role}")))?,
        trigger: row.get("trigger_kind"),
        status: JobStatus::parse(&status).ok_or_else(|| AppError::Internal(format!("unknown job status {status}")))?,
        attempts: row.get("attempts"),
        max_attempts: row.get("max_attempts"),
        last_error: row.get("last_error"),
        created_at_ms: row.get("created_at"),
        updated_at_ms: row.get("updated_at"),
    })
}

pub async fn list_jobs(state: &AppState, filter: JobFilter<'_>) -> Result<Vec<Job>, AppError> {
    let (column, value) = match filter {
        JobFilter::Case(id) => ("j.case_id", id),
        JobFilter::Run(id) => ("j.run_id", id),
        JobFilter::Model(id) => ("j.model_id", id),
    };
    let rows = sqlx::query(&format!(
        "SELECT j.id, j.run_id, j.case_id, j.model_id, m.name, m.version, j.role, j.trigger_kind, j.status,
                j.attempts, j.max_attempts, j.last_error, j.created_at, j.updated_at
         FROM model_jobs j JOIN models m ON m.id = j.model_id
         WHERE {column} = $1 ORDER BY j.created_at DESC, m.name, j.role LIMIT 200"
    ))
    .bind(value)
    .fetch_all(&state.db.pool)
    .await?;
    rows.iter().map(job).collect()
}

/// A claimed job.
struct Claimed {
    id: String,
    case_id: String,
    model_id: String,
    role: String,
    attempts: i64,
    max_attempts: i64,
}

async fn claim(state: &AppState, worker: &str) -> Result<Option<Claimed>, AppError> {
    let now = now_ms();
    // A job whose worker vanished during its last attempt (a crash, perhaps caused by the job)
    // is not tried again.
    sqlx::query(
        "UPDATE model_jobs SET status = 'failed', lease_until = NULL, worker = NULL, updated_at = $1,
                last_error = 'the worker stopped during the last attempt (crash or kill)'
         WHERE status = 'running' AND lease_until < $1 AND attempts >= max_attempts",
    )
    .bind(now)
    .execute(&state.db.pool)
    .await?;
    let lease = now + (state.config.orchestrator.job_timeout_secs as i64 + 30) * 1000;
    // PostgreSQL: skip rows another instance is claiming; SQLite runs one writer at a time.
    let lock = match state.db.backend {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let row = sqlx::query(&format!(
        "UPDATE model_jobs SET status = 'running', attempts = attempts + 1, lease_until = $1, worker = $2, updated_at = $3
         WHERE id = (SELECT id FROM model_jobs
                     WHERE (status = 'queued' AND next_attempt_at <= $3)
                        OR (status = 'running' AND lease_until < $3 AND attempts < max_attempts)
                     ORDER BY next_attempt_at, created_at LIMIT 1 {lock})
         RETURNING id, case_id, model_id, role, attempts, max_attempts"
    ))
    .bind(lease)
    .bind(worker)
    .bind(now)
    .fetch_optional(&state.db.pool)
    .await?;
    Ok(row.map(|row| Claimed {
        id: row.get("id"),
        case_id: row.get("case_id"),
        model_id: row.get("model_id"),
        role: row.get("role"),
        attempts: row.get("attempts"),
        max_attempts: row.get("max_attempts"),
    }))
}

/// Runs the model of `job` on its case and stores the result.
async fn execute(state: &AppState, job: &Claimed, worker: &str) -> Result<(), AppError> {
    let (artifact_ref, card) = models::runnable(state, &job.model_id).await?;
    let image_ref: String = sqlx::query("SELECT image_ref FROM cases WHERE id = $1")
        .bind(&job.case_id)
        .fetch_one(&state.db.pool)
        .await?
        .get("image_ref");
    let bytes = state.store.get(&image_ref).await?;
    let expected_orientation = card.input_spec.orientation.clone();
    let (image, header, dims) = tokio::task::spawn_blocking(move || -> Result<_, AppError> {
        let volume = Volume::parse("case image", &bytes)?;
        let orientation = Orientation::from_affine(&volume.affine()).axis_codes();
        if orientation != expected_orientation {
            return Err(AppError::Unprocessable(format!(
                "the case image is stored {orientation}; the model expects {expected_orientation}"
            )));
        }
        let (header, dims) = (volume.header.clone(), volume.meta.dims);
        let samples = volume.into_samples("case image")?;
        let intensities = (0..samples.len()).map(|i| samples.get(i)).collect();
        Ok((Image { dims: dims.map(|d| d as usize), intensities }, header, dims))
    })
    .await
    .map_err(AppError::internal)??;
    let model = ModelVersion { id: job.model_id.clone(), artifact_ref, card };
    let labels = state.runner.segment(&model, image).await?;
    let output = tokio::task::spawn_blocking(move || gzip_mask(&header, dims, &labels, GZIP_LEVEL))
        .await
        .map_err(AppError::internal)?;
    let output_ref = format!("predictions/{}/{}/{}/{}.nii.gz", job.role, job.case_id, job.model_id, Uuid::new_v4());
    state.store.put(&output_ref, output.clone()).await?;

    let prelabel = match job.role.as_str() {
        "production" => blank_head(state, &job.case_id).await?,
        _ => None,
    };
    let prelabel = match prelabel {
        Some(blank) => {
            let object_ref = mask_object_ref(&job.case_id);
            state.store.put(&object_ref, output.clone()).await?;
            Some((blank, object_ref))
        }
        None => None,
    };

    let at = now_ms();
    let mut tx = state.db.pool.begin().await?;
    let finished = sqlx::query(
        "UPDATE model_jobs SET status = 'succeeded', output_ref = $1, lease_until = NULL, last_error = NULL, updated_at = $2
         WHERE id = $3 AND worker = $4 AND status = 'running'",
    )
    .bind(&output_ref)
    .bind(at)
    .bind(&job.id)
    .bind(worker)
    .execute(&mut *tx)
    .await?;
    if finished.rows_affected() == 0 {
        // The lease ran out and another worker took the job over; its result will count.
        return Err(AppError::Conflict("the job's lease expired while it ran".into()));
    }
    sqlx::query(
        "INSERT INTO predictions (id, job_id, case_id, model_id, role, object_ref, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(&job.id)
    .bind(&job.case_id)
    .bind(&job.model_id)
    .bind(&job.role)
    .bind(&output_ref)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    if let Some((blank, object_ref)) = prelabel {
        prelabel_case(&mut tx, job, &blank, &object_ref, &output, at).await?;
    }
    tx.commit().await?;
    tracing::info!(job_id = %job.id, case_id = %job.case_id, model_id = %job.model_id, role = %job.role, "model job succeeded");
    Ok(())
}

/// The case's current mask reference when it is still the empty mask made at import: nobody
/// has labelled the case, it came without a mask, and no model has pre-labelled it yet.
async fn blank_head(state: &AppState, case_id: &str) -> Result<Option<String>, AppError> {
    let row = sqlx::query(
        "SELECT c.head_mask_ref,
                (SELECT COUNT(*) FROM labels l WHERE l.case_id = c.id) AS saves,
                (SELECT COUNT(*) FROM objects o WHERE o.case_id = c.id AND o.kind = 'mask') AS masks
         FROM cases c WHERE c.id = $1",
    )
    .bind(case_id)
    .fetch_one(&state.db.pool)
    .await?;
    let (head, saves, masks): (String, i64, i64) = (row.get("head_mask_ref"), row.get("saves"), row.get("masks"));
    if saves > 0 || masks > 1 {
        return Ok(None);
    }
    let mask = load_mask(state, &head).await?;
    Ok(mask.labels.iter().all(|&v| v == 0).then_some(head))
}

/// Makes `object_ref` the case's mask if the mask is still `blank` (compare-and-set: a label
/// saved or another pre-label committed meanwhile wins) and the model is still in production.
async fn prelabel_case(
    tx: &mut AnyConnection,
    job: &Claimed,
    blank: &str,
    object_ref: &str,
    file: &[u8],
    at: i64,
) -> Result<(), AppError> {
    let moved = sqlx::query(
        "UPDATE cases SET head_mask_ref = $1
         WHERE id = $2 AND head_mask_ref = $3
           AND EXISTS (SELECT 1 FROM models WHERE id = $4 AND state = 'production')",
    )
    .bind(object_ref)
    .bind(&job.case_id)
    .bind(blank)
    .bind(&job.model_id)
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() == 0 {
        return Ok(()); // a person (or another model) came first; the sweeper removes the copy
    }
    record_mask_version(tx, object_ref, file.len() as i64, &hex::encode(Sha256::digest(file)), blank, at).await?;
    audit::record(
        tx,
        AuditEvent {
            action: "prelabel",
            user_id: None,
            case_id: Some(&job.case_id),
            details: json!({ "job_id": job.id, "model_id": job.model_id, "mask_ref": object_ref }),
        },
    )
    .await?;
    Ok(())
}

/// Records a failed attempt: back to the queue after a backoff, or failed for good.
async fn fail(state: &AppState, job: &Claimed, worker: &str, error: &str) -> Result<(), AppError> {
    let now = now_ms();
    let final_attempt = job.attempts >= job.max_attempts;
    let backoff = state.config.orchestrator.job_retry_base_ms as i64 * (1i64 << (job.attempts - 1).clamp(0, 16));
    sqlx::query(
        "UPDATE model_jobs SET status = $1, next_attempt_at = $2, last_error = $3, lease_until = NULL, worker = NULL, updated_at = $4
         WHERE id = $5 AND worker = $6 AND status = 'running'",
    )
    .bind(if final_attempt { "failed" } else { "queued" })
    .bind(now + backoff)
    .bind(error)
    .bind(now)
    .bind(&job.id)
    .bind(worker)
    .execute(&state.db.pool)
    .await?;
    tracing::warn!(job_id = %job.id, attempt = job.attempts, final_attempt, %error, "model job failed");
    Ok(())
}

/// Hands a job back on shutdown: the interrupted attempt does not count.
async fn release(state: &AppState, job: &Claimed, worker: &str) -> Result<(), AppError> {
    sqlx::query(
        "UPDATE model_jobs SET status = 'queued', attempts = attempts - 1, lease_until = NULL, worker = NULL, next_attempt_at = $1, updated_at = $1
         WHERE id = $2 AND worker = $3 AND status = 'running'",
    )
    .bind(now_ms())
    .bind(&job.id)
    .bind(worker)
    .execute(&state.db.pool)
    .await?;
    Ok(())
}

async fn work(state: AppState, shutdown: CancellationToken, worker: String) {
    let timeout = Duration::from_secs(state.config.orchestrator.job_timeout_secs);
    while !shutdown.is_cancelled() {
        let job = match claim(&state, &worker).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                tokio::select! {
                    _ = state.jobs_ready.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutdown.cancelled() => {}
                }
                continue;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot claim model jobs");
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
        };
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(timeout, execute(&state, &job, &worker)) => outcome,
            _ = shutdown.cancelled() => {
                if let Err(err) = release(&state, &job, &worker).await {
                    tracing::warn!(job_id = %job.id, error = %err, "cannot hand the job back; its lease will expire");
                }
                break;
            }
        };
        let error = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("timed out after {} s", timeout.as_secs()),
        };
        if let Err(err) = fail(&state, &job, &worker, &error).await {
            tracing::warn!(job_id = %job.id, error = %err, "cannot record the job's failure; its lease will expire");
        }
    }
}

/// Starts this instance's workers (the configured number; 0 leaves jobs to other instances).
pub fn start(state: &AppState, shutdown: &CancellationToken, tasks: &TaskTracker) {
    let instance = Uuid::new_v4().simple().to_string();
    for n in 0..state.config.orchestrator.workers {
        tasks.spawn(work(state.clone(), shutdown.clone(), format!("{}-{n}", &instance[..12])));
    }
}
