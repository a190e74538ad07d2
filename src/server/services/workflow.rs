//! The case workflow: who labels and who reviews a case, and where it stands
//! (`new → in_progress → submitted → approved`, `changes_requested` back to the labeler, an
//! approval reopened by a reviewer). Saves are limited to the case's labeler; approval pins the
//! mask version that was reviewed. Every assignment, transition and comment is written with its
//! audit row in one transaction, each change a compare-and-set on the case's row, so two
//! reviewers acting at once leave exactly one outcome.
//!
//! Admins may act in any role on any case (audited as themselves), so a one-person deployment
//! can carry a case through.

use serde_json::json;
use sqlx::AnyConnection;
use sqlx::Row;
use uuid::Uuid;

use super::audit::{self, AuditEvent};
use super::users::{parse_roles, Role, User};
use crate::api::{AssignCase, AssignablePeople, CaseActions, CaseComment, CaseReview, CaseStatus, CaseWorkflow, ChangeStatus};
use crate::server::clock::now_ms;
use crate::server::error::AppError;
use crate::server::state::AppState;

/// Longest comment accepted, in bytes.
const MAX_COMMENT_BYTES: usize = 4000;

/// A case's workflow columns, as stored.
struct Stored {
    status: CaseStatus,
    assignee_id: Option<String>,
    reviewer_id: Option<String>,
    restricted: bool,
}

impl Stored {
    /// Whether `user` labels or reviews the case.
    fn involves(&self, user: &User) -> bool {
        [&self.assignee_id, &self.reviewer_id].iter().any(|id| id.as_deref() == Some(user.id.as_str()))
    }
}

/// A status as the database holds it.
fn parse_status(case_id: &str, status: &str) -> Result<CaseStatus, AppError> {
    CaseStatus::parse(status).ok_or_else(|| AppError::internal(format!("case {case_id} has status {status:?}")))
}

async fn stored(conn: &mut AnyConnection, case_id: &str) -> Result<Stored, AppError> {
    let row = sqlx::query("SELECT status, assignee_id, reviewer_id, restricted FROM cases WHERE id = $1")
        .bind(case_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("case {case_id}")))?;
    Ok(Stored {
        status: parse_status(case_id, &row.get::<String, _>("status"))?,
        assignee_id: row.get("assignee_id"),
        reviewer_id: row.get("reviewer_id"),
        restricted: row.get::<i64, _>("restricted") != 0,
    })
}

/// The case's workflow as clients see it: usernames, not ids.
pub async fn workflow_of(conn: &mut AnyConnection, case_id: &str) -> Result<CaseWorkflow, AppError> {
    let row = sqlx::query(
        "SELECT c.status, a.username AS assignee, r.username AS reviewer, c.approved_mask_ref, c.restricted
         FROM cases c LEFT JOIN users a ON a.id = c.assignee_id LEFT JOIN users r ON r.id = c.reviewer_id
         WHERE c.id = $1",
    )
    .bind(case_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| AppError::NotFound(format!("case {case_id}")))?;
    Ok(CaseWorkflow {
        status: parse_status(case_id, &row.get::<String, _>("status"))?,
        assignee: row.get("assignee"),
        reviewer: row.get("reviewer"),
        approved_mask_ref: row.get("approved_mask_ref"),
        restricted: row.get::<i64, _>("restricted") != 0,
    })
}

/// The SQL condition (on cases `c`) of the cases `user` may read, binding the user's id as
/// `$param`: unrestricted ones, and restricted ones they label or review; coordinators read all.
pub fn readable_condition(user: &User, param: usize) -> String {
    if user.is_coordinator() {
        // True for everyone (ids are never empty) without reading a column of the case, so a
        // count stays an index-only scan; it names the parameter because PostgreSQL refuses a
        // bound value the statement never uses.
        format!("(${param} <> '')")
    } else {
        format!("(c.restricted = 0 OR c.assignee_id = ${param} OR c.reviewer_id = ${param})")
    }
}

