//! A ComfyUI stand-in: an axum server that answers like ComfyUI v0.3.64 did when the protocol in
//! this crate's `fixtures/comfyui` was recorded (see its README).
//!
//! - HTTP: recorded statuses, headers (content types) and bodies, byte for byte, for every
//!   recorded exchange; live state where ComfyUI has state: the queue, history, userdata (in
//!   memory, seeded with the recorded files) and the outputs that `/view` serves.
//! - `POST /prompt`: a prompt equal to a recorded rejected one gets the recorded 400 body; other
//!   prompts are checked the way ComfyUI checks them first (class_type present, class known,
//!   an output node present) and queued. Each queued prompt, in turn, replays one
//!   `ws_*.jsonl` recording on `/ws` to the socket whose `clientId` submitted it (to every
//!   socket if it had none), with the recorded prompt id rewritten to the new one, recorded
//!   timings (scaled by [`StandinConfig::time_scale`]) and `status` frames carrying the live
//!   queue length. Which recording: [`ComfyStandin::play_next`], else
//!   [`ComfyStandin::set_chooser`], else [`default_recording`].
//! - The recorded `execution_interrupted` waits for `POST /interrupt` (up to
//!   [`StandinConfig::hold_limit`]); an interrupt during any other recording cuts it short
//!   with a synthesized `execution_interrupted`.
//! - ComfyUI's origin check: a request whose `Origin` host differs from `Host` gets 403.
//! - Every request is recorded (method, raw URI, headers, body), and every text frame a
//!   client sends on `/ws`.
//! - [`ComfyStandin::stop`] / [`ComfyStandin::restart`] take it down and bring it back on the
//!   same port (sockets are dropped, the queue is emptied; history and userdata stay).
//!
//! One recording is derived, not recorded: `ws_prompt_out_of_memory` is
//! `ws_prompt_execution_error` with ComfyUI's out-of-memory exception ([`OUT_OF_MEMORY_TYPE`],
//! [`OUT_OF_MEMORY_MESSAGE`]).
//!
//! Node ids in replayed events are the recording's: submit the recorded prompts
//! ([`Fixtures::prompt_of`]) to get events that match the prompt.
//!
//! Control API for other processes (this crate's binary): `POST /__standin/play_next` with a
//! recording name as body, `GET /__standin/requests`, `GET /__standin/recordings`.
//!
//! A dev-only crate, used by the engine's and the server's tests and, as a binary, by the browser
//! tests. It does not depend on `engine`, whose tests depend on it. [`git_remote`] is the git
//! remote over HTTP that the custom-node tests clone from.

pub mod git_remote;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const SERVER: &str = "Python/3.11 aiohttp/3.14.5";
const JSON_UTF8: &str = "application/json; charset=utf-8";
const TEXT_UTF8: &str = "text/plain; charset=utf-8";
/// The custom node the preview recordings were made with; known to the stand-in's validation.
pub const FIXTURE_PREVIEW_NODE: &str = "FixtureProgressPreview";

/// The recorded ComfyUI protocol: wherever `COMFYDECK_FIXTURES` points, else this crate's
/// `fixtures/comfyui`. Panics, naming the folder, when it is not there.
pub fn fixture_dir() -> PathBuf {
    let dir = std::env::var_os("COMFYDECK_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/comfyui"));
    assert!(
        dir.is_dir(),
        "the ComfyUI fixtures are missing at {} (COMFYDECK_FIXTURES, when set, must name a folder)",
        dir.display()
    );
    dir
}

// -- fixtures ----------------------------------------------------------------------------------

/// One recorded HTTP exchange.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub name: String,
    pub method: String,
    pub url_as_sent: String,
    pub request_json: Option<Value>,
    pub status: u16,
    /// All recorded response headers but `Content-Length` (computed when sent).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub body_json: Option<Value>,
}

impl Exchange {
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One WebSocket frame of a recording.
#[derive(Clone, Debug)]
pub enum Frame {
    Text {
        t: f64,
        raw: String,
        kind: String,
        json: Value,
    },
    Binary {
        t: f64,
        event_type: u32,
        data: Vec<u8>,
    },
}

impl Frame {
    pub fn t(&self) -> f64 {
        match self {
            Frame::Text { t, .. } | Frame::Binary { t, .. } => *t,
        }
    }
}

/// One `ws_*.jsonl` recording.
#[derive(Clone, Debug)]
pub struct Recording {
    pub name: String,
    /// `/ws?clientId=…` as recorded.
    pub url_path: String,
    /// Every frame, in order, with its direction (`true`: server → client).
    pub all: Vec<(bool, Frame)>,
    /// The server → client frames after the connection preamble (the `status` with `sid` and
    /// the server's `feature_flags`): what a submitted prompt produces.
    pub frames: Vec<Frame>,
    /// The prompt id the recording is about.
    pub prompt_id: Option<String>,
}

/// What ComfyUI's `execution.py` sends when a node raises torch's out-of-memory error: the
/// exception's own words, then the tips ComfyUI appends.
pub const OUT_OF_MEMORY_TYPE: &str = "torch.OutOfMemoryError";
pub const OUT_OF_MEMORY_MESSAGE: &str = "Allocation on device \nThis error means you ran out of memory on your GPU.\n\nTIPS: If the workflow worked before you might have accidentally set the batch_size to a large number.";

impl Recording {
    /// `ws_prompt_out_of_memory`: the recorded execution error with its exception made the
    /// out-of-memory one (no GPU here to run out of), everything else as recorded.
    fn out_of_memory(&self) -> Recording {
        let rewrite = |frame: &Frame| match frame {
            Frame::Text { t, kind, json, .. } if kind == "execution_error" => {
                let mut json = json.clone();
                json["data"]["exception_type"] = Value::from(OUT_OF_MEMORY_TYPE);
                json["data"]["exception_message"] = Value::from(OUT_OF_MEMORY_MESSAGE);
                Frame::Text {
                    t: *t,
                    raw: py_json(&json),
                    kind: kind.clone(),
                    json,
                }
            }
            other => other.clone(),
        };
        Recording {
            name: "ws_prompt_out_of_memory".into(),
            url_path: self.url_path.clone(),
            all: self
                .all
                .iter()
                .map(|(from_server, f)| (*from_server, rewrite(f)))
                .collect(),
            frames: self.frames.iter().map(rewrite).collect(),
            prompt_id: self.prompt_id.clone(),
        }
    }
}

/// The recorded protocol.
#[derive(Debug)]
pub struct Fixtures {
    pub dir: PathBuf,
    pub exchanges: HashMap<String, Exchange>,
    pub recordings: HashMap<String, Recording>,
    /// `object_info_full.json`: the whole `GET /object_info` body.
    pub object_info_raw: Vec<u8>,
    pub object_info: Value,
    /// `view_output.png`.
    pub view_png: Vec<u8>,
    /// The server's `feature_flags` frame, as recorded.
    pub server_feature_flags: String,
}

fn read_json(path: &Path) -> io::Result<Value> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl Fixtures {
    pub fn load(dir: &Path) -> io::Result<Fixtures> {
        let mut exchanges = HashMap::new();
        let mut recordings = HashMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(name) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("");
            if ext == "json"
                && ["get_", "post_", "delete_"]
                    .iter()
                    .any(|p| name.starts_with(p))
            {
                if let Some(exchange) = Self::load_exchange(dir, &name, &read_json(&path)?)? {
                    exchanges.insert(name, exchange);
                }
            } else if ext == "jsonl" && name.starts_with("ws_") {
                recordings.insert(name.clone(), Self::load_recording(&path, &name)?);
            }
        }
        if let Some(oom) = recordings
            .get("ws_prompt_execution_error")
            .map(Recording::out_of_memory)
        {
            recordings.insert(oom.name.clone(), oom);
        }
        let object_info_raw = std::fs::read(dir.join("object_info_full.json"))?;
        let object_info: Value = serde_json::from_slice(&object_info_raw)
            .map_err(|e| invalid(format!("object_info_full.json: {e}")))?;
        let view_png = std::fs::read(dir.join("view_output.png"))?;
        let server_feature_flags = recordings
            .get("ws_connect_feature_flags")
            .and_then(|r| {
                r.all.iter().find_map(|(from_server, f)| match f {
                    Frame::Text { raw, kind, .. } if *from_server && kind == "feature_flags" => {
                        Some(raw.clone())
                    }
                    _ => None,
                })
            })
            .ok_or_else(|| invalid("no server feature_flags frame recorded".into()))?;
        Ok(Fixtures {
            dir: dir.to_path_buf(),
            exchanges,
            recordings,
            object_info_raw,
            object_info,
            view_png,
            server_feature_flags,
        })
    }

