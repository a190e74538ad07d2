//! The PACS outbox: approved mask versions of DICOM cases waiting to be stored in the PACS
//! (`pacs_outbox`), queued in the transaction that approves them or when a send found the PACS
//! down, and claimed one at a time under a lease by `pacs`'s sender, which retries with backoff.
//! Only rows here: what a send is belongs to `pacs`.

use sqlx::AnyConnection;

use crate::api::{CaseId, MaskRef, PacsQueued};
use crate::server::error::AppError;
use crate::server::state::AppState;

/// Queues the approved version of `case_id` for the PACS, once, if the case came from DICOM.
pub(crate) async fn enqueue_approved(conn: &mut AnyConnection, case_id: &CaseId, now: i64) -> Result<(), AppError> {
    sqlx::query(
        "INSERT INTO pacs_outbox (case_id, mask_ref, enqueued_at, next_attempt_at)
         SELECT c.id, c.approved_mask_ref, $2, $2 FROM cases c JOIN case_dicom d ON d.case_id = c.id
         WHERE c.id = $1 AND c.approved_mask_ref IS NOT NULL
         ON CONFLICT (case_id, mask_ref) DO NOTHING",
    )
    .bind(case_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// A queued send, claimed.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Due {
    pub case_id: CaseId,
    pub mask_ref: MaskRef,
    /// Attempts so far, this one included.
    pub attempts: i64,
}

/// How many approved masks wait to be sent (not counting sends the PACS refused for good).
pub async fn pending(state: &AppState) -> Result<i64, AppError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM pacs_outbox WHERE sent_at IS NULL AND next_attempt_at < $1")
        .bind(i64::MAX)
        .fetch_one(&state.db.pool)
        .await?)
}

/// Claims the send due first, for `lease_ms`: `None` when none is due.
pub(crate) async fn claim(state: &AppState, now: i64, lease_ms: i64) -> Result<Option<Due>, AppError> {
    let candidate: Option<Due> = sqlx::query_as(
        "SELECT case_id, mask_ref, attempts FROM pacs_outbox
         WHERE sent_at IS NULL AND next_attempt_at <= $1 AND claimed_until < $1
         ORDER BY next_attempt_at LIMIT 1",
    )
    .bind(now)
    .fetch_optional(&state.db.pool)
    .await?;
    let Some(mut due) = candidate else { return Ok(None) };
    // Another instance may have claimed it since: only one update finds it unclaimed.
    let claimed = sqlx::query(
        "UPDATE pacs_outbox SET claimed_until = $3, attempts = attempts + 1
         WHERE case_id = $1 AND mask_ref = $2 AND claimed_until < $4 AND sent_at IS NULL",
    )
    .bind(&due.case_id)
    .bind(&due.mask_ref)
    .bind(now + lease_ms)
    .bind(now)
    .execute(&state.db.pool)
    .await?;
    due.attempts += 1;
    Ok((claimed.rows_affected() == 1).then_some(due))
}

/// The send succeeded.
pub(crate) async fn sent(state: &AppState, due: &Due, now: i64) -> Result<(), AppError> {
    sqlx::query("UPDATE pacs_outbox SET sent_at = $3, last_error = NULL, claimed_until = 0 WHERE case_id = $1 AND mask_ref = $2")
        .bind(&due.case_id)
        .bind(&due.mask_ref)
        .bind(now)
        .execute(&state.db.pool)
        .await?;
    Ok(())
}

/// The send failed; the next attempt at `at` (never, for `i64::MAX`).
pub(crate) async fn failed(state: &AppState, due: &Due, at: i64, error: &str) -> Result<(), AppError> {
    let error: String = error.chars().take(1000).collect();
    sqlx::query(
        "UPDATE pacs_outbox SET next_attempt_at = $3, last_error = $4, claimed_until = 0 WHERE case_id = $1 AND mask_ref = $2",
    )
    .bind(&due.case_id)
    .bind(&due.mask_ref)
    .bind(at)
    .bind(error)
    .execute(&state.db.pool)
    .await?;
    Ok(())
}

/// Most queued sends one listing shows.
const MAX_LISTED: i64 = 200;

/// The newest queued sends, sent or not, at most 200.
pub(crate) async fn list(state: &AppState) -> Result<Vec<PacsQueued>, AppError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        case_id: CaseId,
        mask_ref: MaskRef,
        enqueued_at: i64,
        attempts: i64,
        next_attempt_at: i64,
        sent_at: Option<i64>,
        last_error: Option<String>,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT case_id, mask_ref, enqueued_at, attempts, next_attempt_at, sent_at, last_error FROM pacs_outbox
         ORDER BY enqueued_at DESC, case_id LIMIT $1",
    )
    .bind(MAX_LISTED)
    .fetch_all(&state.db.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| PacsQueued {
            next_attempt_at_ms: (row.sent_at.is_none() && row.next_attempt_at < i64::MAX)
                .then_some(row.next_attempt_at),
            case_id: row.case_id,
            mask_ref: row.mask_ref,
            enqueued_at_ms: row.enqueued_at,
            attempts: row.attempts,
            sent_at_ms: row.sent_at,
            last_error: row.last_error,
        })
        .collect())
}
