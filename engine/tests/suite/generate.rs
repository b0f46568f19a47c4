//! The Generate domain against real parts: SQLite in a temp workspace, the ComfyUI stand-in
//! that replays the recorded protocol, and a local HTTP server playing an OpenAI-compatible
//! LLM. Covers: a generation from a library workflow with overall progress, recorded with its
//! outputs and duration; remembered values; failures, cancel and interrupt; start-up
//! reconciliation from ComfyUI's history; uploads into the input folder; prompt enhancement
//! with every LLM failure falling back to the static style.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use comfy_standin::{ComfyStandin, StandinConfig};
use common::fixture_dir;
use engine::config::{Config, LlmConfig};
use engine::generate::enhance::enhance;
use engine::generate::history::NewGeneration;
use engine::model::*;
use engine::secret::Secret;
use engine::Engine;
use serde_json::{json, Value};

/// Saves an API prompt as a user workflow; returns its id.
fn save_workflow(engine: &Engine, name: &str, prompt: &Value) -> String {
    let dir = engine.layout().workflow_user();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_vec(prompt).unwrap(),
    )
    .unwrap();
    format!("user:{name}.json")
}

/// Polls the history row until `done` holds (the tracker applies events in its own task).
async fn wait_for_row(
    engine: &Engine,
    prompt_id: &str,
    done: impl Fn(&Generation) -> bool,
) -> Generation {
    let store = engine.generator().history();
    for _ in 0..200 {
        if let Some(row) = store.by_prompt(prompt_id).await.unwrap() {
            if done(&row) {
                return row;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "row never reached the expected state: {:?}",
        store.by_prompt(prompt_id).await.unwrap()
    );
}

fn value(node: &str, input: &str, v: Value) -> InputValue {
    InputValue {
        node_id: node.into(),
        input: input.into(),
        value: v,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_generation_runs_with_overall_progress_and_is_recorded_with_its_outputs() {
    let standin = ComfyStandin::start(StandinConfig::new(fixture_dir()))
        .await
        .unwrap();
    let (engine, _dir) = common::engine_with_comfyui(standin.url()).await;
    engine.spawn_background_jobs();
    let id = save_workflow(
        &engine,
        "invert",
        &standin.fixtures().prompt_of("post_prompt_ok"),
    );

    // The library card: model-free, so ready, with its node types searchable.
    let library = engine
        .generator()
        .library(&engine.auth().open_caller())
        .await
        .unwrap();
    let card = library
        .ready
        .iter()
        .find(|c| c.summary.id == id)
        .unwrap_or_else(|| panic!("{library:?}"));
    assert!(card.presets.is_empty());
    assert_eq!(card.download_bytes, 0);
    // ComfyUI's saved workflows are cards too, but a file that holds no workflow is not.
    let ids: Vec<&str> = library
        .ready
        .iter()
        .chain(&library.needs_models)
        .map(|c| c.summary.id.as_str())
        .collect();
    assert!(ids.contains(&"comfyui:my flow.json"), "{ids:?}");
    assert!(!ids.contains(&"comfyui:sub/b.json"), "{ids:?}");
    assert_eq!(
        card.summary.node_types,
        vec!["EmptyImage", "ImageInvert", "SaveImage"]
    );
    assert!(generate_card_matches(card, "invert"));
    assert!(generate_card_matches(card, "saveimage"));
    assert!(!generate_card_matches(card, "video"));

    // First visit: nothing remembered, no history.
    let form = engine
        .generator()
        .form(&engine.auth().open_caller(), &id)
        .await
        .unwrap();
    assert!(form.remembered.is_empty());
    assert!(form.history.is_empty());
    assert!(!form.llm_enabled);
    assert!(form
        .card
        .summary
        .inputs
        .iter()
        .any(|i| i.node_id == "1" && i.input == "width"));

    let mut rx = engine.events().subscribe();
    let mut rows_rx = engine.events().subscribe();
    let inputs = vec![value("1", "width", json!(80))];
    let submitted = engine
        .generator()
        .submit(&engine.auth().open_caller(), &id, &inputs)
        .await
        .unwrap();
    let prompt_id = submitted
        .prompt_id
        .clone()
        .unwrap_or_else(|| panic!("{submitted:?}"));
    let events = common::run_events(&mut rx, &prompt_id, Duration::from_secs(30)).await;

    // Overall progress: counted against the prompt's 3 nodes, never going back, ending whole.
    let fractions: Vec<(usize, usize, f64)> = events
        .iter()
        .filter_map(|e| match e {
            RunEventKind::Nodes {
                done,
                total,
                fraction,
            } => Some((*done, *total, *fraction)),
            _ => None,
        })
        .collect();
    assert!(!fractions.is_empty(), "no overall progress in {events:?}");
    assert!(
        fractions.iter().all(|(_, total, _)| *total == 3),
        "{fractions:?}"
    );
    assert!(
        fractions.windows(2).all(|w| w[1].2 >= w[0].2),
        "{fractions:?}"
    );
    assert_eq!(fractions.last().map(|f| (f.0, f.2)), Some((3, 1.0)));

    // The history row: succeeded, with the form's values, its outputs and a duration.
    let row = wait_for_row(&engine, &prompt_id, |g| {
        g.status == GenerationStatus::Succeeded
    })
    .await;
    assert_eq!(row.workflow_id, id);
    assert_eq!(row.workflow_name, "invert");
    assert_eq!(row.inputs, inputs);
    assert!(row.error.is_none());
    assert!(row.started_ms.is_some());
    assert!(row.duration_ms().is_some());
    assert!(
        row.outputs
            .iter()
            .any(|o| o.media == "images" && o.url.starts_with("/api/comfy/view?")),
        "{row:?}"
    );

    // Live viewers were told of every change to the row: queued first, succeeded last.
    let mut published = Vec::new();
    while published.last() != Some(&GenerationStatus::Succeeded) {
        let event = tokio::time::timeout(Duration::from_secs(10), rows_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no succeeded row published; saw {published:?}"))
            .unwrap();
        if let Event::Generation(g) = event {
            if g.prompt_id == prompt_id {
                published.push(g.status);
            }
        }
    }
    assert_eq!(
        published.first(),
        Some(&GenerationStatus::Queued),
        "{published:?}"
    );
    assert!(
        published.contains(&GenerationStatus::Running),
        "{published:?}"
    );
    assert_eq!(
        published.last(),
        Some(&GenerationStatus::Succeeded),
        "{published:?}"
    );

    // Next visit: the values are remembered and the run is in the history.
    let form = engine
        .generator()
        .form(&engine.auth().open_caller(), &id)
        .await
        .unwrap();
    assert_eq!(form.remembered, inputs);
    assert_eq!(form.history.len(), 1);
    assert_eq!(form.history[0].prompt_id, prompt_id);
    assert_eq!(
        engine
            .generator()
            .get(&engine.auth().open_caller(), row.id)
            .await
            .unwrap(),
        row
    );
    assert!(matches!(
        engine
            .generator()
            .get(&engine.auth().open_caller(), row.id + 100)
            .await,
        Err(engine::generate::GenerateError::NotFound(_))
    ));

    // A refused value submits nothing and records nothing.
    let err = engine
        .generator()
        .submit(
            &engine.auth().open_caller(),
            &id,
            &[value("99", "width", json!(1))],
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("node 99"), "{err}");
    assert_eq!(
        engine
            .generator()
            .list(&engine.auth().open_caller(), Some(&id))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        engine
            .generator()
            .form(&engine.auth().open_caller(), &id)
            .await
            .unwrap()
            .remembered,
        inputs,
        "a refused value is not remembered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_keeps_the_error_and_runs_can_be_cancelled_or_interrupted() {
    let standin = ComfyStandin::start(StandinConfig::new(fixture_dir()))
        .await
        .unwrap();
    let (engine, _dir) = common::engine_with_comfyui(standin.url()).await;
    engine.spawn_background_jobs();
    let ok = save_workflow(
        &engine,
        "ok",
        &standin.fixtures().prompt_of("post_prompt_ok"),
    );

    // The recorded execution error: the row says which node failed.
    standin.play_next("ws_prompt_execution_error");
    let failed = engine
        .generator()
        .submit(&engine.auth().open_caller(), &ok, &[])
        .await
        .unwrap()
        .prompt_id
        .unwrap();
    let row = wait_for_row(&engine, &failed, |g| !g.status.is_active()).await;
    assert_eq!(row.status, GenerationStatus::Failed, "{row:?}");
    let error = row.error.clone().expect("an error");
    assert!(error.contains("(node "), "{error}");

    // A slow run (held while running) and one queued behind it.
    let slow = save_workflow(
        &engine,
        "slow",
        &standin.fixtures().prompt_of("post_prompt_slow_0"),
    );
    let running = engine
        .generator()
        .submit(&engine.auth().open_caller(), &slow, &[])
        .await
        .unwrap()
        .prompt_id
        .unwrap();
    wait_for_row(&engine, &running, |g| g.status == GenerationStatus::Running).await;
    let pending = engine
        .generator()
        .submit(
            &engine.auth().open_caller(),
            &slow,
            &[value("1", "width", json!(3071))],
        )
        .await
        .unwrap()
        .prompt_id
        .unwrap();

    // Pending: taken out of ComfyUI's queue and marked cancelled at once.
    let cancelled = engine
        .generator()
        .cancel(&engine.auth().open_caller(), &pending)
        .await
        .unwrap();
    assert_eq!(cancelled.status, GenerationStatus::Cancelled);
    assert!(cancelled.finished_ms.is_some());
    let queue = engine.bridge().queue().await.unwrap();
    assert!(
        queue.pending.iter().all(|e| e.prompt_id != pending),
        "{queue:?}"
    );

    // Running: interrupted; ComfyUI's report settles the row.
    engine
        .generator()
        .cancel(&engine.auth().open_caller(), &running)
        .await
        .unwrap();
    let row = wait_for_row(&engine, &running, |g| !g.status.is_active()).await;
    assert_eq!(row.status, GenerationStatus::Interrupted, "{row:?}");

    // Cancelling what has ended changes nothing; an unknown prompt is named.
    assert_eq!(
        engine
            .generator()
            .cancel(&engine.auth().open_caller(), &running)
            .await
            .unwrap()
            .status,
        GenerationStatus::Interrupted
    );
    let err = engine
        .generator()
        .cancel(&engine.auth().open_caller(), "no-such-prompt")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no-such-prompt"), "{err}");

    let all = engine
        .generator()
        .list(&engine.auth().open_caller(), None)
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].prompt_id, pending, "newest first");
}

/// Out of GPU memory, as ComfyUI reports it (the stand-in replays the recorded execution error
/// with torch's out-of-memory exception): the run is in Recovery as "out of GPU memory" with
/// the advice, for its owner; Retry runs it again (here it fits) and the failure is resolved.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_out_of_gpu_memory_is_in_recovery_with_advice_and_a_retry_runs_it_again() {
    let standin = ComfyStandin::start(StandinConfig::new(fixture_dir()))
        .await
        .unwrap();
    let (engine, _dir) = common::engine_with_comfyui(standin.url()).await;
    engine.spawn_background_jobs();
    let admin = engine.auth().open_caller();
    let ok = save_workflow(
        &engine,
        "big",
        &standin.fixtures().prompt_of("post_prompt_ok"),
    );
    // Every attempt runs out of memory until the "GPU" is freed (an attempt the queue retries
    // by itself, say after a slow start, does too).
    let out_of_memory = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let still_full = Arc::clone(&out_of_memory);
    standin.set_chooser(move |_| {
        still_full
            .load(std::sync::atomic::Ordering::SeqCst)
            .then(|| "ws_prompt_out_of_memory".to_string())
    });
    let prompt_id = engine
        .generator()
        .submit(&admin, &ok, &[value("1", "batch_size", json!(8))])
        .await
        .unwrap()
        .prompt_id
        .unwrap();
    let row = wait_for_row(&engine, &prompt_id, |g| !g.status.is_active()).await;
    assert_eq!(row.status, GenerationStatus::Failed, "{row:?}");
    assert!(
        row.error
            .as_deref()
            .unwrap_or("")
            .contains("ran out of memory"),
        "ComfyUI's words are kept: {row:?}"
    );

    let list = common::recovery_until(&engine, &admin, "the run out of memory", |l| {
        !l.open.is_empty()
    })
    .await;
    let failure = &list.open[0];
    assert_eq!(failure.source, FailureSource::Job, "{failure:?}");
    assert_eq!(failure.class, FailureClass::OutOfMemory, "{failure:?}");
    assert_eq!(failure.subject, "run of \"big\"");
    assert!(
        failure.sentence.contains("smaller size or batch") && failure.sentence.contains("lighter"),
        "{}",
        failure.sentence
    );
    assert!(
        failure.detail.contains("ran out of memory on your GPU"),
        "{}",
        failure.detail
    );
    assert_eq!(
        failure.actions,
        [RecoveryAction::Retry, RecoveryAction::Dismiss]
    );
    assert!(list
        .week
        .iter()
        .any(|c| c.class == FailureClass::OutOfMemory && c.count == 1));
    assert_eq!(
        list.banner().as_deref(),
        Some("A run failed: out of GPU memory")
    );

    // Retry: the same workflow and values run again as a new job; this time it fits.
    out_of_memory.store(false, std::sync::atomic::Ordering::SeqCst);
    let retried = engine
        .recovery()
        .act(&admin, failure.id, RecoveryAction::Retry, None)
        .await
        .unwrap();
    assert_eq!(retried.state, FailureState::Resolved);
    let started = std::time::Instant::now();
    let rerun = loop {
        let page = engine.jobs().list(&admin, None, None, None).await.unwrap();
        if let Some(job) = page
            .jobs
            .iter()
            .find(|j| j.state == JobState::Succeeded && j.workflow_name == "big")
        {
            break job.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the retried run never succeeded: {page:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let last_prompt = standin
        .requests()
        .into_iter()
        .rfind(|r| r.uri == "/prompt")
        .expect("the rerun was submitted");
    let sent: Value = serde_json::from_slice(&last_prompt.body).unwrap();
    assert_eq!(
        sent["prompt"]["1"]["inputs"]["batch_size"],
        json!(8),
        "the retry keeps the run's values ({rerun:?})"
    );
    assert!(engine
        .recovery()
        .list(&admin)
        .await
        .unwrap()
        .open
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_left_running_are_settled_from_comfyuis_history() {
    let standin = ComfyStandin::start(StandinConfig::new(fixture_dir()))
        .await
        .unwrap();
    let (engine, _dir) = common::engine_with_comfyui(standin.url()).await;
    // The prompt ids ComfyUI's recorded history knows, and one it does not.
    let known = |name: &str| -> String {
        let path = fixture_dir().join(format!("{name}.json"));
        let doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        doc["response"]["body_json"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .clone()
    };
    let success = known("get_history_prompt_success");
    let error = known("get_history_prompt_execution_error");
    let interrupted = known("get_history_prompt_interrupted");
    let lost = "00000000-0000-4000-8000-000000000000".to_string();
    let store = engine.generator().history();
    for prompt_id in [&success, &error, &interrupted, &lost] {
        store
            .insert(NewGeneration {
                workflow_id: "user:x.json",
                workflow_name: "x",
                inputs: &[],
                prompt_id,
                created_ms: 1_000,
                user_id: 1,
            })
            .await
            .unwrap();
    }
    store
        .apply_event(&interrupted, &RunEventKind::Started, 2_000)
        .await
        .unwrap();

    assert_eq!(engine.generator().reconcile_generations().await.unwrap(), 4);
    let row = |id: String| {
        let store = store.clone();
        async move { store.by_prompt(&id).await.unwrap().unwrap() }
    };
    let ok = row(success).await;
    assert_eq!(ok.status, GenerationStatus::Succeeded);
    assert!(
        !ok.outputs.is_empty(),
        "outputs come from the history: {ok:?}"
    );
    assert!(ok.finished_ms.is_some());
    let failed = row(error).await;
    assert_eq!(failed.status, GenerationStatus::Failed);
    assert!(failed.error.as_deref().is_some_and(|e| !e.is_empty()));
    assert_eq!(row(interrupted).await.status, GenerationStatus::Interrupted);
    let lost = row(lost).await;
    assert_eq!(lost.status, GenerationStatus::Failed);
    assert!(
        lost.error.as_deref().unwrap().contains("no record"),
        "{lost:?}"
    );
    // Nothing active is left: a second pass changes nothing.
    assert_eq!(engine.generator().reconcile_generations().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn images_are_uploaded_into_comfyuis_input_folder() {
    let standin = ComfyStandin::start(StandinConfig::new(fixture_dir()))
        .await
        .unwrap();
    let (engine, _dir) = common::engine_with_comfyui(standin.url()).await;
    let png = std::fs::read(fixture_dir().join("view_output.png")).unwrap();

    let first = engine
        .generator()
        .upload_input_image("upload_test.png", png.clone())
        .await
        .unwrap();
    assert_eq!(first.value, "upload_test.png");
    assert_eq!(first.subfolder, "");
    // The same bytes again keep the name; different bytes are renamed by ComfyUI.
    let again = engine
        .generator()
        .upload_input_image("upload_test.png", png.clone())
        .await
        .unwrap();
    assert_eq!(again.value, "upload_test.png");
    let mut other = png.clone();
    other.push(0);
    let renamed = engine
        .generator()
        .upload_input_image("upload_test.png", other)
        .await
        .unwrap();
    assert_eq!(renamed.value, "upload_test (1).png");

    // What ComfyUI received: a multipart form with the image, type=input and no overwrite.
    let upload = standin
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.uri == "/upload/image")
        .expect("a POST /upload/image");
    let body = String::from_utf8_lossy(&upload.body);
    assert!(
        body.contains("name=\"image\"; filename=\"upload_test.png\""),
        "{body}"
    );
    assert!(body.contains("name=\"type\"\r\n\r\ninput\r\n"), "{body}");
    assert!(
        body.contains("name=\"overwrite\"\r\n\r\nfalse\r\n"),
        "{body}"
    );
    // ComfyUI serves it back from the input folder.
    let (_, bytes) = engine
        .bridge()
        .view("upload_test.png", "", "input")
        .await
        .unwrap();
    assert!(!bytes.is_empty());

    // Refused before asking ComfyUI.
    for (name, bytes, why) in [
        ("../x.png", png.clone(), "plain file name"),
        ("notes.txt", png.clone(), "not an image"),
        ("empty.png", Vec::new(), "empty"),
    ] {
        let err = engine
            .generator()
            .upload_input_image(name, bytes)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(why), "{name}: {err}");
    }
    let err = engine
        .generator()
        .upload_input_image_base64("a.png", "%%%")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("base64"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_to_an_unreachable_comfyui_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = Engine::start(common::test_config(dir.path()))
        .await
        .unwrap();
    let err = engine
        .generator()
        .upload_input_image("a.png", vec![1, 2, 3])
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("ComfyUI did not take the image"), "{text}");
    assert!(text.contains("unreachable"), "{text}");
}

/// Copies a file into ComfyUI's output folder and indexes it; returns its gallery id.
async fn gallery_file(engine: &Engine, name: &str, bytes: &[u8], prompt_id: Option<&str>) -> i64 {
    let root = engine.gallery().root().to_path_buf();
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join(name), bytes).unwrap();
    engine
        .gallery()
        .current()
        .index_path(name, prompt_id)
        .await
        .unwrap();
    let page = engine
        .gallery()
        .page(&engine.auth().open_caller(), &GalleryQuery::default())
        .await
        .unwrap();
    page.items
        .iter()
        .find(|i| i.path == name)
        .unwrap_or_else(|| panic!("{name} not indexed: {page:?}"))
        .id
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gallery_output_opens_its_workflow_with_its_values() {
    // Without ComfyUI's saved workflows (one of them has the same shape as the file's).
    let standin = ComfyStandin::start(StandinConfig {
        seed_userdata: false,
        ..StandinConfig::new(fixture_dir())
    })
    .await
    .unwrap();
    let (engine, _dir) = common::engine_with_comfyui(standin.url()).await;
    engine.spawn_background_jobs();
    // view_output.png carries ComfyUI's workflow and prompt of EmptyImage → Invert → Save.
    let png = std::fs::read(fixture_dir().join("view_output.png")).unwrap();
    let id = save_workflow(
        &engine,
        "invert",
        &standin.fixtures().prompt_of("post_prompt_ok"),
    );
    // A library workflow of another shape is not picked.
    save_workflow(
        &engine,
        "slow",
        &standin.fixtures().prompt_of("post_prompt_slow_0"),
    );

    // The library workflow of the same shape, with the values the file's prompt used.
    let item = gallery_file(&engine, "ComfyUI_00001_.png", &png, None).await;
    let found = engine
        .generator()
        .from_output(&engine.auth().open_caller(), item)
        .await
        .unwrap();
    assert_eq!(found.workflow_id, id);
    assert!(!found.imported);
    assert!(
        found.values.contains(&value("1", "width", json!(64))),
        "{found:?}"
    );

    // Without it, the file's own workflow is imported and opened.
    engine
        .workflows()
        .delete(&engine.auth().open_caller(), &id)
        .await
        .unwrap();
    let found = engine
        .generator()
        .from_output(&engine.auth().open_caller(), item)
        .await
        .unwrap();
    assert!(found.imported);
    assert_eq!(found.workflow_id, "user:ComfyUI_00001_.json");
    assert!(found.values.contains(&value("1", "width", json!(64))));
    engine
        .generator()
        .form(&engine.auth().open_caller(), &found.workflow_id)
        .await
        .unwrap();
    // Opened again, the imported one is found instead of imported twice.
    let again = engine
        .generator()
        .from_output(&engine.auth().open_caller(), item)
        .await
        .unwrap();
    assert_eq!(
        (again.workflow_id.as_str(), again.imported),
        ("user:ComfyUI_00001_.json", false)
    );

    // An output of a generation made here opens its workflow with exactly the values sent.
    let slow_free = save_workflow(
        &engine,
        "mine",
        &standin.fixtures().prompt_of("post_prompt_ok"),
    );
    let inputs = vec![value("1", "width", json!(96))];
    let prompt_id = engine
        .generator()
        .submit(&engine.auth().open_caller(), &slow_free, &inputs)
        .await
        .unwrap()
        .prompt_id
        .unwrap();
    wait_for_row(&engine, &prompt_id, |g| !g.status.is_active()).await;
    let made_here = gallery_file(&engine, "made_here.png", &png, Some(&prompt_id)).await;
    let found = engine
        .generator()
        .from_output(&engine.auth().open_caller(), made_here)
        .await
        .unwrap();
    assert_eq!(found.workflow_id, slow_free);
    assert_eq!(found.values, inputs);

    // A file without a workflow cannot be opened, and says so.
    let sound = gallery_file(&engine, "clip.wav", b"RIFF\0\0\0\0WAVE", None).await;
    let err = engine
        .generator()
        .from_output(&engine.auth().open_caller(), sound)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("carries no workflow"), "{err}");
}

// -- the LLM ---------------------------------------------------------------------------------

/// What the fake LLM saw: each request's Authorization header and JSON body.
type Requests = Arc<Mutex<Vec<(Option<String>, Value)>>>;

#[derive(Clone, Default)]
struct Seen {
    requests: Requests,
}

/// An OpenAI-compatible chat server whose behaviour is chosen by the first path segment:
/// `/ok/…` answers, `/fail/…` 500, `/garbage/…` non-JSON, `/nochoice/…` JSON without choices,
/// `/hang/…` never answers in time.
async fn fake_llm() -> (String, Seen) {
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::post;
    use axum::Json;

    async fn chat(
        State(seen): State<Seen>,
        Path(mode): Path<String>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> axum::response::Response {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        seen.requests.lock().unwrap().push((auth, body.clone()));
        match mode.as_str() {
            "ok" => {
                let user = body["messages"][1]["content"].as_str().unwrap_or_default();
                Json(json!({
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "choices": [{
                        "index": 0,
                        "message": {"role": "assistant", "content": format!("\"{user}, golden hour, 85mm portrait lens\"")},
                        "finish_reason": "stop"
                    }]
                }))
                .into_response()
            }
            "fail" => (StatusCode::INTERNAL_SERVER_ERROR, "model not loaded").into_response(),
            "garbage" => (StatusCode::OK, "<html>proxy login</html>").into_response(),
            "nochoice" => Json(json!({"error": "busy"})).into_response(),
            _ => {
                tokio::time::sleep(Duration::from_secs(10)).await;
                StatusCode::OK.into_response()
            }
        }
    }

    let seen = Seen::default();
    let app = axum::Router::new()
        .route("/{mode}/v1/chat/completions", post(chat))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn llm(base: &str, mode: &str) -> LlmConfig {
    LlmConfig {
        base_url: format!("{base}/{mode}/v1"),
        model: "llama3.2".into(),
        api_key: Some(Secret::new("sk-test-key")),
        timeout: Duration::from_millis(500),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn enhance_uses_the_llm_and_falls_back_to_the_style_on_any_failure() {
    let (base, seen) = fake_llm().await;

    let answer = enhance(
        Some(&llm(&base, "ok")),
        "a lighthouse keeper",
        "blurry",
        PromptStyle::Cinematic,
    )
    .await;
    assert!(answer.by_llm, "{answer:?}");
    assert_eq!(answer.fallback_reason, None);
    // The LLM's quotes are stripped; the negative gets the style's terms.
    assert_eq!(
        answer.positive,
        "a lighthouse keeper, golden hour, 85mm portrait lens"
    );
    assert!(answer.negative.starts_with("blurry, "), "{answer:?}");
    let (auth, body) = seen.requests.lock().unwrap()[0].clone();
    assert_eq!(auth.as_deref(), Some("Bearer sk-test-key"));
    assert_eq!(body["model"], "llama3.2");
    assert_eq!(body["stream"], false);
    assert!(body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .contains("film still"));

    let (static_positive, static_negative) = engine::generate::enhance::apply_style(
        "a lighthouse keeper",
        "blurry",
        PromptStyle::Cinematic,
    );
    for (mode, reason) in [
        ("fail", "HTTP 500"),
        ("garbage", "not JSON"),
        ("nochoice", "not a chat completion"),
        ("hang", "no answer within 0.5 s"),
    ] {
        let started = std::time::Instant::now();
        let answer = enhance(
            Some(&llm(&base, mode)),
            "a lighthouse keeper",
            "blurry",
            PromptStyle::Cinematic,
        )
        .await;
        assert!(!answer.by_llm, "{mode}: {answer:?}");
        assert_eq!(answer.positive, static_positive, "{mode}");
        assert_eq!(answer.negative, static_negative, "{mode}");
        let why = answer.fallback_reason.unwrap_or_default();
        assert!(why.contains(reason), "{mode}: {why}");
        assert!(why.contains("cinematic style was applied"), "{mode}: {why}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{mode} took too long"
        );
    }

    // Nothing listening.
    let answer = enhance(
        Some(&llm("http://127.0.0.1:9", "x")),
        "a fox",
        "",
        PromptStyle::Minimal,
    )
    .await;
    assert!(answer
        .fallback_reason
        .unwrap_or_default()
        .contains("cannot connect"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_engine_enhances_with_the_configured_llm_or_the_style_alone() {
    let (base, _seen) = fake_llm().await;
    let dir = tempfile::tempdir().unwrap();
    let (plain, _) = Engine::start(common::test_config(dir.path()))
        .await
        .unwrap();
    let answer = plain
        .generator()
        .enhance_prompt("a fox", "", PromptStyle::Detailed)
        .await
        .unwrap();
    // No LLM configured: the style is the feature, not a fallback.
    assert!(!answer.by_llm);
    assert_eq!(answer.fallback_reason, None);
    assert!(answer.positive.starts_with("a fox, highly detailed"));
    let err = plain
        .generator()
        .enhance_prompt(&"x".repeat(5000), "", PromptStyle::Detailed)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("longer than"), "{err}");
    drop(plain);

    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        llm_base_url: Some(format!("{base}/ok/v1")),
        llm_model: Some("llama3.2".into()),
        ..common::test_config(dir.path())
    };
    let (with_llm, _) = Engine::start(config).await.unwrap();
    let answer = with_llm
        .generator()
        .enhance_prompt("a fox", "", PromptStyle::Artistic)
        .await
        .unwrap();
    assert!(answer.by_llm, "{answer:?}");
    assert!(answer.positive.starts_with("a fox, golden hour"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_users_generation_and_prompt_are_theirs_alone() {
    let standin = ComfyStandin::start(StandinConfig::new(fixture_dir()))
        .await
        .unwrap();
    let (engine, _dir) = common::engine_with_comfyui(standin.url()).await;
    engine.spawn_background_jobs();
    let open = engine.auth().open_caller();
    let mut people = Vec::new();
    for name in ["alice", "bob"] {
        let user = engine
            .auth()
            .users()
            .add(&open, name, Role::User, Some("password-123".into()))
            .await
            .unwrap()
            .user;
        people.push(Caller {
            user_id: user.id,
            username: user.username,
            role: user.role,
            theme: None,
        });
    }
    let (alice, bob) = (&people[0], &people[1]);
    // A shared template: both may run it.
    let dir = engine.layout().workflow_templates();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("invert.json"),
        serde_json::to_vec(&standin.fixtures().prompt_of("post_prompt_ok")).unwrap(),
    )
    .unwrap();
    let id = "template:invert.json";

    let mut rx = engine.events().subscribe();
    let inputs = vec![value("1", "width", json!(80))];
    let submitted = engine.generator().submit(alice, id, &inputs).await.unwrap();
    let prompt_id = submitted.prompt_id.clone().expect("submitted");
    common::run_events(&mut rx, &prompt_id, Duration::from_secs(30)).await;
    let row = wait_for_row(&engine, &prompt_id, |g| {
        g.status == GenerationStatus::Succeeded
    })
    .await;

    // Recorded as hers: the row and the prompt.
    assert_eq!(row.user_id, alice.user_id);
    assert_eq!(
        engine.store().prompt_owner(&prompt_id).await.unwrap(),
        Some(alice.user_id)
    );
    assert_eq!(engine.bridge().known_owner(&prompt_id), Some(alice.user_id));
    assert!(engine
        .bridge()
        .may_access_prompt(alice, &prompt_id)
        .await
        .unwrap());
    assert!(!engine
        .bridge()
        .may_access_prompt(bob, &prompt_id)
        .await
        .unwrap());
    assert!(engine
        .bridge()
        .may_access_prompt(&open, &prompt_id)
        .await
        .unwrap());
    assert!(engine
        .bridge()
        .check_prompt_access(bob, &prompt_id)
        .await
        .is_err());
    // Her outputs are hers to fetch.
    let output = &row.outputs[0];
    assert!(engine
        .generator()
        .history()
        .has_output(
            alice.user_id,
            &output.kind,
            &output.subfolder,
            &output.filename
        )
        .await
        .unwrap());
    assert!(!engine
        .generator()
        .history()
        .has_output(
            bob.user_id,
            &output.kind,
            &output.subfolder,
            &output.filename
        )
        .await
        .unwrap());

    // Bob sees none of it; the administrator sees all.
    let generator = engine.generator();
    assert!(generator.list(bob, None).await.unwrap().is_empty());
    assert_eq!(generator.list(alice, None).await.unwrap().len(), 1);
    assert_eq!(generator.list(&open, None).await.unwrap().len(), 1);
    assert!(matches!(
        generator.get(bob, row.id).await,
        Err(engine::generate::GenerateError::NotFound(_))
    ));
    generator.get(alice, row.id).await.unwrap();
    generator.get(&open, row.id).await.unwrap();
    assert!(matches!(
        generator.cancel(bob, &prompt_id).await,
        Err(engine::generate::GenerateError::NotFound(_))
    ));
    // The shared template's form: his own (empty) values and history, not hers.
    let his_form = generator.form(bob, id).await.unwrap();
    assert!(his_form.remembered.is_empty(), "{:?}", his_form.remembered);
    assert!(his_form.history.is_empty());
    let her_form = generator.form(alice, id).await.unwrap();
    assert_eq!(her_form.remembered, inputs);
    assert_eq!(her_form.history.len(), 1);
    // Her queue entries are listed to her only.
    let queue = engine.bridge().queue_for(bob).await.unwrap();
    assert!(queue
        .running
        .iter()
        .chain(&queue.pending)
        .all(|e| e.prompt_id != prompt_id));
}
