//! The ComfyUI process, when comfydeck starts it itself (`--comfyui-dir` / `COMFYUI_DIR`).
//!
//! [`Supervisor::start`] runs `<python> main.py --listen 127.0.0.1 --port <port> …` in the
//! ComfyUI directory, in a process group of its own, and one task watches it:
//!
//! - its stdout and stderr go, line by line, to a size-rotated log file and to an in-memory
//!   tail of the last few hundred lines;
//! - it is `ready` once `GET <ready url>/system_stats` answers 200;
//! - when it exits it is restarted after an exponential backoff, which resets once a run has
//!   lasted long enough to count as stable;
//! - stopping it (shutdown, manual restart) sends SIGTERM to the whole group, then SIGKILL
//!   after a timeout, so that its workers die with it;
//! - a directory without `main.py`, or a Python that cannot be run, is a `failed` status that
//!   waits for a manual restart instead of a crash loop.
//!
//! Watchers get the current [`ComfyProcess`] through a `watch` channel ([`Supervisor::subscribe`]),
//! and every state change, in order, through a broadcast channel ([`Supervisor::transitions`]).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::DEFAULT_COMFYUI_PORT;
use crate::logfile::{RotatingFile, DEFAULT_KEEP, DEFAULT_MAX_BYTES};
use crate::workspace::WorkspaceLayout;

/// Longest line kept in the in-memory tail (the log file keeps lines whole).
const MAX_TAIL_LINE_CHARS: usize = 2000;
/// How long to wait for the output pipes to close once the process group is gone.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The status types are shared with the browser.
pub use crate::model::{ComfyExit, ComfyProcess, ComfyProcessState};

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// Timings and sizes; the defaults are the product's, tests use milliseconds.
#[derive(Clone, Debug)]
pub struct SupervisorTuning {
    /// Delay before the first restart after a failure; doubled for each further one.
    pub backoff_initial: Duration,
    /// Cap on the backoff delay.
    pub backoff_max: Duration,
    /// A run that lasted this long resets the backoff.
    pub stable_after: Duration,
    /// Interval between `/system_stats` polls while starting.
    pub ready_poll: Duration,
    /// Time between SIGTERM and SIGKILL when stopping.
    pub stop_timeout: Duration,
    /// Lines kept in [`ComfyProcess::log_tail`].
    pub tail_lines: usize,
    /// Lines copied into [`ComfyProcessState::Crashed`].
    pub crash_lines: usize,
    /// New output reaches `subscribe()` watchers at most this often (state changes at once).
    pub tail_publish_interval: Duration,
    /// Size at which the log file rotates, and how many old files are kept.
    pub log_max_bytes: u64,
    pub log_keep: usize,
}

impl Default for SupervisorTuning {
    fn default() -> Self {
        SupervisorTuning {
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            stable_after: Duration::from_secs(60),
            ready_poll: Duration::from_millis(500),
            stop_timeout: Duration::from_secs(10),
            tail_lines: 200,
            crash_lines: 40,
            tail_publish_interval: Duration::from_millis(250),
            log_max_bytes: DEFAULT_MAX_BYTES,
            log_keep: DEFAULT_KEEP,
        }
    }
}

impl SupervisorTuning {
    /// The delay before restart number `attempt` (1-based) of a run of failures.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        self.backoff_initial
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_max)
    }
}

#[derive(Clone, Debug)]
pub struct SupervisorConfig {
    /// The ComfyUI checkout: holds `main.py`; the process's working directory.
    pub comfyui_dir: PathBuf,
    /// `COMFYUI_PYTHON`; `None`: the directory's `venv/bin/python` or `.venv/bin/python`, else
    /// `python3` from `PATH`.
    pub python: Option<PathBuf>,
    /// `--port`; ComfyUI always listens on 127.0.0.1.
    pub port: u16,
    /// `COMFYUI_ARGS`, already split ([`parse_args`]); appended after comfydeck's flags.
    pub extra_args: Vec<String>,
    pub extra_model_paths: PathBuf,
    pub output_dir: PathBuf,
    pub input_dir: PathBuf,
    pub log_file: PathBuf,
    /// Where the running ComfyUI's pid is kept: one that outlived a deck killed with -9 is
    /// ended before the next one starts (it would hold the port).
    pub pid_file: PathBuf,
    /// Base URL polled for readiness (`<base>/system_stats`); `None`: `http://127.0.0.1:<port>`.
    pub ready_url: Option<String>,
    pub tuning: SupervisorTuning,
}

