//! Disk space of the workspace: the filesystem's own figures, or, on a RunPod network volume
//! whose size the filesystem does not report, the `RUNPOD_VOLUME_GB` quota against the bytes
//! actually stored under the workspace.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::model::DiskStats;

/// Walking a large workspace takes a while; its size changes slowly enough to reuse for this long.
pub(crate) const WALK_CACHE_TTL: Duration = Duration::from_secs(60);

/// Space figures of the filesystem holding a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FilesystemSpace {
    pub total_bytes: u64,
    pub used_bytes: u64,
    /// What an unprivileged process may still write.
    pub free_bytes: u64,
}

/// The last walk of the workspace, so the sampler walks it at most once per [`WALK_CACHE_TTL`].
#[derive(Debug, Default)]
pub(crate) struct WalkCache {
    last: Option<(Instant, PathBuf, u64)>,
}

impl WalkCache {
    /// Bytes of regular files under `root`, walked again only when the cached figure is stale
    /// or was taken for another root.
    pub(crate) fn used_bytes(&mut self, root: &Path, now: Instant) -> u64 {
        if let Some((walked_at, walked_root, bytes)) = &self.last {
            if walked_root == root && now.saturating_duration_since(*walked_at) < WALK_CACHE_TTL {
                return *bytes;
            }
        }
        let bytes = regular_file_bytes(root);
        self.last = Some((now, root.to_path_buf(), bytes));
        bytes
    }
}

pub(crate) fn read_disk(
    workspace_root: &Path,
    volume_quota_bytes: Option<u64>,
    walk_cache: &mut WalkCache,
    now: Instant,
) -> DiskStats {
    let filesystem = filesystem_space(workspace_root);
    let path = workspace_root.to_string_lossy().into_owned();
    match volume_quota_bytes {
        Some(quota) => {
            let used = walk_cache.used_bytes(workspace_root, now);
            let quota_free = quota.saturating_sub(used);
            let free = match filesystem {
                Some(space) => quota_free.min(space.free_bytes),
                None => quota_free,
            };
            DiskStats {
                path,
                used_bytes: used,
                total_bytes: quota,
                free_bytes: free,
                quota_from_env: true,
            }
        }
        None => {
            let space = filesystem.unwrap_or(FilesystemSpace {
                total_bytes: 0,
                used_bytes: 0,
                free_bytes: 0,
            });
            DiskStats {
                path,
                used_bytes: space.used_bytes,
                total_bytes: space.total_bytes,
                free_bytes: space.free_bytes,
                quota_from_env: false,
            }
        }
    }
}

/// statvfs of `path`, or of its nearest existing ancestor when the workspace is not created yet.
pub(crate) fn filesystem_space(path: &Path) -> Option<FilesystemSpace> {
    let existing = path.ancestors().find(|candidate| candidate.exists())?;
    match rustix::fs::statvfs(existing) {
        Ok(stat) => Some(FilesystemSpace {
            total_bytes: stat.f_blocks.saturating_mul(stat.f_frsize),
            used_bytes: stat
                .f_blocks
                .saturating_sub(stat.f_bfree)
                .saturating_mul(stat.f_frsize),
            free_bytes: stat.f_bavail.saturating_mul(stat.f_frsize),
        }),
        Err(error) => {
            tracing::debug!(path = %existing.display(), %error, "statvfs failed");
            None
        }
    }
}

/// Total apparent size of the regular files under `root`. Symlinks are not followed, and
/// entries that cannot be read (vanished files, permission errors) are skipped silently.
pub(crate) fn regular_file_bytes(root: &Path) -> u64 {
    let mut total: u64 = 0;
    // An explicit stack: deep trees (node_modules, venvs) must not overflow the thread's stack.
    let mut pending_dirs = vec![root.to_path_buf()];
    while let Some(dir) = pending_dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            // DirEntry::metadata does not follow symlinks.
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if metadata.is_file() {
                total = total.saturating_add(metadata.len());
            } else if metadata.is_dir() {
                pending_dirs.push(entry.path());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn statvfs_of_a_temp_dir() {
        let dir = tempfile::tempdir().unwrap();
        let stats = read_disk(dir.path(), None, &mut WalkCache::default(), Instant::now());
        assert!(stats.total_bytes > 0);
        assert!(stats.free_bytes <= stats.total_bytes);
        assert!(stats.used_bytes <= stats.total_bytes);
        assert!(!stats.quota_from_env);
        assert_eq!(stats.path, dir.path().to_string_lossy());
    }

    #[test]
    fn missing_workspace_uses_its_existing_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("not/yet/created");
        let stats = read_disk(&missing, None, &mut WalkCache::default(), Instant::now());
        assert!(stats.total_bytes > 0);
    }

    fn write_sized(path: &Path, len: usize) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, vec![7u8; len]).unwrap();
    }

    #[test]
    fn quota_counts_regular_files_without_following_symlinks() {
        let workspace = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = workspace.path();
        write_sized(&root.join("models/checkpoints/model.safetensors"), 250_000);
        write_sized(&root.join("models/loras/style.safetensors"), 50_000);
        write_sized(&root.join("output/image.png"), 12_345);
        write_sized(&root.join("notes.txt"), 100);
        fs::create_dir_all(root.join("empty")).unwrap();
        // Links to big files or dirs elsewhere must not count.
        write_sized(&outside.path().join("big.bin"), 400_000);
        std::os::unix::fs::symlink(outside.path().join("big.bin"), root.join("link.bin")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("linked_dir")).unwrap();
        let expected_used = 250_000 + 50_000 + 12_345 + 100;

        let quota = 1_000_000;
        let stats = read_disk(root, Some(quota), &mut WalkCache::default(), Instant::now());
        assert_eq!(stats.used_bytes, expected_used);
        assert_eq!(stats.total_bytes, quota);
        assert_eq!(stats.free_bytes, quota - expected_used);
        assert!(stats.quota_from_env);
    }

    #[test]
    fn quota_free_never_underflows() {
        let workspace = tempfile::tempdir().unwrap();
        write_sized(&workspace.path().join("big.bin"), 5_000);
        let stats = read_disk(
            workspace.path(),
            Some(1_000),
            &mut WalkCache::default(),
            Instant::now(),
        );
        assert_eq!(stats.used_bytes, 5_000);
        assert_eq!(stats.free_bytes, 0);
    }

    #[test]
    fn walk_is_cached_for_a_minute() {
        let workspace = tempfile::tempdir().unwrap();
        let root = workspace.path();
        write_sized(&root.join("a.bin"), 1_000);
        let mut cache = WalkCache::default();
        let start = Instant::now();
        assert_eq!(cache.used_bytes(root, start), 1_000);

        write_sized(&root.join("b.bin"), 2_000);
        assert_eq!(
            cache.used_bytes(root, start + Duration::from_secs(30)),
            1_000
        );
        assert_eq!(cache.used_bytes(root, start + WALK_CACHE_TTL), 3_000);
    }

    #[test]
    fn missing_root_walks_to_zero() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(regular_file_bytes(&dir.path().join("absent")), 0);
    }
}
