//! The binary's commands, one file each: `serve` (the dashboard; the default), `presets …`,
//! `download …`, `workflow to-api`, `users …`, `nodes …`, `recovery …`, `worker` and
//! `workers token …`;
//! `progress` draws their progress bars. The one-shot
//! commands are for provisioning scripts: they start the same engine as the server and use
//! the same service handles as the web layer; only the output (tables, JSON, progress bars)
//! is theirs.

use std::sync::Arc;

use anyhow::Context;
use engine::config::Config;
use engine::download::manager::DownloadManager;
use engine::workspace::WorkspaceError;
use engine::{Engine, EngineError};

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

mod download;
mod nodes;
mod presets;
mod progress;
mod recovery;
mod serve;
mod users;
mod worker;
mod workflow;

pub use download::download;
pub use nodes::nodes;
pub use presets::presets;
pub use recovery::recovery;
pub use serve::serve;
pub use users::users;
pub use worker::{worker, worker_tokens};
pub use workflow::workflow;

/// Exit status for "a download did not end verified".
pub const EXIT_FAILED: i32 = 1;
/// Exit status for "the workspace is busy" (another comfydeck serves it).
pub const EXIT_BUSY: i32 = 2;
/// Exit status after Ctrl-C (parts are kept; running the command again resumes).
pub const EXIT_INTERRUPTED: i32 = 130;

/// A command's outcome: the process exit status.
pub type ExitCode = i32;

/// Sets up logging for a one-shot command (stderr, no log file); a bad `LOG_LEVEL` ends the
/// process.
pub fn init_cli_logging(level: &str) {
    if let Err(e) = crate::logging::init_cli(level) {
        eprintln!("comfydeck: {e}");
        std::process::exit(1);
    }
}

/// Ends the process with the command's exit status, or prints its error and exits with 1.
pub fn exit(result: anyhow::Result<ExitCode>) -> ! {
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("comfydeck: {}", describe(&e));
            std::process::exit(1);
        }
    }
}

/// The error and its causes in one line, skipping causes the message already quotes (the
/// engine's errors name their cause in their own words).
fn describe(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Starts the engine, which takes the workspace lock; when a server already holds it, says
/// so plainly instead of a generic error. What fails in the command is recorded for the
/// Recovery page as it would be under `serve`.
async fn start_exclusive(config: Config, what: &str) -> anyhow::Result<Arc<Engine>> {
    match Engine::start(config).await {
        Ok((engine, _)) => {
            // Lives as long as the process.
            engine
                .recovery()
                .spawn_listener(&tokio_util::sync::CancellationToken::new());
            Ok(engine)
        }
        Err(EngineError::Workspace(WorkspaceError::Locked { path, pid })) => {
            let instead = if what == "retry" || what == "roll back" {
                "its Recovery page (or its API: POST /api/recovery/act {\"id\": …, \"action\": \"retry\"})"
            } else {
                "its Models page (or its API: POST /api/presets/install {\"id\": \"…\"})"
            };
            eprintln!(
                "comfydeck: cannot {what}: a running comfydeck{pid} serves the workspace {}. \
                 Use {instead}, or stop it and run this command again.",
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

async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}
