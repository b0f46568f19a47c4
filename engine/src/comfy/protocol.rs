//! ComfyUI's WebSocket messages, as typed values, and their translation into engine events.
//!
//! Two layers:
//! - [`parse_text`] / [`parse_binary`] turn one frame into a [`ServerMessage`], field for field
//!   what ComfyUI sent (v0.3.64 with frontend 1.27.10, see `comfy-standin/fixtures/comfyui`).
//!   Unknown text types (custom nodes send their own) become [`ServerMessage::Other`], never
//!   errors; only frames that are not ComfyUI's shape at all are [`ProtocolError`]s.
//! - [`Tracker`] turns messages into [`ComfyEvent`]s: per-prompt [`PromptEvent`]s and the
//!   [`QueueStatus`]. It remembers which prompt is executing, because some frames (legacy
//!   previews, progress text) carry no prompt id, and it names nodes from prompts registered
//!   with [`Tracker::register_prompt`].
//!
//! Frame layouts (all integers big-endian u32):
//! - binary event 1, legacy preview: `[1][image type: 1 = JPEG, 2 = PNG][image bytes]`; sent to
//!   clients that did not announce `supports_preview_metadata`.
//! - binary event 4, preview with metadata: `[4][metadata length][metadata JSON][image bytes]`,
//!   the JSON holding `node_id`, `display_node_id`, `parent_node_id`, `real_node_id`,
//!   `prompt_id` and `image_type` (a MIME type such as `image/jpeg`).
//! - binary event 3, progress text: `[3][node id length][node id][UTF-8 text]`.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The first message the real frontend (1.27.10) sends on a fresh socket, byte for byte. With
/// `supports_preview_metadata` ComfyUI sends previews as binary event 4, which names the node
/// and the prompt, instead of the legacy event 1.
pub const CLIENT_FEATURE_FLAGS: &str = "{\"type\": \"feature_flags\", \"data\": {\"supports_preview_metadata\": true, \"supports_manager_v4_ui\": true}}";

/// Binary event: legacy preview image (no prompt or node named).
pub const BINARY_PREVIEW_IMAGE: u32 = 1;
/// Binary event: an unencoded preview; ComfyUI encodes these before sending, so it is never seen
/// on the wire.
pub const BINARY_UNENCODED_PREVIEW_IMAGE: u32 = 2;
/// Binary event: text a node reports while it runs.
pub const BINARY_PROGRESS_TEXT: u32 = 3;
/// Binary event: preview image with JSON metadata.
pub const BINARY_PREVIEW_IMAGE_WITH_METADATA: u32 = 4;

/// How many submitted prompts the tracker remembers node names for.
const REMEMBERED_PROMPTS: usize = 512;

// -- bytes -------------------------------------------------------------------------------------

/// Image bytes: cheap to clone (they travel on a broadcast channel), and `Debug` prints the
/// length rather than the bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ImageBytes(Arc<[u8]>);

impl ImageBytes {
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl Deref for ImageBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for ImageBytes {
    fn from(v: Vec<u8>) -> Self {
        ImageBytes(v.into())
    }
}

impl From<&[u8]> for ImageBytes {
    fn from(v: &[u8]) -> Self {
        ImageBytes(v.into())
    }
}

impl fmt::Debug for ImageBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageBytes({} bytes)", self.0.len())
    }
}

// -- messages ----------------------------------------------------------------------------------

