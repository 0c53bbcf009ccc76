//! Playing the run: the reviewer (early or late), the operator who stops Macie jobs, the
//! rewrites landing when they are due, and the second round starting when it is due.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use serde_json::json;

use super::Outcome;
use super::scenario::{Moment, SecondRound, Uploads, Versions};
use crate::{Gate, http, link_after};

/// Opens a bulk link and records its choice for every held object, retrying pages that injected
/// faults broke.
async fn decide(link: &str) -> bool {
    for _ in 0..50 {
        let page = http::get(link).await;
        if page.status() == 200 {
            // No form: every object is decided and the release has finished.
            let Some(token) = http::find_form_token(page.body()) else {
                return true;
            };
            let answer = http::post_decision(link, &token).await;
            if answer.status() == 200 || answer.status() == 410 {
                return true;
            }
        } else if page.status() == 410 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// The objects a review page still offers a choice for, by the SHA-256 of their key.
fn undecided_on(page: &str) -> Vec<String> {
    page.match_indices("name=\"object.")
        .filter_map(|(at, found)| {
            let hash = page.get(at + found.len()..at + found.len() + 64)?;
            page[at + found.len() + 64..]
                .starts_with("\" value=\"release\"")
                .then(|| hash.to_owned())
        })
        .collect()
}

/// Decides each held object of a review on its own over two visits: on the first some at
/// random (release, delete, or later), on the second the rest. Pages that injected faults broke
/// are retried. True once every object is decided and the run was told.
async fn decide_each(link: &str) -> bool {
    // Seeded from the link, so a seed replays the same choices.
    let mut rng =
        Xoshiro256PlusPlus::seed_from_u64(link.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        }));
    let action = link.split('?').next().expect("a path").to_owned();
    let mut visits = 0;
    for _ in 0..50 {
        let page = http::get(link).await;
        if page.status() == 410 {
            return true;
        }
        if page.status() != 200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let Some(token) = http::find_form_token(page.body()) else {
            return true;
        };
        visits += 1;
        let choices: Vec<(String, &str)> = undecided_on(page.body())
            .into_iter()
            .filter_map(|hash| {
                let choice = match rng.random_range(0..3u32) {
                    0 => "release",
                    1 => "delete",
                    // Decided later: only on the first visit.
                    _ if visits == 1 => return None,
                    _ => "release",
                };
                Some((hash, choice))
            })
            .collect();
        let reviewer = format!("soak reviewer {visits}");
        let answer = http::post_review(&action, &token, &reviewer, &choices, "keep").await;
        if answer.status() == 410 {
            return true;
        }
        if answer.status() == 200 && answer.body().contains("Every held object is decided") {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Plays the reviewer (or the operator stopping the Macie job) until every execution ends,
/// lands the rewrites when they are due, and starts the second round when it is due.
pub(super) async fn drive(
    gate: &Gate,
    outcome: Outcome,
    executions: &mut Vec<(String, String, u8)>,
    mut second: Option<(SecondRound, String)>,
    versions: &mut Versions,
    uploads: &mut Uploads,
    violations: &mut Vec<String>,
) {
    let started = Instant::now();
    let mut second_started: Option<Instant> = None;
    let mut decided: BTreeSet<String> = BTreeSet::new();
    let mut stopped: BTreeSet<String> = BTreeSet::new();
    loop {
        let elapsed = started.elapsed().as_millis() as u64;
        let since_second = second_started.map(|at| at.elapsed().as_millis() as u64);
        versions
            .land(gate, uploads, |at| match at {
                Moment::InFlight(ms) => second_started.is_none() && elapsed >= ms,
                Moment::SecondRound(ms) => since_second.is_some_and(|since| since >= ms),
                _ => false,
            })
            .await;
        let mut running = Vec::new();
        // Whether every first-round execution still running waits for its reviewer: their
        // versions are all out of scan-stage then, held or passed on.
        let mut first_round_held = true;
        for (workflow, arn, round) in executions.iter() {
            if gate.describe(arn).await.status == ExecutionStatus::Running {
                running.push((workflow.clone(), *round));
                if *round == 1
                    && gate.current_state(arn).await.as_deref() != Some("triggerManualApproval")
                {
                    first_round_held = false;
                }
            }
        }
        if running.is_empty() && second.is_none() {
            // Rewrites whose moment never came (the round ended first) land now, late.
            versions.land(gate, uploads, |_| true).await;
            return;
        }
        if started.elapsed() > Duration::from_secs(120) {
            violations.push(format!(
                "{} execution(s) still running after 120 s",
                running.len()
            ));
            return;
        }
        // The newest request per workflow: a crash of triggerManualApproval after it published
        // makes Step Functions retry it, which sends a new request.
        let mut newest: BTreeMap<String, (i64, String)> = BTreeMap::new();
        for email in gate.emails() {
            let Some((workflow, _, _)) = executions
                .iter()
                .find(|(w, _, _)| email.message.contains(w.as_str()))
            else {
                continue;
            };
            if email.is_review_request()
                && newest
                    .get(workflow.as_str())
                    .is_none_or(|(at, _)| *at < email.timestamp_ms)
            {
                newest.insert(
                    workflow.clone(),
                    (email.timestamp_ms, email.message.clone()),
                );
            }
        }
        if !newest.is_empty() {
            versions
                .land(gate, uploads, |at| at == Moment::WhenHeld)
                .await;
        }
        let second_due = match &second {
            Some((SecondRound::WhenHeld, _)) => {
                (!newest.is_empty() && first_round_held) || running.is_empty()
            }
            Some((SecondRound::AfterFirst, _)) => running.is_empty(),
            None => false,
        };
        if second_due && let Some((_, workflow)) = second.take() {
            // What is still to land before the second round lands now, so it can take it.
            versions
                .land(gate, uploads, |at| !matches!(at, Moment::SecondRound(_)))
                .await;
            let arn = gate.start_run(&workflow, json!({"id": workflow})).await;
            uploads.last_start = uploads.tick();
            executions.push((workflow, arn, 2));
            second_started = Some(Instant::now());
            continue;
        }
        // A late reviewer decides the first round only once the second has ended: its newer
        // versions went through first.
        let second_round_busy = running.iter().any(|(_, round)| *round == 2);
        let late_reviewer = versions.late_reviewer;
        let holds_off = |workflow: &str| {
            late_reviewer
                && second_round_busy
                && executions
                    .iter()
                    .any(|(w, _, round)| w == workflow && *round == 1)
        };
        match outcome {
            Outcome::Approve | Outcome::Deny => {
                let label = if outcome == Outcome::Approve {
                    "Release all"
                } else {
                    "Delete all"
                };
                for (workflow, (_, message)) in &newest {
                    if holds_off(workflow) {
                        continue;
                    }
                    let link = link_after(message, label);
                    if !decided.contains(&link) && decide(&link).await {
                        decided.insert(link);
                        versions
                            .land(gate, uploads, |at| at == Moment::AfterDecision)
                            .await;
                    }
                }
            }
            Outcome::PerObject => {
                for (workflow, (_, message)) in &newest {
                    if holds_off(workflow) {
                        continue;
                    }
                    let link = link_after(message, "Decide each object");
                    if !decided.contains(&link) && decide_each(&link).await {
                        decided.insert(link);
                        versions
                            .land(gate, uploads, |at| at == Moment::AfterDecision)
                            .await;
                    }
                }
            }
            Outcome::JobCancelled | Outcome::JobPaused => {
                let status = if outcome == Outcome::JobCancelled {
                    aws_sdk_macie2::types::JobStatus::Cancelled
                } else {
                    aws_sdk_macie2::types::JobStatus::UserPaused
                };
                if let Ok(jobs) = gate.macie.list_classification_jobs().send().await {
                    for job in jobs.items() {
                        let id = job.job_id().unwrap_or_default().to_owned();
                        let is_running =
                            job.job_status() == Some(&aws_sdk_macie2::types::JobStatus::Running);
                        if is_running && !stopped.contains(&id) {
                            let sent = gate
                                .macie
                                .update_classification_job()
                                .job_id(&id)
                                .job_status(status.clone())
                                .send()
                                .await;
                            if sent.is_ok() {
                                stopped.insert(id);
                            }
                        }
                    }
                }
            }
            Outcome::TimeoutHold | Outcome::TimeoutDeny => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
