//! REST routes of the worklist: a page of cases with filters and counts, and the caller's next
//! case. Thin: they parse and call `services::worklist`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::extract::{ApiQuery, Caller};
use crate::api::{NextCase, Worklist, WorklistQuery};
use crate::server::error::AppError;
use crate::server::services::worklist;
use crate::server::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/worklist", get(list)).route("/worklist/next", get(next))
}

/// `GET /worklist?status=&assignee=&q=&sort=&desc=&page=&per_page=`.
async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiQuery(query): ApiQuery<WorklistQuery>,
) -> Result<Json<Worklist>, AppError> {
    Ok(Json(worklist::list(&state, &user, &query).await?))
}

/// `GET /worklist/next`.
async fn next(State(state): State<AppState>, Caller(user): Caller) -> Result<Json<NextCase>, AppError> {
    Ok(Json(worklist::next_case(&state, &user).await?))
}
