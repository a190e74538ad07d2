//! The audit log: every state-changing action appends a row in the same transaction as the
//! change. Rows chain by hash (each covers its content and the previous hash), the database
//! refuses UPDATE and DELETE, and `verify_chain` finds the first row that does not fit, or a
//! chain that ends before the row its head records.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use crate::api::CaseId;
use crate::server::clock::now_ms;
use crate::server::db::{AuditKey, Db};
use crate::server::error::AppError;

/// What an audit row records; stored as its [`AuditAction::as_str`] name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditAction {
    /// A case imported (image, first mask, labels).
    CaseImport,
    /// A labeler took an unassigned case.
    CaseTaken,
    /// A case's workflow status changed.
    CaseStatus,
    /// A coordinator set a case's labeler or reviewer.
    CaseAssigned,
    /// A mask version saved by a person.
    LabelEdit,
    /// A mask version written from a model's prediction.
    Prelabel,
    /// Models run on a case on request.
    ModelRun,
    /// A model version registered.
    ModelRegister,
    /// A model version's state changed.
    ModelState,
    /// A dataset snapshot made.
    DatasetCreated,
    /// An evaluation backfill started.
    BackfillStarted,
    /// An evaluation backfill cancelled.
    BackfillCancelled,
    /// A user created.
    UserAdd,
    /// A user's roles or access changed.
    UserChange,
    /// An API token issued.
    TokenIssue,
    /// An API token revoked.
    TokenRevoke,
    /// A browser login.
    Login,
    /// A refused login.
    LoginFailed,
    /// An admin read who a case's patient is.
    PatientRead,
    /// An approved mask version stored in the PACS as a segmentation.
    SegmentationSent,
    /// How many readings a case needs, set by a coordinator.
    ReadingsPlanned,
    /// A reading of a case taken by its reader or given to them.
    ReadingTaken,
    /// A reader submitted their reading.
    ReadingSubmitted,
    /// A case's mask replaced by its readings' consensus, to adjudicate from.
    Consensus,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::CaseImport => "case_import",
            AuditAction::CaseTaken => "case_taken",
            AuditAction::CaseStatus => "case_status",
            AuditAction::CaseAssigned => "case_assigned",
            AuditAction::LabelEdit => "label_edit",
            AuditAction::Prelabel => "prelabel",
            AuditAction::ModelRun => "model_run",
            AuditAction::ModelRegister => "model_register",
            AuditAction::ModelState => "model_state",
            AuditAction::DatasetCreated => "dataset_created",
            AuditAction::BackfillStarted => "backfill_started",
            AuditAction::BackfillCancelled => "backfill_cancelled",
            AuditAction::UserAdd => "user_add",
            AuditAction::UserChange => "user_change",
            AuditAction::TokenIssue => "token_issue",
            AuditAction::ReadingsPlanned => "readings_planned",
            AuditAction::ReadingTaken => "reading_taken",
            AuditAction::ReadingSubmitted => "reading_submitted",
            AuditAction::Consensus => "consensus",
            AuditAction::TokenRevoke => "token_revoke",
            AuditAction::Login => "login",
            AuditAction::LoginFailed => "login_failed",
            AuditAction::PatientRead => "patient_read",
            AuditAction::SegmentationSent => "segmentation_sent",
        }
    }
}

/// One action to record.
pub struct AuditEvent<'a> {
    pub action: AuditAction,
    pub user_id: Option<&'a str>,
    pub case_id: Option<&'a CaseId>,
    pub details: Value,
}

