//! State and views: the queue, installed files and requests read once ([`Snapshot`]), and
//! what they make of each preset and file; volume space as the preflight sees it; the models
//! folder as it is on disk.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use super::{DownloadError, DownloadManager};
use crate::catalog::Preset;
use crate::download::fetch::{part_path, segments_path};
use crate::download::queue::{InstalledFile, TaskRow, TaskState};
use crate::model::*;

pub(super) struct Snapshot {
    pub(super) tasks: HashMap<String, TaskRow>,
    pub(super) installed: HashMap<String, InstalledFile>,
    /// Requested presets: `(version asked for, installed?)`.
    pub(super) requested: HashMap<String, (Option<String>, bool)>,
    running: HashMap<i64, TransferFigures>,
}

impl Snapshot {
    pub(super) fn file_state(&self, path: &str, models_dir: &Path) -> FileState {
        if let Some(task) = self.tasks.get(path) {
            return match task.state {
                TaskState::Queued => FileState::Queued,
                TaskState::Downloading => FileState::Downloading,
                TaskState::Paused => FileState::Paused,
                TaskState::Failed => FileState::Failed,
            };
        }
        match self.installed.get(path) {
            // Size and mtime as recorded at verification: trusted without re-hashing.
            Some(record) => {
                let on_disk = models_dir.join(path);
                match std::fs::metadata(&on_disk) {
                    Ok(meta)
                        if meta.is_file()
                            && meta.len() == record.size
                            && file_mtime_ms(&on_disk) == Some(record.mtime_ms) =>
                    {
                        FileState::Installed
                    }
                    _ => FileState::Missing,
                }
            }
            None => FileState::Missing,
        }
    }
}

impl DownloadManager {
    /// Everything a view needs, read once.
    pub(super) async fn snapshot(&self) -> Result<Snapshot, DownloadError> {
        let tasks = self.store.tasks().await?;
        let installed = self.store.installed_files().await?;
        let requested = self.store.requested_presets().await?;
        let running: HashMap<i64, TransferFigures> = self
            .running
            .lock()
            .expect("running lock")
            .iter()
            .map(|(id, t)| (*id, t.meter.lock().expect("meter lock").figures.clone()))
            .collect();
        Ok(Snapshot {
            tasks: tasks.into_iter().map(|t| (t.path.clone(), t)).collect(),
            installed: installed.into_iter().map(|f| (f.path.clone(), f)).collect(),
            requested: requested
                .into_iter()
                .map(|(id, version, installed)| (id, (version, installed)))
                .collect(),
            running,
        })
    }

    pub async fn preset_view(&self, id: &str) -> Result<PresetView, DownloadError> {
        let preset = self.preset(id)?;
        let snapshot = self.snapshot().await?;
        Ok(self.view_of(&preset, &snapshot, &[]))
    }

    pub async fn preset_views(
        &self,
        gpu_vram_bytes: &[u64],
    ) -> Result<Vec<PresetView>, DownloadError> {
        let catalog = self.catalog();
        let snapshot = self.snapshot().await?;
        Ok(catalog
            .presets
            .values()
            .map(|p| self.view_of(p, &snapshot, gpu_vram_bytes))
            .collect())
    }

    pub(super) fn view_of(
        &self,
        preset: &Preset,
        snapshot: &Snapshot,
        gpu_vram_bytes: &[u64],
    ) -> PresetView {
        let files: Vec<PresetFileView> = preset
            .files
            .iter()
            .map(|file| {
                let state = snapshot.file_state(&file.path, &self.models_dir);
                let task = snapshot.tasks.get(&file.path);
                let figures = match (task, state) {
                    (Some(task), _) => snapshot
                        .running
                        .get(&task.id)
                        .cloned()
                        .unwrap_or_else(|| self.figures_from_disk(task)),
                    (None, FileState::Installed) => {
                        let size = snapshot.installed.get(&file.path).map(|f| f.size);
                        TransferFigures {
                            bytes_done: size.unwrap_or(0),
                            total_bytes: size,
                            speed_bps: 0,
                            eta_secs: None,
                        }
                    }
                    _ => TransferFigures::default(),
                };
                PresetFileView {
                    path: file.path.clone(),
                    size_bytes: file.size_bytes,
                    optional: file.optional,
                    state,
                    figures,
                    error: task.and_then(|t| t.last_error.clone()),
                    task_id: task.map(|t| t.id),
                }
            })
            .collect();
        let catalog = self.catalog();
        let update_available = snapshot
            .requested
            .get(&preset.id)
            .and_then(|(version, _)| version.as_deref())
            .is_some_and(|installed| catalog.update_available(&preset.id, installed));
        let state = preset_state(&files, update_available);
        let error = files
            .iter()
            .filter(|f| !f.optional)
            .find_map(|f| f.error.clone());
        PresetView {
            id: preset.id.clone(),
            aliases: preset.aliases.clone(),
            name: preset.name.clone(),
            category: preset.category.clone(),
            kind: preset.kind.clone(),
            description: preset.description.clone(),
            use_case: preset.use_case.clone(),
            tags: preset.tags.clone(),
            version: preset.version.clone(),
            download_bytes: preset.download_bytes,
            remaining_bytes: remaining_bytes(preset, snapshot, &self.models_dir),
            vram_gb: preset.vram_gb,
            vram_fit: crate::catalog::vram_fit(preset.vram_gb, gpu_vram_bytes),
            state,
            files,
            layer: match preset.layer {
                crate::catalog::CatalogLayer::Builtin => "builtin",
                crate::catalog::CatalogLayer::Remote => "remote",
                crate::catalog::CatalogLayer::Workspace => "workspace",
            }
            .to_string(),
            error,
        }
    }

