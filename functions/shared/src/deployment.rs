//! The deployment as the code sees it: for each Lambda function, its logical id in
//! `template.yaml`, its crate, the environment variables it reads and every AWS operation it
//! calls with the IAM grants that operation needs, and the grants it needs besides when the
//! buckets are versioned (`BucketVersioning=Enabled`: requests then name version ids). Tests
//! hold the template to this table (same variables, exactly these grants, the versioned ones
//! under the template's `VersioningEnabled` condition) and the handlers to it (no call outside
//! the list).

use crate::config::{
    ApprovalConfig, DecisionConfig, DeleteConfig, FindingsConfig, FromEnv, ReleaseConfig,
    RouteConfig, StatusConfig, TriggerConfig,
};

/// The pipeline's buckets, by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    Raw,
    ScanStage,
    ManualReview,
    ScannedData,
    Manifests,
}

impl Bucket {
    /// The bucket's logical id in `template.yaml`.
    pub fn logical_id(self) -> &'static str {
        match self {
            Self::Raw => "DataPipelineRawBucket",
            Self::ScanStage => "DataPipelineScanStageBucket",
            Self::ManualReview => "DataPipelineManualReviewBucket",
            Self::ScannedData => "DataPipelineScannedDataBucket",
            Self::Manifests => "DataPipelineManifestBucket",
        }
    }
}

/// What an IAM grant applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// The bucket itself (listing).
    Bucket(Bucket),
    /// Every object in the bucket.
    Objects(Bucket),
    /// One kind of record routing or the release writes beside a run's manifest
    /// (`workflows/*/<kind>/*` in the manifest bucket), and nothing else there.
    ManifestAddenda(Addendum),
    /// Approval requests and decisions (`approvals/*` in the manifest bucket), and nothing else.
    ApprovalRecords,
    /// The false-positive rules (`false-positives/rules/*` in the manifest bucket).
    FalsePositiveRules,
    /// The rules, their removal records and the words file (`false-positives/*`).
    FalsePositiveRecords,
    /// The gate's pattern allow list (`FalsePositivePatterns`).
    PatternAllowList,
    /// The bucket Macie writes sensitive data discovery results to (listing).
    DiscoveryResultsBucket,
    /// The discovery results in that bucket.
    DiscoveryResultsObjects,
    /// The KMS key the discovery results are encrypted with.
    DiscoveryResultsKey,
    /// The KMS key the state machine's execution data is encrypted with, granted only for that
    /// state machine's data (its ARN as the encryption context).
    StateMachineKey,
    /// The pipeline buckets' KMS key with `BucketEncryption=SSE-KMS` (the stack's `BucketKey`, or
    /// the one `BucketKmsKeyArn` names), used only through S3.
    BucketKey,
    /// Macie classification jobs of this account and region.
    MacieJobs,
    /// The event bus `EventBusName` names, granted only for events of the gate's source.
    EventBus,
    /// `*`: for actions without resource-level permissions (Macie ListFindings, GetFindings,
    /// GetClassificationExportConfiguration; Step Functions SendTaskSuccess, which the task
    /// token alone scopes).
    Everything,
    NotificationTopic,
}

/// The kinds of records beside a run's manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Addendum {
    /// Objects without a discovery result (`unresolved/`).
    Unresolved,
    /// Held objects put aside in manual-review (`aside/`).
    Aside,
    /// Versions kept aside instead of replacing a newer one (`superseded/`).
    Superseded,
}

impl Addendum {
    pub const ALL: [Addendum; 3] = [Self::Unresolved, Self::Aside, Self::Superseded];

    /// The directory under a run's prefix.
    pub fn directory(self) -> &'static str {
        match self {
            Self::Unresolved => "unresolved",
            Self::Aside => "aside",
            Self::Superseded => "superseded",
        }
    }
}

/// One IAM action on one resource.
pub type Grant = (&'static str, Resource);

/// An SDK operation a function calls and the grants it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The operation name as the SDK reports it, e.g. `CopyObject`.
    pub operation: &'static str,
    pub grants: Vec<Grant>,
    /// What it needs besides when the buckets are versioned and the request names a version
    /// (`s3:GetObjectVersion`, `s3:GetObjectVersionTagging`, `s3:DeleteObjectVersion`).
    pub versioned: Vec<Grant>,
}

fn call(operation: &'static str, grants: &[Grant]) -> Call {
    versioned_call(operation, grants, &[])
}

fn versioned_call(operation: &'static str, grants: &[Grant], versioned: &[Grant]) -> Call {
    Call {
        operation,
        grants: grants.to_vec(),
        versioned: versioned.to_vec(),
    }
}

