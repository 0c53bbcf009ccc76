//! The run manifest: the per-object results of a Macie job (its findings and its sensitive data
//! discovery results), written once to S3 and read by the later steps, so no object list ever
//! travels through the state payload (256 KiB).
//!
//! Manifests live in a bucket of their own (`<prefix>-data-pipeline-manifests`). No move step
//! lists it, no Macie job is scoped to it, and the next pipeline stage never reads it, so a
//! manifest can never be mistaken for data: not moved on as if it were a scanned object, not
//! scanned, not delivered downstream. Putting it in the scan-stage or manual-review bucket would
//! rely on every reader filtering it out.

use std::collections::BTreeMap;

use aws_sdk_s3::Client;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use crate::error::PipelineError;
use crate::false_positives::suppression::SuppressedFinding;
use crate::macie::cost::MicroUsdPerGb;
use crate::macie::severity::Severity;
use crate::s3::documents;
use crate::workflow::WorkflowId;

/// The manifest format written by this version. Version 1 (findings only, no discovery results)
/// is still read, so runs started before an upgrade can finish.
pub const VERSION: u32 = 2;

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

impl std::fmt::Display for Detection {
    /// As the email, the pages and the report show it: `CREDIT_CARD_NUMBER x3`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} x{}", self.kind, self.count)
    }
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
    /// Set when Macie analysed only part of the object: what it could not read. Such an object
    /// is always held, whatever its severity: the rest of it was never looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete_analysis: Option<String>,
}

/// Why Macie did not (fully) analyse an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotAnalysedStatus {
    /// The discovery result says `SKIPPED`.
    Skipped,
    /// The discovery result says `PARTIAL`, and the part Macie read had no finding.
    Partial,
    /// Macie wrote no discovery result for the object at all.
    NoResult,
}

impl NotAnalysedStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skipped => "skipped",
            Self::Partial => "partly analysed",
            Self::NoResult => "no discovery result",
        }
    }
}

/// An object Macie did not analyse, or not fully, without a finding. It is held for review:
/// no finding is not the same as clean.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotAnalysedObject {
    pub key: String,
    pub size: u64,
    pub status: NotAnalysedStatus,
    /// Macie's reasons (e.g. `UNSUPPORTED_FILE_TYPE_EXCEPTION`), or the gate's own words when
    /// there is no result.
    pub reasons: Vec<String>,
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
    /// Objects with findings.
    pub objects: Vec<FlaggedObject>,
    /// Objects without findings that Macie skipped or only partly analysed. Routing adds the
    /// objects it finds without any result as addenda (see [`record_unresolved`]); [`read`]
    /// folds those in here.
    #[serde(default)]
    pub not_analysed: Vec<NotAnalysedObject>,
    /// Objects Macie analysed completely and found nothing in: the only ones that pass
    /// unreviewed.
    #[serde(default)]
    pub analysed: Vec<String>,
    /// Bytes Macie analysed in the run's objects (`sizeClassified` summed): what the job is
    /// billed for. Manifests written before it was recorded read 0.
    #[serde(default)]
    pub bytes_scanned: u64,
    /// The Macie price the deployment was configured with, for the cost estimate.
    #[serde(default = "list_price", rename = "maciePriceMicroUsdPerGb")]
    pub macie_price: MicroUsdPerGb,
    /// Held objects that routing put aside in manual-review because their key was taken there
    /// by another version waiting for its own decision: key -> where this run's version is.
    /// Folded in from the addenda by [`read`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub held_aside: BTreeMap<String, String>,
    /// Versions of this run kept aside instead of replacing a newer version in scanned-data,
    /// by routing or by the release. Folded in from the addenda by [`read`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub superseded: Vec<Supersession>,
    /// Findings the gate's suppression rules set aside: they hold nothing, and the record says
    /// which rule set each aside.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<SuppressedFinding>,
}

/// Which step kept a version aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SupersededIn {
    /// It had passed the scan.
    Routing,
    /// It was approved.
    Release,
}

