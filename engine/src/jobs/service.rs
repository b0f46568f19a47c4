//! `JobService`: what people and workers do with the queue. People submit, list, cancel and
//! (administrators) reorder; workers, each with its own token, claim, heartbeat, report
//! events, upload outputs and complete or fail — every worker call fenced by its claim.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::rules::{self, Settlement};
use super::{JobError, JobPayload, JobRecord, NewJob, QueueStore, WorkerRow};
use crate::clock::now_ms;
use crate::events::EventBus;
use crate::gallery::GalleryService;
use crate::model::*;
use crate::store::Store;
use crate::workflows::WorkflowService;

/// The queue's limits (flags of `serve`).
#[derive(Clone, Debug)]
pub struct JobLimits {
    /// `--max-pending-per-user`.
    pub max_pending_per_user: u64,
    /// `--max-running-per-user` (`None`: no limit).
    pub max_running_per_user: Option<u64>,
    /// How long a claim lasts without a heartbeat.
    pub lease: Duration,
    /// The wait before the second delivery after a transient failure (doubling after each).
    pub retry_delay: Duration,
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits {
            max_pending_per_user: 100,
            max_running_per_user: None,
            lease: Duration::from_secs(60),
            retry_delay: Duration::from_secs(5),
        }
    }
}

/// `POST /api/jobs/submit`: a library workflow by id, or a workflow posted whole.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct SubmitJob {
    #[serde(default)]
    pub workflow_id: Option<String>,
    #[serde(default)]
    pub workflow: Option<serde_json::Value>,
    #[serde(default)]
    pub inputs: Vec<InputValue>,
    #[serde(default)]
    pub priority: Option<i64>,
    /// A name for a posted workflow (shown on the job).
    #[serde(default)]
    pub name: Option<String>,
}

/// A job about to enter the queue, its workflow already found.
struct Enqueue {
    workflow_id: Option<String>,
    workflow: serde_json::Value,
    summary: WorkflowSummary,
    inputs: Vec<InputValue>,
    priority: i64,
    prompt_id: String,
}

/// Jobs per page of `GET /api/jobs`.
pub const PAGE_SIZE: usize = 50;
/// The longest a claim waits for a job before answering "none".
pub const MAX_CLAIM_WAIT: Duration = Duration::from_secs(25);
/// How often a waiting claim marks its worker as seen.
const TOUCH_INTERVAL: Duration = Duration::from_secs(5);
/// How often expired leases are looked for (claims look too).
const REAP_INTERVAL: Duration = Duration::from_secs(2);
/// What a worker's preview may be (what ComfyUI's preview frames are).
const PREVIEW_TYPES: [&str; 3] = ["image/jpeg", "image/png", "image/webp"];
/// The largest preview a worker may upload.
pub const MAX_PREVIEW_BYTES: usize = 8 << 20;
/// The longest a heartbeat waits for a cancel before answering.
pub const MAX_HEARTBEAT_WAIT: Duration = Duration::from_secs(10);

pub struct JobService {
    queue: QueueStore,
    store: Store,
    workflows: Arc<WorkflowService>,
    events: EventBus,
    limits: JobLimits,
    /// Uploaded outputs land in its folder, `jobs/<job id>/<file>`, and in the owner's gallery.
    gallery: Arc<GalleryService>,
    /// Keeps the previews remote workers upload, beside the deck's own ComfyUI's, so one
    /// route serves both.
    bridge: Arc<crate::bridge::Bridge>,
    /// Tells this deck's own messages apart on the shared Redis channel.
    deck_id: String,
    /// Wakes waiting claims when this deck queues a job (other decks' jobs are polled).
    submitted: Notify,
}

fn forbid_unless_admin(caller: &Caller, what: &str) -> Result<(), JobError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(JobError::Forbidden(format!(
            "only administrators may {what}"
        )))
    }
}

fn not_found(id: i64) -> JobError {
    JobError::NotFound(format!("no job {id}"))
}

/// A file name a worker may upload: one plain name inside the job's folder.
fn check_output_name(name: &str) -> Result<(), JobError> {
    let bad = name.is_empty()
        || name.len() > 255
        || name.starts_with('.')
        || name.contains(['/', '\\', '\0']);
    if bad {
        return Err(JobError::Invalid(format!(
            "output name {name:?} is not a plain file name"
        )));
    }
    Ok(())
}

