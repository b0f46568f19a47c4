//! Scheduling: the queue loop that starts runnable tasks while slots are free, the worker
//! that runs one transfer, and what its outcome makes of the task (installed, paused, queued
//! for a retry, failed).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::events::{Meter, TaskObserver};
use super::views::file_mtime_ms;
use super::{DownloadError, DownloadManager};
use crate::catalog::{Checksum, ChecksumAlgorithm};
use crate::clock::now_ms;
use crate::download::fetch::{
    self, part_path, FetchError, FetchOutcome, FetchRequest, RemoteValidator, VerifiedBy,
};
use crate::download::queue::{InstalledFile, TaskRow, TaskState};
use crate::download::sources;
use crate::model::*;
use crate::workspace;

/// Tasks that failed transiently (after the fetcher's own retries) are retried this many times
/// by the queue, this far apart, before they are marked failed.
const QUEUE_RETRIES: u32 = 3;
const QUEUE_RETRY_DELAY: Duration = Duration::from_secs(120);

/// Why a running transfer was told to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StopReason {
    Pause,
    Cancel,
    Shutdown,
}

pub(super) struct RunningTask {
    pub(super) stop: CancellationToken,
    pub(super) reason: Arc<Mutex<Option<StopReason>>>,
    pub(super) meter: Arc<Mutex<Meter>>,
    pub(super) finished: Arc<Notify>,
}

