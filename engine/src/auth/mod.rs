//! Passwords, sessions, API tokens and login rate limiting ([`AuthService`] decides who is let
//! in; the helpers here hash and compare). The HTTP side (cookies, headers) lives in the binary.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use rand::Rng;
use sha2::{Digest, Sha256};

mod accounts;
mod service;
mod users;
pub use service::{AuthService, LoginError};
pub use users::UsersService;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("the stored password hash is unreadable: {0}")]
    BadHash(String),
    /// The request is wrong; the message says which field and why.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The caller's role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// It clashes with what exists (a taken name, the admin account).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl crate::error::Classify for AuthError {
    fn kind(&self) -> crate::model::ErrorKind {
        use crate::model::ErrorKind;
        match self {
            AuthError::Invalid(_) => ErrorKind::Invalid,
            AuthError::NotFound(_) => ErrorKind::NotFound,
            AuthError::Forbidden(_) => ErrorKind::Forbidden,
            AuthError::Conflict(_) => ErrorKind::Conflict,
            AuthError::Hash(_) | AuthError::BadHash(_) | AuthError::Store(_) => ErrorKind::Internal,
        }
    }
}

/// Sessions last this long after the last request that used them.
pub const SESSION_IDLE_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Prefix of API tokens, so they are recognisable in scripts and secret scanners.
pub const API_TOKEN_PREFIX: &str = "cd_";

pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(&rand::rng().random::<[u8; 16]>())
        .map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Constant-time by construction (argon2's verifier); deliberately slow (~tens of ms).
pub fn verify_password(password: &str, hash: &str) -> Result<bool, AuthError> {
    let parsed = PasswordHash::new(hash).map_err(|e| AuthError::BadHash(e.to_string()))?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// A password for people to type: 20 characters without look-alikes (no 0/O, 1/l/I).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|i| {
            // Dashes every five characters make it easier to read aloud and copy from a log.
            let c = ALPHABET[rng.random_range(0..ALPHABET.len())] as char;
            if i > 0 && i % 5 == 0 {
                format!("-{c}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// 32 random bytes, URL-safe: the session cookie value.
pub fn new_session_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::rng().random::<[u8; 32]>())
}

/// A new API token and the hint shown in lists (its prefix and first characters).
pub fn new_api_token() -> (String, String) {
    let token = format!("{API_TOKEN_PREFIX}{}", new_session_token());
    let hint = format!("{}…", &token[..API_TOKEN_PREFIX.len() + 6]);
    (token, hint)
}

/// Tokens are high-entropy, so a plain SHA-256 is enough to store them safely (no salt or
/// slow hash needed, unlike passwords) and lets a request's token be found by index.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Login attempts per client: after `max_failures` within `window`, that client must wait until
/// the oldest attempt leaves the window. A successful login clears the client's record.
#[derive(Debug)]
pub struct LoginLimiter {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl LoginLimiter {
    pub fn new(max_failures: usize, window: Duration) -> Self {
        LoginLimiter {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt for `client` before its password is checked, or refuses it with how
    /// long to wait. Counting first, under one lock, means concurrent guesses cannot all slip
    /// through while earlier ones are still being verified. A successful login clears the count.
    pub fn begin_attempt(&self, client: &str, now: Instant) -> Result<(), Duration> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Bound memory under a flood of distinct clients: forget stale entries first.
        if map.len() > 10_000 {
            map.retain(|_, times| times.iter().any(|t| now.duration_since(*t) < self.window));
        }
        let times = map.entry(client.to_string()).or_default();
        times.retain(|t| now.duration_since(*t) < self.window);
        if times.len() >= self.max_failures {
            let oldest = times[0];
            return Err(self
                .window
                .saturating_sub(now.duration_since(oldest))
                .max(Duration::from_secs(1)));
        }
        times.push(now);
        Ok(())
    }

    pub fn record_success(&self, client: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(client);
    }
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(5, Duration::from_secs(5 * 60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_round_trip() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2"));
        assert!(!hash.contains("correct horse"));
        assert!(verify_password("correct horse", &hash).unwrap());
        assert!(!verify_password("wrong horse", &hash).unwrap());
        assert!(verify_password("x", "not a hash").is_err());
    }

    #[test]
    fn generated_passwords_are_readable_and_distinct() {
        let a = generate_password();
        let b = generate_password();
        assert_ne!(a, b);
        assert_eq!(a.len(), 23);
        assert!(!a.contains(['0', 'O', '1', 'l', 'I']));
    }

    #[test]
    fn api_tokens_have_prefix_and_stable_hash() {
        let (token, hint) = new_api_token();
        assert!(token.starts_with("cd_"));
        assert!(token.starts_with(hint.trim_end_matches('…')));
        assert_eq!(hash_token(&token), hash_token(&token));
        assert_ne!(hash_token(&token), hash_token("cd_other"));
        assert_eq!(hash_token("abc").len(), 64);
    }

    #[test]
    fn limiter_blocks_after_max_failures_and_recovers() {
        let limiter = LoginLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(limiter.begin_attempt("1.2.3.4", t0).is_ok(), "attempt {i}");
        }
        let wait = limiter
            .begin_attempt("1.2.3.4", t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        // Another client is unaffected.
        assert!(limiter.begin_attempt("5.6.7.8", t0).is_ok());
        // After the window, allowed again.
        assert!(limiter
            .begin_attempt("1.2.3.4", t0 + Duration::from_secs(61))
            .is_ok());
        limiter.begin_attempt("9.9.9.9", t0).unwrap();
        limiter.record_success("9.9.9.9");
        assert!(limiter.failures.lock().unwrap().get("9.9.9.9").is_none());
    }
}
