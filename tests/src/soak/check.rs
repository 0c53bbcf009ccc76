//! The invariants, checked once the runs have ended: every version found (noncurrent ones
//! included), told apart by its ETag, and held against what its run did.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_sfn::types::ExecutionStatus;
use macie_pipeline::approval::decisions::{Choice, ObjectDecision};
use macie_pipeline::approval::outcomes::{Ending, ObjectOutcome};
use macie_pipeline::deployment::Bucket;
use macie_pipeline::s3::landing;
use serde_json::Value;

use super::Outcome;
use super::scenario::{Uploads, Version, sha256};
use crate::Gate;

/// What the checks know of the run.
pub(super) struct Context<'a> {
    pub(super) outcome: Outcome,
    pub(super) versioning: bool,
    pub(super) uploads: &'a Uploads,
    /// workflow -> (execution ARN, final status).
    pub(super) finished: &'a BTreeMap<String, (String, ExecutionStatus)>,
    /// What a reader of scanned-data saw, per key: ETags in the order they appeared.
    pub(super) seen: &'a BTreeMap<String, Vec<String>>,
}

/// One copy of a version found in a bucket.
struct Copy {
    bucket: Bucket,
    /// The key it is stored under (`gate-versions/<landed>/<key>` when kept aside).
    location: String,
    /// Its ETag, without quotes.
    etag: String,
    /// The bucket's current version of its key, as opposed to an older, noncurrent one.
    current: bool,
    /// For current copies: content hash, tags, metadata.
    sha256: Option<String>,
    tags: BTreeMap<String, String>,
    metadata: BTreeMap<String, String>,
}

/// The uploaded key a stored key holds a version of.
fn uploaded_key(location: &str) -> &str {
    location
        .strip_prefix(landing::ASIDE_PREFIX)
        .and_then(|rest| rest.split_once('/'))
        .map_or(location, |(_, key)| key)
}

/// Every version and delete marker the pipeline buckets hold, with the current objects read.
async fn inventory(gate: &Gate) -> Vec<Copy> {
    let mut copies = Vec::new();
    for bucket in [
        Bucket::Raw,
        Bucket::ScanStage,
        Bucket::ManualReview,
        Bucket::ScannedData,
    ] {
        let name = gate.bucket(bucket);
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let page = gate
                .s3
                .list_object_versions()
                .bucket(&name)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .expect("ListObjectVersions");
            for version in page.versions() {
                let location = version.key().unwrap_or_default().to_owned();
                let etag = version
                    .e_tag()
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_owned();
                let current = version.is_latest().unwrap_or(false);
                let mut copy = Copy {
                    bucket,
                    location,
                    etag,
                    current,
                    sha256: None,
                    tags: BTreeMap::new(),
                    metadata: BTreeMap::new(),
                };
                if current {
                    copy.sha256 = Some(sha256(&gate.body(bucket, &copy.location).await));
                    copy.tags = gate.tags(bucket, &copy.location).await;
                    let head = gate
                        .s3
                        .head_object()
                        .bucket(&name)
                        .key(&copy.location)
                        .send()
                        .await
                        .expect("HeadObject");
                    copy.metadata = head
                        .metadata()
                        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default();
                }
                copies.push(copy);
            }
            if !page.is_truncated().unwrap_or(false) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
    }
    copies
}

