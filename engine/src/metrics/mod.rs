//! What the pod has and uses: CPU, memory, workspace disk and GPUs, as [`SystemStats`].
//!
//! Containers must be judged by their own limits, so CPU and memory come from the cgroup when
//! it limits them and from the host only when nothing does. All readers take their roots from
//! [`MetricsConfig`], so tests point them at temp dirs holding fake kernel files.

mod cgroup;
mod cpu;
pub(crate) mod disk;
mod gpu;
mod memory;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use gpu::GpuProbe;

use crate::model::{CpuStats, SystemStats};

/// How long the first sample waits between its two CPU readings, having no earlier one.
const FIRST_CPU_INTERVAL: Duration = Duration::from_millis(100);

/// Where the sampler looks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    pub workspace_root: PathBuf,
    /// RUNPOD_VOLUME_GB converted to bytes (decimal: GB * 1_000_000_000) when set.
    pub volume_quota_bytes: Option<u64>,
    /// Normally `/sys/fs/cgroup`.
    pub cgroup_root: PathBuf,
    /// Normally `/proc`.
    pub proc_root: PathBuf,
}

impl MetricsConfig {
    /// The real kernel files, for the given workspace.
    pub fn for_workspace(root: PathBuf, volume_quota_bytes: Option<u64>) -> Self {
        MetricsConfig {
            workspace_root: root,
            volume_quota_bytes,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            proc_root: PathBuf::from("/proc"),
        }
    }
}

/// A CPU counter and when it was read, to turn the next reading into a percent.
#[derive(Debug)]
struct CpuReading {
    counter: cpu::CpuCounter,
    taken_at: Instant,
}

/// Takes [`SystemStats`] samples; keeps the state that spans samples (the last CPU reading,
/// the cached workspace walk, NVML).
#[derive(Debug)]
pub struct MetricsSampler {
    config: MetricsConfig,
    gpu: GpuProbe,
    previous_cpu: Option<CpuReading>,
    walk_cache: disk::WalkCache,
}

impl MetricsSampler {
    /// Also initialises NVML, once for the sampler's life.
    pub fn new(config: MetricsConfig) -> Self {
        Self::with_gpu_probe(config, GpuProbe::new())
    }

    pub fn with_gpu_probe(config: MetricsConfig, gpu: GpuProbe) -> Self {
        MetricsSampler {
            config,
            gpu,
            previous_cpu: None,
            walk_cache: disk::WalkCache::default(),
        }
    }

    pub fn config(&self) -> &MetricsConfig {
        &self.config
    }

    /// One sample. Blocking but cheap, except the first call, which waits ~100 ms for a second
    /// CPU reading, and a quota walk of the workspace once a minute.
    pub fn sample(&mut self, now_ms: i64) -> SystemStats {
        let cpu = self.sample_cpu();
        let memory = memory::read_memory(&self.config.cgroup_root, &self.config.proc_root);
        let disk = disk::read_disk(
            &self.config.workspace_root,
            self.config.volume_quota_bytes,
            &mut self.walk_cache,
            Instant::now(),
        );
        SystemStats {
            sampled_at_ms: now_ms,
            cpu,
            memory,
            disk,
            gpus: self.gpu.report(),
        }
    }

    /// Busy share since the previous sample; with none (or one of another kind, when a quota
    /// came or went), two readings [`FIRST_CPU_INTERVAL`] apart.
    fn sample_cpu(&mut self) -> CpuStats {
        let Some(current) = self.read_cpu() else {
            tracing::debug!("no readable CPU counter under the cgroup root or /proc/stat");
            self.previous_cpu = None;
            return CpuStats {
                percent: 0.0,
                cores: std::thread::available_parallelism()
                    .map(|n| n.get() as f32)
                    .unwrap_or(1.0),
            };
        };
        let since_previous = self.previous_cpu.as_ref().and_then(|previous| {
            cpu::busy_percent(
                &previous.counter,
                &current.counter,
                current
                    .taken_at
                    .saturating_duration_since(previous.taken_at),
            )
        });
        let (percent, latest) = match since_previous {
            Some(percent) => (percent, current),
            None => {
                std::thread::sleep(FIRST_CPU_INTERVAL);
                match self.read_cpu() {
                    Some(second) => {
                        let percent = cpu::busy_percent(
                            &current.counter,
                            &second.counter,
                            second.taken_at.saturating_duration_since(current.taken_at),
                        )
                        .unwrap_or(0.0);
                        (percent, second)
                    }
                    None => (0.0, current),
                }
            }
        };
        let cores = latest.counter.cores();
        self.previous_cpu = Some(latest);
        CpuStats { percent, cores }
    }

