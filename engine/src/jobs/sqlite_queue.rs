//! The queue in the deck's own SQLite file (the embedded deployment). Every change that
//! depends on what it read runs in one `BEGIN IMMEDIATE` transaction, so a claim and its
//! marking as running cannot be split by a crash.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use super::rules::Settlement;
use super::{JobError, JobPayload, JobRecord, NewJob, WorkerRow};
use crate::model::{JobOutput, JobState, JobView, WorkerHello, WorkerTokenInfo};
use crate::store::Store;

#[derive(Clone)]
pub struct SqliteQueue {
    store: Store,
}

const COLUMNS: &str = "id, user_id, username, workflow_name, workflow_id, payload_json, \
    models_json, prompt_id, state, priority, attempts, fence, worker, lease_until_ms, \
    cancel_requested, created_ms, started_ms, finished_ms, error, attempt_errors_json, outputs_json, \
    retry_at_ms";

fn json_list<T: serde::de::DeserializeOwned>(text: &str) -> Result<Vec<T>, JobError> {
    serde_json::from_str(text).map_err(JobError::corrupt)
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".to_string())
}

fn read_row(row: &SqliteRow) -> Result<JobRecord, JobError> {
    let state: String = row.try_get("state")?;
    let state = JobState::parse(&state)
        .ok_or_else(|| JobError::corrupt(format!("unknown job state {state}")))?;
    let payload: String = row.try_get("payload_json")?;
    let payload: JobPayload = serde_json::from_str(&payload).map_err(JobError::corrupt)?;
    Ok(JobRecord {
        view: JobView {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            username: row.try_get("username")?,
            workflow_name: row.try_get("workflow_name")?,
            workflow_id: row.try_get("workflow_id")?,
            state,
            priority: row.try_get("priority")?,
            position: None,
            attempts: row.try_get::<i64, _>("attempts")? as u32,
            worker: row.try_get("worker")?,
            prompt_id: row.try_get("prompt_id")?,
            created_ms: row.try_get("created_ms")?,
            started_ms: row.try_get("started_ms")?,
            finished_ms: row.try_get("finished_ms")?,
            error: row.try_get("error")?,
            attempt_errors: json_list(row.try_get::<&str, _>("attempt_errors_json")?)?,
            outputs: json_list(row.try_get::<&str, _>("outputs_json")?)?,
            required_models: json_list(row.try_get::<&str, _>("models_json")?)?,
            waiting_for: None,
            retry_at_ms: row.try_get("retry_at_ms")?,
            cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        },
        payload,
        fence: row.try_get("fence")?,
        lease_until_ms: row.try_get("lease_until_ms")?,
    })
}

async fn job_in(tx: &mut Transaction<'_, Sqlite>, id: i64) -> Result<Option<JobRecord>, JobError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(read_row).transpose()
}

impl SqliteQueue {
    pub fn new(store: Store) -> Self {
        SqliteQueue { store }
    }

    pub async fn submit(&self, job: &NewJob, max_pending: u64) -> Result<Option<i64>, JobError> {
        let mut tx = self.store.write_tx().await?;
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'pending' AND user_id = ?")
                .bind(job.user_id)
                .fetch_one(&mut *tx)
                .await?;
        if pending as u64 >= max_pending {
            return Ok(None);
        }
        let id = sqlx::query(
            "INSERT INTO jobs (user_id, username, workflow_name, workflow_id, payload_json, \
             models_json, prompt_id, state, priority, created_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
        )
        .bind(job.user_id)
        .bind(&job.username)
        .bind(&job.workflow_name)
        .bind(&job.workflow_id)
        .bind(to_json(&job.payload))
        .bind(to_json(&job.required_models))
        .bind(&job.prompt_id)
        .bind(job.priority)
        .bind(job.created_ms)
        .execute(&mut *tx)
        .await?
        .last_insert_rowid();
        tx.commit().await?;
        Ok(Some(id))
    }

