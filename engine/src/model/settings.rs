//! Settings, as shown and as changed.

use serde::{Deserialize, Serialize};

use super::named::named_enum;

named_enum! {
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub enum Theme {
        Dark = "dark",
        Light = "light",
        #[default]
        System = "system",
    }
}

impl Theme {
    pub const ALL: [Theme; 3] = [Theme::System, Theme::Dark, Theme::Light];

    pub fn label(self) -> &'static str {
        match self {
            Theme::Dark => "Dark",
            Theme::Light => "Light",
            Theme::System => "System",
        }
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
