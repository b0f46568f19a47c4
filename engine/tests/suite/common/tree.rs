//! A folder's files with their SHA-256, for comparing a tree before and after (the engine's
//! suite and the binary's process tests both use it).

use std::path::Path;

use sha2::{Digest, Sha256};

/// Every file under `root` (part files included), relative to it, with its SHA-256, sorted.
pub fn files_with_sha256(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let bytes = std::fs::read(&path).unwrap();
                out.push((relative, hex::encode(Sha256::digest(bytes))));
            }
        }
    }
    out.sort();
    out
}
