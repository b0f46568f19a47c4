//! Restore points of preset installs: before an install queues its files, what it will add and
//! what it will replace is recorded (a replaced file is kept as a hard link, no copy); "roll
//! back" removes exactly what the install added and puts back what it replaced. Never a file
//! another requested preset needs, never one changed since comfydeck verified it, never
//! anything outside the models folder; rolling back twice changes nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::Row;

use super::presets::remove_empty_parents;
use super::views::file_mtime_ms;
use super::{DownloadError, DownloadManager};
use crate::catalog::Preset;
use crate::clock::now_ms;
use crate::download::queue::NewTask;
use crate::model::*;
use crate::workspace;

/// Which change a restore point is for: `("preset", id, "install FLUX Dev")` or
/// `("operation", id, "make \"x\" runnable")`.
pub struct PointKey<'a> {
    pub kind: &'a str,
    pub target: &'a str,
    pub subject: &'a str,
}

impl DownloadManager {
    /// Restore points are recorded from now on, with replaced files kept under `dir`.
    pub fn keep_restore_points_in(&self, dir: PathBuf) {
        let _ = self.restore_dir.set(dir);
    }

    /// Records what installing `preset` will change: `tasks` are the files it is about to
    /// queue. A file already at a task's path (a copy put there by hand, a file of another
    /// size) will be replaced once the download is verified: it is hard-linked aside first.
    pub(super) async fn record_restore_point(
        &self,
        preset: &Preset,
        tasks: &[NewTask],
        was_requested: bool,
    ) -> Result<(), DownloadError> {
        if self.restore_dir.get().is_none() || tasks.is_empty() {
            return Ok(());
        }
        let point = PointKey {
            kind: "preset",
            target: &preset.id,
            subject: &format!("install {}", preset.name),
        };
        for task in tasks {
            self.record_file(&point, &task.path, was_requested).await?;
        }
        Ok(())
    }

    /// Records that the change `point` is about to write the model file at `path`: created,
    /// or — when a file is there — replaced, the old one hard-linked aside first.
    pub async fn record_file(
        &self,
        point: &PointKey<'_>,
        path: &str,
        was_requested: bool,
    ) -> Result<(), DownloadError> {
        let Some(dir) = self.restore_dir.get() else {
            return Ok(());
        };
        let id = self.open_point(point, was_requested).await?;
        let dest = workspace::resolve_inside(&self.models_dir, path)?;
        match std::fs::symlink_metadata(&dest) {
            Ok(meta) if meta.is_file() => {
                let backup = dir.join(id.to_string()).join(path);
                if let Some(parent) = backup.parent() {
                    std::fs::create_dir_all(parent).map_err(|source| DownloadError::Io {
                        path: parent.to_path_buf(),
                        source,
                    })?;
                }
                if !backup.exists() {
                    std::fs::hard_link(&dest, &backup).map_err(|source| DownloadError::Io {
                        path: backup.clone(),
                        source,
                    })?;
                }
                let backup = backup.to_string_lossy().into_owned();
                self.add_item(id, path, RestoreChange::Replaced, Some(&backup))
                    .await
            }
            _ => self.add_item(id, path, RestoreChange::Created, None).await,
        }
    }

    /// Records a change of another kind: a hard link made from `from` (`Linked`), a preset
    /// installed (`Preset`, `path` is its id) or a pack (`Pack`, `path` is its id).
    pub async fn record_change(
        &self,
        point: &PointKey<'_>,
        path: &str,
        change: RestoreChange,
        from: Option<&str>,
    ) -> Result<(), DownloadError> {
        if self.restore_dir.get().is_none() {
            return Ok(());
        }
        let id = self.open_point(point, false).await?;
        self.add_item(id, path, change, from).await
    }

