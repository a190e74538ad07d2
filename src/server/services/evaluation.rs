//! How well model predictions agree with human labels: per-label Dice and HD95 (from
//! `crate::metrics`) between each prediction and the case's latest human mask, and the paired
//! production-versus-shadow summary the model page shows before a promotion.
//!
//! The figures are computed in the background, never on a request: each instance that runs
//! model jobs also runs an evaluator, woken when a prediction or a human mask version arrives
//! (and every 30 s, for those another instance wrote). One instance at a time computes
//! each (prediction, human version): it holds a claim row with a lease. A request reads the
//! stored figures and says how many cases are still pending.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use sqlx::any::AnyRow;
use sqlx::Row;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::mask_versions::load_mask;
use super::registry::{active_models, model_card};
use crate::api::{
    AnchoredCase, CaseId, LabelStats, ModelScore, ModelState, ModelSummary, PairedDice, PairedEvaluation, Stats,
    VersionEvaluation,
};
use crate::metrics::{dice, hd95};
use crate::server::clock::now_ms;
use crate::server::error::AppError;
use crate::server::identity::{Role, User};
use crate::server::state::AppState;

/// How often an idle evaluator looks for work another instance made (saves on instances
/// without workers); work made here wakes it at once. Each look reads every unscored pair.
const EVALUATOR_POLL: Duration = Duration::from_secs(30);
/// A claim older than this belongs to an instance that stopped; another may take it over.
const CLAIM_LEASE_MS: i64 = 10 * 60 * 1000;
/// Pairs looked up per pass.
const PAIRS_PER_PASS: i64 = 200;

fn stats(values: &mut [f64]) -> Option<Stats> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    let middle = values.len() / 2;
    let median = if values.len() % 2 == 1 { values[middle] } else { (values[middle - 1] + values[middle]) / 2.0 };
    Some(Stats { mean: values.iter().sum::<f64>() / values.len() as f64, median, cases: values.len() })
}

/// Per label value: Dice and HD95 (mm) of one prediction against one human mask, each
/// undefined where `crate::metrics` says so (an empty mask).
type LabelScores = BTreeMap<u8, (Option<f64>, Option<f64>)>;

/// A prediction to score against a person's mask of the same case.
struct EvaluableCase {
    prediction_id: String,
    prediction_ref: String,
    human_ref: String,
}

/// A case a version is scored on, as a request reads it.
struct ScoredCase {
    case_id: CaseId,
    case_name: String,
    /// Of the version's latest prediction of the case against the case's latest human mask;
    /// `None` while the evaluator has not stored them.
    scores: Option<LabelScores>,
}

