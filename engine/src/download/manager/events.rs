//! What the manager tells others: the live meter of each running transfer, fed by the
//! fetcher's observer; file and preset progress events, throttled; activity lines.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::views::Snapshot;
use super::DownloadManager;
use crate::catalog::Preset;
use crate::clock::now_ms;
use crate::download::fetch::{FetchObserver, RemoteValidator};
use crate::download::queue::TaskRow;
use crate::events::record_activity;
use crate::model::*;

/// At most this many events per second per task and per preset.
const EVENT_INTERVAL: Duration = Duration::from_millis(500);

/// Progress is written to the database this often (the part file is the truth; this only
/// feeds listings of tasks that are not running).
const SAVE_INTERVAL: Duration = Duration::from_secs(5);

/// Live figures of one running transfer.
#[derive(Debug)]
pub(super) struct Meter {
    pub(super) figures: TransferFigures,
    last_sample: Option<(Instant, u64)>,
    last_emit: Option<Instant>,
    last_save: Instant,
}

impl Meter {
    pub(super) fn new() -> Meter {
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

impl DownloadManager {
    pub(super) async fn record(&self, message: String) {
        record_activity(&self.store, &self.events, ActivityKind::Download, message).await
    }

    pub(super) fn emit_file(
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
    pub(super) async fn emit_presets_of(&self, path: &str, force: bool) {
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

    pub(super) async fn emit_preset_now(&self, preset: &Preset) {
        if let Ok(snapshot) = self.snapshot().await {
            self.publish_preset(preset, &snapshot);
        }
    }

    pub(super) fn publish_preset(&self, preset: &Preset, snapshot: &Snapshot) {
        let view = self.view_of(preset, snapshot, &[]);
        self.events
            .publish(Event::Preset(PresetProgress::of_view(&view)));
    }
}

/// Feeds a running transfer's progress into its meter, the database and the event bus.
pub(super) struct TaskObserver {
    pub(super) manager: std::sync::Weak<DownloadManager>,
    pub(super) task: TaskRow,
    pub(super) meter: Arc<Mutex<Meter>>,
    pub(super) runtime: tokio::runtime::Handle,
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
