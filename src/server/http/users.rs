//! Account routes for admins: enable or disable a user and change their roles, issue tokens;
//! and revoking a token (an admin any, a user their own). The role is checked before the body
//! is read.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{bounded_body, ApiJson, Caller, UserPath};
use crate::api::{IssuedToken, TokenRequest, TokenRevocation, UserAccount, UserChange};
use crate::server::error::AppError;
use crate::server::services::accounts;
use crate::server::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    let routes =
        OpenApiRouter::new().routes(routes!(change_user)).routes(routes!(issue_token)).routes(routes!(revoke_token));
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

/// Enables or disables a user and adds or removes roles (admins).
#[utoipa::path(put, path = "/users/{username}", tag = "accounts", params(UserPath), request_body = UserChange,
    responses((status = 200, description = "The account now", body = UserAccount)))]
async fn change_user(
    State(state): State<AppState>,
    Caller(admin): Caller,
    Path(UserPath { username }): Path<UserPath>,
    request: Request,
) -> Result<Json<UserAccount>, AppError> {
    accounts::may_manage(&admin)?;
    let change: UserChange = body(request, &state).await?;
    Ok(Json(accounts::change_user(&state.db, Some(&admin), &username, &change).await?))
}

/// Issues an API token for a user (admins); the token is shown in this answer only.
#[utoipa::path(post, path = "/users/{username}/tokens", tag = "accounts", params(UserPath), request_body = TokenRequest,
    responses((status = 201, description = "The new token", body = IssuedToken)))]
async fn issue_token(
    State(state): State<AppState>,
    Caller(admin): Caller,
    Path(UserPath { username }): Path<UserPath>,
    request: Request,
) -> Result<(StatusCode, Json<IssuedToken>), AppError> {
    accounts::may_manage(&admin)?;
    let wanted: TokenRequest = body(request, &state).await?;
    Ok((
        StatusCode::CREATED,
        Json(accounts::issue_token(&state.db, Some(&admin), &username, wanted.expires_in_days).await?),
    ))
}

/// Revokes a token: an admin any, a user their own.
#[utoipa::path(post, path = "/tokens/revoke", tag = "accounts", request_body = TokenRevocation,
    responses((status = 204, description = "Revoked")))]
async fn revoke_token(
    State(state): State<AppState>,
    Caller(user): Caller,
    ApiJson(revocation): ApiJson<TokenRevocation>,
) -> Result<StatusCode, AppError> {
    accounts::revoke_token(&state.db, Some(&user), &revocation.token).await?;
    Ok(StatusCode::NO_CONTENT)
}
