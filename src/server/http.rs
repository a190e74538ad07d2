//! The HTTP surface: REST routes for scripts and API clients, the server-rendered pages and
//! their server functions, health probes, and the layers around them. Handlers are thin:
//! they authenticate, parse, and call `services`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Multipart, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::Session;

mod models;

use super::config::ServeArgs;
use super::services::cases::{self, NewCase};
use super::services::labels;
use super::services::users::{self, Role, User};
use super::{sessions, AppError, AppState};
use crate::app::{shell, App};
use crate::types::{CaseArtifacts, CaseSummary, SaveLabelRequest};

/// The caller of a REST route: from `Authorization: Bearer <token>` when the header is sent,
/// otherwise from the browser session.
pub struct Caller(pub User);

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if let Some(authorization) = parts.headers.get(header::AUTHORIZATION) {
            let token = authorization
                .to_str()
                .ok()
                .and_then(|value| value.strip_prefix("Bearer "))
                .ok_or(AppError::Unauthorized)?;
            let user = users::user_for_token(&state.db, token.trim()).await?.ok_or(AppError::Unauthorized)?;
            return Ok(Caller(user));
        }
        let session = Session::from_request_parts(parts, state).await.map_err(|_| AppError::Unauthorized)?;
        let user = sessions::session_user(state, &session).await?.ok_or(AppError::Unauthorized)?;
        Ok(Caller(user))
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

/// `POST /session`: browser-style login for scripts and tests; sets the session cookie.
async fn log_in(
    State(state): State<AppState>,
    session: Session,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<Json<serde_json::Value>, AppError> {
    let user = sessions::log_in(&state, &session, &credentials.username, &credentials.password).await?;
    let roles: Vec<_> = user.roles.iter().map(|r| r.as_str()).collect();
    Ok(Json(json!({ "username": user.username, "roles": roles })))
}

/// `DELETE /session`: log out.
async fn log_out(session: Session) -> Result<StatusCode, AppError> {
    sessions::log_out(&session).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when both the database and object storage answer.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (db, store) = tokio::join!(state.db.ping(), state.store.ping());
    let status = |r: &Result<(), AppError>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    };
    let code = if db.is_ok() && store.is_ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(json!({ "database": status(&db), "object_storage": status(&store) })))
}

async fn list_cases(State(state): State<AppState>, _caller: Caller) -> Result<Json<Vec<CaseSummary>>, AppError> {
    Ok(Json(cases::list_cases(&state).await?))
}

#[derive(serde::Deserialize)]
struct ArtifactsQuery {
    #[serde(default)]
    history: bool,
}

async fn case_artifacts(
    State(state): State<AppState>,
    _caller: Caller,
    Path(case_id): Path<String>,
    ApiQuery(query): ApiQuery<ArtifactsQuery>,
) -> Result<Json<CaseArtifacts>, AppError> {
    Ok(Json(cases::case_artifacts(&state, &case_id, query.history).await?))
}

/// A JSON body whose rejections are `AppError`s: syntax → 400, wrong fields or types → 422.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(JsonRejection::JsonDataError(e)) => Err(AppError::Unprocessable(e.body_text())),
            Err(JsonRejection::BytesRejection(e)) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(AppError::PayloadTooLarge(format!("request body too large: {}", e.body_text())))
            }
            Err(other) => Err(AppError::BadRequest(other.body_text())),
        }
    }
}

/// Query parameters whose rejection is a JSON 400 like every other error.
pub struct ApiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let Query(value) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e: QueryRejection| AppError::BadRequest(e.body_text()))?;
        Ok(ApiQuery(value))
    }
}

/// `POST /labels`: the edits of one save, once per `Idempotency-Key`.
async fn save_label(
    State(state): State<AppState>,
    Caller(user): Caller,
    headers: HeaderMap,
    ApiJson(request): ApiJson<SaveLabelRequest>,
) -> Result<Response, AppError> {
    // A value that is not text reads as empty, which the key check refuses.
    let key = headers.get("idempotency-key").map(|v| v.to_str().unwrap_or_default());
    let outcome = labels::save_label(&state, &user, key, &request).await?;
    let status = StatusCode::from_u16(outcome.status).map_err(AppError::internal)?;
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], outcome.body).into_response();
    if outcome.replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// A multipart body that cannot be read: 400.
fn bad_form(err: axum::extract::multipart::MultipartError) -> AppError {
    AppError::BadRequest(format!("invalid multipart form: {err}"))
}

/// `POST /cases`, multipart: `name`, `image` (file), optional `mask` (file) and `labels`
/// (`1=liver,2=tumour`).
async fn import_case(
    State(state): State<AppState>,
    Caller(user): Caller,
    mut form: Multipart,
) -> Result<(StatusCode, Json<CaseSummary>), AppError> {
    user.require_any(&[Role::MlEngineer, Role::Admin], "importing a case")?;
    let (mut name, mut image, mut mask, mut labels) = (None, None, None, Vec::new());
    while let Some(field) = form.next_field().await.map_err(bad_form)? {
        let field_name = field.name().unwrap_or_default().to_string();
        match field_name.as_str() {
            "name" => name = Some(field.text().await.map_err(bad_form)?),
            "image" => image = Some(field.bytes().await.map_err(bad_form)?.to_vec()),
            "mask" => mask = Some(field.bytes().await.map_err(bad_form)?.to_vec()),
            "labels" => {
                let text = field.text().await.map_err(bad_form)?;
                labels = text.split(',').filter(|s| !s.trim().is_empty()).map(str::to_string).collect();
            }
            other => return Err(AppError::BadRequest(format!("unknown form field {other:?}"))),
        }
    }
    let new_case = NewCase {
        name: name.ok_or_else(|| AppError::BadRequest("form field `name` is required".into()))?,
        image: image.ok_or_else(|| AppError::BadRequest("form field `image` is required".into()))?,
        mask,
        labels: cases::parse_label_names(&labels)?,
    };
    Ok((StatusCode::CREATED, Json(cases::import_case(&state, Some(&user.id), new_case).await?)))
}

/// The REST API, usable on its own (tests, scripts) or inside [`router`].
fn rest_routes(args: &ServeArgs) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/cases",
            get(list_cases).post(import_case).layer(DefaultBodyLimit::max(args.max_upload_bytes)),
        )
        .route("/cases/{id}/artifacts", get(case_artifacts))
        .route("/labels", post(save_label))
        .route("/session", post(log_in).delete(log_out))
        .merge(models::routes(args.max_upload_bytes))
}

/// The whole application: REST, pages, server functions, static files.
pub fn router(state: AppState, args: &ServeArgs) -> Router {
    let leptos_options = state.leptos_options.clone();
    let routes = generate_route_list(App);
    let context_state = state.clone();
    Router::new()
        .merge(rest_routes(args))
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(context_state.clone()),
            move || shell(leptos_options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(middleware::from_fn(sessions::reject_cross_site))
        .layer(state.sessions.clone().layer(args.cookie_secure))
        .layer(DefaultBodyLimit::max(args.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(args.max_upload_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves until `shutdown` is cancelled, then finishes the requests in flight.
pub async fn serve(state: AppState, args: &ServeArgs, shutdown: CancellationToken) -> Result<(), AppError> {
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| AppError::internal(format!("cannot listen on {}: {e}", args.addr)))?;
    axum::serve(listener, router(state, args))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(AppError::internal)
}
