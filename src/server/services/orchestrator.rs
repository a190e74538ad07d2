//! The orchestrator: each run trigger (a case imported, or "run models on this case") takes
//! one snapshot of the active model versions and enqueues one job per version, pinned to its
//! id (`jobs`). Workers in every app instance claim jobs, run the model, and store the output:
//! production results under `predictions/production/…` (and as the case's first mask while
//! no person has labelled it), shadow results under `predictions/shadow/…`, never shown to
//! labelers. Failures retry with exponential backoff up to the attempt limit; a clean shutdown
//! hands running jobs back at once.

use std::time::Duration;

use serde_json::json;
use sqlx::AnyConnection;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::access::{CaseAccess, RunModels};
use super::audit::{self, AuditAction, AuditEvent};
use super::jobs::{self, Claimed, JobFilter, Trigger};
use super::mask_versions::{self, load_mask, Chain, NewVersion};
use super::registry;
use crate::api::{ArtifactKind, CaseId, JobStatus, MaskRef, ModelId, ModelState, RunStarted};
use crate::geometry::Orientation;
use crate::mask_ops::label_counts;
use crate::nifti_io::{gzip_mask, Volume};
use crate::server::clock::now_ms;
use crate::server::db::Db;
use crate::server::error::AppError;
use crate::server::inference::{Image, ModelVersion};
use crate::server::mask_cache::DecodedMask;
use crate::server::state::AppState;

/// How long an idle worker waits before looking for due retries.
const IDLE_POLL: Duration = Duration::from_secs(1);
const GZIP_LEVEL: u32 = 1;

/// A manual trigger by an ML engineer or admin: runs every active model version on the case,
/// except those with a job for it queued or running already. When every one has, nothing is
/// queued and the answer is the newest such run, so repeating the request costs nothing.
pub(crate) async fn run_on_case(state: &AppState, access: CaseAccess<RunModels>) -> Result<RunStarted, AppError> {
    let (user, case_id) = (access.user(), access.case_id());
    let active = registry::all_active(state).await?;
    if active.is_empty() {
        return Err(AppError::Conflict("no model version is in production or shadow; promote one first".into()));
    }
    let mut tx = state.db.pool.begin().await?;
    // A write first: it serialises the triggers of one case (SQLite's write lock, PostgreSQL's
    // row lock), so two at once cannot both see nothing pending.
    sqlx::query("UPDATE cases SET status = status WHERE id = $1").bind(case_id).execute(&mut *tx).await?;
    let pending: Vec<(ModelId, String)> = sqlx::query_as(
        "SELECT model_id, run_id FROM model_jobs WHERE case_id = $1 AND status IN ($2, $3) ORDER BY created_at DESC, id",
    )
    .bind(case_id)
    .bind(JobStatus::Queued)
    .bind(JobStatus::Running)
    .fetch_all(&mut *tx)
    .await?;
    let to_run: Vec<_> =
        active.into_iter().filter(|model| !pending.iter().any(|(pending, _)| *pending == model.id)).collect();
    let run_id = match (to_run.is_empty(), pending.into_iter().next()) {
        (true, Some((_, newest_run))) => {
            tx.rollback().await?;
            newest_run
        }
        _ => {
            let run_id = jobs::enqueue(&mut tx, state, &to_run, case_id, Trigger::Manual, Some(&user.id)).await?;
            tx.commit().await?;
            state.jobs_ready.notify_waiters();
            run_id
        }
    };
    Ok(RunStarted { run_id: run_id.clone(), jobs: jobs::list_jobs(state, user, JobFilter::Run(&run_id)).await? })
}

