//! Fault controls: make chosen requests fail (the next N, or a fraction) with the errors AWS
//! returns under load, or add latency. Off by default; set from tests, or over HTTP at
//! `/_local/faults` (which the CLI's `fault` command calls).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// The kind of error injected, rendered in each service's own protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultError {
    /// HTTP 500 (`InternalError`, `InternalServerException`, ...).
    InternalError,
    /// HTTP 503 `SlowDown` for S3, 503 `ServiceUnavailable` for the others.
    SlowDown,
    /// Throttling: 429 for Macie and SNS, 400 `ThrottlingException` for Step Functions, 503
    /// `SlowDown` for S3.
    Throttling,
    /// S3 only: 409 `ConditionalRequestConflict`, what S3 answers a conditional write
    /// (`If-None-Match`, `If-Match`) that raced another operation on the key. Other services
    /// answer 500.
    Conflict,
    /// No error: only the latency applies.
    None,
    /// The Lambda invocations in flight die, as a killed process does, before the request is
    /// made: the request is never carried out and each of those invocations ends with
    /// `Lambda.Unknown` (what Step Functions reports for a crash, an out-of-memory or a timeout).
    /// For requests the handlers make (S3 `CopyObject`, `DeleteObject`, ...): that is where a
    /// crash can leave an object copied but not yet deleted.
    Crash,
}

/// One rule: which requests, how often, and what happens to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// `s3`, `macie2`, `sns`, `states`, or `*`.
    pub service: String,
    /// An operation name such as `CopyObject`; absent means every operation of the service.
    #[serde(default)]
    pub operation: Option<String>,
    pub error: FaultError,
    /// Fail this many matching requests, then stop.
    #[serde(default)]
    pub count: Option<u64>,
    /// Fail each matching request with this probability (0 to 1).
    #[serde(default)]
    pub probability: Option<f64>,
    /// Delay matching requests by this long, whether or not they fail.
    #[serde(default)]
    pub latency_ms: Option<u64>,
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub error: Option<FaultError>,
    pub latency_ms: u64,
}

pub struct Faults {
    rules: Mutex<Vec<(FaultRule, u64)>>,
    /// Draws for probabilistic rules; seeded, a soak run draws the same sequence again (which
    /// request gets which draw still depends on thread timing).
    rng: Mutex<Xoshiro256PlusPlus>,
    injected: AtomicU64,
    /// Counts the crashes; each invocation watches it and dies when it moves.
    crashes: tokio::sync::watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            rules: Mutex::new(Vec::new()),
            rng: Mutex::new(Xoshiro256PlusPlus::from_rng(&mut rand::rng())),
            injected: AtomicU64::new(0),
            crashes: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Faults {
    pub fn add(&self, rule: FaultRule) -> Result<(), String> {
        if rule.probability.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
            return Err("probability must be between 0 and 1".into());
        }
        if !["s3", "macie2", "sns", "states", "*"].contains(&rule.service.as_str()) {
            return Err(format!("unknown service {:?}", rule.service));
        }
        self.rules.lock().expect("lock").push((rule, 0));
        Ok(())
    }

    /// Makes the probabilistic rules draw from a sequence fixed by `seed`.
    pub fn seed(&self, seed: u64) {
        *self.rng.lock().expect("lock") = Xoshiro256PlusPlus::seed_from_u64(seed);
    }

    pub fn clear(&self) {
        self.rules.lock().expect("lock").clear();
    }

    pub fn rules(&self) -> Vec<FaultRule> {
        self.rules
            .lock()
            .expect("lock")
            .iter()
            .map(|(rule, _)| rule.clone())
            .collect()
    }

    /// Errors injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// Crashes injected so far.
    pub fn crashes(&self) -> u64 {
        *self.crashes.borrow()
    }

    /// Kills every Lambda invocation in flight.
    pub fn crash(&self) {
        self.crashes.send_modify(|count| *count += 1);
    }

    /// What an invocation watches to learn it was killed.
    pub fn watch_crashes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.crashes.subscribe()
    }

    /// Decides the fate of one request.
    pub fn decide(&self, service: &str, operation: &str) -> Decision {
        let mut decision = Decision {
            error: None,
            latency_ms: 0,
        };
        let mut rules = self.rules.lock().expect("lock");
        for (rule, used) in rules.iter_mut() {
            if (rule.service != "*" && rule.service != service)
                || rule.operation.as_deref().is_some_and(|op| op != operation)
            {
                continue;
            }
            decision.latency_ms = decision.latency_ms.max(rule.latency_ms.unwrap_or(0));
            if decision.error.is_some() || rule.error == FaultError::None {
                continue;
            }
            let exhausted = rule.count.is_some_and(|count| *used >= count);
            let chosen = !exhausted
                && rule
                    .probability
                    .is_none_or(|p| self.rng.lock().expect("lock").random::<f64>() < p);
            if chosen {
                *used += 1;
                decision.error = Some(rule.error);
            }
        }
        rules.retain(|(rule, used)| {
            rule.count.is_none_or(|count| *used < count) || rule.latency_ms.is_some()
        });
        if decision.error.is_some() {
            self.injected.fetch_add(1, Ordering::Relaxed);
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(count: Option<u64>, probability: Option<f64>) -> FaultRule {
        FaultRule {
            service: "s3".into(),
            operation: Some("CopyObject".into()),
            error: FaultError::SlowDown,
            count,
            probability,
            latency_ms: None,
        }
    }

    #[test]
    fn the_next_n_matching_requests_fail() {
        let faults = Faults::default();
        faults.add(rule(Some(2), None)).unwrap();
        assert_eq!(faults.decide("s3", "DeleteObject").error, None);
        assert_eq!(
            faults.decide("s3", "CopyObject").error,
            Some(FaultError::SlowDown)
        );
        assert_eq!(
            faults.decide("s3", "CopyObject").error,
            Some(FaultError::SlowDown)
        );
        assert_eq!(faults.decide("s3", "CopyObject").error, None);
        assert_eq!(faults.injected(), 2);
        assert!(faults.rules().is_empty(), "a spent rule is removed");
    }

    #[test]
    fn probabilities_are_checked_and_applied() {
        let faults = Faults::default();
        assert!(faults.add(rule(None, Some(1.5))).is_err());
        faults.add(rule(None, Some(0.0))).unwrap();
        assert_eq!(faults.decide("s3", "CopyObject").error, None);
    }
}
