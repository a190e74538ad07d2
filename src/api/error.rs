//! The one error shape on the wire: REST answers carry it as `{"error": {…}}`, server
//! functions as their error value, and the browser reads both into [`ApiError`]. The HTTP
//! status of every error comes from its [`ErrorCode`], here and nowhere else.

use serde::{Deserialize, Serialize};

/// What went wrong, in a form a program can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed (bad JSON, missing header, wrong encoding).
    BadRequest,
    /// The request is well-formed but its content is not acceptable.
    Unprocessable,
    /// No caller, or an unknown token or session.
    Unauthorized,
    BadCredentials,
    /// The caller lacks the role, or the request came from another site.
    Forbidden,
    NotFound,
    Conflict,
    /// A save was based on a mask version that is no longer the case's current one.
    StaleBase,
    /// Another request with the same idempotency key is still running.
    IdempotencyKeyInUse,
    PayloadTooLarge,
    /// Too many attempts of this kind; wait as `Retry-After` says.
    TooManyRequests,
    /// A dependency (database, object storage, the server itself) cannot be reached.
    Unavailable,
    Internal,
    /// A code this build does not know (a newer server).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The HTTP status of an answer carrying this error.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized | ErrorCode::BadCredentials => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict | ErrorCode::StaleBase | ErrorCode::IdempotencyKeyInUse => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Unprocessable => 422,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal | ErrorCode::Unknown => 500,
        }
    }

    /// Whether the same request may succeed later (the answer says `Retry-After`).
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorCode::Unavailable | ErrorCode::IdempotencyKeyInUse)
    }
}

/// An error as clients see it: a code, a message a person can act on, and details that
/// belong to some codes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// With `stale_base`: the mask version that is current now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_mask_ref: Option<super::ids::MaskRef>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), current_mask_ref: None }
    }
}

/// The body of a REST error answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ApiError,
}

/// Server functions return `Result<T, ApiError>`; failures of the transport itself (no
/// answer, an undecodable one) become an `ApiError` too.
impl leptos::server_fn::error::FromServerFnError for ApiError {
    type Encoder = leptos::server_fn::codec::JsonEncoding;

    fn from_server_fn_error(value: leptos::server_fn::error::ServerFnErrorErr) -> Self {
        use leptos::server_fn::error::ServerFnErrorErr as E;
        let code = match &value {
            E::Request(_) | E::Response(_) => ErrorCode::Unavailable,
            E::Args(_) | E::MissingArg(_) | E::Deserialization(_) => ErrorCode::BadRequest,
            _ => ErrorCode::Internal,
        };
        ApiError::new(code, value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_shape_keeps_its_field_names() {
        let current = crate::api::MaskRef::fresh(&crate::api::CaseId::random());
        let stale =
            ApiError { current_mask_ref: Some(current.clone()), ..ApiError::new(ErrorCode::StaleBase, "stale") };
        let json = serde_json::to_value(ErrorBody { error: stale.clone() }).unwrap();
        assert_eq!(json["error"]["code"], "stale_base");
        assert_eq!(json["error"]["current_mask_ref"], current.as_str());
        assert_eq!(serde_json::from_value::<ErrorBody>(json).unwrap().error, stale);
        let plain = serde_json::to_value(ApiError::new(ErrorCode::IdempotencyKeyInUse, "wait")).unwrap();
        assert_eq!(plain, serde_json::json!({ "code": "idempotency_key_in_use", "message": "wait" }));
        let newer: ApiError = serde_json::from_str(r#"{"code": "teapot", "message": "?"}"#).unwrap();
        assert_eq!((newer.code, newer.code.status()), (ErrorCode::Unknown, 500));
    }
}
