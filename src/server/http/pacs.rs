//! PACS routes: search studies, import a series, send a case's approved segmentation back.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::extract::{ApiJson, ApiQuery, Caller, Coordinator, Holding};
use crate::api::{CaseSummary, PacsImport, PacsQuery, PacsQueued, PacsSent, PacsStudy};
use crate::server::error::AppError;
use crate::server::services::access::{self, SendToPacs};
use crate::server::services::pacs;
use crate::server::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pacs/studies", get(search))
        .route("/pacs/import", post(import))
        .route("/pacs/outbox", get(outbox))
        .route("/cases/{id}/pacs", post(send))
}

/// `GET /pacs/studies?patient=&accession=&modality=&date=` (coordinators).
async fn search(
    State(state): State<AppState>,
    _: Coordinator,
    ApiQuery(query): ApiQuery<PacsQuery>,
) -> Result<Json<Vec<PacsStudy>>, AppError> {
    Ok(Json(pacs::search(&state, &query).await?))
}

/// `GET /pacs/outbox` (coordinators): segmentations queued for the PACS, newest first.
async fn outbox(State(state): State<AppState>, _: Coordinator) -> Result<Json<Vec<PacsQueued>>, AppError> {
    Ok(Json(pacs::outbox(&state).await?))
}

/// `POST /pacs/import` (coordinators): body `{study_instance_uid, series_instance_uid, name?, labels?}`.
async fn import(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    ApiJson(request): ApiJson<PacsImport>,
) -> Result<(StatusCode, Json<Vec<CaseSummary>>), AppError> {
    Ok((StatusCode::CREATED, Json(pacs::import(&state, &user.id, &request).await?)))
}

/// `POST /cases/{id}/pacs` (coordinators): stores the approved mask version in the PACS.
async fn send(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(case_id): Path<String>,
) -> Result<Json<PacsSent>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, SendToPacs).await?;
    Ok(Json(pacs::send(&state, &access).await?))
}