/// What was in scanned-data that a version did not replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SupersededBy {
    /// A version of the key that landed in raw later.
    Newer,
    /// An object the gate did not write: it is never replaced.
    Foreign,
    /// A version whose order against this one is not recorded (both moved before the gate
    /// recorded landings): it is not replaced on a guess.
    Unordered,
}

/// A version that did not go to scanned-data because something newer (or unknown) was there,
/// and where it is kept instead. Nothing is lost: the version stays recoverable there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Supersession {
    pub key: String,
    pub step: SupersededIn,
    /// Where the kept version is.
    pub kept_in: String,
    pub kept_at: String,
    /// When it landed in raw (RFC 3339), if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landed_at: Option<String>,
    pub by: SupersededBy,
    /// When the version in scanned-data landed, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer_landed_at: Option<String>,
}

impl Supersession {
    /// Why it was kept, in a few words: `not released (landed …): a newer version was already
    /// in scanned-data (landed …)`.
    pub fn reason(&self) -> String {
        let landed = |at: &Option<String>| {
            at.as_deref()
                .map(|at| format!(" (landed {at})"))
                .unwrap_or_default()
        };
        let instead = match self.by {
            SupersededBy::Newer => format!(
                "a newer version was already in scanned-data{}",
                landed(&self.newer_landed_at)
            ),
            SupersededBy::Foreign => {
                "scanned-data holds an object at this key that the gate did not write".to_owned()
            }
            SupersededBy::Unordered => {
                "scanned-data holds a version whose landing time was not recorded, so which is \
                 newer cannot be told"
                    .to_owned()
            }
        };
        let what = match self.step {
            SupersededIn::Routing => "not passed on",
            SupersededIn::Release => "not released",
        };
        format!("{what}{}: {instead}", landed(&self.landed_at))
    }

    /// Where the kept version is, as an S3 URI.
    pub fn location(&self) -> String {
        format!("s3://{}/{}", self.kept_in, self.kept_at)
    }
}

fn list_price() -> MicroUsdPerGb {
    MicroUsdPerGb::LIST_PRICE
}

/// What routing does with one scan-stage object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Held in manual-review, tagged `SensitiveDataFound=true`.
    ReviewFlagged,
    /// Passed on, tagged `SensitiveDataFound=true`.
    PassTagged,
    /// Held in manual-review, tagged `SensitiveDataFound=unknown`.
    ReviewNotAnalysed,
    /// Passed on as it is: analysed completely, nothing found.
    PassClean,
}

impl Manifest {
    /// Objects with findings held for review.
    pub fn review(&self) -> impl Iterator<Item = &FlaggedObject> {
        self.objects.iter().filter(|o| o.route == Route::Review)
    }

    /// Every key held for review, flagged or not analysed: what the reviewer is shown and what
    /// a decision acts on.
    pub fn held_keys(&self) -> std::collections::HashSet<&str> {
        self.review()
            .map(|o| o.key.as_str())
            .chain(self.not_analysed.iter().map(|o| o.key.as_str()))
            .collect()
    }

    /// Where each key the manifest knows goes. A key it does not know has no discovery result.
    pub fn placements(&self) -> std::collections::HashMap<&str, Placement> {
        let mut placements = std::collections::HashMap::new();
        for key in &self.analysed {
            placements.insert(key.as_str(), Placement::PassClean);
        }
        // Later inserts win: a finding or a skip outranks a clean result for the same key.
        for object in &self.not_analysed {
            placements.insert(object.key.as_str(), Placement::ReviewNotAnalysed);
        }
        for object in &self.objects {
            let placement = match object.route {
                Route::Review => Placement::ReviewFlagged,
                Route::PassTagged => Placement::PassTagged,
            };
            placements.insert(object.key.as_str(), placement);
        }
        placements
    }

