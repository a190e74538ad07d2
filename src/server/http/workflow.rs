//! REST routes of the case workflow: assigning a case, taking one, moving it through
//! submission and review, and reading its comments. Thin: they parse and call
//! `services::workflow`.

use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};

use super::extract::{bounded_body, ApiJson, Caller, CaseWorkers, Coordinator, Holding};
use crate::api::{AssignCase, CaseComment, CaseWorkflow, ChangeStatus};
use crate::server::error::AppError;
use crate::server::services::access::{self, Assign, Read, Take, Transition};
use crate::server::services::workflow;
use crate::server::state::AppState;

/// The largest body of an assignment or a status change: a comment is at most 4,000 bytes.
const MAX_BODY_BYTES: usize = 16 * 1024;

pub fn routes() -> Router<AppState> {
    let routes = Router::new()
        .route("/cases/{id}/assignment", put(assign))
        .route("/cases/{id}/take", post(take))
        .route("/cases/{id}/status", put(change_status))
        .route("/cases/{id}/comments", get(comments));
    bounded_body(routes, MAX_BODY_BYTES)
}

/// `PUT /cases/{id}/assignment {assignee, reviewer, restricted}` (ml_engineer, admin).
async fn assign(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<AssignCase>,
) -> Result<Json<CaseWorkflow>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&id)?, Assign).await?;
    Ok(Json(workflow::assign(&state, access, &request).await?))
}

/// `POST /cases/{id}/take` (labeler, where self-assignment is allowed).
async fn take(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<CaseWorkflow>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&id)?, Take).await?;
    Ok(Json(workflow::take(&state, access).await?))
}

/// `PUT /cases/{id}/status {status, comment, anchor}`.
async fn change_status(
    State(state): State<AppState>,
    Holding(user, _): Holding<CaseWorkers>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ChangeStatus>,
) -> Result<Json<CaseWorkflow>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&id)?, Transition(request.status)).await?;
    Ok(Json(workflow::change_status(&state, access, &request).await?))
}

/// `GET /cases/{id}/comments`.
async fn comments(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<CaseComment>>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&id)?, Read).await?;
    Ok(Json(workflow::comments(&state, &access).await?))
}
