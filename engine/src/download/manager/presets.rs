//! Whole presets: install (after a space check), pause, resume, cancel and remove, and what a
//! verified or failed file means for the presets that include it.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use super::views::{part_len, remaining_bytes};
use super::{DownloadError, DownloadManager};
use crate::catalog::Preset;
use crate::clock::now_ms;
use crate::download::queue::{NewTask, TaskRow};
use crate::events::record_activity;
use crate::model::*;
use crate::workspace;

impl DownloadManager {
    /// Ids of requested presets whose required files include `path`.
    pub(super) fn presets_needing(&self, path: &str) -> Vec<String> {
        let catalog = self.catalog();
        catalog
            .presets
            .values()
            .filter(|p| p.files.iter().any(|f| !f.optional && f.path == path))
            .map(|p| p.id.clone())
            .collect()
    }

    pub(super) fn preset(&self, id: &str) -> Result<Preset, DownloadError> {
        self.catalog()
            .get(id)
            .cloned()
            .ok_or_else(|| DownloadError::UnknownPreset(id.to_string()))
    }

    /// Queues every required file of the preset that is not installed yet, after checking
    /// that the volume has room for what remains (plus what is already queued).
    pub async fn install_preset(self: &Arc<Self>, id: &str) -> Result<PresetView, DownloadError> {
        let preset = self.preset(id)?;
        // Files that finish after this instant were not installed in the snapshot.
        let decided_ms = now_ms();
        let snapshot = self.snapshot().await?;
        let needed = remaining_bytes(&preset, &snapshot, &self.models_dir);
        let queued_elsewhere: u64 = snapshot
            .tasks
            .values()
            .filter(|t| !preset.files.iter().any(|f| f.path == t.path))
            .map(|t| {
                let total = t.validator.total_bytes.or(t.expected_size).unwrap_or(0);
                total.saturating_sub(part_len(&self.models_dir.join(&t.path)))
            })
            .sum();
        let space = self.space();
        if needed + queued_elsewhere > space.usable_bytes() {
            return Err(DownloadError::NotEnoughSpace {
                preset: preset.name.clone(),
                needed: needed + queued_elsewhere,
                free: space.free_bytes,
                reserve: space.reserve_bytes,
            });
        }
        let was_requested = self.restore_dir.get().is_some()
            && self
                .store
                .requested_presets()
                .await?
                .iter()
                .any(|(requested, _, _)| *requested == preset.id);
        let now = now_ms();
        // Recorded so a newer catalog or registry version later shows "update available".
        let version = self
            .catalog()
            .latest_version(&preset.id)
            .map(str::to_string)
            .or_else(|| preset.version.clone());
        self.store
            .request_preset(&preset.id, version.as_deref(), now)
            .await?;
        let mut tasks = Vec::new();
        for file in preset.files.iter().filter(|f| !f.optional) {
            if snapshot.file_state(&file.path, &self.models_dir) == FileState::Installed {
                continue;
            }
            workspace::check_relative_path(&file.path)?;
            tasks.push(NewTask {
                url: file.url.clone(),
                mirrors: file.mirrors.clone(),
                path: file.path.clone(),
                expected_size: file.size_bytes,
                checksum: file.checksum.clone(),
                // Small files first: a text encoder and a VAE are usable long before the 20 GB
                // model arrives, and a failure shows up early.
                priority: (file.size_bytes.unwrap_or(u64::MAX / 2) / (1024 * 1024)) as i64,
            });
        }
        // Before anything is downloaded (a file adopted at the destination moves at once).
        self.record_restore_point(&preset, &tasks, was_requested)
            .await?;
        let queued = self
            .store
            .upsert_tasks(&tasks, Some(decided_ms), now)
            .await?
            .len();
        if queued == 0 {
            self.complete_presets_of_preset(&preset).await;
        } else {
            self.store.start_history(&preset.id, now).await?;
            self.record(format!(
                "Started installing {} ({} file{}, {})",
                preset.name,
                queued,
                if queued == 1 { "" } else { "s" },
                format_bytes(needed)
            ))
            .await;
            self.wake.notify_one();
        }
        self.emit_preset_now(&preset).await;
        self.preset_view(&preset.id).await
    }

    /// Pauses every task of the preset.
    pub async fn pause_preset(self: &Arc<Self>, id: &str) -> Result<(), DownloadError> {
        let preset = self.preset(id)?;
        for task in self.tasks_of(&preset).await? {
            self.pause_task(task.id).await?;
        }
        Ok(())
    }

    pub async fn resume_preset(self: &Arc<Self>, id: &str) -> Result<(), DownloadError> {
        let preset = self.preset(id)?;
        for task in self.tasks_of(&preset).await? {
            self.resume_task(task.id).await?;
        }
        Ok(())
    }

    /// Cancels the preset's downloads that no other requested preset needs, and forgets the
    /// request. Installed files stay (use [`remove_preset`](Self::remove_preset) for those).
    pub async fn cancel_preset(
        self: &Arc<Self>,
        id: &str,
        delete_parts: bool,
    ) -> Result<(), DownloadError> {
        let preset = self.preset(id)?;
        let keep = self.paths_needed_by_others(&preset.id).await?;
        for task in self.tasks_of(&preset).await? {
            if !keep.contains(&task.path) {
                self.cancel_task(task.id, delete_parts).await?;
            }
        }
        self.store.forget_preset(&preset.id).await?;
        self.store
            .finish_history(&preset.id, "cancelled", 0, None, now_ms())
            .await?;
        self.record(format!("Cancelled installing {}", preset.name))
            .await;
        self.emit_preset_now(&preset).await;
        Ok(())
    }

