//! Remote inference over the Open Inference Protocol v2 (REST): `POST
//! {endpoint}/v2/models/{name}/infer`, as KServe, MLServer and Triton serve it, for versions
//! whose card says `artifact.format: "oip-v2"`. The request carries the normalised image as one
//! FP32 tensor `[1, 1, k, j, i]` and the answer the `[1, C, k, j, i]` logits, labelled by the
//! same argmax as in-process inference, so both give the same masks for the same network.
//! Tensors travel as JSON (the protocol's portable form: about ten bytes per value each way),
//! written from and read into flat `f32` buffers with no JSON tree between.
//! Each request has a timeout; connection failures, 429 and 5xx answers are retried with a
//! doubling pause; a semaphore bounds the requests in flight.

use std::sync::Arc;
use std::time::Duration;

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
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
        let request = InferRequest {
            inputs: [RequestTensor { name: "image", shape: [1, 1, nk, nj, ni], datatype: "FP32", data: &intensities }],
            outputs: [RequestedOutput { name: "logits" }],
        };
        let body = bytes::Bytes::from(serde_json::to_vec(&request).map_err(AppError::internal)?);
        drop(intensities);
        let channels = &model.card.output_channels;
        let voxels = ni * nj * nk;
        let answer_limit = channels.len() * voxels * ANSWER_BYTES_PER_VALUE + (1 << 20);
        let _slot = self.slots.acquire().await.map_err(AppError::internal)?;
        let mut pause = RETRY_PAUSE;
        for attempt in 1..=self.attempts {
            match self.request(&url, body.clone(), answer_limit).await {
                Ok(answer) => {
                    let logits = logits_of(answer, &[1, channels.len(), nk, nj, ni])
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
    async fn request(&self, url: &str, body: bytes::Bytes, limit: usize) -> Result<InferResponse, Failure> {
        let sent = self.client.post(url).header("content-type", "application/json").body(body).send().await;
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
        serde_json::from_slice(&bytes).map_err(|e| Failure { message: format!("an answer that is not an inference response: {e}"), retry: false })
    }
}

/// `POST /v2/models/{name}/infer`'s body: one input tensor, one output asked for.
#[derive(Serialize)]
struct InferRequest<'a> {
    inputs: [RequestTensor<'a>; 1],
    outputs: [RequestedOutput; 1],
}

#[derive(Serialize)]
struct RequestTensor<'a> {
    name: &'static str,
    shape: [usize; 5],
    datatype: &'static str,
    data: &'a [f32],
}

#[derive(Serialize)]
struct RequestedOutput {
    name: &'static str,
}

/// The parts of an inference answer the runner reads.
#[derive(Deserialize)]
struct InferResponse {
    #[serde(default)]
    outputs: Vec<ResponseTensor>,
}

#[derive(Deserialize)]
struct ResponseTensor {
    shape: Vec<usize>,
    datatype: String,
    data: FlatData,
}

/// A tensor's `data`, flat or nested in row-major order, read straight into one buffer.
struct FlatData(Vec<f32>);

impl<'de> Deserialize<'de> for FlatData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut values = Vec::new();
        deserializer.deserialize_seq(Flatten(&mut values))?;
        Ok(FlatData(values))
    }
}

/// Appends the numbers of one (possibly nested) array to the buffer it holds.
struct Flatten<'a>(&'a mut Vec<f32>);

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("numbers, or arrays of them")
    }

    fn visit_f64<E>(self, value: f64) -> Result<(), E> {
        self.0.push(value as f32);
        Ok(())
    }

    fn visit_i64<E>(self, value: i64) -> Result<(), E> {
        self.0.push(value as f32);
        Ok(())
    }

    fn visit_u64<E>(self, value: u64) -> Result<(), E> {
        self.0.push(value as f32);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Element(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// One element of an array: a number or a nested array, appended to the same buffer.
struct Element<'a>(&'a mut Vec<f32>);

impl<'de> serde::de::DeserializeSeed<'de> for Element<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(Flatten(self.0))
    }
}

/// The logits of an inference answer: its first output, FP32 (or FP64) of shape `expected`.
fn logits_of(answer: InferResponse, expected: &[usize]) -> Result<Vec<f32>, String> {
    let output = answer.outputs.into_iter().next().ok_or("no outputs")?;
    if output.shape != expected {
        return Err(format!("shape {:?}; the card promises {expected:?}", output.shape));
    }
    if !matches!(output.datatype.as_str(), "FP32" | "FP64") {
        return Err(format!("datatype {}; logits are FP32", output.datatype));
    }
    let FlatData(values) = output.data;
    if values.len() != expected.iter().product::<usize>() {
        return Err(format!("{} values for shape {expected:?}", values.len()));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(json: serde_json::Value) -> InferResponse {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn logits_flat_or_nested_of_the_promised_shape() {
        let flat = || answer(json!({ "outputs": [{ "name": "logits", "shape": [1, 2, 1, 1, 2], "datatype": "FP32", "data": [0.5, -1, 2, 3] }] }));
        assert_eq!(logits_of(flat(), &[1, 2, 1, 1, 2]).unwrap(), vec![0.5, -1.0, 2.0, 3.0]);
        let nested = answer(json!({ "outputs": [{ "shape": [1, 2, 1, 1, 2], "datatype": "FP32", "data": [[[[[0.5, -1]]], [[[2, 3]]]]] }] }));
        assert_eq!(logits_of(nested, &[1, 2, 1, 1, 2]).unwrap(), vec![0.5, -1.0, 2.0, 3.0]);
        assert!(logits_of(flat(), &[1, 3, 1, 1, 2]).unwrap_err().contains("the card promises"));
        let short = answer(json!({ "outputs": [{ "shape": [1, 2, 1, 1, 2], "datatype": "FP32", "data": [1, 2, 3] }] }));
        assert!(logits_of(short, &[1, 2, 1, 1, 2]).unwrap_err().contains("3 values"));
        let text = answer(json!({ "outputs": [{ "shape": [1, 2, 1, 1, 2], "datatype": "BYTES", "data": [1, 2, 3, 4] }] }));
        assert!(logits_of(text, &[1, 2, 1, 1, 2]).unwrap_err().contains("datatype"));
        assert_eq!(logits_of(answer(json!({})), &[1]).unwrap_err(), "no outputs");
        // Strings are no tensor data: the answer does not parse.
        let strings = json!({ "outputs": [{ "shape": [1], "datatype": "BYTES", "data": ["a"] }] });
        assert!(serde_json::from_value::<InferResponse>(strings).is_err());
    }

    #[test]
    fn the_request_is_the_protocols_json() {
        let request = InferRequest {
            inputs: [RequestTensor { name: "image", shape: [1, 1, 1, 1, 2], datatype: "FP32", data: &[0.5, -2.0] }],
            outputs: [RequestedOutput { name: "logits" }],
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({
                "inputs": [{ "name": "image", "shape": [1, 1, 1, 1, 2], "datatype": "FP32", "data": [0.5, -2.0] }],
                "outputs": [{ "name": "logits" }],
            })
        );
    }
}