/// Which workflows' Macie jobs analysed each (key, ETag), from the jobs' discovery results,
/// and the status of each workflow's jobs.
async fn analysed_by(
    gate: &Gate,
) -> (
    BTreeMap<(String, String), BTreeSet<String>>,
    BTreeMap<String, Vec<String>>,
) {
    let mut workflow_of_job = BTreeMap::new();
    let mut jobs_by_workflow: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Ok(jobs) = gate.macie.list_classification_jobs().send().await {
        for job in jobs.items() {
            let name = job.name().unwrap_or_default();
            if let Some(workflow) = name.strip_prefix("macie-pipeline-scan-") {
                workflow_of_job.insert(
                    job.job_id().unwrap_or_default().to_owned(),
                    workflow.to_owned(),
                );
                jobs_by_workflow
                    .entry(workflow.to_owned())
                    .or_default()
                    .push(
                        job.job_status()
                            .map(|s| s.as_str().to_owned())
                            .unwrap_or_default(),
                    );
            }
        }
    }
    let results = gate.stack.deployment().discovery_results.0.clone();
    let mut analysed: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut pages = gate
        .s3
        .list_objects_v2()
        .bucket(&results)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for object in page.expect("ListObjectsV2").contents() {
            let key = object.key().unwrap_or_default();
            let bytes = gate
                .s3
                .get_object()
                .bucket(&results)
                .key(key)
                .send()
                .await
                .expect("GetObject")
                .body
                .collect()
                .await
                .expect("body")
                .into_bytes();
            let Ok(text) = macie_pipeline::macie::results::decompress(&bytes) else {
                continue;
            };
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let record: Value = serde_json::from_str(line).unwrap_or(Value::Null);
                let job = record["classificationDetails"]["jobId"]
                    .as_str()
                    .unwrap_or_default();
                let object = &record["resourcesAffected"]["s3Object"];
                if let (Some(workflow), Some(key), Some(etag)) = (
                    workflow_of_job.get(job),
                    object["key"].as_str(),
                    object["eTag"].as_str(),
                ) {
                    analysed
                        .entry((key.to_owned(), etag.trim_matches('"').to_owned()))
                        .or_default()
                        .insert(workflow.clone());
                }
            }
        }
    }
    (analysed, jobs_by_workflow)
}

/// Every decision recorded per object, by (workflow, key): what each reviewer chose.
async fn decisions(gate: &Gate) -> BTreeMap<(String, String), Choice> {
    let mut found = BTreeMap::new();
    for key in gate.keys(Bucket::Manifests).await {
        if !(key.starts_with("approvals/") && key.contains("/objects/")) {
            continue;
        }
        let record: ObjectDecision =
            serde_json::from_slice(&gate.body(Bucket::Manifests, &key).await)
                .unwrap_or_else(|err| panic!("{key} is not a decision record: {err}"));
        found.insert(
            (record.workflow_id.as_str().to_owned(), record.key),
            record.choice,
        );
    }
    found
}

/// Each held object's outcome record agrees with its decision: released or kept aside only when
/// chosen for release, deleted only when chosen for deletion, deleted or left held at the
/// deadline only when nobody decided it; and once a review's report is written (its last step
/// finished), every decided object has its record.
async fn check_outcome_records(gate: &Gate, violations: &mut Vec<String>) {
    #[derive(Default)]
    struct Review {
        choices: BTreeMap<String, Choice>,
        outcomes: Vec<ObjectOutcome>,
        reported: bool,
    }
    let mut reviews: BTreeMap<String, Review> = BTreeMap::new();
    for key in gate.keys(Bucket::Manifests).await {
        let Some((review, tail)) = key
            .strip_prefix("approvals/")
            .and_then(|rest| rest.split_once('/'))
        else {
            continue;
        };
        let entry = reviews.entry(review.to_owned()).or_default();
        if tail.starts_with("objects/") {
            let record: ObjectDecision =
                serde_json::from_slice(&gate.body(Bucket::Manifests, &key).await)
                    .unwrap_or_else(|err| panic!("{key} is not a decision record: {err}"));
            entry.choices.insert(record.key, record.choice);
        } else if tail.starts_with("outcomes/") {
            entry.outcomes.push(
                serde_json::from_slice(&gate.body(Bucket::Manifests, &key).await)
                    .unwrap_or_else(|err| panic!("{key} is not an outcome record: {err}")),
            );
        } else if tail == "report.json" {
            entry.reported = true;
        }
    }
    for (review, found) in &reviews {
        for outcome in &found.outcomes {
            let choice = found.choices.get(&outcome.key).copied();
            let agrees = matches!(
                (&outcome.ending, choice),
                (
                    Ending::Released { .. } | Ending::KeptAside { .. },
                    Some(Choice::Release)
                ) | (Ending::Deleted, Some(Choice::Delete))
                    | (Ending::DeletedAtDeadline | Ending::LeftHeldAtDeadline, None)
                    | (Ending::Gone, _)
            );
            if !agrees {
                violations.push(format!(
                    "review {review}: {:?} is on record as {:?}, but its decision was {choice:?}",
                    outcome.key, outcome.ending
                ));
            }
        }
        if found.reported {
            for key in found.choices.keys() {
                if !found.outcomes.iter().any(|o| &o.key == key) {
                    violations.push(format!(
                        "review {review}: {key:?} was decided and the review reported, but no outcome is on record"
                    ));
                }
            }
        }
    }
}

