//! In-process inference against the reference runtime: `seglab infer` (tract, as the
//! orchestrator's child process runs it for `onnx` versions) and onnxruntime
//! (`benches/onnxruntime_infer.py`: the same files in and out, normalisation and argmax) on the
//! same model and the same 512×512×300 CT-like image. Each is timed from its start to its exit,
//! with its peak resident memory, best of two runs, and their labels are compared.
//!
//! Run: `cargo bench --features ssr --bench runtimes` (after `.ci/setup`, which makes the Python
//! venv with onnxruntime).

// A benchmark stops at the first failure: it unwraps.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Instant;

const DIMS: [usize; 3] = [512, 512, 300];

/// Runs `command` to its end: the seconds it took and its peak resident memory in MB (the
/// kernel's count, from `wait4`: std's `wait` does not return it).
// `wait4` reaps the child (std's `wait` is not called) and reports its peak.
#[allow(unsafe_code, clippy::zombie_processes)]
fn measured(mut command: Command) -> (f64, f64) {
    let began = Instant::now();
    let child = command.spawn().unwrap();
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, once, with valid pointers.
    let waited = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(waited, child.id() as libc::pid_t);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{command:?} failed");
    (began.elapsed().as_secs_f64(), usage.ru_maxrss as f64 / 1024.0)
}

/// The better of two runs: the shorter time, and the larger peak.
fn best_of_two(make: impl Fn() -> Command) -> (f64, f64) {
    let (first, second) = (measured(make()), measured(make()));
    (first.0.min(second.0), first.1.max(second.1))
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("tests/fixtures/models/segmenter_v1.onnx");
    let dir = tempfile::tempdir().unwrap();
    let [ni, nj, nk] = DIMS;
    // Bright discs that grow and shrink along k on a dark background, with a ripple.
    let mut image = Vec::with_capacity(ni * nj * nk * 4);
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                let (x, y) = (i as f32 - 256.0, j as f32 - 256.0);
                let radius = 60.0 + 40.0 * (k as f32 / 25.0).sin();
                let value = if x * x + y * y < radius * radius { 300.0 } else { -50.0 };
                let ripple = 30.0 * ((i * 7 + j * 3 + k) as f32 / 11.0).sin();
                image.extend_from_slice(&(value + ripple).to_le_bytes());
            }
        }
    }
    let input = dir.path().join("image.f32");
    std::fs::write(&input, &image).unwrap();
    drop(image);
    let dims = format!("{ni},{nj},{nk}");
    let tract_labels = dir.path().join("tract.labels");
    let tract = best_of_two(|| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_seglab"));
        command.arg("infer").arg("--model").arg(&model).arg("--input").arg(&input).arg("--output").arg(&tract_labels);
        command.args(["--dims", &dims, "--normalisation", "zscore", "--channels", "0,1"]);
        command
    });
    let ort_labels = dir.path().join("onnxruntime.labels");
    let onnxruntime = |threads: &str| {
        best_of_two(|| {
            let mut command = Command::new(root.join("target/pyenv/bin/python"));
            command.arg(root.join("benches/onnxruntime_infer.py")).arg(&model).arg(&input).arg(&ort_labels);
            command.args([dims.as_str(), "0,1", threads]);
            command
        })
    };
    let (one_thread, every_core) = (onnxruntime("1"), onnxruntime("0"));
    let (tract_out, ort_out) = (std::fs::read(&tract_labels).unwrap(), std::fs::read(&ort_labels).unwrap());
    assert_eq!(tract_out.len(), ni * nj * nk);
    let differing = tract_out.iter().zip(&ort_out).filter(|(a, b)| a != b).count();
    let foreground = tract_out.iter().filter(|&&v| v == 1).count();
    println!(
        "\nsegmenter_v1.onnx (3×3×3 mean filter, 1×1×1 convolution to 2 logits) on a {ni}×{nj}×{nk} float32 image, start to exit, best of 2:"
    );
    println!("| runtime | seconds | peak memory |");
    println!("|---|---|---|");
    println!("| tract-onnx 0.23 (`seglab infer`) | {:.1} s | {:.0} MB |", tract.0, tract.1);
    println!("| onnxruntime 1.32 (Python), one thread | {:.1} s | {:.0} MB |", one_thread.0, one_thread.1);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!("| onnxruntime 1.32 (Python), {cores} threads | {:.1} s | {:.0} MB |", every_core.0, every_core.1);
    println!("labels: {differing} of {} voxels differ ({foreground} foreground by tract)", ni * nj * nk);
}
