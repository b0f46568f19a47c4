//! `comfydeck worker`: claims jobs from a deck over HTTP (never from Redis), runs each on its
//! own ComfyUI through the same bridge the deck uses, forwards the run's events, uploads the
//! outputs and completes or fails the job — every call carrying the claim's fence. While a job
//! runs, a long-polled heartbeat renews the lease and brings a cancel within moments.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

use super::JobError;
use crate::bridge::{Bridge, BridgeError};
use crate::comfy::ComfyClient;
use crate::events::EventBus;
use crate::model::*;
use crate::secret::Secret;
use crate::store::Store;

/// The worker protocol's paths on the deck.
pub const CLAIM_PATH: &str = "/api/worker/claim";
pub const HEARTBEAT_PATH: &str = "/api/worker/heartbeat";
pub const EVENTS_PATH: &str = "/api/worker/events";
pub const OUTPUT_PATH: &str = "/api/worker/output";
pub const PREVIEW_PATH: &str = "/api/worker/preview";
pub const COMPLETE_PATH: &str = "/api/worker/complete";
pub const FAIL_PATH: &str = "/api/worker/fail";

/// How long one claim request waits on the deck for a job.
const CLAIM_WAIT_MS: u64 = 20_000;
/// How long one heartbeat waits for a cancel (so the lease is renewed about this often).
const HEARTBEAT_WAIT_MS: u64 = 10_000;
/// Tries per output upload.
const UPLOAD_TRIES: u32 = 4;
/// The fewest milliseconds between two previews sent to the deck (ComfyUI sends one per step).
const PREVIEW_EVERY_MS: u64 = 500;

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The deck's base URL, without a trailing slash.
    pub coordinator_url: String,
    pub token: Secret,
    pub name: String,
    /// The ComfyUI this worker runs jobs on.
    pub comfyui_url: String,
    /// Where the worker keeps its own small database.
    pub workspace: PathBuf,
    pub install_missing: bool,
    /// Download tokens for `install_missing` (each sent only to its own hosts).
    pub credentials: crate::download::fetch::Credentials,
    /// Run ComfyUI itself (`--comfyui-dir`), with the workspace's folders, restarted when it
    /// exits and stopped with the worker; `comfyui_url` is then where it listens.
    pub supervise: Option<crate::comfy::supervisor::SupervisorConfig>,
}

/// The deck, as the worker talks to it.
#[derive(Clone)]
struct Coordinator {
    http: reqwest::Client,
    base: String,
    token: Secret,
}

/// How a call to the deck went wrong.
enum CallError {
    /// The claim is no longer ours (409): stop working on the job.
    Fenced,
    /// The token was refused (401): nothing this worker does will work.
    Unauthorized(String),
    /// Anything else: try again later.
    Other(String),
}

impl Coordinator {
    async fn post<B: serde::Serialize>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<Option<reqwest::Response>, CallError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.token.expose())
            .timeout(timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| CallError::Other(format!("{path}: {e}")))?;
        Self::check(path, response).await
    }

    async fn check(
        path: &str,
        response: reqwest::Response,
    ) -> Result<Option<reqwest::Response>, CallError> {
        match response.status() {
            StatusCode::NO_CONTENT => Ok(None),
            s if s.is_success() => Ok(Some(response)),
            StatusCode::CONFLICT => Err(CallError::Fenced),
            StatusCode::UNAUTHORIZED => Err(CallError::Unauthorized(
                response.text().await.unwrap_or_default(),
            )),
            s => Err(CallError::Other(format!(
                "{path} answered {s}: {}",
                response.text().await.unwrap_or_default()
            ))),
        }
    }

    async fn upload(&self, fence: JobFence, name: &str, bytes: Vec<u8>) -> Result<(), CallError> {
        let query = format!(
            "job_id={}&fence={}&name={}",
            fence.job_id,
            fence.fence,
            crate::model::encode_component(name)
        );
        self.put(OUTPUT_PATH, &query, None, bytes, Duration::from_secs(300))
            .await
    }

    async fn preview(
        &self,
        fence: JobFence,
        node: Option<&str>,
        mime: &str,
        bytes: Vec<u8>,
    ) -> Result<(), CallError> {
        let mut query = format!("job_id={}&fence={}", fence.job_id, fence.fence);
        if let Some(node) = node {
            query.push_str(&format!("&node={}", crate::model::encode_component(node)));
        }
        self.put(
            PREVIEW_PATH,
            &query,
            Some(mime),
            bytes,
            Duration::from_secs(10),
        )
        .await
    }

    async fn put(
        &self,
        path: &str,
        query: &str,
        content_type: Option<&str>,
        bytes: Vec<u8>,
        timeout: Duration,
    ) -> Result<(), CallError> {
        let mut request = self
            .http
            .put(format!("{}{path}?{query}", self.base))
            .bearer_auth(self.token.expose())
            .timeout(timeout);
        if let Some(content_type) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        let response = request
            .body(bytes)
            .send()
            .await
            .map_err(|e| CallError::Other(format!("{path}: {e}")))?;
        Self::check(path, response).await.map(|_| ())
    }
}

