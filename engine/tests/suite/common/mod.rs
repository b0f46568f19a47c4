//! Helpers shared by the engine's integration tests.

use std::path::Path;

pub mod fileserver;
pub mod redis;
pub mod tree;

/// The recorded ComfyUI protocol lives in the stand-in's crate.
pub use comfy_standin::fixture_dir;

/// A person who is not an administrator (user 7, `bob`).
pub fn bob() -> engine::model::Caller {
    engine::model::Caller {
        user_id: 7,
        username: "bob".into(),
        role: engine::model::Role::User,
        theme: None,
    }
}

/// A URL on 127.0.0.1 where nothing listens. Port 1 is below the ephemeral range, so no test
/// server bound to port 0 beside this one can ever be handed it: a port bound and released
/// here could be, and then an engine's ComfyUI client would knock on another test's server.
pub fn closed_port_url() -> String {
    "http://127.0.0.1:1".into()
}

/// A config for `root` that never talks to the real network: ComfyUI and Hugging Face both
/// point at closed local ports unless a test says otherwise.
pub fn test_config(root: &Path) -> engine::config::Config {
    engine::config::Config {
        comfyui_url: closed_port_url(),
        hf_base_url: closed_port_url(),
        ..engine::config::Config::with_workspace(root)
    }
}

/// An engine on a fresh temp workspace whose ComfyUI is `comfyui_url` (a stand-in); Hugging
/// Face points at a closed port. Keep the directory alive as long as the engine.
pub async fn engine_with_comfyui(
    comfyui_url: String,
) -> (std::sync::Arc<engine::Engine>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = engine::config::Config {
        comfyui_url,
        hf_base_url: closed_port_url(),
        ..engine::config::Config::with_workspace(dir.path())
    };
    let (engine, _) = engine::Engine::start(config).await.unwrap();
    (engine, dir)
}

/// This prompt's run events until its outcome (succeeded, failed or interrupted); panics when
/// `limit` passes between two events.
pub async fn run_events(
    rx: &mut tokio::sync::broadcast::Receiver<engine::model::Event>,
    prompt_id: &str,
    limit: std::time::Duration,
) -> Vec<engine::model::RunEventKind> {
    use engine::model::{Event, RunEventKind};
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(limit, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("the run did not finish; saw {seen:?}"))
            .expect("the bus is open");
        if let Event::Run(run) = event {
            if run.prompt_id != prompt_id {
                continue;
            }
            let done = matches!(
                run.event,
                RunEventKind::Succeeded
                    | RunEventKind::Failed { .. }
                    | RunEventKind::Interrupted { .. }
            );
            seen.push(run.event);
            if done {
                return seen;
            }
        }
    }
}

/// Polls the recovery list until `done` holds.
pub async fn recovery_until(
    engine: &engine::Engine,
    caller: &engine::model::Caller,
    what: &str,
    done: impl Fn(&engine::model::RecoveryList) -> bool,
) -> engine::model::RecoveryList {
    let started = std::time::Instant::now();
    loop {
        let list = engine.recovery().list(caller).await.unwrap();
        if done(&list) {
            return list;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "recovery never showed {what}: {list:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}
