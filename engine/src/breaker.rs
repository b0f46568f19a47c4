//! Per-host circuit breakers: a host that keeps failing is left alone for a while, so that
//! many queued files (or packs to clone) do not all hammer, and wait on, a dead server. The
//! downloads have one; the custom-node packs' git remotes another.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    hosts: Mutex<HashMap<String, HostState>>,
}

#[derive(Default)]
struct HostState {
    consecutive_failures: u32,
    /// Set while open: no request until then; afterwards one trial request (half-open).
    open_until: Option<Instant>,
    trial_in_flight: bool,
}

/// Leave to send one request to a host; report how it went with `success` or `failure`.
/// Dropping it unreported (the request was cancelled) changes nothing but frees the trial slot.
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    host: String,
    trial: bool,
    reported: bool,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// A permit, or how long until the host may be tried again.
    pub fn acquire(&self, host: &str) -> Result<Permit<'_>, Duration> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        let Some(state) = hosts.get_mut(host) else {
            return Ok(self.permit(host, false));
        };
        let Some(until) = state.open_until else {
            return Ok(self.permit(host, false));
        };
        let now = Instant::now();
        if now < until {
            return Err(until - now);
        }
        if state.trial_in_flight {
            return Err(self.cooldown.min(Duration::from_secs(1)));
        }
        state.trial_in_flight = true;
        Ok(self.permit(host, true))
    }

    fn permit(&self, host: &str, trial: bool) -> Permit<'_> {
        Permit {
            breaker: self,
            host: host.to_string(),
            trial,
            reported: false,
        }
    }

    fn record(&self, host: &str, ok: bool) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if ok {
            hosts.remove(host);
            return;
        }
        let state = hosts.entry(host.to_string()).or_default();
        state.consecutive_failures += 1;
        state.trial_in_flight = false;
        if state.consecutive_failures >= self.threshold {
            state.open_until = Some(Instant::now() + self.cooldown);
            tracing::warn!(
                host,
                failures = state.consecutive_failures,
                cooldown_s = self.cooldown.as_secs_f32(),
                "host keeps failing; pausing requests to it"
            );
        }
    }
}

impl Permit<'_> {
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.record(&self.host, true);
    }

    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.record(&self.host, false);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported && self.trial {
            let mut hosts = self.breaker.hosts.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(state) = hosts.get_mut(&self.host) {
                state.trial_in_flight = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_then_allows_one_trial() {
        let b = Breaker::new(3, Duration::from_millis(30));
        for _ in 0..2 {
            b.acquire("h:1").unwrap().failure();
        }
        // Still closed; a success resets the count.
        b.acquire("h:1").unwrap().success();
        for _ in 0..3 {
            b.acquire("h:1").unwrap().failure();
        }
        assert!(b.acquire("h:1").is_err(), "open after 3 failures");
        assert!(b.acquire("other:1").is_ok(), "other hosts unaffected");
        std::thread::sleep(Duration::from_millis(40));
        let trial = b.acquire("h:1").expect("half-open trial");
        assert!(b.acquire("h:1").is_err(), "only one trial at a time");
        trial.failure();
        assert!(b.acquire("h:1").is_err(), "a failed trial re-opens");
        std::thread::sleep(Duration::from_millis(40));
        let trial = b.acquire("h:1").expect("second trial");
        drop(trial);
        let trial = b.acquire("h:1").expect("a dropped trial frees the slot");
        trial.success();
        for _ in 0..5 {
            b.acquire("h:1").unwrap().success();
        }
    }
}
