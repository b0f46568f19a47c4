//! Accounts: adding, listing, passwords, roles, disabling and removing people. Every change
//! is an administrator's, except a user's own password and theme.

use super::accounts::{self, UserChange, UserRow};
use super::AuthError;
use crate::activity::ActivityLog;
use crate::clock::now_ms;
use crate::model::{
    check_new_password, normalize_username, ActivityKind, Caller, Role, Theme, UserInfo,
    UserWithPassword, ADMIN_USERNAME,
};
use crate::store::Store;
use crate::workflows::WorkflowLibrary;

/// Cheap to clone; the CLI opens one on a workspace a server holds (SQLite lets both write).
#[derive(Clone)]
pub struct UsersService {
    store: Store,
    activity: ActivityLog,
    /// `ACCESS_PASSWORD` is admin's password: it is set at every start, so changing it here
    /// would be undone; such a change is refused and says where the password comes from.
    admin_password_pinned: bool,
    /// A removed user's workflows pass to admin with their outputs.
    workflows: WorkflowLibrary,
}

impl UsersService {
    pub fn new(
        store: Store,
        activity: ActivityLog,
        admin_password_pinned: bool,
        workflows: WorkflowLibrary,
    ) -> Self {
        UsersService {
            store,
            activity,
            admin_password_pinned,
            workflows,
        }
    }

    /// The caller the local CLI acts as: whoever can run commands on the workspace owns it.
    pub async fn local_admin(&self) -> Result<Caller, AuthError> {
        let admin = accounts::ensure_admin(&self.store, now_ms()).await?;
        Ok(caller_of(&admin))
    }

    pub async fn list(&self, actor: &Caller) -> Result<Vec<UserInfo>, AuthError> {
        require_admin(actor)?;
        Ok(accounts::users(&self.store).await?)
    }

    /// Names the login form can offer: `admin` alone when it is the only account.
    pub async fn only_admin_exists(&self) -> Result<bool, AuthError> {
        let users = accounts::users(&self.store).await?;
        Ok(users.len() == 1 && users[0].username == ADMIN_USERNAME)
    }

    /// The user, for the caller's own page (theme, whether a password is set).
    pub async fn me(&self, caller: &Caller) -> Result<UserInfo, AuthError> {
        Ok(self.row(caller.user_id).await?.info)
    }

    /// Adds a user; with no password given, one is generated. The password comes back this
    /// once.
    pub async fn add(
        &self,
        actor: &Caller,
        username: &str,
        role: Role,
        password: Option<String>,
    ) -> Result<UserWithPassword, AuthError> {
        require_admin(actor)?;
        let username = normalize_username(username).map_err(AuthError::Invalid)?;
        let password = new_password(password)?;
        let hash = hash_blocking(&password).await?;
        let user = accounts::insert_user(&self.store, &username, role, &hash, now_ms())
            .await?
            .ok_or_else(|| {
                AuthError::Conflict(format!("a user named {username} already exists"))
            })?;
        self.note(
            actor,
            format!(
                "{} added user {username} ({})",
                actor.username,
                role.as_str()
            ),
        )
        .await;
        Ok(UserWithPassword { user, password })
    }

    /// Sets a user's password (an administrator's reset; generated when none is given) and ends
    /// their sessions.
    pub async fn reset_password(
        &self,
        actor: &Caller,
        username: &str,
        password: Option<String>,
    ) -> Result<UserWithPassword, AuthError> {
        require_admin(actor)?;
        let user = self.by_name(username).await?;
        self.refuse_pinned(&user)?;
        let password = new_password(password)?;
        let hash = hash_blocking(&password).await?;
        accounts::update_user(&self.store, user.info.id, UserChange::PasswordHash(&hash)).await?;
        self.note(
            actor,
            format!(
                "{} set a new password for {}; their sessions ended",
                actor.username, user.info.username
            ),
        )
        .await;
        let user = self.row(user.info.id).await?.info;
        Ok(UserWithPassword { user, password })
    }

    /// A user changing their own password proves they know the current one.
    pub async fn change_own_password(
        &self,
        caller: &Caller,
        current: &str,
        new: &str,
    ) -> Result<(), AuthError> {
        let user = self.row(caller.user_id).await?;
        self.refuse_pinned(&user)?;
        if let Some(hash) = &user.password_hash {
            let (current, hash) = (current.to_string(), hash.clone());
            let ok = tokio::task::spawn_blocking(move || super::verify_password(&current, &hash))
                .await
                .expect("password verification does not panic")?;
            if !ok {
                return Err(AuthError::Invalid("the current password is wrong".into()));
            }
        }
        check_new_password(new).map_err(AuthError::Invalid)?;
        let hash = hash_blocking(new).await?;
        accounts::update_user(&self.store, user.info.id, UserChange::PasswordHash(&hash)).await?;
        self.note(
            caller,
            format!(
                "{} changed their password; their sessions ended",
                caller.username
            ),
        )
        .await;
        Ok(())
    }

    pub async fn set_role(
        &self,
        actor: &Caller,
        username: &str,
        role: Role,
    ) -> Result<UserInfo, AuthError> {
        require_admin(actor)?;
        let user = self.by_name(username).await?;
        refuse_admin_account(&user, "change the role of")?;
        accounts::update_user(&self.store, user.info.id, UserChange::Role(role)).await?;
        self.note(
            actor,
            format!(
                "{} made {} {}",
                actor.username,
                user.info.username,
                match role {
                    Role::Admin => "an administrator",
                    Role::User => "a user",
                }
            ),
        )
        .await;
        Ok(self.row(user.info.id).await?.info)
    }

