//! The later moves (routing by the manifest, release, delete) and the approval request.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_s3::operation::copy_object::{CopyObjectInput, CopyObjectOutput};
use aws_sdk_s3::operation::delete_object::{DeleteObjectInput, DeleteObjectOutput};
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::get_object_tagging::GetObjectTaggingOutput;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Object, Tag};
use aws_sdk_sns::operation::publish::{PublishInput, PublishOutput};
use aws_smithy_mocks::mock;
use macie_pipeline::config::{
    ApprovalConfig, DeleteConfig, MoveSettings, ReleaseConfig, RouteConfig,
};
use macie_pipeline::handlers::delete_manual_review_files::DeleteManualReviewFiles;
use macie_pipeline::handlers::move_all_scan_stage_files::MoveAllScanStageFiles;
use macie_pipeline::handlers::move_to_scanned_data_files::MoveToScannedDataFiles;
use macie_pipeline::handlers::trigger_manual_approval::TriggerManualApproval;
use macie_pipeline::lambda::invoke;
use macie_pipeline::macie::severity::Severity;
use macie_pipeline::manifest::{self, Detection, FlaggedObject, Manifest, Route};
use macie_pipeline::workflow::WorkflowId;
use macie_pipeline::{Deadline, PipelineError};
use serde_json::{Value, json};

use crate::client;
use crate::mocks::{Calls, Captured, s3_error};

fn manifest(workflow: &str) -> Manifest {
    let flagged = |key: &str, severity, route| FlaggedObject {
        key: key.into(),
        size: 10,
        highest_severity: severity,
        finding_types: vec!["SensitiveData:S3Object/Personal".into()],
        detections: vec![Detection {
            kind: "USA_SOCIAL_SECURITY_NUMBER".into(),
            count: 2,
        }],
        finding_ids: vec!["f".into()],
        route,
    };
    Manifest {
        version: manifest::VERSION,
        workflow_id: WorkflowId::parse(workflow).unwrap(),
        job_id: "job-1".into(),
        scan_stage_bucket: "scan".into(),
        minimum_severity: Severity::Medium,
        finding_count: 2,
        objects: vec![
            flagged("flag.csv", Severity::High, Route::Review),
            flagged("low.csv", Severity::Low, Route::PassTagged),
        ],
    }
}

/// A bucket of objects with tags, served by ListObjectsV2 and GetObjectTagging; copies and
/// deletes are captured. The manifest is served by GetObject.
struct Bucket {
    calls: Calls,
    copies: Captured<CopyObjectInput>,
    deletes: Captured<DeleteObjectInput>,
    s3: aws_sdk_s3::Client,
}

fn bucket(
    objects: &[(&str, &[(&str, &str)])],
    manifest_of: &str,
    delete_status: Option<u16>,
) -> Bucket {
    let calls = Calls::default();
    let (copies, deletes) = (Captured::default(), Captured::default());
    let keys: Vec<String> = objects.iter().map(|(k, _)| (*k).to_owned()).collect();
    let tag_sets: HashMap<String, Vec<(String, String)>> = objects
        .iter()
        .map(|(k, tags)| {
            (
                (*k).to_owned(),
                tags.iter()
                    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                    .collect(),
            )
        })
        .collect();
    let list = mock!(aws_sdk_s3::Client::list_objects_v2).then_output(move || {
        let mut output = ListObjectsV2Output::builder().is_truncated(false);
        for key in &keys {
            output = output.contents(
                Object::builder()
                    .key(key)
                    .e_tag(format!("\"{key}\""))
                    .size(10)
                    .build(),
            );
        }
        output.build()
    });
    let tagging = mock!(aws_sdk_s3::Client::get_object_tagging).then_compute_output(move |input| {
        GetObjectTaggingOutput::builder()
            .set_tag_set(Some(
                tag_sets[input.key().unwrap()]
                    .iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build().unwrap())
                    .collect(),
            ))
            .build()
            .unwrap()
    });
    let body = serde_json::to_vec(&manifest(manifest_of)).unwrap();
    let get = mock!(aws_sdk_s3::Client::get_object).then_output(move || {
        GetObjectOutput::builder()
            .body(ByteStream::from(body.clone()))
            .build()
    });
    let captured = copies.clone();
    let copy = mock!(aws_sdk_s3::Client::copy_object).then_compute_output(move |input| {
        captured.push(input.clone());
        CopyObjectOutput::builder().build()
    });
    let captured = deletes.clone();
    let delete = match delete_status {
        None => mock!(aws_sdk_s3::Client::delete_object).then_compute_output(move |input| {
            captured.push(input.clone());
            DeleteObjectOutput::builder().build()
        }),
        Some(status) => {
            mock!(aws_sdk_s3::Client::delete_object).then_compute_response(move |input| {
                captured.push(input.clone());
                aws_smithy_mocks::MockResponse::Http(s3_error(status, "PreconditionFailed"))
            })
        }
    };
    let s3 = client!(aws_sdk_s3, calls, [list, tagging, get, copy, delete]);
    Bucket {
        calls,
        copies,
        deletes,
        s3,
    }
}