/// One frame from ComfyUI, as sent.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerMessage {
    /// `status`: the queue length (running + pending, from every client, ComfyUI's own UI
    /// included). The first one on a socket also carries the session id (`sid`), which is the
    /// `clientId` the socket was opened with.
    Status {
        queue_remaining: Option<u64>,
        sid: Option<String>,
    },
    /// `execution_start`: the prompt left the queue and started.
    ExecutionStart {
        prompt_id: String,
        timestamp: Option<i64>,
    },
    /// `execution_cached`: nodes whose results were reused (may be empty).
    ExecutionCached {
        prompt_id: String,
        nodes: Vec<String>,
        timestamp: Option<i64>,
    },
    /// `executing`: `node` started; `node: None` means ComfyUI is done with the prompt (sent
    /// last, after `execution_success` / `execution_error` / `execution_interrupted`).
    Executing {
        prompt_id: Option<String>,
        node: Option<String>,
        display_node: Option<String>,
    },
    /// `progress`: a node's step counter (sampler steps, or a node's own progress bar).
    Progress {
        prompt_id: Option<String>,
        node: Option<String>,
        value: f64,
        max: f64,
    },
    /// `progress_state`: every node touched so far in this prompt, with its state.
    ProgressState {
        prompt_id: String,
        nodes: Vec<NodeProgress>,
    },
    /// `executed`: a node's UI output (`images`, `gifs`, `audio`, `text`, …).
    Executed {
        prompt_id: Option<String>,
        node: String,
        display_node: Option<String>,
        output: Value,
    },
    /// `execution_success`.
    ExecutionSuccess {
        prompt_id: String,
        timestamp: Option<i64>,
    },
    /// `execution_error`: a node raised while running.
    ExecutionError(ExecutionFailure),
    /// `execution_interrupted`: `/interrupt` stopped the prompt.
    ExecutionInterrupted {
        prompt_id: String,
        node_id: Option<String>,
        node_type: Option<String>,
        executed: Vec<String>,
        timestamp: Option<i64>,
    },
    /// `feature_flags`: what the server supports (`supports_preview_metadata`,
    /// `max_upload_size`, …). Clients send the same type to announce theirs.
    FeatureFlags(Map<String, Value>),
    /// A text message of a type this module does not know (custom nodes' own messages,
    /// `crystools.monitor`, newer ComfyUI types). Kept, not an error.
    Other { kind: String, data: Value },
    /// Binary event 1 or 4.
    Preview(Preview),
    /// Binary event 3.
    ProgressText { node: String, text: String },
    /// A binary event type this module does not know.
    UnknownBinary { event_type: u32, len: usize },
}

impl ServerMessage {
    /// The prompt a message names, when it names one.
    pub fn prompt_id(&self) -> Option<&str> {
        match self {
            ServerMessage::ExecutionStart { prompt_id, .. }
            | ServerMessage::ExecutionCached { prompt_id, .. }
            | ServerMessage::ProgressState { prompt_id, .. }
            | ServerMessage::ExecutionSuccess { prompt_id, .. }
            | ServerMessage::ExecutionInterrupted { prompt_id, .. } => Some(prompt_id),
            ServerMessage::ExecutionError(failure) => Some(&failure.prompt_id),
            ServerMessage::Executing { prompt_id, .. }
            | ServerMessage::Progress { prompt_id, .. }
            | ServerMessage::Executed { prompt_id, .. } => prompt_id.as_deref(),
            ServerMessage::Preview(preview) => preview.prompt_id.as_deref(),
            _ => None,
        }
    }
}

/// One node's entry in `progress_state`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeProgress {
    /// The execution id (inside subgraphs this is a path such as `5:3`).
    #[serde(default, deserialize_with = "de_opt_id")]
    pub node_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_id")]
    pub display_node_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_id")]
    pub parent_node_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_id")]
    pub real_node_id: Option<String>,
    #[serde(default)]
    pub value: f64,
    #[serde(default)]
    pub max: f64,
    /// `pending`, `running`, `finished` or `error`.
    #[serde(default)]
    pub state: String,
}

/// The data of `execution_error`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionFailure {
    pub prompt_id: String,
    #[serde(default, deserialize_with = "de_opt_id")]
    pub node_id: Option<String>,
    #[serde(default)]
    pub node_type: Option<String>,
    /// Nodes that had finished before the failure.
    #[serde(default)]
    pub executed: Vec<String>,
    #[serde(default)]
    pub exception_message: String,
    #[serde(default)]
    pub exception_type: String,
    #[serde(default)]
    pub traceback: Vec<String>,
    #[serde(default)]
    pub current_inputs: Value,
    #[serde(default)]
    pub current_outputs: Value,
    #[serde(default)]
    pub timestamp: Option<i64>,
}

/// A preview image from a running node.
#[derive(Clone, Debug, PartialEq)]
pub struct Preview {
    /// `None` for the legacy event 1, which names no prompt.
    pub prompt_id: Option<String>,
    /// `None` for the legacy event 1.
    pub node: Option<String>,
    pub display_node: Option<String>,
    /// `image/jpeg`, `image/png`, … (`application/octet-stream` for an unknown legacy type).
    pub mime: String,
    pub bytes: ImageBytes,
}

