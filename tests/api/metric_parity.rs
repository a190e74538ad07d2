//! Dice and HD95 of `seglab::metrics` against a reference implementation on 24 varied cases
//! (anisotropic spacing, empty masks, one-voxel masks, labels touching the volume's borders,
//! random shapes, odd sizes): medpy computes Dice and the surface distances in both
//! directions, reduced as MONAI's `compute_hausdorff_distance(percentile=95)` reduces them
//! (`tests/interop/metrics_reference.py`). Empty masks follow MONAI's `ignore_empty=True`: no
//! Dice without the label in the reference, no HD95 without it on both sides. Needs medpy in
//! `target/pyenv` (`.ci/setup` installs it). `--nocapture` prints the figures.

use std::path::Path;

use seglab::metrics::{dice, hd95};
use serde_json::{json, Value};

struct Case {
    name: &'static str,
    dims: [usize; 3],
    spacing: [f64; 3],
    label: u8,
    prediction: Vec<u8>,
    reference: Vec<u8>,
}

fn index([ni, nj, _]: [usize; 3], i: usize, j: usize, k: usize) -> usize {
    i + ni * (j + nj * k)
}

/// Label `label` where `inside(i, j, k)`.
fn shape(dims: [usize; 3], label: u8, inside: impl Fn(f64, f64, f64) -> bool) -> Vec<u8> {
    let mut mask = vec![0u8; dims.iter().product()];
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            for i in 0..dims[0] {
                if inside(i as f64, j as f64, k as f64) {
                    mask[index(dims, i, j, k)] = label;
                }
            }
        }
    }
    mask
}

pub(crate) fn ellipsoid(dims: [usize; 3], label: u8, centre: [f64; 3], radii: [f64; 3]) -> Vec<u8> {
    shape(dims, label, |i, j, k| {
        ((i - centre[0]) / radii[0]).powi(2)
            + ((j - centre[1]) / radii[1]).powi(2)
            + ((k - centre[2]) / radii[2]).powi(2)
            <= 1.0
    })
}

pub(crate) fn boxed(dims: [usize; 3], label: u8, from: [usize; 3], to: [usize; 3]) -> Vec<u8> {
    shape(dims, label, |i, j, k| {
        let at = [i as usize, j as usize, k as usize];
        (0..3).all(|axis| from[axis] <= at[axis] && at[axis] < to[axis])
    })
}

/// Each voxel `label` with probability `density`, from a fixed seed (xorshift).
pub(crate) fn noise(dims: [usize; 3], label: u8, density: f64, seed: u64) -> Vec<u8> {
    let mut state = seed.max(1);
    (0..dims.iter().product::<usize>())
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if (state % 10_000) as f64 / 10_000.0 < density {
                label
            } else {
                0
            }
        })
        .collect()
}

pub(crate) fn union(a: Vec<u8>, b: Vec<u8>) -> Vec<u8> {
    a.into_iter().zip(b).map(|(x, y)| x.max(y)).collect()
}

