//! Running a segmentation model on a case image.
//!
//! [`Runner`] is the seam: the orchestrator hands it a model version and an image and gets
//! label values back. [`ProcessRunner`] runs ONNX models with tract (pure Rust, CPU) in a child
//! process, `seglab infer`, which is killed when the attempt is abandoned (its timeout, a
//! shutdown): a runaway model stops using the CPU at once, and a model that exhausts memory
//! takes down its child, not the server. `super::oip` runs versions on a remote Open
//! Inference Protocol v2 server (KServe, MLServer, Triton) through the same trait.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Semaphore;
use tract_onnx::prelude::*;

use crate::api::{ModelCard, ModelId, Normalisation};
use crate::server::config::InferArgs;
use crate::server::error::AppError;
use crate::server::storage::ObjectStore;

/// A model version as the runner needs it.
pub struct ModelVersion {
    pub id: ModelId,
    pub artifact_ref: String,
    pub card: ModelCard,
}

/// A case image: intensities in file order (i fastest) and its size.
pub struct Image {
    pub dims: [usize; 3],
    pub intensities: Vec<f32>,
}

#[async_trait]
pub trait Runner: Send + Sync {
    /// One label value per voxel, in file order.
    async fn segment(&self, model: &ModelVersion, image: Image) -> Result<Vec<u8>, AppError>;
}

/// Checks that `model` reads as an ONNX model tract can load.
pub(crate) fn check_onnx(model: &mut dyn std::io::Read) -> TractResult<()> {
    tract_onnx::onnx().model_for_read(model)?;
    Ok(())
}

/// Applies the card's intensity normalisation in place.
pub(crate) fn normalise(intensities: &mut [f32], how: Normalisation) {
    let finite = || intensities.iter().copied().filter(|v| v.is_finite());
    match how {
        Normalisation::None => {}
        Normalisation::Zscore => {
            let n = finite().count().max(1) as f64;
            let mean = finite().map(f64::from).sum::<f64>() / n;
            let variance = finite().map(|v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
            let std = variance.sqrt().max(1e-6);
            intensities.iter_mut().for_each(|v| *v = ((f64::from(*v) - mean) / std) as f32);
        }
        Normalisation::Minmax => {
            let (low, high) = finite().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
            let range = (high - low).max(1e-6);
            intensities.iter_mut().for_each(|v| *v = (*v - low) / range);
        }
    }
}

/// Per voxel, the label value of the channel with the largest logit.
pub(crate) fn argmax_labels(logits: &[f32], channels: &[u8], voxels: usize) -> Vec<u8> {
    (0..voxels)
        .map(|voxel| {
            let best = (0..channels.len())
                .max_by(|&a, &b| logits[a * voxels + voxel].total_cmp(&logits[b * voxels + voxel]))
                .unwrap_or(0);
            channels[best]
        })
        .collect()
}

/// Runs the ONNX model `onnx` on an image: normalises the intensities, takes `[1, 1, k, j, i]`
/// in and `[1, C, k, j, i]` logits out, and labels each voxel by its largest logit. The errors
/// say what a person can act on.
fn segment(
    onnx: &[u8],
    dims: [usize; 3],
    mut intensities: Vec<f32>,
    normalisation: Normalisation,
    channels: &[u8],
) -> Result<Vec<u8>, String> {
    let [ni, nj, nk] = dims;
    let plan = tract_onnx::onnx()
        .model_for_read(&mut Cursor::new(onnx))
        .and_then(|model| model.with_input_fact(0, f32::fact([1, 1, nk, nj, ni]).into()))
        .and_then(|model| model.into_optimized())
        .and_then(|model| model.into_runnable())
        .map_err(|e| format!("the model cannot run on a {dims:?} image: {e:#}"))?;
    normalise(&mut intensities, normalisation);
    let failed = |e: TractError| format!("the model failed on this image: {e:#}");
    let input = Tensor::from_shape(&[1, 1, nk, nj, ni], &intensities).map_err(failed)?;
    let outputs = plan.run(tvec!(input.into_tvalue())).map_err(failed)?;
    let logits = outputs[0].to_plain_array_view::<f32>().map_err(failed)?;
    if logits.shape() != [1, channels.len(), nk, nj, ni] {
        return Err(format!(
            "the model answered shape {:?}; its card promises [1, {}, {nk}, {nj}, {ni}]",
            logits.shape(),
            channels.len()
        ));
    }
    let flat: Vec<f32> = logits.iter().copied().collect();
    Ok(argmax_labels(&flat, channels, ni * nj * nk))
}

/// `seglab infer`: the child's side. Reads the model and the image (float32, little-endian,
/// file order), writes one label byte per voxel; a refusal goes to stderr with exit code 1.
/// With a memory budget, an allocation beyond it aborts the child ("memory allocation of …
/// failed"), which the parent reports as such.
pub(crate) fn run_child(args: &InferArgs) -> Result<(), String> {
    if let Some(mib) = args.memory_mib {
        limit_memory(mib << 20)?;
    }
    // A refused allocation may surface as a panic in the model's code, and printing a panic's
    // backtrace allocates again and can hang: say what happened and stop at once.
    std::panic::set_hook(Box::new(|info| {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "error: {info}");
        std::process::abort();
    }));
    let onnx = std::fs::read(&args.model).map_err(|e| format!("cannot read {}: {e}", args.model.display()))?;
    let raw = std::fs::read(&args.input).map_err(|e| format!("cannot read {}: {e}", args.input.display()))?;
    let dims: [usize; 3] =
        args.dims.as_slice().try_into().map_err(|_| format!("--dims {:?}: give three sizes", args.dims))?;
    if raw.len() != dims.iter().product::<usize>() * 4 {
        return Err(format!("the input holds {} bytes, not {dims:?} float32 voxels", raw.len()));
    }
    let intensities = raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let normalisation: Normalisation = serde_json::from_value(serde_json::Value::String(args.normalisation.clone()))
        .map_err(|_| format!("unknown normalisation {:?}", args.normalisation))?;
    let labels = segment(&onnx, dims, intensities, normalisation, &args.channels)?;
    std::fs::write(&args.output, labels).map_err(|e| format!("cannot write {}: {e}", args.output.display()))
}