/// A Lambda function of the deployment.
pub struct FunctionSpec {
    /// Logical id in `template.yaml`, also the `${Name}` the state machine substitutes.
    pub logical_id: &'static str,
    /// Directory under `functions/`, also the crate and binary name.
    pub crate_dir: &'static str,
    /// Environment variables the function reads.
    pub variables: Vec<&'static str>,
    pub calls: Vec<Call>,
}

impl FunctionSpec {
    /// Whether this function calls `operation`.
    pub fn calls_operation(&self, operation: &str) -> bool {
        self.calls.iter().any(|call| call.operation == operation)
    }

    /// What it needs besides when the pipeline buckets are encrypted with SSE-KMS: S3 uses
    /// their key on its behalf, decrypting what it reads (a GET, a copy's source, a multipart
    /// upload's parts) and taking a data key for what it writes. A HEAD reads no data.
    pub fn encrypted_grants(&self) -> Vec<Grant> {
        let on_pipeline_objects = |call: &Call| {
            call.grants.iter().any(|(_, resource)| {
                matches!(
                    resource,
                    Resource::Objects(_)
                        | Resource::ManifestAddenda(_)
                        | Resource::ApprovalRecords
                        | Resource::FalsePositiveRules
                        | Resource::FalsePositiveRecords
                )
            })
        };
        let mut grants = Vec::new();
        for call in self.calls.iter().filter(|call| on_pipeline_objects(call)) {
            let actions: &[&'static str] = match call.operation {
                "GetObject" | "UploadPartCopy" => &["kms:Decrypt"],
                "PutObject" => &["kms:GenerateDataKey"],
                "CopyObject" | "CreateMultipartUpload" => &["kms:Decrypt", "kms:GenerateDataKey"],
                _ => &[],
            };
            for action in actions {
                if !grants.contains(&(*action, Resource::BucketKey)) {
                    grants.push((*action, Resource::BucketKey));
                }
            }
        }
        grants
    }
}

/// How a step finds the objects it moves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Finds {
    /// By listing the source bucket.
    Listing,
    /// From the run's manifest.
    Manifest,
}

/// Which version of a source a step reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// The current one, pinned to its ETag: intake, which must never take a version again.
    Current,
    /// The exact version it listed, by its id where the bucket is versioned.
    Version,
}

/// How a step reads its source's tags in a versioned bucket.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SourceTags {
    /// By key: routing reads the tags of the current version it listed, whose id the answer
    /// carries, and then moves that version.
    ByKey,
    /// By version id: intake (the version it looked at) and the release and delete (the held
    /// version the manifest names).
    ByVersion,
}

/// How a step deletes what it moved.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Removes {
    /// Only if unchanged (`If-Match`); in a versioned bucket that adds a delete marker. Intake
    /// removes raw objects so: a version landed since stays current for the next run.
    IfUnchanged,
    /// The exact version copied: by version id where the bucket is versioned, else `If-Match`.
    Version,
}

