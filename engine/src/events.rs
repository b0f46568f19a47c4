//! The event bus: one broadcast channel of [`Event`]s that every `/ws` connection listens to,
//! and a count of who is watching, so that sampling runs only while it is needed.

use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc, watch};

use crate::model::Event;

#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
    watchers: watch::Sender<usize>,
    lossless: Arc<Mutex<Vec<Lossless>>>,
}

/// A subscriber that must see every event its filter keeps (recovery: a failure skipped in a
/// burst of progress would never reach the Recovery page). The kept events are few (state
/// changes, not progress), so an unbounded channel holds them.
#[derive(Debug)]
struct Lossless {
    keep: fn(&Event) -> bool,
    tx: mpsc::UnboundedSender<Event>,
}

/// Held by each live viewer (a WebSocket, a polling client); dropping it stops the count.
#[derive(Debug)]
pub struct WatchGuard {
    watchers: watch::Sender<usize>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.watchers.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl EventBus {
    pub fn new() -> Self {
        // Slow receivers that fall this far behind skip ahead (they get `Lagged`), so one stuck
        // browser tab can never hold memory or slow the others.
        let (tx, _) = broadcast::channel(256);
        let (watchers, _) = watch::channel(0);
        EventBus {
            tx,
            watchers,
            lossless: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn publish(&self, event: Event) {
        {
            let mut lossless = self.lossless.lock().unwrap_or_else(|e| e.into_inner());
            // A dropped receiver is forgotten.
            lossless.retain(|sub| !(sub.keep)(&event) || sub.tx.send(event.clone()).is_ok());
        }
        // No receiver is not an error: nobody is looking right now.
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Every event from now on that `keep` keeps, in order, none skipped however slow the
    /// receiver is.
    pub fn subscribe_lossless(&self, keep: fn(&Event) -> bool) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lossless
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Lossless { keep, tx });
        rx
    }

    pub fn watch(&self) -> WatchGuard {
        self.watchers.send_modify(|n| *n += 1);
        WatchGuard {
            watchers: self.watchers.clone(),
        }
    }

    pub fn watcher_count(&self) -> usize {
        *self.watchers.borrow()
    }

    /// Resolves when at least one viewer is watching.
    pub async fn until_watched(&self) {
        let mut rx = self.watchers.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we hold `&self`.
        let _ = rx.wait_for(|n| *n > 0).await;
    }
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

/// Stores an activity entry and pushes it to live viewers. A failure to store is logged, not
/// returned: losing one activity line must never fail the operation it describes.
pub async fn record_activity(
    store: &crate::store::Store,
    events: &EventBus,
    kind: crate::model::ActivityKind,
    message: impl Into<String>,
) {
    record_activity_as(store, events, None, kind, message).await
}

/// The same, for a user's own action (`None`: the deck's).
pub async fn record_activity_as(
    store: &crate::store::Store,
    events: &EventBus,
    user_id: Option<i64>,
    kind: crate::model::ActivityKind,
    message: impl Into<String>,
) {
    let message = message.into();
    match store
        .add_activity(crate::clock::now_ms(), user_id, kind, &message)
        .await
    {
        Ok(entry) => events.publish(Event::Activity(entry)),
        Err(e) => tracing::warn!(error = %e, %message, "could not record activity"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ActivityEntry, ActivityKind};

    #[tokio::test]
    async fn watchers_are_counted_and_released() {
        let bus = EventBus::new();
        assert_eq!(bus.watcher_count(), 0);
        let a = bus.watch();
        let b = bus.watch();
        assert_eq!(bus.watcher_count(), 2);
        drop(a);
        assert_eq!(bus.watcher_count(), 1);
        bus.until_watched().await; // returns at once
        drop(b);
        assert_eq!(bus.watcher_count(), 0);
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(50), bus.until_watched()).await;
        assert!(waited.is_err(), "nobody watches, so it must keep waiting");
    }

    #[tokio::test]
    async fn subscribers_receive_published_events() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        let entry = ActivityEntry {
            id: 1,
            at_ms: 2,
            kind: ActivityKind::System,
            message: "m".into(),
            user_id: None,
        };
        bus.publish(Event::Activity(entry.clone()));
        assert_eq!(rx.recv().await.unwrap(), Event::Activity(entry));
    }

    #[tokio::test]
    async fn a_lossless_subscriber_gets_every_kept_event_of_a_burst_that_others_skip() {
        let bus = EventBus::new();
        let mut lossy = bus.subscribe();
        let mut lossless = bus.subscribe_lossless(|e| matches!(e, Event::Recovery));
        // Far more than the broadcast channel holds, one kept event in the middle of each
        // hundred, and nobody reading meanwhile.
        for i in 0..2_000u64 {
            bus.publish(if i % 100 == 50 {
                Event::Recovery
            } else {
                Event::ComfyQueue { remaining: i }
            });
        }
        assert!(matches!(
            lossy.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
        let mut kept = 0;
        while let Ok(event) = lossless.try_recv() {
            assert_eq!(event, Event::Recovery, "only what the filter keeps");
            kept += 1;
        }
        assert_eq!(kept, 20);
        // A dropped receiver is forgotten at the next publish.
        drop(lossless);
        bus.publish(Event::Recovery);
        assert!(bus.lossless.lock().unwrap().is_empty());
    }
}