/// A row's hash: SHA-256 over its fields and the previous row's hash.
pub fn row_hash(
    seq: i64,
    at: i64,
    action: &str,
    user_id: Option<&str>,
    case_id: Option<&str>,
    details: &str,
    prev_hash: &str,
) -> String {
    // A JSON array is an unambiguous encoding of the fields.
    let canonical = serde_json::to_string(&(seq, at, action, user_id, case_id, details, prev_hash))
        .expect("serialising plain values cannot fail");
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// The seal of a head: HMAC-SHA256 of `seq:hash` under the audit key.
fn seal(key: &AuditKey, seq: i64, hash: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key.0).expect("HMAC takes keys of any length");
    mac.update(format!("{seq}:{hash}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Appends `event` inside the caller's transaction, sealing the new head when `db` has an
/// audit key; returns its sequence number.
pub(crate) async fn record(tx: &mut AnyConnection, db: &Db, event: AuditEvent<'_>) -> Result<i64, AppError> {
    // Updating the single head row locks it until commit: writers take turns, so the chain
    // stays linear even with several app instances.
    let (seq, prev_hash): (i64, String) =
        sqlx::query_as("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
            .fetch_one(&mut *tx)
            .await?;
    let at = now_ms();
    let details = event.details.to_string();
    let hash = row_hash(
        seq,
        at,
        event.action.as_str(),
        event.user_id,
        event.case_id.map(CaseId::as_str),
        &details,
        &prev_hash,
    );
    sqlx::query(
        "INSERT INTO audit_log (seq, at, action, user_id, case_id, details, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(seq)
    .bind(at)
    .bind(event.action.as_str())
    .bind(event.user_id)
    .bind(event.case_id)
    .bind(&details)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *tx)
    .await?;
    let mac = db.audit_key.as_ref().map(|key| seal(key, seq, &hash));
    sqlx::query("UPDATE audit_head SET hash = $1, mac = $2 WHERE id = 1")
        .bind(&hash)
        .bind(mac)
        .execute(&mut *tx)
        .await?;
    Ok(seq)
}

/// Result of checking the whole chain.
#[derive(Debug, PartialEq)]
pub struct ChainReport {
    pub rows: i64,
    /// The first row that does not fit, and why.
    pub first_broken: Option<(i64, String)>,
}

/// An `audit_log` row as stored: texts as written, since the hash covers exactly those.
#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    at: i64,
    action: String,
    user_id: Option<String>,
    case_id: Option<String>,
    details: String,
    prev_hash: String,
    hash: String,
}

pub async fn verify_chain(db: &Db) -> Result<ChainReport, AppError> {
    let rows: Vec<AuditRow> = sqlx::query_as(
        "SELECT seq, at, action, user_id, case_id, details, prev_hash, hash FROM audit_log ORDER BY seq",
    )
    .fetch_all(&db.pool)
    .await?;
    let rows_count = rows.len() as i64;
    let mut expected_prev = "0".repeat(64);
    for (index, row) in rows.into_iter().enumerate() {
        let seq = row.seq;
        let broken = |reason: String| Ok(ChainReport { rows: rows_count, first_broken: Some((seq, reason)) });
        if seq != index as i64 + 1 {
            return broken(format!("expected row {}, found row {seq}: rows are missing", index + 1));
        }
        if row.prev_hash != expected_prev {
            return broken("its previous-hash does not match the row before it".into());
        }
        let computed = row_hash(
            seq,
            row.at,
            &row.action,
            row.user_id.as_deref(),
            row.case_id.as_deref(),
            &row.details,
            &row.prev_hash,
        );
        if computed != row.hash {
            return broken("its content does not match its hash: the row was altered".into());
        }
        expected_prev = row.hash;
    }
    // Rows cut from the end leave a chain that verifies by itself; the head row, written in
    // the same transaction as every append, still names the last one.
    let (head_seq, head_hash, head_mac): (i64, String, Option<String>) =
        sqlx::query_as("SELECT seq, hash, mac FROM audit_head WHERE id = 1").fetch_one(&db.pool).await?;
    if head_seq != rows_count || head_hash != expected_prev {
        return Ok(ChainReport {
            rows: rows_count,
            first_broken: Some((
                rows_count + 1,
                format!("the log ends at row {rows_count}, but its head records row {head_seq}: rows were removed from its end"),
            )),
        });
    }
    // With the key, the head must carry its seal: a chain rewritten without the key cannot.
    if let Some(key) = &db.audit_key {
        if head_seq > 0 && head_mac.as_deref() != Some(seal(key, head_seq, &head_hash).as_str()) {
            return Ok(ChainReport {
                rows: rows_count,
                first_broken: Some((
                    head_seq,
                    "the chain's head is not sealed with the audit key: the log was rewritten, or written without the key (`audit seal` seals a verified head)".into(),
                )),
            });
        }
    }
    Ok(ChainReport { rows: rows_count, first_broken: None })
}

/// Seals the current head with the audit key, after checking the chain: for a log written
/// before the key was configured.
pub(crate) async fn seal_head(db: &Db) -> Result<(), AppError> {
    let key = db
        .audit_key
        .as_ref()
        .ok_or_else(|| AppError::BadRequest("no audit key is configured (SEGLAB_AUDIT_KEY)".into()))?;
    let unkeyed = Db { audit_key: None, ..db.clone() };
    if let Some((seq, reason)) = verify_chain(&unkeyed).await?.first_broken {
        return Err(AppError::Conflict(format!("the chain is broken at row {seq} ({reason}); it is not sealed")));
    }
    let (seq, hash) = head(db).await?;
    sqlx::query("UPDATE audit_head SET mac = $1 WHERE id = 1 AND seq = $2")
        .bind(seal(key, seq, &hash))
        .bind(seq)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// The chain's last row: its sequence number and hash.
pub async fn head(db: &Db) -> Result<(i64, String), AppError> {
    Ok(sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(&db.pool).await?)
}

/// The hash of row `seq`, if the log holds it.
pub(crate) async fn hash_of(db: &Db, seq: i64) -> Result<Option<String>, AppError> {
    Ok(sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1").bind(seq).fetch_optional(&db.pool).await?)
}
