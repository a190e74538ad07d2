//! How well model versions agree with human labels, as the model page and REST clients read
//! it: a version's own figures, and the paired production-versus-shadow summary shown before a
//! promotion, from the scores the evaluator (`evaluation`) stored. A request reads the stored
//! figures and says how many cases are still pending; it never computes one.

use std::collections::{BTreeMap, BTreeSet};

use super::evaluation::latest_predictions;
use super::registry::{active_models, model_card};
use crate::api::{
    AgainstReaders, AnchoredCase, CaseId, LabelStats, ModelId, ModelScore, ModelState, ModelSummary, PairedDice,
    PairedEvaluation, Split, Stats, VersionEvaluation,
};
use crate::server::error::AppError;
use crate::server::identity::{Role, User};
use crate::server::state::AppState;

/// Per label value: Dice and HD95 (mm) of one prediction against one human mask, each
/// undefined where `crate::metrics` says so (an empty mask).
type LabelScores = BTreeMap<u8, (Option<f64>, Option<f64>)>;

/// A case a version is scored on, as a request reads it.
struct ScoredCase {
    case_id: CaseId,
    case_name: String,
    /// The case's latest own mask version the scores are against.
    human_ref: String,
    /// Of the version's latest prediction of the case against the case's latest human mask;
    /// `None` while the evaluator has not stored them.
    scores: Option<LabelScores>,
}

fn stats(values: &mut [f64]) -> Option<Stats> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    let middle = values.len() / 2;
    let median = if values.len() % 2 == 1 { values[middle] } else { (values[middle - 1] + values[middle]) / 2.0 };
    Some(Stats { mean: values.iter().sum::<f64>() / values.len() as f64, median, cases: values.len() })
}

