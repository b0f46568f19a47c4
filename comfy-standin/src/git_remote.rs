//! A git remote over HTTP for the custom-node tests: git's "dumb" protocol (the plain files of
//! a bare repository, as any web server serves them), with faults: the next requests answered
//! 503, every one while down, or object requests held (a clone cut in the middle).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{StatusCode, Uri};
use tokio::task::JoinHandle;

#[derive(Default)]
struct Faults {
    fail_next: AtomicU32,
    down: AtomicBool,
    /// Milliseconds each `objects/` request waits before its answer.
    hold_objects_ms: AtomicU64,
    requests: AtomicU32,
}

/// A running remote; stopped when dropped.
pub struct GitRemote {
    port: u16,
    served: PathBuf,
    faults: Arc<Faults>,
    server: JoinHandle<()>,
}

impl GitRemote {
    /// Serves the bare repositories put in `served` (see [`GitRemote::publish`]).
    pub async fn start(served: PathBuf) -> GitRemote {
        std::fs::create_dir_all(&served).expect("the served folder can be made");
        let faults = Arc::new(Faults::default());
        let (root, shared) = (served.clone(), Arc::clone(&faults));
        let app = axum::Router::new().fallback(move |uri: Uri| {
            let (root, faults) = (root.clone(), Arc::clone(&shared));
            async move {
                faults.requests.fetch_add(1, Ordering::SeqCst);
                let failing = faults.down.load(Ordering::SeqCst)
                    || faults
                        .fail_next
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                if failing {
                    return Err(StatusCode::SERVICE_UNAVAILABLE);
                }
                let path = uri.path().trim_start_matches('/');
                if path.split('/').any(|part| part == ".." || part.is_empty()) {
                    return Err(StatusCode::BAD_REQUEST);
                }
                if path.contains("/objects/") {
                    let hold = faults.hold_objects_ms.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(hold)).await;
                }
                std::fs::read(root.join(path)).map_err(|_| StatusCode::NOT_FOUND)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let port = listener.local_addr().expect("a bound port").port();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        GitRemote {
            port,
            served,
            faults,
            server,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves the repository at `repository` (a folder or a `file://` URL) as `/<name>.git`;
    /// its URL.
    pub fn publish(&self, repository: &str, name: &str) -> String {
        let bare = self.served.join(format!("{name}.git"));
        let source = repository.trim_start_matches("file://");
        run(Command::new("git")
            .args(["clone", "--quiet", "--bare", source])
            .arg(&bare));
        run(Command::new("git")
            .arg("update-server-info")
            .current_dir(&bare));
        format!("http://127.0.0.1:{}/{name}.git", self.port)
    }

    /// The next `n` requests are answered 503.
    pub fn fail_next(&self, n: u32) {
        self.faults.fail_next.store(n, Ordering::SeqCst);
    }

    /// While down, every request is answered 503.
    pub fn set_down(&self, down: bool) {
        self.faults.down.store(down, Ordering::SeqCst);
    }

    /// Each request for an object waits `hold` before its answer.
    pub fn hold_objects(&self, hold: Duration) {
        self.faults
            .hold_objects_ms
            .store(hold.as_millis() as u64, Ordering::SeqCst);
    }

    /// Requests answered (or refused) so far.
    pub fn requests(&self) -> u32 {
        self.faults.requests.load(Ordering::SeqCst)
    }
}

impl Drop for GitRemote {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} cannot run ({e}); the tests need git"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
