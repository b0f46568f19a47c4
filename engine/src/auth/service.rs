//! Who is let in, and as whom: logins (username and password), sessions, API tokens and the
//! login rate limiter.

use std::time::{Duration, Instant};

use super::accounts::{self, UserChange};
use super::users::{caller_of, hash_blocking};
use super::{AuthError, LoginLimiter, UsersService, SESSION_IDLE_LIFETIME};
use crate::activity::ActivityLog;
use crate::clock::now_ms;
use crate::config::Config;
use crate::model::{
    normalize_username, ActivityKind, ApiTokenInfo, AuthMode, Caller, CreatedApiToken,
};
use crate::store::Store;

/// Where earlier versions kept the generated password's hash; the users migration moves it to
/// `admin`, and a database restored from before it is read once more here.
const KEY_GENERATED_PASSWORD_HASH: &str = "auth.generated_password_hash";
/// Writing `last_seen` on every request would turn reads into writes; once a minute is enough.
const SESSION_TOUCH_INTERVAL_MS: i64 = 60_000;

/// Why a login was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("too many failed attempts; try again in {} s", .0.as_secs())]
    RateLimited(Duration),
    /// The same answer for an unknown name, a wrong password and a disabled account, so a
    /// guess learns nothing about which names exist.
    #[error("wrong username or password")]
    WrongPassword,
    #[error(transparent)]
    Failed(#[from] AuthError),
}

pub struct AuthService {
    mode: AuthMode,
    /// Who open mode acts as.
    admin: Caller,
    limiter: LoginLimiter,
    store: Store,
    activity: ActivityLog,
    users: UsersService,
}

impl AuthService {
    /// Decides how logins work and makes sure `admin` can log in: `ACCESS_PASSWORD` is its
    /// password; off loopback without one, a password is generated once and only its hash
    /// kept, and the plain text is returned so the binary can print it this one time.
    pub async fn start(
        config: &Config,
        store: Store,
        activity: ActivityLog,
    ) -> Result<(AuthService, Option<String>), AuthError> {
        let (mode, admin, generated) = resolve(config, &store).await?;
        let users = UsersService::new(
            store.clone(),
            activity.clone(),
            config.access_password.is_some(),
            crate::workflows::WorkflowLibrary::new(&config.layout()),
        );
        let service = AuthService {
            mode,
            admin,
            limiter: LoginLimiter::default(),
            store,
            activity,
            users,
        };
        Ok((service, generated))
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Accounts: adding, roles, passwords, removing.
    pub fn users(&self) -> &UsersService {
        &self.users
    }

    /// Who a request is when nobody logs in (open mode): the administrator, as of start-up.
    pub fn open_caller(&self) -> Caller {
        self.admin.clone()
    }

    /// The same, read now, so a theme changed since start-up shows at the next page.
    pub async fn open_caller_now(&self) -> Caller {
        match accounts::user_by_id(&self.store, self.admin.user_id).await {
            Ok(Some(admin)) => caller_of(&admin),
            Ok(None) => self.admin.clone(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the admin account; using the start-up copy");
                self.admin.clone()
            }
        }
    }

    /// Checks a username and password for `client` (an IP address) and opens a session:
    /// returns the session token for the cookie and who logged in. Attempts are limited per
    /// client and per username, so neither many names from one place nor one name from many
    /// places can be guessed at speed.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: &str,
    ) -> Result<(String, Caller), LoginError> {
        let name = username.trim().to_ascii_lowercase();
        let now = Instant::now();
        let client_key = format!("client {client}");
        let user_key = format!("user {name}");
        for key in [&client_key, &user_key] {
            if let Err(wait) = self.limiter.begin_attempt(key, now) {
                return Err(LoginError::RateLimited(wait));
            }
        }
        let user = match normalize_username(&name) {
            Ok(name) => accounts::user_by_name(&self.store, &name)
                .await
                .map_err(AuthError::from)?,
            Err(_) => None,
        };
        // An unknown name costs the same argon2 verification as a known one.
        let hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let given = password.to_string();
        let verified = tokio::task::spawn_blocking(move || {
            super::verify_password(&given, &hash.unwrap_or_else(dummy_hash))
        })
        .await
        .expect("password verification does not panic")?;
        let user = match user {
            Some(user) if verified && user.password_hash.is_some() && !user.info.disabled => user,
            other => {
                let line = match &other {
                    Some(u) if u.info.disabled && verified => {
                        format!(
                            "Refused login of disabled user {} from {client}",
                            u.info.username
                        )
                    }
                    Some(u) => format!("Failed login as {} from {client}", u.info.username),
                    None => format!("Failed login from {client} (unknown username)"),
                };
                match other {
                    Some(u) => {
                        self.activity
                            .record_for(u.info.id, ActivityKind::Auth, line)
                            .await
                    }
                    None => self.activity.record(ActivityKind::Auth, line).await,
                }
                return Err(LoginError::WrongPassword);
            }
        };
        self.limiter.record_success(&client_key);
        self.limiter.record_success(&user_key);
        let token = super::new_session_token();
        let now = now_ms();
        self.store
            .create_session(
                &super::hash_token(&token),
                user.info.id,
                now,
                now + SESSION_IDLE_LIFETIME.as_millis() as i64,
            )
            .await
            .map_err(AuthError::from)?;
        accounts::update_user(&self.store, user.info.id, UserChange::LastLogin(now))
            .await
            .map_err(AuthError::from)?;
        let caller = caller_of(&user);
        self.activity
            .record_for(
                caller.user_id,
                ActivityKind::Auth,
                format!("{} logged in from {client}", caller.username),
            )
            .await;
        Ok((token, caller))
    }

