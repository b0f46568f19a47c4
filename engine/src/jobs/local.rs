//! The embedded deck's own worker: its local ComfyUI (attached or supervised) runs the queue's
//! jobs inside the process, one at a time, through the same claim, lease, fence and settle
//! steps as a remote worker — only without HTTP, and without uploads (the outputs are already
//! in the deck's output folder).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::worker::{execute, gpu_of, Ending};
use super::{JobError, JobService};
use crate::bridge::Bridge;
use crate::comfy::ComfyClient;
use crate::events::EventBus;
use crate::model::*;

/// The name the deck's own worker goes by in the workers list.
pub const LOCAL_WORKER: &str = "this deck";

/// How often a worker whose ComfyUI is away looks again before claiming.
pub(crate) const COMFY_DOWN_RETRY: Duration = Duration::from_secs(2);

/// How long one heartbeat of the local worker waits for a cancel.
const HEARTBEAT_WAIT_MS: u64 = 1_000;

pub fn spawn(
    jobs: Arc<JobService>,
    bridge: Arc<Bridge>,
    events: EventBus,
    comfy: ComfyClient,
    stopping: &CancellationToken,
) {
    let stop = stopping.clone();
    crate::background::spawn_until(stopping, async move {
        loop {
            // A job claimed while ComfyUI is away would spend its deliveries for nothing.
            if comfy.system_stats().await.is_err() {
                tokio::time::sleep(COMFY_DOWN_RETRY).await;
                continue;
            }
            let (gpu, vram_mb) = gpu_of(&comfy).await;
            // It takes every job: its ComfyUI says what is missing, in the job's error.
            let hello = WorkerHello {
                name: LOCAL_WORKER.to_string(),
                gpu,
                vram_mb,
                models: Vec::new(),
                install_missing: true,
                // Any file: a run was checked against ComfyUI's models when it was queued.
                installable: None,
            };
            let job = match jobs.claim(&hello, super::service::MAX_CLAIM_WAIT).await {
                Ok(Some(job)) => job,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "the local worker cannot claim; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
            };
            run_one(&jobs, &bridge, &events, job, &stop).await;
        }
    });
}

async fn run_one(
    jobs: &Arc<JobService>,
    bridge: &Arc<Bridge>,
    events: &EventBus,
    job: ClaimedJob,
    stop: &CancellationToken,
) {
    let fence = JobFence {
        job_id: job.job_id,
        fence: job.fence,
    };
    let run_over = CancellationToken::new();
    let cancelled = CancellationToken::new();
    let lost = CancellationToken::new();
    let heartbeat = {
        let (jobs, run_over, cancelled, lost) = (
            Arc::clone(jobs),
            run_over.clone(),
            cancelled.clone(),
            lost.clone(),
        );
        tokio::spawn(async move {
            let request = HeartbeatRequest {
                job_id: fence.job_id,
                fence: fence.fence,
                wait_ms: HEARTBEAT_WAIT_MS,
            };
            while !run_over.is_cancelled() {
                match jobs.heartbeat(LOCAL_WORKER, &request).await {
                    Ok(answer) if answer.cancel => cancelled.cancel(),
                    Ok(_) => {}
                    Err(JobError::Fenced(_)) => {
                        lost.cancel();
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, job = fence.job_id, "local heartbeat failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })
    };
    let ending = tokio::select! {
        ending = execute(bridge, events, &job, &cancelled) => ending,
        _ = lost.cancelled() => Ending::Abandoned,
        _ = stop.cancelled() => Ending::Abandoned,
    };
    run_over.cancel();
    let _ = heartbeat.await;
    let result = match ending {
        Ending::Done(outputs) => {
            for output in outputs.iter().filter(|o| o.kind == "output") {
                let name = match output.subfolder.trim_matches('/') {
                    "" => output.filename.clone(),
                    sub => format!("{sub}/{}", output.filename),
                };
                if let Err(e) = jobs.record_local_output(fence, &name).await {
                    tracing::warn!(error = %e, job = fence.job_id, "output not recorded");
                }
            }
            jobs.complete(LOCAL_WORKER, fence).await.map(|_| ())
        }
        Ending::Failed { reason, transient } => jobs
            .fail(
                LOCAL_WORKER,
                &JobFailure {
                    job_id: fence.job_id,
                    fence: fence.fence,
                    reason,
                    transient,
                },
            )
            .await
            .map(|_| ()),
        // Stopping: the job goes back in line when its lease runs out (or at the next start).
        Ending::Abandoned => Ok(()),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, job = fence.job_id, "the local worker's report was refused");
    }
}
