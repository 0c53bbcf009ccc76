//! What became of each held object after its review, on record beside its decision:
//! `approvals/<review id>/outcomes/<sha256 of the key>.json`. The release and the deletion write
//! an object's record once they are done with it, so a record that cannot be written fails the
//! step with the object in one place. A step cut off between acting and recording finds the
//! object gone when it is retried, and records that ([`Ending::Gone`]) unless a record is there.

use std::collections::BTreeMap;

use aws_sdk_s3::Client;
use serde::{Deserialize, Serialize};

use crate::approval::decisions::ReviewRecords;
use crate::approval::record::PREFIX;
use crate::error::PipelineError;
use crate::s3::documents;

/// Where a held object ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "outcome",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Ending {
    /// Released to scanned-data.
    Released { bucket: String },
    /// Decided for release, but a newer version of the key was in scanned-data already: this
    /// version is kept where the record says.
    KeptAside { kept_at: String, reason: String },
    /// Deleted as the reviewer chose (and its raw version, where raw keeps versions).
    Deleted,
    /// Nobody decided it by the deadline, and `ApprovalTimeoutAction=deny` deleted it.
    DeletedAtDeadline,
    /// Nobody decided it by the deadline, and `ApprovalTimeoutAction=hold` left it held.
    LeftHeldAtDeadline,
    /// No longer in manual-review when its step reached it: moved or deleted by an earlier
    /// attempt of the same step that was cut off before it recorded so, or removed by hand.
    Gone,
}

impl Ending {
    pub fn describe(&self) -> String {
        match self {
            Self::Released { bucket } => format!("released to s3://{bucket}"),
            Self::KeptAside { kept_at, reason } => {
                format!("not released, kept at {kept_at}: {reason}")
            }
            Self::Deleted => "deleted".into(),
            Self::DeletedAtDeadline => "deleted at the deadline, undecided".into(),
            Self::LeftHeldAtDeadline => "left in manual-review at the deadline, undecided".into(),
            Self::Gone => "no longer in manual-review when the step reached it (acted on by an earlier attempt cut off before it recorded so, or removed by hand)".into(),
        }
    }
}

/// The outcome record of one held object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectOutcome {
    pub key: String,
    #[serde(flatten)]
    pub ending: Ending,
    /// RFC 3339.
    pub at: String,
}

/// The folder of a review's outcome records.
pub fn folder(review: &str) -> String {
    format!("{PREFIX}{review}/outcomes/")
}

fn record_key(review: &str, key: &str) -> String {
    format!("{}{}.json", folder(review), documents::hashed_name(key))
}

/// Records where `key` ended.
async fn record(
    s3: &Client,
    bucket: &str,
    review: &str,
    key: &str,
    ending: Ending,
) -> Result<(), PipelineError> {
    let outcome = ObjectOutcome {
        key: key.to_owned(),
        ending,
        at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .expect("now formats"),
    };
    documents::put_json(s3, bucket, &record_key(review, key), &outcome).await
}

/// Records that `key` was gone when its step reached it, unless its outcome is on record: the
/// earlier attempt that made it go may have recorded it.
async fn record_gone(
    s3: &Client,
    bucket: &str,
    review: &str,
    key: &str,
) -> Result<(), PipelineError> {
    if documents::read(s3, bucket, &record_key(review, key))
        .await?
        .is_some()
    {
        return Ok(());
    }
    record(s3, bucket, review, key, Ending::Gone).await
}

async fn read_one(
    s3: &Client,
    bucket: &str,
    review: &str,
    key: &str,
) -> Result<Option<ObjectOutcome>, PipelineError> {
    let invalid = |reason: String| PipelineError::InvalidManifest {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let Some(bytes) = documents::read(s3, bucket, key).await? else {
        return Ok(None);
    };
    let outcome: ObjectOutcome = serde_json::from_slice(&bytes)
        .map_err(|err| invalid(format!("not an outcome record: {err}")))?;
    if key != record_key(review, &outcome.key) {
        return Err(invalid(
            "the outcome record is not at its object's key".into(),
        ));
    }
    Ok(Some(outcome))
}

/// Every outcome record of a review, by object key.
pub async fn read_all(
    s3: &Client,
    bucket: &str,
    review: &str,
) -> Result<BTreeMap<String, ObjectOutcome>, PipelineError> {
    let outcomes = documents::read_each(s3, bucket, &folder(review), ".json", |key| async move {
        read_one(s3, bucket, review, &key).await
    })
    .await?;
    Ok(outcomes
        .into_iter()
        .map(|outcome| (outcome.key.clone(), outcome))
        .collect())
}

/// The steps after a review record outcomes beside the decisions they read.
impl ReviewRecords<'_> {
    /// Records where `key` ended.
    pub async fn ended(&self, key: &str, ending: Ending) -> Result<(), PipelineError> {
        record(self.s3, self.bucket, &self.review, key, ending).await
    }

    /// Records that `key` was gone when the step reached it, unless an outcome is on record.
    pub async fn gone(&self, key: &str) -> Result<(), PipelineError> {
        record_gone(self.s3, self.bucket, &self.review, key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_as_the_auditor_sees_them() {
        let outcome = ObjectOutcome {
            key: "a.csv".into(),
            ending: Ending::Released {
                bucket: "scanned".into(),
            },
            at: "2026-12-02T10:00:00Z".into(),
        };
        let json = serde_json::to_value(&outcome).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"key": "a.csv", "outcome": "released", "bucket": "scanned", "at": "2026-12-02T10:00:00Z"})
        );
        assert_eq!(
            serde_json::from_value::<ObjectOutcome>(json).unwrap(),
            outcome
        );
        let held = serde_json::to_value(ObjectOutcome {
            key: "b".into(),
            ending: Ending::LeftHeldAtDeadline,
            at: "t".into(),
        })
        .unwrap();
        assert_eq!(held["outcome"], "leftHeldAtDeadline");
        assert!(record_key("r", "a/../b").starts_with("approvals/r/outcomes/"));
    }
}
