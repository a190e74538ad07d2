//! The one error type of the server: every failure a request can meet, with its HTTP status
//! and a message a person can act on.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed (bad JSON, missing header, wrong encoding).
    #[error("{0}")]
    BadRequest(String),
    /// The request is well-formed but its content is not acceptable.
    #[error("{0}")]
    Unprocessable(String),
    #[error("authentication required: send `Authorization: Bearer <token>` or log in")]
    Unauthorized,
    #[error("wrong username or password")]
    BadCredentials,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The mask version a save was based on is no longer the case's current one.
    #[error("the mask was changed by someone else: your edits are based on {base}, the current version is {current}; reload and re-apply")]
    StaleBase { base: String, current: String },
    /// Another request with the same idempotency key is still running.
    #[error("a request with this Idempotency-Key is still being processed; retry shortly")]
    KeyInUse,
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A dependency (database, object storage) cannot be reached; retrying later may work.
    #[error("{service} is unavailable, try again shortly ({detail})")]
    Unavailable { service: &'static str, detail: String },
    /// A bug or an unexpected state; details go to the log, not to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized | Self::BadCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) | Self::StaleBase { .. } | Self::KeyInUse => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unprocessable(_) => "unprocessable",
            Self::Unauthorized => "unauthorized",
            Self::BadCredentials => "bad_credentials",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::StaleBase { .. } => "stale_base",
            Self::KeyInUse => "idempotency_key_in_use",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Unavailable { .. } => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        Self::Internal(err.to_string())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "internal error; the details are in the server log".to_string()
            }
            other => {
                if status.is_server_error() {
                    tracing::warn!(error = %other, "request failed");
                }
                other.to_string()
            }
        };
        let mut body = json!({ "error": { "code": self.code(), "message": message } });
        if let Self::StaleBase { current, .. } = &self {
            body["error"]["current_mask_ref"] = json!(current);
        }
        let mut response = (status, Json(body)).into_response();
        if matches!(self, Self::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE || matches!(self, Self::KeyInUse) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        response
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => Self::NotFound("record".into()),
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => {
                Self::Unavailable { service: "database", detail: err.to_string() }
            }
            other => Self::Internal(format!("database: {other}")),
        }
    }
}

impl From<crate::nifti_io::VolumeError> for AppError {
    fn from(err: crate::nifti_io::VolumeError) -> Self {
        Self::Unprocessable(err.0)
    }
}
