//! `POST /labels`: the label-save arrow of the design, once per `Idempotency-Key`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use super::extract::{ApiJson, CaseWorkers, Holding};
use crate::api::SaveLabelRequest;
use crate::server::error::AppError;
use crate::server::services::access::{self, Save};
use crate::server::services::labels::{self, SaveOutcome};
use crate::server::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/labels", post(save_label))
}

/// `POST /labels`: the edits of one save, once per `Idempotency-Key`.
async fn save_label(
    State(state): State<AppState>,
    Holding(user, _): Holding<CaseWorkers>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<SaveLabelRequest>,
) -> Result<Response, AppError> {
    // A value that is not text reads as empty, which the key check refuses.
    let key = headers.get("idempotency-key").map(|v| v.to_str().unwrap_or_default());
    let access = access::authorize(&state, &user, &access::case_named(&request.case_id)?, Save).await?;
    saved(labels::save_label(&state, access, key, &request).await?)
}

/// The answer to a save: its status and JSON body, marked when it replays an earlier one.
pub(super) fn saved(outcome: SaveOutcome) -> Result<Response, AppError> {
    let status = StatusCode::from_u16(outcome.status).map_err(AppError::internal)?;
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], outcome.body).into_response();
    if outcome.replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}