/// Invariant 9: every finished run announced its end exactly once, as the last of the state
/// machine's events and with the status it ended with, and every event the gate put meets its
/// published schema. `Review Requested` comes from the approval function, which runs on while
/// its task waits: it may land after the end only when the review timed out before the function
/// had put it (a timeout shorter than the function's own run, which the soak's scaled time makes
/// likely), and the run's `Review Decided` must then say so.
fn check_events(
    gate: &Gate,
    finished: &BTreeMap<String, (String, ExecutionStatus)>,
    violations: &mut Vec<String>,
) {
    let events = gate.events();
    for event in &events {
        if let Err(err) = crate::events::check(event) {
            violations.push(format!("an event does not meet its schema: {err}"));
        }
    }
    for (workflow, (arn, status)) in finished {
        let run: Vec<&Value> = events
            .iter()
            .filter(|event| event["detail"]["executionArn"] == arn.as_str())
            .collect();
        let kinds: Vec<&str> = run
            .iter()
            .filter_map(|event| event["detail-type"].as_str())
            .collect();
        let expected = match status {
            ExecutionStatus::Succeeded => "Run Succeeded",
            ExecutionStatus::Failed => "Run Failed",
            _ => continue,
        };
        let ends = kinds
            .iter()
            .filter(|kind| matches!(**kind, "Run Succeeded" | "Run Failed"))
            .count();
        let machine_last = kinds.iter().rev().find(|kind| **kind != "Review Requested");
        let request_after_end = kinds
            .iter()
            .position(|kind| *kind == "Review Requested")
            .zip(kinds.iter().position(|kind| *kind == expected))
            .is_some_and(|(request, end)| request > end);
        let timed_out = run.iter().any(|event| {
            event["detail-type"] == "Review Decided"
                && event["detail"]["review"]["timedOut"] == true
        });
        if ends != 1 || machine_last != Some(&expected) || (request_after_end && !timed_out) {
            violations.push(format!(
                "run {workflow} ended {status:?} but announced {kinds:?}"
            ));
        }
    }
}