    /// The newest point of `point` that was not rolled back, or a new one.
    async fn open_point(
        &self,
        point: &PointKey<'_>,
        was_requested: bool,
    ) -> Result<i64, DownloadError> {
        let _opening = self.opening_point.lock().await;
        let pool = self.store.pool();
        let open: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM restore_points WHERE kind = ?1 AND target = ?2 AND state = 'kept' \
             AND id = (SELECT MAX(id) FROM restore_points WHERE kind = ?1 AND target = ?2)",
        )
        .bind(point.kind)
        .bind(point.target)
        .fetch_optional(pool)
        .await
        .map_err(crate::store::StoreError::from)?;
        if let Some(id) = open {
            return Ok(id);
        }
        Ok(sqlx::query(
            "INSERT INTO restore_points (kind, target, subject, was_requested, state, created_ms) \
             VALUES (?, ?, ?, ?, 'kept', ?)",
        )
        .bind(point.kind)
        .bind(point.target)
        .bind(point.subject)
        .bind(was_requested)
        .bind(now_ms())
        .execute(pool)
        .await
        .map_err(crate::store::StoreError::from)?
        .last_insert_rowid())
    }

    async fn add_item(
        &self,
        id: i64,
        path: &str,
        change: RestoreChange,
        backup: Option<&str>,
    ) -> Result<(), DownloadError> {
        sqlx::query(
            "INSERT OR IGNORE INTO restore_items (point_id, path, change, backup) VALUES (?, ?, ?, ?)",
        )
        .bind(id)
        .bind(path)
        .bind(change.as_str())
        .bind(backup)
        .execute(self.store.pool())
        .await
        .map_err(crate::store::StoreError::from)?;
        Ok(())
    }

    /// Every restore point, newest first.
    pub async fn restore_points(&self) -> Result<Vec<RestorePointView>, DownloadError> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM restore_points ORDER BY id DESC LIMIT 200")
                .fetch_all(self.store.pool())
                .await
                .map_err(crate::store::StoreError::from)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.restore_point(id).await?);
        }
        Ok(out)
    }

    /// One restore point, `None` when there is no such id.
    pub async fn restore_point(&self, id: i64) -> Result<Option<RestorePointView>, DownloadError> {
        let pool = self.store.pool();
        let Some(row) = sqlx::query("SELECT * FROM restore_points WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(crate::store::StoreError::from)?
        else {
            return Ok(None);
        };
        let items =
            sqlx::query("SELECT path, change FROM restore_items WHERE point_id = ? ORDER BY path")
                .bind(id)
                .fetch_all(pool)
                .await
                .map_err(crate::store::StoreError::from)?
                .iter()
                .map(|r| RestoreItem {
                    path: r.get("path"),
                    change: RestoreChange::parse(&r.get::<String, _>("change"))
                        .unwrap_or(RestoreChange::Created),
                })
                .collect();
        Ok(Some(RestorePointView {
            id,
            kind: row.get("kind"),
            target: row.get("target"),
            subject: row.get("subject"),
            created_ms: row.get("created_ms"),
            state: RestoreState::parse(&row.get::<String, _>("state"))
                .unwrap_or(RestoreState::Kept),
            rolled_back_ms: row.get("rolled_back_ms"),
            items,
            note: row.get("note"),
        }))
    }

    /// Undoes the install of restore point `id`: its downloads are cancelled (parts deleted),
    /// the files it added removed — unless another requested preset needs one, or the file
    /// is no longer the one comfydeck verified —, the files it replaced put back, and the
    /// preset's request forgotten when it was new. A second call changes nothing.
    pub async fn roll_back(self: &Arc<Self>, id: i64) -> Result<RestorePointView, DownloadError> {
        self.roll_back_with(id, &[], &HashSet::new()).await
    }

    /// [`roll_back`](Self::roll_back), for a point whose packs the caller undid already
    /// (`done_elsewhere` says so in the note), keeping the files other workflows need
    /// (`needed_by_workflows`). Its presets' own points are rolled back too.
    pub async fn roll_back_with(
        self: &Arc<Self>,
        id: i64,
        done_elsewhere: &[String],
        needed_by_workflows: &HashSet<String>,
    ) -> Result<RestorePointView, DownloadError> {
        let point = self
            .restore_point(id)
            .await?
            .ok_or(DownloadError::UnknownRestorePoint(id))?;
        if point.state == RestoreState::RolledBack {
            return Ok(point);
        }
        let was_requested: bool =
            sqlx::query_scalar("SELECT was_requested FROM restore_points WHERE id = ?")
                .bind(id)
                .fetch_one(self.store.pool())
                .await
                .map_err(crate::store::StoreError::from)?;
        let keep = self.paths_needed_by_others(&point.target).await?;
        let tasks = self.store.tasks().await?;
        let installed = self.store.installed_files().await?;
        let sources: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT path, backup FROM restore_items WHERE point_id = ?")
                .bind(id)
                .fetch_all(self.store.pool())
                .await
                .map_err(crate::store::StoreError::from)?;
        let (mut removed, mut restored, mut kept) = (Vec::new(), Vec::new(), Vec::new());
        let mut presets = Vec::new();
        for item in &point.items {
            match item.change {
                RestoreChange::Preset => {
                    presets.push(item.path.clone());
                    continue;
                }
                // Undone by the caller, which has the packs' service.
                RestoreChange::Pack | RestoreChange::PackUpdated => continue,
                _ => {}
            }
            if keep.contains(&item.path) {
                kept.push(format!("{} (another preset needs it)", item.path));
                continue;
            }
            if needed_by_workflows.contains(&item.path) && item.change != RestoreChange::Replaced {
                kept.push(format!("{} (another workflow needs it)", item.path));
                continue;
            }
            if let Some(task) = tasks.iter().find(|t| t.path == item.path) {
                self.cancel_task(task.id, true).await?;
            }
            let dest = workspace::resolve_inside(&self.models_dir, &item.path)?;
            let ours = installed
                .iter()
                .find(|f| f.path == item.path)
                .is_some_and(|f| {
                    std::fs::metadata(&dest).is_ok_and(|m| m.len() == f.size)
                        && file_mtime_ms(&dest) == Some(f.mtime_ms)
                });
            match item.change {
                RestoreChange::Created => {
                    if ours {
                        remove(&dest)?;
                        self.store.forget_installed_file(&item.path).await?;
                        removed.push(item.path.clone());
                        remove_empty_parents(&dest, &self.models_dir);
                    } else if dest.exists() {
                        kept.push(format!("{} (changed since it was installed)", item.path));
                    }
                }
                RestoreChange::Linked => {
                    let from = sources
                        .iter()
                        .find(|(path, _)| *path == item.path)
                        .and_then(|(_, from)| from.as_deref())
                        .map(|from| workspace::resolve_inside(&self.models_dir, from))
                        .transpose()?;
                    match from {
                        Some(from) if same_file(&dest, &from) => {
                            remove(&dest)?;
                            removed.push(item.path.clone());
                            remove_empty_parents(&dest, &self.models_dir);
                        }
                        _ if dest.exists() => {
                            kept.push(format!("{} (changed since it was linked)", item.path))
                        }
                        _ => {}
                    }
                }
                RestoreChange::Preset | RestoreChange::Pack | RestoreChange::PackUpdated => {}
                RestoreChange::Replaced => {
                    let backup = self.backup_of(id, &item.path);
                    if !backup.exists() {
                        kept.push(format!("{} (its earlier copy is gone)", item.path));
                        continue;
                    }
                    if same_file(&dest, &backup) {
                        // The download never replaced it.
                        restored.push(item.path.clone());
                        continue;
                    }
                    if dest.exists() && !ours {
                        kept.push(format!("{} (changed since it was installed)", item.path));
                        continue;
                    }
                    std::fs::rename(&backup, &dest).map_err(|source| DownloadError::Io {
                        path: dest.clone(),
                        source,
                    })?;
                    // The file put back is the one from before, not one comfydeck verified.
                    self.store.forget_installed_file(&item.path).await?;
                    restored.push(item.path.clone());
                }
            }
        }
        let mut rolled_presets = Vec::new();
        for preset in presets {
            if let Some(preset_point) = self.newest_kept_point("preset", &preset).await? {
                Box::pin(self.roll_back_with(preset_point, &[], needed_by_workflows)).await?;
                rolled_presets.push(preset);
            }
        }
        if point.kind == "preset" && !was_requested {
            self.store.forget_preset(&point.target).await?;
        }
        if let Some(dir) = self.restore_dir.get() {
            let _ = std::fs::remove_dir_all(dir.join(id.to_string()));
        }
        let mut note = format!(
            "removed {} file{}",
            removed.len(),
            if removed.len() == 1 { "" } else { "s" }
        );
        if !restored.is_empty() {
            note.push_str(&format!("; put back {}", restored.join(", ")));
        }
        if !rolled_presets.is_empty() {
            note.push_str(&format!(
                "; rolled back preset {}",
                rolled_presets.join(", ")
            ));
        }
        for done in done_elsewhere {
            note.push_str(&format!("; {done}"));
        }
        if !kept.is_empty() {
            note.push_str(&format!("; kept {}", kept.join(", ")));
        }
        sqlx::query(
            "UPDATE restore_points SET state = 'rolled_back', rolled_back_ms = ?, note = ? WHERE id = ?",
        )
        .bind(now_ms())
        .bind(&note)
        .bind(id)
        .execute(self.store.pool())
        .await
        .map_err(crate::store::StoreError::from)?;
        self.record(format!("Rolled back: {} ({note})", point.subject))
            .await;
        if point.kind == "preset" {
            if let Ok(preset) = self.preset(&point.target) {
                self.emit_preset_now(&preset).await;
            }
        }
        self.restore_point(id)
            .await?
            .ok_or(DownloadError::UnknownRestorePoint(id))
    }

    /// The newest point of `kind` and `target` that is not rolled back yet.
    pub async fn newest_kept_point(
        &self,
        kind: &str,
        target: &str,
    ) -> Result<Option<i64>, DownloadError> {
        Ok(sqlx::query_scalar(
            "SELECT MAX(id) FROM restore_points WHERE kind = ? AND target = ? AND state = 'kept'",
        )
        .bind(kind)
        .bind(target)
        .fetch_one(self.store.pool())
        .await
        .map_err(crate::store::StoreError::from)?)
    }

    /// The items of point `id` that record `change`, each with what puts it back (for a pack:
    /// how to undo it, as JSON).
    pub async fn restore_items_of(
        &self,
        id: i64,
        change: RestoreChange,
    ) -> Result<Vec<(String, Option<String>)>, DownloadError> {
        Ok(sqlx::query_as(
            "SELECT path, backup FROM restore_items WHERE point_id = ? AND change = ? ORDER BY path",
        )
        .bind(id)
        .bind(change.as_str())
        .fetch_all(self.store.pool())
        .await
        .map_err(crate::store::StoreError::from)?)
    }

    fn backup_of(&self, id: i64, path: &str) -> PathBuf {
        self.restore_dir
            .get()
            .map(|dir| dir.join(id.to_string()).join(path))
            .unwrap_or_default()
    }
}

/// Whether two paths are links to one file.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn remove(path: &Path) -> Result<(), DownloadError> {
    std::fs::remove_file(path).map_err(|source| DownloadError::Io {
        path: path.to_path_buf(),
        source,
    })
}