    /// Where the run's held version of `key` is in manual-review: the key itself, unless routing
    /// put it aside.
    pub fn held_location<'k>(&'k self, key: &'k str) -> &'k str {
        self.held_aside.get(key).map_or(key, String::as_str)
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

/// The prefix of a run's job: the workflow id is fully percent-encoded so that no id can
/// reach outside its own prefix.
fn run_prefix(workflow: &WorkflowId, job_id: &str) -> String {
    format!(
        "workflows/{}/{}/",
        utf8_percent_encode(workflow.as_str(), NON_ALPHANUMERIC),
        utf8_percent_encode(job_id, NON_ALPHANUMERIC)
    )
}

/// The manifest key of a run's job.
pub fn manifest_key(workflow: &WorkflowId, job_id: &str) -> String {
    format!("{}findings.json", run_prefix(workflow, job_id))
}

/// Where routing records the objects it found without a discovery result.
pub fn unresolved_prefix(workflow: &WorkflowId, job_id: &str) -> String {
    format!("{}{UNRESOLVED}", run_prefix(workflow, job_id))
}

/// The kinds of addenda routing and the release write beside a run's manifest, each under its
/// own prefix (and each its own IAM resource): objects without a discovery result, held objects
/// put aside, versions kept aside instead of replacing a newer one.
const UNRESOLVED: &str = "unresolved/";
const ASIDE: &str = "aside/";
const SUPERSEDED: &str = "superseded/";

/// Where an object put aside in manual-review is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HeldAside {
    key: String,
    location: String,
}

/// One object routing found in scan-stage with no discovery result, recorded before it is
/// moved so the approval email and the decision include it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Unresolved {
    key: String,
    size: u64,
}

/// The reason shown for an object without a discovery result.
pub const NO_RESULT_REASON: &str = "Macie wrote no discovery result for this object";

/// Writes the manifest. Writing it again (a retried step) stores the same content.
pub async fn write(
    s3: &Client,
    bucket: &str,
    manifest: &Manifest,
) -> Result<ManifestRef, PipelineError> {
    let key = manifest_key(&manifest.workflow_id, &manifest.job_id);
    documents::put_json(s3, bucket, &key, manifest).await?;
    Ok(ManifestRef {
        bucket: bucket.to_owned(),
        key,
    })
}

/// Records that `key` had no discovery result. Named by the key's hash, so a retried routing
/// pass writes the same addendum again.
pub async fn record_unresolved(
    s3: &Client,
    reference: &ManifestRef,
    manifest: &Manifest,
    key: &str,
    size: u64,
) -> Result<(), PipelineError> {
    let addendum = format!(
        "{}{}.json",
        unresolved_prefix(&manifest.workflow_id, &manifest.job_id),
        documents::hashed_name(key)
    );
    let record = Unresolved {
        key: key.to_owned(),
        size,
    };
    documents::put_json(s3, &reference.bucket, &addendum, &record).await
}

/// The key of an addendum of `kind` about `key`. Named by the key's hash, so a retried step
/// writes the same addendum again.
fn addendum_key(manifest: &Manifest, kind: &str, key: &str) -> String {
    format!(
        "{}{kind}{}.json",
        run_prefix(&manifest.workflow_id, &manifest.job_id),
        documents::hashed_name(key)
    )
}

/// Records that the run's held version of `key` is at `location` in manual-review, not at its
/// key. Written after the copy and before its source is deleted, so a crash in between leaves
/// the object where a retry finds it again and records it.
pub async fn record_held_aside(
    s3: &Client,
    reference: &ManifestRef,
    manifest: &Manifest,
    key: &str,
    location: &str,
) -> Result<(), PipelineError> {
    let record = HeldAside {
        key: key.to_owned(),
        location: location.to_owned(),
    };
    documents::put_json(
        s3,
        &reference.bucket,
        &addendum_key(manifest, ASIDE, key),
        &record,
    )
    .await
}

/// Records a version kept aside instead of replacing a newer one.
pub async fn record_supersession(
    s3: &Client,
    reference: &ManifestRef,
    manifest: &Manifest,
    supersession: &Supersession,
) -> Result<(), PipelineError> {
    documents::put_json(
        s3,
        &reference.bucket,
        &addendum_key(manifest, SUPERSEDED, &supersession.key),
        supersession,
    )
    .await
}

