//! CPU busy share: against the container's cgroup quota when it has one, else the whole host.
//!
//! A reading is a cumulative counter; the percent comes from two readings and the wall time
//! between them, which callers pass in (so tests can choose it).

use std::path::Path;
use std::time::Duration;

use super::cgroup::{self, CgroupVersion, V1_CPUACCT_DIRS, V1_CPU_DIRS};

/// One reading of a cumulative CPU counter.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum CpuCounter {
    /// CPU time the cgroup has used, measured against its quota of `cores`.
    Cgroup { usage_usec: u64, cores: f64 },
    /// Host-wide clock ticks from the first `cpu ` line of `/proc/stat`.
    Host {
        busy_ticks: u64,
        total_ticks: u64,
        cores: u32,
    },
}

impl CpuCounter {
    pub(crate) fn cores(&self) -> f32 {
        match self {
            CpuCounter::Cgroup { cores, .. } => *cores as f32,
            CpuCounter::Host { cores, .. } => *cores as f32,
        }
    }
}

/// The cgroup's counter when it has a CPU quota, otherwise the host's.
pub(crate) fn read_counter(cgroup_root: &Path, proc_root: &Path) -> Option<CpuCounter> {
    read_cgroup_counter(cgroup_root).or_else(|| read_host_counter(proc_root))
}

/// Busy share, 0–100, between two readings taken `elapsed` apart. `None` when the readings
/// are of different kinds (a quota appeared or went away in between).
pub(crate) fn busy_percent(
    previous: &CpuCounter,
    current: &CpuCounter,
    elapsed: Duration,
) -> Option<f32> {
    let percent = match (previous, current) {
        (
            CpuCounter::Cgroup {
                usage_usec: before, ..
            },
            CpuCounter::Cgroup {
                usage_usec: after,
                cores,
            },
        ) => {
            let capacity_usec = elapsed.as_secs_f64() * 1_000_000.0 * cores;
            if capacity_usec <= 0.0 {
                0.0
            } else {
                after.saturating_sub(*before) as f64 / capacity_usec * 100.0
            }
        }
        (
            CpuCounter::Host {
                busy_ticks: busy_before,
                total_ticks: total_before,
                ..
            },
            CpuCounter::Host {
                busy_ticks: busy_after,
                total_ticks: total_after,
                ..
            },
        ) => {
            let total = total_after.saturating_sub(*total_before);
            if total == 0 {
                0.0
            } else {
                busy_after.saturating_sub(*busy_before) as f64 / total as f64 * 100.0
            }
        }
        _ => return None,
    };
    Some(percent.clamp(0.0, 100.0) as f32)
}

fn read_cgroup_counter(cgroup_root: &Path) -> Option<CpuCounter> {
    match cgroup::detect_version(cgroup_root)? {
        CgroupVersion::V2 => {
            let cores = cgroup::read_trimmed(&cgroup_root.join("cpu.max"))
                .and_then(|text| parse_cpu_max(&text))?;
            let usage_usec = cgroup::read_keyed_u64(&cgroup_root.join("cpu.stat"), "usage_usec")?;
            Some(CpuCounter::Cgroup { usage_usec, cores })
        }
        CgroupVersion::V1 => {
            let cores = v1_quota_cores(cgroup_root)?;
            let usage_path = cgroup::find_v1_file(cgroup_root, &V1_CPUACCT_DIRS, "cpuacct.usage")?;
            // cpuacct.usage counts nanoseconds.
            let usage_usec = cgroup::read_u64(&usage_path)? / 1_000;
            Some(CpuCounter::Cgroup { usage_usec, cores })
        }
    }
}

/// `cpu.max` is "<quota> <period>" in microseconds, or "max <period>" for no quota.
pub(crate) fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut fields = text.split_whitespace();
    let quota: u64 = fields.next()?.parse().ok()?;
    let period: u64 = fields.next().unwrap_or("100000").parse().ok()?;
    quota_cores(quota, period)
}

fn v1_quota_cores(cgroup_root: &Path) -> Option<f64> {
    let quota_path = cgroup::find_v1_file(cgroup_root, &V1_CPU_DIRS, "cpu.cfs_quota_us")?;
    let period_path = quota_path.with_file_name("cpu.cfs_period_us");
    // -1 means no quota.
    let quota = u64::try_from(cgroup::read_i64(&quota_path)?).ok()?;
    let period = cgroup::read_u64(&period_path)?;
    quota_cores(quota, period)
}