/// A frame that is not ComfyUI's shape.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("a text frame that is not a JSON object with a \"type\": {0}")]
    NotJson(String),
    #[error("a \"{kind}\" message whose data is not ComfyUI's shape: {reason}")]
    BadData { kind: String, reason: String },
    #[error("a binary frame of {len} bytes is too short for its header")]
    ShortFrame { len: usize },
    #[error("binary event {event_type}: {reason}")]
    BadBinary { event_type: u32, reason: String },
}

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct StatusData {
    #[serde(default)]
    status: Option<StatusInner>,
    #[serde(default)]
    sid: Option<String>,
}

#[derive(Deserialize)]
struct StatusInner {
    #[serde(default)]
    exec_info: Option<ExecInfo>,
}

#[derive(Deserialize)]
struct ExecInfo {
    #[serde(default)]
    queue_remaining: Option<u64>,
}

#[derive(Deserialize)]
struct PromptStamp {
    prompt_id: String,
    #[serde(default)]
    timestamp: Option<i64>,
}

#[derive(Deserialize)]
struct CachedData {
    prompt_id: String,
    #[serde(default)]
    nodes: Vec<String>,
    #[serde(default)]
    timestamp: Option<i64>,
}

#[derive(Deserialize)]
struct ExecutingData {
    #[serde(default, deserialize_with = "de_opt_id")]
    node: Option<String>,
    #[serde(default, deserialize_with = "de_opt_id")]
    display_node: Option<String>,
    #[serde(default)]
    prompt_id: Option<String>,
}

#[derive(Deserialize)]
struct ProgressData {
    value: f64,
    max: f64,
    #[serde(default)]
    prompt_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_id")]
    node: Option<String>,
}

#[derive(Deserialize)]
struct ProgressStateData {
    prompt_id: String,
    nodes: OrderedMap<NodeProgress>,
}

#[derive(Deserialize)]
struct ExecutedData {
    #[serde(deserialize_with = "de_id")]
    node: String,
    #[serde(default, deserialize_with = "de_opt_id")]
    display_node: Option<String>,
    #[serde(default)]
    output: Value,
    #[serde(default)]
    prompt_id: Option<String>,
}

#[derive(Deserialize)]
struct InterruptedData {
    prompt_id: String,
    #[serde(default, deserialize_with = "de_opt_id")]
    node_id: Option<String>,
    #[serde(default)]
    node_type: Option<String>,
    #[serde(default)]
    executed: Vec<String>,
    #[serde(default)]
    timestamp: Option<i64>,
}

#[derive(Deserialize)]
struct PreviewMetadata {
    #[serde(default, deserialize_with = "de_opt_id")]
    node_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_id")]
    display_node_id: Option<String>,
    #[serde(default)]
    prompt_id: Option<String>,
    #[serde(default)]
    image_type: Option<String>,
}

fn data<T: DeserializeOwned>(text: &str, kind: &str) -> Result<T, ProtocolError> {
    serde_json::from_str::<Envelope<T>>(text)
        .map(|e| e.data)
        .map_err(|e| ProtocolError::BadData {
            kind: kind.to_string(),
            reason: e.to_string(),
        })
}