impl SupervisorConfig {
    /// ComfyUI in `comfyui_dir`, on the default port, with the workspace's paths and log.
    pub fn new(comfyui_dir: impl Into<PathBuf>, layout: &WorkspaceLayout) -> Self {
        SupervisorConfig {
            comfyui_dir: comfyui_dir.into(),
            python: None,
            port: DEFAULT_COMFYUI_PORT,
            extra_args: Vec::new(),
            extra_model_paths: layout.extra_model_paths_yaml(),
            output_dir: layout.output(),
            input_dir: layout.input(),
            log_file: layout.comfyui_log(),
            pid_file: layout.data().join("comfyui.pid"),
            ready_url: None,
            tuning: SupervisorTuning::default(),
        }
    }

    /// The base URL polled for readiness.
    pub fn ready_base_url(&self) -> String {
        match &self.ready_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// The Python that runs `main.py` (see [`resolve_python`]).
    pub fn python_program(&self) -> PathBuf {
        resolve_python(&self.comfyui_dir, self.python.as_deref())
    }

    /// The arguments given to Python: `main.py` and the flags, paths made absolute.
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "main.py".into(),
            "--listen".into(),
            "127.0.0.1".into(),
            "--port".into(),
            self.port.to_string().into(),
            "--extra-model-paths-config".into(),
            absolute(&self.extra_model_paths).into(),
            "--output-directory".into(),
            absolute(&self.output_dir).into(),
            "--input-directory".into(),
            absolute(&self.input_dir).into(),
        ];
        args.extend(self.extra_args.iter().map(OsString::from));
        args
    }

    /// Why ComfyUI cannot be started as configured, in words for the deck.
    fn preflight(&self) -> Result<(), String> {
        let dir = &self.comfyui_dir;
        if !dir.exists() {
            return Err(format!("COMFYUI_DIR {} does not exist", dir.display()));
        }
        if !dir.is_dir() {
            return Err(format!("COMFYUI_DIR {} is not a directory", dir.display()));
        }
        if !dir.join("main.py").is_file() {
            return Err(format!("COMFYUI_DIR {} has no main.py", dir.display()));
        }
        if let Some(python) = &self.python {
            if python.components().count() > 1 && !python.exists() {
                return Err(format!(
                    "COMFYUI_PYTHON {} does not exist",
                    python.display()
                ));
            }
        }
        if !self.extra_model_paths.is_file() {
            return Err(format!(
                "the extra model paths file {} does not exist",
                self.extra_model_paths.display()
            ));
        }
        Ok(())
    }
}

/// The Python for a ComfyUI directory: `configured` (`COMFYUI_PYTHON`) if given, else the
/// directory's `venv/bin/python`, else its `.venv/bin/python`, else `python3` from `PATH`.
pub fn resolve_python(comfyui_dir: &Path, configured: Option<&Path>) -> PathBuf {
    if let Some(python) = configured {
        // A bare name (`python3.11`) is looked up on PATH; a path is made absolute so that it
        // does not depend on the child's working directory.
        return if python.components().count() > 1 {
            absolute(python)
        } else {
            python.to_path_buf()
        };
    }
    let dir = absolute(comfyui_dir);
    for venv in ["venv", ".venv"] {
        let candidate = dir.join(venv).join("bin").join("python");
        if candidate.exists() {
            return candidate;
        }
    }
    PathBuf::from("python3")
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Splits `COMFYUI_ARGS` like a POSIX shell would, without expansions: whitespace separates,
/// `'…'` is literal, `"…"` allows `\"`, `\\`, `\$` and `` \` ``, and `\` escapes one character
/// outside quotes.
pub fn parse_args(s: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut current = String::new();
    // Whether an argument has begun: `''` is an (empty) argument, plain whitespace is not.
    let mut started = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if started {
                    args.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            '\'' => {
                started = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => current.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                started = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => current.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                current.push('\\');
                                current.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => current.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                // A line continuation joins, it does not start an argument.
                Some('\n') => {}
                Some(c) => {
                    started = true;
                    current.push(c);
                }
                None => return Err("trailing backslash".into()),
            },
            c => {
                started = true;
                current.push(c);
            }
        }
    }
    if started {
        args.push(current);
    }
    Ok(args)
}

