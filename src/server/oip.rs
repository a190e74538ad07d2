//! Remote inference over the Open Inference Protocol v2 (REST): `POST
//! {endpoint}/v2/models/{name}/infer`, as KServe, MLServer and Triton serve it, for versions
//! whose card says `artifact.format: "oip-v2"`. The request carries the normalised image as one
//! FP32 tensor `[1, 1, k, j, i]` and the answer the `[1, C, k, j, i]` logits, labelled by the
//! same argmax as in-process inference, so both give the same masks for the same network.
//! Tensors travel as JSON (the protocol's portable form: about ten bytes per value each way).
//! Each request has a timeout; connection failures, 429 and 5xx answers are retried with a
//! doubling pause; a semaphore bounds the requests in flight.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::inference::{argmax_labels, normalise, Image, ModelVersion, ProcessRunner, Runner};
use crate::api::ArtifactFormat;
use crate::server::config::OrchestratorConfig;
use crate::server::error::AppError;

/// Pause before the first retry; doubles with each further one.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Room for one JSON number of the answer (`-0.35185185074806213,`) and its framing.
const ANSWER_BYTES_PER_VALUE: usize = 32;

pub struct OipRunner {
    client: reqwest::Client,
    default_endpoint: Option<String>,
    attempts: u32,
    slots: Arc<Semaphore>,
}

/// Runs each version where its card says: `onnx` in a child process here, `oip-v2` on its
/// inference server.
pub struct CardRunner {
    pub local: ProcessRunner,
    pub remote: OipRunner,
}

#[async_trait::async_trait]
impl Runner for CardRunner {
    async fn segment(&self, model: &ModelVersion, image: Image) -> Result<Vec<u8>, AppError> {
        match model.card.artifact.format {
            ArtifactFormat::Onnx => self.local.segment(model, image).await,
            ArtifactFormat::OipV2 => self.remote.segment(model, image).await,
        }
    }
}

/// Why one request failed, and whether another may succeed.
struct Failure {
    message: String,
    retry: bool,
}

impl OipRunner {
    pub fn new(config: &OrchestratorConfig) -> Result<OipRunner, reqwest::Error> {
        Ok(OipRunner {
            client: reqwest::Client::builder().timeout(Duration::from_secs(config.oip_timeout_secs)).build()?,
            default_endpoint: config.oip_endpoint.clone(),
            attempts: config.oip_attempts.max(1),
            slots: Arc::new(Semaphore::new(config.oip_concurrency.max(1))),
        })
    }

