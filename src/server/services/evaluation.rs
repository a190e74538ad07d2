//! How well model predictions agree with human labels: per-label Dice and HD95 (95th
//! percentile Hausdorff distance, in mm, from the voxel spacing) between each prediction and
//! the case's latest human mask, cached per (prediction, human version), and the paired
//! production-versus-shadow summary the model page shows before a promotion.

use std::collections::BTreeMap;

use sqlx::Row;

use super::labels::load_mask;
use crate::models::{Disagreement, LabelStats, ModelScore, ModelState, ModelSummary, PairedEvaluation, Stats};
use crate::server::services::models::{active_models, model_card};
use crate::server::{now_ms, AppError, AppState};

/// Dice coefficient of label `value` between two masks; 1 when neither holds it.
pub fn dice(a: &[u8], b: &[u8], value: u8) -> f64 {
    let (mut both, mut in_a, mut in_b) = (0u64, 0u64, 0u64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x == value, y == value);
        in_a += x as u64;
        in_b += y as u64;
        both += (x && y) as u64;
    }
    if in_a + in_b == 0 {
        1.0
    } else {
        2.0 * both as f64 / (in_a + in_b) as f64
    }
}

/// HD95 in mm of label `value`: the larger of the two directed 95th-percentile surface
/// distances (as MONAI computes it). `None` when either mask lacks the label.
pub fn hd95(a: &[u8], b: &[u8], value: u8, dims: [usize; 3], spacing: [f64; 3]) -> Option<f64> {
    // Work on the box around both labels (one voxel of margin) rather than the whole volume:
    // distance maps of a 512×512×300 volume would take gigabytes.
    let (from, to) = bounding_box(a, b, value, dims)?;
    let cropped = [0, 1, 2].map(|axis| to[axis] - from[axis]);
    let crop = |mask: &[u8]| -> Vec<u8> {
        let mut out = Vec::with_capacity(cropped.iter().product());
        for k in from[2]..to[2] {
            for j in from[1]..to[1] {
                let row = from[0] + dims[0] * (j + dims[1] * k);
                out.extend_from_slice(&mask[row..row + cropped[0]]);
            }
        }
        out
    };
    // A crop edge that is not the volume's edge must not count as surface: the margin keeps
    // every label voxel off it unless the label touches the volume's edge.
    let (a, b, dims) = (crop(a), crop(b), cropped);
    let surface_a = surface(&a, value, dims);
    let surface_b = surface(&b, value, dims);
    if !surface_a.iter().any(|&s| s) || !surface_b.iter().any(|&s| s) {
        return None;
    }
    let to_b = squared_distance_transform(&surface_b, dims, spacing);
    let to_a = squared_distance_transform(&surface_a, dims, spacing);
    let directed = |from: &[bool], field: &[f64]| {
        let mut distances: Vec<f64> = from.iter().zip(field).filter(|(s, _)| **s).map(|(_, d)| d.sqrt()).collect();
        distances.sort_unstable_by(f64::total_cmp);
        distances[((distances.len() - 1) as f64 * 0.95).round() as usize]
    };
    Some(directed(&surface_a, &to_b).max(directed(&surface_b, &to_a)))
}

/// The half-open box `[from, to)` holding every voxel of label `value` in either mask, grown
/// by one voxel inside the volume; `None` when neither holds it.
fn bounding_box(a: &[u8], b: &[u8], value: u8, dims: [usize; 3]) -> Option<([usize; 3], [usize; 3])> {
    let mut from = dims;
    let mut to = [0; 3];
    for (index, (&x, &y)) in a.iter().zip(b).enumerate() {
        if x == value || y == value {
            let at = [index % dims[0], (index / dims[0]) % dims[1], index / (dims[0] * dims[1])];
            for axis in 0..3 {
                from[axis] = from[axis].min(at[axis]);
                to[axis] = to[axis].max(at[axis] + 1);
            }
        }
    }
    (to[0] > 0).then(|| ([0, 1, 2].map(|axis| from[axis].saturating_sub(1)), [0, 1, 2].map(|axis| (to[axis] + 1).min(dims[axis]))))
}