/// The bytes of a manifest document, which must exist.
async fn document(s3: &Client, bucket: &str, key: &str) -> Result<Vec<u8>, PipelineError> {
    documents::read(s3, bucket, key)
        .await?
        .ok_or_else(|| PipelineError::InvalidManifest {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            reason: "it does not exist".to_owned(),
        })
}

/// Reads a manifest with its addenda and checks that it belongs to `workflow`.
pub async fn read(
    s3: &Client,
    reference: &ManifestRef,
    workflow: &WorkflowId,
) -> Result<Manifest, PipelineError> {
    let invalid = |key: &str, reason: String| PipelineError::InvalidManifest {
        bucket: reference.bucket.clone(),
        key: key.to_owned(),
        reason,
    };
    let bytes = document(s3, &reference.bucket, &reference.key).await?;
    let mut manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|err| invalid(&reference.key, format!("not a manifest: {err}")))?;
    if !(1..=VERSION).contains(&manifest.version) {
        return Err(invalid(
            &reference.key,
            format!(
                "version {} is not supported (expected 1 to {VERSION})",
                manifest.version
            ),
        ));
    }
    if &manifest.workflow_id != workflow {
        return Err(invalid(
            &reference.key,
            format!(
                "it belongs to workflow {}, not {workflow}",
                manifest.workflow_id
            ),
        ));
    }
    // One listing finds every addendum of the run.
    let prefix = run_prefix(&manifest.workflow_id, &manifest.job_id);
    let mut pages = s3
        .list_objects_v2()
        .bucket(&reference.bucket)
        .prefix(&prefix)
        .into_paginator()
        .send();
    let mut known: std::collections::HashSet<String> = manifest
        .not_analysed
        .iter()
        .map(|o| o.key.clone())
        .collect();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| PipelineError::from_sdk("ListObjectsV2", err))?;
        for entry in page.contents() {
            let key = entry.key().unwrap_or_default();
            let Some(kind) = key.strip_prefix(prefix.as_str()) else {
                continue;
            };
            if key == reference.key {
                continue;
            }
            let parse = |what: &str| {
                let what = what.to_owned();
                move |err: serde_json::Error| invalid(key, format!("not {what}: {err}"))
            };
            let bytes = document(s3, &reference.bucket, key).await?;
            if kind.starts_with(UNRESOLVED) {
                let unresolved: Unresolved =
                    serde_json::from_slice(&bytes).map_err(parse("an unresolved-object record"))?;
                if known.insert(unresolved.key.clone()) {
                    manifest.not_analysed.push(NotAnalysedObject {
                        key: unresolved.key,
                        size: unresolved.size,
                        status: NotAnalysedStatus::NoResult,
                        reasons: vec![NO_RESULT_REASON.to_owned()],
                    });
                }
            } else if kind.starts_with(ASIDE) {
                let aside: HeldAside =
                    serde_json::from_slice(&bytes).map_err(parse("a held-aside record"))?;
                manifest.held_aside.insert(aside.key, aside.location);
            } else if kind.starts_with(SUPERSEDED) {
                manifest
                    .superseded
                    .push(serde_json::from_slice(&bytes).map_err(parse("a supersession record"))?);
            } else {
                return Err(invalid(key, "not a document this gate writes".to_owned()));
            }
        }
    }
    Ok(manifest)
}

