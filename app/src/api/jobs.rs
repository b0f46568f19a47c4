//! The job queue's API: submit, list, one job, cancel, priority (administrators), the queue's
//! figures, the workers and their tokens (administrators). Thin adapters over the engine's
//! `JobService`, which checks the caller.

use engine::model::*;
use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json};

use super::ApiError;

/// Queues a library workflow (`workflow_id`) or a workflow posted whole (`workflow`) with the
/// values to apply. 429 when the caller already has the most pending jobs allowed.
#[server(endpoint = "jobs/submit", prefix = "/api", input = Json)]
pub async fn submit_job(
    workflow_id: Option<String>,
    workflow: Option<serde_json::Value>,
    #[server(default)] inputs: Vec<InputValue>,
    priority: Option<i64>,
    name: Option<String>,
) -> Result<JobSubmitted, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    let job = engine::jobs::SubmitJob {
        workflow_id,
        workflow,
        inputs,
        priority,
        name,
    };
    engine
        .jobs()
        .submit(&caller, job)
        .await
        .map_err(super::server::fail)
}

/// Newest first, 50 a page; `cursor` is the last page's `next_cursor`. Users see their own;
/// administrators everyone's, or one user's with `user`.
#[server(endpoint = "jobs", prefix = "/api", input = GetUrl)]
pub async fn list_jobs(
    state: Option<String>,
    user: Option<i64>,
    cursor: Option<i64>,
) -> Result<JobPage, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    let state = match state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(JobState::parse(text).ok_or_else(|| {
            super::server::fail(engine::jobs::JobError::Invalid(format!(
                "state: {text:?} is none of pending, running, succeeded, failed, cancelled"
            )))
        })?),
    };
    engine
        .jobs()
        .list(&caller, state, user, cursor)
        .await
        .map_err(super::server::fail)
}

#[server(endpoint = "jobs/get", prefix = "/api", input = GetUrl)]
pub async fn get_job(id: i64) -> Result<JobView, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .jobs()
        .get(&caller, id)
        .await
        .map_err(super::server::fail)
}

#[server(endpoint = "jobs/cancel", prefix = "/api", input = Json)]
pub async fn cancel_job(id: i64) -> Result<JobView, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .jobs()
        .cancel(&caller, id)
        .await
        .map_err(super::server::fail)
}

/// "Run again": the job's workflow and values, queued as a new job.
#[server(endpoint = "jobs/rerun", prefix = "/api", input = Json)]
pub async fn rerun_job(id: i64) -> Result<JobSubmitted, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .jobs()
        .rerun(&caller, id)
        .await
        .map_err(super::server::fail)
}

#[server(endpoint = "jobs/priority", prefix = "/api", input = Json)]
pub async fn set_job_priority(id: i64, priority: i64) -> Result<JobView, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .jobs()
        .set_priority(&caller, id, priority)
        .await
        .map_err(super::server::fail)
}

#[server(endpoint = "queue/status", prefix = "/api", input = GetUrl)]
pub async fn read_queue_status() -> Result<QueueStatus, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .jobs()
        .status(&caller)
        .await
        .map_err(super::server::fail)
}

#[server(endpoint = "workers", prefix = "/api", input = GetUrl)]
pub async fn list_workers() -> Result<Vec<WorkerView>, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .jobs()
        .workers(&caller)
        .await
        .map_err(super::server::fail)
}

#[server(endpoint = "workers/tokens", prefix = "/api", input = GetUrl)]
pub async fn list_worker_tokens() -> Result<Vec<WorkerTokenInfo>, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .jobs()
        .tokens(&caller)
        .await
        .map_err(super::server::fail)
}

/// A new worker token; the token itself is in this answer only.
#[server(endpoint = "workers/tokens/create", prefix = "/api", input = Json)]
pub async fn create_worker_token(name: String) -> Result<NewWorkerToken, ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .jobs()
        .create_token(&caller, &name)
        .await
        .map_err(super::server::fail)
}

#[server(endpoint = "workers/tokens/revoke", prefix = "/api", input = Json)]
pub async fn revoke_worker_token(name: String) -> Result<(), ApiError> {
    let (engine, caller) = super::server::engine_and_caller()?;
    engine
        .jobs()
        .revoke_token(&caller, &name)
        .await
        .map_err(super::server::fail)
}
