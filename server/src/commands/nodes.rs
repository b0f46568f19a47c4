//! `comfydeck nodes list|install|update|disable|enable|remove`: custom-node packs of the
//! ComfyUI in `COMFYUI_DIR`, through the engine's `NodePackService` (the same one the API
//! uses). A change takes the workspace and runs ComfyUI itself for the restart and the check
//! that the pack loads, then stops it; while a deck serves the workspace it says so and exits 2
//! (use the deck's API then).

use anyhow::Context;
use engine::model::{NodePack, NodePackList, NodePackOutcome};
use engine::nodes::InstallTarget;
use engine::workspace::WorkspaceError;
use engine::{Engine, EngineError};

use super::{ExitCode, EXIT_BUSY};
use crate::cli::NodesAction;

pub async fn nodes(action: NodesAction) -> anyhow::Result<ExitCode> {
    let config = action.options().to_config().map_err(anyhow::Error::msg)?;
    let engine = match Engine::start(config).await {
        Ok((engine, _)) => engine,
        Err(EngineError::Workspace(WorkspaceError::Locked { path, pid })) => {
            eprintln!(
                "comfydeck: a running comfydeck{pid} serves the workspace {}: manage its packs \
                 through it (GET /api/nodes, POST /api/nodes/install {{\"repo\": \"…\"}}), or \
                 stop it and run this command again.",
                path.display()
            );
            return Ok(EXIT_BUSY);
        }
        Err(e) => return Err(e).context("start-up failed"),
    };
    // Ctrl-C must not cut a change between its restore point and putting it back: it is said
    // to wait, and the change finishes (or is put back) before the command exits.
    if !matches!(action, NodesAction::List { .. }) {
        tokio::spawn(async {
            while tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "comfydeck: a custom-node change is running; it finishes, or is put back, before this command exits"
                );
            }
        });
    }
    let caller = engine.auth().open_caller();
    let nodes = engine.nodes();
    let progress = |step: &str| eprintln!("  {step}");
    let result = match action {
        NodesAction::List { json, .. } => {
            let list = nodes.list(&caller).await;
            engine.shutdown().await;
            let list = list?;
            if json {
                out!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_list(&list);
            }
            return Ok(0);
        }
        NodesAction::Install {
            source, version, ..
        } => {
            let is_url = source.contains("://") || source.contains('/');
            let target = InstallTarget {
                repo: is_url.then(|| source.clone()),
                id: (!is_url).then(|| source.clone()),
                version,
            };
            eprintln!("Installing {source}:");
            engine.start_comfyui();
            nodes.install(&caller, target, &progress).await
        }
        NodesAction::Update { id, version, .. } => {
            eprintln!("Updating {id}:");
            engine.start_comfyui();
            nodes
                .update(&caller, &id, version.as_deref(), &progress)
                .await
        }
        NodesAction::Disable { id, .. } => {
            eprintln!("Disabling {id}:");
            engine.start_comfyui();
            nodes.disable(&caller, &id, &progress).await
        }
        NodesAction::Enable { id, .. } => {
            eprintln!("Enabling {id}:");
            engine.start_comfyui();
            nodes.enable(&caller, &id, &progress).await
        }
        NodesAction::Remove { id, .. } => {
            eprintln!("Removing {id}:");
            engine.start_comfyui();
            nodes.remove(&caller, &id, &progress).await
        }
    };
    engine.shutdown().await;
    let outcome: NodePackOutcome = result?;
    match &outcome.pack {
        Some(pack) => out!("{}", summary(pack)),
        None => out!("Done."),
    }
    Ok(0)
}

fn summary(pack: &NodePack) -> String {
    format!(
        "{} ({}): {}{}",
        pack.id,
        pack.commit.as_deref().map(short).unwrap_or("no git"),
        pack.state.label(),
        if pack.classes.is_empty() {
            String::new()
        } else {
            format!("; classes: {}", pack.classes.join(", "))
        }
    )
}

fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

fn print_list(list: &NodePackList) {
    if list.packs.is_empty() {
        out!("No custom-node packs in {}.", list.custom_nodes_dir);
        return;
    }
    let width = list
        .packs
        .iter()
        .map(|p| p.id.len())
        .max()
        .unwrap_or(2)
        .max(2);
    out!(
        "{:<width$}  {:<16}  {:<10}  {:>7}  REPOSITORY",
        "ID",
        "STATE",
        "COMMIT",
        "CLASSES"
    );
    for pack in &list.packs {
        out!(
            "{:<width$}  {:<16}  {:<10}  {:>7}  {}",
            pack.id,
            pack.state.as_str(),
            pack.commit.as_deref().map(short).unwrap_or("-"),
            pack.classes.len(),
            pack.repository.as_deref().unwrap_or("-")
        );
        if let Some(error) = &pack.error {
            for line in error.lines() {
                out!("{:width$}    {line}", "");
            }
        }
    }
    if !list.comfyui_answered {
        out!("(ComfyUI is not running, so whether each pack loads is not known.)");
    }
}
