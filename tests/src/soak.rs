//! The randomized soak: seeded runs of the whole gate on a fresh local stack, each with random
//! objects (awkward keys, tags, metadata, sizes from 0 bytes to a few MB, some with planted card
//! numbers), random S3 and Macie faults, a random outcome (approve, deny, approval timeout with
//! either default, Macie job cancelled or paused), sometimes a second overlapping execution and
//! objects landing in raw while a run moves. After each run it checks the invariants the gate
//! promises and returns every violation; a seed replays its run exactly (up to thread timing).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sfn::types::ExecutionStatus;
use macie_pipeline::deployment::Bucket;
use macie_pipeline_local::faults::{FaultError, FaultRule};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{Gate, http, link_after};

/// How a run is meant to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Approve,
    Deny,
    TimeoutHold,
    TimeoutDeny,
    JobCancelled,
    JobPaused,
}

impl Outcome {
    fn deletes_held(self) -> bool {
        matches!(self, Self::Deny | Self::TimeoutDeny)
    }
}

/// What one seed's run did and what was wrong with it.
#[derive(Debug)]
pub struct RunReport {
    pub seed: u64,
    pub outcome: Outcome,
    /// Whether the moves were given deadline continuations to go through.
    pub continuations: bool,
    /// How many times a moving step handed back a continuation (re-entered its state).
    pub continuation_loops: usize,
    /// Whether the run moved through Distributed Maps (`MovePath=DistributedMap`).
    pub map_path: bool,
    pub executions: usize,
    pub objects: usize,
    pub flagged: usize,
    pub faults_injected: u64,
    pub crashes: u64,
    pub statuses: Vec<String>,
    pub violations: Vec<String>,
}

/// One uploaded object, as the invariants need it.
struct Uploaded {
    sha256: String,
    tags: BTreeMap<String, String>,
    metadata: BTreeMap<String, String>,
    flagged: bool,
    /// Uploaded after the executions started: a run may or may not have taken it.
    late: bool,
}

const WORDS: &[&str] = &[
    "alpha", "report", "north", "quarter", "ledger", "delivery", "notes", "ok", "data", "stock",
];
const KEY_PIECES: &[&str] = &[
    "a b",
    "plus+sign",
    "per%cent",
    "ünïcödé",
    "日本",
    "deep",
    "x",
    "space ",
    "tilde~",
    "eq=",
    "semi;colon",
    "dots..",
    "(paren)",
    "émoji😀",
    "caps",
];

