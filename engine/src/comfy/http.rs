//! ComfyUI's HTTP API on [`ComfyClient`]: prompts, queue, interrupt, history, outputs,
//! object_info, models, userdata and system stats.
//!
//! Requests never carry an `Origin` header (ComfyUI answers 403 when its host differs from
//! `Host`). Paths inside `/api/userdata/…` are percent-encoded as one segment (`/` → `%2F`),
//! like the real frontend's `encodeURIComponent`. Every error names what went wrong in a
//! [`ComfyError`]; a rejected prompt keeps ComfyUI's 400 body so the caller can explain it.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::protocol::{output_files, OrderedMap, OutputFile};
use super::{describe_request_error, ComfyClient};
use crate::model::encode_component;

/// Short calls: queue, interrupt, history, userdata, models.
const QUICK: Duration = Duration::from_secs(10);
/// Submitting a prompt: ComfyUI validates the whole graph before answering.
const SUBMIT: Duration = Duration::from_secs(60);
/// `/object_info`: half a megabyte, slow to build on a first call with many custom nodes.
const OBJECT_INFO: Duration = Duration::from_secs(120);
/// `/view`: outputs can be large videos.
const VIEW: Duration = Duration::from_secs(300);
/// The most of an unexpected error body kept in an error.
const BODY_EXCERPT: usize = 2000;

/// What went wrong talking to ComfyUI.
#[derive(Debug, thiserror::Error)]
pub enum ComfyError {
    /// No answer: nothing listens, the host is unreachable, or it timed out.
    #[error("ComfyUI is unreachable at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// `POST /prompt` answered 400: validation failed. `body` is ComfyUI's JSON
    /// (`{"error": {...}, "node_errors": {...}}`); see [`ComfyError::rejection`].
    #[error("ComfyUI rejected the prompt: {}", rejection_summary(.body))]
    Rejected { body: Value },
    /// 404.
    #[error("ComfyUI has no {what}")]
    NotFound { what: String },
    /// 409: the target exists and overwriting was not asked for.
    #[error("{what} already exists in ComfyUI (not overwritten)")]
    Conflict { what: String },
    /// 403: a path outside ComfyUI's directories, or a request ComfyUI's origin check refused.
    #[error("ComfyUI refused {what} (403 Forbidden)")]
    Forbidden { what: String },
    /// Any other unexpected status (400 from `/view` for a `..` path, 500s, …).
    #[error("ComfyUI answered {path} with HTTP {status}{}", excerpt_suffix(.body))]
    Status {
        path: String,
        status: u16,
        body: String,
    },
    /// A 2xx answer that is not what ComfyUI sends.
    #[error("ComfyUI's answer to {path} could not be read: {reason}")]
    Decode { path: String, reason: String },
}

fn excerpt_suffix(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

fn rejection_summary(body: &Value) -> String {
    match RejectionBody::from_body(body) {
        Some(rejection) => rejection.summary(),
        None => body.to_string(),
    }
}

impl ComfyError {
    /// The typed reading of a [`ComfyError::Rejected`] body.
    pub fn rejection(&self) -> Option<RejectionBody> {
        match self {
            ComfyError::Rejected { body } => RejectionBody::from_body(body),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, ComfyError::NotFound { .. })
    }
}

// -- prompts -----------------------------------------------------------------------------------

/// A `POST /prompt` body. Only `prompt` is required; a `Null` prompt leaves the key out.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PromptRequest {
    /// The API-format prompt: `{"<node id>": {"class_type": …, "inputs": {…}}, …}`.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub prompt: Value,
    /// The socket's `clientId`: ComfyUI sends this prompt's events to that socket only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Choose the prompt id (a UUID) instead of letting ComfyUI pick one: then events that
    /// arrive before the HTTP answer can already be matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_id: Option<String>,
    /// `extra_pnginfo` (the UI workflow, embedded in saved PNGs) and the like.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_data: Option<Value>,
    /// Put it at the front of the queue.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub front: bool,
    /// An explicit queue position (ComfyUI accepts floats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<f64>,
    /// Run only these output nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_execution_targets: Option<Vec<String>>,
}

/// ComfyUI accepted a prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Submitted {
    pub prompt_id: String,
    /// The queue position. A float: ComfyUI echoes a client's `number` as given (`7.5`), and
    /// `front` prompts get negative numbers.
    pub number: f64,
    /// Outputs that failed validation while others passed (the prompt runs without them).
    #[serde(default)]
    pub node_errors: BTreeMap<String, NodeErrors>,
}