    fn load_exchange(dir: &Path, name: &str, doc: &Value) -> io::Result<Option<Exchange>> {
        let (Some(request), Some(response)) = (doc.get("request"), doc.get("response")) else {
            return Ok(None);
        };
        let Some(status) = response.get("status").and_then(Value::as_u64) else {
            return Ok(None);
        };
        let body = if let Some(raw) = response.get("body_raw").and_then(Value::as_str) {
            raw.as_bytes().to_vec()
        } else if let Some(text) = response.get("body_text").and_then(Value::as_str) {
            text.as_bytes().to_vec()
        } else if let Some(file) = response.get("body_file").and_then(Value::as_str) {
            std::fs::read(dir.join(file))?
        } else {
            Vec::new()
        };
        let headers = response
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case("content-length"))
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(Exchange {
            name: name.to_string(),
            method: request
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or("GET")
                .to_string(),
            url_as_sent: request
                .get("url_as_sent")
                .or_else(|| request.get("path"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            request_json: request.get("body_json").cloned(),
            status: status as u16,
            headers,
            body,
            body_json: response.get("body_json").cloned(),
        }))
    }

    fn load_recording(path: &Path, name: &str) -> io::Result<Recording> {
        let text = std::fs::read_to_string(path)?;
        let mut url_path = String::new();
        let mut all = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let rec: Value = serde_json::from_str(line)
                .map_err(|e| invalid(format!("{name} line {}: {e}", i + 1)))?;
            let dir = rec.get("dir").and_then(Value::as_str).unwrap_or_default();
            if dir == "meta" {
                url_path = rec
                    .get("url_path")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                continue;
            }
            let t = rec.get("t").and_then(Value::as_f64).unwrap_or_default();
            let from_server = dir == "server->client";
            let frame = if let Some(raw) = rec.get("raw").and_then(Value::as_str) {
                let json = rec.get("json").cloned().unwrap_or(Value::Null);
                Frame::Text {
                    t,
                    raw: raw.to_string(),
                    kind: json
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    json,
                }
            } else {
                let event_type = rec.get("event_type").and_then(Value::as_u64).unwrap_or(0) as u32;
                let data = match rec.get("data_b64").and_then(Value::as_str) {
                    Some(b64) => base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map_err(|e| invalid(format!("{name} line {}: {e}", i + 1)))?,
                    None => {
                        // Only the type and length were recorded: a frame of that shape.
                        let len = rec.get("length").and_then(Value::as_u64).unwrap_or(4) as usize;
                        let mut data = vec![0u8; len.max(4)];
                        data[..4].copy_from_slice(&event_type.to_be_bytes());
                        data
                    }
                };
                Frame::Binary {
                    t,
                    event_type,
                    data,
                }
            };
            all.push((from_server, frame));
        }
        let frames = all
            .iter()
            .filter(|(from_server, _)| *from_server)
            .map(|(_, f)| f)
            .filter(|f| match f {
                Frame::Text { kind, json, .. } => {
                    !(kind == "feature_flags"
                        || (kind == "status" && json["data"].get("sid").is_some()))
                }
                Frame::Binary { .. } => true,
            })
            .cloned()
            .collect();
        let prompt_id = all.iter().find_map(|(_, f)| match f {
            Frame::Text { json, .. } => json["data"]["prompt_id"].as_str().map(str::to_string),
            Frame::Binary { .. } => None,
        });
        Ok(Recording {
            name: name.to_string(),
            url_path,
            all,
            frames,
            prompt_id,
        })
    }

    pub fn exchange(&self, name: &str) -> &Exchange {
        self.exchanges
            .get(name)
            .unwrap_or_else(|| panic!("no recorded exchange {name}"))
    }

    pub fn recording(&self, name: &str) -> &Recording {
        self.recordings
            .get(name)
            .unwrap_or_else(|| panic!("no recording {name}"))
    }

    /// The `prompt` a recorded `POST /prompt` sent.
    pub fn prompt_of(&self, name: &str) -> Value {
        self.exchange(name)
            .request_json
            .as_ref()
            .and_then(|b| b.get("prompt"))
            .cloned()
            .unwrap_or_else(|| panic!("{name} sent no prompt"))
    }

    fn knows_class(&self, class: &str) -> bool {
        class == FIXTURE_PREVIEW_NODE || self.object_info.get(class).is_some()
    }

    fn is_output_node(&self, class: &str) -> bool {
        self.object_info[class]["output_node"].as_bool() == Some(true)
    }
}

// -- Python-style JSON -------------------------------------------------------------------------

/// JSON the way ComfyUI writes it (`json.dumps`: `", "` and `": "` separators, non-ASCII
/// escaped).
pub fn py_json(value: &Value) -> String {
    let mut out = String::new();
    write_py(&mut out, value);
    out
}

fn write_py(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_py_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py_str(out, k);
                out.push_str(": ");
                write_py(out, v);
            }
            out.push('}');
        }
    }
}

fn write_py_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

fn status_frame(remaining: usize) -> String {
    format!(
        "{{\"type\": \"status\", \"data\": {{\"status\": {{\"exec_info\": {{\"queue_remaining\": {remaining}}}}}}}}}"
    )
}

fn status_frame_with_sid(remaining: usize, sid: &str) -> String {
    format!(
        "{{\"type\": \"status\", \"data\": {{\"status\": {{\"exec_info\": {{\"queue_remaining\": {remaining}}}}}, \"sid\": {}}}}}",
        py_json(&Value::String(sid.to_string()))
    )
}

