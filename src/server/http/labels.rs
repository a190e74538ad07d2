//! `POST /labels`: the label-save arrow of the design, once per `Idempotency-Key`.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, CaseWorkers, Holding};
use crate::api::{LabelSaved, SaveLabelRequest};
use crate::server::error::AppError;
use crate::server::services::access::{self, Save};
use crate::server::services::idempotency::IdempotencyKey;
use crate::server::services::labels::{self, SaveOutcome};
use crate::server::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(save_label))
}

/// Saves the edits of one save as the case's next mask version, once per `Idempotency-Key`.
///
/// A retry with the same key and body gets the first answer again, marked
/// `Idempotent-Replayed: true`; the same key with another body is refused.
#[utoipa::path(
    post,
    path = "/labels",
    tag = "labels",
    params(("Idempotency-Key" = String, Header, description = "Unique per save (a UUID), sent again unchanged with each retry")),
    request_body = SaveLabelRequest,
    responses(
        (status = 201, description = "Saved as a new mask version", body = LabelSaved,
            headers(("idempotent-replayed" = String, description = "`true` on the answer to a retry"))),
        (status = 409, description = "`stale_base`: the base is no longer the current version (its \
            ref is in `error.current_mask_ref`); `idempotency_key_in_use`: the first request with this \
            key is still running", body = crate::api::ErrorBody),
    )
)]
async fn save_label(
    State(state): State<AppState>,
    Holding(user, _): Holding<CaseWorkers>,
    key: IdempotencyKey,
    ApiJson(request): ApiJson<SaveLabelRequest>,
) -> Result<Response, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&request.case_id)?, Save).await?;
    saved(labels::save_label(&state, access, &key, &request).await?)
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
