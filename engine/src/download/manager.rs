//! The download manager: runs queued tasks (a few at a time), turns transfer results into
//! installed files, aggregates presets, and pushes throttled progress events.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::fetch::{
    part_path, segments_path, FetchError, FetchObserver, FetchRequest, Fetcher, RemoteValidator,
};
use super::queue::{InstalledFile, NewTask, TaskRow, TaskState};
use crate::catalog::{Catalog, Preset};
use crate::events::{record_activity, EventBus};
use crate::model::*;
use crate::now_ms;
use crate::store::{Store, StoreError};
use crate::workspace::{self, UnsafePath};

/// At most this many events per second per task and per preset.
const EVENT_INTERVAL: Duration = Duration::from_millis(500);
/// Tasks that failed transiently (after the fetcher's own retries) are retried this many times
/// by the queue, this far apart, before they are marked failed.
const QUEUE_RETRIES: u32 = 3;
const QUEUE_RETRY_DELAY: Duration = Duration::from_secs(120);
/// Progress is written to the database this often (the part file is the truth; this only
/// feeds listings of tasks that are not running).
const SAVE_INTERVAL: Duration = Duration::from_secs(5);

/// Shared, swappable catalog: a sync or a workspace edit replaces the whole `Arc`.
pub type CatalogHandle = Arc<RwLock<Arc<Catalog>>>;

#[derive(Clone, Debug)]
pub struct DownloadConfig {
    /// Files downloading at once (`CONCURRENT_DOWNLOADS`).
    pub concurrent: usize,
    /// Connections per large file.
    pub connections: usize,
    /// Files above this use several connections.
    pub segment_threshold: u64,
    /// Kept free on the volume by the preflight.
    pub disk_reserve: u64,
    /// `RUNPOD_VOLUME_GB`, when the filesystem does not report the volume's size.
    pub volume_quota_bytes: Option<u64>,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            concurrent: 3,
            connections: 4,
            segment_threshold: 256 * 1024 * 1024,
            disk_reserve: 1024 * 1024 * 1024,
            volume_quota_bytes: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("unknown preset {0:?}")]
    UnknownPreset(String),
    #[error("no download task {0}")]
    UnknownTask(i64),
    #[error("{} needs {} more, but only {} is free (keeping {} in reserve)", .preset, format_bytes(*.needed), format_bytes(*.free), format_bytes(*.reserve))]
    NotEnoughSpace {
        preset: String,
        needed: u64,
        free: u64,
        reserve: u64,
    },
    #[error("unsafe model path: {0}")]
    UnsafePath(#[from] UnsafePath),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Why a running transfer was told to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopReason {
    Pause,
    Cancel,
    Shutdown,
}

/// Live figures of one running transfer.
#[derive(Debug)]
struct Meter {
    figures: TransferFigures,
    last_sample: Option<(Instant, u64)>,
    last_emit: Option<Instant>,
    last_save: Instant,
}

impl Meter {
    fn new() -> Meter {
        Meter {
            figures: TransferFigures::default(),
            last_sample: None,
            last_emit: None,
            last_save: Instant::now(),
        }
    }

    /// Folds a new byte count into the smoothed speed (an exponential moving average over
    /// samples at least 250 ms apart, so bursts of small chunks do not make it jump).
    fn update(&mut self, bytes_done: u64, total: Option<u64>, now: Instant) {
        self.figures.bytes_done = bytes_done;
        self.figures.total_bytes = total;
        match self.last_sample {
            None => self.last_sample = Some((now, bytes_done)),
            Some((at, bytes)) => {
                let elapsed = now.duration_since(at).as_secs_f64();
                if elapsed >= 0.25 {
                    let rate = bytes_done.saturating_sub(bytes) as f64 / elapsed;
                    let speed = if self.figures.speed_bps == 0 {
                        rate
                    } else {
                        0.3 * rate + 0.7 * self.figures.speed_bps as f64
                    };
                    self.figures.speed_bps = speed.round() as u64;
                    self.last_sample = Some((now, bytes_done));
                }
            }
        }
        self.figures.eta_secs = self.figures.implied_eta_secs();
    }

