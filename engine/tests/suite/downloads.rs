//! The download manager through the engine: presets from a workspace catalog served by a
//! local HTTP server with real Range/ETag semantics and injected faults, a real SQLite file
//! and real part files on disk.

use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fileserver::{Fault, FileServer, FileSpec};
use common::{closed_port_url, test_config};
use engine::config::Config;
use engine::download::manager::DownloadError;
use engine::model::{ActivityKind, Event, FileState, InstallState, PresetView, SettingsPatch};
use engine::{Engine, EngineError};

const HF_TOKEN: &str = "hf_abcdefghijklmnopqrstuvwxyz1234";

/// Starts the engine and its download scheduler (not the other background jobs).
pub(crate) async fn start(config: Config) -> Arc<Engine> {
    let engine = match Engine::start(config).await {
        Ok((engine, _)) => engine,
        Err(e) => panic!("Engine::start failed: {e}"),
    };
    tokio::spawn(Arc::clone(engine.downloads()).run());
    engine
}

/// A new engine on the workspace, with its downloads running, once the stopped one has let go
/// of the workspace lock (its last handle may still be held by a finishing task).
async fn start_again(workspace: &Path) -> Arc<Engine> {
    let started = Instant::now();
    let engine = loop {
        match Engine::start(test_config(workspace)).await {
            Ok((engine, _)) => break engine,
            Err(EngineError::Workspace(_)) if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("restart failed: {e}"),
        }
    };
    tokio::spawn(Arc::clone(engine.downloads()).run());
    engine
}

/// One file of a workspace preset: `(model path, url, declared size)`.
pub(crate) struct TestFile<'a> {
    pub path: &'a str,
    pub url: String,
    pub size: &'a str,
    pub sha256: Option<&'a str>,
    /// Other URLs of the same file (`mirrors:`).
    pub mirrors: Vec<String>,
}

/// Writes `config/presets/<id>/preset.yaml` files (the registry format, which carries
/// checksums) into the workspace.
pub(crate) fn write_preset(root: &Path, id: &str, files: &[TestFile]) {
    let dir = root.join("config/presets/test").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let mut yaml = format!(
        "id: {id}\nversion: 1.0.0\nname: Test {id}\ncategory: Image Generation\ntype: image\n\
         description: a test preset\nfiles:\n"
    );
    for f in files {
        yaml.push_str(&format!(
            "- path: {}\n  url: {}\n  size: {}\n  optional: false\n",
            f.path, f.url, f.size
        ));
        if let Some(sum) = f.sha256 {
            yaml.push_str(&format!(
                "  checksum:\n    algorithm: sha256\n    value: {sum}\n"
            ));
        }
        if !f.mirrors.is_empty() {
            yaml.push_str("  mirrors:\n");
            for mirror in &f.mirrors {
                yaml.push_str(&format!("  - {mirror}\n"));
            }
        }
    }
    std::fs::write(dir.join("preset.yaml"), yaml).unwrap();
}

pub(crate) fn file<'a>(
    server: &FileServer,
    spec: &FileSpec,
    path: &'a str,
    size: &'a str,
) -> TestFile<'a> {
    TestFile {
        path,
        url: server.url(&spec.path),
        size,
        sha256: Some(Box::leak(spec.sha256.clone().into_boxed_str())),
        mirrors: Vec::new(),
    }
}

pub(crate) async fn view(engine: &Engine, id: &str) -> PresetView {
    engine
        .downloads()
        .preset_view(id)
        .await
        .expect("preset view")
}