/// Runs until `stop` is cancelled or the deck refuses the token.
pub async fn run(config: WorkerConfig, stop: CancellationToken) -> Result<(), JobError> {
    std::fs::create_dir_all(&config.workspace)
        .map_err(|e| JobError::Invalid(format!("workspace {}: {e}", config.workspace.display())))?;
    let store = Store::open(&config.workspace.join("comfydeck-worker.sqlite3"))
        .await
        .map_err(|e| JobError::Corrupt(e.to_string()))?;
    let events = EventBus::new();
    // Before ComfyUI starts, so a bad workspace stops the worker with nothing to clean up.
    let installer = match config.install_missing {
        true => Some(Arc::new(
            super::install::Installer::start(
                &config.workspace,
                store.clone(),
                events.clone(),
                config.credentials.clone(),
            )
            .map_err(JobError::Invalid)?,
        )),
        false => None,
    };
    let supervisor = match &config.supervise {
        Some(supervise) => {
            // The worker's folder is its ComfyUI's volume: models, input, output, the log.
            let layout = crate::workspace::WorkspaceLayout::new(&config.workspace);
            crate::workspace::create_tree(&layout)
                .and_then(|()| crate::workspace::write_extra_model_paths(&layout).map(|_| ()))
                .map_err(|e| JobError::Invalid(e.to_string()))?;
            tracing::info!(dir = %supervise.comfyui_dir.display(), port = supervise.port, "starting ComfyUI");
            Some(crate::comfy::supervisor::Supervisor::start(
                supervise.clone(),
            ))
        }
        None => None,
    };
    let comfy = ComfyClient::new(&config.comfyui_url);
    // What it can install does not change while it runs: read the catalog once.
    let installable = installer.as_ref().map(|i| i.installable());
    let bridge = Bridge::new(
        comfy.clone(),
        format!("comfydeck-worker-{}", config.name),
        events.clone(),
        store,
    );
    bridge.start();
    let coordinator = Coordinator {
        http: reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| JobError::Coordinator(e.to_string()))?,
        base: config.coordinator_url.trim_end_matches('/').to_string(),
        token: config.token.clone(),
    };
    tracing::info!(worker = %config.name, deck = %coordinator.base, comfyui = %config.comfyui_url, "worker started");
    let mut backoff = Duration::from_millis(500);
    loop {
        if stop.is_cancelled() {
            break;
        }
        // A job claimed while ComfyUI is away would spend its deliveries for nothing.
        if comfy.system_stats().await.is_err() {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(super::local::COMFY_DOWN_RETRY) => continue,
            }
        }
        let hello = hello(&config, &comfy, installable.clone()).await;
        let request = ClaimRequest {
            worker: hello,
            wait_ms: CLAIM_WAIT_MS,
        };
        let claimed = tokio::select! {
            _ = stop.cancelled() => break,
            claimed = coordinator.post(
                CLAIM_PATH,
                &request,
                Duration::from_millis(CLAIM_WAIT_MS + 15_000),
            ) => claimed,
        };
        let job = match claimed {
            Ok(Some(response)) => match response.json::<ClaimedJob>().await {
                Ok(job) => job,
                Err(e) => {
                    tracing::warn!(error = %e, "the deck's claim answer is unreadable");
                    continue;
                }
            },
            Ok(None) => continue,
            Err(CallError::Unauthorized(message)) => {
                bridge.stop();
                if let Some(installer) = &installer {
                    installer.shutdown().await;
                }
                if let Some(supervisor) = &supervisor {
                    supervisor.shutdown().await;
                }
                return Err(JobError::Coordinator(format!(
                    "the deck refused this worker's token: {message}"
                )));
            }
            Err(CallError::Fenced) => continue,
            Err(CallError::Other(message)) => {
                tracing::warn!(error = %message, "cannot reach the deck; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(15));
                continue;
            }
        };
        backoff = Duration::from_millis(500);
        tracing::info!(job = job.job_id, attempt = job.attempt, workflow = %job.workflow_name, "job claimed");
        run_job(
            &coordinator,
            &bridge,
            &events,
            installer.as_deref(),
            job,
            &stop,
        )
        .await;
    }
    bridge.stop();
    if let Some(installer) = &installer {
        installer.shutdown().await;
    }
    if let Some(supervisor) = supervisor {
        supervisor.shutdown().await;
    }
    Ok(())
}

