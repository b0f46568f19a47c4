//! Trying again by itself: a start-up sync that fails for a passing reason (the network, a
//! rate limit) is run again after a growing wait, a few times, then left to a person (its
//! failure is on the Recovery page with Retry). Each wait is said in Activity, with the time of
//! the next try.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use super::classify::classify;
use crate::activity::ActivityLog;
use crate::model::{format_utc, ActivityKind, FailureClass, FailureSource};

/// Tries after the first; the waits are `first`, twice that, four times… .
pub const SYNC_RETRIES: u32 = 5;

/// Runs `attempt` until it works, fails for a reason that will not pass by itself, or has been
/// tried [`SYNC_RETRIES`] more times; `what` names it in Activity ("the preset registry
/// sync"). Returns how many times it ran.
pub async fn retry_transient<T, E, F, Fut>(
    what: &str,
    first: Duration,
    activity: &ActivityLog,
    mut attempt: F,
) -> u32
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut runs = 0;
    loop {
        runs += 1;
        let error = match attempt().await {
            Ok(_) => return runs,
            Err(e) => e.to_string(),
        };
        let class = classify(FailureSource::Sync, &error).class;
        if !matches!(class, FailureClass::Network | FailureClass::RateLimited)
            || runs > SYNC_RETRIES
        {
            return runs;
        }
        let wait = first * 2u32.pow(runs - 1);
        let next = crate::clock::now_ms() + wait.as_millis() as i64;
        activity
            .record(
                ActivityKind::Error,
                format!(
                    "{what} failed ({}); trying again at {}",
                    class.label(),
                    format_utc(next)
                ),
            )
            .await;
        tokio::time::sleep(wait).await;
    }
}