    /// Removes the preset's files that no other requested preset needs (never anything
    /// outside the models folder), cancels its downloads and forgets the request.
    pub async fn remove_preset(self: &Arc<Self>, id: &str) -> Result<RemoveReport, DownloadError> {
        let preset = self.preset(id)?;
        let keep = self.paths_needed_by_others(&preset.id).await?;
        for task in self.tasks_of(&preset).await? {
            if !keep.contains(&task.path) {
                self.cancel_task(task.id, true).await?;
            }
        }
        let mut report = RemoveReport::default();
        for file in &preset.files {
            if keep.contains(&file.path) {
                report.kept_shared.push(file.path.clone());
                continue;
            }
            let path = workspace::resolve_inside(&self.models_dir, &file.path)?;
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_file() || meta.file_type().is_symlink() => {
                    std::fs::remove_file(&path).map_err(|source| DownloadError::Io {
                        path: path.clone(),
                        source,
                    })?;
                    report.freed_bytes += meta.len();
                    report.removed.push(file.path.clone());
                    remove_empty_parents(&path, &self.models_dir);
                }
                _ => {}
            }
            self.store.forget_installed_file(&file.path).await?;
        }
        self.store.forget_preset(&preset.id).await?;
        let now = now_ms();
        self.store
            .finish_history(&preset.id, "cancelled", 0, None, now)
            .await?;
        let message = format!(
            "Removed {}: {} file{} ({}){}",
            preset.name,
            report.removed.len(),
            if report.removed.len() == 1 { "" } else { "s" },
            format_bytes(report.freed_bytes),
            if report.kept_shared.is_empty() {
                String::new()
            } else {
                format!(
                    "; kept {} shared with other presets",
                    report.kept_shared.join(", ")
                )
            }
        );
        self.store
            .add_history(&preset.id, "removed", Some(&message), now)
            .await?;
        self.record(message).await;
        self.emit_preset_now(&preset).await;
        Ok(report)
    }

    async fn tasks_of(&self, preset: &Preset) -> Result<Vec<TaskRow>, DownloadError> {
        let paths: HashSet<&str> = preset.files.iter().map(|f| f.path.as_str()).collect();
        Ok(self
            .store
            .tasks()
            .await?
            .into_iter()
            .filter(|t| paths.contains(t.path.as_str()))
            .collect())
    }

    /// Required paths of every other requested preset.
    pub(super) async fn paths_needed_by_others(
        &self,
        preset_id: &str,
    ) -> Result<HashSet<String>, DownloadError> {
        let catalog = self.catalog();
        let mut keep = HashSet::new();
        for (other, _, _) in self.store.requested_presets().await? {
            if other == preset_id {
                continue;
            }
            if let Some(p) = catalog.get(&other) {
                if p.id == preset_id {
                    continue;
                }
                keep.extend(
                    p.files
                        .iter()
                        .filter(|f| !f.optional)
                        .map(|f| f.path.clone()),
                );
            }
        }
        Ok(keep)
    }

    /// After a file is verified: every requested preset that is now complete is marked
    /// installed, with history and activity.
    pub(super) async fn complete_presets_of(&self, path: &str) {
        let catalog = self.catalog();
        for preset in catalog
            .presets
            .values()
            .filter(|p| p.files.iter().any(|f| f.path == path))
        {
            self.complete_presets_of_preset(preset).await;
        }
    }

    async fn complete_presets_of_preset(&self, preset: &Preset) {
        let Ok(snapshot) = self.snapshot().await else {
            return;
        };
        let complete = preset
            .files
            .iter()
            .filter(|f| !f.optional)
            .all(|f| snapshot.file_state(&f.path, &self.models_dir) == FileState::Installed);
        let requested = snapshot.requested.contains_key(&preset.id);
        if complete && requested {
            let now = now_ms();
            if let Ok(true) = self.store.mark_preset_installed(&preset.id, now).await {
                let bytes: u64 = preset
                    .files
                    .iter()
                    .filter(|f| !f.optional)
                    .filter_map(|f| snapshot.installed.get(&f.path).map(|i| i.size))
                    .sum();
                let _ = self
                    .store
                    .finish_history(&preset.id, "installed", bytes, None, now)
                    .await;
                self.record(format!(
                    "Installed {} ({}), every file verified",
                    preset.name,
                    format_bytes(bytes)
                ))
                .await;
            }
        }
        self.publish_preset(preset, &snapshot);
    }

    pub(super) async fn fail_presets_of(&self, path: &str, message: &str) {
        let catalog = self.catalog();
        let Ok(requested) = self.store.requested_presets().await else {
            return;
        };
        for (id, _, _) in requested {
            let Some(preset) = catalog.get(&id) else {
                continue;
            };
            if !preset.files.iter().any(|f| f.path == path) {
                continue;
            }
            let now = now_ms();
            if let Ok(true) = self
                .store
                .finish_history(&preset.id, "failed", 0, Some(message), now)
                .await
            {
                record_activity(
                    &self.store,
                    &self.events,
                    ActivityKind::Error,
                    format!("Installing {} failed: {path}: {message}", preset.name),
                )
                .await;
            }
        }
        self.emit_presets_of(path, true).await;
    }
}

/// What [`DownloadManager::remove_preset`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoveReport {
    pub removed: Vec<String>,
    pub kept_shared: Vec<String>,
    pub freed_bytes: u64,
}

/// Removes now-empty folders between a deleted file and the models folder (never the models
/// folder or its top-level folders, which ComfyUI expects).
pub(super) fn remove_empty_parents(file: &Path, models_dir: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == models_dir || d.parent() == Some(models_dir) {
            break;
        }
        if std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}
