//! What the review page needs to know about a pending approval, kept beside the run manifests.
//!
//! The page is opened with nothing but a task token, and Step Functions offers no way to go from
//! a token to its execution. So triggerManualApproval stores the request (run, manifest, expiry,
//! default action) under `approvals/<sha256 of the token>.json` before it emails the link. From
//! the request's manifest the page finds the review's decisions (see [`crate::approval::decisions`])
//! and, once the release has run, what it did (`approvals/<review id>/outcome.json`). Only a holder
//! of the token can find them from a link; the hash reveals nothing about the token, which is
//! never stored.

use aws_sdk_s3::Client;
use serde::{Deserialize, Serialize};

use crate::approval::TimeoutAction;
use crate::error::PipelineError;
use crate::manifest::{ManifestRef, Supersession};
use crate::s3::documents;
use crate::workflow::WorkflowId;

/// The prefix of approval records in the manifest bucket.
pub const PREFIX: &str = "approvals/";

/// A pending approval, as the email described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalRecord {
    pub workflow_id: WorkflowId,
    pub manifest: ManifestRef,
    /// RFC 3339.
    pub expires_at: String,
    pub timeout_action: TimeoutAction,
    pub manual_review_bucket: String,
    pub scanned_data_bucket: String,
}

/// What the release after a review did, written when it finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutcomeRecord {
    /// Objects released to scanned-data.
    pub released: u64,
    /// Approved versions not released because a newer version (or one the gate cannot order)
    /// was already in scanned-data, with where each is kept.
    #[serde(default)]
    pub superseded: Vec<Supersession>,
    /// RFC 3339.
    pub finished_at: String,
}

/// The key of the approval request for `token`.
pub fn request_key(token: &str) -> String {
    format!("{PREFIX}{}.json", documents::hashed_name(token))
}

/// The key of the outcome of the review `review` (see [`crate::approval::decisions::review_id`]).
pub fn outcome_key(review: &str) -> String {
    format!("{PREFIX}{review}/outcome.json")
}

/// Reads a record, or `None` when there is none.
async fn get<T: for<'de> Deserialize<'de>>(
    s3: &Client,
    bucket: &str,
    key: &str,
) -> Result<Option<T>, PipelineError> {
    let Some(bytes) = documents::read(s3, bucket, key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|err| PipelineError::InvalidManifest {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            reason: format!("not an approval record: {err}"),
        })
}

/// Stores the request before its links are sent. Storing it again stores the same content.
pub async fn write_request(
    s3: &Client,
    bucket: &str,
    token: &str,
    record: &ApprovalRecord,
) -> Result<(), PipelineError> {
    documents::put_json(s3, bucket, &request_key(token), record).await
}

pub async fn read_request(
    s3: &Client,
    bucket: &str,
    token: &str,
) -> Result<Option<ApprovalRecord>, PipelineError> {
    get(s3, bucket, &request_key(token)).await
}

/// Records what the release of review `review` did. Writing it again (a retried step) stores
/// the same content but the time.
pub async fn write_outcome(
    s3: &Client,
    bucket: &str,
    review: &str,
    record: &OutcomeRecord,
) -> Result<(), PipelineError> {
    documents::put_json(s3, bucket, &outcome_key(review), record).await
}

pub async fn read_outcome(
    s3: &Client,
    bucket: &str,
    review: &str,
) -> Result<Option<OutcomeRecord>, PipelineError> {
    get(s3, bucket, &outcome_key(review)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hide_the_token_and_stay_under_the_prefix() {
        let token = "AAAA+/../token==";
        let request = request_key(token);
        assert!(request.starts_with(PREFIX) && request.ends_with(".json"));
        assert!(!request.contains("AAAA") && !request.contains(".."));
        assert_eq!(request.len(), PREFIX.len() + 64 + ".json".len());
        assert_ne!(request_key("other"), request);
        let review = documents::hashed_name("m/workflows/wf/job/findings.json");
        assert_eq!(
            outcome_key(&review),
            format!("approvals/{review}/outcome.json")
        );
    }

    #[test]
    fn a_record_round_trips() {
        let record = ApprovalRecord {
            workflow_id: WorkflowId::parse("wf-1").unwrap(),
            manifest: ManifestRef {
                bucket: "m".into(),
                key: "workflows/wf%2D1/j/findings.json".into(),
            },
            expires_at: "2026-12-03T10:00:00Z".into(),
            timeout_action: TimeoutAction::Hold,
            manual_review_bucket: "review".into(),
            scanned_data_bucket: "scanned".into(),
        };
        let text = serde_json::to_string(&record).unwrap();
        assert!(text.contains("\"timeoutAction\":\"hold\""));
        assert_eq!(
            serde_json::from_str::<ApprovalRecord>(&text).unwrap(),
            record
        );
    }
}
