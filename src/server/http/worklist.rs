//! REST routes of the worklist: a page of cases with filters and counts, and the caller's next
//! case. Thin: they parse and call `services::worklist`.

use axum::extract::State;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiQuery, Caller};
use crate::api::{NextCase, Worklist, WorklistQuery};
use crate::server::error::AppError;
use crate::server::services::worklist;
use crate::server::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_worklist)).routes(routes!(next_case))
}

/// A page of the cases the caller may read, filtered and sorted, with counts by status.
#[utoipa::path(get, path = "/worklist", tag = "worklist", params(WorklistQuery),
    responses((status = 200, description = "The page", body = Worklist)))]
async fn list_worklist(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiQuery(query): ApiQuery<WorklistQuery>,
) -> Result<Json<Worklist>, AppError> {
    Ok(Json(worklist::list(&state, &user, &query).await?))
}

/// The caller's next case: one sent back, then one in progress, then a new one.
#[utoipa::path(get, path = "/worklist/next", tag = "worklist",
    responses((status = 200, description = "The next case, if any", body = NextCase)))]
async fn next_case(State(state): State<AppState>, Caller(user): Caller) -> Result<Json<NextCase>, AppError> {
    Ok(Json(worklist::next_case(&state, &user).await?))
}
