//! Agreement between the readers of cases read by several readers. Per case: Dice and HD95
//! between every two readers and their means, each reader against the STAPLE consensus with
//! STAPLE's estimates of their sensitivity and specificity, and where they disagree most.
//! Measured in the background once every reading is submitted (the evaluator's loop runs
//! [`measure_pending`]), or on the first request for it, once per case at a time on this
//! instance, and kept in `case_agreements` under the reading versions it was measured from.
//! Across the cases a worklist filter selects ([`overview`]): the spread per label and per
//! reader and the cases readers agree least on, read from what is kept, never measured on a
//! request.

use std::collections::BTreeMap;

use super::access::{CaseAccess, CompareReadings};
use super::readings::{load_readings, readings_of, LoadedReadings, ReadingRow};
use super::worklist;
use crate::api::{
    AgreementOverview, CaseAgreement, CaseId, CaseSpread, LabelAgreement, LabelSpread, PairAgreement, ReaderAgreement,
    ReaderSpread, Spread, UserName, WorklistQuery,
};
use crate::consensus;
use crate::metrics::{dice, hd95};
use crate::server::charts;
use crate::server::clock::now_ms;
use crate::server::error::AppError;
use crate::server::identity::User;
use crate::server::state::AppState;

/// Cases measured per background pass.
const CASES_PER_PASS: i64 = 20;

/// The reading versions a figure is measured from, in reading order.
fn readings_key(rows: &[ReadingRow]) -> String {
    rows.iter().map(|row| row.head_mask_ref.as_str()).collect::<Vec<_>>().join(" ")
}

async fn kept(state: &AppState, case_id: &CaseId, key: &str) -> Result<Option<CaseAgreement>, AppError> {
    let json: Option<String> =
        sqlx::query_scalar("SELECT agreement_json FROM case_agreements WHERE case_id = $1 AND readings_key = $2")
            .bind(case_id)
            .bind(key)
            .fetch_optional(&state.db.pool)
            .await?;
    json.map(|json| serde_json::from_str(&json).map_err(AppError::internal)).transpose()
}

/// The case's agreement as kept, else measured now and kept; one measure per case at a time
/// on this instance (others asking meanwhile wait, then read it).
async fn kept_or_measured(state: &AppState, case_id: &CaseId) -> Result<CaseAgreement, AppError> {
    let rows = readings_of(state, case_id, None).await?;
    let key = readings_key(&rows);
    if let Some(found) = kept(state, case_id, &key).await? {
        return Ok(found);
    }
    let _turn = state.agreements.turn(case_id.as_str()).await;
    if let Some(found) = kept(state, case_id, &key).await? {
        return Ok(found);
    }
    // The readings as keyed: a figure is never kept under versions it was not measured from.
    let loaded = load_readings(state, case_id, rows).await?;
    let figures = tokio::task::spawn_blocking(move || measure(loaded)).await.map_err(AppError::internal)?;
    sqlx::query(
        "INSERT INTO case_agreements (case_id, readings_key, agreement_json, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (case_id) DO UPDATE SET readings_key = excluded.readings_key,
           agreement_json = excluded.agreement_json, created_at = excluded.created_at",
    )
    .bind(case_id)
    .bind(&key)
    .bind(serde_json::to_string(&figures).map_err(AppError::internal)?)
    .bind(now_ms())
    .execute(&state.db.pool)
    .await?;
    Ok(figures)
}

/// `GET /cases/{id}/agreement`.
pub async fn of_case(state: &AppState, access: &CaseAccess<CompareReadings>) -> Result<CaseAgreement, AppError> {
    kept_or_measured(state, access.case_id()).await
}

/// The cases whose every reading is submitted and whose agreement is not kept yet.
const PENDING: &str = "FROM cases c WHERE c.readings_required > 1
     AND (SELECT COUNT(*) FROM readings g WHERE g.case_id = c.id AND g.submitted_at IS NOT NULL) >= c.readings_required
     AND NOT EXISTS (SELECT 1 FROM case_agreements a WHERE a.case_id = c.id)";

