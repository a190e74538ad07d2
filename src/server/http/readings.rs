//! REST routes of several readers per case: planning a case's readings (or those of every
//! case a worklist filter selects), taking one, listing
//! them, their agreement (per case, and across the cases a worklist filter selects), and the
//! consensus an adjudication starts from. Thin: they parse and
//! call `services::readings`; a reading is saved with `POST /labels` and submitted with
//! `PUT /cases/{id}/status`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json, Router};

use super::extract::{
    bounded_body, ApiJson, ApiQuery, Caller, CaseWorkers, Comparers, Coordinator, Holding, ReadingTakers,
};
use super::labels::saved;
use crate::api::{
    AgreementOverview, CaseAgreement, CaseReadings, ConsensusRequest, PlannedCases, Reading, ReadingPlan,
    TakeReading as TakeBody, WorklistQuery,
};
use crate::server::error::AppError;
use crate::server::services::access::{self, Adjudicate, CompareReadings, PlanReadings, Read, Save, TakeReading};
use crate::server::services::{agreement, readings};
use crate::server::state::AppState;

/// The bodies here are a few fields.
const MAX_BODY_BYTES: usize = 4 * 1024;

pub fn routes() -> Router<AppState> {
    let routes = Router::new()
        .route("/cases/{id}/readings", get(list).put(plan).post(take))
        .route("/cases/{id}/agreement", get(agreement))
        .route("/agreement", get(overview))
        .route("/readings", put(plan_selected))
        .route("/cases/{id}/consensus", post(consensus));
    bounded_body(routes, MAX_BODY_BYTES)
}

/// `PUT /cases/{id}/readings {required, blind}` (ml_engineer, admin).
async fn plan(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ReadingPlan>,
) -> Result<Json<CaseReadings>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&id)?, PlanReadings).await?;
    Ok(Json(readings::plan(&state, access, &request).await?))
}

/// `PUT /readings?{worklist filters} {required, blind}` (ml_engineer, admin): plans every case
/// the filter selects that can still be planned.
async fn plan_selected(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    ApiQuery(query): ApiQuery<WorklistQuery>,
    ApiJson(request): ApiJson<ReadingPlan>,
) -> Result<Json<PlannedCases>, AppError> {
    Ok(Json(readings::plan_selected(&state, &user, &query, &request).await?))
}

/// `GET /cases/{id}/readings`.
async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<CaseReadings>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&id)?, Read).await?;
    Ok(Json(readings::list(&state, &access).await?))
}

/// `POST /cases/{id}/readings {reader?}`: take a reading, or (ml_engineer, admin) give one.
async fn take(
    State(state): State<AppState>,
    Holding(user, _): Holding<ReadingTakers>,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<TakeBody>,
) -> Result<(StatusCode, Json<Reading>), AppError> {
    let for_other = request.reader.as_ref().is_some_and(|reader| *reader != user.username);
    let access = access::authorize(&state, &user, &access::case_named(&id)?, TakeReading { for_other }).await?;
    Ok((StatusCode::CREATED, Json(readings::take(&state, access, request.reader.as_ref()).await?)))
}

/// `GET /cases/{id}/agreement`.
async fn agreement(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<CaseAgreement>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&id)?, CompareReadings).await?;
    Ok(Json(agreement::of_case(&state, &access).await?))
}

/// `GET /agreement?{worklist filters}` (reviewers, ml_engineer, admin).
async fn overview(
    State(state): State<AppState>,
    Holding(user, _): Holding<Comparers>,
    ApiQuery(query): ApiQuery<WorklistQuery>,
) -> Result<Json<AgreementOverview>, AppError> {
    Ok(Json(agreement::overview(&state, &user, &query).await?))
}

/// `POST /cases/{id}/consensus {method}` with an `Idempotency-Key` (the adjudicator): answers
/// as a save does.
async fn consensus(
    State(state): State<AppState>,
    Holding(user, _): Holding<CaseWorkers>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ConsensusRequest>,
) -> Result<Response, AppError> {
    let key = headers.get("idempotency-key").map(|v| v.to_str().unwrap_or_default());
    let case_id = access::case_named(&id)?;
    let adjudicate = access::authorize(&state, &user, &case_id, Adjudicate).await?;
    let save = access::authorize(&state, &user, &case_id, Save).await?;
    saved(readings::consensus(&state, adjudicate, save, key, request.method).await?)
}
