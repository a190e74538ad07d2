//! REST routes of the case workflow: assigning a case, taking one, moving it through
//! submission and review, and reading its comments. Thin: they parse and call
//! `services::workflow`.

use axum::extract::{Path, State};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{bounded_body, ApiJson, Caller, CasePath, CaseWorkers, Coordinator, Holding};
use crate::api::{AssignCase, CaseComment, CaseWorkflow, ChangeStatus};
use crate::server::error::AppError;
use crate::server::services::access::{self, Assign, Read, Take, Transition};
use crate::server::services::workflow;
use crate::server::state::AppState;

/// The largest body of an assignment or a status change: a comment is at most 4,000 bytes.
const MAX_BODY_BYTES: usize = 16 * 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::new()
        .routes(routes!(assign))
        .routes(routes!(take_case))
        .routes(routes!(change_status))
        .routes(routes!(comments));
    bounded_body(routes, MAX_BODY_BYTES)
}

/// Assigns the case's labeler and reviewer, and whether it is restricted to them (ML
/// engineers, admins).
#[utoipa::path(put, path = "/cases/{id}/assignment", tag = "workflow", params(CasePath), request_body = AssignCase,
    responses((status = 200, description = "The case's workflow now", body = CaseWorkflow)))]
async fn assign(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    Path(CasePath { id }): Path<CasePath>,
    ApiJson(request): ApiJson<AssignCase>,
) -> Result<Json<CaseWorkflow>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&id)?, Assign).await?;
    Ok(Json(workflow::assign(&state, access, &request).await?))
}

/// Takes an unassigned case as its labeler (labelers, where self-assignment is on).
#[utoipa::path(post, path = "/cases/{id}/take", tag = "workflow", params(CasePath),
    responses((status = 200, description = "The case's workflow now", body = CaseWorkflow)))]
async fn take_case(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(CasePath { id }): Path<CasePath>,
) -> Result<Json<CaseWorkflow>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&id)?, Take).await?;
    Ok(Json(workflow::take(&state, access).await?))
}

/// Moves the case through the workflow: submit, send back, approve, reopen, with an optional
/// comment anchored on a voxel.
#[utoipa::path(put, path = "/cases/{id}/status", tag = "workflow", params(CasePath), request_body = ChangeStatus,
    responses((status = 200, description = "The case's workflow now", body = CaseWorkflow)))]
async fn change_status(
    State(state): State<AppState>,
    Holding(user, _): Holding<CaseWorkers>,
    Path(CasePath { id }): Path<CasePath>,
    ApiJson(request): ApiJson<ChangeStatus>,
) -> Result<Json<CaseWorkflow>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&id)?, Transition(request.status)).await?;
    Ok(Json(workflow::change_status(&state, access, &request).await?))
}

/// The case's review comments, oldest first.
#[utoipa::path(get, path = "/cases/{id}/comments", tag = "workflow", params(CasePath),
    responses((status = 200, description = "The comments", body = [CaseComment])))]
async fn comments(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(CasePath { id }): Path<CasePath>,
) -> Result<Json<Vec<CaseComment>>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&id)?, Read).await?;
    Ok(Json(workflow::comments(&state, &access).await?))
}
