//! Which version of a key an object is, and which of two versions is newer.
//!
//! Pipelines rewrite the same key all the time, so two versions of one key can be in the gate at
//! once: one held for review while the next passes, say. The gate must never let a version
//! replace a newer one, so every version carries, from its first move on, a *landing record* in
//! its user metadata: when the gate took it from raw, and which raw version it was (its ETag, and
//! its version id when raw is versioned).
//!
//! "Newer" is the order in which versions landed in raw. The gate takes a version only while it
//! is the key's current version in raw (its copy is pinned to the listed ETag), and a key has at
//! most one version in scan-stage at a time (intake writes there only with `If-None-Match: *`),
//! so the gate takes a key's versions one after another, in the order they landed, each after
//! the previous one has left scan-stage. The time of taking therefore orders them; it is
//! recorded to the microsecond and never repeats within a process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// User metadata keys of the landing record (`x-amz-meta-…`; S3 keeps them lower case).
pub const LANDED_AT: &str = "gate-landed-at";
pub const RAW_ETAG: &str = "gate-raw-etag";
pub const RAW_VERSION_ID: &str = "gate-raw-version-id";
/// Every metadata key the gate writes: an object arriving in raw with any of them (a copy of a
/// scanned object sent round again, say) gets a fresh record, never keeps an old one.
pub const METADATA_KEYS: [&str; 3] = [LANDED_AT, RAW_ETAG, RAW_VERSION_ID];

/// Where versions of a key wait in manual-review when the key itself is taken: a second held
/// version, or an older version kept aside instead of replacing a newer one.
pub const ASIDE_PREFIX: &str = "gate-versions/";
/// S3 keys are at most 1,024 bytes.
const MAX_KEY_BYTES: usize = 1024;

/// When the gate took a version from raw: microseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LandedAt(i64);

/// The last stamp this process gave, so that no two versions taken here share one.
static LAST_STAMP: AtomicI64 = AtomicI64::new(0);

impl LandedAt {
    /// Now, later than any stamp this process gave before.
    pub fn now() -> Self {
        let now = i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000)
            .unwrap_or(i64::MAX);
        let mut last = LAST_STAMP.load(AtomicOrdering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match LAST_STAMP.compare_exchange_weak(
                last,
                next,
                AtomicOrdering::Relaxed,
                AtomicOrdering::Relaxed,
            ) {
                Ok(_) => return Self(next),
                Err(seen) => last = seen,
            }
        }
    }

    pub fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// RFC 3339 in UTC with six fractional digits, e.g. `2026-12-01T19:09:32.123456Z`: what the
    /// metadata holds, and sortable as text.
    pub fn to_rfc3339(self) -> String {
        let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        at.format(&time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        ))
        .expect("every instant formats")
    }

    pub fn parse(text: &str) -> Option<Self> {
        let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        i64::try_from(at.unix_timestamp_nanos() / 1_000)
            .ok()
            .map(Self)
    }

    /// The stamp as a key segment: `20261201T190932.123456Z`.
    fn key_segment(self) -> String {
        self.to_rfc3339().replace(['-', ':'], "")
    }
}

/// The landing record of one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Landing {
    pub at: LandedAt,
    /// The version's ETag in raw, quotes included.
    pub raw_etag: String,
    /// Its version id in raw, when raw is versioned: a denied version is deleted there too.
    pub raw_version_id: Option<String>,
}

impl Landing {
    /// The record of a version taken now.
    pub fn now(raw_etag: &str, raw_version_id: Option<&str>) -> Self {
        Self {
            at: LandedAt::now(),
            raw_etag: raw_etag.to_owned(),
            raw_version_id: raw_version_id.map(str::to_owned),
        }
    }

    /// The record in an object's user metadata, if it has a readable one.
    pub fn from_metadata(metadata: Option<&HashMap<String, String>>) -> Option<Self> {
        let metadata = metadata?;
        Some(Self {
            at: LandedAt::parse(metadata.get(LANDED_AT)?)?,
            raw_etag: metadata.get(RAW_ETAG)?.clone(),
            raw_version_id: metadata.get(RAW_VERSION_ID).cloned(),
        })
    }

    /// `metadata` with this record in place of any the gate wrote before.
    pub fn into_metadata(
        &self,
        metadata: Option<&HashMap<String, String>>,
    ) -> HashMap<String, String> {
        let mut merged: HashMap<String, String> = metadata
            .into_iter()
            .flatten()
            .filter(|(name, _)| !METADATA_KEYS.contains(&name.as_str()))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        merged.insert(LANDED_AT.to_owned(), self.at.to_rfc3339());
        merged.insert(RAW_ETAG.to_owned(), self.raw_etag.clone());
        if let Some(version) = &self.raw_version_id {
            merged.insert(RAW_VERSION_ID.to_owned(), version.clone());
        }
        merged
    }

    /// Whether both records describe the same raw version taken by the same move.
    pub fn same_version(&self, other: &Landing) -> bool {
        self == other
    }

    /// Whether both records describe the same raw version (a retried move took it again).
    pub fn same_raw_version(&self, other: &Landing) -> bool {
        self.raw_etag == other.raw_etag && self.raw_version_id == other.raw_version_id
    }
}