// ---------------------------------------------------------------------------------------------
// The supervisor
// ---------------------------------------------------------------------------------------------

enum Request {
    Restart(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// Runs ComfyUI and keeps it running. Dropping the last handle stops it (in the background);
/// call [`Supervisor::shutdown`] to wait for that.
pub struct Supervisor {
    shared: Arc<Shared>,
    requests: mpsc::Sender<Request>,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("state", &self.shared.state.borrow().state)
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// Starts ComfyUI (synchronously: on return the state is `starting` or `failed`) and the
    /// task that watches it. Must be called inside a Tokio runtime.
    pub fn start(config: SupervisorConfig) -> Arc<Supervisor> {
        let tuning = &config.tuning;
        let (state, _) = watch::channel(ComfyProcess {
            state: ComfyProcessState::Stopped,
            log_tail: Vec::new(),
            restarts: 0,
        });
        let (transitions, _) = broadcast::channel(64);
        let shared = Arc::new(Shared {
            state,
            transitions,
            log: Mutex::new(LogSink {
                path: config.log_file.clone(),
                max_bytes: tuning.log_max_bytes,
                keep: tuning.log_keep,
                file: None,
                tail: VecDeque::new(),
                cap: tuning.tail_lines.max(1),
            }),
        });
        let (requests, rx) = mpsc::channel(8);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .expect("a client with timeouts only always builds");
        let mut task = Task {
            config,
            shared: shared.clone(),
            rx,
            http,
            restarts: 0,
            attempt: 0,
            pending: Vec::new(),
        };
        let first = task.start();
        tokio::spawn(task.run(first));
        Arc::new(Supervisor { shared, requests })
    }

    /// The current state, with the freshest log tail.
    pub fn state(&self) -> ComfyProcess {
        let mut process = self.shared.state.borrow().clone();
        process.log_tail = self.shared.log_tail();
        process
    }

    /// The current state, updated on every change; the log tail is refreshed at most every
    /// `tail_publish_interval`. Watch semantics: a slow watcher sees only the latest state.
    pub fn subscribe(&self) -> watch::Receiver<ComfyProcess> {
        self.shared.state.subscribe()
    }

    /// Every state change, in order (for activity entries and tests); lags after 64.
    pub fn transitions(&self) -> broadcast::Receiver<ComfyProcessState> {
        self.shared.transitions.subscribe()
    }

    /// Stops ComfyUI if it runs (SIGTERM, then SIGKILL) and starts it at once, resetting the
    /// backoff; also starts it again after a shutdown or a `failed` status. Returns once the
    /// new process is spawned (`starting`) or could not be (`failed`).
    pub async fn restart(&self) {
        self.request(Request::Restart).await;
    }

    /// Stops ComfyUI: SIGTERM to its process group, SIGKILL after `stop_timeout`; returns
    /// once it is gone and the state is `stopped`.
    pub async fn shutdown(&self) {
        self.request(Request::Shutdown).await;
    }

    async fn request(&self, make: fn(oneshot::Sender<()>) -> Request) {
        let (tx, rx) = oneshot::channel();
        if self.requests.send(make(tx)).await.is_ok() {
            // An error here means the task is gone, which is as done as it gets.
            let _ = rx.await;
        }
    }
}

struct Shared {
    state: watch::Sender<ComfyProcess>,
    transitions: broadcast::Sender<ComfyProcessState>,
    log: Mutex<LogSink>,
}

impl Shared {
    fn log(&self) -> MutexGuard<'_, LogSink> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn log_tail(&self) -> Vec<String> {
        self.log().tail.iter().cloned().collect()
    }

    fn publish(&self, state: ComfyProcessState, restarts: u32) {
        let log_tail = self.log_tail();
        let sent = state.clone();
        self.state.send_modify(move |p| {
            p.state = sent;
            p.log_tail = log_tail;
            p.restarts = restarts;
        });
        // No receiver is not an error.
        let _ = self.transitions.send(state);
    }

    fn publish_tail(&self) {
        let log_tail = self.log_tail();
        self.state.send_if_modified(|p| {
            if p.log_tail == log_tail {
                return false;
            }
            p.log_tail = log_tail;
            true
        });
    }

    /// A line of comfydeck's own, in the log file and the tail.
    fn note(&self, message: impl fmt::Display) {
        self.log()
            .line(format!("[comfydeck] {message}\n").as_bytes());
    }
}

struct LogSink {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: Option<RotatingFile>,
    tail: VecDeque<String>,
    cap: usize,
}

impl LogSink {
    /// (Re)opens the log file if it is not open; called before each start.
    fn open(&mut self) {
        if self.file.is_some() {
            return;
        }
        if let Some(parent) = self.path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        match RotatingFile::open(&self.path, self.max_bytes, self.keep) {
            Ok(file) => self.file = Some(file),
            Err(e) => tracing::warn!(
                error = %e, path = %self.path.display(),
                "cannot open the ComfyUI log file; output is kept in memory only"
            ),
        }
    }

