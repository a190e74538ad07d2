//! A DICOMweb client for the hospital's PACS: QIDO-RS to search studies and series, WADO-RS to
//! retrieve a series' instances into scratch files, STOW-RS to store a segmentation. Every
//! answer is read within a bound; the PACS is configured by the operator (`--dicomweb-url`).

use std::path::Path;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use serde_json::Value;

use super::config::DicomWebConfig;

/// Most matches one search answers with.
pub const MAX_MATCHES: usize = 100;
/// Instances of a series retrieved at once.
const RETRIEVALS_AT_ONCE: usize = 12;
/// Longest QIDO-RS or STOW-RS answer read.
const MAX_JSON_BYTES: usize = 8 << 20;

/// Why a PACS request failed.
#[derive(Debug, thiserror::Error)]
pub enum PacsError {
    /// The PACS could not be reached or broke off: worth retrying later.
    #[error("the PACS cannot be reached ({0})")]
    Unreachable(String),
    /// The PACS answered, but not as DICOMweb says it should.
    #[error("the PACS answered {0}")]
    Refused(String),
}

/// How far a series retrieval got, for whoever shows its progress: the series' instances once
/// listed, and those written to scratch so far.
#[derive(Debug, Default)]
pub struct Retrieval {
    pub instances: std::sync::atomic::AtomicU64,
    pub retrieved: std::sync::atomic::AtomicU64,
}

#[derive(Clone, Debug)]
pub struct DicomWebClient {
    base: String,
    credentials: Option<(String, String)>,
    http: reqwest::Client,
}

/// One attribute of a DICOM JSON object (PS3.18 F.2): its first value as text.
fn first_text(object: &Value, tag: &str) -> Option<String> {
    let value = object.get(tag)?.get("Value")?.get(0)?;
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        // Person names: {"Alphabetic": "Doe^Jane"}.
        Value::Object(name) => name.get("Alphabetic")?.as_str()?.to_string(),
        _ => return None,
    };
    (!text.trim().is_empty()).then(|| text.trim().to_string())
}

/// All values of one attribute as texts (ModalitiesInStudy).
fn all_texts(object: &Value, tag: &str) -> Vec<String> {
    object
        .get(tag)
        .and_then(|a| a.get("Value"))
        .and_then(Value::as_array)
        .map(|values| values.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// A study the PACS found, with what identifies its patient (which only the server reads).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StudyMatch {
    pub study_instance_uid: String,
    pub patient_id: Option<String>,
    pub issuer_of_patient_id: Option<String>,
    pub patient_name: Option<String>,
    pub patient_birth_date: Option<String>,
    pub patient_sex: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub study_id: Option<String>,
    pub accession_number: Option<String>,
    pub referring_physician_name: Option<String>,
    pub study_description: Option<String>,
    pub modalities: Vec<String>,
}

impl StudyMatch {
    fn read(object: &Value) -> Option<StudyMatch> {
        Some(StudyMatch {
            study_instance_uid: first_text(object, "0020000D")?,
            patient_id: first_text(object, "00100020"),
            issuer_of_patient_id: first_text(object, "00100021"),
            patient_name: first_text(object, "00100010"),
            patient_birth_date: first_text(object, "00100030"),
            patient_sex: first_text(object, "00100040"),
            study_date: first_text(object, "00080020"),
            study_time: first_text(object, "00080030"),
            study_id: first_text(object, "00200010"),
            accession_number: first_text(object, "00080050"),
            referring_physician_name: first_text(object, "00080090"),
            study_description: first_text(object, "00081030"),
            modalities: all_texts(object, "00080061"),
        })
    }
}

/// A series of a study.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesMatch {
    pub series_instance_uid: String,
    pub modality: String,
    pub series_description: String,
    pub series_number: Option<i64>,
    pub instances: Option<i64>,
}

/// What a study search asks for; empty fields match anything.
#[derive(Clone, Debug, Default)]
pub struct StudyQuery {
    pub patient_id: Option<String>,
    pub accession_number: Option<String>,
    pub modality: Option<String>,
    /// `YYYYMMDD` or a range `YYYYMMDD-YYYYMMDD`.
    pub study_date: Option<String>,
    pub study_instance_uid: Option<String>,
}

impl DicomWebClient {
    pub fn new(config: &DicomWebConfig) -> Result<Option<DicomWebClient>, reqwest::Error> {
        let Some(url) = &config.dicomweb_url else { return Ok(None) };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(config.dicomweb_timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let credentials =
            config.dicomweb_username.clone().map(|user| (user, config.dicomweb_password.clone().unwrap_or_default()));
        Ok(Some(DicomWebClient { base: url.trim_end_matches('/').to_string(), credentials, http }))
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path)
    }