/// What one deck tells the others on the shared Redis channel: a job or run event, or a
/// remote worker's preview (whose bytes each deck keeps, so any of them can serve it).
#[derive(serde::Serialize, serde::Deserialize)]
struct DeckMessage {
    origin: String,
    #[serde(default)]
    event: Option<Event>,
    #[serde(default)]
    preview: Option<SharedPreview>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SharedPreview {
    prompt_id: String,
    node: Option<String>,
    mime: String,
    /// Base64.
    data: String,
}

impl DeckMessage {
    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A worker's row as administrators see it: offline once its lease has passed unheard.
fn worker_view(w: WorkerRow, now: i64, lease: i64) -> WorkerView {
    WorkerView {
        state: if now - w.last_heartbeat_ms > lease {
            "offline"
        } else if w.current_job.is_some() {
            "busy"
        } else {
            "idle"
        }
        .to_string(),
        name: w.name,
        gpu: w.gpu,
        vram_mb: w.vram_mb,
        current_job: w.current_job,
        last_heartbeat_ms: w.last_heartbeat_ms,
        jobs_done: w.jobs_done,
        models: w.models,
        // The deck's own worker also says it installs (any file), but only checks at submit.
        installs_missing: w.install_missing && w.installable.is_some(),
    }
}

fn percentile(sorted: &[i64], pct: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let index = (sorted.len() * pct).div_ceil(100).saturating_sub(1);
    sorted.get(index.min(sorted.len() - 1)).copied()
}

impl JobService {
    pub fn new(
        queue: QueueStore,
        store: Store,
        workflows: Arc<WorkflowService>,
        events: EventBus,
        limits: JobLimits,
        gallery: Arc<GalleryService>,
        bridge: Arc<crate::bridge::Bridge>,
    ) -> JobService {
        JobService {
            queue,
            store,
            workflows,
            events,
            limits,
            gallery,
            bridge,
            deck_id: hex::encode(rand::random::<[u8; 8]>()),
            submitted: Notify::new(),
        }
    }

    pub fn queue(&self) -> &QueueStore {
        &self.queue
    }

    pub fn limits(&self) -> &JobLimits {
        &self.limits
    }

    fn lease_ms(&self) -> i64 {
        self.limits.lease.as_millis() as i64
    }

    // ---- People ----

    pub async fn submit(&self, caller: &Caller, job: SubmitJob) -> Result<JobSubmitted, JobError> {
        let priority = job.priority.unwrap_or(0);
        let (workflow_id, workflow, summary) = self
            .resolve(caller, job.workflow_id, job.workflow, job.name)
            .await?;
        self.enqueue(
            caller,
            Enqueue {
                workflow_id,
                workflow,
                summary,
                inputs: job.inputs,
                priority,
                prompt_id: crate::bridge::new_prompt_id(),
            },
        )
        .await
    }

    /// A run from Generate, Workflows or their API: checked first like ComfyUI would (a
    /// refusal comes back at once, per node, and nothing is queued), then queued under
    /// `prompt_id`, the id its live events and its generation row go by.
    pub async fn run(
        &self,
        caller: &Caller,
        workflow_id: Option<String>,
        workflow: Option<serde_json::Value>,
        inputs: Vec<InputValue>,
        prompt_id: String,
    ) -> Result<RunSubmission, JobError> {
        let (workflow_id, workflow, summary) =
            self.resolve(caller, workflow_id, workflow, None).await?;
        if let Some(refused) = self.workflows.check_run(&workflow, &inputs).await? {
            return Ok(refused);
        }
        let queued = self
            .enqueue(
                caller,
                Enqueue {
                    workflow_id,
                    workflow,
                    summary,
                    inputs,
                    priority: 0,
                    prompt_id,
                },
            )
            .await?;
        Ok(RunSubmission {
            prompt_id: Some(queued.prompt_id),
            problems: Vec::new(),
            message: match queued.position {
                1 => "Queued".to_string(),
                n => format!("Queued, {n} in line"),
            },
        })
    }

