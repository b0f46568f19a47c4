//! Failures in SQLite, kept small: resolved ones beyond the newest few hundred and week figures
//! older than a month go first.

use sqlx::{Row, SqlitePool};

use super::classify::classify;
use super::RecoveryError;
use crate::model::*;

/// Resolved or dismissed failures kept (the newest).
const KEPT_SETTLED: i64 = 500;
/// How long each failure's time is kept for the figures.
const EVENTS_KEPT_MS: i64 = 30 * 24 * 3600 * 1000;
/// A report within this long of the last one, with the same message, is the same failure
/// (a state published twice), not another one.
const SAME_FAILURE_MS: i64 = 5_000;

/// What a failure report carries.
#[derive(Clone, Debug)]
pub struct Report {
    pub source: FailureSource,
    pub key: String,
    pub target: String,
    pub subject: String,
    pub detail: String,
    pub user_id: Option<i64>,
}

/// A stored failure and what a retry acts on.
#[derive(Clone, Debug)]
pub struct StoredFailure {
    pub view: FailureView,
    pub target: String,
}

#[derive(Clone, Debug)]
pub struct RecoveryStore {
    pool: SqlitePool,
}

fn db(e: sqlx::Error) -> RecoveryError {
    RecoveryError::Store(e.to_string())
}

const COLUMNS: &str =
    "id, source, key, target, subject, class, detail, user_id, state, count, first_ms, last_ms";

fn from_row(r: &sqlx::sqlite::SqliteRow) -> StoredFailure {
    let source =
        FailureSource::parse(&r.get::<String, _>("source")).unwrap_or(FailureSource::Download);
    let detail: String = r.get("detail");
    let classified = classify(source, &detail);
    StoredFailure {
        target: r.get("target"),
        view: FailureView {
            id: r.get("id"),
            source,
            subject: r.get("subject"),
            class: classified.class,
            sentence: classified.sentence,
            detail,
            link: classified.link,
            actions: classified.actions,
            count: r.get::<i64, _>("count").max(0) as u32,
            first_ms: r.get("first_ms"),
            last_ms: r.get("last_ms"),
            state: FailureState::parse(&r.get::<String, _>("state")).unwrap_or(FailureState::Open),
            user_id: r.get("user_id"),
        },
    }
}

impl RecoveryStore {
    pub fn new(pool: SqlitePool) -> Self {
        RecoveryStore { pool }
    }

    /// The recovery tables of an open workspace database (a command reading beside a server).
    pub fn of(store: &crate::store::Store) -> Self {
        RecoveryStore::new(store.pool().clone())
    }

