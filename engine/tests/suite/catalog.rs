//! The preset catalog through its public API: the real built-in data, workspace overrides and
//! their problems, and the remote registry sync against a local HTTP server.
#![cfg(feature = "server")]

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use engine::catalog::{
    Catalog, CatalogLayer, CatalogSources, RemoteFormat, RemoteRegistry, SyncState,
};

fn sources(root: &Path) -> CatalogSources {
    CatalogSources {
        workspace_config: root.join("config"),
        remote_cache: root.join("data").join("remote-registry.json"),
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn catalog_builtin_has_every_real_preset_and_no_problems() {
    let catalog = Catalog::builtin();
    assert!(catalog.problems.is_empty(), "{:#?}", catalog.problems);
    let stats = &catalog.stats[0];
    assert_eq!(
        (stats.registry_presets, stats.docker_presets, stats.merged),
        (61, 56, 56)
    );
    assert_eq!(catalog.presets.len(), 61);
    assert_eq!(catalog.get("LTX_VIDEO_T2V").unwrap().id, "ltx-video-t2v");
    assert_eq!(
        catalog.get("ltx-video-t2v").unwrap().aliases,
        ["LTX_VIDEO_T2V"]
    );
    // A workspace without overrides changes nothing.
    let dir = tempfile::tempdir().unwrap();
    let loaded = Catalog::load(&sources(dir.path()), None);
    assert_eq!(loaded.presets, catalog.presets);
    assert!(loaded.problems.is_empty());
}

#[test]
fn catalog_yaml_syntax_error_in_workspace_file_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let src = sources(dir.path());
    let file = src.workspace_config.join("presets.yaml");
    write(
        &file,
        "presets:\n  MY_MODEL:\n    name: Mine\n    tags: [one, two\n    type: image\n",
    );
    let catalog = Catalog::load(&src, None);
    assert_eq!(catalog.problems.len(), 1, "{:#?}", catalog.problems);
    let problem = &catalog.problems[0];
    assert_eq!(problem.file, file.display().to_string());
    assert_eq!(problem.line, Some(5), "{problem}");
    assert!(
        problem
            .to_string()
            .starts_with(&format!("{}:5: ", file.display())),
        "{problem}"
    );
    // The rest of the catalog is intact.
    assert_eq!(catalog.presets.len(), 61);
}

#[test]
fn catalog_semantic_errors_name_file_field_and_line_and_skip_only_that_preset() {
    let dir = tempfile::tempdir().unwrap();
    let src = sources(dir.path());
    let file = src.workspace_config.join("presets.yaml");
    write(
        &file,
        "\
presets:
  EVIL:
    name: Evil
    category: Image Generation
    type: image
    files:
    - path: ../../etc/passwd
      url: https://example.com/passwd
      size: 1KB
  BIG:
    name: Big
    category: Image Generation
    type: image
    download_size: a lot
    files:
    - path: checkpoints/big.safetensors
      url: https://example.com/big.safetensors
  FINE:
    name: Fine
    category: Image Generation
    type: image
    files:
    - path: checkpoints/fine.safetensors
      url: https://example.com/fine.safetensors
      size: 800KB
",
    );
    let registry_file = src
        .workspace_config
        .join("presets/image/broken/preset.yaml");
    write(
        &registry_file,
        "id: broken\nversion: 1.0.0\nname: Broken\ncategory: Image Generation\ntype: image\nfiles:\n- path: vae/v.safetensors\n  url: https://example.com/v\n  size: 12 parsecs\n",
    );
    let catalog = Catalog::load(&src, None);
    let mut problems = catalog.problems.clone();
    problems.sort_by(|a, b| a.file.cmp(&b.file).then(a.line.cmp(&b.line)));
    assert_eq!(problems.len(), 3, "{problems:#?}");

    let evil = &problems[0];
    assert_eq!(evil.file, file.display().to_string());
    assert_eq!(evil.field.as_deref(), Some("presets.EVIL.files[0].path"));
    assert_eq!(evil.line, Some(7));
    assert!(evil.message.contains(".."), "{evil}");

    let big = &problems[1];
    assert_eq!(big.field.as_deref(), Some("presets.BIG.download_size"));
    assert_eq!(big.line, Some(14));

    let broken = &problems[2];
    assert_eq!(broken.file, registry_file.display().to_string());
    assert_eq!(broken.field.as_deref(), Some("files[0].size"));
    assert_eq!(broken.line, Some(9));

    assert!(
        catalog.get("EVIL").is_none()
            && catalog.get("big").is_none()
            && catalog.get("broken").is_none()
    );
    let fine = catalog.get("FINE").unwrap();
    assert_eq!(
        (fine.id.as_str(), fine.layer),
        ("fine", CatalogLayer::Workspace)
    );
    assert_eq!(fine.download_bytes, Some(800_000));
    assert_eq!(catalog.presets.len(), 62);
}

#[test]
fn catalog_workspace_overrides_replace_builtin_presets_and_add_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let src = sources(dir.path());
    // A small docker-format file: one override by docker id, one new preset.
    write(
        &src.workspace_config.join("presets.yaml"),
        "\
presets:
  FLUX_DEV_BASIC:
    name: My Flux
    category: Image Generation
    type: image
    files:
    - path: diffusion_models/my-flux.safetensors
      url: https://example.com/my-flux.safetensors
      size: 11GB
  MY_NEW_PRESET:
    name: Brand new
    category: Image Generation
    type: image
    files:
    - path: checkpoints/new.safetensors
      url: https://huggingface.co/me/new/blob/main/new.safetensors
",
    );
    // A registry-format override and a new one.
    write(
        &src.workspace_config.join("presets/image/z-image/preset.yaml"),
        "id: z-image\nversion: 2.0.0\nname: Z-Image (mine)\ncategory: Image Generation\ntype: image\nfiles:\n- path: diffusion_models/z.safetensors\n  url: https://example.com/z.safetensors\n  size: 1GB\nrequirements:\n  vram_gb: 12\n",
    );
    write(
        &src.workspace_config.join("presets/extra/preset.yaml"),
        "id: my-extra\nversion: 0.1.0\nname: Extra\ncategory: Audio Generation\ntype: audio\nfiles:\n- path: audio_encoders/e.bin\n  url: https://example.com/e.bin\n",
    );
    let catalog = Catalog::load(&src, None);
    assert!(catalog.problems.is_empty(), "{:#?}", catalog.problems);
    assert_eq!(catalog.presets.len(), 63);

    let flux = catalog.get("flux-dev-basic").unwrap();
    assert_eq!(
        (flux.name.as_str(), flux.layer),
        ("My Flux", CatalogLayer::Workspace)
    );
    assert_eq!(flux.files.len(), 1);
    assert_eq!(flux.version, None, "the docker format has no version");
    assert_eq!(catalog.get("FLUX_DEV_BASIC").unwrap().name, "My Flux");

    let new = catalog.get("MY_NEW_PRESET").unwrap();
    assert_eq!(new.id, "my-new-preset");
    assert_eq!(
        new.files[0].url,
        "https://huggingface.co/me/new/resolve/main/new.safetensors"
    );
    assert_eq!(new.download_bytes, None, "no sizes anywhere");

    let z = catalog.get("z-image").unwrap();
    assert_eq!(
        (z.name.as_str(), z.version.as_deref(), z.vram_gb),
        ("Z-Image (mine)", Some("2.0.0"), Some(12.0))
    );
    assert_eq!(
        catalog.get("my-extra").unwrap().layer,
        CatalogLayer::Workspace
    );
    // Untouched presets keep their built-in definition.
    assert_eq!(
        catalog.get("ltx-video-t2v").unwrap().layer,
        CatalogLayer::Builtin
    );
    let ws = catalog
        .stats
        .iter()
        .find(|s| s.layer == CatalogLayer::Workspace)
        .unwrap();
    assert_eq!(
        (ws.registry_presets, ws.docker_presets, ws.merged),
        (2, 2, 0)
    );
}