/// How a version compares with the one it would replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// The same version: a retried move already put it there.
    Same,
    /// It landed after the one there: it replaces it.
    Newer,
    /// It landed before the one there: it must not replace it.
    Older,
    /// Nobody can tell: it must not replace it either.
    Unknown,
}

/// Compares a version (`incoming`) with the one at its destination (`existing`, which the gate
/// wrote if `existing_is_the_gates`). A version without a record moved before the gate recorded
/// landings: it is older than any version with one. An object the gate did not write is never
/// replaced.
pub fn compare(
    incoming: Option<&Landing>,
    existing: Option<&Landing>,
    existing_is_the_gates: bool,
) -> Order {
    match (incoming, existing) {
        (Some(incoming), Some(existing)) if incoming.same_version(existing) => Order::Same,
        (Some(incoming), Some(existing)) if incoming.at > existing.at => Order::Newer,
        (Some(incoming), Some(existing)) if incoming.at < existing.at => Order::Older,
        (Some(_), Some(_)) => Order::Unknown,
        (Some(_), None) if existing_is_the_gates => Order::Newer,
        (None, Some(_)) => Order::Older,
        _ => Order::Unknown,
    }
}

/// Where a version of `key` waits aside in manual-review: `gate-versions/<landed>/<key>`, or,
/// for a version moved before landings were recorded, a segment made from its ETag. `None` when
/// that key would pass S3's 1,024 bytes.
pub fn aside_key(key: &str, landing: Option<&Landing>, etag: &str) -> Option<String> {
    let segment = match landing {
        Some(landing) => landing.at.key_segment(),
        None => format!(
            "unstamped-{}",
            etag.trim_matches('"')
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
        ),
    };
    let aside = format!("{ASIDE_PREFIX}{segment}/{key}");
    (aside.len() <= MAX_KEY_BYTES).then_some(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn landing(at: i64, etag: &str) -> Landing {
        Landing {
            at: LandedAt::from_micros(at),
            raw_etag: etag.into(),
            raw_version_id: None,
        }
    }

    #[test]
    fn stamps_never_repeat_and_round_trip_through_text() {
        let stamps: Vec<LandedAt> = (0..1000).map(|_| LandedAt::now()).collect();
        assert!(stamps.windows(2).all(|pair| pair[0] < pair[1]));
        let text = stamps[0].to_rfc3339();
        assert_eq!(text.len(), "2026-12-01T19:09:32.123456Z".len());
        assert_eq!(LandedAt::parse(&text), Some(stamps[0]));
        assert_eq!(
            LandedAt::from_micros(1_764_616_172_123_456).to_rfc3339(),
            "2025-12-01T19:09:32.123456Z"
        );
    }

    #[test]
    fn the_record_replaces_any_earlier_one_and_keeps_upstream_metadata() {
        let upstream: HashMap<String, String> = [
            ("team".to_owned(), "crm".to_owned()),
            (
                LANDED_AT.to_owned(),
                "2020-01-01T00:00:00.000000Z".to_owned(),
            ),
            (RAW_VERSION_ID.to_owned(), "stale".to_owned()),
        ]
        .into();
        let record = landing(1_764_616_172_123_456, "\"abc\"");
        let metadata = record.into_metadata(Some(&upstream));
        assert_eq!(metadata["team"], "crm");
        assert!(!metadata.contains_key(RAW_VERSION_ID));
        assert_eq!(Landing::from_metadata(Some(&metadata)), Some(record));
        assert_eq!(Landing::from_metadata(Some(&upstream)), None);
        assert_eq!(Landing::from_metadata(None), None);
    }

    #[test]
    fn a_version_replaces_only_an_older_one_the_gate_wrote() {
        let (old, new) = (landing(1, "\"a\""), landing(2, "\"b\""));
        assert_eq!(compare(Some(&new), Some(&old), true), Order::Newer);
        assert_eq!(compare(Some(&old), Some(&new), true), Order::Older);
        assert_eq!(compare(Some(&old), Some(&old.clone()), true), Order::Same);
        assert_eq!(
            compare(Some(&new), Some(&landing(2, "\"c\"")), true),
            Order::Unknown
        );
        // Moved before landings were recorded: older than any recorded version.
        assert_eq!(compare(Some(&new), None, true), Order::Newer);
        assert_eq!(compare(None, Some(&new), true), Order::Older);
        assert_eq!(compare(None, None, true), Order::Unknown);
        // Written by someone else: never replaced.
        assert_eq!(compare(Some(&new), None, false), Order::Unknown);
    }

    #[test]
    fn versions_wait_aside_under_their_landing_time() {
        let record = landing(1_764_616_172_123_456, "\"abc\"");
        assert_eq!(
            aside_key("daily/export.csv", Some(&record), "\"x\"").as_deref(),
            Some("gate-versions/20251201T190932.123456Z/daily/export.csv")
        );
        assert_eq!(
            aside_key("k", None, "\"d41d8cd9-2\"").as_deref(),
            Some("gate-versions/unstamped-d41d8cd92/k")
        );
        assert_eq!(aside_key(&"k".repeat(1000), Some(&record), ""), None);
    }
}
