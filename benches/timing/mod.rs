//! Timing shared by the native benchmarks (`mod timing;` in each).

use std::hint::black_box;
use std::time::Instant;

/// Median wall time in ms of `runs` calls, and the last call's result.
pub fn time<T>(runs: usize, mut op: impl FnMut() -> T) -> (f64, T) {
    let mut times = Vec::with_capacity(runs);
    let mut result = None;
    for _ in 0..runs {
        let start = Instant::now();
        result = Some(black_box(op()));
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_unstable_by(f64::total_cmp);
    (times[times.len() / 2], result.expect("at least one run"))
}