    /// The workflow a submission names: a library one by id (the caller's, or shared), or
    /// one posted whole.
    async fn resolve(
        &self,
        caller: &Caller,
        workflow_id: Option<String>,
        workflow: Option<serde_json::Value>,
        name: Option<String>,
    ) -> Result<(Option<String>, serde_json::Value, WorkflowSummary), JobError> {
        let resolved = match (workflow_id, workflow) {
            (Some(id), None) => {
                let detail = self.workflows.get(caller, &id).await?;
                (Some(id), detail.workflow, detail.summary)
            }
            (None, Some(workflow)) => {
                let name = name.unwrap_or_else(|| "Posted workflow".to_string());
                let summary = self.workflows.summarize_posted(&name, &workflow).await;
                (None, workflow, summary)
            }
            _ => {
                return Err(JobError::Invalid(
                    "give either workflow_id or workflow".to_string(),
                ))
            }
        };
        if resolved.2.format == WorkflowFileFormat::Unknown {
            return Err(JobError::Invalid(format!(
                "{} holds no workflow: {}",
                resolved.2.name,
                resolved.2.problems.join("; ")
            )));
        }
        Ok(resolved)
    }

    async fn enqueue(&self, caller: &Caller, job: Enqueue) -> Result<JobSubmitted, JobError> {
        if !super::PRIORITY_RANGE.contains(&job.priority) {
            return Err(JobError::Invalid(format!(
                "priority must be between {} and {}",
                super::PRIORITY_RANGE.start(),
                super::PRIORITY_RANGE.end()
            )));
        }
        let mut required_models: Vec<String> = job
            .summary
            .required_models
            .iter()
            .map(|m| format!("{}/{}", m.folder, m.file))
            .collect();
        required_models.sort();
        required_models.dedup();
        let new = NewJob {
            user_id: caller.user_id,
            username: caller.username.clone(),
            workflow_name: job.summary.name.clone(),
            workflow_id: job.workflow_id,
            payload: JobPayload {
                workflow: job.workflow,
                inputs: job.inputs,
            },
            required_models,
            priority: job.priority,
            prompt_id: job.prompt_id,
            created_ms: now_ms(),
        };
        // Events of the run are routed to its owner by the prompt id: owned before it runs.
        self.store
            .set_prompt_owner(&new.prompt_id, caller.user_id, new.created_ms)
            .await
            .map_err(|e| JobError::Corrupt(e.to_string()))?;
        let max = self.limits.max_pending_per_user;
        let Some(job_id) = self.queue.submit(&new, max).await? else {
            let _ = self.store.forget_prompt_owner(&new.prompt_id).await;
            return Err(JobError::TooMany(format!(
                "you already have {max} jobs waiting, the most one person may have \
                 (--max-pending-per-user); wait for some to run or cancel some"
            )));
        };
        self.submitted.notify_waiters();
        let view = self.view_of(job_id).await?;
        self.announce(Event::Job(view.clone()));
        Ok(JobSubmitted {
            job_id,
            position: view.position.unwrap_or(1),
            prompt_id: view.prompt_id,
        })
    }

    /// Cancels the job a prompt belongs to; `false` when no job has that prompt (it was
    /// queued in ComfyUI some other way). Another person's job is not found.
    pub async fn cancel_prompt(&self, caller: &Caller, prompt_id: &str) -> Result<bool, JobError> {
        match self.queue.id_of_prompt(prompt_id).await? {
            Some(id) => self.cancel(caller, id).await.map(|_| true),
            None => Ok(false),
        }
    }

    /// The state of the job a prompt belongs to (no caller check: for the deck's own
    /// bookkeeping).
    pub async fn state_of_prompt(&self, prompt_id: &str) -> Result<Option<JobState>, JobError> {
        match self.queue.id_of_prompt(prompt_id).await? {
            Some(id) => Ok(self.queue.get(id).await?.map(|r| r.view.state)),
            None => Ok(None),
        }
    }

    /// The job a prompt id belongs to, when the caller may see it.
    pub async fn by_prompt(
        &self,
        caller: &Caller,
        prompt_id: &str,
    ) -> Result<Option<JobView>, JobError> {
        match self.queue.id_of_prompt(prompt_id).await? {
            Some(id) => match self.get(caller, id).await {
                Ok(view) => Ok(Some(view)),
                Err(JobError::NotFound(_)) => Ok(None),
                Err(e) => Err(e),
            },
            None => Ok(None),
        }
    }

