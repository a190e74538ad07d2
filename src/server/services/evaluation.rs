//! The evaluator: per-label Dice and HD95 (from `crate::metrics`) between each model
//! prediction and the case's latest human mask, which `comparison` reads for the model page;
//! its loop also measures the readers' agreement of cases whose readings are all in
//! (`agreement`), and scores each reading against its case's adjudicated mask the same way, so
//! that a model's Dice stands next to the readers' own.
//!
//! The figures are computed in the background, never on a request: each instance that runs
//! model jobs also runs an evaluator, woken when a prediction or a human mask version arrives
//! (and every 30 s, for those another instance wrote). One instance at a time computes
//! each (prediction, human version): it holds a claim row with a lease. A request reads the
//! stored figures and says how many cases are still pending.

use std::collections::HashMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::agreement;
use super::mask_versions::load_mask;
use super::registry::model_card;
use crate::api::{LabelDef, ModelId, ModelState};
use crate::metrics::{dice, hd95};
use crate::server::clock::now_ms;
use crate::server::error::AppError;
use crate::server::state::AppState;

/// How often an idle evaluator looks for work another instance made (saves on instances
/// without workers); work made here wakes it at once. Each look reads every unscored pair.
const EVALUATOR_POLL: Duration = Duration::from_secs(30);
/// A claim older than this belongs to an instance that stopped; another may take it over.
const CLAIM_LEASE_MS: i64 = 10 * 60 * 1000;
/// Pairs looked up per pass.
const PAIRS_PER_PASS: i64 = 200;

/// A prediction to score against a person's mask of the same case.
struct EvaluableCase {
    prediction_id: String,
    prediction_ref: String,
    human_ref: String,
}

/// Where one mask's scores against a human mask are stored: `evaluations` by prediction,
/// `reading_scores` by reading.
struct ScoreTable {
    table: &'static str,
    key_column: &'static str,
}

const PREDICTION_SCORES: ScoreTable = ScoreTable { table: "evaluations", key_column: "prediction_id" };
const READING_SCORES: ScoreTable = ScoreTable { table: "reading_scores", key_column: "reading_id" };

/// Computes Dice and HD95 of mask version `scored` against `human_ref` for `labels` (off the
/// async threads) and stores them under `key` in `into`, all labels in one transaction (a
/// partial set would look complete to readers). Returns how many labels were stored.
async fn store_scores(
    state: &AppState,
    into: &ScoreTable,
    key: &str,
    scored: &str,
    human_ref: &str,
    labels: Vec<u8>,
) -> Result<usize, AppError> {
    let (mask, human) = (load_mask(state, scored).await?, load_mask(state, human_ref).await?);
    if mask.dims() != human.dims() {
        return Err(AppError::Internal(format!("{scored} and mask {human_ref} differ in size")));
    }
    let computed = tokio::task::spawn_blocking(move || {
        let dims = human.dims().map(|d| d as usize);
        let spacing = [1, 2, 3].map(|axis| human.header.pixdim[axis].abs().max(f32::EPSILON) as f64);
        let (mask, human) = (mask.labels(), human.labels());
        labels
            .into_iter()
            .map(|value| (value, dice(&mask, &human, value), hd95(&mask, &human, value, dims, spacing)))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(AppError::internal)?;
    let (at, mut tx) = (now_ms(), state.db.pool.begin().await?);
    let sql = format!(
        "INSERT INTO {} ({}, human_ref, label_value, dice, hd95_mm, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        into.table, into.key_column
    );
    for (value, dice, hd95) in &computed {
        sqlx::query(&sql)
            .bind(key)
            .bind(human_ref)
            .bind(*value as i64)
            .bind(*dice)
            .bind(*hd95)
            .bind(at)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(computed.len())
}

/// Each case's latest prediction by each model version `versions` selects (a condition on
/// `p.model_id`), with the case's latest human mask, as `t`; rows of unlabelled cases are
/// left out. The human mask is the case's own (a case read by several readers has one once
/// adjudicated), never a reading.
pub(super) fn latest_predictions(versions: &str) -> String {
    format!(
        "SELECT t.* FROM (
             SELECT p.model_id, p.case_id, c.name, p.id, p.object_ref,
                    (SELECT l.new_mask_ref FROM labels l WHERE l.case_id = p.case_id AND l.reading_id IS NULL
                     ORDER BY l.created_at DESC, l.id DESC LIMIT 1) AS human_ref
             FROM predictions p JOIN cases c ON c.id = p.case_id
             WHERE {versions}
               AND p.created_at = (SELECT MAX(q.created_at) FROM predictions q WHERE q.model_id = p.model_id AND q.case_id = p.case_id)
         ) t
         WHERE t.human_ref IS NOT NULL"
    )
}

/// A row of [`latest_predictions`]: a version's prediction and the mask it is scored against.
#[derive(sqlx::FromRow)]
struct Evaluable {
    model_id: ModelId,
    id: String,
    object_ref: String,
    human_ref: String,
}

impl From<Evaluable> for EvaluableCase {
    fn from(row: Evaluable) -> EvaluableCase {
        EvaluableCase { prediction_id: row.id, prediction_ref: row.object_ref, human_ref: row.human_ref }
    }
}

/// The latest prediction of each (version not archived, case) whose score against the case's
/// latest human mask is not stored yet, with its version.
async fn unscored(state: &AppState) -> Result<Vec<(ModelId, EvaluableCase)>, AppError> {
    let rows: Vec<Evaluable> = sqlx::query_as(&format!(
        "{} AND NOT EXISTS (SELECT 1 FROM evaluations e WHERE e.prediction_id = t.id AND e.human_ref = t.human_ref)
         ORDER BY t.id LIMIT $1",
        latest_predictions("p.model_id IN (SELECT id FROM models WHERE state <> $2)"),
    ))
    .bind(PAIRS_PER_PASS)
    .bind(ModelState::Archived)
    .fetch_all(&state.db.pool)
    .await?;
    Ok(rows.into_iter().map(|row| (row.model_id.clone(), row.into())).collect())
}

/// How many (prediction, human mask) pairs wait for their score: the evaluation backlog.
pub async fn backlog(state: &AppState) -> Result<i64, AppError> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM ({} AND NOT EXISTS (SELECT 1 FROM evaluations e WHERE e.prediction_id = t.id AND e.human_ref = t.human_ref)) backlog",
        latest_predictions("p.model_id IN (SELECT id FROM models WHERE state <> $1)"),
    ))
    .bind(ModelState::Archived)
    .fetch_one(&state.db.pool)
    .await?)
}