    fn should_emit(&mut self, now: Instant) -> bool {
        match self.last_emit {
            Some(at) if now.duration_since(at) < EVENT_INTERVAL => false,
            _ => {
                self.last_emit = Some(now);
                true
            }
        }
    }
}

struct RunningTask {
    stop: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
    meter: Arc<Mutex<Meter>>,
    finished: Arc<Notify>,
}

pub struct DownloadManager {
    store: Store,
    events: EventBus,
    fetcher: Fetcher,
    catalog: CatalogHandle,
    models_dir: PathBuf,
    config: DownloadConfig,
    running: Mutex<HashMap<i64, RunningTask>>,
    preset_emits: Mutex<HashMap<String, Instant>>,
    /// Wakes the scheduler: a task was queued, resumed or finished.
    wake: Notify,
    shutdown: CancellationToken,
}

impl DownloadManager {
    pub fn new(
        store: Store,
        events: EventBus,
        fetcher: Fetcher,
        catalog: CatalogHandle,
        models_dir: PathBuf,
        config: DownloadConfig,
    ) -> Arc<DownloadManager> {
        Arc::new(DownloadManager {
            store,
            events,
            fetcher,
            catalog,
            models_dir,
            config,
            running: Mutex::new(HashMap::new()),
            preset_emits: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            shutdown: CancellationToken::new(),
        })
    }

    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    pub fn config(&self) -> &DownloadConfig {
        &self.config
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.catalog.read().expect("catalog lock"))
    }

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
    ) -> Result<super::fetch::FetchOutcome, FetchError> {
        let dest = workspace::resolve_inside(&self.models_dir, &task.path)
            .map_err(|e| FetchError::Invalid(e.to_string()))?;
        adopt_existing_file(&dest, task.expected_size);
        let request = FetchRequest {
            url: task.url.clone(),
            dest,
            expected_size: task.expected_size,
            checksum: task.checksum.clone(),
            validator: Some(task.validator.clone()).filter(|v| *v != RemoteValidator::default()),
            connections: self.config.connections.max(1),
            segment_threshold: self.config.segment_threshold,
        };
        let observer = Arc::new(TaskObserver {
            manager: Arc::downgrade(self),
            task: task.clone(),
            meter,
            runtime: tokio::runtime::Handle::current(),
        });
        self.fetcher.fetch(&request, observer, stop).await
    }

    async fn finish(
        self: &Arc<Self>,
        task: &TaskRow,
        result: Result<super::fetch::FetchOutcome, FetchError>,
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

    // -----------------------------------------------------------------------------------------
    // Presets
    // -----------------------------------------------------------------------------------------

    /// Ids of requested presets whose required files include `path`.
    fn presets_needing(&self, path: &str) -> Vec<String> {
        let catalog = self.catalog();
        catalog
            .presets
            .values()
            .filter(|p| p.files.iter().any(|f| !f.optional && f.path == path))
            .map(|p| p.id.clone())
            .collect()
    }

    fn preset(&self, id: &str) -> Result<Preset, DownloadError> {
        self.catalog()
            .get(id)
            .cloned()
            .ok_or_else(|| DownloadError::UnknownPreset(id.to_string()))
    }

    /// Queues every required file of the preset that is not installed yet, after checking
    /// that the volume has room for what remains (plus what is already queued).
    pub async fn install_preset(self: &Arc<Self>, id: &str) -> Result<PresetView, DownloadError> {
        let preset = self.preset(id)?;
        // Files that finish after this instant were not installed in the snapshot.
        let decided_ms = now_ms();
        let snapshot = self.snapshot().await?;
        let needed = remaining_bytes(&preset, &snapshot, &self.models_dir);
        let queued_elsewhere: u64 = snapshot
            .tasks
            .values()
            .filter(|t| !preset.files.iter().any(|f| f.path == t.path))
            .map(|t| {
                let total = t.validator.total_bytes.or(t.expected_size).unwrap_or(0);
                total.saturating_sub(part_len(&self.models_dir.join(&t.path)))
            })
            .sum();
        let space = self.space();
        if needed + queued_elsewhere > space.usable_bytes() {
            return Err(DownloadError::NotEnoughSpace {
                preset: preset.name.clone(),
                needed: needed + queued_elsewhere,
                free: space.free_bytes,
                reserve: space.reserve_bytes,
            });
        }
        let now = now_ms();
        // Recorded so a newer catalog or registry version later shows "update available".
        let version = self
            .catalog()
            .latest_version(&preset.id)
            .map(str::to_string)
            .or_else(|| preset.version.clone());
        self.store
            .request_preset(&preset.id, version.as_deref(), now)
            .await?;
        let mut tasks = Vec::new();
        for file in preset.files.iter().filter(|f| !f.optional) {
            if snapshot.file_state(&file.path, &self.models_dir) == FileState::Installed {
                continue;
            }
            workspace::check_relative_path(&file.path)?;
            tasks.push(NewTask {
                url: file.url.clone(),
                path: file.path.clone(),
                expected_size: file.size_bytes,
                checksum: file.checksum.clone(),
                // Small files first: a text encoder and a VAE are usable long before the 20 GB
                // model arrives, and a failure shows up early.
                priority: (file.size_bytes.unwrap_or(u64::MAX / 2) / (1024 * 1024)) as i64,
            });
        }
        let queued = self
            .store
            .upsert_tasks(&tasks, Some(decided_ms), now)
            .await?
            .len();
        if queued == 0 {
            self.complete_presets_of_preset(&preset).await;
        } else {
            self.store.start_history(&preset.id, now).await?;
            self.record(format!(
                "Started installing {} ({} file{}, {})",
                preset.name,
                queued,
                if queued == 1 { "" } else { "s" },
                format_bytes(needed)
            ))
            .await;
            self.wake.notify_one();
        }
        self.emit_preset_now(&preset).await;
        self.preset_view(&preset.id).await
    }

    /// Pauses every task of the preset.
    pub async fn pause_preset(self: &Arc<Self>, id: &str) -> Result<(), DownloadError> {
        let preset = self.preset(id)?;
        for task in self.tasks_of(&preset).await? {
            self.pause_task(task.id).await?;
        }
        Ok(())
    }

    pub async fn resume_preset(self: &Arc<Self>, id: &str) -> Result<(), DownloadError> {
        let preset = self.preset(id)?;
        for task in self.tasks_of(&preset).await? {
            self.resume_task(task.id).await?;
        }
        Ok(())
    }

    /// Cancels the preset's downloads that no other requested preset needs, and forgets the
    /// request. Installed files stay (use [`remove_preset`](Self::remove_preset) for those).
    pub async fn cancel_preset(
        self: &Arc<Self>,
        id: &str,
        delete_parts: bool,
    ) -> Result<(), DownloadError> {
        let preset = self.preset(id)?;
        let keep = self.paths_needed_by_others(&preset.id).await?;
        for task in self.tasks_of(&preset).await? {
            if !keep.contains(&task.path) {
                self.cancel_task(task.id, delete_parts).await?;
            }
        }
        self.store.forget_preset(&preset.id).await?;
        self.store
            .finish_history(&preset.id, "cancelled", 0, None, now_ms())
            .await?;
        self.record(format!("Cancelled installing {}", preset.name))
            .await;
        self.emit_preset_now(&preset).await;
        Ok(())
    }

    /// Removes the preset's files that no other requested preset needs (never anything
    /// outside the models folder), cancels its downloads and forgets the request.
    pub async fn remove_preset(self: &Arc<Self>, id: &str) -> Result<RemoveReport, DownloadError> {
        let preset = self.preset(id)?;
        let keep = self.paths_needed_by_others(&preset.id).await?;
        for task in self.tasks_of(&preset).await? {
            if !keep.contains(&task.path) {
                self.cancel_task(task.id, true).await?;
            }
        }
        let mut report = RemoveReport::default();
        for file in &preset.files {
            if keep.contains(&file.path) {
                report.kept_shared.push(file.path.clone());
                continue;
            }
            let path = workspace::resolve_inside(&self.models_dir, &file.path)?;
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_file() || meta.file_type().is_symlink() => {
                    std::fs::remove_file(&path).map_err(|source| DownloadError::Io {
                        path: path.clone(),
                        source,
                    })?;
                    report.freed_bytes += meta.len();
                    report.removed.push(file.path.clone());
                    remove_empty_parents(&path, &self.models_dir);
                }
                _ => {}
            }
            self.store.forget_installed_file(&file.path).await?;
        }
        self.store.forget_preset(&preset.id).await?;
        let now = now_ms();
        self.store
            .finish_history(&preset.id, "cancelled", 0, None, now)
            .await?;
        let message = format!(
            "Removed {}: {} file{} ({}){}",
            preset.name,
            report.removed.len(),
            if report.removed.len() == 1 { "" } else { "s" },
            format_bytes(report.freed_bytes),
            if report.kept_shared.is_empty() {
                String::new()
            } else {
                format!(
                    "; kept {} shared with other presets",
                    report.kept_shared.join(", ")
                )
            }
        );
        self.store
            .add_history(&preset.id, "removed", Some(&message), now)
            .await?;
        self.record(message).await;
        self.emit_preset_now(&preset).await;
        Ok(report)
    }

    async fn tasks_of(&self, preset: &Preset) -> Result<Vec<TaskRow>, DownloadError> {
        let paths: HashSet<&str> = preset.files.iter().map(|f| f.path.as_str()).collect();
        Ok(self
            .store
            .tasks()
            .await?
            .into_iter()
            .filter(|t| paths.contains(t.path.as_str()))
            .collect())
    }

    /// Required paths of every other requested preset.
    async fn paths_needed_by_others(
        &self,
        preset_id: &str,
    ) -> Result<HashSet<String>, DownloadError> {
        let catalog = self.catalog();
        let mut keep = HashSet::new();
        for (other, _, _) in self.store.requested_presets().await? {
            if other == preset_id {
                continue;
            }
            if let Some(p) = catalog.get(&other) {
                if p.id == preset_id {
                    continue;
                }
                keep.extend(
                    p.files
                        .iter()
                        .filter(|f| !f.optional)
                        .map(|f| f.path.clone()),
                );
            }
        }
        Ok(keep)
    }

    // -----------------------------------------------------------------------------------------
    // Single tasks
    // -----------------------------------------------------------------------------------------

    /// Queues one file that belongs to no preset (the `download` command).
    pub async fn enqueue_file(self: &Arc<Self>, task: NewTask) -> Result<i64, DownloadError> {
        workspace::resolve_inside(&self.models_dir, &task.path)?;
        let id = self.store.upsert_task(&task, now_ms()).await?;
        self.wake.notify_one();
        Ok(id)
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

    fn figures_from_disk(&self, task: &TaskRow) -> TransferFigures {
        TransferFigures {
            bytes_done: part_len(&self.models_dir.join(&task.path)),
            total_bytes: task.validator.total_bytes.or(task.expected_size),
            speed_bps: 0,
            eta_secs: None,
        }
    }

    // -----------------------------------------------------------------------------------------
    // State and views
    // -----------------------------------------------------------------------------------------

    /// Everything a view needs, read once.
    async fn snapshot(&self) -> Result<Snapshot, DownloadError> {
        let tasks = self.store.tasks().await?;
        let installed = self.store.installed_files().await?;
        let requested = self.store.requested_presets().await?;
        let running: HashMap<i64, TransferFigures> = self
            .running
            .lock()
            .expect("running lock")
            .iter()
            .map(|(id, t)| (*id, t.meter.lock().expect("meter lock").figures.clone()))
            .collect();
        Ok(Snapshot {
            tasks: tasks.into_iter().map(|t| (t.path.clone(), t)).collect(),
            installed: installed.into_iter().map(|f| (f.path.clone(), f)).collect(),
            requested: requested
                .into_iter()
                .map(|(id, version, installed)| (id, (version, installed)))
                .collect(),
            running,
        })
    }

    pub async fn preset_view(&self, id: &str) -> Result<PresetView, DownloadError> {
        let preset = self.preset(id)?;
        let snapshot = self.snapshot().await?;
        Ok(self.view_of(&preset, &snapshot, &[]))
    }

    pub async fn preset_views(
        &self,
        gpu_vram_bytes: &[u64],
    ) -> Result<Vec<PresetView>, DownloadError> {
        let catalog = self.catalog();
        let snapshot = self.snapshot().await?;
        Ok(catalog
            .presets
            .values()
            .map(|p| self.view_of(p, &snapshot, gpu_vram_bytes))
            .collect())
    }

    fn view_of(&self, preset: &Preset, snapshot: &Snapshot, gpu_vram_bytes: &[u64]) -> PresetView {
        let files: Vec<PresetFileView> = preset
            .files
            .iter()
            .map(|file| {
                let state = snapshot.file_state(&file.path, &self.models_dir);
                let task = snapshot.tasks.get(&file.path);
                let figures = match (task, state) {
                    (Some(task), _) => snapshot
                        .running
                        .get(&task.id)
                        .cloned()
                        .unwrap_or_else(|| self.figures_from_disk(task)),
                    (None, FileState::Installed) => {
                        let size = snapshot.installed.get(&file.path).map(|f| f.size);
                        TransferFigures {
                            bytes_done: size.unwrap_or(0),
                            total_bytes: size,
                            speed_bps: 0,
                            eta_secs: None,
                        }
                    }
                    _ => TransferFigures::default(),
                };
                PresetFileView {
                    path: file.path.clone(),
                    size_bytes: file.size_bytes,
                    optional: file.optional,
                    state,
                    figures,
                    error: task.and_then(|t| t.last_error.clone()),
                    task_id: task.map(|t| t.id),
                }
            })
            .collect();
        let catalog = self.catalog();
        let update_available = snapshot
            .requested
            .get(&preset.id)
            .and_then(|(version, _)| version.as_deref())
            .is_some_and(|installed| catalog.update_available(&preset.id, installed));
        let state = preset_state(&files, update_available);
        let error = files
            .iter()
            .filter(|f| !f.optional)
            .find_map(|f| f.error.clone());
        PresetView {
            id: preset.id.clone(),
            aliases: preset.aliases.clone(),
            name: preset.name.clone(),
            category: preset.category.clone(),
            kind: preset.kind.clone(),
            description: preset.description.clone(),
            use_case: preset.use_case.clone(),
            tags: preset.tags.clone(),
            version: preset.version.clone(),
            download_bytes: preset.download_bytes,
            remaining_bytes: remaining_bytes(preset, snapshot, &self.models_dir),
            vram_gb: preset.vram_gb,
            vram_fit: crate::catalog::vram_fit(preset.vram_gb, gpu_vram_bytes),
            state,
            files,
            layer: match preset.layer {
                crate::catalog::CatalogLayer::Builtin => "builtin",
                crate::catalog::CatalogLayer::Remote => "remote",
                crate::catalog::CatalogLayer::Workspace => "workspace",
            }
            .to_string(),
            error,
        }
    }

    /// Space as the preflight sees it (quota-aware).
    pub fn space(&self) -> VolumeSpace {
        let mut walk = crate::metrics::disk::WalkCache::default();
        let disk = crate::metrics::disk::read_disk(
            &self.models_dir,
            self.config.volume_quota_bytes,
            &mut walk,
            Instant::now(),
        );
        VolumeSpace {
            total_bytes: disk.total_bytes,
            used_bytes: disk.used_bytes,
            free_bytes: disk.free_bytes,
            reserve_bytes: self.config.disk_reserve,
        }
    }

    /// The models folder, grouped by its top-level folders, with the preset that provides
    /// each file when the catalog knows one. Part files are not models and are skipped.
    pub async fn model_folders(&self) -> Result<Vec<ModelFolderView>, DownloadError> {
        let installed: HashMap<String, InstalledFile> = self
            .store
            .installed_files()
            .await?
            .into_iter()
            .map(|f| (f.path.clone(), f))
            .collect();
        let catalog = self.catalog();
        let root = self.models_dir.clone();
        let files = tokio::task::spawn_blocking(move || list_model_files(&root))
            .await
            .unwrap_or_default();
        let mut folders: BTreeMap<String, ModelFolderView> = BTreeMap::new();
        for (path, bytes, mtime_ms) in files {
            let folder = path.split('/').next().unwrap_or("").to_string();
            let verified = installed
                .get(&path)
                .is_some_and(|f| f.size == bytes && f.mtime_ms == mtime_ms);
            let entry = folders
                .entry(folder.clone())
                .or_insert_with(|| ModelFolderView {
                    name: folder,
                    bytes: 0,
                    files: Vec::new(),
                });
            entry.bytes += bytes;
            entry.files.push(ModelFileView {
                preset_id: catalog.preset_for_model(&path).map(str::to_string),
                path,
                bytes,
                verified,
            });
        }
        Ok(folders.into_values().collect())
    }

    // -----------------------------------------------------------------------------------------
    // Events and activity
    // -----------------------------------------------------------------------------------------

    async fn record(&self, message: String) {
        record_activity(&self.store, &self.events, ActivityKind::Download, message).await
    }

    fn emit_file(
        &self,
        task: &TaskRow,
        state: FileState,
        figures: TransferFigures,
        error: Option<String>,
    ) {
        self.events.publish(Event::Download(FileProgress {
            task_id: task.id,
            path: task.path.clone(),
            state,
            figures,
            error,
        }));
    }

    /// Pushes the aggregate of every preset that includes `path`; `force` skips the throttle
    /// (state changes must always arrive).
    async fn emit_presets_of(&self, path: &str, force: bool) {
        let catalog = self.catalog();
        let presets: Vec<&Preset> = catalog
            .presets
            .values()
            .filter(|p| p.files.iter().any(|f| f.path == path))
            .collect();
        if presets.is_empty() {
            return;
        }
        let now = Instant::now();
        let due: Vec<&Preset> = {
            let mut emits = self.preset_emits.lock().expect("emit lock");
            presets
                .into_iter()
                .filter(|p| {
                    let last = emits.get(&p.id).copied();
                    let due =
                        force || last.is_none_or(|at| now.duration_since(at) >= EVENT_INTERVAL);
                    if due {
                        emits.insert(p.id.clone(), now);
                    }
                    due
                })
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let Ok(snapshot) = self.snapshot().await else {
            return;
        };
        for preset in due {
            self.publish_preset(preset, &snapshot);
        }
    }

    async fn emit_preset_now(&self, preset: &Preset) {
        if let Ok(snapshot) = self.snapshot().await {
            self.publish_preset(preset, &snapshot);
        }
    }

    fn publish_preset(&self, preset: &Preset, snapshot: &Snapshot) {
        let view = self.view_of(preset, snapshot, &[]);
        self.events
            .publish(Event::Preset(PresetProgress::of_view(&view)));
    }

    /// After a file is verified: every requested preset that is now complete is marked
    /// installed, with history and activity.
    async fn complete_presets_of(&self, path: &str) {
        let catalog = self.catalog();
        for preset in catalog
            .presets
            .values()
            .filter(|p| p.files.iter().any(|f| f.path == path))
        {
            self.complete_presets_of_preset(preset).await;
        }
    }

    async fn complete_presets_of_preset(&self, preset: &Preset) {
        let Ok(snapshot) = self.snapshot().await else {
            return;
        };
        let complete = preset
            .files
            .iter()
            .filter(|f| !f.optional)
            .all(|f| snapshot.file_state(&f.path, &self.models_dir) == FileState::Installed);
        let requested = snapshot.requested.contains_key(&preset.id);
        if complete && requested {
            let now = now_ms();
            if let Ok(true) = self.store.mark_preset_installed(&preset.id, now).await {
                let bytes: u64 = preset
                    .files
                    .iter()
                    .filter(|f| !f.optional)
                    .filter_map(|f| snapshot.installed.get(&f.path).map(|i| i.size))
                    .sum();
                let _ = self
                    .store
                    .finish_history(&preset.id, "installed", bytes, None, now)
                    .await;
                self.record(format!(
                    "Installed {} ({}), every file verified",
                    preset.name,
                    format_bytes(bytes)
                ))
                .await;
            }
        }
        self.publish_preset(preset, &snapshot);
    }

    async fn fail_presets_of(&self, path: &str, message: &str) {
        let catalog = self.catalog();
        let Ok(requested) = self.store.requested_presets().await else {
            return;
        };
        for (id, _, _) in requested {
            let Some(preset) = catalog.get(&id) else {
                continue;
            };
            if !preset.files.iter().any(|f| f.path == path) {
                continue;
            }
            let now = now_ms();
            if let Ok(true) = self
                .store
                .finish_history(&preset.id, "failed", 0, Some(message), now)
                .await
            {
                record_activity(
                    &self.store,
                    &self.events,
                    ActivityKind::Error,
                    format!("Installing {} failed: {path}: {message}", preset.name),
                )
                .await;
            }
        }
        self.emit_presets_of(path, true).await;
    }
}

/// What [`DownloadManager::remove_preset`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoveReport {
    pub removed: Vec<String>,
    pub kept_shared: Vec<String>,
    pub freed_bytes: u64,
}