    pub async fn segment(&self, model: &ModelVersion, image: Image) -> Result<Vec<u8>, AppError> {
        let artifact = &model.card.artifact;
        let endpoint = artifact.endpoint.as_deref().or(self.default_endpoint.as_deref()).ok_or_else(|| {
            AppError::Unprocessable(format!(
                "model {} runs on an inference server, but neither its card (`artifact.endpoint`) nor this instance (--oip-endpoint) names one",
                model.id
            ))
        })?;
        let name = artifact.model_name.as_deref().unwrap_or_default();
        let url = format!("{}/v2/models/{name}/infer", endpoint.trim_end_matches('/'));
        let [ni, nj, nk] = image.dims;
        let Image { mut intensities, .. } = image;
        normalise(&mut intensities, model.card.input_spec.intensity_normalisation);
        let body = json!({
            "inputs": [{ "name": "image", "shape": [1, 1, nk, nj, ni], "datatype": "FP32", "data": intensities }],
            "outputs": [{ "name": "logits" }],
        });
        drop(intensities);
        let body = serde_json::to_vec(&body).map_err(AppError::internal)?;
        let channels = &model.card.output_channels;
        let voxels = ni * nj * nk;
        let answer_limit = channels.len() * voxels * ANSWER_BYTES_PER_VALUE + (1 << 20);
        let _slot = self.slots.acquire().await.map_err(AppError::internal)?;
        let mut pause = RETRY_PAUSE;
        for attempt in 1..=self.attempts {
            match self.request(&url, &body, answer_limit).await {
                Ok(answer) => {
                    let logits = logits_of(&answer, &[1, channels.len(), nk, nj, ni])
                        .map_err(|problem| AppError::Unprocessable(format!("{url} answered {problem}")))?;
                    return Ok(argmax_labels(&logits, channels, voxels));
                }
                Err(failure) if failure.retry && attempt < self.attempts => {
                    tracing::warn!(%url, attempt, error = %failure.message, "inference request failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(failure) => {
                    return Err(AppError::Unprocessable(format!("inference server {url}: {} (attempt {attempt})", failure.message)));
                }
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// One request; the answer is read up to `limit` bytes.
    async fn request(&self, url: &str, body: &[u8], limit: usize) -> Result<Value, Failure> {
        let sent = self.client.post(url).header("content-type", "application/json").body(body.to_vec()).send().await;
        let mut response = sent.map_err(|e| Failure { message: format!("no answer: {e}"), retry: true })?;
        let status = response.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| Failure { message: format!("answer cut off: {e}"), retry: true })? {
            if bytes.len() + chunk.len() > limit {
                return Err(Failure { message: format!("an answer over {limit} bytes"), retry: false });
            }
            bytes.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let said = String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned();
            return Err(Failure { message: format!("HTTP {status}: {said}"), retry: status.is_server_error() || status.as_u16() == 429 });
        }
        serde_json::from_slice(&bytes).map_err(|e| Failure { message: format!("an answer that is not JSON: {e}"), retry: false })
    }
}

/// The logits of an inference answer: its first output, FP32 (or FP64) of shape `expected`,
/// its data flat or nested in row-major order.
fn logits_of(answer: &Value, expected: &[usize]) -> Result<Vec<f32>, String> {
    let output = answer["outputs"].get(0).ok_or("no outputs")?;
    let shape: Vec<usize> = output["shape"]
        .as_array()
        .ok_or("an output without a shape")?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize))
        .collect::<Option<_>>()
        .ok_or("a shape that is not whole numbers")?;
    if shape != expected {
        return Err(format!("shape {shape:?}; the card promises {expected:?}"));
    }
    if !matches!(output["datatype"].as_str(), Some("FP32" | "FP64")) {
        return Err(format!("datatype {}; logits are FP32", output["datatype"]));
    }
    let mut values = Vec::with_capacity(expected.iter().product());
    flatten(&output["data"], &mut values)?;
    if values.len() != expected.iter().product::<usize>() {
        return Err(format!("{} values for shape {expected:?}", values.len()));
    }
    Ok(values)
}

fn flatten(data: &Value, into: &mut Vec<f32>) -> Result<(), String> {
    match data {
        Value::Array(items) => items.iter().try_for_each(|item| flatten(item, into)),
        Value::Number(number) => {
            into.push(number.as_f64().ok_or("a number out of range")? as f32);
            Ok(())
        }
        other => Err(format!("data holding {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logits_flat_or_nested_of_the_promised_shape() {
        let flat = json!({ "outputs": [{ "name": "logits", "shape": [1, 2, 1, 1, 2], "datatype": "FP32", "data": [0.5, -1, 2, 3] }] });
        assert_eq!(logits_of(&flat, &[1, 2, 1, 1, 2]).unwrap(), vec![0.5, -1.0, 2.0, 3.0]);
        let nested = json!({ "outputs": [{ "shape": [1, 2, 1, 1, 2], "datatype": "FP32", "data": [[[[[0.5, -1]]], [[[2, 3]]]]] }] });
        assert_eq!(logits_of(&nested, &[1, 2, 1, 1, 2]).unwrap(), vec![0.5, -1.0, 2.0, 3.0]);
        assert!(logits_of(&flat, &[1, 3, 1, 1, 2]).unwrap_err().contains("the card promises"));
        let short = json!({ "outputs": [{ "shape": [1, 2, 1, 1, 2], "datatype": "FP32", "data": [1, 2, 3] }] });
        assert!(logits_of(&short, &[1, 2, 1, 1, 2]).unwrap_err().contains("3 values"));
        let text = json!({ "outputs": [{ "shape": [1, 2, 1, 1, 2], "datatype": "BYTES", "data": ["a"] }] });
        assert!(logits_of(&text, &[1, 2, 1, 1, 2]).unwrap_err().contains("datatype"));
        assert_eq!(logits_of(&json!({}), &[1]).unwrap_err(), "no outputs");
    }
}
