//! The download manager: runs queued tasks (a few at a time), turns transfer results into
//! installed files, aggregates presets, and pushes throttled progress events.
//!
//! One file per seam, each adding to [`DownloadManager`]: `scheduler` (the queue loop and the
//! workers that run transfers and record their outcome), `tasks` (one task: queue, pause,
//! resume, cancel), `presets` (install, pause, resume, cancel, remove and completion of whole
//! presets), `views` (the state read once per view: preset and file states, volume space, the
//! models folder) and `events` (live meters, throttled file and preset progress, activity).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::fetch::Fetcher;
use crate::catalog::Catalog;
use crate::config::{self, Config};
use crate::events::EventBus;
use crate::model::format_bytes;
use crate::store::{Store, StoreError};
use crate::workspace::UnsafePath;

mod events;
mod partials;
mod presets;
mod restore;
mod scheduler;
mod tasks;
mod views;

pub use partials::PartsCleaned;
pub use presets::RemoveReport;
pub use restore::PointKey;

use scheduler::RunningTask;

pub use crate::catalog::CatalogHandle;

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
    /// `HF_ENDPOINT`: tried before huggingface.co for Hugging Face links.
    pub hf_endpoint: Option<String>,
}

impl DownloadConfig {
    /// The download part of the engine's configuration.
    pub fn from_config(config: &Config) -> Self {
        DownloadConfig {
            concurrent: config.concurrent_downloads.max(1),
            connections: config.download_connections.max(1),
            segment_threshold: config.segment_threshold_bytes,
            disk_reserve: config.disk_reserve_bytes,
            volume_quota_bytes: config.volume_quota_bytes,
            hf_endpoint: config.hf_endpoint.clone(),
        }
    }
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            concurrent: config::DEFAULT_CONCURRENT_DOWNLOADS,
            connections: config::DEFAULT_DOWNLOAD_CONNECTIONS,
            segment_threshold: config::DEFAULT_SEGMENT_THRESHOLD_BYTES,
            disk_reserve: config::DEFAULT_DISK_RESERVE_BYTES,
            volume_quota_bytes: None,
            hf_endpoint: None,
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
    #[error("restore point {0} does not exist")]
    UnknownRestorePoint(i64),
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

impl crate::error::Classify for DownloadError {
    fn kind(&self) -> crate::model::ErrorKind {
        use crate::model::ErrorKind;
        match self {
            DownloadError::UnsafePath(_) | DownloadError::Invalid(_) => ErrorKind::Invalid,
            DownloadError::UnknownPreset(_)
            | DownloadError::UnknownTask(_)
            | DownloadError::UnknownRestorePoint(_) => ErrorKind::NotFound,
            // Not a server fault: the volume is too full for what was asked.
            DownloadError::NotEnoughSpace { .. } => ErrorKind::Conflict,
            DownloadError::Store(_) | DownloadError::Io { .. } => ErrorKind::Internal,
        }
    }
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
    /// The models folder's walk (with a volume quota) for views, reused for a minute like the
    /// metrics' own; the install check walks afresh.
    view_walk: Mutex<crate::metrics::disk::WalkCache>,
    /// Wakes the scheduler: a task was queued, resumed or finished.
    wake: Notify,
    shutdown: CancellationToken,
    /// Where restore points keep the files a preset install replaces; unset, no points are
    /// recorded (a worker's or a read-only manager).
    restore_dir: std::sync::OnceLock<PathBuf>,
    /// Held while a restore point is looked up and maybe created: two changes of one target
    /// at once (a preset install and its file) must share one point, not make two.
    opening_point: tokio::sync::Mutex<()>,
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
            view_walk: Mutex::new(Default::default()),
            wake: Notify::new(),
            shutdown: CancellationToken::new(),
            restore_dir: std::sync::OnceLock::new(),
            opening_point: tokio::sync::Mutex::new(()),
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
}