/// What the worker tells the deck about itself: its GPU and the model files its ComfyUI sees.
async fn hello(
    config: &WorkerConfig,
    comfy: &ComfyClient,
    installable: Option<Vec<String>>,
) -> WorkerHello {
    let (gpu, vram_mb) = gpu_of(comfy).await;
    WorkerHello {
        name: config.name.clone(),
        gpu,
        vram_mb,
        models: models_of(comfy).await,
        install_missing: config.install_missing,
        installable,
    }
}

/// The model files the ComfyUI sees now (none when it does not say).
async fn models_of(comfy: &ComfyClient) -> Vec<String> {
    match comfy.folder_paths().await {
        Ok(folders) => tokio::task::spawn_blocking(move || model_files(&folders))
            .await
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// The first device ComfyUI reports, and its VRAM in MiB.
pub(crate) async fn gpu_of(comfy: &ComfyClient) -> (Option<String>, Option<u64>) {
    match comfy.system_stats().await {
        Ok(stats) => stats
            .devices
            .first()
            .map(|d| {
                (
                    Some(d.name.clone()),
                    d.vram_total.map(|v| v / (1024 * 1024)),
                )
            })
            .unwrap_or((None, None)),
        Err(_) => (None, None),
    }
}

/// Every file in ComfyUI's model folders, as `folder/relative/path`.
fn model_files(folders: &std::collections::BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut files = BTreeSet::new();
    for (folder, paths) in folders {
        for path in paths {
            for entry in walkdir::WalkDir::new(path)
                .max_depth(4)
                .follow_links(true)
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file())
            {
                if let Ok(rel) = entry.path().strip_prefix(path) {
                    let rel = rel.to_string_lossy().replace('\\', "/");
                    if !rel.starts_with('.') {
                        files.insert(format!("{folder}/{rel}"));
                    }
                }
            }
        }
    }
    files.into_iter().collect()
}

/// How one run ended, as the deck is told.
pub(crate) enum Ending {
    Done(Vec<RunOutput>),
    Failed {
        reason: String,
        transient: bool,
    },
    /// The claim was taken over (or the worker is stopping): say nothing more about it.
    Abandoned,
}

async fn run_job(
    coordinator: &Coordinator,
    bridge: &Arc<Bridge>,
    events: &EventBus,
    installer: Option<&super::install::Installer>,
    job: ClaimedJob,
    stop: &CancellationToken,
) {
    let fence = JobFence {
        job_id: job.job_id,
        fence: job.fence,
    };
    // Ends the heartbeat and the event forwarding with the run.
    let run_over = CancellationToken::new();
    let cancelled = CancellationToken::new();
    let lost = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat_loop(
        coordinator.clone(),
        fence,
        run_over.clone(),
        cancelled.clone(),
        lost.clone(),
    ));
    let forward = tokio::spawn(forward_events(
        coordinator.clone(),
        Arc::clone(bridge),
        events.subscribe(),
        job.prompt_id.clone(),
        fence,
        run_over.clone(),
    ));
    let run = async {
        if let Some(installer) = installer {
            if let Err(ending) = install_missing(installer, bridge, events, &job, &cancelled).await
            {
                return ending;
            }
        }
        execute(bridge, events, &job, &cancelled).await
    };
    let ending = tokio::select! {
        ending = run => ending,
        _ = lost.cancelled() => Ending::Abandoned,
        _ = stop.cancelled() => Ending::Abandoned,
    };
    let ending = match ending {
        Ending::Abandoned => {
            // Another worker has (or will have) the job: stop ComfyUI's run of it here.
            let _ = bridge.interrupt(&job.prompt_id).await;
            let _ = bridge.cancel_pending(&job.prompt_id).await;
            Ending::Abandoned
        }
        other => other,
    };
    run_over.cancel();
    let _ = forward.await;
    let _ = heartbeat.await;
    match ending {
        Ending::Done(outputs) => {
            for output in outputs.iter().filter(|o| o.kind == "output") {
                if let Err(reason) = upload_output(coordinator, bridge, fence, output).await {
                    report_failure(coordinator, fence, reason, true).await;
                    return;
                }
            }
            match coordinator
                .post(COMPLETE_PATH, &fence, Duration::from_secs(30))
                .await
            {
                Ok(_) => tracing::info!(job = job.job_id, "job done"),
                Err(CallError::Fenced) => {
                    tracing::warn!(job = job.job_id, "job was taken over before it completed")
                }
                Err(CallError::Unauthorized(m)) | Err(CallError::Other(m)) => {
                    tracing::warn!(job = job.job_id, error = %m, "completion not delivered; the lease will hand the job on")
                }
            }
        }
        Ending::Failed { reason, transient } => {
            report_failure(coordinator, fence, reason, transient).await
        }
        Ending::Abandoned => tracing::warn!(job = job.job_id, "job abandoned"),
    }
}

