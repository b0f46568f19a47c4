//! Operations and their steps in SQLite.

use sqlx::{Row, SqlitePool};

use super::plan::{Action, PlannedStep};
use super::OperationError;
use crate::model::*;

/// A stored step with its action.
#[derive(Clone, Debug)]
pub struct StoredStep {
    pub view: OperationStep,
    pub key: String,
    pub action: Action,
}

/// A stored operation: its view, its steps' actions, and who it acts for.
#[derive(Clone, Debug)]
pub struct StoredOperation {
    pub view: OperationView,
    pub steps: Vec<StoredStep>,
    pub caller: Caller,
}

#[derive(Clone, Debug)]
pub struct OperationStore {
    pool: SqlitePool,
}

fn db(e: sqlx::Error) -> OperationError {
    OperationError::Store(e.to_string())
}

fn step_view(seq: u32, step: &PlannedStep) -> OperationStep {
    let (choices, wants_url) = match step.state {
        StepState::Question => super::plan::asks(&step.action),
        _ => (Vec::new(), false),
    };
    OperationStep {
        seq,
        kind: step.kind,
        title: step.title.clone(),
        state: step.state,
        detail: step.detail.clone(),
        choices,
        wants_url,
    }
}

impl OperationStore {
    pub fn new(pool: SqlitePool) -> Self {
        OperationStore { pool }
    }