    /// Records a failure: a new row, or the same thing failing again (counted, reopened).
    /// Returns whether anything changed.
    pub async fn report(&self, report: &Report, now_ms: i64) -> Result<bool, RecoveryError> {
        let class = classify(report.source, &report.detail).class;
        let mut tx = crate::store::write_tx(&self.pool).await.map_err(db)?;
        let existing = sqlx::query(
            "SELECT id, detail, state, last_ms FROM failures WHERE source = ? AND key = ?",
        )
        .bind(report.source.as_str())
        .bind(&report.key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let id: i64 = match existing {
            Some(row) => {
                let same = row.get::<String, _>("state") == "open"
                    && row.get::<String, _>("detail") == report.detail
                    && now_ms - row.get::<i64, _>("last_ms") < SAME_FAILURE_MS;
                if same {
                    return Ok(false);
                }
                let id: i64 = row.get("id");
                sqlx::query(
                    "UPDATE failures SET target = ?, subject = ?, class = ?, detail = ?, \
                     user_id = ?, state = 'open', count = count + 1, last_ms = ? WHERE id = ?",
                )
                .bind(&report.target)
                .bind(&report.subject)
                .bind(class.as_str())
                .bind(&report.detail)
                .bind(report.user_id)
                .bind(now_ms)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
                id
            }
            None => sqlx::query(
                "INSERT INTO failures (source, key, target, subject, class, detail, user_id, \
                 state, count, first_ms, last_ms) VALUES (?, ?, ?, ?, ?, ?, ?, 'open', 1, ?, ?) \
                 RETURNING id",
            )
            .bind(report.source.as_str())
            .bind(&report.key)
            .bind(&report.target)
            .bind(&report.subject)
            .bind(class.as_str())
            .bind(&report.detail)
            .bind(report.user_id)
            .bind(now_ms)
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?
            .get(0),
        };
        sqlx::query("INSERT INTO failure_events (failure_id, class, at_ms) VALUES (?, ?, ?)")
            .bind(id)
            .bind(class.as_str())
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM failure_events WHERE at_ms < ?")
            .bind(now_ms - EVENTS_KEPT_MS)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(
            "DELETE FROM failures WHERE state != 'open' AND id NOT IN \
             (SELECT id FROM failures WHERE state != 'open' ORDER BY last_ms DESC LIMIT ?)",
        )
        .bind(KEPT_SETTLED)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    /// The thing worked: its open failure (if any) is resolved. Returns whether one was.
    pub async fn resolve(
        &self,
        source: FailureSource,
        key: &str,
        now_ms: i64,
    ) -> Result<bool, RecoveryError> {
        let done = sqlx::query(
            "UPDATE failures SET state = 'resolved', last_ms = ? WHERE source = ? AND key = ? \
             AND state = 'open'",
        )
        .bind(now_ms)
        .bind(source.as_str())
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn set_state(
        &self,
        id: i64,
        state: FailureState,
        now_ms: i64,
    ) -> Result<(), RecoveryError> {
        sqlx::query("UPDATE failures SET state = ?, last_ms = ? WHERE id = ?")
            .bind(state.as_str())
            .bind(now_ms)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// What is open, what settled lately and the last seven days' figures; `user` limits it
    /// to one person's failures.
    pub async fn list(
        &self,
        user: Option<i64>,
        now_ms: i64,
    ) -> Result<RecoveryList, RecoveryError> {
        const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;
        Ok(RecoveryList {
            open: self.open(user).await?.into_iter().map(|f| f.view).collect(),
            recent: self.recent(user).await?,
            week: self.week(user, now_ms - WEEK_MS).await?,
            partial_files: Vec::new(),
        })
    }

    pub async fn get(&self, id: i64) -> Result<Option<StoredFailure>, RecoveryError> {
        Ok(
            sqlx::query(&format!("SELECT {COLUMNS} FROM failures WHERE id = ?"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?
                .as_ref()
                .map(from_row),
        )
    }

    /// Open failures, newest first (`user`: only theirs; `None`: everyone's).
    pub async fn open(&self, user: Option<i64>) -> Result<Vec<StoredFailure>, RecoveryError> {
        self.listed("state = 'open'", user, 1_000).await
    }

    /// Resolved or dismissed lately, newest first.
    pub async fn recent(&self, user: Option<i64>) -> Result<Vec<FailureView>, RecoveryError> {
        Ok(self
            .listed("state != 'open'", user, 20)
            .await?
            .into_iter()
            .map(|f| f.view)
            .collect())
    }

    async fn listed(
        &self,
        filter: &str,
        user: Option<i64>,
        limit: i64,
    ) -> Result<Vec<StoredFailure>, RecoveryError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM failures WHERE {filter} AND (? IS NULL OR user_id = ?) \
             ORDER BY last_ms DESC, id DESC LIMIT ?"
        );
        Ok(sqlx::query(&sql)
            .bind(user)
            .bind(user)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(from_row)
            .collect())
    }

    /// How often each class happened since `since_ms` (most first).
    pub async fn week(
        &self,
        user: Option<i64>,
        since_ms: i64,
    ) -> Result<Vec<ClassCount>, RecoveryError> {
        let rows = sqlx::query(
            "SELECT e.class AS class, COUNT(*) AS n FROM failure_events e JOIN failures f \
             ON f.id = e.failure_id WHERE e.at_ms >= ? AND (? IS NULL OR f.user_id = ?) \
             GROUP BY e.class ORDER BY n DESC, e.class",
        )
        .bind(since_ms)
        .bind(user)
        .bind(user)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(ClassCount {
                    class: FailureClass::parse(&r.get::<String, _>("class"))?,
                    count: r.get::<i64, _>("n").max(0) as u32,
                })
            })
            .collect())
    }
}
