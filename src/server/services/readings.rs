//! Several readers per case: a coordinator plans how many independent readings a case needs;
//! readers take them (or are given them); each reading is its own chain of mask versions,
//! saved through `labels` like any label; once every reading is submitted (`workflow`), their
//! agreement is measured and an adjudicator replaces the case's mask with their consensus
//! (majority vote or STAPLE, `crate::consensus`), edits it and approves it.
//!
//! Who may do each of these, and who is blinded to what, is decided by `access`.

use std::sync::Arc;

use base64::Engine;
use serde_json::json;
use uuid::Uuid;

use super::access::{self, Adjudicate, CaseAccess, CompareReadings, PlanReadings, Read, Save, TakeReading};
use super::audit::{self, AuditAction, AuditEvent};
use super::idempotency::{self, IdempotencyKey};
use super::labels::{self, SaveOutcome};
use super::mask_versions::{self, load_mask, Chain};
use super::workflow::user_with_role;
use super::worklist;
use crate::api::{
    CaseId, CaseReadings, ConsensusMethod, LabelDef, LabelSaved, MaskRef, PlannedCases, Reading, ReadingPlan,
    SaveLabelRequest, UserName, WorklistQuery,
};
use crate::consensus::{self, MAX_READINGS};
use crate::edits::MaskEdits;
use crate::server::clock::now_ms;
use crate::server::error::AppError;
use crate::server::identity::{Role, User};
use crate::server::mask_cache::DecodedMask;
use crate::server::state::AppState;

fn check_plan(plan: &ReadingPlan) -> Result<(), AppError> {
    if !(1..=MAX_READINGS as u32).contains(&plan.required) {
        return Err(AppError::Unprocessable(format!("a case needs 1 to {MAX_READINGS} readings")));
    }
    Ok(())
}

/// `PUT /cases/{id}/readings`: sets how many readings the case needs and whether its readers
/// are blinded to the models. Never fewer than are taken.
pub async fn plan(
    state: &AppState,
    mut access: CaseAccess<PlanReadings>,
    plan: &ReadingPlan,
) -> Result<CaseReadings, AppError> {
    check_plan(plan)?;
    let mut tx = state.db.pool.begin().await?;
    access.lock_and_recheck(&mut tx, access::rules(state)).await?;
    let taken = access.facts().readings_taken;
    if taken > 0 && (plan.required < 2 || i64::from(plan.required) < taken) {
        return Err(AppError::Conflict(format!(
            "{taken} readings of this case are taken; it needs at least as many (and at least 2)"
        )));
    }
    let (user, case_id) = (access.user(), access.case_id());
    sqlx::query("UPDATE cases SET readings_required = $1, blind = $2 WHERE id = $3")
        .bind(i64::from(plan.required))
        .bind(i64::from(plan.blind))
        .bind(case_id)
        .execute(&mut *tx)
        .await?;
    let details = json!({ "required": plan.required, "blind": plan.blind });
    audit::record(
        &mut tx,
        &state.db,
        AuditEvent { action: AuditAction::ReadingsPlanned, user_id: Some(&user.id), case_id: Some(case_id), details },
    )
    .await?;
    tx.commit().await?;
    Ok(CaseReadings {
        required: plan.required,
        blind: plan.blind,
        taken: taken as u32,
        submitted: access.facts().readings_submitted as u32,
        readings: Vec::new(),
    })
}

/// Most cases one `PUT /readings` plans: each is its own transaction.
const MAX_CASES_PLANNED: usize = 10_000;

/// `PUT /readings?{worklist filters}`: [`plan`] on every case the filter selects that `user`
/// may read, each decided as if planned alone; those it refuses as a conflict (labelled
/// already, more readings taken) are left as they are and counted.
pub async fn plan_selected(
    state: &AppState,
    user: &User,
    query: &WorklistQuery,
    request: &ReadingPlan,
) -> Result<PlannedCases, AppError> {
    check_plan(request)?;
    let mut conn = state.db.pool.acquire().await?;
    let (selected, binds) = worklist::selection(&mut conn, state.db.backend, user, query).await?;
    let sql =
        format!("SELECT c.id FROM cases c {selected} ORDER BY c.created_at, c.id LIMIT {}", MAX_CASES_PLANNED + 1);
    let mut selecting = sqlx::query_scalar::<_, CaseId>(&sql);
    for value in &binds {
        selecting = selecting.bind(value);
    }
    let cases = selecting.fetch_all(&mut *conn).await?;
    drop(conn);
    if cases.len() > MAX_CASES_PLANNED {
        return Err(AppError::Unprocessable(format!(
            "the filter selects more than {MAX_CASES_PLANNED} cases; narrow it"
        )));
    }
    let mut outcome = PlannedCases { planned: 0, skipped: 0 };
    for case_id in cases {
        let planned = match access::authorize(state, user, &case_id, PlanReadings).await {
            Ok(access) => plan(state, access, request).await.map(|_| ()),
            Err(err) => Err(err),
        };
        match planned {
            Ok(()) => outcome.planned += 1,
            Err(AppError::Conflict(_)) => outcome.skipped += 1,
            Err(err) => return Err(err),
        }
    }
    Ok(outcome)
}

