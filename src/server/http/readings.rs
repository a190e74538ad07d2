//! REST routes of several readers per case: planning a case's readings (or those of every
//! case a worklist filter selects), taking one, listing
//! them, their agreement (per case, and across the cases a worklist filter selects), and the
//! consensus an adjudication starts from. Thin: they parse and
//! call `services::readings`; a reading is saved with `POST /labels` and submitted with
//! `PUT /cases/{id}/status`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{
    bounded_body, ApiJson, ApiQuery, Caller, CasePath, CaseWorkers, Comparers, Coordinator, Holding, ReadingTakers,
};
use super::labels::saved;
use crate::api::{
    AgreementOverview, CaseAgreement, CaseReadings, ConsensusRequest, LabelSaved, PlannedCases, Reading, ReadingPlan,
    TakeReading as TakeBody, WorklistQuery,
};
use crate::server::error::AppError;
use crate::server::services::access::{self, Adjudicate, CompareReadings, PlanReadings, Read, Save, TakeReading};
use crate::server::services::idempotency::IdempotencyKey;
use crate::server::services::{agreement, readings};
use crate::server::state::AppState;

/// The bodies here are a few fields.
const MAX_BODY_BYTES: usize = 4 * 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::new()
        .routes(routes!(list_readings, plan_readings, take_reading))
        .routes(routes!(case_agreement))
        .routes(routes!(agreement_overview))
        .routes(routes!(plan_selected))
        .routes(routes!(consensus));
    bounded_body(routes, MAX_BODY_BYTES)
}

/// Plans the case's readings: how many readers, and whether they are blinded to each other
/// (ML engineers, admins).
#[utoipa::path(put, path = "/cases/{id}/readings", tag = "readings", params(CasePath), request_body = ReadingPlan,
    responses((status = 200, description = "The case's readings now", body = CaseReadings)))]
async fn plan_readings(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    Path(CasePath { id }): Path<CasePath>,
    ApiJson(request): ApiJson<ReadingPlan>,
) -> Result<Json<CaseReadings>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&id)?, PlanReadings).await?;
    Ok(Json(readings::plan(&state, access, &request).await?))
}

/// Plans the readings of every case the worklist filter selects that can still be planned
/// (ML engineers, admins).
#[utoipa::path(put, path = "/readings", tag = "readings", params(WorklistQuery), request_body = ReadingPlan,
    responses((status = 200, description = "The cases planned", body = PlannedCases)))]
async fn plan_selected(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    ApiQuery(query): ApiQuery<WorklistQuery>,
    ApiJson(request): ApiJson<ReadingPlan>,
) -> Result<Json<PlannedCases>, AppError> {
    Ok(Json(readings::plan_selected(&state, &user, &query, &request).await?))
}

/// The case's readings, as far as the caller may see them (blinded readers see their own).
#[utoipa::path(get, path = "/cases/{id}/readings", tag = "readings", params(CasePath),
    responses((status = 200, description = "The readings", body = CaseReadings)))]
async fn list_readings(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(CasePath { id }): Path<CasePath>,
) -> Result<Json<CaseReadings>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&id)?, Read).await?;
    Ok(Json(readings::list(&state, &access).await?))
}

/// Takes one of the case's readings, or gives one to `reader` (ML engineers, admins). The
/// reading is saved with `POST /labels` and submitted with `PUT /cases/{id}/status`.
#[utoipa::path(post, path = "/cases/{id}/readings", tag = "readings", params(CasePath), request_body = TakeBody,
    responses((status = 201, description = "The reading taken", body = Reading)))]
async fn take_reading(
    State(state): State<AppState>,
    Holding(user, _): Holding<ReadingTakers>,
    Path(CasePath { id }): Path<CasePath>,
    ApiJson(request): ApiJson<TakeBody>,
) -> Result<(StatusCode, Json<Reading>), AppError> {
    let for_other = request.reader.as_ref().is_some_and(|reader| *reader != user.username);
    let access = access::authorize(&state, &user, &access::case_named(&id)?, TakeReading { for_other }).await?;
    Ok((StatusCode::CREATED, Json(readings::take(&state, access, request.reader.as_ref()).await?)))
}

/// How far the case's submitted readings agree: Dice and HD95 per pair and per label.
#[utoipa::path(get, path = "/cases/{id}/agreement", tag = "readings", params(CasePath),
    responses((status = 200, description = "The agreement", body = CaseAgreement)))]
async fn case_agreement(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(CasePath { id }): Path<CasePath>,
) -> Result<Json<CaseAgreement>, AppError> {
    let access = access::authorize(&state, &user, &access::case_named(&id)?, CompareReadings).await?;
    Ok(Json(agreement::of_case(&state, &access).await?))
}

/// Agreement across the cases the worklist filter selects (reviewers, ML engineers, admins).
#[utoipa::path(get, path = "/agreement", tag = "readings", params(WorklistQuery),
    responses((status = 200, description = "The overview", body = AgreementOverview)))]
async fn agreement_overview(
    State(state): State<AppState>,
    Holding(user, _): Holding<Comparers>,
    ApiQuery(query): ApiQuery<WorklistQuery>,
) -> Result<Json<AgreementOverview>, AppError> {
    Ok(Json(agreement::overview(&state, &user, &query).await?))
}

/// Starts the adjudication from a consensus of the submitted readings (majority vote or
/// STAPLE), saved as the case's next mask version (the adjudicator). Answers as `POST /labels`.
#[utoipa::path(post, path = "/cases/{id}/consensus", tag = "readings", request_body = ConsensusRequest,
    params(CasePath, ("Idempotency-Key" = String, Header, description = "Unique per save (a UUID), sent again unchanged with each retry")),
    responses((status = 201, description = "Saved as a new mask version", body = LabelSaved)))]
async fn consensus(
    State(state): State<AppState>,
    Holding(user, _): Holding<CaseWorkers>,
    key: IdempotencyKey,
    Path(CasePath { id }): Path<CasePath>,
    ApiJson(request): ApiJson<ConsensusRequest>,
) -> Result<Response, AppError> {
    let case_id = access::case_named(&id)?;
    let adjudicate = access::authorize(&state, &user, &case_id, Adjudicate).await?;
    let save = access::authorize(&state, &user, &case_id, Save).await?;
    saved(readings::consensus(&state, adjudicate, save, &key, request.method).await?)
}
