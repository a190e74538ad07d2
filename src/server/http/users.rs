//! Account routes for admins: enable or disable a user and change their roles, issue tokens;
//! and revoking a token (an admin any, a user their own). The role is checked before the body
//! is read.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::routing::{post, put};
use axum::{Json, Router};

use super::extract::{bounded_body, ApiJson, Caller};
use crate::api::{IssuedToken, TokenRequest, TokenRevocation, UserAccount, UserChange};
use crate::server::error::AppError;
use crate::server::services::accounts;
use crate::server::state::AppState;

pub fn routes() -> Router<AppState> {
    let routes = Router::new()
        .route("/users/{username}", put(change_user))
        .route("/users/{username}/tokens", post(issue_token))
        .route("/tokens/revoke", post(revoke_token));
    // A token, a few role names: anyone may revoke their own token, so the bound is all that
    // limits what such a request costs.
    bounded_body(routes, MAX_BODY_BYTES)
}

/// The largest body of these routes.
const MAX_BODY_BYTES: usize = 4 * 1024;

/// The JSON body of `request`, read only now.
async fn body<T: serde::de::DeserializeOwned>(request: Request, state: &AppState) -> Result<T, AppError> {
    let ApiJson(value) = <ApiJson<T> as axum::extract::FromRequest<AppState>>::from_request(request, state).await?;
    Ok(value)
}

/// `PUT /users/{username}` `{disabled?, add_roles?, remove_roles?}`.
async fn change_user(
    State(state): State<AppState>,
    Caller(admin): Caller,
    Path(username): Path<String>,
    request: Request,
) -> Result<Json<UserAccount>, AppError> {
    accounts::may_manage(&admin)?;
    let change: UserChange = body(request, &state).await?;
    Ok(Json(accounts::change_user(&state.db, Some(&admin), &username, &change).await?))
}

/// `POST /users/{username}/tokens` `{expires_in_days?}` → 201 with the token, shown once.
async fn issue_token(
    State(state): State<AppState>,
    Caller(admin): Caller,
    Path(username): Path<String>,
    request: Request,
) -> Result<(StatusCode, Json<IssuedToken>), AppError> {
    accounts::may_manage(&admin)?;
    let wanted: TokenRequest = body(request, &state).await?;
    Ok((
        StatusCode::CREATED,
        Json(accounts::issue_token(&state.db, Some(&admin), &username, wanted.expires_in_days).await?),
    ))
}

/// `POST /tokens/revoke` `{token}` → 204.
async fn revoke_token(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiJson(revocation): ApiJson<TokenRevocation>,
) -> Result<StatusCode, AppError> {
    accounts::revoke_token(&state.db, Some(&user), &revocation.token).await?;
    Ok(StatusCode::NO_CONTENT)
}
