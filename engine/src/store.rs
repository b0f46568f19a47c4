//! SQLite through sqlx: migrations, settings, activity, sessions and API tokens.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;

use crate::model::{ActivityEntry, ActivityKind, ActivityPage, ApiTokenInfo};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("cannot upgrade the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    #[error("the database holds an unknown activity kind {0:?}")]
    UnknownKind(String),
    #[error("the database holds an unknown role {0:?}")]
    UnknownRole(String),
}

impl crate::error::Classify for StoreError {
    /// The database is ours: any failure of it is our fault.
    fn kind(&self) -> crate::model::ErrorKind {
        crate::model::ErrorKind::Internal
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

/// A transaction on `pool` that takes SQLite's write lock at once. A deferred one that reads
/// first and writes later fails with "database is locked" (SQLITE_BUSY_SNAPSHOT) when another
/// writer commits in between, and the busy timeout cannot help it; this one waits instead.
pub(crate) async fn write_tx(
    pool: &SqlitePool,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// A session row, as the auth layer needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRow {
    pub created_ms: i64,
    pub expires_ms: i64,
    pub last_seen_ms: i64,
}

impl Store {
    /// Opens (creating if needed) the database in WAL mode and applies pending migrations.
    pub async fn open(path: &Path) -> StoreResult<Store> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(open_err)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable across application crashes; only a power cut can lose the
            // last transactions, never corrupt the file.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(open_err)?;
        // Two processes may open a new database at once (the server starting while a CLI
        // command reads): both see a migration pending, one applies it, the other fails on
        // "table … already exists". Run again: the applied ones are skipped by their record,
        // and a migration that is really broken fails every time.
        let mut attempt = 0;
        loop {
            match MIGRATIONS.run(&pool).await {
                Ok(()) => break,
                Err(_) if attempt < 3 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Store { pool })
    }

    /// For modules that keep their own tables (downloads).
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// [`write_tx`] on the workspace database.
    pub(crate) async fn write_tx(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        write_tx(&self.pool).await
    }

    /// A cheap query that proves the database answers (for `/health`).
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn journal_mode(&self) -> StoreResult<String> {
        Ok(sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&self.pool)
            .await?)
    }

    // -- settings ------------------------------------------------------------------------------

    pub async fn all_settings(&self) -> StoreResult<HashMap<String, String>> {
        let rows = sqlx::query("SELECT key, value FROM settings")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.get::<String, _>("key"), r.get::<String, _>("value")))
            .collect())
    }

    pub async fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Applies several changes in one transaction: `None` deletes the key.
    pub async fn write_settings(
        &self,
        changes: &[(&str, Option<String>)],
        now_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        for (key, value) in changes {
            match value {
                Some(v) => {
                    sqlx::query(
                        "INSERT INTO settings (key, value, updated_ms) VALUES (?, ?, ?)
                         ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
                    )
                    .bind(key)
                    .bind(v)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM settings WHERE key = ?")
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    // -- prompt owners -------------------------------------------------------------------------

    /// Records who submitted a prompt (before ComfyUI sees it, so no event of it is unowned).
    pub async fn set_prompt_owner(
        &self,
        prompt_id: &str,
        user_id: i64,
        now_ms: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO prompt_owners (prompt_id, user_id, created_ms) VALUES (?, ?, ?) \
             ON CONFLICT (prompt_id) DO NOTHING",
        )
        .bind(prompt_id)
        .bind(user_id)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Who submitted a prompt through comfydeck (`None`: it was queued elsewhere).
    pub async fn prompt_owner(&self, prompt_id: &str) -> StoreResult<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT user_id FROM prompt_owners WHERE prompt_id = ?")
                .bind(prompt_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// A submission ComfyUI refused owns nothing.
    pub async fn forget_prompt_owner(&self, prompt_id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM prompt_owners WHERE prompt_id = ?")
            .bind(prompt_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A username by id (`None` once the user is gone).
    pub async fn username(&self, user_id: i64) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT username FROM users WHERE id = ?")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// A user's id by username (lower-cased first).
    pub async fn user_id_by_name(&self, username: &str) -> StoreResult<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM users WHERE username = ?")
                .bind(username.trim().to_ascii_lowercase())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    // -- activity ------------------------------------------------------------------------------

    pub async fn add_activity(
        &self,
        at_ms: i64,
        user_id: Option<i64>,
        kind: ActivityKind,
        message: &str,
    ) -> StoreResult<ActivityEntry> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO activity (at_ms, kind, message, user_id) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(at_ms)
        .bind(kind.as_str())
        .bind(message)
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(ActivityEntry {
            id,
            at_ms,
            kind,
            message: message.to_string(),
            user_id,
        })
    }

    /// Newest first; `user_id` keeps one user's entries only. `page` is 1-based;
    /// out-of-range pages come back empty.
    pub async fn activity_page(
        &self,
        user_id: Option<i64>,
        kind: Option<ActivityKind>,
        page: u32,
        per_page: u32,
    ) -> StoreResult<ActivityPage> {
        let page = page.max(1);
        let per_page = per_page.clamp(1, 500);
        let kind_str = kind.map(ActivityKind::as_str);
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM activity
             WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR user_id = ?2)",
        )
        .bind(kind_str)
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(
            "SELECT id, at_ms, kind, message, user_id FROM activity
             WHERE (?1 IS NULL OR kind = ?1) AND (?4 IS NULL OR user_id = ?4)
             ORDER BY at_ms DESC, id DESC LIMIT ?2 OFFSET ?3",
        )
        .bind(kind_str)
        .bind(i64::from(per_page))
        .bind(i64::from(page - 1) * i64::from(per_page))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        let entries = rows
            .into_iter()
            .map(|r| {
                let kind: String = r.get("kind");
                Ok(ActivityEntry {
                    id: r.get("id"),
                    at_ms: r.get("at_ms"),
                    kind: ActivityKind::parse(&kind).ok_or(StoreError::UnknownKind(kind))?,
                    message: r.get("message"),
                    user_id: r.get("user_id"),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(ActivityPage {
            entries,
            total: total as u64,
            page,
            per_page,
        })
    }

    /// Removes every entry; returns how many went.
    pub async fn clear_activity(&self) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM activity")
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Removes entries older than `cutoff_ms`; returns how many went.
    pub async fn prune_activity(&self, cutoff_ms: i64) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM activity WHERE at_ms < ?")
            .bind(cutoff_ms)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    // -- sessions ------------------------------------------------------------------------------

    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        now_ms: i64,
        expires_ms: i64,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_ms, expires_ms, last_seen_ms) VALUES (?, ?, ?, ?, ?)")
            .bind(token_hash)
            .bind(user_id)
            .bind(now_ms)
            .bind(expires_ms)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The session, if it exists and has not expired.
    pub async fn live_session(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> StoreResult<Option<SessionRow>> {
        let row = sqlx::query(
            "SELECT created_ms, expires_ms, last_seen_ms FROM sessions WHERE token_hash = ? AND expires_ms > ?",
        )
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| SessionRow {
            created_ms: r.get("created_ms"),
            expires_ms: r.get("expires_ms"),
            last_seen_ms: r.get("last_seen_ms"),
        }))
    }

    pub async fn touch_session(
        &self,
        token_hash: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET last_seen_ms = ?, expires_ms = ? WHERE token_hash = ?")
            .bind(now_ms)
            .bind(expires_ms)
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn prune_sessions(&self, now_ms: i64) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_ms <= ?")
            .bind(now_ms)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    // -- API tokens ----------------------------------------------------------------------------

    pub async fn create_api_token(
        &self,
        user_id: i64,
        name: &str,
        token_hash: &str,
        hint: &str,
        now_ms: i64,
    ) -> StoreResult<ApiTokenInfo> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_tokens (user_id, name, token_hash, hint, created_ms) VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(user_id)
        .bind(name)
        .bind(token_hash)
        .bind(hint)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(ApiTokenInfo {
            id,
            name: name.to_string(),
            hint: hint.to_string(),
            created_ms: now_ms,
            last_used_ms: None,
        })
    }

    /// A user's tokens not revoked, newest first.
    pub async fn api_tokens(&self, user_id: i64) -> StoreResult<Vec<ApiTokenInfo>> {
        let rows = sqlx::query(
            "SELECT id, name, hint, created_ms, last_used_ms FROM api_tokens
             WHERE revoked_ms IS NULL AND user_id = ? ORDER BY created_ms DESC, id DESC",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ApiTokenInfo {
                id: r.get("id"),
                name: r.get("name"),
                hint: r.get("hint"),
                created_ms: r.get("created_ms"),
                last_used_ms: r.get("last_used_ms"),
            })
            .collect())
    }

    /// Marks the token with this hash as used and returns its id, if it is valid.
    pub async fn use_api_token(&self, token_hash: &str, now_ms: i64) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar(
            "UPDATE api_tokens SET last_used_ms = ? WHERE token_hash = ? AND revoked_ms IS NULL RETURNING id",
        )
        .bind(now_ms)
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Revokes one of a user's tokens; returns its name when it existed, was theirs and was
    /// live.
    pub async fn revoke_api_token(
        &self,
        user_id: i64,
        id: i64,
        now_ms: i64,
    ) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "UPDATE api_tokens SET revoked_ms = ?
             WHERE id = ? AND user_id = ? AND revoked_ms IS NULL RETURNING name",
        )
        .bind(now_ms)
        .bind(id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?)
    }
}
