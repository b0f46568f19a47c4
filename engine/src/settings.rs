//! Settings: the theme, the Hugging Face and CivitAI tokens and the activity retention, kept in
//! SQLite with a copy in memory (pages read it on every render), and the retention they set.

use std::sync::RwLock;

use crate::activity::{ActivityError, ActivityLog};
use crate::clock::now_ms;
use crate::config::Config;
use crate::download::fetch::{Credentials, Fetcher, ScopedToken};
use crate::error::Classify;
use crate::events::EventBus;
use crate::model::*;
use crate::secret::Secret;
use crate::store::{Store, StoreError};

const KEY_THEME: &str = "theme";
const KEY_HF_TOKEN: &str = "hf_token";
const KEY_CIVITAI_TOKEN: &str = "civitai_token";
const KEY_RETENTION_DAYS: &str = "activity_retention_days";

/// Longest accepted token (HF and CivitAI tokens are ~40 characters).
const MAX_TOKEN_LEN: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The change itself is wrong; the message says which field and why.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Activity(#[from] ActivityError),
}

impl Classify for SettingsError {
    fn kind(&self) -> ErrorKind {
        match self {
            SettingsError::Invalid(_) => ErrorKind::Invalid,
            SettingsError::Store(e) => e.kind(),
            SettingsError::Activity(e) => e.kind(),
        }
    }
}

/// Settings as held in memory; the secrets stay wrapped so `Debug` never prints them.
#[derive(Clone, Debug)]
struct Settings {
    theme: Theme,
    hf_token: Option<Secret>,
    civitai_token: Option<Secret>,
    activity_retention_days: u32,
}

impl Settings {
    async fn load(store: &Store) -> Result<Settings, StoreError> {
        let all = store.all_settings().await?;
        let theme = all
            .get(KEY_THEME)
            .and_then(|t| Theme::parse(t))
            .unwrap_or_default();
        let retention = all
            .get(KEY_RETENTION_DAYS)
            .and_then(|d| d.parse().ok())
            .filter(|d| (1..=MAX_ACTIVITY_RETENTION_DAYS).contains(d))
            .unwrap_or(DEFAULT_ACTIVITY_RETENTION_DAYS);
        Ok(Settings {
            theme,
            hf_token: all.get(KEY_HF_TOKEN).map(Secret::new),
            civitai_token: all.get(KEY_CIVITAI_TOKEN).map(Secret::new),
            activity_retention_days: retention,
        })
    }

    fn view(&self) -> SettingsView {
        SettingsView {
            theme: self.theme,
            hf_token_masked: self.hf_token.as_ref().map(|t| mask_secret(t.expose())),
            civitai_token_masked: self.civitai_token.as_ref().map(|t| mask_secret(t.expose())),
            activity_retention_days: self.activity_retention_days,
        }
    }

    /// The tokens downloads may use, each scoped to its own hosts.
    fn credentials(&self, config: &Config) -> Credentials {
        download_credentials(config, self.hf_token.clone(), self.civitai_token.clone())
    }
}

/// The download tokens, each scoped to the hosts it belongs to (a worker's come from its
/// environment, a deck's from its settings).
pub fn download_credentials(
    config: &Config,
    hf_token: Option<Secret>,
    civitai_token: Option<Secret>,
) -> Credentials {
    let mut tokens = Vec::new();
    if let Some(token) = hf_token {
        tokens.push(ScopedToken {
            hosts: config.hf_token_hosts(),
            token,
        });
    }
    if let Some(token) = civitai_token {
        tokens.push(ScopedToken {
            hosts: vec!["civitai.com".to_string(), "www.civitai.com".to_string()],
            token,
        });
    }
    Credentials { tokens }
}

/// The download credentials saved in a workspace's settings (for a read-only view of it).
pub async fn saved_credentials(config: &Config, store: &Store) -> Result<Credentials, StoreError> {
    Ok(Settings::load(store).await?.credentials(config))
}

pub struct SettingsService {
    current: RwLock<Settings>,
    /// Serialises writes so the cache and the database never disagree.
    write: tokio::sync::Mutex<()>,
    store: Store,
    events: EventBus,
    activity: ActivityLog,
    /// Told the new tokens on every change.
    fetcher: Fetcher,
    config: Config,
}

