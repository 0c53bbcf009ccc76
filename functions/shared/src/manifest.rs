//! The run manifest: the per-object results of a Macie job, written once to S3 and read by the
//! later steps, so no object list ever travels through the state payload (256 KiB).
//!
//! Manifests live in a bucket of their own (`<prefix>-data-pipeline-manifests`). No move step
//! lists it, no Macie job is scoped to it, and the next pipeline stage never reads it, so a
//! manifest can never be mistaken for data: not moved on as if it were a scanned object, not
//! scanned, not delivered downstream. Putting it in the scan-stage or manual-review bucket would
//! rely on every reader filtering it out.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use crate::error::PipelineError;
use crate::macie::severity::Severity;
use crate::workflow::WorkflowId;

/// The manifest format written by this version.
pub const VERSION: u32 = 1;

/// Where a flagged object goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Route {
    /// Held in manual-review for a reviewer's decision.
    Review,
    /// Below the minimum severity: passes to scanned-data, tagged `SensitiveDataFound=true`.
    PassTagged,
}

/// One detection type and how often it occurred in an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Detection {
    #[serde(rename = "type")]
    pub kind: String,
    pub count: u64,
}

/// An object with at least one finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlaggedObject {
    pub key: String,
    pub size: u64,
    pub highest_severity: Severity,
    pub finding_types: Vec<String>,
    pub detections: Vec<Detection>,
    pub finding_ids: Vec<String>,
    pub route: Route,
}

/// The results of one run's Macie job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    pub workflow_id: WorkflowId,
    pub job_id: String,
    pub scan_stage_bucket: String,
    pub minimum_severity: Severity,
    pub finding_count: u64,
    pub objects: Vec<FlaggedObject>,
}

impl Manifest {
    /// Objects held for review.
    pub fn review(&self) -> impl Iterator<Item = &FlaggedObject> {
        self.objects.iter().filter(|o| o.route == Route::Review)
    }

    /// How each flagged key is routed, for lookups while moving.
    pub fn routes(&self) -> std::collections::HashMap<&str, Route> {
        self.objects
            .iter()
            .map(|object| (object.key.as_str(), object.route))
            .collect()
    }

    /// The highest severity over all flagged objects.
    pub fn highest_severity(&self) -> Option<Severity> {
        self.objects.iter().map(|o| o.highest_severity).max()
    }
}

/// Where a manifest is stored; this is what the state carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestRef {
    pub bucket: String,
    pub key: String,
}

/// The manifest key of a run's job. The workflow id is fully percent-encoded so that no id can
/// reach outside its own prefix.
pub fn manifest_key(workflow: &WorkflowId, job_id: &str) -> String {
    format!(
        "workflows/{}/{}/findings.json",
        utf8_percent_encode(workflow.as_str(), NON_ALPHANUMERIC),
        utf8_percent_encode(job_id, NON_ALPHANUMERIC)
    )
}

/// Writes the manifest. Writing it again (a retried step) stores the same content.
pub async fn write(
    s3: &Client,
    bucket: &str,
    manifest: &Manifest,
) -> Result<ManifestRef, PipelineError> {
    let key = manifest_key(&manifest.workflow_id, &manifest.job_id);
    let body = serde_json::to_vec(manifest).expect("a manifest always serializes");
    s3.put_object()
        .bucket(bucket)
        .key(&key)
        .content_type("application/json")
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|err| PipelineError::from_sdk("PutObject", err))?;
    Ok(ManifestRef {
        bucket: bucket.to_owned(),
        key,
    })
}

/// Reads a manifest and checks that it belongs to `workflow`.
pub async fn read(
    s3: &Client,
    reference: &ManifestRef,
    workflow: &WorkflowId,
) -> Result<Manifest, PipelineError> {
    let invalid = |reason: String| PipelineError::InvalidManifest {
        bucket: reference.bucket.clone(),
        key: reference.key.clone(),
        reason,
    };
    let object = s3
        .get_object()
        .bucket(&reference.bucket)
        .key(&reference.key)
        .send()
        .await
        .map_err(|err| PipelineError::from_sdk("GetObject", err))?;
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|err| invalid(format!("reading it failed: {err}")))?
        .into_bytes();
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|err| invalid(format!("not a manifest: {err}")))?;
    if manifest.version != VERSION {
        return Err(invalid(format!(
            "version {} is not supported (expected {VERSION})",
            manifest.version
        )));
    }
    if &manifest.workflow_id != workflow {
        return Err(invalid(format!(
            "it belongs to workflow {}, not {workflow}",
            manifest.workflow_id
        )));
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Manifest {
        Manifest {
            version: VERSION,
            workflow_id: WorkflowId::parse("wf 1/2").unwrap(),
            job_id: "0123456789abcdef0123456789abcdef".into(),
            scan_stage_bucket: "scan".into(),
            minimum_severity: Severity::Medium,
            finding_count: 2,
            objects: vec![
                FlaggedObject {
                    key: "a b/ü.csv".into(),
                    size: 12,
                    highest_severity: Severity::High,
                    finding_types: vec!["SensitiveData:S3Object/Financial".into()],
                    detections: vec![Detection {
                        kind: "CREDIT_CARD_NUMBER".into(),
                        count: 3,
                    }],
                    finding_ids: vec!["f1".into()],
                    route: Route::Review,
                },
                FlaggedObject {
                    key: "low.txt".into(),
                    size: 5,
                    highest_severity: Severity::Low,
                    finding_types: vec!["SensitiveData:S3Object/Personal".into()],
                    detections: vec![],
                    finding_ids: vec!["f2".into()],
                    route: Route::PassTagged,
                },
            ],
        }
    }

    #[test]
    fn a_manifest_round_trips_through_json() {
        let manifest = sample();
        let text = serde_json::to_string(&manifest).unwrap();
        assert!(text.contains("\"route\":\"PASS_TAGGED\""));
        assert!(text.contains("\"highestSeverity\":\"High\""));
        assert_eq!(serde_json::from_str::<Manifest>(&text).unwrap(), manifest);
    }

    #[test]
    fn review_and_routes_reflect_the_objects() {
        let manifest = sample();
        assert_eq!(manifest.review().count(), 1);
        assert_eq!(manifest.routes().get("low.txt"), Some(&Route::PassTagged));
        assert_eq!(manifest.highest_severity(), Some(Severity::High));
    }

    #[test]
    fn the_key_keeps_the_workflow_inside_its_prefix() {
        let id = WorkflowId::parse("../../x").unwrap();
        let key = manifest_key(&id, "job");
        assert_eq!(key, "workflows/%2E%2E%2F%2E%2E%2Fx/job/findings.json");
    }

    proptest! {
        #[test]
        fn any_key_and_counts_round_trip(key in "\\PC{1,100}", size in any::<u64>(), count in any::<u64>()) {
            let mut manifest = sample();
            manifest.objects[0].key = key;
            manifest.objects[0].size = size;
            manifest.objects[0].detections[0].count = count;
            let text = serde_json::to_vec(&manifest).unwrap();
            prop_assert_eq!(serde_json::from_slice::<Manifest>(&text).unwrap(), manifest);
        }
    }
}