    /// Who a session cookie's token belongs to, when the session is live and its user enabled;
    /// slides its expiry.
    pub async fn session_caller(&self, token: &str) -> Result<Option<Caller>, AuthError> {
        let hash = super::hash_token(token);
        let now = now_ms();
        let Some((user, last_seen_ms)) = accounts::session_user(&self.store, &hash, now).await?
        else {
            return Ok(None);
        };
        if now - last_seen_ms > SESSION_TOUCH_INTERVAL_MS {
            self.store
                .touch_session(&hash, now, now + SESSION_IDLE_LIFETIME.as_millis() as i64)
                .await?;
        }
        Ok(Some(caller_of(&user)))
    }

    /// Who an API token acts as: the user who created it, while enabled.
    pub async fn api_token_caller(&self, token: &str) -> Result<Option<Caller>, AuthError> {
        Ok(
            accounts::token_user(&self.store, &super::hash_token(token), now_ms())
                .await?
                .map(|u| caller_of(&u)),
        )
    }

    pub async fn logout(&self, token: &str) -> Result<(), AuthError> {
        let caller = self.session_caller(token).await?;
        self.store.delete_session(&super::hash_token(token)).await?;
        if let Some(caller) = caller {
            self.activity
                .record_for(
                    caller.user_id,
                    ActivityKind::Auth,
                    format!("{} logged out", caller.username),
                )
                .await;
        }
        Ok(())
    }

    /// Deletes sessions whose idle lifetime has run out.
    pub async fn prune_sessions(&self) -> Result<u64, AuthError> {
        Ok(self.store.prune_sessions(now_ms()).await?)
    }

    /// The caller's own API tokens.
    pub async fn api_tokens(&self, caller: &Caller) -> Result<Vec<ApiTokenInfo>, AuthError> {
        Ok(self.store.api_tokens(caller.user_id).await?)
    }

    /// A token that acts as the caller.
    pub async fn create_api_token(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<CreatedApiToken, AuthError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(AuthError::Invalid(
                "a token needs a name of 1 to 64 characters".into(),
            ));
        }
        let (token, hint) = super::new_api_token();
        let info = self
            .store
            .create_api_token(
                caller.user_id,
                name,
                &super::hash_token(&token),
                &hint,
                now_ms(),
            )
            .await?;
        self.activity
            .record_for(
                caller.user_id,
                ActivityKind::Auth,
                format!("API token \u{201c}{name}\u{201d} created ({hint})"),
            )
            .await;
        Ok(CreatedApiToken { info, token })
    }

    /// Revokes one of the caller's tokens; another user's token is "not found".
    pub async fn revoke_api_token(&self, caller: &Caller, id: i64) -> Result<(), AuthError> {
        match self
            .store
            .revoke_api_token(caller.user_id, id, now_ms())
            .await?
        {
            Some(name) => {
                self.activity
                    .record_for(
                        caller.user_id,
                        ActivityKind::Auth,
                        format!("API token \u{201c}{name}\u{201d} revoked"),
                    )
                    .await;
                Ok(())
            }
            None => Err(AuthError::NotFound(format!(
                "no live API token with id {id}"
            ))),
        }
    }
}

/// The hash of a random string nobody knows, verified when a name is unknown (made once).
fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| {
            super::hash_password(&super::new_session_token())
                .expect("hashing a random string works")
        })
        .clone()
}

/// The login mode, `admin` with a password that matches it, and the password generated now (if
/// one was).
async fn resolve(
    config: &Config,
    store: &Store,
) -> Result<(AuthMode, Caller, Option<String>), AuthError> {
    let admin = accounts::ensure_admin(store, now_ms()).await?;
    if let Some(password) = &config.access_password {
        let matches = match &admin.password_hash {
            Some(hash) => {
                let (given, hash) = (password.expose().to_string(), hash.clone());
                tokio::task::spawn_blocking(move || super::verify_password(&given, &hash))
                    .await
                    .expect("password verification does not panic")
                    .unwrap_or(false)
            }
            None => false,
        };
        if !matches {
            // A new ACCESS_PASSWORD ends the sessions opened with the old one.
            let hash = hash_blocking(password.expose()).await?;
            accounts::update_user(store, admin.info.id, UserChange::PasswordHash(&hash)).await?;
            tracing::info!("admin's password set from ACCESS_PASSWORD");
        }
        return Ok((AuthMode::Password, caller_of(&admin), None));
    }
    if config.listens_on_loopback() {
        return Ok((AuthMode::Open, caller_of(&admin), None));
    }
    if admin.password_hash.is_some() {
        return Ok((AuthMode::GeneratedPassword, caller_of(&admin), None));
    }
    // A database restored from before accounts may still hold the generated hash.
    if let Some(hash) = store.setting(KEY_GENERATED_PASSWORD_HASH).await? {
        accounts::update_user(store, admin.info.id, UserChange::PasswordHash(&hash)).await?;
        store
            .write_settings(&[(KEY_GENERATED_PASSWORD_HASH, None)], now_ms())
            .await?;
        return Ok((AuthMode::GeneratedPassword, caller_of(&admin), None));
    }
    let password = super::generate_password();
    let hash = hash_blocking(&password).await?;
    accounts::update_user(store, admin.info.id, UserChange::PasswordHash(&hash)).await?;
    Ok((
        AuthMode::GeneratedPassword,
        caller_of(&admin),
        Some(password),
    ))
}
