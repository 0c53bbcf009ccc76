//! The deployment as the code sees it: for each Lambda function, its logical id in
//! `template.yaml`, its crate, the environment variables it reads and every AWS operation it
//! calls with the IAM grants that operation needs. Tests hold the template to this table (same
//! variables, exactly these grants) and the handlers to it (no call outside the list).

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
    /// The unresolved-object records routing writes beside a run's manifest
    /// (`workflows/*/unresolved/*` in the manifest bucket), and nothing else there.
    ManifestAddenda,
    /// Approval requests and decisions (`approvals/*` in the manifest bucket), and nothing else.
    ApprovalRecords,
    /// The bucket Macie writes sensitive data discovery results to (listing).
    DiscoveryResultsBucket,
    /// The discovery results in that bucket.
    DiscoveryResultsObjects,
    /// The KMS key the discovery results are encrypted with.
    DiscoveryResultsKey,
    /// Macie classification jobs of this account and region.
    MacieJobs,
    /// `*`: for actions without resource-level permissions (Macie ListFindings, GetFindings,
    /// GetClassificationExportConfiguration).
    Everything,
    NotificationTopic,
    /// The pipeline's state machine (task tokens of its executions).
    StateMachine,
}

/// One IAM action on one resource.
pub type Grant = (&'static str, Resource);

/// An SDK operation a function calls and the grants it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The operation name as the SDK reports it, e.g. `CopyObject`.
    pub operation: &'static str,
    pub grants: Vec<Grant>,
}

fn call(operation: &'static str, grants: &[Grant]) -> Call {
    Call {
        operation,
        grants: grants.to_vec(),
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
}

/// The calls that move objects out of `from` into any of `to`: a conditional copy with tags
/// (multipart above the threshold), then a conditional delete.
fn moves(from: Bucket, to: &[Bucket]) -> Vec<Call> {
    use Resource::{Bucket as B, Objects as O};
    let into = |actions: &[&'static str]| -> Vec<Grant> {
        to.iter()
            .flat_map(|bucket| actions.iter().map(move |action| (*action, O(*bucket))))
            .collect()
    };
    let with_source = |mut grants: Vec<Grant>| {
        grants.push(("s3:GetObject", O(from)));
        grants
    };
    vec![
        call("ListObjectsV2", &[("s3:ListBucket", B(from))]),
        call("GetObjectTagging", &[("s3:GetObjectTagging", O(from))]),
        Call {
            operation: "CopyObject",
            grants: with_source(into(&["s3:PutObject", "s3:PutObjectTagging"])),
        },
        call("HeadObject", &[("s3:GetObject", O(from))]),
        Call {
            operation: "CreateMultipartUpload",
            grants: into(&["s3:PutObject", "s3:PutObjectTagging"]),
        },
        Call {
            operation: "UploadPartCopy",
            grants: with_source(into(&["s3:PutObject"])),
        },
        Call {
            operation: "CompleteMultipartUpload",
            grants: into(&["s3:PutObject"]),
        },
        Call {
            operation: "AbortMultipartUpload",
            grants: into(&["s3:AbortMultipartUpload"]),
        },
        // A delete with If-Match needs s3:GetObject as well.
        call(
            "DeleteObject",
            &[("s3:DeleteObject", O(from)), ("s3:GetObject", O(from))],
        ),
    ]
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
                moves(Raw, &[ScanStage]),
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
                    call(
                        "SendTaskSuccess",
                        &[("states:SendTaskSuccess", Resource::StateMachine)],
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
                moves(ScanStage, &[ManualReview, ScannedData]),
                read_manifest.clone(),
                vec![call(
                    "PutObject",
                    &[("s3:PutObject", Resource::ManifestAddenda)],
                )],
            ]
            .concat(),
        },
        FunctionSpec {
            logical_id: "MoveToScannedDataS3Files",
            crate_dir: "move_to_scanned_data_files",
            variables: ReleaseConfig::variable_names(),
            calls: [moves(ManualReview, &[ScannedData]), read_manifest.clone()].concat(),
        },
        FunctionSpec {
            logical_id: "DeleteManualReviewS3Files",
            crate_dir: "delete_manual_review_files",
            variables: DeleteConfig::variable_names(),
            calls: [
                vec![
                    call("ListObjectsV2", &[("s3:ListBucket", B(ManualReview))]),
                    call(
                        "GetObjectTagging",
                        &[("s3:GetObjectTagging", O(ManualReview))],
                    ),
                    call(
                        "DeleteObject",
                        &[
                            ("s3:DeleteObject", O(ManualReview)),
                            ("s3:GetObject", O(ManualReview)),
                        ],
                    ),
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
