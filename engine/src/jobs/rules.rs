//! What becomes of a running job when its run ends, fails or its worker goes quiet: decided
//! once here, applied atomically by either store.

use super::JobRecord;
use crate::model::{JobOutput, JobState, MAX_DELIVERIES};

#[derive(Clone, Debug, PartialEq)]
pub enum Settlement {
    Succeed {
        outputs: Vec<JobOutput>,
    },
    /// Back in line for another delivery, not before `delay_ms` from now.
    Requeue {
        attempt_errors: Vec<String>,
        delay_ms: i64,
    },
    Fail {
        error: String,
        attempt_errors: Vec<String>,
    },
    Cancel {
        attempt_errors: Vec<String>,
    },
}

impl Settlement {
    pub fn state(&self) -> JobState {
        match self {
            Settlement::Succeed { .. } => JobState::Succeeded,
            Settlement::Requeue { .. } => JobState::Pending,
            Settlement::Fail { .. } => JobState::Failed,
            Settlement::Cancel { .. } => JobState::Cancelled,
        }
    }

    pub fn attempt_errors<'a>(&'a self, record: &'a JobRecord) -> &'a [String] {
        match self {
            Settlement::Succeed { .. } => &record.view.attempt_errors,
            Settlement::Requeue { attempt_errors, .. }
            | Settlement::Fail { attempt_errors, .. }
            | Settlement::Cancel { attempt_errors } => attempt_errors,
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Settlement::Fail { error, .. } => Some(error),
            _ => None,
        }
    }

    /// When a requeued job may be delivered again (`None`: at once, or not requeued).
    pub fn retry_at_ms(&self, now_ms: i64) -> Option<i64> {
        match self {
            Settlement::Requeue { delay_ms, .. } if *delay_ms > 0 => Some(now_ms + delay_ms),
            _ => None,
        }
    }
}

/// The longest wait before a redelivery.
const MAX_RETRY_DELAY_MS: i64 = 10 * 60 * 1000;

/// The wait before delivery `attempts + 1` after a transient failure: `first` after the
/// first delivery, doubling with each one after, at most ten minutes.
pub fn retry_delay_ms(first: std::time::Duration, attempts: u32) -> i64 {
    let first = first.as_millis().min(MAX_RETRY_DELAY_MS as u128) as i64;
    let doublings = attempts.saturating_sub(1).min(16);
    (first << doublings).min(MAX_RETRY_DELAY_MS)
}

/// A delivery failed for `reason`. Transient failures (a worker lost, ComfyUI away or crashed,
/// a connection error) get up to [`MAX_DELIVERIES`] deliveries, then fail with every
/// attempt's reason; anything else (ComfyUI refused the prompt, a node raised) fails at once.
/// A job someone cancelled ends cancelled whatever the failure. A requeued job waits
/// `delay_ms` first: the same ComfyUI failing again at once helps nobody.
pub fn after_failure(
    record: &JobRecord,
    reason: &str,
    transient: bool,
    delay_ms: i64,
) -> Settlement {
    let mut attempt_errors = record.view.attempt_errors.clone();
    attempt_errors.push(format!(
        "delivery {}: {reason}",
        record.view.attempts.max(1)
    ));
    if record.view.cancel_requested {
        return Settlement::Cancel { attempt_errors };
    }
    if !transient {
        return Settlement::Fail {
            error: reason.to_string(),
            attempt_errors,
        };
    }
    if record.view.attempts >= MAX_DELIVERIES {
        let error = format!(
            "Failed after {} deliveries: {}",
            record.view.attempts,
            attempt_errors.join("; ")
        );
        return Settlement::Fail {
            error,
            attempt_errors,
        };
    }
    Settlement::Requeue {
        attempt_errors,
        delay_ms,
    }
}

/// The worker holding the job stopped heart-beating until its lease ended: another worker
/// may take it at once (the lease was the wait).
pub fn after_lost_lease(record: &JobRecord) -> Settlement {
    let worker = record.view.worker.as_deref().unwrap_or("the worker");
    after_failure(
        record,
        &format!("{worker} stopped answering before its lease ended"),
        true,
        0,
    )
}

