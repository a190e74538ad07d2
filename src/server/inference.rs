//! Running a segmentation model on a case image.
//!
//! [`Runner`] is the seam: the orchestrator hands it a model version and an image and gets
//! label values back. [`TractRunner`] runs ONNX models in-process on the CPU with tract (pure
//! Rust). A runner that calls a remote inference server speaking the Open Inference Protocol
//! v2 (KServe, Triton: `POST /v2/models/{name}/infer` with the image as an FP32 tensor) fits
//! the same trait for GPU scale; it would be chosen by configuration in `AppState::connect`.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::Semaphore;
use tract_onnx::prelude::*;

use crate::api::{ModelCard, Normalisation};
use crate::server::storage::ObjectStore;
use crate::server::error::AppError;

/// A model version as the runner needs it.
pub struct ModelVersion {
    pub id: String,
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

/// Checks that `bytes` parse as an ONNX model tract can load.
pub fn check_onnx(bytes: &[u8]) -> TractResult<()> {
    tract_onnx::onnx().model_for_read(&mut Cursor::new(bytes))?;
    Ok(())
}

type Plan = Arc<TypedRunnableModel>;

/// Optimised plans kept at once; the cache starts afresh when full.
const MAX_PLANS: usize = 8;

/// In-process ONNX inference with tract; optimised plans are cached per model and image size.
pub struct TractRunner {
    store: ObjectStore,
    plans: Mutex<HashMap<(String, [usize; 3]), Plan>>,
    /// One slot per concurrent inference. A slot is held until the computation itself ends,
    /// so an attempt abandoned on timeout still occupies the CPU it uses and retries queue
    /// behind it instead of piling up.
    slots: Arc<Semaphore>,
}

impl TractRunner {
    pub fn new(store: ObjectStore, concurrency: usize) -> TractRunner {
        TractRunner { store, plans: Mutex::new(HashMap::new()), slots: Arc::new(Semaphore::new(concurrency.max(1))) }
    }

    async fn plan(&self, model: &ModelVersion, dims: [usize; 3]) -> Result<Plan, AppError> {
        let key = (model.id.clone(), dims);
        if let Some(plan) = self.plans.lock().expect("plan cache lock").get(&key) {
            return Ok(plan.clone());
        }
        let bytes = self.store.get(&model.artifact_ref).await?;
        let plan = tokio::task::spawn_blocking(move || -> TractResult<Plan> {
            let [ni, nj, nk] = dims;
            let plan = tract_onnx::onnx()
                .model_for_read(&mut Cursor::new(bytes))?
                .with_input_fact(0, f32::fact([1, 1, nk, nj, ni]).into())?
                .into_optimized()?
                .into_runnable()?;
            Ok(plan)
        })
        .await
        .map_err(AppError::internal)?
        .map_err(|e| AppError::Unprocessable(format!("model {} cannot run on a {dims:?} image: {e:#}", model.id)))?;
        let mut plans = self.plans.lock().expect("plan cache lock");
        // Plans hold the model's weights and buffers per image size: keep a few.
        if plans.len() >= MAX_PLANS {
            plans.clear();
        }
        plans.insert(key, plan.clone());
        Ok(plan)
    }
}

/// Applies the card's intensity normalisation in place.
pub fn normalise(intensities: &mut [f32], how: Normalisation) {
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
pub fn argmax_labels(logits: &[f32], channels: &[u8], voxels: usize) -> Vec<u8> {
    (0..voxels)
        .map(|voxel| {
            let best = (0..channels.len())
                .max_by(|&a, &b| logits[a * voxels + voxel].total_cmp(&logits[b * voxels + voxel]))
                .unwrap_or(0);
            channels[best]
        })
        .collect()
}

#[async_trait]
impl Runner for TractRunner {
    async fn segment(&self, model: &ModelVersion, image: Image) -> Result<Vec<u8>, AppError> {
        let plan = self.plan(model, image.dims).await?;
        let (card, dims) = (model.card.clone(), image.dims);
        let model_id = model.id.clone();
        let slot = self.slots.clone().acquire_owned().await.map_err(AppError::internal)?;
        tokio::task::spawn_blocking(move || -> Result<Vec<u8>, AppError> {
            let _slot = slot;
            let mut intensities = image.intensities;
            normalise(&mut intensities, card.input_spec.intensity_normalisation);
            let [ni, nj, nk] = dims;
            let voxels = ni * nj * nk;
            let failed = |e: TractError| AppError::Unprocessable(format!("model {model_id} failed on this image: {e:#}"));
            let input = Tensor::from_shape(&[1, 1, nk, nj, ni], &intensities).map_err(failed)?;
            let outputs = plan.run(tvec!(input.into_tvalue())).map_err(failed)?;
            let logits = outputs[0].to_plain_array_view::<f32>().map_err(failed)?;
            let channels = card.output_channels.len();
            if logits.shape() != [1, channels, nk, nj, ni] {
                return Err(AppError::Unprocessable(format!(
                    "model {model_id} answered shape {:?}; its card promises [1, {channels}, {nk}, {nj}, {ni}]",
                    logits.shape()
                )));
            }
            let flat: Vec<f32> = logits.iter().copied().collect();
            Ok(argmax_labels(&flat, &card.output_channels, voxels))
        })
        .await
        .map_err(AppError::internal)?
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
