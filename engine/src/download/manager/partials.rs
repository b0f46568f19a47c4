//! Partial downloads (`<file>.part`, with a `.part.segments` sidecar for segmented ones): which
//! download each belongs to, and cleaning those nobody will finish once they are old.

use std::collections::HashMap;

use super::views::{list_files, Listed};
use super::{DownloadError, DownloadManager};
use crate::download::fetch::{part_path, segments_path};
use crate::download::queue::TaskState;
use crate::model::{PartOwner, PartialFile};
use crate::workspace;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// What a clean-up removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartsCleaned {
    pub files: usize,
    pub bytes: u64,
}

impl DownloadManager {
    /// Every partial download in the models folder, biggest first, with what it belongs to.
    pub async fn partial_files(&self) -> Result<Vec<PartialFile>, DownloadError> {
        let root = self.models_dir.clone();
        let parts = tokio::task::spawn_blocking(move || list_files(&root, Listed::Parts))
            .await
            .unwrap_or_default();
        let states: HashMap<String, TaskState> = self
            .store
            .tasks()
            .await?
            .into_iter()
            .map(|t| (t.path, t.state))
            .collect();
        let mut out: Vec<PartialFile> = parts
            .into_iter()
            .map(|(relative, bytes, modified_ms)| {
                let path = relative
                    .strip_suffix(".part")
                    .unwrap_or(&relative)
                    .to_string();
                let owner = match states.get(&path) {
                    Some(TaskState::Failed) => PartOwner::Failed,
                    Some(_) => PartOwner::Download,
                    None => PartOwner::Abandoned,
                };
                PartialFile {
                    path,
                    bytes,
                    modified_ms,
                    owner,
                }
            })
            .collect();
        out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
        Ok(out)
    }

    /// Deletes the partial files of failed and abandoned downloads that were not written for
    /// `days` days (`RECOVERY_RETENTION_DAYS`). A download that is queued, running or paused
    /// keeps its bytes whatever their age; a failed one retried later starts over.
    pub async fn clean_partial_files(
        &self,
        days: u32,
        now_ms: i64,
    ) -> Result<PartsCleaned, DownloadError> {
        let cutoff = now_ms - i64::from(days) * DAY_MS;
        let mut cleaned = PartsCleaned::default();
        for part in self.partial_files().await? {
            if part.owner == PartOwner::Download || part.modified_ms > cutoff {
                continue;
            }
            let dest = workspace::resolve_inside(&self.models_dir, &part.path)?;
            match std::fs::remove_file(part_path(&dest)) {
                Ok(()) => {
                    let _ = std::fs::remove_file(segments_path(&dest));
                    cleaned.files += 1;
                    cleaned.bytes += part.bytes;
                    tracing::info!(path = %part.path, bytes = part.bytes, "removed an old partial download");
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(DownloadError::Io {
                        path: part_path(&dest),
                        source,
                    })
                }
            }
        }
        Ok(cleaned)
    }
}