/// A 400 body of `POST /prompt`, read field for field. For sentences a user can act on, see
/// [`explain_prompt_error`](crate::comfy::convert::explain_prompt_error), which takes the same
/// body (`ComfyError::Rejected { body }`) and the prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RejectionBody {
    pub error: RejectionError,
    #[serde(default)]
    pub node_errors: BTreeMap<String, NodeErrors>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RejectionError {
    /// `prompt_outputs_failed_validation`, `invalid_prompt`, `prompt_no_outputs`, `no_prompt`…
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub details: String,
    #[serde(default)]
    pub extra_info: Value,
}

/// The validation errors of one node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeErrors {
    #[serde(default)]
    pub errors: Vec<NodeError>,
    #[serde(default)]
    pub dependent_outputs: Vec<String>,
    #[serde(default)]
    pub class_type: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeError {
    /// `required_input_missing`, `value_not_in_list`, `value_bigger_than_max`, …
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub details: String,
    /// `input_name`, `input_config`, `received_value`, …
    #[serde(default)]
    pub extra_info: Value,
}

impl NodeError {
    /// The input the error is about, when ComfyUI names it.
    pub fn input_name(&self) -> Option<&str> {
        self.extra_info.get("input_name").and_then(Value::as_str)
    }
}

impl RejectionBody {
    pub fn from_body(body: &Value) -> Option<Self> {
        serde_json::from_value(body.clone()).ok()
    }

    /// One line: the error, then each node's errors.
    pub fn summary(&self) -> String {
        let mut text = self.error.message.clone();
        if !self.error.details.is_empty() && self.node_errors.is_empty() {
            text.push_str(&format!(" ({})", clip(&self.error.details, 200)));
        }
        for (node, errors) in &self.node_errors {
            for error in &errors.errors {
                text.push_str(&format!(
                    "; node {node} ({}): {}",
                    errors.class_type, error.message
                ));
                if !error.details.is_empty() {
                    text.push_str(&format!(": {}", clip(&error.details, 200)));
                }
            }
        }
        text
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

// -- queue and history -------------------------------------------------------------------------

/// `GET /queue`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueView {
    pub running: Vec<QueueItem>,
    /// By queue number (ComfyUI sends its heap order).
    pub pending: Vec<QueueItem>,
}

/// One queued prompt: `[number, prompt_id, prompt, extra_data, outputs_to_execute]`.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueItem {
    pub number: f64,
    pub prompt_id: String,
    /// The API prompt, as submitted (also for prompts queued from ComfyUI's own UI).
    pub prompt: Value,
    pub client_id: Option<String>,
    pub node_count: usize,
    /// The output nodes it will run.
    pub outputs: Vec<String>,
    pub extra_data: Value,
}

