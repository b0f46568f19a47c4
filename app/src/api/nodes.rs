//! Custom-node packs of the supervised ComfyUI: list, install, update, disable, enable,
//! remove. Administrators only; thin adapters over the engine's `NodePackService`.
//!
//! A change runs on a task of its own: a client that goes away mid-install (a closed tab, a
//! proxy timeout) never interrupts it between the change and its restore point being put back.

use engine::model::*;
use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json};

use super::ApiError;

/// Every pack with its repository, commit, state (loaded, failed to import, disabled) and the
/// classes it adds.
#[server(endpoint = "nodes", prefix = "/api", input = GetUrl)]
pub async fn list_nodes() -> Result<NodePackList, ApiError> {
    let (engine, caller) = super::server::engine_for_admin("manage custom-node packs")?;
    engine
        .nodes()
        .list(&caller)
        .await
        .map_err(super::server::fail)
}

/// Installs a pack from its repository (`repo`: a URL or `owner/repo`) or by its id in the node
/// map (`id`), at `version` (a commit, branch, tag or version) when given.
#[server(endpoint = "nodes/install", prefix = "/api", input = Json)]
pub async fn install_node_pack(
    repo: Option<String>,
    id: Option<String>,
    version: Option<String>,
) -> Result<NodePackOutcome, ApiError> {
    let (engine, caller) = super::server::engine_for_admin("install custom-node packs")?;
    let target = engine::nodes::InstallTarget { repo, id, version };
    detached(async move { engine.nodes().install(&caller, target, &no_progress).await }).await
}

/// Checks the pack out at `version`, or at its repository's newest commit.
#[server(endpoint = "nodes/update", prefix = "/api", input = Json)]
pub async fn update_node_pack(
    id: String,
    version: Option<String>,
) -> Result<NodePackOutcome, ApiError> {
    let (engine, caller) = super::server::engine_for_admin("update custom-node packs")?;
    detached(async move {
        engine
            .nodes()
            .update(&caller, &id, version.as_deref(), &no_progress)
            .await
    })
    .await
}

/// Moves the pack into `custom_nodes/.disabled/` and restarts ComfyUI.
#[server(endpoint = "nodes/disable", prefix = "/api", input = Json)]
pub async fn disable_node_pack(id: String) -> Result<NodePackOutcome, ApiError> {
    let (engine, caller) = super::server::engine_for_admin("disable custom-node packs")?;
    detached(async move { engine.nodes().disable(&caller, &id, &no_progress).await }).await
}

#[server(endpoint = "nodes/enable", prefix = "/api", input = Json)]
pub async fn enable_node_pack(id: String) -> Result<NodePackOutcome, ApiError> {
    let (engine, caller) = super::server::engine_for_admin("enable custom-node packs")?;
    detached(async move { engine.nodes().enable(&caller, &id, &no_progress).await }).await
}

/// Deletes the pack's folder and restarts ComfyUI (its Python packages stay).
#[server(endpoint = "nodes/remove", prefix = "/api", input = Json)]
pub async fn remove_node_pack(id: String) -> Result<NodePackOutcome, ApiError> {
    let (engine, caller) = super::server::engine_for_admin("remove custom-node packs")?;
    detached(async move { engine.nodes().remove(&caller, &id, &no_progress).await }).await
}

#[cfg(feature = "ssr")]
fn no_progress(_: &str) {}

/// Runs a pack change to its end even when the request is dropped; its error is answered with
/// the status of its kind.
#[cfg(feature = "ssr")]
async fn detached<F>(change: F) -> Result<NodePackOutcome, ApiError>
where
    F: std::future::Future<Output = Result<NodePackOutcome, engine::nodes::NodesError>>
        + Send
        + 'static,
{
    match tokio::spawn(change).await {
        Ok(result) => result.map_err(super::server::fail),
        Err(e) => Err(super::server::fail(engine::nodes::NodesError::Io(format!(
            "the custom-node change stopped: {e}"
        )))),
    }
}