/// Computes and stores the scores of `case` for `labels`, all labels in one transaction (a
/// partial set would look complete to readers).
async fn compute(state: &AppState, case: &EvaluableCase, labels: Vec<u8>) -> Result<(), AppError> {
    let (prediction, human) = (load_mask(state, &case.prediction_ref).await?, load_mask(state, &case.human_ref).await?);
    if prediction.dims() != human.dims() {
        return Err(AppError::Internal(format!(
            "prediction {} and mask {} differ in size",
            case.prediction_ref, case.human_ref
        )));
    }
    let computed = tokio::task::spawn_blocking(move || {
        let dims = human.dims().map(|d| d as usize);
        let spacing = [1, 2, 3].map(|axis| human.header.pixdim[axis].abs().max(f32::EPSILON) as f64);
        let (prediction, human) = (prediction.labels(), human.labels());
        labels
            .into_iter()
            .map(|value| (value, (dice(&prediction, &human, value), hd95(&prediction, &human, value, dims, spacing))))
            .collect::<BTreeMap<_, _>>()
    })
    .await
    .map_err(AppError::internal)?;
    let at = now_ms();
    let mut tx = state.db.pool.begin().await?;
    for (value, (dice, hd95)) in &computed {
        sqlx::query(
            "INSERT INTO evaluations (prediction_id, human_ref, label_value, dice, hd95_mm, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&case.prediction_id)
        .bind(&case.human_ref)
        .bind(*value as i64)
        .bind(*dice)
        .bind(*hd95)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Each case's latest prediction by each model version `versions` selects (a condition on
/// `p.model_id`), with the case's latest human mask, as `t`; rows of unlabelled cases are
/// left out.
fn latest_predictions(versions: &str) -> String {
    format!(
        "SELECT t.* FROM (
             SELECT p.model_id, p.case_id, c.name, p.id, p.object_ref,
                    (SELECT l.new_mask_ref FROM labels l WHERE l.case_id = p.case_id
                     ORDER BY l.created_at DESC, l.id DESC LIMIT 1) AS human_ref
             FROM predictions p JOIN cases c ON c.id = p.case_id
             WHERE {versions}
               AND p.created_at = (SELECT MAX(q.created_at) FROM predictions q WHERE q.model_id = p.model_id AND q.case_id = p.case_id)
         ) t
         WHERE t.human_ref IS NOT NULL"
    )
}

fn evaluable(row: &AnyRow) -> EvaluableCase {
    EvaluableCase {
        prediction_id: row.get("id"),
        prediction_ref: row.get("object_ref"),
        human_ref: row.get("human_ref"),
    }
}

/// The latest prediction of each (version not archived, case) whose score against the case's
/// latest human mask is not stored yet, with its version.
async fn unscored(state: &AppState) -> Result<Vec<(String, EvaluableCase)>, AppError> {
    let rows = sqlx::query(&format!(
        "{} AND NOT EXISTS (SELECT 1 FROM evaluations e WHERE e.prediction_id = t.id AND e.human_ref = t.human_ref)
         ORDER BY t.id LIMIT $1",
        latest_predictions("p.model_id IN (SELECT id FROM models WHERE state <> 'archived')"),
    ))
    .bind(PAIRS_PER_PASS)
    .fetch_all(&state.db.pool)
    .await?;
    Ok(rows.iter().map(|row| (row.get("model_id"), evaluable(row))).collect())
}

/// Takes the claim on (prediction, human mask) for `worker`: `false` when another instance
/// holds it.
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
    Ok(claimed.rows_affected() == 1)
}

/// Computes every score not stored yet that no other instance is computing; returns how many
/// were stored. A failure keeps its claim until the lease runs out, so it is retried later
/// rather than at once.
pub async fn evaluate_pending(state: &AppState, worker: &str) -> Result<usize, AppError> {
    let mut labels_of: HashMap<String, Vec<u8>> = HashMap::new();
    let mut stored = 0;
    for (model_id, case) in unscored(state).await? {
        if !claim(state, &case, worker).await? {
            continue;
        }
        if !labels_of.contains_key(&model_id) {
            let card = model_card(state, &model_id).await?;
            labels_of.insert(model_id.clone(), card.label_map.keys().filter_map(|v| v.parse().ok()).collect());
        }
        match compute(state, &case, labels_of[&model_id].clone()).await {
            Ok(()) => {
                sqlx::query(
                    "DELETE FROM evaluation_claims WHERE prediction_id = $1 AND human_ref = $2 AND worker = $3",
                )
                .bind(&case.prediction_id)
                .bind(&case.human_ref)
                .bind(worker)
                .execute(&state.db.pool)
                .await?;
                stored += 1;
            }
            Err(err) => {
                tracing::warn!(prediction_id = %case.prediction_id, human_ref = %case.human_ref, %err, "evaluation failed; retried after its lease")
            }
        }
    }
    Ok(stored)
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
        if stored > 0 {
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

/// Each labelled case's latest prediction by `model_id` with its stored scores against the
/// case's latest human mask: one statement however many cases there are.
async fn scored_cases(state: &AppState, model_id: &str) -> Result<Vec<ScoredCase>, AppError> {
    let rows = sqlx::query(&format!(
        "SELECT s.id, s.case_id, s.name, e.label_value, e.dice, e.hd95_mm FROM ({}) s
         LEFT JOIN evaluations e ON e.prediction_id = s.id AND e.human_ref = s.human_ref
         ORDER BY s.case_id, s.id, e.label_value",
        latest_predictions("p.model_id = $1")
    ))
    .bind(model_id)
    .fetch_all(&state.db.pool)
    .await?;
    // One row per stored label score, or one row of NULLs for a prediction not scored yet.
    let mut cases: Vec<ScoredCase> = Vec::new();
    let mut prediction: Option<String> = None;
    for row in &rows {
        let id: String = row.get("id");
        if prediction.as_ref() != Some(&id) {
            cases.push(ScoredCase { case_id: row.get("case_id"), case_name: row.get("name"), scores: None });
            prediction = Some(id);
        }
        if let Some(label) = row.get::<Option<i64>, _>("label_value") {
            let case = cases.last_mut().expect("each row's prediction has its case");
            case.scores.get_or_insert_with(BTreeMap::new).insert(label as u8, (row.get("dice"), row.get("hd95_mm")));
        }
    }
    Ok(cases)
}

/// The train and validation cases of the snapshots a model was trained on, in one statement.
async fn training_cases(state: &AppState, datasets: &[String]) -> Result<BTreeSet<CaseId>, AppError> {
    // Distinct ids: a card may name a snapshot twice, and each one is a bound parameter.
    let datasets: BTreeSet<&String> = datasets.iter().collect();
    if datasets.is_empty() {
        return Ok(BTreeSet::new());
    }
    let placeholders: Vec<String> = (1..=datasets.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "SELECT DISTINCT case_id FROM dataset_cases WHERE dataset_id IN ({}) AND split IN ('train', 'validation')",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for dataset in datasets {
        query = query.bind(dataset.as_str());
    }
    let rows = query.fetch_all(&state.db.pool).await?;
    Ok(rows.iter().map(|row| row.get::<CaseId, _>("case_id")).collect())
}

/// Evaluated cases a version itself pre-labelled.
async fn anchored_cases(state: &AppState, versions: &[EvaluatedVersion]) -> Result<Vec<AnchoredCase>, AppError> {
    let mut anchored = Vec::new();
    for (_, model, _, cases) in versions {
        let rows = sqlx::query("SELECT DISTINCT case_id FROM prelabels WHERE model_id = $1")
            .bind(&model.id)
            .fetch_all(&state.db.pool)
            .await?;
        let prelabelled: BTreeSet<CaseId> = rows.iter().map(|row| row.get("case_id")).collect();
        anchored.extend(cases.iter().filter(|case| prelabelled.contains(&case.case_id)).map(|case| AnchoredCase {
            case_id: case.case_id.clone(),
            case_name: case.case_name.clone(),
            model_version: model.version.clone(),
        }));
    }
    Ok(anchored)
}

/// A version under evaluation: its role, summary, label names and the cases it is scored on.
type EvaluatedVersion = (ModelState, ModelSummary, BTreeMap<u8, String>, Vec<ScoredCase>);

fn score(model: &ModelSummary, names: &BTreeMap<u8, String>, per_case: &[LabelScores]) -> ModelScore {
    let labels = names
        .iter()
        .map(|(&label, name)| {
            let mut dices: Vec<f64> = per_case.iter().filter_map(|s| s.get(&label).and_then(|v| v.0)).collect();
            let mut distances: Vec<f64> = per_case.iter().filter_map(|s| s.get(&label).and_then(|v| v.1)).collect();
            LabelStats { label, name: name.clone(), dice: stats(&mut dices), hd95_mm: stats(&mut distances) }
        })
        .collect();
    ModelScore { model: model.clone(), labels }
}

/// Who may read evaluations, the coordinators: they compare shadow models with people's
/// labels, and computing them is heavy.
pub fn may_read(user: &User) -> bool {
    user.is_coordinator()
}

/// A version's label names and the cases it is scored on: its latest prediction of each
/// labelled case, but for those it was trained or validated on (added to `excluded`). A fixed
/// number of statements, whatever the number of cases.
async fn evaluable_version(
    state: &AppState,
    model: &ModelSummary,
    excluded: &mut BTreeSet<CaseId>,
) -> Result<(BTreeMap<u8, String>, Vec<ScoredCase>), AppError> {
    let card = model_card(state, &model.id).await?;
    let names: BTreeMap<u8, String> =
        card.label_map.iter().filter_map(|(v, n)| Some((v.parse().ok()?, n.clone()))).collect();
    let training = training_cases(state, &card.training_datasets).await?;
    let mut cases = scored_cases(state, &model.id).await?;
    cases.retain(|case| {
        let trained_on = training.contains(&case.case_id);
        if trained_on {
            excluded.insert(case.case_id.clone());
        }
        !trained_on
    });
    Ok((names, cases))
}

/// `GET /models/{id}/evaluation`: one version against human labels on every labelled case it
/// predicted (a backfill's result), whatever its state.
pub async fn version_evaluation(state: &AppState, user: &User, model_id: &str) -> Result<VersionEvaluation, AppError> {
    user.require_any(&Role::COORDINATORS, "reading model evaluations")?;
    let model = super::registry::model_detail(state, model_id).await?.summary;
    let mut excluded = BTreeSet::new();
    let (names, cases) = evaluable_version(state, &model, &mut excluded).await?;
    let (mut scored, mut pending_cases) = (Vec::new(), 0);
    for case in cases {
        match case.scores {
            Some(scores) => scored.push(scores),
            None => pending_cases += 1,
        }
    }
    Ok(VersionEvaluation {
        score: score(&model, &names, &scored),
        pending_cases,
        excluded_training_cases: excluded.len(),
    })
}

/// Production against shadow for model `name`, on the cases both have predicted and a person
/// has labelled; a version without a counterpart is scored on all its labelled cases.
pub async fn paired_evaluation(state: &AppState, user: &User, name: &str) -> Result<PairedEvaluation, AppError> {
    user.require_any(&Role::COORDINATORS, "reading model evaluations")?;
    let active = active_models(state, name).await?;
    let mut versions = Vec::new();
    let mut excluded = BTreeSet::new();
    for (role, model) in [(ModelState::Production, &active.production), (ModelState::Shadow, &active.shadow)] {
        if let Some(model) = model {
            let (names, cases) = evaluable_version(state, model, &mut excluded).await?;
            versions.push((role, model.clone(), names, cases));
        }
    }
    // With both versions, compare only on cases both predicted.
    if versions.len() == 2 {
        let second: BTreeSet<&CaseId> = versions[1].3.iter().map(|c| &c.case_id).collect();
        let shared: BTreeSet<CaseId> =
            versions[0].3.iter().map(|c| &c.case_id).filter(|id| second.contains(id)).cloned().collect();
        for version in &mut versions {
            version.3.retain(|c| shared.contains(&c.case_id));
        }
    }
    let mut result = PairedEvaluation {
        name: name.to_string(),
        paired_cases: 0,
        production: None,
        shadow: None,
        disagreements: Vec::new(),
        pairs: Vec::new(),
        excluded_training_cases: excluded.len(),
        pending_cases: 0,
        anchored_cases: anchored_cases(state, &versions).await?,
    };
    // Cases whose figures are still being computed are left out of every version (so the
    // comparison stays paired) and counted.
    let mut pending = BTreeSet::new();
    let mut found: Vec<BTreeMap<CaseId, LabelScores>> = Vec::new();
    for (_, _, _, cases) in &versions {
        let mut by_case = BTreeMap::new();
        for case in cases {
            match &case.scores {
                Some(scores) => {
                    by_case.insert(case.case_id.clone(), scores.clone());
                }
                None => {
                    pending.insert(case.case_id.clone());
                }
            }
        }
        found.push(by_case);
    }
    result.pending_cases = pending.len();
    let mut per_version: Vec<BTreeMap<CaseId, LabelScores>> = Vec::new();
    for ((role, model, names, _), mut by_case) in versions.iter().zip(found) {
        by_case.retain(|case_id, _| !pending.contains(case_id));
        let all: Vec<_> = by_case.values().cloned().collect();
        let summary = Some(score(model, names, &all));
        match role {
            ModelState::Production => result.production = summary,
            _ => result.shadow = summary,
        }
        per_version.push(by_case);
    }
    if let [production, shadow] = per_version.as_slice() {
        result.paired_cases = production.len();
        let case_names: BTreeMap<&CaseId, &String> = versions[0].3.iter().map(|c| (&c.case_id, &c.case_name)).collect();
        for (case_id, p_scores) in production {
            for (label, (p_dice, _)) in p_scores {
                if let (Some(p_dice), Some((Some(s_dice), _))) =
                    (p_dice, shadow.get(case_id).and_then(|s| s.get(label)))
                {
                    result.pairs.push(PairedDice {
                        case_id: case_id.clone(),
                        case_name: case_names.get(case_id).map(|n| n.to_string()).unwrap_or_default(),
                        label: *label,
                        production_dice: *p_dice,
                        shadow_dice: *s_dice,
                    });
                }
            }
        }
        let gap = |pair: &PairedDice| (pair.production_dice - pair.shadow_dice).abs();
        result.disagreements = result.pairs.clone();
        result.disagreements.sort_by(|a, b| gap(b).total_cmp(&gap(a)));
        result.disagreements.truncate(10);
    } else {
        result.paired_cases = 0;
    }
    Ok(result)
}
