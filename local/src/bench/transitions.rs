//! State transitions per run, which Step Functions Standard bills (USD 0.025 per 1,000 in most
//! regions), for a Macie job that runs M minutes.
//!
//! Ours is counted from the history of a real run of the real state machine on the local stack,
//! with the local Macie's job taking M minutes of workflow time (waits scaled). Two alternatives are
//! computed from that count, so they share everything but the poll loop: the reference sample's
//! machine (a check right after creation, then a fixed 60 s wait; its ASL enters 6 states besides
//! the loop on the clean path), and a backoff poll (60, 120, 240 s, then a cap) that the gate could
//! use instead of its fixed interval.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use serde::Serialize;

use super::{RunStack, states_entered};
use crate::stack::StackConfig;

/// States one poll enters: the wait, the status check and the choice after it.
const STATES_PER_POLL: u64 = 3;
/// The reference machine's states outside its poll loop on the clean path: triggerMacieScan,
/// the first checkMacieStatus and its choice, getMacieFindingsCount, its choice and
/// moveAllScanStageS3Files.
const REFERENCE_STATES_OUTSIDE_LOOP: u64 = 6;

/// The figures for one job length.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransitionsCase {
    pub job_minutes: f64,
    pub poll_interval_seconds: u64,
    /// Counted: every state the run entered.
    pub ours: u64,
    /// Counted: checkMacieStatus entries.
    pub ours_polls: u64,
    /// Seconds from the job's completion to the status check that saw it.
    pub ours_detection_delay_seconds: f64,
    pub reference: u64,
    /// The reference checks once right after creating the job, then after every wait.
    pub reference_checks: u64,
    pub reference_detection_delay_seconds: f64,
    pub backoff: u64,
    pub backoff_polls: u64,
    pub backoff_detection_delay_seconds: f64,
    pub backoff_cap_seconds: u64,
    pub usd_per_thousand: f64,
}

impl TransitionsCase {
    pub fn cost(&self, transitions: u64) -> f64 {
        transitions as f64 * self.usd_per_thousand / 1000.0
    }
}

/// The wait before each status check under a backoff from `first` doubling up to `cap`.
pub fn backoff_schedule(first: u64, cap: u64) -> impl Iterator<Item = u64> {
    std::iter::successors(Some(first.min(cap)), move |wait| {
        Some(wait.saturating_mul(2).min(cap))
    })
}

/// Polls (wait then check) until the job, done after `job_seconds`, is seen complete, and how
/// long after its completion that is.
pub fn polls_until_seen(job_seconds: f64, waits: impl Iterator<Item = u64>) -> (u64, f64) {
    let mut elapsed = 0.0;
    let mut polls = 0;
    for wait in waits {
        polls += 1;
        elapsed += wait as f64;
        if elapsed >= job_seconds {
            break;
        }
    }
    (polls, elapsed - job_seconds)
}

