//! Accounts: the Users section of Settings (administrators) and everyone's own password.
//! Thin adapters over the engine's `UsersService`, which checks the caller's role.

use engine::model::*;
use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json};

use super::ApiError;

#[server(endpoint = "users", prefix = "/api", input = GetUrl)]
pub async fn list_users() -> Result<Vec<UserInfo>, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .auth()
        .users()
        .list(&caller)
        .await
        .map_err(super::server::fail)
}

/// Adds a user; without a password one is generated. The password is in the answer, once.
#[server(endpoint = "users/add", prefix = "/api", input = Json)]
pub async fn add_user(
    username: String,
    role: Role,
    password: Option<String>,
) -> Result<UserWithPassword, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .auth()
        .users()
        .add(&caller, &username, role, password.filter(|p| !p.is_empty()))
        .await
        .map_err(super::server::fail)
}

#[server(endpoint = "users/role", prefix = "/api", input = Json)]
pub async fn set_user_role(username: String, role: Role) -> Result<UserInfo, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .auth()
        .users()
        .set_role(&caller, &username, role)
        .await
        .map_err(super::server::fail)
}

/// An administrator's reset: a new generated password, shown once; the user's sessions end.
#[server(endpoint = "users/reset-password", prefix = "/api", input = Json)]
pub async fn reset_user_password(username: String) -> Result<UserWithPassword, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .auth()
        .users()
        .reset_password(&caller, &username, None)
        .await
        .map_err(super::server::fail)
}

#[server(endpoint = "users/disable", prefix = "/api", input = Json)]
pub async fn set_user_disabled(username: String, disabled: bool) -> Result<UserInfo, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .auth()
        .users()
        .set_disabled(&caller, &username, disabled)
        .await
        .map_err(super::server::fail)
}

#[server(endpoint = "users/remove", prefix = "/api", input = Json)]
pub async fn remove_user(username: String) -> Result<(), ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .auth()
        .users()
        .remove(&caller, &username)
        .await
        .map_err(super::server::fail)
}

/// Everyone's own password; this ends their sessions, this one included (log in again).
#[server(endpoint = "account/password", prefix = "/api", input = Json)]
pub async fn change_own_password(current: String, new: String) -> Result<(), ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .auth()
        .users()
        .change_own_password(&caller, &current, &new)
        .await
        .map_err(super::server::fail)
}
