//! REST routes of the orchestrator: the manual run trigger and the job lists of a case, a run
//! and a model version (only the jobs the caller may see).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::extract::Caller;
use crate::api::{Job, RunStarted};
use crate::server::error::AppError;
use crate::server::services::jobs::{self, JobFilter};
use crate::server::services::{orchestrator, workflow};
use crate::server::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/models/{id}/jobs", get(model_jobs))
        .route("/cases/{id}/runs", post(run_on_case))
        .route("/cases/{id}/jobs", get(case_jobs))
        .route("/runs/{id}", get(run_jobs))
}

/// `POST /cases/{id}/runs`: run every active model version on the case (202: jobs queued).
async fn run_on_case(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(case_id): Path<String>,
) -> Result<(StatusCode, Json<RunStarted>), AppError> {
    Ok((StatusCode::ACCEPTED, Json(orchestrator::run_on_case(&state, &case_id, &user).await?)))
}

async fn case_jobs(State(state): State<AppState>, Caller(user): Caller, Path(id): Path<String>) -> Result<Json<Vec<Job>>, AppError> {
    workflow::check_may_read(&state, &user, &id).await?;
    Ok(Json(jobs::list_jobs(&state, &user, JobFilter::Case(&id)).await?))
}

async fn run_jobs(State(state): State<AppState>, Caller(user): Caller, Path(id): Path<String>) -> Result<Json<Vec<Job>>, AppError> {
    Ok(Json(jobs::list_jobs(&state, &user, JobFilter::Run(&id)).await?))
}

async fn model_jobs(State(state): State<AppState>, Caller(user): Caller, Path(id): Path<String>) -> Result<Json<Vec<Job>>, AppError> {
    Ok(Json(jobs::list_jobs(&state, &user, JobFilter::Model(&id)).await?))
}
