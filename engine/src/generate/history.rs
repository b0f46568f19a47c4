//! The generation history and the remembered form values, in SQLite.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use super::GenerateError;
use crate::model::{
    run_failure_text, Generation, GenerationStatus, InputValue, RunEventKind, RunOutput,
};

/// Rows listed per workflow (older ones stay in the database).
pub const HISTORY_LIMIT: i64 = 50;

#[derive(Clone, Debug)]
pub struct GenerationStore {
    pool: SqlitePool,
}

/// What a new generation row holds.
pub struct NewGeneration<'a> {
    pub workflow_id: &'a str,
    pub workflow_name: &'a str,
    pub inputs: &'a [InputValue],
    pub prompt_id: &'a str,
    pub created_ms: i64,
    /// Whose it is.
    pub user_id: i64,
}

const COLUMNS: &str = "id, workflow_id, workflow_name, inputs_json, prompt_id, status, error, \
                       created_ms, started_ms, finished_ms, outputs_json, user_id";

impl GenerationStore {
    pub fn new(pool: SqlitePool) -> Self {
        GenerationStore { pool }
    }

    pub async fn insert(&self, new: NewGeneration<'_>) -> Result<i64, GenerateError> {
        let inputs = serde_json::to_string(new.inputs).map_err(GenerateError::encode)?;
        let id = sqlx::query(
            "INSERT INTO generations (workflow_id, workflow_name, inputs_json, prompt_id, status, \
             created_ms, user_id) VALUES (?, ?, ?, ?, 'queued', ?, ?)",
        )
        .bind(new.workflow_id)
        .bind(new.workflow_name)
        .bind(inputs)
        .bind(new.prompt_id)
        .bind(new.created_ms)
        .bind(new.user_id)
        .execute(&self.pool)
        .await?
        .last_insert_rowid();
        Ok(id)
    }