impl QueueItem {
    fn from_value(item: &Value) -> Result<Self, String> {
        let parts = item.as_array().ok_or_else(|| {
            format!(
                "a queue item is not a list: {}",
                clip(&item.to_string(), 80)
            )
        })?;
        let number = parts
            .first()
            .and_then(Value::as_f64)
            .ok_or("a queue item without a number")?;
        let prompt_id = parts
            .get(1)
            .and_then(Value::as_str)
            .ok_or("a queue item without a prompt id")?
            .to_string();
        let prompt = parts.get(2).cloned().unwrap_or(Value::Null);
        let extra_data = parts.get(3).cloned().unwrap_or(Value::Null);
        let outputs = parts
            .get(4)
            .and_then(Value::as_array)
            .map(|a| ids(a))
            .unwrap_or_default();
        Ok(QueueItem {
            number,
            node_count: prompt.as_object().map_or(0, |o| o.len()),
            client_id: extra_data
                .get("client_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            prompt_id,
            prompt,
            outputs,
            extra_data,
        })
    }
}

fn ids(values: &[Value]) -> Vec<String> {
    values
        .iter()
        .filter_map(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

impl QueueView {
    /// Reads a `GET /queue` body.
    pub fn from_json(body: &Value) -> Result<Self, String> {
        let list = |key: &str| -> Result<Vec<QueueItem>, String> {
            match body.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => items.iter().map(QueueItem::from_value).collect(),
                Some(_) => Err(format!("{key} is not a list")),
            }
        };
        let running = list("queue_running")?;
        let mut pending = list("queue_pending")?;
        pending.sort_by(|a, b| a.number.total_cmp(&b.number));
        Ok(QueueView { running, pending })
    }
}

/// How a finished prompt ended, from its history entry.
#[derive(Clone, Debug, PartialEq)]
pub enum HistoryOutcome {
    Success,
    Failed {
        node: Option<String>,
        node_type: Option<String>,
        message: String,
        exception_type: String,
        traceback: Vec<String>,
    },
    /// ComfyUI files interrupts under `status_str: "error"`; the messages tell them apart.
    Interrupted {
        node: Option<String>,
        node_type: Option<String>,
    },
    /// A status this module does not know.
    Unknown {
        status_str: Option<String>,
    },
}

/// The outputs of one node in a history entry.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeOutputs {
    pub node: String,
    pub files: Vec<OutputFile>,
    pub output: Value,
}

/// One `GET /history` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEntry {
    pub prompt_id: String,
    pub number: f64,
    pub prompt: Value,
    pub client_id: Option<String>,
    pub outputs_to_execute: Vec<String>,
    pub outcome: HistoryOutcome,
    pub status_str: Option<String>,
    pub completed: bool,
    pub outputs: Vec<NodeOutputs>,
    /// `execution_start`'s timestamp (ms).
    pub started_at_ms: Option<i64>,
    /// The timestamp of the message that ended it (ms).
    pub ended_at_ms: Option<i64>,
    /// `status.messages`: `[type, data]` pairs, in order.
    pub messages: Vec<(String, Value)>,
}