fn cases() -> Vec<Case> {
    let d = [24, 24, 24];
    let iso = [1.0, 1.0, 1.0];
    let ct = [0.7, 0.7, 2.5];
    let sphere = |c: [f64; 3], r: f64| ellipsoid(d, 1, c, [r, r, r]);
    let one_voxel = |at: [usize; 3]| boxed(d, 1, at, [at[0] + 1, at[1] + 1, at[2] + 1]);
    let case =
        |name, dims, spacing, label, prediction, reference| Case { name, dims, spacing, label, prediction, reference };
    vec![
        case("identical spheres", d, iso, 1, sphere([12.0; 3], 6.0), sphere([12.0; 3], 6.0)),
        case("sphere shifted two voxels", d, iso, 1, sphere([12.0, 12.0, 12.0], 6.0), sphere([14.0, 12.0, 12.0], 6.0)),
        case(
            "anisotropic 0.7×0.7×2.5, shifted along k",
            d,
            ct,
            1,
            sphere([12.0; 3], 6.0),
            sphere([12.0, 12.0, 14.0], 6.0),
        ),
        case(
            "anisotropic 0.5×1×3, other radii",
            d,
            [0.5, 1.0, 3.0],
            1,
            ellipsoid(d, 1, [11.0, 12.0, 12.0], [8.0, 5.0, 3.0]),
            ellipsoid(d, 1, [12.0, 12.0, 11.0], [6.0, 6.0, 4.0]),
        ),
        case("empty prediction", d, iso, 1, vec![0; 13_824], sphere([12.0; 3], 5.0)),
        case("empty reference", d, iso, 1, sphere([12.0; 3], 5.0), vec![0; 13_824]),
        case("both empty", d, iso, 1, vec![0; 13_824], vec![0; 13_824]),
        case("one voxel each, same place", d, iso, 1, one_voxel([5, 6, 7]), one_voxel([5, 6, 7])),
        case("one voxel each, apart, anisotropic", d, ct, 1, one_voxel([2, 3, 4]), one_voxel([20, 9, 17])),
        case("one voxel against a sphere", d, iso, 1, one_voxel([12, 12, 12]), sphere([12.0; 3], 7.0)),
        case(
            "boxes touching the volume's borders",
            d,
            iso,
            1,
            boxed(d, 1, [0, 0, 0], [24, 10, 24]),
            boxed(d, 1, [0, 0, 0], [24, 13, 20]),
        ),
        case("whole volume against half of it", d, ct, 1, vec![1; 13_824], boxed(d, 1, [0, 0, 0], [12, 24, 24])),
        case("noise against noise", d, iso, 1, noise(d, 1, 0.3, 1), noise(d, 1, 0.3, 2)),
        case("noise against a sphere", d, [1.2, 0.8, 0.5], 1, noise(d, 1, 0.05, 3), sphere([12.0; 3], 8.0)),
        case(
            "label 2 of two-label masks",
            d,
            iso,
            2,
            union(sphere([8.0; 3], 4.0), ellipsoid(d, 2, [16.0; 3], [5.0, 4.0, 3.0])),
            union(sphere([9.0; 3], 4.0), ellipsoid(d, 2, [15.0, 16.0, 17.0], [4.0, 5.0, 3.0])),
        ),
        case(
            "thin plate against a thick one",
            d,
            ct,
            1,
            boxed(d, 1, [2, 2, 11], [22, 22, 12]),
            boxed(d, 1, [2, 2, 9], [22, 22, 14]),
        ),
        case(
            "hollow shell against a ball",
            d,
            iso,
            1,
            shape(d, 1, |i, j, k| {
                let r = ((i - 12.0).powi(2) + (j - 12.0).powi(2) + (k - 12.0).powi(2)).sqrt();
                (6.0..=8.0).contains(&r)
            }),
            sphere([12.0; 3], 8.0),
        ),
        case(
            "two islands against one",
            d,
            iso,
            1,
            union(sphere([6.0; 3], 3.0), sphere([18.0; 3], 3.0)),
            sphere([6.0; 3], 3.5),
        ),
        case(
            "line along k, anisotropic",
            d,
            ct,
            1,
            boxed(d, 1, [12, 12, 0], [13, 13, 24]),
            boxed(d, 1, [13, 12, 2], [14, 13, 22]),
        ),
        case(
            "corner cubes far apart",
            d,
            iso,
            1,
            boxed(d, 1, [0, 0, 0], [3, 3, 3]),
            boxed(d, 1, [21, 21, 21], [24, 24, 24]),
        ),
        case(
            "odd size 7×13×5, noise",
            [7, 13, 5],
            [0.9, 1.1, 3.3],
            1,
            noise([7, 13, 5], 1, 0.4, 4),
            noise([7, 13, 5], 1, 0.4, 5),
        ),
        case(
            "64³ spheres, offset diagonally",
            [64, 64, 64],
            [0.8, 0.8, 1.5],
            1,
            ellipsoid([64; 3], 1, [30.0; 3], [20.0; 3]),
            ellipsoid([64; 3], 1, [34.0, 33.0, 32.0], [18.0, 21.0, 19.0]),
        ),
        case("prediction inside the reference", d, iso, 1, sphere([12.0; 3], 4.0), sphere([12.0; 3], 9.0)),
        case("noise blobs, 1.2×0.8×0.5", d, [1.2, 0.8, 0.5], 1, noise(d, 1, 0.5, 6), noise(d, 1, 0.15, 7)),
    ]
}

#[test]
fn dice_and_hd95_agree_with_medpy_reduced_as_monai_does() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("target/pyenv/bin/python");
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    assert!(cases.len() >= 20);
    let mut listed = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let (prediction, reference) =
            (dir.path().join(format!("{n}-prediction.raw")), dir.path().join(format!("{n}-reference.raw")));
        std::fs::write(&prediction, &case.prediction).unwrap();
        std::fs::write(&reference, &case.reference).unwrap();
        listed.push(json!({
            "name": case.name, "dims": case.dims, "spacing": case.spacing, "label": case.label,
            "prediction": prediction, "reference": reference,
        }));
    }
    let list = dir.path().join("cases.json");
    std::fs::write(&list, serde_json::to_vec(&listed).unwrap()).unwrap();
    let output = std::process::Command::new(&python)
        .arg(root.join("tests/interop/metrics_reference.py"))
        .arg(&list)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}); `.ci/setup` installs it with medpy", python.display()));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let reference: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();

    println!(
        "{:<42} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "case", "Dice", "medpy", "HD95 mm", "reference", "medpy pooled"
    );
    for (case, expected) in cases.iter().zip(&reference) {
        let ours_dice = dice(&case.prediction, &case.reference, case.label);
        let ours_hd95 = hd95(&case.prediction, &case.reference, case.label, case.dims, case.spacing);
        let (their_dice, their_hd95) = (expected["dice"].as_f64(), expected["hd95"].as_f64());
        let show = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.6}"));
        println!(
            "{:<42} {:>10} {:>10} {:>10} {:>10} {:>12}",
            case.name,
            show(ours_dice),
            show(their_dice),
            show(ours_hd95),
            show(their_hd95),
            show(expected["medpy_hd95_pooled"].as_f64())
        );
        assert_eq!(ours_dice.is_some(), their_dice.is_some(), "{}: Dice defined on one side only", case.name);
        assert_eq!(ours_hd95.is_some(), their_hd95.is_some(), "{}: HD95 defined on one side only", case.name);
        if let (Some(ours), Some(theirs)) = (ours_dice, their_dice) {
            assert!((ours - theirs).abs() <= 1e-6, "{}: Dice {ours} against {theirs}", case.name);
        }
        if let (Some(ours), Some(theirs)) = (ours_hd95, their_hd95) {
            assert!((ours - theirs).abs() <= 1e-6, "{}: HD95 {ours} mm against {theirs} mm", case.name);
        }
    }
}