/// A random UUID4, hyphenated (`prompt_id`s).
pub fn uuid4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn now_ms() -> i64 {
    (now_secs() * 1000.0) as i64
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A prompt without `_meta`, as a comparable string (ComfyUI's cache ignores titles).
fn canonical_prompt(prompt: &Value) -> String {
    let mut prompt = prompt.clone();
    if let Some(nodes) = prompt.as_object_mut() {
        for node in nodes.values_mut() {
            if let Some(node) = node.as_object_mut() {
                node.remove("_meta");
            }
        }
    }
    prompt.to_string()
}

// -- the server --------------------------------------------------------------------------------

/// How to run the stand-in.
#[derive(Clone, Debug)]
pub struct StandinConfig {
    pub fixtures: PathBuf,
    /// 0: any free port.
    pub port: u16,
    /// Multiplies the recorded gaps between frames (1.0: as recorded; 0.0: as fast as possible).
    pub time_scale: f64,
    /// Start with the recorded workflow files in userdata (else empty, as a fresh ComfyUI).
    pub seed_userdata: bool,
    /// How long a recorded `execution_interrupted` waits for `POST /interrupt`.
    pub hold_limit: Duration,
    /// When set, each output a replayed prompt reports is written here (the recorded
    /// `view_output.png`), as ComfyUI's SaveImage would: the gallery's browser tests see a
    /// run's output appear in the folder.
    pub output_dir: Option<PathBuf>,
    /// Put in place of the recording's `<BASE_DIR>` in `/system_stats` and
    /// `/internal/folder_paths`, as if ComfyUI ran with `--base-directory` there.
    pub base_dir: Option<PathBuf>,
    /// List [`FIXTURE_PREVIEW_NODE`] in `/object_info` (shaped like `ImageInvert`), so a
    /// client that checks classes before submitting (a comfydeck worker) sends the preview
    /// recordings' prompt.
    pub advertise_preview_node: bool,
}

impl StandinConfig {
    pub fn new(fixtures: impl Into<PathBuf>) -> Self {
        StandinConfig {
            fixtures: fixtures.into(),
            port: 0,
            time_scale: 1.0,
            seed_userdata: true,
            hold_limit: Duration::from_secs(30),
            output_dir: None,
            base_dir: None,
            advertise_preview_node: false,
        }
    }
}

impl Default for StandinConfig {
    fn default() -> Self {
        StandinConfig::new(fixture_dir())
    }
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query exactly as sent (percent-encoding kept).
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When it arrived, in milliseconds since the Unix epoch (for the queue benchmark's
    /// "submit → ComfyUI has it").
    pub at_ms: f64,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A text frame a client sent on `/ws`.
#[derive(Clone, Debug)]
pub struct ClientFrame {
    pub sid: String,
    pub text: String,
}

/// Picks the recording to replay for a submitted prompt; `None` falls back to the default.
pub type Chooser = Arc<dyn Fn(&Value) -> Option<String> + Send + Sync>;

enum Out {
    Text(String),
    Binary(Vec<u8>),
}

struct Client {
    conn: u64,
    tx: mpsc::UnboundedSender<Out>,
    preview_metadata: bool,
}

#[derive(Clone, Debug)]
struct Job {
    number: Value,
    prompt_id: String,
    prompt: Value,
    extra_data: Value,
    client_id: Option<String>,
    outputs: Vec<String>,
    recording: String,
}

impl Job {
    fn queue_item(&self) -> String {
        py_json(&json!([
            self.number,
            self.prompt_id,
            self.prompt,
            self.extra_data,
            self.outputs
        ]))
    }
}

#[derive(Default)]
struct QueueState {
    running: Option<Job>,
    pending: Vec<Job>,
    counter: u64,
    interrupt: bool,
}

impl QueueState {
    fn remaining(&self) -> usize {
        self.pending.len() + usize::from(self.running.is_some())
    }
}

struct UserFile {
    bytes: Vec<u8>,
    modified: f64,
    created: f64,
}

struct Shared {
    config: StandinConfig,
    fx: Fixtures,
    requests: Mutex<Vec<RecordedRequest>>,
    client_frames: Mutex<Vec<ClientFrame>>,
    ws_connects: Mutex<Vec<String>>,
    clients: Mutex<HashMap<String, Client>>,
    queue: Mutex<QueueState>,
    wake: Notify,
    /// (prompt id, entry JSON) oldest first.
    history: Mutex<Vec<(String, String)>>,
    userdata: Mutex<BTreeMap<String, UserFile>>,
    viewable: Mutex<HashSet<(String, String, String)>>,
    /// Images put into the input folder by `/upload/image`: (subfolder, name) → bytes.
    uploads: Mutex<BTreeMap<(String, String), Vec<u8>>>,
    ran_ok: Mutex<HashSet<String>>,
    next: Mutex<VecDeque<String>>,
    chooser: Mutex<Option<Chooser>>,
    next_conn: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn new(config: StandinConfig, fx: Fixtures) -> Shared {
        let mut history = Vec::new();
        for name in [
            "get_history_prompt_success",
            "get_history_prompt_execution_error",
            "get_history_prompt_interrupted",
        ] {
            let Some(exchange) = fx.exchanges.get(name) else {
                continue;
            };
            let raw = exchange.body_text();
            let Some(id) = exchange
                .body_json
                .as_ref()
                .and_then(|b| b.as_object())
                .and_then(|o| o.keys().next().cloned())
            else {
                continue;
            };
            let prefix = format!("{{\"{id}\": ");
            if let Some(entry) = raw.strip_prefix(&prefix).and_then(|r| r.strip_suffix('}')) {
                history.push((id, entry.to_string()));
            }
        }
        let mut userdata = BTreeMap::new();
        if config.seed_userdata {
            if let Some(file) = fx.exchanges.get("get_userdata_file") {
                userdata.insert(
                    "workflows/my flow.json".to_string(),
                    UserFile {
                        bytes: file.body.clone(),
                        modified: 1795383003.1296206,
                        created: 1795383003.1296206,
                    },
                );
            }
            userdata.insert(
                "workflows/sub/b.json".to_string(),
                UserFile {
                    bytes: b"{\"a\":1}".to_vec(),
                    modified: 1795383003.1384983,
                    created: 1795383003.1384983,
                },
            );
        }
        let mut viewable = HashSet::new();
        viewable.insert((
            "output".to_string(),
            String::new(),
            "fixture_invert_00001_.png".to_string(),
        ));
        Shared {
            config,
            fx,
            requests: Mutex::default(),
            client_frames: Mutex::default(),
            ws_connects: Mutex::default(),
            clients: Mutex::default(),
            queue: Mutex::default(),
            wake: Notify::new(),
            history: Mutex::new(history),
            userdata: Mutex::new(userdata),
            viewable: Mutex::new(viewable),
            uploads: Mutex::default(),
            ran_ok: Mutex::default(),
            next: Mutex::default(),
            chooser: Mutex::default(),
            next_conn: AtomicU64::new(1),
        }
    }

    fn remaining(&self) -> usize {
        lock(&self.queue).remaining()
    }

    fn broadcast(&self, text: &str) {
        for client in lock(&self.clients).values() {
            let _ = client.tx.send(Out::Text(text.to_string()));
        }
    }

    fn broadcast_status(&self) {
        self.broadcast(&status_frame(self.remaining()));
    }

    /// To the prompt's client; to everyone when it named none (as ComfyUI does).
    fn send_to(&self, client_id: Option<&str>, out: Out) {
        let clients = lock(&self.clients);
        match client_id {
            Some(id) => {
                if let Some(client) = clients.get(id) {
                    let _ = client.tx.send(out);
                }
            }
            None => {
                for client in clients.values() {
                    let _ = client.tx.send(match &out {
                        Out::Text(t) => Out::Text(t.clone()),
                        Out::Binary(b) => Out::Binary(b.clone()),
                    });
                }
            }
        }
    }

    fn client_wants_metadata(&self, client_id: Option<&str>) -> bool {
        client_id
            .and_then(|id| lock(&self.clients).get(id).map(|c| c.preview_metadata))
            .unwrap_or(false)
    }
}

/// The recording the stand-in plays for a prompt when no test chose one: the preview node →
/// the preview recording (with metadata if the client announced `supports_preview_metadata`,
/// else legacy); a checkpoint loader → the execution error; an image blur → the (slow,
/// interruptible) interrupted run; a LoadImage → the LoadImage/PreviewImage run; a prompt that
/// already ran → fully cached; anything else → the success.
pub fn default_recording(prompt: &Value, preview_metadata: bool, ran_before: bool) -> &'static str {
    let classes: HashSet<&str> = prompt
        .as_object()
        .map(|nodes| {
            nodes
                .values()
                .filter_map(|n| n.get("class_type").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if classes.contains(FIXTURE_PREVIEW_NODE) {
        if preview_metadata {
            "ws_progress_preview_with_metadata"
        } else {
            "ws_progress_preview_legacy"
        }
    } else if classes.contains("CheckpointLoaderSimple") {
        "ws_prompt_execution_error"
    } else if classes.contains("ImageBlur") {
        "ws_prompt_interrupted"
    } else if classes.contains("LoadImage") {
        "ws_prompt_loadimage_preview"
    } else if ran_before {
        "ws_prompt_cached"
    } else {
        "ws_prompt_success"
    }
}

#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

struct Running {
    cancel: CancellationToken,
    server: JoinHandle<io::Result<()>>,
    worker: JoinHandle<()>,
}

/// A running (or stopped) stand-in.
pub struct ComfyStandin {
    shared: Arc<Shared>,
    addr: SocketAddr,
    running: Option<Running>,
}

fn bind(port: u16) -> io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(1024)
}

impl ComfyStandin {
    /// Loads the fixtures and starts serving on 127.0.0.1.
    pub async fn start(config: StandinConfig) -> io::Result<ComfyStandin> {
        let fx = Fixtures::load(&config.fixtures)?;
        let listener = bind(config.port)?;
        let addr = listener.local_addr()?;
        let mut standin = ComfyStandin {
            shared: Arc::new(Shared::new(config, fx)),
            addr,
            running: None,
        };
        standin.launch(listener);
        Ok(standin)
    }

    /// With the default fixtures, on a free port.
    pub async fn start_default() -> ComfyStandin {
        ComfyStandin::start(StandinConfig::default())
            .await
            .expect("the ComfyUI stand-in starts")
    }

    fn launch(&mut self, listener: tokio::net::TcpListener) {
        let cancel = CancellationToken::new();
        let ctx = Ctx {
            shared: Arc::clone(&self.shared),
            cancel: cancel.clone(),
        };
        let app = Router::new().fallback(handle).with_state(ctx.clone());
        let shutdown = cancel.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        });
        let worker = tokio::spawn(worker(ctx));
        self.running = Some(Running {
            cancel,
            server,
            worker,
        });
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    pub fn fixtures(&self) -> &Fixtures {
        &self.shared.fx
    }

    /// Takes the server down: the port closes, sockets drop, the queue empties (what a ComfyUI
    /// crash does).
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.cancel.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), running.server).await;
            let _ = running.worker.await;
        }
        lock(&self.shared.clients).clear();
        let mut queue = lock(&self.shared.queue);
        queue.running = None;
        queue.pending.clear();
        queue.interrupt = false;
    }

    /// Stops, then serves again on the same port.
    pub async fn restart(&mut self) -> io::Result<()> {
        self.stop().await;
        let mut tries = 0;
        let listener = loop {
            match bind(self.addr.port()) {
                Ok(listener) => break listener,
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e),
            }
        };
        self.launch(listener);
        Ok(())
    }

    /// Every HTTP request so far (the control API excepted), WebSocket upgrades included.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Text frames clients sent on `/ws`.
    pub fn client_frames(&self) -> Vec<ClientFrame> {
        lock(&self.shared.client_frames).clone()
    }

    /// The `/ws` URIs (path and query) of every socket opened so far.
    pub fn ws_connects(&self) -> Vec<String> {
        lock(&self.shared.ws_connects).clone()
    }

    /// Sockets connected now.
    pub fn ws_clients(&self) -> Vec<String> {
        lock(&self.shared.clients).keys().cloned().collect()
    }

    /// The next submitted prompt replays this recording (e.g. `ws_prompt_execution_error`);
    /// calls queue up, one per prompt.
    pub fn play_next(&self, recording: &str) {
        assert!(
            self.shared.fx.recordings.contains_key(recording),
            "no recording {recording}"
        );
        lock(&self.shared.next).push_back(recording.to_string());
    }

    /// Chooses the recording for prompts that [`play_next`](Self::play_next) did not.
    pub fn set_chooser(&self, chooser: impl Fn(&Value) -> Option<String> + Send + Sync + 'static) {
        *lock(&self.shared.chooser) = Some(Arc::new(chooser));
    }

    pub fn recordings(&self) -> Vec<String> {
        let mut names: Vec<String> = self.shared.fx.recordings.keys().cloned().collect();
        names.sort();
        names
    }
}