const OURS: &[(&str, &str)] = &[("WorkflowId", "wf-1"), ("team", "x")];
const THEIRS: &[(&str, &str)] = &[("WorkflowId", "wf-other")];

fn scan_stage() -> Bucket {
    bucket(
        &[
            ("clean.csv", OURS),
            ("flag.csv", OURS),
            ("low.csv", OURS),
            ("other.csv", THEIRS),
        ],
        "wf-1",
        None,
    )
}

fn later() -> Deadline {
    Deadline::after(Duration::from_secs(600))
}

fn approval(s3: aws_sdk_s3::Client, sns: aws_sdk_sns::Client) -> TriggerManualApproval {
    TriggerManualApproval {
        s3,
        sns,
        config: ApprovalConfig {
            scan_stage_bucket: "scan".into(),
            manual_review_bucket: "review".into(),
            scanned_data_bucket: "scanned".into(),
            manifest_bucket: "manifests".into(),
            topic_arn: "arn:aws:sns:us-east-1:123456789012:gate".into(),
            approval_api_url: "https://api.example/Prod".into(),
            moves: MoveSettings::default(),
        },
    }
}

fn manifest_ref() -> Value {
    json!({"bucket": "manifests", "key": "workflows/wf%2D1/job%2D1/findings.json"})
}

fn copy_for<'a>(copies: &'a [CopyObjectInput], key: &str) -> Option<&'a CopyObjectInput> {
    copies.iter().find(|c| c.key() == Some(key))
}

#[tokio::test]
async fn routing_holds_flagged_objects_tagged_and_moves_the_rest_on() {
    let scan = scan_stage();
    let calls = scan.calls.clone();
    let handler = approval(scan.s3.clone(), client!(aws_sdk_sns, calls, []));
    let value = invoke(
        &handler,
        json!({"phase": "ROUTE", "workflowId": "wf-1", "manifest": manifest_ref(), "progress": null}),
        later(),
    )
    .await
    .unwrap();
    assert_eq!(value["status"], "DONE");
    assert_eq!(value["tally"]["moved"], 3);
    assert_eq!(value["tally"]["heldForReview"], 1);

    let copies = scan.copies.all();
    let flag = copy_for(&copies, "flag.csv").unwrap();
    assert_eq!(flag.bucket(), Some("review"));
    assert_eq!(
        flag.tagging(),
        Some("WorkflowId=wf-1&team=x&SensitiveDataFound=true")
    );
    let low = copy_for(&copies, "low.csv").unwrap();
    assert_eq!(low.bucket(), Some("scanned"));
    assert_eq!(
        low.tagging(),
        Some("WorkflowId=wf-1&team=x&SensitiveDataFound=true")
    );
    let clean = copy_for(&copies, "clean.csv").unwrap();
    assert_eq!(clean.bucket(), Some("scanned"));
    assert_eq!(clean.tagging(), Some("WorkflowId=wf-1&team=x"));
    assert!(
        copy_for(&copies, "other.csv").is_none(),
        "another run's object was moved"
    );
    assert!(
        scan.deletes
            .all()
            .iter()
            .all(|d| d.key() != Some("other.csv"))
    );
    assert_eq!(scan.deletes.all().len(), 3);
    scan.calls.assert_declared_for("TriggerManualApproval");
}

