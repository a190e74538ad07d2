//! Browser sessions: an HttpOnly, SameSite=Strict cookie naming a session stored in the
//! metadata database (tower-sessions, with its sqlx store for the engine in use), and the
//! cross-site request check for cookie-authenticated requests that change state.

use async_trait::async_trait;
use axum::extract::Request;
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_sessions::cookie::time::Duration;
use tower_sessions::cookie::SameSite;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use super::db::Backend;
use super::services::users::{self, User};
use super::{AppError, AppState};

/// Session key holding the logged-in user's id.
pub const USER_ID: &str = "user_id";
pub const COOKIE_NAME: &str = "seglab_session";

/// The session store of whichever database is configured.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl Store {
    /// Opens a small typed pool beside the main one (the session library needs a typed
    /// pool) and creates the session table when missing.
    pub async fn connect(backend: Backend, url: &str) -> Result<Store, AppError> {
        let store = match backend {
            Backend::Sqlite => {
                let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(4).connect(url).await?;
                let store = SqliteStore::new(pool);
                store.migrate().await?;
                Store::Sqlite(store)
            }
            Backend::Postgres => {
                let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(url).await?;
                let store = PostgresStore::new(pool);
                store.migrate().await?;
                Store::Postgres(store)
            }
        };
        Ok(store)
    }

    /// The layer that loads and saves sessions around every request.
    pub fn layer(self, secure_cookie: bool) -> SessionManagerLayer<Store> {
        SessionManagerLayer::new(self)
            .with_name(COOKIE_NAME)
            .with_http_only(true)
            .with_same_site(SameSite::Strict)
            .with_secure(secure_cookie)
            .with_expiry(Expiry::OnInactivity(Duration::hours(8)))
    }
}

#[async_trait]
impl SessionStore for Store {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            Store::Sqlite(s) => s.create(record).await,
            Store::Postgres(s) => s.create(record).await,
        }
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            Store::Sqlite(s) => s.save(record).await,
            Store::Postgres(s) => s.save(record).await,
        }
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Store::Sqlite(s) => s.load(id).await,
            Store::Postgres(s) => s.load(id).await,
        }
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            Store::Sqlite(s) => s.delete(id).await,
            Store::Postgres(s) => s.delete(id).await,
        }
    }
}

/// Refuses state-changing requests that ride on the session cookie from another site: their
/// `Origin` (or `Referer`) must name this host. Bearer-token requests carry no ambient
/// credential and pass. SameSite=Strict already keeps the cookie off cross-site requests;
/// this is the second lock.
pub async fn reject_cross_site(request: Request, next: Next) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let headers = request.headers();
    let has_session_cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|cookies| {
            cookies.split(';').any(|c| c.trim_start().strip_prefix(COOKIE_NAME).is_some_and(|rest| rest.starts_with('=')))
        });
    let bearer = headers.contains_key(header::AUTHORIZATION);
    if safe || !has_session_cookie || bearer {
        return next.run(request).await;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let source = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let source_host = source.split("://").nth(1).unwrap_or_default().split('/').next().unwrap_or_default();
    if host.is_empty() || source_host != host {
        return AppError::Forbidden(
            "cross-site request refused: state-changing requests with the session cookie must come from this site's pages"
                .into(),
        )
        .into_response();
    }
    next.run(request).await
}

/// Checks the credentials and logs the user in on `session`, under a fresh session id (no
/// fixation). Used by `POST /session` and the login page alike.
pub async fn log_in(
    state: &AppState,
    session: &tower_sessions::Session,
    username: &str,
    password: &str,
) -> Result<User, AppError> {
    let user = users::login(&state.db, username, password).await?;
    session.cycle_id().await.map_err(AppError::internal)?;
    session.insert(USER_ID, &user.id).await.map_err(AppError::internal)?;
    Ok(user)
}

/// Ends the session: its record is deleted and the cookie cleared.
pub async fn log_out(session: &tower_sessions::Session) -> Result<(), AppError> {
    session.flush().await.map_err(AppError::internal)
}

/// The user logged in on `session`, if any.
pub async fn session_user(state: &AppState, session: &tower_sessions::Session) -> Result<Option<User>, AppError> {
    match session.get::<String>(USER_ID).await.map_err(AppError::internal)? {
        Some(user_id) => users::user_by_id(&state.db, &user_id).await,
        None => Ok(None),
    }
}

/// Inside a server function: the application state and the logged-in user, or 401.
pub async fn server_fn_caller() -> Result<(AppState, User), AppError> {
    let state = AppState::from_context().map_err(AppError::internal)?;
    let session: tower_sessions::Session = leptos_axum::extract().await.map_err(AppError::internal)?;
    let user = session_user(&state, &session).await?.ok_or(AppError::Unauthorized);
    Ok((state, user.inspect_err(set_response_status)?))
}

/// Gives the HTTP response of the current server function (or page) the error's status.
pub fn set_response_status(err: &AppError) {
    if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(err.status());
    }
}
