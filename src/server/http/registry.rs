//! REST routes of the model registry: registering versions, state transitions, the active
//! versions, production history and the paired evaluation. Thin: they parse and call
//! `services::{registry, evaluation}`.

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::extract::{bad_form, field_text, field_to_file, ApiJson, ApiQuery, Caller, Coordinator, Holding};
use crate::api::{
    ActiveModels, ModelDetail, ModelOverview, ModelSummary, PairedEvaluation, Rollback, StateChange, VersionEvaluation,
};
use crate::server::charts;
use crate::server::error::AppError;
use crate::server::services::{comparison, model_view, registry};
use crate::server::state::AppState;

/// Largest model card accepted.
const MAX_CARD_BYTES: usize = 1 << 20;

pub fn routes(max_upload_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/models", get(list_models).post(register_model).layer(DefaultBodyLimit::max(max_upload_bytes)))
        .route("/models/active", get(active_models))
        .route("/models/evaluation", get(evaluate))
        .route("/models/evaluation/chart", get(evaluation_chart))
        .route("/models/production-at", get(production_at))
        .route("/models/timeline", get(timeline))
        .route("/models/{id}", get(model_detail))
        .route("/models/{id}/overview", get(model_overview))
        .route("/models/{id}/state", put(change_state))
        .route("/models/{id}/rollback", post(rollback))
        .route("/models/{id}/evaluation", get(version_evaluation))
}

/// `POST /models`, multipart: `card` (the model card as JSON) and `artifact` (the ONNX file).
async fn register_model(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    mut form: Multipart,
) -> Result<(StatusCode, Json<serde_json::Value>), AppError> {
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
    Ok((
        StatusCode::CREATED,
        Json(json!({ "model_id": model.id, "name": model.name, "version": model.version, "state": model.state })),
    ))
}

async fn list_models(State(state): State<AppState>, _caller: Caller) -> Result<Json<Vec<ModelSummary>>, AppError> {
    Ok(Json(registry::list_models(&state).await?))
}

async fn model_detail(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ModelDetail>, AppError> {
    Ok(Json(registry::model_detail(&state, &registry::model_named(&id)?).await?))
}

/// `GET /models/{id}/overview`: what the model page shows, as the caller may see it.
async fn model_overview(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<ModelOverview>, AppError> {
    Ok(Json(model_view::model_overview(&state, &user, &registry::model_named(&id)?).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewState {
    state: String,
}

/// `PUT /models/{id}/state {"state": "shadow"}`.
async fn change_state(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<NewState>,
) -> Result<Json<ModelSummary>, AppError> {
    let to = registry::parse_state(&change.state)?;
    Ok(Json(registry::transition(&state, &user, &registry::model_named(&id)?, to).await?))
}

/// `POST /models/{id}/rollback`: the production version `id` is archived and the previous
/// production version returns.
async fn rollback(
    State(state): State<AppState>,
    Holding(user, _): Coordinator,
    Path(id): Path<String>,
) -> Result<Json<Rollback>, AppError> {
    Ok(Json(registry::rollback(&state, &user, &registry::model_named(&id)?).await?))
}

/// `GET /models/{id}/evaluation`: the version on its own, against every labelled case it predicted.
async fn version_evaluation(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Json<VersionEvaluation>, AppError> {
    Ok(Json(comparison::version_evaluation(&state, &user, &registry::model_named(&id)?).await?))
}

#[derive(Deserialize)]
struct NameQuery {
    name: Option<String>,
}

fn required_name(query: NameQuery) -> Result<String, AppError> {
    query
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| AppError::BadRequest("query parameter `name` (the model name) is required".into()))
}

/// `GET /models/active?name=` (the seed's getActiveModels).
async fn active_models(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<NameQuery>,
) -> Result<Json<ActiveModels>, AppError> {
    Ok(Json(registry::active_models(&state, &required_name(query)?).await?))
}

/// `GET /models/evaluation?name=`: production against shadow on human-labelled cases.
async fn evaluate(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiQuery(query): ApiQuery<NameQuery>,
) -> Result<Json<PairedEvaluation>, AppError> {
    Ok(Json(comparison::paired_evaluation(&state, &user, &required_name(query)?).await?))
}

/// `GET /models/timeline?name=`: every registration and state change of the name's versions.
async fn timeline(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<NameQuery>,
) -> Result<Json<Vec<StateChange>>, AppError> {
    Ok(Json(registry::timeline(&state, &required_name(query)?).await?))
}

/// `GET /models/evaluation/chart?name=`: the evaluation's charts as SVG (404 before
/// production and shadow share a scored case).
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

#[derive(Deserialize)]
struct ProductionAtQuery {
    name: String,
    /// Milliseconds since the Unix epoch.
    at: i64,
}

/// `GET /models/production-at?name=&at=`: which version was in production then (from the audit log).
async fn production_at(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<ProductionAtQuery>,
) -> Result<Json<serde_json::Value>, AppError> {
    let found = registry::production_at(&state, &query.name, query.at).await?;
    Ok(Json(match found {
        Some((model_id, version)) => {
            json!({ "name": query.name, "at": query.at, "model_id": model_id, "version": version })
        }
        None => json!({ "name": query.name, "at": query.at, "model_id": null, "version": null }),
    }))
}
