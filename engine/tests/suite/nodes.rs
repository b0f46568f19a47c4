//! Custom-node packs against real parts: git repositories made here, a real Python venv that
//! installs from a local wheel folder (`--no-index --find-links`: nothing is fetched), and the
//! fake ComfyUI (`comfy-standin/python/fake_comfyui/main.py`) run by comfydeck's supervisor,
//! which imports `custom_nodes/*` like ComfyUI and answers `/object_info` from them — so "the
//! classes appear after the restart" is really checked.
//!
//! These tests need `git` and `python3` with `venv`; without them they fail and say so.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use engine::error::Classify;
use engine::model::{
    Caller, ComfyProcessState, ErrorKind, FailureClass, FailureSource, FailureState, NodePackState,
    OperationState, PackSource, RecoveryAction, RestoreChange, RestoreState, StepKind, StepState,
};
use engine::nodes::{InstallTarget, NodesError};
use engine::Engine;

use super::common;

// -- helpers ---------------------------------------------------------------------------------

fn run(what: &str, command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| {
        panic!("{what}: cannot run it ({e}); the custom-node tests need git and python3 with venv")
    });
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn git(dir: &Path, args: &[&str]) -> String {
    run(
        &format!("git {}", args.join(" ")),
        Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "test")
            .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
            .env("GIT_COMMITTER_NAME", "test")
            .env("GIT_COMMITTER_EMAIL", "test@example.invalid"),
    )
}

/// A git repository `name` under `root` with one commit per file set; returns its `file://`
/// URL and the commits, oldest first.
fn make_repo(root: &Path, name: &str, commits: &[&[(&str, &str)]]) -> (String, Vec<String>) {
    let dir = root.join("repos").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    git(&dir, &["init", "--quiet", "-b", "main"]);
    let mut hashes = Vec::new();
    for (i, files) in commits.iter().enumerate() {
        for (path, content) in *files {
            std::fs::write(dir.join(path), content).unwrap();
        }
        git(&dir, &["add", "-A"]);
        git(&dir, &["commit", "--quiet", "-m", &format!("commit {i}")]);
        hashes.push(git(&dir, &["rev-parse", "HEAD"]).trim().to_string());
    }
    (format!("file://{}", dir.display()), hashes)
}

/// A node pack's `__init__.py` that imports `import_first` (if any) and maps `classes`.
fn init_py(import_first: Option<&str>, classes: &[&str]) -> String {
    let mut py = String::new();
    if let Some(module) = import_first {
        py.push_str(&format!("import {module}\n"));
    }
    py.push_str("class Node:\n    pass\n\nNODE_CLASS_MAPPINGS = {\n");
    for class in classes {
        py.push_str(&format!("    {class:?}: Node,\n"));
    }
    py.push_str("}\n");
    py
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A ComfyUI folder running the fake server with its own venv, a wheel folder, and an engine
/// that supervises it.
struct Pod {
    root: tempfile::TempDir,
    comfy: PathBuf,
    wheels: PathBuf,
    engine: Arc<Engine>,
    admin: Caller,
}

impl Pod {
    async fn start(extra_protected: &[&str]) -> Pod {
        let root = tempfile::tempdir().unwrap();
        let comfy = root.path().join("ComfyUI");
        std::fs::create_dir_all(comfy.join("custom_nodes")).unwrap();
        let fake = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../comfy-standin/python/fake_comfyui/main.py");
        std::fs::copy(&fake, comfy.join("main.py"))
            .expect("the fake ComfyUI is in comfy-standin/python");
        run(
            "python3 -m venv",
            Command::new("python3")
                .args(["-m", "venv"])
                .arg(comfy.join("venv")),
        );
        let wheels = root.path().join("wheels");
        let make_wheel =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nodes/make_wheel.py");
        for (name, version) in [
            ("tinydep", "1.0"),
            ("otherdep", "1.0"),
            ("torch", "1.0.0"),
            ("torch", "2.0.0"),
        ] {
            run(
                "make_wheel.py",
                Command::new("python3")
                    .arg(&make_wheel)
                    .arg(&wheels)
                    .args([name, version]),
            );
        }
        let pod_python = comfy.join("venv/bin/python");
        run(
            "pip install torch==1.0.0",
            Command::new(&pod_python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--no-index",
                    "--find-links",
                ])
                .arg(&wheels)
                .arg("torch==1.0.0")
                .env("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
        );

        let port = free_port();
        let mut config = common::test_config(&root.path().join("workspace"));
        config.comfyui_dir = Some(comfy.clone());
        config.comfyui_port = port;
        config.comfyui_url = format!("http://127.0.0.1:{port}");
        config.node_map_url = None;
        config.node_protected_packages = extra_protected.iter().map(|s| s.to_string()).collect();
        config.node_pip_args = vec![
            "--no-index".into(),
            "--find-links".into(),
            wheels.display().to_string(),
        ];
        config.node_ready_timeout = Duration::from_secs(60);
        config.node_network_retry = Duration::from_millis(200);
        let (engine, _) = Engine::start(config).await.unwrap();
        // ComfyUI, the recovery listener, the download queue: as `comfydeck serve` runs.
        engine.spawn_background_jobs();
        let admin = engine.auth().open_caller();
        let pod = Pod {
            root,
            comfy,
            wheels,
            engine,
            admin,
        };
        pod.wait_ready().await;
        pod
    }

    async fn wait_ready(&self) {
        for _ in 0..300 {
            let process = self.engine.status().comfy_process().await;
            if matches!(process.state, ComfyProcessState::Ready { .. }) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the fake ComfyUI did not get ready: {:?}",
            self.engine.status().comfy_process().await
        );
    }

    fn custom_nodes(&self) -> PathBuf {
        self.comfy.join("custom_nodes")
    }

    /// Every path under `custom_nodes/` (skipping Python caches), relative.
    fn tree(&self) -> BTreeSet<String> {
        let root = self.custom_nodes();
        let mut out = BTreeSet::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.file_name().is_some_and(|n| n == "__pycache__") {
                    continue;
                }
                out.insert(path.strip_prefix(&root).unwrap().display().to_string());
                if path.is_dir() && !path.is_symlink() {
                    stack.push(path);
                }
            }
        }
        out
    }

    /// [`tree`](Self::tree) without what git keeps inside `.git/` (an update's fetch leaves
    /// `FETCH_HEAD` there): the files ComfyUI loads.
    fn work_tree(&self) -> BTreeSet<String> {
        self.tree()
            .into_iter()
            .filter(|path| !path.contains("/.git/"))
            .collect()
    }

    fn pip_freeze(&self) -> String {
        run(
            "pip freeze",
            Command::new(self.comfy.join("venv/bin/python"))
                .args(["-m", "pip", "freeze", "--all"])
                .env("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
        )
    }

    async fn restarts(&self) -> u32 {
        self.engine.status().comfy_process().await.restarts
    }

    /// The node classes the fake ComfyUI answers now.
    async fn classes(&self) -> BTreeSet<String> {
        let url = format!("{}/object_info", self.engine.config().comfyui_url);
        let info: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        info.as_object().unwrap().keys().cloned().collect()
    }
}