/// Parses one text frame.
pub fn parse_text(text: &str) -> Result<ServerMessage, ProtocolError> {
    let head: Head =
        serde_json::from_str(text).map_err(|e| ProtocolError::NotJson(e.to_string()))?;
    let kind = head.kind.as_str();
    Ok(match kind {
        "status" => {
            let d: StatusData = data(text, kind)?;
            ServerMessage::Status {
                queue_remaining: d
                    .status
                    .and_then(|s| s.exec_info)
                    .and_then(|e| e.queue_remaining),
                sid: d.sid,
            }
        }
        "execution_start" => {
            let d: PromptStamp = data(text, kind)?;
            ServerMessage::ExecutionStart {
                prompt_id: d.prompt_id,
                timestamp: d.timestamp,
            }
        }
        "execution_cached" => {
            let d: CachedData = data(text, kind)?;
            ServerMessage::ExecutionCached {
                prompt_id: d.prompt_id,
                nodes: d.nodes,
                timestamp: d.timestamp,
            }
        }
        "executing" => {
            let d: ExecutingData = data(text, kind)?;
            ServerMessage::Executing {
                prompt_id: d.prompt_id,
                node: d.node,
                display_node: d.display_node,
            }
        }
        "progress" => {
            let d: ProgressData = data(text, kind)?;
            ServerMessage::Progress {
                prompt_id: d.prompt_id,
                node: d.node,
                value: d.value,
                max: d.max,
            }
        }
        "progress_state" => {
            let d: ProgressStateData = data(text, kind)?;
            ServerMessage::ProgressState {
                prompt_id: d.prompt_id,
                nodes: d.nodes.0.into_iter().map(|(_, n)| n).collect(),
            }
        }
        "executed" => {
            let d: ExecutedData = data(text, kind)?;
            ServerMessage::Executed {
                prompt_id: d.prompt_id,
                node: d.node,
                display_node: d.display_node,
                output: d.output,
            }
        }
        "execution_success" => {
            let d: PromptStamp = data(text, kind)?;
            ServerMessage::ExecutionSuccess {
                prompt_id: d.prompt_id,
                timestamp: d.timestamp,
            }
        }
        "execution_error" => ServerMessage::ExecutionError(data(text, kind)?),
        "execution_interrupted" => {
            let d: InterruptedData = data(text, kind)?;
            ServerMessage::ExecutionInterrupted {
                prompt_id: d.prompt_id,
                node_id: d.node_id,
                node_type: d.node_type,
                executed: d.executed,
                timestamp: d.timestamp,
            }
        }
        "feature_flags" => ServerMessage::FeatureFlags(data(text, kind)?),
        _ => {
            #[derive(Deserialize)]
            struct Any {
                #[serde(default)]
                data: Value,
            }
            let any: Any =
                serde_json::from_str(text).map_err(|e| ProtocolError::NotJson(e.to_string()))?;
            ServerMessage::Other {
                kind: head.kind,
                data: any.data,
            }
        }
    })
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The MIME type of a legacy preview's image type number.
pub fn legacy_image_mime(image_type: u32) -> &'static str {
    match image_type {
        1 => "image/jpeg",
        2 => "image/png",
        _ => "application/octet-stream",
    }
}

/// Parses one binary frame.
pub fn parse_binary(frame: &[u8]) -> Result<ServerMessage, ProtocolError> {
    let event_type = be_u32(frame, 0).ok_or(ProtocolError::ShortFrame { len: frame.len() })?;
    let body = &frame[4..];
    let bad = |reason: &str| ProtocolError::BadBinary {
        event_type,
        reason: reason.to_string(),
    };
    match event_type {
        BINARY_PREVIEW_IMAGE => {
            let image_type = be_u32(body, 0).ok_or_else(|| bad("no image type"))?;
            Ok(ServerMessage::Preview(Preview {
                prompt_id: None,
                node: None,
                display_node: None,
                mime: legacy_image_mime(image_type).to_string(),
                bytes: ImageBytes::from(&body[4..]),
            }))
        }
        BINARY_PREVIEW_IMAGE_WITH_METADATA => {
            let len = be_u32(body, 0).ok_or_else(|| bad("no metadata length"))? as usize;
            let json = body
                .get(4..4 + len)
                .ok_or_else(|| bad("metadata longer than the frame"))?;
            let meta: PreviewMetadata = serde_json::from_slice(json)
                .map_err(|e| bad(&format!("metadata is not JSON: {e}")))?;
            Ok(ServerMessage::Preview(Preview {
                prompt_id: meta.prompt_id,
                node: meta.node_id,
                display_node: meta.display_node_id,
                mime: meta
                    .image_type
                    .unwrap_or_else(|| "application/octet-stream".to_string()),
                bytes: ImageBytes::from(&body[4 + len..]),
            }))
        }
        BINARY_PROGRESS_TEXT => {
            let len = be_u32(body, 0).ok_or_else(|| bad("no node id length"))? as usize;
            let node = body
                .get(4..4 + len)
                .ok_or_else(|| bad("node id longer than the frame"))?;
            let node = std::str::from_utf8(node).map_err(|_| bad("node id is not UTF-8"))?;
            let text = std::str::from_utf8(&body[4 + len..])
                .map_err(|_| bad("progress text is not UTF-8"))?;
            Ok(ServerMessage::ProgressText {
                node: node.to_string(),
                text: text.to_string(),
            })
        }
        _ => Ok(ServerMessage::UnknownBinary {
            event_type,
            len: frame.len(),
        }),
    }
}

