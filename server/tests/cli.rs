//! The `comfydeck` binary's one-shot commands, run as a provisioning script would run them:
//! real processes, a real workspace, a local HTTP server for the files.

use std::path::Path;
use std::process::{Command, Output};

mod support;
use sha2::{Digest, Sha256};
use support::{file_server, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_comfydeck");

/// Runs the binary on a workspace with an environment free of the developer's settings.
fn comfydeck(workspace: &Path, args: &[&str]) -> Output {
    with_test_env(Command::new(BIN), workspace, args)
        .output()
        .expect("the binary runs")
}

/// `command` (the binary, or a wrapper that runs it) given `args`, the workspace and an
/// environment free of the developer's settings.
fn with_test_env(mut command: Command, workspace: &Path, args: &[&str]) -> Command {
    command
        .args(args)
        .arg("--workspace")
        .arg(workspace)
        .env_remove("WORKSPACE_ROOT")
        .env_remove("DASHBOARD_HOST")
        .env_remove("RUNPOD_VOLUME_GB")
        .env_remove("PRESET_REGISTRY_URL")
        .env("HF_BASE_URL", "http://127.0.0.1:9");
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn presets_list_prints_the_catalog_as_a_table_and_as_json() {
    let ws = tempfile::tempdir().unwrap();
    let out = comfydeck(ws.path(), &["presets", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.starts_with("ID "), "{table}");
    assert!(table.contains("flux-dev-basic"), "{table}");
    assert_eq!(table.lines().count(), 62, "a header and 61 presets");

    let out = comfydeck(ws.path(), &["presets", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let presets: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(presets.as_array().unwrap().len(), 61);

    let out = comfydeck(ws.path(), &["presets", "status", "FLUX_DEV_BASIC"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = text(&out.stdout);
    assert!(
        status.starts_with("FLUX Dev (flux-dev-basic): Not installed"),
        "{status}"
    );
    assert!(status.contains("vae/ae.safetensors"), "{status}");

    let out = comfydeck(ws.path(), &["presets", "install", "no-such-preset"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown preset \"no-such-preset\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn download_exits_zero_only_when_the_file_is_verified() {
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let sha = hex::encode(Sha256::digest(&body));
    let url = file_server(body.clone()).await;
    let ws = tempfile::tempdir().unwrap();
    let ws_path = ws.path().to_path_buf();

    let (url2, ws2) = (url.clone(), ws_path.clone());
    let out = tokio::task::spawn_blocking(move || {
        comfydeck(
            &ws2,
            &[
                "download",
                &url2,
                "--to",
                "loras/model.safetensors",
                "--sha256",
                &sha,
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("verified by checksum"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        std::fs::read(ws_path.join("models/loras/model.safetensors")).unwrap(),
        body
    );

    let (url2, ws2) = (url.clone(), ws_path.clone());
    let out = tokio::task::spawn_blocking(move || {
        comfydeck(
            &ws2,
            &[
                "download",
                &url2,
                "--to",
                "loras/wrong.safetensors",
                "--sha256",
                &"0".repeat(64),
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("checksum mismatch"),
        "{}",
        text(&out.stderr)
    );
    assert!(!ws_path.join("models/loras/wrong.safetensors").exists());
    assert!(!ws_path.join("models/loras/wrong.safetensors.part").exists());

    for (args, expected) in [
        (vec!["--to", "../escape.bin"], "--to"),
        (vec!["--to", "model.bin"], "<folder>/<file>"),
        (
            vec!["--to", "loras/x.bin", "--sha256", "xyz"],
            "64 hexadecimal",
        ),
    ] {
        let mut all = vec!["download", url.as_str()];
        all.extend(args);
        let out = comfydeck(&ws_path, &all);
        assert_eq!(out.status.code(), Some(1), "{all:?}");
        assert!(
            text(&out.stderr).contains(expected),
            "{all:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn mutating_commands_say_which_server_holds_the_workspace() {
    let ws = tempfile::tempdir().unwrap();
    let mut server = Command::new(BIN)
        .args(["serve", "--port", "0", "--workspace"])
        .arg(ws.path())
        .env_remove("DASHBOARD_HOST")
        .env_remove("ACCESS_PASSWORD")
        .env("COMFYUI_URL", "http://127.0.0.1:9")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The lock file names the holder once the server is up.
    let lock = ws.path().join("data/comfydeck.lock");
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&lock).map_or(true, |s| s.trim().is_empty()) {
        assert!(started.elapsed().as_secs() < 20, "the server did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let out = comfydeck(ws.path(), &["presets", "remove", "flux-dev-basic"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let message = text(&out.stderr);
    assert!(message.contains("a running comfydeck"), "{message}");
    assert!(message.contains("Models page"), "{message}");

    let out = comfydeck(
        ws.path(),
        &[
            "nodes",
            "install",
            "https://example.invalid/a/b",
            "--comfyui-dir",
            "/nonexistent",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("POST /api/nodes/install"),
        "{}",
        text(&out.stderr)
    );

    let out = comfydeck(ws.path(), &["recovery", "retry", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Recovery page"),
        "{}",
        text(&out.stderr)
    );

    // Reading works alongside the server.
    let out = comfydeck(ws.path(), &["presets", "status", "flux-dev-basic"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = comfydeck(ws.path(), &["recovery", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "Nothing needs you.");

    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn workflow_to_api_prints_the_frontends_prompt_or_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let pair: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            comfy_standin::fixture_dir().join("ui_to_api_default_workflow.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let workflow = dir.path().join("workflow.json");
    std::fs::write(&workflow, pair["ui_workflow"].to_string()).unwrap();
    let object_info = comfy_standin::fixture_dir().join("object_info_full.json");

    let out = Command::new(BIN)
        .args(["workflow", "to-api", "--object-info"])
        .arg(&object_info)
        .arg(&workflow)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let prompt: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(prompt, pair["api_prompt"]);

    std::fs::write(
        &workflow,
        r#"{"nodes":[{"id":1,"type":"NoSuchNode","mode":0,"inputs":[],"outputs":[],"widgets_values":[]}],"links":[]}"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["workflow", "to-api", "--object-info"])
        .arg(&object_info)
        .arg(&workflow)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let message = text(&out.stderr);
    assert!(message.contains("cannot be converted"), "{message}");
    assert!(message.contains("NoSuchNode"), "{message}");
}

/// `comfydeck users …` with standard input (for `--password-stdin`).
fn comfydeck_with_stdin(workspace: &Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--workspace")
        .arg(workspace)
        .env_remove("WORKSPACE_ROOT")
        .env_remove("ACCESS_PASSWORD")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Logs in over HTTP; the session cookie on success, the status otherwise.
async fn http_login(base: &str, username: &str, password: &str) -> Result<String, u16> {
    let reply = reqwest::Client::new()
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    if !reply.status().is_success() {
        return Err(reply.status().as_u16());
    }
    let cookie = reply.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    Ok(cookie)
}

async fn session_status(base: &str, cookie: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/api/session"))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn users_commands_manage_accounts_of_a_running_server() {
    let ws = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Command::new(BIN)
        .args(["serve", "--port", &port.to_string(), "--workspace"])
        .arg(ws.path())
        .env_remove("DASHBOARD_HOST")
        .env("ACCESS_PASSWORD", "the-admin-password")
        .env("COMFYUI_URL", "http://127.0.0.1:9")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    until_healthy(&base).await;
    let ws_path = ws.path().to_path_buf();
    let run = move |args: &'static [&'static str], stdin: &'static str| {
        let ws_path = ws_path.clone();
        async move {
            tokio::task::spawn_blocking(move || comfydeck_with_stdin(&ws_path, args, stdin))
                .await
                .unwrap()
        }
    };

    // Added while the server runs, with a generated password printed once.
    let out = run(&["users", "add", "Alice"], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Added alice (user)"), "{stdout}");
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Password (shown once): "))
        .expect("the generated password is printed")
        .to_string();
    let alice = http_login(&base, "alice", &password)
        .await
        .expect("the server lets alice in at once");
    assert_eq!(session_status(&base, &alice).await, 200);

    let out = run(
        &["users", "add", "bob", "--admin", "--password-stdin"],
        "bob-password\n",
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stdout).contains("Password"),
        "a given password is not echoed"
    );
    http_login(&base, "bob", "bob-password").await.unwrap();

    let out = run(&["users", "list", "--json"], "").await;
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "alice", "bob"]);
    assert_eq!(list[2]["role"], "admin");
    assert!(list[0].get("password_hash").is_none());
    let out = run(&["users", "list"], "").await;
    let table = text(&out.stdout);
    assert!(table.lines().next().unwrap().starts_with("NAME"), "{table}");
    assert!(
        table.contains("alice") && table.contains("active"),
        "{table}"
    );

    // Disabling ends alice's session on the running server; enabling lets her log in again.
    let out = run(&["users", "disable", "alice"], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(session_status(&base, &alice).await, 401);
    assert_eq!(http_login(&base, "alice", &password).await, Err(401));
    let out = run(&["users", "enable", "alice"], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let alice = http_login(&base, "alice", &password).await.unwrap();

    // A new password ends her sessions.
    let out = run(
        &["users", "passwd", "alice", "--password-stdin"],
        "alice-new-pass\n",
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(session_status(&base, &alice).await, 401);
    let alice = http_login(&base, "alice", "alice-new-pass").await.unwrap();

    // Mistakes exit non-zero with the reason.
    for (args, reason) in [
        (&["users", "add", "alice"][..], "already exists"),
        (&["users", "remove", "admin"][..], "admin account"),
        (&["users", "disable", "nobody"][..], "no user named nobody"),
        (&["users", "add", "bad name"][..], "not allowed"),
    ] {
        let args: &'static [&'static str] = Box::leak(args.to_vec().into_boxed_slice());
        let out = run(args, "").await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains(reason),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = run(&["users", "passwd", "bob", "--password-stdin"], "short\n").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("at least 8"),
        "{}",
        text(&out.stderr)
    );

    let out = run(&["users", "remove", "alice"], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(session_status(&base, &alice).await, 401);
    assert_eq!(http_login(&base, "alice", "alice-new-pass").await, Err(401));

    server.kill().unwrap();
    server.wait().unwrap();
}

/// Runs `program args` and panics with its output when it fails (git, python3: the custom-node
/// test needs both and says so).
fn must(what: &str, command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| {
        panic!("{what}: cannot run it ({e}); this test needs git and python3 with venv")
    });
    assert!(
        out.status.success(),
        "{what}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A one-commit git repository with `files`; its `file://` URL.
fn git_repo(root: &Path, name: &str, files: &[(&str, &str)]) -> String {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let git = |args: &[&str]| {
        must(
            "git",
            Command::new("git")
                .args(args)
                .current_dir(&dir)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.invalid"),
        )
    };
    git(&["init", "--quiet", "-b", "main"]);
    for (path, content) in files {
        std::fs::write(dir.join(path), content).unwrap();
    }
    git(&["add", "-A"]);
    git(&["commit", "--quiet", "-m", "first"]);
    format!("file://{}", dir.display())
}

/// A ComfyUI folder under `root` that runs the fake ComfyUI (which imports `custom_nodes/`
/// as ComfyUI does) in a venv of its own.
fn fake_comfyui(root: &Path) -> std::path::PathBuf {
    let comfy = root.join("ComfyUI");
    std::fs::create_dir_all(comfy.join("custom_nodes")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../comfy-standin/python/fake_comfyui/main.py"),
        comfy.join("main.py"),
    )
    .unwrap();
    must(
        "python3 -m venv",
        Command::new("python3")
            .args(["-m", "venv"])
            .arg(comfy.join("venv")),
    );
    comfy
}

/// `nodes install` prints its steps, ends 0 only when ComfyUI (the fake one, run by the
/// command's own supervisor) loaded the pack, and otherwise exits 1 with the reason and what
/// was put back; `nodes list` shows what is installed.
#[test]
fn nodes_commands_install_list_and_refuse_with_the_reason() {
    let root = tempfile::tempdir().unwrap();
    let ws = root.path().join("workspace");
    let comfy = fake_comfyui(root.path());
    let good = git_repo(
        root.path(),
        "pack-cli",
        &[(
            "__init__.py",
            "class N:\n    pass\n\nNODE_CLASS_MAPPINGS = {'CliNode': N}\n",
        )],
    );
    let broken = git_repo(
        root.path(),
        "pack-cli-broken",
        &[("__init__.py", "raise RuntimeError('cli pack is broken')\n")],
    );
    let port = free_port().to_string();
    let dir = comfy.display().to_string();
    let nodes = |args: &[&str]| {
        let mut all = vec!["nodes"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[
            "--comfyui-dir",
            &dir,
            "--comfyui-port",
            &port,
            "--node-map-url=",
        ]);
        Command::new(BIN)
            .args(&all)
            .arg("--workspace")
            .arg(&ws)
            .env_remove("COMFYUI_PYTHON")
            .env_remove("COMFYUI_ARGS")
            .env_remove("NODE_PIP_ARGS")
            .env_remove("NODE_PROTECTED_PACKAGES")
            .env("PIP_NO_INDEX", "1")
            .output()
            .expect("the binary runs")
    };

    let out = nodes(&["install", &good]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let progress = text(&out.stderr);
    assert!(progress.contains("restore point recorded"), "{progress}");
    assert!(progress.contains("restarting ComfyUI"), "{progress}");
    assert!(
        text(&out.stdout).contains("loaded; classes: CliNode"),
        "{}",
        text(&out.stdout)
    );

    let out = nodes(&["install", &broken]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let reason = text(&out.stderr);
    assert!(
        reason.contains("ComfyUI could not import pack-cli-broken"),
        "{reason}"
    );
    assert!(
        reason.contains("RuntimeError: cli pack is broken"),
        "{reason}"
    );
    assert!(reason.contains("Put back"), "{reason}");
    assert!(!comfy.join("custom_nodes/pack-cli-broken").exists());

    let out = nodes(&["list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = list["packs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["pack-cli"]);
    assert_eq!(list["packs"][0]["repository"], serde_json::json!(good));

    let out = nodes(&["remove", "pack-cli"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!comfy.join("custom_nodes/pack-cli").exists());

    // Without COMFYUI_DIR there is nothing to manage, and the command says so.
    let out = Command::new(BIN)
        .args(["nodes", "list", "--workspace"])
        .arg(&ws)
        .env_remove("COMFYUI_DIR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("COMFYUI_DIR"),
        "{}",
        text(&out.stderr)
    );
}

/// A preset whose file is not there yet fails (exit 1) and waits in `recovery list`, as
/// on the Recovery page; once the file is served, `recovery retry ID` installs it (exit 0,
/// verified) and the list is empty again. An unknown id is refused.
#[tokio::test(flavor = "multi_thread")]
async fn recovery_commands_list_a_failed_install_and_retry_it() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let sha = hex::encode(Sha256::digest(&body));
    let up = Arc::new(AtomicBool::new(false));
    let serving = Arc::clone(&up);
    let app = axum::Router::new().route(
        "/late.bin",
        axum::routing::get(move || {
            let (body, up) = (body.clone(), serving.load(Ordering::SeqCst));
            async move {
                use axum::response::IntoResponse;
                if up {
                    body.into_response()
                } else {
                    axum::http::StatusCode::NOT_FOUND.into_response()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let ws = tempfile::tempdir().unwrap();
    let preset_dir = ws.path().join("config/presets/test/late");
    std::fs::create_dir_all(&preset_dir).unwrap();
    std::fs::write(
        preset_dir.join("preset.yaml"),
        format!(
            "id: late\nversion: 1.0.0\nname: Late\ncategory: Image Generation\ntype: image\n\
             files:\n- path: loras/late.safetensors\n  url: http://{addr}/late.bin\n  size: 200KB\n  \
             checksum:\n    algorithm: sha256\n    value: {sha}\n"
        ),
    )
    .unwrap();
    let ws_path = ws.path().to_path_buf();
    let run = move |args: &'static [&'static str]| {
        let ws = ws_path.clone();
        tokio::task::spawn_blocking(move || comfydeck(&ws, args))
    };

    let out = run(&["presets", "install", "late", "--wait"])
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));

    let out = run(&["recovery", "list"]).await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    assert!(
        listed.starts_with("#1 preset · not found · preset late"),
        "{listed}"
    );
    assert!(
        listed.contains("actions: use_source, roll_back, dismiss, retry"),
        "{listed}"
    );
    let out = run(&["recovery", "list", "--json"]).await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["open"][0]["source"], "preset");
    assert_eq!(json["open"][0]["class"], "not_found");

    let out = run(&["recovery", "retry", "99"]).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("does not exist"),
        "{}",
        text(&out.stderr)
    );

    up.store(true, Ordering::SeqCst);
    let out = run(&["recovery", "retry", "1"]).await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("late: installed, every file verified"),
        "{}",
        text(&out.stdout)
    );
    let installed = std::fs::read(ws.path().join("models/loras/late.safetensors")).unwrap();
    assert_eq!(hex::encode(Sha256::digest(installed)), sha);
    let out = run(&["recovery", "list"]).await.unwrap();
    let listed = text(&out.stdout);
    assert!(listed.starts_with("Nothing needs you."), "{listed}");
    assert!(listed.contains("#1 install Late · 1 file ·"), "{listed}");
    assert!(listed.contains("can be rolled back"), "{listed}");

    // The install undone: the file it added goes; a second time changes nothing.
    let out = run(&["recovery", "rollback", "1"]).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "Rolled back install Late: removed 1 file."
    );
    assert!(!ws.path().join("models/loras/late.safetensors").exists());
    let out = run(&["recovery", "rollback", "1"]).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(&["presets", "status", "late"]).await.unwrap();
    assert!(
        text(&out.stdout).contains("Not installed"),
        "{}",
        text(&out.stdout)
    );
}

/// `kill -9` of `comfydeck presets install --wait` in the middle of a download: the next
/// run goes on with the install, and rolling it back afterwards leaves the models folder
/// exactly as before it (listing and hashes), the person's own file included.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_install_goes_on_after_a_restart_and_rolls_back_to_the_exact_tree() {
    use std::sync::atomic::Ordering;
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i * 31 % 253) as u8).collect();
    let sha = hex::encode(Sha256::digest(&body));
    let (addr, slow) = slow_file_server("/big.bin", body).await;

    let ws = tempfile::tempdir().unwrap();
    let preset_dir = ws.path().join("config/presets/test/big");
    std::fs::create_dir_all(&preset_dir).unwrap();
    std::fs::write(
        preset_dir.join("preset.yaml"),
        format!(
            "id: big\nversion: 1.0.0\nname: Big\ncategory: Image Generation\ntype: image\n\
             files:\n- path: checkpoints/big.safetensors\n  url: http://{addr}/big.bin\n  size: 3MB\n  \
             checksum:\n    algorithm: sha256\n    value: {sha}\n"
        ),
    )
    .unwrap();
    let models = ws.path().join("models");
    std::fs::create_dir_all(models.join("checkpoints")).unwrap();
    std::fs::write(models.join("checkpoints/mine.safetensors"), b"my own").unwrap();
    let before = support::tree::files_with_sha256(&models);

    let mut first = Command::new(BIN)
        .args(["presets", "install", "big", "--wait", "--workspace"])
        .arg(ws.path())
        .env("HF_BASE_URL", "http://127.0.0.1:9")
        .env_remove("PRESET_REGISTRY_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    kill_9_mid_download(&mut first, &models.join("checkpoints/big.safetensors")).await;

    slow.store(false, Ordering::SeqCst);
    let ws_path = ws.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        comfydeck(&ws_path, &["presets", "install", "big", "--wait"])
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let installed = std::fs::read(models.join("checkpoints/big.safetensors")).unwrap();
    assert_eq!(hex::encode(Sha256::digest(installed)), sha);

    let ws_path = ws.path().to_path_buf();
    let out =
        tokio::task::spawn_blocking(move || comfydeck(&ws_path, &["recovery", "rollback", "1"]))
            .await
            .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        support::tree::files_with_sha256(&models),
        before,
        "{}",
        text(&out.stdout)
    );
}

/// Serves `body` at `path` in 64 KiB chunks, 40 ms apart while the flag is set (long enough to
/// kill a process in the middle of the download), at once after.
async fn slow_file_server(
    path: &'static str,
    body: Vec<u8>,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let slow = Arc::new(AtomicBool::new(true));
    let slowly = Arc::clone(&slow);
    let length = body.len().to_string();
    let app = axum::Router::new().route(
        path,
        axum::routing::get(move || {
            let (body, slow) = (body.clone(), slowly.load(Ordering::SeqCst));
            let length = length.clone();
            async move {
                let chunks: Vec<Vec<u8>> = body.chunks(64 * 1024).map(<[u8]>::to_vec).collect();
                use futures::StreamExt;
                let stream = futures::stream::iter(chunks).then(move |chunk| async move {
                    if slow {
                        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
                    }
                    Ok::<_, std::io::Error>(chunk)
                });
                axum::response::Response::builder()
                    .header("content-length", length)
                    .body(axum::body::Body::from_stream(stream))
                    .unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, slow)
}

/// `POST url` with a JSON body; the JSON answer (panics on an error status).
async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let reply = http.post(url).json(&body).send().await.unwrap();
    reply.error_for_status().unwrap().json().await.unwrap()
}

/// `GET url`; the JSON answer (panics on an error status).
async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    let reply = http.get(url).send().await.unwrap();
    reply.error_for_status().unwrap().json().await.unwrap()
}

/// Waits (at most 30 s) until the server at `base` answers `/health`.
async fn until_healthy(base: &str) {
    let started = std::time::Instant::now();
    while reqwest::get(format!("{base}/health")).await.is_err() {
        assert!(started.elapsed().as_secs() < 30, "the server did not start");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits until `file`'s part holds 300 kB, then kills `process` with -9: the file is not
/// there yet.
async fn kill_9_mid_download(process: &mut std::process::Child, file: &Path) {
    let part = file.with_extension("safetensors.part");
    let started = std::time::Instant::now();
    while std::fs::metadata(&part).map_or(0, |m| m.len()) < 300_000 {
        assert!(started.elapsed().as_secs() < 30, "no progress");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    process.kill().unwrap(); // SIGKILL
    process.wait().unwrap();
    assert!(!file.exists());
}

/// `comfydeck serve` on `workspace` with ComfyUI at `comfyui`, answering once `/health` does.
async fn serve(workspace: &Path, comfyui: &str) -> (std::process::Child, String) {
    serve_with(workspace, &["--comfyui-url", comfyui]).await
}

/// `comfydeck serve` on `workspace` with `comfyui_args` (where ComfyUI is), in an environment
/// free of the developer's ComfyUI and pack settings (pip never reaches an index), answering
/// once `/health` does.
async fn serve_with(workspace: &Path, comfyui_args: &[&str]) -> (std::process::Child, String) {
    let port = free_port().to_string();
    let mut args = vec!["serve", "--port", &port];
    args.extend_from_slice(comfyui_args);
    let child = with_test_env(Command::new(BIN), workspace, &args)
        .env_remove("ACCESS_PASSWORD")
        .env_remove("COMFYUI_PYTHON")
        .env_remove("COMFYUI_ARGS")
        .env_remove("NODE_PIP_ARGS")
        .env_remove("NODE_PROTECTED_PACKAGES")
        .env("PIP_NO_INDEX", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    until_healthy(&base).await;
    (child, base)
}

/// `kill -9` of the deck in the middle of a "make runnable" download: the restarted deck
/// finishes the operation by itself (from the bytes on disk), and `recovery rollback` of its
/// restore point leaves the models folder exactly as before (listing and hashes).
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_make_runnable_goes_on_after_a_restart_and_rolls_back_to_the_exact_tree() {
    use base64::Engine as _;
    use std::sync::atomic::Ordering;
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i * 17 % 251) as u8).collect();
    let sha = hex::encode(Sha256::digest(&body));
    let (addr, slow) = slow_file_server("/shared.safetensors", body).await;
    let comfy = comfy_standin::ComfyStandin::start(comfy_standin::StandinConfig::new(
        comfy_standin::fixture_dir(),
    ))
    .await
    .unwrap();

    // ComfyUI's default workflow as shared from another pod: its checkpoint, with its link.
    let fixture: serde_json::Value = serde_json::from_slice(
        &std::fs::read(comfy_standin::fixture_dir().join("ui_to_api_default_workflow.json"))
            .unwrap(),
    )
    .unwrap();
    let mut workflow = fixture["ui_workflow"].clone();
    for node in workflow["nodes"].as_array_mut().unwrap() {
        if node["type"] == "CheckpointLoaderSimple" {
            node["widgets_values"] = serde_json::json!(["shared.safetensors"]);
        }
    }
    workflow["models"] = serde_json::json!([{
        "name": "shared.safetensors",
        "url": format!("http://{addr}/shared.safetensors"),
        "directory": "checkpoints",
    }]);

    let ws = tempfile::tempdir().unwrap();
    let models = ws.path().join("models");
    std::fs::create_dir_all(models.join("checkpoints")).unwrap();
    std::fs::write(models.join("checkpoints/mine.safetensors"), b"my own").unwrap();
    let before = support::tree::files_with_sha256(&models);

    let (mut deck, base) = serve(ws.path(), &comfy.url()).await;
    let http = reqwest::Client::new();
    let imported = post_json(
        &http,
        &format!("{base}/api/workflows/import"),
        serde_json::json!({
            "file_name": "shared.json",
            "content_base64": base64::engine::general_purpose::STANDARD
                .encode(serde_json::to_vec(&workflow).unwrap()),
        }),
    )
    .await;
    let operation = post_json(
        &http,
        &format!("{base}/api/workflows/make-runnable"),
        serde_json::json!({"id": imported["id"]}),
    )
    .await;
    let id = operation["id"].as_i64().expect("an operation id");
    kill_9_mid_download(&mut deck, &models.join("checkpoints/shared.safetensors")).await;

    // The restarted deck carries the operation on to its end.
    slow.store(false, Ordering::SeqCst);
    let (mut deck, base) = serve(ws.path(), &comfy.url()).await;
    let started = std::time::Instant::now();
    let done = loop {
        let op = get_json(&http, &format!("{base}/api/operations/get?id={id}")).await;
        if op["state"] != "running" {
            break op;
        }
        assert!(started.elapsed().as_secs() < 60, "still running: {op:#}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(done["state"], "done", "{done:#}");
    let installed = std::fs::read(models.join("checkpoints/shared.safetensors")).unwrap();
    assert_eq!(hex::encode(Sha256::digest(installed)), sha);
    let points = get_json(&http, &format!("{base}/api/restore-points")).await;
    let point = points
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "operation" && p["target"].as_str() == Some(id.to_string().as_str()))
        .unwrap_or_else(|| panic!("{points:#}"));
    let point_id = point["id"].to_string();
    deck.kill().unwrap();
    deck.wait().unwrap();

    // Rolled back from the command line: the models folder as it was, the person's file kept.
    let ws_path = ws.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        comfydeck(&ws_path, &["recovery", "rollback", &point_id])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        support::tree::files_with_sha256(&models),
        before,
        "{}",
        text(&out.stdout)
    );
}

/// A small tmpfs over a folder, in a mount namespace of its own that a `sleep` holds (the
/// workspace's models folder is full for real, and only for the processes run in it).
struct SmallDisk {
    holder: std::process::Child,
    mounted_on: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(folder: &Path, size: &str) -> SmallDisk {
        use std::io::BufRead;
        std::fs::create_dir_all(folder).unwrap();
        let script = format!(
            "mount -t tmpfs -o size={size} comfydeck-test \"$0\" && echo mounted && exec sleep 600"
        );
        // As root a mount namespace is enough; elsewhere a user namespace maps us to root.
        for flags in [&["-m"][..], &["-r", "-m"][..]] {
            let mut holder = Command::new("unshare")
                .args(flags)
                .args(["sh", "-c", &script])
                .arg(folder)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("unshare (util-linux) runs");
            let mut line = String::new();
            let _ = std::io::BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line);
            if line.trim() == "mounted" {
                return SmallDisk {
                    holder,
                    mounted_on: folder.to_path_buf(),
                };
            }
            let _ = holder.kill();
            let _ = holder.wait();
        }
        panic!("cannot mount a tmpfs in a mount namespace here (unshare -m, unshare -rm)");
    }

    /// The binary run inside the namespace.
    fn comfydeck(&self, workspace: &Path, args: &[&str]) -> Output {
        let mut enter = Command::new("nsenter");
        enter
            .args(["-t", &self.holder.id().to_string(), "-m", "--"])
            .arg(BIN);
        with_test_env(enter, workspace, args)
            .env("DOWNLOAD_DISK_RESERVE_GB", "0")
            .output()
            .expect("nsenter runs the binary")
    }

    /// A path under the tmpfs, as seen from outside the namespace.
    fn path(&self, relative: &str) -> std::path::PathBuf {
        let inside = self.mounted_on.join(relative);
        Path::new(&format!("/proc/{}/root", self.holder.id()))
            .join(inside.strip_prefix("/").unwrap())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A full disk for real (a 4 MiB tmpfs as the models folder): the download stops with the
/// disk full, keeps its bytes and is in Recovery as "disk full" with Free space, then Resume; a
/// preset removed frees the space, and `recovery retry` (its Resume) finishes the file,
/// verified.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_is_in_recovery_and_a_retry_after_freeing_space_finishes_the_file() {
    let filler: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 249) as u8).collect();
    let filler_sha = hex::encode(Sha256::digest(&filler));
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 11 % 247) as u8).collect();
    let big_sha = hex::encode(Sha256::digest(&big));
    let filler_url = file_server(filler).await;
    let big_url = file_server(big).await;

    let ws = tempfile::tempdir().unwrap();
    let preset_dir = ws.path().join("config/presets/test/filler");
    std::fs::create_dir_all(&preset_dir).unwrap();
    std::fs::write(
        preset_dir.join("preset.yaml"),
        format!(
            "id: filler\nversion: 1.0.0\nname: Filler\ncategory: Image Generation\ntype: image\n\
             files:\n- path: loras/filler.safetensors\n  url: {filler_url}\n  size: 2MB\n  \
             checksum:\n    algorithm: sha256\n    value: {filler_sha}\n"
        ),
    )
    .unwrap();
    let disk = SmallDisk::mount(&ws.path().join("models"), "4m");
    let ws_path = ws.path().to_path_buf();
    let disk = std::sync::Arc::new(disk);
    let run = |args: Vec<String>| {
        let (ws, disk) = (ws_path.clone(), std::sync::Arc::clone(&disk));
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            disk.comfydeck(&ws, &args)
        })
    };
    let args = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();

    let out = run(args(&["presets", "install", "filler", "--wait"]))
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(disk.path("loras/filler.safetensors").exists());

    // 3 MB into the 2 MiB left: the disk fills up half-way.
    let out = run(args(&[
        "download",
        &big_url,
        "--to",
        "checkpoints/big.safetensors",
        "--sha256",
        &big_sha,
    ]))
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("disk full while writing big.safetensors"),
        "{}",
        text(&out.stderr)
    );
    let kept = std::fs::metadata(disk.path("checkpoints/big.safetensors.part"))
        .expect("the bytes written are kept")
        .len();
    assert!(kept > 1_000_000 && kept < 3_000_000, "{kept}");

    let out = run(args(&["recovery", "list", "--json"])).await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let open = list["open"].as_array().unwrap();
    assert_eq!(open.len(), 1, "{list:#}");
    let failure = &open[0];
    assert_eq!(failure["source"], "download");
    assert_eq!(failure["class"], "disk_full");
    assert_eq!(failure["subject"], "checkpoints/big.safetensors");
    assert_eq!(
        failure["actions"],
        serde_json::json!(["free_space", "resume", "dismiss"])
    );
    assert_eq!(failure["link"], "/models");
    let partial = &list["partial_files"][0];
    assert_eq!(partial["path"], "checkpoints/big.safetensors");
    assert_eq!(
        partial["owner"], "download",
        "a paused download's bytes are its own"
    );
    assert_eq!(partial["bytes"], kept);
    let id = failure["id"].to_string();

    // Retried while still full: it stops again, counted.
    let out = run(args(&["recovery", "retry", &id])).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("disk full"),
        "{}",
        text(&out.stdout)
    );
    let out = run(args(&["recovery", "list", "--json"])).await.unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["open"][0]["count"], 2, "{list:#}");

    // Free space: the preset goes, its 2 MB with it; the retry finishes the file.
    let out = run(args(&["presets", "remove", "filler"])).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!disk.path("loras/filler.safetensors").exists());
    let out = run(args(&["recovery", "retry", &id])).await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let installed = std::fs::read(disk.path("checkpoints/big.safetensors")).unwrap();
    assert_eq!(hex::encode(Sha256::digest(installed)), big_sha);
    assert!(!disk.path("checkpoints/big.safetensors.part").exists());
    let out = run(args(&["recovery", "list"])).await.unwrap();
    assert!(
        text(&out.stdout).starts_with("Nothing needs you."),
        "{}",
        text(&out.stdout)
    );
    // Nothing was written outside the tmpfs's models folder.
    assert!(!ws.path().join("models/checkpoints").exists());
}

/// Every path under `dir` (Python caches skipped), relative, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == "__pycache__") {
                continue;
            }
            out.push(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `comfydeck serve` on `workspace` running ComfyUI from `comfy` itself (on `comfy_port`),
/// answering once `/health` does.
async fn serve_supervised(
    workspace: &Path,
    comfy: &Path,
    comfy_port: u16,
) -> (std::process::Child, String) {
    let (dir, port) = (comfy.display().to_string(), comfy_port.to_string());
    serve_with(
        workspace,
        &[
            "--comfyui-dir",
            &dir,
            "--comfyui-port",
            &port,
            "--node-map-url=",
        ],
    )
    .await
}

fn process_runs(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// `kill -9` of the deck in the middle of a pack's clone (the remote holds its objects back):
/// the restarted deck ends the ComfyUI the killed one left running, puts the pod back by itself
/// (no half clone: `custom_nodes/` and `pip freeze` as before), and the install waits in
/// Recovery; its Retry installs the pack.
#[tokio::test(flavor = "multi_thread")]
async fn a_pack_install_killed_mid_clone_is_put_back_at_the_restart_and_its_retry_installs_it() {
    let root = tempfile::tempdir().unwrap();
    let ws = root.path().join("workspace");
    let comfy = fake_comfyui(root.path());
    let repo = git_repo(
        root.path(),
        "slow-pack",
        &[(
            "__init__.py",
            "class N:\n    pass\n\nNODE_CLASS_MAPPINGS = {'SlowNode': N}\n",
        )],
    );
    let remote = comfy_standin::git_remote::GitRemote::start(root.path().join("served")).await;
    let url = remote.publish(&repo, "slow-pack");
    remote.hold_objects(std::time::Duration::from_secs(300));
    let custom_nodes = comfy.join("custom_nodes");
    let freeze = || {
        must(
            "pip freeze",
            Command::new(comfy.join("venv/bin/python"))
                .args(["-m", "pip", "freeze", "--all"])
                .env("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
        )
    };
    let (tree_before, freeze_before) = (listing(&custom_nodes), freeze());
    let comfy_port = free_port();

    let (mut deck, base) = serve_supervised(&ws, &comfy, comfy_port).await;
    let http = reqwest::Client::new();
    let install = {
        let (http, base, url) = (http.clone(), base.clone(), url.clone());
        tokio::spawn(async move {
            let _ = http
                .post(format!("{base}/api/nodes/install"))
                .json(&serde_json::json!({"repo": url}))
                .send()
                .await;
        })
    };
    let started = std::time::Instant::now();
    let cloning = || {
        std::fs::read_dir(custom_nodes.join(".disabled")).is_ok_and(|mut entries| {
            entries.any(|e| {
                e.is_ok_and(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(".staging-slow-pack-")
                })
            })
        })
    };
    while !cloning() {
        assert!(started.elapsed().as_secs() < 60, "the clone never started");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let pid_file = ws.join("data/comfyui.pid");
    let left_running: i32 = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()))
        .trim()
        .parse()
        .unwrap();
    deck.kill().unwrap(); // SIGKILL
    deck.wait().unwrap();
    install.abort();
    assert!(
        process_runs(left_running),
        "the killed deck's ComfyUI is still running"
    );

    // The restarted deck: the old ComfyUI ended, the pod put back, the install in Recovery.
    remote.hold_objects(std::time::Duration::ZERO);
    let (mut deck, base) = serve_supervised(&ws, &comfy, comfy_port).await;
    let started = std::time::Instant::now();
    let failure = loop {
        let list = get_json(&http, &format!("{base}/api/recovery")).await;
        if let Some(f) = list["open"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["source"] == "pack")
        {
            break f.clone();
        }
        assert!(
            started.elapsed().as_secs() < 90,
            "no pack failure: {list:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(!process_runs(left_running), "the old ComfyUI was ended");
    assert_eq!(failure["subject"], "install pack slow-pack", "{failure:#}");
    let detail = failure["detail"].as_str().unwrap();
    assert!(
        detail.contains("installing slow-pack failed: comfydeck stopped in the middle of it")
            && detail.contains("Put back"),
        "{detail}"
    );
    assert!(failure["actions"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("retry")));
    assert_eq!(listing(&custom_nodes), tree_before, "no half clone is left");
    assert_eq!(freeze(), freeze_before);

    // Retry: the pack is installed and loaded, and nothing waits in Recovery.
    let acted = http
        .post(format!("{base}/api/recovery/act"))
        .json(&serde_json::json!({"id": failure["id"], "action": "retry"}))
        .send()
        .await
        .unwrap();
    let status = acted.status();
    assert!(
        status.is_success(),
        "{status}: {}",
        acted.text().await.unwrap()
    );
    let packs = get_json(&http, &format!("{base}/api/nodes")).await;
    let ids: Vec<&str> = packs["packs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["slow-pack"], "{packs:#}");
    let list = get_json(&http, &format!("{base}/api/recovery")).await;
    assert_eq!(list["open"], serde_json::json!([]), "{list:#}");

    // A graceful stop ends the deck's ComfyUI with it.
    unsafe { libc::kill(deck.id() as i32, libc::SIGTERM) };
    deck.wait().unwrap();
}