fn quiet(_: &str) {}

fn target(repo: &str, version: Option<&str>) -> InstallTarget {
    InstallTarget {
        repo: Some(repo.to_string()),
        id: None,
        version: version.map(str::to_string),
    }
}

// -- tests -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_pack_installs_at_its_pin_updates_disables_enables_and_is_removed() {
    let pod = Pod::start(&[]).await;
    let nodes = pod.engine.nodes();
    let (url, commits) = make_repo(
        pod.root.path(),
        "pack-good",
        &[
            &[
                ("__init__.py", &init_py(Some("tinydep"), &["GoodNodeA"])),
                ("requirements.txt", "tinydep==1.0\n"),
            ],
            &[(
                "__init__.py",
                &init_py(Some("tinydep"), &["GoodNodeA", "GoodNodeB"]),
            )],
            // The newest commit breaks the pack.
            &[(
                "__init__.py",
                "raise ImportError('the newest commit is broken')\n",
            )],
        ],
    );

    // Only administrators.
    let bob = crate::common::bob();
    let refused = nodes
        .install(&bob, target(&url, None), &quiet)
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Forbidden);
    assert_eq!(
        nodes.list(&bob).await.unwrap_err().kind(),
        ErrorKind::Forbidden
    );

    // Installed at the pinned (older) commit, with its requirement, and loaded by ComfyUI.
    let said = std::sync::Mutex::new(Vec::new());
    let progress = |s: &str| said.lock().unwrap().push(s.to_string());
    let outcome = nodes
        .install(&pod.admin, target(&url, Some(&commits[0])), &progress)
        .await
        .unwrap();
    let pack = outcome.pack.unwrap();
    assert_eq!(pack.id, "pack-good");
    assert_eq!(pack.state, NodePackState::Loaded, "{pack:?}");
    assert_eq!(pack.classes, vec!["GoodNodeA"]);
    assert_eq!(pack.commit.as_deref(), Some(commits[0].as_str()));
    assert_eq!(pack.repository.as_deref(), Some(url.as_str()));
    assert!(pod.classes().await.contains("GoodNodeA"));
    assert!(pod.pip_freeze().contains("tinydep==1.0"));
    let said = said.lock().unwrap().clone();
    assert!(
        said.iter().any(|s| s.starts_with("restore point recorded")),
        "{said:?}"
    );
    assert!(
        said.iter().any(|s| s == "pip will install tinydep 1.0"),
        "{said:?}"
    );
    assert_eq!(said, outcome.steps, "progress saw every step");

    // A second install of the same pack is a conflict.
    let again = nodes
        .install(&pod.admin, target(&url, None), &quiet)
        .await
        .unwrap_err();
    assert_eq!(again.kind(), ErrorKind::Conflict, "{again}");

    // Updated to a chosen commit: the new class appears.
    let updated = nodes
        .update(&pod.admin, "pack-good", Some(&commits[1]), &quiet)
        .await
        .unwrap();
    let pack = updated.pack.unwrap();
    assert_eq!(pack.commit.as_deref(), Some(commits[1].as_str()));
    assert_eq!(pack.classes, vec!["GoodNodeA", "GoodNodeB"]);

    // Updated to the newest commit, which fails to import: back at the old commit, loaded.
    let freeze = pod.pip_freeze();
    let error = nodes
        .update(&pod.admin, "pack-good", None, &quiet)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("the newest commit is broken"), "{message}");
    assert!(
        message.contains("out at"),
        "the old commit is checked out again: {message}"
    );
    let list = nodes.list(&pod.admin).await.unwrap();
    assert_eq!(list.packs[0].commit.as_deref(), Some(commits[1].as_str()));
    assert_eq!(list.packs[0].state, NodePackState::Loaded);
    assert_eq!(pod.pip_freeze(), freeze);
    assert!(pod.classes().await.contains("GoodNodeB"));

    // Disabled: moved aside, its classes gone after the restart.
    let disabled = nodes
        .disable(&pod.admin, "pack-good", &quiet)
        .await
        .unwrap();
    assert_eq!(disabled.pack.unwrap().state, NodePackState::Disabled);
    assert!(pod
        .custom_nodes()
        .join(".disabled/pack-good/__init__.py")
        .is_file());
    assert!(!pod.custom_nodes().join("pack-good").exists());
    assert!(!pod.classes().await.contains("GoodNodeA"));
    let list = nodes.list(&pod.admin).await.unwrap();
    assert_eq!(list.packs.len(), 1);
    assert_eq!(list.packs[0].state, NodePackState::Disabled);

    // Enabled again.
    let enabled = nodes.enable(&pod.admin, "pack-good", &quiet).await.unwrap();
    assert_eq!(enabled.pack.unwrap().state, NodePackState::Loaded);
    assert!(pod.classes().await.contains("GoodNodeB"));

    // Ids cannot leave custom_nodes.
    for bad in ["../pack-good", "/etc", ".disabled"] {
        let e = nodes.remove(&pod.admin, bad, &quiet).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{bad}: {e}");
    }
    let missing = nodes
        .remove(&pod.admin, "no-such-pack", &quiet)
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);

    // Removed.
    nodes.remove(&pod.admin, "pack-good", &quiet).await.unwrap();
    assert!(!pod.custom_nodes().join("pack-good").exists());
    assert!(nodes.list(&pod.admin).await.unwrap().packs.is_empty());
    assert!(!pod.classes().await.contains("GoodNodeA"));
    pod.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_class_resolves_through_properties_then_the_node_map_and_installs_by_id() {
    let pod = Pod::start(&[]).await;
    let nodes = pod.engine.nodes();
    let (url, _) = make_repo(
        pod.root.path(),
        "pack-plain",
        &[&[("__init__.py", &init_py(None, &["PlainNode"]))]],
    );
    // The node map's cached copy, as a sync would have left it.
    let cache = pod
        .engine
        .layout()
        .data()
        .join("nodes/extension-node-map.json");
    std::fs::create_dir_all(cache.parent().unwrap()).unwrap();
    std::fs::write(
        &cache,
        serde_json::json!({
            url.clone(): [["PlainNode"], {"title_aux": "Plain pack"}],
            "https://github.com/someone/pattern-pack": [[], {"title_aux": "Patterns", "nodename_pattern": " \\(pp\\)$"}],
        })
        .to_string(),
    )
    .unwrap();

    // The node's own properties come first.
    let props = serde_json::json!({"aux_id": "kijai/ComfyUI-KJNodes", "ver": "abc123", "cnr_id": "comfyui-kjnodes"});
    let from_props = nodes.resolve("PlainNode", Some(&props)).await.unwrap();
    assert_eq!(from_props.source, PackSource::NodeProperties);
    assert_eq!(
        from_props.repository,
        "https://github.com/kijai/ComfyUI-KJNodes"
    );
    assert_eq!(from_props.id, "ComfyUI-KJNodes");
    assert_eq!(from_props.version.as_deref(), Some("abc123"));
    // Then the map, by name and by pattern.
    let core = serde_json::json!({"cnr_id": "comfy-core", "ver": "0.3.64"});
    let from_map = nodes.resolve("PlainNode", Some(&core)).await.unwrap();
    assert_eq!(from_map.source, PackSource::NodeMap);
    assert_eq!(from_map.repository, url);
    assert_eq!(from_map.title.as_deref(), Some("Plain pack"));
    let by_pattern = nodes.resolve("Switch (pp)", None).await.unwrap();
    assert_eq!(by_pattern.id, "pattern-pack");
    assert!(nodes.resolve("UnknownNode", None).await.is_none());

    // A workflow's missing classes, each with its pack (or none known).
    let workflow = serde_json::json!({"nodes": [
        {"type": "KSampler"},
        {"type": "PlainNode", "properties": {"cnr_id": "pack-plain"}},
        {"type": "UnknownNode"},
        {"type": "PlainNode"}
    ]});
    let missing = nodes.missing_packs(&workflow).await.unwrap();
    let listed: Vec<(&str, Option<&str>)> = missing
        .iter()
        .map(|m| {
            (
                m.class_type.as_str(),
                m.pack.as_ref().map(|p| p.id.as_str()),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![("PlainNode", Some("pack-plain")), ("UnknownNode", None)]
    );
    assert_eq!(
        missing[0].pack.as_ref().unwrap().source,
        PackSource::NodeProperties
    );

    // Installed by its id: the map gives the repository; no requirements.
    let outcome = nodes
        .install(
            &pod.admin,
            InstallTarget {
                id: Some("pack-plain".into()),
                ..InstallTarget::default()
            },
            &quiet,
        )
        .await
        .unwrap();
    let pack = outcome.pack.unwrap();
    assert_eq!(pack.name, "Plain pack");
    assert_eq!(pack.classes, vec!["PlainNode"]);
    assert!(outcome.steps.iter().any(|s| s == "no requirements.txt"));
    assert!(nodes.missing_packs(&workflow).await.unwrap()[0].class_type == "UnknownNode");
    let unknown = nodes
        .install(
            &pod.admin,
            InstallTarget {
                id: Some("never-heard-of-it".into()),
                ..InstallTarget::default()
            },
            &quiet,
        )
        .await
        .unwrap_err();
    assert_eq!(unknown.kind(), ErrorKind::NotFound, "{unknown}");
    pod.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pack_install_and_a_pack_update_are_restore_points_that_roll_back_exactly() {
    let pod = Pod::start(&[]).await;
    let nodes = pod.engine.nodes();
    let recovery = pod.engine.recovery();
    let (url, commits) = make_repo(
        pod.root.path(),
        "pack-good",
        &[
            &[
                ("__init__.py", &init_py(Some("tinydep"), &["GoodNodeA"])),
                ("requirements.txt", "tinydep==1.0\n"),
            ],
            // The update brings a class and a requirement of its own.
            &[
                (
                    "__init__.py",
                    &init_py(Some("otherdep"), &["GoodNodeA", "GoodNodeB"]),
                ),
                ("requirements.txt", "tinydep==1.0\notherdep==1.0\n"),
            ],
        ],
    );
    let tree_empty = pod.work_tree();
    let freeze_empty = pod.pip_freeze();
    nodes
        .install(&pod.admin, target(&url, Some(&commits[0])), &quiet)
        .await
        .unwrap();
    let tree_installed = pod.work_tree();
    let freeze_installed = pod.pip_freeze();
    assert!(freeze_installed.contains("tinydep==1.0"));
    nodes
        .update(&pod.admin, "pack-good", Some(&commits[1]), &quiet)
        .await
        .unwrap();
    assert!(pod.pip_freeze().contains("otherdep==1.0"));
    assert!(pod.classes().await.contains("GoodNodeB"));

    // Two restore points of kind "pack", newest first: the update, then the install.
    let points = recovery.restore_points(&pod.admin).await.unwrap();
    let packs: Vec<_> = points.iter().filter(|p| p.kind == "pack").collect();
    assert_eq!(packs.len(), 2, "{points:#?}");
    let (update, install) = (packs[0].clone(), packs[1].clone());
    assert!(
        update.subject.starts_with("update pack pack-good to "),
        "{update:?}"
    );
    assert_eq!(update.items[0].change, RestoreChange::PackUpdated);
    assert_eq!(install.subject, "install pack pack-good");
    assert_eq!(install.items[0].change, RestoreChange::Pack);

    // Rolling the update back: the old commit, the old packages, the old classes.
    let rolled = recovery.roll_back(&pod.admin, update.id).await.unwrap();
    let note = rolled.note.clone().unwrap();
    assert!(note.contains("checked pack pack-good out at"), "{note}");
    assert!(note.contains("uninstalled otherdep"), "{note}");
    assert!(note.contains("ComfyUI loaded pack-good again"), "{note}");
    assert_eq!(pod.work_tree(), tree_installed);
    assert_eq!(pod.pip_freeze(), freeze_installed);
    let list = nodes.list(&pod.admin).await.unwrap();
    assert_eq!(list.packs[0].commit.as_deref(), Some(commits[0].as_str()));
    pod.wait_ready().await;
    let classes = pod.classes().await;
    assert!(classes.contains("GoodNodeA") && !classes.contains("GoodNodeB"));
    // Twice is harmless.
    let again = recovery.roll_back(&pod.admin, update.id).await.unwrap();
    assert_eq!(again.note, rolled.note);
    assert_eq!(pod.work_tree(), tree_installed);

    // Rolling the install back: no pack, none of its packages, none of its classes.
    let removed = recovery.roll_back(&pod.admin, install.id).await.unwrap();
    let note = removed.note.clone().unwrap();
    assert!(note.contains("removed pack pack-good"), "{note}");
    assert!(note.contains("uninstalled tinydep"), "{note}");
    assert_eq!(pod.work_tree(), tree_empty);
    assert_eq!(pod.pip_freeze(), freeze_empty);
    pod.wait_ready().await;
    assert!(!pod.classes().await.contains("GoodNodeA"));

    // Installed and updated again: the install's point keeps a pack that moved on since,
    // and says so, rather than undo more than the install added.
    nodes
        .install(&pod.admin, target(&url, Some(&commits[0])), &quiet)
        .await
        .unwrap();
    nodes
        .update(&pod.admin, "pack-good", Some(&commits[1]), &quiet)
        .await
        .unwrap();
    let points = recovery.restore_points(&pod.admin).await.unwrap();
    let reinstall = points
        .iter()
        .find(|p| p.subject == "install pack pack-good" && p.state == RestoreState::Kept)
        .unwrap_or_else(|| panic!("{points:#?}"));
    assert_ne!(
        reinstall.id, install.id,
        "a new point, not the rolled back one"
    );
    let kept = recovery.roll_back(&pod.admin, reinstall.id).await.unwrap();
    let note = kept.note.clone().unwrap();
    assert!(note.contains("pack pack-good not rolled back"), "{note}");
    assert!(note.contains("changed since"), "{note}");
    assert!(pod.custom_nodes().join("pack-good/__init__.py").is_file());
    // Only administrators roll back.
    assert_eq!(
        recovery
            .roll_back(&crate::common::bob(), update.id)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Forbidden
    );
    pod.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pack_that_fails_to_import_is_put_back_and_comfyui_runs_again() {
    let pod = Pod::start(&[]).await;
    let nodes = pod.engine.nodes();
    let (url, _) = make_repo(
        pod.root.path(),
        "pack-broken",
        &[&[
            (
                "__init__.py",
                "import otherdep\nraise ImportError('boom: broken on purpose')\n",
            ),
            ("requirements.txt", "otherdep==1.0\n"),
        ]],
    );
    let tree_before = pod.tree();
    let freeze_before = pod.pip_freeze();
    let restarts_before = pod.restarts().await;

    let error = nodes
        .install(&pod.admin, target(&url, None), &quiet)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, NodesError::Failed(_)), "{message}");
    assert!(
        message.contains("ComfyUI could not import pack-broken"),
        "{message}"
    );
    assert!(
        message.contains("Traceback"),
        "the traceback is quoted: {message}"
    );
    assert!(
        message.contains("ImportError: boom: broken on purpose"),
        "{message}"
    );
    assert!(message.contains("uninstalled otherdep"), "{message}");
    assert!(message.contains("ComfyUI is running again"), "{message}");

    // Exactly as before: the folders, pip's packages; and ComfyUI answers again.
    assert_eq!(pod.tree(), tree_before);
    assert_eq!(pod.pip_freeze(), freeze_before);
    pod.wait_ready().await;
    assert!(
        pod.restarts().await >= restarts_before + 2,
        "restarted with the pack, then without"
    );
    assert!(pod.classes().await.contains("KSampler"));
    // The restore point was written.
    let points = pod.engine.layout().data().join("nodes/restore-points");
    let written: Vec<_> = std::fs::read_dir(&points).unwrap().collect();
    assert_eq!(written.len(), 1);

    // A pack that takes ComfyUI down with it while it starts: put back, ComfyUI up again.
    let (crash_url, _) = make_repo(
        pod.root.path(),
        "pack-crash",
        &[&[("__init__.py", "import os\nos._exit(3)\n")]],
    );
    let error = nodes
        .install(&pod.admin, target(&crash_url, None), &quiet)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, NodesError::Failed(_)), "{message}");
    assert!(
        message.contains("ComfyUI stopped while starting (exit code 3)"),
        "{message}"
    );
    assert!(message.contains("ComfyUI is running again"), "{message}");
    assert_eq!(pod.tree(), tree_before);
    assert_eq!(pod.pip_freeze(), freeze_before);
    pod.wait_ready().await;
    assert!(pod.classes().await.contains("KSampler"));

    // Both failed installs are in Recovery, as a pack's dependency problem with the traceback.
    let recovery = pod.engine.recovery();
    let list = common::recovery_until(&pod.engine, &pod.admin, "the broken packs", |l| {
        l.open
            .iter()
            .filter(|f| f.source == FailureSource::Pack)
            .count()
            == 2
    })
    .await;
    let broken = list
        .open
        .iter()
        .find(|f| f.subject == "install pack pack-broken")
        .unwrap_or_else(|| panic!("{list:#?}"));
    assert_eq!(broken.class, FailureClass::Dependency, "{broken:?}");
    assert!(
        broken.detail.contains("boom: broken on purpose"),
        "{broken:?}"
    );

    // A repository that is not there yet fails to clone; once it is, Retry installs the pack
    // and the failure is resolved.
    let late = pod.root.path().join("repos/pack-late");
    let late_url = format!("file://{}", late.display());
    nodes
        .install(&pod.admin, target(&late_url, None), &quiet)
        .await
        .unwrap_err();
    let list = common::recovery_until(&pod.engine, &pod.admin, "the missing repository", |l| {
        l.open.iter().any(|f| f.subject == "install pack pack-late")
    })
    .await;
    let failure = list
        .open
        .iter()
        .find(|f| f.subject == "install pack pack-late")
        .unwrap()
        .clone();
    assert!(
        failure.actions.contains(&RecoveryAction::Retry),
        "{failure:?}"
    );
    make_repo(
        pod.root.path(),
        "pack-late",
        &[&[("__init__.py", &init_py(None, &["LateNode"]))]],
    );
    let retried = recovery
        .act(&pod.admin, failure.id, RecoveryAction::Retry, None)
        .await
        .unwrap();
    assert_eq!(retried.state, FailureState::Resolved);
    assert!(pod.classes().await.contains("LateNode"));
    pod.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pack_that_would_change_a_protected_package_is_refused_before_anything_changes() {
    let pod = Pod::start(&["TinyDep"]).await;
    let nodes = pod.engine.nodes();
    let (torch_url, _) = make_repo(
        pod.root.path(),
        "pack-torch",
        &[&[
            ("__init__.py", &init_py(Some("torch"), &["TorchNode"])),
            ("requirements.txt", "torch==2.0.0\n"),
        ]],
    );
    let (extra_url, _) = make_repo(
        pod.root.path(),
        "pack-extra",
        &[&[
            ("__init__.py", &init_py(Some("tinydep"), &["ExtraNode"])),
            ("requirements.txt", "tinydep\n"),
        ]],
    );
    let (fine_url, _) = make_repo(
        pod.root.path(),
        "pack-fine",
        &[&[
            ("__init__.py", &init_py(Some("torch"), &["FineNode"])),
            // Already satisfied: nothing protected changes.
            ("requirements.txt", "torch>=1.0\n"),
        ]],
    );
    let tree_before = pod.tree();
    let freeze_before = pod.pip_freeze();
    let restarts_before = pod.restarts().await;

    let error = nodes
        .install(&pod.admin, target(&torch_url, None), &quiet)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, NodesError::Protected { .. }), "{message}");
    assert_eq!(error.kind(), ErrorKind::Conflict);
    assert!(
        message.contains("torch 2.0.0 (installed: torch==1.0.0)"),
        "{message}"
    );
    assert!(message.contains("Nothing was changed"), "{message}");
    // NODE_PROTECTED_PACKAGES adds to the defaults (names compared as pip does).
    let error = nodes
        .install(&pod.admin, target(&extra_url, None), &quiet)
        .await
        .unwrap_err();
    assert!(matches!(error, NodesError::Protected { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("tinydep 1.0 (not installed now)"),
        "{error}"
    );

    assert_eq!(pod.tree(), tree_before);
    assert_eq!(pod.pip_freeze(), freeze_before);
    assert_eq!(
        pod.restarts().await,
        restarts_before,
        "ComfyUI was not touched"
    );

    // A requirement that is already met is fine.
    let fine = nodes
        .install(&pod.admin, target(&fine_url, None), &quiet)
        .await
        .unwrap();
    assert_eq!(fine.pack.unwrap().classes, vec!["FineNode"]);
    assert!(fine
        .steps
        .iter()
        .any(|s| s == "requirements already satisfied"));
    assert_eq!(pod.pip_freeze(), freeze_before);
    let _ = &pod.wheels;
    pod.engine.shutdown().await;
}

/// The node map syncs from `NODE_MAP_URL` into the workspace; a failed sync (a bad document,
/// a server that is gone) keeps the last good copy, which resolution goes on using.
#[tokio::test(flavor = "multi_thread")]
async fn the_node_map_syncs_and_a_failed_sync_keeps_the_last_good_copy() {
    use std::sync::atomic::{AtomicBool, Ordering};

    let good = Arc::new(AtomicBool::new(true));
    let serve = Arc::clone(&good);
    let app = axum::Router::new().route(
        "/extension-node-map.json",
        axum::routing::get(move || {
            let good = serve.load(Ordering::SeqCst);
            async move {
                if good {
                    r#"{"https://github.com/acme/ComfyUI-Acme": [["AcmeNode"], {"title_aux": "Acme"}]}"#
                        .to_string()
                } else {
                    "<html>rate limited</html>".to_string()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(dir.path());
    config.node_map_url = Some(format!("http://{addr}/extension-node-map.json"));
    let (engine, _) = Engine::start(config).await.unwrap();
    let nodes = engine.nodes();

    assert_eq!(nodes.sync_map().await.unwrap(), 1);
    let cache = engine.layout().data().join("nodes/extension-node-map.json");
    let cached = std::fs::read_to_string(&cache).unwrap();
    assert!(cached.contains("AcmeNode"));

    good.store(false, Ordering::SeqCst);
    let error = nodes.sync_map().await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("the last good copy stays in use"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_to_string(&cache).unwrap(),
        cached,
        "the cache is untouched"
    );
    let resolved = nodes.resolve("AcmeNode", None).await.unwrap();
    assert_eq!(resolved.repository, "https://github.com/acme/ComfyUI-Acme");
    assert_eq!(resolved.id, "ComfyUI-Acme");

    // Without COMFYUI_DIR there are no packs to manage, and the answer says why.
    let admin = engine.auth().open_caller();
    let error = nodes.list(&admin).await.unwrap_err();
    assert!(matches!(error, NodesError::NotSupervised), "{error}");
    assert_eq!(error.kind(), ErrorKind::Invalid);
}

/// "Make runnable" on a workflow that needs two packs: one that installs (its classes then
/// appear, and the workflow's copy runs as it is), one that fails to import (put back, said in
/// words with the traceback). A person who is not an administrator is told to ask one.
#[tokio::test(flavor = "multi_thread")]
async fn make_runnable_installs_the_packs_a_workflow_names_and_reports_one_that_breaks() {
    let pod = Pod::start(&[]).await;
    let (good, _) = make_repo(
        pod.root.path(),
        "pack-fancy",
        &[&[("__init__.py", &init_py(None, &["FancyNode"]))]],
    );
    let (broken, _) = make_repo(
        pod.root.path(),
        "pack-broken",
        &[&[(
            "__init__.py",
            "raise ImportError('boom: broken on purpose')\n",
        )]],
    );
    let cache = pod
        .engine
        .layout()
        .data()
        .join("nodes/extension-node-map.json");
    std::fs::create_dir_all(cache.parent().unwrap()).unwrap();
    std::fs::write(
        &cache,
        serde_json::json!({
            good.clone(): [["FancyNode"], {"title_aux": "Fancy pack"}],
            broken.clone(): [["BrokenNode"], {"title_aux": "Broken pack"}],
        })
        .to_string(),
    )
    .unwrap();
    let workflow = serde_json::json!({
        "1": {"class_type": "FancyNode", "inputs": {}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}
    });
    let import = |name: &str, workflow: &serde_json::Value| {
        let bytes = serde_json::to_vec(workflow).unwrap();
        let (engine, admin, name) = (Arc::clone(&pod.engine), pod.admin.clone(), name.to_string());
        async move {
            engine
                .workflows()
                .import(&admin, &name, &bytes)
                .await
                .unwrap()
                .id
        }
    };
    let settle = |id: i64| {
        let (engine, admin) = (Arc::clone(&pod.engine), pod.admin.clone());
        async move {
            for _ in 0..1200 {
                let op = engine.operations().get(&admin, id).await.unwrap();
                if !op.state.is_running() {
                    return op;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("the operation did not settle");
        }
    };

    // Not an administrator: the pack step says who can do it; nothing is installed.
    let id = import("fancy.json", &workflow).await;
    let bob = crate::common::bob();
    {
        let bobs = pod
            .engine
            .workflows()
            .import(&bob, "fancy.json", &serde_json::to_vec(&workflow).unwrap())
            .await
            .unwrap()
            .id;
        let op = pod.engine.operations().start(&bob, &bobs).await.unwrap();
        let op = {
            let mut op = op;
            for _ in 0..300 {
                if !op.state.is_running() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                op = pod.engine.operations().get(&bob, op.id).await.unwrap();
            }
            op
        };
        assert_eq!(op.state, OperationState::Failed, "{op:#?}");
        assert!(
            op.steps[0]
                .detail
                .as_deref()
                .unwrap()
                .contains("only an administrator can install custom-node packs"),
            "{op:#?}"
        );
        assert!(!pod.custom_nodes().join("pack-fancy").exists());
    }

    // The administrator: the pack installs, ComfyUI restarts with its class, the copy runs.
    let restarts = pod.restarts().await;
    let started = pod
        .engine
        .operations()
        .start(&pod.admin, &id)
        .await
        .unwrap();
    assert_eq!(
        started.steps[0].title,
        "Install pack Fancy pack (for FancyNode)"
    );
    let op = settle(started.id).await;
    assert_eq!(op.state, OperationState::Done, "{op:#?}");
    assert_eq!(op.steps[0].kind, StepKind::Pack);
    assert_eq!(op.steps[0].state, StepState::Done);
    let seqs: Vec<u32> = op.steps.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, (1..=op.steps.len() as u32).collect::<Vec<_>>());
    assert!(pod.classes().await.contains("FancyNode"));
    assert!(pod.restarts().await > restarts);
    let copy = pod
        .engine
        .workflows()
        .get(&pod.admin, op.result_workflow_id.as_deref().unwrap())
        .await
        .unwrap();
    assert!(
        copy.summary.problems.is_empty(),
        "{:?}",
        copy.summary.problems
    );

    // A pack that fails to import: the step fails with ComfyUI's words, the pod is as before.
    let tree_before = pod.tree();
    let broken_id = import(
        "broken.json",
        &serde_json::json!({"1": {"class_type": "BrokenNode", "inputs": {}}}),
    )
    .await;
    let started = pod
        .engine
        .operations()
        .start(&pod.admin, &broken_id)
        .await
        .unwrap();
    let op = settle(started.id).await;
    assert_eq!(op.state, OperationState::Failed, "{op:#?}");
    let detail = op.steps[0].detail.clone().unwrap();
    assert!(
        detail.contains("ImportError: boom: broken on purpose"),
        "{detail}"
    );
    assert!(detail.contains("ComfyUI is running again"), "{detail}");
    assert!(op.summary.as_deref().unwrap().contains("does not run yet"));
    assert_eq!(pod.tree(), tree_before);
    pod.wait_ready().await;

    // Rolling the first operation back removes the pack it installed (and ComfyUI loses
    // its class); the failed one had nothing to undo.
    let points = pod
        .engine
        .recovery()
        .restore_points(&pod.admin)
        .await
        .unwrap();
    let fancy = points
        .iter()
        .find(|p| p.items.iter().any(|i| i.change == RestoreChange::Pack))
        .unwrap_or_else(|| panic!("{points:#?}"));
    let rolled = pod
        .engine
        .recovery()
        .roll_back(&pod.admin, fancy.id)
        .await
        .unwrap();
    assert!(
        rolled.note.as_deref().unwrap().contains("removed pack"),
        "{rolled:?}"
    );
    assert!(!pod.custom_nodes().join("pack-fancy").exists());
    pod.wait_ready().await;
    assert!(!pod.classes().await.contains("FancyNode"));
}

/// A pack's clone that fails on the network is tried again by itself, each wait said with the
/// next try's time, and works; a host that keeps failing fails its pack with a network failure
/// on the Recovery page, and is then left alone: the next pack from it is not even asked for.
#[tokio::test(flavor = "multi_thread")]
async fn a_clone_that_fails_on_the_network_is_tried_again_then_its_host_is_left_alone() {
    use comfy_standin::git_remote::GitRemote;
    let pod = Pod::start(&[]).await;
    let nodes = pod.engine.nodes();
    let remote = GitRemote::start(pod.root.path().join("served")).await;
    let (file_url, _) = make_repo(
        pod.root.path(),
        "net-pack",
        &[&[("__init__.py", &init_py(None, &["NetNodeA"]))]],
    );
    let url = remote.publish(&file_url, "net-pack");

    // Two 503s: the first two tries fail, the third clones.
    remote.fail_next(2);
    let lines = std::sync::Mutex::new(Vec::<String>::new());
    let progress = |line: &str| lines.lock().unwrap().push(line.to_string());
    let installed = nodes
        .install(&pod.admin, target(&url, None), &progress)
        .await
        .unwrap_or_else(|e| panic!("the third try clones: {e}; {:?}", lines.lock().unwrap()));
    assert_eq!(installed.pack.unwrap().id, "net-pack");
    assert!(pod.classes().await.contains("NetNodeA"));
    let said = lines.lock().unwrap().clone();
    let waits: Vec<&String> = said
        .iter()
        .filter(|l| l.contains("trying again at"))
        .collect();
    assert_eq!(waits.len(), 2, "{said:#?}");
    assert!(
        waits[0].starts_with("that failed (network problem); trying again at ")
            && waits[0].ends_with(" UTC (try 2 of 3)")
            && waits[1].ends_with(" UTC (try 3 of 3)"),
        "{waits:#?}"
    );
    let tree = pod.work_tree();
    assert!(
        !tree.iter().any(|p| p.contains(".staging-")),
        "no half clone is left: {tree:#?}"
    );

    // The host goes down: three tries, then the pack fails, classified as the network.
    remote.set_down(true);
    let (down_url, _) = make_repo(
        pod.root.path(),
        "down-pack",
        &[&[("__init__.py", &init_py(None, &["DownNode"]))]],
    );
    let down_url = remote.publish(&down_url, "down-pack");
    let before = remote.requests();
    let error = nodes
        .install(&pod.admin, target(&down_url, None), &quiet)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("returned error: 503"), "{error}");
    assert!(error.contains("Nothing was changed"), "{error}");
    assert_eq!(remote.requests() - before, 3, "one request per try");
    assert_eq!(pod.work_tree(), tree, "nothing of down-pack is left");
    let list = common::recovery_until(&pod.engine, &pod.admin, "the pack's failure", |l| {
        l.open.iter().any(|f| f.source == FailureSource::Pack)
    })
    .await;
    let failure = list
        .open
        .iter()
        .find(|f| f.source == FailureSource::Pack)
        .unwrap();
    assert_eq!(failure.class, FailureClass::Network, "{failure:?}");
    assert!(failure.actions.contains(&RecoveryAction::Retry));

    // The host is left alone now: another pack from it fails at once, asking nothing.
    let before = remote.requests();
    let lines = std::sync::Mutex::new(Vec::<String>::new());
    let progress = |line: &str| lines.lock().unwrap().push(line.to_string());
    let error = nodes
        .install(&pod.admin, target(&down_url, None), &progress)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&format!("127.0.0.1:{} is not answering", remote.port()))
            && error.contains("leaves it alone until"),
        "{error}"
    );
    assert_eq!(remote.requests(), before, "the host was not asked");
    assert!(
        !lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("trying again")),
        "a host left alone is not waited on: {:?}",
        lines.lock().unwrap()
    );
    assert_eq!(pod.work_tree(), tree);
}