/// Refuses `user` a restricted case they neither label nor review (coordinators read all).
pub async fn check_may_read(state: &AppState, user: &User, case_id: &str) -> Result<(), AppError> {
    let case = stored(&mut *state.db.pool.acquire().await?, case_id).await?;
    if !case.restricted || case.involves(user) || user.is_coordinator() {
        Ok(())
    } else {
        Err(AppError::Forbidden("this case is restricted to its labeler and reviewer, ML engineers and admins".into()))
    }
}

async fn username(conn: &mut AnyConnection, user_id: &str) -> Result<String, AppError> {
    Ok(sqlx::query("SELECT username FROM users WHERE id = $1").bind(user_id).fetch_one(&mut *conn).await?.get("username"))
}

/// Whether `user` may save on a case with these workflow columns: its labeler, anyone when it is
/// unassigned and labelers may take cases themselves, and admins.
async fn check_may_save(conn: &mut AnyConnection, user: &User, case: &Stored, self_assignment: bool) -> Result<(), AppError> {
    match &case.assignee_id {
        _ if user.has_role(Role::Admin) => Ok(()),
        Some(assignee) if *assignee == user.id => Ok(()),
        Some(assignee) => Err(AppError::Forbidden(format!(
            "this case is assigned to {}; only they (or an admin) can save on it",
            username(conn, assignee).await?
        ))),
        None if self_assignment => Ok(()),
        None => Err(AppError::Forbidden(
            "this case is not assigned to you; an ML engineer or admin assigns cases here".into(),
        )),
    }
}

/// Before a save does any work: refuses a caller who may not save on the case.
pub async fn check_save_allowed(state: &AppState, user: &User, case_id: &str) -> Result<(), AppError> {
    let mut conn = state.db.pool.acquire().await?;
    let case = stored(&mut conn, case_id).await?;
    check_may_save(&mut conn, user, &case, state.config.allows_self_assignment()).await
}

/// Inside a save's transaction, after its compare-and-swap of the head has locked the case's
/// row: checks the caller again (the case may have been reassigned meanwhile), has an
/// unassigned case taken by its first labeler, notes who saved last, and moves the case to
/// `in_progress`.
pub async fn on_save(tx: &mut AnyConnection, state: &AppState, user: &User, case_id: &str) -> Result<(), AppError> {
    let case = stored(tx, case_id).await?;
    check_may_save(tx, user, &case, state.config.allows_self_assignment()).await?;
    if case.assignee_id.is_none() && user.has_role(Role::Labeler) && !user.has_role(Role::Admin) {
        sqlx::query("UPDATE cases SET assignee_id = $1 WHERE id = $2").bind(&user.id).bind(case_id).execute(&mut *tx).await?;
        let details = json!({ "assignee": user.username, "reason": "first save" });
        audit::record(tx, &state.db, AuditEvent { action: "case_taken", user_id: Some(&user.id), case_id: Some(case_id), details })
            .await?;
    }
    // One write of the row: who saved last, and in progress (whatever it was before).
    sqlx::query("UPDATE cases SET last_saved_at = $1, last_saved_by = $2, status = 'in_progress' WHERE id = $3")
        .bind(now_ms())
        .bind(&user.id)
        .bind(case_id)
        .execute(&mut *tx)
        .await?;
    if case.status != CaseStatus::InProgress {
        let details = json!({ "from": case.status.as_str(), "to": "in_progress", "reason": "save" });
        audit::record(tx, &state.db, AuditEvent { action: "case_status", user_id: Some(&user.id), case_id: Some(case_id), details })
            .await?;
    }
    Ok(())
}

/// The id of the active user `name`, who must hold `role`.
async fn user_with_role(conn: &mut AnyConnection, name: &str, role: Role) -> Result<String, AppError> {
    let row = sqlx::query("SELECT id, roles FROM users WHERE username = $1 AND disabled_at IS NULL")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| AppError::Unprocessable(format!("there is no active user named {name:?}")))?;
    if !parse_roles(&row.get::<String, _>("roles")).contains(&role) {
        return Err(AppError::Unprocessable(format!("{name} does not have the role {role}, so cannot be the case's {role}")));
    }
    Ok(row.get("id"))
}