/// `POST /cases/{id}/readings`: a reading of the case for `reader` (the caller when none),
/// starting from the case's current mask.
pub async fn take(
    state: &AppState,
    mut access: CaseAccess<TakeReading>,
    reader: Option<&UserName>,
) -> Result<Reading, AppError> {
    let (reader_id, reader_name) = match reader {
        Some(name) if access.action().for_other => {
            let mut conn = state.db.pool.acquire().await?;
            (user_with_role(&mut conn, name.as_str(), Role::Labeler).await?, name.clone())
        }
        _ => (access.user().id.clone(), access.user().username.clone()),
    };
    let mut tx = state.db.pool.begin().await?;
    access.lock_and_recheck(&mut tx, access::rules(state)).await?;
    let (user, case_id, case) = (access.user(), access.case_id(), access.facts());
    if case.reviewer_id.as_deref() == Some(reader_id.as_str()) {
        return Err(AppError::Conflict("the case's reviewer adjudicates it, so does not read it".into()));
    }
    let already: Option<String> = sqlx::query_scalar("SELECT id FROM readings WHERE case_id = $1 AND reader_id = $2")
        .bind(case_id)
        .bind(&reader_id)
        .fetch_optional(&mut *tx)
        .await?;
    if already.is_some() {
        return Err(AppError::Conflict("they read this case already; nobody reads a case twice".into()));
    }
    let (head, file_stored): (MaskRef, i64) = sqlx::query_as(
        "SELECT c.head_mask_ref, o.file_stored FROM cases c JOIN objects o ON o.object_ref = c.head_mask_ref WHERE c.id = $1",
    )
    .bind(case_id)
    .fetch_one(&mut *tx)
    .await?;
    let id = Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO readings (id, case_id, reader_id, head_mask_ref, submitted_at, created_at)
         VALUES ($1, $2, $3, $4, NULL, $5)",
    )
    .bind(&id)
    .bind(case_id)
    .bind(&reader_id)
    .bind(&head)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    let details = json!({ "reading_id": id, "reader": reader_name, "starts_from": head });
    audit::record(
        &mut tx,
        &state.db,
        AuditEvent { action: AuditAction::ReadingTaken, user_id: Some(&user.id), case_id: Some(case_id), details },
    )
    .await?;
    tx.commit().await?;
    Ok(Reading {
        id,
        reader: reader_name,
        url: mask_versions::file_url(state, head.as_str(), file_stored == 1).await?,
        mask_ref: head,
        submitted: false,
    })
}

/// A reading as stored, with its reader's name.
#[derive(sqlx::FromRow)]
pub(super) struct ReadingRow {
    id: String,
    reader: UserName,
    pub(super) head_mask_ref: MaskRef,
    submitted_at: Option<i64>,
    file_stored: i64,
}

/// The case's readings, in the order they were taken; only the caller's own when they are
/// blinded to the others.
pub(super) async fn readings_of(
    state: &AppState,
    case_id: &CaseId,
    only: Option<&str>,
) -> Result<Vec<ReadingRow>, AppError> {
    Ok(sqlx::query_as(
        "SELECT g.id, u.username AS reader, g.head_mask_ref, g.submitted_at, o.file_stored
         FROM readings g JOIN users u ON u.id = g.reader_id JOIN objects o ON o.object_ref = g.head_mask_ref
         WHERE g.case_id = $1 AND ($2 = '' OR g.id = $2)
         ORDER BY g.created_at, g.id",
    )
    .bind(case_id)
    .bind(only.unwrap_or_default())
    .fetch_all(&state.db.pool)
    .await?)
}

/// `GET /cases/{id}/readings`: the plan and the readings the caller may see: all of them for
/// those who may compare them, a reader's own otherwise, none for anyone else.
pub async fn list(state: &AppState, access: &CaseAccess<Read>) -> Result<CaseReadings, AppError> {
    let case = access.facts();
    let may_compare = access::may(access, &CompareReadings, access::rules(state));
    let rows = match (may_compare, case.my_reading_id.as_deref()) {
        (true, _) => readings_of(state, access.case_id(), None).await?,
        (false, Some(mine)) => readings_of(state, access.case_id(), Some(mine)).await?,
        (false, None) => Vec::new(),
    };
    let mut readings = Vec::with_capacity(rows.len());
    for row in rows {
        readings.push(Reading {
            url: mask_versions::file_url(state, row.head_mask_ref.as_str(), row.file_stored == 1).await?,
            id: row.id,
            reader: row.reader,
            mask_ref: row.head_mask_ref,
            submitted: row.submitted_at.is_some(),
        });
    }
    Ok(CaseReadings {
        required: case.workflow.readings_required as u32,
        blind: case.blind != 0,
        taken: case.readings_taken as u32,
        submitted: case.readings_submitted as u32,
        readings,
    })
}

