//! The pod's resources, ComfyUI's reachability, the Home page's status and `/health`.

use serde::{Deserialize, Serialize};

use super::tagged::{required, unknown_variant};

use super::{ActivityEntry, ComfyProcess};

/// One sample of the pod's resources, taken by `metrics`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemStats {
    pub sampled_at_ms: i64,
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub disk: DiskStats,
    pub gpus: GpuReport,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CpuStats {
    /// Busy share of the CPUs this process may use, 0–100.
    pub percent: f32,
    /// How many CPUs that share is measured against (a cgroup quota such as 2.5, or the host's).
    pub cores: f32,
}

/// Where a memory figure came from: containers must be judged by their cgroup limit, not the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemorySource {
    CgroupV2,
    CgroupV1,
    Host,
}

impl MemorySource {
    pub fn label(self) -> &'static str {
        match self {
            MemorySource::CgroupV2 => "container limit (cgroup v2)",
            MemorySource::CgroupV1 => "container limit (cgroup v1)",
            MemorySource::Host => "host memory",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemoryStats {
    pub used_bytes: u64,
    pub limit_bytes: u64,
    pub source: MemorySource,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiskStats {
    pub path: String,
    pub used_bytes: u64,
    pub total_bytes: u64,
    pub free_bytes: u64,
    /// True when `total_bytes` is the `RUNPOD_VOLUME_GB` quota rather than the filesystem size.
    pub quota_from_env: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", try_from = "GpuReportFields")]
pub enum GpuReport {
    Available {
        gpus: Vec<GpuStats>,
    },
    /// NVML could not be loaded or found no device; `reason` says why, for the curious.
    Unavailable {
        reason: String,
    },
}

/// Every field of every [`GpuReport`], read flat (see `tagged.rs`).
#[derive(Deserialize)]
struct GpuReportFields {
    state: String,
    gpus: Option<Vec<GpuStats>>,
    reason: Option<String>,
}

impl TryFrom<GpuReportFields> for GpuReport {
    type Error = String;

    fn try_from(f: GpuReportFields) -> Result<Self, String> {
        let state = f.state.as_str();
        Ok(match state {
            "available" => GpuReport::Available {
                gpus: required(f.gpus, state, "gpus")?,
            },
            "unavailable" => GpuReport::Unavailable {
                reason: required(f.reason, state, "reason")?,
            },
            other => return Err(unknown_variant(other, &["available", "unavailable"])),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpuStats {
    pub index: u32,
    pub name: String,
    pub utilization_percent: Option<u32>,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    pub temperature_c: Option<u32>,
    pub power_watts: Option<f32>,
    pub power_limit_watts: Option<f32>,
}

/// What comfydeck knows about the ComfyUI server it talks to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComfyStatus {
    pub url: String,
    pub reachable: bool,
    pub version: Option<String>,
    /// Prompts running or waiting, from ComfyUI's `/prompt` (`exec_info.queue_remaining`).
    pub queue_remaining: Option<u64>,
    /// Why it is unreachable, in words.
    pub error: Option<String>,
    pub checked_at_ms: i64,
}

/// Everything the Home page shows, in one round trip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HomeStatus {
    pub stats: SystemStats,
    pub comfy: ComfyStatus,
    /// The ComfyUI process: supervised by comfydeck, or `external`.
    pub comfy_process: ComfyProcess,
    pub recent_activity: Vec<ActivityEntry>,
}

/// `GET /health`: each component's state. The dashboard is healthy when its own parts work;
/// ComfyUI is reported but never makes it unhealthy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// `ok` or `degraded`.
    pub status: String,
    pub version: String,
    pub uptime_s: u64,
    pub database: ComponentHealth,
    pub workspace: ComponentHealth,
    pub comfyui: ComfyStatus,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComponentHealth {
    pub ok: bool,
    pub detail: String,
}