async fn report_failure(
    coordinator: &Coordinator,
    fence: JobFence,
    reason: String,
    transient: bool,
) {
    tracing::warn!(job = fence.job_id, %reason, transient, "job failed");
    let failure = JobFailure {
        job_id: fence.job_id,
        fence: fence.fence,
        reason,
        transient,
    };
    if let Err(CallError::Other(m)) = coordinator
        .post(FAIL_PATH, &failure, Duration::from_secs(30))
        .await
    {
        tracing::warn!(job = fence.job_id, error = %m, "failure not delivered; the lease will hand the job on");
    }
}

async fn upload_output(
    coordinator: &Coordinator,
    bridge: &Bridge,
    fence: JobFence,
    output: &RunOutput,
) -> Result<(), String> {
    let (_, bytes) = bridge
        .view(&output.filename, &output.subfolder, &output.kind)
        .await
        .map_err(|e| format!("reading output {} from ComfyUI: {e}", output.filename))?;
    let mut last = String::new();
    for attempt in 0..UPLOAD_TRIES {
        match coordinator
            .upload(fence, &output.filename, bytes.clone())
            .await
        {
            Ok(()) => return Ok(()),
            Err(CallError::Fenced) => return Err("the claim ended during the upload".into()),
            Err(CallError::Unauthorized(m)) | Err(CallError::Other(m)) => last = m,
        }
        tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
    }
    Err(format!("uploading {} failed: {last}", output.filename))
}