/// Takes the claim on (prediction, human mask) for `worker`: `false` when another instance
/// holds it, or has stored its scores since `case` was listed (a finished claim is deleted,
/// so winning one does not say the pair is still unscored).
async fn claim(state: &AppState, case: &EvaluableCase, worker: &str) -> Result<bool, AppError> {
    let now = now_ms();
    let claimed = sqlx::query(
        "INSERT INTO evaluation_claims (prediction_id, human_ref, worker, lease_until) VALUES ($1, $2, $3, $4)
         ON CONFLICT (prediction_id, human_ref) DO UPDATE SET worker = excluded.worker, lease_until = excluded.lease_until
         WHERE evaluation_claims.lease_until < $5",
    )
    .bind(&case.prediction_id)
    .bind(&case.human_ref)
    .bind(worker)
    .bind(now + CLAIM_LEASE_MS)
    .bind(now)
    .execute(&state.db.pool)
    .await?;
    if claimed.rows_affected() != 1 {
        return Ok(false);
    }
    let scored = sqlx::query("SELECT 1 FROM evaluations WHERE prediction_id = $1 AND human_ref = $2 LIMIT 1")
        .bind(&case.prediction_id)
        .bind(&case.human_ref)
        .fetch_optional(&state.db.pool)
        .await?
        .is_some();
    if scored {
        release_claim(state, case, worker).await?;
    }
    Ok(!scored)
}

async fn release_claim(state: &AppState, case: &EvaluableCase, worker: &str) -> Result<(), AppError> {
    sqlx::query("DELETE FROM evaluation_claims WHERE prediction_id = $1 AND human_ref = $2 AND worker = $3")
        .bind(&case.prediction_id)
        .bind(&case.human_ref)
        .bind(worker)
        .execute(&state.db.pool)
        .await?;
    Ok(())
}

