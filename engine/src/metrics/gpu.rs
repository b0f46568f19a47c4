//! NVIDIA GPUs through NVML, loaded at run time: a pod without a GPU (or a dev machine) simply
//! reports [`GpuReport::Unavailable`].

use std::path::Path;

use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;

use crate::model::{GpuReport, GpuStats};

/// NVML, initialised once; or why it could not be.
pub struct GpuProbe {
    nvml: Result<Nvml, String>,
}

impl std::fmt::Debug for GpuProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.nvml {
            Ok(_) => f.write_str("GpuProbe(NVML loaded)"),
            Err(reason) => write!(f, "GpuProbe(unavailable: {reason})"),
        }
    }
}

impl Default for GpuProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl GpuProbe {
    /// Loads the system's NVML library. Never panics: failure is kept as the reason to report.
    pub fn new() -> Self {
        Self::from_init(Nvml::init())
    }

    /// Loads NVML from a given library file (tests use a path that does not exist).
    pub fn with_library(path: &Path) -> Self {
        Self::from_init(Nvml::builder().lib_path(path.as_os_str()).init())
    }

    fn from_init(result: Result<Nvml, NvmlError>) -> Self {
        let nvml = result.map_err(|error| {
            let reason = init_failure_reason(&error);
            tracing::debug!(%error, "NVML unavailable: {reason}");
            reason
        });
        GpuProbe { nvml }
    }

    /// Current figures for every GPU NVML can read.
    pub fn report(&self) -> GpuReport {
        let nvml = match &self.nvml {
            Ok(nvml) => nvml,
            Err(reason) => {
                return GpuReport::Unavailable {
                    reason: reason.clone(),
                }
            }
        };
        let count = match nvml.device_count() {
            Ok(count) => count,
            Err(error) => {
                return GpuReport::Unavailable {
                    reason: format!("NVML could not count GPUs: {error}"),
                }
            }
        };
        if count == 0 {
            return GpuReport::Unavailable {
                reason: "NVML found no GPU".to_string(),
            };
        }
        let gpus: Vec<GpuStats> = (0..count)
            .filter_map(|index| match read_device(nvml, index) {
                Ok(stats) => Some(stats),
                Err(error) => {
                    tracing::debug!(index, %error, "skipping a GPU NVML could not read");
                    None
                }
            })
            .collect();
        if gpus.is_empty() {
            return GpuReport::Unavailable {
                reason: format!("none of the {count} GPUs NVML found could be read"),
            };
        }
        GpuReport::Available { gpus }
    }
}

/// A short sentence for why NVML did not start.
fn init_failure_reason(error: &NvmlError) -> String {
    match error {
        NvmlError::LibloadingError(_) | NvmlError::LibraryNotFound => {
            "NVML library not found".to_string()
        }
        NvmlError::DriverNotLoaded => "NVIDIA driver not loaded".to_string(),
        NvmlError::NoPermission => "no permission to use NVML".to_string(),
        other => format!("NVML failed to start: {other}"),
    }
}

fn read_device(nvml: &Nvml, index: u32) -> Result<GpuStats, NvmlError> {
    let device = nvml.device_by_index(index)?;
    let name = device.name()?;
    let memory = device.memory_info()?;
    Ok(GpuStats {
        index,
        name,
        utilization_percent: optional(device.utilization_rates(), "utilization")?
            .map(|rates| rates.gpu),
        memory_used_bytes: memory.used,
        memory_total_bytes: memory.total,
        temperature_c: optional(device.temperature(TemperatureSensor::Gpu), "temperature")?,
        power_watts: optional(device.power_usage(), "power usage")?.map(milliwatts_to_watts),
        power_limit_watts: optional(device.enforced_power_limit(), "power limit")?
            .map(milliwatts_to_watts),
    })
}

/// A figure some GPUs lack (MIG slices, vGPUs, older boards): missing rather than fatal. Only a
/// GPU that has fallen off the bus makes the whole device unreadable.
fn optional<T>(result: Result<T, NvmlError>, what: &str) -> Result<Option<T>, NvmlError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(NvmlError::NotSupported) => Ok(None),
        Err(NvmlError::GpuLost) => Err(NvmlError::GpuLost),
        Err(error) => {
            tracing::debug!(%error, "GPU {what} unreadable");
            Ok(None)
        }
    }
}

fn milliwatts_to_watts(milliwatts: u32) -> f32 {
    milliwatts as f32 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn probe_is_send_and_sync() {
        assert_send_sync::<GpuProbe>();
    }

    #[test]
    fn missing_library_is_unavailable_with_a_reason() {
        let probe = GpuProbe::with_library(Path::new("/nonexistent/libnvidia-ml.so.1"));
        match probe.report() {
            GpuReport::Unavailable { reason } => {
                assert!(!reason.is_empty());
                assert_eq!(reason, "NVML library not found");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[test]
    fn system_probe_does_not_panic() {
        // Whatever this machine has, building and asking must not panic.
        let report = GpuProbe::new().report();
        if let GpuReport::Unavailable { reason } = report {
            assert!(!reason.is_empty());
        }
    }

    #[test]
    fn power_is_converted_to_watts() {
        assert_eq!(milliwatts_to_watts(350_000), 350.0);
        assert_eq!(milliwatts_to_watts(72_500), 72.5);
    }

    #[test]
    fn optional_figures() {
        assert_eq!(optional(Ok(5u32), "x").unwrap(), Some(5));
        assert_eq!(
            optional::<u32>(Err(NvmlError::NotSupported), "x").unwrap(),
            None
        );
        assert_eq!(optional::<u32>(Err(NvmlError::Unknown), "x").unwrap(), None);
        assert!(matches!(
            optional::<u32>(Err(NvmlError::GpuLost), "x"),
            Err(NvmlError::GpuLost)
        ));
    }
}