    /// The caller's jobs, newest first (administrators: everyone's, or one user's).
    pub async fn list(
        &self,
        caller: &Caller,
        state: Option<JobState>,
        user: Option<i64>,
        cursor: Option<i64>,
    ) -> Result<JobPage, JobError> {
        let user = if caller.is_admin() {
            user
        } else {
            Some(caller.user_id)
        };
        let records = self.queue.list(state, user, cursor, PAGE_SIZE).await?;
        let next_cursor = (records.len() == PAGE_SIZE)
            .then(|| records.last().map(|r| r.view.id))
            .flatten();
        let jobs = self.decorate(records).await?;
        Ok(JobPage { jobs, next_cursor })
    }

    /// One job; another person's is not found.
    pub async fn get(&self, caller: &Caller, id: i64) -> Result<JobView, JobError> {
        let record = self
            .queue
            .get(id)
            .await?
            .filter(|r| caller.may_access(r.view.user_id))
            .ok_or_else(|| not_found(id))?;
        Ok(self.decorate(vec![record]).await?.remove(0))
    }

    /// "Run again": the same workflow and values as a new job of the caller's (another
    /// person's job is not found).
    pub async fn rerun(&self, caller: &Caller, id: i64) -> Result<JobSubmitted, JobError> {
        let record = self
            .queue
            .get(id)
            .await?
            .filter(|r| caller.may_access(r.view.user_id))
            .ok_or_else(|| not_found(id))?;
        let name = record.view.workflow_name.clone();
        // A library workflow is read again (it may have been fixed since); a posted one is
        // run as it was.
        let (workflow_id, workflow) = match record.view.workflow_id {
            Some(id) => (Some(id), None),
            None => (None, Some(record.payload.workflow)),
        };
        let (workflow_id, workflow, summary) = self
            .resolve(caller, workflow_id, workflow, Some(name))
            .await?;
        self.enqueue(
            caller,
            Enqueue {
                workflow_id,
                workflow,
                summary,
                inputs: record.payload.inputs,
                priority: record.view.priority,
                prompt_id: crate::bridge::new_prompt_id(),
            },
        )
        .await
    }

    /// A pending job leaves the queue at once; a running one is stopped by its worker, which
    /// hears of it in its heartbeat's answer.
    pub async fn cancel(&self, caller: &Caller, id: i64) -> Result<JobView, JobError> {
        self.get(caller, id).await?;
        self.queue.cancel(id, now_ms()).await?;
        let view = self.view_of(id).await?;
        self.announce(Event::Job(view.clone()));
        Ok(view)
    }

    pub async fn set_priority(
        &self,
        caller: &Caller,
        id: i64,
        priority: i64,
    ) -> Result<JobView, JobError> {
        forbid_unless_admin(caller, "change a job's priority")?;
        let priority = priority.clamp(*super::PRIORITY_RANGE.start(), *super::PRIORITY_RANGE.end());
        if !self.queue.set_priority(id, priority).await? {
            return Err(not_found(id));
        }
        let view = self.view_of(id).await?;
        self.announce(Event::Job(view.clone()));
        Ok(view)
    }

    pub async fn status(&self, caller: &Caller) -> Result<QueueStatus, JobError> {
        let counts = self.queue.counts().await?;
        let waits = self.queue.waits_since(now_ms() - 3_600_000).await?;
        let online = self
            .workers_now()
            .await?
            .iter()
            .filter(|w| w.state != "offline")
            .count() as u64;
        let pending = counts.iter().map(|c| c.2).sum();
        let running = counts.iter().map(|c| c.3).sum();
        let per_user = counts
            .into_iter()
            .filter(|(user, ..)| caller.may_access(*user))
            .map(|(user_id, username, pending, running)| UserQueueCount {
                user_id,
                username,
                pending,
                running,
            })
            .collect();
        Ok(QueueStatus {
            backend: self.queue.backend_name().to_string(),
            pending,
            running,
            per_user,
            wait_p50_ms: percentile(&waits, 50),
            wait_p95_ms: percentile(&waits, 95),
            workers_online: online,
        })
    }

    pub async fn workers(&self, caller: &Caller) -> Result<Vec<WorkerView>, JobError> {
        forbid_unless_admin(caller, "see the workers")?;
        self.workers_now().await
    }

    async fn workers_now(&self) -> Result<Vec<WorkerView>, JobError> {
        let (now, lease) = (now_ms(), self.lease_ms());
        Ok(self
            .queue
            .workers()
            .await?
            .into_iter()
            .map(|w| worker_view(w, now, lease))
            .collect())
    }

