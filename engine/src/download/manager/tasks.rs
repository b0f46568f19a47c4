//! Per-task control: queue one file, read a task, pause, resume and cancel it.

use std::sync::Arc;
use std::time::Duration;

use super::scheduler::StopReason;
use super::views::part_len;
use super::{DownloadError, DownloadManager};
use crate::clock::now_ms;
use crate::download::fetch::{forget_source, part_path, segments_path};
use crate::download::queue::{InstalledFile, NewTask, TaskRow, TaskState};
use crate::model::*;
use crate::workflows::links::download_url_of;
use crate::workspace;

impl DownloadManager {
    /// Queues one file that belongs to no preset (the `download` command).
    pub async fn enqueue_file(self: &Arc<Self>, task: NewTask) -> Result<i64, DownloadError> {
        workspace::resolve_inside(&self.models_dir, &task.path)?;
        let id = self.store.upsert_task(&task, now_ms()).await?;
        self.wake.notify_one();
        Ok(id)
    }

    /// A task's row while it is queued, running, paused or failed; `None` once its file is
    /// installed or it was cancelled (the row is deleted then).
    pub async fn task(&self, id: i64) -> Result<Option<TaskRow>, DownloadError> {
        Ok(self.store.task(id).await?)
    }

    /// The verification record of an installed file, by its path inside the models folder.
    pub async fn installed_file(&self, path: &str) -> Result<Option<InstalledFile>, DownloadError> {
        Ok(self
            .store
            .installed_files()
            .await?
            .into_iter()
            .find(|f| f.path == path))
    }

    pub async fn pause_task(self: &Arc<Self>, id: i64) -> Result<(), DownloadError> {
        let task = self
            .store
            .task(id)
            .await?
            .ok_or(DownloadError::UnknownTask(id))?;
        self.store
            .transition_task(
                id,
                &[TaskState::Queued, TaskState::Downloading],
                TaskState::Paused,
                now_ms(),
            )
            .await?;
        // Returns once the transfer has stopped and flushed its part, so "paused" means no
        // more bytes are written.
        if !self.stop_and_wait(id, StopReason::Pause).await {
            self.emit_file(
                &task,
                FileState::Paused,
                self.figures_from_disk(&task),
                None,
            );
            self.emit_presets_of(&task.path, true).await;
        }
        Ok(())
    }

