//! The case workflow: who labels and who reviews a case, and where it stands
//! (`new → in_progress → submitted → approved`, `changes_requested` back to the labeler, an
//! approval reopened by a reviewer). Saves are limited to the case's labeler; approval pins the
//! mask version that was reviewed. Every assignment, transition and comment is written with its
//! audit row in one transaction, each change a compare-and-set on the case's row, so two
//! reviewers acting at once leave exactly one outcome.
//!
//! Who may do each of these is decided by `access`: every function here takes its permission.
//! Admins may act in any role on any case (audited as themselves), but nobody reviews a version
//! they saved.

use serde_json::json;
use sqlx::AnyConnection;
use uuid::Uuid;

use super::access::{self, Assign, CaseAccess, Read, Save, Take, Transition, WorkflowRow, WORKFLOW_FROM};
use super::audit::{self, AuditAction, AuditEvent};
use super::pacs_outbox;
use crate::api::{
    AssignCase, AssignablePeople, CaseComment, CaseId, CaseReview, CaseStatus, CaseWorkflow, ChangeStatus, UserName,
};
use crate::server::clock::now_ms;
use crate::server::error::AppError;
use crate::server::identity::{parse_roles, Role, User};
use crate::server::state::AppState;

/// Longest comment accepted, in bytes.
const MAX_COMMENT_BYTES: usize = 4000;

/// The case's workflow as it is now, after a change in `conn`'s transaction.
async fn workflow_of(conn: &mut AnyConnection, case_id: &CaseId) -> Result<CaseWorkflow, AppError> {
    let (workflow, cases) = WORKFLOW_FROM;
    let row: WorkflowRow = sqlx::query_as(&format!("SELECT {workflow} FROM {cases} WHERE c.id = $1"))
        .bind(case_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("case {case_id}")))?;
    Ok(row.into())
}

/// Inside a save's transaction, after its compare-and-swap of the head has locked the case's
/// row: decides again (the case may have been reassigned meanwhile), has an unassigned case
/// taken by its first labeler, notes who saved last, and moves the case to `in_progress`.
pub(crate) async fn on_save(
    tx: &mut AnyConnection,
    state: &AppState,
    access: &mut CaseAccess<Save>,
) -> Result<(), AppError> {
    access.recheck(tx, access::rules(state)).await?;
    let (user, case_id, case) = (access.user(), access.case_id(), access.facts());
    if case.several_readers() {
        return on_save_with_several_readers(tx, state, access).await;
    }
    if case.assignee_id.is_none() && !user.has_role(Role::Admin) {
        sqlx::query("UPDATE cases SET assignee_id = $1 WHERE id = $2")
            .bind(&user.id)
            .bind(case_id)
            .execute(&mut *tx)
            .await?;
        let details = json!({ "assignee": user.username, "reason": "first save" });
        audit::record(
            tx,
            &state.db,
            AuditEvent { action: AuditAction::CaseTaken, user_id: Some(&user.id), case_id: Some(case_id), details },
        )
        .await?;
    }
    // One write of the row: who saved last, and in progress (whatever it was before).
    sqlx::query("UPDATE cases SET last_saved_at = $1, last_saved_by = $2, status = $3 WHERE id = $4")
        .bind(now_ms())
        .bind(&user.id)
        .bind(CaseStatus::InProgress.as_str())
        .bind(case_id)
        .execute(&mut *tx)
        .await?;
    if case.status() != CaseStatus::InProgress {
        let details = json!({ "from": case.status().as_str(), "to": "in_progress", "reason": "save" });
        record_status(tx, state, user, case_id, details).await?;
    }
    Ok(())
}

/// A save into a reading moves a new case to `in_progress` and nothing else of the case's row
/// (who saved last would tell the other readers); the adjudicator's save is noted as any other.
async fn on_save_with_several_readers(
    tx: &mut AnyConnection,
    state: &AppState,
    access: &CaseAccess<Save>,
) -> Result<(), AppError> {
    let (user, case_id, case) = (access.user(), access.case_id(), access.facts());
    if case.open_reading().is_none() {
        sqlx::query("UPDATE cases SET last_saved_at = $1, last_saved_by = $2 WHERE id = $3")
            .bind(now_ms())
            .bind(&user.id)
            .bind(case_id)
            .execute(&mut *tx)
            .await?;
        return Ok(());
    }
    if case.status() == CaseStatus::New {
        sqlx::query("UPDATE cases SET status = $1 WHERE id = $2")
            .bind(CaseStatus::InProgress.as_str())
            .bind(case_id)
            .execute(&mut *tx)
            .await?;
        let details = json!({ "from": "new", "to": "in_progress", "reason": "first reading saved" });
        record_status(tx, state, user, case_id, details).await?;
    }
    Ok(())
}