/// The run ended well; the outputs are those uploaded under this claim. A cancel that came
/// too late to interrupt it does not undo that: the outputs exist.
pub fn after_success(record: &JobRecord) -> Settlement {
    Settlement::Succeed {
        outputs: record.view.outputs.clone(),
    }
}

/// Whether a worker takes every job whatever it needs: it installs what it lacks and may
/// install anything (the embedded deck's own worker, whose runs are checked at submit).
pub fn takes_any(install_missing: bool, installable: Option<&[String]>) -> bool {
    install_missing && installable.is_none()
}

/// Whether a worker may take a job needing `required` (`folder/file` each): it has every
/// file, or it installs what it lacks (`install_missing`) and each is one it can install.
pub fn fits(
    models: &[String],
    install_missing: bool,
    installable: Option<&[String]>,
    required: &[String],
) -> bool {
    takes_any(install_missing, installable)
        || required.iter().all(|m| {
            models.contains(m) || (install_missing && installable.is_some_and(|l| l.contains(m)))
        })
}

/// Sort key inside one person's line: higher priority first, then older first.
pub fn line_score(priority: i64, id: i64) -> f64 {
    let priority = priority.clamp(*super::PRIORITY_RANGE.start(), *super::PRIORITY_RANGE.end());
    // Exact in a double and in Lua's 14-digit number format: |priority| ≤ 1000, ids below 10^9.
    (-priority as f64) * 1e9 + id as f64
}

/// Where each pending job stands in line (1 = next), given every user's pending line in
/// service order and the user served last. Round-robin: a job `r` places down its owner's
/// line waits for `r` of each other person's jobs (fewer when they have fewer), and for one
/// more of those whose turn comes before its owner's in the current round.
pub fn positions(
    lines: &[(i64, Vec<i64>)],
    cursor_user: i64,
) -> std::collections::HashMap<i64, u64> {
    let mut positions = std::collections::HashMap::new();
    for (user, jobs) in lines {
        for (rank, job) in jobs.iter().enumerate() {
            let rank = rank as u64;
            let mut ahead = rank;
            for (other, other_jobs) in lines {
                if other == user {
                    continue;
                }
                let n = other_jobs.len() as u64;
                // Does `other` come before `user` in the round that starts after the cursor?
                let before = round_order(*other, cursor_user) < round_order(*user, cursor_user);
                ahead += n.min(rank + u64::from(before));
            }
            positions.insert(*job, ahead + 1);
        }
    }
    positions
}