/// The calls that move objects out of `from` into any of `to`: the source read pinned to its
/// ETag (and version), a copy conditional at both ends (multipart above the threshold), the
/// target looked at when it is taken, then a delete of the version copied.
fn moves(
    from: Bucket,
    to: &[Bucket],
    finds: Finds,
    reads: Reads,
    source_tags: SourceTags,
    removes: Removes,
) -> Vec<Call> {
    use Resource::{Bucket as B, Objects as O};
    let on = |action: &'static str, buckets: &[Bucket]| -> Vec<Grant> {
        buckets.iter().map(|bucket| (action, O(*bucket))).collect()
    };
    let both: Vec<Bucket> = std::iter::once(from).chain(to.iter().copied()).collect();
    let source_version: Vec<Grant> = match reads {
        Reads::Current => Vec::new(),
        Reads::Version => vec![("s3:GetObjectVersion", O(from))],
    };
    let mut calls = Vec::new();
    if finds == Finds::Listing {
        calls.push(call("ListObjectsV2", &[("s3:ListBucket", B(from))]));
    }
    calls.extend([
        // The source's headers and landing record; the target when it is taken.
        versioned_call("HeadObject", &on("s3:GetObject", &both), &source_version),
        versioned_call(
            "GetObjectTagging",
            &on("s3:GetObjectTagging", &both),
            &match source_tags {
                SourceTags::ByVersion => on("s3:GetObjectVersionTagging", &both),
                SourceTags::ByKey => on("s3:GetObjectVersionTagging", to),
            },
        ),
        // If-Match on the target needs s3:GetObject there too.
        versioned_call(
            "CopyObject",
            &[
                on("s3:GetObject", &both),
                on("s3:PutObject", to),
                on("s3:PutObjectTagging", to),
            ]
            .concat(),
            &source_version,
        ),
        call(
            "CreateMultipartUpload",
            &[on("s3:PutObject", to), on("s3:PutObjectTagging", to)].concat(),
        ),
        versioned_call(
            "UploadPartCopy",
            &[vec![("s3:GetObject", O(from))], on("s3:PutObject", to)].concat(),
            &source_version,
        ),
        call(
            "CompleteMultipartUpload",
            &[on("s3:PutObject", to), on("s3:GetObject", to)].concat(),
        ),
        call("AbortMultipartUpload", &on("s3:AbortMultipartUpload", to)),
    ]);
    // A delete with If-Match needs s3:GetObject as well.
    let delete = [("s3:DeleteObject", O(from)), ("s3:GetObject", O(from))];
    calls.push(match (reads, removes) {
        // Intake also takes back a copy that turned out to be of another version than the one
        // it recorded (the same bytes uploaded again meanwhile): by its id, or with If-Match.
        (Reads::Current, _) => versioned_call(
            "DeleteObject",
            &[
                delete.to_vec(),
                on("s3:DeleteObject", to),
                on("s3:GetObject", to),
            ]
            .concat(),
            &on("s3:DeleteObjectVersion", to),
        ),
        (Reads::Version, Removes::IfUnchanged) => call("DeleteObject", &delete),
        (Reads::Version, Removes::Version) => versioned_call(
            "DeleteObject",
            &delete,
            &[("s3:DeleteObjectVersion", O(from))],
        ),
    });
    calls
}

/// Writes of manifest addenda of these kinds.
fn addenda(kinds: &[Addendum]) -> Call {
    let grants: Vec<Grant> = kinds
        .iter()
        .map(|kind| ("s3:PutObject", Resource::ManifestAddenda(*kind)))
        .collect();
    call("PutObject", &grants)
}