/// The audit row of a case's status change, inside the change's transaction.
async fn record_status(
    tx: &mut AnyConnection,
    state: &AppState,
    user: &User,
    case_id: &CaseId,
    details: serde_json::Value,
) -> Result<(), AppError> {
    let event =
        AuditEvent { action: AuditAction::CaseStatus, user_id: Some(&user.id), case_id: Some(case_id), details };
    audit::record(tx, &state.db, event).await?;
    Ok(())
}

/// The id of the active user `name`, who must hold `role`.
pub(crate) async fn user_with_role(conn: &mut AnyConnection, name: &str, role: Role) -> Result<String, AppError> {
    let (id, roles): (String, String) =
        sqlx::query_as("SELECT id, roles FROM users WHERE username = $1 AND disabled_at IS NULL")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| AppError::Unprocessable(format!("there is no active user named {name:?}")))?;
    if !parse_roles(&roles).contains(&role) {
        return Err(AppError::Unprocessable(format!(
            "{name} does not have the role {role}, so cannot be the case's {role}"
        )));
    }
    Ok(id)
}

/// `PUT /cases/{id}/assignment`: sets (or clears) the case's labeler and reviewer.
pub(crate) async fn assign(
    state: &AppState,
    access: CaseAccess<Assign>,
    request: &AssignCase,
) -> Result<CaseWorkflow, AppError> {
    let (user, case_id) = (access.user(), access.case_id());
    let mut conn = state.db.pool.acquire().await?;
    let assignee = match &request.assignee {
        Some(name) => Some(user_with_role(&mut conn, name, Role::Labeler).await?),
        None => None,
    };
    let reviewer = match &request.reviewer {
        Some(name) => Some(user_with_role(&mut conn, name, Role::Reviewer).await?),
        None => None,
    };
    drop(conn);
    // The write comes first in the transaction (SQLite takes its write lock before any read).
    let mut tx = state.db.pool.begin().await?;
    let changed = sqlx::query(
        "UPDATE cases SET assignee_id = $1, reviewer_id = $2, restricted = COALESCE($3, restricted) WHERE id = $4",
    )
    .bind(&assignee)
    .bind(&reviewer)
    .bind(request.restricted.map(i64::from))
    .bind(case_id)
    .execute(&mut *tx)
    .await?;
    if changed.rows_affected() == 0 {
        return Err(AppError::NotFound(format!("case {case_id}")));
    }
    let details =
        json!({ "assignee": request.assignee, "reviewer": request.reviewer, "restricted": request.restricted });
    audit::record(
        &mut tx,
        &state.db,
        AuditEvent { action: AuditAction::CaseAssigned, user_id: Some(&user.id), case_id: Some(case_id), details },
    )
    .await?;
    let workflow = workflow_of(&mut tx, case_id).await?;
    tx.commit().await?;
    Ok(workflow)
}

/// The active labelers and reviewers, for a coordinator's assignment form.
async fn assignable_people(state: &AppState) -> Result<AssignablePeople, AppError> {
    let rows: Vec<(UserName, String)> =
        sqlx::query_as("SELECT username, roles FROM users WHERE disabled_at IS NULL ORDER BY username")
            .fetch_all(&state.db.pool)
            .await?;
    let mut people = AssignablePeople::default();
    for (username, roles) in rows {
        let roles = parse_roles(&roles);
        if roles.contains(&Role::Labeler) {
            people.labelers.push(username.clone());
        }
        if roles.contains(&Role::Reviewer) {
            people.reviewers.push(username);
        }
    }
    Ok(people)
}

