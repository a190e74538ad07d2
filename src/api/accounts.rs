//! User accounts as an admin manages them: enabled or not, their roles, and the API tokens
//! issued to them.

use serde::{Deserialize, Serialize};

/// A user as `PUT /users/{username}` answers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct UserAccount {
    pub username: super::ids::UserName,
    pub roles: Vec<String>,
    pub disabled: bool,
}

/// Body of `PUT /users/{username}`: what to change; absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    #[serde(default)]
    pub disabled: Option<bool>,
    #[serde(default)]
    pub add_roles: Vec<String>,
    #[serde(default)]
    pub remove_roles: Vec<String>,
}

/// Body of `POST /users/{username}/tokens`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Days the token stays valid; none: until revoked.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// A newly issued token, shown once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct IssuedToken {
    pub token: String,
    pub expires_at_ms: Option<i64>,
}

/// Body of `POST /tokens/revoke`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenRevocation {
    pub token: String,
}