/// Computes every score not stored yet that no other instance is computing; returns how many
/// were stored. A failure keeps its claim until the lease runs out, so it is retried later
/// rather than at once.
pub async fn evaluate_pending(state: &AppState, worker: &str) -> Result<usize, AppError> {
    let mut labels_of: HashMap<ModelId, Vec<u8>> = HashMap::new();
    let mut stored = 0;
    for (model_id, case) in unscored(state).await? {
        if !claim(state, &case, worker).await? {
            continue;
        }
        if !labels_of.contains_key(&model_id) {
            let card = model_card(state, &model_id).await?;
            labels_of.insert(model_id.clone(), card.label_map.keys().filter_map(|v| v.parse().ok()).collect());
        }
        let labels = labels_of[&model_id].clone();
        match store_scores(
            state,
            &PREDICTION_SCORES,
            &case.prediction_id,
            &case.prediction_ref,
            &case.human_ref,
            labels,
        )
        .await
        {
            Ok(_) => {
                release_claim(state, &case, worker).await?;
                metrics::counter!("seglab_evaluations_total").increment(1);
                stored += 1;
            }
            Err(err) => {
                tracing::warn!(prediction_id = %case.prediction_id, human_ref = %case.human_ref, %err, "evaluation failed; retried after its lease")
            }
        }
    }
    Ok(stored)
}

/// A submitted reading not yet scored against its case's latest own mask version.
#[derive(sqlx::FromRow)]
struct UnscoredReading {
    id: String,
    head_mask_ref: String,
    human_ref: String,
    labels_json: String,
}

/// Scores submitted readings against their case's latest own (adjudicated) mask version,
/// per label, as predictions are; returns how many readings were scored. Cheap next to a
/// model's inference, so without claims: two instances at once store the same rows once.
pub async fn score_readings_pending(state: &AppState) -> Result<usize, AppError> {
    let readings: Vec<UnscoredReading> = sqlx::query_as(
        "SELECT t.* FROM (
             SELECT g.id, g.head_mask_ref, c.labels_json,
                    (SELECT l.new_mask_ref FROM labels l WHERE l.case_id = g.case_id AND l.reading_id IS NULL
                     ORDER BY l.created_at DESC, l.id DESC LIMIT 1) AS human_ref
             FROM readings g JOIN cases c ON c.id = g.case_id WHERE g.submitted_at IS NOT NULL
         ) t
         WHERE t.human_ref IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM reading_scores r WHERE r.reading_id = t.id AND r.human_ref = t.human_ref)
         ORDER BY t.id LIMIT $1",
    )
    .bind(PAIRS_PER_PASS)
    .fetch_all(&state.db.pool)
    .await?;
    let mut scored = 0;
    for reading in readings {
        match score_reading(state, &reading).await {
            Ok(stored) => scored += usize::from(stored),
            Err(err) => tracing::warn!(reading_id = %reading.id, %err, "cannot score a reading; retried later"),
        }
    }
    Ok(scored)
}

/// Scores one reading and stores its rows; whether any was stored (a case without labels has
/// none).
async fn score_reading(state: &AppState, reading: &UnscoredReading) -> Result<bool, AppError> {
    let labels: Vec<LabelDef> = serde_json::from_str(&reading.labels_json).map_err(AppError::internal)?;
    let labels = labels.iter().map(|label| label.value).collect();
    let stored =
        store_scores(state, &READING_SCORES, &reading.id, &reading.head_mask_ref, &reading.human_ref, labels).await?;
    Ok(stored > 0)
}

async fn evaluator(state: AppState, shutdown: CancellationToken, worker: String) {
    while !shutdown.is_cancelled() {
        let stored = match evaluate_pending(&state, &worker).await {
            Ok(stored) => stored,
            Err(err) => {
                tracing::warn!(%err, "cannot evaluate predictions; will retry");
                0
            }
        };
        let measured = match agreement::measure_pending(&state).await {
            Ok(measured) => measured,
            Err(err) => {
                tracing::warn!(%err, "cannot measure readers' agreement; will retry");
                0
            }
        };
        let readings = match score_readings_pending(&state).await {
            Ok(scored) => scored,
            Err(err) => {
                tracing::warn!(%err, "cannot score readings; will retry");
                0
            }
        };
        if stored + measured + readings > 0 {
            continue; // there may be more than one pass's worth
        }
        tokio::select! {
            _ = state.evaluations_ready.notified() => {}
            _ = tokio::time::sleep(EVALUATOR_POLL) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

/// Starts this instance's evaluator where it runs model jobs (an instance without workers
/// leaves the heavy work to others).
pub fn start(state: &AppState, shutdown: &CancellationToken, tasks: &TaskTracker) {
    if state.config.orchestrator.workers > 0 {
        let worker = format!("evaluator-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        tasks.spawn(evaluator(state.clone(), shutdown.clone(), worker));
    }
}
