//! Recovery: what needs a person, the actions on it, and "retry all". Thin adapters over the
//! engine's `RecoveryService`, which scopes the list to the caller (an administrator sees the
//! pod's failures and everyone's; a user their own runs and operations).

use engine::model::*;
use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json};

use super::ApiError;

/// Open failures (newest first), recently settled ones, and the week's counts per class.
#[server(endpoint = "recovery", prefix = "/api", input = GetUrl)]
pub async fn list_recovery() -> Result<RecoveryList, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .recovery()
        .list(&caller)
        .await
        .map_err(super::server::fail)
}

/// The banner's sentence (`None`: nothing needs attention), without the list's partial files.
#[server(endpoint = "recovery/banner", prefix = "/api", input = GetUrl)]
pub async fn recovery_banner() -> Result<Option<String>, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .recovery()
        .banner(&caller)
        .await
        .map_err(super::server::fail)
}

/// Carries out `action` on failure `id`: `retry`, `restart_comfyui`, `dismiss`, or
/// `use_source` with the file's other link in `url` (the others are done by the person — a
/// token, space, a licence — then `retry`).
#[server(endpoint = "recovery/act", prefix = "/api", input = Json)]
pub async fn act_on_failure(
    id: i64,
    action: RecoveryAction,
    url: Option<String>,
) -> Result<FailureView, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .recovery()
        .act(&caller, id, action, url.as_deref())
        .await
        .map_err(super::server::fail)
}

/// Retries every open failure that can be retried as it is.
#[server(endpoint = "recovery/retry-all", prefix = "/api", input = Json)]
pub async fn retry_all_failures() -> Result<RetryAllOutcome, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .recovery()
        .retry_all(&caller)
        .await
        .map_err(super::server::fail)
}

/// What each preset install added or replaced, newest first (administrators; a user gets none).
#[server(endpoint = "restore-points", prefix = "/api", input = GetUrl)]
pub async fn list_restore_points() -> Result<Vec<RestorePointView>, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .recovery()
        .restore_points(&caller)
        .await
        .map_err(super::server::fail)
}

/// Removes what the install of restore point `id` added and puts back what it replaced.
#[server(endpoint = "restore-points/rollback", prefix = "/api", input = Json)]
pub async fn roll_back_restore_point(id: i64) -> Result<RestorePointView, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .recovery()
        .roll_back(&caller, id)
        .await
        .map_err(super::server::fail)
}
