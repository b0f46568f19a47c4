//! The ComfyUI process, when comfydeck supervises it.

use serde::{Deserialize, Serialize};

use super::tagged::{required, unknown_variant};

/// How a ComfyUI process ended: an exit code, or the signal that killed it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComfyExit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl std::fmt::Display for ComfyExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit code {code}"),
            (None, Some(signal)) => write!(f, "signal {signal}"),
            (None, None) => f.write_str("unknown exit status"),
        }
    }
}

/// Where the ComfyUI process is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "state",
    rename_all = "snake_case",
    try_from = "ComfyProcessStateFields"
)]
pub enum ComfyProcessState {
    /// Spawned, not answering `/system_stats` yet.
    Starting { pid: u32 },
    /// Answering `/system_stats` since `since_ms` (Unix ms).
    Ready { pid: u32, since_ms: i64 },
    /// Exited on its own; a restart follows.
    Crashed {
        exit: ComfyExit,
        last_lines: Vec<String>,
    },
    /// Waiting `delay_ms` (until `at_ms`, Unix ms) before restart number `attempt` of the
    /// current run of failures.
    Restarting {
        delay_ms: u64,
        at_ms: i64,
        attempt: u32,
        last_exit: ComfyExit,
    },
    /// Cannot be started as configured (no `main.py`, no Python…); waits for a manual restart.
    Failed { error: String },
    /// Stopped by comfydeck (shutdown); a manual restart starts it again.
    Stopped,
    /// Attach-only mode: comfydeck does not manage ComfyUI, it only checks that it answers.
    External { reachable: bool },
}

/// Every field of every [`ComfyProcessState`], read flat (see `tagged.rs`).
#[derive(Deserialize)]
struct ComfyProcessStateFields {
    state: String,
    pid: Option<u32>,
    since_ms: Option<i64>,
    exit: Option<ComfyExit>,
    last_lines: Option<Vec<String>>,
    delay_ms: Option<u64>,
    at_ms: Option<i64>,
    attempt: Option<u32>,
    last_exit: Option<ComfyExit>,
    error: Option<String>,
    reachable: Option<bool>,
}

impl TryFrom<ComfyProcessStateFields> for ComfyProcessState {
    type Error = String;

    fn try_from(f: ComfyProcessStateFields) -> Result<Self, String> {
        let state = f.state.as_str();
        Ok(match state {
            "starting" => ComfyProcessState::Starting {
                pid: required(f.pid, state, "pid")?,
            },
            "ready" => ComfyProcessState::Ready {
                pid: required(f.pid, state, "pid")?,
                since_ms: required(f.since_ms, state, "since_ms")?,
            },
            "crashed" => ComfyProcessState::Crashed {
                exit: required(f.exit, state, "exit")?,
                last_lines: required(f.last_lines, state, "last_lines")?,
            },
            "restarting" => ComfyProcessState::Restarting {
                delay_ms: required(f.delay_ms, state, "delay_ms")?,
                at_ms: required(f.at_ms, state, "at_ms")?,
                attempt: required(f.attempt, state, "attempt")?,
                last_exit: required(f.last_exit, state, "last_exit")?,
            },
            "failed" => ComfyProcessState::Failed {
                error: required(f.error, state, "error")?,
            },
            "stopped" => ComfyProcessState::Stopped,
            "external" => ComfyProcessState::External {
                reachable: required(f.reachable, state, "reachable")?,
            },
            other => {
                return Err(unknown_variant(
                    other,
                    &[
                        "starting",
                        "ready",
                        "crashed",
                        "restarting",
                        "failed",
                        "stopped",
                        "external",
                    ],
                ))
            }
        })
    }
}

/// What the deck shows about the ComfyUI process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComfyProcess {
    pub state: ComfyProcessState,
    /// The last lines of its output (stdout and stderr, interleaved), oldest first.
    pub log_tail: Vec<String>,
    /// Restarts since comfydeck started, automatic and manual.
    pub restarts: u32,
}
