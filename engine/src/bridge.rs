//! The bridge to ComfyUI: one persistent WebSocket whose events become [`Event::Run`]s for the
//! browser, the `/object_info` cache, submitting workflows (either format, checked first), the
//! queue, and the previews and outputs served back through comfydeck.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::comfy::convert::{self, NodeProblem, ObjectInfo};
use crate::comfy::http::ComfyError;
use crate::comfy::http::PromptRequest;
use crate::comfy::protocol::{ComfyEvent, ImageBytes, PromptEventKind};
use crate::comfy::socket::{ComfySocket, SocketConfig};
use crate::comfy::ComfyClient;
use crate::events::EventBus;
use crate::model::*;
use crate::store::{Store, StoreError};

/// Newest preview of a prompt: `(mime, bytes, sequence number)`.
type Preview = (String, ImageBytes, u64);

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("ComfyUI is not reachable: {0}")]
    Comfy(#[from] ComfyError),
    #[error("ComfyUI's node list cannot be read: {0}")]
    ObjectInfo(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl crate::error::Classify for BridgeError {
    fn kind(&self) -> crate::model::ErrorKind {
        use crate::model::ErrorKind;
        match self {
            // ComfyUI is down or answered oddly: a gateway problem, not ours.
            BridgeError::Comfy(_) | BridgeError::ObjectInfo(_) => ErrorKind::Unavailable,
            BridgeError::Invalid(_) => ErrorKind::Invalid,
            BridgeError::NotFound(_) => ErrorKind::NotFound,
            BridgeError::Store(e) => e.kind(),
        }
    }
}

pub use crate::model::InputValue;

pub struct Bridge {
    client: ComfyClient,
    client_id: String,
    events: EventBus,
    socket: std::sync::OnceLock<ComfySocket>,
    object_info: RwLock<Option<Arc<ObjectInfo>>>,
    previews: Mutex<HashMap<String, Preview>>,
    store: Store,
    /// Prompts this process submitted and who submitted them (the queue view marks them; the
    /// live events are routed by them). Earlier processes' prompts are in `prompt_owners`.
    owners: Mutex<HashMap<String, i64>>,
    /// The files recent runs reported, and the prompt that made each: who may fetch them.
    files: Mutex<RunFiles>,
    /// Per prompt: the nodes it has and those ComfyUI reused from its cache, for the overall
    /// progress (`progress_state` lists only the nodes that actually run).
    node_counts: Mutex<HashMap<String, NodeCounts>>,
    /// Counts the socket's (re)connections, for whoever re-reads what ComfyUI reports.
    connections: tokio::sync::watch::Sender<u64>,
    stop: CancellationToken,
}

impl Bridge {
    pub fn new(
        client: ComfyClient,
        client_id: String,
        events: EventBus,
        store: Store,
    ) -> Arc<Bridge> {
        Arc::new(Bridge {
            client,
            client_id,
            events,
            socket: std::sync::OnceLock::new(),
            object_info: RwLock::new(None),
            previews: Mutex::new(HashMap::new()),
            store,
            owners: Mutex::new(HashMap::new()),
            files: Mutex::new(RunFiles::default()),
            node_counts: Mutex::new(HashMap::new()),
            connections: tokio::sync::watch::Sender::new(0),
            stop: CancellationToken::new(),
        })
    }

    /// The HTTP client of the ComfyUI this bridge talks to.
    pub fn client(&self) -> &ComfyClient {
        &self.client
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Changes each time the socket to ComfyUI (re)connects.
    pub fn connections(&self) -> tokio::sync::watch::Receiver<u64> {
        self.connections.subscribe()
    }

    /// Opens the socket (reconnecting by itself) and relays its events until [`stop`].
    ///
    /// [`stop`]: Bridge::stop
    pub fn start(self: &Arc<Self>) {
        let config = SocketConfig::new(self.client.base_url(), &self.client_id);
        let (socket, mut events) = match ComfySocket::spawn(config, self.stop.child_token()) {
            Ok(started) => started,
            Err(e) => {
                tracing::error!(error = %e, "cannot open ComfyUI's WebSocket");
                return;
            }
        };
        if self.socket.set(socket).is_err() {
            return;
        }
        let bridge = Arc::clone(self);
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                tokio::select! {
                    _ = bridge.stop.cancelled() => return,
                    event = events.recv() => match event {
                        Ok(event) => bridge.relay(event),
                        Err(RecvError::Lagged(n)) => tracing::warn!(skipped = n, "ComfyUI events skipped"),
                        Err(RecvError::Closed) => return,
                    },
                }
            }
        });
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }

    fn relay(&self, event: ComfyEvent) {
        match event {
            // A (re)connect usually means ComfyUI (re)started: its node list may have changed.
            ComfyEvent::Connected => {
                *self.object_info.write().unwrap_or_else(|p| p.into_inner()) = None;
                self.connections.send_modify(|n| *n += 1);
            }
            ComfyEvent::Queue(status) => {
                self.events.publish(Event::ComfyQueue {
                    remaining: status.remaining,
                });
            }
            ComfyEvent::Prompt(prompt) => {
                let id = prompt.prompt_id;
                if let Some(event) = self.run_event(&id, prompt.kind) {
                    self.events.publish(Event::Run(RunEvent {
                        prompt_id: id,
                        event,
                    }));
                }
            }
            _ => {}
        }
    }

    fn node_counts(&self) -> std::sync::MutexGuard<'_, HashMap<String, NodeCounts>> {
        self.node_counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run_event(&self, prompt_id: &str, kind: PromptEventKind) -> Option<RunEventKind> {
        if kind.is_outcome() {
            self.node_counts().remove(prompt_id);
        }
        Some(match kind {
            PromptEventKind::NodeStates { nodes } => {
                let mut counts = self.node_counts();
                let entry = counts.entry(prompt_id.to_string()).or_default();
                overall_progress(entry, &nodes)
            }
            PromptEventKind::Queued { .. } => RunEventKind::Queued,
            PromptEventKind::Started { .. } => RunEventKind::Started,
            PromptEventKind::Cached { nodes } => {
                self.node_counts()
                    .entry(prompt_id.to_string())
                    .or_default()
                    .cached = nodes.iter().cloned().collect();
                RunEventKind::Cached { nodes }
            }
            PromptEventKind::NodeExecuting {
                node,
                title,
                class_type,
                ..
            } => RunEventKind::Executing {
                node,
                title,
                class_type,
            },
            PromptEventKind::Progress { node, value, max } => {
                RunEventKind::Progress { node, value, max }
            }
            PromptEventKind::Preview {
                node, mime, bytes, ..
            } => RunEventKind::Preview {
                node,
                url: self.put_preview(prompt_id, mime, bytes),
            },
            PromptEventKind::ProgressText { node, text } => {
                RunEventKind::ProgressText { node, text }
            }
            PromptEventKind::NodeOutput { node, files, .. } => {
                self.remember_files(
                    prompt_id,
                    files
                        .iter()
                        .map(|f| (f.kind.as_str(), f.subfolder.as_str(), f.filename.as_str())),
                );
                RunEventKind::Output {
                    files: files
                        .into_iter()
                        .map(|f| RunOutput {
                            node: node.clone(),
                            url: comfy_view_url(&f.filename, &f.subfolder, &f.kind),
                            filename: f.filename,
                            subfolder: f.subfolder,
                            kind: f.kind,
                            media: f.media,
                        })
                        .collect(),
                    node,
                }
            }
            PromptEventKind::Succeeded { .. } => RunEventKind::Succeeded,
            PromptEventKind::Failed {
                node,
                node_type,
                message,
                ..
            } => RunEventKind::Failed {
                node,
                node_type,
                message,
            },
            PromptEventKind::Interrupted { node, .. } => RunEventKind::Interrupted { node },
            _ => return None,
        })
    }

    /// Reads `/object_info` again next time (model files were added: its choices changed).
    pub fn forget_object_info(&self) {
        *self.object_info.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// `/object_info`, cached until ComfyUI reconnects (a restart may add custom nodes).
    pub async fn object_info(&self) -> Result<Arc<ObjectInfo>, BridgeError> {
        if let Some(info) = self
            .object_info
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(info);
        }
        let json = self.client.object_info().await?;
        let info = Arc::new(
            ObjectInfo::from_json(json).map_err(|e| BridgeError::ObjectInfo(e.to_string()))?,
        );
        *self.object_info.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&info));
        Ok(info)
    }

    /// What keeps a prompt from running, found before submitting: node classes ComfyUI lacks,
    /// model files it does not have (with the preset that provides them). `None`: nothing.
    pub fn precheck(
        prompt: &convert::ApiPrompt,
        info: &ObjectInfo,
        catalog: &Catalog,
    ) -> Option<RunSubmission> {
        let hint = |folder: &str, file: &str| {
            catalog
                .preset_for_model(&format!("{folder}/{file}"))
                .map(str::to_string)
        };
        let problems = convert::check_prompt(prompt, info, &hint);
        if problems.is_empty() {
            return None;
        }
        let message = format!(
            "Not submitted: {}",
            problems
                .iter()
                .map(NodeProblem::sentence)
                .collect::<Vec<_>>()
                .join("; ")
        );
        Some(RunSubmission {
            prompt_id: None,
            problems: problems.into_iter().map(problem_view).collect(),
            message,
        })
    }

    /// Checks an API prompt's classes and model files against ComfyUI's node list and
    /// submits it under `prompt_id` (see [`new_prompt_id`]; chosen by the caller so that it
    /// can record the run before ComfyUI's first event). Problems found before submitting, or
    /// ComfyUI's own refusal, come back per node with no prompt id.
    pub async fn submit(
        &self,
        prompt: convert::ApiPrompt,
        info: &ObjectInfo,
        catalog: &Catalog,
        prompt_id: String,
        owner: &Caller,
    ) -> Result<RunSubmission, BridgeError> {
        if let Some(refused) = Self::precheck(&prompt, info, catalog) {
            return Ok(refused);
        }
        let mut value = prompt.to_value();
        convert::strip_private_keys(&mut value);
        self.node_counts().insert(
            prompt_id.clone(),
            NodeCounts {
                total: prompt.nodes.len(),
                ..NodeCounts::default()
            },
        );
        // Events can arrive before ComfyUI's HTTP answer: own the prompt and register first.
        self.store
            .set_prompt_owner(&prompt_id, owner.user_id, crate::clock::now_ms())
            .await?;
        self.owners_lock().insert(prompt_id.clone(), owner.user_id);
        if let Some(socket) = self.socket.get() {
            socket.register_prompt(&prompt_id, &value);
        }
        let request = PromptRequest {
            prompt: value.clone(),
            client_id: Some(self.client_id.clone()),
            prompt_id: Some(prompt_id.clone()),
            ..Default::default()
        };
        match self.client.submit(&request).await {
            Ok(submitted) => {
                if submitted.prompt_id != prompt_id {
                    // ComfyUI chose its own id (an older version): that one is owned too.
                    self.store
                        .set_prompt_owner(
                            &submitted.prompt_id,
                            owner.user_id,
                            crate::clock::now_ms(),
                        )
                        .await?;
                    self.owners_lock()
                        .insert(submitted.prompt_id.clone(), owner.user_id);
                }
                self.events.publish(Event::Run(RunEvent {
                    prompt_id: submitted.prompt_id.clone(),
                    event: RunEventKind::Queued,
                }));
                Ok(RunSubmission {
                    prompt_id: Some(submitted.prompt_id),
                    problems: Vec::new(),
                    message: "Queued".to_string(),
                })
            }
            Err(ComfyError::Rejected { body }) => {
                self.forget_owner(&prompt_id).await;
                let rejection = convert::explain_prompt_error(&body, Some(&value));
                Ok(RunSubmission {
                    prompt_id: None,
                    problems: rejection.nodes.into_iter().map(problem_view).collect(),
                    message: rejection.message,
                })
            }
            Err(e) => {
                self.forget_owner(&prompt_id).await;
                Err(e.into())
            }
        }
    }

    fn owners_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn forget_owner(&self, prompt_id: &str) {
        self.owners_lock().remove(prompt_id);
        if let Err(e) = self.store.forget_prompt_owner(prompt_id).await {
            tracing::warn!(error = %e, prompt_id, "refused prompt's owner not forgotten");
        }
    }

    /// Who submitted a prompt through comfydeck, when this process knows without asking the
    /// database (it submitted it).
    pub fn known_owner(&self, prompt_id: &str) -> Option<i64> {
        self.owners_lock().get(prompt_id).copied()
    }

    /// Who submitted a prompt through comfydeck (`None`: queued elsewhere, e.g. in ComfyUI's
    /// own UI; such prompts are the administrator's business).
    pub async fn prompt_owner(&self, prompt_id: &str) -> Result<Option<i64>, BridgeError> {
        if let Some(owner) = self.known_owner(prompt_id) {
            return Ok(Some(owner));
        }
        let owner = self.store.prompt_owner(prompt_id).await?;
        if let Some(owner) = owner {
            self.owners_lock().insert(prompt_id.to_string(), owner);
        }
        Ok(owner)
    }

    /// Whether `caller` may see or act on a prompt: administrators any, a user their own.
    pub async fn may_access_prompt(
        &self,
        caller: &Caller,
        prompt_id: &str,
    ) -> Result<bool, BridgeError> {
        if caller.is_admin() {
            return Ok(true);
        }
        Ok(self.prompt_owner(prompt_id).await? == Some(caller.user_id))
    }

    /// `NotFound` (never "forbidden": ids do not leak) unless `caller` may reach the prompt.
    pub async fn check_prompt_access(
        &self,
        caller: &Caller,
        prompt_id: &str,
    ) -> Result<(), BridgeError> {
        if self.may_access_prompt(caller, prompt_id).await? {
            Ok(())
        } else {
            Err(BridgeError::NotFound(format!("no prompt {prompt_id}")))
        }
    }

    /// Running and pending prompts, including those queued from ComfyUI's own UI.
    pub async fn queue(&self) -> Result<QueueSnapshot, BridgeError> {
        let view = self.client.queue().await?;
        let mut snapshot = QueueSnapshot {
            running: Vec::new(),
            pending: Vec::new(),
        };
        for (items, out) in [
            (view.running, &mut snapshot.running),
            (view.pending, &mut snapshot.pending),
        ] {
            for item in items {
                out.push(QueueEntry {
                    ours: self.prompt_owner(&item.prompt_id).await?.is_some(),
                    prompt_id: item.prompt_id,
                    number: item.number,
                    node_count: item.node_count,
                });
            }
        }
        Ok(snapshot)
    }

    /// The queue as `caller` may see it: an administrator every prompt, a user only their
    /// own (the others are not listed; ComfyUI's remaining count still counts them).
    pub async fn queue_for(&self, caller: &Caller) -> Result<QueueSnapshot, BridgeError> {
        let mut snapshot = self.queue().await?;
        if caller.is_admin() {
            return Ok(snapshot);
        }
        for list in [&mut snapshot.running, &mut snapshot.pending] {
            let mut kept = Vec::with_capacity(list.len());
            for entry in list.drain(..) {
                if entry.ours && self.prompt_owner(&entry.prompt_id).await? == Some(caller.user_id)
                {
                    kept.push(entry);
                }
            }
            *list = kept;
        }
        Ok(snapshot)
    }

    fn remember_files<'a>(
        &self,
        prompt_id: &str,
        files: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) {
        let mut known = self.files.lock().unwrap_or_else(|p| p.into_inner());
        for (kind, subfolder, filename) in files {
            known.insert(
                (
                    kind.to_string(),
                    subfolder.to_string(),
                    filename.to_string(),
                ),
                prompt_id.to_string(),
            );
        }
    }

    /// The prompt a recent run's file came from (`kind` is output or temp), when this process
    /// saw the run report it.
    pub fn prompt_of_file(&self, kind: &str, subfolder: &str, filename: &str) -> Option<String> {
        let known = self.files.lock().unwrap_or_else(|p| p.into_inner());
        known
            .by_file
            .get(&(
                kind.to_string(),
                subfolder.trim_matches('/').to_string(),
                filename.to_string(),
            ))
            .cloned()
    }

    pub async fn cancel_pending(&self, prompt_id: &str) -> Result<(), BridgeError> {
        Ok(self.client.delete_pending(&[prompt_id]).await?)
    }

    /// Interrupts the running prompt, only if it is `prompt_id` (ComfyUI checks).
    pub async fn interrupt(&self, prompt_id: &str) -> Result<(), BridgeError> {
        Ok(self.client.interrupt(Some(prompt_id)).await?)
    }

    pub async fn clear_queue(&self) -> Result<(), BridgeError> {
        Ok(self.client.clear_queue().await?)
    }

    /// An output (or input/temp) file, through ComfyUI's `/view`.
    pub async fn view(
        &self,
        filename: &str,
        subfolder: &str,
        kind: &str,
    ) -> Result<(String, Vec<u8>), BridgeError> {
        if !matches!(kind, "output" | "input" | "temp") {
            return Err(BridgeError::Invalid(format!(
                "type must be output, input or temp, got {kind:?}"
            )));
        }
        crate::workspace::check_relative_path(filename)
            .map_err(|e| BridgeError::Invalid(format!("filename: {e}")))?;
        if filename.contains('/') {
            return Err(BridgeError::Invalid(
                "filename: no folders here; use subfolder".into(),
            ));
        }
        if !subfolder.is_empty() {
            crate::workspace::check_relative_path(subfolder)
                .map_err(|e| BridgeError::Invalid(format!("subfolder: {e}")))?;
        }
        match self.client.view(filename, subfolder, kind).await {
            Ok(found) => Ok(found),
            Err(e) if e.is_not_found() => Err(BridgeError::NotFound(format!(
                "ComfyUI has no {kind} file {subfolder}/{filename}"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// A prompt's outcome and outputs from ComfyUI's history; `NotFound` when ComfyUI has no
    /// record of it (unknown, or still queued).
    pub async fn history(&self, prompt_id: &str) -> Result<RunRecord, BridgeError> {
        use crate::comfy::http::HistoryOutcome;
        let entry = self.client.history(prompt_id).await?.ok_or_else(|| {
            BridgeError::NotFound(format!("ComfyUI has no history for prompt {prompt_id}"))
        })?;
        let outcome = match entry.outcome {
            HistoryOutcome::Success => RunOutcome::Succeeded,
            HistoryOutcome::Failed {
                node,
                node_type,
                message,
                ..
            } => RunOutcome::Failed {
                node,
                node_type,
                message,
            },
            HistoryOutcome::Interrupted { node, .. } => RunOutcome::Interrupted { node },
            HistoryOutcome::Unknown { status_str } => RunOutcome::Unknown { status: status_str },
        };
        let outputs = entry
            .outputs
            .into_iter()
            .flat_map(|node| {
                let id = node.node;
                node.files.into_iter().map(move |f| RunOutput {
                    node: id.clone(),
                    url: comfy_view_url(&f.filename, &f.subfolder, &f.kind),
                    filename: f.filename,
                    subfolder: f.subfolder,
                    kind: f.kind,
                    media: f.media,
                })
            })
            .collect::<Vec<RunOutput>>();
        self.remember_files(
            &entry.prompt_id,
            outputs
                .iter()
                .map(|f| (f.kind.as_str(), f.subfolder.as_str(), f.filename.as_str())),
        );
        Ok(RunRecord {
            prompt_id: entry.prompt_id,
            outcome,
            outputs,
            started_at_ms: entry.started_at_ms,
            ended_at_ms: entry.ended_at_ms,
        })
    }

    /// Keeps `bytes` as the newest preview of a prompt (from this ComfyUI's socket, or
    /// uploaded by a remote worker) and returns the URL browsers fetch it from.
    pub fn put_preview(&self, prompt_id: &str, mime: String, bytes: ImageBytes) -> String {
        let mut previews = self.previews.lock().unwrap_or_else(|p| p.into_inner());
        let seq = previews.get(prompt_id).map(|p| p.2 + 1).unwrap_or(1);
        previews.insert(prompt_id.to_string(), (mime, bytes, seq));
        comfy_preview_url(prompt_id, seq)
    }

    /// The newest preview image of a prompt.
    pub fn preview(&self, prompt_id: &str) -> Option<(String, ImageBytes)> {
        self.previews
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(prompt_id)
            .map(|(mime, bytes, _)| (mime.clone(), bytes.clone()))
    }
}

fn problem_view(p: NodeProblem) -> WorkflowProblem {
    WorkflowProblem {
        node_id: p.node_id,
        class_type: p.class_type,
        title: Some(p.title).filter(|t| !t.is_empty()),
        input: p.input,
        message: p.message,
        preset_hint: p.preset_hint,
    }
}

/// Files runs reported, newest kept: `(kind, subfolder, filename)` → prompt id.
#[derive(Debug, Default)]
struct RunFiles {
    by_file: HashMap<(String, String, String), String>,
    order: VecDeque<(String, String, String)>,
}

/// Files remembered (older ones are checked against the gallery and generations only).
const RUN_FILES_KEPT: usize = 20_000;

impl RunFiles {
    fn insert(&mut self, (kind, sub, name): (String, String, String), prompt_id: String) {
        let key = (kind, sub.trim_matches('/').to_string(), name);
        if self.by_file.insert(key.clone(), prompt_id).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > RUN_FILES_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.by_file.remove(&old);
            }
        }
    }
}

/// What the overall progress of one prompt is computed from.
#[derive(Debug, Default)]
struct NodeCounts {
    /// Nodes in the submitted prompt (0 for a prompt queued elsewhere).
    total: usize,
    cached: HashSet<String>,
}

/// Overall progress from one `progress_state`: finished and cached nodes count whole, running
/// ones by their own step fraction. The total is the submitted prompt's node count, or what
/// ComfyUI has named so far for prompts queued elsewhere.
fn overall_progress(
    counts: &NodeCounts,
    nodes: &[crate::comfy::protocol::NodeProgress],
) -> RunEventKind {
    let mut done = 0usize;
    let mut partial = 0.0f64;
    let mut seen: HashSet<&str> = HashSet::new();
    for node in nodes {
        let Some(id) = node.node_id.as_deref() else {
            continue;
        };
        if !seen.insert(id) || counts.cached.contains(id) {
            continue;
        }
        match node.state.as_str() {
            "finished" => done += 1,
            "running" if node.max > 0.0 => partial += (node.value / node.max).clamp(0.0, 1.0),
            _ => {}
        }
    }
    done += counts.cached.len();
    let total = counts.total.max(seen.len() + counts.cached.len()).max(1);
    let done = done.min(total);
    let fraction = ((done as f64 + partial) / total as f64).clamp(0.0, 1.0);
    RunEventKind::Nodes {
        done,
        total,
        fraction,
    }
}

/// A random UUID (version 4 layout), as ComfyUI's own frontend uses for prompt ids.
pub fn new_prompt_id() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_ids_look_like_uuids() {
        let id = new_prompt_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, new_prompt_id());
    }

    fn node(id: &str, state: &str, value: f64, max: f64) -> crate::comfy::protocol::NodeProgress {
        serde_json::from_value(serde_json::json!({
            "node_id": id, "state": state, "value": value, "max": max
        }))
        .unwrap()
    }

    #[test]
    fn overall_progress_counts_finished_cached_and_running_steps() {
        let counts = NodeCounts {
            total: 4,
            cached: ["1".to_string()].into_iter().collect(),
        };
        let got = overall_progress(
            &counts,
            &[
                node("2", "finished", 1.0, 1.0),
                node("3", "running", 5.0, 20.0),
            ],
        );
        // 1 cached + 1 finished + a quarter of node 3, over 4.
        assert_eq!(
            got,
            RunEventKind::Nodes {
                done: 2,
                total: 4,
                fraction: 0.5625
            }
        );
    }

    #[test]
    fn overall_progress_of_a_foreign_prompt_uses_the_nodes_seen() {
        let got = overall_progress(
            &NodeCounts::default(),
            &[
                node("7", "finished", 1.0, 1.0),
                node("8", "pending", 0.0, 1.0),
            ],
        );
        assert_eq!(
            got,
            RunEventKind::Nodes {
                done: 1,
                total: 2,
                fraction: 0.5
            }
        );
        // A nonsense report never goes past 1.
        let got = overall_progress(&NodeCounts::default(), &[node("9", "running", 9.0, 3.0)]);
        assert_eq!(
            got,
            RunEventKind::Nodes {
                done: 0,
                total: 1,
                fraction: 1.0
            }
        );
    }
}
