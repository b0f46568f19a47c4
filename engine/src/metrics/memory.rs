//! Memory in use against the container's limit, or against the host when nothing limits it.
//!
//! Page cache that the kernel can drop (`inactive_file`) is not counted as used, as
//! `docker stats` does: otherwise reading a large model would look like running out of memory.

use std::path::Path;

use super::cgroup::{self, CgroupVersion};
use crate::model::{MemorySource, MemoryStats};

/// cgroup v1 reports "no limit" as a huge page-aligned number (9223372036854771712 on x86-64).
const UNLIMITED_THRESHOLD: u64 = 1 << 60;

/// The container's limited cgroup when there is one, else the host's `/proc/meminfo`, else zeros.
pub(crate) fn read_memory(cgroup_root: &Path, proc_root: &Path) -> MemoryStats {
    let host = read_host_memory(proc_root);
    let host_total = host.as_ref().map(|stats| stats.limit_bytes);
    let cgroup = match cgroup::detect_version(cgroup_root) {
        Some(CgroupVersion::V2) => read_v2(cgroup_root, host_total),
        Some(CgroupVersion::V1) => read_v1(cgroup_root, host_total),
        None => None,
    };
    cgroup.or(host).unwrap_or_else(|| {
        tracing::debug!("no readable memory figures under the cgroup root or /proc/meminfo");
        MemoryStats {
            used_bytes: 0,
            limit_bytes: 0,
            source: MemorySource::Host,
        }
    })
}

/// A limit means something only when it is below what the host has.
fn is_limited(limit: u64, host_total: Option<u64>) -> bool {
    limit > 0 && limit < UNLIMITED_THRESHOLD && host_total.is_none_or(|total| limit <= total)
}

fn read_v2(cgroup_root: &Path, host_total: Option<u64>) -> Option<MemoryStats> {
    // memory.max holds "max" when unlimited, which does not parse as a number.
    let limit = cgroup::read_u64(&cgroup_root.join("memory.max"))?;
    if !is_limited(limit, host_total) {
        return None;
    }
    let current = cgroup::read_u64(&cgroup_root.join("memory.current"))?;
    let inactive_file =
        cgroup::read_keyed_u64(&cgroup_root.join("memory.stat"), "inactive_file").unwrap_or(0);
    Some(MemoryStats {
        used_bytes: current.saturating_sub(inactive_file),
        limit_bytes: limit,
        source: MemorySource::CgroupV2,
    })
}

fn read_v1(cgroup_root: &Path, host_total: Option<u64>) -> Option<MemoryStats> {
    let memory_dir = cgroup_root.join("memory");
    let limit = cgroup::read_u64(&memory_dir.join("memory.limit_in_bytes"))?;
    if !is_limited(limit, host_total) {
        return None;
    }
    let usage = cgroup::read_u64(&memory_dir.join("memory.usage_in_bytes"))?;
    let stat_path = memory_dir.join("memory.stat");
    // total_ includes child cgroups; plain inactive_file is the fallback on flat hierarchies.
    let inactive_file = cgroup::read_keyed_u64(&stat_path, "total_inactive_file")
        .or_else(|| cgroup::read_keyed_u64(&stat_path, "inactive_file"))
        .unwrap_or(0);
    Some(MemoryStats {
        used_bytes: usage.saturating_sub(inactive_file),
        limit_bytes: limit,
        source: MemorySource::CgroupV1,
    })
}

fn read_host_memory(proc_root: &Path) -> Option<MemoryStats> {
    let text = std::fs::read_to_string(proc_root.join("meminfo")).ok()?;
    parse_meminfo(&text)
}

