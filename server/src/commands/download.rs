//! `comfydeck download URL --to FOLDER/FILE`: one file into the models folder, resumable and
//! verified, with a progress bar.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use engine::catalog::{Checksum, ChecksumAlgorithm};
use engine::download::queue::{NewTask, TaskState};
use engine::model::{format_bytes, Event, FileState};
use tokio::sync::broadcast;

use super::progress::{progress_line, Bars};
use super::{ctrl_c, start_exclusive, ExitCode, EXIT_FAILED, EXIT_INTERRUPTED};
use crate::cli::DownloadArgs;

pub async fn download(args: DownloadArgs) -> anyhow::Result<ExitCode> {
    let config = args.common.to_config().map_err(anyhow::Error::msg)?;
    engine::workspace::check_relative_path(&args.to).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    if !args.to.contains('/') {
        bail!(
            "--to must be <folder>/<file> inside the models folder (e.g. loras/{}), got {:?}",
            args.to,
            args.to
        );
    }
    let checksum = match &args.sha256 {
        None => None,
        Some(hex) => {
            let hex = hex.trim().to_ascii_lowercase();
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                bail!(
                    "--sha256 must be 64 hexadecimal characters, got {:?}",
                    args.sha256.as_deref().unwrap_or_default()
                );
            }
            Some(Checksum {
                algorithm: ChecksumAlgorithm::Sha256,
                value: hex,
            })
        }
    };
    let url = url_checked(&args.url)?;
    let engine = start_exclusive(config, "download").await?;
    let manager = Arc::clone(engine.downloads());
    // Subscribed before the task exists, so that its end is never missed: the loop below wakes
    // on it at once instead of at the next redraw (a quarter of a second after the file is done).
    let mut events = engine.events().subscribe();
    let task_id = manager
        .enqueue_file(NewTask {
            url,
            mirrors: Vec::new(),
            path: args.to.clone(),
            expected_size: None,
            checksum,
            priority: 0,
        })
        .await?;
    tokio::spawn(Arc::clone(&manager).run());
    let mut bars = Bars::new();
    let interrupted = ctrl_c();
    tokio::pin!(interrupted);
    let code = loop {
        tokio::select! {
            _ = &mut interrupted => {
                engine.shutdown().await;
                bars.finish();
                eprintln!("Interrupted: the part file is kept; run the same command to resume.");
                break EXIT_INTERRUPTED;
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = task_settled(&mut events, task_id) => {}
        }
        match manager.task(task_id).await? {
            Some(task) if matches!(task.state, TaskState::Failed | TaskState::Paused) => {
                bars.finish();
                eprintln!(
                    "{}: {}",
                    args.to,
                    task.last_error.unwrap_or_else(|| "stopped".to_string())
                );
                break EXIT_FAILED;
            }
            Some(task) => {
                let figures = manager.live_figures(task_id).unwrap_or_default();
                let note = match task.state {
                    TaskState::Queued if task.last_error.is_some() => {
                        format!("waiting to retry: {}", task.last_error.unwrap_or_default())
                    }
                    _ => String::new(),
                };
                bars.draw(&[progress_line(&args.to, &figures, &note)]);
            }
            None => {
                bars.finish();
                match manager.installed_file(&args.to).await? {
                    Some(file) => {
                        out!(
                            "{}: {} verified by {} (sha256 {})",
                            args.to,
                            format_bytes(file.size),
                            file.verified_by,
                            file.sha256
                        );
                        break 0;
                    }
                    None => {
                        eprintln!("{}: the download was cancelled", args.to);
                        break EXIT_FAILED;
                    }
                }
            }
        }
    };
    engine.shutdown().await;
    Ok(code)
}

/// Resolves when the bus reports `task_id` out of the queued and downloading states (or when
/// the bus lagged, so that the caller looks at the task itself). Never, once the bus is closed.
async fn task_settled(events: &mut broadcast::Receiver<Event>, task_id: i64) {
    loop {
        match events.recv().await {
            Ok(Event::Download(p))
                if p.task_id == task_id
                    && !matches!(p.state, FileState::Queued | FileState::Downloading) =>
            {
                return
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

fn url_checked(url: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(url).map_err(|e| anyhow::anyhow!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("only http and https URLs can be downloaded, got {url:?}");
    }
    Ok(url.to_string())
}
