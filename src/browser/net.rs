//! HTTP from the browser: volumes straight from object storage (with progress) and label
//! saves with retries under one idempotency key.

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, ReadableStreamDefaultReader, Request, RequestInit, Response};

use crate::types::{LabelSaved, SaveLabelRequest};

fn describe(err: JsValue) -> String {
    err.as_string()
        .or_else(|| Reflect::get(&err, &"message".into()).ok().and_then(|m| m.as_string()))
        .unwrap_or_else(|| format!("{err:?}"))
}

async fn fetch(request: &Request) -> Result<Response, String> {
    let window = web_sys::window().ok_or("no window")?;
    let response = JsFuture::from(window.fetch_with_request(request)).await.map_err(describe)?;
    response.dyn_into().map_err(describe)
}

/// Downloads `url`, reporting (received, expected) bytes as chunks arrive.
pub async fn download(url: &str, mut progress: impl FnMut(f64, f64)) -> Result<Vec<u8>, String> {
    let request = Request::new_with_str(url).map_err(describe)?;
    let response = fetch(&request).await?;
    if !response.ok() {
        return Err(format!("object storage answered {} {}", response.status(), response.status_text()));
    }
    let expected = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|length| length.parse::<f64>().ok())
        .unwrap_or(0.0);
    let body = response.body().ok_or("the download has no body")?;
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut bytes = Vec::with_capacity(expected as usize);
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(describe)?;
        if Reflect::get(&chunk, &"done".into()).map_err(describe)?.as_bool() == Some(true) {
            break;
        }
        let data: Uint8Array = Reflect::get(&chunk, &"value".into()).map_err(describe)?.dyn_into().map_err(describe)?;
        let start = bytes.len();
        bytes.resize(start + data.length() as usize, 0);
        data.copy_to(&mut bytes[start..]);
        progress(bytes.len() as f64, expected);
    }
    Ok(bytes)
}

/// How a save attempt ended.
pub enum SaveAnswer {
    Saved(LabelSaved),
    /// Someone saved another version first; it is now `current`.
    Stale { current: String },
    /// Worth retrying with the same key: the network failed or the server was unavailable.
    Retry(String),
    /// Retrying cannot help (bad request, logged out, …); the message is the server's.
    Refused { status: u16, message: String },
}

/// The API's answer to a request: status, JSON body, and the message a person should read
/// (the error's message, else the body as text).
struct Answer {
    status: u16,
    json: serde_json::Value,
    message: String,
}

/// POSTs `body` (with `headers`) to the API; `Err` only when no answer arrived.
async fn post(url: &str, headers: Option<&Headers>, body: &JsValue) -> Result<Answer, String> {
    let init = RequestInit::new();
    init.set_method("POST");
    if let Some(headers) = headers {
        init.set_headers(headers);
    }
    init.set_body(body);
    let request = Request::new_with_str_and_init(url, &init).map_err(describe)?;
    let response = fetch(&request).await?;
    let text = JsFuture::from(response.text().map_err(describe)?).await.map_err(describe)?.as_string().unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let message = json["error"]["message"].as_str().map_or(text, str::to_string);
    Ok(Answer { status: response.status(), json, message })
}

/// One `POST /labels` attempt.
pub async fn post_label(request: &SaveLabelRequest, idempotency_key: &str) -> SaveAnswer {
    let attempt = async {
        let headers = Headers::new().map_err(describe)?;
        headers.set("Content-Type", "application/json").map_err(describe)?;
        headers.set("Idempotency-Key", idempotency_key).map_err(describe)?;
        let body = serde_json::to_string(request).map_err(|e| e.to_string())?;
        post("/labels", Some(&headers), &JsValue::from_str(&body)).await
    };
    let Answer { status, json, message } = match attempt.await {
        Ok(answer) => answer,
        Err(network) => return SaveAnswer::Retry(network),
    };
    let error = &json["error"];
    match status {
        200 | 201 => match serde_json::from_value(json.clone()) {
            Ok(saved) => SaveAnswer::Saved(saved),
            Err(err) => SaveAnswer::Refused { status, message: format!("unexpected answer: {err}") },
        },
        409 if error["code"] == "stale_base" => {
            SaveAnswer::Stale { current: error["current_mask_ref"].as_str().unwrap_or_default().to_string() }
        }
        // 409 without stale_base: the same key is still being worked on; wait and retry.
        409 | 429 | 500..=599 => SaveAnswer::Retry(message),
        _ => SaveAnswer::Refused { status, message },
    }
}

/// Posts a form (multipart) and returns the JSON answer of a 2xx, else the error message.
pub async fn post_form(url: &str, form: &web_sys::HtmlFormElement) -> Result<serde_json::Value, String> {
    let body: JsValue = web_sys::FormData::new_with_form(form).map_err(describe)?.into();
    let answer = post(url, None, &body).await?;
    match answer.status {
        200..=299 => Ok(answer.json),
        _ => Err(answer.message),
    }
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