fn quota_cores(quota: u64, period: u64) -> Option<f64> {
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

fn read_host_counter(proc_root: &Path) -> Option<CpuCounter> {
    let text = std::fs::read_to_string(proc_root.join("stat")).ok()?;
    parse_proc_stat(&text)
}

/// The aggregate `cpu ` line gives ticks per state; `cpuN` lines count the CPUs.
pub(crate) fn parse_proc_stat(text: &str) -> Option<CpuCounter> {
    let aggregate = text.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<u64> = aggregate
        .split_whitespace()
        .skip(1)
        .map_while(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal; guest and guest_nice are already
    // counted in user and nice, so they are left out of the total.
    let total_ticks: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0);
    let iowait = ticks.get(4).copied().unwrap_or(0);
    let cores = text
        .lines()
        .filter(|line| {
            line.strip_prefix("cpu")
                .and_then(|rest| rest.chars().next())
                .is_some_and(|c| c.is_ascii_digit())
        })
        .count();
    Some(CpuCounter::Host {
        busy_ticks: total_ticks.saturating_sub(idle).saturating_sub(iowait),
        total_ticks,
        cores: u32::try_from(cores).unwrap_or(u32::MAX).max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const PROC_STAT_BEFORE: &str = "\
cpu  10000 500 3000 80000 1000 0 500 0 0 0
cpu0 2500 125 750 20000 250 0 125 0 0 0
cpu1 2500 125 750 20000 250 0 125 0 0 0
cpu2 2500 125 750 20000 250 0 125 0 0 0
cpu3 2500 125 750 20000 250 0 125 0 0 0
intr 123456 0 0 0
ctxt 987654
btime 1700000000
processes 4321
procs_running 2
procs_blocked 0
softirq 5555 0 0 0 0 0 0 0 0 0 0
";

    // 1000 more ticks in all: 250 busy (user 200, system 50), 700 idle, 50 iowait.
    const PROC_STAT_AFTER: &str = "\
cpu  10200 500 3050 80700 1050 0 500 0 0 0
cpu0 2550 125 762 20175 262 0 125 0 0 0
cpu1 2550 125 762 20175 262 0 125 0 0 0
cpu2 2550 125 763 20175 263 0 125 0 0 0
cpu3 2550 125 763 20175 263 0 125 0 0 0
intr 123999 0 0 0
ctxt 987999
btime 1700000000
processes 4333
procs_running 1
procs_blocked 0
";

    fn write_v2_cpu(root: &Path, cpu_max: &str, usage_usec: u64) {
        fs::write(
            root.join("cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids rdma\n",
        )
        .unwrap();
        fs::write(root.join("cpu.max"), cpu_max).unwrap();
        fs::write(
            root.join("cpu.stat"),
            format!(
                "usage_usec {usage_usec}\nuser_usec {}\nsystem_usec {}\nnr_periods 120\n\
                 nr_throttled 3\nthrottled_usec 45000\nnr_bursts 0\nburst_usec 0\n",
                usage_usec * 3 / 4,
                usage_usec / 4
            ),
        )
        .unwrap();
    }

    #[test]
    fn cpu_max_quota_and_unlimited() {
        assert_eq!(parse_cpu_max("200000 100000\n"), Some(2.0));
        assert_eq!(parse_cpu_max("250000 100000"), Some(2.5));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
    }

    #[test]
    fn v2_percent_from_two_cpu_stat_readings() {
        let cgroup = tempfile::tempdir().unwrap();
        let proc = tempfile::tempdir().unwrap();
        write_v2_cpu(cgroup.path(), "200000 100000\n", 5_000_000);
        let before = read_counter(cgroup.path(), proc.path()).unwrap();
        assert_eq!(
            before,
            CpuCounter::Cgroup {
                usage_usec: 5_000_000,
                cores: 2.0
            }
        );

        // 1.5 CPU-seconds over 2 s against a 2-core quota: 37.5 %.
        write_v2_cpu(cgroup.path(), "200000 100000\n", 6_500_000);
        let after = read_counter(cgroup.path(), proc.path()).unwrap();
        let percent = busy_percent(&before, &after, Duration::from_secs(2)).unwrap();
        assert!((percent - 37.5).abs() < 0.001, "{percent}");
        assert_eq!(after.cores(), 2.0);
    }

    #[test]
    fn v2_percent_is_clamped() {
        let before = CpuCounter::Cgroup {
            usage_usec: 0,
            cores: 1.0,
        };
        let after = CpuCounter::Cgroup {
            usage_usec: 3_000_000,
            cores: 1.0,
        };
        assert_eq!(
            busy_percent(&before, &after, Duration::from_secs(1)),
            Some(100.0)
        );
        // A counter that went backwards (cgroup recreated) reads as idle, not as a panic.
        assert_eq!(
            busy_percent(&after, &before, Duration::from_secs(1)),
            Some(0.0)
        );
        assert_eq!(busy_percent(&before, &after, Duration::ZERO), Some(0.0));
    }

    #[test]
    fn v2_without_quota_uses_host_stat() {
        let cgroup = tempfile::tempdir().unwrap();
        let proc = tempfile::tempdir().unwrap();
        write_v2_cpu(cgroup.path(), "max 100000\n", 5_000_000);
        fs::write(proc.path().join("stat"), PROC_STAT_BEFORE).unwrap();
        let counter = read_counter(cgroup.path(), proc.path()).unwrap();
        assert!(
            matches!(counter, CpuCounter::Host { cores: 4, .. }),
            "{counter:?}"
        );
    }

    #[test]
    fn v1_quota_and_cpuacct_usage() {
        let cgroup = tempfile::tempdir().unwrap();
        let proc = tempfile::tempdir().unwrap();
        let joined = cgroup.path().join("cpu,cpuacct");
        fs::create_dir(&joined).unwrap();
        fs::create_dir(cgroup.path().join("memory")).unwrap();
        fs::write(joined.join("cpu.cfs_quota_us"), "150000\n").unwrap();
        fs::write(joined.join("cpu.cfs_period_us"), "100000\n").unwrap();
        fs::write(joined.join("cpuacct.usage"), "7000000000\n").unwrap();
        let before = read_counter(cgroup.path(), proc.path()).unwrap();
        assert_eq!(
            before,
            CpuCounter::Cgroup {
                usage_usec: 7_000_000,
                cores: 1.5
            }
        );

        // 0.75 CPU-seconds over 1 s against 1.5 cores: 50 %.
        fs::write(joined.join("cpuacct.usage"), "7750000000\n").unwrap();
        let after = read_counter(cgroup.path(), proc.path()).unwrap();
        let percent = busy_percent(&before, &after, Duration::from_secs(1)).unwrap();
        assert!((percent - 50.0).abs() < 0.001, "{percent}");
    }

    #[test]
    fn v1_without_quota_uses_host_stat() {
        let cgroup = tempfile::tempdir().unwrap();
        let proc = tempfile::tempdir().unwrap();
        for dir in ["cpu", "cpuacct"] {
            fs::create_dir(cgroup.path().join(dir)).unwrap();
        }
        fs::write(cgroup.path().join("cpu/cpu.cfs_quota_us"), "-1\n").unwrap();
        fs::write(cgroup.path().join("cpu/cpu.cfs_period_us"), "100000\n").unwrap();
        fs::write(cgroup.path().join("cpuacct/cpuacct.usage"), "123456789\n").unwrap();
        fs::write(proc.path().join("stat"), PROC_STAT_BEFORE).unwrap();
        let counter = read_counter(cgroup.path(), proc.path()).unwrap();
        assert!(
            matches!(counter, CpuCounter::Host { cores: 4, .. }),
            "{counter:?}"
        );
    }

    #[test]
    fn host_percent_from_two_proc_stat_readings() {
        let cgroup = tempfile::tempdir().unwrap();
        let proc = tempfile::tempdir().unwrap();
        fs::write(proc.path().join("stat"), PROC_STAT_BEFORE).unwrap();
        let before = read_counter(cgroup.path(), proc.path()).unwrap();
        assert_eq!(
            before,
            CpuCounter::Host {
                busy_ticks: 14_000,
                total_ticks: 95_000,
                cores: 4
            }
        );
        fs::write(proc.path().join("stat"), PROC_STAT_AFTER).unwrap();
        let after = read_counter(cgroup.path(), proc.path()).unwrap();
        let percent = busy_percent(&before, &after, Duration::from_secs(2)).unwrap();
        assert!((percent - 25.0).abs() < 0.001, "{percent}");
        assert_eq!(after.cores(), 4.0);
    }

    #[test]
    fn mixed_readings_give_no_percent() {
        let cgroup = CpuCounter::Cgroup {
            usage_usec: 1,
            cores: 1.0,
        };
        let host = parse_proc_stat(PROC_STAT_BEFORE).unwrap();
        assert_eq!(busy_percent(&cgroup, &host, Duration::from_secs(1)), None);
    }

    #[test]
    fn nothing_readable_gives_no_counter() {
        let cgroup = tempfile::tempdir().unwrap();
        let proc = tempfile::tempdir().unwrap();
        assert_eq!(read_counter(cgroup.path(), proc.path()), None);
    }
}
