//! The job queue as the browser, the API and the workers see it: jobs, their states, the
//! queue's figures, the workers, and the messages of the worker protocol.

use serde::{Deserialize, Serialize};

use super::InputValue;

/// Deliveries a job gets before a transient failure becomes final.
pub const MAX_DELIVERIES: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Pending,
    /// Claimed by a worker, under a lease.
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<JobState> {
        Some(match text {
            "pending" => JobState::Pending,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }

    pub fn is_active(self) -> bool {
        matches!(self, JobState::Pending | JobState::Running)
    }
}

/// One output file a worker uploaded for a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOutput {
    /// The file's name (no folders).
    pub name: String,
    pub bytes: u64,
}

/// A job as its owner (or an administrator) sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    pub workflow_name: String,
    pub workflow_id: Option<String>,
    pub state: JobState,
    /// Higher runs first among one person's jobs.
    pub priority: i64,
    /// Place in line while pending (1 = next), counting the round-robin between people.
    pub position: Option<u64>,
    /// Deliveries so far (a claim is one).
    pub attempts: u32,
    /// The worker running it, or that ran it last.
    pub worker: Option<String>,
    /// The id ComfyUI knows the run by (the same for every delivery).
    pub prompt_id: String,
    pub created_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// Why it failed, in words.
    pub error: Option<String>,
    /// Every failed delivery's reason, oldest first.
    pub attempt_errors: Vec<String>,
    pub outputs: Vec<JobOutput>,
    /// Model files (`folder/file`) a worker must have to take it.
    pub required_models: Vec<String>,
    /// Set while pending and no connected worker can run it: "waiting for a worker with …".
    pub waiting_for: Option<String>,
    /// While pending after a transient failure: no delivery before this time (the backoff).
    #[serde(default)]
    pub retry_at_ms: Option<i64>,
    pub cancel_requested: bool,
}

/// How many jobs one person has in the queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserQueueCount {
    pub user_id: i64,
    pub username: String,
    pub pending: u64,
    pub running: u64,
}

/// `GET /api/queue/status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueStatus {
    /// `sqlite` or `redis`.
    pub backend: String,
    pub pending: u64,
    pub running: u64,
    pub per_user: Vec<UserQueueCount>,
    /// Time from submit to a worker's claim over the last hour, when any job was claimed.
    pub wait_p50_ms: Option<i64>,
    pub wait_p95_ms: Option<i64>,
    pub workers_online: u64,
}

/// A worker as administrators see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    pub name: String,
    pub gpu: Option<String>,
    pub vram_mb: Option<u64>,
    /// `idle`, `busy` or `offline` (no heartbeat within a lease).
    pub state: String,
    pub current_job: Option<i64>,
    pub last_heartbeat_ms: i64,
    pub jobs_done: u64,
    pub models: Vec<String>,
    /// Started with `--install-missing`: takes jobs whose files its catalog provides.
    #[serde(default)]
    pub installs_missing: bool,
}

/// A worker token as listed (the secret itself is shown once, when created).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerTokenInfo {
    pub name: String,
    pub created_ms: i64,
    pub revoked: bool,
}

/// A new worker token: `token` is shown this once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewWorkerToken {
    pub name: String,
    pub token: String,
}

/// `POST /api/jobs/submit`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSubmitted {
    pub job_id: i64,
    pub position: u64,
    pub prompt_id: String,
}

/// A page of jobs, newest first; `next_cursor` asks for the older ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobPage {
    pub jobs: Vec<JobView>,
    pub next_cursor: Option<i64>,
}

// ---- The worker protocol (HTTP between a worker and a deck) ----

/// What a worker says about itself with every claim.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerHello {
    pub name: String,
    #[serde(default)]
    pub gpu: Option<String>,
    #[serde(default)]
    pub vram_mb: Option<u64>,
    /// Model files it has, as `folder/file`.
    #[serde(default)]
    pub models: Vec<String>,
    /// It installs missing model files itself (`--install-missing`) …
    #[serde(default)]
    pub install_missing: bool,
    /// … when they are among these (`folder/file`: what its catalog's presets provide);
    /// `None`: any file (the embedded deck's own worker, whose runs are checked at submit).
    #[serde(default)]
    pub installable: Option<Vec<String>>,
}

/// `POST /api/worker/claim`: who asks, and how long the deck may hold the answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimRequest {
    pub worker: WorkerHello,
    #[serde(default)]
    pub wait_ms: u64,
}

/// A job handed to a worker. `fence` must come back with every later call about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimedJob {
    pub job_id: i64,
    pub fence: i64,
    pub attempt: u32,
    pub prompt_id: String,
    pub user_id: i64,
    pub workflow_name: String,
    /// The workflow as submitted (UI or API format).
    pub workflow: serde_json::Value,
    pub inputs: Vec<InputValue>,
    pub required_models: Vec<String>,
    /// How long the claim lasts without a heartbeat.
    pub lease_ms: i64,
}

/// Names a claim: the job and the fencing token the claim came with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFence {
    pub job_id: i64,
    pub fence: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    pub job_id: i64,
    pub fence: i64,
    /// Hold the answer up to this long unless the job is cancelled first (a long poll).
    #[serde(default)]
    pub wait_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    /// Stop the run: someone cancelled the job.
    pub cancel: bool,
    pub lease_until_ms: i64,
}

/// A worker's report that the job's run failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobFailure {
    pub job_id: i64,
    pub fence: i64,
    /// In words (ComfyUI's message through the problem sentences).
    pub reason: String,
    /// Worth another delivery (ComfyUI unreachable or crashed, a connection error); a
    /// refused prompt or a node's exception is not.
    pub transient: bool,
}

/// Live run events a worker forwards (progress, previews, outputs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobEvents {
    pub job_id: i64,
    pub fence: i64,
    pub events: Vec<super::RunEventKind>,
}

/// "waiting for a worker with a, b" for the models no connected worker has, or `None`.
pub fn waiting_for_sentence(missing: &[String]) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    let names: Vec<&str> = missing
        .iter()
        .map(|m| m.rsplit('/').next().unwrap_or(m))
        .collect();
    Some(format!("waiting for a worker with {}", names.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names() {
        for state in [
            JobState::Pending,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Cancelled,
        ] {
            assert_eq!(JobState::parse(state.as_str()), Some(state));
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::json!(state.as_str())
            );
        }
        assert_eq!(JobState::parse("lost"), None);
    }

    #[test]
    fn waiting_sentence_names_files_without_folders() {
        assert_eq!(waiting_for_sentence(&[]), None);
        assert_eq!(
            waiting_for_sentence(&["unet/flux1-dev.safetensors".into(), "vae/ae.sft".into()])
                .as_deref(),
            Some("waiting for a worker with flux1-dev.safetensors, ae.sft")
        );
    }
}
