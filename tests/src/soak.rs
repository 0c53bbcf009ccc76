//! The randomized soak: seeded runs of the whole gate on a fresh local stack, each with random
//! objects (awkward keys, tags, metadata, sizes from 0 bytes to a few MB, some with planted card
//! numbers), random S3 and Macie faults, a random outcome (approve, deny, approval timeout with
//! either default, Macie job cancelled or paused), sometimes a second overlapping execution and
//! objects landing in raw while a run moves. Half the runs rewrite keys: new versions of keys
//! already uploaded land while the earlier ones are in flight, held, being released or denied,
//! and a later run takes what waited. A third of all runs use `BucketVersioning=Enabled`. After
//! each run it checks the invariants the gate promises and returns every violation; a seed
//! replays its run exactly (up to thread timing).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sfn::types::ExecutionStatus;
use macie_pipeline::deployment::Bucket;
use macie_pipeline::s3::landing;
use macie_pipeline_local::faults::{FaultError, FaultRule};
use md5::Md5;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
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
    /// Whether the buckets were versioned (`BucketVersioning=Enabled`).
    pub versioning: bool,
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

/// One uploaded version of a key.
struct Version {
    sha256: String,
    /// Its MD5, as S3 gives it for a single PUT (without quotes).
    etag: String,
    tags: BTreeMap<String, String>,
    metadata: BTreeMap<String, String>,
    flagged: bool,
    /// When it was uploaded, in the order of uploads and execution starts.
    seq: u64,
}

/// Every version uploaded, per key in upload order, and the order of uploads and starts.
#[derive(Default)]
struct Uploads {
    keys: BTreeMap<String, Vec<Version>>,
    seq: u64,
    /// `seq` when the last execution started: versions uploaded after it may be in raw still.
    last_start: u64,
}

