//! REST routes of dataset snapshots: making one, listing them, and a snapshot's manifest.
//! Thin: they parse and call `services::datasets`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use super::extract::{ApiJson, Caller, Coordinator, Holding};
use crate::api::{DatasetSummary, Manifest, NewDataset};
use crate::server::error::AppError;
use crate::server::services::datasets;
use crate::server::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/datasets", get(list).post(create)).route("/datasets/{id}/manifest", get(manifest))
}

/// `POST /datasets` (ml_engineer, admin).
async fn create(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    ApiJson(request): ApiJson<NewDataset>,
) -> Result<(StatusCode, Json<DatasetSummary>), AppError> {
    Ok((StatusCode::CREATED, Json(datasets::create(&state, &user, &request).await?)))
}

/// `GET /datasets`.
async fn list(State(state): State<AppState>, Caller(_user): Caller) -> Result<Json<Vec<DatasetSummary>>, AppError> {
    Ok(Json(datasets::list(&state).await?))
}

/// `GET /datasets/{id}/manifest` (ml_engineer, admin: its links open every case, restricted ones too).
async fn manifest(
    State(state): State<AppState>,
    _caller: Coordinator,
    Path(id): Path<String>,
) -> Result<Json<Manifest>, AppError> {
    Ok(Json(datasets::manifest(&state, &id).await?))
}