/// Every function of the deployment.
pub fn functions() -> Vec<FunctionSpec> {
    use Bucket::*;
    use Resource::{Bucket as B, Objects as O};
    // A manifest and the unresolved-object records beside it.
    let read_manifest = vec![
        call("GetObject", &[("s3:GetObject", O(Manifests))]),
        call("ListObjectsV2", &[("s3:ListBucket", B(Manifests))]),
    ];
    vec![
        FunctionSpec {
            logical_id: "TriggerMacieScan",
            crate_dir: "trigger_macie_scan",
            variables: TriggerConfig::variable_names(),
            calls: [
                moves(
                    Raw,
                    &[ScanStage],
                    Finds::Listing,
                    Reads::Current,
                    SourceTags::ByVersion,
                    Removes::IfUnchanged,
                ),
                vec![call(
                    "CreateClassificationJob",
                    &[
                        ("macie2:CreateClassificationJob", Resource::MacieJobs),
                        ("macie2:TagResource", Resource::MacieJobs),
                    ],
                )],
            ]
            .concat(),
        },
        FunctionSpec {
            logical_id: "CheckMacieStatus",
            crate_dir: "check_macie_status",
            variables: StatusConfig::variable_names(),
            calls: vec![call(
                "DescribeClassificationJob",
                &[("macie2:DescribeClassificationJob", Resource::MacieJobs)],
            )],
        },
        FunctionSpec {
            logical_id: "GetFindingsCount",
            crate_dir: "get_findings_count",
            variables: FindingsConfig::variable_names(),
            calls: vec![
                call(
                    "ListFindings",
                    &[("macie2:ListFindings", Resource::Everything)],
                ),
                call(
                    "GetFindings",
                    &[("macie2:GetFindings", Resource::Everything)],
                ),
                call(
                    "GetClassificationExportConfiguration",
                    &[(
                        "macie2:GetClassificationExportConfiguration",
                        Resource::Everything,
                    )],
                ),
                call(
                    "ListObjectsV2",
                    &[("s3:ListBucket", Resource::DiscoveryResultsBucket)],
                ),
                call(
                    "GetObject",
                    &[
                        ("s3:GetObject", Resource::DiscoveryResultsObjects),
                        ("kms:Decrypt", Resource::DiscoveryResultsKey),
                    ],
                ),
                call("PutObject", &[("s3:PutObject", O(Manifests))]),
                // The reviewers' suppression rules.
                call("ListObjectsV2", &[("s3:ListBucket", B(Manifests))]),
                call(
                    "GetObject",
                    &[("s3:GetObject", Resource::FalsePositiveRules)],
                ),
            ],
        },
        FunctionSpec {
            logical_id: "TriggerManualApproval",
            crate_dir: "trigger_manual_approval",
            variables: ApprovalConfig::variable_names(),
            calls: [
                read_manifest.clone(),
                vec![
                    call("PutObject", &[("s3:PutObject", Resource::ApprovalRecords)]),
                    // Review Requested, whose links only this function can build.
                    call("PutEvents", &[("events:PutEvents", Resource::EventBus)]),
                    call("Publish", &[("sns:Publish", Resource::NotificationTopic)]),
                ],
            ]
            .concat(),
        },
        FunctionSpec {
            logical_id: "ReceiveApprovalDecision",
            crate_dir: "receive_approval_decision",
            variables: DecisionConfig::variable_names(),
            calls: [
                read_manifest.clone(),
                vec![
                    call("PutObject", &[("s3:PutObject", Resource::ApprovalRecords)]),
                    // False-positive rules, their removal records and the words file.
                    call(
                        "PutObject",
                        &[("s3:PutObject", Resource::FalsePositiveRecords)],
                    ),
                    call("HeadObject", &[("s3:GetObject", O(Manifests))]),
                    call(
                        "DeleteObject",
                        &[("s3:DeleteObject", Resource::FalsePositiveRules)],
                    ),
                    call(
                        "UpdateAllowList",
                        &[("macie2:UpdateAllowList", Resource::PatternAllowList)],
                    ),
                    // The decision becomes execution data, encrypted with the state machine's key.
                    call(
                        "SendTaskSuccess",
                        &[
                            ("states:SendTaskSuccess", Resource::Everything),
                            ("kms:Decrypt", Resource::StateMachineKey),
                            ("kms:GenerateDataKey", Resource::StateMachineKey),
                        ],
                    ),
                ],
            ]
            .concat(),
        },
        FunctionSpec {
            logical_id: "MoveAllScanStageS3Files",
            crate_dir: "move_all_scan_stage_files",
            variables: RouteConfig::variable_names(),
            calls: [
                moves(
                    ScanStage,
                    &[ManualReview, ScannedData],
                    Finds::Listing,
                    Reads::Version,
                    SourceTags::ByKey,
                    Removes::Version,
                ),
                read_manifest.clone(),
                vec![addenda(&Addendum::ALL)],
            ]
            .concat(),
        },
        FunctionSpec {
            logical_id: "MoveToScannedDataS3Files",
            crate_dir: "move_to_scanned_data_files",
            variables: ReleaseConfig::variable_names(),
            calls: [
                moves(
                    ManualReview,
                    &[ScannedData],
                    Finds::Manifest,
                    Reads::Version,
                    SourceTags::ByVersion,
                    Removes::Version,
                ),
                read_manifest.clone(),
                // Kept versions beside the manifest, and the outcome beside the decision.
                vec![call(
                    "PutObject",
                    &[
                        (
                            "s3:PutObject",
                            Resource::ManifestAddenda(Addendum::Superseded),
                        ),
                        ("s3:PutObject", Resource::ApprovalRecords),
                    ],
                )],
            ]
            .concat(),
        },
        FunctionSpec {
            logical_id: "DeleteManualReviewS3Files",
            crate_dir: "delete_manual_review_files",
            variables: DeleteConfig::variable_names(),
            calls: [
                vec![
                    call("HeadObject", &[("s3:GetObject", O(ManualReview))]),
                    versioned_call(
                        "GetObjectTagging",
                        &[("s3:GetObjectTagging", O(ManualReview))],
                        &[("s3:GetObjectVersionTagging", O(ManualReview))],
                    ),
                    // The held version, and with versioning the raw version it came from.
                    versioned_call(
                        "DeleteObject",
                        &[
                            ("s3:DeleteObject", O(ManualReview)),
                            ("s3:GetObject", O(ManualReview)),
                        ],
                        &[
                            ("s3:DeleteObjectVersion", O(ManualReview)),
                            ("s3:DeleteObjectVersion", O(Raw)),
                        ],
                    ),
                    // Each object's outcome, and the review's report.
                    call("PutObject", &[("s3:PutObject", Resource::ApprovalRecords)]),
                ],
                read_manifest,
            ]
            .concat(),
        },
    ]
}

/// The function with `logical_id`.
pub fn function(logical_id: &str) -> FunctionSpec {
    functions()
        .into_iter()
        .find(|f| f.logical_id == logical_id)
        .unwrap_or_else(|| panic!("no function {logical_id} in the deployment table"))
}