impl Uploads {
    fn tick(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Uploads one version of `key` to raw, retrying what the injected faults break.
async fn put_version(
    gate: &Gate,
    rng: &mut Xoshiro256PlusPlus,
    uploads: &mut Uploads,
    key: String,
    bytes: Vec<u8>,
    flagged: bool,
) {
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
    let seq = uploads.tick();
    uploads.keys.entry(key).or_default().push(Version {
        sha256: sha256(&bytes),
        etag: hex(&Md5::digest(&bytes)),
        tags,
        metadata,
        flagged,
        seq,
    });
}

/// Uploads one random object to raw under a new key.
async fn upload(gate: &Gate, rng: &mut Xoshiro256PlusPlus, uploads: &mut Uploads, index: usize) {
    let key = key(rng, index);
    let flagged = rng.random_bool(0.35);
    let bytes = body(rng, flagged);
    put_version(gate, rng, uploads, key, bytes, flagged).await;
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

/// When a rewrite of a key lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moment {
    /// This long after the first round started: while its versions are moved or scanned.
    InFlight(u64),
    /// Once a review request is out: while the earlier version is held.
    WhenHeld,
    /// Right after a decision: while the held version is released or denied.
    AfterDecision,
    /// Between the first round and the second.
    BetweenRounds,
    /// This long after the second round started.
    SecondRound(u64),
}

/// A new version of an uploaded key, and when it lands.
struct Rewrite {
    key: String,
    flagged: bool,
    at: Moment,
}

/// When a run that rewrites keys starts its second round (one more execution).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SecondRound {
    /// After every execution of the first round has ended.
    AfterFirst,
    /// As soon as the first round waits for review: the two rounds overlap, and the second
    /// takes the rewrites while the first one's versions are held.
    WhenHeld,
}

/// The versioned-and-rewriting part of a scenario, drawn from its own generator so that the
/// draws of every other part (objects, faults, outcome) stay those of the seed.
struct Versions {
    rng: Xoshiro256PlusPlus,
    versioning: bool,
    /// Whether this run rewrites keys at all.
    rewriting: bool,
    /// The outcome a rewriting run plays instead of the seed's, to meet the case that matters
    /// most (a held version approved after a newer one went through) often.
    outcome: Option<Outcome>,
    rewrites: Vec<Rewrite>,
    /// `None` in runs that do not rewrite keys.
    second_round: Option<SecondRound>,
    /// The reviewer of the first round decides only once the second round has ended: late,
    /// after newer versions went through.
    late_reviewer: bool,
}

impl Versions {
    fn draw(seed: u64) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x007e_575e_ed0f_5eed);
        let versioning = rng.random_range(0..3u32) == 0;
        let rewriting = rng.random_bool(0.5);
        let outcome = match rng.random_range(0..20u32) {
            _ if !rewriting => None,
            0..7 => Some(Outcome::Approve),
            7..9 => Some(Outcome::Deny),
            _ => None,
        };
        Self {
            rng,
            versioning,
            rewriting,
            outcome,
            rewrites: Vec::new(),
            second_round: None,
            late_reviewer: false,
        }
    }

    /// Plans rewrites of `keys` in half the runs: first the case, a key whose version
    /// is held for review (`flagged`) rewritten while it is held, mostly without sensitive data;
    /// then up to three more at any moment. A rewrite after a decision mostly rewrites a held
    /// key too.
    fn plan(&mut self, keys: &[String], flagged: &[String]) {
        if keys.is_empty() || !self.rewriting {
            return;
        }
        let held = if flagged.is_empty() { keys } else { flagged };
        self.rewrites.push(Rewrite {
            key: held[self.rng.random_range(0..held.len())].clone(),
            flagged: self.rng.random_bool(0.3),
            at: Moment::WhenHeld,
        });
        for _ in 0..self.rng.random_range(0..=3usize) {
            let mut key = keys[self.rng.random_range(0..keys.len())].clone();
            let at = match self.rng.random_range(0..5u32) {
                0 => Moment::InFlight(self.rng.random_range(0..120u64)),
                1 => Moment::WhenHeld,
                2 => Moment::AfterDecision,
                3 => Moment::BetweenRounds,
                _ => Moment::SecondRound(self.rng.random_range(0..60u64)),
            };
            if at == Moment::AfterDecision && !flagged.is_empty() && self.rng.random_bool(0.8) {
                key = flagged[self.rng.random_range(0..flagged.len())].clone();
            }
            let flagged = self.rng.random_bool(0.35);
            self.rewrites.push(Rewrite { key, flagged, at });
        }
        self.second_round = Some(if self.rng.random_bool(0.8) {
            SecondRound::WhenHeld
        } else {
            SecondRound::AfterFirst
        });
        self.late_reviewer = self.rng.random_bool(0.85);
    }

    /// Uploads the rewrites due now (and takes them off the plan).
    async fn land(&mut self, gate: &Gate, uploads: &mut Uploads, due: impl Fn(Moment) -> bool) {
        let mut index = 0;
        while index < self.rewrites.len() {
            if !due(self.rewrites[index].at) {
                index += 1;
                continue;
            }
            let rewrite = self.rewrites.remove(index);
            let revision = uploads.keys.get(&rewrite.key).map_or(0, Vec::len);
            let mut bytes = body(&mut self.rng, rewrite.flagged);
            // Every version of a key differs from the others.
            bytes.extend(format!("\nrevision {revision}\n").into_bytes());
            put_version(
                gate,
                &mut self.rng,
                uploads,
                rewrite.key,
                bytes,
                rewrite.flagged,
            )
            .await;
        }
    }
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
    ][rng.random_range(0..6usize)];
    let outcome = versions.outcome.unwrap_or(drawn);
    // A quarter of the runs give each invocation a fifth of a second, with slow copies, so the
    // moves go through deadline continuations and crashes can land in the middle of one.
    let continuations = rng.random_bool(0.25);
    // A third of the other runs move through Distributed Maps in batches of three. Chosen from
    // the seed, not drawn, so every seed keeps the scenario it had before the Map path existed.
    // Not with short deadlines: a batch that cannot finish before the deadline fails by design.
    let map_path = !continuations && seed.is_multiple_of(3);
    let versioning = versions.versioning;
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
    RunReport {
        seed,
        outcome,
        continuations,
        continuation_loops,
        map_path,
        versioning,
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

/// Plays the reviewer (or the operator stopping the Macie job) until every execution ends,
/// lands the rewrites when they are due, and starts the second round when it is due.
async fn drive(
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
                    "Approve"
                } else {
                    "Deny"
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

/// What the checks know of the run.
struct Context<'a> {
    outcome: Outcome,
    versioning: bool,
    uploads: &'a Uploads,
    /// workflow -> (execution ARN, final status).
    finished: &'a BTreeMap<String, (String, ExecutionStatus)>,
    /// What a reader of scanned-data saw, per key: ETags in the order they appeared.
    seen: &'a BTreeMap<String, Vec<String>>,
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

async fn check(gate: &Gate, context: &Context<'_>, violations: &mut Vec<String>) {
    let Context {
        outcome,
        versioning,
        uploads,
        finished,
        seen,
    } = *context;
    let copies = inventory(gate).await;
    let (analysed, jobs_by_workflow) = analysed_by(gate).await;
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
            let denied = version.flagged
                && outcome.deletes_held()
                && run
                    .as_deref()
                    .is_some_and(|r| succeeded(r) && job_complete(r));
            if run.as_deref().is_some_and(job_complete)
                && (!version.flagged
                    || (outcome == Outcome::Approve && run.as_deref().is_some_and(succeeded)))
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
                            if version.flagged
                                && (outcome != Outcome::Approve
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
