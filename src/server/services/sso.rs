//! Single sign-on: a login attempt kept in the database (so the provider may send the browser
//! back to any instance), used once; and the person the provider vouches for, made a seglab
//! user on first login, their roles set from their groups on every login, refused when
//! disabled here or when no group maps to a role. Audited like password logins.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::audit::{self, AuditAction, AuditEvent};
use crate::api::UserName;
use crate::server::clock::now_ms;
use crate::server::error::AppError;
use crate::server::identity::User;
use crate::server::oidc::{Identity, Provider, SsoError};
use crate::server::state::AppState;

/// How long a browser may take at the provider before its attempt is forgotten.
pub const ATTEMPT_TTL_MS: i64 = 10 * 60 * 1000;

impl From<SsoError> for AppError {
    fn from(error: SsoError) -> AppError {
        match error {
            SsoError::Unavailable(detail) => AppError::Unavailable { service: "the identity provider", detail },
            SsoError::Refused(reason) => AppError::SignOnRefused(reason),
        }
    }
}

fn provider(state: &AppState) -> Result<&Provider, AppError> {
    state.sso.as_deref().ok_or_else(|| AppError::NotFound("single sign-on (none is configured)".into()))
}

/// A new attempt: the provider URL to send the browser to, and the `state` the browser must
/// bring back (the caller binds it to the browser with a cookie).
pub async fn begin(state: &AppState) -> Result<(String, String), AppError> {
    let attempt = provider(state)?.begin().await?;
    sqlx::query("INSERT INTO oidc_logins (state_sha256, nonce, pkce_verifier, created_at) VALUES ($1, $2, $3, $4)")
        .bind(digest(&attempt.state))
        .bind(&attempt.nonce)
        .bind(&attempt.pkce_verifier)
        .bind(now_ms())
        .execute(&state.db.pool)
        .await?;
    Ok((attempt.url, attempt.state))
}

/// The provider's answer: `state` as the callback's query and as this browser's cookie hold
/// it, and the authorisation `code`. The attempt is used up whatever the outcome; the user
/// logged in on success.
pub async fn finish(
    state: &AppState,
    cookie_state: Option<&str>,
    query_state: &str,
    code: &str,
) -> Result<(User, String), AppError> {
    let provider = provider(state)?;
    // The cookie ties the answer to the browser that asked: an attacker's own code and state,
    // planted in a victim's browser, would log the victim into the attacker's account.
    if cookie_state != Some(query_state) {
        return Err(AppError::SignOnRefused(
            "this sign-on did not start in this browser (its state does not match); start again".into(),
        ));
    }
    let attempt: Option<(String, String, i64)> =
        sqlx::query_as("DELETE FROM oidc_logins WHERE state_sha256 = $1 RETURNING nonce, pkce_verifier, created_at")
            .bind(digest(query_state))
            .fetch_optional(&state.db.pool)
            .await?;
    let (nonce, verifier, created_at) = attempt
        .ok_or_else(|| AppError::SignOnRefused("this sign-on was already used or never started; start again".into()))?;
    if now_ms() - created_at > ATTEMPT_TTL_MS {
        return Err(AppError::SignOnRefused("this sign-on took too long; start again".into()));
    }
    let identity = provider.finish(code, &nonce, &verifier).await?;
    let user = user_for(state, &identity).await?;
    Ok((user, identity.id_token))
}

/// The seglab user `identity` is: created on first login, their roles set from the provider's
/// groups on each; refused when disabled or without a mapped role.
async fn user_for(state: &AppState, identity: &Identity) -> Result<User, AppError> {
    let db = &state.db;
    let existing: Option<(String, String, Option<i64>)> =
        sqlx::query_as("SELECT id, username, disabled_at FROM users WHERE oidc_subject = $1")
            .bind(&identity.subject)
            .fetch_optional(&db.pool)
            .await?;
    let roles: Vec<&str> = identity.roles.iter().map(|r| r.as_str()).collect();
    let mut tx = db.pool.begin().await?;
    let refusal = match &existing {
        Some((_, _, Some(_))) => Some("this account is disabled in seglab"),
        _ if identity.roles.is_empty() => Some("your groups at the identity provider give no seglab role"),
        _ => None,
    };
    if let Some(reason) = refusal {
        audit::record(
            &mut tx,
            db,
            AuditEvent {
                action: AuditAction::LoginFailed,
                user_id: existing.as_ref().map(|(id, _, _)| id.as_str()),
                case_id: None,
                details: serde_json::json!({ "username": identity.username, "via": "oidc", "reason": reason }),
            },
        )
        .await?;
        tx.commit().await?;
        return Err(AppError::Forbidden(reason.into()));
    }
    let user = match existing {
        Some((id, username, _)) => {
            sqlx::query("UPDATE users SET roles = $1 WHERE id = $2")
                .bind(roles.join(","))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            User { id, username: UserName::stored(username), roles: identity.roles.clone() }
        }
        None => {
            let username = UserName::parse(&identity.username).map_err(|e| {
                AppError::SignOnRefused(format!("the provider's username cannot be a seglab username: {e}"))
            })?;
            let id = Uuid::new_v4().to_string();
            sqlx::query(
                "INSERT INTO users (id, username, roles, password_hash, created_at, oidc_subject)
                 VALUES ($1, $2, $3, NULL, $4, $5)",
            )
            .bind(&id)
            .bind(&username)
            .bind(roles.join(","))
            .bind(now_ms())
            .bind(&identity.subject)
            .execute(&mut *tx)
            .await
            .map_err(|err| match &err {
                // A local account of that name: taking it over on a provider's word would hand
                // its cases and tokens to whoever the provider calls that.
                sqlx::Error::Database(db) if db.is_unique_violation() => AppError::Conflict(format!(
                    "a local account is named {:?}; an admin must rename or remove it before its owner signs on",
                    username.as_str()
                )),
                _ => err.into(),
            })?;
            audit::record(
                &mut tx,
                db,
                AuditEvent {
                    action: AuditAction::UserAdd,
                    user_id: Some(&id),
                    case_id: None,
                    details: serde_json::json!({ "username": username, "roles": roles, "via": "oidc" }),
                },
            )
            .await?;
            User { id, username, roles: identity.roles.clone() }
        }
    };
    audit::record(
        &mut tx,
        db,
        AuditEvent {
            action: AuditAction::Login,
            user_id: Some(&user.id),
            case_id: None,
            details: serde_json::json!({ "username": user.username, "roles": roles, "via": "oidc" }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Attempts the provider never sent back.
pub(crate) async fn purge_abandoned(state: &AppState) -> Result<u64, AppError> {
    let deleted = sqlx::query("DELETE FROM oidc_logins WHERE created_at < $1")
        .bind(now_ms() - ATTEMPT_TTL_MS)
        .execute(&state.db.pool)
        .await?;
    Ok(deleted.rows_affected())
}

/// Attempts are found by their state's digest: the table never holds a usable state.
fn digest(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}
