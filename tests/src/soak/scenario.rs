//! What a seed's run is made of: the objects and their versions (uploaded with retries through
//! the injected faults), the faults, and the rewrites of keys and when each lands.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use macie_pipeline::deployment::Bucket;
use macie_pipeline_local::faults::{FaultError, FaultRule};
use md5::Md5;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use sha2::{Digest, Sha256};

use super::Outcome;
use crate::Gate;

/// One uploaded version of a key.
pub(super) struct Version {
    pub(super) sha256: String,
    /// Its MD5, as S3 gives it for a single PUT (without quotes).
    pub(super) etag: String,
    pub(super) tags: BTreeMap<String, String>,
    pub(super) metadata: BTreeMap<String, String>,
    pub(super) flagged: bool,
    /// When it was uploaded, in the order of uploads and execution starts.
    pub(super) seq: u64,
}

/// Every version uploaded, per key in upload order, and the order of uploads and starts.
#[derive(Default)]
pub(super) struct Uploads {
    pub(super) keys: BTreeMap<String, Vec<Version>>,
    seq: u64,
    /// `seq` when the last execution started: versions uploaded after it may be in raw still.
    pub(super) last_start: u64,
}

impl Uploads {
    pub(super) fn tick(&mut self) -> u64 {
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

pub(super) fn sha256(bytes: &[u8]) -> String {
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
pub(super) async fn upload(
    gate: &Gate,
    rng: &mut Xoshiro256PlusPlus,
    uploads: &mut Uploads,
    index: usize,
) {
    let key = key(rng, index);
    let flagged = rng.random_bool(0.35);
    let bytes = body(rng, flagged);
    put_version(gate, rng, uploads, key, bytes, flagged).await;
}

pub(super) fn random_faults(rng: &mut Xoshiro256PlusPlus) -> Vec<FaultRule> {
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
pub(super) enum Moment {
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
pub(super) struct Rewrite {
    key: String,
    flagged: bool,
    at: Moment,
}

/// When a run that rewrites keys starts its second round (one more execution).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SecondRound {
    /// After every execution of the first round has ended.
    AfterFirst,
    /// As soon as the first round waits for review: the two rounds overlap, and the second
    /// takes the rewrites while the first one's versions are held.
    WhenHeld,
}

/// The versioned-and-rewriting part of a scenario, drawn from its own generator so that the
/// draws of every other part (objects, faults, outcome) stay those of the seed.
pub(super) struct Versions {
    rng: Xoshiro256PlusPlus,
    pub(super) versioning: bool,
    /// Whether this run rewrites keys at all.
    rewriting: bool,
    /// The outcome a rewriting run plays instead of the seed's, to meet the case that matters
    /// most (a held version approved after a newer one went through) often.
    pub(super) outcome: Option<Outcome>,
    pub(super) rewrites: Vec<Rewrite>,
    /// `None` in runs that do not rewrite keys.
    pub(super) second_round: Option<SecondRound>,
    /// The reviewer of the first round decides only once the second round has ended: late,
    /// after newer versions went through.
    pub(super) late_reviewer: bool,
}

impl Versions {
    pub(super) fn draw(seed: u64) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x007e_575e_ed0f_5eed);
        let versioning = rng.random_range(0..3u32) == 0;
        let rewriting = rng.random_bool(0.5);
        let outcome = match rng.random_range(0..20u32) {
            _ if !rewriting => None,
            0..5 => Some(Outcome::Approve),
            5..7 => Some(Outcome::PerObject),
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
    pub(super) fn plan(&mut self, keys: &[String], flagged: &[String]) {
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
    pub(super) async fn land(
        &mut self,
        gate: &Gate,
        uploads: &mut Uploads,
        due: impl Fn(Moment) -> bool,
    ) {
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
