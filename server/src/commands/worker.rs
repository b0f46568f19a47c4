//! `comfydeck worker` (runs a deck's jobs on this machine's ComfyUI until Ctrl-C) and
//! `comfydeck workers token create|list|revoke`.

use anyhow::Context;
use engine::jobs::worker::WorkerConfig;
use engine::model::format_utc;
use engine::secret::Secret;
use tokio_util::sync::CancellationToken;

use super::ExitCode;
use crate::cli::{TokenAction, WorkerArgs};

pub async fn worker(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let coordinator_url = engine::config::normalize_base_url(
        "--coordinator-url / COORDINATOR_URL",
        &args.coordinator_url,
    )
    .map_err(anyhow::Error::msg)?;
    // ComfyUI resolves the model paths file's relative paths against its own folder.
    let workspace = std::path::absolute(&args.workspace)
        .with_context(|| format!("--workspace {}", args.workspace.display()))?;
    let supervised = args
        .comfyui_dir
        .as_ref()
        .filter(|d| !d.as_os_str().is_empty());
    let comfyui_url = match supervised {
        Some(_) => format!("http://127.0.0.1:{}", args.comfyui_port),
        None => {
            engine::config::normalize_base_url("--comfyui-url / COMFYUI_URL", &args.comfyui_url)
                .map_err(anyhow::Error::msg)?
        }
    };
    let supervise = supervised.map(|dir| {
        let layout = engine::workspace::WorkspaceLayout::new(&workspace);
        let mut config = engine::comfy::supervisor::SupervisorConfig::new(dir.clone(), &layout);
        config.port = args.comfyui_port;
        config.python = args
            .comfyui_python
            .clone()
            .filter(|p| !p.as_os_str().is_empty());
        config
    });
    if args.worker_token.trim().is_empty() {
        anyhow::bail!("--worker-token / WORKER_TOKEN is empty: create one with `comfydeck workers token create NAME` on the deck");
    }
    let name = args
        .name
        .filter(|n| !n.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "worker".to_string());
    let token_of = |t: &Option<String>| {
        t.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(Secret::new)
    };
    let credentials = engine::settings::download_credentials(
        &engine::config::Config::with_workspace(&workspace),
        token_of(&args.hf_token),
        token_of(&args.civitai_token),
    );
    let config = WorkerConfig {
        coordinator_url,
        token: Secret::new(args.worker_token.trim()),
        name,
        comfyui_url,
        workspace,
        install_missing: args.install_missing,
        credentials,
        supervise,
    };
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        super::ctrl_c().await;
        on_signal.cancel();
    });
    engine::jobs::worker::run(config, stop)
        .await
        .context("the worker stopped")?;
    Ok(0)
}

pub async fn worker_tokens(action: TokenAction) -> anyhow::Result<ExitCode> {
    let config = action.common().to_config().map_err(anyhow::Error::msg)?;
    let queue = engine::jobs::open_queue(&config)
        .await
        .context("cannot open the job queue")?;
    match action {
        TokenAction::Create { name, .. } => {
            let created = engine::jobs::new_worker_token(&queue, &name).await?;
            out!("Worker token for {} (shown once):", created.name);
            out!("{}", created.token);
            Ok(0)
        }
        TokenAction::List { json, .. } => {
            let tokens = queue.tokens().await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&tokens)?);
            } else if tokens.is_empty() {
                out!("No worker tokens. Create one with `comfydeck workers token create NAME`.");
            } else {
                out!("{:<24} {:<10} CREATED (UTC)", "NAME", "STATE");
                for t in tokens {
                    let state = if t.revoked { "revoked" } else { "live" };
                    out!("{:<24} {:<10} {}", t.name, state, format_utc(t.created_ms));
                }
            }
            Ok(0)
        }
        TokenAction::Revoke { name, .. } => {
            if queue.revoke_token(&name, engine::clock::now_ms()).await? {
                out!("Revoked the worker token {name}.");
                Ok(0)
            } else {
                anyhow::bail!("no live worker token named {name}")
            }
        }
    }
}
