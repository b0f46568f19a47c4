//! The activity log.

use serde::{Deserialize, Serialize};

use super::named::named_enum;

named_enum! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum ActivityKind {
        Settings = "settings",
        Auth = "auth",
        Error = "error",
        System = "system",
        Download = "download",
    }
}

impl ActivityKind {
    pub const ALL: [ActivityKind; 5] = [
        ActivityKind::Settings,
        ActivityKind::Auth,
        ActivityKind::Download,
        ActivityKind::Error,
        ActivityKind::System,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ActivityKind::Settings => "Settings",
            ActivityKind::Auth => "Logins",
            ActivityKind::Error => "Errors",
            ActivityKind::System => "System",
            ActivityKind::Download => "Downloads",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivityEntry {
    pub id: i64,
    pub at_ms: i64,
    pub kind: ActivityKind,
    pub message: String,
    /// Whose action it was; `None` for the deck's own entries (only administrators see those).
    #[serde(default)]
    pub user_id: Option<i64>,
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
