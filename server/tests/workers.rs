//! The team queue with real processes: a `comfydeck serve` deck, worker tokens made with the
//! CLI while it runs, and `comfydeck worker` processes each on its own ComfyUI stand-in. A
//! worker is killed with -9 in the middle of a job; another finishes it, with one set of
//! outputs uploaded to the deck. Wrong and revoked tokens answer 401.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use comfy_standin::{fixture_dir, ComfyStandin, StandinConfig};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_comfydeck");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (-9) when the test ends, however it ends.
struct Process(Child);

impl Process {
    fn kill_9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill_9();
    }
}

fn clean(command: &mut Command) -> &mut Command {
    command
        .env_remove("WORKSPACE_ROOT")
        .env_remove("DASHBOARD_HOST")
        .env_remove("QUEUE_URL")
        .env_remove("WORKER_TOKEN")
        .env_remove("COORDINATOR_URL")
        .env("HF_BASE_URL", "http://127.0.0.1:9")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
}

fn deck(workspace: &Path, port: u16) -> Process {
    let child = clean(Command::new(BIN).args(["serve", "--port", &port.to_string()]))
        .arg("--workspace")
        .arg(workspace)
        .args([
            "--comfyui-url",
            "http://127.0.0.1:9",
            "--job-lease-secs",
            "3",
        ])
        .spawn()
        .expect("the deck starts");
    Process(child)
}

fn worker(deck: &str, token: &str, comfyui: &str, name: &str, workspace: &Path) -> Process {
    let child = clean(Command::new(BIN).arg("worker"))
        .args([
            "--coordinator-url",
            deck,
            "--comfyui-url",
            comfyui,
            "--name",
            name,
        ])
        .env("WORKER_TOKEN", token)
        .arg("--workspace")
        .arg(workspace)
        .spawn()
        .expect("the worker starts");
    Process(child)
}

fn token(workspace: &Path, name: &str) -> String {
    let out = clean(Command::new(BIN).args(["workers", "token", "create", name]))
        .arg("--workspace")
        .arg(workspace)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .find(|l| l.starts_with("cdw_"))
        .unwrap_or_else(|| panic!("no token printed: {text}"))
        .to_string()
}

