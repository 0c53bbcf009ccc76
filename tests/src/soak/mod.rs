//! The randomized soak: seeded runs of the whole gate on a fresh local stack, each with random
//! objects (awkward keys, tags, metadata, sizes from 0 bytes to a few MB, some with planted card
//! numbers), random S3 and Macie faults, a random outcome (release all, delete all, each object
//! decided on its own over two visits, approval timeout with
//! either default, Macie job cancelled or paused), sometimes a second overlapping execution and
//! objects landing in raw while a run moves. Half the runs rewrite keys: new versions of keys
//! already uploaded land while the earlier ones are in flight, held, being released or denied,
//! and a later run takes what waited. A third of all runs use `BucketVersioning=Enabled`, a quarter
//! `BucketEncryption=SSE-KMS` (every object the gate wrote must then be under the stack's key). After
//! each run it checks the invariants the gate promises and returns every violation; a seed
//! replays its run exactly (up to thread timing).

mod check;
mod drive;
mod scenario;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use macie_pipeline::deployment::Bucket;
use macie_pipeline_local::faults::{FaultError, FaultRule};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use crate::Gate;
use check::{Context, check};
use drive::drive;
use scenario::{SecondRound, Uploads, Versions, random_faults, upload};

/// How a run is meant to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Approve,
    Deny,
    /// The reviewer decides each held object on its own, release or delete at random, over two
    /// visits of the review page.
    PerObject,
    TimeoutHold,
    TimeoutDeny,
    JobCancelled,
    JobPaused,
}

impl Outcome {
    pub(super) fn deletes_held(self) -> bool {
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
    /// Whether the buckets were versioned (`BucketVersioning=Enabled`).
    pub versioning: bool,
    /// Whether the buckets were under the stack's KMS key (`BucketEncryption=SSE-KMS`).
    pub encrypted: bool,
    /// New versions of keys already uploaded (0 in runs that do not rewrite keys).
    pub rewrites: usize,
    /// Versions kept aside instead of replacing a newer one (routing and releases), as the
    /// executions reported them.
    pub superseded: u64,
    /// Review requests that held a version aside because another version of its key was held.
    pub held_aside: usize,
    /// Versions that waited in raw because an earlier version of their key was in scan-stage.
    pub waited: u64,
    pub executions: usize,
    /// Keys uploaded.
    pub objects: usize,
    /// Versions uploaded (one per key, plus the rewrites).
    pub versions: usize,
    pub flagged: usize,
    pub faults_injected: u64,
    pub crashes: u64,
    pub statuses: Vec<String>,
    pub violations: Vec<String>,
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
    /// Rewrite the first object found with the same content under SSE-S3 (a run on the stack's
    /// KMS key must leave none so).
    UnencryptOne,
}

/// Runs seed `seed` and checks the invariants.
pub async fn run(seed: u64) -> RunReport {
    run_with(seed, Sabotage::None).await
}

/// With SSE-KMS, every object the gate wrote (and every upload, under raw's default) is under
/// the stack's key.
async fn under_the_stacks_key(gate: &Gate, violations: &mut Vec<String>) {
    let key = gate.bucket_key();
    for bucket in [
        Bucket::Raw,
        Bucket::ScanStage,
        Bucket::ManualReview,
        Bucket::ScannedData,
        Bucket::Manifests,
    ] {
        for object in gate.keys(bucket).await {
            let head = gate
                .s3
                .head_object()
                .bucket(gate.bucket(bucket))
                .key(&object)
                .send()
                .await;
            let found = head
                .as_ref()
                .ok()
                .and_then(|h| h.ssekms_key_id().map(str::to_owned));
            if head.is_ok() && found != key {
                violations.push(format!(
                    "{bucket:?} {object} is under {found:?}, not the stack's key {key:?}"
                ));
            }
        }
    }
}

async fn sabotage(gate: &Gate, how: Sabotage, versioning: bool) {
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
            // With versioning a plain delete only hides the version; lose it for good.
            let version = if versioning {
                s3.head_object()
                    .bucket(gate.bucket(bucket))
                    .key(&key)
                    .send()
                    .await
                    .expect("head")
                    .version_id()
                    .map(str::to_owned)
            } else {
                None
            };
            s3.delete_object()
                .bucket(gate.bucket(bucket))
                .key(&key)
                .set_version_id(version)
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
        Sabotage::UnencryptOne => {
            let body = gate.body(bucket, &key).await;
            let tags = gate.tags(bucket, &key).await;
            let tagging: Vec<macie_pipeline::tags::Tag> = tags
                .into_iter()
                .map(|(k, v)| macie_pipeline::tags::Tag::new(k, v))
                .collect();
            s3.put_object()
                .bucket(gate.bucket(bucket))
                .key(&key)
                .body(ByteStream::from(body))
                .tagging(macie_pipeline::tags::encode(&tagging))
                .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
                .send()
                .await
                .expect("put");
        }
    }
}

