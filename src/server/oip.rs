//! Remote inference over the Open Inference Protocol v2 (REST): `POST
//! {endpoint}/v2/models/{name}/infer`, as KServe, MLServer and Triton serve it, for versions
//! whose card says `artifact.format: "oip-v2"`. The request carries the normalised image as one
//! FP32 tensor `[1, 1, k, j, i]` and the answer the `[1, C, k, j, i]` logits, labelled by the
//! same argmax as in-process inference, so both give the same masks for the same network.
//! Tensors travel with the binary tensor data extension ([`tensors`]: raw little-endian bytes,
//! the logits labelled as they arrive), or as JSON (about ten bytes per value each way) to a
//! server that refuses the extension, remembered per server, or with `--oip-json-tensors`.
//! Each request has a timeout; connection failures, 429 and 5xx answers are retried with a
//! doubling pause; a semaphore bounds the requests in flight.
//!
//! Images go only where the operator says ([`AllowedServers`]: `--oip-endpoint` and
//! `--oip-allowed-hosts`), checked when a card is registered and again before each run;
//! redirects are not followed. At most `--oip-max-answer-bytes` of an answer are ever read.
//! What a server says when it refuses a request stays apart from our own words
//! ([`AppError::InferenceServer`]), for ML engineers and admins only.

mod tensors;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::Url;
use tokio::sync::Semaphore;

use tensors::{ImageRequest, InferResponse, Logits, StreamingArgmax};

use super::inference::{argmax_labels, normalise, Image, ModelVersion, ProcessRunner, Runner};
use crate::api::ArtifactFormat;
use crate::server::config::OrchestratorConfig;
use crate::server::error::AppError;

/// Pause before the first retry; doubles with each further one.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// How much of a refusal's body is read and kept.
const REFUSAL_BODY_BYTES: usize = 500;
/// Longest server's-own-words detail kept with a job's error.
const DETAIL_BYTES: usize = 1000;

/// The inference servers this instance may send case images to, as the operator set them:
/// the host and port of `--oip-endpoint`, and each `--oip-allowed-hosts` entry.
#[derive(Clone, Debug)]
pub struct AllowedServers {
    default: Option<Url>,
    hosts: Vec<AllowedHost>,
}

/// One `--oip-allowed-hosts` entry: a host (normalised as in URLs), on one port or any.
#[derive(Clone, Debug, PartialEq)]
struct AllowedHost {
    host: String,
    port: Option<u16>,
}

impl AllowedServers {
    /// Reads the operator's settings, naming a malformed one.
    pub fn new(default_endpoint: Option<&str>, allowed_hosts: &[String]) -> Result<AllowedServers, String> {
        let default = default_endpoint
            .map(|endpoint| base_url(endpoint).map_err(|why| format!("--oip-endpoint: {why}")))
            .transpose()?;
        let hosts = allowed_hosts.iter().map(|entry| allowed_host(entry)).collect::<Result<_, _>>()?;
        Ok(AllowedServers { default, hosts })
    }

    /// `endpoint` as the base URL of an inference server the operator allows, or why not.
    pub(crate) fn check(&self, endpoint: &str) -> Result<Url, String> {
        let url = base_url(endpoint)?;
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default();
        let is_default =
            self.default.as_ref().is_some_and(|d| d.host_str() == Some(host) && d.port_or_known_default() == port);
        let is_listed =
            self.hosts.iter().any(|allowed| allowed.host == host && allowed.port.is_none_or(|p| Some(p) == port));
        if is_default || is_listed {
            Ok(url)
        } else {
            Err(format!(
                "{host}:{} is not an inference server this instance may use (the operator allows --oip-endpoint and --oip-allowed-hosts)",
                port.unwrap_or_default()
            ))
        }
    }

    /// The base URL a version runs on: its card's `endpoint`, else `--oip-endpoint`.
    fn base_for(&self, card_endpoint: Option<&str>) -> Result<Url, String> {
        match card_endpoint {
            Some(endpoint) => self.check(endpoint).map_err(|why| format!("card field `artifact.endpoint`: {why}")),
            None => self.default.clone().ok_or_else(|| {
                "it runs on an inference server, but neither its card (`artifact.endpoint`) nor this instance (--oip-endpoint) names one".to_string()
            }),
        }
    }
}