    /// One raw line of output (with or without its `\n`).
    fn line(&mut self, raw: &[u8]) {
        if let Some(file) = &mut self.file {
            let written = if raw.ends_with(b"\n") {
                file.write_all(raw)
            } else {
                let mut whole = raw.to_vec();
                whole.push(b'\n');
                file.write_all(&whole)
            };
            if let Err(e) = written {
                tracing::warn!(
                    error = %e, path = %self.path.display(),
                    "cannot write the ComfyUI log file; it is reopened at the next start"
                );
                self.file = None;
            }
        }
        if self.tail.len() >= self.cap {
            self.tail.pop_front();
        }
        self.tail.push_back(tail_line(raw));
    }
}

/// A raw output line as the tail shows it: lossy UTF-8, no ANSI escapes, only what follows the
/// last `\r` (progress bars redraw with `\r`), and not too long.
fn tail_line(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end_matches(['\n', '\r']);
    let text = text.rsplit('\r').next().unwrap_or_default();
    let mut out = String::with_capacity(text.len().min(MAX_TAIL_LINE_CHARS));
    let mut chars = text.chars().peekable();
    let mut count = 0;
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters… final byte (0x40–0x7e); any other escape: ESC + one char.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        if count == MAX_TAIL_LINE_CHARS {
            out.push('…');
            break;
        }
        out.push(c);
        count += 1;
    }
    out
}

/// Copies the child's output, line by line, into the log; publishes the tail now and then.
async fn pump(
    stdout: impl AsyncRead + Unpin,
    stderr: impl AsyncRead + Unpin,
    shared: Arc<Shared>,
    every: Duration,
) {
    let mut out = BufReader::new(stdout);
    let mut err = BufReader::new(stderr);
    let (mut out_buf, mut err_buf) = (Vec::new(), Vec::new());
    let (mut out_open, mut err_open) = (true, true);
    let mut dirty = false;
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while out_open || err_open {
        // `read_until` keeps partial lines in the buffer when cancelled, so a tick in the
        // middle of a line loses nothing.
        tokio::select! {
            read = out.read_until(b'\n', &mut out_buf), if out_open => {
                out_open = matches!(read, Ok(n) if n > 0);
                if !out_buf.is_empty() {
                    shared.log().line(&out_buf);
                    out_buf.clear();
                    dirty = true;
                }
            }
            read = err.read_until(b'\n', &mut err_buf), if err_open => {
                err_open = matches!(read, Ok(n) if n > 0);
                if !err_buf.is_empty() {
                    shared.log().line(&err_buf);
                    err_buf.clear();
                    dirty = true;
                }
            }
            _ = tick.tick() => {
                if dirty {
                    shared.publish_tail();
                    dirty = false;
                }
            }
        }
    }
    shared.publish_tail();
}

/// Ends the ComfyUI whose pid `pid_file` keeps when it still runs in `comfyui_dir` (its
/// working directory; a zombie or another program with the pid is left alone) and is not this
/// deck's child: a deck killed with -9 leaves its ComfyUI running, holding the port. Its
/// process group is killed and waited for (at most 5 s). Returns the pid it ended.
fn end_orphan(pid_file: &Path, comfyui_dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let cwd = std::fs::read_link(proc_dir.join("cwd")).ok()?;
    if cwd != absolute(comfyui_dir) {
        return None;
    }
    // Our own child (not exited yet) has this deck as its parent: the supervisor ends it.
    let stat = std::fs::read_to_string(proc_dir.join("stat")).ok()?;
    let parent: u32 = stat
        .rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    if parent == std::process::id() {
        return None;
    }
    tracing::warn!(
        pid,
        "ending a ComfyUI left running by a deck that was killed"
    );
    signal_group(pid, rustix::process::Signal::KILL);
    let started = std::time::Instant::now();
    while proc_dir.exists() && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(pid)
}