/// Every version a downstream reader of scanned-data saw, per key, in the order it saw them:
/// scanned-data polled straight from the store (no request, so no fault draw) while the runs go.
#[derive(Clone, Default)]
struct Watch(Arc<Mutex<BTreeMap<String, Vec<String>>>>);

impl Watch {
    fn start(gate: &Gate) -> (Self, tokio::task::JoinHandle<()>) {
        let watch = Self::default();
        let seen = watch.clone();
        let store = Arc::clone(gate.stack.store());
        let bucket = gate.bucket(Bucket::ScannedData);
        let task = tokio::spawn(async move {
            loop {
                let mut after: Option<String> = None;
                while let Ok(page) = store.list(&bucket, "", after.as_deref(), None, 1000) {
                    let mut seen = seen.0.lock().expect("lock");
                    for meta in &page.objects {
                        let sequence = seen.entry(meta.key.clone()).or_default();
                        if sequence.last() != Some(&meta.etag) {
                            sequence.push(meta.etag.clone());
                        }
                    }
                    if !page.truncated {
                        break;
                    }
                    after = page.last.clone();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        (watch, task)
    }
}

/// Runs seed `seed`, applies `how`, and checks the invariants.
pub async fn run_with(seed: u64, how: Sabotage) -> RunReport {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut versions = Versions::draw(seed);
    let drawn = [
        Outcome::Approve,
        Outcome::Deny,
        Outcome::TimeoutHold,
        Outcome::TimeoutDeny,
        Outcome::JobCancelled,
        Outcome::JobPaused,
        Outcome::PerObject,
    ][rng.random_range(0..7usize)];
    let outcome = versions.outcome.unwrap_or(drawn);
    // A quarter of the runs give each invocation a fifth of a second, with slow copies, so the
    // moves go through deadline continuations and crashes can land in the middle of one.
    let continuations = rng.random_bool(0.25);
    // A third of the other runs move through Distributed Maps in batches of three. Chosen from
    // the seed, not drawn, so every seed keeps the scenario it had before the Map path existed.
    // Not with short deadlines: a batch that cannot finish before the deadline fails by design.
    let map_path = !continuations && seed.is_multiple_of(3);
    let versioning = versions.versioning;
    // Chosen from the seed, not drawn, so every seed keeps the scenario it had before.
    let encrypted = seed % 4 == 2;
    let gate = Gate::start_with(|config| {
        if encrypted {
            crate::Encryption::StackKey.apply(config);
        }
        if map_path {
            for (name, value) in [
                ("MovePath", "DistributedMap"),
                ("MapItemsPerBatch", "3"),
                ("MapMaxConcurrency", "2"),
            ] {
                config.parameters.insert(name.into(), value.into());
            }
        }
        if versioning {
            config
                .parameters
                .insert("BucketVersioning".into(), "Enabled".into());
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
    let mut uploads = Uploads::default();
    for index in 0..rng.random_range(1..=12usize) {
        upload(&gate, &mut rng, &mut uploads, index).await;
    }
    let initial: Vec<String> = uploads.keys.keys().cloned().collect();
    let flagged: Vec<String> = uploads
        .keys
        .iter()
        .filter(|(_, versions)| versions.iter().any(|v| v.flagged))
        .map(|(key, _)| key.clone())
        .collect();
    versions.plan(&initial, &flagged);
    let rewrites = versions.rewrites.len();
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
    let (watch, watcher) = Watch::start(&gate);
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
        uploads.last_start = uploads.tick();
    }
    if rng.random_bool(0.3) {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..40u64))).await;
        for index in 0..rng.random_range(1..=3usize) {
            upload(&gate, &mut rng, &mut uploads, 100 + index).await;
        }
    }

    let mut violations = Vec::new();
    let second = versions
        .second_round
        .map(|when| (when, format!("soak-{seed}-c")));
    let mut rounds: Vec<(String, String, u8)> = executions
        .iter()
        .map(|(workflow, arn)| (workflow.clone(), arn.clone(), 1))
        .collect();
    drive(
        &gate,
        outcome,
        &mut rounds,
        second,
        &mut versions,
        &mut uploads,
        &mut violations,
    )
    .await;
    if versions.second_round == Some(SecondRound::WhenHeld) {
        // The rounds overlapped, so a version may have waited behind one still being scanned:
        // a sweep takes it, as the next scheduled run would.
        let workflow = format!("soak-{seed}-d");
        let arn = gate.start_run(&workflow, json!({"id": workflow})).await;
        uploads.last_start = uploads.tick();
        rounds.push((workflow, arn, 3));
        drive(
            &gate,
            outcome,
            &mut rounds,
            None,
            &mut versions,
            &mut uploads,
            &mut violations,
        )
        .await;
    }
    let executions: Vec<(String, String)> = rounds
        .into_iter()
        .map(|(workflow, arn, _)| (workflow, arn))
        .collect();
    watcher.abort();
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
    let (mut superseded, mut waited) = (0, 0);
    for (_, arn) in &executions {
        let output: Value =
            serde_json::from_str(gate.describe(arn).await.output().unwrap_or("null"))
                .unwrap_or(Value::Null);
        for step in ["routing", "release"] {
            superseded += output[step]["Payload"]["tally"]["superseded"]
                .as_u64()
                .unwrap_or(0);
        }
        waited += output["scan"]["Payload"]["tally"]["deferrals"]
            .as_array()
            .map_or(0, |d| {
                d.iter()
                    .filter(|d| {
                        d["reason"]
                            .as_str()
                            .is_some_and(|r| r.contains("earlier version"))
                    })
                    .count() as u64
            });
    }
    let held_aside = gate
        .emails()
        .iter()
        .filter(|e| e.is_review_request() && e.message.contains("Held aside"))
        .count();
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
    sabotage(&gate, how, versioning).await;
    let seen = watch.0.lock().expect("lock").clone();
    let context = Context {
        outcome,
        versioning,
        uploads: &uploads,
        finished: &finished,
        seen: &seen,
    };
    check(&gate, &context, &mut violations).await;
    if encrypted {
        under_the_stacks_key(&gate, &mut violations).await;
    }
    RunReport {
        seed,
        outcome,
        continuations,
        continuation_loops,
        map_path,
        versioning,
        encrypted,
        rewrites,
        superseded,
        held_aside,
        waited,
        executions: executions.len(),
        objects: uploads.keys.len(),
        versions: uploads.keys.values().map(Vec::len).sum(),
        flagged: uploads
            .keys
            .values()
            .flatten()
            .filter(|v| v.flagged)
            .count(),
        faults_injected,
        crashes,
        statuses,
        violations,
    }
}