/// Runs the model of `job` on its case and stores the result.
async fn execute(state: &AppState, job: &Claimed, worker: &str) -> Result<(), AppError> {
    let (artifact_ref, card) = registry::runnable(state, &job.model_id).await?;
    let (image_ref, i, j, k): (String, i64, i64, i64) = sqlx::query_as(
        "SELECT c.image_ref, o.dim_i, o.dim_j, o.dim_k FROM cases c JOIN objects o ON o.object_ref = c.image_ref WHERE c.id = $1",
    )
    .bind(&job.case_id)
    .fetch_one(&state.db.pool)
    .await?;
    // Refused from the recorded size, before the image is fetched or anything allocated.
    let voxels = i * j * k;
    let budget = state.config.orchestrator.max_inference_voxels;
    if voxels as u64 > budget {
        return Err(AppError::Unprocessable(format!(
            "the case has {voxels} voxels, more than this instance's inference budget of {budget} (--max-inference-voxels)"
        )));
    }
    let bytes = state.store.get(&image_ref).await?;
    let expected_orientation = card.input_spec.orientation.clone();
    let max_voxels = state.config.max_volume_voxels;
    let (image, header, dims) = tokio::task::spawn_blocking(move || -> Result<_, AppError> {
        let volume = Volume::parse_within("case image", &bytes, max_voxels)?;
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
    let started = std::time::Instant::now();
    let labels = state.runner.segment(&model, image).await;
    let version = job.model_id.to_string();
    metrics::histogram!("seglab_inference_duration_seconds", "model_version" => version.clone())
        .record(started.elapsed().as_secs_f64());
    if labels.is_err() {
        metrics::counter!("seglab_inference_failures_total", "model_version" => version).increment(1);
    }
    let labels = labels?;
    // A production model pre-labels a case nobody has labelled: only then is its output also
    // kept as a mask version.
    let blank = match job.role {
        ModelState::Production => blank_head(state, &job.case_id).await?,
        _ => None,
    };
    let prelabels = blank.is_some();
    let (output, counts, mask) = tokio::task::spawn_blocking(move || {
        let output = gzip_mask(&header, dims, &labels, GZIP_LEVEL);
        let mask = prelabels.then(|| DecodedMask::from_labels(header, dims, &labels));
        (output, label_counts(&labels), mask)
    })
    .await
    .map_err(AppError::internal)?;
    let output_ref = format!("predictions/{}/{}/{}/{}.nii.gz", job.role, job.case_id, job.model_id, Uuid::new_v4());
    state.store.put(&output_ref, output).await?;
    let prelabel = match (blank, mask) {
        (Some(blank), Some(mask)) => {
            Some((blank, mask_versions::store_version(state, &job.case_id, None, mask, Vec::new()).await?))
        }
        _ => None,
    };

    let at = now_ms();
    let mut tx = state.db.pool.begin().await?;
    if !jobs::succeed(&mut tx, job, worker, &output_ref, at).await? {
        return Err(AppError::Conflict("the job's lease expired while it ran".into()));
    }
    if let Some((blank, stored)) = &prelabel {
        let chain = Chain::Case(&job.case_id);
        let version = NewVersion { case_id: &job.case_id, chain, replaces: blank, stored, created_at: at };
        prelabel_case(&mut tx, &state.db, job, &version, &counts).await?;
    }
    tx.commit().await?;
    state.evaluations_ready.notify_one();
    tracing::info!(job_id = %job.id, case_id = %job.case_id, model_id = %job.model_id, role = %job.role, "model job succeeded");
    Ok(())
}

/// The case's current mask reference when it is still the empty mask made at import: nobody
/// has labelled the case, it came without a mask, no model has pre-labelled it yet, and it is
/// not read by several readers.
async fn blank_head(state: &AppState, case_id: &CaseId) -> Result<Option<MaskRef>, AppError> {
    let (head, readings_required, saves, masks): (MaskRef, i64, i64, i64) = sqlx::query_as(
        "SELECT c.head_mask_ref, c.readings_required,
                (SELECT COUNT(*) FROM labels l WHERE l.case_id = c.id) AS saves,
                (SELECT COUNT(*) FROM objects o WHERE o.case_id = c.id AND o.kind = $2) AS masks
         FROM cases c WHERE c.id = $1",
    )
    .bind(case_id)
    .bind(ArtifactKind::Mask)
    .fetch_one(&state.db.pool)
    .await?;
    // Several readers start from the same mask, their own work alone: no model's.
    if saves > 0 || masks > 1 || readings_required > 1 {
        return Ok(None);
    }
    let mask = load_mask(state, head.as_str()).await?;
    Ok(mask.slabs.iter().all(|slab| slab.iter().all(|&v| v == 0)).then_some(head))
}

/// Makes `version` (a copy of the job's output) the case's mask if the mask is still the
/// blank one it replaces (compare-and-set: a label saved or another pre-label committed
/// meanwhile wins) and the model is still in production. Runs after the job's own writes, so
/// SQLite already holds its write lock for the read.
async fn prelabel_case(
    tx: &mut AnyConnection,
    db: &Db,
    job: &Claimed,
    version: &NewVersion<'_>,
    counts: &std::collections::BTreeMap<u8, u64>,
) -> Result<(), AppError> {
    let still_production = sqlx::query("SELECT 1 FROM models WHERE id = $1 AND state = $2")
        .bind(&job.model_id)
        .bind(ModelState::Production.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    if !still_production || !mask_versions::commit(tx, version).await? {
        return Ok(()); // a person (or another model) came first; the sweeper removes the copy
    }
    sqlx::query("UPDATE cases SET label_counts_json = $1 WHERE id = $2")
        .bind(serde_json::to_string(counts).map_err(AppError::internal)?)
        .bind(&job.case_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO prelabels (mask_ref, case_id, model_id, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&version.stored.object_ref)
        .bind(&job.case_id)
        .bind(&job.model_id)
        .bind(version.created_at)
        .execute(&mut *tx)
        .await?;
    audit::record(
        tx,
        db,
        AuditEvent {
            action: AuditAction::Prelabel,
            user_id: None,
            case_id: Some(&job.case_id),
            details: json!({ "job_id": job.id, "model_id": job.model_id, "mask_ref": version.stored.object_ref }),
        },
    )
    .await?;
    Ok(())
}

async fn work(state: AppState, shutdown: CancellationToken, worker: String) {
    let timeout = Duration::from_secs(state.config.orchestrator.job_timeout_secs);
    while !shutdown.is_cancelled() {
        let job = match jobs::claim(&state, &worker).await {
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
                if let Err(err) = jobs::release(&state, &job, &worker).await {
                    tracing::warn!(job_id = %job.id, error = %err, "cannot hand the job back; its lease will expire");
                }
                break;
            }
        };
        let error = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(err)) => jobs::stored_error(&err),
            Err(_) => format!("timed out after {} s", timeout.as_secs()),
        };
        if let Err(err) = jobs::fail(&state, &job, &worker, &error).await {
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
