//! Who is let in: the password check, sessions, API tokens and the login rate limiter.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{AuthError, LoginLimiter, SESSION_IDLE_LIFETIME};
use crate::activity::ActivityLog;
use crate::clock::now_ms;
use crate::config::Config;
use crate::model::{ActivityKind, ApiTokenInfo, AuthMode, CreatedApiToken};
use crate::secret::Secret;
use crate::store::Store;

const KEY_GENERATED_PASSWORD_HASH: &str = "auth.generated_password_hash";
/// Writing `last_seen` on every request would turn reads into writes; once a minute is enough.
const SESSION_TOUCH_INTERVAL_MS: i64 = 60_000;

/// Why a login was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("too many failed attempts; try again in {} s", .0.as_secs())]
    RateLimited(Duration),
    #[error("wrong password")]
    WrongPassword,
    #[error(transparent)]
    Failed(#[from] AuthError),
}

/// How logins are checked.
enum PasswordCheck {
    None,
    /// `ACCESS_PASSWORD`: compared by SHA-256 digest in constant time.
    Given(Secret),
    /// Generated at first start; only its argon2 hash is stored.
    GeneratedHash(String),
}

pub struct AuthService {
    mode: AuthMode,
    password: PasswordCheck,
    limiter: LoginLimiter,
    store: Store,
    activity: ActivityLog,
}

impl AuthService {
    /// Decides how logins work. Off-loopback without a password, a password is generated once
    /// and only its hash kept; the plain text is returned so the binary can print it this one
    /// time.
    pub async fn start(
        config: &Config,
        store: Store,
        activity: ActivityLog,
    ) -> Result<(AuthService, Option<String>), AuthError> {
        let (mode, password, generated) = resolve(config, &store).await?;
        let service = AuthService {
            mode,
            password,
            limiter: LoginLimiter::default(),
            store,
            activity,
        };
        Ok((service, generated))
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Checks a password for `client` (an IP address) and opens a session: returns the
    /// session token for the cookie.
    pub async fn login(&self, password: &str, client: &str) -> Result<String, LoginError> {
        if let Err(wait) = self.limiter.begin_attempt(client, Instant::now()) {
            return Err(LoginError::RateLimited(wait));
        }
        let ok = match &self.password {
            PasswordCheck::None => true,
            PasswordCheck::Given(expected) => {
                let a = Sha256::digest(password.as_bytes());
                let b = Sha256::digest(expected.expose().as_bytes());
                constant_time_eq(&a, &b)
            }
            PasswordCheck::GeneratedHash(hash) => {
                let (password, hash) = (password.to_string(), hash.clone());
                tokio::task::spawn_blocking(move || super::verify_password(&password, &hash))
                    .await
                    .expect("password verification does not panic")?
            }
        };
        if !ok {
            self.activity
                .record(ActivityKind::Auth, format!("Failed login from {client}"))
                .await;
            return Err(LoginError::WrongPassword);
        }
        self.limiter.record_success(client);
        let token = super::new_session_token();
        let now = now_ms();
        self.store
            .create_session(
                &super::hash_token(&token),
                now,
                now + SESSION_IDLE_LIFETIME.as_millis() as i64,
            )
            .await
            .map_err(AuthError::from)?;
        self.activity
            .record(ActivityKind::Auth, format!("Login from {client}"))
            .await;
        Ok(token)
    }

    /// Whether a session cookie's token opens a live session; slides its expiry.
    pub async fn session_is_valid(&self, token: &str) -> Result<bool, AuthError> {
        let hash = super::hash_token(token);
        let now = now_ms();
        let Some(session) = self.store.live_session(&hash, now).await? else {
            return Ok(false);
        };
        if now - session.last_seen_ms > SESSION_TOUCH_INTERVAL_MS {
            self.store
                .touch_session(&hash, now, now + SESSION_IDLE_LIFETIME.as_millis() as i64)
                .await?;
        }
        Ok(true)
    }

    pub async fn logout(&self, token: &str) -> Result<(), AuthError> {
        self.store.delete_session(&super::hash_token(token)).await?;
        self.activity.record(ActivityKind::Auth, "Logged out").await;
        Ok(())
    }

    /// Deletes sessions whose idle lifetime has run out.
    pub async fn prune_sessions(&self) -> Result<u64, AuthError> {
        Ok(self.store.prune_sessions(now_ms()).await?)
    }

    pub async fn api_token_is_valid(&self, token: &str) -> Result<bool, AuthError> {
        Ok(self
            .store
            .use_api_token(&super::hash_token(token), now_ms())
            .await?
            .is_some())
    }

    pub async fn api_tokens(&self) -> Result<Vec<ApiTokenInfo>, AuthError> {
        Ok(self.store.api_tokens().await?)
    }

    pub async fn create_api_token(&self, name: &str) -> Result<CreatedApiToken, AuthError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(AuthError::Invalid(
                "a token needs a name of 1 to 64 characters".into(),
            ));
        }
        let (token, hint) = super::new_api_token();
        let info = self
            .store
            .create_api_token(name, &super::hash_token(&token), &hint, now_ms())
            .await?;
        self.activity
            .record(
                ActivityKind::Auth,
                format!("API token \u{201c}{name}\u{201d} created ({hint})"),
            )
            .await;
        Ok(CreatedApiToken { info, token })
    }

    pub async fn revoke_api_token(&self, id: i64) -> Result<(), AuthError> {
        match self.store.revoke_api_token(id, now_ms()).await? {
            Some(name) => {
                self.activity
                    .record(
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

async fn resolve(
    config: &Config,
    store: &Store,
) -> Result<(AuthMode, PasswordCheck, Option<String>), AuthError> {
    if let Some(password) = &config.access_password {
        return Ok((
            AuthMode::Password,
            PasswordCheck::Given(password.clone()),
            None,
        ));
    }
    if config.listens_on_loopback() {
        return Ok((AuthMode::Open, PasswordCheck::None, None));
    }
    if let Some(hash) = store.setting(KEY_GENERATED_PASSWORD_HASH).await? {
        return Ok((
            AuthMode::GeneratedPassword,
            PasswordCheck::GeneratedHash(hash),
            None,
        ));
    }
    let password = super::generate_password();
    let pw = password.clone();
    let hash = tokio::task::spawn_blocking(move || super::hash_password(&pw))
        .await
        .expect("password hashing does not panic")?;
    store
        .write_settings(
            &[(KEY_GENERATED_PASSWORD_HASH, Some(hash.clone()))],
            now_ms(),
        )
        .await?;
    Ok((
        AuthMode::GeneratedPassword,
        PasswordCheck::GeneratedHash(hash),
        Some(password),
    ))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
