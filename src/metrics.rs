//! Segmentation metrics: Dice and HD95 (the 95th percentile Hausdorff distance, in mm, from
//! the voxel spacing) between a predicted and a reference label mask, on an exact Euclidean
//! distance transform, defined as MONAI defines them: `DiceMetric(ignore_empty=True)` and
//! `compute_hausdorff_distance(percentile=95)`. `tests/metric_parity.rs` checks both against
//! a reference implementation. Pure code, shared by both builds; the server's evaluation uses it.

use crate::mask_ops::distance::squared_distance_transform;

/// Dice coefficient of label `value` of `prediction` against `reference`. `None` when the
/// reference lacks the label (MONAI's `ignore_empty=True`: nothing to find, so no score,
/// whatever the prediction holds); 0 when only the prediction lacks it.
pub fn dice(prediction: &[u8], reference: &[u8], value: u8) -> Option<f64> {
    let (mut both, mut predicted, mut expected) = (0u64, 0u64, 0u64);
    for (&x, &y) in prediction.iter().zip(reference) {
        let (x, y) = (x == value, y == value);
        predicted += x as u64;
        expected += y as u64;
        both += (x && y) as u64;
    }
    (expected > 0).then(|| 2.0 * both as f64 / (predicted + expected) as f64)
}

/// HD95 in mm of label `value`: the larger of the two directed 95th percentiles (linearly
/// interpolated, as `torch.quantile` does) of the distances from each surface voxel of one
/// mask to the other's surface, as MONAI computes it. `None` when either mask lacks the label
/// (MONAI gives NaN or infinity there).
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
        let rank = (distances.len() - 1) as f64 * 0.95;
        let (below, above) = (distances[rank.floor() as usize], distances[rank.ceil() as usize]);
        below + (above - below) * rank.fract()
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
    (to[0] > 0).then(|| {
        ([0, 1, 2].map(|axis| from[axis].saturating_sub(1)), [0, 1, 2].map(|axis| (to[axis] + 1).min(dims[axis])))
    })
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
        assert_eq!(dice(&a, &a, 1), Some(1.0));
        assert_eq!(dice(&a, &b, 1), Some(0.5), "half of each cube overlaps");
        assert_eq!(dice(&a, &cube([10, 0, 0], [20, 10, 10]), 1), Some(0.0));
        assert_eq!(dice(&vec![0; 8000], &a, 1), Some(0.0), "nothing predicted where something is");
        assert_eq!(dice(&a, &vec![0; 8000], 1), None, "no score without the label in the reference");
        assert_eq!(dice(&a, &b, 2), None);
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
                .map(|q| {
                    (0..3).map(|a| ((coords(p)[a] as f64 - coords(q)[a] as f64) * spacing[a]).powi(2)).sum::<f64>()
                })
                .fold(f64::INFINITY, f64::min);
            assert!((computed - brute).abs() < 1e-9, "voxel {p}: {computed} vs {brute}");
        }
    }
}