    /// A new worker token; the secret is in the answer only.
    pub async fn create_token(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<NewWorkerToken, JobError> {
        forbid_unless_admin(caller, "create worker tokens")?;
        super::new_worker_token(&self.queue, name).await
    }

    pub async fn tokens(&self, caller: &Caller) -> Result<Vec<WorkerTokenInfo>, JobError> {
        forbid_unless_admin(caller, "list worker tokens")?;
        self.queue.tokens().await
    }

    pub async fn revoke_token(&self, caller: &Caller, name: &str) -> Result<(), JobError> {
        forbid_unless_admin(caller, "revoke worker tokens")?;
        if self.queue.revoke_token(name, now_ms()).await? {
            Ok(())
        } else {
            Err(JobError::NotFound(format!(
                "no live worker token named {name}"
            )))
        }
    }

    // ---- Workers ----

    /// The token's name, when it is live.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<String, JobError> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or(JobError::Unauthorized)?;
        self.queue
            .token_name(&super::token_hash(token))
            .await?
            .ok_or(JobError::Unauthorized)
    }

    /// The next job for this worker, waiting up to `wait` for one.
    pub async fn claim(
        &self,
        hello: &WorkerHello,
        wait: Duration,
    ) -> Result<Option<ClaimedJob>, JobError> {
        let deadline = tokio::time::Instant::now() + wait.min(MAX_CLAIM_WAIT);
        let mut touched: Option<tokio::time::Instant> = None;
        loop {
            let notified = self.submitted.notified();
            self.reap().await?;
            let now = now_ms();
            // Seen now and then while it waits: often enough to stay online, rarely enough
            // not to write on every look.
            if touched.is_none_or(|t| t.elapsed() >= TOUCH_INTERVAL.min(self.limits.lease / 3)) {
                self.touch(hello, None).await?;
                touched = Some(tokio::time::Instant::now());
            }
            let claimed = self
                .queue
                .claim(
                    hello,
                    now,
                    self.lease_ms(),
                    self.limits.max_running_per_user,
                )
                .await?;
            if let Some(record) = claimed {
                self.touch(hello, Some(record.view.id)).await?;
                self.publish(&record.view.id).await;
                return Ok(Some(ClaimedJob {
                    job_id: record.view.id,
                    fence: record.fence,
                    attempt: record.view.attempts,
                    prompt_id: record.view.prompt_id,
                    user_id: record.view.user_id,
                    workflow_name: record.view.workflow_name,
                    workflow: record.payload.workflow,
                    inputs: record.payload.inputs,
                    required_models: record.view.required_models,
                    lease_ms: self.lease_ms(),
                }));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            // Another deck's submit does not wake this one: look again at least every 500 ms.
            let _ = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(500)),
                notified,
            )
            .await;
        }
    }

    async fn touch(&self, hello: &WorkerHello, current_job: Option<i64>) -> Result<(), JobError> {
        self.queue
            .touch_worker(&WorkerRow {
                name: hello.name.clone(),
                gpu: hello.gpu.clone(),
                vram_mb: hello.vram_mb,
                models: hello.models.clone(),
                install_missing: hello.install_missing,
                installable: hello.installable.clone(),
                current_job,
                last_heartbeat_ms: now_ms(),
                jobs_done: 0,
            })
            .await
    }

    /// Renews the claim's lease; with `wait_ms`, answers early when the job is cancelled.
    pub async fn heartbeat(
        &self,
        worker: &str,
        request: &HeartbeatRequest,
    ) -> Result<HeartbeatAnswer, JobError> {
        let lease_until_ms = now_ms() + self.lease_ms();
        let mut cancel = self
            .queue
            .heartbeat(request.job_id, request.fence, lease_until_ms)
            .await?;
        self.mark_alive(worker, request.job_id).await?;
        let wait = Duration::from_millis(request.wait_ms).min(MAX_HEARTBEAT_WAIT);
        let deadline = tokio::time::Instant::now() + wait;
        while !cancel && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let record = self.fenced(request.job_id, request.fence).await?;
            cancel = record.view.cancel_requested;
        }
        Ok(HeartbeatAnswer {
            cancel,
            lease_until_ms,
        })
    }

