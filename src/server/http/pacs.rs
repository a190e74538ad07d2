//! PACS routes: search studies, import a series (in the background) and follow the import,
//! send a case's approved segmentation back.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::extract::{ApiJson, ApiQuery, Caller, Coordinator, Holding};
use crate::api::{PacsImport, PacsImportJob, PacsQuery, PacsQueued, PacsSent, PacsStudy};
use crate::server::error::AppError;
use crate::server::services::access::{self, SendToPacs};
use crate::server::services::{pacs, pacs_imports};
use crate::server::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pacs/studies", get(search))
        .route("/pacs/import", post(import))
        .route("/pacs/imports", get(imports))
        .route("/pacs/imports/{id}", get(import_job))
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

/// `POST /pacs/import` (coordinators): body `{study_instance_uid, series_instance_uid, name?, labels?}`;
/// answers 202 with the background job importing it.
async fn import(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    ApiJson(request): ApiJson<PacsImport>,
) -> Result<(StatusCode, Json<PacsImportJob>), AppError> {
    Ok((StatusCode::ACCEPTED, Json(pacs_imports::enqueue(&state, &user, &request).await?)))
}

/// `GET /pacs/imports` (coordinators): the latest imports, newest first.
async fn imports(State(state): State<AppState>, _: Coordinator) -> Result<Json<Vec<PacsImportJob>>, AppError> {
    Ok(Json(pacs_imports::list(&state).await?))
}

/// `GET /pacs/imports/{id}` (coordinators): one import and how far it got.
async fn import_job(
    State(state): State<AppState>,
    _: Coordinator,
    Path(id): Path<String>,
) -> Result<Json<PacsImportJob>, AppError> {
    Ok(Json(pacs_imports::get(&state, &id).await?))
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