/// Voxels of label `value` with a 6-neighbour outside it (or on the volume's edge).
fn surface(mask: &[u8], value: u8, [ni, nj, nk]: [usize; 3]) -> Vec<bool> {
    let at = |i: usize, j: usize, k: usize| mask[i + ni * (j + nj * k)] == value;
    let mut out = vec![false; mask.len()];
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                if !at(i, j, k) {
                    continue;
                }
                let edge = i == 0 || j == 0 || k == 0 || i + 1 == ni || j + 1 == nj || k + 1 == nk;
                out[i + ni * (j + nj * k)] = edge
                    || !at(i - 1, j, k)
                    || !at(i + 1, j, k)
                    || !at(i, j - 1, k)
                    || !at(i, j + 1, k)
                    || !at(i, j, k - 1)
                    || !at(i, j, k + 1);
            }
        }
    }
    out
}

/// Squared distance in mm from every voxel to the nearest `feature` voxel: the exact
/// separable transform of Felzenszwalb and Huttenlocher, one axis at a time.
fn squared_distance_transform(feature: &[bool], dims: [usize; 3], spacing: [f64; 3]) -> Vec<f64> {
    let mut field: Vec<f64> = feature.iter().map(|&f| if f { 0.0 } else { f64::INFINITY }).collect();
    let strides = [1, dims[0], dims[0] * dims[1]];
    for axis in 0..3 {
        let n = dims[axis];
        let (mut line, mut out) = (vec![0.0; n], vec![0.0; n]);
        let others: Vec<usize> = (0..3).filter(|&a| a != axis).collect();
        for b in 0..dims[others[1]] {
            for a in 0..dims[others[0]] {
                let start = a * strides[others[0]] + b * strides[others[1]];
                for (p, value) in line.iter_mut().enumerate() {
                    *value = field[start + p * strides[axis]];
                }
                lower_envelope(&line, spacing[axis], &mut out);
                for (p, value) in out.iter().enumerate() {
                    field[start + p * strides[axis]] = *value;
                }
            }
        }
    }
    field
}