pub(super) async fn check(gate: &Gate, context: &Context<'_>, violations: &mut Vec<String>) {
    check_outcome_records(gate, violations).await;
    check_events(gate, context.finished, violations);
    let Context {
        outcome,
        versioning,
        uploads,
        finished,
        seen,
    } = *context;
    let copies = inventory(gate).await;
    let (analysed, jobs_by_workflow) = analysed_by(gate).await;
    let decided = decisions(gate).await;
    // What the reviewer chose for `key` in `workflow`'s review, when each object was decided on
    // its own.
    let choice =
        |workflow: &str, key: &str| decided.get(&(workflow.to_owned(), key.to_owned())).copied();
    let all_succeeded = finished
        .values()
        .all(|(_, s)| *s == ExecutionStatus::Succeeded);
    for (workflow, jobs) in &jobs_by_workflow {
        if jobs.len() > 1 {
            violations.push(format!(
                "workflow {workflow} created {} Macie jobs",
                jobs.len()
            ));
        }
    }
    let job_complete = |workflow: &str| {
        jobs_by_workflow
            .get(workflow)
            .is_some_and(|jobs| jobs.iter().any(|s| s == "COMPLETE"))
    };
    let succeeded = |workflow: &str| {
        finished
            .get(workflow)
            .is_some_and(|(_, s)| *s == ExecutionStatus::Succeeded)
    };

    // Each copy belongs to one uploaded version; which one, by its ETag.
    let mut by_version: BTreeMap<(String, usize), Vec<&Copy>> = BTreeMap::new();
    for copy in &copies {
        let key = uploaded_key(&copy.location);
        let Some(found) = uploads
            .keys
            .get(key)
            .and_then(|versions| versions.iter().position(|v| v.etag == copy.etag))
        else {
            if uploads.keys.contains_key(key) {
                violations.push(format!(
                    "{:?} in {:?}: content changed (it matches no uploaded version)",
                    copy.location, copy.bucket
                ));
            } else {
                violations.push(format!(
                    "{:?} appeared in {:?} but was never uploaded",
                    copy.location, copy.bucket
                ));
            }
            continue;
        };
        by_version
            .entry((key.to_owned(), found))
            .or_default()
            .push(copy);
    }

    for (key, versions) in &uploads.keys {
        let newest = versions.len() - 1;
        // The version scanned-data holds now, if any.
        let delivered_now = by_version
            .iter()
            .filter(|((k, _), _)| k == key)
            .find(|(_, copies)| {
                copies
                    .iter()
                    .any(|c| c.current && c.bucket == Bucket::ScannedData)
            })
            .map(|((_, index), _)| *index);
        // Versions a run analysed completely and then passed on or had approved: scanned-data
        // must end with the newest of them, and never hold an older one after a newer one.
        let mut eligible = Vec::new();
        for (index, version) in versions.iter().enumerate() {
            let label = format!("{key:?} version {index} (flagged: {})", version.flagged);
            let runs = analysed
                .get(&(key.clone(), version.etag.clone()))
                .cloned()
                .unwrap_or_default();
            if runs.len() > 1 {
                violations.push(format!(
                    "{label} was scanned by {} runs: {runs:?}",
                    runs.len()
                ));
            }
            let run = runs.iter().next().cloned();
            let chosen = run.as_deref().and_then(|r| choice(r, key));
            let denied = version.flagged
                && (outcome.deletes_held()
                    || (outcome == Outcome::PerObject && chosen == Some(Choice::Delete)))
                && run
                    .as_deref()
                    .is_some_and(|r| succeeded(r) && job_complete(r));
            let released = outcome == Outcome::Approve
                || (outcome == Outcome::PerObject && chosen == Some(Choice::Release));
            if run.as_deref().is_some_and(job_complete)
                && (!version.flagged || (released && run.as_deref().is_some_and(succeeded)))
            {
                eligible.push(index);
            }
            let held = by_version
                .get(&(key.clone(), index))
                .cloned()
                .unwrap_or_default();
            let live: Vec<&&Copy> = held.iter().filter(|c| c.current).collect();
            let history: Vec<&&Copy> = held.iter().filter(|c| !c.current).collect();
            if denied {
                if !held.is_empty() {
                    violations.push(format!(
                        "{label} was denied but a copy is left: {:?}",
                        held.iter()
                            .map(|c| (c.bucket, &c.location, c.current))
                            .collect::<Vec<_>>()
                    ));
                }
                continue;
            }
            for copy in &history {
                match copy.bucket {
                    // What the gate took from raw stays there, noncurrent, with versioning; so
                    // does a version overwritten there before the gate took it.
                    Bucket::Raw => {}
                    // Replaced by a newer version, as the next stage's history.
                    Bucket::ScannedData => {
                        if delivered_now.is_none_or(|now| now <= index) {
                            violations.push(format!(
                                "{label} was replaced in scanned-data, but not by a newer version (now: {delivered_now:?})"
                            ));
                        }
                    }
                    other => violations.push(format!(
                        "{label} left a noncurrent version in {other:?} at {:?}",
                        copy.location
                    )),
                }
            }
            match live.as_slice() {
                [] => {
                    // Gone from scanned-data only because a newer version replaced it there:
                    // it must have been there (in its history, or as a reader saw it).
                    let was_delivered = history.iter().any(|c| c.bucket == Bucket::ScannedData)
                        || seen
                            .get(key)
                            .is_some_and(|etags| etags.contains(&version.etag));
                    let replaced = was_delivered && delivered_now.is_some_and(|now| now > index);
                    // Overwritten in raw before any run took it (without versioning it is gone;
                    // with versioning raw keeps it, noncurrent).
                    let overwritten_in_raw = run.is_none()
                        && index < newest
                        && (!versioning || history.iter().any(|c| c.bucket == Bucket::Raw));
                    let accounted = replaced || overwritten_in_raw;
                    if !accounted {
                        violations.push(format!(
                            "{label} is lost (analysed by {run:?}, scanned-data holds version {delivered_now:?})"
                        ));
                    }
                }
                [copy] => {
                    check_copy(copy, version, &label, versioning, violations);
                    let workflow = copy.tags.get("WorkflowId").cloned();
                    let run_of_copy = workflow.as_deref().and_then(|w| finished.get(w));
                    match copy.bucket {
                        Bucket::ScannedData => {
                            if !workflow.as_deref().is_some_and(job_complete) {
                                violations.push(format!("{label} reached scanned-data without a COMPLETE Macie job of its workflow {workflow:?}"));
                            }
                            // Released only by a reviewer: all at once, or this object's own
                            // decision in the run that holds its tag.
                            let reviewed = outcome == Outcome::Approve
                                || (outcome == Outcome::PerObject
                                    && workflow
                                        .as_deref()
                                        .and_then(|w| choice(w, key))
                                        == Some(Choice::Release));
                            if version.flagged
                                && (!reviewed
                                    || copy.tags.get("SensitiveDataFound").map(String::as_str)
                                        != Some("true"))
                            {
                                violations.push(format!(
                                    "{label} is flagged but reached scanned-data (outcome {outcome:?}, tags {:?})",
                                    copy.tags
                                ));
                            }
                        }
                        Bucket::ManualReview => match run_of_copy {
                            None => violations.push(format!(
                                "{label} in manual-review without its run's WorkflowId ({workflow:?})"
                            )),
                            // Held: its run failed with the `hold` default.
                            Some((_, ExecutionStatus::Failed)) if outcome == Outcome::TimeoutHold => {}
                            // Kept aside: a newer version must be in scanned-data.
                            Some((_, ExecutionStatus::Succeeded)) => {
                                if delivered_now.is_none_or(|now| now <= index) {
                                    violations.push(format!(
                                        "{label} kept in manual-review at {:?} by a run that succeeded, but scanned-data holds version {delivered_now:?}, not a newer one",
                                        copy.location
                                    ));
                                }
                            }
                            Some((_, status)) => violations.push(format!(
                                "{label} in manual-review by a run that ended {} (outcome {outcome:?})",
                                status.as_str()
                            )),
                        },
                        Bucket::ScanStage => {
                            if run_of_copy.is_none_or(|(_, s)| *s == ExecutionStatus::Succeeded) {
                                violations.push(format!(
                                    "{label} left in scan-stage by a run that succeeded or is unknown ({workflow:?})"
                                ));
                            }
                        }
                        Bucket::Raw => {
                            if workflow.is_some() {
                                violations.push(format!("{label} back in raw with a WorkflowId tag"));
                            }
                            if index != newest {
                                violations.push(format!(
                                    "{label} is current in raw, but version {newest} was uploaded after it"
                                ));
                            }
                            if version.seq < uploads.last_start && all_succeeded {
                                violations.push(format!("{label} was in raw before the last run started and was not taken though every run succeeded"));
                            }
                        }
                        Bucket::Manifests => {}
                    }
                }
                many => violations.push(format!(
                    "{label} is in {} places: {:?}",
                    many.len(),
                    many.iter()
                        .map(|c| (c.bucket, &c.location))
                        .collect::<Vec<_>>()
                )),
            }
        }
        // Nothing stale: scanned-data ends with the newest version that passed.
        if let Some(&newest_eligible) = eligible.iter().max()
            && delivered_now != Some(newest_eligible)
        {
            violations.push(format!(
                "{key:?}: scanned-data holds version {delivered_now:?}, but version {newest_eligible} passed (passed: {eligible:?})"
            ));
        }
        if eligible.is_empty()
            && let Some(now) = delivered_now
        {
            violations.push(format!(
                "{key:?}: scanned-data holds version {now}, which never passed"
            ));
        }
        // No version replaced a newer one: not in scanned-data's history, and not as a reader
        // saw it.
        let index_of = |etag: &str| versions.iter().position(|v| v.etag == etag);
        if versioning {
            let mut history: Vec<usize> = copies
                .iter()
                .filter(|c| c.bucket == Bucket::ScannedData && uploaded_key(&c.location) == key)
                .filter_map(|c| index_of(&c.etag))
                .collect();
            // Listed newest first.
            history.reverse();
            if history.windows(2).any(|pair| pair[0] >= pair[1]) {
                violations.push(format!(
                    "{key:?}: scanned-data's versions went {history:?}: a version replaced a newer one"
                ));
            }
        }
        if let Some(sequence) = seen.get(key) {
            let order: Vec<Option<usize>> = sequence.iter().map(|e| index_of(e)).collect();
            if order
                .windows(2)
                .any(|pair| matches!(pair, [Some(a), Some(b)] if b < a))
            {
                violations.push(format!(
                    "{key:?}: a reader of scanned-data saw versions {order:?}: an older one replaced a newer one"
                ));
            }
        }
    }
    // Exactly one failure notification per failed execution, none for the others.
    let emails = gate.emails();
    for (workflow, (arn, status)) in finished {
        let alerts = emails
            .iter()
            .filter(|e| {
                e.subject
                    .as_deref()
                    .is_some_and(|s| s.contains("run failed") || s.contains("objects held"))
                    && e.message.contains(arn.as_str())
            })
            .count();
        let expected = usize::from(*status == ExecutionStatus::Failed);
        if alerts != expected {
            violations.push(format!(
                "{workflow} ({}) sent {alerts} failure notification(s)",
                status.as_str()
            ));
        }
    }
}