struct Snapshot {
    tasks: HashMap<String, TaskRow>,
    installed: HashMap<String, InstalledFile>,
    /// Requested presets: `(version asked for, installed?)`.
    requested: HashMap<String, (Option<String>, bool)>,
    running: HashMap<i64, TransferFigures>,
}

impl Snapshot {
    fn file_state(&self, path: &str, models_dir: &Path) -> FileState {
        if let Some(task) = self.tasks.get(path) {
            return match task.state {
                TaskState::Queued => FileState::Queued,
                TaskState::Downloading => FileState::Downloading,
                TaskState::Paused => FileState::Paused,
                TaskState::Failed => FileState::Failed,
            };
        }
        match self.installed.get(path) {
            // Size and mtime as recorded at verification: trusted without re-hashing.
            Some(record) => {
                let on_disk = models_dir.join(path);
                match std::fs::metadata(&on_disk) {
                    Ok(meta)
                        if meta.is_file()
                            && meta.len() == record.size
                            && file_mtime_ms(&on_disk) == Some(record.mtime_ms) =>
                    {
                        FileState::Installed
                    }
                    _ => FileState::Missing,
                }
            }
            None => FileState::Missing,
        }
    }
}

/// A preset's state from its files' states. `update_available`: the catalog (or the remote
/// registry) has a newer version than the one installed.
fn preset_state(files: &[PresetFileView], update_available: bool) -> InstallState {
    let required: Vec<&PresetFileView> = files.iter().filter(|f| !f.optional).collect();
    let any = |state: FileState| required.iter().any(|f| f.state == state);
    if !required.is_empty() && required.iter().all(|f| f.state == FileState::Installed) {
        return if update_available {
            InstallState::UpdateAvailable
        } else {
            InstallState::Installed
        };
    }
    if any(FileState::Downloading) {
        InstallState::Downloading
    } else if any(FileState::Queued) {
        InstallState::Queued
    } else if any(FileState::Paused) {
        InstallState::Paused
    } else if any(FileState::Failed) {
        InstallState::Failed
    } else if any(FileState::Installed) {
        InstallState::Partial
    } else {
        InstallState::NotInstalled
    }
}

