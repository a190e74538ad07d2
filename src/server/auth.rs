//! Who is calling: browser logins on a session (no fixation, audited), the user behind a
//! session, the caller of a server function, and the cross-site check for cookie-authenticated
//! requests that change state.

use std::net::IpAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::AppError;
use super::services::users;
use super::session_store::{COOKIE_NAME, OIDC_ID_TOKEN, USER_ID};
use super::state::AppState;
use crate::server::identity::User;

/// Refuses state-changing requests from another site's pages. A request that names where it
/// comes from (`Origin`, else `Referer`, which browsers send on cross-site requests) must name
/// this host, with or without a session: that also stops a foreign page from logging the
/// browser into an account of the attacker's (login CSRF). A request naming no source is a
/// script's and passes unless it carries the session cookie. A valid bearer token carries no
/// ambient credential and passes. SameSite=Strict already keeps the cookie off cross-site
/// requests; this is the second lock.
pub(crate) async fn reject_cross_site(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    if let Some(user) = bearer_user(&state, request.headers()).await {
        // Looked up once: the route's `Caller` takes it from here.
        request.extensions_mut().insert(BearerCaller(user));
        return next.run(request).await;
    }
    let headers = request.headers();
    let has_session_cookie = headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).any(|cookies| {
        cookies.split(';').any(|c| c.trim_start().strip_prefix(COOKIE_NAME).is_some_and(|rest| rest.starts_with('=')))
    });
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let source = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER)).and_then(|v| v.to_str().ok());
    let from_this_site = |source: &str| {
        let source_host = source.split("://").nth(1).unwrap_or_default().split('/').next().unwrap_or_default();
        !host.is_empty() && source_host == host
    };
    let allowed = match source {
        Some(source) => from_this_site(source),
        None => !has_session_cookie,
    };
    if !allowed {
        return AppError::Forbidden(
            "cross-site request refused: state-changing requests from a browser must come from this site's pages"
                .into(),
        )
        .into_response();
    }
    next.run(request).await
}

/// The token of an `Authorization: Bearer <token>` header, if the request has one.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    Some(value.strip_prefix("Bearer ")?.trim())
}

/// The user whose valid bearer token the request carries.
#[derive(Clone)]
pub struct BearerCaller(pub User);

async fn bearer_user(state: &AppState, headers: &HeaderMap) -> Option<User> {
    users::user_for_token(&state.db, bearer_token(headers)?).await.ok().flatten()
}

/// Checks the credentials and logs the user in on `session`, under a fresh session id (no
/// fixation), unless the username or the client's address failed too often lately. Used by
/// `POST /session` and the login page alike.
pub async fn log_in(
    state: &AppState,
    session: &tower_sessions::Session,
    client: Option<IpAddr>,
    username: &str,
    password: &str,
) -> Result<User, AppError> {
    if !state.config.sso.password_login {
        return Err(AppError::Forbidden("passwords do not log in here: sign on with the identity provider".into()));
    }
    state.logins.check(&state.db, username, client).await?;
    let user = match users::login(&state.db, username, password).await {
        Err(AppError::BadCredentials) => {
            state.logins.failed(&state.db, username, client).await?;
            return Err(AppError::BadCredentials);
        }
        other => other?,
    };
    start_session(session, &user, None).await?;
    Ok(user)
}

/// Logs `user` in on `session` under a fresh session id (no fixation), keeping the ID token of
/// a single sign-on for its logout.
pub(crate) async fn start_session(
    session: &tower_sessions::Session,
    user: &User,
    id_token: Option<&str>,
) -> Result<(), AppError> {
    session.cycle_id().await.map_err(AppError::internal)?;
    session.insert(USER_ID, &user.id).await.map_err(AppError::internal)?;
    if let Some(id_token) = id_token {
        session.insert(OIDC_ID_TOKEN, id_token).await.map_err(AppError::internal)?;
    }
    Ok(())
}

/// Ends the session: its record is deleted and the cookie cleared. Where the browser goes
/// next: the provider's logout, for a session a single sign-on started (RP-initiated logout),
/// else the login page.
pub(crate) async fn log_out(state: &AppState, session: &tower_sessions::Session) -> Result<String, AppError> {
    let id_token: Option<String> = session.get(OIDC_ID_TOKEN).await.map_err(AppError::internal)?;
    session.flush().await.map_err(AppError::internal)?;
    let provider_logout = match (&state.sso, id_token) {
        (Some(provider), Some(id_token)) => provider.logout_url(&id_token).await,
        _ => None,
    };
    Ok(provider_logout.unwrap_or_else(|| "/login".to_string()))
}

/// The user logged in on `session`, if any.
pub(crate) async fn session_user(
    state: &AppState,
    session: &tower_sessions::Session,
) -> Result<Option<User>, AppError> {
    match session.get::<String>(USER_ID).await.map_err(AppError::internal)? {
        Some(user_id) => users::user_by_id(&state.db, &user_id).await,
        None => Ok(None),
    }
}

/// The address the request came from, when the server records it (`seglab serve` does).
pub(crate) fn client_address(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions.get::<ConnectInfo<std::net::SocketAddr>>().map(|info| info.0.ip())
}

/// Inside a server function: the application state and its session.
pub(crate) async fn server_fn_session() -> Result<(AppState, tower_sessions::Session), AppError> {
    let state = leptos::prelude::use_context::<AppState>()
        .ok_or_else(|| AppError::Internal("application state missing from the server function's context".into()))?;
    let session: tower_sessions::Session = leptos_axum::extract().await.map_err(AppError::internal)?;
    Ok((state, session))
}

/// Inside a server function: the application state and the logged-in user, or 401.
pub(crate) async fn server_fn_caller() -> Result<(AppState, User), AppError> {
    let (state, session) = server_fn_session().await?;
    let user = session_user(&state, &session).await?.ok_or(AppError::Unauthorized)?;
    Ok((state, user))
}
