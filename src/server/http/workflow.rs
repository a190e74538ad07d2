//! REST routes of the case workflow: assigning a case, taking one, moving it through
//! submission and review, and reading its comments. Thin: they parse and call
//! `services::workflow`.

use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};

use super::extract::{ApiJson, Caller, Coordinator};
use crate::api::{AssignCase, CaseComment, CaseWorkflow, ChangeStatus};
use crate::server::error::AppError;
use crate::server::services::workflow;
use crate::server::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/cases/{id}/assignment", put(assign))
        .route("/cases/{id}/take", post(take))
        .route("/cases/{id}/status", put(change_status))
        .route("/cases/{id}/comments", get(comments))
}

/// `PUT /cases/{id}/assignment {assignee, reviewer, restricted}` (ml_engineer, admin).
async fn assign(
    State(state): State<AppState>,
    Coordinator(user): Coordinator,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<AssignCase>,
) -> Result<Json<CaseWorkflow>, AppError> {
    Ok(Json(workflow::assign(&state, &user, &id, &request).await?))
}

/// `POST /cases/{id}/take` (labeler, where self-assignment is allowed).
async fn take(State(state): State<AppState>, Caller(user): Caller, Path(id): Path<String>) -> Result<Json<CaseWorkflow>, AppError> {
    Ok(Json(workflow::take(&state, &user, &id).await?))
}

/// `PUT /cases/{id}/status {status, comment, anchor}`.
async fn change_status(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ChangeStatus>,
) -> Result<Json<CaseWorkflow>, AppError> {
    Ok(Json(workflow::change_status(&state, &user, &id, &request).await?))
}

/// `GET /cases/{id}/comments`.
async fn comments(State(state): State<AppState>, Caller(user): Caller, Path(id): Path<String>) -> Result<Json<Vec<CaseComment>>, AppError> {
    workflow::check_may_read(&state, &user, &id).await?;
    Ok(Json(workflow::comments(&state, &id).await?))
}
