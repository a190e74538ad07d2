//! `Idempotency-Key` handling (IETF draft "The Idempotency-Key HTTP Header Field", with
//! Stripe's behaviour): keys are scoped per user; the first request with a key runs, a repeat
//! after it finished gets the stored response, a repeat while it runs waits a few seconds for
//! it and then gets its response (or 409 if it is still running), and a key reused with a
//! different request gets 422. Keys are kept at least 24 hours.

use sqlx::AnyConnection;

use crate::server::clock::now_ms;
use crate::server::db::Db;
use crate::server::error::AppError;

/// A running claim older than this belonged to a crashed process and may be taken over.
const LEASE_MS: i64 = 60_000;
/// How long a request waits for another one holding its key before answering 409.
const WAIT_FOR_HOLDER: std::time::Duration = std::time::Duration::from_secs(5);
const HOLDER_POLL: std::time::Duration = std::time::Duration::from_millis(50);
/// How long finished keys are kept (and replayed).
pub const RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// What to do with a request after claiming its key.
#[derive(Debug, PartialEq)]
pub enum Claim {
    /// This request owns the key: do the work, then `complete` or `release`.
    Run,
    /// The request already completed: answer with this status and JSON body.
    Replay { status: u16, body: String },
}

/// Where a key's request is: running (claimed), or done with its answer stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyState {
    Running,
    Done,
}

impl KeyState {
    fn as_str(self) -> &'static str {
        match self {
            KeyState::Running => "running",
            KeyState::Done => "done",
        }
    }
}

/// A key as the client sent it in the `Idempotency-Key` header: 1–255 visible ASCII
/// characters (a UUID is recommended), optionally quoted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(header: Option<&str>) -> Result<IdempotencyKey, AppError> {
        let key = header.ok_or_else(|| {
            AppError::BadRequest("the Idempotency-Key header is required (use a fresh UUID per save)".into())
        })?;
        let key = key.trim_matches('"');
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AppError::BadRequest(
                "the Idempotency-Key header must be 1–255 visible ASCII characters (a UUID is recommended)".into(),
            ));
        }
        Ok(IdempotencyKey(key.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Claims `key` for this request. A request whose key another request holds waits up to
/// [`WAIT_FOR_HOLDER`] for that one to finish and then answers as it did: a retry sent while
/// its lost original is still committing gets the original's answer, not a 409.
pub async fn claim(db: &Db, user_id: &str, key: &IdempotencyKey, fingerprint: &str) -> Result<Claim, AppError> {
    let deadline = now_ms() + WAIT_FOR_HOLDER.as_millis() as i64;
    loop {
        if let Some(claim) = try_claim(db, user_id, key, fingerprint).await? {
            return Ok(claim);
        }
        if now_ms() >= deadline {
            return Err(AppError::KeyInUse);
        }
        tokio::time::sleep(HOLDER_POLL).await;
    }
}

/// One attempt: `None` while another live request holds the key.
async fn try_claim(db: &Db, user_id: &str, key: &IdempotencyKey, fingerprint: &str) -> Result<Option<Claim>, AppError> {
    let now = now_ms();
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (user_id, idem_key, fingerprint, state, created_at, locked_at)
         VALUES ($1, $2, $3, $5, $4, $4)
         ON CONFLICT (user_id, idem_key) DO NOTHING",
    )
    .bind(user_id)
    .bind(key.as_str())
    .bind(fingerprint)
    .bind(now)
    .bind(KeyState::Running.as_str())
    .execute(&db.pool)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Some(Claim::Run));
    }
    #[derive(sqlx::FromRow)]
    struct KeyRow {
        fingerprint: String,
        state: String,
        response_status: Option<i64>,
        response_body: Option<String>,
        locked_at: i64,
    }
    let Some(row) = sqlx::query_as::<_, KeyRow>(
        "SELECT fingerprint, state, response_status, response_body, locked_at
         FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2",
    )
    .bind(user_id)
    .bind(key.as_str())
    .fetch_optional(&db.pool)
    .await?
    else {
        // The holder failed and released the key between our two statements: try again.
        return Ok(None);
    };
    if row.fingerprint != fingerprint {
        return Err(AppError::Unprocessable(
            "this Idempotency-Key was already used with a different request; use a new key for a new save".into(),
        ));
    }
    if row.state == KeyState::Done.as_str() {
        let (Some(status), Some(body)) = (row.response_status, row.response_body) else {
            return Err(AppError::internal("an idempotency key is done without its answer"));
        };
        return Ok(Some(Claim::Replay { status: status as u16, body }));
    }
    let locked_at = row.locked_at;
    if now - locked_at < LEASE_MS {
        return Ok(None);
    }
    // Take over an abandoned claim; the condition on locked_at lets only one taker win.
    let taken = sqlx::query(
        "UPDATE idempotency_keys SET locked_at = $1
         WHERE user_id = $2 AND idem_key = $3 AND state = $5 AND locked_at = $4",
    )
    .bind(now)
    .bind(user_id)
    .bind(key.as_str())
    .bind(locked_at)
    .bind(KeyState::Running.as_str())
    .execute(&db.pool)
    .await?;
    Ok((taken.rows_affected() == 1).then_some(Claim::Run))
}

/// The stored answer of `key`'s request, once it completed: for work that must not be
/// recomputed on a retry, as its input changed with its own success.
pub async fn answered(db: &Db, user_id: &str, key: &IdempotencyKey) -> Result<Option<(u16, String)>, AppError> {
    let row: Option<(Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT response_status, response_body FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2 AND state = $3",
    )
    .bind(user_id)
    .bind(key.as_str())
    .bind(KeyState::Done.as_str())
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.and_then(|(status, body)| Some((status? as u16, body?))))
}

/// Stores the response, inside the transaction that commits the work.
pub(crate) async fn complete(
    tx: &mut AnyConnection,
    user_id: &str,
    key: &IdempotencyKey,
    status: u16,
    body: &str,
) -> Result<(), AppError> {
    sqlx::query(
        "UPDATE idempotency_keys SET state = $5, response_status = $1, response_body = $2
         WHERE user_id = $3 AND idem_key = $4",
    )
    .bind(status as i64)
    .bind(body)
    .bind(user_id)
    .bind(key.as_str())
    .bind(KeyState::Done.as_str())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Gives the key back after a failure, so that a retry runs afresh.
pub async fn release(db: &Db, user_id: &str, key: &IdempotencyKey) -> Result<(), AppError> {
    sqlx::query("DELETE FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2 AND state = $3")
        .bind(user_id)
        .bind(key.as_str())
        .bind(KeyState::Running.as_str())
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Forgets finished keys older than the retention time.
pub(crate) async fn purge_expired(db: &Db) -> Result<u64, AppError> {
    let purged = sqlx::query("DELETE FROM idempotency_keys WHERE state = $2 AND created_at < $1")
        .bind(now_ms() - RETENTION_MS)
        .bind(KeyState::Done.as_str())
        .execute(&db.pool)
        .await?;
    Ok(purged.rows_affected())
}
