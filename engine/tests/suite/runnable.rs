//! "Make runnable" against real parts: the ComfyUI stand-in (the recorded `/object_info`), the
//! local fault file server for the workflow's own download links (drops, a wrong hash, a 404),
//! a real SQLite file, and a restart of the engine in the middle of an operation.

use std::sync::Arc;
use std::time::Duration;

use comfy_standin::{ComfyStandin, StandinConfig};
use engine::error::Classify;
use engine::model::*;
use engine::Engine;
use serde_json::{json, Value};

use crate::common::fileserver::{Fault, FileServer, Times};
use crate::common::{bob, fixture_dir, test_config};

fn default_ui() -> Value {
    let path = fixture_dir().join("ui_to_api_default_workflow.json");
    let fixture: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    fixture["ui_workflow"].clone()
}

/// ComfyUI's default workflow as it comes from another machine: its checkpoint is `ckpt` (with
/// the workflow's own links `models`), the sampler is named `Euler`, the scheduler `Karras`,
/// and 20000 steps are above the recorded maximum (10000).
fn shared_workflow(ckpt: &str, models: Value) -> Value {
    let mut workflow = default_ui();
    for node in workflow["nodes"].as_array_mut().unwrap() {
        match node["type"].as_str().unwrap() {
            "CheckpointLoaderSimple" => node["widgets_values"] = json!([ckpt]),
            "KSampler" => {
                node["widgets_values"] = json!([5, "fixed", 20000, 8, "Euler", "Karras", 1])
            }
            _ => {}
        }
    }
    workflow["models"] = models;
    workflow
}

/// Sets the widget values of every `class` node of a UI workflow.
fn set_widgets(workflow: &mut Value, class: &str, values: Value) {
    for node in workflow["nodes"].as_array_mut().unwrap() {
        if node["type"] == class {
            node["widgets_values"] = values.clone();
        }
    }
}

async fn start_engine(root: &std::path::Path, comfy: &ComfyStandin) -> Arc<Engine> {
    let config = engine::config::Config {
        comfyui_url: comfy.url(),
        ..test_config(root)
    };
    let (engine, _) = Engine::start(config).await.unwrap();
    engine.spawn_background_jobs();
    engine
}

async fn import(engine: &Engine, caller: &Caller, name: &str, workflow: &Value) -> String {
    engine
        .workflows()
        .import(caller, name, &serde_json::to_vec(workflow).unwrap())
        .await
        .unwrap()
        .id
}

/// Imports `workflow` as `name`, makes it runnable, and waits (30 s) for where that stops.
async fn make_runnable(
    engine: &Engine,
    caller: &Caller,
    name: &str,
    workflow: &Value,
) -> OperationView {
    let id = import(engine, caller, name, workflow).await;
    let started = engine.operations().start(caller, &id).await.unwrap();
    settled(engine, caller, started.id, Duration::from_secs(30)).await
}

