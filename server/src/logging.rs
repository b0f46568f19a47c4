//! Logs go to stdout and to `workspace/logs/comfydeck.log` (rotated by size).

use std::io::IsTerminal;
use std::path::Path;

use engine::logfile::{RotatingFile, DEFAULT_KEEP, DEFAULT_MAX_BYTES};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// `LOG_LEVEL` is either a level (`info`, `debug`…), applied to comfydeck with quieter
/// libraries, or a full filter directive (`info,sqlx=debug`).
pub fn filter(log_level: &str) -> Result<EnvFilter, String> {
    let directive = if log_level.contains('=') || log_level.contains(',') {
        log_level.to_string()
    } else {
        format!("{log_level},sqlx=warn,hyper=warn,hyper_util=warn,h2=warn,reqwest=warn,tungstenite=warn,leptos=warn,tachys=warn")
    };
    EnvFilter::try_new(&directive)
        .map_err(|e| format!("LOG_LEVEL {log_level:?} is not a valid log filter: {e}"))
}

/// Installs the global subscriber. The returned guard flushes the file on drop: keep it alive.
/// When the log file cannot be opened, logs still go to stdout and the reason is returned.
pub fn init(
    log_level: &str,
    log_file: &Path,
) -> Result<(Option<WorkerGuard>, Option<String>), String> {
    // Colours only on a terminal: pod logs and files would show the escape codes as text.
    let stdout = fmt::layer()
        .with_ansi(std::io::stdout().is_terminal())
        .with_target(false)
        .with_filter(filter(log_level)?);
    let file = log_file
        .parent()
        .map(std::fs::create_dir_all)
        .unwrap_or(Ok(()))
        .and_then(|_| RotatingFile::open(log_file, DEFAULT_MAX_BYTES, DEFAULT_KEEP));
    match file {
        Ok(file) => {
            let (writer, guard) = tracing_appender::non_blocking(file);
            let file_layer = fmt::layer()
                .with_ansi(false)
                .with_target(false)
                .with_writer(writer)
                .with_filter(filter(log_level)?);
            tracing_subscriber::registry()
                .with(stdout)
                .with(file_layer)
                .init();
            Ok((Some(guard), None))
        }
        Err(e) => {
            tracing_subscriber::registry().with(stdout).init();
            Ok((
                None,
                Some(format!("cannot open {}: {e}", log_file.display())),
            ))
        }
    }
}

/// Logging for one-shot commands (`presets`, `download`): stderr only, so stdout stays clean
/// for tables and JSON, and warnings only unless a level was asked for. The server's log file
/// is left to the server (two writers would fight over its rotation).
pub fn init_cli(log_level: &str) -> Result<(), String> {
    let level = if log_level == "info" {
        "warn"
    } else {
        log_level
    };
    let stderr = fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_filter(filter(level)?);
    tracing_subscriber::registry().with(stderr).init();
    Ok(())
}