/// What the fake registry answers.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Json,
    DockerYaml,
    Down,
    Garbage,
}

async fn registry(State(mode): State<Arc<Mutex<Mode>>>) -> axum::response::Response {
    let mode = *mode.lock().unwrap();
    match mode {
        Mode::Json => ([(header::CONTENT_TYPE, "application/json")], REMOTE_JSON).into_response(),
        Mode::DockerYaml => {
            ([(header::CONTENT_TYPE, "application/yaml")], REMOTE_YAML).into_response()
        }
        Mode::Down => (StatusCode::BAD_GATEWAY, "upstream down").into_response(),
        Mode::Garbage => (
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>Sign in</body></html>",
        )
            .into_response(),
    }
}

const REMOTE_JSON: &str = r#"{
  "version": "1.0.0",
  "presets": {
    "flux-dev-basic": {"version": "1.3.0", "update_available": true},
    "remote-only": {
      "version": "1.0.0",
      "vram_gb": 8,
      "preset": {
        "id": "remote-only", "version": "1.0.0", "name": "Remote only",
        "category": "Image Generation", "type": "image", "download_size": "2GB",
        "files": [{"path": "checkpoints/r.safetensors", "url": "https://huggingface.co/o/r/resolve/main/r.safetensors", "size": "2GB"}]
      }
    },
    "bad-remote": {"preset": {"name": "No type", "category": "Image Generation", "version": "1.0.0",
      "files": [{"path": "x.bin", "url": "https://example.com/x"}]}}
  }
}"#;