impl SettingsService {
    /// Reads the saved settings; `fetcher` gets their download credentials now and after
    /// every change.
    pub async fn load(
        config: &Config,
        store: Store,
        events: EventBus,
        activity: ActivityLog,
        fetcher: Fetcher,
    ) -> Result<SettingsService, StoreError> {
        let settings = Settings::load(&store).await?;
        fetcher.set_credentials(settings.credentials(config));
        Ok(SettingsService {
            current: RwLock::new(settings),
            write: tokio::sync::Mutex::new(()),
            store,
            events,
            activity,
            fetcher,
            config: config.clone(),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Settings> {
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn view(&self) -> SettingsView {
        self.read().view()
    }

    /// The theme, for the server-rendered page (read from memory: no I/O per page).
    pub fn theme(&self) -> Theme {
        self.read().theme
    }

    /// The saved Hugging Face token, for code that talks to Hugging Face only.
    pub fn hf_token(&self) -> Option<Secret> {
        self.read().hf_token.clone()
    }

    pub fn civitai_token(&self) -> Option<Secret> {
        self.read().civitai_token.clone()
    }

    /// Validates and applies a change in one transaction, then updates the in-memory copy and
    /// tells live viewers. Activity lines say what changed, with tokens masked.
    pub async fn update(&self, patch: SettingsPatch) -> Result<SettingsView, SettingsError> {
        let hf_token = patch
            .hf_token
            .as_deref()
            .map(|t| validate_token("Hugging Face token", t))
            .transpose()?;
        let civitai_token = patch
            .civitai_token
            .as_deref()
            .map(|t| validate_token("CivitAI token", t))
            .transpose()?;
        if let Some(days) = patch.activity_retention_days {
            if !(1..=MAX_ACTIVITY_RETENTION_DAYS).contains(&days) {
                return Err(SettingsError::Invalid(format!(
                    "activity retention must be between 1 and {MAX_ACTIVITY_RETENTION_DAYS} days, got {days}"
                )));
            }
        }

        let write_guard = self.write.lock().await;
        let mut next = self.read().clone();
        let mut changes: Vec<(&str, Option<String>)> = Vec::new();
        let mut notes = Vec::new();
        if let Some(theme) = patch.theme {
            if theme != next.theme {
                next.theme = theme;
                changes.push((KEY_THEME, Some(theme.as_str().to_string())));
                notes.push(format!("theme set to {}", theme.as_str()));
            }
        }
        for (key, label, new_value, slot) in [
            (
                KEY_HF_TOKEN,
                "Hugging Face token",
                hf_token,
                &mut next.hf_token,
            ),
            (
                KEY_CIVITAI_TOKEN,
                "CivitAI token",
                civitai_token,
                &mut next.civitai_token,
            ),
        ] {
            let Some(new_value) = new_value else { continue };
            match new_value {
                Some(token) => {
                    notes.push(format!("{label} saved ({})", mask_secret(&token)));
                    changes.push((key, Some(token.clone())));
                    *slot = Some(Secret::new(token));
                }
                None if slot.is_some() => {
                    notes.push(format!("{label} removed"));
                    changes.push((key, None));
                    *slot = None;
                }
                None => {}
            }
        }
        if let Some(days) = patch.activity_retention_days {
            if days != next.activity_retention_days {
                next.activity_retention_days = days;
                changes.push((KEY_RETENTION_DAYS, Some(days.to_string())));
                notes.push(format!("activity retention set to {days} days"));
            }
        }
        if changes.is_empty() {
            return Ok(next.view());
        }
        self.store.write_settings(&changes, now_ms()).await?;
        let view = next.view();
        self.fetcher.set_credentials(next.credentials(&self.config));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
        drop(write_guard);

        self.activity
            .record(ActivityKind::Settings, capitalize(&notes.join(", ")))
            .await;
        self.events.publish(Event::Settings(view.clone()));
        if patch.activity_retention_days.is_some() {
            if let Err(e) = self.apply_retention().await {
                tracing::warn!(error = %e, "retention after a settings change failed");
            }
        }
        Ok(view)
    }

    /// Deletes activity older than the retention setting; returns how many entries went.
    pub async fn apply_retention(&self) -> Result<u64, SettingsError> {
        let days = self.read().activity_retention_days;
        Ok(self.activity.prune_older_than_days(days).await?)
    }

    /// Asks Hugging Face who the saved token belongs to.
    pub async fn check_hf_token(&self) -> HfTokenCheck {
        let Some(token) = self.hf_token() else {
            return HfTokenCheck {
                valid: false,
                user: None,
                message: "No Hugging Face token is saved yet".into(),
            };
        };
        let check = crate::hf::check_token(&self.config.hf_base_url, token.expose()).await;
        let kind = if check.valid {
            ActivityKind::Settings
        } else {
            ActivityKind::Error
        };
        self.activity
            .record(kind, format!("Hugging Face token check: {}", check.message))
            .await;
        check
    }
}

/// `Some(None)` means "remove the token"; `Some(Some(t))` a cleaned token.
fn validate_token(label: &str, raw: &str) -> Result<Option<String>, SettingsError> {
    let token = raw.trim();
    if token.is_empty() {
        return Ok(None);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(SettingsError::Invalid(format!(
            "{label} is too long ({} characters)",
            token.len()
        )));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SettingsError::Invalid(format!(
            "{label} must not contain spaces or line breaks"
        )));
    }
    Ok(Some(token.to_string()))
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
