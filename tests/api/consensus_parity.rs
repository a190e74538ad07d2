//! STAPLE of `seglab::consensus` against SimpleITK's `STAPLEImageFilter` on varied cases (2 to 6
//! readers, a careless reader, an empty one, identical ones, one label of several, odd sizes):
//! the probability maps within 1e-3 everywhere, the masks thresholded at one half equal, and
//! each reader's sensitivity and specificity within 1e-3 (`tests/interop/staple_reference.py`).
//! Needs SimpleITK in `target/pyenv` (`.ci/setup` installs it). `--nocapture` prints the figures.

use std::path::Path;

use seglab::consensus::{staple, staple_consensus};
use serde_json::{json, Value};

use super::metric_parity::{boxed, ellipsoid, noise, union};

struct Case {
    name: &'static str,
    dims: [usize; 3],
    label: u8,
    readings: Vec<Vec<u8>>,
}

fn cases() -> Vec<Case> {
    let d = [24, 24, 24];
    let sphere = |c: [f64; 3], r: f64| ellipsoid(d, 1, c, [r, r, r]);
    let case = |name, dims, label, readings| Case { name, dims, label, readings };
    let big = [64, 64, 64];
    vec![
        case(
            "three readers, spheres a voxel or two apart",
            d,
            1,
            vec![sphere([12.0; 3], 6.0), sphere([13.0, 12.0, 12.0], 6.0), sphere([12.0, 11.0, 13.0], 5.5)],
        ),
        case("two readers, one inside the other", d, 1, vec![sphere([12.0; 3], 5.0), sphere([12.0; 3], 7.0)]),
        case(
            "four readers, one careless",
            d,
            1,
            vec![
                sphere([12.0; 3], 6.0),
                sphere([12.0; 3], 6.5),
                sphere([12.5, 12.0, 12.0], 6.0),
                union(boxed(d, 1, [10, 10, 10], [14, 14, 14]), noise(d, 1, 0.05, 11)),
            ],
        ),
        case(
            "five readers, different ellipsoids",
            d,
            1,
            vec![
                ellipsoid(d, 1, [12.0; 3], [8.0, 5.0, 4.0]),
                ellipsoid(d, 1, [11.0, 12.0, 12.0], [7.0, 6.0, 4.0]),
                ellipsoid(d, 1, [12.0, 13.0, 12.0], [8.0, 5.0, 5.0]),
                ellipsoid(d, 1, [12.0, 12.0, 11.0], [6.0, 5.0, 4.0]),
                ellipsoid(d, 1, [13.0, 12.0, 12.0], [9.0, 6.0, 3.0]),
            ],
        ),
        case(
            "label 2 of two-label masks",
            d,
            2,
            vec![
                union(sphere([8.0; 3], 4.0), ellipsoid(d, 2, [16.0; 3], [5.0, 4.0, 3.0])),
                union(sphere([9.0; 3], 4.0), ellipsoid(d, 2, [15.0, 16.0, 17.0], [4.0, 5.0, 3.0])),
                ellipsoid(d, 2, [16.0, 15.0, 16.0], [5.0, 5.0, 4.0]),
            ],
        ),
        case("one reader labels nothing", d, 1, vec![sphere([12.0; 3], 6.0), sphere([12.0; 3], 6.0), vec![0; 13_824]]),
        case("three identical readers", d, 1, vec![sphere([12.0; 3], 6.0); 3]),
        case(
            "odd size 7×13×5, noise",
            [7, 13, 5],
            1,
            vec![noise([7, 13, 5], 1, 0.4, 4), noise([7, 13, 5], 1, 0.4, 5), noise([7, 13, 5], 1, 0.3, 6)],
        ),
        case(
            "64³, three spheres offset diagonally",
            big,
            1,
            vec![
                ellipsoid(big, 1, [30.0; 3], [20.0; 3]),
                ellipsoid(big, 1, [34.0, 33.0, 32.0], [18.0, 21.0, 19.0]),
                ellipsoid(big, 1, [31.0, 30.0, 33.0], [19.0, 19.0, 20.0]),
            ],
        ),
        case(
            "six readers, noise around a box",
            d,
            1,
            (0..6).map(|r| union(boxed(d, 1, [6, 6, 6], [18, 18, 18]), noise(d, 1, 0.02 * r as f64, 20 + r))).collect(),
        ),
    ]
}

#[test]
fn staple_agrees_with_simpleitk() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("target/pyenv/bin/python");
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    let mut listed = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let readings: Vec<_> = case
            .readings
            .iter()
            .enumerate()
            .map(|(r, reading)| {
                let path = dir.path().join(format!("{n}-{r}.raw"));
                std::fs::write(&path, reading).unwrap();
                path
            })
            .collect();
        listed.push(json!({
            "name": case.name, "dims": case.dims, "label": case.label, "readings": readings,
            "probability": dir.path().join(format!("{n}-probability.raw")),
        }));
    }
    let list = dir.path().join("cases.json");
    std::fs::write(&list, serde_json::to_vec(&listed).unwrap()).unwrap();
    let output = std::process::Command::new(&python)
        .arg(root.join("tests/interop/staple_reference.py"))
        .arg(&list)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}); `.ci/setup` installs it with SimpleITK", python.display()));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let reference: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();

    println!("{:<46} {:>7} {:>12} {:>12} {:>10}", "case", "iter", "max |Δp|", "max |Δsens|", "max |Δspec|");
    for (n, (case, expected)) in cases.iter().zip(&reference).enumerate() {
        let readings: Vec<&[u8]> = case.readings.iter().map(Vec::as_slice).collect();
        let ours = staple(&readings, case.label).unwrap();
        let theirs: Vec<f64> = std::fs::read(dir.path().join(format!("{n}-probability.raw")))
            .unwrap()
            .chunks_exact(8)
            .map(|bytes| f64::from_le_bytes(bytes.try_into().unwrap()))
            .collect();
        let map = ours.probability_map(&readings);
        assert_eq!(map.len(), theirs.len());
        let max_difference = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        let figures =
            |key: &str| -> Vec<f64> { expected[key].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect() };
        let (probability, sensitivity, specificity) = (
            max_difference(&map, &theirs),
            max_difference(&ours.sensitivity, &figures("sensitivity")),
            max_difference(&ours.specificity, &figures("specificity")),
        );
        println!(
            "{:<46} {:>3}/{:<3} {probability:>12.2e} {sensitivity:>12.2e} {specificity:>10.2e}",
            case.name, ours.iterations, expected["iterations"]
        );
        assert_eq!(ours.sensitivity.len(), case.readings.len());
        assert!(probability <= 1e-3, "{}: probabilities differ by {probability}", case.name);
        assert!(sensitivity <= 1e-3 && specificity <= 1e-3, "{}: {sensitivity} {specificity}", case.name);
        let threshold = |map: &[f64]| map.iter().map(|&p| p >= 0.5).collect::<Vec<_>>();
        assert_eq!(threshold(&map), threshold(&theirs), "{}: the thresholded masks differ", case.name);
        // The multi-label consensus gives this label where its own estimate does (the cases'
        // other labels do not overlap it).
        let consensus = staple_consensus(&readings);
        let labelled: Vec<bool> = consensus.mask.iter().map(|&value| value == case.label).collect();
        assert_eq!(labelled, threshold(&theirs), "{}: the consensus mask differs", case.name);
    }
}
