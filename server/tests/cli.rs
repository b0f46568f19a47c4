//! The `comfydeck` binary's one-shot commands, run as a provisioning script would run them:
//! real processes, a real workspace, a local HTTP server for the files.

use std::path::Path;
use std::process::{Command, Output};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_comfydeck");

/// Runs the binary on a workspace with an environment free of the developer's settings.
fn comfydeck(workspace: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--workspace")
        .arg(workspace)
        .env_remove("WORKSPACE_ROOT")
        .env_remove("DASHBOARD_HOST")
        .env_remove("RUNPOD_VOLUME_GB")
        .env_remove("PRESET_REGISTRY_URL")
        .env("HF_BASE_URL", "http://127.0.0.1:9")
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Serves `/model.bin` (the given bytes, with a length and an ETag) until the test ends.
async fn file_server(body: Vec<u8>) -> String {
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..16]);
    let app = Router::new().route(
        "/model.bin",
        get(move || {
            let body = body.clone();
            let etag = etag.clone();
            async move {
                let mut headers = HeaderMap::new();
                headers.insert(header::ETAG, etag.parse().unwrap());
                (StatusCode::OK, headers, body).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/model.bin")
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

    // Reading works alongside the server.
    let out = comfydeck(ws.path(), &["presets", "status", "flux-dev-basic"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

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