/// `out[p] = min_q (spacing·(p − q))² + f[q]` over the finite `f[q]`.
fn lower_envelope(f: &[f64], spacing: f64, out: &mut [f64]) {
    let sites: Vec<usize> = (0..f.len()).filter(|&q| f[q].is_finite()).collect();
    if sites.is_empty() {
        out.fill(f64::INFINITY);
        return;
    }
    let x = |q: usize| q as f64 * spacing;
    let mut hull: Vec<usize> = Vec::with_capacity(sites.len());
    let mut starts: Vec<f64> = Vec::with_capacity(sites.len());
    for &q in &sites {
        loop {
            let Some(&p) = hull.last() else {
                hull.push(q);
                starts.push(f64::NEG_INFINITY);
                break;
            };
            // Where q's parabola starts to lie below p's.
            let cross = ((f[q] + x(q) * x(q)) - (f[p] + x(p) * x(p))) / (2.0 * (x(q) - x(p)));
            if cross <= *starts.last().expect("one start per hull entry") {
                hull.pop();
                starts.pop();
            } else {
                hull.push(q);
                starts.push(cross);
                break;
            }
        }
    }
    let mut k = 0;
    for (p, value) in out.iter_mut().enumerate() {
        while k + 1 < hull.len() && starts[k + 1] <= x(p) {
            k += 1;
        }
        let q = hull[k];
        *value = (x(p) - x(q)).powi(2) + f[q];
    }
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

/// Per label value: Dice and HD95 (mm) of one prediction against one human mask.
type LabelScores = BTreeMap<u8, (f64, Option<f64>)>;

/// A case one model version predicted and a person labelled.
struct EvaluableCase {
    case_id: String,
    case_name: String,
    prediction_id: String,
    prediction_ref: String,
    human_ref: String,
}

/// The scores of one prediction against one human mask, computed once and cached.
async fn scores(state: &AppState, case: &EvaluableCase, labels: &[u8]) -> Result<LabelScores, AppError> {
    let (prediction_id, prediction_ref, human_ref) = (&case.prediction_id, &case.prediction_ref, &case.human_ref);
    let cached = sqlx::query("SELECT label_value, dice, hd95_mm FROM evaluations WHERE prediction_id = $1 AND human_ref = $2")
        .bind(prediction_id)
        .bind(human_ref)
        .fetch_all(&state.db.pool)
        .await?;
    if !cached.is_empty() {
        return Ok(cached
            .into_iter()
            .map(|row| (row.get::<i64, _>("label_value") as u8, (row.get("dice"), row.get("hd95_mm"))))
            .collect());
    }
    let (prediction, human) = (load_mask(state, prediction_ref).await?, load_mask(state, human_ref).await?);
    if prediction.dims != human.dims {
        return Err(AppError::Internal(format!("prediction {prediction_ref} and mask {human_ref} differ in size")));
    }
    let labels = labels.to_vec();
    let computed = tokio::task::spawn_blocking(move || {
        let dims = human.dims.map(|d| d as usize);
        let spacing = [1, 2, 3].map(|axis| human.header.pixdim[axis].abs().max(f32::EPSILON) as f64);
        labels
            .into_iter()
            .map(|value| (value, (dice(&prediction.labels, &human.labels, value), hd95(&prediction.labels, &human.labels, value, dims, spacing))))
            .collect::<BTreeMap<_, _>>()
    })
    .await
    .map_err(AppError::internal)?;
    let at = now_ms();
    // All labels or none: a partial set would look complete to the cache lookup.
    let mut tx = state.db.pool.begin().await?;
    for (value, (dice, hd95)) in &computed {
        // Two requests may compute the same figures; the first stored wins.
        sqlx::query(
            "INSERT INTO evaluations (prediction_id, human_ref, label_value, dice, hd95_mm, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(prediction_id)
        .bind(human_ref)
        .bind(*value as i64)
        .bind(*dice)
        .bind(*hd95)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(computed)
}

/// Each case's latest prediction by `model_id`, with the case's latest human mask.
async fn evaluable_cases(state: &AppState, model_id: &str) -> Result<Vec<EvaluableCase>, AppError> {
    let rows = sqlx::query(
        "SELECT p.case_id, c.name, p.id, p.object_ref,
                (SELECT l.new_mask_ref FROM labels l WHERE l.case_id = p.case_id
                 ORDER BY l.created_at DESC, l.id DESC LIMIT 1) AS human_ref
         FROM predictions p JOIN cases c ON c.id = p.case_id
         WHERE p.model_id = $1
           AND p.created_at = (SELECT MAX(q.created_at) FROM predictions q WHERE q.model_id = p.model_id AND q.case_id = p.case_id)
         ORDER BY p.case_id",
    )
    .bind(model_id)
    .fetch_all(&state.db.pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let human_ref: Option<String> = row.get("human_ref");
            Some(EvaluableCase {
                case_id: row.get("case_id"),
                case_name: row.get("name"),
                prediction_id: row.get("id"),
                prediction_ref: row.get("object_ref"),
                human_ref: human_ref?,
            })
        })
        .collect())
}

fn score(model: &ModelSummary, names: &BTreeMap<u8, String>, per_case: &[LabelScores]) -> ModelScore {
    let labels = names
        .iter()
        .map(|(&label, name)| {
            let mut dices: Vec<f64> = per_case.iter().filter_map(|s| s.get(&label).map(|v| v.0)).collect();
            let mut distances: Vec<f64> = per_case.iter().filter_map(|s| s.get(&label).and_then(|v| v.1)).collect();
            LabelStats {
                label,
                name: name.clone(),
                dice: stats(&mut dices),
                hd95_mm: stats(&mut distances),
            }
        })
        .collect();
    ModelScore { model: model.clone(), labels }
}

/// Production against shadow for model `name`, on the cases both have predicted and a person
/// has labelled; a version without a counterpart is scored on all its labelled cases.
pub async fn paired_evaluation(state: &AppState, name: &str) -> Result<PairedEvaluation, AppError> {
    let active = active_models(state, name).await?;
    let mut versions = Vec::new();
    for (role, model) in [(ModelState::Production, &active.production), (ModelState::Shadow, &active.shadow)] {
        if let Some(model) = model {
            let card = model_card(state, &model.id).await?;
            let names: BTreeMap<u8, String> = card.label_map.iter().filter_map(|(v, n)| Some((v.parse().ok()?, n.clone()))).collect();
            versions.push((role, model.clone(), names, evaluable_cases(state, &model.id).await?));
        }
    }
    // With both versions, compare only on cases both predicted.
    if versions.len() == 2 {
        let shared: std::collections::BTreeSet<String> =
            versions[0].3.iter().map(|c| c.case_id.clone()).filter(|id| versions[1].3.iter().any(|c| &c.case_id == id)).collect();
        for version in &mut versions {
            version.3.retain(|c| shared.contains(&c.case_id));
        }
    }
    let mut result = PairedEvaluation { name: name.to_string(), paired_cases: 0, production: None, shadow: None, disagreements: Vec::new() };
    let mut per_version: Vec<BTreeMap<String, LabelScores>> = Vec::new();
    for (role, model, names, cases) in &versions {
        let labels: Vec<u8> = names.keys().copied().collect();
        let mut by_case = BTreeMap::new();
        for case in cases {
            by_case.insert(case.case_id.clone(), scores(state, case, &labels).await?);
        }
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
        let case_names: BTreeMap<&String, &String> = versions[0].3.iter().map(|c| (&c.case_id, &c.case_name)).collect();
        for (case_id, p_scores) in production {
            for (label, (p_dice, _)) in p_scores {
                if let Some((s_dice, _)) = shadow.get(case_id).and_then(|s| s.get(label)) {
                    result.disagreements.push(Disagreement {
                        case_id: case_id.clone(),
                        case_name: case_names.get(case_id).map(|n| n.to_string()).unwrap_or_default(),
                        label: *label,
                        production_dice: *p_dice,
                        shadow_dice: *s_dice,
                    });
                }
            }
        }
        result.disagreements.sort_by(|a, b| (b.production_dice - b.shadow_dice).abs().total_cmp(&(a.production_dice - a.shadow_dice).abs()));
        result.disagreements.truncate(10);
    } else {
        result.paired_cases = 0;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A box of label 1 in a 20×20×20 volume, `[from, to)` on each axis.
    fn cube(from: [usize; 3], to: [usize; 3]) -> Vec<u8> {
        let mut mask = vec![0u8; 8000];
        for k in from[2]..to[2] {
            for j in from[1]..to[1] {
                for i in from[0]..to[0] {
                    mask[i + 20 * (j + 20 * k)] = 1;
                }
            }
        }
        mask
    }

    #[test]
    fn dice_of_known_overlaps() {
        let a = cube([0, 0, 0], [10, 10, 10]);
        let b = cube([5, 0, 0], [15, 10, 10]);
        assert_eq!(dice(&a, &a, 1), 1.0);
        assert_eq!(dice(&a, &b, 1), 0.5, "half of each cube overlaps");
        assert_eq!(dice(&a, &cube([10, 0, 0], [20, 10, 10]), 1), 0.0);
        assert_eq!(dice(&a, &b, 2), 1.0, "a label neither holds agrees trivially");
    }

    #[test]
    fn hd95_measures_the_shift_in_millimetres() {
        let a = cube([2, 2, 2], [10, 10, 10]);
        let shifted = cube([5, 2, 2], [13, 10, 10]);
        let dims = [20, 20, 20];
        assert_eq!(hd95(&a, &a, 1, dims, [1.0; 3]), Some(0.0));
        // Shifted 3 voxels along i: most surface points are 3 voxels from the other surface.
        assert_eq!(hd95(&a, &shifted, 1, dims, [1.0; 3]), Some(3.0));
        assert_eq!(hd95(&a, &shifted, 1, dims, [2.0, 1.0, 1.0]), Some(6.0), "2 mm voxels along i");
        assert_eq!(hd95(&a, &vec![0; 8000], 1, dims, [1.0; 3]), None);
    }

    #[test]
    fn distance_transform_matches_brute_force() {
        let dims = [7, 5, 4];
        let n = 140;
        let feature: Vec<bool> = (0..n).map(|i| i % 37 == 3 || i == 100).collect();
        let spacing = [0.8, 1.5, 2.5];
        let field = squared_distance_transform(&feature, dims, spacing);
        let coords = |i: usize| [i % 7, (i / 7) % 5, i / 35];
        for (p, computed) in field.iter().enumerate() {
            let brute = (0..n)
                .filter(|&q| feature[q])
                .map(|q| (0..3).map(|a| ((coords(p)[a] as f64 - coords(q)[a] as f64) * spacing[a]).powi(2)).sum::<f64>())
                .fold(f64::INFINITY, f64::min);
            assert!((computed - brute).abs() < 1e-9, "voxel {p}: {computed} vs {brute}");
        }
    }
}