/// `POST /cases/{id}/take`: a labeler takes an unassigned case, where the deployment allows it.
pub async fn take(state: &AppState, mut access: CaseAccess<Take>) -> Result<CaseWorkflow, AppError> {
    let (user, case_id) = (access.user().clone(), access.case_id().clone());
    let case_id = &case_id;
    let mut tx = state.db.pool.begin().await?;
    let taken = sqlx::query("UPDATE cases SET assignee_id = $1 WHERE id = $2 AND assignee_id IS NULL")
        .bind(&user.id)
        .bind(case_id)
        .execute(&mut *tx)
        .await?;
    if taken.rows_affected() == 0 {
        // Someone was quicker, or the caller had it already: decide again on the row as it is.
        access.recheck(&mut tx, access::rules(state)).await?;
        let workflow = workflow_of(&mut tx, case_id).await?;
        tx.rollback().await?;
        return Ok(workflow);
    }
    let details = json!({ "assignee": user.username, "reason": "taken" });
    audit::record(
        &mut tx,
        &state.db,
        AuditEvent { action: AuditAction::CaseTaken, user_id: Some(&user.id), case_id: Some(case_id), details },
    )
    .await?;
    let workflow = workflow_of(&mut tx, case_id).await?;
    tx.commit().await?;
    Ok(workflow)
}