#[tokio::test]
async fn the_clean_path_refuses_to_release_an_object_that_needs_review() {
    let scan = scan_stage();
    let handler = MoveAllScanStageFiles {
        s3: scan.s3.clone(),
        config: RouteConfig {
            scan_stage_bucket: "scan".into(),
            scanned_data_bucket: "scanned".into(),
            manifest_bucket: "manifests".into(),
            moves: MoveSettings::default(),
        },
    };
    let err = invoke(
        &handler,
        json!({"workflowId": "wf-1", "manifest": manifest_ref(), "progress": null}),
        later(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.name(), "ReviewRequired");
    assert!(copy_for(&scan.copies.all(), "flag.csv").is_none());
    scan.calls.assert_declared_for("MoveAllScanStageS3Files");
}

#[tokio::test]
async fn a_manifest_of_another_workflow_is_refused() {
    let scan = bucket(&[("flag.csv", OURS)], "wf-other", None);
    let handler = approval(scan.s3.clone(), client!(aws_sdk_sns, scan.calls, []));
    let err = invoke(
        &handler,
        json!({"phase": "ROUTE", "workflowId": "wf-1", "manifest": manifest_ref(), "progress": null}),
        later(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.name(), "InvalidManifest");
    assert!(scan.copies.all().is_empty());
}

const HELD: &[(&str, &str)] = &[("WorkflowId", "wf-1"), ("SensitiveDataFound", "true")];

#[tokio::test]
async fn approval_releases_only_this_runs_held_objects_with_their_tags() {
    // stale.csv carries the same workflow id but was held by an earlier run that reused the id:
    // the reviewer never saw it in this request, so this approval must not release it.
    let review = bucket(
        &[
            ("flag.csv", HELD),
            ("older.csv", THEIRS),
            ("stale.csv", HELD),
        ],
        "wf-1",
        None,
    );
    let handler = MoveToScannedDataFiles {
        s3: review.s3.clone(),
        config: ReleaseConfig {
            manual_review_bucket: "review".into(),
            scanned_data_bucket: "scanned".into(),
            moves: MoveSettings::default(),
        },
    };
    let value = invoke(
        &handler,
        json!({"workflowId": "wf-1", "manifest": manifest_ref(), "progress": null}),
        later(),
    )
    .await
    .unwrap();
    assert_eq!(
        (value["status"].as_str(), value["tally"]["moved"].as_u64()),
        (Some("DONE"), Some(1))
    );
    let copies = review.copies.all();
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].bucket(), Some("scanned"));
    assert_eq!(
        copies[0].tagging(),
        Some("WorkflowId=wf-1&SensitiveDataFound=true")
    );
    review.calls.assert_declared_for("MoveToScannedDataS3Files");
}

fn deleter(s3: aws_sdk_s3::Client) -> DeleteManualReviewFiles {
    DeleteManualReviewFiles {
        s3,
        config: DeleteConfig {
            manual_review_bucket: "review".into(),
            moves: MoveSettings::default(),
        },
    }
}

#[tokio::test]
async fn denial_deletes_only_this_runs_held_objects_and_only_the_listed_version() {
    let review = bucket(
        &[
            ("flag.csv", HELD),
            ("older.csv", THEIRS),
            ("stale.csv", HELD),
        ],
        "wf-1",
        None,
    );
    let value = invoke(
        &deleter(review.s3.clone()),
        json!({"workflowId": "wf-1", "manifest": manifest_ref(), "progress": null}),
        later(),
    )
    .await
    .unwrap();
    assert_eq!(value["tally"]["deleted"], 1);
    let deletes = review.deletes.all();
    assert_eq!(deletes.len(), 1);
    assert_eq!(
        (deletes[0].key(), deletes[0].if_match()),
        (Some("flag.csv"), Some("\"flag.csv\""))
    );
    review
        .calls
        .assert_declared_for("DeleteManualReviewS3Files");
}