/// `/proc/meminfo` lines look like `MemTotal:       16318480 kB`.
pub(crate) fn parse_meminfo(text: &str) -> Option<MemoryStats> {
    let field_kib = |key: &str| {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    let total_kib = field_kib("MemTotal")?;
    // Kernels before 3.14 have no MemAvailable; free plus caches is the old estimate.
    let available_kib = field_kib("MemAvailable").unwrap_or_else(|| {
        ["MemFree", "Buffers", "Cached"]
            .iter()
            .filter_map(|key| field_kib(key))
            .sum()
    });
    Some(MemoryStats {
        used_bytes: total_kib.saturating_sub(available_kib).saturating_mul(1024),
        limit_bytes: total_kib.saturating_mul(1024),
        source: MemorySource::Host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const MEMINFO: &str = "\
MemTotal:       16318480 kB
MemFree:         1203944 kB
MemAvailable:    9871240 kB
Buffers:          412312 kB
Cached:          7805232 kB
SwapCached:            0 kB
Active:          8123456 kB
Inactive:        5234567 kB
SwapTotal:       2097148 kB
SwapFree:        2097148 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
";

    const HOST_TOTAL: u64 = 16_318_480 * 1024;
    const HOST_USED: u64 = (16_318_480 - 9_871_240) * 1024;

    fn dirs() -> (tempfile::TempDir, tempfile::TempDir) {
        let cgroup = tempfile::tempdir().unwrap();
        let proc = tempfile::tempdir().unwrap();
        fs::write(proc.path().join("meminfo"), MEMINFO).unwrap();
        (cgroup, proc)
    }

    fn write_v2(root: &Path, memory_max: &str) {
        fs::write(
            root.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        fs::write(root.join("memory.max"), memory_max).unwrap();
        fs::write(root.join("memory.current"), "3221225472\n").unwrap();
        fs::write(
            root.join("memory.stat"),
            "anon 1610612736\nfile 1503238553\nkernel 104857600\nshmem 0\n\
             active_anon 1600000000\ninactive_anon 10612736\nactive_file 429496729\n\
             inactive_file 1073741824\nunevictable 0\nslab 52428800\n",
        )
        .unwrap();
    }

    fn write_v1(root: &Path, limit: &str) {
        let memory = root.join("memory");
        fs::create_dir_all(&memory).unwrap();
        fs::write(memory.join("memory.limit_in_bytes"), limit).unwrap();
        fs::write(memory.join("memory.usage_in_bytes"), "2147483648\n").unwrap();
        fs::write(
            memory.join("memory.stat"),
            "cache 1073741824\nrss 1000000000\nmapped_file 0\ninactive_file 100\n\
             active_file 200\nhierarchical_memory_limit 4294967296\ntotal_cache 1073741824\n\
             total_rss 1000000000\ntotal_inactive_file 536870912\ntotal_active_file 536870912\n",
        )
        .unwrap();
    }

    #[test]
    fn host_meminfo_total_minus_available() {
        let stats = parse_meminfo(MEMINFO).unwrap();
        assert_eq!(stats.limit_bytes, HOST_TOTAL);
        assert_eq!(stats.used_bytes, HOST_USED);
        assert_eq!(stats.source, MemorySource::Host);
    }

    #[test]
    fn no_cgroup_reads_host() {
        let (cgroup, proc) = dirs();
        let stats = read_memory(cgroup.path(), proc.path());
        assert_eq!(stats.source, MemorySource::Host);
        assert_eq!(stats.limit_bytes, HOST_TOTAL);
    }

    #[test]
    fn v2_limited_subtracts_inactive_file() {
        let (cgroup, proc) = dirs();
        write_v2(cgroup.path(), "8589934592\n");
        let stats = read_memory(cgroup.path(), proc.path());
        assert_eq!(
            stats,
            MemoryStats {
                used_bytes: 3_221_225_472 - 1_073_741_824,
                limit_bytes: 8_589_934_592,
                source: MemorySource::CgroupV2,
            }
        );
    }

    #[test]
    fn v2_max_falls_back_to_host() {
        let (cgroup, proc) = dirs();
        write_v2(cgroup.path(), "max\n");
        let stats = read_memory(cgroup.path(), proc.path());
        assert_eq!(stats.source, MemorySource::Host);
        assert_eq!(stats.limit_bytes, HOST_TOTAL);
        assert_eq!(stats.used_bytes, HOST_USED);
    }

    #[test]
    fn v2_usage_below_inactive_file_does_not_underflow() {
        let (cgroup, proc) = dirs();
        write_v2(cgroup.path(), "8589934592\n");
        fs::write(cgroup.path().join("memory.current"), "1000\n").unwrap();
        let stats = read_memory(cgroup.path(), proc.path());
        assert_eq!(stats.used_bytes, 0);
    }

    #[test]
    fn v1_limited_subtracts_total_inactive_file() {
        let (cgroup, proc) = dirs();
        write_v1(cgroup.path(), "4294967296\n");
        let stats = read_memory(cgroup.path(), proc.path());
        assert_eq!(
            stats,
            MemoryStats {
                used_bytes: 2_147_483_648 - 536_870_912,
                limit_bytes: 4_294_967_296,
                source: MemorySource::CgroupV1,
            }
        );
    }

    #[test]
    fn v1_unlimited_value_falls_back_to_host() {
        let (cgroup, proc) = dirs();
        write_v1(cgroup.path(), "9223372036854771712\n");
        let stats = read_memory(cgroup.path(), proc.path());
        assert_eq!(stats.source, MemorySource::Host);
        assert_eq!(stats.limit_bytes, HOST_TOTAL);
    }

    #[test]
    fn v1_limit_above_host_ram_falls_back_to_host() {
        let (cgroup, proc) = dirs();
        write_v1(cgroup.path(), &format!("{}\n", HOST_TOTAL * 2));
        let stats = read_memory(cgroup.path(), proc.path());
        assert_eq!(stats.source, MemorySource::Host);
    }

    #[test]
    fn nothing_readable_gives_zeros() {
        let cgroup = tempfile::tempdir().unwrap();
        let proc = tempfile::tempdir().unwrap();
        let stats = read_memory(cgroup.path(), proc.path());
        assert_eq!(stats.limit_bytes, 0);
        assert_eq!(stats.used_bytes, 0);
    }
}
