//! The local stack's sense of time. Waiting for the world is scaled: Wait states, retry
//! intervals, a callback task's timeout (the reviewer's 5 days), Macie's start-up delay. So a
//! 60 s poll or a 5-day approval timeout runs in milliseconds. Work is not scaled: a Lambda
//! function runs in real time, so its deadline and its task's `TimeoutSeconds` are real seconds.
//! Timestamps are always real.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    scale: f64,
}

impl Clock {
    /// `scale` multiplies every wait: 1.0 is real time, 0.001 makes a minute 60 ms.
    pub fn new(scale: f64) -> Self {
        Self {
            scale: if scale.is_finite() && scale > 0.0 {
                scale
            } else {
                1.0
            },
        }
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// How long `seconds` of workflow time take in real time.
    pub fn scaled(&self, seconds: f64) -> Duration {
        Duration::from_secs_f64((seconds.max(0.0) * self.scale).min(1e12))
    }

    /// Sleeps for `seconds` of workflow time.
    pub async fn sleep(&self, seconds: f64) {
        tokio::time::sleep(self.scaled(seconds)).await;
    }

    /// Sleeps until a real instant given in milliseconds since the epoch.
    pub async fn sleep_until_ms(&self, at_ms: i64) {
        let now = now_ms();
        if at_ms > now {
            tokio::time::sleep(Duration::from_millis(
                u64::try_from(at_ms - now).unwrap_or(0),
            ))
            .await;
        }
    }

    /// The real instant (ms since the epoch) `seconds` of workflow time from now.
    pub fn after_ms(&self, seconds: f64) -> i64 {
        now_ms().saturating_add(i64::try_from(self.scaled(seconds).as_millis()).unwrap_or(i64::MAX))
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
}

/// An instant in ms as RFC 3339 with milliseconds and `Z`, as the context object shows times.
pub fn rfc3339_ms(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(&time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .expect("every date formats")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_scale_and_bad_scales_fall_back_to_real_time() {
        assert_eq!(Clock::new(0.001).scaled(60.0), Duration::from_millis(60));
        assert_eq!(Clock::new(-1.0).scale(), 1.0);
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
