//! `POST /session` and `DELETE /session`: browser-style login and logout for scripts and
//! tests, through the same `auth` functions as the login page.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use tower_sessions::Session;

use super::extract::ApiJson;
use crate::server::auth;
use crate::server::error::AppError;
use crate::server::state::AppState;

/// Largest login body: a valid username and the longest password, JSON-quoted, fit well.
const MAX_LOGIN_BODY_BYTES: usize = 16 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new().route("/session", post(log_in).delete(log_out).layer(DefaultBodyLimit::max(MAX_LOGIN_BODY_BYTES)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

/// Logs in and sets the session cookie.
async fn log_in(
    State(state): State<AppState>,
    session: Session,
    extensions: axum::http::Extensions,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<Json<serde_json::Value>, AppError> {
    let client = auth::client_address(&extensions);
    let user = auth::log_in(&state, &session, client, &credentials.username, &credentials.password).await?;
    let roles: Vec<_> = user.roles.iter().map(|r| r.as_str()).collect();
    Ok(Json(json!({ "username": user.username, "roles": roles })))
}

async fn log_out(session: Session) -> Result<StatusCode, AppError> {
    auth::log_out(&session).await?;
    Ok(StatusCode::NO_CONTENT)
}
