//! Control characters in the request line and in server function arguments are refused with
//! 400 before any handler runs (see `server::text`): the percent-decoded path (ids such as
//! `/cases/{id}`), every query parameter, and the URL-encoded arguments server functions
//! receive in their body. JSON bodies and form fields are checked by their extractors.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::ApiError;
use crate::server::error::AppError;
use crate::server::text::check_text;

/// Where `#[server]` puts server functions (its default prefix, which none of ours changes).
const SERVER_FN_PREFIX: &str = "/api/";

pub(crate) async fn refuse_control_characters(request: Request, next: Next) -> Response {
    let server_fn = request.uri().path().starts_with(SERVER_FN_PREFIX);
    match checked(request, server_fn).await {
        Ok(request) => next.run(request).await,
        // A server function's caller reads its errors as the bare `{code, message}`.
        Err(err) if server_fn => (err.status(), Json(ApiError::from(err))).into_response(),
        Err(err) => err.into_response(),
    }
}

/// The request, unchanged (its body read and put back for a server function), or why not.
async fn checked(request: Request, server_fn: bool) -> Result<Request, AppError> {
    let uri = request.uri();
    check_text("the path", &percent_encoding::percent_decode_str(uri.path()).decode_utf8_lossy())?;
    check_form("query parameter", uri.query().unwrap_or_default().as_bytes())?;
    if !server_fn {
        return Ok(request);
    }
    // Every server function here takes URL-encoded arguments (`#[server]`'s default), which are
    // decoded whatever content type the request names: the body is read as such. It is small,
    // and bounded by the body limit like the server function's own read.
    let (parts, body) = request.into_parts();
    let bytes =
        Bytes::from_request(Request::from_parts(parts.clone(), body), &()).await.map_err(|e| match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                AppError::PayloadTooLarge(format!("request body too large: {}", e.body_text()))
            }
            _ => AppError::BadRequest(e.body_text()),
        })?;
    check_form("server function argument", &bytes)?;
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Checks the names and values of URL-encoded `form` (a query string or a form body).
fn check_form(what: &str, form: &[u8]) -> Result<(), AppError> {
    for (name, value) in form_urlencoded::parse(form) {
        check_text(&format!("the name of a {what}"), &name)?;
        check_text(&format!("{what} `{name}`"), &value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_checked_once_decoded() {
        assert!(check_form("query parameter", b"q=a+b%09c&sort=name&empty=").is_ok());
        let refusal = |form: &[u8]| match check_form("query parameter", form) {
            Err(AppError::BadRequest(message)) => message,
            other => panic!("expected a 400, got {other:?}"),
        };
        assert!(refusal(b"sort=name&q=mni%00").starts_with("query parameter `q` holds the control character U+0000"));
        assert!(refusal(b"q=mni\x01").contains("U+0001"));
        assert!(refusal(b"status%00=new").starts_with("the name of a query parameter holds"));
    }
}
