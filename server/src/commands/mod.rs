//! One-shot commands for provisioning scripts: `presets …` and `download …`. They use the same
//! engine as the server; only the output (tables, JSON, progress bars) lives here.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use engine::catalog::{Checksum, ChecksumAlgorithm};
use engine::config::Config;
use engine::download::manager::DownloadManager;
use engine::download::queue::{NewTask, TaskState};
use engine::model::*;
use engine::workspace::WorkspaceError;
use engine::{Engine, EngineError};

use crate::cli::{DownloadArgs, PresetsAction, WorkflowAction};
use engine::comfy::convert::{self, ObjectInfo};

/// Prints a line to stdout; when the reader went away (`| head`), ends quietly with the
/// status a SIGPIPE death would give, instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(141);
        }
    }};
}

/// Exit status for "a download did not end verified".
pub const EXIT_FAILED: i32 = 1;
/// Exit status for "the workspace is busy" (another comfydeck serves it).
pub const EXIT_BUSY: i32 = 2;
/// Exit status after Ctrl-C (parts are kept; running the command again resumes).
pub const EXIT_INTERRUPTED: i32 = 130;

/// A command's outcome: the process exit status.
pub type ExitCode = i32;

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
    let task_id = manager
        .enqueue_file(NewTask {
            url,
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
        }
        match engine.store().task(task_id).await? {
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
                let file = engine
                    .store()
                    .installed_files()
                    .await?
                    .into_iter()
                    .find(|f| f.path == args.to);
                match file {
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

pub async fn workflow(action: WorkflowAction) -> anyhow::Result<ExitCode> {
    match action {
        WorkflowAction::ToApi {
            object_info,
            workflow,
        } => {
            let text = if workflow == "-" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .context("cannot read the workflow from standard input")?;
                text
            } else {
                std::fs::read_to_string(&workflow)
                    .with_context(|| format!("cannot read the workflow {workflow}"))?
            };
            let value: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{workflow} is not JSON"))?;
            let info = load_object_info(&object_info).await?;
            let info =
                ObjectInfo::from_json(info).map_err(|e| anyhow::anyhow!("{object_info}: {e}"))?;
            let name = if workflow == "-" {
                "the workflow"
            } else {
                workflow.as_str()
            };
            let prompt = convert::to_api(&value, &info)
                .map_err(|e| anyhow::anyhow!("{name} cannot be converted: {e}"))?;
            out!("{}", serde_json::to_string_pretty(&prompt.to_value())?);
            Ok(0)
        }
    }
}

/// A saved `/object_info` JSON file, or fetched from a ComfyUI URL (its base or the
/// `/object_info` URL itself).
async fn load_object_info(source: &str) -> anyhow::Result<serde_json::Value> {
    if source.starts_with("http://") || source.starts_with("https://") {
        let url = if source.trim_end_matches('/').ends_with("/object_info") {
            source.to_string()
        } else {
            format!("{}/object_info", source.trim_end_matches('/'))
        };
        let response = reqwest::get(&url)
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        if !response.status().is_success() {
            bail!("{url} answered HTTP {}", response.status());
        }
        return response
            .json()
            .await
            .with_context(|| format!("{url} did not return JSON"));
    }
    let text = std::fs::read_to_string(source)
        .with_context(|| format!("cannot read --object-info {source}"))?;
    serde_json::from_str(&text).with_context(|| format!("--object-info {source} is not JSON"))
}

fn url_checked(url: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(url).map_err(|e| anyhow::anyhow!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("only http and https URLs can be downloaded, got {url:?}");
    }
    Ok(url.to_string())
}

/// Starts the engine, which takes the workspace lock; when a server already holds it, says
/// so plainly instead of a generic error.
async fn start_exclusive(config: Config, what: &str) -> anyhow::Result<Arc<Engine>> {
    match Engine::start(config).await {
        Ok((engine, _)) => Ok(engine),
        Err(EngineError::Workspace(WorkspaceError::Locked { path, pid })) => {
            eprintln!(
                "comfydeck: cannot {what}: a running comfydeck{pid} serves the workspace {}. \
                 Use its Models page (or its API: POST /api/presets/install {{\"id\": \"…\"}}), \
                 or stop it and run this command again.",
                path.display()
            );
            std::process::exit(EXIT_BUSY);
        }
        Err(e) => Err(e).context("start-up failed"),
    }
}

/// Reading works even while a server holds the workspace (SQLite in WAL mode lets readers
/// in); the engine is returned when this process could take the lock itself.
async fn open_for_reading(
    config: &Config,
) -> anyhow::Result<(Arc<DownloadManager>, Option<Arc<Engine>>)> {
    match Engine::start(config.clone()).await {
        Ok((engine, _)) => Ok((Arc::clone(engine.downloads()), Some(engine))),
        Err(EngineError::Workspace(WorkspaceError::Locked { .. })) => {
            Ok((engine::open_read_only(config).await?, None))
        }
        Err(e) => Err(e).context("start-up failed"),
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

async fn wait_for_presets(engine: &Arc<Engine>, ids: &[String]) -> anyhow::Result<ExitCode> {
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

async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
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

fn progress_line(name: &str, figures: &TransferFigures, note: &str) -> String {
    const WIDTH: usize = 24;
    let percent = figures
        .total_bytes
        .filter(|t| *t > 0)
        .map(|t| (figures.bytes_done as f64 / t as f64).min(1.0));
    let filled = percent.map(|p| (p * WIDTH as f64) as usize).unwrap_or(0);
    let bar: String = "#".repeat(filled) + &".".repeat(WIDTH - filled);
    let total = figures
        .total_bytes
        .map(format_bytes)
        .unwrap_or_else(|| "?".into());
    let eta = figures
        .eta_secs
        .map(|s| format!(" ETA {}", format_duration_secs(s)))
        .unwrap_or_default();
    let tail = if note.is_empty() {
        format!("{}/s{eta}", format_bytes(figures.speed_bps))
    } else {
        note.to_string()
    };
    format!(
        "[{bar}] {:>3}% {}/{} {tail}  {name}",
        percent.map(|p| (p * 100.0) as u32).unwrap_or(0),
        format_bytes(figures.bytes_done),
        total
    )
}

/// Progress lines: redrawn in place on a terminal; elsewhere (CI logs, `| tee`) one block
/// every 10 s, so logs stay readable.
struct Bars {
    tty: bool,
    drawn: usize,
    last_plain: Option<Instant>,
}

impl Bars {
    fn new() -> Bars {
        Bars {
            tty: std::io::stderr().is_terminal(),
            drawn: 0,
            last_plain: None,
        }
    }

    fn draw(&mut self, lines: &[String]) {
        let mut err = std::io::stderr().lock();
        if self.tty {
            if self.drawn > 0 {
                let _ = write!(err, "\x1b[{}A", self.drawn);
            }
            for line in lines {
                let _ = writeln!(err, "\x1b[2K{line}");
            }
            // Clear lines left over from a longer previous frame.
            for _ in lines.len()..self.drawn {
                let _ = writeln!(err, "\x1b[2K");
            }
            self.drawn = self.drawn.max(lines.len());
        } else if self
            .last_plain
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(10))
        {
            self.last_plain = Some(Instant::now());
            for line in lines {
                let _ = writeln!(err, "{line}");
            }
        }
        let _ = err.flush();
    }

    fn finish(&mut self) {
        self.drawn = 0;
    }
}
