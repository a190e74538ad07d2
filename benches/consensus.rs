//! The consensus of three readers' masks of a CT-sized volume (512×512×300), single threaded:
//! STAPLE of one label, STAPLE of every label with the consensus mask, and majority vote. The
//! readers' masks are three overlapping labels each, shifted by a few voxels between readers.
//!
//! Run: `cargo bench --features ssr --bench consensus`.

mod timing;

use seglab::consensus::{majority_vote, staple, staple_consensus};
use timing::time;

const DIMS: [usize; 3] = [512, 512, 300];

/// A reader's mask: three ellipsoidal organs, moved by `shift` voxels.
fn reading(shift: f32) -> Vec<u8> {
    let organs: [(u8, [f32; 3], [f32; 3]); 3] = [
        (1, [200.0, 250.0, 150.0], [90.0, 70.0, 60.0]),
        (2, [330.0, 230.0, 140.0], [40.0, 50.0, 45.0]),
        (3, [260.0, 330.0, 170.0], [30.0, 25.0, 80.0]),
    ];
    let mut mask = vec![0u8; DIMS.iter().product()];
    for k in 0..DIMS[2] {
        for j in 0..DIMS[1] {
            for i in 0..DIMS[0] {
                let at = [i as f32 - shift, j as f32 + shift / 2.0, k as f32];
                for (label, centre, radii) in organs {
                    let r: f32 = (0..3).map(|a| ((at[a] - centre[a]) / radii[a]).powi(2)).sum();
                    if r <= 1.0 {
                        mask[i + DIMS[0] * (j + DIMS[1] * k)] = label;
                    }
                }
            }
        }
    }
    mask
}

fn main() {
    let readers = [reading(0.0), reading(2.0), reading(-3.0)];
    let readings: Vec<&[u8]> = readers.iter().map(Vec::as_slice).collect();
    println!("three readers, {}×{}×{} voxels, three labels; p50 of 5 runs", DIMS[0], DIMS[1], DIMS[2]);
    let (ms, one) = time(5, || staple(&readings, 1));
    let one = one.expect("label 1 is given");
    println!("{:<40} p50 {ms:8.1} ms (target < 2000 ms), {} iterations", "STAPLE, label 1", one.iterations);
    let (ms, all) = time(5, || staple_consensus(&readings));
    let labelled = all.mask.iter().filter(|&&v| v != 0).count();
    println!("{:<40} p50 {ms:8.1} ms (target < 2000 ms), {labelled} voxels labelled", "STAPLE consensus, every label");
    let (ms, vote) = time(5, || majority_vote(&readings));
    let labelled = vote.iter().filter(|&&v| v != 0).count();
    println!("{:<40} p50 {ms:8.1} ms, {labelled} voxels labelled", "majority vote");
}