impl Drop for ComfyStandin {
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            running.cancel.cancel();
        }
    }
}

// -- HTTP --------------------------------------------------------------------------------------

fn fixture_response(exchange: &Exchange) -> Response {
    let mut response = Response::new(Body::from(exchange.body.clone()));
    *response.status_mut() =
        StatusCode::from_u16(exchange.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in &exchange.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// A recorded answer whose `<BASE_DIR>` placeholder names the configured base directory.
fn with_base_dir(s: &Shared, exchange: &Exchange) -> Response {
    let mut response = fixture_response(exchange);
    if let Some(base) = &s.config.base_dir {
        let body = String::from_utf8_lossy(&exchange.body)
            .replace("<BASE_DIR>", &base.display().to_string());
        response.headers_mut().remove(header::CONTENT_LENGTH);
        *response.body_mut() = Body::from(body);
    }
    response
}

fn with_type(status: StatusCode, content_type: &str, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

fn json_raw(raw: String) -> Response {
    with_type(StatusCode::OK, JSON_UTF8, raw)
}

fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

fn text(status: StatusCode, body: &str) -> Response {
    with_type(status, TEXT_UTF8, body.to_string())
}

fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "404: Not Found")
}

fn mime_of(name: &str) -> &'static str {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "json" => "application/json",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "txt" => "text/plain",
        _ => "application/octet-stream",
    }
}

/// ComfyUI's origin check (loopback, no CORS flag): an `Origin` whose host differs from `Host`.
fn origin_mismatch(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    !origin_host.eq_ignore_ascii_case(host)
}

async fn handle(State(ctx): State<Ctx>, request: Request) -> Response {
    let mut response = route(ctx, request).await;
    response
        .headers_mut()
        .insert(header::SERVER, HeaderValue::from_static(SERVER));
    response
}

async fn route(ctx: Ctx, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| path.clone(), |p| p.as_str().to_string());
    let body = axum::body::to_bytes(body, 256 << 20)
        .await
        .unwrap_or_default()
        .to_vec();
    if let Some(control) = path.strip_prefix("/__standin/") {
        return control_api(&ctx, &parts.method, control, &body);
    }
    lock(&ctx.shared.requests).push(RecordedRequest {
        method: parts.method.to_string(),
        uri: uri.clone(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.clone(),
        at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    });
    if origin_mismatch(&parts.headers) {
        return empty(StatusCode::FORBIDDEN);
    }
    let route = path
        .strip_prefix("/api")
        .filter(|r| r.starts_with('/'))
        .unwrap_or(&path)
        .to_string();
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    if route == "/ws" && parts.method == Method::GET {
        let sid = query
            .get("clientId")
            .filter(|s| !s.is_empty())
            .cloned()
            .unwrap_or_else(|| uuid4().replace('-', ""));
        return match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(upgrade) => upgrade.on_upgrade(move |socket| ws_session(ctx, socket, sid, uri)),
            Err(rejection) => rejection.into_response(),
        };
    }
    let Some(segments) = route
        .split('/')
        .skip(1)
        .map(percent_decode)
        .collect::<Option<Vec<String>>>()
    else {
        return empty(StatusCode::BAD_REQUEST);
    };
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let s = &ctx.shared;
    let fx = &s.fx;
    let m = &parts.method;
    match (m, segs.as_slice()) {
        (&Method::GET, [""]) => with_type(
            StatusCode::OK,
            "text/html; charset=utf-8",
            "<!doctype html><title>ComfyUI stand-in</title>",
        ),
        (&Method::GET, ["system_stats"]) => with_base_dir(s, fx.exchange("get_system_stats")),
        (&Method::GET, ["features"]) => fixture_response(fx.exchange("get_features")),
        (&Method::GET, ["embeddings"]) => fixture_response(fx.exchange("get_embeddings")),
        (&Method::GET, ["users"]) => fixture_response(fx.exchange("get_users")),
        (&Method::GET, ["settings"]) => fixture_response(fx.exchange("get_settings")),
        (&Method::GET, ["settings", "Comfy.Locale"]) => {
            fixture_response(fx.exchange("get_setting"))
        }
        (&Method::GET, ["internal", "folder_paths"]) => {
            with_base_dir(s, fx.exchange("get_internal_folder_paths"))
        }
        (&Method::POST, ["free"]) => fixture_response(fx.exchange("post_free")),
        (&Method::GET, ["models"]) => fixture_response(fx.exchange("get_models")),
        (&Method::GET, ["models", folder]) => models(fx, folder),
        (&Method::GET, ["object_info"]) if s.config.advertise_preview_node => {
            let mut info = fx.object_info.clone();
            let mut node = info["ImageInvert"].clone();
            node["name"] = json!(FIXTURE_PREVIEW_NODE);
            node["display_name"] = json!("Progress + preview");
            info[FIXTURE_PREVIEW_NODE] = node;
            json_raw(info.to_string())
        }
        (&Method::GET, ["object_info"]) => {
            json_raw(String::from_utf8_lossy(&fx.object_info_raw).into_owned())
        }
        (&Method::GET, ["object_info", class]) => object_info_class(fx, class),
        (&Method::GET, ["prompt"]) => json_raw(format!(
            "{{\"exec_info\": {{\"queue_remaining\": {}}}}}",
            s.remaining()
        )),
        (&Method::POST, ["prompt"]) => submit(s, &body),
        (&Method::GET, ["queue"]) => queue_view(s),
        (&Method::POST, ["queue"]) => queue_change(s, &body),
        (&Method::POST, ["interrupt"]) => interrupt(s, &body),
        (&Method::GET, ["history"]) => history_list(s, &query),
        (&Method::GET, ["history", id]) => history_one(s, id),
        (&Method::POST, ["history"]) => history_change(s, &body),
        (&Method::GET, ["view"]) => view(s, &query),
        (&Method::POST, ["upload", "image"]) => upload_image(s, &parts.headers, &body),
        (&Method::GET, ["userdata"]) => userdata_list(s, &query),
        (&Method::GET, ["userdata", file]) => userdata_get(s, file),
        (&Method::POST, ["userdata", file]) => userdata_post(s, file, &query, body),
        (&Method::DELETE, ["userdata", file]) => userdata_delete(s, file),
        (&Method::POST, ["userdata", file, "move", dest]) => userdata_move(s, file, dest, &query),
        _ => not_found(),
    }
}

