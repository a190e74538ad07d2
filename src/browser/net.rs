//! HTTP from the browser: volumes straight from object storage, and the API:
//! the case's artifacts, label saves (retried under one idempotency key) and forms, with error
//! answers read into the shared [`ApiError`].

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestInit, Response};

use crate::api::{ApiError, CaseArtifacts, CaseId, ErrorBody, ErrorCode, LabelSaved, MaskRef, SaveLabelRequest};

pub(crate) fn describe(err: JsValue) -> String {
    err.as_string()
        .or_else(|| Reflect::get(&err, &"message".into()).ok().and_then(|m| m.as_string()))
        .unwrap_or_else(|| format!("{err:?}"))
}

async fn fetch(request: &Request) -> Result<Response, String> {
    let window = web_sys::window().ok_or("no window")?;
    let response = JsFuture::from(window.fetch_with_request(request)).await.map_err(describe)?;
    response.dyn_into().map_err(describe)
}

/// Starts a GET of `url` at once (not when first polled) and gives its whole body.
pub fn get_now(url: &str) -> impl std::future::Future<Output = Result<Vec<u8>, String>> {
    let started = web_sys::window().map(|window| JsFuture::from(window.fetch_with_str(url)));
    async move {
        let response: Response = started.ok_or("no window")?.await.map_err(describe)?.dyn_into().map_err(describe)?;
        if !response.ok() {
            return Err(format!("object storage answered {} {}", response.status(), response.status_text()));
        }
        let buffer = JsFuture::from(response.array_buffer().map_err(describe)?).await.map_err(describe)?;
        Ok(Uint8Array::new(&buffer).to_vec())
    }
}

/// Why a request to the API did not succeed.
enum Failure {
    /// No answer arrived: the network failed, or the request could not be made.
    NoAnswer(String),
    /// The API, or something in front of it, answered with a status other than 2xx.
    Refused { status: u16, error: ApiError },
}

impl Failure {
    /// What a person should read.
    fn into_message(self) -> String {
        match self {
            Failure::NoAnswer(message) => message,
            Failure::Refused { error, .. } => error.message,
        }
    }
}

/// The error a failed answer carries; a body not in the API's error shape (from a proxy, say)
/// becomes the message of an error of unknown code.
fn error_in(body: String) -> ApiError {
    match serde_json::from_str::<ErrorBody>(&body) {
        Ok(ErrorBody { error }) => error,
        Err(_) => ApiError::new(ErrorCode::Unknown, body),
    }
}

/// Sends `request` to the API; the body of a 2xx answer.
async fn call(request: &Request) -> Result<String, Failure> {
    let no_answer = |err: JsValue| Failure::NoAnswer(describe(err));
    let response = fetch(request).await.map_err(Failure::NoAnswer)?;
    let text = response.text().map_err(no_answer)?;
    let body = JsFuture::from(text).await.map_err(no_answer)?.as_string().unwrap_or_default();
    if response.ok() {
        Ok(body)
    } else {
        Err(Failure::Refused { status: response.status(), error: error_in(body) })
    }
}

/// POSTs `body` (with `headers`) to the API.
async fn post(url: &str, headers: Option<&Headers>, body: &JsValue) -> Result<String, Failure> {
    let init = RequestInit::new();
    init.set_method("POST");
    if let Some(headers) = headers {
        init.set_headers(headers);
    }
    init.set_body(body);
    let request = Request::new_with_str_and_init(url, &init).map_err(|err| Failure::NoAnswer(describe(err)))?;
    call(&request).await
}

/// `GET /cases/{id}/artifacts?history=true`: the case with fresh URLs and its saved mask
/// versions. The session cookie goes along (same origin).
pub async fn case_artifacts(case_id: &CaseId) -> Result<CaseArtifacts, String> {
    let url = format!("/cases/{case_id}/artifacts?history=true");
    let request = Request::new_with_str(&url).map_err(describe)?;
    let body = call(&request).await.map_err(Failure::into_message)?;
    serde_json::from_str(&body).map_err(|err| format!("unexpected answer: {err}"))
}

/// How a save attempt ended.
pub enum SaveAnswer {
    Saved(LabelSaved),
    /// Someone saved another version first; it is now `current`.
    Stale {
        current: MaskRef,
    },
    /// Worth retrying with the same key: the network failed or the server was unavailable.
    Retry(String),
    /// Retrying cannot help (bad request, logged out, …); the error is the server's.
    Refused(ApiError),
}

/// One `POST /labels` attempt.
pub async fn post_label(request: &SaveLabelRequest, idempotency_key: &str) -> SaveAnswer {
    let answer = async {
        let no_answer = |err: JsValue| Failure::NoAnswer(describe(err));
        let headers = Headers::new().map_err(no_answer)?;
        headers.set("Content-Type", "application/json").map_err(no_answer)?;
        headers.set("Idempotency-Key", idempotency_key).map_err(no_answer)?;
        let body = serde_json::to_string(request).map_err(|err| Failure::NoAnswer(err.to_string()))?;
        post("/labels", Some(&headers), &JsValue::from_str(&body)).await
    };
    match answer.await {
        Ok(body) => match serde_json::from_str(&body) {
            Ok(saved) => SaveAnswer::Saved(saved),
            Err(err) => SaveAnswer::Refused(ApiError::new(ErrorCode::Unknown, format!("unexpected answer: {err}"))),
        },
        Err(Failure::NoAnswer(message)) => SaveAnswer::Retry(message),
        Err(Failure::Refused {
            error: ApiError { code: ErrorCode::StaleBase, current_mask_ref: Some(current), .. },
            ..
        }) => SaveAnswer::Stale { current },
        // The same key is still being worked on, or the server is overloaded or down: wait and retry.
        Err(Failure::Refused { status, error }) if error.code.is_transient() || status == 429 || status >= 500 => {
            SaveAnswer::Retry(error.message)
        }
        Err(Failure::Refused { error, .. }) => SaveAnswer::Refused(error),
    }
}

/// Posts a form (multipart) and returns the JSON answer of a 2xx, else the error message.
pub async fn post_form(url: &str, form: &web_sys::HtmlFormElement) -> Result<serde_json::Value, String> {
    let body: JsValue = web_sys::FormData::new_with_form(form).map_err(describe)?.into();
    let answer = post(url, None, &body).await.map_err(Failure::into_message)?;
    Ok(serde_json::from_str(&answer).unwrap_or_default())
}

/// Waits `ms` milliseconds.
pub async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(promise).await;
}
