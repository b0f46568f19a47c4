//! The `users` table and what hangs off a user (sessions, tokens, owned rows): the SQL behind
//! [`super::AuthService`]'s account methods.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::model::{Role, Theme, UserInfo, ADMIN_USERNAME};
use crate::store::{Store, StoreError, StoreResult};

/// A user row with what login needs.
#[derive(Clone, Debug)]
pub(crate) struct UserRow {
    pub info: UserInfo,
    pub password_hash: Option<String>,
}

const USER_COLUMNS: &str =
    "id, username, role, password_hash, created_ms, last_login_ms, disabled, theme";

fn user_row(r: &SqliteRow) -> StoreResult<UserRow> {
    let role: String = r.get("role");
    let theme: Option<String> = r.get("theme");
    let password_hash: Option<String> = r.get("password_hash");
    Ok(UserRow {
        info: UserInfo {
            id: r.get("id"),
            username: r.get("username"),
            role: Role::parse(&role).ok_or(StoreError::UnknownRole(role))?,
            created_ms: r.get("created_ms"),
            last_login_ms: r.get("last_login_ms"),
            disabled: r.get::<i64, _>("disabled") != 0,
            theme: theme.as_deref().and_then(Theme::parse),
            has_password: password_hash.is_some(),
        },
        password_hash,
    })
}

pub(crate) async fn users(store: &Store) -> StoreResult<Vec<UserInfo>> {
    let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(|r| user_row(r).map(|u| u.info)).collect()
}

pub(crate) async fn user_by_name(store: &Store, username: &str) -> StoreResult<Option<UserRow>> {
    sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username = ?"
    ))
    .bind(username)
    .fetch_optional(store.pool())
    .await?
    .as_ref()
    .map(user_row)
    .transpose()
}

pub(crate) async fn user_by_id(store: &Store, id: i64) -> StoreResult<Option<UserRow>> {
    sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .as_ref()
        .map(user_row)
        .transpose()
}

/// `admin` exists in every workspace (the migration made it); this puts it back if a hand-edited
/// database lost it.
pub(crate) async fn ensure_admin(store: &Store, now_ms: i64) -> StoreResult<UserRow> {
    sqlx::query(
        "INSERT INTO users (username, role, created_ms) VALUES (?, 'admin', ?)
         ON CONFLICT (username) DO NOTHING",
    )
    .bind(ADMIN_USERNAME)
    .bind(now_ms)
    .execute(store.pool())
    .await?;
    Ok(user_by_name(store, ADMIN_USERNAME)
        .await?
        .expect("admin was just ensured"))
}

/// Inserts a user; `None` when the name is taken.
pub(crate) async fn insert_user(
    store: &Store,
    username: &str,
    role: Role,
    password_hash: &str,
    now_ms: i64,
) -> StoreResult<Option<UserInfo>> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO users (username, role, password_hash, created_ms) VALUES (?, ?, ?, ?)
         ON CONFLICT (username) DO NOTHING RETURNING id",
    )
    .bind(username)
    .bind(role.as_str())
    .bind(password_hash)
    .bind(now_ms)
    .fetch_optional(store.pool())
    .await?;
    match id {
        Some(id) => Ok(user_by_id(store, id).await?.map(|u| u.info)),
        None => Ok(None),
    }
}

/// One change to a user row. The column comes from this closed set, never from input.
#[derive(Clone, Copy, Debug)]
pub(crate) enum UserChange<'a> {
    /// A new password hash; ends the user's sessions.
    PasswordHash(&'a str),
    /// Disabling ends the user's sessions.
    Disabled(bool),
    Role(Role),
    Theme(Theme),
    LastLogin(i64),
}

