//! Users, their roles, and API tokens for REST clients.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;
use uuid::Uuid;

use super::audit::{self, AuditEvent};
use crate::server::db::Db;
use crate::server::{now_ms, AppError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Labeler,
    MlEngineer,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Labeler, Role::MlEngineer, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Labeler => "labeler",
            Role::MlEngineer => "ml_engineer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AppError;
    fn from_str(s: &str) -> Result<Self, AppError> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            AppError::BadRequest(format!(
                "unknown role {s:?}; roles are labeler, ml_engineer, admin"
            ))
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub roles: Vec<Role>,
}

impl User {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// 403 unless the user holds one of `roles`.
    pub fn require_any(&self, roles: &[Role], action: &str) -> Result<(), AppError> {
        if roles.iter().any(|r| self.has_role(*r)) {
            return Ok(());
        }
        let names: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
        Err(AppError::Forbidden(format!("{action} needs the role {}", names.join(" or "))))
    }
}

fn parse_roles(text: &str) -> Vec<Role> {
    text.split(',').filter_map(|r| r.parse().ok()).collect()
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a user and returns it with a new API token (shown once; only its hash is kept).
pub async fn add_user(db: &Db, username: &str, roles: &[Role]) -> Result<(User, String), AppError> {
    let valid_name = !username.is_empty()
        && username.len() <= 64
        && username.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !valid_name {
        return Err(AppError::BadRequest(format!(
            "invalid username {username:?}: use 1–64 letters, digits, '.', '_' or '-'"
        )));
    }
    if roles.is_empty() {
        return Err(AppError::BadRequest("a user needs at least one role".into()));
    }
    let mut roles = roles.to_vec();
    roles.dedup();
    let user = User { id: Uuid::new_v4().to_string(), username: username.to_string(), roles };
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let token = format!("sgl_{}", hex::encode(secret));

    let mut tx = db.pool.begin().await?;
    let exists = sqlx::query("SELECT 1 FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_some() {
        return Err(AppError::Conflict(format!("user {username:?} already exists")));
    }
    let role_list: Vec<_> = user.roles.iter().map(|r| r.as_str()).collect();
    sqlx::query("INSERT INTO users (id, username, roles, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&user.id)
        .bind(&user.username)
        .bind(role_list.join(","))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO api_tokens (token_sha256, user_id, created_at) VALUES ($1, $2, $3)")
        .bind(token_hash(&token))
        .bind(&user.id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        AuditEvent {
            action: "user_add",
            user_id: Some(&user.id),
            case_id: None,
            details: serde_json::json!({ "username": user.username, "roles": role_list }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((user, token))
}

/// The user an API token belongs to, if the token is known.
pub async fn user_for_token(db: &Db, token: &str) -> Result<Option<User>, AppError> {
    let row = sqlx::query(
        "SELECT u.id, u.username, u.roles FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_sha256 = $1",
    )
    .bind(token_hash(token))
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.map(|row| User {
        id: row.get("id"),
        username: row.get("username"),
        roles: parse_roles(row.get::<String, _>("roles").as_str()),
    }))
}

pub async fn user_count(db: &Db) -> Result<i64, AppError> {
    Ok(sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(&db.pool).await?.get("n"))
}
