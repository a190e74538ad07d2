//! `/session`: browser-style login, logout and "who am I" for scripts and tests, through the
//! same `auth` functions as the login page.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::Json;
use tower_sessions::Session;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, Caller};
use crate::server::auth;
use crate::server::error::AppError;
use crate::server::identity::User;
use crate::server::state::AppState;

/// Largest login body: a valid username and the longest password, JSON-quoted, fit well.
const MAX_LOGIN_BODY_BYTES: usize = 16 * 1024;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(current_user, log_in, log_out))
        .layer(DefaultBodyLimit::max(MAX_LOGIN_BODY_BYTES))
}

/// A username and password.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

/// Who logged in.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct LoggedIn {
    username: String,
    /// `labeler`, `reviewer`, `ml_engineer`, `admin`.
    roles: Vec<&'static str>,
}

impl From<&User> for LoggedIn {
    fn from(user: &User) -> LoggedIn {
        LoggedIn { username: user.username.to_string(), roles: user.roles.iter().map(|r| r.as_str()).collect() }
    }
}

/// Who the caller is: the session's user or the API token's.
#[utoipa::path(get, path = "/session", tag = "accounts",
    responses((status = 200, description = "The caller", body = LoggedIn)))]
async fn current_user(Caller(user): Caller) -> Json<LoggedIn> {
    Json(LoggedIn::from(&user))
}

/// Logs in with a password and sets the session cookie. Failed attempts are limited per
/// username and per address (429 with `Retry-After`).
#[utoipa::path(post, path = "/session", tag = "accounts", security(()), request_body = Credentials,
    responses((status = 200, description = "Logged in; the answer sets the session cookie", body = LoggedIn)))]
async fn log_in(
    State(state): State<AppState>,
    session: Session,
    extensions: axum::http::Extensions,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<Json<LoggedIn>, AppError> {
    let client = auth::client_address(&extensions);
    let user = auth::log_in(&state, &session, client, &credentials.username, &credentials.password).await?;
    Ok(Json(LoggedIn::from(&user)))
}

/// Logs out: the session ends (here; a single sign-on's session at the provider is ended by
/// the browser's log-out button).
#[utoipa::path(delete, path = "/session", tag = "accounts", security(()),
    responses((status = 204, description = "Logged out (also when no one was logged in)")))]
async fn log_out(State(state): State<AppState>, session: Session) -> Result<StatusCode, AppError> {
    auth::log_out(&state, &session).await?;
    Ok(StatusCode::NO_CONTENT)
}