fn control_api(ctx: &Ctx, method: &Method, what: &str, body: &[u8]) -> Response {
    let s = &ctx.shared;
    match (method, what) {
        (&Method::POST, "play_next") => {
            let name = String::from_utf8_lossy(body).trim().to_string();
            if s.fx.recordings.contains_key(&name) {
                lock(&s.next).push_back(name);
                empty(StatusCode::OK)
            } else {
                text(StatusCode::NOT_FOUND, &format!("no recording {name}"))
            }
        }
        (&Method::GET, "requests") => {
            let list: Vec<Value> = lock(&s.requests)
                .iter()
                .map(|r| {
                    // A submitted prompt's id, so a client can match what it sent.
                    let prompt_id = serde_json::from_slice::<Value>(&r.body).ok().and_then(|b| {
                        b.get("prompt_id")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    });
                    json!({
                        "method": r.method,
                        "uri": r.uri,
                        "headers": r.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
                        "at_ms": r.at_ms,
                        "prompt_id": prompt_id,
                    })
                })
                .collect();
            with_type(StatusCode::OK, JSON_UTF8, Value::Array(list).to_string())
        }
        (&Method::GET, "recordings") => {
            let mut names: Vec<&String> = s.fx.recordings.keys().collect();
            names.sort();
            with_type(StatusCode::OK, JSON_UTF8, json!(names).to_string())
        }
        _ => not_found(),
    }
}

fn models(fx: &Fixtures, folder: &str) -> Response {
    let recorded = format!("get_models_{folder}");
    if let Some(exchange) = fx.exchanges.get(&recorded) {
        return fixture_response(exchange);
    }
    let known = fx
        .exchange("get_models")
        .body_json
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|names| names.iter().any(|n| n.as_str() == Some(folder)));
    if known {
        json_raw("[]".to_string())
    } else {
        fixture_response(fx.exchange("get_models_unknown_404"))
    }
}

fn object_info_class(fx: &Fixtures, class: &str) -> Response {
    let recorded = format!("get_object_info_{class}");
    if let Some(exchange) = fx.exchanges.get(&recorded) {
        return fixture_response(exchange);
    }
    match fx.object_info.get(class) {
        Some(info) => json_raw(format!("{{{}: {}}}", py_json(&json!(class)), py_json(info))),
        None => fixture_response(fx.exchange("get_object_info_unknown")),
    }
}

/// A 400 body in ComfyUI's key order.
fn invalid_prompt(kind: &str, message: &str, details: &str) -> Response {
    with_type(
        StatusCode::BAD_REQUEST,
        JSON_UTF8,
        format!(
            "{{\"error\": {{\"type\": {}, \"message\": {}, \"details\": {}, \"extra_info\": {{}}}}, \"node_errors\": {{}}}}",
            py_json(&json!(kind)),
            py_json(&json!(message)),
            py_json(&json!(details))
        ),
    )
}

