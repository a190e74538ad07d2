//! REST routes of the orchestrator: the manual run trigger, backfills, and the job lists of a
//! case, a run and a model version (only the jobs the caller may see).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::extract::{Caller, Coordinator, Holding};
use crate::api::{BackfillProgress, Job, RunStarted};
use crate::server::error::AppError;
use crate::server::services::access::{self, Read, RunModels};
use crate::server::services::jobs::{self, JobFilter};
use crate::server::services::{backfill, orchestrator, registry};
use crate::server::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/models/{id}/jobs", get(model_jobs))
        .route("/cases/{id}/runs", post(run_on_case))
        .route("/cases/{id}/jobs", get(case_jobs))
        .route("/runs/{id}", get(run_jobs))
        .route("/models/{id}/backfill", post(start_backfill))
        .route("/backfills/{id}", get(backfill_progress))
        .route("/backfills/{id}/cancel", post(cancel_backfill))
}

/// `POST /cases/{id}/runs`: run every active model version on the case (202: jobs queued).
async fn run_on_case(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(case_id): Path<String>,
) -> Result<(StatusCode, Json<RunStarted>), AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, RunModels).await?;
    Ok((StatusCode::ACCEPTED, Json(orchestrator::run_on_case(&state, access).await?)))
}

async fn case_jobs(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Job>>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&id)?, Read).await?;
    Ok(Json(jobs::list_jobs(&state, &user, JobFilter::Case(&access)).await?))
}

async fn run_jobs(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Job>>, AppError> {
    Ok(Json(jobs::list_jobs(&state, &user, JobFilter::Run(&id)).await?))
}

async fn model_jobs(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Job>>, AppError> {
    Ok(Json(jobs::list_jobs(&state, &user, JobFilter::Model(&registry::model_named(&id)?)).await?))
}

/// `POST /models/{id}/backfill`: evaluate the version on every labelled case (202: jobs queued).
async fn start_backfill(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<BackfillProgress>), AppError> {
    Ok((StatusCode::ACCEPTED, Json(backfill::start(&state, &user, &registry::model_named(&id)?).await?)))
}

async fn backfill_progress(
    State(state): State<AppState>,
    _caller: Coordinator,
    Path(id): Path<String>,
) -> Result<Json<BackfillProgress>, AppError> {
    Ok(Json(backfill::progress(&state, &id).await?))
}

async fn cancel_backfill(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    Path(id): Path<String>,
) -> Result<Json<BackfillProgress>, AppError> {
    Ok(Json(backfill::cancel(&state, &user, &id).await?))
}