    async fn mark_alive(&self, worker: &str, job_id: i64) -> Result<(), JobError> {
        let rows = self.queue.workers().await?;
        if let Some(mut row) = rows.into_iter().find(|w| w.name == worker) {
            row.current_job = Some(job_id);
            row.last_heartbeat_ms = now_ms();
            self.queue.touch_worker(&row).await?;
        }
        Ok(())
    }

    /// The job while `fence` is its claim.
    async fn fenced(&self, job_id: i64, fence: i64) -> Result<JobRecord, JobError> {
        match self.queue.get(job_id).await? {
            Some(r) if r.view.state == JobState::Running && r.fence == fence => Ok(r),
            _ => Err(JobError::Fenced(job_id)),
        }
    }

    /// Live events from the worker's run, passed on to the owner's browsers.
    pub async fn relay_events(&self, events: JobEvents) -> Result<(), JobError> {
        let record = self.fenced(events.job_id, events.fence).await?;
        for event in events.events {
            self.announce(Event::Run(RunEvent {
                prompt_id: record.view.prompt_id.clone(),
                event,
            }));
        }
        Ok(())
    }

    /// The newest preview of a running job's prompt, uploaded by its worker: kept for
    /// `GET /api/comfy/preview/{prompt_id}` (on every deck, with Redis) and announced to the
    /// owner like a preview of the deck's own ComfyUI.
    pub async fn relay_preview(
        &self,
        fence: JobFence,
        node: Option<String>,
        mime: &str,
        bytes: Vec<u8>,
    ) -> Result<(), JobError> {
        let mime = PREVIEW_TYPES
            .iter()
            .find(|t| mime.eq_ignore_ascii_case(t))
            .ok_or_else(|| {
                JobError::Invalid(format!(
                    "a preview is one of {}, not {mime:?}",
                    PREVIEW_TYPES.join(", ")
                ))
            })?;
        if bytes.is_empty() || bytes.len() > MAX_PREVIEW_BYTES {
            return Err(JobError::Invalid(format!(
                "a preview has 1 to {MAX_PREVIEW_BYTES} bytes, not {}",
                bytes.len()
            )));
        }
        let record = self.fenced(fence.job_id, fence.fence).await?;
        let prompt_id = record.view.prompt_id;
        if let QueueStore::Redis(redis) = &self.queue {
            use base64::Engine as _;
            let message = DeckMessage {
                origin: self.deck_id.clone(),
                event: None,
                preview: Some(SharedPreview {
                    prompt_id: prompt_id.clone(),
                    node: node.clone(),
                    mime: mime.to_string(),
                    data: base64::engine::general_purpose::STANDARD.encode(&bytes),
                }),
            };
            if let Err(e) = redis.publish_event(&message.to_json()).await {
                tracing::warn!(error = %e, "preview not shared with the other decks");
            }
        }
        let url = self
            .bridge
            .put_preview(&prompt_id, mime.to_string(), bytes.into());
        self.events.publish(Event::Run(RunEvent {
            prompt_id,
            event: RunEventKind::Preview { node, url },
        }));
        Ok(())
    }

    /// Stores one output file of a running job (temp file, then rename; the same name again
    /// replaces it, so a retried upload is harmless).
    pub async fn upload_output(
        &self,
        fence: JobFence,
        name: &str,
        bytes: &[u8],
    ) -> Result<JobOutput, JobError> {
        check_output_name(name)?;
        self.fenced(fence.job_id, fence.fence).await?;
        let relative = format!("jobs/{}/{name}", fence.job_id);
        let path = crate::workspace::resolve_inside(&self.gallery.root(), &relative)
            .map_err(|e| JobError::Invalid(e.to_string()))?;
        let write = {
            let path = path.clone();
            let bytes = bytes.to_vec();
            tokio::task::spawn_blocking(move || {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                crate::workspace::write_atomic(&path, &bytes)
            })
        };
        write
            .await
            .map_err(|e| JobError::Corrupt(e.to_string()))?
            .map_err(|e| JobError::Corrupt(format!("{}: {e}", path.display())))?;
        let output = JobOutput {
            name: name.to_string(),
            bytes: bytes.len() as u64,
        };
        if !self
            .queue
            .add_output(fence.job_id, fence.fence, &output)
            .await?
        {
            // The claim ended while the file was written: it is not this job's output.
            let _ = std::fs::remove_file(&path);
            return Err(JobError::Fenced(fence.job_id));
        }
        // In the owner's gallery (the folder watcher alone would give it to no one).
        let record = self.fenced(fence.job_id, fence.fence).await?;
        if let Err(e) = self
            .gallery
            .current()
            .index_path(&relative, Some(&record.view.prompt_id))
            .await
        {
            tracing::warn!(error = %e, path = %relative, "uploaded output not indexed yet");
        }
        Ok(output)
    }

