//! What the decision page needs to know about a pending approval, kept beside the run manifests.
//!
//! The page is opened with nothing but a task token, and Step Functions offers no way to go from
//! a token to its execution. So triggerManualApproval stores the request (run, manifest, expiry,
//! default action) under `approvals/<sha256 of the token>.json` before it emails the links, and
//! receiveApprovalDecision records the decision next to it. Only a holder of the token can find
//! either; the hash reveals nothing about the token, which is never stored.

use aws_sdk_s3::Client;
use serde::{Deserialize, Serialize};

use crate::approval::TimeoutAction;
use crate::error::PipelineError;
use crate::manifest::ManifestRef;
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

/// A decision that Step Functions accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecisionRecord {
    /// `allow` or `delete`, as the state machine reads it.
    pub action: String,
    /// RFC 3339.
    pub decided_at: String,
}

/// The key of the approval request for `token`.
pub fn request_key(token: &str) -> String {
    format!("{PREFIX}{}.json", documents::hashed_name(token))
}

/// The key of the decision taken with `token`.
pub fn decision_key(token: &str) -> String {
    format!("{PREFIX}{}.decision.json", documents::hashed_name(token))
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

pub async fn write_decision(
    s3: &Client,
    bucket: &str,
    token: &str,
    record: &DecisionRecord,
) -> Result<(), PipelineError> {
    documents::put_json(s3, bucket, &decision_key(token), record).await
}

pub async fn read_decision(
    s3: &Client,
    bucket: &str,
    token: &str,
) -> Result<Option<DecisionRecord>, PipelineError> {
    get(s3, bucket, &decision_key(token)).await
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
        assert_eq!(
            decision_key(token),
            request.replace(".json", ".decision.json")
        );
        assert_ne!(request_key("other"), request);
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
