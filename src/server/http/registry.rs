//! REST routes of the model registry: registering versions, state transitions, the active
//! versions, production history and the paired evaluation. Thin: they parse and call
//! `services::{registry, evaluation}`.

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::extract::{
    bad_form, field_text, field_to_file, ApiJson, ApiMultipart, ApiQuery, Caller, Coordinator, Holding, ModelPath,
};
use crate::api::{
    ActiveModels, ModelDetail, ModelOverview, ModelRegistered, ModelState, ModelSummary, PairedEvaluation,
    ProductionAt, Rollback, StateChange, VersionEvaluation,
};
use crate::server::charts;
use crate::server::error::AppError;
use crate::server::services::{comparison, model_view, registry};
use crate::server::state::AppState;

/// Largest model card accepted.
const MAX_CARD_BYTES: usize = 1 << 20;

pub fn routes(max_upload_bytes: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_models, register_model).layer(DefaultBodyLimit::max(max_upload_bytes)))
        .routes(routes!(active_models))
        .routes(routes!(paired_evaluation))
        .routes(routes!(evaluation_chart))
        .routes(routes!(production_at))
        .routes(routes!(timeline))
        .routes(routes!(model_detail))
        .routes(routes!(model_overview))
        .routes(routes!(change_state))
        .routes(routes!(rollback))
        .routes(routes!(version_evaluation))
}

/// The multipart form of `POST /models`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the form in the API document; the handler reads it field by field")]
struct ModelUpload {
    /// The model card, as JSON (a `ModelCard`).
    card: String,
    /// The ONNX file.
    #[schema(value_type = String, content_media_type = "application/octet-stream")]
    artifact: Vec<u8>,
}

/// Registers a model version with its card and ONNX artifact, in state `registered` (ML
/// engineers, admins).
#[utoipa::path(post, path = "/models", tag = "models",
    request_body(content = ModelUpload, content_type = "multipart/form-data"),
    responses((status = 201, description = "Registered", body = ModelRegistered)))]
async fn register_model(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    ApiMultipart(mut form): ApiMultipart,
) -> Result<(StatusCode, Json<ModelRegistered>), AppError> {
    // The artifact goes to a scratch file as it arrives, removed when this request ends.
    let (mut card, mut artifact) = (None, None);
    while let Some(field) = form.next_field().await.map_err(bad_form)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "card" => card = Some(field_text(field, MAX_CARD_BYTES).await?),
            "artifact" => artifact = Some(field_to_file(field, &state.config.scratch_dir()).await?),
            other => {
                return Err(AppError::BadRequest(format!("unknown form field {other:?}; send `card` and `artifact`")))
            }
        }
    }
    let card =
        card.ok_or_else(|| AppError::BadRequest("form field `card` (the model card JSON) is required".into()))?;
    let artifact =
        artifact.ok_or_else(|| AppError::BadRequest("form field `artifact` (the ONNX file) is required".into()))?;
    let model = registry::register(&state, &user, &card, artifact.path()).await?;
    let registered =
        ModelRegistered { model_id: model.id, name: model.name, version: model.version, state: model.state };
    Ok((StatusCode::CREATED, Json(registered)))
}

/// Every registered model version.
#[utoipa::path(get, path = "/models", tag = "models",
    responses((status = 200, description = "The versions", body = [ModelSummary])))]
async fn list_models(State(state): State<AppState>, _caller: Caller) -> Result<Json<Vec<ModelSummary>>, AppError> {
    Ok(Json(registry::list_models(&state).await?))
}

/// A model version with its card and the states it may go to.
#[utoipa::path(get, path = "/models/{id}", tag = "models", params(ModelPath),
    responses((status = 200, description = "The version", body = ModelDetail)))]
async fn model_detail(
    State(state): State<AppState>,
    _caller: Caller,
    Path(ModelPath { id }): Path<ModelPath>,
) -> Result<Json<ModelDetail>, AppError> {
    Ok(Json(registry::model_detail(&state, &registry::model_named(&id)?).await?))
}

/// What the model page shows, as the caller may see it.
#[utoipa::path(get, path = "/models/{id}/overview", tag = "models", params(ModelPath),
    responses((status = 200, description = "The overview", body = ModelOverview)))]
async fn model_overview(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(ModelPath { id }): Path<ModelPath>,
) -> Result<Json<ModelOverview>, AppError> {
    Ok(Json(model_view::model_overview(&state, &user, &registry::model_named(&id)?).await?))
}

/// Body of `PUT /models/{id}/state`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewState {
    /// The state to move to.
    #[schema(value_type = ModelState)]
    state: String,
}

