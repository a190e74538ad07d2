//! Identity: who a caller is ([`User`]) and the roles they hold ([`Role`]), as every layer
//! names them. Accounts, passwords and tokens are `services::users`; what a role may do with a
//! case is `services::access`.

use std::fmt;
use std::str::FromStr;

use crate::api::UserName;
use crate::server::error::AppError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Labeler,
    /// Approves submitted cases or sends them back with comments.
    Reviewer,
    MlEngineer,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Labeler, Role::Reviewer, Role::MlEngineer, Role::Admin];
    /// Who manages models and dataset snapshots, assigns cases, and reads every case.
    pub const COORDINATORS: [Role; 2] = [Role::MlEngineer, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Labeler => "labeler",
            Role::Reviewer => "reviewer",
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
            AppError::BadRequest(format!("unknown role {s:?}; roles are labeler, reviewer, ml_engineer, admin"))
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: String,
    pub username: UserName,
    pub roles: Vec<Role>,
}

impl User {
    pub(crate) fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the user holds one of [`Role::COORDINATORS`].
    pub(crate) fn is_coordinator(&self) -> bool {
        Role::COORDINATORS.iter().any(|role| self.has_role(*role))
    }

    /// 403 unless the user holds one of `roles`.
    pub(crate) fn require_any(&self, roles: &[Role], action: &str) -> Result<(), AppError> {
        if roles.iter().any(|r| self.has_role(*r)) {
            return Ok(());
        }
        let names: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
        Err(AppError::Forbidden(format!("{action} needs the role {}", names.join(" or "))))
    }
}

/// The roles of a stored `roles` column (comma-separated); unknown names are left out.
pub(crate) fn parse_roles(text: &str) -> Vec<Role> {
    text.split(',').filter_map(|r| r.parse().ok()).collect()
}
