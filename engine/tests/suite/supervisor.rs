//! Integration tests for `engine::comfy::supervisor`: real processes (small Python scripts in
//! `tests/fixtures/supervisor/` standing in for ComfyUI's `main.py`), no GPU, no ComfyUI.
//!
//! State changes are observed through `subscribe()` (current state) and `transitions()` (every
//! change, in order); timeouts are generous and only guard against hangs.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use engine::comfy::supervisor::{
    parse_args, ComfyExit, ComfyProcess, ComfyProcessState, Supervisor, SupervisorConfig,
    SupervisorTuning,
};
use engine::workspace::WorkspaceLayout;
use tokio::sync::broadcast;

const PATIENCE: Duration = Duration::from_secs(10);

// -- helpers ---------------------------------------------------------------------------------

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/supervisor")
        .join(name)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn fast_tuning() -> SupervisorTuning {
    SupervisorTuning {
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_secs(2),
        stable_after: Duration::from_secs(30),
        ready_poll: Duration::from_millis(50),
        stop_timeout: Duration::from_secs(3),
        tail_publish_interval: Duration::from_millis(20),
        ..SupervisorTuning::default()
    }
}

/// A workspace and a ComfyUI directory whose `main.py` is the fixture `script` (if any).
struct Setup {
    _root: tempfile::TempDir,
    comfy: PathBuf,
    layout: WorkspaceLayout,
}

impl Setup {
    fn new(script: Option<&str>) -> Setup {
        let root = tempfile::tempdir().unwrap();
        let comfy = root.path().join("ComfyUI");
        std::fs::create_dir_all(&comfy).unwrap();
        if let Some(script) = script {
            std::fs::copy(fixture(script), comfy.join("main.py")).unwrap();
        }
        let layout = WorkspaceLayout::new(root.path().join("workspace"));
        for dir in [layout.output(), layout.input(), layout.config_dir()] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(layout.extra_model_paths_yaml(), "comfydeck: {}\n").unwrap();
        Setup {
            _root: root,
            comfy,
            layout,
        }
    }

    fn config(&self) -> SupervisorConfig {
        let mut config = SupervisorConfig::new(&self.comfy, &self.layout);
        config.port = free_port();
        config.tuning = fast_tuning();
        config
    }
}

