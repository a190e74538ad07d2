//! PACS routes: search studies, import a series (in the background) and follow the import,
//! send a case's approved segmentation back.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiQuery, Caller, CasePath, Coordinator, Holding, PacsImportPath};
use crate::api::{PacsImport, PacsImportJob, PacsQuery, PacsQueued, PacsSent, PacsStudy};
use crate::server::error::AppError;
use crate::server::services::access::{self, SendToPacs};
use crate::server::services::{pacs, pacs_imports};
use crate::server::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search_pacs))
        .routes(routes!(import_from_pacs))
        .routes(routes!(list_pacs_imports))
        .routes(routes!(pacs_import_job))
        .routes(routes!(outbox))
        .routes(routes!(send_to_pacs))
}

/// Searches the PACS's studies, with their series (ML engineers, admins). 503 without a
/// configured PACS or when it does not answer.
#[utoipa::path(get, path = "/pacs/studies", tag = "pacs", params(PacsQuery),
    responses((status = 200, description = "The studies found", body = [PacsStudy])))]
async fn search_pacs(
    State(state): State<AppState>,
    _: Coordinator,
    ApiQuery(query): ApiQuery<PacsQuery>,
) -> Result<Json<Vec<PacsStudy>>, AppError> {
    Ok(Json(pacs::search(&state, &query).await?))
}

/// Segmentations queued for the PACS, newest first (ML engineers, admins).
#[utoipa::path(get, path = "/pacs/outbox", tag = "pacs",
    responses((status = 200, description = "The queue", body = [PacsQueued])))]
async fn outbox(State(state): State<AppState>, _: Coordinator) -> Result<Json<Vec<PacsQueued>>, AppError> {
    Ok(Json(pacs::outbox(&state).await?))
}

/// Imports a series from the PACS as a case, in the background (ML engineers, admins).
#[utoipa::path(post, path = "/pacs/import", tag = "pacs", request_body = PacsImport,
    responses((status = 202, description = "The import, queued", body = PacsImportJob)))]
async fn import_from_pacs(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    ApiJson(request): ApiJson<PacsImport>,
) -> Result<(StatusCode, Json<PacsImportJob>), AppError> {
    Ok((StatusCode::ACCEPTED, Json(pacs_imports::enqueue(&state, &user, &request).await?)))
}

/// The latest imports from the PACS, newest first (ML engineers, admins).
#[utoipa::path(get, path = "/pacs/imports", tag = "pacs",
    responses((status = 200, description = "The imports", body = [PacsImportJob])))]
async fn list_pacs_imports(
    State(state): State<AppState>,
    _: Coordinator,
) -> Result<Json<Vec<PacsImportJob>>, AppError> {
    Ok(Json(pacs_imports::list(&state).await?))
}

/// One import and how far it got (ML engineers, admins).
#[utoipa::path(get, path = "/pacs/imports/{id}", tag = "pacs", params(PacsImportPath),
    responses((status = 200, description = "The import", body = PacsImportJob)))]
async fn pacs_import_job(
    State(state): State<AppState>,
    _: Coordinator,
    Path(PacsImportPath { id }): Path<PacsImportPath>,
) -> Result<Json<PacsImportJob>, AppError> {
    Ok(Json(pacs_imports::get(&state, &id).await?))
}

/// Stores the case's approved mask version in the PACS as a DICOM Segmentation (ML engineers,
/// admins); a PACS that is down gets it when back.
#[utoipa::path(post, path = "/cases/{id}/pacs", tag = "pacs", params(CasePath),
    responses((status = 200, description = "Sent, or queued for the PACS", body = PacsSent)))]
async fn send_to_pacs(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(CasePath { id: case_id }): Path<CasePath>,
) -> Result<Json<PacsSent>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, SendToPacs).await?;
    Ok(Json(pacs::send(&state, &access).await?))
}