const REMOTE_YAML: &str = "\
presets:
  REMOTE_DOCKER:
    name: Remote docker
    category: Video Generation
    type: video
    files:
    - path: checkpoints/rd.safetensors
      url: https://example.com/rd.safetensors
      size: 1GB
";

#[tokio::test]
async fn catalog_remote_sync_caches_good_documents_and_keeps_them_on_failure() {
    let mode = Arc::new(Mutex::new(Mode::Down));
    let app = Router::new()
        .route("/registry", get(registry))
        .with_state(mode.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let src = sources(dir.path());
    let remote = RemoteRegistry::new(format!("http://{addr}/registry"), &src);
    let client = reqwest::Client::new();
    let mut state = SyncState::default();

    // Down before any success: no cache, reported once.
    let first = remote.sync(&client).await;
    let err = first.as_ref().unwrap_err();
    assert!(
        err.message.contains("502") && err.message.contains("no cached copy"),
        "{err}"
    );
    assert!(state.should_log(&first));
    assert!(
        !state.should_log(&remote.sync(&client).await),
        "a repeated failure is not logged again"
    );
    assert!(!src.remote_cache.exists());
    let catalog = Catalog::load(&src, Some(&remote));
    assert_eq!(catalog.presets.len(), 61);

    // Success: cached, and the remote layer applies.
    *mode.lock().unwrap() = Mode::Json;
    let ok = remote.sync(&client).await;
    let report = ok.as_ref().unwrap();
    assert_eq!(
        (
            report.format,
            report.presets,
            report.entries,
            report.problems
        ),
        (RemoteFormat::RegistryJson, 1, 2, 1)
    );
    assert!(!state.should_log(&ok));
    assert_eq!(
        std::fs::read_to_string(&src.remote_cache).unwrap(),
        REMOTE_JSON
    );
    let catalog = Catalog::load(&src, Some(&remote));
    let remote_only = catalog.get("remote-only").unwrap();
    assert_eq!(
        (remote_only.layer, remote_only.vram_gb),
        (CatalogLayer::Remote, Some(8.0)),
        "requirements from the entry"
    );
    assert_eq!(catalog.registry_version("flux-dev-basic"), Some("1.3.0"));
    assert!(catalog.update_available("FLUX_DEV_BASIC", "1.0.0"));
    assert_eq!(
        catalog.problems.len(),
        1,
        "the bad embedded preset: {:#?}",
        catalog.problems
    );
    assert_eq!(
        catalog.problems[0].field.as_deref(),
        Some("presets.bad-remote.preset.type")
    );
    // Without a configured registry the cache is not used.
    assert!(Catalog::load(&src, None).get("remote-only").is_none());

    // Down again: the cached copy stays, the error says so, logged once.
    *mode.lock().unwrap() = Mode::Down;
    let failed = remote.sync(&client).await;
    let err = failed.as_ref().unwrap_err();
    assert!(
        err.message.contains("using the cached copy from 20"),
        "{err}"
    );
    assert!(err.message.contains(" UTC"), "{err}");
    assert!(
        state.should_log(&failed),
        "first failure after a success is logged"
    );
    assert!(!state.should_log(&remote.sync(&client).await));
    assert_eq!(
        std::fs::read_to_string(&src.remote_cache).unwrap(),
        REMOTE_JSON
    );

    // A garbage body (a login page) is rejected; the cache is untouched and no temp file stays.
    *mode.lock().unwrap() = Mode::Garbage;
    let garbage = remote.sync(&client).await;
    let err = garbage.unwrap_err();
    assert!(
        err.message.contains("not usable") && err.message.contains("cached copy"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&src.remote_cache).unwrap(),
        REMOTE_JSON
    );
    let leftovers: Vec<_> = std::fs::read_dir(src.remote_cache.parent().unwrap())
        .unwrap()
        .collect();
    assert_eq!(leftovers.len(), 1);
    assert!(Catalog::load(&src, Some(&remote))
        .get("remote-only")
        .is_some());

    // A docker-format presets.yaml is accepted too.
    *mode.lock().unwrap() = Mode::DockerYaml;
    let report = remote.sync(&client).await.unwrap();
    assert_eq!(
        (report.format, report.presets),
        (RemoteFormat::DockerYaml, 1)
    );
    let catalog = Catalog::load(&src, Some(&remote));
    assert!(catalog.problems.is_empty(), "{:#?}", catalog.problems);
    assert_eq!(
        catalog.get("REMOTE_DOCKER").unwrap().layer,
        CatalogLayer::Remote
    );
    assert!(
        catalog.get("remote-only").is_none(),
        "the new document replaced the old one"
    );
}

/// A registry that cannot be synced is in the recovery list as the pod's (administrators'),
/// with Retry; a user sees none of it. Retry while it is still down fails and keeps it open;
/// once the registry answers, Retry syncs it and the failure is resolved.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_registry_sync_waits_in_recovery_until_a_retry_syncs() {
    use engine::model::{FailureSource, FailureState, RecoveryAction};
    let mode = Arc::new(Mutex::new(Mode::Down));
    let app = Router::new()
        .route("/registry", get(registry))
        .with_state(mode.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let config = engine::config::Config {
        preset_registry_url: Some(format!("http://{addr}/registry")),
        node_map_url: None,
        ..crate::common::test_config(dir.path())
    };
    let (engine, _) = engine::Engine::start(config).await.unwrap();
    engine.spawn_background_jobs();
    let admin = engine.auth().open_caller();
    let bob = crate::common::bob();

    engine.catalog().sync().await.unwrap();
    let failure = loop {
        let list = engine.recovery().list(&admin).await.unwrap();
        if let Some(f) = list.open.iter().find(|f| f.source == FailureSource::Sync) {
            break f.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(failure.subject, "preset registry sync");
    assert!(failure.detail.contains("502"), "{failure:?}");
    assert!(failure.detail.contains("last good copy"), "{failure:?}");
    assert_eq!(failure.actions.first(), Some(&RecoveryAction::Retry));
    assert!(engine.recovery().list(&bob).await.unwrap().open.is_empty());
    assert!(engine
        .recovery()
        .act(&bob, failure.id, RecoveryAction::Retry, None)
        .await
        .is_err());

    let still_down = engine
        .recovery()
        .act(&admin, failure.id, RecoveryAction::Retry, None)
        .await
        .unwrap_err();
    assert!(
        still_down.to_string().contains("sync failed"),
        "{still_down}"
    );

    *mode.lock().unwrap() = Mode::Json;
    let retried = engine
        .recovery()
        .act(&admin, failure.id, RecoveryAction::Retry, None)
        .await
        .unwrap();
    assert_eq!(retried.state, FailureState::Resolved);
    assert!(engine
        .catalog()
        .current()
        .presets
        .iter()
        .any(|(id, _)| id.as_str() == "remote-only"));
    let list = engine.recovery().list(&admin).await.unwrap();
    assert!(
        list.open.iter().all(|f| f.source != FailureSource::Sync),
        "{list:#?}"
    );
}