/// Caps this process's data segment (heap and private mappings: what a model's tensors use).
/// The heap that parsing the command line freed is returned first: left in place, it would
/// serve the model's first allocations beyond the cap.
#[allow(unsafe_code)] // the foreign calls of the crate
fn limit_memory(bytes: u64) -> Result<(), String> {
    // SAFETY: malloc_trim only returns free heap memory to the system.
    unsafe { libc::malloc_trim(0) };
    let limit = libc::rlimit { rlim_cur: bytes as libc::rlim_t, rlim_max: bytes as libc::rlim_t };
    // SAFETY: setrlimit reads the struct it is given and changes only this process's limits.
    if unsafe { libc::setrlimit(libc::RLIMIT_DATA, &limit) } != 0 {
        return Err(format!("cannot set the memory budget: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// What the child says when an allocation is refused: Rust's allocator before aborting, a
/// library's panic (tract's tensors, a thread's stack), or a read refused its buffer (io's
/// `OutOfMemory`, "cannot read …: out of memory").
const OUT_OF_MEMORY: [&str; 3] = ["memory allocation of", "failed to allocate", "out of memory"];

/// How often a running child is asked whether it has finished.
const CHILD_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Files of one inference, removed when it ends however it ends.
struct JobFiles {
    input: PathBuf,
    output: PathBuf,
    stderr: PathBuf,
}

impl Drop for JobFiles {
    fn drop(&mut self) {
        for file in [&self.input, &self.output, &self.stderr] {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// A child process that is killed (and reaped) when its owner lets go of it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs each inference in a child process of `program` (the `seglab` binary), at most
/// `concurrency` at once.
pub struct ProcessRunner {
    store: ObjectStore,
    program: PathBuf,
    /// Each child's memory budget.
    memory_mib: u64,
    /// Model files (one per version, written once) and each job's input and output.
    work_dir: PathBuf,
    slots: Arc<Semaphore>,
}

impl ProcessRunner {
    pub fn new(
        store: ObjectStore,
        program: PathBuf,
        memory_mib: u64,
        work_dir: PathBuf,
        concurrency: usize,
    ) -> std::io::Result<ProcessRunner> {
        std::fs::create_dir_all(work_dir.join("models"))?;
        std::fs::create_dir_all(work_dir.join("jobs"))?;
        Ok(ProcessRunner { store, program, memory_mib, work_dir, slots: Arc::new(Semaphore::new(concurrency.max(1))) })
    }

    /// The model's artifact as a file, fetched once per version (versions never change).
    async fn model_file(&self, model: &ModelVersion) -> Result<PathBuf, AppError> {
        let path = self.work_dir.join("models").join(format!("{}.onnx", model.id));
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(path);
        }
        let bytes = self.store.get(&model.artifact_ref).await?;
        let partial = path.with_extension(format!("{}.part", uuid::Uuid::new_v4().simple()));
        write_file(&partial, &bytes).await?;
        tokio::fs::rename(&partial, &path).await.map_err(AppError::internal)?;
        Ok(path)
    }
}

async fn write_file(path: &Path, bytes: &[u8]) -> Result<(), AppError> {
    tokio::fs::write(path, bytes).await.map_err(|e| AppError::internal(format!("cannot write {}: {e}", path.display())))
}

#[async_trait]
impl Runner for ProcessRunner {
    async fn segment(&self, model: &ModelVersion, image: Image) -> Result<Vec<u8>, AppError> {
        let model_path = self.model_file(model).await?;
        let _slot = self.slots.acquire().await.map_err(AppError::internal)?;
        let job = uuid::Uuid::new_v4().simple().to_string();
        let jobs = self.work_dir.join("jobs");
        let files = JobFiles {
            input: jobs.join(format!("{job}.input")),
            output: jobs.join(format!("{job}.labels")),
            stderr: jobs.join(format!("{job}.stderr")),
        };
        let input: Vec<u8> = image.intensities.iter().flat_map(|v| v.to_le_bytes()).collect();
        write_file(&files.input, &input).await?;
        drop(input);
        let [ni, nj, nk] = image.dims;
        let card = &model.card;
        let channels: Vec<String> = card.output_channels.iter().map(u8::to_string).collect();
        let normalisation = serde_json::to_value(card.input_spec.intensity_normalisation)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let stderr = std::fs::File::create(&files.stderr).map_err(AppError::internal)?;
        let child = std::process::Command::new(&self.program)
            .arg("infer")
            .arg("--model")
            .arg(&model_path)
            .arg("--input")
            .arg(&files.input)
            .arg("--output")
            .arg(&files.output)
            .args([
                "--dims",
                &format!("{ni},{nj},{nk}"),
                "--normalisation",
                &normalisation,
                "--channels",
                &channels.join(","),
            ])
            .args(["--memory-mib", &self.memory_mib.to_string()])
            // A backtrace would be read by no one and allocates when memory is what ran out.
            .env("RUST_BACKTRACE", "0")
            // One malloc arena: a thread's own arena grows by mprotect, which the memory cap
            // (RLIMIT_DATA) does not check; the main arena grows by brk and mmap, which it does.
            .env("MALLOC_ARENA_MAX", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| AppError::internal(format!("cannot start {}: {e}", self.program.display())))?;
        // Dropping this future (the attempt's timeout, a shutdown) drops the guard, which kills
        // the child.
        let mut child = KillOnDrop(child);
        let status = loop {
            if let Some(status) = child.0.try_wait().map_err(AppError::internal)? {
                break status;
            }
            tokio::time::sleep(CHILD_POLL).await;
        };
        if !status.success() {
            // The child's last line is its refusal (`error: …`).
            let said = std::fs::read_to_string(&files.stderr).unwrap_or_default();
            if OUT_OF_MEMORY.iter().any(|words| said.contains(words)) {
                return Err(AppError::Unprocessable(format!(
                    "model {}: the inference needed more than its memory budget of {} MiB (--inference-memory-mib) and was stopped",
                    model.id, self.memory_mib
                )));
            }
            let said = said.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or_default();
            let said = said.strip_prefix("error: ").unwrap_or(said);
            return Err(AppError::Unprocessable(format!("model {}: {said} ({status})", model.id)));
        }
        let labels = tokio::fs::read(&files.output).await.map_err(AppError::internal)?;
        if labels.len() != ni * nj * nk {
            return Err(AppError::Internal(format!(
                "model {}: {} labels for {} voxels",
                model.id,
                labels.len(),
                ni * nj * nk
            )));
        }
        Ok(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_and_argmax() {
        let mut values = vec![1.0, 2.0, 3.0];
        normalise(&mut values, Normalisation::Minmax);
        assert_eq!(values, vec![0.0, 0.5, 1.0]);
        let mut values = vec![1.0, 3.0];
        normalise(&mut values, Normalisation::Zscore);
        assert_eq!(values, vec![-1.0, 1.0]);
        // Two channels over three voxels: channel-major, as the model's [1, C, …] output.
        let logits = [0.9, 0.1, 0.5, 0.1, 0.9, 0.6];
        assert_eq!(argmax_labels(&logits, &[0, 3], 3), vec![0, 3, 3]);
    }
}