impl UserChange<'_> {
    fn column(self) -> &'static str {
        match self {
            UserChange::PasswordHash(_) => "password_hash",
            UserChange::Disabled(_) => "disabled",
            UserChange::Role(_) => "role",
            UserChange::Theme(_) => "theme",
            UserChange::LastLogin(_) => "last_login_ms",
        }
    }

    fn ends_sessions(self) -> bool {
        matches!(
            self,
            UserChange::PasswordHash(_) | UserChange::Disabled(true)
        )
    }
}

/// Applies the change, and ends the user's sessions when it calls for it, in one transaction.
pub(crate) async fn update_user(store: &Store, id: i64, change: UserChange<'_>) -> StoreResult<()> {
    let mut tx = store.write_tx().await?;
    let sql = format!("UPDATE users SET {} = ? WHERE id = ?", change.column());
    let query = sqlx::query(&sql);
    let query = match change {
        UserChange::PasswordHash(hash) => query.bind(hash),
        UserChange::Disabled(disabled) => query.bind(i64::from(disabled)),
        UserChange::Role(role) => query.bind(role.as_str()),
        UserChange::Theme(theme) => query.bind(theme.as_str()),
        UserChange::LastLogin(ms) => query.bind(ms),
    };
    query.bind(id).execute(&mut *tx).await?;
    if change.ends_sessions() {
        sqlx::query("DELETE FROM sessions WHERE user_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// What removing a user did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Removal {
    pub tokens_revoked: u64,
    pub generations_moved: u64,
    pub outputs_moved: u64,
}

/// Removes a user in one transaction: their sessions end, their API tokens are revoked, and
/// their generations, outputs and prompts pass to `to_user` (admin).
pub(crate) async fn remove_user(
    store: &Store,
    id: i64,
    to_user: i64,
    now_ms: i64,
) -> StoreResult<Removal> {
    let mut tx = store.write_tx().await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let tokens_revoked = sqlx::query(
        "UPDATE api_tokens SET revoked_ms = ? WHERE user_id = ? AND revoked_ms IS NULL",
    )
    .bind(now_ms)
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let generations_moved = sqlx::query("UPDATE generations SET user_id = ? WHERE user_id = ?")
        .bind(to_user)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let outputs_moved = sqlx::query("UPDATE gallery_items SET user_id = ? WHERE user_id = ?")
        .bind(to_user)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("UPDATE prompt_owners SET user_id = ? WHERE user_id = ?")
        .bind(to_user)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM users WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Removal {
        tokens_revoked,
        generations_moved,
        outputs_moved,
    })
}

/// The user a live session belongs to, if the session exists, has not expired and its user is
/// enabled; with the session's last-seen time.
pub(crate) async fn session_user(
    store: &Store,
    token_hash: &str,
    now_ms: i64,
) -> StoreResult<Option<(UserRow, i64)>> {
    // The session is a subquery exposing only its user and last-seen time, so the users
    // columns need no table prefix (both tables have `created_ms`).
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS}, s.last_seen_ms AS session_last_seen FROM users
         JOIN (SELECT user_id, last_seen_ms FROM sessions WHERE token_hash = ? AND expires_ms > ?) s
           ON s.user_id = users.id
         WHERE disabled = 0"
    ))
    .bind(token_hash)
    .bind(now_ms)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| Ok((user_row(&r)?, r.get("session_last_seen"))))
        .transpose()
}

/// The user a live API token acts as (enabled users only); marks the token used.
pub(crate) async fn token_user(
    store: &Store,
    token_hash: &str,
    now_ms: i64,
) -> StoreResult<Option<UserRow>> {
    let user_id: Option<i64> = sqlx::query_scalar(
        "UPDATE api_tokens SET last_used_ms = ?
         WHERE token_hash = ? AND revoked_ms IS NULL
           AND user_id IN (SELECT id FROM users WHERE disabled = 0)
         RETURNING user_id",
    )
    .bind(now_ms)
    .bind(token_hash)
    .fetch_optional(store.pool())
    .await?;
    match user_id {
        Some(id) => user_by_id(store, id).await,
        None => Ok(None),
    }
}