/// The readers' names, their readings' current masks, and the case's labels.
pub(super) struct LoadedReadings {
    pub(super) readers: Vec<UserName>,
    pub(super) masks: Vec<Arc<DecodedMask>>,
    pub(super) labels: Vec<LabelDef>,
}

/// The masks of the readings `rows` (the case's, as [`readings_of`] read them), so that what is
/// measured is exactly what was read.
pub(super) async fn load_readings(
    state: &AppState,
    case_id: &CaseId,
    rows: Vec<ReadingRow>,
) -> Result<LoadedReadings, AppError> {
    if rows.len() < 2 {
        return Err(AppError::Conflict("fewer than two readings of this case are taken".into()));
    }
    let mut masks = Vec::with_capacity(rows.len());
    for row in &rows {
        masks.push(load_mask(state, row.head_mask_ref.as_str()).await?);
    }
    let labels_json: String = sqlx::query_scalar("SELECT labels_json FROM cases WHERE id = $1")
        .bind(case_id)
        .fetch_one(&state.db.pool)
        .await?;
    let labels = serde_json::from_str(&labels_json).map_err(AppError::internal)?;
    Ok(LoadedReadings { readers: rows.into_iter().map(|row| row.reader).collect(), masks, labels })
}

/// `POST /cases/{id}/consensus`: the readings' consensus saved as the case's new mask version,
/// through the label save path (so idempotent, compared-and-swapped and audited as a save),
/// with a `consensus` audit row naming the method and the readings it came from.
pub async fn consensus(
    state: &AppState,
    access: CaseAccess<Adjudicate>,
    save: CaseAccess<Save>,
    key: &IdempotencyKey,
    method: ConsensusMethod,
) -> Result<SaveOutcome, AppError> {
    // A retry of a consensus already saved: the case's mask is that consensus now, so
    // recomputing would compare it with itself.
    if let Some((status, body)) = idempotency::answered(&state.db, &access.user().id, key).await? {
        return Ok(SaveOutcome { status, body, replayed: true, written_bytes: 0 });
    }
    let case_id = access.case_id().clone();
    let loaded = load_readings(state, &case_id, readings_of(state, &case_id, None).await?).await?;
    // The consensus is saved as edits on the case's mask as it is now; the save refuses them
    // as stale if it moves meanwhile.
    let head = Chain::Case(&case_id).head(&mut *state.db.pool.acquire().await?).await?;
    let current = load_mask(state, head.as_str()).await?;
    let masks = loaded.masks.clone();
    let edits = tokio::task::spawn_blocking(move || {
        let labels: Vec<Vec<u8>> = masks.iter().map(|mask| mask.labels()).collect();
        let views: Vec<&[u8]> = labels.iter().map(Vec::as_slice).collect();
        let agreed = match method {
            ConsensusMethod::Staple => consensus::staple_consensus(&views).mask,
            ConsensusMethod::MajorityVote => consensus::majority_vote(&views),
        };
        MaskEdits::diff(&current.labels(), &agreed)
    })
    .await
    .map_err(AppError::internal)?;
    if edits.runs().is_empty() {
        return Err(AppError::Conflict(
            "the readers' consensus is the case's mask already: edit it or approve it as it is".into(),
        ));
    }
    let request = SaveLabelRequest {
        case_id: case_id.to_string(),
        base_mask_ref: head.to_string(),
        edits: base64::engine::general_purpose::STANDARD.encode(edits.encode()),
    };
    let outcome = labels::save_label(state, save, key, &request).await?;
    if !outcome.replayed {
        let saved: LabelSaved = serde_json::from_str(&outcome.body).map_err(AppError::internal)?;
        let details = json!({ "method": method, "label_id": saved.label_id, "new_mask_ref": saved.new_mask_ref,
                              "readers": loaded.readers });
        let mut tx = state.db.pool.begin().await?;
        audit::record(
            &mut tx,
            &state.db,
            AuditEvent {
                action: AuditAction::Consensus,
                user_id: Some(&access.user().id),
                case_id: Some(&case_id),
                details,
            },
        )
        .await?;
        tx.commit().await?;
    }
    Ok(outcome)
}
