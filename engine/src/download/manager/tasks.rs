//! Per-task control: queue one file, read a task, pause, resume and cancel it.

use std::sync::Arc;
use std::time::Duration;

use super::scheduler::StopReason;
use super::views::part_len;
use super::{DownloadError, DownloadManager};
use crate::clock::now_ms;
use crate::download::fetch::{part_path, segments_path};
use crate::download::queue::{InstalledFile, NewTask, TaskRow, TaskState};
use crate::model::*;
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
            let _ = std::fs::remove_file(part_path(&dest));
            let _ = std::fs::remove_file(segments_path(&dest));
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
