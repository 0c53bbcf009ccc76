//! Decisions per held object. The review page gives every object of a run its own choice, and a
//! reviewer may decide some now and the rest later from the same link. A choice, once made, is
//! final: each lives in a record of its own, written only if none is there (`If-None-Match: *`),
//! so a second decision of one object (another tab, another reviewer, a retried POST) is refused
//! by S3 itself instead of by a read-then-write that two requests could both pass.
//!
//! The records sit under the review's id (the SHA-256 of the run's manifest location, which the
//! page reaches through the request record and the state machine's steps hold themselves),
//! `approvals/<review id>/objects/<sha256 of the object's key>.json`. They travel through S3, not
//! the state payload: the steps that act on them are given the manifest, not the decisions, so a
//! run holding thousands of objects stays a small state. A request sent again for the same run
//! (a retried approval step, a new link) finds the decisions made through the old link.

use std::collections::BTreeMap;

use aws_sdk_s3::Client;
use serde::{Deserialize, Serialize};

use crate::approval::record::PREFIX;
use crate::error::PipelineError;
use crate::manifest::ManifestRef;
use crate::s3::documents::{self, Created};
use crate::workflow::WorkflowId;

/// What a reviewer chose for one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Choice {
    /// Pass it on to scanned-data, its `SensitiveDataFound=true` tag kept.
    Release,
    /// Delete it from manual-review (and, where raw is versioned, its raw version).
    Delete,
}

impl Choice {
    /// As the page's form sends it.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "release" => Some(Self::Release),
            "delete" => Some(Self::Delete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Release => "release",
            Self::Delete => "delete",
        }
    }
}

/// Who decided, as the page and API Gateway report them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reviewer {
    /// The name or address the page asks for before any decision.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// The decision of one held object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectDecision {
    /// The run whose review this is.
    pub workflow_id: WorkflowId,
    /// The object's key, as the run's manifest holds it.
    pub key: String,
    /// Where the version the reviewer was shown is held in manual-review: the key itself, or a
    /// `gate-versions/...` place beside it. The decision acts on that version only.
    pub location: String,
    pub choice: Choice,
    pub reviewer: Reviewer,
    /// RFC 3339.
    pub decided_at: String,
}

/// What recording one decision did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    Decided,
    /// The object was decided before; that decision stands, and is returned.
    AlreadyDecided(ObjectDecision),
}

/// The id of the review of the run whose manifest is at `manifest`.
pub fn review_id(manifest: &ManifestRef) -> String {
    documents::hashed_name(&format!("{}/{}", manifest.bucket, manifest.key))
}

/// The folder of a review's decisions.
pub fn folder(review: &str) -> String {
    format!("{PREFIX}{review}/objects/")
}

/// The record of `key`'s decision.
pub fn record_key(review: &str, key: &str) -> String {
    format!("{}{}.json", folder(review), documents::hashed_name(key))
}

/// Records one decision unless the object has one.
pub async fn record(
    s3: &Client,
    bucket: &str,
    review: &str,
    decision: &ObjectDecision,
) -> Result<Recorded, PipelineError> {
    let key = record_key(review, &decision.key);
    match documents::create_json(s3, bucket, &key, decision).await? {
        Created::Created => Ok(Recorded::Decided),
        Created::Exists => {
            let earlier = read_one(s3, bucket, &key).await?.ok_or_else(|| {
                // Records are never deleted while their request is open.
                PipelineError::InvalidManifest {
                    bucket: bucket.to_owned(),
                    key: key.clone(),
                    reason: "a decision was refused as taken, but its record cannot be found"
                        .into(),
                }
            })?;
            Ok(Recorded::AlreadyDecided(earlier))
        }
    }
}

async fn read_one(
    s3: &Client,
    bucket: &str,
    key: &str,
) -> Result<Option<ObjectDecision>, PipelineError> {
    let Some(bytes) = documents::read(s3, bucket, key).await? else {
        return Ok(None);
    };
    let decision: ObjectDecision =
        serde_json::from_slice(&bytes).map_err(|err| PipelineError::InvalidManifest {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            reason: format!("not a decision record: {err}"),
        })?;
    // A record must sit where its own key puts it: one copied or written elsewhere would decide
    // another object.
    if !key.ends_with(&format!("/{}.json", documents::hashed_name(&decision.key))) {
        return Err(PipelineError::InvalidManifest {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            reason: format!(
                "the record decides {:?}, which does not belong at this key",
                decision.key
            ),
        });
    }
    Ok(Some(decision))
}

/// Every decision of a request, by object key.
pub async fn read_all(
    s3: &Client,
    bucket: &str,
    review: &str,
) -> Result<BTreeMap<String, ObjectDecision>, PipelineError> {
    let decisions = documents::read_each(s3, bucket, &folder(review), ".json", |key| async move {
        read_one(s3, bucket, &key).await
    })
    .await?;
    Ok(decisions
        .into_iter()
        .map(|decision| (decision.key.clone(), decision))
        .collect())
}

/// What happens to held objects nobody decided, in the deletion after a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Undecided {
    /// The review timed out with `ApprovalTimeoutAction=deny`: deleted.
    Delete,
    /// Left in manual-review (the review was complete, or its timeout holds).
    Keep,
}

/// One review's decisions as the steps after it read them: one record per object, as each
/// object is reached, so that a step's work per object stays the same however many objects the
/// review holds, and a continuation reads only what it acts on.
pub struct ReviewRecords<'a> {
    pub s3: &'a Client,
    /// The manifests bucket.
    pub bucket: &'a str,
    pub review: String,
}

impl<'a> ReviewRecords<'a> {
    /// The records of the review of the run whose manifest is at `manifest`.
    pub fn of(s3: &'a Client, manifest: &'a ManifestRef) -> Self {
        Self {
            s3,
            bucket: &manifest.bucket,
            review: review_id(manifest),
        }
    }

    /// What the reviewer chose for `key`, held at `location`, or None if nobody decided it. A
    /// decision of another version than the one the run holds there is an error: it cannot
    /// have come from this run's page, and acting on it could release what nobody reviewed.
    pub async fn choice(&self, key: &str, location: &str) -> Result<Option<Choice>, PipelineError> {
        let record = record_key(&self.review, key);
        let Some(decision) = read_one(self.s3, self.bucket, &record).await? else {
            return Ok(None);
        };
        if decision.location != location {
            return Err(PipelineError::InvalidManifest {
                bucket: self.bucket.to_owned(),
                key: record,
                reason: format!(
                    "the decision of {key:?} is for the version at {:?}, but the run holds {location:?}",
                    decision.location
                ),
            });
        }
        Ok(Some(decision.choice))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_sit_under_the_request_and_hide_the_key() {
        let hash = documents::hashed_name("token");
        let key = record_key(&hash, "customers/../cards.csv");
        assert!(key.starts_with(&format!("approvals/{hash}/objects/")));
        assert!(key.ends_with(".json") && !key.contains("cards") && !key.contains(".."));
        assert_ne!(record_key(&hash, "a"), record_key(&hash, "b"));
        assert_ne!(
            record_key(&hash, "a"),
            record_key(&documents::hashed_name("other"), "a")
        );
    }

    #[test]
    fn choices_are_what_the_form_sends() {
        for choice in [Choice::Release, Choice::Delete] {
            assert_eq!(Choice::parse(choice.as_str()), Some(choice));
        }
        assert_eq!(Choice::parse("allow"), None);
        assert_eq!(Choice::parse(""), None);
    }
}