/// `endpoint` as an http(s) base URL holding nothing that would steer the request elsewhere
/// than `{endpoint}/v2/models/{name}/infer`: no credentials, no query, no fragment.
fn base_url(endpoint: &str) -> Result<Url, String> {
    let url = Url::parse(endpoint).map_err(|e| format!("{endpoint:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{endpoint:?}: use an http:// or https:// base URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{endpoint:?}: no credentials (user:password@) in the URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{endpoint:?}: no query (?…) or fragment (#…); the request goes to …/v2/models/{{model_name}}/infer"
        ));
    }
    Ok(url)
}

/// An `--oip-allowed-hosts` entry: `host` or `host:port` (IPv6 in brackets).
fn allowed_host(entry: &str) -> Result<AllowedHost, String> {
    let entry = entry.trim();
    let refused = || format!("--oip-allowed-hosts: {entry:?} is not a host name or address with an optional :port");
    if entry.is_empty() || entry.contains(['/', '?', '#', '@', '\\']) {
        return Err(refused());
    }
    // Parsed as a URL's authority, so it is normalised as the endpoints it is compared with.
    let url = Url::parse(&format!("http://{entry}")).map_err(|_| refused())?;
    let host = url.host_str().ok_or_else(refused)?.to_string();
    // A port written out (even :80, which URLs leave implicit) allows that port alone.
    let port_written = entry
        .rsplit_once(':')
        .is_some_and(|(_, digits)| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
    Ok(AllowedHost { host, port: if port_written { url.port_or_known_default() } else { None } })
}

/// `{base}/v2/models/{name}/infer`, the name one escaped path segment.
fn infer_url(base: &Url, model_name: &str) -> Url {
    let mut url = base.clone();
    url.path_segments_mut()
        .expect("http(s) URLs have paths")
        .pop_if_empty()
        .extend(["v2", "models", model_name, "infer"]);
    url
}

/// At most `limit` bytes of `text`, cut at a character boundary.
fn clipped(text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let end = (0..=limit).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    format!("{}…", &text[..end])
}

pub struct OipRunner {
    client: reqwest::Client,
    servers: AllowedServers,
    attempts: u32,
    slots: Arc<Semaphore>,
    max_answer_bytes: usize,
    /// Send JSON tensors only (`--oip-json-tensors`).
    json_tensors: bool,
    /// Inference servers (base URLs) that refused the binary extension: sent JSON from then on.
    json_only: Mutex<HashSet<String>>,
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
    /// Ours, for anyone who sees the job.
    summary: String,
    /// What the server itself said, if anything.
    said: Option<String>,
    retry: bool,
    /// The server's status, when it refused the request.
    status: Option<u16>,
}

impl Failure {
    fn ours(summary: String, retry: bool) -> Failure {
        Failure { summary, said: None, retry, status: None }
    }

    /// An answer that is not the logits the card promises.
    fn misfit(url: &Url, problem: impl std::fmt::Display) -> Failure {
        Failure {
            summary: "the inference server's answer does not fit the model card".into(),
            said: Some(clipped(format!("{url} answered {problem}"), DETAIL_BYTES)),
            retry: false,
            status: None,
        }
    }

    /// Whether the server refused the request as one it could not read: any 4xx but 429, or
    /// a 500 (MLServer 1.7 fails that way on a body that is not JSON). A server that does not
    /// know the binary extension answers one of these.
    fn unreadable_request(&self) -> bool {
        matches!(self.status, Some(status) if (400..=500).contains(&status) && status != 429)
    }

    /// The job's error after `attempt` requests to `url`.
    fn into_error(self, url: &Url, attempt: u32) -> AppError {
        match self.said {
            Some(said) => {
                AppError::InferenceServer { summary: format!("{} (attempt {attempt})", self.summary), detail: said }
            }
            None => AppError::Unprocessable(format!("inference server {url}: {} (attempt {attempt})", self.summary)),
        }
    }
}

/// What the answer must hold: logits of this shape, one channel per output label.
struct Expected<'a> {
    shape: [usize; 5],
    channels: &'a [u8],
}

impl Expected<'_> {
    fn voxels(&self) -> usize {
        self.shape[2..].iter().product()
    }
}

