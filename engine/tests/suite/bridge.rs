//! The engine's bridge to ComfyUI against the stand-in that replays the recorded protocol:
//! a run's live events, outputs served back, checks before submitting, ComfyUI's refusals,
//! queue control.

use crate::common;

use std::time::Duration;

use comfy_standin::{ComfyStandin, StandinConfig};
use common::fixture_dir;
use engine::bridge::InputValue;
use engine::model::RunEventKind;

#[tokio::test(flavor = "multi_thread")]
async fn a_run_streams_progress_and_its_outputs_are_served_back() {
    let standin = ComfyStandin::start(StandinConfig::new(fixture_dir()))
        .await
        .unwrap();
    let (engine, _dir) = common::engine_with_comfyui(standin.url()).await;
    engine.bridge().start();
    let mut rx = engine.events().subscribe();
    let prompt = standin.fixtures().prompt_of("post_prompt_ok");

    let submitted = engine
        .workflows()
        .run(
            &engine.auth().open_caller(),
            &prompt,
            &[InputValue {
                node_id: "1".into(),
                input: "width".into(),
                value: serde_json::json!(80),
            }],
        )
        .await
        .unwrap();
    let prompt_id = submitted
        .prompt_id
        .clone()
        .unwrap_or_else(|| panic!("{submitted:?}"));
    let events = common::run_events(&mut rx, &prompt_id, Duration::from_secs(20)).await;
    assert!(
        matches!(events.first(), Some(RunEventKind::Queued)),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(e, RunEventKind::Started)),
        "{events:?}"
    );
    assert!(
        events.iter().any(
            |e| matches!(e, RunEventKind::Executing { title: Some(t), .. } if t == "Save Image")
        ),
        "node titles come from the prompt: {events:?}"
    );
    assert!(
        matches!(events.last(), Some(RunEventKind::Succeeded)),
        "{events:?}"
    );
    let output = events
        .iter()
        .find_map(|e| match e {
            RunEventKind::Output { files, .. } => files.first().cloned(),
            _ => None,
        })
        .expect("an output file");
    assert!(
        output.url.starts_with("/api/comfy/view?filename="),
        "{output:?}"
    );

    // The value set before running reached ComfyUI, and nothing carried an Origin header.
    let posted = standin
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.uri.starts_with("/prompt"))
        .expect("a POST /prompt");
    assert!(posted
        .headers
        .iter()
        .all(|(name, _)| !name.eq_ignore_ascii_case("origin")));

    let (mime, bytes) = engine
        .bridge()
        .view(&output.filename, &output.subfolder, &output.kind)
        .await
        .unwrap();
    assert_eq!(mime, "image/png");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");

    // The history has the outcome and the same outputs.
    let record = engine.bridge().history(&prompt_id).await.unwrap();
    assert_eq!(
        record.outcome,
        engine::model::RunOutcome::Succeeded,
        "{record:?}"
    );
    assert!(
        record.outputs.iter().any(|o| o.filename == output.filename),
        "{record:?}"
    );
    let unknown = engine.bridge().history("no-such-prompt").await.unwrap_err();
    assert!(unknown.to_string().contains("no history"), "{unknown}");

    // Paths that try to leave ComfyUI's folders are refused before asking it.
    for (file, sub) in [("../x.png", ""), ("a.png", "../.."), ("/etc/passwd", "")] {
        let err = engine.bridge().view(file, sub, "output").await.unwrap_err();
        assert!(
            matches!(err, engine::bridge::BridgeError::Invalid(_)),
            "{file} {sub}: {err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn previews_are_kept_and_failures_name_the_node() {
    let standin = ComfyStandin::start(StandinConfig::new(fixture_dir()))
        .await
        .unwrap();
    let (engine, _dir) = common::engine_with_comfyui(standin.url()).await;
    engine.bridge().start();
    let mut rx = engine.events().subscribe();

    // A run that fails at run time (the recorded execution error).
    standin.play_next("ws_prompt_execution_error");
    // (Its recorded prompt loads a checkpoint the stand-in's empty model lists do not have,
    // which the checks would refuse; the replay does not depend on the prompt.)
    let prompt = standin.fixtures().prompt_of("post_prompt_ok");
    let submitted = engine
        .workflows()
        .run(&engine.auth().open_caller(), &prompt, &[])
        .await
        .unwrap();
    let prompt_id = submitted
        .prompt_id
        .unwrap_or_else(|| panic!("{}", submitted.message));
    let events = common::run_events(&mut rx, &prompt_id, Duration::from_secs(20)).await;
    match events.last() {
        Some(RunEventKind::Failed {
            node_type, message, ..
        }) => {
            assert!(node_type.is_some(), "{events:?}");
            assert!(!message.is_empty());
        }
        other => panic!("expected a failure, got {other:?}"),
    }

    // A run with previews (metadata frames): the newest one is served.
    standin.play_next("ws_progress_preview_with_metadata");
    let prompt = standin.fixtures().prompt_of("post_prompt_ok");
    let submitted = engine
        .workflows()
        .run(&engine.auth().open_caller(), &prompt, &[])
        .await
        .unwrap();
    let prompt_id = submitted.prompt_id.unwrap();
    let events = common::run_events(&mut rx, &prompt_id, Duration::from_secs(20)).await;
    let preview = events
        .iter()
        .find_map(|e| match e {
            RunEventKind::Preview { url, .. } => Some(url.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("a preview: {events:?}"));
    assert!(preview.starts_with(&format!("/api/comfy/preview/{prompt_id}")));
    let (mime, bytes) = engine.bridge().preview(&prompt_id).expect("kept");
    assert!(mime.starts_with("image/"), "{mime}");
    assert!(!bytes.as_slice().is_empty());
    assert!(events
        .iter()
        .any(|e| matches!(e, RunEventKind::Progress { .. })));
}

#[tokio::test(flavor = "multi_thread")]
async fn problems_are_reported_per_node_before_and_after_submitting() {
    let standin = ComfyStandin::start(StandinConfig::new(fixture_dir()))
        .await
        .unwrap();
    let (engine, _dir) = common::engine_with_comfyui(standin.url()).await;
    engine.bridge().start();

    // Unknown class: caught before submitting.
    let unknown = serde_json::json!({
        "1": {"class_type": "NoSuchNode", "inputs": {}},
        "_comment": "root keys starting with _ are stripped"
    });
    let result = engine
        .workflows()
        .run(&engine.auth().open_caller(), &unknown, &[])
        .await
        .unwrap();
    assert_eq!(result.prompt_id, None);
    assert_eq!(result.problems.len(), 1, "{result:?}");
    assert_eq!(result.problems[0].node_id, "1");
    assert!(
        result.message.starts_with("Not submitted"),
        "{}",
        result.message
    );

    // A UI-format workflow is converted first; the recorded default workflow's checkpoint is
    // not installed in the stand-in's lists and is reported with the node.
    let pair: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join("ui_to_api_default_workflow.json")).unwrap(),
    )
    .unwrap();
    let result = engine
        .workflows()
        .run(&engine.auth().open_caller(), &pair["ui_workflow"], &[])
        .await
        .unwrap();
    assert_eq!(result.prompt_id, None, "{result:?}");
    let missing = result
        .problems
        .iter()
        .find(|p| p.class_type == "CheckpointLoaderSimple")
        .unwrap_or_else(|| panic!("{result:?}"));
    assert_eq!(missing.input.as_deref(), Some("ckpt_name"));
    assert!(missing.message.contains("not installed"), "{missing:?}");

    // An unknown node id for an input value is a clear error.
    let prompt = standin.fixtures().prompt_of("post_prompt_ok");
    let err = engine
        .workflows()
        .run(
            &engine.auth().open_caller(),
            &prompt,
            &[InputValue {
                node_id: "99".into(),
                input: "x".into(),
                value: serde_json::json!(1),
            }],
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("node 99 is not in the workflow"),
        "{err}"
    );

    // The queue is readable and clearable through the engine.
    let queue = engine.bridge().queue().await.unwrap();
    assert!(queue.pending.iter().all(|e| !e.prompt_id.is_empty()));
    engine.bridge().clear_queue().await.unwrap();
}
