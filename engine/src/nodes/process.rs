//! Git and pip run as child processes: with a timeout, without a terminal, their output
//! captured so a failure can say what the tool said.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// Longest excerpt of a tool's output quoted in an error.
const QUOTED_CHARS: usize = 1500;

/// What a finished child printed.
#[derive(Debug)]
pub(crate) struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program args…` in `dir` (when given) with `env` added, and waits at most `timeout`.
/// `Err` is a sentence: the tool could not run, timed out, or exited non-zero (with the end
/// of what it printed).
pub(crate) async fn run<I, S>(
    what: &str,
    program: &Path,
    args: I,
    dir: Option<&Path>,
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<Output, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Git must never wait for a password on a terminal nobody watches.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INPUT", "1")
        .env("PYTHONUNBUFFERED", "1")
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let child = command
        .spawn()
        .map_err(|e| format!("{what}: cannot run {}: {e}", program.display()))?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(format!("{what}: {e}")),
        // Dropping the future kills the child (kill_on_drop).
        Err(_) => {
            return Err(format!(
                "{what}: gave up after {} s without an answer",
                timeout.as_secs()
            ))
        }
    };
    let out = Output {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    if output.status.success() {
        Ok(out)
    } else {
        let said = if out.stderr.trim().is_empty() {
            &out.stdout
        } else {
            &out.stderr
        };
        Err(format!(
            "{what} failed ({}): {}",
            match output.status.code() {
                Some(code) => format!("exit code {code}"),
                None => "killed by a signal".to_string(),
            },
            tail(said, QUOTED_CHARS)
        ))
    }
}

/// The last `max` characters of `text`, trimmed, starting at a line when possible.
pub(crate) fn tail(text: &str, max: usize) -> String {
    let text = text.trim();
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let cut: String = text.chars().skip(count - max).collect();
    match cut.find('\n') {
        Some(i) => format!("…{}", &cut[i..]),
        None => format!("…{cut}"),
    }
}
