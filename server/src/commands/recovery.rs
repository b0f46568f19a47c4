//! `comfydeck recovery list|retry|retry-all`: the Recovery page from the command line. `list`
//! reads beside a running server; a retry needs the workspace (like `presets install`) and
//! carries a download or a preset install out at once, with progress.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use engine::download::queue::TaskState;
use engine::model::{
    format_bytes, format_utc, FailureSource, FailureView, RecoveryAction, RecoveryList,
    RestorePointView, RestoreState,
};
use engine::recovery::store::RecoveryStore;
use engine::Engine;

use super::presets::wait_for_presets;
use super::{start_exclusive, ExitCode, EXIT_FAILED};
use crate::cli::RecoveryCommand;

pub async fn recovery(action: RecoveryCommand) -> anyhow::Result<ExitCode> {
    let config = action.common().to_config().map_err(anyhow::Error::msg)?;
    match action {
        RecoveryCommand::List { json, .. } => {
            let store = engine::store::Store::open(&config.layout().database())
                .await
                .context("cannot open the workspace's database")?;
            let mut list = RecoveryStore::of(&store)
                .list(None, engine::clock::now_ms())
                .await?;
            let downloads = engine::open_read_only(&config).await?;
            list.partial_files = downloads.partial_files().await?;
            let points = downloads.restore_points().await?;
            if json {
                let mut json = serde_json::to_value(&list)?;
                json["restore_points"] = serde_json::to_value(&points)?;
                out!("{}", serde_json::to_string_pretty(&json)?);
            } else {
                print_list(&list);
                print_points(&points);
            }
            Ok(0)
        }
        RecoveryCommand::Retry { id, .. } => {
            let engine = start_exclusive(config, "retry").await?;
            let admin = engine.auth().open_caller();
            let stored = RecoveryStore::of(engine.store()).get(id).await?;
            // A paused download offers Resume: its "go on" from the command line.
            let action = match &stored {
                Some(f) if f.view.actions.contains(&RecoveryAction::Resume) => {
                    RecoveryAction::Resume
                }
                _ => RecoveryAction::Retry,
            };
            let failure = engine.recovery().act(&admin, id, action, None).await?;
            out!("Retrying {} ({}).", failure.subject, failure.class.label());
            let target = stored.map(|f| f.target).unwrap_or_default();
            let code = carry_out(&engine, &failure, &target).await?;
            engine.shutdown().await;
            Ok(code)
        }
        RecoveryCommand::Rollback { id, .. } => {
            let engine = start_exclusive(config, "roll back").await?;
            let point = engine
                .recovery()
                .roll_back(&engine.auth().open_caller(), id)
                .await?;
            out!(
                "Rolled back {}: {}.",
                point.subject,
                point.note.as_deref().unwrap_or("nothing to do")
            );
            engine.shutdown().await;
            Ok(0)
        }
        RecoveryCommand::RetryAll { .. } => {
            let engine = start_exclusive(config, "retry").await?;
            let admin = engine.auth().open_caller();
            let open = RecoveryStore::of(engine.store()).open(None).await?;
            let outcome = engine.recovery().retry_all(&admin).await?;
            out!(
                "Retried {}; {} wait for you first (a token, space or a licence) or could not be retried.",
                outcome.retried,
                outcome.skipped
            );
            let mut code = 0;
            for failure in open
                .iter()
                .filter(|f| f.view.actions.first() == Some(&RecoveryAction::Retry))
            {
                if carry_out(&engine, &failure.view, &failure.target).await? != 0 {
                    code = EXIT_FAILED;
                }
            }
            engine.shutdown().await;
            Ok(code)
        }
    }
}

/// Runs what a retry queued when it is this process's to finish (a download, a preset:
/// `target` is its id); the rest is started again and carried on by the deck.
async fn carry_out(
    engine: &Arc<Engine>,
    failure: &FailureView,
    target: &str,
) -> anyhow::Result<ExitCode> {
    match failure.source {
        FailureSource::Preset => wait_for_presets(engine, &[target.to_string()]).await,
        FailureSource::Download => wait_for_file(engine, &failure.subject).await,
        FailureSource::Sync => {
            out!("{}: synced.", failure.subject);
            Ok(0)
        }
        FailureSource::Pack => {
            out!("{}: done, and ComfyUI loaded it.", failure.subject);
            Ok(0)
        }
        FailureSource::Operation | FailureSource::Job | FailureSource::Comfyui => {
            out!(
                "{}: started again; the deck carries it on while `comfydeck serve` runs.",
                failure.subject
            );
            Ok(0)
        }
    }
}

/// Downloads the file at `path` (models-relative) until it is verified or fails.
async fn wait_for_file(engine: &Arc<Engine>, path: &str) -> anyhow::Result<ExitCode> {
    let manager = Arc::clone(engine.downloads());
    tokio::spawn(Arc::clone(&manager).run());
    loop {
        let task = engine
            .store()
            .tasks()
            .await?
            .into_iter()
            .find(|t| t.path == path);
        match task {
            None => {
                return Ok(match manager.installed_file(path).await? {
                    Some(file) => {
                        out!("{path}: installed, verified by {}", file.verified_by);
                        0
                    }
                    None => {
                        out!("{path}: the download was cancelled");
                        EXIT_FAILED
                    }
                });
            }
            Some(task) if task.state == TaskState::Failed || task.state == TaskState::Paused => {
                out!(
                    "{path}: {}",
                    task.last_error.as_deref().unwrap_or("stopped")
                );
                return Ok(EXIT_FAILED);
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn print_list(list: &RecoveryList) {
    if list.open.is_empty() {
        out!("Nothing needs you.");
    }
    for f in &list.open {
        out!(
            "#{} {} · {} · {} · {}× (last {})",
            f.id,
            f.source.as_str(),
            f.class.label(),
            f.subject,
            f.count,
            format_utc(f.last_ms)
        );
        out!("    {}", f.sentence);
        if let Some(link) = &f.link {
            out!("    {link}");
        }
        out!(
            "    actions: {}",
            f.actions
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !list.partial_files.is_empty() {
        out!("Partial downloads:");
        for part in &list.partial_files {
            out!(
                "    {} · {} · {} · last written {}",
                part.path,
                format_bytes(part.bytes),
                part.owner.as_str(),
                format_utc(part.modified_ms)
            );
        }
    }
    if !list.week.is_empty() {
        out!(
            "This week: {}",
            list.week
                .iter()
                .map(|c| format!("{} {}", c.count, c.class.label()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

fn print_points(points: &[RestorePointView]) {
    if points.is_empty() {
        return;
    }
    out!("Restore points:");
    for p in points {
        let state = match p.state {
            RestoreState::Kept => "can be rolled back".to_string(),
            RestoreState::RolledBack => {
                format!("rolled back: {}", p.note.as_deref().unwrap_or("done"))
            }
        };
        out!(
            "    #{} {} · {} file{} · {} · {}",
            p.id,
            p.subject,
            p.items.len(),
            if p.items.len() == 1 { "" } else { "s" },
            format_utc(p.created_ms),
            state
        );
    }
}