// -- engine events -----------------------------------------------------------------------------

/// A file a node wrote, as ComfyUI names it for `/view`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    pub filename: String,
    #[serde(default)]
    pub subfolder: String,
    /// `output`, `temp` or `input` (the `type` query parameter of `/view`).
    #[serde(rename = "type", default = "output_kind")]
    pub kind: String,
    /// The key it was listed under: `images`, `gifs`, `audio`, `video`, …
    #[serde(default)]
    pub media: String,
}

fn output_kind() -> String {
    "output".to_string()
}

/// The files in a node's UI output: every list item with a `filename`, whatever the key.
pub fn output_files(output: &Value) -> Vec<OutputFile> {
    let Some(map) = output.as_object() else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for (media, items) in map {
        let Some(items) = items.as_array() else {
            continue;
        };
        for item in items {
            let Some(filename) = item.get("filename").and_then(Value::as_str) else {
                continue;
            };
            files.push(OutputFile {
                filename: filename.to_string(),
                subfolder: item
                    .get("subfolder")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                kind: item
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("output")
                    .to_string(),
                media: media.clone(),
            });
        }
    }
    files
}

/// Something that happened to one prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptEvent {
    pub prompt_id: String,
    pub kind: PromptEventKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum PromptEventKind {
    /// Accepted into the queue. Never produced from the socket (ComfyUI sends no per-prompt
    /// message for it): a caller emits it after [`submit`](crate::comfy::ComfyClient::submit).
    Queued {
        number: f64,
    },
    Started {
        timestamp: Option<i64>,
    },
    /// Nodes whose results were reused.
    Cached {
        nodes: Vec<String>,
    },
    /// A node started. `title` and `class_type` come from the submitted prompt, when it was
    /// registered with the tracker.
    NodeExecuting {
        node: String,
        display_node: Option<String>,
        title: Option<String>,
        class_type: Option<String>,
    },
    Progress {
        node: Option<String>,
        value: f64,
        max: f64,
    },
    /// The per-node states of `progress_state`.
    NodeStates {
        nodes: Vec<NodeProgress>,
    },
    Preview {
        node: Option<String>,
        display_node: Option<String>,
        mime: String,
        bytes: ImageBytes,
    },
    ProgressText {
        node: String,
        text: String,
    },
    /// A node's output: its files, and the whole output as sent (text outputs and flags too).
    NodeOutput {
        node: String,
        display_node: Option<String>,
        files: Vec<OutputFile>,
        output: Value,
    },
    Succeeded {
        timestamp: Option<i64>,
    },
    Failed {
        node: Option<String>,
        node_type: Option<String>,
        message: String,
        exception_type: String,
        traceback: Vec<String>,
    },
    Interrupted {
        node: Option<String>,
        node_type: Option<String>,
    },
    /// ComfyUI let go of the prompt (`executing` with `node: null`); always after the
    /// `Succeeded` / `Failed` / `Interrupted`.
    Done,
}

impl PromptEventKind {
    /// `Succeeded`, `Failed` or `Interrupted`.
    pub fn is_outcome(&self) -> bool {
        matches!(
            self,
            PromptEventKind::Succeeded { .. }
                | PromptEventKind::Failed { .. }
                | PromptEventKind::Interrupted { .. }
        )
    }
}

/// ComfyUI's queue length: running + pending, from every client (ComfyUI's own UI included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueStatus {
    pub remaining: u64,
}

/// What the socket publishes.
#[derive(Clone, Debug, PartialEq)]
pub enum ComfyEvent {
    /// The socket (re)connected. Events may have been missed while it was down: a listener
    /// that cares re-reads `/queue` and `/history`.
    Connected,
    /// The socket lost ComfyUI; it reconnects by itself.
    Disconnected {
        reason: String,
    },
    Queue(QueueStatus),
    Prompt(PromptEvent),
    /// The server's `feature_flags`.
    ServerFeatures(Map<String, Value>),
    /// A text message of a type not known here (custom nodes' own messages).
    Unhandled {
        kind: String,
        data: Value,
    },
}