#[tokio::test]
async fn a_held_object_replaced_before_its_delete_fails_the_step_for_a_retry() {
    let review = bucket(&[("flag.csv", HELD)], "wf-1", Some(412));
    let err = invoke(
        &deleter(review.s3.clone()),
        json!({"workflowId": "wf-1", "manifest": manifest_ref(), "progress": null}),
        later(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.name(), "ObjectChanged");
    assert!(PipelineError::RETRYABLE_NAMES.contains(&err.name()));
}

fn request_approval_payload() -> Value {
    json!({
        "phase": "REQUEST_APPROVAL",
        "workflowId": "wf-1",
        "manifest": manifest_ref(),
        "routed": {"moved": 3, "movedBytes": 30, "heldForReview": 1, "deleted": 0, "deferred": 0,
                   "vanished": 0, "rejected": 0, "rejections": []},
        "taskToken": "AAAA+/token==",
        "enteredTime": "2026-11-28T10:00:00.000Z",
        "approvalTimeoutSeconds": 432000,
        "timeoutAction": "hold",
    })
}

#[tokio::test]
async fn the_approval_email_carries_encoded_links_and_a_short_subject() {
    let scan = bucket(&[], "wf-1", None);
    let published: Captured<PublishInput> = Captured::default();
    let captured = published.clone();
    let publish = mock!(aws_sdk_sns::Client::publish).then_compute_output(move |input| {
        captured.push(input.clone());
        PublishOutput::builder().message_id("m-1").build()
    });
    let handler = approval(scan.s3.clone(), client!(aws_sdk_sns, scan.calls, [publish]));
    let value = invoke(&handler, request_approval_payload(), later())
        .await
        .unwrap();
    assert_eq!(value["messageId"], "m-1");
    assert_eq!(value["expiresAt"], "2026-12-03T10:00:00Z");

    let published = published.all();
    assert_eq!(published.len(), 1);
    let email = &published[0];
    assert_eq!(
        email.topic_arn(),
        Some("arn:aws:sns:us-east-1:123456789012:gate")
    );
    let subject = email.subject().unwrap();
    assert!(subject.len() < 100 && subject.is_ascii(), "{subject}");
    assert!(
        subject.contains("1 object") && subject.contains("High"),
        "{subject}"
    );
    let body = email.message().unwrap();
    assert!(
        body.contains("https://api.example/Prod/allow?token=AAAA%2B%2Ftoken%3D%3D"),
        "{body}"
    );
    assert!(body.contains("https://api.example/Prod/deny?token=AAAA%2B%2Ftoken%3D%3D"));
    assert!(
        !body.contains("AAAA+/token=="),
        "the raw token must not appear"
    );
    assert!(
        body.contains("flag.csv") && !body.contains("low.csv"),
        "only held objects are listed"
    );
    assert!(body.contains("USA_SOCIAL_SECURITY_NUMBER x2"));
    assert!(body.contains("2026-12-03 10:00 UTC"));
    // The routing already happened: this phase only reads the manifest and publishes.
    assert_eq!(
        scan.calls.count("CopyObject") + scan.calls.count("DeleteObject"),
        0
    );
    scan.calls.assert_declared_for("TriggerManualApproval");
}

#[tokio::test]
async fn a_failed_publish_fails_the_step() {
    // The reference only logged this, leaving the run waiting for a callback nobody could send.
    let scan = bucket(&[], "wf-1", None);
    let publish = mock!(aws_sdk_sns::Client::publish).then_http_response(|| {
        aws_smithy_runtime_api::client::orchestrator::HttpResponse::new(
            400.try_into().unwrap(),
            aws_smithy_types::body::SdkBody::from(
                "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameter</Code><Message>Invalid parameter: Subject</Message></Error></ErrorResponse>",
            ),
        )
    });
    let handler = approval(scan.s3.clone(), client!(aws_sdk_sns, scan.calls, [publish]));
    let err = invoke(&handler, request_approval_payload(), later())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "AwsRequestFailed");
    assert!(err.to_string().contains("Publish"), "{err}");
}