/// Sends `signal` to the process group `pgid`; false when there is no such group any more.
fn signal_group(pgid: u32, signal: rustix::process::Signal) -> bool {
    let Some(pid) = i32::try_from(pgid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::kill_process_group(pid, signal) {
        Ok(()) => true,
        Err(e) => {
            if e != rustix::io::Errno::SRCH {
                tracing::warn!(error = %e, pgid, "cannot signal the ComfyUI process group");
            }
            false
        }
    }
}

fn exit_of(status: Option<ExitStatus>) -> ComfyExit {
    ComfyExit {
        code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
    }
}

/// A spawned ComfyUI: the group leader, its process group (same id) and its output pump.
struct Running {
    child: Child,
    pid: u32,
    started: Instant,
    pump: JoinHandle<()>,
    /// Whether the group may still have members; cleared once it was killed and reaped.
    group_alive: bool,
}

impl Running {
    /// After the leader exited: kills what is left of its group, waits for the output.
    async fn finish(&mut self) {
        signal_group(self.pid, rustix::process::Signal::KILL);
        self.group_alive = false;
        if tokio::time::timeout(DRAIN_TIMEOUT, &mut self.pump)
            .await
            .is_err()
        {
            // Something outside the group holds the pipes; stop reading them.
            self.pump.abort();
        }
    }

    /// SIGTERM to the group, SIGKILL after `timeout`; returns how the leader ended.
    async fn stop(&mut self, shared: &Shared, timeout: Duration) -> ComfyExit {
        shared.note(format_args!("stopping ComfyUI (pid {}): SIGTERM", self.pid));
        signal_group(self.pid, rustix::process::Signal::TERM);
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                shared.note(format_args!(
                    "ComfyUI did not stop within {timeout:?}: SIGKILL"
                ));
                signal_group(self.pid, rustix::process::Signal::KILL);
                self.child.wait().await.ok()
            }
        };
        self.finish().await;
        let exit = exit_of(status);
        shared.note(format_args!("ComfyUI stopped ({exit})"));
        exit
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // The task was dropped with ComfyUI still running (runtime shutdown): take the whole
        // group down, not only the leader (`kill_on_drop`).
        if self.group_alive {
            signal_group(self.pid, rustix::process::Signal::KILL);
        }
    }
}

enum Phase {
    Start,
    Running(Box<Running>),
    Backoff(ComfyExit),
    Idle,
    Exit,
}

struct Task {
    config: SupervisorConfig,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Request>,
    http: reqwest::Client,
    restarts: u32,
    /// Consecutive failures: the backoff's exponent.
    attempt: u32,
    /// Restart requests answered once the new process is spawned (or failed).
    pending: Vec<oneshot::Sender<()>>,
}

impl Task {
    async fn run(mut self, mut phase: Phase) {
        loop {
            phase = match phase {
                Phase::Start => self.start(),
                Phase::Running(running) => self.watch(*running).await,
                Phase::Backoff(exit) => self.backoff(exit).await,
                Phase::Idle => self.idle().await,
                Phase::Exit => return,
            };
        }
    }

    fn publish(&self, state: ComfyProcessState) {
        self.shared.publish(state, self.restarts);
    }

    fn answer_pending(&mut self) {
        for ack in self.pending.drain(..) {
            let _ = ack.send(());
        }
    }

    fn start(&mut self) -> Phase {
        self.shared.log().open();
        let phase = match self.spawn() {
            Ok(running) => {
                tracing::info!(pid = running.pid, "ComfyUI started");
                self.publish(ComfyProcessState::Starting { pid: running.pid });
                Phase::Running(Box::new(running))
            }
            Err(error) => {
                tracing::warn!(%error, "ComfyUI cannot be started");
                self.shared.note(&error);
                self.publish(ComfyProcessState::Failed { error });
                Phase::Idle
            }
        };
        self.answer_pending();
        phase
    }

