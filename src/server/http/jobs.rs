//! REST routes of the orchestrator: the manual run trigger, backfills, and the job lists of a
//! case, a run and a model version (only the jobs the caller may see).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{BackfillPath, Caller, CasePath, Coordinator, Holding, ModelPath, RunPath};
use crate::api::{BackfillProgress, Job, RunStarted};
use crate::server::error::AppError;
use crate::server::services::access::{self, Read, RunModels};
use crate::server::services::jobs::{self, JobFilter};
use crate::server::services::{backfill, orchestrator, registry};
use crate::server::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(model_jobs))
        .routes(routes!(run_on_case))
        .routes(routes!(case_jobs))
        .routes(routes!(run_jobs))
        .routes(routes!(start_backfill))
        .routes(routes!(backfill_progress))
        .routes(routes!(cancel_backfill))
}

/// The run trigger: one job per active model version (production and shadow) on the case.
#[utoipa::path(post, path = "/cases/{id}/runs", tag = "jobs", params(CasePath),
    responses((status = 202, description = "Jobs queued", body = RunStarted)))]
async fn run_on_case(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(CasePath { id: case_id }): Path<CasePath>,
) -> Result<(StatusCode, Json<RunStarted>), AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&case_id)?, RunModels).await?;
    Ok((StatusCode::ACCEPTED, Json(orchestrator::run_on_case(&state, access).await?)))
}

/// The case's jobs the caller may see, newest first.
#[utoipa::path(get, path = "/cases/{id}/jobs", tag = "jobs", params(CasePath),
    responses((status = 200, description = "The jobs", body = [Job])))]
async fn case_jobs(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(CasePath { id }): Path<CasePath>,
) -> Result<Json<Vec<Job>>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&id)?, Read).await?;
    Ok(Json(jobs::list_jobs(&state, &user, JobFilter::Case(&access)).await?))
}

/// A run's jobs the caller may see.
#[utoipa::path(get, path = "/runs/{id}", tag = "jobs", params(RunPath),
    responses((status = 200, description = "The jobs", body = [Job])))]
async fn run_jobs(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(RunPath { id }): Path<RunPath>,
) -> Result<Json<Vec<Job>>, AppError> {
    Ok(Json(jobs::list_jobs(&state, &user, JobFilter::Run(&id)).await?))
}

/// A model version's jobs the caller may see, newest first.
#[utoipa::path(get, path = "/models/{id}/jobs", tag = "jobs", params(ModelPath),
    responses((status = 200, description = "The jobs", body = [Job])))]
async fn model_jobs(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(ModelPath { id }): Path<ModelPath>,
) -> Result<Json<Vec<Job>>, AppError> {
    Ok(Json(jobs::list_jobs(&state, &user, JobFilter::Model(&registry::model_named(&id)?)).await?))
}

/// Evaluates the version on every labelled case, behind interactive jobs (ML engineers, admins).
#[utoipa::path(post, path = "/models/{id}/backfill", tag = "jobs", params(ModelPath),
    responses((status = 202, description = "Jobs queued", body = BackfillProgress)))]
async fn start_backfill(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    Path(ModelPath { id }): Path<ModelPath>,
) -> Result<(StatusCode, Json<BackfillProgress>), AppError> {
    Ok((StatusCode::ACCEPTED, Json(backfill::start(&state, &user, &registry::model_named(&id)?).await?)))
}

/// How far a backfill got (ML engineers, admins).
#[utoipa::path(get, path = "/backfills/{id}", tag = "jobs", params(BackfillPath),
    responses((status = 200, description = "Its progress", body = BackfillProgress)))]
async fn backfill_progress(
    State(state): State<AppState>,
    _caller: Coordinator,
    Path(BackfillPath { id }): Path<BackfillPath>,
) -> Result<Json<BackfillProgress>, AppError> {
    Ok(Json(backfill::progress(&state, &id).await?))
}

/// Cancels a backfill's queued jobs (ML engineers, admins).
#[utoipa::path(post, path = "/backfills/{id}/cancel", tag = "jobs", params(BackfillPath),
    responses((status = 200, description = "Its progress now", body = BackfillProgress)))]
async fn cancel_backfill(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    Path(BackfillPath { id }): Path<BackfillPath>,
) -> Result<Json<BackfillProgress>, AppError> {
    Ok(Json(backfill::cancel(&state, &user, &id).await?))
}