    /// Stores a new running operation with its steps, in one transaction.
    pub async fn insert(
        &self,
        caller: &Caller,
        workflow_id: &str,
        workflow_name: &str,
        steps: &[PlannedStep],
        now_ms: i64,
    ) -> Result<i64, OperationError> {
        let mut tx = crate::store::write_tx(&self.pool).await.map_err(db)?;
        let id: i64 = sqlx::query(
            "INSERT INTO operations (user_id, username, role, workflow_id, workflow_name, state, \
             created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, 'running', ?, ?) RETURNING id",
        )
        .bind(caller.user_id)
        .bind(&caller.username)
        .bind(caller.role.as_str())
        .bind(workflow_id)
        .bind(workflow_name)
        .bind(now_ms)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?
        .get(0);
        for (i, step) in steps.iter().enumerate() {
            insert_step(&mut tx, id, i as u32 + 1, step).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(id)
    }

    /// Appends steps before the closing check (which moves to the end).
    pub async fn append_before_check(
        &self,
        id: i64,
        steps: &[PlannedStep],
        now_ms: i64,
    ) -> Result<(), OperationError> {
        if steps.is_empty() {
            return Ok(());
        }
        let mut tx = crate::store::write_tx(&self.pool).await.map_err(db)?;
        // The check is the last step: the new ones take its place, and it follows them.
        let check: i64 =
            sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM operation_steps WHERE operation_id = ?")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?
                .get(0);
        sqlx::query("UPDATE operation_steps SET seq = ? WHERE operation_id = ? AND key = 'check'")
            .bind(check + steps.len() as i64)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        for (i, step) in steps.iter().enumerate() {
            insert_step(&mut tx, id, (check + i as i64) as u32, step).await?;
        }
        touch(&mut tx, id, now_ms).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    pub async fn get(&self, id: i64) -> Result<Option<StoredOperation>, OperationError> {
        let Some(row) = sqlx::query(
            "SELECT id, user_id, username, role, workflow_id, workflow_name, state, summary, \
             result_workflow_id, created_ms, updated_ms FROM operations WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT seq, kind, key, title, state, detail, action_json FROM operation_steps \
             WHERE operation_id = ? ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut steps = Vec::with_capacity(rows.len());
        for r in rows {
            let action: Action =
                serde_json::from_str(&r.get::<String, _>("action_json")).map_err(|e| {
                    OperationError::Store(format!("a step's action is unreadable: {e}"))
                })?;
            let planned = PlannedStep {
                kind: StepKind::parse(&r.get::<String, _>("kind")).unwrap_or(StepKind::Check),
                key: r.get("key"),
                title: r.get("title"),
                state: StepState::parse(&r.get::<String, _>("state")).unwrap_or(StepState::Pending),
                detail: r.get("detail"),
                action,
            };
            steps.push(StoredStep {
                view: step_view(r.get::<i64, _>("seq") as u32, &planned),
                key: planned.key,
                action: planned.action,
            });
        }
        let caller = Caller {
            user_id: row.get("user_id"),
            username: row.get("username"),
            role: Role::parse(&row.get::<String, _>("role")).unwrap_or(Role::User),
            theme: None,
        };
        let view = OperationView {
            id: row.get("id"),
            user_id: caller.user_id,
            workflow_id: row.get("workflow_id"),
            workflow_name: row.get("workflow_name"),
            state: OperationState::parse(&row.get::<String, _>("state"))
                .unwrap_or(OperationState::Failed),
            steps: steps.iter().map(|s| s.view.clone()).collect(),
            summary: row.get("summary"),
            result_workflow_id: row.get("result_workflow_id"),
            created_ms: row.get("created_ms"),
            updated_ms: row.get("updated_ms"),
        };
        Ok(Some(StoredOperation {
            view,
            steps,
            caller,
        }))
    }

    /// The caller's newest operation on a workflow, if any.
    pub async fn latest_for(
        &self,
        user_id: i64,
        workflow_id: &str,
    ) -> Result<Option<i64>, OperationError> {
        Ok(sqlx::query(
            "SELECT id FROM operations WHERE user_id = ? AND workflow_id = ? ORDER BY id DESC \
             LIMIT 1",
        )
        .bind(user_id)
        .bind(workflow_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .map(|r| r.get(0)))
    }

    /// Operations still running (to continue after a restart).
    pub async fn running(&self) -> Result<Vec<i64>, OperationError> {
        Ok(
            sqlx::query("SELECT id FROM operations WHERE state = 'running' ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .map_err(db)?
                .into_iter()
                .map(|r| r.get(0))
                .collect(),
        )
    }

    pub async fn set_step(
        &self,
        id: i64,
        seq: u32,
        state: StepState,
        detail: Option<&str>,
        now_ms: i64,
    ) -> Result<(), OperationError> {
        let mut tx = crate::store::write_tx(&self.pool).await.map_err(db)?;
        sqlx::query(
            "UPDATE operation_steps SET state = ?, detail = ? WHERE operation_id = ? AND seq = ?",
        )
        .bind(state.as_str())
        .bind(detail)
        .bind(id)
        .bind(seq as i64)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        touch(&mut tx, id, now_ms).await?;
        tx.commit().await.map_err(db)
    }

    /// Replaces a step's action, title and state (an answered question).
    pub async fn replace_step(
        &self,
        id: i64,
        seq: u32,
        step: &PlannedStep,
        now_ms: i64,
    ) -> Result<(), OperationError> {
        let action = serde_json::to_string(&step.action)
            .map_err(|e| OperationError::Store(e.to_string()))?;
        let mut tx = crate::store::write_tx(&self.pool).await.map_err(db)?;
        sqlx::query(
            "UPDATE operation_steps SET title = ?, state = ?, detail = ?, action_json = ? \
             WHERE operation_id = ? AND seq = ?",
        )
        .bind(&step.title)
        .bind(step.state.as_str())
        .bind(&step.detail)
        .bind(action)
        .bind(id)
        .bind(seq as i64)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query(
            "UPDATE operations SET state = 'running', summary = NULL, updated_ms = ? WHERE id = ?",
        )
        .bind(now_ms)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    pub async fn finish(
        &self,
        id: i64,
        state: OperationState,
        summary: &str,
        result_workflow_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), OperationError> {
        sqlx::query(
            "UPDATE operations SET state = ?, summary = ?, \
             result_workflow_id = COALESCE(?, result_workflow_id), updated_ms = ? WHERE id = ?",
        )
        .bind(state.as_str())
        .bind(summary)
        .bind(result_workflow_id)
        .bind(now_ms)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }
}

async fn insert_step(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: i64,
    seq: u32,
    step: &PlannedStep,
) -> Result<(), OperationError> {
    let action =
        serde_json::to_string(&step.action).map_err(|e| OperationError::Store(e.to_string()))?;
    sqlx::query(
        "INSERT INTO operation_steps (operation_id, seq, kind, key, title, state, detail, \
         action_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(seq as i64)
    .bind(step.kind.as_str())
    .bind(&step.key)
    .bind(&step.title)
    .bind(step.state.as_str())
    .bind(&step.detail)
    .bind(action)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

async fn touch(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: i64,
    now_ms: i64,
) -> Result<(), OperationError> {
    sqlx::query("UPDATE operations SET updated_ms = ? WHERE id = ?")
        .bind(now_ms)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}
