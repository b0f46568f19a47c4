//! Shared set-up for the server's integration tests: an engine on a throw-away workspace whose
//! ComfyUI URL points at a closed local port, so nothing leaves the machine.

use std::sync::Arc;

use engine::config::Config;
use engine::secret::Secret;
use engine::Engine;
use server::{router, AppState};
use tempfile::TempDir;

pub const PASSWORD: &str = "test-password-1";

/// One engine and its router; keeps the workspace alive while the test runs.
pub struct Harness {
    pub engine: Arc<Engine>,
    pub app: axum::Router,
    pub comfyui_url: String,
    _workspace: TempDir,
}

/// A URL on 127.0.0.1 where nothing listens: the discard port (the browser tests use it too).
/// A port freed after `bind(0)` can be handed to another test's server a moment later, and a
/// request to a server that accepts but never answers would hang the test instead of failing.
pub fn closed_local_url() -> String {
    let url = "http://127.0.0.1:9";
    assert!(
        std::net::TcpStream::connect("127.0.0.1:9").is_err(),
        "something listens on 127.0.0.1:9; the tests need it closed"
    );
    url.to_string()
}

/// Starts an engine on a fresh workspace. `password` locks the dashboard; `None` on the
/// default loopback host leaves it open.
pub async fn harness(password: Option<&str>) -> Harness {
    let workspace = tempfile::tempdir().expect("temporary workspace");
    let comfyui_url = closed_local_url();
    let config = Config {
        comfyui_url: comfyui_url.clone(),
        hf_base_url: closed_local_url(),
        access_password: password.map(Secret::new),
        ..Config::with_workspace(workspace.path())
    };
    assert!(config.host.is_loopback(), "tests listen on loopback only");
    let (engine, report) = Engine::start(config).await.expect("engine starts");
    assert!(
        report.generated_password.is_none(),
        "no password is generated on loopback"
    );
    let app = router(AppState {
        engine: Arc::clone(&engine),
        leptos: server::leptos_options(),
    });
    Harness {
        engine,
        app,
        comfyui_url,
        _workspace: workspace,
    }
}

/// The `name=value` part of a `Set-Cookie` header for the session cookie, if that is what it sets.
pub fn session_pair(set_cookie: &str) -> Option<String> {
    let pair = set_cookie.split(';').next()?.trim();
    let (name, value) = pair.split_once('=')?;
    (name == server::auth::SESSION_COOKIE && !value.is_empty()).then(|| pair.to_string())
}
