//! The download tables: tasks, verified files, requested presets and history.

use sqlx::Row;

use crate::catalog::{Checksum, ChecksumAlgorithm};
use crate::download::fetch::RemoteValidator;
use crate::store::{Store, StoreResult};

/// A task's persisted state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    Queued,
    Downloading,
    Paused,
    Failed,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Downloading => "downloading",
            TaskState::Paused => "paused",
            TaskState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> TaskState {
        match s {
            "downloading" => TaskState::Downloading,
            "paused" => TaskState::Paused,
            "failed" => TaskState::Failed,
            _ => TaskState::Queued,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TaskRow {
    pub id: i64,
    pub url: String,
    pub path: String,
    pub expected_size: Option<u64>,
    pub checksum: Option<Checksum>,
    pub validator: RemoteValidator,
    pub bytes_done: u64,
    pub state: TaskState,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub priority: i64,
    pub not_before_ms: i64,
    /// Other URLs of the same file, tried in order after `url`.
    pub mirrors: Vec<String>,
    /// Which of `url` (0) and `mirrors` (1…) the task is downloading from.
    pub source_index: usize,
}

impl TaskRow {
    /// `url`, then the mirrors.
    pub fn sources(&self) -> Vec<String> {
        std::iter::once(self.url.clone())
            .chain(self.mirrors.iter().cloned())
            .collect()
    }
}

/// What a new task needs.
#[derive(Clone, Debug)]
pub struct NewTask {
    pub url: String,
    /// Other URLs of the same file, tried in order after `url`.
    pub mirrors: Vec<String>,
    pub path: String,
    pub expected_size: Option<u64>,
    pub checksum: Option<Checksum>,
    pub priority: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InstalledFile {
    pub path: String,
    pub size: u64,
    pub mtime_ms: i64,
    pub sha256: String,
    pub verified_by: String,
}

fn algo_str(a: ChecksumAlgorithm) -> &'static str {
    match a {
        ChecksumAlgorithm::Sha256 => "sha256",
        ChecksumAlgorithm::Md5 => "md5",
    }
}

fn task_from_row(row: &sqlx::sqlite::SqliteRow) -> TaskRow {
    let algo: Option<String> = row.get("checksum_algo");
    let value: Option<String> = row.get("checksum_value");
    let checksum = match (algo.as_deref(), value) {
        (Some("sha256"), Some(value)) => Some(Checksum {
            algorithm: ChecksumAlgorithm::Sha256,
            value,
        }),
        (Some("md5"), Some(value)) => Some(Checksum {
            algorithm: ChecksumAlgorithm::Md5,
            value,
        }),
        _ => None,
    };
    let opt_u64 = |name: &str| row.get::<Option<i64>, _>(name).map(|v| v.max(0) as u64);
    TaskRow {
        id: row.get("id"),
        url: row.get("url"),
        path: row.get("path"),
        expected_size: opt_u64("expected_size"),
        checksum,
        validator: RemoteValidator {
            etag: row.get("etag"),
            last_modified: row.get("last_modified"),
            total_bytes: opt_u64("total_bytes"),
            linked_sha256: row.get("linked_sha256"),
        },
        bytes_done: row.get::<i64, _>("bytes_done").max(0) as u64,
        state: TaskState::parse(row.get::<String, _>("state").as_str()),
        attempts: row.get::<i64, _>("attempts").max(0) as u32,
        last_error: row.get("last_error"),
        priority: row.get("priority"),
        not_before_ms: row.get("not_before_ms"),
        mirrors: serde_json::from_str(&row.get::<String, _>("mirrors")).unwrap_or_default(),
        source_index: row.get::<i64, _>("source_index").max(0) as usize,
    }
}

impl Store {
    /// Inserts a task for `task.path`, or re-queues the existing one (a paused or failed task
    /// becomes queued again; a running one is left alone). Returns the task id.
    pub async fn upsert_task(&self, task: &NewTask, now_ms: i64) -> StoreResult<i64> {
        let ids = self
            .upsert_tasks(std::slice::from_ref(task), None, now_ms)
            .await?;
        Ok(ids[0])
    }

    /// Queues several files in one transaction, so the scheduler never sees half of a preset
    /// (it would start the big file before the small ones were queued). A file installed at
    /// or after `skip_installed_since` is skipped: it finished while the caller was deciding
    /// what to queue (another preset shares it), and must not download twice. Returns the ids
    /// of the queued tasks.
    pub async fn upsert_tasks(
        &self,
        tasks: &[NewTask],
        skip_installed_since: Option<i64>,
        now_ms: i64,
    ) -> StoreResult<Vec<i64>> {
        let mut tx = self.write_tx().await?;
        let mut ids = Vec::with_capacity(tasks.len());
        for task in tasks {
            if let Some(since) = skip_installed_since {
                let just_installed: Option<i64> = sqlx::query_scalar(
                    "SELECT 1 FROM installed_files WHERE path = ? AND installed_ms >= ?",
                )
                .bind(&task.path)
                .bind(since)
                .fetch_optional(&mut *tx)
                .await?;
                if just_installed.is_some() {
                    continue;
                }
            }
            let (algo, value) = match &task.checksum {
                Some(c) => (Some(algo_str(c.algorithm)), Some(c.value.as_str())),
                None => (None, None),
            };
            let mirrors = serde_json::to_string(&task.mirrors).unwrap_or_else(|_| "[]".into());
            let existing: Option<(i64, String)> =
                sqlx::query_as("SELECT id, state FROM download_tasks WHERE path = ?")
                    .bind(&task.path)
                    .fetch_optional(&mut *tx)
                    .await?;
            let id = match existing {
                Some((id, state)) => {
                    if state != "downloading" {
                        // Asked again: from the first source, with the sources the catalog
                        // gives now (another host's validators dropped).
                        sqlx::query(
                            "UPDATE download_tasks SET state = 'queued', last_error = NULL, \
                             not_before_ms = 0, attempts = 0, updated_ms = ?1, \
                             priority = MIN(priority, ?2), mirrors = ?3, source_index = 0, \
                             etag = CASE WHEN url = ?4 THEN etag END, \
                             last_modified = CASE WHEN url = ?4 THEN last_modified END, \
                             url = ?4 WHERE id = ?5",
                        )
                        .bind(now_ms)
                        .bind(task.priority)
                        .bind(&mirrors)
                        .bind(&task.url)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    id
                }
                None => sqlx::query(
                    "INSERT INTO download_tasks (url, path, expected_size, checksum_algo, \
                     checksum_value, state, priority, created_ms, updated_ms, mirrors) \
                     VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
                )
                .bind(&task.url)
                .bind(&task.path)
                .bind(task.expected_size.map(|s| s as i64))
                .bind(algo)
                .bind(value)
                .bind(task.priority)
                .bind(now_ms)
                .bind(now_ms)
                .bind(&mirrors)
                .execute(&mut *tx)
                .await?
                .last_insert_rowid(),
            };
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    pub async fn tasks(&self) -> StoreResult<Vec<TaskRow>> {
        let rows = sqlx::query("SELECT * FROM download_tasks ORDER BY priority, id")
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(task_from_row).collect())
    }

    pub async fn task(&self, id: i64) -> StoreResult<Option<TaskRow>> {
        let row = sqlx::query("SELECT * FROM download_tasks WHERE id = ?")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(task_from_row))
    }

    /// The next queued tasks whose wait (if any) is over, best first.
    pub async fn runnable_tasks(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<TaskRow>> {
        let rows = sqlx::query(
            "SELECT * FROM download_tasks WHERE state = 'queued' AND not_before_ms <= ? \
             ORDER BY priority, id LIMIT ?",
        )
        .bind(now_ms)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(task_from_row).collect())
    }

    /// The earliest time a waiting queued task becomes runnable.
    pub async fn next_wake_ms(&self) -> StoreResult<Option<i64>> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(not_before_ms) FROM download_tasks WHERE state = 'queued'",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(v)
    }

    /// After a crash or restart, tasks that were running are queued again.
    pub async fn requeue_interrupted_tasks(&self, now_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE download_tasks SET state = 'queued', updated_ms = ? WHERE state = 'downloading'",
        )
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn set_task_state(
        &self,
        id: i64,
        state: TaskState,
        error: Option<&str>,
        not_before_ms: i64,
        now_ms: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE download_tasks SET state = ?, last_error = ?, not_before_ms = ?, \
             attempts = attempts + CASE WHEN ? = 'downloading' THEN 1 ELSE 0 END, updated_ms = ? \
             WHERE id = ?",
        )
        .bind(state.as_str())
        .bind(error)
        .bind(not_before_ms)
        .bind(state.as_str())
        .bind(now_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Changes the state only from one of `from` (so a pause never overrides a finished task).
    pub async fn transition_task(
        &self,
        id: i64,
        from: &[TaskState],
        to: TaskState,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let mut changed = false;
        for state in from {
            let done = sqlx::query(
                "UPDATE download_tasks SET state = ?, not_before_ms = 0, updated_ms = ? \
                 WHERE id = ? AND state = ?",
            )
            .bind(to.as_str())
            .bind(now_ms)
            .bind(id)
            .bind(state.as_str())
            .execute(self.pool())
            .await?;
            changed |= done.rows_affected() > 0;
        }
        Ok(changed)
    }

    pub async fn save_task_validator(
        &self,
        id: i64,
        validator: &RemoteValidator,
        now_ms: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE download_tasks SET etag = ?, last_modified = ?, total_bytes = ?, \
             linked_sha256 = ?, updated_ms = ? WHERE id = ?",
        )
        .bind(&validator.etag)
        .bind(&validator.last_modified)
        .bind(validator.total_bytes.map(|v| v as i64))
        .bind(&validator.linked_sha256)
        .bind(now_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The task goes on from source `index`. The old host's validators (etag, date) mean
    /// nothing to the new one and are dropped; the size and Hugging Face's sha256 describe
    /// the file itself and stay, so the bytes on disk can be kept.
    pub async fn switch_task_source(&self, id: i64, index: usize, now_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE download_tasks SET source_index = ?, etag = NULL, last_modified = NULL, \
             updated_ms = ? WHERE id = ?",
        )
        .bind(index as i64)
        .bind(now_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The task's file comes from `url` now, then `mirrors`, from the first. The old host's
    /// validators go; with `keep_bytes` false, so does all it said of the file (the bytes on
    /// disk are being dropped).
    pub async fn set_task_sources(
        &self,
        id: i64,
        url: &str,
        mirrors: &[String],
        keep_bytes: bool,
        now_ms: i64,
    ) -> StoreResult<()> {
        let mirrors = serde_json::to_string(mirrors).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "UPDATE download_tasks SET url = ?1, mirrors = ?2, source_index = 0, etag = NULL, \
             last_modified = NULL, attempts = 0, updated_ms = ?3, \
             total_bytes = CASE WHEN ?4 THEN total_bytes END, \
             linked_sha256 = CASE WHEN ?4 THEN linked_sha256 END, \
             bytes_done = CASE WHEN ?4 THEN bytes_done ELSE 0 END WHERE id = ?5",
        )
        .bind(url)
        .bind(mirrors)
        .bind(now_ms)
        .bind(keep_bytes)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn save_task_bytes(&self, id: i64, bytes_done: u64) -> StoreResult<()> {
        sqlx::query("UPDATE download_tasks SET bytes_done = ? WHERE id = ?")
            .bind(bytes_done as i64)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn delete_task(&self, id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM download_tasks WHERE id = ?")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Records a verified file and removes its task, in one transaction.
    pub async fn complete_task(
        &self,
        task_id: i64,
        file: &InstalledFile,
        url: &str,
        now_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO installed_files (path, size, mtime_ms, sha256, verified_by, url, installed_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ms = excluded.mtime_ms, \
             sha256 = excluded.sha256, verified_by = excluded.verified_by, url = excluded.url, \
             installed_ms = excluded.installed_ms",
        )
        .bind(&file.path)
        .bind(file.size as i64)
        .bind(file.mtime_ms)
        .bind(&file.sha256)
        .bind(&file.verified_by)
        .bind(url)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM download_tasks WHERE id = ?")
            .bind(task_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn installed_files(&self) -> StoreResult<Vec<InstalledFile>> {
        let rows = sqlx::query(
            "SELECT path, size, mtime_ms, sha256, verified_by FROM installed_files ORDER BY path",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|row| InstalledFile {
                path: row.get("path"),
                size: row.get::<i64, _>("size").max(0) as u64,
                mtime_ms: row.get("mtime_ms"),
                sha256: row.get("sha256"),
                verified_by: row.get("verified_by"),
            })
            .collect())
    }

    pub async fn forget_installed_file(&self, path: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM installed_files WHERE path = ?")
            .bind(path)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Marks a preset as asked for (keeps the first request time).
    pub async fn request_preset(
        &self,
        preset_id: &str,
        version: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO preset_installs (preset_id, version, requested_ms) VALUES (?, ?, ?) \
             ON CONFLICT (preset_id) DO UPDATE SET version = excluded.version, installed_ms = NULL",
        )
        .bind(preset_id)
        .bind(version)
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn mark_preset_installed(&self, preset_id: &str, now_ms: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE preset_installs SET installed_ms = ? WHERE preset_id = ? AND installed_ms IS NULL",
        )
        .bind(now_ms)
        .bind(preset_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// `(preset id, version, installed?)` for every requested preset.
    pub async fn requested_presets(&self) -> StoreResult<Vec<(String, Option<String>, bool)>> {
        let rows = sqlx::query(
            "SELECT preset_id, version, installed_ms IS NOT NULL AS installed FROM preset_installs",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get("preset_id"), r.get("version"), r.get("installed")))
            .collect())
    }

    pub async fn forget_preset(&self, preset_id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM preset_installs WHERE preset_id = ?")
            .bind(preset_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn start_history(&self, preset_id: &str, now_ms: i64) -> StoreResult<i64> {
        // One open row per preset: a second install request continues the first.
        let open: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM download_history WHERE preset_id = ? AND outcome = 'running' \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(preset_id)
        .fetch_optional(self.pool())
        .await?;
        if let Some(id) = open {
            return Ok(id);
        }
        let id = sqlx::query(
            "INSERT INTO download_history (preset_id, started_ms, outcome) VALUES (?, ?, 'running')",
        )
        .bind(preset_id)
        .bind(now_ms)
        .execute(self.pool())
        .await?
        .last_insert_rowid();
        Ok(id)
    }

    /// Closes the preset's open history row, if any.
    pub async fn finish_history(
        &self,
        preset_id: &str,
        outcome: &str,
        bytes: u64,
        message: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE download_history SET outcome = ?, bytes = ?, message = ?, finished_ms = ? \
             WHERE preset_id = ? AND outcome = 'running'",
        )
        .bind(outcome)
        .bind(bytes as i64)
        .bind(message)
        .bind(now_ms)
        .bind(preset_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Adds a history row that is already finished (removals).
    pub async fn add_history(
        &self,
        preset_id: &str,
        outcome: &str,
        message: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO download_history (preset_id, started_ms, finished_ms, outcome, message) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(preset_id)
        .bind(now_ms)
        .bind(now_ms)
        .bind(outcome)
        .bind(message)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// `(preset id, outcome, started, finished, message)`, newest first.
    #[allow(clippy::type_complexity)]
    pub async fn history(
        &self,
        limit: u32,
    ) -> StoreResult<Vec<(String, String, i64, Option<i64>, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT preset_id, outcome, started_ms, finished_ms, message FROM download_history \
             ORDER BY id DESC LIMIT ?",
        )
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get("preset_id"),
                    r.get("outcome"),
                    r.get("started_ms"),
                    r.get("finished_ms"),
                    r.get("message"),
                )
            })
            .collect())
    }
}
