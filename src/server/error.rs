//! The server's errors. [`AppError`] is every failure a request can meet; it becomes the
//! shared wire shape [`ApiError`], whose code gives the HTTP status, for REST answers and
//! server functions alike. [`CliError`] is why the process or a one-shot command could not
//! do its work: printed on stderr, never an HTTP answer.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::{ApiError, ErrorBody, ErrorCode, MaskRef};

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
    /// A single sign-on whose answer cannot be trusted: nobody is logged in.
    #[error("single sign-on refused: {0}")]
    SignOnRefused(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The mask version a save was based on is no longer the case's current one.
    #[error("the mask was changed by someone else: your edits are based on {base}, the current version is {current}; reload and re-apply")]
    StaleBase { base: String, current: MaskRef },
    /// Another request with the same idempotency key is still running.
    #[error("a request with this Idempotency-Key is still being processed; retry shortly")]
    KeyInUse,
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Too many attempts; the same request may succeed after `retry_after_secs`.
    #[error("too many failed logins; try again in {retry_after_secs} s")]
    TooManyLogins { retry_after_secs: u64 },
    /// A dependency (database, object storage) cannot be reached; retrying later may work.
    #[error("{service} is unavailable, try again shortly ({detail})")]
    Unavailable { service: &'static str, detail: String },
    /// An inference server refused a request or answered what cannot be used. `summary` is
    /// ours; `detail` holds the server's own words, which may carry anything (host names,
    /// stack traces, data echoed back): only ML engineers and admins read it, with the job.
    #[error("{summary}: {detail}")]
    InferenceServer { summary: String, detail: String },
    /// A bug or an unexpected state; details go to the log, not to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::Unprocessable(_) | Self::InferenceServer { .. } => ErrorCode::Unprocessable,
            Self::Unauthorized => ErrorCode::Unauthorized,
            Self::BadCredentials => ErrorCode::BadCredentials,
            Self::SignOnRefused(_) => ErrorCode::Unauthorized,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::StaleBase { .. } => ErrorCode::StaleBase,
            Self::KeyInUse => ErrorCode::IdempotencyKeyInUse,
            Self::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            Self::TooManyLogins { .. } => ErrorCode::TooManyRequests,
            Self::Unavailable { .. } => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code().status()).expect("error codes map to valid statuses")
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        Self::Internal(err.to_string())
    }

    /// What the client is told; internal details go to the log only.
    fn to_api_error(&self) -> ApiError {
        let message = match self {
            Self::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "internal error; the details are in the server log".to_string()
            }
            Self::InferenceServer { summary, .. } => summary.clone(),
            other => {
                if other.status().is_server_error() {
                    tracing::warn!(error = %other, "request failed");
                }
                other.to_string()
            }
        };
        let current_mask_ref = match self {
            Self::StaleBase { current, .. } => Some(current.clone()),
            _ => None,
        };
        ApiError { code: self.code(), message, current_mask_ref }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let error = self.to_api_error();
        let mut response = (self.status(), Json(ErrorBody { error })).into_response();
        if matches!(self, Self::Unauthorized) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Self::TooManyLogins { retry_after_secs } = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        } else if self.code().is_transient() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        response
    }
}

/// A server function's error: the same shape as REST's, and the same status, set on the
/// response of the server function (or page) being answered.
impl From<AppError> for ApiError {
    fn from(err: AppError) -> ApiError {
        if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(err.status());
        }
        err.to_api_error()
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        if !matches!(err, sqlx::Error::RowNotFound) {
            metrics::counter!("seglab_database_errors_total").increment(1);
        }
        match err {
            sqlx::Error::RowNotFound => Self::NotFound("record".into()),
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => Self::Unavailable { service: "database", detail: err.to_string() },
            other => Self::Internal(format!("database: {other}")),
        }
    }
}

impl From<crate::nifti_io::VolumeError> for AppError {
    fn from(err: crate::nifti_io::VolumeError) -> Self {
        Self::Unprocessable(err.0)
    }
}

/// Why `seglab` (the server at start-up, or a one-shot command) stopped.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A setting is missing or malformed.
    #[error("configuration: {0}")]
    Config(String),
    /// The database, object storage or the listening socket could not be set up.
    #[error("{0}")]
    Startup(String),
    /// A file named on the command line cannot be read.
    #[error("cannot read {path}: {source}")]
    Read { path: std::path::PathBuf, source: std::io::Error },
    /// The operation the command asked for was refused or failed.
    #[error(transparent)]
    Operation(#[from] AppError),
    /// `audit verify` found a row that does not fit the chain.
    #[error("audit log broken at row {seq} of {rows}: {reason}")]
    AuditBroken { seq: i64, rows: i64, reason: String },
    /// `infer` could not run the model; the message is the orchestrator's to relay.
    #[error("{0}")]
    Inference(String),
    /// `backup verify` found the backup damaged or incomplete.
    #[error("the backup is not intact:\n{0}")]
    BackupBroken(String),
    /// `objects verify` found objects missing or not as recorded.
    #[error("of {checked} recorded objects, these are not as recorded:\n{problems}")]
    ObjectsBroken { checked: usize, problems: String },
}

impl CliError {
    pub fn startup(what: &str, err: impl std::fmt::Display) -> CliError {
        CliError::Startup(format!("{what}: {err}"))
    }
}