impl HistoryEntry {
    /// Reads one entry (`prompt_id` is its key in the history object).
    pub fn from_value(prompt_id: &str, entry: &Value) -> Result<Self, String> {
        let queued = entry
            .get("prompt")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let status = entry.get("status").cloned().unwrap_or(Value::Null);
        let status_str = status
            .get("status_str")
            .and_then(Value::as_str)
            .map(str::to_string);
        let messages: Vec<(String, Value)> = status
            .get("messages")
            .and_then(Value::as_array)
            .map(|messages| {
                messages
                    .iter()
                    .filter_map(|m| {
                        let pair = m.as_array()?;
                        Some((pair.first()?.as_str()?.to_string(), pair.get(1)?.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let timestamp = |kind: &str| {
            messages
                .iter()
                .find(|(k, _)| k == kind)
                .and_then(|(_, d)| d.get("timestamp").and_then(Value::as_i64))
        };
        let message_of = |kind: &str| messages.iter().find(|(k, _)| k == kind).map(|(_, d)| d);
        let text = |d: &Value, key: &str| d.get(key).and_then(Value::as_str).map(str::to_string);
        let (outcome, ended_at_ms) = if let Some(d) = message_of("execution_error") {
            (
                HistoryOutcome::Failed {
                    node: text(d, "node_id"),
                    node_type: text(d, "node_type"),
                    message: text(d, "exception_message").unwrap_or_default(),
                    exception_type: text(d, "exception_type").unwrap_or_default(),
                    traceback: d
                        .get("traceback")
                        .and_then(Value::as_array)
                        .map(|a| ids(a))
                        .unwrap_or_default(),
                },
                timestamp("execution_error"),
            )
        } else if let Some(d) = message_of("execution_interrupted") {
            (
                HistoryOutcome::Interrupted {
                    node: text(d, "node_id"),
                    node_type: text(d, "node_type"),
                },
                timestamp("execution_interrupted"),
            )
        } else if status_str.as_deref() == Some("success") {
            (HistoryOutcome::Success, timestamp("execution_success"))
        } else {
            (
                HistoryOutcome::Unknown {
                    status_str: status_str.clone(),
                },
                None,
            )
        };
        let outputs = entry
            .get("outputs")
            .and_then(Value::as_object)
            .map(|outputs| {
                outputs
                    .iter()
                    .map(|(node, output)| NodeOutputs {
                        node: node.clone(),
                        files: output_files(output),
                        output: output.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(HistoryEntry {
            prompt_id: prompt_id.to_string(),
            number: queued.first().and_then(Value::as_f64).unwrap_or_default(),
            prompt: queued.get(2).cloned().unwrap_or(Value::Null),
            client_id: queued
                .get(3)
                .and_then(|extra| extra.get("client_id"))
                .and_then(Value::as_str)
                .map(str::to_string),
            outputs_to_execute: queued
                .get(4)
                .and_then(Value::as_array)
                .map(|a| ids(a))
                .unwrap_or_default(),
            outcome,
            completed: status
                .get("completed")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            status_str,
            outputs,
            started_at_ms: timestamp("execution_start"),
            ended_at_ms,
            messages,
        })
    }

    /// All output files, node by node.
    pub fn files(&self) -> impl Iterator<Item = &OutputFile> {
        self.outputs.iter().flat_map(|o| o.files.iter())
    }
}

/// Reads a `GET /history` body, in ComfyUI's order (oldest first).
pub fn parse_history(body: &str) -> Result<Vec<HistoryEntry>, String> {
    let entries: OrderedMap<Value> = serde_json::from_str(body).map_err(|e| e.to_string())?;
    entries
        .0
        .iter()
        .map(|(id, entry)| HistoryEntry::from_value(id, entry))
        .collect()
}

// -- userdata, system --------------------------------------------------------------------------

/// Where `/upload/image` put a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedFile {
    pub name: String,
    #[serde(default)]
    pub subfolder: String,
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// A file under ComfyUI's user directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserdataFile {
    /// Relative to the listed directory in listings (`sub/b.json`), relative to the user
    /// directory when returned by a write (`workflows/sub/b.json`).
    pub path: String,
    #[serde(default)]
    pub size: Option<u64>,
    /// Seconds since the epoch (a float, as ComfyUI sends it).
    #[serde(default)]
    pub modified: Option<f64>,
    #[serde(default)]
    pub created: Option<f64>,
}

/// `GET /system_stats`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemStats {
    pub system: SystemInfo,
    #[serde(default)]
    pub devices: Vec<DeviceInfo>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemInfo {
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub ram_total: Option<u64>,
    #[serde(default)]
    pub ram_free: Option<u64>,
    #[serde(default)]
    pub comfyui_version: Option<String>,
    #[serde(default)]
    pub required_frontend_version: Option<String>,
    #[serde(default)]
    pub python_version: Option<String>,
    #[serde(default)]
    pub pytorch_version: Option<String>,
    #[serde(default)]
    pub embedded_python: Option<bool>,
    #[serde(default)]
    pub argv: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    #[serde(default)]
    pub name: String,
    /// `cuda`, `cpu`, `mps`, …
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub vram_total: Option<u64>,
    #[serde(default)]
    pub vram_free: Option<u64>,
    #[serde(default)]
    pub torch_vram_total: Option<u64>,
    #[serde(default)]
    pub torch_vram_free: Option<u64>,
}

// -- encoding ----------------------------------------------------------------------------------

fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn flag(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

// -- the client --------------------------------------------------------------------------------

impl ComfyClient {
    fn api_request(
        &self,
        method: Method,
        path_and_query: &str,
        timeout: Duration,
    ) -> RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.base_url, path_and_query))
            .timeout(timeout)
    }

    async fn api_send(&self, request: RequestBuilder) -> Result<Response, ComfyError> {
        request.send().await.map_err(|e| ComfyError::Unreachable {
            url: self.base_url.clone(),
            reason: describe_request_error(&e),
        })
    }

    /// Sends, and turns a non-2xx answer into the error that names it.
    async fn api_call(&self, request: RequestBuilder, what: &str) -> Result<Response, ComfyError> {
        let response = self.api_send(request).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let path = response.url().path().to_string();
        Err(match status {
            StatusCode::NOT_FOUND => ComfyError::NotFound {
                what: what.to_string(),
            },
            StatusCode::CONFLICT => ComfyError::Conflict {
                what: what.to_string(),
            },
            StatusCode::FORBIDDEN => ComfyError::Forbidden {
                what: what.to_string(),
            },
            _ => ComfyError::Status {
                path,
                status: status.as_u16(),
                body: clip(&response.text().await.unwrap_or_default(), BODY_EXCERPT),
            },
        })
    }

    async fn api_read_json<T: DeserializeOwned>(response: Response) -> Result<T, ComfyError> {
        let path = response.url().path().to_string();
        let bytes = response.bytes().await.map_err(|e| ComfyError::Decode {
            path: path.clone(),
            reason: describe_request_error(&e),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ComfyError::Decode {
            path,
            reason: e.to_string(),
        })
    }

    async fn api_read_text(response: Response) -> Result<String, ComfyError> {
        let path = response.url().path().to_string();
        response.text().await.map_err(|e| ComfyError::Decode {
            path,
            reason: describe_request_error(&e),
        })
    }

    async fn api_get_json<T: DeserializeOwned>(
        &self,
        path_and_query: &str,
        what: &str,
        timeout: Duration,
    ) -> Result<T, ComfyError> {
        let response = self
            .api_call(self.api_request(Method::GET, path_and_query, timeout), what)
            .await?;
        Self::api_read_json(response).await
    }

    /// `POST /prompt` with `prompt` and `client_id`.
    pub async fn submit_prompt(
        &self,
        prompt: &Value,
        client_id: &str,
    ) -> Result<Submitted, ComfyError> {
        self.submit(&PromptRequest {
            prompt: prompt.clone(),
            client_id: Some(client_id.to_string()),
            ..PromptRequest::default()
        })
        .await
    }

    /// `POST /prompt`. A 400 is [`ComfyError::Rejected`] with ComfyUI's body.
    pub async fn submit(&self, request: &PromptRequest) -> Result<Submitted, ComfyError> {
        let response = self
            .api_send(
                self.api_request(Method::POST, "/prompt", SUBMIT)
                    .json(request),
            )
            .await?;
        let status = response.status();
        if status.is_success() {
            return Self::api_read_json(response).await;
        }
        let text = response.text().await.unwrap_or_default();
        if status == StatusCode::BAD_REQUEST {
            if let Ok(body @ Value::Object(_)) = serde_json::from_str::<Value>(&text) {
                return Err(ComfyError::Rejected { body });
            }
        }
        Err(match status {
            StatusCode::FORBIDDEN => ComfyError::Forbidden {
                what: "the prompt".to_string(),
            },
            _ => ComfyError::Status {
                path: "/prompt".to_string(),
                status: status.as_u16(),
                body: clip(&text, BODY_EXCERPT),
            },
        })
    }

    /// `GET /queue`: running and pending prompts, from every client.
    pub async fn queue(&self) -> Result<QueueView, ComfyError> {
        let body: Value = self.api_get_json("/queue", "queue", QUICK).await?;
        QueueView::from_json(&body).map_err(|reason| ComfyError::Decode {
            path: "/queue".to_string(),
            reason,
        })
    }

    /// Removes pending prompts (a running one is not touched: use [`interrupt`](Self::interrupt)).
    pub async fn delete_pending(&self, prompt_ids: &[&str]) -> Result<(), ComfyError> {
        let body = json!({ "delete": prompt_ids });
        self.api_call(
            self.api_request(Method::POST, "/queue", QUICK).json(&body),
            "queue",
        )
        .await?;
        Ok(())
    }

    /// Removes every pending prompt; the running one goes on.
    pub async fn clear_queue(&self) -> Result<(), ComfyError> {
        let body = json!({ "clear": true });
        self.api_call(
            self.api_request(Method::POST, "/queue", QUICK).json(&body),
            "queue",
        )
        .await?;
        Ok(())
    }

    /// `POST /interrupt`: stops whatever runs (`None`), or only `prompt_id` if it is the one
    /// running (otherwise a no-op that still answers 200).
    pub async fn interrupt(&self, prompt_id: Option<&str>) -> Result<(), ComfyError> {
        let mut request = self.api_request(Method::POST, "/interrupt", QUICK);
        if let Some(prompt_id) = prompt_id {
            request = request.json(&json!({ "prompt_id": prompt_id }));
        }
        self.api_call(request, "interrupt").await?;
        Ok(())
    }

    /// One prompt's history entry; `None` while it is queued or running, or once forgotten.
    pub async fn history(&self, prompt_id: &str) -> Result<Option<HistoryEntry>, ComfyError> {
        let path = format!("/history/{}", encode_component(prompt_id));
        let response = self
            .api_call(self.api_request(Method::GET, &path, QUICK), "history")
            .await?;
        let text = Self::api_read_text(response).await?;
        let entries = parse_history(&text).map_err(|reason| ComfyError::Decode {
            path: path.clone(),
            reason,
        })?;
        Ok(entries.into_iter().find(|e| e.prompt_id == prompt_id))
    }

    /// The last `max_items` history entries, oldest first.
    pub async fn history_recent(&self, max_items: usize) -> Result<Vec<HistoryEntry>, ComfyError> {
        let path = format!("/history?max_items={max_items}");
        let response = self
            .api_call(self.api_request(Method::GET, &path, QUICK), "history")
            .await?;
        let text = Self::api_read_text(response).await?;
        parse_history(&text).map_err(|reason| ComfyError::Decode {
            path: "/history".to_string(),
            reason,
        })
    }

    /// Forgets history entries.
    pub async fn delete_history(&self, prompt_ids: &[&str]) -> Result<(), ComfyError> {
        let body = json!({ "delete": prompt_ids });
        self.api_call(
            self.api_request(Method::POST, "/history", QUICK)
                .json(&body),
            "history",
        )
        .await?;
        Ok(())
    }

    /// `POST /upload/image` (multipart: `image`, `type=input`, `subfolder`, `overwrite`): puts
    /// an image into ComfyUI's input folder. ComfyUI may rename it (`name (1).png`) when a
    /// different file has the name and `overwrite` is false; the answer says the name it kept.
    pub async fn upload_image(
        &self,
        file_name: &str,
        bytes: Vec<u8>,
        subfolder: &str,
        overwrite: bool,
    ) -> Result<UploadedFile, ComfyError> {
        let mime = match file_name.rsplit('.').next().map(str::to_ascii_lowercase) {
            Some(ext) if ext == "png" => "image/png",
            Some(ext) if ext == "jpg" || ext == "jpeg" => "image/jpeg",
            Some(ext) if ext == "webp" => "image/webp",
            Some(ext) if ext == "gif" => "image/gif",
            _ => "application/octet-stream",
        };
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name.to_string())
            .mime_str(mime)
            .map_err(|e| ComfyError::Decode {
                path: "/upload/image".into(),
                reason: e.to_string(),
            })?;
        let form = reqwest::multipart::Form::new()
            .part("image", part)
            .text("type", "input")
            .text("subfolder", subfolder.to_string())
            .text("overwrite", flag(overwrite));
        let response = self
            .api_call(
                self.api_request(Method::POST, "/upload/image", SUBMIT)
                    .multipart(form),
                &format!("upload of {file_name}"),
            )
            .await?;
        Self::api_read_json(response).await
    }

    /// The `/view` path and query of an output file (for proxying).
    pub fn view_path(filename: &str, subfolder: &str, kind: &str) -> String {
        format!(
            "/view?{}",
            query(&[
                ("filename", filename),
                ("subfolder", subfolder),
                ("type", kind)
            ])
        )
    }

    /// `GET /view`: an output, temp or input file, as (content type, bytes). A missing file is
    /// [`ComfyError::NotFound`]; a name with `..` is a 400 ([`ComfyError::Status`]).
    pub async fn view(
        &self,
        filename: &str,
        subfolder: &str,
        kind: &str,
    ) -> Result<(String, Vec<u8>), ComfyError> {
        let path = Self::view_path(filename, subfolder, kind);
        let what = if subfolder.is_empty() {
            format!("{kind} file `{filename}`")
        } else {
            format!("{kind} file `{subfolder}/{filename}`")
        };
        let response = self
            .api_call(self.api_request(Method::GET, &path, VIEW), &what)
            .await?;
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        let bytes = response.bytes().await.map_err(|e| ComfyError::Decode {
            path: "/view".to_string(),
            reason: describe_request_error(&e),
        })?;
        Ok((content_type, bytes.to_vec()))
    }

    /// `GET /object_info`: every node class (half a megabyte; the caller caches it).
    pub async fn object_info(&self) -> Result<Value, ComfyError> {
        self.api_get_json("/object_info", "object_info", OBJECT_INFO)
            .await
    }

    /// `GET /object_info/<class>`; `None` for a class ComfyUI does not know.
    pub async fn object_info_class(&self, class: &str) -> Result<Option<Value>, ComfyError> {
        let path = format!("/object_info/{}", encode_component(class));
        let mut body: Value = self.api_get_json(&path, "object_info", QUICK).await?;
        Ok(body.as_object_mut().and_then(|o| o.remove(class)))
    }

    /// `GET /models`: the model folder names ComfyUI knows (extra_model_paths keys included).
    pub async fn model_folders(&self) -> Result<Vec<String>, ComfyError> {
        self.api_get_json("/models", "model folder list", QUICK)
            .await
    }

    /// `GET /models/<folder>`: the files ComfyUI sees in a folder, from every path mapped to it.
    pub async fn models(&self, folder: &str) -> Result<Vec<String>, ComfyError> {
        let path = format!("/models/{}", encode_component(folder));
        self.api_get_json(&path, &format!("model folder `{folder}`"), QUICK)
            .await
    }

    /// `GET /api/userdata?dir=…&recurse=…&split=false&full_info=true`. A directory that does not
    /// exist yet (no workflow saved) is [`ComfyError::NotFound`].
    pub async fn userdata_list(
        &self,
        dir: &str,
        recurse: bool,
    ) -> Result<Vec<UserdataFile>, ComfyError> {
        let path = format!(
            "/api/userdata?{}",
            query(&[
                ("dir", dir),
                ("recurse", flag(recurse)),
                ("split", "false"),
                ("full_info", "true"),
            ])
        );
        self.api_get_json(&path, &format!("user directory `{dir}`"), QUICK)
            .await
    }

    fn api_userdata_path(path: &str) -> String {
        format!("/api/userdata/{}", encode_component(path))
    }

    /// `GET /api/userdata/<path>`: a file's bytes.
    pub async fn userdata_get(&self, path: &str) -> Result<Vec<u8>, ComfyError> {
        let response = self
            .api_call(
                self.api_request(Method::GET, &Self::api_userdata_path(path), QUICK),
                &format!("user file `{path}`"),
            )
            .await?;
        let bytes = response.bytes().await.map_err(|e| ComfyError::Decode {
            path: Self::api_userdata_path(path),
            reason: describe_request_error(&e),
        })?;
        Ok(bytes.to_vec())
    }

    /// `POST /api/userdata/<path>?overwrite=…&full_info=true`: writes a file (parents are
    /// created). An existing file without `overwrite` is [`ComfyError::Conflict`].
    pub async fn userdata_put(
        &self,
        path: &str,
        body: Vec<u8>,
        overwrite: bool,
    ) -> Result<UserdataFile, ComfyError> {
        let url = format!(
            "{}?{}",
            Self::api_userdata_path(path),
            query(&[("overwrite", flag(overwrite)), ("full_info", "true")])
        );
        let response = self
            .api_call(
                self.api_request(Method::POST, &url, QUICK).body(body),
                &format!("user file `{path}`"),
            )
            .await?;
        let value: Value = Self::api_read_json(response).await?;
        Ok(match value {
            Value::String(path) => UserdataFile {
                path,
                size: None,
                modified: None,
                created: None,
            },
            other => serde_json::from_value(other).map_err(|e| ComfyError::Decode {
                path: Self::api_userdata_path(path),
                reason: e.to_string(),
            })?,
        })
    }

    /// `POST /api/userdata/<from>/move/<to>?overwrite=…`; returns the new path. A missing source
    /// is [`ComfyError::NotFound`], an existing target without `overwrite` a
    /// [`ComfyError::Conflict`].
    pub async fn userdata_move(
        &self,
        from: &str,
        to: &str,
        overwrite: bool,
    ) -> Result<String, ComfyError> {
        let url = format!(
            "{}/move/{}?{}",
            Self::api_userdata_path(from),
            encode_component(to),
            query(&[("overwrite", flag(overwrite))])
        );
        let what = format!("user file `{from}` (to move to `{to}`)");
        let response = self
            .api_call(self.api_request(Method::POST, &url, QUICK), &what)
            .await?;
        let value: Value = Self::api_read_json(response).await?;
        Ok(match value {
            Value::String(path) => path,
            other => other
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or(to)
                .to_string(),
        })
    }

    /// `DELETE /api/userdata/<path>`.
    pub async fn userdata_delete(&self, path: &str) -> Result<(), ComfyError> {
        self.api_call(
            self.api_request(Method::DELETE, &Self::api_userdata_path(path), QUICK),
            &format!("user file `{path}`"),
        )
        .await?;
        Ok(())
    }

    /// `GET /system_stats`: versions, RAM, devices and VRAM.
    pub async fn system_stats(&self) -> Result<SystemStats, ComfyError> {
        self.api_get_json("/system_stats", "system_stats", QUICK)
            .await
    }

    /// `GET /internal/folder_paths`: every model folder name with the absolute paths ComfyUI
    /// searches, in its search order.
    pub async fn folder_paths(&self) -> Result<BTreeMap<String, Vec<String>>, ComfyError> {
        self.api_get_json("/internal/folder_paths", "folder paths", QUICK)
            .await
    }

    /// `POST /free`: unload models and/or free cached memory.
    pub async fn free(&self, unload_models: bool, free_memory: bool) -> Result<(), ComfyError> {
        let body = json!({ "unload_models": unload_models, "free_memory": free_memory });
        self.api_call(
            self.api_request(Method::POST, "/free", QUICK).json(&body),
            "free",
        )
        .await?;
        Ok(())
    }
}

/// The folder ComfyUI saves outputs to, as it reports it: `--output-directory` in its argv when
/// absolute; else the folder its start-up appends to the model search paths (ComfyUI adds
/// `<output>/checkpoints`, `<output>/vae`, `<output>/loras` last, so models saved by
/// CheckpointSave load again); else `<--base-directory>/output`. `None` when nothing reported
/// is an absolute path (a relative one depends on ComfyUI's working directory).
pub fn reported_output_dir(
    argv: &[String],
    folder_paths: &BTreeMap<String, Vec<String>>,
) -> Option<std::path::PathBuf> {
    use std::path::{Path, PathBuf};
    let flag = |name: &str| -> Option<PathBuf> {
        let prefix = format!("{name}=");
        let mut args = argv.iter();
        let mut found = None;
        while let Some(arg) = args.next() {
            if arg == name {
                found = args.next().map(PathBuf::from);
            } else if let Some(value) = arg.strip_prefix(&prefix) {
                found = Some(PathBuf::from(value));
            }
        }
        found.filter(|p| p.is_absolute())
    };
    if let Some(dir) = flag("--output-directory") {
        return Some(dir);
    }
    let parent_of_last = |folder: &str| -> Option<PathBuf> {
        let last = Path::new(folder_paths.get(folder)?.last()?);
        if !last.is_absolute() || last.file_name()? != folder {
            return None;
        }
        last.parent().map(Path::to_path_buf)
    };
    let from_paths = ["checkpoints", "vae", "loras"].map(parent_of_last);
    if let [Some(a), Some(b), Some(c)] = &from_paths {
        if a == b && b == c {
            return Some(a.clone());
        }
    }
    flag("--base-directory").map(|base| base.join("output"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// As ComfyUI 0.3.64 reports them: model folders first, extra paths, the output folder last.
    fn paths(output: &str) -> BTreeMap<String, Vec<String>> {
        let mut paths = BTreeMap::new();
        for folder in ["checkpoints", "vae", "loras"] {
            paths.insert(
                folder.to_string(),
                vec![
                    format!("/opt/ComfyUI/models/{folder}"),
                    format!("/workspace/models/{folder}"),
                    format!("{output}/{folder}"),
                ],
            );
        }
        paths
    }

    #[test]
    fn the_output_folder_comes_from_argv_then_the_model_paths_then_the_base_directory() {
        let none = BTreeMap::new();
        assert_eq!(
            reported_output_dir(
                &args(&["main.py", "--output-directory", "/data/out"]),
                &none
            ),
            Some(PathBuf::from("/data/out"))
        );
        assert_eq!(
            reported_output_dir(&args(&["main.py", "--output-directory=/data/out"]), &none),
            Some(PathBuf::from("/data/out"))
        );
        // ComfyUI started from its own folder with no flags: only the search paths tell.
        assert_eq!(
            reported_output_dir(
                &args(&["main.py", "--listen"]),
                &paths("/opt/ComfyUI/output")
            ),
            Some(PathBuf::from("/opt/ComfyUI/output"))
        );
        // A relative flag depends on ComfyUI's working directory: the paths decide.
        assert_eq!(
            reported_output_dir(
                &args(&["main.py", "--output-directory", "out"]),
                &paths("/opt/ComfyUI/out")
            ),
            Some(PathBuf::from("/opt/ComfyUI/out"))
        );
        assert_eq!(
            reported_output_dir(&args(&["main.py", "--base-directory", "/srv/comfy"]), &none),
            Some(PathBuf::from("/srv/comfy/output"))
        );
        // Last entries that disagree (a custom node appended its own) are not trusted.
        let mut odd = paths("/opt/ComfyUI/output");
        odd.get_mut("vae").unwrap().push("/elsewhere/vae".into());
        assert_eq!(reported_output_dir(&args(&["main.py"]), &odd), None);
        // The recorded answer has placeholders, not absolute paths: nothing is reported.
        assert_eq!(
            reported_output_dir(&args(&["main.py"]), &paths("<BASE_DIR>/output")),
            None
        );
    }
}
