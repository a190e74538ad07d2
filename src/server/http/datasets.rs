//! REST routes of dataset snapshots: making one, listing them, and a snapshot's manifest.
//! Thin: they parse and call `services::datasets`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, Caller, Coordinator, DatasetPath, Holding};
use crate::api::{DatasetSummary, Manifest, NewDataset};
use crate::server::error::AppError;
use crate::server::services::datasets;
use crate::server::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_datasets, create_dataset)).routes(routes!(manifest))
}

/// Snapshots the approved mask versions of the cases a filter selects, with their split (ML
/// engineers, admins).
#[utoipa::path(post, path = "/datasets", tag = "datasets", request_body = NewDataset,
    responses((status = 201, description = "The snapshot", body = DatasetSummary)))]
async fn create_dataset(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    ApiJson(request): ApiJson<NewDataset>,
) -> Result<(StatusCode, Json<DatasetSummary>), AppError> {
    Ok((StatusCode::CREATED, Json(datasets::create(&state, &user, &request).await?)))
}

/// Every snapshot.
#[utoipa::path(get, path = "/datasets", tag = "datasets",
    responses((status = 200, description = "The snapshots", body = [DatasetSummary])))]
async fn list_datasets(
    State(state): State<AppState>,
    Caller(_user): Caller,
) -> Result<Json<Vec<DatasetSummary>>, AppError> {
    Ok(Json(datasets::list(&state).await?))
}

/// A snapshot's manifest: each case's image and mask version with presigned links (ML
/// engineers, admins: its links open every case, restricted ones too).
#[utoipa::path(get, path = "/datasets/{id}/manifest", tag = "datasets", params(DatasetPath),
    responses((status = 200, description = "The manifest", body = Manifest)))]
async fn manifest(
    State(state): State<AppState>,
    _caller: Coordinator,
    Path(DatasetPath { id }): Path<DatasetPath>,
) -> Result<Json<Manifest>, AppError> {
    Ok(Json(datasets::manifest(&state, &id).await?))
}
