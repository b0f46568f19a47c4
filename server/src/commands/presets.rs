//! `comfydeck presets list|status|install|remove`: the catalog and each preset's install
//! state as a table or JSON; installing queues the files and, with `--wait`, downloads them
//! here with progress bars until every one is verified.

use std::sync::Arc;
use std::time::Duration;

use engine::model::*;
use engine::Engine;

use super::progress::{progress_line, Bars};
use super::{ctrl_c, open_for_reading, start_exclusive, ExitCode, EXIT_FAILED, EXIT_INTERRUPTED};
use crate::cli::PresetsAction;

pub async fn presets(action: PresetsAction) -> anyhow::Result<ExitCode> {
    let config = action.common().to_config().map_err(anyhow::Error::msg)?;
    match action {
        PresetsAction::List { json, .. } => {
            let (manager, _engine) = open_for_reading(&config).await?;
            let views = manager.preset_views(&gpu_vram()).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                print_table(&views);
            }
            Ok(0)
        }
        PresetsAction::Status { id, json, .. } => {
            let (manager, _engine) = open_for_reading(&config).await?;
            let views: Vec<PresetView> = match id {
                Some(id) => vec![manager.preset_view(&id).await?],
                None => manager
                    .preset_views(&gpu_vram())
                    .await?
                    .into_iter()
                    .filter(|v| v.state != InstallState::NotInstalled)
                    .collect(),
            };
            if json {
                out!("{}", serde_json::to_string_pretty(&views)?);
            } else if views.is_empty() {
                out!("No preset is installed or downloading.");
            } else {
                for view in &views {
                    print_status(view);
                }
            }
            Ok(0)
        }
        PresetsAction::Install { ids, wait, .. } => {
            let engine = start_exclusive(config, "install presets").await?;
            let manager = Arc::clone(engine.downloads());
            let mut canonical = Vec::new();
            for id in &ids {
                let view = manager.install_preset(id).await?;
                let remaining = view
                    .files
                    .iter()
                    .filter(|f| !f.optional && f.state != FileState::Installed)
                    .count();
                if view.state.is_installed() {
                    out!("{}: already installed", view.id);
                } else {
                    out!(
                        "{}: {} file{} queued ({})",
                        view.id,
                        remaining,
                        if remaining == 1 { "" } else { "s" },
                        format_bytes(view.remaining_bytes)
                    );
                }
                canonical.push(view.id);
            }
            if !wait {
                out!(
                    "Queued. The files download while `comfydeck serve` runs on this workspace, \
                     or run this command with --wait."
                );
                return Ok(0);
            }
            let code = wait_for_presets(&engine, &canonical).await?;
            engine.shutdown().await;
            Ok(code)
        }
        PresetsAction::Remove { id, .. } => {
            let engine = start_exclusive(config, "remove presets").await?;
            let report = engine.downloads().remove_preset(&id).await?;
            out!(
                "Removed {} file{} ({}).",
                report.removed.len(),
                if report.removed.len() == 1 { "" } else { "s" },
                format_bytes(report.freed_bytes)
            );
            for path in &report.kept_shared {
                out!("Kept {path}: another installed preset needs it.");
            }
            Ok(0)
        }
    }
}

fn gpu_vram() -> Vec<u64> {
    match engine::metrics::GpuProbe::new().report() {
        GpuReport::Available { gpus } => {
            let mut v: Vec<u64> = gpus.iter().map(|g| g.memory_total_bytes).collect();
            v.sort_unstable_by(|a, b| b.cmp(a));
            v
        }
        GpuReport::Unavailable { .. } => Vec::new(),
    }
}

pub(super) async fn wait_for_presets(
    engine: &Arc<Engine>,
    ids: &[String],
) -> anyhow::Result<ExitCode> {
    let manager = Arc::clone(engine.downloads());
    tokio::spawn(Arc::clone(&manager).run());
    let mut bars = Bars::new();
    let interrupted = ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => {
                engine.shutdown().await;
                bars.finish();
                eprintln!("Interrupted: downloads are kept and resume with the next run (or `comfydeck serve`).");
                return Ok(EXIT_INTERRUPTED);
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let mut views = Vec::new();
        for id in ids {
            views.push(manager.preset_view(id).await?);
        }
        let mut lines = Vec::new();
        for view in &views {
            for file in view
                .files
                .iter()
                .filter(|f| matches!(f.state, FileState::Downloading | FileState::Queued))
            {
                let note = match (file.state, &file.error) {
                    (FileState::Queued, Some(e)) => format!("waiting to retry: {e}"),
                    (FileState::Queued, None) => "queued".to_string(),
                    _ => String::new(),
                };
                lines.push(progress_line(&file.path, &file.figures, &note));
            }
        }
        if views.iter().all(|v| !v.state.is_active()) {
            bars.finish();
            let mut code = 0;
            for view in &views {
                if view.state.is_installed() {
                    out!("{}: installed, every file verified", view.id);
                } else {
                    code = EXIT_FAILED;
                    out!("{}: {}", view.id, view.state.label());
                    for file in view
                        .files
                        .iter()
                        .filter(|f| !f.optional && f.state != FileState::Installed)
                    {
                        out!(
                            "  {}: {}{}",
                            file.path,
                            file.state.label(),
                            file.error
                                .as_deref()
                                .map(|e| format!(" — {e}"))
                                .unwrap_or_default()
                        );
                    }
                }
            }
            return Ok(code);
        }
        bars.draw(&lines);
    }
}

fn print_table(views: &[PresetView]) {
    let id_width = views.iter().map(|v| v.id.len()).max().unwrap_or(2).max(2);
    out!(
        "{:<id_width$}  {:<16}  {:>9}  {:>5}  NAME",
        "ID",
        "STATE",
        "SIZE",
        "VRAM"
    );
    for v in views {
        out!(
            "{:<id_width$}  {:<16}  {:>9}  {:>5}  {}",
            v.id,
            v.state.label(),
            v.download_bytes
                .map(format_bytes)
                .unwrap_or_else(|| "unknown".into()),
            v.vram_gb
                .filter(|g| *g > 0.0)
                .map(|g| format!("{g} GB"))
                .unwrap_or_else(|| "-".into()),
            v.name
        );
    }
}

fn print_status(view: &PresetView) {
    out!("{} ({}): {}", view.name, view.id, view.state.label());
    for file in &view.files {
        let size = file
            .figures
            .total_bytes
            .or(file.size_bytes)
            .map(format_bytes)
            .unwrap_or_else(|| "unknown size".into());
        out!(
            "  {:<12} {:>9} / {:<9} {}{}{}",
            file.state.label(),
            format_bytes(file.figures.bytes_done),
            size,
            file.path,
            if file.optional { " (optional)" } else { "" },
            file.error
                .as_deref()
                .map(|e| format!(" — {e}"))
                .unwrap_or_default()
        );
    }
}
