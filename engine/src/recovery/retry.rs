//! Trying again by itself: what fails for a passing reason (the network, a rate limit) is run
//! again after a growing wait, a few times, then left to a person (its failure is on the
//! Recovery page with Retry). Each wait is said, with the time of the next try: a start-up
//! sync in Activity, a pack's clone in its install's steps.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use super::classify::classify;
use crate::activity::ActivityLog;
use crate::model::{format_utc, ActivityKind, FailureClass, FailureSource};

/// Tries after the first for a start-up sync; the waits are `first`, twice that, four times… .
pub const SYNC_RETRIES: u32 = 5;

/// Whether a failure of `source` with `error` may pass by itself (so trying again later can
/// work): the network and rate limits; `None` otherwise.
pub fn passing_class(source: FailureSource, error: &str) -> Option<FailureClass> {
    let class = classify(source, error).class;
    matches!(class, FailureClass::Network | FailureClass::RateLimited).then_some(class)
}

/// How often and after how long a passing failure is tried again.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    /// Tries after the first.
    pub retries: u32,
    /// The first wait; each next one is twice the one before.
    pub first: Duration,
}

/// Runs `attempt` until it works, fails for a reason that does not pass by itself (`passing`
/// gives the class of one that does), or has been tried `patience.retries` more times, and
/// returns how it last ended and how many times it ran. Before each wait,
/// `waiting(class, next_ms, next_try)` says when the next try (the `next_try`-th run) is.
pub async fn with_patience<T, E, F, Fut, W, WFut>(
    passing: impl Fn(&E) -> Option<FailureClass>,
    patience: Patience,
    mut waiting: W,
    mut attempt: F,
) -> (Result<T, E>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    W: FnMut(FailureClass, i64, u32) -> WFut,
    WFut: Future<Output = ()>,
{
    let mut runs = 0;
    loop {
        runs += 1;
        let error = match attempt().await {
            Ok(done) => return (Ok(done), runs),
            Err(e) => e,
        };
        let Some(class) = passing(&error) else {
            return (Err(error), runs);
        };
        if runs > patience.retries {
            return (Err(error), runs);
        }
        let wait = patience.first * 2u32.pow(runs - 1);
        waiting(
            class,
            crate::clock::now_ms() + wait.as_millis() as i64,
            runs + 1,
        )
        .await;
        tokio::time::sleep(wait).await;
    }
}

/// A start-up sync, with [`SYNC_RETRIES`] tries after the first, each wait said in Activity;
/// `what` names it ("the preset registry sync"). Returns how many times it ran.
pub async fn retry_transient<T, E, F, Fut>(
    what: &str,
    first: Duration,
    activity: &ActivityLog,
    attempt: F,
) -> u32
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let patience = Patience {
        retries: SYNC_RETRIES,
        first,
    };
    let waiting = |class: FailureClass, next_ms: i64, _| async move {
        activity
            .record(
                ActivityKind::Error,
                format!(
                    "{what} failed ({}); trying again at {}",
                    class.label(),
                    format_utc(next_ms)
                ),
            )
            .await;
    };
    let passing = |e: &E| passing_class(FailureSource::Sync, &e.to_string());
    with_patience(passing, patience, waiting, attempt).await.1
}