/// Measures the agreement of cases whose readings are all in and not measured yet; returns how
/// many were measured. A case that fails is logged and left for the next pass.
pub async fn measure_pending(state: &AppState) -> Result<usize, AppError> {
    let cases: Vec<CaseId> = sqlx::query_scalar(&format!("SELECT c.id {PENDING} ORDER BY c.id LIMIT $1"))
        .bind(CASES_PER_PASS)
        .fetch_all(&state.db.pool)
        .await?;
    let mut measured = 0;
    for case_id in cases {
        match kept_or_measured(state, &case_id).await {
            Ok(_) => measured += 1,
            Err(err) => tracing::warn!(%case_id, %err, "cannot measure the readers' agreement; retried later"),
        }
    }
    Ok(measured)
}

/// The five figures of `values` (sorted here); `None` when there are none.
fn spread(mut values: Vec<f64>) -> Option<Spread> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable_by(f64::total_cmp);
    let [min, q1, median, q3, max] = [0.0, 0.25, 0.5, 0.75, 1.0].map(|q| charts::quantile(&values, q));
    Some(Spread { n: values.len() as u64, min, q1, median, q3, max })
}

/// One reader's figures gathered over the cases they read.
#[derive(Default)]
struct ReaderFigures {
    cases: u64,
    dice: Vec<f64>,
    sensitivity: Vec<f64>,
    specificity: Vec<f64>,
}

/// `GET /agreement`: across the cases `query` selects that `user` may read and that are read
/// by several readers, the spread of agreement per label and per reader, and the cases readers
/// agree least on.
pub async fn overview(state: &AppState, user: &User, query: &WorklistQuery) -> Result<AgreementOverview, AppError> {
    let mut conn = state.db.pool.acquire().await?;
    let (selected, binds) = worklist::selection(&mut conn, state.db.backend, user, query).await?;
    let and = if selected.is_empty() { "WHERE" } else { "AND" };
    let counts_sql = format!(
        "SELECT COUNT(*), COUNT(a.case_id),
                COALESCE(SUM(CASE WHEN a.case_id IS NULL AND (SELECT COUNT(*) FROM readings g WHERE g.case_id = c.id
                  AND g.submitted_at IS NOT NULL) >= c.readings_required THEN 1 ELSE 0 END), 0)
         FROM cases c LEFT JOIN case_agreements a ON a.case_id = c.id {selected} {and} c.readings_required > 1"
    );
    let mut counting = sqlx::query_as::<_, (i64, i64, i64)>(&counts_sql);
    for value in &binds {
        counting = counting.bind(value);
    }
    let (cases, measured, pending) = counting.fetch_one(&mut *conn).await?;
    let rows_sql = format!(
        "SELECT c.id, c.name, a.agreement_json FROM cases c JOIN case_agreements a ON a.case_id = c.id
         {selected} {and} c.readings_required > 1 ORDER BY c.id"
    );
    let mut selecting = sqlx::query_as::<_, (CaseId, String, String)>(&rows_sql);
    for value in &binds {
        selecting = selecting.bind(value);
    }
    let rows = selecting.fetch_all(&mut *conn).await?;
    drop(conn);

    let mut per_label: BTreeMap<u8, (String, Vec<f64>)> = BTreeMap::new();
    let mut per_reader: BTreeMap<UserName, ReaderFigures> = BTreeMap::new();
    let mut per_case = Vec::with_capacity(rows.len());
    for (case_id, case_name, json) in rows {
        let figures: CaseAgreement = serde_json::from_str(&json).map_err(AppError::internal)?;
        for reader in &figures.readers {
            per_reader.entry(reader.clone()).or_default().cases += 1;
        }
        let mut case_means = Vec::new();
        for label in figures.labels {
            if let Some(mean) = label.mean_dice {
                per_label.entry(label.label).or_insert_with(|| (label.name.clone(), Vec::new())).1.push(mean);
                case_means.push(mean);
            }
            for reader in label.readers {
                let figures = per_reader.entry(reader.reader).or_default();
                figures.dice.extend(reader.dice);
                figures.sensitivity.push(reader.sensitivity);
                figures.specificity.push(reader.specificity);
            }
        }
        if !case_means.is_empty() {
            let mean_dice = case_means.iter().sum::<f64>() / case_means.len() as f64;
            per_case.push(CaseSpread { case_id, case_name, readers: figures.readers.len() as u32, mean_dice });
        }
    }
    let average =
        |values: &[f64]| if values.is_empty() { 0.0 } else { values.iter().sum::<f64>() / values.len() as f64 };
    let labels: Vec<LabelSpread> = per_label
        .into_iter()
        .filter_map(|(label, (name, means))| Some(LabelSpread { label, name, mean_dice: spread(means)? }))
        .collect();
    let readers: Vec<ReaderSpread> = per_reader
        .into_iter()
        .filter_map(|(reader, figures)| {
            Some(ReaderSpread {
                reader,
                cases: figures.cases,
                mean_sensitivity: average(&figures.sensitivity),
                mean_specificity: average(&figures.specificity),
                dice_vs_staple: spread(figures.dice)?,
            })
        })
        .collect();
    per_case.sort_by(|a, b| a.mean_dice.total_cmp(&b.mean_dice).then_with(|| a.case_name.cmp(&b.case_name)));
    per_case.truncate(AgreementOverview::LEAST_AGREED);
    let mut overview = AgreementOverview {
        cases: cases as u64,
        measured: measured as u64,
        pending: pending as u64,
        labels,
        readers,
        least_agreed: per_case,
        chart_svg: None,
    };
    overview.chart_svg = charts::agreement_svg(&overview);
    Ok(overview)
}

