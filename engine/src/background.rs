//! Background loops that end when the engine shuts down.

use std::future::Future;

use tokio_util::sync::CancellationToken;

/// Runs `job` until it ends or `stopping` is cancelled. The loops hold service handles, so
/// ending them at shutdown is what lets the workspace lock go.
pub(crate) fn spawn_until(
    stopping: &CancellationToken,
    job: impl Future<Output = ()> + Send + 'static,
) {
    let stopping = stopping.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = stopping.cancelled() => {}
            _ = job => {}
        }
    });
}