fn submit(s: &Shared, body: &[u8]) -> Response {
    let fx = &s.fx;
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return empty(StatusCode::BAD_REQUEST);
    };
    let Some(prompt) = request.get("prompt").cloned() else {
        return fixture_response(fx.exchange("post_prompt_error_no_prompt"));
    };
    // A prompt that was rejected when recorded is rejected the same way.
    let mut recorded_node_errors = None;
    for exchange in fx.exchanges.values() {
        if !exchange.name.starts_with("post_prompt_error_") {
            continue;
        }
        let sent = exchange.request_json.as_ref().and_then(|b| b.get("prompt"));
        if sent != Some(&prompt) {
            continue;
        }
        if exchange.status != 200 {
            return fixture_response(exchange);
        }
        let raw = exchange.body_text();
        recorded_node_errors = raw
            .split_once("\"node_errors\": ")
            .and_then(|(_, rest)| rest.strip_suffix('}'))
            .map(str::to_string);
    }
    // ComfyUI's first checks.
    let Some(nodes) = prompt.as_object() else {
        return invalid_prompt(
            "invalid_prompt",
            "Cannot execute because the prompt is not an object.",
            "",
        );
    };
    let mut outputs = Vec::new();
    for (id, node) in nodes {
        let Some(class) = node.get("class_type").and_then(Value::as_str) else {
            return invalid_prompt(
                "invalid_prompt",
                "Cannot execute because a node is missing the class_type property.",
                &format!("Node ID '#{id}'"),
            );
        };
        if !fx.knows_class(class) {
            return invalid_prompt(
                "invalid_prompt",
                &format!("Cannot execute because node {class} does not exist."),
                &format!("Node ID '#{id}'"),
            );
        }
        if fx.is_output_node(class) {
            outputs.push(id.clone());
        }
    }
    if outputs.is_empty() {
        return invalid_prompt("prompt_no_outputs", "Prompt has no outputs", "");
    }
    if let Some(targets) = request
        .get("partial_execution_targets")
        .and_then(Value::as_array)
    {
        outputs = targets
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
    }

    let client_id = request
        .get("client_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut extra_data = request
        .get("extra_data")
        .filter(|e| e.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(client_id) = &client_id {
        extra_data["client_id"] = json!(client_id);
    }
    let prompt_id = request
        .get("prompt_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(uuid4);
    let recording = lock(&s.next).pop_front().unwrap_or_else(|| {
        let chosen = lock(&s.chooser).clone().and_then(|choose| choose(&prompt));
        chosen.unwrap_or_else(|| {
            let ran_before = lock(&s.ran_ok).contains(&canonical_prompt(&prompt));
            default_recording(
                &prompt,
                s.client_wants_metadata(client_id.as_deref()),
                ran_before,
            )
            .to_string()
        })
    });
    let (number, busy) = {
        let mut queue = lock(&s.queue);
        let number = match request.get("number") {
            Some(n @ Value::Number(_)) => n.clone(),
            _ => {
                let n = queue.counter as i64;
                if request.get("front").and_then(Value::as_bool) == Some(true) {
                    json!(-n)
                } else {
                    json!(n)
                }
            }
        };
        queue.counter += 1;
        let busy = queue.running.is_some();
        queue.pending.push(Job {
            number: number.clone(),
            prompt_id: prompt_id.clone(),
            prompt,
            extra_data,
            client_id,
            outputs,
            recording,
        });
        (number, busy)
    };
    if busy {
        // Queued behind a running prompt: everyone hears the queue grew.
        s.broadcast_status();
    }
    s.wake.notify_one();
    json_raw(format!(
        "{{\"prompt_id\": {}, \"number\": {}, \"node_errors\": {}}}",
        py_json(&json!(prompt_id)),
        py_json(&number),
        recorded_node_errors.unwrap_or_else(|| "{}".to_string())
    ))
}

fn queue_view(s: &Shared) -> Response {
    let queue = lock(&s.queue);
    let running: Vec<String> = queue.running.iter().map(Job::queue_item).collect();
    let mut pending: Vec<&Job> = queue.pending.iter().collect();
    pending.sort_by(|a, b| {
        let (a, b) = (
            a.number.as_f64().unwrap_or(0.0),
            b.number.as_f64().unwrap_or(0.0),
        );
        a.total_cmp(&b)
    });
    let pending: Vec<String> = pending.iter().map(|j| j.queue_item()).collect();
    json_raw(format!(
        "{{\"queue_running\": [{}], \"queue_pending\": [{}]}}",
        running.join(", "),
        pending.join(", ")
    ))
}

fn queue_change(s: &Shared, body: &[u8]) -> Response {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    {
        let mut queue = lock(&s.queue);
        if request.get("clear").and_then(Value::as_bool) == Some(true) {
            queue.pending.clear();
        }
        if let Some(ids) = request.get("delete").and_then(Value::as_array) {
            let ids: HashSet<&str> = ids.iter().filter_map(Value::as_str).collect();
            queue
                .pending
                .retain(|j| !ids.contains(j.prompt_id.as_str()));
        }
    }
    s.broadcast_status();
    empty(StatusCode::OK)
}

fn interrupt(s: &Shared, body: &[u8]) -> Response {
    let target = serde_json::from_slice::<Value>(body).ok().and_then(|b| {
        b.get("prompt_id")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let mut queue = lock(&s.queue);
    let running = queue.running.as_ref().map(|j| j.prompt_id.clone());
    match (running, target) {
        (Some(running), Some(target)) if running != target => {}
        (Some(_), _) => queue.interrupt = true,
        (None, _) => {}
    }
    empty(StatusCode::OK)
}

fn history_body(entries: &[(String, String)]) -> String {
    let parts: Vec<String> = entries
        .iter()
        .map(|(id, raw)| format!("{}: {raw}", py_json(&json!(id))))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn history_list(s: &Shared, query: &HashMap<String, String>) -> Response {
    let history = lock(&s.history);
    let max = query
        .get("max_items")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(history.len());
    let from = history.len().saturating_sub(max);
    json_raw(history_body(&history[from..]))
}

fn history_one(s: &Shared, id: &str) -> Response {
    let history = lock(&s.history);
    let found: Vec<(String, String)> = history.iter().filter(|(i, _)| i == id).cloned().collect();
    json_raw(history_body(&found))
}

fn history_change(s: &Shared, body: &[u8]) -> Response {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut history = lock(&s.history);
    if request.get("clear").and_then(Value::as_bool) == Some(true) {
        history.clear();
    }
    if let Some(ids) = request.get("delete").and_then(Value::as_array) {
        let ids: HashSet<&str> = ids.iter().filter_map(Value::as_str).collect();
        history.retain(|(id, _)| !ids.contains(id.as_str()));
    }
    empty(StatusCode::OK)
}

fn view(s: &Shared, query: &HashMap<String, String>) -> Response {
    let Some(filename) = query.get("filename") else {
        return empty(StatusCode::NOT_FOUND);
    };
    if filename.starts_with('/') || filename.contains("..") {
        return empty(StatusCode::BAD_REQUEST);
    }
    let subfolder = query.get("subfolder").cloned().unwrap_or_default();
    if subfolder.split('/').any(|c| c == "..") || subfolder.starts_with('/') {
        return empty(StatusCode::FORBIDDEN);
    }
    let kind = query
        .get("type")
        .cloned()
        .unwrap_or_else(|| "output".to_string());
    let key = (kind, subfolder, filename.clone());
    if !lock(&s.viewable).contains(&key) {
        return empty(StatusCode::NOT_FOUND);
    }
    // Only one image was recorded: every output is that image.
    let mut response = with_type(StatusCode::OK, mime_of(filename), s.fx.view_png.clone());
    if let Ok(value) = HeaderValue::from_str(&format!("filename=\"{filename}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

// -- uploads -----------------------------------------------------------------------------------

/// The parts of a `multipart/form-data` body: name → (file name, bytes).
type MultipartFields = HashMap<String, (Option<String>, Vec<u8>)>;

fn multipart_fields(headers: &HeaderMap, body: &[u8]) -> Option<MultipartFields> {
    let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))?
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let mut fields = HashMap::new();
    let mut rest = body;
    while let Some(start) = find(rest, delimiter.as_bytes()) {
        rest = &rest[start + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let rest_part = rest.strip_prefix(b"\r\n").unwrap_or(rest);
        let head_end = find(rest_part, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&rest_part[..head_end]).into_owned();
        let data_start = head_end + 4;
        let data_end = find(
            &rest_part[data_start..],
            format!("\r\n{delimiter}").as_bytes(),
        )?;
        let data = rest_part[data_start..data_start + data_end].to_vec();
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))?;
        let param = |key: &str| {
            disposition.split(';').map(str::trim).find_map(|p| {
                p.strip_prefix(&format!("{key}="))
                    .map(|v| v.trim_matches('"').to_string())
            })
        };
        fields.insert(param("name")?, (param("filename"), data));
        rest = &rest_part[data_start + data_end..];
    }
    Some(fields)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `POST /upload/image` as ComfyUI answers it (post_upload_image*.json): no `image` field is a
/// 400; the same bytes under the same name keep the name; different bytes without `overwrite`
/// get ` (1)`, ` (2)`, … before the extension.
fn upload_image(s: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let Some(fields) = multipart_fields(headers, body) else {
        return empty(StatusCode::BAD_REQUEST);
    };
    let Some((Some(file_name), bytes)) = fields.get("image").cloned() else {
        return empty(StatusCode::BAD_REQUEST);
    };
    let text = |k: &str| {
        fields
            .get(k)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    let kind = match text("type").as_str() {
        "" => "input".to_string(),
        other => other.to_string(),
    };
    let subfolder = text("subfolder");
    let overwrite = matches!(text("overwrite").as_str(), "true" | "1");
    if file_name.contains("..") || subfolder.contains("..") || file_name.starts_with('/') {
        return empty(StatusCode::BAD_REQUEST);
    }
    let mut uploads = lock(&s.uploads);
    let (stem, ext) = match file_name.rsplit_once('.') {
        Some((stem, ext)) => (stem.to_string(), format!(".{ext}")),
        None => (file_name.clone(), String::new()),
    };
    let mut name = file_name.clone();
    let mut n = 1;
    while !overwrite
        && uploads
            .get(&(subfolder.clone(), name.clone()))
            .is_some_and(|existing| existing != &bytes)
    {
        name = format!("{stem} ({n}){ext}");
        n += 1;
    }
    uploads.insert((subfolder.clone(), name.clone()), bytes);
    lock(&s.viewable).insert((kind.clone(), subfolder.clone(), name.clone()));
    json_raw(py_json(
        &json!({ "name": name, "subfolder": subfolder, "type": kind }),
    ))
}

// -- userdata ----------------------------------------------------------------------------------

/// A user-directory path, or `None` when it would leave the directory.
fn user_path(path: &str) -> Option<String> {
    if path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path.split('/').any(|c| c == ".." || c.is_empty())
    {
        None
    } else {
        Some(path.to_string())
    }
}

fn file_info(path: &str, file: &UserFile) -> Value {
    json!({"path": path, "size": file.bytes.len(), "modified": file.modified, "created": file.created})
}

/// `{"path": …, "size": …, "modified": …, "created": …}` in ComfyUI's key order.
fn file_info_raw(path: &str, file: &UserFile) -> String {
    format!(
        "{{\"path\": {}, \"size\": {}, \"modified\": {}, \"created\": {}}}",
        py_json(&json!(path)),
        file.bytes.len(),
        py_json(&json!(file.modified)),
        py_json(&json!(file.created))
    )
}

fn userdata_list(s: &Shared, query: &HashMap<String, String>) -> Response {
    let Some(dir) = query.get("dir") else {
        return text(StatusCode::BAD_REQUEST, "Directory not provided");
    };
    let Some(dir) = user_path(dir.trim_end_matches('/')) else {
        return empty(StatusCode::FORBIDDEN);
    };
    let recurse = query.get("recurse").map(String::as_str) == Some("true");
    let full_info = query.get("full_info").map(String::as_str) == Some("true");
    let split = query.get("split").map(String::as_str) == Some("true");
    let prefix = format!("{dir}/");
    let files = lock(&s.userdata);
    if !files.keys().any(|k| k.starts_with(&prefix)) {
        return text(StatusCode::NOT_FOUND, "Directory not found");
    }
    let items: Vec<String> = files
        .iter()
        .filter_map(|(k, f)| Some((k.strip_prefix(&prefix)?, f)))
        .filter(|(rel, _)| recurse || !rel.contains('/'))
        .map(|(rel, f)| {
            if full_info {
                file_info_raw(rel, f)
            } else if split {
                let mut parts = vec![json!(rel)];
                parts.extend(rel.split('/').map(|p| json!(p)));
                py_json(&Value::Array(parts))
            } else {
                py_json(&json!(rel))
            }
        })
        .collect();
    json_raw(format!("[{}]", items.join(", ")))
}

fn userdata_get(s: &Shared, file: &str) -> Response {
    let Some(path) = user_path(file) else {
        return empty(StatusCode::FORBIDDEN);
    };
    match lock(&s.userdata).get(&path) {
        Some(f) => with_type(StatusCode::OK, mime_of(&path), f.bytes.clone()),
        None => empty(StatusCode::NOT_FOUND),
    }
}

fn userdata_post(
    s: &Shared,
    file: &str,
    query: &HashMap<String, String>,
    body: Vec<u8>,
) -> Response {
    let Some(path) = user_path(file) else {
        return empty(StatusCode::FORBIDDEN);
    };
    let overwrite = query.get("overwrite").map(String::as_str) != Some("false");
    let full_info = query.get("full_info").map(String::as_str) == Some("true");
    let mut files = lock(&s.userdata);
    let existing = files.get(&path).map(|f| f.created);
    if existing.is_some() && !overwrite {
        return text(StatusCode::CONFLICT, "File already exists");
    }
    let now = now_secs();
    let entry = UserFile {
        bytes: body,
        modified: now,
        created: existing.unwrap_or(now),
    };
    let answer = if full_info {
        file_info_raw(&path, &entry)
    } else {
        py_json(&json!(path))
    };
    files.insert(path, entry);
    json_raw(answer)
}

fn userdata_move(s: &Shared, file: &str, dest: &str, query: &HashMap<String, String>) -> Response {
    let (Some(from), Some(to)) = (user_path(file), user_path(dest)) else {
        return empty(StatusCode::FORBIDDEN);
    };
    let overwrite = query.get("overwrite").map(String::as_str) != Some("false");
    let full_info = query.get("full_info").map(String::as_str) == Some("true");
    let mut files = lock(&s.userdata);
    if !files.contains_key(&from) {
        return empty(StatusCode::NOT_FOUND);
    }
    if files.contains_key(&to) && !overwrite {
        return text(StatusCode::CONFLICT, "File already exists");
    }
    let entry = files.remove(&from).expect("checked above");
    let answer = if full_info {
        py_json(&file_info(&to, &entry))
    } else {
        py_json(&json!(to))
    };
    files.insert(to, entry);
    json_raw(answer)
}

fn userdata_delete(s: &Shared, file: &str) -> Response {
    let Some(path) = user_path(file) else {
        return empty(StatusCode::FORBIDDEN);
    };
    match lock(&s.userdata).remove(&path) {
        Some(_) => empty(StatusCode::NO_CONTENT),
        None => empty(StatusCode::NOT_FOUND),
    }
}

// -- WebSocket ---------------------------------------------------------------------------------

async fn ws_session(ctx: Ctx, socket: WebSocket, sid: String, uri: String) {
    let s = Arc::clone(&ctx.shared);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let conn = s.next_conn.fetch_add(1, Ordering::SeqCst);
    lock(&s.clients).insert(
        sid.clone(),
        Client {
            conn,
            tx,
            preview_metadata: false,
        },
    );
    lock(&s.ws_connects).push(uri);
    let (mut sink, mut stream) = socket.split();
    let hello = status_frame_with_sid(s.remaining(), &sid);
    if sink.send(WsMessage::Text(hello.into())).await.is_ok() {
        loop {
            tokio::select! {
                _ = ctx.cancel.cancelled() => break,
                out = rx.recv() => {
                    let sent = match out {
                        Some(Out::Text(t)) => sink.send(WsMessage::Text(t.into())).await,
                        Some(Out::Binary(b)) => sink.send(WsMessage::Binary(b.into())).await,
                        None => break,
                    };
                    if sent.is_err() {
                        break;
                    }
                }
                incoming = stream.next() => match incoming {
                    Some(Ok(WsMessage::Text(t))) => {
                        let t = t.as_str().to_string();
                        lock(&s.client_frames).push(ClientFrame { sid: sid.clone(), text: t.clone() });
                        let message: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                        if message["type"] == "feature_flags" {
                            let wants = message["data"]["supports_preview_metadata"] == true;
                            if let Some(client) = lock(&s.clients).get_mut(&sid) {
                                if client.conn == conn {
                                    client.preview_metadata = wants;
                                }
                            }
                            let flags = s.fx.server_feature_flags.clone();
                            if sink.send(WsMessage::Text(flags.into())).await.is_err() {
                                break;
                            }
                        }
                    }
                    Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                }
            }
        }
    }
    let mut clients = lock(&s.clients);
    if clients.get(&sid).is_some_and(|c| c.conn == conn) {
        clients.remove(&sid);
    }
}

// -- the queue worker --------------------------------------------------------------------------

async fn worker(ctx: Ctx) {
    loop {
        let job = loop {
            {
                let mut queue = lock(&ctx.shared.queue);
                if queue.running.is_none() && !queue.pending.is_empty() {
                    let next = (0..queue.pending.len())
                        .min_by(|&a, &b| {
                            let n = |i: usize| queue.pending[i].number.as_f64().unwrap_or(0.0);
                            n(a).total_cmp(&n(b))
                        })
                        .expect("not empty");
                    let job = queue.pending.remove(next);
                    queue.running = Some(job.clone());
                    queue.interrupt = false;
                    break job;
                }
            }
            tokio::select! {
                _ = ctx.cancel.cancelled() => return,
                _ = ctx.shared.wake.notified() => {}
            }
        };
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = replay(&ctx.shared, job) => {}
        }
    }
}

fn rewrite_binary(data: &[u8], from: Option<&str>, to: &str) -> Vec<u8> {
    let Some(from) = from else {
        return data.to_vec();
    };
    if data.len() < 8 || data[..4] != 4u32.to_be_bytes() {
        return data.to_vec();
    }
    let len = u32::from_be_bytes([data[4], data[5], data[6], data[7]]) as usize;
    let Some(meta) = data
        .get(8..8 + len)
        .and_then(|m| std::str::from_utf8(m).ok())
    else {
        return data.to_vec();
    };
    let meta = meta.replace(from, to);
    let mut out = Vec::with_capacity(data.len() + 8);
    out.extend_from_slice(&data[..4]);
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(meta.as_bytes());
    out.extend_from_slice(&data[8 + len..]);
    out
}

/// What a replay learned, for the history entry.
#[derive(Default)]
struct RunLog {
    node: Option<String>,
    executed: Vec<String>,
    messages: Vec<Value>,
    outputs: serde_json::Map<String, Value>,
    meta: serde_json::Map<String, Value>,
    outcome: Option<&'static str>,
}

impl RunLog {
    fn note(&mut self, s: &Shared, kind: &str, data: &Value) {
        match kind {
            "executing" => {
                if let Some(previous) = self.node.take() {
                    self.executed.push(previous);
                }
                self.node = data["node"].as_str().map(str::to_string);
            }
            "executed" => {
                let node = data["node"].as_str().unwrap_or_default().to_string();
                if let Some(output) = data["output"].as_object() {
                    for items in output.values().filter_map(Value::as_array) {
                        for item in items {
                            if let Some(filename) = item["filename"].as_str() {
                                write_output(s, item, filename);
                                lock(&s.viewable).insert((
                                    item["type"].as_str().unwrap_or("output").to_string(),
                                    item["subfolder"].as_str().unwrap_or_default().to_string(),
                                    filename.to_string(),
                                ));
                            }
                        }
                    }
                }
                self.outputs.insert(node.clone(), data["output"].clone());
                self.meta.insert(
                    node.clone(),
                    json!({"node_id": node, "display_node": data["display_node"], "parent_node": null, "real_node_id": node}),
                );
            }
            "execution_start" | "execution_cached" => self.messages.push(json!([kind, data])),
            "execution_success" => {
                self.messages.push(json!([kind, data]));
                self.outcome = Some("success");
            }
            "execution_error" | "execution_interrupted" => {
                self.messages.push(json!([kind, data]));
                self.outcome = Some("error");
            }
            _ => {}
        }
    }
}

/// With `output_dir`: writes the recorded output image where ComfyUI would have saved this
/// output (temporary name, then a rename, so a watcher never sees half a file).
fn write_output(s: &Shared, item: &Value, filename: &str) {
    let Some(dir) = &s.config.output_dir else {
        return;
    };
    if item["type"].as_str().unwrap_or("output") != "output" {
        return;
    }
    let subfolder = item["subfolder"].as_str().unwrap_or_default();
    let safe = |p: &str| !p.split('/').any(|seg| seg == ".." || seg.starts_with('.'));
    if !safe(subfolder) || !safe(filename) || filename.contains('/') {
        return;
    }
    let folder = if subfolder.is_empty() {
        dir.clone()
    } else {
        dir.join(subfolder)
    };
    let written = std::fs::read(s.config.fixtures.join("view_output.png")).and_then(|bytes| {
        std::fs::create_dir_all(&folder)?;
        let tmp = folder.join(format!(".{filename}.part"));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, folder.join(filename))
    });
    if let Err(e) = written {
        eprintln!("comfy stand-in: cannot write output {filename}: {e}");
    }
}

/// Files the history entry, frees the queue slot, and remembers a successful prompt (for the
/// cached replay).
fn finish(s: &Shared, job: &Job, log: &RunLog) {
    let success = log.outcome == Some("success");
    let entry = format!(
        "{{\"prompt\": {}, \"outputs\": {}, \"status\": {{\"status_str\": {}, \"completed\": {}, \"messages\": {}}}, \"meta\": {}}}",
        job.queue_item(),
        py_json(&Value::Object(log.outputs.clone())),
        py_json(&json!(if success { "success" } else { "error" })),
        success,
        py_json(&Value::Array(log.messages.clone())),
        py_json(&Value::Object(log.meta.clone())),
    );
    {
        let mut history = lock(&s.history);
        history.retain(|(id, _)| id != &job.prompt_id);
        history.push((job.prompt_id.clone(), entry));
    }
    if success {
        lock(&s.ran_ok).insert(canonical_prompt(&job.prompt));
    }
    let mut queue = lock(&s.queue);
    if queue
        .running
        .as_ref()
        .is_some_and(|r| r.prompt_id == job.prompt_id)
    {
        queue.running = None;
    }
}

fn interrupt_requested(s: &Shared) -> bool {
    lock(&s.queue).interrupt
}

async fn replay(s: &Shared, job: Job) {
    let recording =
        s.fx.recordings
            .get(&job.recording)
            .unwrap_or_else(|| s.fx.recording("ws_prompt_success"))
            .clone();
    let old_id = recording.prompt_id.as_deref();
    let client = job.client_id.as_deref();
    let scale = s.config.time_scale.max(0.0);
    let mut log = RunLog::default();
    let mut previous_t = recording
        .all
        .iter()
        .map(|(_, f)| f.t())
        .take_while(|t| *t < recording.frames.first().map_or(0.0, Frame::t))
        .fold(0.0, f64::max);
    let frames = &recording.frames;
    for (i, frame) in frames.iter().enumerate() {
        let gap = ((frame.t() - previous_t).max(0.0) * scale).min(2.0);
        previous_t = frame.t();
        if gap > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(gap)).await;
        }
        match frame {
            Frame::Text { kind, .. } if kind == "status" => s.broadcast_status(),
            Frame::Text { raw, kind, .. } => {
                if kind == "execution_interrupted" {
                    // The recorded interrupt came from a client: wait for one.
                    let deadline = tokio::time::Instant::now() + s.config.hold_limit;
                    while !interrupt_requested(s) && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                let text = match old_id {
                    Some(old) => raw.replace(old, &job.prompt_id),
                    None => raw.clone(),
                };
                let message: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                log.note(s, kind, &message["data"]);
                s.send_to(client, Out::Text(text));
                if matches!(
                    kind.as_str(),
                    "execution_success" | "execution_error" | "execution_interrupted"
                ) {
                    finish(s, &job, &log);
                }
            }
            Frame::Binary { data, .. } => {
                s.send_to(
                    client,
                    Out::Binary(rewrite_binary(data, old_id, &job.prompt_id)),
                );
            }
        }
        // ComfyUI notices an interrupt when a node starts or reports progress: while a node
        // runs. The recorded interrupt plays as recorded.
        let recorded_next = matches!(
            frames.get(i + 1),
            Some(Frame::Text { kind, .. }) if kind == "execution_interrupted"
        );
        if log.outcome.is_none() && log.node.is_some() && !recorded_next && interrupt_requested(s) {
            synthesize_interrupt(s, &job, &mut log);
            return;
        }
    }
    if log.outcome.is_none() {
        log.outcome = Some("success");
        finish(s, &job, &log);
    }
}

/// An interrupt cut the replay short: what ComfyUI sends then.
fn synthesize_interrupt(s: &Shared, job: &Job, log: &mut RunLog) {
    let node = log.node.clone();
    let node_type = node
        .as_ref()
        .and_then(|n| job.prompt[n.as_str()]["class_type"].as_str())
        .map(str::to_string);
    let data = json!({
        "prompt_id": job.prompt_id,
        "node_id": node,
        "node_type": node_type,
        "executed": log.executed,
        "timestamp": now_ms(),
    });
    let frame = format!(
        "{{\"type\": \"execution_interrupted\", \"data\": {{\"prompt_id\": {}, \"node_id\": {}, \"node_type\": {}, \"executed\": {}, \"timestamp\": {}}}}}",
        py_json(&data["prompt_id"]),
        py_json(&data["node_id"]),
        py_json(&data["node_type"]),
        py_json(&data["executed"]),
        py_json(&data["timestamp"]),
    );
    log.note(s, "execution_interrupted", &data);
    s.send_to(job.client_id.as_deref(), Out::Text(frame));
    finish(s, job, log);
    s.broadcast_status();
    s.send_to(
        job.client_id.as_deref(),
        Out::Text(format!(
            "{{\"type\": \"executing\", \"data\": {{\"node\": null, \"prompt_id\": {}}}}}",
            py_json(&json!(job.prompt_id))
        )),
    );
}