/// Each labelled case's latest prediction by `model_id` with its stored scores against the
/// case's latest human mask: one statement however many cases there are.
async fn scored_cases(state: &AppState, model_id: &ModelId) -> Result<Vec<ScoredCase>, AppError> {
    #[derive(sqlx::FromRow)]
    struct ScoreRow {
        id: String,
        case_id: CaseId,
        name: String,
        human_ref: String,
        label_value: Option<i64>,
        dice: Option<f64>,
        hd95_mm: Option<f64>,
    }
    let rows: Vec<ScoreRow> = sqlx::query_as(&format!(
        "SELECT s.id, s.case_id, s.name, s.human_ref, e.label_value, e.dice, e.hd95_mm FROM ({}) s
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
    for row in rows {
        if prediction.as_ref() != Some(&row.id) {
            cases.push(ScoredCase {
                case_id: row.case_id,
                case_name: row.name,
                human_ref: row.human_ref,
                scores: None,
            });
            prediction = Some(row.id);
        }
        if let Some(label) = row.label_value {
            let case = cases.last_mut().expect("each row's prediction has its case");
            case.scores.get_or_insert_with(BTreeMap::new).insert(label as u8, (row.dice, row.hd95_mm));
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
    let placeholders: Vec<String> = (3..datasets.len() + 3).map(|n| format!("${n}")).collect();
    let sql = format!(
        "SELECT DISTINCT case_id FROM dataset_cases WHERE split IN ($1, $2) AND dataset_id IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_scalar(&sql).bind(Split::Train).bind(Split::Validation);
    for dataset in datasets {
        query = query.bind(dataset.as_str());
    }
    Ok(query.fetch_all(&state.db.pool).await?.into_iter().collect())
}

/// Evaluated cases a version itself pre-labelled.
async fn anchored_cases(state: &AppState, versions: &[EvaluatedVersion]) -> Result<Vec<AnchoredCase>, AppError> {
    let mut anchored = Vec::new();
    for (_, model, _, cases) in versions {
        let prelabelled: Vec<CaseId> = sqlx::query_scalar("SELECT DISTINCT case_id FROM prelabels WHERE model_id = $1")
            .bind(&model.id)
            .fetch_all(&state.db.pool)
            .await?;
        let prelabelled: BTreeSet<CaseId> = prelabelled.into_iter().collect();
        anchored.extend(cases.iter().filter(|case| prelabelled.contains(&case.case_id)).map(|case| AnchoredCase {
            case_id: case.case_id.clone(),
            case_name: case.case_name.clone(),
            model_version: model.version.clone(),
        }));
    }
    Ok(anchored)
}

/// One case's readings scored against its own mask version: `(reader id, label, Dice)`.
type CaseReaderScores = Vec<(String, u8, Option<f64>)>;

/// Each reading's Dice per label against a case's own mask version, by (case, that version).
type ReaderScores = BTreeMap<(CaseId, String), CaseReaderScores>;

/// Every stored reading score, in one statement.
async fn reader_scores(state: &AppState) -> Result<ReaderScores, AppError> {
    let rows: Vec<(CaseId, String, String, i64, Option<f64>)> = sqlx::query_as(
        "SELECT g.case_id, g.reader_id, r.human_ref, r.label_value, r.dice
         FROM reading_scores r JOIN readings g ON g.id = r.reading_id",
    )
    .fetch_all(&state.db.pool)
    .await?;
    let mut scores = ReaderScores::new();
    for (case_id, reader, human_ref, label, dice) in rows {
        scores.entry((case_id, human_ref)).or_default().push((reader, label as u8, dice));
    }
    Ok(scores)
}

/// Per label, a version against the readers on the cases read by several readers: `cases` are
/// the version's scores of such cases with the readers' scores against the same mask.
fn against_readers(cases: &[(&LabelScores, &CaseReaderScores)]) -> BTreeMap<u8, AgainstReaders> {
    let labels: BTreeSet<u8> = cases.iter().flat_map(|(model, _)| model.keys().copied()).collect();
    let mut found = BTreeMap::new();
    for label in labels {
        let mut model: Vec<f64> = cases.iter().filter_map(|(m, _)| m.get(&label).and_then(|v| v.0)).collect();
        let mut per_reader: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for (_, readers) in cases {
            for (reader, _, dice) in readers.iter().filter(|(_, l, _)| *l == label) {
                per_reader.entry(reader.as_str()).or_default().extend(*dice);
            }
        }
        let mut readers: Vec<f64> = per_reader.values().flatten().copied().collect();
        let least = per_reader
            .values()
            .filter(|values| !values.is_empty())
            .map(|values| values.iter().sum::<f64>() / values.len() as f64)
            .min_by(f64::total_cmp);
        if let (Some(model_dice), Some(readers_dice), Some(least_reader_mean)) =
            (stats(&mut model), stats(&mut readers), least)
        {
            let within_readers = model_dice.mean >= least_reader_mean;
            found.insert(label, AgainstReaders { model_dice, readers_dice, least_reader_mean, within_readers });
        }
    }
    found
}

/// `score` with each label's comparison with the readers, from `scored` (the cases scored,
/// with the mask version each is scored against).
fn score_with_readers(
    model: &ModelSummary,
    names: &BTreeMap<u8, String>,
    scored: &[(&String, &CaseId, &LabelScores)],
    readers: &ReaderScores,
) -> ModelScore {
    let all: Vec<LabelScores> = scored.iter().map(|(_, _, scores)| (*scores).clone()).collect();
    let mut result = score(model, names, &all);
    let read: Vec<(&LabelScores, &CaseReaderScores)> = scored
        .iter()
        .filter_map(|(human_ref, case_id, scores)| {
            Some((*scores, readers.get(&((*case_id).clone(), (*human_ref).clone()))?))
        })
        .collect();
    let mut compared = against_readers(&read);
    for label in &mut result.labels {
        label.against_readers = compared.remove(&label.label);
    }
    result
}

/// A version under evaluation: its role, summary, label names and the cases it is scored on.
type EvaluatedVersion = (ModelState, ModelSummary, BTreeMap<u8, String>, Vec<ScoredCase>);

fn score(model: &ModelSummary, names: &BTreeMap<u8, String>, per_case: &[LabelScores]) -> ModelScore {
    let labels = names
        .iter()
        .map(|(&label, name)| {
            let mut dices: Vec<f64> = per_case.iter().filter_map(|s| s.get(&label).and_then(|v| v.0)).collect();
            let mut distances: Vec<f64> = per_case.iter().filter_map(|s| s.get(&label).and_then(|v| v.1)).collect();
            LabelStats {
                label,
                name: name.clone(),
                dice: stats(&mut dices),
                hd95_mm: stats(&mut distances),
                against_readers: None,
            }
        })
        .collect();
    ModelScore { model: model.clone(), labels }
}

/// Who may read evaluations, the coordinators: they compare shadow models with people's
/// labels, and computing them is heavy.
pub(crate) fn may_read(user: &User) -> bool {
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
pub async fn version_evaluation(
    state: &AppState,
    user: &User,
    model_id: &ModelId,
) -> Result<VersionEvaluation, AppError> {
    user.require_any(&Role::COORDINATORS, "reading model evaluations")?;
    let model = super::registry::model_detail(state, model_id).await?.summary;
    let mut excluded = BTreeSet::new();
    let (names, cases) = evaluable_version(state, &model, &mut excluded).await?;
    let scored: Vec<(&String, &CaseId, &LabelScores)> =
        cases.iter().filter_map(|case| Some((&case.human_ref, &case.case_id, case.scores.as_ref()?))).collect();
    let pending_cases = cases.len() - scored.len();
    let readers = reader_scores(state).await?;
    Ok(VersionEvaluation {
        score: score_with_readers(&model, &names, &scored, &readers),
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
    let readers = reader_scores(state).await?;
    let mut per_version: Vec<BTreeMap<CaseId, LabelScores>> = Vec::new();
    for ((role, model, names, cases), mut by_case) in versions.iter().zip(found) {
        by_case.retain(|case_id, _| !pending.contains(case_id));
        let human_refs: BTreeMap<&CaseId, &String> = cases.iter().map(|c| (&c.case_id, &c.human_ref)).collect();
        let scored: Vec<(&String, &CaseId, &LabelScores)> =
            by_case.iter().filter_map(|(case_id, scores)| Some((*human_refs.get(case_id)?, case_id, scores))).collect();
        let summary = Some(score_with_readers(model, names, &scored, &readers));
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