/// Builders for the unit tests of the modules that render or route by a manifest.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// An object with findings, 2 KiB, held for review.
    pub fn flagged(key: &str, severity: Severity, detections: Vec<Detection>) -> FlaggedObject {
        FlaggedObject {
            key: key.into(),
            size: 2048,
            highest_severity: severity,
            finding_types: vec!["SensitiveData:S3Object/Multiple".into()],
            detections,
            finding_ids: vec!["f".into()],
            route: Route::Review,
            incomplete_analysis: None,
        }
    }

    /// A manifest of `objects`, with nothing else analysed.
    pub fn manifest(workflow: &str, objects: Vec<FlaggedObject>) -> Manifest {
        Manifest {
            version: VERSION,
            workflow_id: WorkflowId::parse(workflow).unwrap(),
            job_id: "job".into(),
            scan_stage_bucket: "scan".into(),
            minimum_severity: Severity::Low,
            finding_count: objects.len() as u64,
            objects,
            not_analysed: vec![],
            analysed: vec![],
            bytes_scanned: 0,
            macie_price: MicroUsdPerGb::LIST_PRICE,
            held_aside: BTreeMap::new(),
            superseded: Vec::new(),
            suppressed: Vec::new(),
        }
    }
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
                    incomplete_analysis: None,
                },
                FlaggedObject {
                    key: "low.txt".into(),
                    size: 5,
                    highest_severity: Severity::Low,
                    finding_types: vec!["SensitiveData:S3Object/Personal".into()],
                    detections: vec![],
                    finding_ids: vec!["f2".into()],
                    route: Route::PassTagged,
                    incomplete_analysis: None,
                },
            ],
            not_analysed: vec![NotAnalysedObject {
                key: "photo.jpg".into(),
                size: 2048,
                status: NotAnalysedStatus::Skipped,
                reasons: vec!["UNSUPPORTED_FILE_TYPE_EXCEPTION".into()],
            }],
            analysed: vec!["clean.csv".into(), "low.txt".into()],
            bytes_scanned: 2065,
            macie_price: MicroUsdPerGb(1_250_000),
            held_aside: BTreeMap::new(),
            superseded: Vec::new(),
            suppressed: Vec::new(),
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
    fn placements_hold_everything_not_analysed_completely() {
        let manifest = sample();
        let placements = manifest.placements();
        assert_eq!(placements["a b/ü.csv"], Placement::ReviewFlagged);
        // A finding outranks a clean result for the same key.
        assert_eq!(placements["low.txt"], Placement::PassTagged);
        assert_eq!(placements["photo.jpg"], Placement::ReviewNotAnalysed);
        assert_eq!(placements["clean.csv"], Placement::PassClean);
        assert_eq!(placements.get("never-seen.csv"), None);
        let held = manifest.held_keys();
        assert_eq!(held.len(), 2);
        assert!(held.contains("a b/ü.csv") && held.contains("photo.jpg"));
        assert_eq!(manifest.highest_severity(), Some(Severity::High));
    }

    #[test]
    fn a_version_1_manifest_still_parses_with_nothing_analysed() {
        let mut value = serde_json::to_value(sample()).unwrap();
        let object = value.as_object_mut().unwrap();
        object.remove("notAnalysed");
        object.remove("analysed");
        object.remove("bytesScanned");
        object.remove("maciePriceMicroUsdPerGb");
        object.insert("version".into(), 1.into());
        for flagged in object["objects"].as_array_mut().unwrap() {
            flagged
                .as_object_mut()
                .unwrap()
                .remove("incompleteAnalysis");
        }
        let manifest: Manifest = serde_json::from_value(value).unwrap();
        assert!(manifest.analysed.is_empty() && manifest.not_analysed.is_empty());
        assert_eq!(
            (manifest.bytes_scanned, manifest.macie_price),
            (0, MicroUsdPerGb::LIST_PRICE)
        );
        // Nothing is known clean, so routing would hold every unflagged object.
        assert_eq!(manifest.placements().get("clean.csv"), None);
    }

    #[test]
    fn the_key_keeps_the_workflow_inside_its_prefix() {
        let id = WorkflowId::parse("../../x").unwrap();
        let key = manifest_key(&id, "job");
        assert_eq!(key, "workflows/%2E%2E%2F%2E%2E%2Fx/job/findings.json");
        assert_eq!(
            unresolved_prefix(&id, "job"),
            "workflows/%2E%2E%2F%2E%2E%2Fx/job/unresolved/"
        );
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