    pub async fn resume_task(self: &Arc<Self>, id: i64) -> Result<(), DownloadError> {
        let task = self
            .store
            .task(id)
            .await?
            .ok_or(DownloadError::UnknownTask(id))?;
        if self
            .store
            .transition_task(
                id,
                &[TaskState::Paused, TaskState::Failed],
                TaskState::Queued,
                now_ms(),
            )
            .await?
        {
            self.emit_file(
                &task,
                FileState::Queued,
                self.figures_from_disk(&task),
                None,
            );
            self.emit_presets_of(&task.path, true).await;
            for preset in self.presets_needing(&task.path) {
                self.store.start_history(&preset, now_ms()).await?;
            }
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Downloads task `id`'s file from `pasted` (a link a person gave, made direct as a link
    /// pasted in "make runnable" is), its old sources kept as the next ones. The bytes on disk
    /// are kept only when a checksum will tell whether the new host sends the same file.
    pub async fn use_source(self: &Arc<Self>, id: i64, pasted: &str) -> Result<(), DownloadError> {
        let task = self
            .store
            .task(id)
            .await?
            .ok_or(DownloadError::UnknownTask(id))?;
        if !matches!(task.state, TaskState::Failed | TaskState::Paused) {
            return Err(DownloadError::Invalid(format!(
                "{} is {}: another source is for a download that stopped",
                task.path,
                task.state.as_str()
            )));
        }
        let url = download_url_of(pasted).map_err(DownloadError::Invalid)?;
        let mut mirrors: Vec<String> = Vec::new();
        for old in task.sources() {
            if old != url && !mirrors.contains(&old) {
                mirrors.push(old);
            }
        }
        let dest = workspace::resolve_inside(&self.models_dir, &task.path)?;
        let keep_bytes = task.checksum.is_some();
        if keep_bytes {
            if let Err(e) = forget_source(&dest) {
                tracing::warn!(path = %task.path, error = %e, "cannot update the segment sidecar");
            }
        } else {
            drop_part_files(&dest);
        }
        self.store
            .set_task_sources(id, &url, &mirrors, keep_bytes, now_ms())
            .await?;
        self.record(format!(
            "{}: downloading from {} now{}",
            task.path,
            crate::secret::redact_url(&url),
            if keep_bytes {
                " (the bytes already here are kept: the checksum will tell)"
            } else {
                " (from the start: no checksum tells whether it is the same file)"
            }
        ))
        .await;
        self.resume_task(id).await
    }

    /// The one file of preset `preset_id` that stopped (failed or paused), for another source.
    pub async fn stalled_file_of_preset(&self, preset_id: &str) -> Result<i64, DownloadError> {
        let preset = self.preset(preset_id)?;
        let stalled: Vec<TaskRow> = self
            .store
            .tasks()
            .await?
            .into_iter()
            .filter(|t| matches!(t.state, TaskState::Failed | TaskState::Paused))
            .filter(|t| preset.files.iter().any(|f| f.path == t.path))
            .collect();
        match stalled.as_slice() {
            [one] => Ok(one.id),
            [] => Err(DownloadError::Invalid(format!(
                "no file of {} has stopped: retry it instead",
                preset.name
            ))),
            many => Err(DownloadError::Invalid(format!(
                "another source replaces one file's, and {} files of {} stopped: {}",
                many.len(),
                preset.name,
                many.iter()
                    .map(|t| t.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Stops and forgets a task; its part file is deleted or kept for a later resume.
    pub async fn cancel_task(
        self: &Arc<Self>,
        id: i64,
        delete_part: bool,
    ) -> Result<(), DownloadError> {
        let task = self
            .store
            .task(id)
            .await?
            .ok_or(DownloadError::UnknownTask(id))?;
        // Delete the row first so the scheduler cannot pick the task up again.
        self.store.delete_task(id).await?;
        self.stop_and_wait(id, StopReason::Cancel).await;
        if delete_part {
            let dest = workspace::resolve_inside(&self.models_dir, &task.path)?;
            drop_part_files(&dest);
        }
        self.emit_file(&task, FileState::Missing, TransferFigures::default(), None);
        self.emit_presets_of(&task.path, true).await;
        Ok(())
    }

    /// Stops a running transfer and waits (up to 10 s) until it has flushed and ended.
    /// Returns false when the task was not running.
    async fn stop_and_wait(&self, id: i64, reason: StopReason) -> bool {
        let finished = {
            let running = self.running.lock().expect("running lock");
            let Some(task) = running.get(&id) else {
                return false;
            };
            *task.reason.lock().expect("reason lock") = Some(reason);
            let finished = Arc::clone(&task.finished);
            task.stop.cancel();
            finished
        };
        let notified = finished.notified();
        tokio::pin!(notified);
        // Registered before checking again: the task may have ended in between.
        notified.as_mut().enable();
        if self.running.lock().expect("running lock").contains_key(&id) {
            let _ = tokio::time::timeout(Duration::from_secs(10), notified).await;
        }
        true
    }

    pub(super) fn figures_from_disk(&self, task: &TaskRow) -> TransferFigures {
        TransferFigures {
            bytes_done: part_len(&self.models_dir.join(&task.path)),
            total_bytes: task.validator.total_bytes.or(task.expected_size),
            speed_bps: 0,
            eta_secs: None,
        }
    }
}

/// Deletes a download's bytes on disk: the part file and its segment sidecar (either may be
/// missing).
fn drop_part_files(dest: &std::path::Path) {
    let _ = std::fs::remove_file(part_path(dest));
    let _ = std::fs::remove_file(segments_path(dest));
}