/// `PUT /cases/{id}/assignment`: sets (or clears) the case's labeler and reviewer.
pub async fn assign(state: &AppState, user: &User, case_id: &str, request: &AssignCase) -> Result<CaseWorkflow, AppError> {
    user.require_any(&Role::COORDINATORS, "assigning cases")?;
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
    let changed = sqlx::query("UPDATE cases SET assignee_id = $1, reviewer_id = $2, restricted = COALESCE($3, restricted) WHERE id = $4")
        .bind(&assignee)
        .bind(&reviewer)
        .bind(request.restricted.map(i64::from))
        .bind(case_id)
        .execute(&mut *tx)
        .await?;
    if changed.rows_affected() == 0 {
        return Err(AppError::NotFound(format!("case {case_id}")));
    }
    let details = json!({ "assignee": request.assignee, "reviewer": request.reviewer, "restricted": request.restricted });
    audit::record(&mut tx, &state.db, AuditEvent { action: "case_assigned", user_id: Some(&user.id), case_id: Some(case_id), details })
        .await?;
    let workflow = workflow_of(&mut tx, case_id).await?;
    tx.commit().await?;
    Ok(workflow)
}

/// The active labelers and reviewers, for a coordinator's assignment form.
pub async fn assignable_people(state: &AppState, user: &User) -> Result<AssignablePeople, AppError> {
    user.require_any(&Role::COORDINATORS, "assigning cases")?;
    let rows = sqlx::query("SELECT username, roles FROM users WHERE disabled_at IS NULL ORDER BY username")
        .fetch_all(&state.db.pool)
        .await?;
    let mut people = AssignablePeople::default();
    for row in rows {
        let (username, roles): (String, String) = (row.get("username"), row.get("roles"));
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
pub async fn take(state: &AppState, user: &User, case_id: &str) -> Result<CaseWorkflow, AppError> {
    user.require_any(&[Role::Labeler], "taking a case")?;
    if !state.config.allows_self_assignment() {
        return Err(AppError::Forbidden("labelers cannot take cases themselves here; an ML engineer or admin assigns them".into()));
    }
    let mut tx = state.db.pool.begin().await?;
    let taken = sqlx::query("UPDATE cases SET assignee_id = $1 WHERE id = $2 AND assignee_id IS NULL")
        .bind(&user.id)
        .bind(case_id)
        .execute(&mut *tx)
        .await?;
    if taken.rows_affected() == 0 {
        let case = stored(&mut tx, case_id).await?;
        return match case.assignee_id {
            Some(assignee) if assignee == user.id => {
                let workflow = workflow_of(&mut tx, case_id).await?;
                tx.rollback().await?;
                Ok(workflow)
            }
            Some(assignee) => Err(AppError::Conflict(format!("this case is already assigned to {}", username(&mut tx, &assignee).await?))),
            None => Err(AppError::Conflict("the case changed while this request ran; try again".into())),
        };
    }
    let details = json!({ "assignee": user.username, "reason": "taken" });
    audit::record(&mut tx, &state.db, AuditEvent { action: "case_taken", user_id: Some(&user.id), case_id: Some(case_id), details }).await?;
    let workflow = workflow_of(&mut tx, case_id).await?;
    tx.commit().await?;
    Ok(workflow)
}

/// Checks that `user` may move `case` from its status to `to`; the comment rule included.
fn check_transition(user: &User, case: &Stored, to: CaseStatus, comment: Option<&str>) -> Result<(), AppError> {
    let admin = user.has_role(Role::Admin);
    let from = case.status;
    let allowed_from: &[CaseStatus] = match to {
        CaseStatus::Submitted => &[CaseStatus::InProgress, CaseStatus::ChangesRequested],
        CaseStatus::Approved | CaseStatus::ChangesRequested => &[CaseStatus::Submitted],
        CaseStatus::InProgress => &[CaseStatus::Approved],
        CaseStatus::New => &[],
    };
    if !allowed_from.contains(&from) {
        let hint = match to {
            CaseStatus::Submitted => "only a case in progress (or sent back with changes requested) can be submitted",
            CaseStatus::Approved | CaseStatus::ChangesRequested => "only a submitted case can be approved or sent back",
            CaseStatus::InProgress => "only an approved case is reopened this way; saving moves other cases to in_progress",
            CaseStatus::New => "no case goes back to new",
        };
        return Err(AppError::Conflict(format!("the case is {}; it cannot become {}: {hint}", from.as_str(), to.as_str())));
    }
    if to == CaseStatus::Submitted {
        if !admin && case.assignee_id.as_deref() != Some(user.id.as_str()) {
            return Err(AppError::Forbidden("only the case's labeler can submit it".into()));
        }
    } else {
        user.require_any(&[Role::Reviewer, Role::Admin], "reviewing cases")?;
        if !admin {
            if case.reviewer_id.as_deref().is_some_and(|reviewer| reviewer != user.id) {
                return Err(AppError::Forbidden("this case is assigned to another reviewer".into()));
            }
            if case.assignee_id.as_deref() == Some(user.id.as_str()) {
                return Err(AppError::Forbidden("a case is reviewed by someone other than its labeler".into()));
            }
        }
    }
    let needs_comment = matches!(to, CaseStatus::ChangesRequested | CaseStatus::InProgress);
    if needs_comment && comment.is_none_or(|text| text.trim().is_empty()) {
        return Err(AppError::Unprocessable(format!("say why in a comment: moving a case to {} needs one", to.as_str())));
    }
    Ok(())
}

/// `PUT /cases/{id}/status`: submit, approve (pinning the current mask version), request
/// changes or reopen, with an optional comment (required when sending back or reopening).
pub async fn change_status(state: &AppState, user: &User, case_id: &str, request: &ChangeStatus) -> Result<CaseWorkflow, AppError> {
    let comment = request.comment.as_deref().map(str::trim).filter(|text| !text.is_empty());
    if comment.is_some_and(|text| text.len() > MAX_COMMENT_BYTES) {
        return Err(AppError::Unprocessable(format!("a comment holds at most {MAX_COMMENT_BYTES} bytes")));
    }
    let mut conn = state.db.pool.acquire().await?;
    let case = stored(&mut conn, case_id).await?;
    check_transition(user, &case, request.status, comment)?;
    if let Some(anchor) = request.anchor {
        check_anchor(&mut conn, case_id, anchor).await?;
    }
    drop(conn);

    let to = request.status;
    let mut tx = state.db.pool.begin().await?;
    // Compare-and-set on the status read above: a concurrent transition makes this one fail.
    let pin = if to == CaseStatus::Approved { ", approved_mask_ref = head_mask_ref" } else { "" };
    let changed = sqlx::query(&format!("UPDATE cases SET status = $1{pin} WHERE id = $2 AND status = $3"))
        .bind(to.as_str())
        .bind(case_id)
        .bind(case.status.as_str())
        .execute(&mut *tx)
        .await?;
    if changed.rows_affected() == 0 {
        return Err(AppError::Conflict("the case changed while this request ran; reload and try again".into()));
    }
    let comment_id = match comment {
        Some(body) => Some(add_comment(&mut tx, user, case_id, body, request.anchor).await?),
        None => None,
    };
    let workflow = workflow_of(&mut tx, case_id).await?;
    let details = json!({
        "from": case.status.as_str(),
        "to": to.as_str(),
        "comment_id": comment_id,
        "comment": comment,
        "approved_mask_ref": (to == CaseStatus::Approved).then_some(&workflow.approved_mask_ref),
    });
    audit::record(&mut tx, &state.db, AuditEvent { action: "case_status", user_id: Some(&user.id), case_id: Some(case_id), details }).await?;
    tx.commit().await?;
    tracing::info!(case_id, from = case.status.as_str(), to = to.as_str(), user = %user.username, "case status changed");
    Ok(workflow)
}

/// Refuses an anchor outside the case's volume.
async fn check_anchor(conn: &mut AnyConnection, case_id: &str, anchor: [u32; 3]) -> Result<(), AppError> {
    let row = sqlx::query("SELECT o.dim_i, o.dim_j, o.dim_k FROM cases c JOIN objects o ON o.object_ref = c.head_mask_ref WHERE c.id = $1")
        .bind(case_id)
        .fetch_one(&mut *conn)
        .await?;
    let dims = ["dim_i", "dim_j", "dim_k"].map(|column| row.get::<i64, _>(column));
    if anchor.iter().zip(dims).any(|(&at, size)| at as i64 >= size) {
        return Err(AppError::Unprocessable(format!("the comment's voxel {anchor:?} lies outside the volume {dims:?}")));
    }
    Ok(())
}

async fn add_comment(tx: &mut AnyConnection, user: &User, case_id: &str, body: &str, anchor: Option<[u32; 3]>) -> Result<String, AppError> {
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

/// What `user` may do with the case now: the same rules the actions themselves check.
pub async fn actions(state: &AppState, user: &User, case_id: &str) -> Result<CaseActions, AppError> {
    let mut conn = state.db.pool.acquire().await?;
    let case = stored(&mut conn, case_id).await?;
    let self_assignment = state.config.allows_self_assignment();
    Ok(CaseActions {
        take: user.has_role(Role::Labeler) && self_assignment && case.assignee_id.is_none(),
        save: user.has_role(Role::Labeler) && check_may_save(&mut conn, user, &case, self_assignment).await.is_ok(),
        submit: check_transition(user, &case, CaseStatus::Submitted, None).is_ok(),
        review: check_transition(user, &case, CaseStatus::Approved, None).is_ok(),
        reopen: check_transition(user, &case, CaseStatus::InProgress, Some("reason")).is_ok(),
        assign: user.is_coordinator(),
        run_models: user.is_coordinator(),
    })
}

/// The review panel's content for `user`.
pub async fn review(state: &AppState, user: &User, case_id: &str) -> Result<CaseReview, AppError> {
    check_may_read(state, user, case_id).await?;
    let actions = actions(state, user, case_id).await?;
    let workflow = workflow_of(&mut *state.db.pool.acquire().await?, case_id).await?;
    let assignable = match actions.assign {
        true => Some(assignable_people(state, user).await?),
        false => None,
    };
    Ok(CaseReview { workflow, actions, comments: comments(state, case_id).await?, assignable })
}

/// `GET /cases/{id}/comments`: the case's comments, oldest first; readable by every role.
pub async fn comments(state: &AppState, case_id: &str) -> Result<Vec<CaseComment>, AppError> {
    let mut conn = state.db.pool.acquire().await?;
    stored(&mut conn, case_id).await?;
    let rows = sqlx::query(
        "SELECT m.id, u.username, m.body, m.anchor_i, m.anchor_j, m.anchor_k, m.created_at
         FROM case_comments m JOIN users u ON u.id = m.user_id
         WHERE m.case_id = $1 ORDER BY m.created_at, m.id",
    )
    .bind(case_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let anchor = ["anchor_i", "anchor_j", "anchor_k"].map(|column| row.get::<Option<i64>, _>(column));
            CaseComment {
                id: row.get("id"),
                username: row.get("username"),
                body: row.get("body"),
                anchor: match anchor {
                    [Some(i), Some(j), Some(k)] => Some([i as u32, j as u32, k as u32]),
                    _ => None,
                },
                created_at_ms: row.get("created_at"),
            }
        })
        .collect())
}
