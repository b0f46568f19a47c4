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

/// Carries out `action` on failure `id`: `retry`, `restart_comfyui` or `dismiss` (the others
/// are done by the person — a token, space, a licence — then `retry`).
#[server(endpoint = "recovery/act", prefix = "/api", input = Json)]
pub async fn act_on_failure(id: i64, action: RecoveryAction) -> Result<FailureView, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .recovery()
        .act(&caller, id, action)
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