    fn read_cpu(&self) -> Option<CpuReading> {
        let counter = cpu::read_counter(&self.config.cgroup_root, &self.config.proc_root)?;
        Some(CpuReading {
            counter,
            taken_at: Instant::now(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GpuReport, MemorySource};
    use std::fs;
    use std::path::Path;

    fn absent_gpu() -> GpuProbe {
        GpuProbe::with_library(Path::new("/nonexistent/libnvidia-ml.so.1"))
    }

    #[test]
    fn sampler_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<MetricsSampler>();
    }

    #[test]
    fn for_workspace_uses_real_kernel_paths() {
        let config =
            MetricsConfig::for_workspace(PathBuf::from("/workspace"), Some(50_000_000_000));
        assert_eq!(config.cgroup_root, Path::new("/sys/fs/cgroup"));
        assert_eq!(config.proc_root, Path::new("/proc"));
        assert_eq!(config.volume_quota_bytes, Some(50_000_000_000));
    }

    #[test]
    fn sample_with_fake_roots_and_no_gpu() {
        let workspace = tempfile::tempdir().unwrap();
        let cgroup = tempfile::tempdir().unwrap();
        let proc = tempfile::tempdir().unwrap();
        fs::write(cgroup.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
        fs::write(cgroup.path().join("cpu.max"), "400000 100000\n").unwrap();
        fs::write(cgroup.path().join("cpu.stat"), "usage_usec 1000\n").unwrap();
        fs::write(cgroup.path().join("memory.max"), "2147483648\n").unwrap();
        fs::write(cgroup.path().join("memory.current"), "1073741824\n").unwrap();
        fs::write(
            cgroup.path().join("memory.stat"),
            "inactive_file 73741824\n",
        )
        .unwrap();
        fs::write(
            proc.path().join("meminfo"),
            "MemTotal: 8000000 kB\nMemAvailable: 4000000 kB\n",
        )
        .unwrap();
        fs::write(workspace.path().join("a.bin"), vec![0u8; 4_000]).unwrap();

        let config = MetricsConfig {
            workspace_root: workspace.path().to_path_buf(),
            volume_quota_bytes: Some(1_000_000),
            cgroup_root: cgroup.path().to_path_buf(),
            proc_root: proc.path().to_path_buf(),
        };
        let mut sampler = MetricsSampler::with_gpu_probe(config, absent_gpu());
        let stats = sampler.sample(1_234);

        assert_eq!(stats.sampled_at_ms, 1_234);
        assert_eq!(stats.cpu.cores, 4.0);
        // The counter did not move between the two readings.
        assert_eq!(stats.cpu.percent, 0.0);
        assert_eq!(stats.memory.source, MemorySource::CgroupV2);
        assert_eq!(stats.memory.used_bytes, 1_000_000_000);
        assert_eq!(stats.memory.limit_bytes, 2_147_483_648);
        assert_eq!(stats.disk.used_bytes, 4_000);
        assert_eq!(stats.disk.total_bytes, 1_000_000);
        assert!(stats.disk.quota_from_env);
        assert!(matches!(
            stats.gpus,
            GpuReport::Unavailable { ref reason } if !reason.is_empty()
        ));
    }

    #[test]
    fn sample_on_this_machine_is_sane() {
        let workspace = tempfile::tempdir().unwrap();
        let config = MetricsConfig::for_workspace(workspace.path().to_path_buf(), None);
        let mut sampler = MetricsSampler::with_gpu_probe(config, absent_gpu());
        for round in 0..2 {
            let stats = sampler.sample(round);
            assert!(stats.memory.limit_bytes > 0, "{stats:?}");
            assert!(
                stats.memory.used_bytes <= stats.memory.limit_bytes,
                "{stats:?}"
            );
            assert!((0.0..=100.0).contains(&stats.cpu.percent), "{stats:?}");
            assert!(stats.cpu.cores > 0.0, "{stats:?}");
            assert!(stats.disk.total_bytes > 0, "{stats:?}");
            assert!(stats.disk.free_bytes <= stats.disk.total_bytes, "{stats:?}");
            assert!(matches!(stats.gpus, GpuReport::Unavailable { .. }));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn new_sampler_with_system_nvml_does_not_panic() {
        let workspace = tempfile::tempdir().unwrap();
        let config = MetricsConfig::for_workspace(workspace.path().to_path_buf(), None);
        let stats = MetricsSampler::new(config).sample(0);
        assert!(stats.disk.total_bytes > 0);
    }
}