    fn spawn(&self) -> Result<Running, String> {
        let config = &self.config;
        config.preflight()?;
        if let Some(pid) = end_orphan(&config.pid_file, &config.comfyui_dir) {
            self.shared.note(format_args!(
                "ended ComfyUI (pid {pid}) left running by a deck that stopped without ending it"
            ));
        }
        let python = config.python_program();
        let args = config.args();
        let mut command = Command::new(&python);
        command
            .args(&args)
            .current_dir(absolute(&config.comfyui_dir))
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound && config.python.is_none() {
                " (set COMFYUI_PYTHON)"
            } else {
                ""
            };
            format!("cannot run {}: {e}{hint}", python.display())
        })?;
        let pid = child.id().expect("a child that was just spawned has a pid");
        if let Err(e) = crate::workspace::write_atomic(&config.pid_file, pid.to_string().as_bytes())
        {
            tracing::warn!(error = %e, "the ComfyUI pid file was not written");
        }
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        self.shared.note(format_args!(
            "starting ComfyUI (pid {pid}): {} {}",
            python.display(),
            shown.join(" ")
        ));
        let pump = tokio::spawn(pump(
            stdout,
            stderr,
            self.shared.clone(),
            config.tuning.tail_publish_interval,
        ));
        Ok(Running {
            child,
            pid,
            started: Instant::now(),
            pump,
            group_alive: true,
        })
    }

    async fn watch(&mut self, mut running: Running) -> Phase {
        let url = format!("{}/system_stats", self.config.ready_base_url());
        let ready = wait_ready(self.http.clone(), url, self.config.tuning.ready_poll);
        tokio::pin!(ready);
        let mut is_ready = false;
        let stop_timeout = self.config.tuning.stop_timeout;
        loop {
            tokio::select! {
                status = running.child.wait() => {
                    running.finish().await;
                    let exit = exit_of(status.ok());
                    let last_lines = {
                        let log = self.shared.log();
                        let skip = log.tail.len().saturating_sub(self.config.tuning.crash_lines);
                        log.tail.iter().skip(skip).cloned().collect()
                    };
                    tracing::warn!(pid = running.pid, %exit, "ComfyUI exited");
                    self.shared.note(format_args!("ComfyUI exited ({exit})"));
                    self.publish(ComfyProcessState::Crashed { exit, last_lines });
                    if running.started.elapsed() >= self.config.tuning.stable_after {
                        self.attempt = 0;
                    }
                    return Phase::Backoff(exit);
                }
                _ = &mut ready, if !is_ready => {
                    is_ready = true;
                    tracing::info!(pid = running.pid, "ComfyUI is ready");
                    self.shared.note("ComfyUI is ready");
                    self.publish(ComfyProcessState::Ready {
                        pid: running.pid,
                        since_ms: crate::clock::now_ms(),
                    });
                }
                request = self.rx.recv() => {
                    running.stop(&self.shared, stop_timeout).await;
                    return self.after_request(request);
                }
            }
        }
    }

    async fn backoff(&mut self, last_exit: ComfyExit) -> Phase {
        self.attempt = self.attempt.saturating_add(1);
        let delay = self.config.tuning.backoff(self.attempt);
        self.shared.note(format_args!(
            "restarting ComfyUI in {delay:?} (attempt {})",
            self.attempt
        ));
        self.publish(ComfyProcessState::Restarting {
            delay_ms: delay.as_millis().try_into().unwrap_or(u64::MAX),
            at_ms: crate::clock::now_ms().saturating_add(delay.as_millis().try_into().unwrap_or(0)),
            attempt: self.attempt,
            last_exit,
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {
                self.restarts = self.restarts.saturating_add(1);
                Phase::Start
            }
            request = self.rx.recv() => self.after_request(request),
        }
    }

    async fn idle(&mut self) -> Phase {
        let request = self.rx.recv().await;
        self.after_request(request)
    }

    /// A request when no process runs (any running one was just stopped).
    fn after_request(&mut self, request: Option<Request>) -> Phase {
        match request {
            Some(Request::Restart(ack)) => {
                self.pending.push(ack);
                self.attempt = 0;
                self.restarts = self.restarts.saturating_add(1);
                Phase::Start
            }
            Some(Request::Shutdown(ack)) => {
                if self.shared.state.borrow().state != ComfyProcessState::Stopped {
                    self.publish(ComfyProcessState::Stopped);
                }
                let _ = ack.send(());
                Phase::Idle
            }
            None => {
                self.publish(ComfyProcessState::Stopped);
                Phase::Exit
            }
        }
    }
}