/// Polls the operation until it is no longer running.
async fn settled(engine: &Engine, caller: &Caller, id: i64, limit: Duration) -> OperationView {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let op = engine.operations().get(caller, id).await.unwrap();
        if !op.state.is_running() {
            return op;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the operation did not settle: {op:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn step<'a>(op: &'a OperationView, kind: StepKind, title_has: &str) -> &'a OperationStep {
    op.steps
        .iter()
        .find(|s| s.kind == kind && s.title.contains(title_has))
        .unwrap_or_else(|| panic!("no {kind:?} step with {title_has:?}: {op:#?}"))
}

fn widgets(workflow: &Value, class: &str) -> Value {
    workflow["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["type"] == class)
        .unwrap()["widgets_values"]
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shared_workflow_gets_its_linked_model_and_its_fixes_on_a_copy() {
    let files = FileServer::start().await;
    let spec = files.add_file("/models/linked.safetensors", 300_000);
    // The first attempt drops halfway: the download engine resumes it by itself.
    files.add_fault(
        "/models/linked.safetensors",
        Fault::DropAt(150_000),
        Times::Once,
    );
    let comfy = ComfyStandin::start(StandinConfig::new(fixture_dir()))
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let engine = start_engine(root.path(), &comfy).await;
    let admin = engine.auth().open_caller();
    let workflow = shared_workflow(
        "linked.safetensors",
        json!([{
            "name": "linked.safetensors",
            "url": files.url("/models/linked.safetensors"),
            "directory": "checkpoints",
            "hash": spec.sha256.to_uppercase(),
            "hash_type": "SHA256"
        }]),
    );
    let id = import(&engine, &admin, "shared.json", &workflow).await;
    let original = std::fs::read(root.path().join("workflows/user/shared.json")).unwrap();
    // Before: the mistakes are named, with the offer.
    let summary = engine.workflows().get(&admin, &id).await.unwrap().summary;
    assert!(
        summary
            .problems
            .iter()
            .any(|p| p.contains("steps: 20000 → 10000 (clamped to the maximum)")),
        "{:?}",
        summary.problems
    );

    let started = engine.operations().start(&admin, &id).await.unwrap();
    // A second click while it runs shows the same operation.
    let again = engine.operations().start(&admin, &id).await.unwrap();
    assert_eq!(again.id, started.id);
    // Another person cannot see it.
    let bob = bob();
    let hidden = engine.operations().get(&bob, started.id).await.unwrap_err();
    assert_eq!(hidden.kind(), ErrorKind::NotFound);

    let op = settled(&engine, &admin, started.id, Duration::from_secs(30)).await;
    assert_eq!(op.state, OperationState::Done, "{op:#?}");
    let kinds: Vec<StepKind> = op.steps.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            StepKind::Model,
            StepKind::Fix,
            StepKind::Fix,
            StepKind::Fix,
            StepKind::Check
        ],
        "{op:#?}"
    );
    assert!(
        op.steps.iter().all(|s| s.state == StepState::Done),
        "{op:#?}"
    );
    let model = step(&op, StepKind::Model, "linked.safetensors");
    assert!(
        model.detail.as_deref().unwrap().contains("SHA-256 matches"),
        "{model:?}"
    );
    step(&op, StepKind::Fix, "\"Euler\" → \"euler\"");
    step(&op, StepKind::Fix, "\"Karras\" → \"karras\"");
    step(&op, StepKind::Fix, "20000 → 10000");

    // The file is in place, whole, once.
    let installed = root.path().join("models/checkpoints/linked.safetensors");
    assert_eq!(std::fs::read(&installed).unwrap(), spec.bytes());
    // The original is untouched; the copy has the fixes and runs as it is now.
    assert_eq!(
        std::fs::read(root.path().join("workflows/user/shared.json")).unwrap(),
        original
    );
    let copy_id = op.result_workflow_id.clone().unwrap();
    assert_eq!(copy_id, "user:shared (runnable).json");
    assert_eq!(
        op.summary.as_deref(),
        Some("Runnable: saved as \"shared (runnable)\"")
    );
    let copy = engine.workflows().get(&admin, &copy_id).await.unwrap();
    assert_eq!(
        widgets(&copy.workflow, "KSampler"),
        json!([5, "fixed", 10000, 8, "euler", "karras", 1])
    );
    assert!(copy.summary.models_ready(), "{:?}", copy.summary);
    assert!(
        copy.summary.problems.is_empty(),
        "{:?}",
        copy.summary.problems
    );

    // The operation is stored: a fresh read gives the same steps.
    let stored = engine.operations().get(&admin, op.id).await.unwrap();
    assert_eq!(stored.steps, op.steps);

    // Its restore point holds the file it downloaded; rolling back removes exactly that
    // (the workflows, outside the models folder, stay).
    let points = engine.recovery().restore_points(&admin).await.unwrap();
    let point = points
        .iter()
        .find(|p| p.kind == "operation" && p.target == op.id.to_string())
        .unwrap_or_else(|| panic!("{points:#?}"));
    assert_eq!(point.subject, "make \"shared\" runnable");
    assert_eq!(
        point.items,
        [RestoreItem {
            path: "checkpoints/linked.safetensors".into(),
            change: RestoreChange::Created
        }]
    );
    let rolled = engine.recovery().roll_back(&admin, point.id).await.unwrap();
    assert_eq!(rolled.note.as_deref(), Some("removed 1 file"));
    assert!(!installed.exists());
    assert!(engine.workflows().get(&admin, &copy_id).await.is_ok());
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_links_fail_in_words_and_a_missing_link_or_choice_is_asked() {
    let files = FileServer::start().await;
    files.add_file("/models/wrong-hash.safetensors", 50_000);
    files.add_file("/models/gone.safetensors", 1_000);
    files.add_fault(
        "/models/gone.safetensors",
        Fault::status(404),
        Times::Always,
    );
    let pasted = files.add_file("/hf/pasted.safetensors", 40_000);
    let comfy = ComfyStandin::start(StandinConfig::new(fixture_dir()))
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let engine = start_engine(root.path(), &comfy).await;
    let admin = engine.auth().open_caller();

    // A wrong hash and a 404: each step fails and says why; nothing is left half-written.
    let mut workflow = shared_workflow(
        "wrong-hash.safetensors",
        json!([
            {"name": "wrong-hash.safetensors", "url": files.url("/models/wrong-hash.safetensors"),
             "directory": "checkpoints", "hash": "0".repeat(64), "hash_type": "sha256"},
            {"name": "gone.safetensors", "url": files.url("/models/gone.safetensors"), "directory": "vae"}
        ]),
    );
    workflow["nodes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": 20, "type": "VAELoader", "inputs": [], "outputs": [{"name": "VAE", "type": "VAE", "links": []}], "widgets_values": ["gone.safetensors"]}));
    let op = make_runnable(&engine, &admin, "broken links.json", &workflow).await;
    assert_eq!(op.state, OperationState::Failed, "{op:#?}");
    let hash = step(&op, StepKind::Model, "wrong-hash.safetensors");
    assert_eq!(hash.state, StepState::Failed);
    assert!(
        hash.detail
            .as_deref()
            .unwrap()
            .contains("checksum mismatch"),
        "{hash:?}"
    );
    let gone = step(&op, StepKind::Model, "gone.safetensors");
    assert_eq!(gone.state, StepState::Failed);
    assert!(gone.detail.as_deref().unwrap().contains("404"), "{gone:?}");
    let summary = op.summary.clone().unwrap();
    assert!(summary.contains("does not run yet"), "{summary}");
    assert!(summary.contains("gone.safetensors"), "{summary}");
    assert!(!root
        .path()
        .join("models/checkpoints/wrong-hash.safetensors")
        .exists());
    // The fixes still went onto the copy.
    assert_eq!(
        op.steps
            .iter()
            .filter(|s| s.kind == StepKind::Fix && s.state == StepState::Done)
            .count(),
        3
    );

    // No link known, and a choice with no obvious answer: both are asked.
    let mut workflow = shared_workflow("nowhere.safetensors", json!([]));
    set_widgets(
        &mut workflow,
        "KSampler",
        json!([5, "fixed", 20, 8, "euler", "my_own_schedule", 1]),
    );
    let op = make_runnable(&engine, &admin, "asks.json", &workflow).await;
    assert_eq!(op.state, OperationState::NeedsYou, "{op:#?}");
    assert!(op
        .summary
        .as_deref()
        .unwrap()
        .starts_with("2 questions are waiting for you"));
    let link = step(&op, StepKind::Model, "nowhere.safetensors").clone();
    assert_eq!(link.state, StepState::Question);
    assert!(link.wants_url);
    assert!(link
        .detail
        .as_deref()
        .unwrap()
        .contains("no download link known"));
    let choice = step(&op, StepKind::Fix, "scheduler").clone();
    assert_eq!(choice.state, StepState::Question);
    assert!(choice.choices.contains(&"normal".to_string()), "{choice:?}");

    let answer = |seq: u32, answer: &str| StepAnswer {
        id: op.id,
        seq,
        answer: answer.into(),
    };
    let ops = engine.operations();
    // Answers are checked.
    let not_a_choice = ops
        .answer(&admin, &answer(choice.seq, "nope"))
        .await
        .unwrap_err();
    assert_eq!(not_a_choice.kind(), ErrorKind::Invalid);
    assert!(not_a_choice.to_string().contains("not one of the choices"));
    let not_a_link = ops
        .answer(&admin, &answer(link.seq, "ftp://x/y"))
        .await
        .unwrap_err();
    assert_eq!(not_a_link.kind(), ErrorKind::Invalid);
    let bob = bob();
    let foreign = ops
        .answer(&bob, &answer(choice.seq, "normal"))
        .await
        .unwrap_err();
    assert_eq!(foreign.kind(), ErrorKind::NotFound);

    ops.answer(&admin, &answer(choice.seq, "normal"))
        .await
        .unwrap();
    let after_one = settled(&engine, &admin, op.id, Duration::from_secs(30)).await;
    assert_eq!(after_one.state, OperationState::NeedsYou);
    assert!(after_one
        .summary
        .as_deref()
        .unwrap()
        .starts_with("1 question is"));
    ops.answer(
        &admin,
        &answer(link.seq, &files.url("/hf/pasted.safetensors")),
    )
    .await
    .unwrap();
    let done = settled(&engine, &admin, op.id, Duration::from_secs(30)).await;
    assert_eq!(done.state, OperationState::Done, "{done:#?}");
    assert_eq!(
        std::fs::read(root.path().join("models/checkpoints/nowhere.safetensors")).unwrap(),
        pasted.bytes()
    );
    let copy = engine
        .workflows()
        .get(&admin, done.result_workflow_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(
        widgets(&copy.workflow, "KSampler"),
        json!([5, "fixed", 20, 8, "euler", "normal", 1])
    );
    engine.shutdown().await;
}

/// "Never a file another workflow needs": a rollback keeps the file a make runnable downloaded
/// once another workflow of the library names it, and says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_keeps_a_file_another_workflow_needs() {
    let files = FileServer::start().await;
    files.add_file("/models/shared.safetensors", 100_000);
    let comfy = ComfyStandin::start(StandinConfig::new(fixture_dir()))
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let engine = start_engine(root.path(), &comfy).await;
    let admin = engine.auth().open_caller();
    let mut workflow = shared_workflow(
        "shared.safetensors",
        json!([{"name": "shared.safetensors", "url": files.url("/models/shared.safetensors"), "directory": "checkpoints"}]),
    );
    set_widgets(
        &mut workflow,
        "KSampler",
        json!([5, "fixed", 20, 8, "euler", "normal", 1]),
    );
    let op = make_runnable(&engine, &admin, "first.json", &workflow).await;
    assert_eq!(op.state, OperationState::Done, "{op:#?}");
    let file = root.path().join("models/checkpoints/shared.safetensors");
    assert!(file.is_file());

    // Another workflow picks the same checkpoint: the rollback leaves the file for it.
    import(
        &engine,
        &admin,
        "second.json",
        &shared_workflow("shared.safetensors", json!([])),
    )
    .await;
    let point = engine.recovery().restore_points(&admin).await.unwrap()[0].clone();
    assert_eq!(point.target, op.id.to_string());
    let rolled = engine.recovery().roll_back(&admin, point.id).await.unwrap();
    assert_eq!(
        rolled.note.as_deref(),
        Some("removed 0 files; kept checkpoints/shared.safetensors (another workflow needs it)")
    );
    assert!(file.is_file());
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operation_continues_after_a_restart() {
    let files = FileServer::start().await;
    let size = 2_000_000;
    let spec = files.add_file("/models/slow.safetensors", size);
    // Slow enough that the engine stops in the middle of the download.
    files.add_fault(
        "/models/slow.safetensors",
        Fault::Trickle {
            chunk: 8_192,
            interval: Duration::from_millis(50),
        },
        Times::Always,
    );
    let comfy = ComfyStandin::start(StandinConfig::new(fixture_dir()))
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let engine = start_engine(root.path(), &comfy).await;
    let admin = engine.auth().open_caller();
    let workflow = shared_workflow(
        "slow.safetensors",
        json!([{"name": "slow.safetensors", "url": files.url("/models/slow.safetensors"), "directory": "checkpoints"}]),
    );
    let id = import(&engine, &admin, "slow.json", &workflow).await;
    let started = engine.operations().start(&admin, &id).await.unwrap();
    // Wait until the download is under way, then stop the engine (the operation is running).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mid = loop {
        let op = engine.operations().get(&admin, started.id).await.unwrap();
        let downloading = op.steps[0].state == StepState::Running
            && files.bytes_sent("/models/slow.safetensors") > 50_000;
        if downloading || tokio::time::Instant::now() > deadline {
            break op;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(mid.state, OperationState::Running, "{mid:#?}");
    assert_eq!(mid.steps[0].state, StepState::Running, "{mid:#?}");
    engine.shutdown().await;
    drop(engine);

    // A new engine on the same workspace continues the operation by itself.
    files.clear_faults("/models/slow.safetensors");
    let engine = start_engine(root.path(), &comfy).await;
    let op = settled(&engine, &admin, started.id, Duration::from_secs(30)).await;
    assert_eq!(op.state, OperationState::Done, "{op:#?}");
    assert_eq!(
        std::fs::read(root.path().join("models/checkpoints/slow.safetensors")).unwrap(),
        spec.bytes()
    );
    // Resumed, not downloaded twice.
    assert!(
        files.bytes_sent("/models/slow.safetensors") < 2 * size,
        "sent {}",
        files.bytes_sent("/models/slow.safetensors")
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_in_another_folder_is_offered_first_and_linked_without_a_copy() {
    use std::os::unix::fs::MetadataExt;
    let comfy = ComfyStandin::start(StandinConfig::new(fixture_dir()))
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let engine = start_engine(root.path(), &comfy).await;
    let admin = engine.auth().open_caller();
    // The checkpoint sits in loras/ (a common slip when copying files by hand).
    let found = root.path().join("models/loras/kept/Other.safetensors");
    std::fs::create_dir_all(found.parent().unwrap()).unwrap();
    std::fs::write(&found, b"the same bytes").unwrap();
    let mut workflow = shared_workflow("other.safetensors", json!([]));
    set_widgets(
        &mut workflow,
        "KSampler",
        json!([5, "fixed", 20, 8, "euler", "normal", 1]),
    );
    let op = make_runnable(&engine, &admin, "elsewhere.json", &workflow).await;
    assert_eq!(op.state, OperationState::NeedsYou, "{op:#?}");
    let offer = step(&op, StepKind::Model, "other.safetensors").clone();
    assert_eq!(offer.state, StepState::Question);
    assert_eq!(
        offer.title,
        "Use models/loras/kept/Other.safetensors for checkpoints/other.safetensors?"
    );
    assert_eq!(offer.choices, ["Use models/loras/kept/Other.safetensors"]);
    assert!(!offer.wants_url);

    engine
        .operations()
        .answer(
            &admin,
            &StepAnswer {
                id: op.id,
                seq: offer.seq,
                answer: offer.choices[0].clone(),
            },
        )
        .await
        .unwrap();
    let done = settled(&engine, &admin, op.id, Duration::from_secs(30)).await;
    assert_eq!(done.state, OperationState::Done, "{done:#?}");
    let linked = root.path().join("models/checkpoints/other.safetensors");
    assert_eq!(std::fs::read(&linked).unwrap(), b"the same bytes");
    assert_eq!(
        std::fs::metadata(&linked).unwrap().ino(),
        std::fs::metadata(&found).unwrap().ino(),
        "a link, not a copy"
    );
    // Rolled back: the link goes, the file it pointed to stays.
    let point = engine.recovery().restore_points(&admin).await.unwrap()[0].clone();
    assert_eq!(
        point.items,
        [RestoreItem {
            path: "checkpoints/other.safetensors".into(),
            change: RestoreChange::Linked
        }]
    );
    engine.recovery().roll_back(&admin, point.id).await.unwrap();
    assert!(!linked.exists());
    assert_eq!(std::fs::read(&found).unwrap(), b"the same bytes");
    engine.shutdown().await;
}