#[derive(Clone, Debug, Default)]
struct NodeNames {
    class_type: Option<String>,
    title: Option<String>,
}

/// Follows the socket's messages: which prompt and node are executing, and the node names of
/// prompts registered by the caller.
#[derive(Debug, Default)]
pub struct Tracker {
    queue_remaining: Option<u64>,
    current: Option<String>,
    current_node: Option<String>,
    prompts: HashMap<String, HashMap<String, NodeNames>>,
    order: VecDeque<String>,
}

impl Tracker {
    pub fn new() -> Self {
        Tracker::default()
    }

    /// Remembers a prompt's node titles (`_meta.title`) and classes, so that `NodeExecuting`
    /// events can name them. Register before or right after submitting; the last
    /// [`REMEMBERED_PROMPTS`] are kept, and a prompt is forgotten once done.
    pub fn register_prompt(&mut self, prompt_id: &str, prompt: &Value) {
        let Some(nodes) = prompt.as_object() else {
            return;
        };
        let names = nodes
            .iter()
            .map(|(id, node)| {
                (
                    id.clone(),
                    NodeNames {
                        class_type: node
                            .get("class_type")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        title: node
                            .pointer("/_meta/title")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    },
                )
            })
            .collect();
        if self.prompts.insert(prompt_id.to_string(), names).is_none() {
            self.order.push_back(prompt_id.to_string());
        }
        while self.order.len() > REMEMBERED_PROMPTS {
            if let Some(old) = self.order.pop_front() {
                self.prompts.remove(&old);
            }
        }
    }