    /// Space as the preflight sees it (quota-aware).
    /// The volume's space now (with a volume quota: the models folder walked afresh).
    pub fn space(&self) -> VolumeSpace {
        self.space_with(&mut crate::metrics::disk::WalkCache::default())
    }

    /// The volume's space for a view: free space now, but with a volume quota the models
    /// folder's size from a walk up to a minute old (a page view must not walk the folder).
    pub fn space_for_view(&self) -> VolumeSpace {
        let mut walk = self.view_walk.lock().unwrap_or_else(|p| p.into_inner());
        self.space_with(&mut walk)
    }

    fn space_with(&self, walk: &mut crate::metrics::disk::WalkCache) -> VolumeSpace {
        let disk = crate::metrics::disk::read_disk(
            &self.models_dir,
            self.config.volume_quota_bytes,
            walk,
            Instant::now(),
        );
        VolumeSpace {
            total_bytes: disk.total_bytes,
            used_bytes: disk.used_bytes,
            free_bytes: disk.free_bytes,
            reserve_bytes: self.config.disk_reserve,
        }
    }

    /// The models folder, grouped by its top-level folders, with the preset that provides
    /// each file when the catalog knows one. Part files are not models and are skipped.
    pub async fn model_folders(&self) -> Result<Vec<ModelFolderView>, DownloadError> {
        let installed: HashMap<String, InstalledFile> = self
            .store
            .installed_files()
            .await?
            .into_iter()
            .map(|f| (f.path.clone(), f))
            .collect();
        let catalog = self.catalog();
        let root = self.models_dir.clone();
        let files = tokio::task::spawn_blocking(move || list_files(&root, Listed::Models))
            .await
            .unwrap_or_default();
        let mut folders: BTreeMap<String, ModelFolderView> = BTreeMap::new();
        for (path, bytes, mtime_ms) in files {
            let folder = path.split('/').next().unwrap_or("").to_string();
            let verified = installed
                .get(&path)
                .is_some_and(|f| f.size == bytes && f.mtime_ms == mtime_ms);
            let entry = folders
                .entry(folder.clone())
                .or_insert_with(|| ModelFolderView {
                    name: folder,
                    bytes: 0,
                    files: Vec::new(),
                });
            entry.bytes += bytes;
            entry.files.push(ModelFileView {
                preset_id: catalog.preset_for_model(&path).map(str::to_string),
                path,
                bytes,
                verified,
            });
        }
        Ok(folders.into_values().collect())
    }
}

/// A preset's state from its files' states. `update_available`: the catalog (or the remote
/// registry) has a newer version than the one installed.
fn preset_state(files: &[PresetFileView], update_available: bool) -> InstallState {
    let required: Vec<&PresetFileView> = files.iter().filter(|f| !f.optional).collect();
    let any = |state: FileState| required.iter().any(|f| f.state == state);
    if !required.is_empty() && required.iter().all(|f| f.state == FileState::Installed) {
        return if update_available {
            InstallState::UpdateAvailable
        } else {
            InstallState::Installed
        };
    }
    if any(FileState::Downloading) {
        InstallState::Downloading
    } else if any(FileState::Queued) {
        InstallState::Queued
    } else if any(FileState::Paused) {
        InstallState::Paused
    } else if any(FileState::Failed) {
        InstallState::Failed
    } else if any(FileState::Installed) {
        InstallState::Partial
    } else {
        InstallState::NotInstalled
    }
}

/// Bytes still to fetch for the preset's required files: nothing for installed files, the
/// rest of the size for partial ones.
pub(super) fn remaining_bytes(preset: &Preset, snapshot: &Snapshot, models_dir: &Path) -> u64 {
    preset
        .files
        .iter()
        .filter(|f| !f.optional)
        .filter(|f| snapshot.file_state(&f.path, models_dir) != FileState::Installed)
        .map(|f| {
            let total = snapshot
                .tasks
                .get(&f.path)
                .and_then(|t| t.validator.total_bytes)
                .or(f.size_bytes)
                .unwrap_or(0);
            total.saturating_sub(part_len(&models_dir.join(&f.path)))
        })
        .sum()
}

pub(super) fn part_len(dest: &Path) -> u64 {
    // A segmented part is preallocated: its length is not progress; the sidecar says.
    if segments_path(dest).exists() {
        return 0;
    }
    std::fs::metadata(part_path(dest))
        .map(|m| m.len())
        .unwrap_or(0)
}

pub(super) fn file_mtime_ms(path: &Path) -> Option<i64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(
        modified
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_millis() as i64,
    )
}

/// Which files [`list_files`] lists.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Listed {
    /// Models: neither part files nor hidden ones.
    Models,
    /// Only partial downloads (`*.part`).
    Parts,
}

/// `(relative path, bytes, mtime ms)` of every regular file under the models folder of the
/// `listed` kind, without following symlinks. Depth-limited, as a guard against odd trees.
pub(super) fn list_files(root: &Path, listed: Listed) -> Vec<(String, u64, i64)> {
    const MAX_DEPTH: usize = 8;
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                if depth < MAX_DEPTH {
                    stack.push((path, depth + 1));
                }
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_part = name.ends_with(".part");
            let wanted = match listed {
                Listed::Models => {
                    !is_part && !name.ends_with(".part.segments") && !name.starts_with('.')
                }
                Listed::Parts => is_part,
            };
            if !wanted {
                continue;
            }
            let Ok(relative) = path.strip_prefix(root) else {
                continue;
            };
            let relative = relative.to_string_lossy().replace('\\', "/");
            // Files directly in models/ (not in a folder) are not models ComfyUI loads.
            if !relative.contains('/') {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            out.push((relative, meta.len(), file_mtime_ms(&path).unwrap_or(0)));
        }
    }
    out.sort();
    out
}