    pub async fn claim(
        &self,
        worker: &WorkerHello,
        now_ms: i64,
        lease_ms: i64,
        max_running_per_user: Option<u64>,
    ) -> Result<Option<JobRecord>, JobError> {
        let mut tx = self.store.write_tx().await?;
        let cursor: i64 = sqlx::query_scalar("SELECT user_id FROM job_cursor WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let users: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT user_id FROM jobs WHERE state = 'pending' ORDER BY user_id",
        )
        .fetch_all(&mut *tx)
        .await?;
        // The round goes on after the user served last.
        let (after, before): (Vec<i64>, Vec<i64>) = users.into_iter().partition(|u| *u > cursor);
        for user in after.into_iter().chain(before) {
            if let Some(max) = max_running_per_user {
                let running: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM jobs WHERE state = 'running' AND user_id = ?",
                )
                .bind(user)
                .fetch_one(&mut *tx)
                .await?;
                if running as u64 >= max {
                    continue;
                }
            }
            let line: Vec<(i64, String)> = sqlx::query_as(
                "SELECT id, models_json FROM jobs WHERE state = 'pending' AND user_id = ? \
                 AND (retry_at_ms IS NULL OR retry_at_ms <= ?) \
                 ORDER BY priority DESC, id LIMIT 200",
            )
            .bind(user)
            .bind(now_ms)
            .fetch_all(&mut *tx)
            .await?;
            for (id, models) in line {
                if !super::rules::fits(
                    &worker.models,
                    worker.install_missing,
                    worker.installable.as_deref(),
                    &json_list::<String>(&models)?,
                ) {
                    continue;
                }
                sqlx::query(
                    "UPDATE jobs SET state = 'running', attempts = attempts + 1, fence = fence + 1, \
                     worker = ?, lease_until_ms = ?, claimed_ms = ?, retry_at_ms = NULL, \
                     started_ms = COALESCE(started_ms, ?) WHERE id = ?",
                )
                .bind(&worker.name)
                .bind(now_ms + lease_ms)
                .bind(now_ms)
                .bind(now_ms)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE job_cursor SET user_id = ? WHERE id = 1")
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
                let record = job_in(&mut tx, id).await?;
                tx.commit().await?;
                return Ok(record);
            }
        }
        Ok(None)
    }

    pub async fn heartbeat(
        &self,
        job_id: i64,
        fence: i64,
        lease_until_ms: i64,
    ) -> Result<bool, JobError> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until_ms = ? WHERE id = ? AND fence = ? AND state = 'running' \
             RETURNING cancel_requested",
        )
        .bind(lease_until_ms)
        .bind(job_id)
        .bind(fence)
        .fetch_optional(self.store.pool())
        .await?;
        match done {
            Some(row) => Ok(row.try_get::<i64, _>(0)? != 0),
            None => Err(JobError::Fenced(job_id)),
        }
    }

    pub async fn settle(
        &self,
        record: &JobRecord,
        settlement: &Settlement,
        now_ms: i64,
        expired_at_ms: Option<i64>,
    ) -> Result<bool, JobError> {
        let mut tx = self.store.write_tx().await?;
        let Some(current) = job_in(&mut tx, record.view.id).await? else {
            return Ok(false);
        };
        if current.view.state != JobState::Running || current.fence != record.fence {
            return Ok(false);
        }
        if let Some(at) = expired_at_ms {
            // A heartbeat renewed the lease since it was read: not lost after all.
            if current.lease_until_ms.is_some_and(|until| until > at) {
                return Ok(false);
            }
        }
        let mut state = settlement.state();
        // A cancel that arrived since the decision wins over another delivery.
        if state == JobState::Pending && current.view.cancel_requested {
            state = JobState::Cancelled;
        }
        let outputs = match settlement {
            Settlement::Succeed { outputs } => outputs.clone(),
            _ => current.view.outputs.clone(),
        };
        let finished = (state != JobState::Pending).then_some(now_ms);
        sqlx::query(
            "UPDATE jobs SET state = ?, lease_until_ms = NULL, finished_ms = ?, error = ?, \
             attempt_errors_json = ?, outputs_json = ?, retry_at_ms = ? WHERE id = ?",
        )
        .bind(state.as_str())
        .bind(finished)
        .bind(settlement.error())
        .bind(to_json(&settlement.attempt_errors(record)))
        .bind(to_json(&outputs))
        .bind(
            settlement
                .retry_at_ms(now_ms)
                .filter(|_| state == JobState::Pending),
        )
        .bind(record.view.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn cancel(&self, job_id: i64, now_ms: i64) -> Result<Option<JobState>, JobError> {
        let mut tx = self.store.write_tx().await?;
        let Some(current) = job_in(&mut tx, job_id).await? else {
            return Ok(None);
        };
        match current.view.state {
            JobState::Pending => {
                sqlx::query(
                    "UPDATE jobs SET state = 'cancelled', finished_ms = ?, cancel_requested = 1 \
                     WHERE id = ?",
                )
                .bind(now_ms)
                .bind(job_id)
                .execute(&mut *tx)
                .await?;
            }
            JobState::Running => {
                sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = ?")
                    .bind(job_id)
                    .execute(&mut *tx)
                    .await?;
            }
            _ => {}
        }
        tx.commit().await?;
        Ok(Some(match current.view.state {
            JobState::Pending => JobState::Cancelled,
            other => other,
        }))
    }

    pub async fn set_priority(&self, job_id: i64, priority: i64) -> Result<bool, JobError> {
        let changed = sqlx::query("UPDATE jobs SET priority = ? WHERE id = ?")
            .bind(priority)
            .bind(job_id)
            .execute(self.store.pool())
            .await?
            .rows_affected();
        Ok(changed > 0)
    }

    pub async fn get(&self, job_id: i64) -> Result<Option<JobRecord>, JobError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?"))
            .bind(job_id)
            .fetch_optional(self.store.pool())
            .await?;
        row.as_ref().map(read_row).transpose()
    }

    pub async fn id_of_prompt(&self, prompt_id: &str) -> Result<Option<i64>, JobError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM jobs WHERE prompt_id = ?")
                .bind(prompt_id)
                .fetch_optional(self.store.pool())
                .await?,
        )
    }

    pub async fn list(
        &self,
        state: Option<JobState>,
        user_id: Option<i64>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<JobRecord>, JobError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE (?1 IS NULL OR state = ?1) \
             AND (?2 IS NULL OR user_id = ?2) AND (?3 IS NULL OR id < ?3) \
             ORDER BY id DESC LIMIT ?4"
        ))
        .bind(state.map(JobState::as_str))
        .bind(user_id)
        .bind(before)
        .bind(limit as i64)
        .fetch_all(self.store.pool())
        .await?;
        rows.iter().map(read_row).collect()
    }

    pub async fn expired(&self, now_ms: i64) -> Result<Vec<JobRecord>, JobError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE state = 'running' AND lease_until_ms < ?"
        ))
        .bind(now_ms)
        .fetch_all(self.store.pool())
        .await?;
        rows.iter().map(read_row).collect()
    }

    pub async fn pending_lines(&self) -> Result<(i64, Vec<(i64, Vec<i64>)>), JobError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT user_id, id FROM jobs WHERE state = 'pending' \
             ORDER BY user_id, priority DESC, id",
        )
        .fetch_all(self.store.pool())
        .await?;
        let cursor: i64 = sqlx::query_scalar("SELECT user_id FROM job_cursor WHERE id = 1")
            .fetch_one(self.store.pool())
            .await?;
        let mut lines: Vec<(i64, Vec<i64>)> = Vec::new();
        for (user, id) in rows {
            match lines.last_mut() {
                Some((u, ids)) if *u == user => ids.push(id),
                _ => lines.push((user, vec![id])),
            }
        }
        Ok((cursor, lines))
    }

    pub async fn counts(&self) -> Result<Vec<(i64, String, u64, u64)>, JobError> {
        let rows: Vec<(i64, String, i64, i64)> = sqlx::query_as(
            "SELECT user_id, MAX(username), SUM(state = 'pending'), SUM(state = 'running') \
             FROM jobs WHERE state IN ('pending', 'running') GROUP BY user_id ORDER BY user_id",
        )
        .fetch_all(self.store.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(u, n, p, r)| (u, n, p as u64, r as u64))
            .collect())
    }

    pub async fn waits_since(&self, since_ms: i64) -> Result<Vec<i64>, JobError> {
        Ok(sqlx::query_scalar(
            "SELECT claimed_ms - created_ms FROM jobs WHERE claimed_ms >= ? ORDER BY 1",
        )
        .bind(since_ms)
        .fetch_all(self.store.pool())
        .await?)
    }

    pub async fn touch_worker(&self, row: &WorkerRow) -> Result<(), JobError> {
        sqlx::query(
            "INSERT INTO workers (name, gpu, vram_mb, models_json, install_missing, \
             installable_json, current_job, last_heartbeat_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET gpu = excluded.gpu, vram_mb = excluded.vram_mb, \
             models_json = excluded.models_json, install_missing = excluded.install_missing, \
             installable_json = excluded.installable_json, current_job = excluded.current_job, last_heartbeat_ms = excluded.last_heartbeat_ms",
        )
        .bind(&row.name)
        .bind(&row.gpu)
        .bind(row.vram_mb.map(|v| v as i64))
        .bind(to_json(&row.models))
        .bind(row.install_missing)
        .bind(row.installable.as_ref().map(to_json))
        .bind(row.current_job)
        .bind(row.last_heartbeat_ms)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    pub async fn worker_finished_job(&self, name: &str) -> Result<(), JobError> {
        sqlx::query(
            "UPDATE workers SET jobs_done = jobs_done + 1, current_job = NULL WHERE name = ?",
        )
        .bind(name)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    pub async fn workers(&self) -> Result<Vec<WorkerRow>, JobError> {
        let rows = sqlx::query(
            "SELECT name, gpu, vram_mb, models_json, install_missing, installable_json, \
             current_job, last_heartbeat_ms, jobs_done FROM workers ORDER BY name",
        )
        .fetch_all(self.store.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WorkerRow {
                    name: r.try_get("name")?,
                    gpu: r.try_get("gpu")?,
                    vram_mb: r.try_get::<Option<i64>, _>("vram_mb")?.map(|v| v as u64),
                    models: json_list(r.try_get::<&str, _>("models_json")?)?,
                    install_missing: r.try_get("install_missing")?,
                    installable: r
                        .try_get::<Option<&str>, _>("installable_json")?
                        .map(json_list)
                        .transpose()?,
                    current_job: r.try_get("current_job")?,
                    last_heartbeat_ms: r.try_get("last_heartbeat_ms")?,
                    jobs_done: r.try_get::<i64, _>("jobs_done")? as u64,
                })
            })
            .collect()
    }

    pub async fn add_token(&self, name: &str, hash: &str, now_ms: i64) -> Result<bool, JobError> {
        let added = sqlx::query(
            "INSERT INTO worker_tokens (name, token_hash, created_ms) VALUES (?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(hash)
        .bind(now_ms)
        .execute(self.store.pool())
        .await?
        .rows_affected();
        Ok(added > 0)
    }

    pub async fn token_name(&self, hash: &str) -> Result<Option<String>, JobError> {
        Ok(sqlx::query_scalar(
            "SELECT name FROM worker_tokens WHERE token_hash = ? AND revoked_ms IS NULL",
        )
        .bind(hash)
        .fetch_optional(self.store.pool())
        .await?)
    }

    pub async fn tokens(&self) -> Result<Vec<WorkerTokenInfo>, JobError> {
        let rows: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT name, created_ms, revoked_ms FROM worker_tokens ORDER BY created_ms, name",
        )
        .fetch_all(self.store.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, created_ms, revoked)| WorkerTokenInfo {
                name,
                created_ms,
                revoked: revoked.is_some(),
            })
            .collect())
    }

    pub async fn revoke_token(&self, name: &str, now_ms: i64) -> Result<bool, JobError> {
        let changed = sqlx::query(
            "UPDATE worker_tokens SET revoked_ms = ? WHERE name = ? AND revoked_ms IS NULL",
        )
        .bind(now_ms)
        .bind(name)
        .execute(self.store.pool())
        .await?
        .rows_affected();
        Ok(changed > 0)
    }

    pub async fn add_output(
        &self,
        job_id: i64,
        fence: i64,
        output: &JobOutput,
    ) -> Result<bool, JobError> {
        let mut tx = self.store.write_tx().await?;
        let Some(current) = job_in(&mut tx, job_id).await? else {
            return Ok(false);
        };
        if current.view.state != JobState::Running || current.fence != fence {
            return Ok(false);
        }
        let outputs = super::with_output(current.view.outputs, output);
        sqlx::query("UPDATE jobs SET outputs_json = ? WHERE id = ?")
            .bind(to_json(&outputs))
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}
