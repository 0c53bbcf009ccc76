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
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::approval::record::PREFIX;
use crate::error::PipelineError;
use crate::manifest::{Manifest, ManifestRef};
use crate::s3::documents::{self, Created};
use crate::workflow::WorkflowId;

/// Records read at the same time when a run's decisions are gathered.
const READ_CONCURRENCY: usize = 16;

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
    let prefix = folder(review);
    let mut keys = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(&prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| PipelineError::from_sdk("ListObjectsV2", err))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|object| object.key())
                .filter(|key| key.ends_with(".json"))
                .map(str::to_owned),
        );
    }
    let decisions: Vec<Option<ObjectDecision>> = futures::stream::iter(keys)
        .map(|key| async move { read_one(s3, bucket, &key).await })
        .buffer_unordered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(decisions
        .into_iter()
        .flatten()
        .map(|decision| (decision.key.clone(), decision))
        .collect())
}

/// A run's held objects split by what was decided for each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub release: Vec<String>,
    pub delete: Vec<String>,
    pub undecided: Vec<String>,
}

/// Splits the run's held objects by `decisions`. A decision of an object the run does not hold,
/// or of another version than the one it holds, is an error: it cannot have come from this
/// run's page, and acting on it could release what nobody reviewed.
pub fn select(
    manifest: &Manifest,
    location: &ManifestRef,
    decisions: &BTreeMap<String, ObjectDecision>,
) -> Result<Selection, PipelineError> {
    let held = manifest.held_keys();
    if let Some(stray) = decisions.keys().find(|key| !held.contains(key.as_str())) {
        return Err(PipelineError::InvalidManifest {
            bucket: location.bucket.clone(),
            key: record_key(&review_id(location), stray),
            reason: format!("a decision of {stray:?}, which this run does not hold"),
        });
    }
    let mut selection = Selection::default();
    let mut keys: Vec<&str> = held.into_iter().collect();
    keys.sort_unstable();
    for key in keys {
        match decisions.get(key) {
            None => selection.undecided.push(key.to_owned()),
            Some(decision) if decision.location != manifest.held_location(key) => {
                return Err(PipelineError::InvalidManifest {
                    bucket: location.bucket.clone(),
                    key: record_key(&review_id(location), key),
                    reason: format!(
                        "the decision of {key:?} is for the version at {:?}, but the run holds {:?}",
                        decision.location,
                        manifest.held_location(key)
                    ),
                });
            }
            Some(decision) => match decision.choice {
                Choice::Release => selection.release.push(key.to_owned()),
                Choice::Delete => selection.delete.push(key.to_owned()),
            },
        }
    }
    Ok(selection)
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

    fn decided(key: &str, location: &str, choice: Choice) -> (String, ObjectDecision) {
        let decision = ObjectDecision {
            workflow_id: WorkflowId::parse("wf-1").unwrap(),
            key: key.into(),
            location: location.into(),
            choice,
            reviewer: Reviewer {
                name: "ada".into(),
                source_ip: None,
                user_agent: None,
            },
            decided_at: "2026-12-02T10:00:00Z".into(),
        };
        (key.to_owned(), decision)
    }

    #[test]
    fn a_selection_splits_the_held_objects_and_refuses_strays() {
        use crate::macie::severity::Severity;
        use crate::manifest::fixtures::{flagged, manifest};
        let mut run = manifest(
            "wf-1",
            ["a", "b", "c", "d"]
                .into_iter()
                .map(|k| flagged(k, Severity::High, vec![]))
                .collect(),
        );
        run.held_aside
            .insert("d".into(), "gate-versions/2026-12-02T09:00:00Z/d".into());
        let location = ManifestRef {
            bucket: "m".into(),
            key: "workflows/wf-1/job/findings.json".into(),
        };
        let decisions = BTreeMap::from([
            decided("a", "a", Choice::Release),
            decided("c", "c", Choice::Delete),
            decided("d", "gate-versions/2026-12-02T09:00:00Z/d", Choice::Release),
        ]);
        assert_eq!(
            select(&run, &location, &decisions).unwrap(),
            Selection {
                release: vec!["a".into(), "d".into()],
                delete: vec!["c".into()],
                undecided: vec!["b".into()],
            }
        );
        let mut stray = decisions.clone();
        stray.extend([decided("z", "z", Choice::Release)]);
        let err = select(&run, &location, &stray).unwrap_err();
        assert!(err.to_string().contains("does not hold"), "{err}");
        // A decision of the version at the key, when the run holds the one kept aside.
        let mut other_version = decisions.clone();
        other_version.extend([decided("d", "d", Choice::Release)]);
        let err = select(&run, &location, &other_version).unwrap_err();
        assert!(err.to_string().contains("but the run holds"), "{err}");
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