/// Moves a version through its lifecycle: registered → shadow → production → archived (ML
/// engineers, admins). Promoting a version to production archives the one there; audited.
#[utoipa::path(put, path = "/models/{id}/state", tag = "models", params(ModelPath), request_body = NewState,
    responses((status = 200, description = "The version now", body = ModelSummary)))]
async fn change_state(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    Path(ModelPath { id }): Path<ModelPath>,
    ApiJson(change): ApiJson<NewState>,
) -> Result<Json<ModelSummary>, AppError> {
    let to = registry::parse_state(&change.state)?;
    Ok(Json(registry::transition(&state, &user, &registry::model_named(&id)?, to).await?))
}

/// Rolls production back: the production version `id` is archived and the previous
/// production version returns (ML engineers, admins).
#[utoipa::path(post, path = "/models/{id}/rollback", tag = "models", params(ModelPath),
    responses((status = 200, description = "What changed", body = Rollback)))]
async fn rollback(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    Path(ModelPath { id }): Path<ModelPath>,
) -> Result<Json<Rollback>, AppError> {
    Ok(Json(registry::rollback(&state, &user, &registry::model_named(&id)?).await?))
}

/// The version on its own, against every labelled case it predicted.
#[utoipa::path(get, path = "/models/{id}/evaluation", tag = "models", params(ModelPath),
    responses((status = 200, description = "Its scores", body = VersionEvaluation)))]
async fn version_evaluation(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(ModelPath { id }): Path<ModelPath>,
) -> Result<Json<VersionEvaluation>, AppError> {
    Ok(Json(comparison::version_evaluation(&state, &user, &registry::model_named(&id)?).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct NameQuery {
    /// The model's name (required).
    name: Option<String>,
}

fn required_name(query: NameQuery) -> Result<String, AppError> {
    query
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| AppError::BadRequest("query parameter `name` (the model name) is required".into()))
}

/// The name's active versions: production and shadow (the seed's getActiveModels).
#[utoipa::path(get, path = "/models/active", tag = "models", params(NameQuery),
    responses((status = 200, description = "The active versions", body = ActiveModels)))]
async fn active_models(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<NameQuery>,
) -> Result<Json<ActiveModels>, AppError> {
    Ok(Json(registry::active_models(&state, &required_name(query)?).await?))
}

/// Production against shadow on the cases humans labelled and both predicted.
#[utoipa::path(get, path = "/models/evaluation", tag = "models", params(NameQuery),
    responses((status = 200, description = "The paired evaluation", body = PairedEvaluation)))]
async fn paired_evaluation(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiQuery(query): ApiQuery<NameQuery>,
) -> Result<Json<PairedEvaluation>, AppError> {
    Ok(Json(comparison::paired_evaluation(&state, &user, &required_name(query)?).await?))
}

/// Every registration and state change of the name's versions, from the audit log.
#[utoipa::path(get, path = "/models/timeline", tag = "models", params(NameQuery),
    responses((status = 200, description = "The changes, oldest first", body = [StateChange])))]
async fn timeline(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<NameQuery>,
) -> Result<Json<Vec<StateChange>>, AppError> {
    Ok(Json(registry::timeline(&state, &required_name(query)?).await?))
}

/// The paired evaluation's chart as SVG (404 before production and shadow share a scored case).
#[utoipa::path(get, path = "/models/evaluation/chart", tag = "models", params(NameQuery),
    responses((status = 200, description = "The chart", body = String, content_type = "image/svg+xml")))]
async fn evaluation_chart(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiQuery(query): ApiQuery<NameQuery>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], String), AppError> {
    let evaluation = comparison::paired_evaluation(&state, &user, &required_name(query)?).await?;
    let svg = charts::paired_dice_svg(&evaluation)
        .ok_or_else(|| AppError::NotFound("a case scored by both production and shadow".into()))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "image/svg+xml")], svg))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ProductionAtQuery {
    /// The model's name.
    name: String,
    /// Milliseconds since the Unix epoch.
    at: i64,
}

/// Which version of the name was in production at a time, from the audit log.
#[utoipa::path(get, path = "/models/production-at", tag = "models", params(ProductionAtQuery),
    responses((status = 200, description = "The version, if any", body = ProductionAt)))]
async fn production_at(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<ProductionAtQuery>,
) -> Result<Json<ProductionAt>, AppError> {
    let (model_id, version) = registry::production_at(&state, &query.name, query.at).await?.unzip();
    Ok(Json(ProductionAt { name: query.name, at: query.at, model_id, version }))
}