/// Installs the job's model files this worker's ComfyUI lacks (`--install-missing`), telling
/// the owner how it goes; `Err` is how the job ends instead of running.
async fn install_missing(
    installer: &super::install::Installer,
    bridge: &Bridge,
    events: &EventBus,
    job: &ClaimedJob,
    cancelled: &CancellationToken,
) -> Result<(), Ending> {
    let lacking = |have: &[String]| -> Vec<String> {
        job.required_models
            .iter()
            .filter(|m| !have.contains(m))
            .cloned()
            .collect()
    };
    let missing = lacking(&models_of(bridge.client()).await);
    if missing.is_empty() {
        return Ok(());
    }
    tracing::info!(job = job.job_id, files = ?missing, "installing missing model files");
    let report = |text: String| {
        events.publish(Event::Run(RunEvent {
            prompt_id: job.prompt_id.clone(),
            event: RunEventKind::ProgressText {
                node: String::new(),
                text,
            },
        }))
    };
    if let Err(reason) = installer.install(&missing, report, cancelled).await {
        let transient = !cancelled.is_cancelled();
        return Err(Ending::Failed { reason, transient });
    }
    // ComfyUI lists models per loader in `/object_info`: read it again.
    bridge.forget_object_info();
    let unseen = lacking(&models_of(bridge.client()).await);
    if !unseen.is_empty() {
        return Err(Ending::Failed {
            reason: format!(
                "installed {} into the worker's models folder, but its ComfyUI does not see \
                 it there: start ComfyUI with the worker's extra_model_paths.yaml, or let the \
                 worker run it (--comfyui-dir)",
                unseen.join(", ")
            ),
            transient: false,
        });
    }
    Ok(())
}