    /// Disabling ends the user's sessions; their API tokens stop working until enabled again.
    pub async fn set_disabled(
        &self,
        actor: &Caller,
        username: &str,
        disabled: bool,
    ) -> Result<UserInfo, AuthError> {
        require_admin(actor)?;
        let user = self.by_name(username).await?;
        if disabled {
            refuse_admin_account(&user, "disable")?;
        }
        accounts::update_user(&self.store, user.info.id, UserChange::Disabled(disabled)).await?;
        let message = if disabled {
            format!(
                "{} disabled user {}; their sessions ended",
                actor.username, user.info.username
            )
        } else {
            format!(
                "{} enabled user {} again",
                actor.username, user.info.username
            )
        };
        self.note(actor, message).await;
        Ok(self.row(user.info.id).await?.info)
    }

    /// Removes a user: sessions end, API tokens are revoked, their generations and outputs pass
    /// to `admin`.
    pub async fn remove(&self, actor: &Caller, username: &str) -> Result<(), AuthError> {
        require_admin(actor)?;
        let user = self.by_name(username).await?;
        refuse_admin_account(&user, "remove")?;
        let admin = accounts::ensure_admin(&self.store, now_ms()).await?;
        let removal =
            accounts::remove_user(&self.store, user.info.id, admin.info.id, now_ms()).await?;
        // The account is gone either way; a folder that cannot be moved stays readable by admin
        // where it is, and the line says so.
        let (library, id, name) = (
            self.workflows.clone(),
            user.info.id,
            user.info.username.clone(),
        );
        let workflows = tokio::task::spawn_blocking(move || library.hand_over_to_admin(id, &name))
            .await
            .expect("moving a folder does not panic");
        let workflows = match workflows {
            Ok(count) => format!("{count} workflow(s)"),
            Err(e) => {
                tracing::warn!(error = %e, user = %user.info.username, "cannot move the removed user's workflows");
                format!("their workflows (still in their folder: {e})")
            }
        };
        self.note(
            actor,
            format!(
                "{} removed user {}: {} API token(s) revoked; {} output(s), {} generation(s) and {workflows} now belong to admin",
                actor.username,
                user.info.username,
                removal.tokens_revoked,
                removal.outputs_moved,
                removal.generations_moved
            ),
        )
        .await;
        Ok(())
    }

    /// A person's own theme; the deck's theme setting stays the default for those with none.
    pub async fn set_own_theme(&self, caller: &Caller, theme: Theme) -> Result<(), AuthError> {
        accounts::update_user(&self.store, caller.user_id, UserChange::Theme(theme)).await?;
        self.activity
            .record_for(
                caller.user_id,
                ActivityKind::Settings,
                format!("{}: theme set to {}", caller.username, theme.as_str()),
            )
            .await;
        Ok(())
    }

    async fn row(&self, id: i64) -> Result<UserRow, AuthError> {
        accounts::user_by_id(&self.store, id)
            .await?
            .ok_or_else(|| AuthError::NotFound("this account no longer exists".into()))
    }

    async fn by_name(&self, username: &str) -> Result<UserRow, AuthError> {
        let name = normalize_username(username).map_err(AuthError::Invalid)?;
        accounts::user_by_name(&self.store, &name)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("no user named {name}")))
    }

    fn refuse_pinned(&self, user: &UserRow) -> Result<(), AuthError> {
        if self.admin_password_pinned && user.info.username == ADMIN_USERNAME {
            return Err(AuthError::Conflict(
                "admin's password is ACCESS_PASSWORD, set when the deck starts; change that \
                 variable and restart instead"
                    .into(),
            ));
        }
        Ok(())
    }

    async fn note(&self, actor: &Caller, message: String) {
        self.activity
            .record_for(actor.user_id, ActivityKind::Auth, message)
            .await;
    }
}

pub(crate) fn caller_of(user: &UserRow) -> Caller {
    Caller {
        user_id: user.info.id,
        username: user.info.username.clone(),
        role: user.info.role,
        theme: user.info.theme,
    }
}

fn require_admin(actor: &Caller) -> Result<(), AuthError> {
    if actor.is_admin() {
        Ok(())
    } else {
        Err(AuthError::Forbidden(
            "only an administrator can manage users".into(),
        ))
    }
}

fn refuse_admin_account(user: &UserRow, what: &str) -> Result<(), AuthError> {
    if user.info.username == ADMIN_USERNAME {
        return Err(AuthError::Conflict(format!(
            "cannot {what} the admin account: it owns what no one else does"
        )));
    }
    Ok(())
}

fn new_password(given: Option<String>) -> Result<String, AuthError> {
    match given {
        Some(password) => {
            check_new_password(&password).map_err(AuthError::Invalid)?;
            Ok(password)
        }
        None => Ok(super::generate_password()),
    }
}

pub(crate) async fn hash_blocking(password: &str) -> Result<String, AuthError> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || super::hash_password(&password))
        .await
        .expect("password hashing does not panic")
}
