//! The metadata database: one pool, written against sqlx's `Any` driver so the same queries
//! run on SQLite (the embedded default) and PostgreSQL (production).
//!
//! Portability rules for queries: `$1`-style placeholders (both engines accept them), ids as
//! TEXT (UUIDs), timestamps as BIGINT milliseconds since the epoch, JSON as TEXT.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use super::config::Config;
use super::error::{AppError, CliError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// Seals the audit chain's head (see `services::audit`), when configured.
    pub audit_key: Option<AuditKey>,
}

/// The secret the audit chain's head is sealed with (HMAC-SHA256).
#[derive(Clone)]
pub struct AuditKey(pub std::sync::Arc<[u8]>);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(…)")
    }
}

impl Db {
    /// The configured database, schema brought up to date; creates the data folder that the
    /// default SQLite file lives in.
    pub async fn open(config: &Config) -> Result<Db, CliError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| CliError::startup(&format!("cannot create {}", config.data_dir.display()), e))?;
        let db = Db::connect(&config.database_url(), config.db_max_connections).await?;
        let audit_key = config.audit_key.as_ref().map(|key| AuditKey(key.as_bytes().into()));
        Ok(Db { audit_key, ..db })
    }

    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, CliError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(CliError::Config(format!("unsupported database URL {url:?}: use postgres://… or sqlite://…")));
        };
        let options =
            AnyConnectOptions::from_str(url).map_err(|e| CliError::Config(format!("invalid database URL: {e}")))?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside the one writer; the busy timeout makes
                        // concurrent writers wait instead of failing.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| CliError::startup("cannot connect to the database", e))?;
        let db = Db { pool, backend, audit_key: None };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), CliError> {
        let result = match self.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&self.pool).await,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&self.pool).await,
        };
        result.map_err(|e| CliError::startup("database migration failed", e))
    }

    /// A transaction that will write. On SQLite it takes the write lock at `BEGIN IMMEDIATE`:
    /// a statement that reads before it writes (a new case's trigger updating the FTS5 name
    /// index) would otherwise find its snapshot stale when another import committed meanwhile,
    /// an error waiting cannot cure. PostgreSQL's plain `BEGIN` is enough.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Readiness probe: the database answers a trivial query.
    pub(crate) async fn ping(&self) -> Result<(), AppError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Typed ids and enums are stored as their text: bound like a `String`, and read back through
/// their parser, so that a row holding a name this build does not know fails to decode (a
/// damaged row, answered 500) instead of becoming some default.
mod stored_as_text {
    use sqlx::database::Database;
    use sqlx::encode::IsNull;
    use sqlx::error::BoxDynError;
    use sqlx::{Decode, Encode, Type};

    use crate::api::{ArtifactKind, CaseId, CaseStatus, JobStatus, MaskRef, ModelId, ModelState, Split, UserName};
    use crate::nifti_io::VoxelType;

    macro_rules! stored_as_text {
        ($($ty:ty => |$text:ident| $parse:expr;)*) => {$(
            impl<DB: Database> Type<DB> for $ty
            where
                String: Type<DB>,
            {
                fn type_info() -> DB::TypeInfo {
                    <String as Type<DB>>::type_info()
                }

                fn compatible(ty: &DB::TypeInfo) -> bool {
                    <String as Type<DB>>::compatible(ty)
                }
            }

            impl<'q, DB: Database> Encode<'q, DB> for $ty
            where
                String: Encode<'q, DB>,
            {
                fn encode_by_ref(&self, buf: &mut <DB as Database>::ArgumentBuffer<'q>) -> Result<IsNull, BoxDynError> {
                    <String as Encode<'q, DB>>::encode_by_ref(&self.as_str().to_string(), buf)
                }
            }

            impl<'r, DB: Database> Decode<'r, DB> for $ty
            where
                String: Decode<'r, DB>,
            {
                fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<$ty, BoxDynError> {
                    let $text = <String as Decode<'r, DB>>::decode(value)?;
                    let parsed: Result<$ty, String> = $parse;
                    parsed.map_err(|text| format!("a row holds {} {text:?}", stringify!($ty)).into())
                }
            }
        )*};
    }

    stored_as_text! {
        // The database holds only ids the server wrote: taken as stored.
        CaseId => |text| Ok(CaseId::stored(text));
        ModelId => |text| Ok(ModelId::stored(text));
        MaskRef => |text| Ok(MaskRef::stored(text));
        UserName => |text| Ok(UserName::stored(text));
        ArtifactKind => |text| ArtifactKind::parse(&text).ok_or(text);
        CaseStatus => |text| CaseStatus::parse(&text).ok_or(text);
        JobStatus => |text| JobStatus::parse(&text).ok_or(text);
        ModelState => |text| ModelState::parse(&text).ok_or(text);
        Split => |text| Split::parse(&text).ok_or(text);
        VoxelType => |text| VoxelType::parse(&text).ok_or(text);
    }
}
