//! ComfyUI's protocol: every recorded WebSocket frame through the parser and the tracker, the
//! HTTP client against the stand-in that replays the recorded exchanges, and the persistent
//! socket (connect, feature flags, whole prompt runs, reconnect after a restart).
#![cfg(feature = "server")]

use crate::common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use comfy_standin::{ComfyStandin, Fixtures, Frame, StandinConfig, FIXTURE_PREVIEW_NODE};
use common::fixture_dir;
use engine::comfy::http::{
    parse_history, ComfyError, HistoryOutcome, PromptRequest, QueueView, RejectionBody,
};
use engine::comfy::protocol::{
    parse_binary, parse_text, ComfyEvent, OutputFile, PromptEventKind, ProtocolError,
    ServerMessage, Tracker, CLIENT_FEATURE_FLAGS,
};
use engine::comfy::socket::{backoff_delay, ws_url, ComfySocket, SocketConfig, SocketState};
use engine::comfy::ComfyClient;
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

const CLIENT_ID: &str = "c0ffee00c0ffee00c0ffee00c0ffee00";
/// How long any single wait may take before the test fails (never a pass condition).
const PATIENCE: Duration = Duration::from_secs(15);

// -- helpers ---------------------------------------------------------------------------------

fn fixtures() -> Fixtures {
    Fixtures::load(&fixture_dir()).expect("the fixtures load")
}

fn config() -> StandinConfig {
    StandinConfig::new(fixture_dir())
}

async fn standin_with(config: StandinConfig) -> ComfyStandin {
    ComfyStandin::start(config).await.expect("stand-in starts")
}

async fn standin() -> ComfyStandin {
    standin_with(config()).await
}

fn assert_no_origin(standin: &ComfyStandin) {
    let requests = standin.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(
            r.header("origin"),
            None,
            "{} {} carried an Origin header",
            r.method,
            r.uri
        );
    }
}

fn ws_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "jsonl")
                && p.file_name().unwrap().to_string_lossy().starts_with("ws_")
        })
        .collect();
    files.sort();
    files
}

fn type_name(message: &ServerMessage) -> &str {
    match message {
        ServerMessage::Status { .. } => "status",
        ServerMessage::ExecutionStart { .. } => "execution_start",
        ServerMessage::ExecutionCached { .. } => "execution_cached",
        ServerMessage::Executing { .. } => "executing",
        ServerMessage::Progress { .. } => "progress",
        ServerMessage::ProgressState { .. } => "progress_state",
        ServerMessage::Executed { .. } => "executed",
        ServerMessage::ExecutionSuccess { .. } => "execution_success",
        ServerMessage::ExecutionError(_) => "execution_error",
        ServerMessage::ExecutionInterrupted { .. } => "execution_interrupted",
        ServerMessage::FeatureFlags(_) => "feature_flags",
        ServerMessage::Other { kind, .. } => kind,
        ServerMessage::Preview(_) => "preview",
        ServerMessage::ProgressText { .. } => "progress_text",
        ServerMessage::UnknownBinary { .. } => "unknown_binary",
    }
}

