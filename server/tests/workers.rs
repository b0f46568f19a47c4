//! The team queue with real processes: a `comfydeck serve` deck, worker tokens made with the
//! CLI while it runs, and `comfydeck worker` processes each on its own ComfyUI stand-in. A
//! worker is killed with -9 in the middle of a job; another finishes it, with one set of
//! outputs uploaded to the deck. Wrong and revoked tokens answer 401. A job needing a file no
//! worker has waits for one, and a worker with `--install-missing` installs the preset that
//! provides it (from a local file server) and runs it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use comfy_standin::{fixture_dir, ComfyStandin, StandinConfig};
use serde_json::{json, Value};

mod support;
use support::redis::RedisServer;
use support::{file_server, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_comfydeck");

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

fn deck(workspace: &Path, port: u16, extra: &[&str]) -> Process {
    let child = clean(Command::new(BIN).args(["serve", "--port", &port.to_string()]))
        .args(extra)
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

fn worker(
    deck: &str,
    token: &str,
    comfyui: &str,
    name: &str,
    workspace: &Path,
    extra: &[&str],
) -> Process {
    let child = clean(Command::new(BIN).arg("worker"))
        .args([
            "--coordinator-url",
            deck,
            "--comfyui-url",
            comfyui,
            "--name",
            name,
        ])
        .args(extra)
        .env("WORKER_TOKEN", token)
        .arg("--workspace")
        .arg(workspace)
        .spawn()
        .expect("the worker starts");
    Process(child)
}

fn token(workspace: &Path, name: &str) -> String {
    token_in(workspace, name, &[])
}

/// A worker token made with the CLI (`extra`: `--queue-url` for a Redis queue's tokens).
fn token_in(workspace: &Path, name: &str, extra: &[&str]) -> String {
    let out = clean(Command::new(BIN).args(["workers", "token", "create", name]))
        .args(extra)
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
    let _deck = deck(ws.path(), port, &[]);
    let http = reqwest::Client::new();
    deck_ready(&http, &base).await;

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

    let (id, submitted) = submit(&http, &base, prompt, "slow run").await;
    assert_eq!(submitted["position"], 1);

    let w1_dir = tempfile::tempdir().unwrap();
    let mut w1 = worker(&base, &t1, &slow.url(), "gpu-1", w1_dir.path(), &[]);
    job_until(&http, &base, id, "gpu-1 to run the job", 30, |j| {
        j["state"] == "running" && j["worker"] == "gpu-1"
    })
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
    let _w2 = worker(&base, &t2, &fast.url(), "gpu-2", w2_dir.path(), &[]);
    let done = job_until(&http, &base, id, "gpu-2 to finish the job", 60, |j| {
        j["state"] == "succeeded"
    })
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
    let _deck = deck(ws.path(), port, &[]);
    let http = reqwest::Client::new();
    deck_ready(&http, &base).await;
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

/// The job once `done` holds for it (looked at every 100 ms for up to `secs`).
async fn job_until(
    http: &reqwest::Client,
    base: &str,
    id: i64,
    what: &str,
    secs: u64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(what, Duration::from_secs(secs), async || {
        let j = job(http, base, id).await;
        done(&j).then_some(j)
    })
    .await
}

/// Submits a posted workflow; the job's id and the whole answer.
async fn submit(
    http: &reqwest::Client,
    base: &str,
    workflow: impl serde::Serialize,
    name: &str,
) -> (i64, Value) {
    let submitted: Value = http
        .post(format!("{base}/api/jobs/submit"))
        .json(&json!({"workflow": workflow, "name": name}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = submitted["job_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{submitted}"));
    (id, submitted)
}

async fn deck_ready(http: &reqwest::Client, base: &str) {
    wait_for("the deck", Duration::from_secs(30), async || {
        let r = http.get(format!("{base}/health")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_installs_the_preset_a_job_needs_before_running_it() {
    let ws = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _deck = deck(ws.path(), port, &[]);
    let http = reqwest::Client::new();
    deck_ready(&http, &base).await;
    let (bare_token, installer_token) = (
        token(ws.path(), "gpu-bare"),
        token(ws.path(), "gpu-installs"),
    );

    // The recorded run, with a loader of `vae/pixel_space` (a choice the recorded ComfyUI
    // offers, so its ComfyUI takes the prompt once the file is there).
    let bare_comfy = ComfyStandin::start(StandinConfig::new(fixture_dir()))
        .await
        .unwrap();
    let mut workflow = bare_comfy.fixtures().prompt_of("post_prompt_ok");
    workflow["9"] = json!({"class_type": "VAELoader", "inputs": {"vae_name": "pixel_space"}});
    let (id, _) = submit(&http, &base, workflow, "needs a file").await;
    assert_eq!(
        job(&http, &base, id).await["required_models"],
        json!(["vae/pixel_space"])
    );

    // A worker without the file (and not installing) leaves the job waiting, and says why.
    let bare_dir = tempfile::tempdir().unwrap();
    let _bare = worker(
        &base,
        &bare_token,
        &bare_comfy.url(),
        "gpu-bare",
        bare_dir.path(),
        &[],
    );
    let waiting = job_until(&http, &base, id, "the job to wait for the file", 30, |j| {
        j["waiting_for"] == "waiting for a worker with pixel_space"
    })
    .await;
    assert_eq!(waiting["state"], "pending", "{waiting}");

    // A worker whose catalog has a preset with the file installs it, then runs the job.
    let body: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let url = file_server(body.clone()).await;
    let installer_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(installer_dir.path().join("config")).unwrap();
    std::fs::write(
        installer_dir.path().join("config/presets.yaml"),
        format!(
            "presets:\n  PIXEL_SPACE_TEST:\n    name: Pixel space (test)\n    category: Image Generation\n    type: image\n    description: one small file\n    files:\n    - path: vae/pixel_space\n      url: {url}\n      size: {}\n",
            body.len()
        ),
    )
    .unwrap();
    // Its ComfyUI's model folders are the worker's workspace's.
    let installer_comfy = ComfyStandin::start(StandinConfig {
        base_dir: Some(installer_dir.path().to_path_buf()),
        ..StandinConfig::new(fixture_dir())
    })
    .await
    .unwrap();
    let _installer = worker(
        &base,
        &installer_token,
        &installer_comfy.url(),
        "gpu-installs",
        installer_dir.path(),
        &["--install-missing"],
    );
    let done = job_until(
        &http,
        &base,
        id,
        "the installing worker to run the job",
        60,
        |j| matches!(j["state"].as_str(), Some("succeeded" | "failed")),
    )
    .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["worker"], "gpu-installs", "{done}");
    assert_eq!(done["attempts"], 1, "{done}");
    let installed = installer_dir.path().join("models/vae/pixel_space");
    assert_eq!(std::fs::read(&installed).unwrap(), body);
    // The prompt reached its ComfyUI only after the file was there (one submission).
    let prompts = installer_comfy
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.uri.starts_with("/prompt"))
        .count();
    assert_eq!(prompts, 1);
    assert!(bare_comfy
        .requests()
        .iter()
        .all(|r| !(r.method == "POST" && r.uri.starts_with("/prompt"))));
    // The worker reports the file it installed with its next claim (after the job's end).
    let workers = wait_for(
        "the installing worker to report the installed file",
        Duration::from_secs(20),
        async || {
            let workers: Value = http
                .get(format!("{base}/api/workers"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let installer = workers
                .as_array()?
                .iter()
                .find(|w| w["name"] == "gpu-installs")?;
            installer["models"]
                .as_array()?
                .contains(&json!("vae/pixel_space"))
                .then_some(workers)
        },
    )
    .await;
    let installer = workers
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "gpu-installs")
        .unwrap();
    assert_eq!(installer["jobs_done"], 1, "{installer}");
    assert_eq!(installer["installs_missing"], true, "{installer}");
    let bare = workers
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "gpu-bare")
        .unwrap();
    assert_eq!(bare["installs_missing"], false, "{bare}");
}

/// Two `serve` processes on one Redis, each with its own workspace: a job submitted to one is
/// seen live by a browser of the other, and a worker of the other runs it.
#[tokio::test(flavor = "multi_thread")]
async fn two_decks_on_one_redis_serve_one_queue_live() {
    use futures::StreamExt;
    let redis = RedisServer::start();
    let queue = ["--queue-url", &redis.url()];
    let (ws1, ws2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (p1, p2) = (free_port(), free_port());
    let _one = deck(ws1.path(), p1, &queue);
    let _two = deck(ws2.path(), p2, &queue);
    let (one, two) = (
        format!("http://127.0.0.1:{p1}"),
        format!("http://127.0.0.1:{p2}"),
    );
    let http = reqwest::Client::new();
    deck_ready(&http, &one).await;
    deck_ready(&http, &two).await;

    // A browser of the second deck.
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{p2}/ws"))
        .await
        .unwrap();
    let comfy = ComfyStandin::start(StandinConfig {
        advertise_preview_node: true,
        ..StandinConfig::new(fixture_dir())
    })
    .await
    .unwrap();
    let (id, _) = submit(
        &http,
        &one,
        comfy.fixtures().prompt_of("post_prompt_ok"),
        "from one",
    )
    .await;
    let seen = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(Ok(message)) = socket.next().await {
            let Ok(text) = message.into_text() else {
                continue;
            };
            let Ok(event) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if event["type"] == "job" && event["data"]["id"] == id {
                return event["data"].clone();
            }
        }
        panic!("the socket closed");
    })
    .await
    .expect("the second deck's browser hears of the first deck's job");
    assert_eq!(seen["workflow_name"], "from one", "{seen}");
    let listed: Value = http
        .get(format!("{two}/api/jobs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["jobs"][0]["id"], id, "{listed}");

    // A worker of the second deck (its token is in Redis) runs it; the first deck sees it done.
    let t = token_in(ws2.path(), "gpu-shared", &queue);
    let worker_dir = tempfile::tempdir().unwrap();
    let _worker = worker(&two, &t, &comfy.url(), "gpu-shared", worker_dir.path(), &[]);
    let done = job_until(&http, &one, id, "the job to succeed", 60, |j| {
        j["state"] == "succeeded"
    })
    .await;
    assert_eq!(done["worker"], "gpu-shared", "{done}");

    // A run with live previews: the worker sends them to its deck, and the first deck serves
    // the newest one too (through Redis).
    let previewing = json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": comfy_standin::FIXTURE_PREVIEW_NODE, "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    });
    let (id, _) = submit(&http, &one, previewing, "with previews").await;
    let done = job_until(&http, &one, id, "the previewing job to end", 60, |j| {
        matches!(j["state"].as_str(), Some("succeeded" | "failed"))
    })
    .await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let prompt_id = done["prompt_id"].as_str().unwrap();
    for deck in [&one, &two] {
        let preview = http
            .get(format!("{deck}/api/comfy/preview/{prompt_id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(preview.status(), 200, "{deck}");
        let mime = preview.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(mime.starts_with("image/"), "{mime}");
        assert!(!preview.bytes().await.unwrap().is_empty());
    }
}
