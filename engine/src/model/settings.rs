//! Settings, as shown and as changed.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Theme {
    Dark,
    Light,
    #[default]
    System,
}

impl Theme {
    pub const ALL: [Theme; 3] = [Theme::System, Theme::Dark, Theme::Light];

    pub fn as_str(self) -> &'static str {
        match self {
            Theme::Dark => "dark",
            Theme::Light => "light",
            Theme::System => "system",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Theme::Dark => "Dark",
            Theme::Light => "Light",
            Theme::System => "System",
        }
    }

    pub fn parse(s: &str) -> Option<Theme> {
        Theme::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

pub const DEFAULT_ACTIVITY_RETENTION_DAYS: u32 = 30;
pub const MAX_ACTIVITY_RETENTION_DAYS: u32 = 3650;

/// Settings as every response shows them: secrets only ever masked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SettingsView {
    pub theme: Theme,
    /// e.g. `hf_…abcd`; `None` when no token is saved.
    pub hf_token_masked: Option<String>,
    pub civitai_token_masked: Option<String>,
    pub activity_retention_days: u32,
}

/// A change to settings. `None` leaves a field alone; an empty token string removes the token.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SettingsPatch {
    #[serde(default)]
    pub theme: Option<Theme>,
    #[serde(default)]
    pub hf_token: Option<String>,
    #[serde(default)]
    pub civitai_token: Option<String>,
    #[serde(default)]
    pub activity_retention_days: Option<u32>,
}

/// What Hugging Face said about the saved token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HfTokenCheck {
    pub valid: bool,
    /// The account name when valid.
    pub user: Option<String>,
    /// A sentence for the user: who the token belongs to, or why it failed.
    pub message: String,
}