/// Runs a clean run whose Macie job takes `job_minutes` and derives the figures.
pub async fn measure(
    mut config: StackConfig,
    job_minutes: f64,
    backoff_cap_seconds: u64,
    usd_per_thousand: f64,
) -> Result<TransitionsCase, String> {
    let job_seconds = job_minutes * 60.0;
    config.macie.startup_delay_seconds = job_seconds;
    let poll_interval_seconds: u64 = config
        .parameters
        .get("PollIntervalSeconds")
        .map_or(Ok(60), |value| value.parse())
        .map_err(|err| format!("PollIntervalSeconds: {err}"))?;
    let bench = RunStack::start(config).await?;
    for index in 0..10 {
        bench
            .s3
            .put_object()
            .bucket(&bench.raw)
            .key(format!("transitions/{index}.csv"))
            .body(ByteStream::from_static(b"region,units\nnorth,12\n"))
            .send()
            .await
            .map_err(|err| format!("upload: {}", err.into_service_error()))?;
    }
    let arn = bench.start_run("transitions").await?;
    let (status, record) = bench.finish(&arn, Duration::from_secs(3600)).await?;
    if status != "SUCCEEDED" {
        return Err(format!(
            "the {job_minutes}-minute run ended {status}: {:?}",
            (record.error, record.cause)
        ));
    }
    let entered = states_entered(&record);
    let ours = entered.len() as u64;
    let ours_polls = entered
        .iter()
        .filter(|name| **name == "checkMacieStatus")
        .count() as u64;

    let (_, ours_detection_delay_seconds) =
        polls_until_seen(job_seconds, std::iter::repeat(poll_interval_seconds.max(1)));
    let (reference_waits, reference_detection_delay_seconds) =
        polls_until_seen(job_seconds, std::iter::repeat(60));
    let (backoff_polls, backoff_detection_delay_seconds) = polls_until_seen(
        job_seconds,
        backoff_schedule(poll_interval_seconds.max(1), backoff_cap_seconds),
    );
    let outside_loop = ours.saturating_sub(STATES_PER_POLL * ours_polls);
    Ok(TransitionsCase {
        job_minutes,
        poll_interval_seconds,
        ours,
        ours_polls,
        ours_detection_delay_seconds,
        reference: REFERENCE_STATES_OUTSIDE_LOOP + STATES_PER_POLL * reference_waits,
        reference_checks: reference_waits + 1,
        reference_detection_delay_seconds,
        backoff: outside_loop + STATES_PER_POLL * backoff_polls,
        backoff_polls,
        backoff_detection_delay_seconds,
        backoff_cap_seconds,
        usd_per_thousand,
    })
}

/// The cases as a table: one row per job length and machine.
pub fn table(cases: &[TransitionsCase]) -> String {
    let mut out = format!(
        "{:>6}  {:<36} {:>11} {:>13} {:>16} {:>10}\n",
        "job", "machine", "transitions", "status checks", "seen after done", "USD/run"
    );
    for case in cases {
        let rows = [
            (
                "reference sample, fixed 60 s".to_owned(),
                case.reference,
                case.reference_checks,
                case.reference_detection_delay_seconds,
            ),
            (
                format!("ours, fixed {} s (counted)", case.poll_interval_seconds),
                case.ours,
                case.ours_polls,
                case.ours_detection_delay_seconds,
            ),
            (
                format!(
                    "ours, backoff {}..{} s (computed)",
                    case.poll_interval_seconds, case.backoff_cap_seconds
                ),
                case.backoff,
                case.backoff_polls,
                case.backoff_detection_delay_seconds,
            ),
        ];
        for (machine, transitions, checks, late) in rows {
            out.push_str(&format!(
                "{:>4.0} m  {:<36} {:>11} {:>13} {:>14.0} s {:>10.5}\n",
                case.job_minutes,
                machine,
                transitions,
                checks,
                late,
                case.cost(transitions)
            ));
        }
    }
    if let Some(case) = cases.first() {
        out.push_str(&format!(
            "USD {} per 1,000 transitions (Step Functions Standard)\n",
            case.usd_per_thousand
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let waits: Vec<u64> = backoff_schedule(60, 300).take(6).collect();
        assert_eq!(waits, [60, 120, 240, 300, 300, 300]);
    }

    #[test]
    fn a_fixed_poll_sees_a_ten_minute_job_on_its_tenth_check() {
        assert_eq!(polls_until_seen(600.0, std::iter::repeat(60)), (10, 0.0));
        assert_eq!(polls_until_seen(610.0, std::iter::repeat(60)), (11, 50.0));
    }

    #[test]
    fn a_backoff_poll_sees_an_hour_long_job_in_fewer_checks_but_later() {
        let (polls, late) = polls_until_seen(3600.0, backoff_schedule(60, 300));
        // 60 + 120 + 240 = 420, then 300 s steps: 420 + 11 * 300 = 3720 >= 3600.
        assert_eq!((polls, late), (14, 120.0));
    }
}