    /// A request to `path` under the DICOMweb root, with the credentials.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.credentials {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    /// QIDO-RS: the studies matching `query`, at most [`MAX_MATCHES`].
    pub async fn search_studies(&self, query: &StudyQuery) -> Result<Vec<StudyMatch>, PacsError> {
        let mut params: Vec<(&str, String)> =
            vec![("limit", MAX_MATCHES.to_string()), ("fuzzymatching", "false".into())];
        for field in ["00100021", "00100030", "00100040", "00080030", "00200010", "00080090", "00081030", "00080061"] {
            params.push(("includefield", field.into()));
        }
        let given =
            |value: &Option<String>| value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        let fields = [
            ("PatientID", &query.patient_id),
            ("AccessionNumber", &query.accession_number),
            ("ModalitiesInStudy", &query.modality),
            ("StudyDate", &query.study_date),
            ("StudyInstanceUID", &query.study_instance_uid),
        ];
        for (name, value) in fields {
            if let Some(value) = given(value) {
                params.push((name, value));
            }
        }
        let found = self.json(self.get("/studies").query(&params)).await?;
        Ok(found.iter().filter_map(StudyMatch::read).take(MAX_MATCHES).collect())
    }

    /// QIDO-RS: the series of a study.
    pub async fn search_series(&self, study: &str) -> Result<Vec<SeriesMatch>, PacsError> {
        let request = self.get(&format!("/studies/{}/series", uid_path(study)?)).query(&[("includefield", "00201209")]);
        let found = self.json(request).await?;
        Ok(found
            .iter()
            .filter_map(|object| {
                Some(SeriesMatch {
                    series_instance_uid: first_text(object, "0020000E")?,
                    modality: first_text(object, "00080060").unwrap_or_else(|| "OT".into()),
                    series_description: first_text(object, "0008103E").unwrap_or_default(),
                    series_number: first_text(object, "00200011").and_then(|n| n.parse().ok()),
                    instances: first_text(object, "00201209").and_then(|n| n.parse().ok()),
                })
            })
            .collect())
    }

    /// WADO-RS: every instance of a series, each into its own file in `dir`, at most
    /// `max_files` files and `max_bytes` in all. Returns the files in the PACS's order.
    pub async fn retrieve_series(
        &self,
        study: &str,
        series: &str,
        dir: &Path,
        (max_files, max_bytes): (usize, u64),
        progress: &Retrieval,
    ) -> Result<Vec<std::path::PathBuf>, PacsError> {
        let (study, series) = (uid_path(study)?, uid_path(series)?);
        let request = self.get(&format!("/studies/{study}/series/{series}/instances"));
        let instances: Vec<String> =
            self.json(request).await?.iter().filter_map(|o| first_text(o, "00080018")).collect();
        // UIDs the PACS sent become path segments: each must be one.
        for instance in &instances {
            uid_path(instance)?;
        }
        if instances.len() > max_files {
            return Err(PacsError::Refused(format!(
                "a series of {} instances, more than {max_files}",
                instances.len()
            )));
        }
        progress.instances.store(instances.len() as u64, std::sync::atomic::Ordering::Relaxed);
        // A few instances in flight at once: each request waits on the PACS's disk and
        // decoding, so one at a time leaves both idle.
        let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let fetches = instances.into_iter().enumerate().map(|(number, instance)| {
            let path = format!("/studies/{study}/series/{series}/instances/{instance}");
            let fetch = self.retrieve_instance(path, dir.join(format!("{number}.dcm")), read.clone(), max_bytes);
            async move {
                let file = fetch.await?;
                progress.retrieved.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok::<_, PacsError>(file)
            }
        });
        futures::stream::iter(fetches).buffered(RETRIEVALS_AT_ONCE).try_collect().await
    }

    /// WADO-RS: one instance into `file`, counted in `read`, all of a series within `max_bytes`.
    async fn retrieve_instance(
        &self,
        path: String,
        file: std::path::PathBuf,
        read: std::sync::Arc<std::sync::atomic::AtomicU64>,
        max_bytes: u64,
    ) -> Result<std::path::PathBuf, PacsError> {
        use std::sync::atomic::Ordering;
        let response = self
            .get(&path)
            .header(reqwest::header::ACCEPT, "multipart/related; type=\"application/dicom\"")
            .send()
            .await
            .map_err(unreachable)?;
        let response = checked(response)?;
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = read_bounded(response, max_bytes.saturating_sub(read.load(Ordering::Relaxed))).await?;
        if read.fetch_add(body.len() as u64, Ordering::Relaxed) + body.len() as u64 > max_bytes {
            return Err(PacsError::Refused(format!("more than {max_bytes} bytes")));
        }
        tokio::fs::write(&file, single_part(&content_type, &body)?)
            .await
            .map_err(|e| PacsError::Unreachable(format!("cannot write scratch: {e}")))?;
        Ok(file)
    }