/// Bytes still to fetch for the preset's required files: nothing for installed files, the
/// rest of the size for partial ones.
fn remaining_bytes(preset: &Preset, snapshot: &Snapshot, models_dir: &Path) -> u64 {
    preset
        .files
        .iter()
        .filter(|f| !f.optional)
        .filter(|f| snapshot.file_state(&f.path, models_dir) != FileState::Installed)
        .map(|f| {
            let total = snapshot
                .tasks
                .get(&f.path)
                .and_then(|t| t.validator.total_bytes)
                .or(f.size_bytes)
                .unwrap_or(0);
            total.saturating_sub(part_len(&models_dir.join(&f.path)))
        })
        .sum()
}

fn part_len(dest: &Path) -> u64 {
    // A segmented part is preallocated: its length is not progress; the sidecar says.
    if segments_path(dest).exists() {
        return 0;
    }
    std::fs::metadata(part_path(dest))
        .map(|m| m.len())
        .unwrap_or(0)
}

pub(crate) fn file_mtime_ms(path: &Path) -> Option<i64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(
        modified
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_millis() as i64,
    )
}

fn verified_label(by: super::fetch::VerifiedBy) -> &'static str {
    match by {
        super::fetch::VerifiedBy::PresetChecksum => "checksum",
        super::fetch::VerifiedBy::LinkedEtag => "Hugging Face sha256",
        super::fetch::VerifiedBy::SizeOnly => "size",
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

/// Removes now-empty folders between a deleted file and the models folder (never the models
/// folder or its top-level folders, which ComfyUI expects).
fn remove_empty_parents(file: &Path, models_dir: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == models_dir || d.parent() == Some(models_dir) {
            break;
        }
        if std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// `(relative path, bytes, mtime ms)` of every regular file under the models folder, without
/// following symlinks or listing part files. Depth-limited, as a guard against odd trees.
fn list_model_files(root: &Path) -> Vec<(String, u64, i64)> {
    const MAX_DEPTH: usize = 8;
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                if depth < MAX_DEPTH {
                    stack.push((path, depth + 1));
                }
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".part") || name.ends_with(".part.segments") || name.starts_with('.')
            {
                continue;
            }
            let Ok(relative) = path.strip_prefix(root) else {
                continue;
            };
            let relative = relative.to_string_lossy().replace('\\', "/");
            // Files directly in models/ (not in a folder) are not models ComfyUI loads.
            if !relative.contains('/') {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            out.push((relative, meta.len(), file_mtime_ms(&path).unwrap_or(0)));
        }
    }
    out.sort();
    out
}