fn pick<'a>(rng: &mut Xoshiro256PlusPlus, items: &'a [&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn key(rng: &mut Xoshiro256PlusPlus, index: usize) -> String {
    let depth = rng.random_range(0..5usize);
    let mut parts: Vec<String> = (0..depth)
        .map(|_| pick(rng, KEY_PIECES).to_owned())
        .collect();
    parts.push(format!("{} {index}.txt", pick(rng, KEY_PIECES)));
    parts.join("/")
}

fn body(rng: &mut Xoshiro256PlusPlus, flagged: bool) -> Vec<u8> {
    let size = match rng.random_range(0..100u32) {
        0..5 => 0,
        5..75 => rng.random_range(1..4_000usize),
        75..97 => rng.random_range(4_000..300_000usize),
        _ => rng.random_range(1_000_000..3_000_000usize),
    };
    let mut text = String::with_capacity(size + 64);
    while text.len() < size {
        text.push_str(pick(rng, WORDS));
        text.push(if rng.random_range(0..12u32) == 0 {
            '\n'
        } else {
            ' '
        });
    }
    text.truncate(size);
    if flagged {
        let at = text.floor_char_boundary(rng.random_range(0..=text.len()));
        text.insert_str(at, "\ncard number 4111 1111 1111 1111\n");
    }
    text.into_bytes()
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Uploads one random object to raw, retrying what the injected faults break.
async fn upload(
    gate: &Gate,
    rng: &mut Xoshiro256PlusPlus,
    index: usize,
    late: bool,
) -> (String, Uploaded) {
    let key = key(rng, index);
    let flagged = rng.random_bool(0.35);
    let bytes = body(rng, flagged);
    let tags: BTreeMap<String, String> = (0..rng.random_range(0..4usize))
        .map(|i| {
            (
                format!("t{i}-{}", pick(rng, WORDS)),
                format!("v {} é", pick(rng, WORDS)),
            )
        })
        .collect();
    let metadata: BTreeMap<String, String> = (0..rng.random_range(0..3usize))
        .map(|i| (format!("m{i}"), pick(rng, WORDS).to_owned()))
        .collect();
    let tag_set: Vec<macie_pipeline::tags::Tag> = tags
        .iter()
        .map(|(k, v)| macie_pipeline::tags::Tag::new(k.clone(), v.clone()))
        .collect();
    for attempt in 0.. {
        let mut request = gate
            .s3
            .put_object()
            .bucket(gate.bucket(Bucket::Raw))
            .key(&key)
            .body(ByteStream::from(bytes.clone()));
        if !tag_set.is_empty() {
            request = request.tagging(macie_pipeline::tags::encode(&tag_set));
        }
        for (name, value) in &metadata {
            request = request.metadata(name, value);
        }
        match request.send().await {
            Ok(_) => break,
            Err(err) if attempt < 20 => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => panic!("upload {key}: {err:?}"),
        }
    }
    let uploaded = Uploaded {
        sha256: sha256(&bytes),
        tags,
        metadata,
        flagged,
        late,
    };
    (key, uploaded)
}

fn random_faults(rng: &mut Xoshiro256PlusPlus) -> Vec<FaultRule> {
    let errors = [
        FaultError::InternalError,
        FaultError::SlowDown,
        FaultError::Throttling,
    ];
    let mut rules = Vec::new();
    if rng.random_bool(0.7) {
        rules.push(FaultRule {
            service: "s3".into(),
            operation: None,
            error: errors[rng.random_range(0..3usize)],
            count: None,
            probability: Some(rng.random_range(0.01..0.08)),
            latency_ms: rng.random_bool(0.3).then(|| rng.random_range(1..15u64)),
        });
    }
    if rng.random_bool(0.4) {
        // Crashes: the handler dies before the request, e.g. after a copy and before its delete.
        // At most two per run, within the state machine's two retries of Lambda.Unknown.
        let operation =
            ["CopyObject", "DeleteObject", "ListObjectsV2"][rng.random_range(0..3usize)];
        rules.push(FaultRule {
            service: "s3".into(),
            operation: Some(operation.into()),
            error: FaultError::Crash,
            count: Some(rng.random_range(1..=2u64)),
            probability: Some(rng.random_range(0.05..0.5)),
            latency_ms: None,
        });
    }
    if rng.random_bool(0.5) {
        rules.push(FaultRule {
            service: "macie2".into(),
            operation: None,
            error: errors[rng.random_range(0..3usize)],
            count: None,
            probability: Some(rng.random_range(0.02..0.15)),
            latency_ms: None,
        });
    }
    rules
}

/// Opens a decision link and presses its button, retrying pages that injected faults broke.
async fn decide(link: &str) -> bool {
    for _ in 0..50 {
        let page = http::get(link).await;
        if page.status() == 200 {
            let token = http::form_token(page.body());
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

/// A deliberate break between the run and the checks, to show the checks catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sabotage {
    None,
    /// Delete the first object found in any bucket.
    LoseOne,
    /// Copy the first object found into a second bucket.
    DuplicateOne,
    /// Overwrite the first object found with other content.
    AlterOne,
}

/// Runs seed `seed` and checks the invariants.
pub async fn run(seed: u64) -> RunReport {
    run_with(seed, Sabotage::None).await
}

async fn sabotage(gate: &Gate, how: Sabotage) {
    let buckets = [
        Bucket::Raw,
        Bucket::ScanStage,
        Bucket::ManualReview,
        Bucket::ScannedData,
    ];
    let mut first = None;
    for bucket in buckets {
        if let Some(key) = gate.keys(bucket).await.into_iter().next() {
            first = Some((bucket, key));
            break;
        }
    }
    let Some((bucket, key)) = first else {
        return;
    };
    let s3 = &gate.s3;
    match how {
        Sabotage::None => {}
        Sabotage::LoseOne => {
            s3.delete_object()
                .bucket(gate.bucket(bucket))
                .key(&key)
                .send()
                .await
                .expect("delete");
        }
        Sabotage::DuplicateOne => {
            let other = if bucket == Bucket::ScannedData {
                Bucket::Raw
            } else {
                Bucket::ScannedData
            };
            let body = gate.body(bucket, &key).await;
            s3.put_object()
                .bucket(gate.bucket(other))
                .key(&key)
                .body(ByteStream::from(body))
                .send()
                .await
                .expect("put");
        }
        Sabotage::AlterOne => {
            s3.put_object()
                .bucket(gate.bucket(bucket))
                .key(&key)
                .body(ByteStream::from_static(b"altered"))
                .send()
                .await
                .expect("put");
        }
    }
}

/// Runs seed `seed`, applies `how`, and checks the invariants.
pub async fn run_with(seed: u64, how: Sabotage) -> RunReport {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let outcome = [
        Outcome::Approve,
        Outcome::Deny,
        Outcome::TimeoutHold,
        Outcome::TimeoutDeny,
        Outcome::JobCancelled,
        Outcome::JobPaused,
    ][rng.random_range(0..6usize)];
    // A quarter of the runs give each invocation a fifth of a second, with slow copies, so the
    // moves go through deadline continuations and crashes can land in the middle of one.
    let continuations = rng.random_bool(0.25);
    // A third of the other runs move through Distributed Maps in batches of three. Chosen from
    // the seed, not drawn, so every seed keeps the scenario it had before the Map path existed.
    // Not with short deadlines: a batch that cannot finish before the deadline fails by design.
    let map_path = !continuations && seed.is_multiple_of(3);
    let gate = Gate::start_with(|config| {
        if map_path {
            for (name, value) in [
                ("MovePath", "DistributedMap"),
                ("MapItemsPerBatch", "3"),
                ("MapMaxConcurrency", "2"),
            ] {
                config.parameters.insert(name.into(), value.into());
            }
        }
        if continuations {
            config.functions.timeout = Some(Duration::from_millis(1100));
            for (variable, value) in [("DEADLINE_MARGIN_SECONDS", "1"), ("MOVE_CONCURRENCY", "2")] {
                config
                    .functions
                    .environment
                    .insert(variable.into(), value.into());
            }
        }
        match outcome {
            Outcome::TimeoutHold | Outcome::TimeoutDeny => {
                config
                    .parameters
                    .insert("ApprovalTimeoutSeconds".into(), "300".into());
                let action = if outcome == Outcome::TimeoutDeny {
                    "deny"
                } else {
                    "hold"
                };
                config
                    .parameters
                    .insert("ApprovalTimeoutAction".into(), action.into());
            }
            // Jobs stay RUNNING until the soak stops them.
            Outcome::JobCancelled | Outcome::JobPaused => {
                config.macie.startup_delay_seconds = 1e9;
            }
            _ => {}
        }
    })
    .await;
    let mut uploaded: BTreeMap<String, Uploaded> = BTreeMap::new();
    for index in 0..rng.random_range(1..=12usize) {
        let (key, object) = upload(&gate, &mut rng, index, false).await;
        uploaded.insert(key, object);
    }
    let mut rules = random_faults(&mut rng);
    if continuations {
        rules.push(FaultRule {
            service: "s3".into(),
            operation: Some("CopyObject".into()),
            error: FaultError::None,
            count: None,
            probability: None,
            latency_ms: Some(rng.random_range(40..80u64)),
        });
    }
    gate.stack.faults().seed(seed);
    for rule in rules {
        gate.stack.faults().add(rule).expect("a valid rule");
    }
    let mut workflows = vec![format!("soak-{seed}-a")];
    if rng.random_bool(0.3) {
        workflows.push(format!("soak-{seed}-b"));
    }
    let mut executions = Vec::new();
    for workflow in &workflows {
        executions.push((
            workflow.clone(),
            gate.start_run(workflow, json!({"id": workflow})).await,
        ));
    }
    if rng.random_bool(0.3) {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..40u64))).await;
        for index in 0..rng.random_range(1..=3usize) {
            let (key, object) = upload(&gate, &mut rng, 100 + index, true).await;
            uploaded.insert(key, object);
        }
    }

    let mut violations = Vec::new();
    drive(&gate, outcome, &executions, &mut violations).await;
    let faults_injected = gate.stack.faults().injected();
    let crashes = gate.stack.faults().crashes();
    gate.stack.faults().clear();
    let mut statuses = Vec::new();
    let mut finished = BTreeMap::new();
    let mut continuation_loops = 0;
    for (_, arn) in &executions {
        if let Some(record) = gate.stack.engine().describe(arn) {
            for step in [
                "triggerMacieScan",
                "moveAllScanStageS3Files",
                "moveToScannedDataS3Files",
                "deleteManualReviewS3Files",
            ] {
                let entered = record
                    .history
                    .iter()
                    .filter(|e| {
                        e.kind == "TaskStateEntered"
                            && e.details["stateEnteredEventDetails"]["name"] == step
                    })
                    .count();
                continuation_loops += entered.saturating_sub(1);
            }
        }
    }
    for (workflow, arn) in &executions {
        let described = gate.describe(arn).await;
        let status = described.status.as_str().to_owned();
        statuses.push(format!(
            "{workflow}: {status}{}",
            described
                .error()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        ));
        finished.insert(workflow.clone(), (arn.clone(), described.status));
    }
    sabotage(&gate, how).await;
    check(&gate, outcome, &uploaded, &finished, &mut violations).await;
    RunReport {
        seed,
        outcome,
        continuations,
        continuation_loops,
        map_path,
        executions: executions.len(),
        objects: uploaded.len(),
        flagged: uploaded.values().filter(|o| o.flagged).count(),
        faults_injected,
        crashes,
        statuses,
        violations,
    }
}

/// Plays the reviewer (or the operator stopping the Macie job) until every execution ends.
async fn drive(
    gate: &Gate,
    outcome: Outcome,
    executions: &[(String, String)],
    violations: &mut Vec<String>,
) {
    let started = Instant::now();
    let mut decided: BTreeSet<String> = BTreeSet::new();
    let mut stopped: BTreeSet<String> = BTreeSet::new();
    loop {
        let mut running = 0;
        for (_, arn) in executions {
            if gate.describe(arn).await.status == ExecutionStatus::Running {
                running += 1;
            }
        }
        if running == 0 {
            return;
        }
        if started.elapsed() > Duration::from_secs(120) {
            violations.push(format!("{running} execution(s) still running after 120 s"));
            return;
        }
        match outcome {
            Outcome::Approve | Outcome::Deny => {
                // The newest request per workflow: a crash of triggerManualApproval after it
                // published makes Step Functions retry it, which sends a new request.
                let mut newest: BTreeMap<&str, (i64, String)> = BTreeMap::new();
                for email in gate.emails() {
                    let is_request = email.is_review_request();
                    let Some((workflow, _)) = executions
                        .iter()
                        .find(|(w, _)| email.message.contains(w.as_str()))
                    else {
                        continue;
                    };
                    if is_request
                        && newest
                            .get(workflow.as_str())
                            .is_none_or(|(at, _)| *at < email.timestamp_ms)
                    {
                        newest.insert(workflow, (email.timestamp_ms, email.message.clone()));
                    }
                }
                let label = if outcome == Outcome::Approve {
                    "Approve"
                } else {
                    "Deny"
                };
                for (_, message) in newest.values() {
                    let link = link_after(message, label);
                    if !decided.contains(&link) && decide(&link).await {
                        decided.insert(link);
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

/// Where each object is: bucket -> (sha256, tags, metadata).
async fn locate(
    gate: &Gate,
) -> BTreeMap<
    String,
    Vec<(
        Bucket,
        String,
        BTreeMap<String, String>,
        BTreeMap<String, String>,
    )>,
> {
    let mut found: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for bucket in [
        Bucket::Raw,
        Bucket::ScanStage,
        Bucket::ManualReview,
        Bucket::ScannedData,
    ] {
        for key in gate.keys(bucket).await {
            let body = gate.body(bucket, &key).await;
            let tags = gate.tags(bucket, &key).await;
            let head = gate
                .s3
                .head_object()
                .bucket(gate.bucket(bucket))
                .key(&key)
                .send()
                .await
                .expect("HeadObject");
            let metadata: BTreeMap<String, String> = head
                .metadata()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            found
                .entry(key)
                .or_default()
                .push((bucket, sha256(&body), tags, metadata));
        }
    }
    found
}

async fn check(
    gate: &Gate,
    outcome: Outcome,
    uploaded: &BTreeMap<String, Uploaded>,
    finished: &BTreeMap<String, (String, ExecutionStatus)>,
    violations: &mut Vec<String>,
) {
    let found = locate(gate).await;
    let all_succeeded = finished
        .values()
        .all(|(_, s)| *s == ExecutionStatus::Succeeded);
    // Macie jobs: at most one per workflow; which ones completed.
    let mut jobs_by_workflow: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Ok(jobs) = gate.macie.list_classification_jobs().send().await {
        for job in jobs.items() {
            let name = job.name().unwrap_or_default();
            if let Some(workflow) = name.strip_prefix("macie-pipeline-scan-") {
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
    for (workflow, jobs) in &jobs_by_workflow {
        if jobs.len() > 1 {
            violations.push(format!(
                "workflow {workflow} created {} Macie jobs",
                jobs.len()
            ));
        }
    }
    for key in found.keys() {
        if !uploaded.contains_key(key) {
            violations.push(format!("{key:?} appeared but was never uploaded"));
        }
    }
    for (key, object) in uploaded {
        let places = found.get(key).map(Vec::as_slice).unwrap_or_default();
        match places {
            [] => {
                if !(object.flagged && outcome.deletes_held()) {
                    violations.push(format!("{key:?} (flagged: {}) is lost", object.flagged));
                }
            }
            [(bucket, sha, tags, metadata)] => {
                if *sha != object.sha256 {
                    violations.push(format!("{key:?} in {bucket:?}: content changed"));
                }
                if *metadata != object.metadata {
                    violations.push(format!(
                        "{key:?} in {bucket:?}: metadata {metadata:?}, uploaded {:?}",
                        object.metadata
                    ));
                }
                let mut user_tags = tags.clone();
                let workflow = user_tags.remove("WorkflowId");
                let sensitive = user_tags.remove("SensitiveDataFound");
                if user_tags != object.tags {
                    violations.push(format!(
                        "{key:?} in {bucket:?}: tags {tags:?}, uploaded {:?}",
                        object.tags
                    ));
                }
                let run = workflow.as_ref().and_then(|w| finished.get(w));
                match bucket {
                    Bucket::ScannedData => {
                        let job_complete = workflow
                            .as_ref()
                            .and_then(|w| jobs_by_workflow.get(w))
                            .is_some_and(|jobs| jobs.iter().any(|s| s == "COMPLETE"));
                        if !job_complete {
                            violations.push(format!("{key:?} reached scanned-data without a COMPLETE Macie job of its workflow {workflow:?}"));
                        }
                        if object.flagged
                            && (outcome != Outcome::Approve || sensitive.as_deref() != Some("true"))
                        {
                            violations.push(format!("{key:?} is flagged but reached scanned-data (outcome {outcome:?}, SensitiveDataFound={sensitive:?})"));
                        }
                    }
                    Bucket::ManualReview | Bucket::ScanStage => {
                        if run.is_some_and(|(_, s)| *s == ExecutionStatus::Succeeded)
                            && !(*bucket == Bucket::ManualReview && outcome == Outcome::TimeoutHold)
                        {
                            violations.push(format!(
                                "{key:?} left in {bucket:?} by a run that succeeded ({workflow:?})"
                            ));
                        }
                        if run.is_none() {
                            violations.push(format!(
                                "{key:?} in {bucket:?} without its run's WorkflowId ({workflow:?})"
                            ));
                        }
                    }
                    Bucket::Raw => {
                        if workflow.is_some() {
                            violations.push(format!("{key:?} back in raw with a WorkflowId tag"));
                        }
                        if !object.late && all_succeeded {
                            violations.push(format!("{key:?} was in raw before the runs and was not taken though every run succeeded"));
                        }
                    }
                    _ => violations.push(format!("{key:?} in unexpected bucket {bucket:?}")),
                }
            }
            many => violations.push(format!(
                "{key:?} is in {} places: {:?}",
                many.len(),
                many.iter().map(|(b, ..)| b).collect::<Vec<_>>()
            )),
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
