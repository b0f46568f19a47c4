//! The activity log: what happened on the deck, kept in SQLite and pushed to live viewers.

use crate::clock::now_ms;
use crate::error::Classify;
use crate::events::EventBus;
use crate::model::{ActivityEntry, ActivityKind, ActivityPage, Caller, ErrorKind};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ActivityError {
    #[error("unknown activity kind {0:?}; use one of settings, auth, download, error, system")]
    UnknownKind(String),
    #[error("only an administrator can clear the activity log")]
    Forbidden,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classify for ActivityError {
    fn kind(&self) -> ErrorKind {
        match self {
            ActivityError::UnknownKind(_) => ErrorKind::Invalid,
            ActivityError::Forbidden => ErrorKind::Forbidden,
            ActivityError::Store(e) => e.kind(),
        }
    }
}

/// Cheap to clone: every service that reports what it did holds one.
#[derive(Clone)]
pub struct ActivityLog {
    store: Store,
    events: EventBus,
}

impl ActivityLog {
    pub fn new(store: Store, events: EventBus) -> Self {
        ActivityLog { store, events }
    }

    /// The bus it pushes to, for services that also announce other events.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// Records what happened and pushes it to live viewers. Never fails the caller: a lost
    /// activity line is logged, not turned into a failed user action.
    pub async fn record(&self, kind: ActivityKind, message: impl Into<String>) {
        crate::events::record_activity(&self.store, &self.events, kind, message).await
    }

    /// The same, for something a person did: they see it in their own Activity.
    pub async fn record_for(&self, user_id: i64, kind: ActivityKind, message: impl Into<String>) {
        crate::events::record_activity_as(&self.store, &self.events, Some(user_id), kind, message)
            .await
    }

    /// A kind as the API names it; `None` or empty means every kind.
    pub fn parse_kind(name: Option<&str>) -> Result<Option<ActivityKind>, ActivityError> {
        match name.filter(|k| !k.is_empty()) {
            None => Ok(None),
            Some(k) => ActivityKind::parse(k)
                .map(Some)
                .ok_or_else(|| ActivityError::UnknownKind(k.into())),
        }
    }

    /// A page of entries, newest first: everything for an administrator, a user's own
    /// entries for them.
    pub async fn page(
        &self,
        caller: &Caller,
        kind: Option<ActivityKind>,
        page: u32,
        per_page: u32,
    ) -> Result<ActivityPage, ActivityError> {
        Ok(self
            .store
            .activity_page(Self::scope(caller), kind, page, per_page)
            .await?)
    }

    pub async fn recent(
        &self,
        caller: &Caller,
        count: u32,
    ) -> Result<Vec<ActivityEntry>, ActivityError> {
        Ok(self
            .store
            .activity_page(Self::scope(caller), None, 1, count)
            .await?
            .entries)
    }

    /// Whether a live entry may be shown to this caller.
    pub fn visible_to(entry: &ActivityEntry, caller: &Caller) -> bool {
        caller.is_admin() || entry.user_id == Some(caller.user_id)
    }

    fn scope(caller: &Caller) -> Option<i64> {
        (!caller.is_admin()).then_some(caller.user_id)
    }

    /// Clears the whole log: an administrator's action.
    pub async fn clear(&self, caller: &Caller) -> Result<u64, ActivityError> {
        if !caller.is_admin() {
            return Err(ActivityError::Forbidden);
        }
        let removed = self.store.clear_activity().await?;
        // Not recorded as activity: a cleared log should read as empty.
        tracing::info!(removed, "activity log cleared");
        Ok(removed)
    }

    /// Deletes entries older than `days`.
    pub async fn prune_older_than_days(&self, days: u32) -> Result<u64, ActivityError> {
        let cutoff = now_ms() - i64::from(days) * 86_400_000;
        let removed = self.store.prune_activity(cutoff).await?;
        if removed > 0 {
            tracing::info!(removed, days, "old activity removed");
        }
        Ok(removed)
    }
}