    /// Records an output the deck's own ComfyUI wrote into the output folder (`name` relative
    /// to it), fenced like an upload.
    pub async fn record_local_output(&self, fence: JobFence, name: &str) -> Result<(), JobError> {
        let path = crate::workspace::resolve_inside(&self.gallery.root(), name)
            .map_err(|e| JobError::Invalid(e.to_string()))?;
        let bytes = tokio::fs::metadata(&path)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        let output = JobOutput {
            name: name.to_string(),
            bytes,
        };
        if self
            .queue
            .add_output(fence.job_id, fence.fence, &output)
            .await?
        {
            Ok(())
        } else {
            Err(JobError::Fenced(fence.job_id))
        }
    }

    /// The file an uploaded output was stored as.
    pub fn output_path(&self, job_id: i64, name: &str) -> Result<PathBuf, JobError> {
        check_output_name(name)?;
        crate::workspace::resolve_inside(&self.gallery.root(), &format!("jobs/{job_id}/{name}"))
            .map_err(|e| JobError::Invalid(e.to_string()))
    }

    pub async fn complete(&self, worker: &str, fence: JobFence) -> Result<JobView, JobError> {
        let record = self.fenced(fence.job_id, fence.fence).await?;
        self.settle(&record, &rules::after_success(&record), None)
            .await?;
        self.queue.worker_finished_job(worker).await?;
        self.view_of(fence.job_id).await
    }

    pub async fn fail(&self, worker: &str, failure: &JobFailure) -> Result<JobView, JobError> {
        let record = self.fenced(failure.job_id, failure.fence).await?;
        let delay = rules::retry_delay_ms(self.limits.retry_delay, record.view.attempts);
        let settlement = rules::after_failure(&record, &failure.reason, failure.transient, delay);
        self.settle(&record, &settlement, None).await?;
        self.queue.worker_finished_job(worker).await?;
        self.view_of(failure.job_id).await
    }

    async fn settle(
        &self,
        record: &JobRecord,
        settlement: &Settlement,
        expired_at_ms: Option<i64>,
    ) -> Result<(), JobError> {
        if !self
            .queue
            .settle(record, settlement, now_ms(), expired_at_ms)
            .await?
        {
            return Err(JobError::Fenced(record.view.id));
        }
        if settlement.state() == JobState::Pending {
            self.submitted.notify_waiters();
        }
        if let Some(error) = settlement.error() {
            // A failure found by the queue (a refused prompt, deliveries used up) may never
            // have come from ComfyUI's own events: the run view hears it from here.
            self.announce(Event::Run(RunEvent {
                prompt_id: record.view.prompt_id.clone(),
                event: RunEventKind::Failed {
                    node: None,
                    node_type: None,
                    message: error.to_string(),
                },
            }));
        }
        self.publish(&record.view.id).await;
        Ok(())
    }