    /// A submission ComfyUI refused is no generation.
    pub async fn delete_by_prompt(&self, prompt_id: &str) -> Result<(), GenerateError> {
        sqlx::query("DELETE FROM generations WHERE prompt_id = ?")
            .bind(prompt_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn by_prompt(&self, prompt_id: &str) -> Result<Option<Generation>, GenerateError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM generations WHERE prompt_id = ?"
        ))
        .bind(prompt_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| read_row(&r)).transpose()
    }

    pub async fn by_id(&self, id: i64) -> Result<Option<Generation>, GenerateError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM generations WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| read_row(&r)).transpose()
    }

    /// Newest first; one workflow's, or all; `user_id` keeps one person's only.
    pub async fn list(
        &self,
        workflow_id: Option<&str>,
        user_id: Option<i64>,
    ) -> Result<Vec<Generation>, GenerateError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM generations \
             WHERE (?1 IS NULL OR workflow_id = ?1) AND (?2 IS NULL OR user_id = ?2) \
             ORDER BY id DESC LIMIT ?3"
        ))
        .bind(workflow_id)
        .bind(user_id)
        .bind(HISTORY_LIMIT)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(read_row).collect()
    }

    /// Whether one of `user_id`'s generations reported this file (`kind` output or temp).
    pub async fn has_output(
        &self,
        user_id: i64,
        kind: &str,
        subfolder: &str,
        filename: &str,
    ) -> Result<bool, GenerateError> {
        // A cheap text filter first, then the exact check on the few rows left.
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT outputs_json FROM generations WHERE user_id = ? AND instr(outputs_json, ?) > 0",
        )
        .bind(user_id)
        .bind(filename)
        .fetch_all(&self.pool)
        .await?;
        let subfolder = subfolder.trim_matches('/');
        Ok(rows.iter().any(|json| {
            serde_json::from_str::<Vec<RunOutput>>(json).is_ok_and(|outputs| {
                outputs.iter().any(|o| {
                    o.kind == kind
                        && o.filename == filename
                        && o.subfolder.trim_matches('/') == subfolder
                })
            })
        }))
    }

    /// Rows that may still change: queued or running.
    pub async fn active(&self) -> Result<Vec<Generation>, GenerateError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM generations WHERE status IN ('queued', 'running') ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(read_row).collect()
    }

    /// Applies one live event to the row of its prompt (prompts from elsewhere have none and
    /// are skipped). Returns whether a row changed. A finished row is never reopened.
    pub async fn apply_event(
        &self,
        prompt_id: &str,
        event: &RunEventKind,
        now_ms: i64,
    ) -> Result<bool, GenerateError> {
        let changed = match event {
            RunEventKind::Started => sqlx::query(
                "UPDATE generations SET status = 'running', started_ms = COALESCE(started_ms, ?) \
                     WHERE prompt_id = ? AND status IN ('queued', 'running')",
            )
            .bind(now_ms)
            .bind(prompt_id)
            .execute(&self.pool)
            .await?,
            // A missed `Started` (socket reconnect): any sign of work means it runs.
            RunEventKind::Executing { .. }
            | RunEventKind::Progress { .. }
            | RunEventKind::Nodes { .. } => sqlx::query(
                "UPDATE generations SET status = 'running', started_ms = COALESCE(started_ms, ?) \
                     WHERE prompt_id = ? AND status = 'queued'",
            )
            .bind(now_ms)
            .bind(prompt_id)
            .execute(&self.pool)
            .await?,
            RunEventKind::Output { files, .. } => {
                let Some(current) = self.by_prompt(prompt_id).await? else {
                    return Ok(false);
                };
                let mut outputs = current.outputs;
                for file in files {
                    if !outputs.contains(file) {
                        outputs.push(file.clone());
                    }
                }
                self.set_outputs(prompt_id, &outputs).await?;
                return Ok(true);
            }
            RunEventKind::Succeeded => {
                self.finish(prompt_id, GenerationStatus::Succeeded, None, now_ms)
                    .await?
            }
            RunEventKind::Failed {
                node,
                node_type,
                message,
            } => {
                let error = run_failure_text(node_type.as_deref(), node.as_deref(), message);
                self.finish(prompt_id, GenerationStatus::Failed, Some(&error), now_ms)
                    .await?
            }
            RunEventKind::Interrupted { .. } => {
                self.finish(prompt_id, GenerationStatus::Interrupted, None, now_ms)
                    .await?
            }
            _ => return Ok(false),
        };
        Ok(changed.rows_affected() > 0)
    }

    /// Ends an active row; a row already ended keeps its outcome.
    pub async fn finish(
        &self,
        prompt_id: &str,
        status: GenerationStatus,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<sqlx::sqlite::SqliteQueryResult, GenerateError> {
        Ok(sqlx::query(
            "UPDATE generations SET status = ?, error = ?, finished_ms = ? \
             WHERE prompt_id = ? AND status IN ('queued', 'running')",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(now_ms)
        .bind(prompt_id)
        .execute(&self.pool)
        .await?)
    }

    /// Settles a row from ComfyUI's history (start-up reconciliation).
    pub async fn settle(
        &self,
        prompt_id: &str,
        status: GenerationStatus,
        error: Option<&str>,
        started_ms: Option<i64>,
        finished_ms: i64,
        outputs: &[RunOutput],
    ) -> Result<(), GenerateError> {
        let outputs = serde_json::to_string(outputs).map_err(GenerateError::encode)?;
        sqlx::query(
            "UPDATE generations SET status = ?, error = ?, started_ms = COALESCE(?, started_ms), \
             finished_ms = ?, outputs_json = ? WHERE prompt_id = ? AND status IN ('queued', 'running')",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(started_ms)
        .bind(finished_ms)
        .bind(outputs)
        .bind(prompt_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_outputs(
        &self,
        prompt_id: &str,
        outputs: &[RunOutput],
    ) -> Result<(), GenerateError> {
        let json = serde_json::to_string(outputs).map_err(GenerateError::encode)?;
        sqlx::query("UPDATE generations SET outputs_json = ? WHERE prompt_id = ?")
            .bind(json)
            .bind(prompt_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The values `user_id` last used with a workflow (empty when none were).
    pub async fn remembered(
        &self,
        user_id: i64,
        workflow_id: &str,
    ) -> Result<Vec<InputValue>, GenerateError> {
        let row = sqlx::query("SELECT inputs_json FROM generate_form_values WHERE workflow_id = ?")
            .bind(remembered_key(user_id, workflow_id))
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(Vec::new()),
            Some(row) => {
                let json: String = row.try_get(0)?;
                // A row written by another version may not read: forgetting beats failing.
                Ok(serde_json::from_str(&json).unwrap_or_default())
            }
        }
    }

    pub async fn remember(
        &self,
        user_id: i64,
        workflow_id: &str,
        inputs: &[InputValue],
        now_ms: i64,
    ) -> Result<(), GenerateError> {
        let json = serde_json::to_string(inputs).map_err(GenerateError::encode)?;
        sqlx::query(
            "INSERT INTO generate_form_values (workflow_id, inputs_json, updated_ms) VALUES (?, ?, ?) \
             ON CONFLICT (workflow_id) DO UPDATE SET inputs_json = excluded.inputs_json, \
             updated_ms = excluded.updated_ms",
        )
        .bind(remembered_key(user_id, workflow_id))
        .bind(json)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// The row of remembered values: each person has their own (a shared template's values are
/// someone's prompts). The administrator's rows keep the bare workflow id they had before
/// accounts existed; a user's are `u<id>|<workflow id>` (`|` is in no workflow id's source).
fn remembered_key(user_id: i64, workflow_id: &str) -> String {
    if user_id == crate::workflows::ADMIN_USER_ID {
        workflow_id.to_string()
    } else {
        format!("u{user_id}|{workflow_id}")
    }
}

fn read_row(row: &SqliteRow) -> Result<Generation, GenerateError> {
    let status: String = row.try_get("status")?;
    let inputs: String = row.try_get("inputs_json")?;
    let outputs: String = row.try_get("outputs_json")?;
    Ok(Generation {
        id: row.try_get("id")?,
        workflow_id: row.try_get("workflow_id")?,
        workflow_name: row.try_get("workflow_name")?,
        inputs: serde_json::from_str(&inputs).map_err(GenerateError::corrupt)?,
        prompt_id: row.try_get("prompt_id")?,
        status: GenerationStatus::parse(&status)
            .ok_or_else(|| GenerateError::Corrupt(format!("unknown status {status:?}")))?,
        error: row.try_get("error")?,
        created_ms: row.try_get("created_ms")?,
        started_ms: row.try_get("started_ms")?,
        finished_ms: row.try_get("finished_ms")?,
        outputs: serde_json::from_str(&outputs).map_err(GenerateError::corrupt)?,
        user_id: row.try_get("user_id")?,
    })
}
