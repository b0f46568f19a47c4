//! The pod at a glance: system metrics and ComfyUI's reachability (each cached for a few
//! seconds), the ComfyUI process when comfydeck supervises it, Home's summary and `/health`.

use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use crate::activity::{ActivityError, ActivityLog};
use crate::clock::now_ms;
use crate::comfy::supervisor::Supervisor;
use crate::comfy::ComfyClient;
use crate::error::Classify;
use crate::metrics::MetricsSampler;
use crate::model::*;
use crate::store::Store;
use crate::workspace;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// How often metrics are sampled while someone watches.
pub const METRICS_INTERVAL: Duration = Duration::from_secs(2);
/// How long ComfyUI's status is trusted before asking again.
pub const COMFY_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(
        "ComfyUI is not started by comfydeck (set COMFYUI_DIR to let it); restart it where it runs"
    )]
    NotSupervised,
    #[error("only an administrator can restart ComfyUI")]
    Forbidden,
    #[error(transparent)]
    Activity(#[from] ActivityError),
}

impl Classify for StatusError {
    fn kind(&self) -> ErrorKind {
        match self {
            StatusError::NotSupervised => ErrorKind::Invalid,
            StatusError::Forbidden => ErrorKind::Forbidden,
            StatusError::Activity(e) => e.kind(),
        }
    }
}

pub struct StatusService {
    sampler: Arc<Mutex<MetricsSampler>>,
    latest_stats: RwLock<Option<SystemStats>>,
    comfy: ComfyClient,
    latest_comfy: RwLock<Option<ComfyStatus>>,
    /// Set once at start-up when `COMFYUI_DIR` is configured.
    supervisor: OnceLock<Arc<Supervisor>>,
    store: Store,
    activity: ActivityLog,
    workspace_root: std::path::PathBuf,
    started: Instant,
}

impl StatusService {
    pub fn new(
        sampler: MetricsSampler,
        comfy: ComfyClient,
        store: Store,
        activity: ActivityLog,
        workspace_root: std::path::PathBuf,
    ) -> Self {
        StatusService {
            sampler: Arc::new(Mutex::new(sampler)),
            latest_stats: RwLock::new(None),
            comfy,
            latest_comfy: RwLock::new(None),
            supervisor: OnceLock::new(),
            store,
            activity,
            workspace_root,
            started: Instant::now(),
        }
    }

    /// Hands over the supervised ComfyUI; `false` if one was already set.
    pub(crate) fn supervise(&self, supervisor: Arc<Supervisor>) -> bool {
        self.supervisor.set(supervisor).is_ok()
    }

    pub(crate) fn supervisor(&self) -> Option<&Arc<Supervisor>> {
        self.supervisor.get()
    }

    /// A fresh sample (or the last one if it is younger than the sampling interval).
    pub async fn system_stats(&self) -> SystemStats {
        let latest = self
            .latest_stats
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(stats) = latest {
            if now_ms() - stats.sampled_at_ms < METRICS_INTERVAL.as_millis() as i64 {
                return stats;
            }
        }
        self.sample_stats().await
    }

    /// Samples now, whatever the cache holds.
    pub async fn sample_stats(&self) -> SystemStats {
        let sampler = Arc::clone(&self.sampler);
        // Reading /proc, cgroups and NVML blocks; keep it off the async workers.
        let stats = tokio::task::spawn_blocking(move || {
            sampler
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .sample(now_ms())
        })
        .await
        .expect("metrics sampling does not panic");
        *self.latest_stats.write().unwrap_or_else(|p| p.into_inner()) = Some(stats.clone());
        stats
    }

    /// Total VRAM per GPU, largest first (empty without an NVIDIA GPU). Totals do not change,
    /// so the last sample of any age answers; only a process that never sampled samples now.
    pub async fn gpu_vram(&self) -> Vec<u64> {
        let latest = self
            .latest_stats
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|s| s.gpus.clone());
        let gpus = match latest {
            Some(gpus) => gpus,
            None => self.sample_stats().await.gpus,
        };
        let mut vram: Vec<u64> = match &gpus {
            GpuReport::Available { gpus } => gpus.iter().map(|g| g.memory_total_bytes).collect(),
            _ => Vec::new(),
        };
        vram.sort_unstable_by(|a, b| b.cmp(a));
        vram
    }

    /// ComfyUI's status, cached for a few seconds.
    pub async fn comfy_status(&self) -> ComfyStatus {
        let cached = self
            .latest_comfy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(status) = cached {
            if now_ms() - status.checked_at_ms < COMFY_INTERVAL.as_millis() as i64 {
                return status;
            }
        }
        self.refresh_comfy_status().await
    }

    /// Asks ComfyUI now, whatever the cache holds.
    pub async fn refresh_comfy_status(&self) -> ComfyStatus {
        let status = self.comfy.status(now_ms()).await;
        *self.latest_comfy.write().unwrap_or_else(|p| p.into_inner()) = Some(status.clone());
        status
    }

    /// The ComfyUI process as Home shows it: supervised, or `external` with reachability.
    pub async fn comfy_process(&self) -> ComfyProcess {
        match self.supervisor.get() {
            Some(supervisor) => supervisor.state(),
            None => ComfyProcess {
                state: ComfyProcessState::External {
                    reachable: self.comfy_status().await.reachable,
                },
                log_tail: Vec::new(),
                restarts: 0,
            },
        }
    }

    /// "Restart ComfyUI": only when comfydeck runs it, and only for an administrator.
    pub async fn restart_comfyui(&self, caller: &Caller) -> Result<ComfyProcess, StatusError> {
        if !caller.is_admin() {
            return Err(StatusError::Forbidden);
        }
        let supervisor = self.supervisor.get().ok_or(StatusError::NotSupervised)?;
        self.activity
            .record(ActivityKind::System, "ComfyUI restart requested")
            .await;
        supervisor.restart().await;
        Ok(supervisor.state())
    }

    /// Home: the pod's health for everyone; the recent activity the caller may see.
    pub async fn home_status(&self, caller: &Caller) -> Result<HomeStatus, StatusError> {
        let (stats, comfy, recent) = tokio::join!(
            self.system_stats(),
            self.comfy_status(),
            self.activity.recent(caller, 8)
        );
        Ok(HomeStatus {
            stats,
            comfy_process: self.comfy_process().await,
            comfy,
            recent_activity: recent?,
        })
    }

    pub async fn health(&self) -> HealthReport {
        let database = match self.store.ping().await {
            Ok(()) => ComponentHealth {
                ok: true,
                detail: "SQLite answers".into(),
            },
            Err(e) => ComponentHealth {
                ok: false,
                detail: e.to_string(),
            },
        };
        let root = self.workspace_root.clone();
        let workspace =
            match tokio::task::spawn_blocking(move || workspace::check_writable(&root)).await {
                Ok(Ok(())) => ComponentHealth {
                    ok: true,
                    detail: format!("{} is writable", self.workspace_root.display()),
                },
                Ok(Err(e)) => ComponentHealth {
                    ok: false,
                    detail: e.to_string(),
                },
                Err(e) => ComponentHealth {
                    ok: false,
                    detail: format!("check failed: {e}"),
                },
            };
        let comfyui = self.comfy_status().await;
        let ok = database.ok && workspace.ok;
        HealthReport {
            status: if ok { "ok" } else { "degraded" }.into(),
            version: VERSION.into(),
            uptime_s: self.started.elapsed().as_secs(),
            database,
            workspace,
            comfyui,
        }
    }
}