async fn wait_for<T>(what: &str, limit: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn job(http: &reqwest::Client, base: &str, id: i64) -> Value {
    http.get(format!("{base}/api/jobs/get?id={id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_s_job_is_finished_by_another_with_one_set_of_outputs() {
    // Slowed down so the run is still going when its worker dies.
    let slow = ComfyStandin::start(StandinConfig {
        time_scale: 6.0,
        ..StandinConfig::new(fixture_dir())
    })
    .await
    .unwrap();
    let fast = ComfyStandin::start(StandinConfig::new(fixture_dir()))
        .await
        .unwrap();
    let prompt = fast.fixtures().prompt_of("post_prompt_ok");
    let ws = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _deck = deck(ws.path(), port);
    let http = reqwest::Client::new();
    wait_for("the deck", Duration::from_secs(30), async || {
        let r = http.get(format!("{base}/health")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;

    // Tokens are made while the deck runs; a wrong one is refused.
    let (t1, t2) = (token(ws.path(), "gpu-1"), token(ws.path(), "gpu-2"));
    let refused = http
        .post(format!("{base}/api/worker/claim"))
        .bearer_auth("cdw_not-a-token")
        .json(&json!({"worker": {"name": "x"}, "wait_ms": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let submitted: Value = http
        .post(format!("{base}/api/jobs/submit"))
        .json(&json!({"workflow": prompt, "name": "slow run"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = submitted["job_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{submitted}"));
    assert_eq!(submitted["position"], 1);

    let w1_dir = tempfile::tempdir().unwrap();
    let mut w1 = worker(&base, &t1, &slow.url(), "gpu-1", w1_dir.path());
    wait_for(
        "gpu-1 to run the job",
        Duration::from_secs(30),
        async || {
            let j = job(&http, &base, id).await;
            (j["state"] == "running" && j["worker"] == "gpu-1").then_some(())
        },
    )
    .await;
    // Give it time to hand the prompt to its ComfyUI, then kill it mid-run.
    wait_for(
        "the prompt on gpu-1's ComfyUI",
        Duration::from_secs(20),
        async || {
            slow.requests()
                .iter()
                .any(|r| r.method == "POST" && r.uri.starts_with("/prompt"))
                .then_some(())
        },
    )
    .await;
    w1.kill_9();

    let w2_dir = tempfile::tempdir().unwrap();
    let _w2 = worker(&base, &t2, &fast.url(), "gpu-2", w2_dir.path());
    let done = wait_for(
        "gpu-2 to finish the job",
        Duration::from_secs(60),
        async || {
            let j = job(&http, &base, id).await;
            (j["state"] == "succeeded").then_some(j)
        },
    )
    .await;
    assert_eq!(done["worker"], "gpu-2", "{done}");
    assert_eq!(done["attempts"], 2, "{done}");
    let errors = done["attempt_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{done}");
    assert!(errors[0].as_str().unwrap().contains("gpu-1"), "{done}");
    // One set of outputs, uploaded to the deck's output folder.
    let outputs = done["outputs"].as_array().unwrap();
    assert!(!outputs.is_empty(), "{done}");
    let folder = ws.path().join("output").join("jobs").join(id.to_string());
    let files: Vec<_> = std::fs::read_dir(&folder).unwrap().collect();
    assert_eq!(files.len(), outputs.len(), "{done}");
    for output in outputs {
        let path = folder.join(output["name"].as_str().unwrap());
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            output["bytes"].as_u64().unwrap()
        );
    }

    // Revoked: the worker's next call is refused.
    let out = clean(Command::new(BIN).args(["workers", "token", "revoke", "gpu-2"]))
        .arg("--workspace")
        .arg(ws.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let refused = http
        .post(format!("{base}/api/worker/claim"))
        .bearer_auth(&t2)
        .json(&json!({"worker": {"name": "gpu-2"}, "wait_ms": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

/// `--comfyui-dir`: the worker runs ComfyUI itself (here the small Python ComfyUI of the
/// custom-node tests), reports in once it answers, and stops it when it stops.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_runs_its_own_comfyui_and_stops_it_with_itself() {
    let ws = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _deck = deck(ws.path(), port);
    let http = reqwest::Client::new();
    wait_for("the deck", Duration::from_secs(30), async || {
        let r = http.get(format!("{base}/health")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    let t = token(ws.path(), "gpu-own");

    let comfyui = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../comfy-standin/python/fake_comfyui/main.py"),
        comfyui.path().join("main.py"),
    )
    .unwrap();
    std::fs::create_dir(comfyui.path().join("custom_nodes")).unwrap();
    let comfy_port = free_port();
    let worker_dir = tempfile::tempdir().unwrap();
    let child = clean(Command::new(BIN).arg("worker"))
        .args(["--coordinator-url", &base, "--name", "gpu-own"])
        .args([
            "--comfyui-port",
            &comfy_port.to_string(),
            "--comfyui-python",
            "python3",
        ])
        .arg("--comfyui-dir")
        .arg(comfyui.path())
        .env("WORKER_TOKEN", &t)
        .arg("--workspace")
        .arg(worker_dir.path())
        .spawn()
        .unwrap();
    let mut worker = Process(child);

    // It claims (and so shows up) only once its ComfyUI answers.
    let seen = wait_for(
        "the worker on the deck",
        Duration::from_secs(60),
        async || {
            let workers: Value = http
                .get(format!("{base}/api/workers"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            workers
                .as_array()?
                .iter()
                .find(|w| w["name"] == "gpu-own" && w["state"] == "idle")
                .cloned()
        },
    )
    .await;
    assert_eq!(seen["name"], "gpu-own");
    let comfy = format!("http://127.0.0.1:{comfy_port}/system_stats");
    assert!(http.get(&comfy).send().await.unwrap().status().is_success());
    // The worker's folder is its ComfyUI's volume.
    assert!(worker_dir.path().join("models").is_dir());
    assert!(worker_dir.path().join("logs/comfyui.log").is_file());
    let yaml =
        std::fs::read_to_string(worker_dir.path().join("config/extra_model_paths.yaml")).unwrap();
    assert!(
        yaml.contains(&worker_dir.path().display().to_string()),
        "{yaml}"
    );

    // Ctrl-C: the worker stops, and its ComfyUI with it.
    let pid = worker.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while worker.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the worker did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(worker.0.try_wait().unwrap().unwrap().success());
    worker.kill_9();
    wait_for("its ComfyUI to stop", Duration::from_secs(10), async || {
        http.get(&comfy).send().await.is_err().then_some(())
    })
    .await;
}
