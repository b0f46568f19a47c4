//! The generation history and the remembered form values, in SQLite.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use super::GenerateError;
use crate::model::{Generation, GenerationStatus, InputValue, RunEventKind, RunOutput};

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
}

const COLUMNS: &str = "id, workflow_id, workflow_name, inputs_json, prompt_id, status, error, \
                       created_ms, started_ms, finished_ms, outputs_json";

impl GenerationStore {
    pub fn new(pool: SqlitePool) -> Self {
        GenerationStore { pool }
    }

    pub async fn insert(&self, new: NewGeneration<'_>) -> Result<i64, GenerateError> {
        let inputs = serde_json::to_string(new.inputs).map_err(GenerateError::encode)?;
        let id = sqlx::query(
            "INSERT INTO generations (workflow_id, workflow_name, inputs_json, prompt_id, status, \
             created_ms) VALUES (?, ?, ?, ?, 'queued', ?)",
        )
        .bind(new.workflow_id)
        .bind(new.workflow_name)
        .bind(inputs)
        .bind(new.prompt_id)
        .bind(new.created_ms)
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

    /// Newest first; one workflow's, or all.
    pub async fn list(&self, workflow_id: Option<&str>) -> Result<Vec<Generation>, GenerateError> {
        let rows = match workflow_id {
            Some(w) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM generations WHERE workflow_id = ? ORDER BY id DESC \
                     LIMIT ?"
                ))
                .bind(w)
                .bind(HISTORY_LIMIT)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM generations ORDER BY id DESC LIMIT ?"
                ))
                .bind(HISTORY_LIMIT)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(read_row).collect()
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
                let error = match (node_type, node) {
                    (Some(t), Some(n)) => format!("{t} (node {n}): {message}"),
                    (None, Some(n)) => format!("node {n}: {message}"),
                    _ => message.clone(),
                };
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

    /// The values last used with a workflow (empty when none were).
    pub async fn remembered(&self, workflow_id: &str) -> Result<Vec<InputValue>, GenerateError> {
        let row = sqlx::query("SELECT inputs_json FROM generate_form_values WHERE workflow_id = ?")
            .bind(workflow_id)
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
        .bind(workflow_id)
        .bind(json)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
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
    })
}