/// Renews the lease until the run is over; a cancel or a lost claim is signalled.
async fn heartbeat_loop(
    coordinator: Coordinator,
    fence: JobFence,
    run_over: CancellationToken,
    cancelled: CancellationToken,
    lost: CancellationToken,
) {
    loop {
        let request = HeartbeatRequest {
            job_id: fence.job_id,
            fence: fence.fence,
            wait_ms: if cancelled.is_cancelled() {
                0
            } else {
                HEARTBEAT_WAIT_MS
            },
        };
        let answer = tokio::select! {
            _ = run_over.cancelled() => return,
            answer = coordinator.post(HEARTBEAT_PATH, &request, Duration::from_millis(HEARTBEAT_WAIT_MS + 15_000)) => answer,
        };
        match answer {
            Ok(Some(response)) => {
                if let Ok(answer) = response.json::<HeartbeatAnswer>().await {
                    if answer.cancel && !cancelled.is_cancelled() {
                        cancelled.cancel();
                    }
                }
                if cancelled.is_cancelled() {
                    // Keep the lease alive while the interrupt lands, without spinning.
                    tokio::select! {
                        _ = run_over.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
            }
            Ok(None) => {}
            Err(CallError::Fenced) => {
                lost.cancel();
                return;
            }
            Err(CallError::Unauthorized(m)) | Err(CallError::Other(m)) => {
                tracing::warn!(job = fence.job_id, error = %m, "heartbeat failed; retrying");
                tokio::select! {
                    _ = run_over.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }
}

/// Passes the run's events on to the deck in small batches, and the newest preview image at
/// most every [`PREVIEW_EVERY_MS`]. Preview and output events name files on this worker's
/// ComfyUI, which the deck's browsers cannot reach: a preview goes up as its bytes (the deck
/// announces it with its own URL), outputs by upload at the end.
async fn forward_events(
    coordinator: Coordinator,
    bridge: Arc<Bridge>,
    mut rx: tokio::sync::broadcast::Receiver<Event>,
    prompt_id: String,
    fence: JobFence,
    run_over: CancellationToken,
) {
    let mut batch: Vec<RunEventKind> = Vec::new();
    // The node of a preview not sent yet (its bytes are the bridge's newest).
    let mut preview_due: Option<Option<String>> = None;
    let mut preview_sent = tokio::time::Instant::now() - Duration::from_secs(1);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let take = |event: Event,
                batch: &mut Vec<RunEventKind>,
                preview_due: &mut Option<Option<String>>| match event {
        Event::Run(run) if run.prompt_id == prompt_id => match run.event {
            RunEventKind::Preview { node, .. } => *preview_due = Some(node),
            RunEventKind::Output { .. } => {}
            event => batch.push(event),
        },
        _ => {}
    };
    loop {
        let over = tokio::select! {
            _ = run_over.cancelled() => true,
            event = rx.recv() => {
                match event {
                    Ok(event) => take(event, &mut batch, &mut preview_due),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                }
                continue;
            }
            _ = tick.tick() => false,
        };
        // A short run can end between two ticks: what it said last goes too.
        if over {
            while let Ok(event) = rx.try_recv() {
                take(event, &mut batch, &mut preview_due);
            }
        }
        if !batch.is_empty() {
            let events = JobEvents {
                job_id: fence.job_id,
                fence: fence.fence,
                events: std::mem::take(&mut batch),
            };
            if let Err(CallError::Fenced) = coordinator
                .post(EVENTS_PATH, &events, Duration::from_secs(10))
                .await
            {
                return;
            }
        }
        let due = preview_due.is_some()
            && (over || preview_sent.elapsed() >= Duration::from_millis(PREVIEW_EVERY_MS));
        if due {
            let node = preview_due.take().flatten();
            if let Some((mime, bytes)) = bridge.preview(&prompt_id) {
                preview_sent = tokio::time::Instant::now();
                match coordinator
                    .preview(fence, node.as_deref(), &mime, bytes.to_vec())
                    .await
                {
                    Err(CallError::Fenced) => return,
                    // A lost preview is replaced by the next one.
                    Err(CallError::Other(m)) | Err(CallError::Unauthorized(m)) => {
                        tracing::debug!(error = %m, "preview not delivered")
                    }
                    Ok(()) => {}
                }
            }
        }
        if over {
            return;
        }
    }
}

/// Converts, submits and follows one run on a ComfyUI (the worker's, or the embedded deck's
/// own).
pub(crate) async fn execute(
    bridge: &Arc<Bridge>,
    events: &EventBus,
    job: &ClaimedJob,
    cancelled: &CancellationToken,
) -> Ending {
    let transient = |e: &dyn std::fmt::Display| Ending::Failed {
        reason: format!("ComfyUI on the worker is not reachable: {e}"),
        transient: true,
    };
    let info = match bridge.object_info().await {
        Ok(info) => info,
        Err(e) => return transient(&e),
    };
    let mut prompt = match crate::comfy::convert::to_api(&job.workflow, &info) {
        Ok(prompt) => prompt,
        Err(e) => {
            return Ending::Failed {
                reason: format!("The workflow cannot be converted: {e}"),
                transient: false,
            }
        }
    };
    if let Err(e) = crate::workflows::apply_inputs(&mut prompt, &job.inputs, Some(&info)) {
        return Ending::Failed {
            reason: e.to_string(),
            transient: false,
        };
    }
    let owner = Caller {
        user_id: job.user_id,
        username: String::new(),
        role: Role::User,
        theme: None,
    };
    // Subscribed before submitting, so the outcome cannot slip by.
    let mut rx = events.subscribe();
    // A delivery after a restart may find its prompt still known to ComfyUI (the prompt id is
    // the job's): finished, or still queued or running. Only a lost one is submitted again.
    let known = if job.attempt > 1 {
        match bridge.history(&job.prompt_id).await {
            Ok(record) if !matches!(record.outcome, RunOutcome::Unknown { .. }) => {
                return ending_of(record, cancelled)
            }
            _ => matches!(bridge.queue().await, Ok(queue) if queue
                .running
                .iter()
                .chain(&queue.pending)
                .any(|e| e.prompt_id == job.prompt_id)),
        }
    } else {
        false
    };
    if !known {
        let catalog = crate::catalog::Catalog::default();
        let submitted = bridge
            .submit(prompt, &info, &catalog, job.prompt_id.clone(), &owner)
            .await;
        match submitted {
            Ok(s) if s.prompt_id.is_some() => {}
            Ok(s) => {
                return Ending::Failed {
                    reason: s.message,
                    transient: false,
                }
            }
            Err(e) => return transient(&e),
        }
    }
    let mut check = tokio::time::interval(Duration::from_secs(2));
    check.tick().await;
    let mut interrupt_sent = false;
    loop {
        if cancelled.is_cancelled() && !interrupt_sent {
            interrupt_sent = true;
            let _ = bridge.cancel_pending(&job.prompt_id).await;
            let _ = bridge.interrupt(&job.prompt_id).await;
        }
        tokio::select! {
            event = rx.recv() => match event {
                Ok(Event::Run(run)) if run.prompt_id == job.prompt_id => match run.event {
                    RunEventKind::Succeeded | RunEventKind::Failed { .. } | RunEventKind::Interrupted { .. } => {
                        return settle_from_history(bridge, &job.prompt_id, cancelled).await;
                    }
                    _ => {}
                },
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return transient(&"the event bus closed"),
            },
            _ = cancelled.cancelled(), if !interrupt_sent => {}
            // Events can be missed when ComfyUI restarts: its history and queue say the rest.
            _ = check.tick() => {
                if let Some(ending) = check_lost(bridge, &job.prompt_id, cancelled).await {
                    return ending;
                }
            }
        }
    }
}

/// `Some` when ComfyUI has finished the prompt or lost it (it restarted).
async fn check_lost(
    bridge: &Bridge,
    prompt_id: &str,
    cancelled: &CancellationToken,
) -> Option<Ending> {
    match bridge.history(prompt_id).await {
        Ok(record) if !matches!(record.outcome, RunOutcome::Unknown { .. }) => {
            Some(ending_of(record, cancelled))
        }
        Ok(_) => None,
        Err(BridgeError::NotFound(_)) => match bridge.queue().await {
            Ok(queue)
                if queue
                    .running
                    .iter()
                    .chain(&queue.pending)
                    .any(|e| e.prompt_id == prompt_id) =>
            {
                None
            }
            Ok(_) => Some(Ending::Failed {
                reason: "ComfyUI on the worker lost the run (it restarted or crashed)".into(),
                transient: true,
            }),
            Err(_) => None,
        },
        // ComfyUI is down right now; a later check decides.
        Err(_) => None,
    }
}

async fn settle_from_history(
    bridge: &Bridge,
    prompt_id: &str,
    cancelled: &CancellationToken,
) -> Ending {
    for _ in 0..20 {
        match bridge.history(prompt_id).await {
            Ok(record) if !matches!(record.outcome, RunOutcome::Unknown { .. }) => {
                return ending_of(record, cancelled)
            }
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    Ending::Failed {
        reason: "ComfyUI on the worker reported the run's end but keeps no record of it".into(),
        transient: true,
    }
}

fn ending_of(record: RunRecord, cancelled: &CancellationToken) -> Ending {
    match record.outcome {
        RunOutcome::Succeeded => Ending::Done(record.outputs),
        RunOutcome::Failed {
            node,
            node_type,
            message,
        } => Ending::Failed {
            reason: run_failure_text(node_type.as_deref(), node.as_deref(), &message),
            transient: false,
        },
        RunOutcome::Interrupted { .. } => Ending::Failed {
            reason: if cancelled.is_cancelled() {
                "cancelled".to_string()
            } else {
                "the run was interrupted on the worker's ComfyUI".to_string()
            },
            transient: false,
        },
        RunOutcome::Unknown { status } => Ending::Failed {
            reason: format!("ComfyUI reported an unknown status {status:?}"),
            transient: true,
        },
    }
}
