//! The time an invocation must have returned by. Long moves stop taking new work before it and
//! hand a continuation back to the state machine instead of being killed half-way.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A wall-clock instant, as Lambda reports it (milliseconds since the Unix epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    at: SystemTime,
}

impl Deadline {
    /// The deadline Lambda gives an invocation (`Context::deadline`).
    pub fn from_epoch_millis(millis: u64) -> Self {
        Self {
            at: UNIX_EPOCH + Duration::from_millis(millis),
        }
    }

    /// A deadline `budget` from now; used by the local stack and by tests.
    pub fn after(budget: Duration) -> Self {
        Self {
            at: SystemTime::now() + budget,
        }
    }

    /// Time left until the deadline, zero once it has passed.
    pub fn remaining(&self) -> Duration {
        self.at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }

    /// True when less than `margin` is left: time to stop starting new work.
    pub fn is_near(&self, margin: Duration) -> bool {
        self.remaining() <= margin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_past_deadline_has_no_time_left() {
        let deadline = Deadline::from_epoch_millis(1_000);
        assert_eq!(deadline.remaining(), Duration::ZERO);
        assert!(deadline.is_near(Duration::ZERO));
    }

    #[test]
    fn a_distant_deadline_is_not_near() {
        let deadline = Deadline::after(Duration::from_secs(3600));
        assert!(!deadline.is_near(Duration::from_secs(60)));
        assert!(deadline.is_near(Duration::from_secs(7200)));
    }
}
