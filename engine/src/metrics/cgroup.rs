//! Small readers for the kernel's text files under `/sys/fs/cgroup` and `/proc`.
//!
//! Every function takes the root it reads under, so tests can point it at a temp dir.

use std::path::{Path, PathBuf};

/// Which cgroup hierarchy the container sees at the cgroup root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CgroupVersion {
    V1,
    V2,
}

/// Directory names a v1 controller may be mounted under (`cpu` and `cpuacct` are often joined).
pub(crate) const V1_CPU_DIRS: [&str; 3] = ["cpu", "cpu,cpuacct", "cpuacct,cpu"];
pub(crate) const V1_CPUACCT_DIRS: [&str; 3] = ["cpuacct", "cpu,cpuacct", "cpuacct,cpu"];

/// The unified hierarchy has `cgroup.controllers` at its root; v1 has one directory per controller.
pub(crate) fn detect_version(cgroup_root: &Path) -> Option<CgroupVersion> {
    if cgroup_root.join("cgroup.controllers").is_file() {
        return Some(CgroupVersion::V2);
    }
    let has_v1_controller = ["memory"]
        .iter()
        .chain(V1_CPU_DIRS.iter())
        .chain(V1_CPUACCT_DIRS.iter())
        .any(|dir| cgroup_root.join(dir).is_dir());
    has_v1_controller.then_some(CgroupVersion::V1)
}

/// The file's contents without surrounding whitespace, or `None` when it cannot be read.
pub(crate) fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_string())
}

/// A file holding one unsigned number, such as `memory.current`.
pub(crate) fn read_u64(path: &Path) -> Option<u64> {
    read_trimmed(path)?.parse().ok()
}

/// A file holding one signed number, such as v1's `cpu.cfs_quota_us` (which uses -1 for none).
pub(crate) fn read_i64(path: &Path) -> Option<i64> {
    read_trimmed(path)?.parse().ok()
}

/// The value of `key` in a file of `key value` lines (`memory.stat`, `cpu.stat`).
pub(crate) fn read_keyed_u64(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    keyed_u64(&text, key)
}

pub(crate) fn keyed_u64(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        if fields.next()? != key {
            return None;
        }
        fields.next()?.parse().ok()
    })
}

/// The first of `dirs` under `cgroup_root` that holds `file`.
pub(crate) fn find_v1_file(cgroup_root: &Path, dirs: &[&str], file: &str) -> Option<PathBuf> {
    dirs.iter()
        .map(|dir| cgroup_root.join(dir).join(file))
        .find(|path| path.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn detects_v2_by_controllers_file() {
        let root = tempfile::tempdir().unwrap();
        fs::write(
            root.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        assert_eq!(detect_version(root.path()), Some(CgroupVersion::V2));
    }

    #[test]
    fn detects_v1_by_controller_dirs() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("cpu,cpuacct")).unwrap();
        assert_eq!(detect_version(root.path()), Some(CgroupVersion::V1));
    }

    #[test]
    fn detects_nothing_in_an_empty_dir() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(detect_version(root.path()), None);
    }

    #[test]
    fn keyed_values_match_whole_keys() {
        let text = "total_inactive_file 4096\ninactive_file 1024\n";
        assert_eq!(keyed_u64(text, "inactive_file"), Some(1024));
        assert_eq!(keyed_u64(text, "total_inactive_file"), Some(4096));
        assert_eq!(keyed_u64(text, "active_file"), None);
    }
}