    /// STOW-RS: stores one DICOM Part 10 object in the PACS. Storing an instance the PACS
    /// already holds (the same SOP Instance UID) is a success, which makes a retried send safe.
    pub async fn store(&self, object: Vec<u8>) -> Result<(), PacsError> {
        let boundary = format!("seglab-{}", uuid::Uuid::new_v4().simple());
        let mut body = format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").into_bytes();
        body.extend_from_slice(&object);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let request = self
            .request(reqwest::Method::POST, "/studies")
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
            )
            .header(reqwest::header::ACCEPT, "application/dicom+json")
            .body(body);
        let response = checked(request.send().await.map_err(unreachable)?)?;
        let answer = read_bounded(response, MAX_JSON_BYTES as u64).await?;
        // A failed SOP sequence (0008,1198) lists what the PACS refused, with a reason (0008,1197).
        let answer: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        if let Some(failed) = answer.get("00081198").and_then(|a| a.get("Value")).and_then(Value::as_array) {
            let reasons: Vec<String> = failed.iter().filter_map(|item| first_text(item, "00081197")).collect();
            return Err(PacsError::Refused(format!(
                "that it did not store the object (failure reason {})",
                reasons.join(", ")
            )));
        }
        Ok(())
    }

    async fn json(&self, request: reqwest::RequestBuilder) -> Result<Vec<Value>, PacsError> {
        let response =
            request.header(reqwest::header::ACCEPT, "application/dicom+json").send().await.map_err(unreachable)?;
        // No match: an empty body with 204, which some servers send.
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(Vec::new());
        }
        let body = read_bounded(checked(response)?, MAX_JSON_BYTES as u64).await?;
        serde_json::from_slice(&body)
            .map_err(|e| PacsError::Refused(format!("a search with what is not DICOM JSON ({e})")))
    }
}

/// A UID as a path segment: digits and dots only, so it cannot change the path.
/// `uid` as a path segment: a DICOM UID (digits and dots, at most 64 characters), else refused.
pub(crate) fn uid_path(uid: &str) -> Result<&str, PacsError> {
    let valid = (1..=64).contains(&uid.len()) && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    valid.then_some(uid).ok_or_else(|| {
        PacsError::Refused(format!("a UID that is not one ({:?})", uid.chars().take(70).collect::<String>()))
    })
}

fn unreachable(error: reqwest::Error) -> PacsError {
    PacsError::Unreachable(error.without_url().to_string())
}

fn checked(response: reqwest::Response) -> Result<reqwest::Response, PacsError> {
    match response.status() {
        status if status.is_success() => Ok(response),
        status if status.is_server_error() => Err(PacsError::Unreachable(format!("status {status}"))),
        status => Err(PacsError::Refused(format!("status {status}"))),
    }
}

/// The body, refused past `max_bytes` without reading further.
async fn read_bounded(mut response: reqwest::Response, max_bytes: u64) -> Result<Vec<u8>, PacsError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if (body.len() + chunk.len()) as u64 > max_bytes {
            return Err(PacsError::Refused(format!("more than {max_bytes} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The one part of a `multipart/related` body (PS3.18 8.7.3), or the body itself when the PACS
/// answered `application/dicom`.
fn single_part<'a>(content_type: &str, body: &'a [u8]) -> Result<&'a [u8], PacsError> {
    if !content_type.to_ascii_lowercase().starts_with("multipart/") {
        return Ok(body);
    }
    let boundary = content_type
        .split(';')
        .filter_map(|param| param.trim().split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value.trim().trim_matches('"').to_string())
        .ok_or_else(|| PacsError::Refused("a multipart answer without a boundary".into()))?;
    let delimiter = format!("--{boundary}").into_bytes();
    let find =
        |from: usize, needle: &[u8]| body[from..].windows(needle.len()).position(|w| w == needle).map(|at| from + at);
    let broken = || PacsError::Refused("a multipart answer that is cut short".into());
    let first = find(0, &delimiter).ok_or_else(broken)?;
    let headers_end = find(first, b"\r\n\r\n").ok_or_else(broken)? + 4;
    let mut closing = delimiter.clone();
    closing.splice(0..0, *b"\r\n");
    let end = find(headers_end, &closing).ok_or_else(broken)?;
    Ok(&body[headers_end..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_part_is_cut_from_a_multipart_answer() {
        let body = b"--b1\r\nContent-Type: application/dicom\r\n\r\nDICM\r\n--b1\r\nxx\r\n--b1--\r\n";
        assert_eq!(single_part("multipart/related; type=\"application/dicom\"; boundary=b1", body).unwrap(), b"DICM");
        assert_eq!(single_part("application/dicom", b"DICM").unwrap(), b"DICM");
        assert!(single_part("multipart/related; boundary=b1", b"--b1\r\nContent-Type: x\r\n\r\nDI").is_err());
    }

    #[test]
    fn only_uids_become_path_segments() {
        assert!(uid_path("1.2.840.10008.5.1.4.1.1.2").is_ok());
        assert!(uid_path("../../instances").is_err());
        assert!(uid_path("").is_err());
    }

    #[test]
    fn dicom_json_attributes_are_read_as_text() {
        let study: Value = serde_json::json!({
            "0020000D": {"vr": "UI", "Value": ["1.2.3"]},
            "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
            "00080061": {"vr": "CS", "Value": ["CT", "SEG"]},
            "00201209": {"vr": "IS", "Value": [24]}
        });
        let read = StudyMatch::read(&study).unwrap();
        assert_eq!((read.study_instance_uid.as_str(), read.patient_name.as_deref()), ("1.2.3", Some("Doe^Jane")));
        assert_eq!(read.modalities, ["CT", "SEG"]);
        assert_eq!(first_text(&study, "00201209").as_deref(), Some("24"));
    }
}
