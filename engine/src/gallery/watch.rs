//! Keeps the index current from file-system events: the watcher starts before the start-up
//! scan (nothing written meanwhile is missed), events are gathered until the folder is quiet
//! for a moment (a file being written fires many), then each named path is looked at once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::time::Instant;

use super::Gallery;

/// Quiet time after the last event before the gathered paths are indexed.
const QUIET: Duration = Duration::from_millis(300);
/// Longest wait while events keep coming (a long video render still shows up).
const MAX_WAIT: Duration = Duration::from_secs(2);

pub(super) async fn run(gallery: Arc<Gallery>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let _ = tx.send(event);
    })
    .and_then(|mut watcher| {
        watcher.watch(gallery.root(), RecursiveMode::Recursive)?;
        Ok(watcher)
    });
    // Kept alive for the whole loop: dropping it stops the events.
    let _watcher = match watcher {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            tracing::warn!(
                root = %gallery.root().display(),
                error = %e,
                "cannot watch the output folder; new files appear after runs finish or at the next start"
            );
            None
        }
    };

    tokio::select! {
        _ = gallery.cancel.cancelled() => return,
        scanned = gallery.scan() => if let Err(e) = scanned {
            tracing::warn!(error = %e, "the start-up scan of the output folder failed");
        },
    }

    let mut pending: BTreeSet<PathBuf> = BTreeSet::new();
    let mut first_at: Option<Instant> = None;
    let mut last_at = Instant::now();
    loop {
        let deadline = match first_at {
            Some(first) => (last_at + QUIET).min(first + MAX_WAIT),
            None => Instant::now() + Duration::from_secs(3600),
        };
        tokio::select! {
            _ = gallery.cancel.cancelled() => return,
            event = rx.recv() => match event {
                Some(Ok(event)) => {
                    if matters(&event.kind) {
                        pending.extend(event.paths);
                        last_at = Instant::now();
                        first_at.get_or_insert(last_at);
                    }
                }
                Some(Err(e)) => tracing::debug!(error = %e, "output folder watcher"),
                None => return,
            },
            _ = tokio::time::sleep_until(deadline), if first_at.is_some() => {
                first_at = None;
                for path in std::mem::take(&mut pending) {
                    let Some(rel) = relative(gallery.root(), &path) else { continue };
                    if let Err(e) = gallery.index_path(&rel, None).await {
                        tracing::debug!(path = %rel, error = %e, "cannot index a changed output");
                    }
                }
            }
        }
    }
}

/// Reads and metadata-only changes say nothing about what the folder holds.
fn matters(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// `path` relative to `root`, `/`-separated; `None` for the root itself or outside it.
fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?.to_str()?;
    let rel = rel.replace(std::path::MAIN_SEPARATOR, "/");
    (!rel.is_empty()).then_some(rel)
}