/// Feeds a running transfer's progress into its meter, the database and the event bus.
struct TaskObserver {
    manager: std::sync::Weak<DownloadManager>,
    task: TaskRow,
    meter: Arc<Mutex<Meter>>,
    runtime: tokio::runtime::Handle,
}

impl FetchObserver for TaskObserver {
    fn resolved(&self, validator: &RemoteValidator) {
        let Some(manager) = self.manager.upgrade() else {
            return;
        };
        let validator = validator.clone();
        let id = self.task.id;
        self.runtime.spawn(async move {
            if let Err(e) = manager
                .store
                .save_task_validator(id, &validator, now_ms())
                .await
            {
                tracing::warn!(error = %e, "cannot save download validators");
            }
        });
    }

    fn progress(&self, bytes_done: u64, total: Option<u64>) {
        let now = Instant::now();
        let (emit, save, figures) = {
            let mut meter = self.meter.lock().expect("meter lock");
            meter.update(bytes_done, total, now);
            let save = now.duration_since(meter.last_save) >= SAVE_INTERVAL;
            if save {
                meter.last_save = now;
            }
            (meter.should_emit(now), save, meter.figures.clone())
        };
        if !emit && !save {
            return;
        }
        let Some(manager) = self.manager.upgrade() else {
            return;
        };
        if emit {
            manager.emit_file(&self.task, FileState::Downloading, figures, None);
        }
        let path = self.task.path.clone();
        let id = self.task.id;
        self.runtime.spawn(async move {
            if emit {
                manager.emit_presets_of(&path, false).await;
            }
            if save {
                let _ = manager.store.save_task_bytes(id, bytes_done).await;
            }
        });
    }

    fn retrying(&self, attempt: u32, delay: Duration, reason: &str) {
        tracing::info!(path = %self.task.path, attempt, delay_ms = delay.as_millis() as u64, reason, "download retry");
        if let Some(manager) = self.manager.upgrade() {
            let figures = self.meter.lock().expect("meter lock").figures.clone();
            manager.emit_file(
                &self.task,
                FileState::Downloading,
                figures,
                Some(format!(
                    "{reason}; retrying in {} s",
                    delay.as_secs().max(1)
                )),
            );
        }
    }
}
