//! API tokens and the login mode.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiTokenInfo {
    pub id: i64,
    pub name: String,
    /// The first characters of the token, enough to recognise it (`cd_ab12…`).
    pub hint: String,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
}

/// Returned once, when a token is created: the only time the full secret is shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreatedApiToken {
    pub info: ApiTokenInfo,
    pub token: String,
}

/// Whether this server asks for a login, for the UI to show or hide auth controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Loopback only and no password: nobody else can reach it.
    Open,
    /// `ACCESS_PASSWORD` was given.
    Password,
    /// Off-loopback without a password: one was generated at first start.
    GeneratedPassword,
}

impl AuthMode {
    pub fn requires_login(self) -> bool {
        !matches!(self, AuthMode::Open)
    }
}