fn mean(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let defined: Vec<f64> = values.flatten().collect();
    (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64)
}

/// Dice between two readers: none when neither gave the label, 0 when one did not.
fn pair_dice(a: &[u8], b: &[u8], label: u8) -> Option<f64> {
    dice(a, b, label).or_else(|| a.contains(&label).then_some(0.0))
}

fn measure(loaded: LoadedReadings) -> CaseAgreement {
    let first = &loaded.masks[0];
    let dims = first.dims().map(|d| d as usize);
    let spacing = [1, 2, 3].map(|axis| first.header.pixdim[axis].abs().max(f32::EPSILON) as f64);
    let masks: Vec<Vec<u8>> = loaded.masks.iter().map(|mask| mask.labels()).collect();
    let views: Vec<&[u8]> = masks.iter().map(Vec::as_slice).collect();
    let staple = consensus::staple_consensus(&views);
    let labels = staple
        .labels
        .iter()
        .map(|estimate| {
            let label = estimate.label;
            let mut pairs = Vec::new();
            for a in 0..views.len() {
                for b in a + 1..views.len() {
                    pairs.push(PairAgreement {
                        readers: [loaded.readers[a].clone(), loaded.readers[b].clone()],
                        dice: pair_dice(views[a], views[b], label),
                        hd95_mm: hd95(views[a], views[b], label, dims, spacing),
                    });
                }
            }
            let readers = views
                .iter()
                .enumerate()
                .map(|(r, view)| ReaderAgreement {
                    reader: loaded.readers[r].clone(),
                    dice: dice(view, &staple.mask, label),
                    hd95_mm: hd95(view, &staple.mask, label, dims, spacing),
                    sensitivity: estimate.sensitivity[r],
                    specificity: estimate.specificity[r],
                })
                .collect();
            LabelAgreement {
                label,
                name: loaded.labels.iter().find(|l| l.value == label).map(|l| l.name.clone()).unwrap_or_default(),
                mean_dice: mean(pairs.iter().map(|p| p.dice)),
                mean_hd95_mm: mean(pairs.iter().map(|p| p.hd95_mm)),
                pairs,
                readers,
            }
        })
        .collect();
    let disagreement = consensus::disagreement(&views, dims);
    CaseAgreement {
        readers: loaded.readers,
        labels,
        disagreeing_voxels: disagreement.voxels,
        most_disagreement_at: disagreement.most_at.map(|at| at.map(|v| v as u32)),
    }
}