    /// Gives up the jobs of workers whose lease ran out: another delivery, or failed after
    /// the last one. Returns how many changed.
    pub async fn reap(&self) -> Result<usize, JobError> {
        let now = now_ms();
        let mut changed = 0;
        for record in self.queue.expired(now).await? {
            let settlement = rules::after_lost_lease(&record);
            match self.settle(&record, &settlement, Some(now)).await {
                Ok(()) => {
                    changed += 1;
                    tracing::info!(
                        job = record.view.id,
                        worker = record.view.worker.as_deref().unwrap_or(""),
                        state = settlement.state().as_str(),
                        "job's lease ran out"
                    );
                }
                // Renewed or settled since it was read.
                Err(JobError::Fenced(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(changed)
    }

    /// To this deck's browsers, and through Redis to the other decks'.
    fn announce(&self, event: Event) {
        if let QueueStore::Redis(redis) = &self.queue {
            let message = DeckMessage {
                origin: self.deck_id.clone(),
                event: Some(event.clone()),
                preview: None,
            }
            .to_json();
            let redis = redis.clone();
            tokio::spawn(async move {
                if let Err(e) = redis.publish_event(&message).await {
                    tracing::warn!(error = %e, "job event not shared with the other decks");
                }
            });
        }
        self.events.publish(event);
    }

    /// The lease reaper, and with Redis the other decks' events.
    pub fn spawn_background(self: &Arc<Self>, stopping: &tokio_util::sync::CancellationToken) {
        let reaper = Arc::clone(self);
        crate::background::spawn_until(stopping, async move {
            loop {
                if let Err(e) = reaper.reap().await {
                    tracing::warn!(error = %e, "expired job leases not checked");
                }
                tokio::time::sleep(REAP_INTERVAL).await;
            }
        });
        if let QueueStore::Redis(redis) = &self.queue {
            let (redis, events, deck_id, bridge) = (
                redis.clone(),
                self.events.clone(),
                self.deck_id.clone(),
                Arc::clone(&self.bridge),
            );
            crate::background::spawn_until(stopping, async move {
                loop {
                    let result = redis
                        .follow_events(|text| {
                            let Ok(message) = serde_json::from_str::<DeckMessage>(&text) else {
                                return;
                            };
                            if message.origin == deck_id {
                                return;
                            }
                            if let Some(event) = message.event {
                                events.publish(event);
                            }
                            if let Some(preview) = message.preview {
                                use base64::Engine as _;
                                let Ok(bytes) =
                                    base64::engine::general_purpose::STANDARD.decode(&preview.data)
                                else {
                                    return;
                                };
                                let url = bridge.put_preview(
                                    &preview.prompt_id,
                                    preview.mime,
                                    bytes.into(),
                                );
                                events.publish(Event::Run(RunEvent {
                                    prompt_id: preview.prompt_id,
                                    event: RunEventKind::Preview {
                                        node: preview.node,
                                        url,
                                    },
                                }));
                            }
                        })
                        .await;
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "the decks' event channel dropped; reconnecting");
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
    }

    async fn publish(&self, id: &i64) {
        match self.view_of(*id).await {
            Ok(view) => self.announce(Event::Job(view)),
            Err(e) => tracing::warn!(error = %e, job = id, "job change not published"),
        }
    }

    async fn view_of(&self, id: i64) -> Result<JobView, JobError> {
        let record = self.queue.get(id).await?.ok_or_else(|| not_found(id))?;
        Ok(self.decorate(vec![record]).await?.remove(0))
    }

    /// Adds what is computed per request: place in line and what a pending job waits for.
    async fn decorate(&self, records: Vec<JobRecord>) -> Result<Vec<JobView>, JobError> {
        let any_pending = records.iter().any(|r| r.view.state == JobState::Pending);
        // What a pending job waits for needs the line and the connected workers, read once.
        let (positions, workers) = if any_pending {
            let (cursor, lines) = self.queue.pending_lines().await?;
            let (now, lease) = (now_ms(), self.lease_ms());
            let workers: Vec<WorkerRow> = self
                .queue
                .workers()
                .await?
                .into_iter()
                .filter(|w| now - w.last_heartbeat_ms <= lease)
                .collect();
            (rules::positions(&lines, cursor), workers)
        } else {
            Default::default()
        };
        // The embedded deck's worker is its own ComfyUI, which claims only while it answers.
        let nobody_to_run = match self.queue {
            QueueStore::Sqlite(_) => "waiting for ComfyUI to answer",
            QueueStore::Redis(_) => "waiting for a worker to connect",
        };
        Ok(records
            .into_iter()
            .map(|record| {
                let mut view = record.view;
                if view.state == JobState::Pending {
                    view.position = positions.get(&view.id).copied();
                    let can_run = |w: &WorkerRow| {
                        rules::fits(
                            &w.models,
                            w.install_missing,
                            w.installable.as_deref(),
                            &view.required_models,
                        )
                    };
                    if !workers.iter().any(can_run) {
                        // The files the best-equipped worker lacks (all of them when none).
                        let missing = workers
                            .iter()
                            .map(|w| {
                                view.required_models
                                    .iter()
                                    .filter(|m| !w.models.contains(m))
                                    .cloned()
                                    .collect::<Vec<_>>()
                            })
                            .min_by_key(Vec::len)
                            .unwrap_or_else(|| view.required_models.clone());
                        view.waiting_for = waiting_for_sentence(&missing)
                            .or_else(|| workers.is_empty().then(|| nobody_to_run.to_string()));
                    }
                }
                view
            })
            .collect())
    }
}
