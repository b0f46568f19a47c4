//! The job queue: every run waits here for a worker. Durable (SQLite in the embedded deck,
//! Redis when several decks share it), fair between people (round-robin across users with
//! pending jobs, then priority, then age), leased (a claim lasts `lease_ms` unless the worker's
//! heartbeat renews it) and fenced (every claim raises a counter that the worker's later calls
//! must carry, so a worker whose lease was taken over can no longer finish the job).
//!
//! What happens to a job is decided here, once ([`rules`]); the two stores only apply those
//! decisions atomically, each checking the fence itself.

mod install;
pub mod local;
mod redis_queue;
pub mod rules;
mod service;
mod sqlite_queue;
pub mod worker;

pub use redis_queue::RedisQueue;
pub use service::{JobLimits, JobService, SubmitJob};
pub use sqlite_queue::SqliteQueue;

use crate::model::{ErrorKind, InputValue, JobOutput, JobState, JobView};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    TooMany(String),
    #[error("the claim on job {0} is no longer valid: the job ended, was cancelled, or went to another worker")]
    Fenced(i64),
    #[error("the worker token is missing, wrong or revoked")]
    Unauthorized,
    #[error("{0}")]
    Conflict(String),
    #[error("the job queue's database failed: {0}")]
    Sqlite(#[from] sqlx::Error),
    #[error("the job queue's Redis failed: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("a job record is damaged: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Workflow(#[from] crate::workflows::WorkflowError),
    #[error("the deck did not answer: {0}")]
    Coordinator(String),
}

impl crate::error::Classify for JobError {
    fn kind(&self) -> ErrorKind {
        match self {
            JobError::NotFound(_) => ErrorKind::NotFound,
            JobError::Invalid(_) => ErrorKind::Invalid,
            JobError::Forbidden(_) => ErrorKind::Forbidden,
            JobError::TooMany(_) => ErrorKind::TooMany,
            JobError::Fenced(_) | JobError::Conflict(_) => ErrorKind::Conflict,
            JobError::Unauthorized => ErrorKind::Unauthorized,
            JobError::Sqlite(_) | JobError::Corrupt(_) => ErrorKind::Internal,
            // Redis and the coordinator are services the deck depends on.
            JobError::Redis(_) | JobError::Coordinator(_) => ErrorKind::Unavailable,
            JobError::Workflow(e) => e.kind(),
        }
    }
}

impl JobError {
    fn corrupt(what: impl std::fmt::Display) -> JobError {
        JobError::Corrupt(what.to_string())
    }
}

/// What a worker runs: the workflow as submitted and the values to apply.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JobPayload {
    pub workflow: serde_json::Value,
    pub inputs: Vec<InputValue>,
}

/// A job as the stores keep it: its view (without the figures computed per request) and what
/// only the queue needs.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRecord {
    pub view: JobView,
    pub payload: JobPayload,
    pub fence: i64,
    pub lease_until_ms: Option<i64>,
}

/// A job entering the queue.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub user_id: i64,
    pub username: String,
    pub workflow_name: String,
    pub workflow_id: Option<String>,
    pub payload: JobPayload,
    pub required_models: Vec<String>,
    pub priority: i64,
    pub prompt_id: String,
    pub created_ms: i64,
}

/// A worker's row in the registry.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerRow {
    pub name: String,
    pub gpu: Option<String>,
    pub vram_mb: Option<u64>,
    pub models: Vec<String>,
    pub install_missing: bool,
    pub installable: Option<Vec<String>>,
    pub current_job: Option<i64>,
    pub last_heartbeat_ms: i64,
    pub jobs_done: u64,
}

/// Priorities are kept in this range (Redis orders by one float score).
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i64> = -1000..=1000;

/// Either store, chosen at start-up. An enum rather than a trait object: two backends, and
/// their async methods need no boxing.
#[derive(Clone)]
pub enum QueueStore {
    Sqlite(SqliteQueue),
    Redis(RedisQueue),
}

macro_rules! each_store {
    ($self:ident, $q:ident => $body:expr) => {
        match $self {
            QueueStore::Sqlite($q) => $body,
            QueueStore::Redis($q) => $body,
        }
    };
}