impl OipRunner {
    pub fn new(config: &OrchestratorConfig, servers: AllowedServers) -> Result<OipRunner, reqwest::Error> {
        Ok(OipRunner {
            // A redirect would send the image to a server the operator did not allow.
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(config.oip_timeout_secs))
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            servers,
            attempts: config.oip_attempts.max(1),
            slots: Arc::new(Semaphore::new(config.oip_concurrency.max(1))),
            max_answer_bytes: usize::try_from(config.oip_max_answer_bytes).unwrap_or(usize::MAX),
            json_tensors: config.oip_json_tensors,
            json_only: Mutex::new(HashSet::new()),
        })
    }

    pub(crate) async fn segment(&self, model: &ModelVersion, image: Image) -> Result<Vec<u8>, AppError> {
        let artifact = &model.card.artifact;
        // Checked at each run as well as at registration: the operator may have narrowed the
        // allowlist since.
        let base = self
            .servers
            .base_for(artifact.endpoint.as_deref())
            .map_err(|why| AppError::Unprocessable(format!("model {}: {why}", model.id)))?;
        let url = infer_url(&base, artifact.model_name.as_deref().unwrap_or_default());
        let [ni, nj, nk] = image.dims;
        let Image { mut intensities, .. } = image;
        normalise(&mut intensities, model.card.input_spec.intensity_normalisation);
        let channels = &model.card.output_channels;
        let expected = Expected { shape: [1, channels.len(), nk, nj, ni], channels };
        let request = ImageRequest::new(intensities, [1, 1, nk, nj, ni]).map_err(AppError::internal)?;
        let mut binary = !self.json_tensors && !self.sends_json_to(&base);
        let mut fell_back = false;
        let mut json_body = None;
        let _slot = self.slots.acquire().await.map_err(AppError::internal)?;
        let mut pause = RETRY_PAUSE;
        let mut attempt = 1;
        loop {
            let (body, header_length) = if binary {
                let (body, header_length) = request.binary();
                (body, Some(header_length))
            } else {
                let body = match &json_body {
                    Some(body) => Bytes::clone(body),
                    None => json_body.insert(request.json().map_err(AppError::internal)?).clone(),
                };
                (body, None)
            };
            match self.request(&url, body, header_length, &expected).await {
                Ok(labels) => {
                    if fell_back {
                        tracing::info!(%url, "the inference server reads JSON tensors, not binary ones; sending it JSON from now on");
                        self.json_only.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(base.to_string());
                    }
                    return Ok(labels);
                }
                // The same request once more as JSON, without counting an attempt; remembered
                // only once JSON succeeds, so a passing fault does not cost a server the
                // extension.
                Err(failure) if binary && failure.unreadable_request() => {
                    tracing::info!(%url, said = failure.said.as_deref().unwrap_or_default(), "the inference server refused binary tensors; trying JSON");
                    (binary, fell_back) = (false, true);
                }
                Err(failure) if failure.retry && attempt < self.attempts => {
                    tracing::warn!(%url, attempt, error = %failure.summary, said = failure.said.as_deref().unwrap_or_default(), "inference request failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                }
                Err(failure) => return Err(failure.into_error(&url, attempt)),
            }
        }
    }

    fn sends_json_to(&self, base: &Url) -> bool {
        self.json_only.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).contains(base.as_str())
    }

    /// One request, with the binary extension when `header_length` is given; the labels of its
    /// answer. At most `max_answer_bytes` of the answer are read, refused as soon as it
    /// announces or passes more. Binary logits are labelled as they arrive.
    async fn request(
        &self,
        url: &Url,
        body: Bytes,
        header_length: Option<usize>,
        expected: &Expected<'_>,
    ) -> Result<Vec<u8>, Failure> {
        let request = self.client.post(url.clone());
        let request = match header_length {
            Some(length) => {
                request.header("content-type", "application/octet-stream").header(tensors::HEADER_LENGTH, length)
            }
            None => request.header("content-type", "application/json"),
        };
        let encoding = if header_length.is_some() { "binary" } else { "json" };
        metrics::counter!("seglab_inference_sent_bytes_total", "encoding" => encoding).increment(body.len() as u64);
        let sent = request.body(body).send().await;
        let mut response = sent.map_err(|e| Failure::ours(format!("no answer: {e}"), true))?;
        let status = response.status();
        if !status.is_success() {
            return Err(refusal(url, response).await);
        }
        let limit = self.max_answer_bytes;
        let too_long = |size: String| {
            Failure::ours(
                format!("an answer of {size} bytes; this instance reads at most {limit} (--oip-max-answer-bytes)"),
                false,
            )
        };
        if let Some(announced) = response.content_length().filter(|&length| length > limit as u64) {
            return Err(too_long(announced.to_string()));
        }
        let answer_header_length = match response.headers().get(tensors::HEADER_LENGTH) {
            Some(value) => Some(
                value
                    .to_str()
                    .ok()
                    .and_then(|text| text.parse::<usize>().ok())
                    .ok_or_else(|| Failure::misfit(url, format!("{} {value:?}", tensors::HEADER_LENGTH)))?,
            ),
            None => None,
        };
        let mut header = Vec::new();
        let mut argmax: Option<StreamingArgmax> = None;
        let mut read = 0;
        while let Some(chunk) =
            response.chunk().await.map_err(|e| Failure::ours(format!("answer cut off: {e}"), true))?
        {
            read += chunk.len();
            if read > limit {
                return Err(too_long(format!("more than {limit}")));
            }
            let mut rest = &chunk[..];
            if let Some(argmax) = argmax.as_mut() {
                argmax.push(rest).map_err(|problem| Failure::misfit(url, problem))?;
                continue;
            }
            let wanted = answer_header_length.map_or(rest.len(), |length| (length - header.len()).min(rest.len()));
            header.extend_from_slice(&rest[..wanted]);
            rest = &rest[wanted..];
            if answer_header_length == Some(header.len()) {
                let stream = binary_logits(url, &header, expected)?;
                argmax.insert(stream).push(rest).map_err(|problem| Failure::misfit(url, problem))?;
            }
        }
        let encoding = if answer_header_length.is_some() { "binary" } else { "json" };
        metrics::counter!("seglab_inference_received_bytes_total", "encoding" => encoding).increment(read as u64);
        if let Some(argmax) = argmax {
            return argmax.finish().map_err(|problem| Failure::misfit(url, problem));
        }
        if answer_header_length.is_some() {
            return Err(Failure::ours("answer cut off in its header".into(), true));
        }
        match parse_answer(url, &header)?.logits(&expected.shape) {
            Ok(Logits::Values(logits)) => Ok(argmax_labels(&logits, expected.channels, expected.voxels())),
            Ok(Logits::Binary { .. }) => {
                Err(Failure::misfit(url, "binary logits without the binary extension's header"))
            }
            Err(problem) => Err(Failure::misfit(url, problem)),
        }
    }
}