impl DownloadManager {
    /// Re-queues what a crash or restart interrupted, then runs the queue until [`shutdown`].
    ///
    /// [`shutdown`]: DownloadManager::shutdown
    pub async fn run(self: Arc<Self>) {
        match self.store.requeue_interrupted_tasks(now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(tasks = n, "resuming interrupted downloads"),
            Err(e) => tracing::error!(error = %e, "cannot re-queue interrupted downloads"),
        }
        loop {
            if self.shutdown.is_cancelled() {
                return;
            }
            if let Err(e) = self.start_runnable().await {
                tracing::error!(error = %e, "download scheduler");
            }
            let wait = match self.store.next_wake_ms().await {
                Ok(Some(at)) => Duration::from_millis((at - now_ms()).clamp(50, 30_000) as u64),
                _ => Duration::from_secs(30),
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    /// Stops every transfer (their parts are kept; they resume at the next start) and waits
    /// briefly for them to flush.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let waits: Vec<Arc<Notify>> = {
            let running = self.running.lock().expect("running lock");
            running
                .values()
                .map(|task| {
                    *task.reason.lock().expect("reason lock") = Some(StopReason::Shutdown);
                    task.stop.cancel();
                    Arc::clone(&task.finished)
                })
                .collect()
        };
        for finished in waits {
            let _ = tokio::time::timeout(Duration::from_secs(5), finished.notified()).await;
        }
    }

    /// The live figures of a running task.
    pub fn live_figures(&self, task_id: i64) -> Option<TransferFigures> {
        let running = self.running.lock().expect("running lock");
        let task = running.get(&task_id)?;
        let figures = task.meter.lock().expect("meter lock").figures.clone();
        Some(figures)
    }

    /// Number of transfers running now.
    pub fn running_count(&self) -> usize {
        self.running.lock().expect("running lock").len()
    }

    async fn start_runnable(self: &Arc<Self>) -> Result<(), DownloadError> {
        let free_slots = self.config.concurrent.saturating_sub(self.running_count());
        if free_slots == 0 {
            return Ok(());
        }
        let tasks = self.store.runnable_tasks(now_ms(), free_slots).await?;
        for task in tasks {
            self.start_task(task).await?;
        }
        Ok(())
    }

    async fn start_task(self: &Arc<Self>, task: TaskRow) -> Result<(), DownloadError> {
        self.store
            .set_task_state(task.id, TaskState::Downloading, None, 0, now_ms())
            .await?;
        let running = RunningTask {
            stop: self.shutdown.child_token(),
            reason: Arc::new(Mutex::new(None)),
            meter: Arc::new(Mutex::new(Meter::new())),
            finished: Arc::new(Notify::new()),
        };
        let stop = running.stop.clone();
        let reason = Arc::clone(&running.reason);
        let meter = Arc::clone(&running.meter);
        let finished = Arc::clone(&running.finished);
        self.running
            .lock()
            .expect("running lock")
            .insert(task.id, running);
        self.emit_file(
            &task,
            FileState::Downloading,
            TransferFigures::default(),
            None,
        );
        self.emit_presets_of(&task.path, true).await;

        let manager = Arc::clone(self);
        tokio::spawn(async move {
            let result = manager.transfer(&task, stop, Arc::clone(&meter)).await;
            let reason = *reason.lock().expect("reason lock");
            manager
                .running
                .lock()
                .expect("running lock")
                .remove(&task.id);
            manager.finish(&task, result, reason, &meter).await;
            finished.notify_waiters();
            manager.wake.notify_one();
        });
        Ok(())
    }

    async fn transfer(
        self: &Arc<Self>,
        task: &TaskRow,
        stop: CancellationToken,
        meter: Arc<Mutex<Meter>>,
    ) -> Result<FetchOutcome, FetchError> {
        let dest = workspace::resolve_inside(&self.models_dir, &task.path)
            .map_err(|e| FetchError::Invalid(e.to_string()))?;
        adopt_existing_file(&dest, task.expected_size);
        let sources =
            sources::ordered(&task.url, &task.mirrors, self.config.hf_endpoint.as_deref());
        let mut index = task.source_index.min(sources.len() - 1);
        let mut validator = task.validator.clone();
        loop {
            let request = FetchRequest {
                url: sources[index].clone(),
                dest: dest.clone(),
                expected_size: task.expected_size,
                // Hugging Face's sha256 of the file checks the bytes a mirror sends too.
                checksum: task.checksum.clone().or_else(|| {
                    let linked = validator.linked_sha256.clone().filter(|_| index > 0);
                    linked.map(|value| Checksum {
                        algorithm: ChecksumAlgorithm::Sha256,
                        value,
                    })
                }),
                validator: Some(validator.clone()).filter(|v| *v != RemoteValidator::default()),
                connections: self.config.connections.max(1),
                segment_threshold: self.config.segment_threshold,
            };
            let observer = Arc::new(TaskObserver {
                manager: Arc::downgrade(self),
                task: task.clone(),
                meter: Arc::clone(&meter),
                runtime: tokio::runtime::Handle::current(),
            });
            let error = match self.fetcher.fetch(&request, observer, stop.clone()).await {
                Ok(outcome) => return Ok(outcome),
                Err(error) => error,
            };
            let moves_on = matches!(
                error,
                FetchError::Gone { .. } | FetchError::HostUnavailable { .. }
            );
            if !moves_on || index + 1 >= sources.len() {
                if index > 0 && matches!(error, FetchError::HostUnavailable { .. }) {
                    // Every source is resting: the next attempt starts from the first again.
                    self.save_source(task.id, 0).await;
                }
                return Err(error);
            }
            index += 1;
            tracing::info!(
                path = %task.path,
                reason = %error,
                next = %crate::secret::redact_url(&sources[index]),
                "trying the next source of the file"
            );
            validator.etag = None;
            validator.last_modified = None;
            if let Err(e) = fetch::forget_source(&dest) {
                tracing::warn!(path = %task.path, error = %e, "cannot update the segment sidecar");
            }
            self.save_source(task.id, index).await;
            self.record(format!(
                "{}: {error}; trying {} instead",
                task.path,
                crate::secret::redact_url(&sources[index])
            ))
            .await;
        }
    }

    async fn save_source(&self, task_id: i64, index: usize) {
        if let Err(e) = self
            .store
            .switch_task_source(task_id, index, now_ms())
            .await
        {
            tracing::error!(error = %e, "cannot record a download's source");
        }
    }

    async fn finish(
        self: &Arc<Self>,
        task: &TaskRow,
        result: Result<FetchOutcome, FetchError>,
        reason: Option<StopReason>,
        meter: &Mutex<Meter>,
    ) {
        let figures = meter.lock().expect("meter lock").figures.clone();
        let now = now_ms();
        match result {
            Ok(outcome) => {
                let dest = self.models_dir.join(&task.path);
                let mtime_ms = file_mtime_ms(&dest).unwrap_or(now);
                let file = InstalledFile {
                    path: task.path.clone(),
                    size: outcome.bytes,
                    mtime_ms,
                    sha256: outcome.sha256.clone(),
                    verified_by: verified_label(outcome.verified_by).to_string(),
                };
                if let Err(e) = self
                    .store
                    .complete_task(task.id, &file, &task.url, now)
                    .await
                {
                    tracing::error!(error = %e, path = %task.path, "cannot record an installed file");
                    return;
                }
                tracing::info!(path = %task.path, bytes = outcome.bytes, verified_by = file.verified_by, "download verified");
                let done = TransferFigures {
                    bytes_done: outcome.bytes,
                    total_bytes: Some(outcome.bytes),
                    speed_bps: 0,
                    eta_secs: Some(0),
                };
                self.emit_file(task, FileState::Installed, done, None);
                if self.presets_needing(&task.path).is_empty() {
                    self.record(format!(
                        "Downloaded {} ({}), verified by {}",
                        task.path,
                        format_bytes(outcome.bytes),
                        file.verified_by
                    ))
                    .await;
                }
                self.complete_presets_of(&task.path).await;
            }
            Err(FetchError::Stopped) => {
                // Pause and cancel already wrote their state; a shutdown leaves the task
                // "downloading" so the next start resumes it.
                let state = match reason {
                    Some(StopReason::Cancel) => None,
                    Some(StopReason::Shutdown) => return,
                    _ => Some(FileState::Paused),
                };
                if let Some(state) = state {
                    self.emit_file(task, state, figures, None);
                }
                self.emit_presets_of(&task.path, true).await;
            }
            Err(error) => {
                let message = error.to_string();
                let attempts = task.attempts + 1;
                let (state, not_before, file_state) = match &error {
                    FetchError::NoSpace { .. } => (TaskState::Paused, 0, FileState::Paused),
                    FetchError::HostUnavailable { retry_in, .. } => (
                        TaskState::Queued,
                        now + retry_in.as_millis() as i64,
                        FileState::Queued,
                    ),
                    e if e.is_transient() && attempts < QUEUE_RETRIES => (
                        TaskState::Queued,
                        now + QUEUE_RETRY_DELAY.as_millis() as i64,
                        FileState::Queued,
                    ),
                    _ => (TaskState::Failed, 0, FileState::Failed),
                };
                // A file queued again says when it goes on.
                let message = if not_before > 0 {
                    format!(
                        "{message}; tries again at {}",
                        crate::model::format_utc(not_before)
                    )
                } else {
                    message
                };
                tracing::warn!(path = %task.path, error = %message, "download stopped");
                if let Err(e) = self
                    .store
                    .set_task_state(task.id, state, Some(&message), not_before, now)
                    .await
                {
                    tracing::error!(error = %e, "cannot record a download failure");
                }
                self.emit_file(task, file_state, figures, Some(message.clone()));
                if state == TaskState::Failed {
                    self.fail_presets_of(&task.path, &message).await;
                } else {
                    self.emit_presets_of(&task.path, true).await;
                }
            }
        }
    }
}

fn verified_label(by: VerifiedBy) -> &'static str {
    match by {
        VerifiedBy::PresetChecksum => "checksum",
        VerifiedBy::LinkedEtag => "Hugging Face sha256",
        VerifiedBy::SizeOnly => "size",
    }
}

/// A file already at the destination but never verified by us (copied in by hand, or left by
/// another tool) with the expected size becomes the part file: the fetcher then asks for the
/// bytes after its end, gets 416, and verifies it instead of downloading it again. A file of
/// another size is left alone and replaced only once the new download is verified.
fn adopt_existing_file(dest: &Path, expected_size: Option<u64>) {
    let part = part_path(dest);
    if part.exists() {
        return;
    }
    if let (Ok(meta), Some(expected)) = (std::fs::symlink_metadata(dest), expected_size) {
        if meta.is_file() && meta.len() == expected {
            if let Err(e) = std::fs::rename(dest, &part) {
                tracing::warn!(path = %dest.display(), error = %e, "cannot adopt an existing file");
            }
        }
    }
}
