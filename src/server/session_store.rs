//! Where browser sessions live: the metadata database, through tower-sessions' sqlx store for
//! the engine in use, behind an HttpOnly, SameSite=Strict cookie.

use async_trait::async_trait;
use tower_sessions::cookie::time::Duration;
use tower_sessions::cookie::SameSite;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use super::db::Backend;
use super::error::CliError;

/// Session key holding the logged-in user's id.
pub const USER_ID: &str = "user_id";
/// Session key holding the ID token of a single sign-on, the hint of its logout.
pub const OIDC_ID_TOKEN: &str = "oidc_id_token";
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
    pub async fn connect(backend: Backend, url: &str) -> Result<Store, CliError> {
        let failed = |e: sqlx::Error| CliError::startup("session store", e);
        let store = match backend {
            Backend::Sqlite => {
                let pool =
                    sqlx::sqlite::SqlitePoolOptions::new().max_connections(4).connect(url).await.map_err(failed)?;
                let store = SqliteStore::new(pool);
                store.migrate().await.map_err(failed)?;
                Store::Sqlite(store)
            }
            Backend::Postgres => {
                let pool =
                    sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(url).await.map_err(failed)?;
                let store = PostgresStore::new(pool);
                store.migrate().await.map_err(failed)?;
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