    /// The prompt executing now, as far as the socket has seen.
    pub fn current_prompt(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// The queue length from the last `status`.
    pub fn queue_remaining(&self) -> Option<u64> {
        self.queue_remaining
    }

    /// The node executing now.
    pub fn current_node(&self) -> Option<&str> {
        self.current_node.as_deref()
    }

    /// Forgets what is executing (the socket dropped: it will learn again from the next
    /// `executing`).
    pub fn reset(&mut self) {
        self.current = None;
        self.current_node = None;
    }

    fn forget(&mut self, prompt_id: &str) {
        if self.prompts.remove(prompt_id).is_some() {
            self.order.retain(|p| p != prompt_id);
        }
    }

    fn names(&self, prompt_id: &str, node: &str) -> NodeNames {
        self.prompts
            .get(prompt_id)
            .and_then(|nodes| nodes.get(node))
            .cloned()
            .unwrap_or_default()
    }

    fn resolve(&self, named: Option<String>) -> Option<String> {
        named.or_else(|| self.current.clone())
    }

    /// Translates one message into events (none, one, or more).
    pub fn on_message(&mut self, message: ServerMessage) -> Vec<ComfyEvent> {
        let prompt = |prompt_id: String, kind: PromptEventKind| {
            vec![ComfyEvent::Prompt(PromptEvent { prompt_id, kind })]
        };
        match message {
            ServerMessage::Status {
                queue_remaining, ..
            } => match queue_remaining {
                Some(remaining) => {
                    self.queue_remaining = Some(remaining);
                    vec![ComfyEvent::Queue(QueueStatus { remaining })]
                }
                None => Vec::new(),
            },
            ServerMessage::ExecutionStart {
                prompt_id,
                timestamp,
            } => {
                self.current = Some(prompt_id.clone());
                self.current_node = None;
                prompt(prompt_id, PromptEventKind::Started { timestamp })
            }
            ServerMessage::ExecutionCached {
                prompt_id, nodes, ..
            } => {
                if self.current.is_none() {
                    self.current = Some(prompt_id.clone());
                }
                prompt(prompt_id, PromptEventKind::Cached { nodes })
            }
            ServerMessage::Executing {
                prompt_id,
                node: Some(node),
                display_node,
            } => {
                let Some(prompt_id) = self.resolve(prompt_id) else {
                    return Vec::new();
                };
                self.current = Some(prompt_id.clone());
                self.current_node = Some(node.clone());
                let names = self.names(&prompt_id, &node);
                prompt(
                    prompt_id,
                    PromptEventKind::NodeExecuting {
                        node,
                        display_node,
                        title: names.title,
                        class_type: names.class_type,
                    },
                )
            }
            ServerMessage::Executing {
                prompt_id,
                node: None,
                ..
            } => {
                let Some(prompt_id) = self.resolve(prompt_id) else {
                    return Vec::new();
                };
                if self.current.as_deref() == Some(prompt_id.as_str()) {
                    self.reset();
                }
                self.forget(&prompt_id);
                prompt(prompt_id, PromptEventKind::Done)
            }
            ServerMessage::Progress {
                prompt_id,
                node,
                value,
                max,
            } => match self.resolve(prompt_id) {
                Some(prompt_id) => {
                    prompt(prompt_id, PromptEventKind::Progress { node, value, max })
                }
                None => Vec::new(),
            },
            ServerMessage::ProgressState { prompt_id, nodes } => {
                prompt(prompt_id, PromptEventKind::NodeStates { nodes })
            }
            ServerMessage::Executed {
                prompt_id,
                node,
                display_node,
                output,
            } => match self.resolve(prompt_id) {
                Some(prompt_id) => prompt(
                    prompt_id,
                    PromptEventKind::NodeOutput {
                        node,
                        display_node,
                        files: output_files(&output),
                        output,
                    },
                ),
                None => Vec::new(),
            },
            ServerMessage::ExecutionSuccess {
                prompt_id,
                timestamp,
            } => prompt(prompt_id, PromptEventKind::Succeeded { timestamp }),
            ServerMessage::ExecutionError(failure) => prompt(
                failure.prompt_id,
                PromptEventKind::Failed {
                    node: failure.node_id,
                    node_type: failure.node_type,
                    message: failure.exception_message,
                    exception_type: failure.exception_type,
                    traceback: failure.traceback,
                },
            ),
            ServerMessage::ExecutionInterrupted {
                prompt_id,
                node_id,
                node_type,
                ..
            } => prompt(
                prompt_id,
                PromptEventKind::Interrupted {
                    node: node_id,
                    node_type,
                },
            ),
            ServerMessage::FeatureFlags(flags) => vec![ComfyEvent::ServerFeatures(flags)],
            ServerMessage::Other { kind, data } => vec![ComfyEvent::Unhandled { kind, data }],
            ServerMessage::Preview(preview) => {
                // The legacy event names nothing: it belongs to whatever is executing.
                let legacy = preview.prompt_id.is_none();
                let Some(prompt_id) = self.resolve(preview.prompt_id) else {
                    return Vec::new();
                };
                let node = if legacy {
                    self.current_node.clone()
                } else {
                    preview.node
                };
                prompt(
                    prompt_id,
                    PromptEventKind::Preview {
                        node,
                        display_node: preview.display_node,
                        mime: preview.mime,
                        bytes: preview.bytes,
                    },
                )
            }
            ServerMessage::ProgressText { node, text } => match self.current.clone() {
                Some(prompt_id) => prompt(prompt_id, PromptEventKind::ProgressText { node, text }),
                None => Vec::new(),
            },
            ServerMessage::UnknownBinary { .. } => Vec::new(),
        }
    }
}

// -- helpers -----------------------------------------------------------------------------------

/// A JSON object read in document order (serde_json's `Map` sorts its keys).
#[derive(Clone, Debug, PartialEq)]
pub struct OrderedMap<T>(pub Vec<(String, T)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OrderedMap<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for OrderedVisitor<T> {
            type Value = OrderedMap<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
                while let Some(entry) = map.next_entry::<String, T>()? {
                    entries.push(entry);
                }
                Ok(OrderedMap(entries))
            }
        }
        deserializer.deserialize_map(OrderedVisitor(PhantomData))
    }
}

/// A node id: ComfyUI sends strings, some custom nodes send numbers.
fn de_opt_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(de::Error::custom(format!("a node id, not {other}"))),
    }
}

fn de_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    de_opt_id(deserializer)?.ok_or_else(|| de::Error::custom("a node id, not null"))
}