/// The labeller of the logits that follow a binary answer's JSON header `header`; refused when
/// the header does not announce them as binary data of the shape the card promises.
fn binary_logits<'a>(url: &Url, header: &[u8], expected: &Expected<'a>) -> Result<StreamingArgmax<'a>, Failure> {
    match parse_answer(url, header)?.logits(&expected.shape) {
        Ok(Logits::Binary { width }) => Ok(StreamingArgmax::new(expected.channels, expected.voxels(), width)),
        Ok(Logits::Values(_)) => Err(Failure::misfit(url, "JSON logits in a binary answer")),
        Err(problem) => Err(Failure::misfit(url, problem)),
    }
}

/// An answer (or a binary answer's header) read as an inference response.
fn parse_answer(url: &Url, json: &[u8]) -> Result<InferResponse, Failure> {
    serde_json::from_slice(json).map_err(|e| Failure {
        summary: "the inference server's answer is not an inference response".into(),
        said: Some(clipped(format!("{url} answered: {e}"), DETAIL_BYTES)),
        retry: false,
        status: None,
    })
}

/// A non-success answer as a failure: the status for everyone, the start of its body (and
/// where a redirect pointed) as the server's own words.
async fn refusal(url: &Url, mut response: reqwest::Response) -> Failure {
    let status = response.status();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let mut body = Vec::new();
    while body.len() < REFUSAL_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(REFUSAL_BODY_BYTES);
    let body = String::from_utf8_lossy(&body);
    let (summary, said) = match location {
        Some(location) if status.is_redirection() => (
            format!(
                "the inference server redirected the request (status {}); redirects are not followed",
                status.as_u16()
            ),
            format!("POST {url} answered: redirect to {location}: {body}"),
        ),
        _ => (
            format!("the inference server refused the request (status {})", status.as_u16()),
            format!("POST {url} answered: {body}"),
        ),
    };
    Failure {
        summary,
        said: Some(clipped(said, DETAIL_BYTES)),
        retry: status.is_server_error() || status.as_u16() == 429,
        status: Some(status.as_u16()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_operators_servers_are_allowed() {
        let hosts = ["Triton.Internal".to_string(), " 10.0.0.5:8000".into(), "[::1]:80".into()];
        let servers = AllowedServers::new(Some("http://gpu.internal:8080/kserve"), &hosts).unwrap();
        // --oip-endpoint's host and port, under any base path.
        assert!(servers.check("http://gpu.internal:8080/other/").is_ok());
        assert!(servers
            .check("http://gpu.internal:9090")
            .unwrap_err()
            .contains("gpu.internal:9090 is not an inference server"));
        // A listed host without a port allows every port; names compare as URLs normalise them.
        assert!(servers.check("https://triton.internal").is_ok());
        assert!(servers.check("http://TRITON.internal:1234/").is_ok());
        assert!(servers.check("http://10.0.0.5:8000").is_ok());
        assert!(servers.check("http://10.0.0.5:8001").is_err());
        assert!(servers.check("http://[::1]/").is_ok(), "[::1]:80 written out is http's default port");
        assert!(servers.check("http://[::1]:8080/").is_err());
        assert!(servers.check("http://evil.example:8080").is_err());
        assert!(
            AllowedServers::new(None, &[]).unwrap().check("http://gpu.internal:8080").is_err(),
            "nothing is allowed unless listed"
        );
        // Nothing in the URL may steer the request, even to an allowed server.
        for (endpoint, why) in [
            ("http://gpu.internal:8080/#", "fragment"),
            ("http://gpu.internal:8080/x#/v2/models/other/infer", "fragment"),
            ("http://gpu.internal:8080/?model=other", "query"),
            ("http://user:secret@gpu.internal:8080", "credentials"),
            ("http://user@gpu.internal:8080", "credentials"),
            ("ftp://gpu.internal:8080", "http://"),
            ("gpu.internal:8080", "http://"),
            ("not a url", "not a URL"),
        ] {
            let refusal = servers.check(endpoint).unwrap_err();
            assert!(refusal.contains(why), "{endpoint}: {refusal}");
        }
        // A card without an endpoint runs on --oip-endpoint.
        assert_eq!(servers.base_for(None).unwrap().as_str(), "http://gpu.internal:8080/kserve");
        assert!(servers.base_for(Some("http://evil.example")).unwrap_err().contains("`artifact.endpoint`"));
        assert!(AllowedServers::new(None, &[]).unwrap().base_for(None).unwrap_err().contains("--oip-endpoint"));
        // Malformed settings are named.
        assert!(AllowedServers::new(Some("http://gpu.internal:8080/?x=1"), &[])
            .unwrap_err()
            .contains("--oip-endpoint"));
        for entry in ["", "http://gpu", "gpu/path", "user@gpu", "gpu:port"] {
            let refusal = AllowedServers::new(None, &[entry.to_string()]).unwrap_err();
            assert!(refusal.contains("--oip-allowed-hosts"), "{entry:?}: {refusal}");
        }
    }

    #[test]
    fn the_model_name_is_one_path_segment_under_the_base() {
        let base = Url::parse("http://gpu.internal:8080/kserve/").unwrap();
        assert_eq!(infer_url(&base, "liver-seg").as_str(), "http://gpu.internal:8080/kserve/v2/models/liver-seg/infer");
        let base = Url::parse("http://gpu.internal:8080").unwrap();
        assert_eq!(infer_url(&base, "a/b?c#d").as_str(), "http://gpu.internal:8080/v2/models/a%2Fb%3Fc%23d/infer");
    }

    #[test]
    fn details_are_clipped_at_a_character_boundary() {
        assert_eq!(clipped("short".into(), 10), "short");
        assert_eq!(clipped("ééé".into(), 3), "é…");
    }
}