/// The first text message of `kind` in a recording, parsed.
fn first_of(fx: &Fixtures, recording: &str, kind: &str, from_server: bool) -> ServerMessage {
    fx.recording(recording)
        .all
        .iter()
        .find_map(|(server, frame)| match frame {
            Frame::Text { raw, kind: k, .. } if k == kind && *server == from_server => {
                Some(parse_text(raw).unwrap())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {kind} in {recording}"))
}

fn binary_frames(fx: &Fixtures, recording: &str) -> Vec<Vec<u8>> {
    fx.recording(recording)
        .frames
        .iter()
        .filter_map(|f| match f {
            Frame::Binary { data, .. } => Some(data.clone()),
            Frame::Text { .. } => None,
        })
        .collect()
}

/// A short label per event, to compare whole sequences (`NodeStates` left out).
fn label(event: &ComfyEvent) -> Option<String> {
    Some(match event {
        ComfyEvent::Connected => "connected".into(),
        ComfyEvent::Disconnected { .. } => "disconnected".into(),
        ComfyEvent::Queue(q) => format!("queue {}", q.remaining),
        ComfyEvent::ServerFeatures(_) => "features".into(),
        ComfyEvent::Unhandled { kind, .. } => format!("unhandled {kind}"),
        ComfyEvent::Prompt(p) => return kind_label(&p.kind),
    })
}

fn kind_label(kind: &PromptEventKind) -> Option<String> {
    Some(match kind {
        PromptEventKind::Queued { .. } => "queued".into(),
        PromptEventKind::Started { .. } => "started".into(),
        PromptEventKind::Cached { nodes } => format!("cached {}", nodes.join(",")),
        PromptEventKind::NodeExecuting { node, .. } => format!("node {node}"),
        PromptEventKind::Progress { node, value, max } => {
            format!("progress {} {value}/{max}", node.as_deref().unwrap_or("?"))
        }
        PromptEventKind::NodeStates { .. } => return None,
        PromptEventKind::Preview { node, mime, .. } => {
            format!("preview {} {mime}", node.as_deref().unwrap_or("?"))
        }
        PromptEventKind::ProgressText { node, text } => format!("text {node} {text}"),
        PromptEventKind::NodeOutput { node, files, .. } => format!(
            "output {node} {}",
            files
                .iter()
                .map(|f| format!("{}/{}", f.kind, f.filename))
                .collect::<Vec<_>>()
                .join(",")
        ),
        PromptEventKind::Succeeded { .. } => "succeeded".into(),
        PromptEventKind::Failed {
            node, node_type, ..
        } => format!(
            "failed {} {}",
            node.as_deref().unwrap_or("?"),
            node_type.as_deref().unwrap_or("?")
        ),
        PromptEventKind::Interrupted { node, node_type } => format!(
            "interrupted {} {}",
            node.as_deref().unwrap_or("?"),
            node_type.as_deref().unwrap_or("?")
        ),
        PromptEventKind::Done => "done".into(),
    })
}

/// Feeds a recording's server frames through a fresh tracker.
fn track(fx: &Fixtures, recording: &str, tracker: &mut Tracker) -> Vec<ComfyEvent> {
    let mut events = Vec::new();
    for (from_server, frame) in &fx.recording(recording).all {
        if !from_server {
            continue;
        }
        let message = match frame {
            Frame::Text { raw, .. } => parse_text(raw).unwrap(),
            Frame::Binary { data, .. } => parse_binary(data).unwrap(),
        };
        events.extend(tracker.on_message(message));
    }
    events
}

fn labels(events: &[ComfyEvent]) -> Vec<String> {
    events.iter().filter_map(label).collect()
}

async fn wait_state(socket: &ComfySocket, what: &str, f: impl Fn(&SocketState) -> bool) {
    let mut state = socket.state();
    let reached = tokio::time::timeout(PATIENCE, state.wait_for(|s| f(s)))
        .await
        .map(|r| r.is_ok());
    assert_eq!(
        reached,
        Ok(true),
        "the socket never became {what}: {:?}",
        *socket.state().borrow()
    );
}

/// Waits until `check` holds (polling; fails after [`PATIENCE`]).
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// This prompt's events until `Done`.
async fn run_of(
    events: &mut broadcast::Receiver<ComfyEvent>,
    prompt_id: &str,
) -> Vec<PromptEventKind> {
    let mut kinds = Vec::new();
    loop {
        let event = tokio::time::timeout(PATIENCE, events.recv())
            .await
            .unwrap_or_else(|_| panic!("prompt {prompt_id} never finished; got {kinds:?}"))
            .expect("no lag, no close");
        if let ComfyEvent::Prompt(p) = event {
            assert_eq!(p.prompt_id, prompt_id, "another prompt's event: {p:?}");
            let done = p.kind == PromptEventKind::Done;
            kinds.push(p.kind);
            if done {
                return kinds;
            }
        }
    }
}

fn kind_labels(kinds: &[PromptEventKind]) -> Vec<String> {
    kinds.iter().filter_map(kind_label).collect()
}

fn preview_prompt() -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": FIXTURE_PREVIEW_NODE, "inputs": {"image": ["1", 0]}, "_meta": {"title": "Progress + preview"}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    })
}

// -- parsing -----------------------------------------------------------------------------------

#[test]
fn every_recorded_frame_parses_to_its_type() {
    let files = ws_files();
    assert_eq!(files.len(), 9, "{files:?}");
    let mut text_types = BTreeSet::new();
    let mut binary_types = BTreeSet::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for (i, line) in std::fs::read_to_string(file).unwrap().lines().enumerate() {
            let rec: Value = serde_json::from_str(line).unwrap();
            if rec["dir"] == "meta" {
                continue;
            }
            let at = format!("{name}:{}", i + 1);
            if let Some(raw) = rec["raw"].as_str() {
                let message = parse_text(raw).unwrap_or_else(|e| panic!("{at}: {e}"));
                let kind = rec["json"]["type"].as_str().unwrap();
                assert_eq!(type_name(&message), kind, "{at}");
                assert!(
                    !matches!(message, ServerMessage::Other { .. }),
                    "{at}: every recorded type is known"
                );
                text_types.insert(kind.to_string());
                let named = message.prompt_id().map(str::to_string);
                if let Some(pid) = rec["json"]["data"]["prompt_id"].as_str() {
                    assert_eq!(named.as_deref(), Some(pid), "{at}");
                }
            } else {
                let event_type = rec["event_type"].as_u64().unwrap() as u32;
                binary_types.insert(event_type);
                let data = base64::Engine::decode(
                    &base64::engine::general_purpose::STANDARD,
                    rec["data_b64"]
                        .as_str()
                        .expect("binary frames are recorded whole"),
                )
                .unwrap();
                assert_eq!(data.len() as u64, rec["length"].as_u64().unwrap(), "{at}");
                let decoded = &rec["decoded"];
                match parse_binary(&data).unwrap_or_else(|e| panic!("{at}: {e}")) {
                    ServerMessage::Preview(p) if event_type == 4 => {
                        let meta = &decoded["metadata"];
                        assert_eq!(p.prompt_id.as_deref(), meta["prompt_id"].as_str(), "{at}");
                        assert_eq!(p.node.as_deref(), meta["node_id"].as_str(), "{at}");
                        assert_eq!(
                            p.display_node.as_deref(),
                            meta["display_node_id"].as_str(),
                            "{at}"
                        );
                        assert_eq!(p.mime, meta["image_type"].as_str().unwrap(), "{at}");
                        assert_eq!(
                            p.bytes.len() as u64,
                            decoded["image_bytes"].as_u64().unwrap()
                        );
                        assert_eq!(
                            hex::encode(&p.bytes[..4]),
                            decoded["image_magic_hex"].as_str().unwrap()
                        );
                    }
                    ServerMessage::Preview(p) if event_type == 1 => {
                        assert_eq!(decoded["image_format"], 1, "{at}");
                        assert_eq!(p.mime, "image/jpeg", "{at}");
                        assert_eq!(p.prompt_id, None, "{at}");
                        assert_eq!(p.node, None, "{at}");
                        assert_eq!(
                            p.bytes.len() as u64,
                            decoded["image_bytes"].as_u64().unwrap()
                        );
                        assert_eq!(
                            hex::encode(&p.bytes[..4]),
                            decoded["image_magic_hex"].as_str().unwrap()
                        );
                    }
                    ServerMessage::ProgressText { node, text } if event_type == 3 => {
                        assert_eq!(node, decoded["node_id"].as_str().unwrap(), "{at}");
                        assert_eq!(text, decoded["text"].as_str().unwrap(), "{at}");
                    }
                    other => panic!("{at}: event {event_type} parsed as {other:?}"),
                }
            }
        }
    }
    let expected: BTreeSet<String> = [
        "status",
        "execution_start",
        "execution_cached",
        "executing",
        "progress",
        "progress_state",
        "executed",
        "execution_success",
        "execution_error",
        "execution_interrupted",
        "feature_flags",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(text_types, expected);
    assert_eq!(binary_types, BTreeSet::from([1, 3, 4]));
}

#[test]
fn text_messages_carry_comfyuis_fields() {
    let fx = fixtures();

    // The frontend's feature flags, byte for byte, and the server's answer.
    let client_flags = fx
        .recording("ws_connect_feature_flags")
        .all
        .iter()
        .find_map(|(server, f)| match f {
            Frame::Text { raw, .. } if !server => Some(raw.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(CLIENT_FEATURE_FLAGS, client_flags);
    match first_of(&fx, "ws_connect_feature_flags", "feature_flags", false) {
        ServerMessage::FeatureFlags(flags) => {
            assert_eq!(flags["supports_preview_metadata"], true);
            assert_eq!(flags["supports_manager_v4_ui"], true);
        }
        other => panic!("{other:?}"),
    }
    match first_of(&fx, "ws_connect_feature_flags", "feature_flags", true) {
        ServerMessage::FeatureFlags(flags) => {
            assert_eq!(flags["max_upload_size"], 104857600);
            assert_eq!(flags["supports_preview_metadata"], true);
        }
        other => panic!("{other:?}"),
    }

    assert_eq!(
        first_of(&fx, "ws_connect_without_client_id", "status", true),
        ServerMessage::Status {
            queue_remaining: Some(0),
            sid: Some("76c93ac9a201489fb9c1976cb7c2a1ea".into())
        }
    );
    let success = "ws_prompt_success";
    let pid = "ade058c9-217c-46cd-b240-bbe4f499132b";
    let statuses: Vec<ServerMessage> = fx
        .recording(success)
        .frames
        .iter()
        .filter_map(|f| match f {
            Frame::Text { raw, kind, .. } if kind == "status" => Some(parse_text(raw).unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses[0],
        ServerMessage::Status {
            queue_remaining: Some(1),
            sid: None
        }
    );
    assert_eq!(
        first_of(&fx, success, "execution_start", true),
        ServerMessage::ExecutionStart {
            prompt_id: pid.into(),
            timestamp: Some(1795382994489)
        }
    );
    assert_eq!(
        first_of(&fx, "ws_prompt_cached", "execution_cached", true),
        ServerMessage::ExecutionCached {
            prompt_id: "a8aeff15-c9d9-44a8-9689-3c7ae1dcbb6c".into(),
            nodes: vec!["1".into(), "2".into(), "3".into()],
            timestamp: Some(1795382995654)
        }
    );
    assert_eq!(
        first_of(&fx, success, "executing", true),
        ServerMessage::Executing {
            prompt_id: Some(pid.into()),
            node: Some("1".into()),
            display_node: Some("1".into())
        }
    );
    let last = match fx.recording(success).frames.last().unwrap() {
        Frame::Text { raw, .. } => parse_text(raw).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        last,
        ServerMessage::Executing {
            prompt_id: Some(pid.into()),
            node: None,
            display_node: None
        },
        "node null: done"
    );
    assert_eq!(
        first_of(&fx, "ws_progress_preview_with_metadata", "progress", true),
        ServerMessage::Progress {
            prompt_id: Some("9cd9eaae-53e7-401d-b944-ff67ea85cb0c".into()),
            node: Some("2".into()),
            value: 1.0,
            max: 3.0
        }
    );
    // progress_state: every node so far, in the order ComfyUI wrote them ("10" before "11").
    let states: Vec<ServerMessage> = fx
        .recording("ws_prompt_loadimage_preview")
        .frames
        .iter()
        .filter_map(|f| match f {
            Frame::Text { raw, kind, .. } if kind == "progress_state" => {
                Some(parse_text(raw).unwrap())
            }
            _ => None,
        })
        .collect();
    match states.last().unwrap() {
        ServerMessage::ProgressState { prompt_id, nodes } => {
            assert_eq!(prompt_id, "67558b47-bc0e-44d6-93b2-a2f7211db6b2");
            let ids: Vec<&str> = nodes.iter().filter_map(|n| n.node_id.as_deref()).collect();
            assert_eq!(ids, ["10", "11", "12"]);
            assert!(nodes
                .iter()
                .all(|n| n.state == "finished" && n.value == 1.0 && n.max == 1.0));
            assert_eq!(nodes[0].parent_node_id, None);
            assert_eq!(nodes[0].display_node_id.as_deref(), Some("10"));
        }
        other => panic!("{other:?}"),
    }
    match first_of(&fx, "ws_prompt_loadimage_preview", "executed", true) {
        ServerMessage::Executed {
            prompt_id,
            node,
            display_node,
            output,
        } => {
            assert_eq!(
                prompt_id.as_deref(),
                Some("67558b47-bc0e-44d6-93b2-a2f7211db6b2")
            );
            assert_eq!(node, "12");
            assert_eq!(display_node.as_deref(), Some("12"));
            assert_eq!(
                engine::comfy::protocol::output_files(&output),
                [OutputFile {
                    filename: "ComfyUI_temp_javga_00001_.png".into(),
                    subfolder: String::new(),
                    kind: "temp".into(),
                    media: "images".into()
                }]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        first_of(&fx, success, "execution_success", true),
        ServerMessage::ExecutionSuccess {
            prompt_id: pid.into(),
            timestamp: Some(1795382994499)
        }
    );
    match first_of(&fx, "ws_prompt_execution_error", "execution_error", true) {
        ServerMessage::ExecutionError(failure) => {
            assert_eq!(failure.prompt_id, "8a554a52-160a-4d9e-a033-8139b85f7277");
            assert_eq!(failure.node_id.as_deref(), Some("4"));
            assert_eq!(failure.node_type.as_deref(), Some("CheckpointLoaderSimple"));
            assert_eq!(
                failure.exception_message,
                "Error while deserializing header: header too small\n"
            );
            assert_eq!(
                failure.exception_type,
                "safetensors._safetensors_rust.SafetensorError"
            );
            assert_eq!(failure.traceback.len(), 8);
            assert!(failure.traceback[0].contains("execution.py"));
            assert_eq!(
                failure.current_inputs["ckpt_name"],
                json!(["placeholder_model.safetensors"])
            );
            assert!(failure.executed.is_empty());
            assert_eq!(failure.timestamp, Some(1795383000445));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        first_of(&fx, "ws_prompt_interrupted", "execution_interrupted", true),
        ServerMessage::ExecutionInterrupted {
            prompt_id: "22c8345b-c7a5-40d6-b80c-bf9148399a66".into(),
            node_id: Some("2".into()),
            node_type: Some("ImageBlur".into()),
            executed: vec!["1".into()],
            timestamp: Some(1795383001641)
        }
    );

    // Types this module does not know are kept, not errors.
    assert_eq!(
        parse_text(r#"{"type": "crystools.monitor", "data": {"cpu_utilization": 3}}"#).unwrap(),
        ServerMessage::Other {
            kind: "crystools.monitor".into(),
            data: json!({"cpu_utilization": 3})
        }
    );
    // A numeric node id (some custom nodes) is read as text.
    assert_eq!(
        parse_text(r#"{"type": "executing", "data": {"node": 7, "prompt_id": "p"}}"#).unwrap(),
        ServerMessage::Executing {
            prompt_id: Some("p".into()),
            node: Some("7".into()),
            display_node: None
        }
    );
    // What is not ComfyUI's protocol is an error that says so.
    assert!(matches!(
        parse_text("not json"),
        Err(ProtocolError::NotJson(_))
    ));
    assert!(matches!(
        parse_text(r#"{"data": {}}"#),
        Err(ProtocolError::NotJson(_))
    ));
    let err = parse_text(r#"{"type": "progress", "data": {"value": "x"}}"#).unwrap_err();
    assert!(
        matches!(&err, ProtocolError::BadData { kind, .. } if kind == "progress"),
        "{err:?}"
    );
    assert!(err.to_string().contains("progress"), "{err}");
}

#[test]
fn binary_frames_decode_and_bad_ones_are_refused() {
    let fx = fixtures();
    let with_meta = binary_frames(&fx, "ws_progress_preview_with_metadata");
    assert_eq!(with_meta.len(), 4, "three previews and a progress text");
    match parse_binary(&with_meta[0]).unwrap() {
        ServerMessage::Preview(p) => {
            assert_eq!(
                p.prompt_id.as_deref(),
                Some("9cd9eaae-53e7-401d-b944-ff67ea85cb0c")
            );
            assert_eq!(p.node.as_deref(), Some("2"));
            assert_eq!(p.display_node.as_deref(), Some("2"));
            assert_eq!(p.mime, "image/jpeg");
            assert_eq!(p.bytes.len(), 3702);
            assert_eq!(&p.bytes[..4], [0xff, 0xd8, 0xff, 0xe0]);
            assert_eq!(format!("{:?}", p.bytes), "ImageBytes(3702 bytes)");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse_binary(&with_meta[3]).unwrap(),
        ServerMessage::ProgressText {
            node: "2".into(),
            text: "fixture progress text".into()
        }
    );
    let legacy = binary_frames(&fx, "ws_progress_preview_legacy");
    assert_eq!(legacy.len(), 4);
    match parse_binary(&legacy[0]).unwrap() {
        ServerMessage::Preview(p) => {
            assert_eq!((p.prompt_id, p.node), (None, None));
            assert_eq!(p.mime, "image/jpeg");
            assert_eq!(&p.bytes[..], &legacy[0][8..]);
        }
        other => panic!("{other:?}"),
    }

    // Image type 2 is a PNG; unknown events are kept as such.
    let png = [&1u32.to_be_bytes()[..], &2u32.to_be_bytes(), b"\x89PNG"].concat();
    match parse_binary(&png).unwrap() {
        ServerMessage::Preview(p) => assert_eq!(p.mime, "image/png"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse_binary(&[0, 0, 0, 9, 1, 2]).unwrap(),
        ServerMessage::UnknownBinary {
            event_type: 9,
            len: 6
        }
    );
    // Short or inconsistent frames.
    assert_eq!(
        parse_binary(&[0, 0]).unwrap_err(),
        ProtocolError::ShortFrame { len: 2 }
    );
    assert!(matches!(
        parse_binary(&[0, 0, 0, 1, 0]),
        Err(ProtocolError::BadBinary { event_type: 1, .. })
    ));
    assert!(matches!(
        parse_binary(&[0, 0, 0, 4, 0, 0, 1, 0, b'{']),
        Err(ProtocolError::BadBinary { event_type: 4, .. })
    ));
    assert!(matches!(
        parse_binary(&[0, 0, 0, 4, 0, 0, 0, 1, b'x', 0xff]),
        Err(ProtocolError::BadBinary { event_type: 4, .. })
    ));
    assert!(matches!(
        parse_binary(&[0, 0, 0, 3, 0, 0, 0, 1, b'2', 0xff, 0xfe]),
        Err(ProtocolError::BadBinary { event_type: 3, .. })
    ));
}

#[test]
fn the_tracker_turns_each_recording_into_prompt_events() {
    let fx = fixtures();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    // Success, with the prompt registered: nodes get their titles and classes.
    let mut tracker = Tracker::new();
    let pid = "ade058c9-217c-46cd-b240-bbe4f499132b";
    tracker.register_prompt(pid, &fx.prompt_of("post_prompt_ok"));
    let events = track(&fx, "ws_prompt_success", &mut tracker);
    assert_eq!(
        labels(&events),
        s(&[
            "queue 0",
            "features",
            "queue 1",
            "queue 1",
            "started",
            "cached ",
            "node 1",
            "node 2",
            "node 3",
            "output 3 output/fixture_invert_00001_.png",
            "succeeded",
            "queue 0",
            "done"
        ])
    );
    for event in &events {
        if let ComfyEvent::Prompt(p) = event {
            assert_eq!(p.prompt_id, pid);
        }
    }
    let executing: Vec<(Option<String>, Option<String>)> = events
        .iter()
        .filter_map(|e| match e {
            ComfyEvent::Prompt(p) => match &p.kind {
                PromptEventKind::NodeExecuting {
                    title, class_type, ..
                } => Some((title.clone(), class_type.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(
        executing,
        [
            (Some("EmptyImage".into()), Some("EmptyImage".into())),
            (Some("Invert Image".into()), Some("ImageInvert".into())),
            (Some("Save Image".into()), Some("SaveImage".into())),
        ]
    );
    let states = events
        .iter()
        .filter(|e| {
            matches!(e, ComfyEvent::Prompt(p) if matches!(p.kind, PromptEventKind::NodeStates { .. }))
        })
        .count();
    assert_eq!(states, 6, "every progress_state is passed on");
    assert_eq!(tracker.current_prompt(), None, "done: nothing executes");

    let mut tracker = Tracker::new();
    assert_eq!(
        labels(&track(&fx, "ws_prompt_cached", &mut tracker)),
        s(&[
            "queue 0",
            "features",
            "queue 1",
            "queue 1",
            "started",
            "cached 1,2,3",
            "output 3 output/fixture_invert_00001_.png",
            "succeeded",
            "queue 0",
            "done"
        ])
    );

    let mut tracker = Tracker::new();
    let events = track(&fx, "ws_prompt_execution_error", &mut tracker);
    assert_eq!(
        labels(&events),
        s(&[
            "queue 0",
            "features",
            "queue 1",
            "queue 1",
            "started",
            "cached ",
            "node 4",
            "failed 4 CheckpointLoaderSimple",
            "queue 0",
            "done"
        ])
    );
    let failed = events
        .iter()
        .find_map(|e| match e {
            ComfyEvent::Prompt(p) => match &p.kind {
                PromptEventKind::Failed {
                    message,
                    exception_type,
                    traceback,
                    ..
                } => Some((message.clone(), exception_type.clone(), traceback.len())),
                _ => None,
            },
            _ => None,
        })
        .unwrap();
    assert_eq!(
        failed,
        (
            "Error while deserializing header: header too small\n".to_string(),
            "safetensors._safetensors_rust.SafetensorError".to_string(),
            8
        )
    );

    // Other clients' prompts show as queue lengths (2, 3, 2, 1) while this one runs.
    let mut tracker = Tracker::new();
    assert_eq!(
        labels(&track(&fx, "ws_prompt_interrupted", &mut tracker)),
        s(&[
            "queue 0",
            "features",
            "queue 1",
            "queue 1",
            "started",
            "cached ",
            "node 1",
            "queue 2",
            "queue 3",
            "queue 2",
            "queue 1",
            "node 2",
            "interrupted 2 ImageBlur",
            "queue 0",
            "done"
        ])
    );

    let mut tracker = Tracker::new();
    assert_eq!(
        labels(&track(&fx, "ws_prompt_loadimage_preview", &mut tracker)),
        s(&[
            "queue 0",
            "features",
            "queue 1",
            "queue 1",
            "started",
            "cached ",
            "node 10",
            "node 11",
            "node 12",
            "output 12 temp/ComfyUI_temp_javga_00001_.png",
            "succeeded",
            "queue 0",
            "done"
        ])
    );

    let mut tracker = Tracker::new();
    let events = track(&fx, "ws_progress_preview_with_metadata", &mut tracker);
    assert_eq!(
        labels(&events),
        s(&[
            "queue 0",
            "features",
            "queue 1",
            "queue 1",
            "started",
            "cached ",
            "node 1",
            "node 2",
            "preview 2 image/jpeg",
            "progress 2 1/3",
            "preview 2 image/jpeg",
            "progress 2 2/3",
            "preview 2 image/jpeg",
            "progress 2 3/3",
            "text 2 fixture progress text",
            "node 3",
            "output 3 temp/ComfyUI_temp_qbjiy_00001_.png",
            "succeeded",
            "queue 0",
            "done"
        ])
    );
    for event in &events {
        if let ComfyEvent::Prompt(p) = event {
            assert_eq!(p.prompt_id, "9cd9eaae-53e7-401d-b944-ff67ea85cb0c");
        }
    }

    // Legacy previews name nothing: they go to the prompt and node executing.
    let mut tracker = Tracker::new();
    let events = track(&fx, "ws_progress_preview_legacy", &mut tracker);
    assert_eq!(
        labels(&events),
        s(&[
            "queue 0",
            "queue 1",
            "queue 1",
            "started",
            "cached ",
            "node 1",
            "node 2",
            "progress 2 1/3",
            "preview 2 image/jpeg",
            "progress 2 2/3",
            "preview 2 image/jpeg",
            "progress 2 3/3",
            "preview 2 image/jpeg",
            "text 2 fixture progress text",
            "node 3",
            "output 3 temp/ComfyUI_temp_qbjiy_00002_.png",
            "succeeded",
            "queue 0",
            "done"
        ])
    );
    for event in &events {
        if let ComfyEvent::Prompt(p) = event {
            assert_eq!(p.prompt_id, "6d33423c-efcc-4bd4-b548-6327a252104f");
        }
    }
    // With nothing executing, a legacy preview belongs to no prompt and is dropped.
    let legacy = binary_frames(&fx, "ws_progress_preview_legacy");
    let mut idle = Tracker::new();
    assert!(idle
        .on_message(parse_binary(&legacy[0]).unwrap())
        .is_empty());
    assert_eq!(
        idle.on_message(parse_text(r#"{"type": "x.custom", "data": 1}"#).unwrap()),
        [ComfyEvent::Unhandled {
            kind: "x.custom".into(),
            data: json!(1)
        }]
    );
}

#[test]
fn recorded_queue_history_and_rejection_bodies_read() {
    let fx = fixtures();
    let busy = fx.exchange("get_queue_busy").body_json.clone().unwrap();
    let view = QueueView::from_json(&busy).unwrap();
    assert_eq!(view.running.len(), 1);
    let running = &view.running[0];
    assert_eq!(running.number, 16.0);
    assert_eq!(running.prompt_id, "22c8345b-c7a5-40d6-b80c-bf9148399a66");
    assert_eq!(
        running.client_id.as_deref(),
        Some("dceb5738d7c94a539a0947abbd7d5b3b")
    );
    assert_eq!(running.node_count, 6);
    assert_eq!(running.outputs, ["6"]);
    assert_eq!(running.prompt["2"]["class_type"], "ImageBlur");
    let pending: Vec<f64> = view.pending.iter().map(|p| p.number).collect();
    assert_eq!(pending, [17.0, 18.0]);
    // Pending comes in heap order from ComfyUI: it is sorted by number.
    let mut reversed = busy.clone();
    reversed["queue_pending"].as_array_mut().unwrap().reverse();
    assert_eq!(QueueView::from_json(&reversed).unwrap(), view);
    assert_eq!(
        QueueView::from_json(&fx.exchange("get_queue_idle").body_json.clone().unwrap()).unwrap(),
        QueueView::default()
    );
    assert!(QueueView::from_json(&json!({"queue_running": [[]]})).is_err());

    // History, in ComfyUI's order (oldest first).
    let recent = parse_history(&fx.exchange("get_history_max_items_2").body_text()).unwrap();
    let ids: Vec<&str> = recent.iter().map(|e| e.prompt_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "8a554a52-160a-4d9e-a033-8139b85f7277",
            "22c8345b-c7a5-40d6-b80c-bf9148399a66"
        ]
    );
    assert!(
        matches!(&recent[0].outcome, HistoryOutcome::Failed { node_type: Some(t), .. } if t == "CheckpointLoaderSimple")
    );
    assert_eq!(
        recent[1].outcome,
        HistoryOutcome::Interrupted {
            node: Some("2".into()),
            node_type: Some("ImageBlur".into())
        },
        "filed as status_str error, told apart by its messages"
    );
    assert_eq!(recent[1].status_str.as_deref(), Some("error"));
    let success = parse_history(&fx.exchange("get_history_prompt_success").body_text()).unwrap();
    let entry = &success[0];
    assert_eq!(entry.outcome, HistoryOutcome::Success);
    assert!(entry.completed);
    assert_eq!(entry.number, 0.0);
    assert_eq!(
        entry.client_id.as_deref(),
        Some("dceb5738d7c94a539a0947abbd7d5b3b")
    );
    assert_eq!(entry.outputs_to_execute, ["3"]);
    assert_eq!(entry.started_at_ms, Some(1795382994489));
    assert_eq!(entry.ended_at_ms, Some(1795382994499));
    assert_eq!(entry.messages.len(), 3);
    let files: Vec<&OutputFile> = entry.files().collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].filename, "fixture_invert_00001_.png");
    assert_eq!(
        (files[0].kind.as_str(), files[0].media.as_str()),
        ("output", "images")
    );
    assert!(parse_history("{}").unwrap().is_empty());

    // Every recorded rejection reads as a typed rejection.
    let mut rejections = 0;
    for exchange in fx.exchanges.values() {
        if exchange.name.starts_with("post_prompt_error_") && exchange.status == 400 {
            let body = exchange.body_json.clone().unwrap();
            let rejection =
                RejectionBody::from_body(&body).unwrap_or_else(|| panic!("{}", exchange.name));
            assert_eq!(
                rejection.error.kind, body["error"]["type"],
                "{}",
                exchange.name
            );
            assert!(!rejection.summary().is_empty());
            rejections += 1;
        }
    }
    assert_eq!(rejections, 11);
}

// -- HTTP against the stand-in -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn submit_prompt_gets_comfyuis_answers() {
    let standin = standin().await;
    let fx = standin.fixtures();
    let client = ComfyClient::new(&standin.url());

    // Every recorded rejection comes back as Rejected, with ComfyUI's body.
    let mut names: Vec<&String> = fx
        .exchanges
        .keys()
        .filter(|n| n.starts_with("post_prompt_error_") && fx.exchange(n).status == 400)
        .collect();
    names.sort();
    assert_eq!(names.len(), 11, "{names:?}");
    for name in names {
        let exchange = fx.exchange(name);
        let sent = exchange.request_json.clone().unwrap();
        let result = match sent.get("prompt") {
            Some(prompt) => client.submit_prompt(prompt, CLIENT_ID).await,
            None => {
                client
                    .submit(&PromptRequest {
                        client_id: Some(CLIENT_ID.into()),
                        ..PromptRequest::default()
                    })
                    .await
            }
        };
        let err = result.expect_err(name);
        match &err {
            ComfyError::Rejected { body } => {
                assert_eq!(Some(body), exchange.body_json.as_ref(), "{name}")
            }
            other => panic!("{name}: {other:?}"),
        }
        let rejection = err.rejection().unwrap();
        assert!(
            err.to_string().contains(&rejection.error.message),
            "{name}: {err}"
        );
        for (node, errors) in &rejection.node_errors {
            for e in &errors.errors {
                assert!(
                    err.to_string().contains(&e.message),
                    "{name} node {node}: {err}"
                );
            }
        }
    }
    let missing = client
        .submit_prompt(
            &fx.prompt_of("post_prompt_error_missing_checkpoint"),
            CLIENT_ID,
        )
        .await
        .unwrap_err()
        .rejection()
        .unwrap();
    let node = &missing.node_errors["4"];
    assert_eq!(node.class_type, "CheckpointLoaderSimple");
    assert_eq!(node.errors[0].kind, "value_not_in_list");
    assert_eq!(node.errors[0].input_name(), Some("ckpt_name"));

    // Accepted with errors for one output.
    let partly = client
        .submit_prompt(&fx.prompt_of("post_prompt_error_partial_valid"), CLIENT_ID)
        .await
        .unwrap();
    assert_eq!(partly.prompt_id.len(), 36);
    let bad = &partly.node_errors["20"];
    assert_eq!(bad.class_type, "SaveImage");
    assert_eq!(bad.errors[0].kind, "required_input_missing");
    assert_eq!(bad.dependent_outputs, ["20"]);

    // Accepted: fresh ids and numbers; a client's own id and (float) number are kept.
    let ok = client
        .submit_prompt(&fx.prompt_of("post_prompt_ok"), CLIENT_ID)
        .await
        .unwrap();
    assert!(ok.node_errors.is_empty());
    assert_ne!(ok.prompt_id, partly.prompt_id);
    assert!(ok.number > partly.number);
    let chosen = client
        .submit(&PromptRequest {
            prompt: fx.prompt_of("post_prompt_number_partial_targets"),
            client_id: Some(CLIENT_ID.into()),
            prompt_id: Some("11111111-2222-4333-8444-555555555555".into()),
            number: Some(7.5),
            partial_execution_targets: Some(vec!["3".into()]),
            ..PromptRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(chosen.prompt_id, "11111111-2222-4333-8444-555555555555");
    assert_eq!(chosen.number, 7.5);

    // Prompts never recorded get ComfyUI's first checks.
    let unknown = client
        .submit_prompt(
            &json!({"7": {"class_type": "NoSuchNode", "inputs": {}}}),
            CLIENT_ID,
        )
        .await
        .unwrap_err()
        .rejection()
        .unwrap();
    assert_eq!(unknown.error.kind, "invalid_prompt");
    assert_eq!(unknown.error.details, "Node ID '#7'");
    let no_output = client
        .submit_prompt(
            &json!({"5": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 1}}}),
            CLIENT_ID,
        )
        .await
        .unwrap_err()
        .rejection()
        .unwrap();
    assert_eq!(no_output.error.kind, "prompt_no_outputs");

    // The client never sends an Origin, and the bodies are what the frontend sends.
    assert_no_origin(&standin);
    let posts: Vec<Value> = standin
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.uri == "/prompt")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(posts[0]["client_id"], CLIENT_ID);
    let last = posts.last().unwrap();
    assert_eq!(last.as_object().unwrap().len(), 2, "{last}");

    // The stand-in's origin check, as ComfyUI's (and why the client sends no Origin).
    let raw = reqwest::Client::new();
    let body = json!({"prompt": fx.prompt_of("post_prompt_ok")});
    let refused = raw
        .post(format!("{}/prompt", standin.url()))
        .header("Origin", "http://evil.example:8188")
        .json(&body)
        .send()
        .await
        .unwrap();
    let recorded = fx.exchange("post_prompt_origin_mismatch_403");
    assert_eq!(refused.status().as_u16(), recorded.status);
    assert!(refused.bytes().await.unwrap().is_empty());
    let same_host = raw
        .post(format!("{}/prompt", standin.url()))
        .header("Origin", standin.url())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(same_host.status().as_u16(), 200);

    // Nothing listens: Unreachable, naming the URL.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let err = ComfyClient::new(&closed).queue().await.unwrap_err();
    assert!(matches!(err, ComfyError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(&closed), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_delete_clear_interrupt_and_history() {
    let standin = standin().await;
    let fx = standin.fixtures();
    let client = ComfyClient::new(&standin.url());

    // Three slow prompts: the first runs (until interrupted), two wait.
    let mut ids = Vec::new();
    for name in [
        "post_prompt_slow_0",
        "post_prompt_slow_1",
        "post_prompt_slow_2",
    ] {
        ids.push(
            client
                .submit_prompt(&fx.prompt_of(name), CLIENT_ID)
                .await
                .unwrap()
                .prompt_id,
        );
    }
    let view = tokio::time::timeout(PATIENCE, async {
        loop {
            let view = client.queue().await.unwrap();
            if !view.running.is_empty() {
                return view;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the first prompt starts");
    assert_eq!(view.running.len(), 1);
    assert_eq!(view.running[0].prompt_id, ids[0]);
    assert_eq!(view.running[0].client_id.as_deref(), Some(CLIENT_ID));
    assert_eq!(view.running[0].node_count, 6);
    assert_eq!(view.running[0].outputs, ["6"]);
    let pending: Vec<&str> = view.pending.iter().map(|p| p.prompt_id.as_str()).collect();
    assert_eq!(pending, [ids[1].as_str(), ids[2].as_str()]);
    assert!(view.pending[0].number < view.pending[1].number);
    assert_eq!(client.status(0).await.queue_remaining, Some(3));

    client.delete_pending(&[ids[2].as_str()]).await.unwrap();
    let view = client.queue().await.unwrap();
    let pending: Vec<&str> = view.pending.iter().map(|p| p.prompt_id.as_str()).collect();
    assert_eq!(pending, [ids[1].as_str()]);
    client.clear_queue().await.unwrap();
    let view = client.queue().await.unwrap();
    assert!(view.pending.is_empty());
    assert_eq!(view.running.len(), 1, "clearing leaves the running prompt");

    // A targeted interrupt of a prompt that is not running is a no-op.
    client
        .interrupt(Some("00000000-0000-0000-0000-000000000000"))
        .await
        .unwrap();
    assert_eq!(client.queue().await.unwrap().running.len(), 1);
    client.interrupt(Some(&ids[0])).await.unwrap();
    let entry = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(entry) = client.history(&ids[0]).await.unwrap() {
                return entry;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the interrupted prompt reaches the history");
    match &entry.outcome {
        HistoryOutcome::Interrupted {
            node: Some(node),
            node_type: Some(node_type),
        } => assert_eq!(
            entry.prompt[node.as_str()]["class_type"],
            *node_type,
            "{entry:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(entry.number, view.running[0].number);
    assert!(!entry.completed);
    assert!(client.queue().await.unwrap().running.is_empty());

    // A plain interrupt (nothing running): still 200.
    client.interrupt(None).await.unwrap();
    let interrupts: Vec<_> = standin
        .requests()
        .into_iter()
        .filter(|r| r.uri == "/interrupt")
        .collect();
    assert_eq!(interrupts.len(), 3);
    assert!(
        interrupts[2].body.is_empty(),
        "the global interrupt has no body"
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&interrupts[0].body).unwrap(),
        fx.exchange("post_interrupt_not_running")
            .request_json
            .clone()
            .unwrap()
    );

    // The recorded history.
    let success = client
        .history("ade058c9-217c-46cd-b240-bbe4f499132b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(success.outcome, HistoryOutcome::Success);
    assert_eq!(
        success
            .files()
            .map(|f| f.filename.as_str())
            .collect::<Vec<_>>(),
        ["fixture_invert_00001_.png"]
    );
    let failed = client
        .history("8a554a52-160a-4d9e-a033-8139b85f7277")
        .await
        .unwrap()
        .unwrap();
    match failed.outcome {
        HistoryOutcome::Failed {
            node,
            node_type,
            exception_type,
            message,
            traceback,
        } => {
            assert_eq!(node.as_deref(), Some("4"));
            assert_eq!(node_type.as_deref(), Some("CheckpointLoaderSimple"));
            assert_eq!(
                exception_type,
                "safetensors._safetensors_rust.SafetensorError"
            );
            assert!(message.contains("header too small"));
            assert_eq!(traceback.len(), 8);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        client
            .history("00000000-0000-0000-0000-000000000000")
            .await
            .unwrap(),
        None
    );
    let recent = client.history_recent(2).await.unwrap();
    let recent_ids: Vec<&str> = recent.iter().map(|e| e.prompt_id.as_str()).collect();
    assert_eq!(
        recent_ids,
        ["22c8345b-c7a5-40d6-b80c-bf9148399a66", ids[0].as_str()],
        "oldest first"
    );
    client.delete_history(&[ids[0].as_str()]).await.unwrap();
    assert_eq!(client.history(&ids[0]).await.unwrap(), None);

    assert_no_origin(&standin);
}

#[tokio::test(flavor = "multi_thread")]
async fn view_object_info_models_and_system_stats() {
    let standin = standin().await;
    let fx = standin.fixtures();
    let client = ComfyClient::new(&standin.url());

    let (content_type, bytes) = client
        .view("fixture_invert_00001_.png", "", "output")
        .await
        .unwrap();
    assert_eq!(content_type, "image/png");
    assert_eq!(bytes, fx.view_png);
    let recorded_uri = &fx.exchange("get_view_output").url_as_sent;
    assert!(
        standin.requests().iter().any(|r| &r.uri == recorded_uri),
        "the query is the frontend's: {recorded_uri}"
    );
    let err = client.view("nope.png", "", "output").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(err.to_string().contains("nope.png"), "{err}");
    let err = client
        .view("../secret.png", "", "output")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ComfyError::Status { status: 400, .. }),
        "{err:?}"
    );
    assert!(
        standin
            .requests()
            .iter()
            .any(|r| r.uri == "/view?filename=..%2Fsecret.png&subfolder=&type=output"),
        "{:?}",
        standin
            .requests()
            .iter()
            .map(|r| &r.uri)
            .collect::<Vec<_>>()
    );

    let info = client.object_info().await.unwrap();
    assert_eq!(info.as_object().unwrap().len(), 495);
    assert_eq!(info["KSampler"]["category"], "sampling");
    let ksampler = client.object_info_class("KSampler").await.unwrap().unwrap();
    assert_eq!(ksampler["name"], "KSampler");
    assert_eq!(client.object_info_class("NoSuchNode").await.unwrap(), None);

    let folders = client.model_folders().await.unwrap();
    assert!(
        folders.contains(&"custom_folder_name".to_string()),
        "{folders:?}"
    );
    assert_eq!(
        client.models("loras").await.unwrap(),
        ["extra_lora.safetensors", "second_lora.safetensors"]
    );
    assert_eq!(
        client.models("checkpoints").await.unwrap(),
        ["placeholder_model.safetensors"]
    );
    assert!(client
        .models("custom_folder_name")
        .await
        .unwrap()
        .is_empty());
    let err = client.models("not_a_folder").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(err.to_string().contains("not_a_folder"), "{err}");

    let stats = client.system_stats().await.unwrap();
    assert_eq!(stats.system.comfyui_version.as_deref(), Some("0.3.64"));
    assert_eq!(stats.system.ram_total, Some(25276502016));
    assert_eq!(stats.devices.len(), 1);
    assert_eq!(stats.devices[0].kind, "cpu");
    assert_eq!(stats.devices[0].index, None);
    client.free(true, true).await.unwrap();

    // The existing status call works against the stand-in too.
    let status = client.status(1).await;
    assert!(status.reachable, "{status:?}");
    assert_eq!(status.version.as_deref(), Some("0.3.64"));
    assert_eq!(status.queue_remaining, Some(0));

    assert_no_origin(&standin);
}

#[tokio::test(flavor = "multi_thread")]
async fn userdata_paths_are_encoded_and_statuses_named() {
    // A fresh ComfyUI: no workflows directory yet.
    let mut empty = config();
    empty.seed_userdata = false;
    let fresh = standin_with(empty).await;
    let client = ComfyClient::new(&fresh.url());
    let err = client.userdata_list("workflows", true).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let saved = client
        .userdata_put("workflows/first.json", b"{}".to_vec(), false)
        .await
        .unwrap();
    assert_eq!(saved.path, "workflows/first.json");
    assert_eq!(saved.size, Some(2));
    assert_eq!(
        client
            .userdata_list("workflows", false)
            .await
            .unwrap()
            .len(),
        1
    );

    // Seeded with the recorded files.
    let standin = standin().await;
    let fx = standin.fixtures();
    let client = ComfyClient::new(&standin.url());
    let list = client.userdata_list("workflows", true).await.unwrap();
    let recorded: Vec<Value> = serde_json::from_value(
        fx.exchange("get_userdata_list_full_info")
            .body_json
            .clone()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(list.len(), recorded.len());
    for (file, rec) in list.iter().zip(&recorded) {
        assert_eq!(file.path, rec["path"].as_str().unwrap());
        assert_eq!(file.size, rec["size"].as_u64());
        assert_eq!(file.modified, rec["modified"].as_f64());
    }
    let top: Vec<String> = client
        .userdata_list("workflows", false)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert_eq!(top, ["my flow.json"], "not recursive: no sub/");

    let flow = client.userdata_get("workflows/my flow.json").await.unwrap();
    assert_eq!(flow, fx.exchange("get_userdata_file").body);

    // Writing: new, then refused without overwrite (409), then overwritten.
    let created = client
        .userdata_put(
            "workflows/sub dir/new flow.json",
            b"{\"x\": 1}".to_vec(),
            false,
        )
        .await
        .unwrap();
    assert_eq!(created.path, "workflows/sub dir/new flow.json");
    assert_eq!(created.size, Some(8));
    assert!(created.modified.is_some() && created.created.is_some());
    let err = client
        .userdata_put("workflows/my flow.json", b"{}".to_vec(), false)
        .await
        .unwrap_err();
    assert!(matches!(err, ComfyError::Conflict { .. }), "{err:?}");
    assert!(err.to_string().contains("workflows/my flow.json"), "{err}");
    client
        .userdata_put("workflows/my flow.json", flow.clone(), true)
        .await
        .unwrap();

    // Moving: done, then the source is gone (404); onto an existing file without overwrite: 409.
    let moved = client
        .userdata_move(
            "workflows/my flow.json",
            "workflows/renamed flow.json",
            false,
        )
        .await
        .unwrap();
    assert_eq!(moved, "workflows/renamed flow.json");
    let err = client
        .userdata_move(
            "workflows/my flow.json",
            "workflows/renamed flow.json",
            false,
        )
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let err = client
        .userdata_move("workflows/sub/b.json", "workflows/renamed flow.json", false)
        .await
        .unwrap_err();
    assert!(matches!(err, ComfyError::Conflict { .. }), "{err:?}");

    // Deleting: 204, then the file is gone (404).
    client
        .userdata_delete("workflows/renamed flow.json")
        .await
        .unwrap();
    let err = client
        .userdata_get("workflows/renamed flow.json")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let err = client
        .userdata_delete("workflows/renamed flow.json")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");

    // Leaving the user directory: 403.
    let err = client.userdata_get("../../secret.txt").await.unwrap_err();
    assert!(matches!(err, ComfyError::Forbidden { .. }), "{err:?}");

    // The paths went out as the frontend sends them: one segment, `/` as %2F, space as %20.
    let uris: Vec<String> = standin.requests().into_iter().map(|r| r.uri).collect();
    let path_of = |name: &str| {
        let url = &fx.exchange(name).url_as_sent;
        url.split('?').next().unwrap().to_string()
    };
    for name in [
        "get_userdata_file",
        "post_userdata_move",
        "delete_userdata",
        "get_userdata_traversal_403",
    ] {
        let path = path_of(name);
        assert!(
            uris.iter()
                .any(|u| u.split('?').next() == Some(path.as_str())),
            "{name}: {path} not in {uris:?}"
        );
    }
    assert!(uris.contains(&fx.exchange("delete_userdata").url_as_sent));
    assert!(uris.contains(&fx.exchange("get_userdata_traversal_403").url_as_sent));
    assert!(uris.contains(
        &"/api/userdata?dir=workflows&recurse=true&split=false&full_info=true".to_string()
    ));
    assert!(uris.contains(
        &"/api/userdata/workflows%2Fmy%20flow.json?overwrite=false&full_info=true".to_string()
    ));
    assert!(uris
        .iter()
        .any(|u| u.starts_with("/api/userdata/workflows%2Fsub%20dir%2Fnew%20flow.json?")));

    assert_no_origin(&fresh);
    assert_no_origin(&standin);
}

// -- the socket --------------------------------------------------------------------------------

#[test]
fn ws_urls_and_backoff() {
    assert_eq!(
        ws_url("http://127.0.0.1:8188", "abc").unwrap(),
        "ws://127.0.0.1:8188/ws?clientId=abc"
    );
    assert_eq!(
        ws_url("https://pod.example/comfy/", "a b").unwrap(),
        "wss://pod.example/comfy/ws?clientId=a+b"
    );
    assert!(ws_url("ftp://x", "a").is_err());
    assert!(ws_url("not a url", "a").is_err());

    let initial = Duration::from_millis(100);
    let max = Duration::from_secs(5);
    for _ in 0..50 {
        let first = backoff_delay(initial, max, 0);
        assert!(first >= initial && first <= initial * 3 / 2, "{first:?}");
        let fourth = backoff_delay(initial, max, 3);
        assert!(
            fourth >= initial * 8 && fourth <= initial * 12,
            "{fourth:?}"
        );
        assert!(backoff_delay(initial, max, 10) <= max);
        assert!(backoff_delay(initial, max, u32::MAX) <= max);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_socket_retries_while_nothing_listens_and_stops_when_cancelled() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut config = SocketConfig::new(&closed, CLIENT_ID);
    config.backoff_initial = Duration::from_millis(20);
    config.backoff_max = Duration::from_millis(50);
    let cancel = CancellationToken::new();
    let (socket, _events) = ComfySocket::spawn(config, cancel.clone()).unwrap();
    wait_state(&socket, "retrying", |s| {
        matches!(s, SocketState::Connecting { attempt, last_error: Some(e) } if *attempt >= 2 && e.contains("refused"))
    })
    .await;
    assert!(!socket.connected());
    cancel.cancel();
    wait_state(&socket, "stopped", |s| *s == SocketState::Stopped).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_socket_follows_prompts_and_reconnects_by_itself() {
    let mut standin = standin().await;
    let fx = fixtures();
    let client = ComfyClient::new(&standin.url());
    let cancel = CancellationToken::new();
    let mut config = SocketConfig::new(&standin.url(), CLIENT_ID);
    config.backoff_initial = Duration::from_millis(50);
    config.backoff_max = Duration::from_millis(200);
    let (socket, mut events) = ComfySocket::spawn(config, cancel.clone()).unwrap();
    wait_state(&socket, "connected", |s| *s == SocketState::Connected).await;
    assert_eq!(socket.client_id(), CLIENT_ID);

    // It announced the frontend's feature flags, and heard the server's.
    let mut saw_features = false;
    let mut saw_queue = false;
    while !(saw_features && saw_queue) {
        match tokio::time::timeout(PATIENCE, events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            ComfyEvent::ServerFeatures(flags) => {
                assert_eq!(flags["supports_preview_metadata"], true);
                saw_features = true;
            }
            ComfyEvent::Queue(q) => {
                assert_eq!(q.remaining, 0);
                saw_queue = true;
            }
            _ => {}
        }
    }
    assert_eq!(socket.queue_remaining(), Some(0));
    eventually("the flags reach ComfyUI", || {
        !standin.client_frames().is_empty()
    })
    .await;
    let frames = standin.client_frames();
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].sid, CLIENT_ID);
    assert_eq!(frames[0].text, CLIENT_FEATURE_FLAGS);
    assert_eq!(standin.ws_connects(), [format!("/ws?clientId={CLIENT_ID}")]);

    // A successful run, with the prompt registered first under an id chosen here.
    let prompt = fx.prompt_of("post_prompt_ok");
    let pid = "5a1e0000-0000-4000-8000-000000000001";
    socket.register_prompt(pid, &prompt);
    let submitted = client
        .submit(&PromptRequest {
            prompt: prompt.clone(),
            client_id: Some(CLIENT_ID.into()),
            prompt_id: Some(pid.into()),
            ..PromptRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(submitted.prompt_id, pid);
    let run = run_of(&mut events, pid).await;
    assert_eq!(
        kind_labels(&run),
        [
            "started",
            "cached ",
            "node 1",
            "node 2",
            "node 3",
            "output 3 output/fixture_invert_00001_.png",
            "succeeded",
            "done"
        ]
    );
    assert!(run.contains(&PromptEventKind::NodeExecuting {
        node: "2".into(),
        display_node: Some("2".into()),
        title: Some("Invert Image".into()),
        class_type: Some("ImageInvert".into()),
    }));
    assert_eq!(socket.current_prompt(), None);

    // The same prompt again: all cached.
    let again = client.submit_prompt(&prompt, CLIENT_ID).await.unwrap();
    assert_eq!(
        kind_labels(&run_of(&mut events, &again.prompt_id).await),
        [
            "started",
            "cached 1,2,3",
            "output 3 output/fixture_invert_00001_.png",
            "succeeded",
            "done"
        ]
    );

    // A node that fails at run time.
    let failing = client
        .submit_prompt(
            &fx.prompt_of("post_prompt_runtime_error_accepted"),
            CLIENT_ID,
        )
        .await
        .unwrap();
    let run = run_of(&mut events, &failing.prompt_id).await;
    assert_eq!(
        kind_labels(&run),
        [
            "started",
            "cached ",
            "node 4",
            "failed 4 CheckpointLoaderSimple",
            "done"
        ]
    );

    // Previews with metadata (the socket announced support) and progress text.
    let previewing = client
        .submit_prompt(&preview_prompt(), CLIENT_ID)
        .await
        .unwrap();
    let run = run_of(&mut events, &previewing.prompt_id).await;
    assert_eq!(
        kind_labels(&run),
        [
            "started",
            "cached ",
            "node 1",
            "node 2",
            "preview 2 image/jpeg",
            "progress 2 1/3",
            "preview 2 image/jpeg",
            "progress 2 2/3",
            "preview 2 image/jpeg",
            "progress 2 3/3",
            "text 2 fixture progress text",
            "node 3",
            "output 3 temp/ComfyUI_temp_qbjiy_00001_.png",
            "succeeded",
            "done"
        ]
    );
    let preview = run
        .iter()
        .find_map(|k| match k {
            PromptEventKind::Preview { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(preview.len(), 3702);
    assert_eq!(&preview[..3], [0xff, 0xd8, 0xff]);
    let output = client
        .view("ComfyUI_temp_qbjiy_00001_.png", "", "temp")
        .await
        .unwrap();
    assert_eq!(output.0, "image/png", "the run's output can be viewed");

    // Legacy previews (event 1): attributed to the executing prompt and node.
    standin.play_next("ws_progress_preview_legacy");
    let legacy = client
        .submit_prompt(&preview_prompt(), CLIENT_ID)
        .await
        .unwrap();
    let run = run_of(&mut events, &legacy.prompt_id).await;
    let previews: Vec<&str> = run
        .iter()
        .filter_map(|k| match k {
            PromptEventKind::Preview { node, .. } => node.as_deref(),
            _ => None,
        })
        .collect();
    assert_eq!(previews, ["2", "2", "2"]);
    assert_eq!(run.last(), Some(&PromptEventKind::Done));

    // A slow prompt, interrupted while its second node runs.
    let slow = client
        .submit_prompt(&fx.prompt_of("post_prompt_slow_0"), CLIENT_ID)
        .await
        .unwrap();
    let mut run = Vec::new();
    loop {
        let event = tokio::time::timeout(PATIENCE, events.recv())
            .await
            .unwrap()
            .unwrap();
        let ComfyEvent::Prompt(p) = event else {
            continue;
        };
        assert_eq!(p.prompt_id, slow.prompt_id);
        let second = matches!(&p.kind, PromptEventKind::NodeExecuting { node, .. } if node == "2");
        run.push(p.kind);
        if second {
            break;
        }
    }
    assert_eq!(
        socket.current_prompt().as_deref(),
        Some(slow.prompt_id.as_str())
    );
    client.interrupt(Some(&slow.prompt_id)).await.unwrap();
    run.extend(run_of(&mut events, &slow.prompt_id).await);
    assert_eq!(
        kind_labels(&run),
        [
            "started",
            "cached ",
            "node 1",
            "node 2",
            "interrupted 2 ImageBlur",
            "done"
        ]
    );

    // ComfyUI goes away: the socket notices, and retries.
    standin.stop().await;
    wait_state(&socket, "disconnected", |s| {
        matches!(s, SocketState::Connecting { .. })
    })
    .await;
    loop {
        match tokio::time::timeout(PATIENCE, events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            ComfyEvent::Disconnected { reason } => {
                assert!(!reason.is_empty());
                break;
            }
            ComfyEvent::Prompt(p) => panic!("{p:?}"),
            _ => {}
        }
    }
    // It comes back on the same port: the socket reconnects by itself, with the same id.
    standin.restart().await.unwrap();
    wait_state(&socket, "reconnected", |s| *s == SocketState::Connected).await;
    loop {
        if tokio::time::timeout(PATIENCE, events.recv())
            .await
            .unwrap()
            .unwrap()
            == ComfyEvent::Connected
        {
            break;
        }
    }
    eventually("ComfyUI sees the socket again", || {
        standin.ws_connects().len() >= 2
    })
    .await;
    let connects = standin.ws_connects();
    assert!(connects
        .iter()
        .all(|c| c == &format!("/ws?clientId={CLIENT_ID}")));
    let flags_sent = || {
        standin
            .client_frames()
            .iter()
            .filter(|f| f.text == CLIENT_FEATURE_FLAGS && f.sid == CLIENT_ID)
            .count()
    };
    eventually("flags sent on every connection", || {
        flags_sent() == connects.len()
    })
    .await;

    // And keeps working.
    let after = client
        .submit_prompt(&fx.prompt_of("post_prompt_loadimage_preview"), CLIENT_ID)
        .await
        .unwrap();
    assert_eq!(
        kind_labels(&run_of(&mut events, &after.prompt_id).await),
        [
            "started",
            "cached ",
            "node 10",
            "node 11",
            "node 12",
            "output 12 temp/ComfyUI_temp_javga_00001_.png",
            "succeeded",
            "done"
        ]
    );

    // No request, WebSocket upgrades included, carried an Origin.
    assert_no_origin(&standin);
    assert!(standin
        .requests()
        .iter()
        .any(|r| r.uri.starts_with("/ws?clientId=") && r.header("upgrade") == Some("websocket")));

    cancel.cancel();
    wait_state(&socket, "stopped", |s| *s == SocketState::Stopped).await;
    standin.stop().await;
}
