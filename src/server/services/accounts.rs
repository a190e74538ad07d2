//! Access that can be taken back: disabling and enabling users (their sessions and tokens stop
//! working at once, since every request looks the user up), changing roles, issuing tokens
//! with an expiry and revoking them. Every change is audited; `actor` is the admin who made
//! it (none from the command line).

use serde_json::json;
use sqlx::AnyConnection;

use super::audit::{self, AuditAction, AuditEvent};
use super::users::{new_token, store_token, token_hash};
use crate::api::{IssuedToken, UserAccount, UserChange, UserName};
use crate::server::clock::now_ms;
use crate::server::db::Db;
use crate::server::error::AppError;
use crate::server::identity::{self, Role, User};

/// 403 unless `user` may manage accounts.
pub(crate) fn may_manage(user: &User) -> Result<(), AppError> {
    user.require_any(&[Role::Admin], "managing users and tokens")
}

fn requested_roles(names: &[String]) -> Result<Vec<Role>, AppError> {
    names.iter().map(|name| name.parse()).collect()
}

/// A user's row, as an account change reads it.
#[derive(sqlx::FromRow)]
struct LockedUser {
    id: String,
    username: UserName,
    roles: String,
    disabled_at: Option<i64>,
}

/// Locks the user's row for the rest of the transaction (a write first, so SQLite takes its
/// write lock before any read) and returns it.
async fn lock_user(tx: &mut AnyConnection, username: &str) -> Result<LockedUser, AppError> {
    sqlx::query_as(
        "UPDATE users SET username = username WHERE username = $1 RETURNING id, username, roles, disabled_at",
    )
    .bind(username)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| AppError::NotFound(format!("user {username:?}")))
}

/// Applies `change` to `username`: enables or disables them, adds and removes roles.
pub(crate) async fn change_user(
    db: &Db,
    actor: Option<&User>,
    username: &str,
    change: &UserChange,
) -> Result<UserAccount, AppError> {
    let (add, remove) = (requested_roles(&change.add_roles)?, requested_roles(&change.remove_roles)?);
    let mut tx = db.pool.begin().await?;
    let row = lock_user(&mut tx, username).await?;
    let (user_id, row_username) = (row.id, row.username);
    let mut roles = identity::parse_roles(&row.roles);
    roles.retain(|role| !remove.contains(role));
    for role in add {
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    if roles.is_empty() {
        return Err(AppError::Unprocessable(format!(
            "user {username:?} would be left without a role; disable them instead"
        )));
    }
    let was_disabled = row.disabled_at.is_some();
    let disabled = change.disabled.unwrap_or(was_disabled);
    let role_names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    sqlx::query("UPDATE users SET roles = $1, disabled_at = $2 WHERE id = $3")
        .bind(role_names.join(","))
        .bind(match (disabled, was_disabled) {
            (true, true) => row.disabled_at,
            (true, false) => Some(now_ms()),
            (false, _) => None,
        })
        .bind(&user_id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        db,
        AuditEvent {
            action: AuditAction::UserChange,
            user_id: actor.map(|a| a.id.as_str()),
            case_id: None,
            details: json!({ "username": username, "user_id": user_id, "roles": role_names, "disabled": disabled }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(UserAccount { username: row_username, roles: role_names.iter().map(|r| r.to_string()).collect(), disabled })
}

/// A new token for `username`, valid for `expires_in_days` (none: until revoked).
pub async fn issue_token(
    db: &Db,
    actor: Option<&User>,
    username: &str,
    expires_in_days: Option<u32>,
) -> Result<IssuedToken, AppError> {
    let token = new_token();
    let now = now_ms();
    let expires_at_ms = expires_in_days.map(|days| now + i64::from(days) * 86_400_000);
    let mut tx = db.pool.begin().await?;
    let user_id = lock_user(&mut tx, username).await?.id;
    store_token(&mut tx, &user_id, &token, expires_at_ms).await?;
    audit::record(
        &mut tx,
        db,
        AuditEvent {
            action: AuditAction::TokenIssue,
            user_id: actor.map(|a| a.id.as_str()),
            case_id: None,
            details: json!({ "username": username, "user_id": user_id, "expires_at_ms": expires_at_ms }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(IssuedToken { token, expires_at_ms })
}

/// Revokes `token` at once. `actor` may revoke any token as an admin, or their own.
pub(crate) async fn revoke_token(db: &Db, actor: Option<&User>, token: &str) -> Result<(), AppError> {
    let admin = actor.is_none_or(|a| a.has_role(Role::Admin));
    let mut tx = db.pool.begin().await?;
    let revoked_user: String = sqlx::query_scalar(
        "UPDATE api_tokens SET revoked_at = $1 WHERE token_sha256 = $2 AND revoked_at IS NULL AND ($3 OR user_id = $4)
         RETURNING user_id",
    )
    .bind(now_ms())
    .bind(token_hash(token))
    .bind(admin)
    .bind(actor.map(|a| a.id.clone()).unwrap_or_default())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| AppError::NotFound("token (or it is revoked already, or not yours)".into()))?;
    audit::record(
        &mut tx,
        db,
        AuditEvent {
            action: AuditAction::TokenRevoke,
            user_id: actor.map(|a| a.id.as_str()),
            case_id: None,
            details: json!({ "user_id": revoked_user }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
