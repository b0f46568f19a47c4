//! The activity log.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    Settings,
    Auth,
    Error,
    System,
    Download,
}

impl ActivityKind {
    pub const ALL: [ActivityKind; 5] = [
        ActivityKind::Settings,
        ActivityKind::Auth,
        ActivityKind::Download,
        ActivityKind::Error,
        ActivityKind::System,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActivityKind::Settings => "settings",
            ActivityKind::Auth => "auth",
            ActivityKind::Error => "error",
            ActivityKind::System => "system",
            ActivityKind::Download => "download",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ActivityKind::Settings => "Settings",
            ActivityKind::Auth => "Logins",
            ActivityKind::Error => "Errors",
            ActivityKind::System => "System",
            ActivityKind::Download => "Downloads",
        }
    }

    pub fn parse(s: &str) -> Option<ActivityKind> {
        ActivityKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivityEntry {
    pub id: i64,
    pub at_ms: i64,
    pub kind: ActivityKind,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivityPage {
    pub entries: Vec<ActivityEntry>,
    /// Entries matching the filter, over all pages.
    pub total: u64,
    /// 1-based.
    pub page: u32,
    pub per_page: u32,
}

impl ActivityPage {
    pub fn page_count(&self) -> u32 {
        let per = u64::from(self.per_page.max(1));
        (self.total.div_ceil(per)).max(1) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_count_rounds_up() {
        let page = ActivityPage {
            entries: vec![],
            total: 51,
            page: 1,
            per_page: 25,
        };
        assert_eq!(page.page_count(), 3);
        let empty = ActivityPage {
            entries: vec![],
            total: 0,
            page: 1,
            per_page: 25,
        };
        assert_eq!(empty.page_count(), 1);
    }
}