/// Polls the preset until `done` holds, or panics with its last state after `limit`.
pub(crate) async fn wait_for(
    engine: &Engine,
    id: &str,
    limit: Duration,
    done: impl Fn(&PresetView) -> bool,
) -> PresetView {
    let started = Instant::now();
    loop {
        let v = view(engine, id).await;
        if done(&v) {
            return v;
        }
        if started.elapsed() > limit {
            panic!("preset {id} did not reach the expected state in {limit:?}: {v:#?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub(crate) fn installed(v: &PresetView) -> bool {
    v.state == InstallState::Installed
}

pub(crate) fn sha256_of(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn part_of(path: &Path) -> std::path::PathBuf {
    engine::download::fetch::part_path(path)
}

/// Bytes of the part file (0 when absent).
fn part_len(path: &Path) -> u64 {
    std::fs::metadata(part_of(path))
        .map(|m| m.len())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_preset_installs_with_verified_files_history_activity_and_events() {
    let server = FileServer::start().await;
    let small = server.add_file("/files/vae.safetensors", 300_000);
    let big = server.add_file("/files/model.safetensors", 2_000_000);
    let dir = tempfile::tempdir().unwrap();
    write_preset(
        dir.path(),
        "pair",
        &[
            file(&server, &big, "checkpoints/model.safetensors", "2MB"),
            file(&server, &small, "vae/vae.safetensors", "300KB"),
        ],
    );
    // One file at a time, so the order is the queue's.
    let config = Config {
        concurrent_downloads: 1,
        ..test_config(dir.path())
    };
    let engine = start(config).await;
    let mut events = engine.events().subscribe();

    let queued = engine.downloads().install_preset("pair").await.unwrap();
    assert!(
        matches!(
            queued.state,
            InstallState::Queued | InstallState::Downloading
        ),
        "{queued:?}"
    );
    let done = wait_for(&engine, "pair", Duration::from_secs(20), installed).await;
    assert!(done.files.iter().all(|f| f.state == FileState::Installed));
    assert_eq!(done.remaining_bytes, 0);

    let models = engine.layout().models();
    assert_eq!(
        sha256_of(&models.join("checkpoints/model.safetensors")),
        big.sha256
    );
    assert_eq!(sha256_of(&models.join("vae/vae.safetensors")), small.sha256);
    assert!(!part_of(&models.join("checkpoints/model.safetensors")).exists());

    // Small files first: the VAE was requested before the checkpoint.
    let gets: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.is_get())
        .map(|r| r.path)
        .collect();
    assert_eq!(
        gets.first().map(String::as_str),
        Some("/files/vae.safetensors"),
        "{gets:?}"
    );

    // The history row is written just after the preset is marked installed.
    let deadline = Instant::now() + Duration::from_secs(5);
    let history = loop {
        let history = engine.store().history(10).await.unwrap();
        if history[0].1 != "running" || Instant::now() > deadline {
            break history;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(history[0].0, "pair");
    assert_eq!(history[0].1, "installed");
    assert!(history[0].3.is_some(), "finished time recorded");

    // So is the activity line, after the history row.
    let activity = loop {
        let activity = engine
            .activity()
            .page(
                &engine.auth().open_caller(),
                Some(ActivityKind::Download),
                1,
                10,
            )
            .await
            .unwrap();
        let done = activity
            .entries
            .iter()
            .any(|e| e.message.starts_with("Installed Test pair"));
        if done || Instant::now() > deadline {
            break activity;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let messages: Vec<&str> = activity
        .entries
        .iter()
        .map(|e| e.message.as_str())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Started installing Test pair")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Installed Test pair")),
        "{messages:?}"
    );

    // The live stream carried per-file progress and the preset's final state.
    let mut saw_file_installed = false;
    let mut saw_preset_installed = false;
    while let Ok(event) = events.try_recv() {
        match event {
            Event::Download(p) if p.state == FileState::Installed => saw_file_installed = true,
            Event::Preset(p) if p.preset_id == "pair" && p.state == InstallState::Installed => {
                assert_eq!(p.figures.bytes_done, 2_300_000);
                saw_preset_installed = true;
            }
            _ => {}
        }
    }
    assert!(saw_file_installed && saw_preset_installed);

    // The models listing shows the files as verified, with the preset that provides them.
    let folders = engine.downloads().model_folders().await.unwrap();
    let checkpoint = folders
        .iter()
        .find(|f| f.name == "checkpoints")
        .and_then(|f| {
            f.files
                .iter()
                .find(|m| m.path == "checkpoints/model.safetensors")
        })
        .expect("listed");
    assert!(checkpoint.verified);
    assert_eq!(checkpoint.preset_id.as_deref(), Some("pair"));

    // Installing again is a no-op that says installed.
    let again = engine.downloads().install_preset("pair").await.unwrap();
    assert_eq!(again.state, InstallState::Installed);
}

#[tokio::test]
async fn downloads_resume_after_the_engine_is_dropped_and_started_again() {
    let server = FileServer::start().await;
    let size = 6_000_000;
    let spec = server.add_file("/files/slow.safetensors", size);
    // ~2.5 MB/s: slow enough to stop in the middle.
    server.set_fault(
        &spec.path,
        Fault::Trickle {
            chunk: 32 * 1024,
            interval: Duration::from_millis(12),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    write_preset(
        dir.path(),
        "slow",
        &[file(&server, &spec, "checkpoints/slow.safetensors", "6MB")],
    );
    let dest = dir.path().join("models/checkpoints/slow.safetensors");

    let engine = start(test_config(dir.path())).await;
    engine.downloads().install_preset("slow").await.unwrap();
    let started = Instant::now();
    while part_len(&dest) < 1_000_000 {
        assert!(started.elapsed() < Duration::from_secs(20), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    engine.shutdown().await;
    drop(engine);
    let kept = part_len(&dest);
    assert!(kept >= 1_000_000 && kept < size, "part kept at {kept}");
    assert!(!dest.exists(), "a part is never the final file");

    server.clear_faults(&spec.path);
    server.clear_requests();
    server.reset_bytes_sent(&spec.path);
    // The lock is released with the engine; wait for the last Arc to go.
    let engine = start_again(dir.path()).await;
    // Nobody asked again: the interrupted task resumes by itself.
    wait_for(&engine, "slow", Duration::from_secs(20), installed).await;
    assert_eq!(sha256_of(&dest), spec.sha256);

    let gets = server.gets(&spec.path);
    let first = gets.first().expect("the restart requested the file");
    assert!(
        first.range_start().unwrap_or(0) >= kept.min(1_000_000),
        "resumed with Range from the part: {first:?}"
    );
    assert!(
        first.if_range.is_some(),
        "If-Range guards the resume: {first:?}"
    );
    assert!(
        server.bytes_sent(&spec.path) < size,
        "only the missing bytes travelled again"
    );
}

#[tokio::test]
async fn the_disk_preflight_refuses_a_preset_that_does_not_fit() {
    let server = FileServer::start().await;
    let spec = server.add_file("/files/huge.safetensors", 1_000);
    let dir = tempfile::tempdir().unwrap();
    write_preset(
        dir.path(),
        "huge",
        &[TestFile {
            path: "diffusion_models/huge.safetensors",
            url: server.url(&spec.path),
            size: "40GB",
            sha256: None,
            mirrors: Vec::new(),
        }],
    );
    let config = Config {
        // A 20 GB volume (the RUNPOD_VOLUME_GB quota) cannot take a 40 GB preset.
        volume_quota_bytes: Some(20_000_000_000),
        ..test_config(dir.path())
    };
    let engine = start(config).await;
    let err = engine.downloads().install_preset("huge").await.unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, DownloadError::NotEnoughSpace { .. }),
        "{err:?}"
    );
    assert!(message.contains("needs 40.0 GB"), "{message}");
    assert!(message.contains("free"), "{message}");
    assert!(
        engine.store().tasks().await.unwrap().is_empty(),
        "nothing queued"
    );
    // Only this file's path counts: an engine of a test running beside this one may still be
    // retrying a server of its own whose port the OS gave to this one.
    assert!(
        server.requests_for(&spec.path).is_empty(),
        "nothing downloaded: {:?}",
        server.requests()
    );
    assert_eq!(
        view(&engine, "huge").await.state,
        InstallState::NotInstalled
    );
}

#[tokio::test]
async fn pause_resume_and_cancel_per_preset_and_per_file() {
    let server = FileServer::start().await;
    let spec = server.add_file("/files/a.safetensors", 4_000_000);
    server.set_fault(
        &spec.path,
        Fault::Trickle {
            chunk: 32 * 1024,
            interval: Duration::from_millis(10),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    write_preset(
        dir.path(),
        "paced",
        &[file(&server, &spec, "loras/a.safetensors", "4MB")],
    );
    let dest = dir.path().join("models/loras/a.safetensors");
    let engine = start(test_config(dir.path())).await;

    engine.downloads().install_preset("paced").await.unwrap();
    wait_for(&engine, "paced", Duration::from_secs(10), |v| {
        v.files[0].figures.bytes_done > 200_000
    })
    .await;
    engine.downloads().pause_preset("paced").await.unwrap();
    let paused = wait_for(&engine, "paced", Duration::from_secs(5), |v| {
        v.state == InstallState::Paused
    })
    .await;
    let at_pause = part_len(&dest);
    assert!(at_pause > 0, "the part is kept while paused");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(part_len(&dest), at_pause, "nothing is written while paused");
    let task_id = paused.files[0].task_id.expect("a paused task");

    // Per file: resume, then cancel keeping the part.
    engine.downloads().resume_task(task_id).await.unwrap();
    wait_for(&engine, "paced", Duration::from_secs(5), |v| {
        v.state == InstallState::Downloading
    })
    .await;
    engine
        .downloads()
        .cancel_task(task_id, false)
        .await
        .unwrap();
    let cancelled = view(&engine, "paced").await;
    assert_eq!(cancelled.state, InstallState::NotInstalled);
    assert!(part_len(&dest) >= at_pause, "cancel kept the part");

    // Installing again resumes from the kept part.
    server.clear_faults(&spec.path);
    server.clear_requests();
    engine.downloads().install_preset("paced").await.unwrap();
    wait_for(&engine, "paced", Duration::from_secs(10), installed).await;
    assert_eq!(sha256_of(&dest), spec.sha256);
    assert!(server.gets(&spec.path)[0].range_start().unwrap_or(0) > 0);

    // Per preset cancel deleting the parts.
    let other = server.add_file("/files/b.safetensors", 4_000_000);
    server.set_fault(
        &other.path,
        Fault::Trickle {
            chunk: 16 * 1024,
            interval: Duration::from_millis(10),
        },
    );
    write_preset(
        dir.path(),
        "second",
        &[file(&server, &other, "loras/b.safetensors", "4MB")],
    );
    engine.catalog().sync().await.unwrap();
    engine.downloads().install_preset("second").await.unwrap();
    let b = dir.path().join("models/loras/b.safetensors");
    wait_for(&engine, "second", Duration::from_secs(10), |v| {
        v.files[0].figures.bytes_done > 0
    })
    .await;
    engine
        .downloads()
        .cancel_preset("second", true)
        .await
        .unwrap();
    assert!(!part_of(&b).exists(), "the part was deleted");
    assert!(!b.exists());
    assert_eq!(
        view(&engine, "second").await.state,
        InstallState::NotInstalled
    );
    assert!(engine.store().tasks().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_shared_file_downloads_once_and_stays_while_another_preset_needs_it() {
    let server = FileServer::start().await;
    let shared = server.add_file("/files/shared-encoder.safetensors", 500_000);
    let only_a = server.add_file("/files/a.safetensors", 200_000);
    let only_b = server.add_file("/files/b.safetensors", 200_000);
    let dir = tempfile::tempdir().unwrap();
    write_preset(
        dir.path(),
        "alpha",
        &[
            file(
                &server,
                &shared,
                "text_encoders/shared.safetensors",
                "500KB",
            ),
            file(&server, &only_a, "checkpoints/a.safetensors", "200KB"),
        ],
    );
    write_preset(
        dir.path(),
        "beta",
        &[
            file(
                &server,
                &shared,
                "text_encoders/shared.safetensors",
                "500KB",
            ),
            file(&server, &only_b, "checkpoints/b.safetensors", "200KB"),
        ],
    );
    let engine = start(test_config(dir.path())).await;
    engine.downloads().install_preset("alpha").await.unwrap();
    engine.downloads().install_preset("beta").await.unwrap();
    wait_for(&engine, "alpha", Duration::from_secs(20), installed).await;
    wait_for(&engine, "beta", Duration::from_secs(20), installed).await;
    assert_eq!(
        server.gets(&shared.path).len(),
        1,
        "the shared file was downloaded once"
    );

    let models = engine.layout().models();
    let report = engine.downloads().remove_preset("alpha").await.unwrap();
    assert_eq!(
        report.removed,
        vec!["checkpoints/a.safetensors".to_string()]
    );
    assert_eq!(
        report.kept_shared,
        vec!["text_encoders/shared.safetensors".to_string()]
    );
    assert!(models.join("text_encoders/shared.safetensors").exists());
    assert!(!models.join("checkpoints/a.safetensors").exists());
    assert_eq!(view(&engine, "beta").await.state, InstallState::Installed);
    assert_eq!(view(&engine, "alpha").await.state, InstallState::Partial);

    let report = engine.downloads().remove_preset("beta").await.unwrap();
    assert_eq!(report.removed.len(), 2, "{report:?}");
    assert!(!models.join("text_encoders/shared.safetensors").exists());
    assert!(
        models.join("text_encoders").is_dir(),
        "ComfyUI's folders stay"
    );
    let history = engine.store().history(20).await.unwrap();
    assert!(history.iter().any(|h| h.0 == "beta" && h.1 == "removed"));
}

#[tokio::test]
async fn a_checksum_mismatch_fails_the_preset_and_leaves_no_file() {
    let server = FileServer::start().await;
    let spec = server.add_file("/files/bad.safetensors", 100_000);
    let dir = tempfile::tempdir().unwrap();
    write_preset(
        dir.path(),
        "bad",
        &[TestFile {
            path: "vae/bad.safetensors",
            url: server.url(&spec.path),
            size: "100KB",
            sha256: Some("0000000000000000000000000000000000000000000000000000000000000000"),
            mirrors: Vec::new(),
        }],
    );
    let engine = start(test_config(dir.path())).await;
    engine.downloads().install_preset("bad").await.unwrap();
    let failed = wait_for(&engine, "bad", Duration::from_secs(20), |v| {
        v.state == InstallState::Failed
    })
    .await;
    let error = failed.error.expect("the failure is shown");
    assert!(error.contains("checksum mismatch"), "{error}");
    let dest = dir.path().join("models/vae/bad.safetensors");
    assert!(!dest.exists() && !part_of(&dest).exists());
    assert_eq!(
        server.gets(&spec.path).len(),
        2,
        "downloaded once more, then gave up"
    );

    let errors = engine
        .activity()
        .page(
            &engine.auth().open_caller(),
            Some(ActivityKind::Error),
            1,
            10,
        )
        .await
        .unwrap();
    assert!(
        errors.entries[0]
            .message
            .contains("Installing Test bad failed"),
        "{errors:?}"
    );
    let history = engine.store().history(5).await.unwrap();
    assert_eq!(history[0].1, "failed");
}

#[tokio::test]
async fn a_gated_repository_fails_at_once_with_what_to_do() {
    let server = FileServer::start().await;
    let spec = server.add_file("/org/gated/resolve/main/model.safetensors", 1_000);
    server.set_fault(&spec.path, Fault::Gated);
    let dir = tempfile::tempdir().unwrap();
    write_preset(
        dir.path(),
        "gated",
        &[TestFile {
            path: "checkpoints/gated.safetensors",
            url: server.url(&spec.path),
            size: "1KB",
            sha256: None,
            mirrors: Vec::new(),
        }],
    );
    let engine = start(test_config(dir.path())).await;
    engine.downloads().install_preset("gated").await.unwrap();
    let failed = wait_for(&engine, "gated", Duration::from_secs(10), |v| {
        v.state == InstallState::Failed
    })
    .await;
    let error = failed.error.unwrap();
    assert!(error.contains("accept the licence"), "{error}");
    assert!(error.contains("Settings"), "{error}");
    let asked = server.requests_for(&spec.path);
    assert!(
        (1..=2).contains(&asked.len()),
        "one HEAD and at most one GET, no retries for a gated repo: {asked:?}"
    );
}

#[tokio::test]
async fn the_hf_token_goes_to_the_hf_host_only_never_to_the_cdn() {
    let server = FileServer::start().await;
    let spec = server.add_hf_file("/org/repo/resolve/main/model.safetensors", 300_000);
    let dir = tempfile::tempdir().unwrap();
    write_preset(
        dir.path(),
        "hf",
        &[TestFile {
            path: "checkpoints/hf.safetensors",
            url: server.url("/org/repo/resolve/main/model.safetensors"),
            size: "300KB",
            sha256: None,
            mirrors: Vec::new(),
        }],
    );
    let config = Config {
        // The HF API host (a stand-in here) is one of the token's hosts.
        hf_base_url: server.url(""),
        ..test_config(dir.path())
    };
    let engine = start(config).await;
    engine
        .settings()
        .update(SettingsPatch {
            hf_token: Some(HF_TOKEN.to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    engine.downloads().install_preset("hf").await.unwrap();
    wait_for(&engine, "hf", Duration::from_secs(20), installed).await;
    assert_eq!(
        sha256_of(&dir.path().join("models/checkpoints/hf.safetensors")),
        spec.sha256
    );

    let (to_hf, to_cdn) = server.requests_by_host();
    assert!(
        !to_hf.is_empty() && !to_cdn.is_empty(),
        "{to_hf:?} {to_cdn:?}"
    );
    assert!(
        to_hf
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {HF_TOKEN}")[..])),
        "the HF host got the token: {to_hf:?}"
    );
    assert!(
        to_cdn.iter().all(|r| !r.has_auth()),
        "the CDN never saw it: {to_cdn:?}"
    );
    let installed = engine.store().installed_files().await.unwrap();
    assert_eq!(installed[0].verified_by, "Hugging Face sha256");
}

#[tokio::test]
async fn start_up_presets_install_by_either_id_format() {
    let server = FileServer::start().await;
    let spec = server.add_file("/files/boot.safetensors", 100_000);
    let dir = tempfile::tempdir().unwrap();
    write_preset(
        dir.path(),
        "boot-preset",
        &[file(
            &server,
            &spec,
            "upscale_models/boot.safetensors",
            "100KB",
        )],
    );
    let config = Config {
        // The comfyui-docker spelling of the id.
        startup_presets: vec!["BOOT_PRESET".into(), "no-such-preset".into()],
        ..test_config(dir.path())
    };
    let (engine, _) = Engine::start(config).await.unwrap();
    engine.spawn_background_jobs();
    wait_for(&engine, "boot-preset", Duration::from_secs(20), installed).await;
    let errors = engine
        .activity()
        .page(
            &engine.auth().open_caller(),
            Some(ActivityKind::Error),
            1,
            10,
        )
        .await
        .unwrap();
    assert!(
        errors
            .entries
            .iter()
            .any(|e| e.message.contains("no-such-preset") && e.message.contains("unknown preset")),
        "{errors:?}"
    );
}

#[tokio::test]
async fn part_files_are_never_listed_as_models_and_paths_cannot_escape() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(test_config(dir.path())).await;
    let models = engine.layout().models();
    std::fs::write(models.join("loras/done.safetensors"), b"x").unwrap();
    std::fs::write(models.join("loras/half.safetensors.part"), b"xx").unwrap();
    let folders = engine.downloads().model_folders().await.unwrap();
    let paths: Vec<&str> = folders
        .iter()
        .flat_map(|f| f.files.iter().map(|m| m.path.as_str()))
        .collect();
    assert_eq!(paths, vec!["loras/done.safetensors"]);
    assert!(!folders[0].files[0].verified, "not downloaded by us");

    for bad in ["../escape.bin", "/etc/passwd", "loras/../../x", ""] {
        let err = engine
            .downloads()
            .enqueue_file(engine::download::queue::NewTask {
                mirrors: Vec::new(),
                url: "http://127.0.0.1:9/x".into(),
                path: bad.into(),
                expected_size: None,
                checksum: None,
                priority: 0,
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, DownloadError::UnsafePath(_)),
            "{bad}: {err:?}"
        );
    }
    // A symlink inside the models folder that points outside is refused too.
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), models.join("loras/escape")).unwrap();
    let err = engine
        .downloads()
        .enqueue_file(engine::download::queue::NewTask {
            mirrors: Vec::new(),
            url: "http://127.0.0.1:9/x".into(),
            path: "loras/escape/evil.bin".into(),
            expected_size: None,
            checksum: None,
            priority: 0,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, DownloadError::UnsafePath(_)), "{err:?}");
}

#[tokio::test]
async fn a_failing_registry_sync_keeps_the_catalog_and_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        preset_registry_url: Some(format!("{}/registry.json", closed_port_url())),
        ..test_config(dir.path())
    };
    let engine = start(config).await;
    for _ in 0..3 {
        let summary = engine.catalog().sync().await.unwrap();
        assert!(summary.starts_with("61 presets"), "{summary}");
        assert!(summary.contains("sync failed"), "{summary}");
    }
    let errors = engine
        .activity()
        .page(
            &engine.auth().open_caller(),
            Some(ActivityKind::Error),
            1,
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        errors.total, 1,
        "reported once, not on every sync: {errors:?}"
    );
    assert_eq!(
        engine.catalog().current().presets.len(),
        61,
        "the built-in catalog stays"
    );
}

/// A preset half-installed when one of its files is gone: the failure offers Roll back, which
/// removes the file it did install (the models folder as before) and settles the failure; a
/// second time there is nothing left to roll back, and it says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_half_installed_preset_is_rolled_back_from_its_failure() {
    use engine::error::Classify;
    use engine::model::{ErrorKind, FailureState, RecoveryAction};
    let server = FileServer::start().await;
    let here = server.add_file("/files/here.safetensors", 3_000);
    let gone = server.add_file("/files/gone.safetensors", 1_000);
    server.set_fault(&gone.path, Fault::status(404));
    let dir = tempfile::tempdir().unwrap();
    write_preset(
        dir.path(),
        "half",
        &[
            TestFile {
                path: "loras/here.safetensors",
                url: server.url(&here.path),
                size: "3KB",
                sha256: Some(&here.sha256),
                mirrors: Vec::new(),
            },
            TestFile {
                path: "loras/gone.safetensors",
                url: server.url(&gone.path),
                size: "1KB",
                sha256: None,
                mirrors: Vec::new(),
            },
        ],
    );
    let models = dir.path().join("models");
    std::fs::create_dir_all(models.join("loras")).unwrap();
    std::fs::write(models.join("loras/mine.safetensors"), b"mine").unwrap();
    let before = common::tree::files_with_sha256(&models);
    let (engine, _) = Engine::start(test_config(dir.path())).await.unwrap();
    engine.spawn_background_jobs();
    let admin = engine.auth().open_caller();
    engine.downloads().install_preset("half").await.unwrap();
    let list = common::recovery_until(&engine, &admin, "the half preset", |l| {
        l.open.iter().any(|f| f.subject == "preset half")
    })
    .await;
    let failure = list
        .open
        .iter()
        .find(|f| f.subject == "preset half")
        .unwrap();
    assert!(
        failure.actions.contains(&RecoveryAction::RollBack),
        "{failure:?}"
    );
    assert!(models.join("loras/here.safetensors").is_file());

    let rolled = engine
        .recovery()
        .act(&admin, failure.id, RecoveryAction::RollBack, None)
        .await
        .unwrap();
    assert_eq!(rolled.state, FailureState::Dismissed);
    assert_eq!(common::tree::files_with_sha256(&models), before);
    assert_eq!(
        view(&engine, "half").await.state,
        InstallState::NotInstalled
    );
    let points = engine.recovery().restore_points(&admin).await.unwrap();
    assert_eq!(points[0].note.as_deref(), Some("removed 1 file"));
    let again = engine
        .recovery()
        .act(&admin, failure.id, RecoveryAction::RollBack, None)
        .await
        .unwrap_err();
    assert_eq!(again.kind(), ErrorKind::Invalid);
    assert!(
        again.to_string().contains("nothing to roll back"),
        "{again}"
    );
    engine.shutdown().await;
}

/// Recovery over real failures: a gated preset is in the list as "licence not accepted" with
/// the licence's link and the actions that fit; it is the administrators' (a user sees none of
/// it and cannot act on it); after the licence is accepted, Retry installs it and the failure
/// is resolved. A missing file is "not found", is counted when it fails again, and is dismissed.
#[tokio::test(flavor = "multi_thread")]
async fn failures_are_in_recovery_classified_and_a_retry_resolves_them() {
    use engine::error::Classify;
    use engine::model::{ErrorKind, FailureClass, FailureSource, FailureState, RecoveryAction};
    let server = FileServer::start().await;
    let spec = server.add_file("/org/gated/resolve/main/model.safetensors", 2_000);
    server.set_fault(&spec.path, Fault::Gated);
    let missing = server.add_file("/files/missing.safetensors", 1_000);
    server.set_fault(&missing.path, Fault::status(404));
    let dir = tempfile::tempdir().unwrap();
    write_preset(
        dir.path(),
        "gated",
        &[TestFile {
            path: "checkpoints/gated.safetensors",
            url: server.url(&spec.path),
            size: "2KB",
            sha256: None,
            mirrors: Vec::new(),
        }],
    );
    let (engine, _) = Engine::start(test_config(dir.path())).await.unwrap();
    engine.spawn_background_jobs();
    let admin = engine.auth().open_caller();
    let bob = crate::common::bob();

    engine.downloads().install_preset("gated").await.unwrap();
    let list =
        common::recovery_until(&engine, &admin, "the gated preset", |l| !l.open.is_empty()).await;
    let failure = &list.open[0];
    assert_eq!(failure.source, FailureSource::Preset);
    assert_eq!(failure.class, FailureClass::Licence);
    assert_eq!(failure.subject, "preset gated");
    assert!(
        failure.sentence.contains("licence must be accepted"),
        "{failure:?}"
    );
    assert_eq!(
        failure.link.as_deref(),
        Some("https://huggingface.co/org/gated")
    );
    assert_eq!(
        failure.actions,
        [
            RecoveryAction::AcceptLicence,
            RecoveryAction::Retry,
            RecoveryAction::RollBack,
            RecoveryAction::Dismiss
        ]
    );
    assert!(failure.detail.contains("gated repository"));
    assert_eq!(
        list.banner().as_deref(),
        Some("A preset install failed: licence not accepted")
    );
    // The pod's failures are the administrators'.
    assert!(engine.recovery().list(&bob).await.unwrap().open.is_empty());
    let hidden = engine
        .recovery()
        .act(&bob, failure.id, RecoveryAction::Retry, None)
        .await
        .unwrap_err();
    assert_eq!(hidden.kind(), ErrorKind::NotFound);
    // An action that does not fit, or one the person does themselves, is refused in words.
    let unfit = engine
        .recovery()
        .act(&admin, failure.id, RecoveryAction::RestartComfyui, None)
        .await
        .unwrap_err();
    assert_eq!(unfit.kind(), ErrorKind::Invalid);
    assert!(unfit.to_string().contains("does not fit"), "{unfit}");

    // The licence is accepted (the fault goes); Retry installs it and resolves the failure.
    server.clear_faults(&spec.path);
    let retried = engine
        .recovery()
        .act(&admin, failure.id, RecoveryAction::Retry, None)
        .await
        .unwrap();
    assert_eq!(retried.state, FailureState::Resolved);
    wait_for(&engine, "gated", Duration::from_secs(20), installed).await;
    let list = common::recovery_until(&engine, &admin, "the preset resolved", |l| {
        l.open.is_empty() && l.recent.iter().any(|f| f.subject == "preset gated")
    })
    .await;
    assert_eq!(list.banner(), None);
    assert_eq!(list.week[0].class, FailureClass::Licence);

    // A file that is not there: "not found"; failing again counts; dismissed, it goes.
    let enqueue = || {
        engine
            .downloads()
            .enqueue_file(engine::download::queue::NewTask {
                mirrors: Vec::new(),
                url: server.url(&missing.path),
                path: "loras/missing.safetensors".into(),
                expected_size: None,
                checksum: None,
                priority: 0,
            })
    };
    enqueue().await.unwrap();
    let list =
        common::recovery_until(&engine, &admin, "the missing file", |l| !l.open.is_empty()).await;
    let gone = list.open[0].clone();
    assert_eq!(gone.source, FailureSource::Download);
    assert_eq!(gone.class, FailureClass::NotFound);
    assert_eq!(gone.subject, "loras/missing.safetensors");
    tokio::time::sleep(Duration::from_millis(5_100)).await;
    let outcome = engine.recovery().retry_all(&admin).await.unwrap();
    assert_eq!(
        (outcome.retried, outcome.skipped),
        (0, 1),
        "not found waits for a person"
    );
    enqueue().await.unwrap();
    common::recovery_until(&engine, &admin, "the second failure counted", |l| {
        l.open.first().is_some_and(|f| f.count == 2)
    })
    .await;
    let dismissed = engine
        .recovery()
        .act(&admin, gone.id, RecoveryAction::Dismiss, None)
        .await
        .unwrap();
    assert_eq!(dismissed.state, FailureState::Dismissed);
    assert!(engine
        .recovery()
        .list(&admin)
        .await
        .unwrap()
        .open
        .is_empty());
    engine.shutdown().await;
}

/// Partial downloads are listed with what they belong to (administrators only), and the
/// clean-up deletes those no download will finish once they are older than the retention —
/// a failed download's too — but never the bytes of a queued or paused one, whatever their age.
#[tokio::test]
async fn old_partial_downloads_nobody_will_finish_are_cleaned_by_age() {
    use engine::download::queue::{NewTask, TaskState};
    use engine::model::PartOwner;
    let dir = tempfile::tempdir().unwrap();
    // No scheduler: the tasks stay as they are written.
    let (engine, _) = Engine::start(test_config(dir.path())).await.unwrap();
    let models = dir.path().join("models");
    let eight_days = Duration::from_secs(8 * 24 * 3600);
    let part = |path: &str, bytes: usize, age: Duration| {
        let file = models.join(format!("{path}.part"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, vec![7u8; bytes]).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - age)
            .unwrap();
        file
    };
    let old = part("loras/old.safetensors", 3_000, eight_days);
    let sidecar = models.join("loras/old.safetensors.part.segments");
    std::fs::write(&sidecar, b"{}").unwrap();
    let fresh = part("loras/fresh.safetensors", 1_000, Duration::ZERO);
    let paused = part("vae/paused.safetensors", 2_000, eight_days);
    let failed = part("vae/failed.safetensors", 4_000, eight_days);
    let now = engine::clock::now_ms();
    for (path, state) in [
        ("vae/paused.safetensors", TaskState::Paused),
        ("vae/failed.safetensors", TaskState::Failed),
    ] {
        let id = engine
            .store()
            .upsert_task(
                &NewTask {
                    url: closed_port_url(),
                    mirrors: Vec::new(),
                    path: path.into(),
                    expected_size: None,
                    checksum: None,
                    priority: 0,
                },
                now,
            )
            .await
            .unwrap();
        engine
            .store()
            .set_task_state(id, state, None, 0, now)
            .await
            .unwrap();
    }

    let admin = engine.auth().open_caller();
    let listed = engine.recovery().list(&admin).await.unwrap().partial_files;
    let summary: Vec<(&str, u64, PartOwner)> = listed
        .iter()
        .map(|p| (p.path.as_str(), p.bytes, p.owner))
        .collect();
    assert_eq!(
        summary,
        [
            ("vae/failed.safetensors", 4_000, PartOwner::Failed),
            ("loras/old.safetensors", 3_000, PartOwner::Abandoned),
            ("vae/paused.safetensors", 2_000, PartOwner::Download),
            ("loras/fresh.safetensors", 1_000, PartOwner::Abandoned),
        ],
        "biggest first"
    );
    let bob = crate::common::bob();
    assert!(engine
        .recovery()
        .list(&bob)
        .await
        .unwrap()
        .partial_files
        .is_empty());

    let cleaned = engine
        .downloads()
        .clean_partial_files(7, engine::clock::now_ms())
        .await
        .unwrap();
    assert_eq!((cleaned.files, cleaned.bytes), (2, 7_000));
    assert!(!old.exists() && !sidecar.exists() && !failed.exists());
    assert!(fresh.exists(), "younger than the retention");
    assert!(paused.exists(), "a paused download goes on from its bytes");
    let again = engine
        .downloads()
        .clean_partial_files(7, engine::clock::now_ms())
        .await
        .unwrap();
    assert_eq!(again.files, 0, "cleaning twice is harmless");
}

/// A preset install is recorded before it starts: the engine stopped in the middle of it, a
/// new one finishes it, and rolling it back then leaves the models folder exactly as it was
/// (listing and hashes) — the file it added gone, the person's own file it replaced put back —
/// except a file another requested preset needs. Rolling back twice changes nothing.
#[tokio::test]
async fn rolling_back_an_interrupted_then_finished_install_restores_the_exact_tree() {
    use engine::model::{RestoreChange, RestoreState};
    let server = FileServer::start().await;
    let big = server.add_file("/files/big.safetensors", 4_000_000);
    let mine = server.add_file("/files/mine.safetensors", 200_000);
    let shared = server.add_file("/files/shared.safetensors", 100_000);
    server.set_fault(
        &big.path,
        Fault::Trickle {
            chunk: 32 * 1024,
            interval: Duration::from_millis(12),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    write_preset(
        dir.path(),
        "main",
        &[
            file(&server, &big, "checkpoints/big.safetensors", "4MB"),
            file(&server, &mine, "loras/mine.safetensors", "200KB"),
            file(&server, &shared, "vae/shared.safetensors", "100KB"),
        ],
    );
    write_preset(
        dir.path(),
        "other",
        &[file(&server, &shared, "vae/shared.safetensors", "100KB")],
    );
    let models = dir.path().join("models");
    // The person's own file where the preset puts its own (another size: replaced once the
    // download is verified), and one the preset has nothing to do with.
    std::fs::create_dir_all(models.join("loras")).unwrap();
    std::fs::write(models.join("loras/mine.safetensors"), b"my own lora").unwrap();
    std::fs::write(models.join("loras/unrelated.safetensors"), b"left alone").unwrap();

    let engine = start(test_config(dir.path())).await;
    let before = common::tree::files_with_sha256(&models);
    engine.downloads().install_preset("main").await.unwrap();
    let big_dest = models.join("checkpoints/big.safetensors");
    let started = Instant::now();
    while part_len(&big_dest) < 500_000 {
        assert!(started.elapsed() < Duration::from_secs(20), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    engine.shutdown().await;
    drop(engine);

    server.clear_faults(&big.path);
    let engine = start_again(dir.path()).await;
    wait_for(&engine, "main", Duration::from_secs(30), installed).await;
    assert_eq!(
        sha256_of(&models.join("loras/mine.safetensors")),
        mine.sha256,
        "the preset's file replaced the person's"
    );
    engine.downloads().install_preset("other").await.unwrap();
    wait_for(&engine, "other", Duration::from_secs(10), installed).await;

    let admin = engine.auth().open_caller();
    let points = engine.recovery().restore_points(&admin).await.unwrap();
    assert_eq!(
        points.len(),
        1,
        "one point, kept across the restart: {points:#?}"
    );
    let point = &points[0];
    assert_eq!(point.subject, "install Test main");
    let changes: Vec<(&str, RestoreChange)> = point
        .items
        .iter()
        .map(|i| (i.path.as_str(), i.change))
        .collect();
    assert_eq!(
        changes,
        [
            ("checkpoints/big.safetensors", RestoreChange::Created),
            ("loras/mine.safetensors", RestoreChange::Replaced),
            ("vae/shared.safetensors", RestoreChange::Created),
        ]
    );
    assert!(engine
        .recovery()
        .roll_back(&crate::common::bob(), point.id)
        .await
        .is_err());

    let rolled = engine.recovery().roll_back(&admin, point.id).await.unwrap();
    assert_eq!(rolled.state, RestoreState::RolledBack);
    let note = rolled.note.clone().unwrap();
    assert!(
        note.contains("vae/shared.safetensors (another preset needs it)"),
        "{note}"
    );
    let mut expected = before.clone();
    expected.push(("vae/shared.safetensors".into(), shared.sha256.clone()));
    expected.sort();
    assert_eq!(
        common::tree::files_with_sha256(&models),
        expected,
        "the tree as it was, and what `other` needs"
    );
    // Its shared file stays, so it shows as partly there, not installed.
    assert_eq!(
        view(&engine, "main").await.state,
        InstallState::Partial,
        "{note}"
    );
    assert!(installed(&view(&engine, "other").await));

    let again = engine.recovery().roll_back(&admin, point.id).await.unwrap();
    assert_eq!(again, rolled, "twice is harmless");
    assert_eq!(common::tree::files_with_sha256(&models), expected);
    assert!(matches!(
        engine.recovery().roll_back(&admin, 999).await,
        Err(engine::recovery::RecoveryError::NotFound(_))
    ));
}