/// The order users are visited in a round that starts just after `cursor`.
fn round_order(user: i64, cursor: i64) -> (bool, i64) {
    (user <= cursor, user)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_worker_fits_a_job_whose_files_it_has_or_can_install() {
        use super::fits;
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let need = v(&["checkpoints/a.safetensors", "vae/b.sft"]);
        let has_a = v(&["checkpoints/a.safetensors"]);
        assert!(!fits(&has_a, false, None, &need));
        assert!(fits(
            &v(&["checkpoints/a.safetensors", "vae/b.sft"]),
            false,
            None,
            &need
        ));
        // Installable files count only for a worker that installs.
        assert!(!fits(&has_a, false, Some(&v(&["vae/b.sft"])), &need));
        assert!(fits(&has_a, true, Some(&v(&["vae/b.sft"])), &need));
        assert!(!fits(&has_a, true, Some(&v(&["vae/c.sft"])), &need));
        // The deck's own worker takes everything.
        assert!(fits(&[], true, None, &need));
        assert!(fits(&[], false, None, &[]));
    }

    use super::*;
    use crate::jobs::JobPayload;
    use crate::model::JobView;

    fn record(attempts: u32, cancel: bool) -> JobRecord {
        JobRecord {
            view: JobView {
                id: 1,
                user_id: 2,
                username: "bob".into(),
                workflow_name: "w".into(),
                workflow_id: None,
                state: JobState::Running,
                priority: 0,
                position: None,
                attempts,
                worker: Some("gpu-1".into()),
                prompt_id: "p".into(),
                created_ms: 0,
                started_ms: None,
                finished_ms: None,
                error: None,
                attempt_errors: Vec::new(),
                outputs: Vec::new(),
                required_models: Vec::new(),
                waiting_for: None,
                retry_at_ms: None,
                cancel_requested: cancel,
            },
            payload: JobPayload {
                workflow: serde_json::json!({}),
                inputs: Vec::new(),
            },
            fence: attempts as i64,
            lease_until_ms: Some(10),
        }
    }

    #[test]
    fn transient_failures_retry_until_the_third_delivery() {
        assert!(matches!(
            after_failure(&record(1, false), "ComfyUI is not reachable", true, 1_000),
            Settlement::Requeue { .. }
        ));
        assert!(matches!(
            after_failure(&record(2, false), "reset", true, 1_000),
            Settlement::Requeue { .. }
        ));
        let mut third = record(3, false);
        third.view.attempt_errors = vec!["delivery 1: a".into(), "delivery 2: b".into()];
        match after_failure(&third, "c", true, 1_000) {
            Settlement::Fail {
                error,
                attempt_errors,
            } => {
                assert_eq!(
                    error,
                    "Failed after 3 deliveries: delivery 1: a; delivery 2: b; delivery 3: c"
                );
                assert_eq!(attempt_errors.len(), 3);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn redeliveries_wait_longer_each_time_and_a_lost_lease_not_at_all() {
        let first = std::time::Duration::from_secs(5);
        assert_eq!(retry_delay_ms(first, 1), 5_000);
        assert_eq!(retry_delay_ms(first, 2), 10_000);
        assert_eq!(retry_delay_ms(first, 3), 20_000);
        assert_eq!(retry_delay_ms(first, 40), 600_000, "at most ten minutes");
        assert_eq!(retry_delay_ms(std::time::Duration::ZERO, 2), 0);
        let requeued = after_failure(&record(1, false), "ComfyUI is not reachable", true, 5_000);
        assert_eq!(requeued.retry_at_ms(100), Some(5_100));
        let lost = after_lost_lease(&record(1, false));
        assert!(matches!(lost, Settlement::Requeue { delay_ms: 0, .. }));
        assert_eq!(lost.retry_at_ms(100), None);
    }

    #[test]
    fn refusals_fail_at_once_and_cancelled_jobs_stay_cancelled() {
        match after_failure(
            &record(1, false),
            "KSampler (node 3): bad seed",
            false,
            1_000,
        ) {
            Settlement::Fail { error, .. } => assert_eq!(error, "KSampler (node 3): bad seed"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            after_failure(&record(1, true), "interrupted", true, 1_000),
            Settlement::Cancel { .. }
        ));
        assert!(matches!(
            after_lost_lease(&record(3, true)),
            Settlement::Cancel { .. }
        ));
    }

    #[test]
    fn scores_order_priority_first_then_age() {
        assert!(line_score(5, 100) < line_score(0, 1));
        assert!(line_score(0, 1) < line_score(0, 2));
        assert!(line_score(-3, 1) > line_score(0, 999));
        assert_eq!(line_score(5000, 1), line_score(1000, 1));
    }

    #[test]
    fn positions_follow_the_round_robin() {
        // alice (1) has three jobs, bob (2) one; alice was served last, so bob is next.
        let lines = vec![(1, vec![10, 11, 12]), (2, vec![20])];
        let p = positions(&lines, 1);
        assert_eq!(p[&20], 1);
        assert_eq!(p[&10], 2);
        assert_eq!(p[&11], 3);
        assert_eq!(p[&12], 4);
        // Nobody served yet: alice first.
        let p = positions(&lines, 0);
        assert_eq!((p[&10], p[&20], p[&11], p[&12]), (1, 2, 3, 4));
    }
}