/// Resolves once `url` answers 200.
async fn wait_ready(http: reqwest::Client, url: String, every: Duration) {
    loop {
        if let Ok(response) = http.get(&url).send().await {
            if response.status() == reqwest::StatusCode::OK {
                return;
            }
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_split_like_a_shell() {
        let ok = |s: &str| parse_args(s).unwrap();
        assert_eq!(ok(""), Vec::<String>::new());
        assert_eq!(ok("   "), Vec::<String>::new());
        assert_eq!(
            ok("--lowvram  --preview-method auto"),
            ["--lowvram", "--preview-method", "auto"]
        );
        assert_eq!(ok(r#"--a "b c" 'd e' f\ g"#), ["--a", "b c", "d e", "f g"]);
        assert_eq!(ok(r#"x'y'"z" '' """#), ["xyz", "", ""]);
        assert_eq!(ok(r#""a \"q\" \\ \$ \n""#), [r#"a "q" \ $ \n"#]);
        assert_eq!(ok(r"'no \escapes'"), [r"no \escapes"]);
        assert_eq!(ok("a \\\n b"), ["a", "b"]);
        assert_eq!(ok("--x=$HOME"), ["--x=$HOME"]);
        assert!(parse_args("'open").unwrap_err().contains("single quote"));
        assert!(parse_args("\"open").unwrap_err().contains("double quote"));
        assert!(parse_args("end\\").unwrap_err().contains("backslash"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let tuning = SupervisorTuning::default();
        let secs: Vec<u64> = (1..=9).map(|a| tuning.backoff(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(tuning.backoff(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn tail_lines_are_cleaned() {
        assert_eq!(tail_line(b"plain\n"), "plain");
        assert_eq!(tail_line(b"crlf\r\n"), "crlf");
        assert_eq!(
            tail_line(b" 10%|#  \r 50%|### \r100%|#####\n"),
            "100%|#####"
        );
        assert_eq!(tail_line(b"\x1b[31mred\x1b[0m text"), "red text");
        assert_eq!(tail_line(b"bad \xff utf8"), "bad \u{fffd} utf8");
        let long = tail_line("x".repeat(5000).as_bytes());
        assert_eq!(long.chars().count(), MAX_TAIL_LINE_CHARS + 1);
    }

    #[test]
    fn status_serializes_with_a_state_tag() {
        let crashed = ComfyProcess {
            state: ComfyProcessState::Crashed {
                exit: ComfyExit {
                    code: Some(3),
                    signal: None,
                },
                last_lines: vec!["boom".into()],
            },
            log_tail: vec!["boom".into()],
            restarts: 2,
        };
        let json = serde_json::to_value(&crashed).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "state": {"state": "crashed", "exit": {"code": 3, "signal": null}, "last_lines": ["boom"]},
                "log_tail": ["boom"],
                "restarts": 2,
            })
        );
        assert_eq!(
            serde_json::from_value::<ComfyProcess>(json).unwrap(),
            crashed
        );
        assert_eq!(
            serde_json::to_value(ComfyProcessState::Stopped).unwrap(),
            serde_json::json!({"state": "stopped"})
        );
        assert_eq!(
            serde_json::to_value(ComfyProcessState::External { reachable: true }).unwrap(),
            serde_json::json!({"state": "external", "reachable": true})
        );
    }

    #[test]
    fn python_resolution_prefers_configured_then_venvs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(resolve_python(dir.path(), None), PathBuf::from("python3"));
        assert_eq!(
            resolve_python(dir.path(), Some(Path::new("python3.11"))),
            PathBuf::from("python3.11")
        );
        let dot_venv = dir.path().join(".venv/bin");
        std::fs::create_dir_all(&dot_venv).unwrap();
        std::fs::write(dot_venv.join("python"), "").unwrap();
        assert_eq!(resolve_python(dir.path(), None), dot_venv.join("python"));
        let venv = dir.path().join("venv/bin");
        std::fs::create_dir_all(&venv).unwrap();
        std::fs::write(venv.join("python"), "").unwrap();
        assert_eq!(resolve_python(dir.path(), None), venv.join("python"));
        assert_eq!(
            resolve_python(dir.path(), Some(Path::new("/opt/py/bin/python"))),
            PathBuf::from("/opt/py/bin/python")
        );
    }
}