/// `PUT /cases/{id}/status`: submit, approve (pinning the current mask version), request
/// changes or reopen, with an optional comment (required when sending back or reopening).
pub(crate) async fn change_status(
    state: &AppState,
    mut access: CaseAccess<Transition>,
    request: &ChangeStatus,
) -> Result<CaseWorkflow, AppError> {
    let to = access.action().0;
    if to != request.status {
        return Err(AppError::internal(format!(
            "a permission to move the case to {} used for {}",
            to.as_str(),
            request.status.as_str()
        )));
    }
    let comment = request.comment.as_deref().map(str::trim).filter(|text| !text.is_empty());
    let needs_comment = matches!(to, CaseStatus::ChangesRequested | CaseStatus::InProgress);
    if needs_comment && comment.is_none() {
        return Err(AppError::Unprocessable(format!(
            "say why in a comment: moving a case to {} needs one",
            to.as_str()
        )));
    }
    if comment.is_some_and(|text| text.len() > MAX_COMMENT_BYTES) {
        return Err(AppError::Unprocessable(format!("a comment holds at most {MAX_COMMENT_BYTES} bytes")));
    }
    if let Some(anchor) = request.anchor {
        check_anchor(&mut *state.db.pool.acquire().await?, access.case_id(), anchor).await?;
    }

    // A concurrent transition, reassignment or save makes this one fail.
    let mut tx = state.db.pool.begin().await?;
    access.lock_and_recheck(&mut tx, access::rules(state)).await?;
    if to == CaseStatus::Submitted && access.facts().several_readers() {
        if comment.is_some() {
            return Err(AppError::Unprocessable(
                "a reading is submitted without a comment: comments are seen by the other readers".into(),
            ));
        }
        let workflow = submit_reading(&mut tx, state, &access).await?;
        tx.commit().await?;
        if workflow.status == CaseStatus::Submitted {
            // Every reading is in: the evaluator measures their agreement.
            state.evaluations_ready.notify_one();
        }
        return Ok(workflow);
    }
    let (user, case_id, from) = (access.user(), access.case_id(), access.facts().status());
    let pin = if to == CaseStatus::Approved { ", approved_mask_ref = head_mask_ref" } else { "" };
    sqlx::query(&format!("UPDATE cases SET status = $1{pin} WHERE id = $2"))
        .bind(to.as_str())
        .bind(case_id)
        .execute(&mut *tx)
        .await?;
    if to == CaseStatus::Approved && state.pacs.is_some() && state.config.dicomweb.pacs_send_on_approval {
        pacs_outbox::enqueue_approved(&mut tx, case_id, now_ms()).await?;
    }
    let comment_id = match comment {
        Some(body) => Some(add_comment(&mut tx, user, case_id, body, request.anchor).await?),
        None => None,
    };
    let workflow = workflow_of(&mut tx, case_id).await?;
    let details = json!({
        "from": from.as_str(),
        "to": to.as_str(),
        "comment_id": comment_id,
        "comment": comment,
        "approved_mask_ref": (to == CaseStatus::Approved).then_some(&workflow.approved_mask_ref),
    });
    audit::record(
        &mut tx,
        &state.db,
        AuditEvent { action: AuditAction::CaseStatus, user_id: Some(&user.id), case_id: Some(case_id), details },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(%case_id, from = from.as_str(), to = to.as_str(), user = %user.username, "case status changed");
    Ok(workflow)
}

/// Inside `change_status`'s transaction: submits the caller's reading, and the case when it is
/// the last one its plan needs, for adjudication.
async fn submit_reading(
    tx: &mut AnyConnection,
    state: &AppState,
    access: &CaseAccess<Transition>,
) -> Result<CaseWorkflow, AppError> {
    let (user, case_id, case) = (access.user(), access.case_id(), access.facts());
    let reading = case.open_reading().ok_or_else(|| AppError::internal("a reading submitted twice"))?;
    sqlx::query("UPDATE readings SET submitted_at = $1 WHERE id = $2 AND submitted_at IS NULL")
        .bind(now_ms())
        .bind(reading)
        .execute(&mut *tx)
        .await?;
    let details = json!({ "reading_id": reading, "readings_submitted": case.readings_submitted + 1 });
    audit::record(
        tx,
        &state.db,
        AuditEvent { action: AuditAction::ReadingSubmitted, user_id: Some(&user.id), case_id: Some(case_id), details },
    )
    .await?;
    if case.readings_submitted + 1 >= case.workflow.readings_required {
        sqlx::query("UPDATE cases SET status = $1 WHERE id = $2")
            .bind(CaseStatus::Submitted.as_str())
            .bind(case_id)
            .execute(&mut *tx)
            .await?;
        let details = json!({ "from": case.status().as_str(), "to": "submitted", "reason": "every reading submitted" });
        record_status(tx, state, user, case_id, details).await?;
    }
    workflow_of(tx, case_id).await
}

/// Refuses an anchor outside the case's volume.
async fn check_anchor(conn: &mut AnyConnection, case_id: &CaseId, anchor: [u32; 3]) -> Result<(), AppError> {
    let (i, j, k): (i64, i64, i64) = sqlx::query_as(
        "SELECT o.dim_i, o.dim_j, o.dim_k FROM cases c JOIN objects o ON o.object_ref = c.head_mask_ref WHERE c.id = $1",
    )
    .bind(case_id)
    .fetch_one(&mut *conn)
    .await?;
    let dims = [i, j, k];
    if anchor.iter().zip(dims).any(|(&at, size)| at as i64 >= size) {
        return Err(AppError::Unprocessable(format!(
            "the comment's voxel {anchor:?} lies outside the volume {dims:?}"
        )));
    }
    Ok(())
}

async fn add_comment(
    tx: &mut AnyConnection,
    user: &User,
    case_id: &CaseId,
    body: &str,
    anchor: Option<[u32; 3]>,
) -> Result<String, AppError> {
    let id = Uuid::new_v4().to_string();
    let [i, j, k] = anchor.map(|a| a.map(|at| Some(at as i64))).unwrap_or([None; 3]);
    sqlx::query(
        "INSERT INTO case_comments (id, case_id, user_id, body, anchor_i, anchor_j, anchor_k, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(case_id)
    .bind(&user.id)
    .bind(body)
    .bind(i)
    .bind(j)
    .bind(k)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    Ok(id)
}

/// The review panel's content for the case's reader: the workflow as read with the access
/// decision, the comments, and whom a coordinator may assign.
pub async fn review(state: &AppState, access: &CaseAccess<Read>) -> Result<CaseReview, AppError> {
    let actions = access::actions(access, access::rules(state));
    let workflow = access.facts().workflow.clone().into();
    let assignable = match actions.assign {
        true => Some(assignable_people(state).await?),
        false => None,
    };
    Ok(CaseReview { workflow, actions, comments: comments(state, access).await?, assignable })
}

/// `GET /cases/{id}/comments`: the case's comments, oldest first.
pub async fn comments(state: &AppState, access: &CaseAccess<Read>) -> Result<Vec<CaseComment>, AppError> {
    #[derive(sqlx::FromRow)]
    struct CommentRow {
        id: String,
        username: UserName,
        body: String,
        anchor_i: Option<i64>,
        anchor_j: Option<i64>,
        anchor_k: Option<i64>,
        created_at: i64,
    }
    let rows: Vec<CommentRow> = sqlx::query_as(
        "SELECT m.id, u.username, m.body, m.anchor_i, m.anchor_j, m.anchor_k, m.created_at
         FROM case_comments m JOIN users u ON u.id = m.user_id
         WHERE m.case_id = $1 ORDER BY m.created_at, m.id",
    )
    .bind(access.case_id())
    .fetch_all(&state.db.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| CaseComment {
            id: row.id,
            username: row.username,
            body: row.body,
            anchor: match [row.anchor_i, row.anchor_j, row.anchor_k] {
                [Some(i), Some(j), Some(k)] => Some([i as u32, j as u32, k as u32]),
                _ => None,
            },
            created_at_ms: row.created_at,
        })
        .collect())
}