impl QueueStore {
    pub fn backend_name(&self) -> &'static str {
        match self {
            QueueStore::Sqlite(_) => "sqlite",
            QueueStore::Redis(_) => "redis",
        }
    }

    /// Adds a job unless its owner already has `max_pending` waiting (checked atomically).
    pub async fn submit(&self, job: &NewJob, max_pending: u64) -> Result<Option<i64>, JobError> {
        each_store!(self, q => q.submit(job, max_pending).await)
    }

    /// Hands the next job this worker can run to it (reaping expired leases first).
    pub async fn claim(
        &self,
        worker: &crate::model::WorkerHello,
        now_ms: i64,
        lease_ms: i64,
        max_running_per_user: Option<u64>,
    ) -> Result<Option<JobRecord>, JobError> {
        each_store!(self, q => q.claim(worker, now_ms, lease_ms, max_running_per_user).await)
    }

    /// Renews a claim's lease; `Fenced` when the claim is no longer the job's.
    pub async fn heartbeat(
        &self,
        job_id: i64,
        fence: i64,
        lease_until_ms: i64,
    ) -> Result<bool, JobError> {
        each_store!(self, q => q.heartbeat(job_id, fence, lease_until_ms).await)
    }

    /// Applies a settlement to a running job, only while `fence` is its claim (and, for a
    /// reap, only while its lease is still expired at `expired_at_ms`).
    pub async fn settle(
        &self,
        record: &JobRecord,
        settlement: &rules::Settlement,
        now_ms: i64,
        expired_at_ms: Option<i64>,
    ) -> Result<bool, JobError> {
        each_store!(self, q => q.settle(record, settlement, now_ms, expired_at_ms).await)
    }

    /// Pending: cancelled at once. Running: flagged, for the worker's next heartbeat.
    pub async fn cancel(&self, job_id: i64, now_ms: i64) -> Result<Option<JobState>, JobError> {
        each_store!(self, q => q.cancel(job_id, now_ms).await)
    }

    pub async fn set_priority(&self, job_id: i64, priority: i64) -> Result<bool, JobError> {
        each_store!(self, q => q.set_priority(job_id, priority).await)
    }

    pub async fn get(&self, job_id: i64) -> Result<Option<JobRecord>, JobError> {
        each_store!(self, q => q.get(job_id).await)
    }

    pub async fn id_of_prompt(&self, prompt_id: &str) -> Result<Option<i64>, JobError> {
        each_store!(self, q => q.id_of_prompt(prompt_id).await)
    }

    /// Newest first, ids below `before` when given.
    pub async fn list(
        &self,
        state: Option<JobState>,
        user_id: Option<i64>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, JobError> {
        each_store!(self, q => q.list(state, user_id, before, limit).await)
    }

    /// Running jobs whose lease ended before `now_ms`.
    pub async fn expired(&self, now_ms: i64) -> Result<Vec<JobRecord>, JobError> {
        each_store!(self, q => q.expired(now_ms).await)
    }

    /// The user served last, and per user the pending job ids in the order they are served.
    pub async fn pending_lines(&self) -> Result<(i64, Vec<(i64, Vec<i64>)>), JobError> {
        each_store!(self, q => q.pending_lines().await)
    }

    /// Per user with any: (user, username, pending, running).
    pub async fn counts(&self) -> Result<Vec<(i64, String, u64, u64)>, JobError> {
        each_store!(self, q => q.counts().await)
    }

    /// Waits (submit → claim) of claims made since `since_ms`.
    pub async fn waits_since(&self, since_ms: i64) -> Result<Vec<i64>, JobError> {
        each_store!(self, q => q.waits_since(since_ms).await)
    }

    pub async fn touch_worker(&self, row: &WorkerRow) -> Result<(), JobError> {
        each_store!(self, q => q.touch_worker(row).await)
    }

    pub async fn worker_finished_job(&self, name: &str) -> Result<(), JobError> {
        each_store!(self, q => q.worker_finished_job(name).await)
    }

    pub async fn workers(&self) -> Result<Vec<WorkerRow>, JobError> {
        each_store!(self, q => q.workers().await)
    }

    /// False when a token of that name exists (revoked ones too: names are never reused).
    pub async fn add_token(&self, name: &str, hash: &str, now_ms: i64) -> Result<bool, JobError> {
        each_store!(self, q => q.add_token(name, hash, now_ms).await)
    }

    /// The live token's name.
    pub async fn token_name(&self, hash: &str) -> Result<Option<String>, JobError> {
        each_store!(self, q => q.token_name(hash).await)
    }

    pub async fn tokens(&self) -> Result<Vec<crate::model::WorkerTokenInfo>, JobError> {
        each_store!(self, q => q.tokens().await)
    }

    pub async fn revoke_token(&self, name: &str, now_ms: i64) -> Result<bool, JobError> {
        each_store!(self, q => q.revoke_token(name, now_ms).await)
    }

    /// Records an uploaded output on a running job (idempotent per name), fenced.
    pub async fn add_output(
        &self,
        job_id: i64,
        fence: i64,
        output: &JobOutput,
    ) -> Result<bool, JobError> {
        each_store!(self, q => q.add_output(job_id, fence, output).await)
    }
}

/// `outputs` with `output` put in (replacing one of the same name).
pub(crate) fn with_output(mut outputs: Vec<JobOutput>, output: &JobOutput) -> Vec<JobOutput> {
    outputs.retain(|o| o.name != output.name);
    outputs.push(output.clone());
    outputs
}

/// Creates a worker token named `name` (letters, digits, `-`, `_`, `.`); the secret is in the
/// answer only, the queue keeps its hash. Names are never reused, revoked ones included.
pub async fn new_worker_token(
    queue: &QueueStore,
    name: &str,
) -> Result<crate::model::NewWorkerToken, JobError> {
    let name = name.trim();
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(JobError::Invalid(format!(
            "worker token name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
        )));
    }
    let token = format!("cdw_{}", hex::encode(rand::random::<[u8; 24]>()));
    if !queue
        .add_token(name, &token_hash(&token), crate::clock::now_ms())
        .await?
    {
        return Err(JobError::Conflict(format!(
            "a worker token named {name} exists already (names are not reused)"
        )));
    }
    Ok(crate::model::NewWorkerToken {
        name: name.to_string(),
        token,
    })
}

/// The queue a configuration names, without starting a deck (for `comfydeck workers …`,
/// which works while a server holds the workspace).
pub async fn open_queue(config: &crate::config::Config) -> Result<QueueStore, JobError> {
    match &config.queue_url {
        Some(url) => Ok(QueueStore::Redis(RedisQueue::connect(url).await?)),
        None => {
            let store = crate::store::Store::open(&config.layout().database())
                .await
                .map_err(|e| JobError::Corrupt(e.to_string()))?;
            Ok(QueueStore::Sqlite(SqliteQueue::new(store)))
        }
    }
}

/// The sha256 (hex) a worker token is stored and looked up by.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}