/// Content, metadata and user tags of a current copy are the version's; the gate adds only its
/// tags and its landing record (which names this very version).
fn check_copy(
    copy: &Copy,
    version: &Version,
    label: &str,
    versioning: bool,
    violations: &mut Vec<String>,
) {
    let bucket = copy.bucket;
    if copy.sha256.as_deref() != Some(version.sha256.as_str()) {
        violations.push(format!("{label} in {bucket:?}: content changed"));
    }
    let mut metadata = copy.metadata.clone();
    let landed_at = metadata.remove(landing::LANDED_AT);
    let raw_etag = metadata.remove(landing::RAW_ETAG);
    let raw_version = metadata.remove(landing::RAW_VERSION_ID);
    if metadata != version.metadata {
        violations.push(format!(
            "{label} in {bucket:?}: metadata {:?}, uploaded {:?}",
            copy.metadata, version.metadata
        ));
    }
    if bucket == Bucket::Raw {
        if landed_at.is_some() || raw_etag.is_some() {
            violations.push(format!("{label} in raw carries a landing record"));
        }
    } else {
        if landed_at
            .as_deref()
            .and_then(landing::LandedAt::parse)
            .is_none()
        {
            violations.push(format!("{label} in {bucket:?} has no landing record"));
        }
        if raw_etag != Some(format!("\"{}\"", version.etag)) {
            violations.push(format!(
                "{label} in {bucket:?}: its landing record names raw ETag {raw_etag:?}"
            ));
        }
        if raw_version.is_some() != versioning {
            violations.push(format!(
                "{label} in {bucket:?}: raw version id {raw_version:?} with versioning {versioning}"
            ));
        }
    }
    let mut user_tags = copy.tags.clone();
    user_tags.remove("WorkflowId");
    user_tags.remove("SensitiveDataFound");
    if user_tags != version.tags {
        violations.push(format!(
            "{label} in {bucket:?}: tags {:?}, uploaded {:?}",
            copy.tags, version.tags
        ));
    }
}