/// Copies the fake python wrapper to `path`, executable. The pause lets any process forked
/// meanwhile by a parallel test exec, so that running the file cannot fail with ETXTBSY.
async fn install_fake_python(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::copy(fixture("fake_python.sh"), path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn patiently<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Waits until the watched state satisfies `pred`.
async fn wait_state(
    supervisor: &Supervisor,
    what: &str,
    pred: impl Fn(&ComfyProcess) -> bool,
) -> ComfyProcess {
    let mut rx = supervisor.subscribe();
    let found = tokio::time::timeout(PATIENCE, async {
        rx.wait_for(|p| pred(p)).await.map(|p| p.clone())
    })
    .await;
    match found {
        Ok(Ok(process)) => process,
        _ => panic!(
            "timed out waiting for {what}; the state is {:#?}",
            supervisor.state()
        ),
    }
}

/// The next transition.
async fn next(rx: &mut broadcast::Receiver<ComfyProcessState>) -> ComfyProcessState {
    patiently("a transition", rx.recv()).await.unwrap()
}

fn has_line(process: &ComfyProcess, needle: &str) -> bool {
    process.log_tail.iter().any(|l| l.contains(needle))
}

/// The rest of the first tail line that starts with `prefix`.
fn line_value(process: &ComfyProcess, prefix: &str) -> String {
    process
        .log_tail
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in {:#?}", process.log_tail))
        .to_string()
}

fn pid_of(state: &ComfyProcessState) -> u32 {
    match state {
        ComfyProcessState::Starting { pid } | ComfyProcessState::Ready { pid, .. } => *pid,
        other => panic!("no pid in {other:?}"),
    }
}

/// Gone, or a zombie nobody reaped yet (PID 1 in a container may not reap orphans).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

async fn wait_dead(pid: u32, what: &str) {
    patiently(what, async {
        while !is_dead(pid) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

// -- tests -----------------------------------------------------------------------------------

#[tokio::test]
async fn runs_comfyui_with_its_flags_restarts_it_and_kills_its_group() {
    let setup = Setup::new(Some("serve.py"));
    let mut config = setup.config();
    config.extra_args = parse_args("--preview-method auto --fake-flag 'two words'").unwrap();
    let port = config.port;
    let supervisor = Supervisor::start(config);
    assert!(matches!(
        supervisor.state().state,
        ComfyProcessState::Starting { .. }
    ));

    let ready = wait_state(&supervisor, "ready, with its output", |p| {
        matches!(p.state, ComfyProcessState::Ready { .. })
            && has_line(p, "worker pid ")
            && has_line(p, "a line on stderr")
    })
    .await;
    let pid = pid_of(&ready.state);
    assert_eq!(ready.restarts, 0);

    // The exact command line, in the ComfyUI directory, unbuffered.
    let argv: Vec<String> = serde_json::from_str(&line_value(&ready, "argv ")).unwrap();
    let abs = |p: PathBuf| p.to_str().unwrap().to_string();
    let expected = [
        "--listen".to_string(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string(),
        "--extra-model-paths-config".into(),
        abs(setup.layout.extra_model_paths_yaml()),
        "--output-directory".into(),
        abs(setup.layout.output()),
        "--input-directory".into(),
        abs(setup.layout.input()),
        "--preview-method".into(),
        "auto".into(),
        "--fake-flag".into(),
        "two words".into(),
    ];
    assert_eq!(argv, expected);
    assert_eq!(
        Path::new(&line_value(&ready, "cwd "))
            .canonicalize()
            .unwrap(),
        setup.comfy.canonicalize().unwrap()
    );
    assert_eq!(line_value(&ready, "unbuffered "), "1");
    let first_worker: u32 = line_value(&ready, "worker pid ").parse().unwrap();

    // Killed from outside: reported with its signal, its worker is taken down, and it comes back.
    let mut transitions = supervisor.transitions();
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    match next(&mut transitions).await {
        ComfyProcessState::Crashed { exit, .. } => assert_eq!(
            exit,
            ComfyExit {
                code: None,
                signal: Some(9)
            }
        ),
        other => panic!("expected crashed, got {other:?}"),
    }
    match next(&mut transitions).await {
        ComfyProcessState::Restarting {
            attempt,
            delay_ms,
            last_exit,
            ..
        } => {
            assert_eq!((attempt, delay_ms), (1, 50));
            assert_eq!(last_exit.signal, Some(9));
        }
        other => panic!("expected restarting, got {other:?}"),
    }
    wait_dead(first_worker, "the first worker to die with its group").await;
    let second = match next(&mut transitions).await {
        ComfyProcessState::Starting { pid } => pid,
        other => panic!("expected starting, got {other:?}"),
    };
    assert_ne!(second, pid);
    assert!(matches!(
        next(&mut transitions).await,
        ComfyProcessState::Ready { pid, .. } if pid == second
    ));
    let again = wait_state(&supervisor, "the second worker's line", |p| {
        p.log_tail
            .iter()
            .filter(|l| l.starts_with("worker pid "))
            .count()
            == 2
    })
    .await;
    assert_eq!(again.restarts, 1);
    let second_worker: u32 = again
        .log_tail
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("worker pid "))
        .unwrap()
        .parse()
        .unwrap();

    // Shutdown: SIGTERM to the group, both die, `stopped`.
    patiently("shutdown", supervisor.shutdown()).await;
    assert_eq!(supervisor.state().state, ComfyProcessState::Stopped);
    wait_dead(second, "ComfyUI to stop").await;
    wait_dead(second_worker, "its worker to stop").await;
    assert_eq!(next(&mut transitions).await, ComfyProcessState::Stopped);

    // Everything went to the log file too.
    let log = std::fs::read_to_string(setup.layout.comfyui_log()).unwrap();
    assert_eq!(log.matches("argv [").count(), 2, "{log}");
    assert!(log.contains("a line on stderr"));
}

#[tokio::test]
async fn a_crash_is_reported_and_restarts_back_off() {
    let setup = Setup::new(Some("crash.py"));
    let mut config = setup.config();
    config.tuning.backoff_max = Duration::from_millis(150);
    let supervisor = Supervisor::start(config);
    let mut transitions = supervisor.transitions();

    let mut delays = Vec::new();
    while delays.len() < 4 {
        match next(&mut transitions).await {
            ComfyProcessState::Starting { .. } => {}
            ComfyProcessState::Crashed { exit, last_lines } => {
                assert_eq!(exit.code, Some(3));
                assert!(
                    last_lines
                        .iter()
                        .any(|l| l == "RuntimeError: fake failure for the supervisor tests"),
                    "{last_lines:#?}"
                );
            }
            ComfyProcessState::Restarting {
                delay_ms,
                attempt,
                last_exit,
                ..
            } => {
                assert_eq!(last_exit.code, Some(3));
                assert_eq!(attempt as usize, delays.len() + 1);
                delays.push(delay_ms);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(delays, [50, 100, 150, 150], "doubling, capped");

    patiently("shutdown", supervisor.shutdown()).await;
    let stopped = supervisor.state();
    assert_eq!(stopped.state, ComfyProcessState::Stopped);
    assert!(stopped.restarts >= 3);
    assert!(has_line(&stopped, "RuntimeError: fake failure"));

    let log = std::fs::read_to_string(setup.layout.comfyui_log()).unwrap();
    assert!(
        log.matches("RuntimeError: fake failure").count() >= 4,
        "{log}"
    );
    assert!(log.contains("Starting server"));
}

#[tokio::test]
async fn shutdown_escalates_to_sigkill_for_the_whole_group() {
    let setup = Setup::new(Some("hang.py"));
    let mut config = setup.config();
    config.tuning.stop_timeout = Duration::from_millis(300);
    let supervisor = Supervisor::start(config);
    let pid = pid_of(&supervisor.state().state);
    let running = wait_state(&supervisor, "the script to ignore SIGTERM", |p| {
        has_line(p, "ignoring SIGTERM") && has_line(p, "worker pid ")
    })
    .await;
    let worker: u32 = line_value(&running, "worker pid ").parse().unwrap();

    let mut transitions = supervisor.transitions();
    patiently("shutdown", supervisor.shutdown()).await;
    let stopped = supervisor.state();
    assert_eq!(stopped.state, ComfyProcessState::Stopped);
    assert!(has_line(&stopped, "SIGKILL"), "{:#?}", stopped.log_tail);
    wait_dead(pid, "the leader to be killed").await;
    wait_dead(worker, "the worker to be killed").await;
    // Stopping is not crashing: no `crashed`, no restart.
    assert_eq!(next(&mut transitions).await, ComfyProcessState::Stopped);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(transitions.try_recv().is_err());
    assert_eq!(supervisor.state().restarts, 0);
}

#[tokio::test]
async fn a_clean_exit_is_restarted_and_stable_runs_reset_the_backoff() {
    let setup = Setup::new(Some("exit_clean.py"));
    let mut config = setup.config();
    // Every run (0.3 s) counts as stable.
    config.tuning.stable_after = Duration::from_millis(100);
    let supervisor = Supervisor::start(config);
    let mut transitions = supervisor.transitions();

    let mut restarts = 0;
    while restarts < 2 {
        match next(&mut transitions).await {
            ComfyProcessState::Starting { .. } => {}
            ComfyProcessState::Crashed { exit, last_lines } => {
                assert_eq!(
                    exit,
                    ComfyExit {
                        code: Some(0),
                        signal: None
                    }
                );
                assert!(last_lines.iter().any(|l| l == "exiting cleanly"));
            }
            ComfyProcessState::Restarting {
                attempt, delay_ms, ..
            } => {
                assert_eq!((attempt, delay_ms), (1, 50), "the backoff was reset");
                restarts += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    patiently("shutdown", supervisor.shutdown()).await;
    assert_eq!(supervisor.state().state, ComfyProcessState::Stopped);
}

#[tokio::test]
async fn a_manual_restart_resets_the_backoff() {
    let setup = Setup::new(Some("crash.py"));
    let mut config = setup.config();
    config.tuning.backoff_max = Duration::from_secs(10);
    let supervisor = Supervisor::start(config);
    let mut transitions = supervisor.transitions();
    loop {
        if let ComfyProcessState::Restarting { attempt: 3, .. } = next(&mut transitions).await {
            break;
        }
    }
    let before = supervisor.state().restarts;

    patiently("restart", supervisor.restart()).await;
    assert!(matches!(
        supervisor.state().state,
        ComfyProcessState::Starting { .. }
    ));
    assert_eq!(supervisor.state().restarts, before + 1);
    // What was published up to the new start; the new run takes 0.15 s to crash.
    while transitions.try_recv().is_ok() {}
    loop {
        match next(&mut transitions).await {
            ComfyProcessState::Restarting {
                attempt, delay_ms, ..
            } => {
                assert_eq!((attempt, delay_ms), (1, 50));
                break;
            }
            ComfyProcessState::Crashed { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    patiently("shutdown", supervisor.shutdown()).await;
}

async fn failed_with(config: SupervisorConfig) -> (Arc<Supervisor>, String) {
    let supervisor = Supervisor::start(config);
    let error = match supervisor.state().state {
        ComfyProcessState::Failed { error } => error,
        other => panic!("expected failed, got {other:?}"),
    };
    (supervisor, error)
}

#[tokio::test]
async fn a_bad_setup_is_a_clear_status_not_a_crash_loop() {
    let setup = Setup::new(None);
    let mut config = setup.config();
    config.tuning.backoff_initial = Duration::from_millis(1);

    let (supervisor, error) = failed_with(config.clone()).await;
    assert_eq!(
        error,
        format!("COMFYUI_DIR {} has no main.py", setup.comfy.display())
    );
    let mut transitions = supervisor.transitions();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(transitions.try_recv().is_err(), "no retries");
    let failed = supervisor.state();
    assert_eq!(failed.restarts, 0);
    assert!(has_line(&failed, "has no main.py"));

    // Fixed, then restarted by hand: it runs.
    std::fs::copy(fixture("serve.py"), setup.comfy.join("main.py")).unwrap();
    patiently("restart", supervisor.restart()).await;
    wait_state(&supervisor, "ready after the fix", |p| {
        matches!(p.state, ComfyProcessState::Ready { .. })
    })
    .await;
    patiently("shutdown", supervisor.shutdown()).await;
    assert_eq!(supervisor.state().state, ComfyProcessState::Stopped);

    let mut missing = config.clone();
    missing.comfyui_dir = setup.comfy.join("nope");
    let (_s, error) = failed_with(missing).await;
    assert_eq!(
        error,
        format!(
            "COMFYUI_DIR {} does not exist",
            setup.comfy.join("nope").display()
        )
    );

    let mut no_python = config.clone();
    no_python.python = Some(PathBuf::from("/nonexistent/bin/python"));
    let (_s, error) = failed_with(no_python).await;
    assert_eq!(
        error,
        "COMFYUI_PYTHON /nonexistent/bin/python does not exist"
    );

    let mut unknown = config.clone();
    unknown.python = Some(PathBuf::from("no-such-python-for-comfydeck"));
    let (s, error) = failed_with(unknown).await;
    assert!(
        error.starts_with("cannot run no-such-python-for-comfydeck:"),
        "{error}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(matches!(s.state().state, ComfyProcessState::Failed { .. }));
}

#[tokio::test]
async fn python_comes_from_comfyui_python_or_the_venv() {
    let setup = Setup::new(Some("exit_clean.py"));

    /// The interpreter the fake python wrapper reports for one run.
    async fn python_used(config: SupervisorConfig) -> String {
        let supervisor = Supervisor::start(config);
        let crashed = wait_state(&supervisor, "the first run to end", |p| {
            matches!(p.state, ComfyProcessState::Crashed { .. })
                || matches!(p.state, ComfyProcessState::Restarting { .. })
        })
        .await;
        patiently("shutdown", supervisor.shutdown()).await;
        line_value(&crashed, "fake python: ")
    }

    let dot_venv = setup.comfy.join(".venv/bin/python");
    install_fake_python(&dot_venv).await;
    assert_eq!(
        python_used(setup.config()).await,
        dot_venv.to_str().unwrap()
    );

    let venv = setup.comfy.join("venv/bin/python");
    install_fake_python(&venv).await;
    assert_eq!(python_used(setup.config()).await, venv.to_str().unwrap());

    let custom = setup.comfy.join("elsewhere/python");
    install_fake_python(&custom).await;
    let mut config = setup.config();
    config.python = Some(custom.clone());
    assert_eq!(python_used(config).await, custom.to_str().unwrap());
}
