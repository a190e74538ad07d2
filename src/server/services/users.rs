//! Accounts: creating users, their passwords and API tokens for REST clients, and looking
//! a caller up by session or token. Who a caller is and may be lives in `identity`.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::audit::{self, AuditAction, AuditEvent};
use crate::api::UserName;
use crate::server::clock::now_ms;
use crate::server::db::Db;
use crate::server::error::AppError;
use crate::server::identity::{parse_roles, Role, User};

/// What is stored of a token: its SHA-256, so the database never holds a usable token.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Records `token` (its hash) for `user_id` in the caller's transaction, valid until revoked
/// or until `expires_at_ms`.
pub async fn store_token(
    tx: &mut sqlx::AnyConnection,
    user_id: &str,
    token: &str,
    expires_at_ms: Option<i64>,
) -> Result<(), AppError> {
    sqlx::query("INSERT INTO api_tokens (token_sha256, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(token_hash(token))
        .bind(user_id)
        .bind(now_ms())
        .bind(expires_at_ms)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A fresh API token: 32 random bytes, recognisable by its `sgl_` prefix.
pub fn new_token() -> String {
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    format!("sgl_{}", hex::encode(secret))
}

/// Longest password accepted, in bytes: Argon2 hashes any length, but an unbounded one costs
/// memory and hashing time on every attempt.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Creates a user and returns it with a new API token (shown once; only its hash is kept);
/// with a `password` the user can also log in from the browser.
pub async fn add_user(
    db: &Db,
    username: &str,
    roles: &[Role],
    password: Option<&str>,
) -> Result<(User, String), AppError> {
    let username = UserName::parse(username).map_err(|e| AppError::BadRequest(e.to_string()))?;
    if roles.is_empty() {
        return Err(AppError::BadRequest("a user needs at least one role".into()));
    }
    let password_hash = match password {
        Some(password) => Some(hash_password(password.to_string()).await?),
        None => None,
    };
    let mut roles = roles.to_vec();
    roles.dedup();
    let user = User { id: Uuid::new_v4().to_string(), username, roles };
    let token = new_token();

    // The insert comes first (the unique name refuses a duplicate): a transaction that reads
    // before it writes fails at once on SQLite when another writer commits in between.
    let mut tx = db.pool.begin().await?;
    let role_list: Vec<_> = user.roles.iter().map(|r| r.as_str()).collect();
    sqlx::query("INSERT INTO users (id, username, roles, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&user.id)
        .bind(&user.username)
        .bind(role_list.join(","))
        .bind(password_hash)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(|err| match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                AppError::Conflict(format!("user {:?} already exists", user.username.as_str()))
            }
            _ => err.into(),
        })?;
    store_token(&mut tx, &user.id, &token, None).await?;
    audit::record(
        &mut tx,
        db,
        AuditEvent {
            action: AuditAction::UserAdd,
            user_id: Some(&user.id),
            case_id: None,
            details: serde_json::json!({ "username": user.username, "roles": role_list }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((user, token))
}

/// Argon2 computations at once: each takes a core and 19 MiB for tens of milliseconds, so a
/// burst of logins queues here instead of filling the blocking thread pool.
static ARGON2_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Argon2id with a random salt, off the async threads (it is deliberately slow).
async fn hash_password(password: String) -> Result<String, AppError> {
    if password.chars().count() < 8 || password.len() > MAX_PASSWORD_BYTES {
        return Err(AppError::BadRequest(format!("a password needs 8 characters to {MAX_PASSWORD_BYTES} bytes")));
    }
    let _slot = ARGON2_SLOTS.acquire().await.map_err(AppError::internal)?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
    })
    .await
    .map_err(AppError::internal)?
    .map_err(AppError::internal)
}

/// A hash of a password nobody knows, verified against when the user is unknown or has no
/// password, so that a failed login costs the same Argon2 time whether the user exists or not.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(&secret, &salt).expect("hashing a fixed-size secret").to_string()
    })
}

/// Checks a browser login; records `login` or `login_failed` in the audit log. Names and
/// passwords longer than any valid one are refused before any lookup or audit write.
pub async fn login(db: &Db, username: &str, password: &str) -> Result<User, AppError> {
    if username.len() > 64 || password.len() > MAX_PASSWORD_BYTES {
        return Err(AppError::BadRequest(format!(
            "a username has at most 64 characters and a password at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    // A disabled user is refused like an unknown one.
    #[derive(sqlx::FromRow)]
    struct Credentials {
        #[sqlx(flatten)]
        user: UserRow,
        password_hash: Option<String>,
    }
    let row: Option<Credentials> = sqlx::query_as(
        "SELECT id, username, roles, password_hash FROM users WHERE username = $1 AND disabled_at IS NULL",
    )
    .bind(username)
    .fetch_optional(&db.pool)
    .await?;
    let (user, stored_hash) = match row {
        Some(row) => (Some(User::from(row.user)), row.password_hash),
        None => (None, None),
    };
    let candidate = password.to_string();
    let slot = ARGON2_SLOTS.acquire().await.map_err(AppError::internal)?;
    let verified = tokio::task::spawn_blocking(move || {
        let checked = stored_hash.as_deref().unwrap_or_else(|| decoy_hash());
        let matches = PasswordHash::new(checked)
            .is_ok_and(|parsed| Argon2::default().verify_password(candidate.as_bytes(), &parsed).is_ok());
        matches && stored_hash.is_some()
    })
    .await
    .map_err(AppError::internal)?;
    drop(slot);
    let mut tx = db.pool.begin().await?;
    let outcome = match (&user, verified) {
        (Some(user), true) => (AuditAction::Login, Some(user.id.as_str())),
        _ => (AuditAction::LoginFailed, None),
    };
    // Only a name that could be a user's is stored: the audit log is append-only.
    let attempted = if UserName::parse(username).is_ok() { username } else { "(not a valid username)" };
    audit::record(
        &mut tx,
        db,
        AuditEvent {
            action: outcome.0,
            user_id: outcome.1,
            case_id: None,
            details: serde_json::json!({ "username": attempted }),
        },
    )
    .await?;
    tx.commit().await?;
    match (user, verified) {
        (Some(user), true) => Ok(user),
        _ => Err(AppError::BadCredentials),
    }
}

/// A user as the app knows its caller: `id, username, roles` of `users`.
#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    username: UserName,
    roles: String,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> User {
        User { id: row.id, username: row.username, roles: parse_roles(&row.roles) }
    }
}

/// The enabled user with this id: a disabled user's sessions stop working at once.
pub(crate) async fn user_by_id(db: &Db, id: &str) -> Result<Option<User>, AppError> {
    let row: Option<UserRow> =
        sqlx::query_as("SELECT id, username, roles FROM users WHERE id = $1 AND disabled_at IS NULL")
            .bind(id)
            .fetch_optional(&db.pool)
            .await?;
    Ok(row.map(User::from))
}

/// The user an API token belongs to, if the token is known, neither revoked nor expired, and
/// its user is enabled.
pub async fn user_for_token(db: &Db, token: &str) -> Result<Option<User>, AppError> {
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT u.id, u.username, u.roles FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)
           AND u.disabled_at IS NULL",
    )
    .bind(token_hash(token))
    .bind(now_ms())
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.map(User::from))
}

pub(crate) async fn user_count(db: &Db) -> Result<i64, AppError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&db.pool).await?)
}
