//! The later moves (routing by the manifest, release, delete) and the approval request.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_eventbridge::operation::put_events::{PutEventsInput, PutEventsOutput};
use aws_sdk_eventbridge::types::PutEventsResultEntry;
use aws_sdk_s3::operation::copy_object::{CopyObjectInput, CopyObjectOutput};
use aws_sdk_s3::operation::delete_object::{DeleteObjectInput, DeleteObjectOutput};
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::get_object_tagging::GetObjectTaggingOutput;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Object, Tag};
use aws_sdk_sns::operation::publish::{PublishInput, PublishOutput};
use aws_smithy_mocks::mock;
use macie_pipeline::approval::decisions::{record_key, review_id};
use macie_pipeline::config::{
    ApprovalConfig, DeleteConfig, MoveSettings, ReleaseConfig, RouteConfig,
};
use macie_pipeline::handlers::delete_manual_review_files::DeleteManualReviewFiles;
use macie_pipeline::handlers::move_all_scan_stage_files::MoveAllScanStageFiles;
use macie_pipeline::handlers::move_to_scanned_data_files::MoveToScannedDataFiles;
use macie_pipeline::handlers::trigger_manual_approval::TriggerManualApproval;
use macie_pipeline::lambda::invoke;
use macie_pipeline::macie::cost::MicroUsdPerGb;
use macie_pipeline::macie::severity::Severity;
use macie_pipeline::manifest::{
    self, Detection, FlaggedObject, Manifest, ManifestRef, NotAnalysedObject, NotAnalysedStatus,
    Route,
};
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
        incomplete_analysis: None,
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
        not_analysed: vec![NotAnalysedObject {
            key: "photo.png".into(),
            size: 10,
            status: NotAnalysedStatus::Skipped,
            reasons: vec!["UNSUPPORTED_FILE_TYPE_EXCEPTION".into()],
        }],
        analysed: vec!["clean.csv".into(), "low.csv".into()],
        bytes_scanned: 1000,
        macie_price: MicroUsdPerGb::LIST_PRICE,
        held_aside: Default::default(),
        superseded: Vec::new(),
        suppressed: Vec::new(),
    }
}

const MANIFEST_BUCKET: &str = "manifests";
const MANIFEST_KEY: &str = "workflows/wf%2D1/job%2D1/findings.json";
/// The record routing writes for `mystery.csv`, which has no discovery result.
const MYSTERY_ADDENDUM: &str = "workflows/wf%2D1/job%2D1/unresolved/\
    6607676c1391adac677cd552c36e8fdf3784513ac5888e653ea8f5cd72572c61.json";

/// A bucket of objects with tags, served by ListObjectsV2, HeadObject and GetObjectTagging;
/// copies and deletes are captured. The manifest bucket is simulated beside it: the manifest and any
/// unresolved-object records (pre-seeded or written by the handler) are listed and served.
struct Bucket {
    calls: Calls,
    copies: Captured<CopyObjectInput>,
    deletes: Captured<DeleteObjectInput>,
    /// `put <key>` and `copy <key>` in the order they happened.
    events: Captured<String>,
    /// The manifest bucket's objects, by key.
    manifests: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    s3: aws_sdk_s3::Client,
}

fn bucket(
    objects: &[(&str, &[(&str, &str)])],
    manifest_of: &str,
    delete_status: Option<u16>,
) -> Bucket {
    let calls = Calls::default();
    let (copies, deletes, events) = (
        Captured::default(),
        Captured::default(),
        Captured::<String>::default(),
    );
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
    let manifests = Arc::new(Mutex::new(BTreeMap::from([(
        MANIFEST_KEY.to_owned(),
        serde_json::to_vec(&manifest(manifest_of)).unwrap(),
    )])));
    let stored = Arc::clone(&manifests);
    let list = mock!(aws_sdk_s3::Client::list_objects_v2).then_compute_output(move |input| {
        let mut output = ListObjectsV2Output::builder().is_truncated(false);
        let listed: Vec<String> = if input.bucket() == Some(MANIFEST_BUCKET) {
            let prefix = input.prefix().unwrap_or_default();
            stored
                .lock()
                .unwrap()
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect()
        } else {
            keys.clone()
        };
        for key in listed {
            output = output.contents(
                Object::builder()
                    .key(&key)
                    .e_tag(format!("\"{key}\""))
                    .size(10)
                    .build(),
            );
        }
        output.build()
    });
    let present = tag_sets.clone();
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
    let stored = Arc::clone(&manifests);
    let get = mock!(aws_sdk_s3::Client::get_object).then_compute_response(move |input| {
        assert_eq!(input.bucket(), Some(MANIFEST_BUCKET));
        match stored.lock().unwrap().get(input.key().unwrap()) {
            Some(body) => aws_smithy_mocks::MockResponse::Output(
                GetObjectOutput::builder()
                    .body(ByteStream::from(body.clone()))
                    .build(),
            ),
            None => aws_smithy_mocks::MockResponse::Http(s3_error(404, "NoSuchKey")),
        }
    });
    let stored = Arc::clone(&manifests);
    let captured = events.clone();
    let put = mock!(aws_sdk_s3::Client::put_object).then_compute_output(move |input| {
        assert_eq!(input.bucket(), Some(MANIFEST_BUCKET));
        let key = input.key().unwrap().to_owned();
        captured.push(format!("put {key}"));
        let body = input.body.bytes().unwrap().to_vec();
        stored.lock().unwrap().insert(key, body);
        PutObjectOutput::builder().build()
    });
    let captured = copies.clone();
    let captured_events = events.clone();
    let copy = mock!(aws_sdk_s3::Client::copy_object).then_compute_output(move |input| {
        captured_events.push(format!("copy {}", input.key().unwrap()));
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
    let head = mock!(aws_sdk_s3::Client::head_object).then_compute_response(move |input| {
        let key = input.key().unwrap();
        if !present.contains_key(key) {
            return aws_smithy_mocks::MockResponse::Http(s3_error(404, "NotFound"));
        }
        aws_smithy_mocks::MockResponse::Output(
            HeadObjectOutput::builder()
                .e_tag(format!("\"{key}\""))
                .content_length(10)
                .build(),
        )
    });
    let s3 = client!(
        aws_sdk_s3,
        calls,
        [list, tagging, get, put, copy, delete, head]
    );
    Bucket {
        calls,
        copies,
        deletes,
        events,
        manifests,
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
            ("mystery.csv", OURS),
            ("other.csv", THEIRS),
            ("photo.png", OURS),
        ],
        "wf-1",
        None,
    )
}

fn router(s3: aws_sdk_s3::Client) -> MoveAllScanStageFiles {
    MoveAllScanStageFiles::with_client(
        s3,
        RouteConfig {
            scan_stage_bucket: "scan".into(),
            manual_review_bucket: "review".into(),
            scanned_data_bucket: "scanned".into(),
            moves: MoveSettings::default(),
        },
    )
}

fn later() -> Deadline {
    Deadline::after(Duration::from_secs(600))
}

fn approval(
    s3: aws_sdk_s3::Client,
    sns: aws_sdk_sns::Client,
    events: aws_sdk_eventbridge::Client,
) -> TriggerManualApproval {
    TriggerManualApproval {
        s3,
        sns,
        events,
        config: ApprovalConfig {
            manual_review_bucket: "review".into(),
            scanned_data_bucket: "scanned".into(),
            topic_arn: "arn:aws:sns:us-east-1:123456789012:gate".into(),
            approval_api_url: "https://api.example/Prod".into(),
            event_bus_name: "gate-events".into(),
        },
    }
}

/// PutEvents answering each entry with `entry` (an event id, or an error code), capturing them.
fn put_events(
    captured: Captured<PutEventsInput>,
    entry: Result<&'static str, &'static str>,
) -> aws_smithy_mocks::Rule {
    mock!(aws_sdk_eventbridge::Client::put_events).then_compute_output(move |input| {
        captured.push(input.clone());
        let result = match entry {
            Ok(id) => PutEventsResultEntry::builder().event_id(id).build(),
            Err(code) => PutEventsResultEntry::builder()
                .error_code(code)
                .error_message("refused")
                .build(),
        };
        PutEventsOutput::builder()
            .failed_entry_count(i32::from(entry.is_err()))
            .entries(result)
            .build()
    })
}

fn manifest_ref() -> Value {
    json!({"bucket": MANIFEST_BUCKET, "key": MANIFEST_KEY})
}

fn copy_for<'a>(copies: &'a [CopyObjectInput], key: &str) -> Option<&'a CopyObjectInput> {
    copies.iter().find(|c| c.key() == Some(key))
}

#[tokio::test]
async fn routing_holds_flagged_and_unanalysed_objects_and_moves_the_clean_ones_on() {
    let scan = scan_stage();
    let value = invoke(
        &router(scan.s3.clone()),
        json!({"workflowId": "wf-1", "manifest": manifest_ref(), "progress": null}),
        later(),
    )
    .await
    .unwrap();
    assert_eq!(value["status"], "DONE");
    assert_eq!(value["tally"]["moved"], 5);
    assert_eq!(value["tally"]["heldForReview"], 3);
    assert_eq!(value["awaitingReview"], 3);

    let copies = scan.copies.all();
    let placed = |key: &str| {
        let copy = copy_for(&copies, key).unwrap_or_else(|| panic!("{key} was not moved"));
        (
            copy.bucket().unwrap().to_owned(),
            copy.tagging().unwrap().to_owned(),
        )
    };
    let flagged = "WorkflowId=wf-1&team=x&SensitiveDataFound=true".to_owned();
    let unknown = "WorkflowId=wf-1&team=x&SensitiveDataFound=unknown".to_owned();
    assert_eq!(placed("flag.csv"), ("review".into(), flagged.clone()));
    assert_eq!(placed("low.csv"), ("scanned".into(), flagged));
    assert_eq!(placed("photo.png"), ("review".into(), unknown.clone()));
    // No discovery result at all: held like a skipped object, never passed as clean.
    assert_eq!(placed("mystery.csv"), ("review".into(), unknown));
    assert_eq!(
        placed("clean.csv"),
        ("scanned".into(), "WorkflowId=wf-1&team=x".into())
    );
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
    assert_eq!(scan.deletes.all().len(), 5);
    scan.calls.assert_declared_for("MoveAllScanStageS3Files");
}

#[tokio::test]
async fn an_object_without_a_result_is_recorded_before_it_is_moved() {
    let scan = scan_stage();
    invoke(
        &router(scan.s3.clone()),
        json!({"workflowId": "wf-1", "manifest": manifest_ref(), "progress": null}),
        later(),
    )
    .await
    .unwrap();
    let events = scan.events.all();
    let addenda: Vec<&String> = events.iter().filter(|e| e.starts_with("put ")).collect();
    assert_eq!(addenda.len(), 1, "{events:?}");
    assert_eq!(addenda[0], &format!("put {MYSTERY_ADDENDUM}"), "{events:?}");
    let put_at = events.iter().position(|e| e.starts_with("put ")).unwrap();
    let copy_at = events.iter().position(|e| e == "copy mystery.csv").unwrap();
    assert!(put_at < copy_at, "{events:?}");
    // The record names the object, so the email and the decision include it.
    let stored = scan.manifests.lock().unwrap();
    let record: Value = serde_json::from_slice(&stored[&addenda[0][4..]]).unwrap();
    assert_eq!(record["key"], "mystery.csv");
}

#[tokio::test]
async fn a_manifest_of_another_workflow_is_refused() {
    let scan = bucket(&[("flag.csv", OURS)], "wf-other", None);
    let err = invoke(
        &router(scan.s3.clone()),
        json!({"workflowId": "wf-1", "manifest": manifest_ref(), "progress": null}),
        later(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.name(), "InvalidManifest");
    assert!(scan.copies.all().is_empty());
}

const HELD: &[(&str, &str)] = &[("WorkflowId", "wf-1"), ("SensitiveDataFound", "true")];
const HELD_UNKNOWN: &[(&str, &str)] = &[("WorkflowId", "wf-1"), ("SensitiveDataFound", "unknown")];

/// A manual-review bucket holding this run's objects, one earlier run's, and one object that
/// routing recorded as having no discovery result.
fn manual_review(delete_status: Option<u16>) -> Bucket {
    let review = bucket(
        &[
            ("flag.csv", HELD),
            ("mystery.csv", HELD_UNKNOWN),
            ("older.csv", THEIRS),
            ("photo.png", HELD_UNKNOWN),
            ("stale.csv", HELD),
        ],
        "wf-1",
        delete_status,
    );
    review.manifests.lock().unwrap().insert(
        MYSTERY_ADDENDUM.to_owned(),
        serde_json::to_vec(&json!({"key": "mystery.csv", "size": 10})).unwrap(),
    );
    review
}

/// Records the reviewer's `choices` (key, `release` or `delete`) as the approval API does.
fn decide(review: &Bucket, choices: &[(&str, &str)]) {
    let location = ManifestRef {
        bucket: MANIFEST_BUCKET.into(),
        key: MANIFEST_KEY.into(),
    };
    let id = review_id(&location);
    let mut stored = review.manifests.lock().unwrap();
    for (key, choice) in choices {
        let decision = json!({"workflowId": "wf-1", "key": key, "location": key, "choice": choice,
            "reviewer": {"name": "ada"}, "decidedAt": "2026-11-28T11:00:00Z"});
        stored.insert(record_key(&id, key), serde_json::to_vec(&decision).unwrap());
    }
}

#[tokio::test]
async fn the_release_releases_only_this_runs_objects_decided_for_release_with_their_tags() {
    // stale.csv carries the same workflow id but was held by an earlier run that reused the id:
    // the reviewer never saw it in this request, so this release must not touch it.
    let review = manual_review(None);
    decide(
        &review,
        &[
            ("flag.csv", "release"),
            ("mystery.csv", "release"),
            ("photo.png", "release"),
        ],
    );
    let handler = releaser(review.s3.clone());
    let value = invoke(
        &handler,
        json!({"workflowId": "wf-1", "manifest": manifest_ref(), "progress": null}),
        later(),
    )
    .await
    .unwrap();
    assert_eq!(
        (value["status"].as_str(), value["tally"]["moved"].as_u64()),
        (Some("DONE"), Some(3))
    );
    let copies = review.copies.all();
    let mut released: Vec<(&str, &str)> = copies
        .iter()
        .map(|c| (c.key().unwrap(), c.tagging().unwrap()))
        .collect();
    released.sort_unstable();
    assert_eq!(
        released,
        vec![
            ("flag.csv", "WorkflowId=wf-1&SensitiveDataFound=true"),
            ("mystery.csv", "WorkflowId=wf-1&SensitiveDataFound=unknown"),
            ("photo.png", "WorkflowId=wf-1&SensitiveDataFound=unknown"),
        ]
    );
    assert!(copies.iter().all(|c| c.bucket() == Some("scanned")));
    review.calls.assert_declared_for("MoveToScannedDataS3Files");
}

fn releaser(s3: aws_sdk_s3::Client) -> MoveToScannedDataFiles {
    MoveToScannedDataFiles {
        s3,
        config: ReleaseConfig {
            manual_review_bucket: "review".into(),
            scanned_data_bucket: "scanned".into(),
            moves: MoveSettings::default(),
        },
    }
}

fn deleter(s3: aws_sdk_s3::Client) -> DeleteManualReviewFiles {
    DeleteManualReviewFiles {
        s3,
        config: DeleteConfig {
            manual_review_bucket: "review".into(),
            raw_bucket: "raw".into(),
            moves: MoveSettings::default(),
        },
    }
}

#[tokio::test]
async fn decisions_per_object_release_some_and_delete_others() {
    let review = manual_review(None);
    decide(&review, &[("flag.csv", "release"), ("photo.png", "delete")]);
    let released = invoke(
        &releaser(review.s3.clone()),
        json!({"workflowId": "wf-1", "manifest": manifest_ref(), "progress": null}),
        later(),
    )
    .await
    .unwrap();
    assert_eq!(released["tally"]["moved"], 1);
    let copies = review.copies.all();
    assert_eq!(
        copies.iter().map(|c| c.key().unwrap()).collect::<Vec<_>>(),
        ["flag.csv"]
    );
    // The release removed flag.csv from manual-review after its copy; the deletion comes next.
    let after_release = review.deletes.all().len();
    // mystery.csv is undecided: kept when the review holds, deleted when it times out with deny.
    let kept = invoke(
        &deleter(review.s3.clone()),
        json!({"workflowId": "wf-1", "manifest": manifest_ref(), "progress": null, "undecided": "keep"}),
        later(),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            kept["tally"]["deleted"].as_u64(),
            kept["undecided"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let deletes = review.deletes.all();
    assert_eq!(
        deletes[after_release..]
            .iter()
            .map(|d| d.key().unwrap())
            .collect::<Vec<_>>(),
        ["photo.png"]
    );
    let after_keep = deletes.len();
    let swept = invoke(
        &deleter(review.s3.clone()),
        json!({"workflowId": "wf-1", "manifest": manifest_ref(), "progress": null, "undecided": "delete"}),
        later(),
    )
    .await
    .unwrap();
    assert_eq!(swept["undecided"], 1);
    let deletes = review.deletes.all();
    let swept: Vec<&str> = deletes[after_keep..]
        .iter()
        .map(|d| d.key().unwrap())
        .collect();
    assert!(swept.contains(&"mystery.csv"), "{swept:?}");
    assert!(
        !swept.contains(&"flag.csv"),
        "released, never deleted: {swept:?}"
    );
}

#[tokio::test]
async fn a_decision_of_another_version_than_the_one_held_fails_the_step_and_moves_nothing() {
    let review = manual_review(None);
    {
        // flag.csv's decision names a version kept aside, but the run holds the one at its key.
        let id = review_id(&ManifestRef {
            bucket: MANIFEST_BUCKET.into(),
            key: MANIFEST_KEY.into(),
        });
        let decision = json!({"workflowId": "wf-1", "key": "flag.csv",
            "location": "gate-versions/2026-11-28T09:00:00Z/flag.csv", "choice": "release",
            "reviewer": {"name": "ada"}, "decidedAt": "2026-11-28T11:00:00Z"});
        review.manifests.lock().unwrap().insert(
            record_key(&id, "flag.csv"),
            serde_json::to_vec(&decision).unwrap(),
        );
    }
    let err = invoke(
        &releaser(review.s3.clone()),
        json!({"workflowId": "wf-1", "manifest": manifest_ref(), "progress": null}),
        later(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.name(), "InvalidManifest");
    assert!(review.copies.all().is_empty());
}

#[tokio::test]
async fn denial_deletes_only_this_runs_held_objects_and_only_the_listed_version() {
    let review = manual_review(None);
    decide(
        &review,
        &[
            ("flag.csv", "delete"),
            ("mystery.csv", "delete"),
            ("photo.png", "delete"),
        ],
    );
    let value = invoke(
        &deleter(review.s3.clone()),
        json!({"workflowId": "wf-1", "manifest": manifest_ref(), "progress": null, "undecided": "keep"}),
        later(),
    )
    .await
    .unwrap();
    assert_eq!(value["tally"]["deleted"], 3);
    assert_eq!(value["undecided"], 0);
    let deletes = review.deletes.all();
    let mut deleted: Vec<(&str, &str)> = deletes
        .iter()
        .map(|d| (d.key().unwrap(), d.if_match().unwrap()))
        .collect();
    deleted.sort_unstable();
    assert_eq!(
        deleted,
        vec![
            ("flag.csv", "\"flag.csv\""),
            ("mystery.csv", "\"mystery.csv\""),
            ("photo.png", "\"photo.png\""),
        ]
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
        json!({"workflowId": "wf-1", "manifest": manifest_ref(), "progress": null, "undecided": "delete"}),
        later(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.name(), "ObjectChanged");
    assert!(PipelineError::RETRYABLE_NAMES.contains(&err.name()));
}

fn request_approval_payload() -> Value {
    json!({
        "workflowId": "wf-1",
        "manifest": manifest_ref(),
        "routed": {"moved": 3, "movedBytes": 30, "heldForReview": 1, "deleted": 0, "deferred": 0,
                   "vanished": 0, "rejected": 0, "rejections": []},
        "taskToken": "AAAA+/token==",
        "enteredTime": "2026-11-28T10:00:00.000Z",
        "approvalTimeoutSeconds": 432000,
        "timeoutAction": "hold",
        "event": {"version": "1", "workflowId": "wf-1",
                  "executionArn": "arn:aws:states:us-east-1:123456789012:execution:gate:run-1",
                  "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:gate",
                  "routing": {"passed": 2, "held": 2, "keptAside": 0}},
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
    let put: Captured<PutEventsInput> = Captured::default();
    let handler = approval(
        scan.s3.clone(),
        client!(aws_sdk_sns, scan.calls, [publish]),
        client!(
            aws_sdk_eventbridge,
            scan.calls,
            [put_events(put.clone(), Ok("event-1"))]
        ),
    );
    let value = invoke(&handler, request_approval_payload(), later())
        .await
        .unwrap();
    assert_eq!(value["messageId"], "m-1");
    assert_eq!(value["eventId"], "event-1");
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
        subject.contains("2 objects, 1 with sensitive data (High), 1 not analysed"),
        "{subject}"
    );
    // Email subscribers get the text; chat (HTTPS) subscribers a notification with the links.
    assert_eq!(email.message_structure(), Some("json"));
    let structured: Value = serde_json::from_str(email.message().unwrap()).unwrap();
    let chat: Value = serde_json::from_str(structured["https"].as_str().unwrap()).unwrap();
    assert_eq!(
        (&chat["version"], &chat["source"]),
        (&json!("1.0"), &json!("custom"))
    );
    assert_eq!(chat["content"]["title"], subject);
    assert_eq!(
        chat["content"]["nextSteps"][1],
        "Release all: https://api.example/Prod/allow?token=AAAA%2B%2Ftoken%3D%3D"
    );
    assert_eq!(chat["metadata"]["threadId"], "run-1");
    let body = structured["default"].as_str().unwrap();
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
    assert!(body.contains("- [skipped] photo.png (10 B)\n    UNSUPPORTED_FILE_TYPE_EXCEPTION"));
    assert!(body.contains("2026-12-03 10:00 UTC"));
    // Routing already happened: this step only reads the manifest and publishes.
    assert_eq!(
        scan.calls.count("CopyObject") + scan.calls.count("DeleteObject"),
        0
    );
    // Review Requested: the run's detail with the request added, links and all, on the bus.
    let put = put.all();
    assert_eq!(put.len(), 1);
    let entry = &put[0].entries()[0];
    assert_eq!(entry.event_bus_name(), Some("gate-events"));
    assert_eq!(entry.source(), Some("macie-pipeline"));
    assert_eq!(entry.detail_type(), Some("Review Requested"));
    assert_eq!(
        entry.resources(),
        [
            "arn:aws:states:us-east-1:123456789012:execution:gate:run-1",
            "arn:aws:states:us-east-1:123456789012:stateMachine:gate"
        ]
    );
    let detail: Value = serde_json::from_str(entry.detail().unwrap()).unwrap();
    assert_eq!(detail["routing"]["held"], 2);
    assert_eq!(detail["request"]["held"], 2);
    assert_eq!(detail["request"]["expiresAt"], "2026-12-03T10:00:00Z");
    assert_eq!(
        detail["request"]["links"]["review"],
        "https://api.example/Prod/review?token=AAAA%2B%2Ftoken%3D%3D"
    );
    scan.calls.assert_declared_for("TriggerManualApproval");
}

#[tokio::test]
async fn an_event_the_bus_refuses_fails_the_step_before_the_email_goes_out() {
    for (code, name) in [
        ("AccessDeniedException", "AwsRequestFailed"),
        ("ThrottlingException", "TransientAwsError"),
    ] {
        let scan = bucket(&[], "wf-1", None);
        let published: Captured<PublishInput> = Captured::default();
        let captured = published.clone();
        let publish = mock!(aws_sdk_sns::Client::publish).then_compute_output(move |input| {
            captured.push(input.clone());
            PublishOutput::builder().message_id("m-1").build()
        });
        let handler = approval(
            scan.s3.clone(),
            client!(aws_sdk_sns, scan.calls, [publish]),
            client!(
                aws_sdk_eventbridge,
                scan.calls,
                [put_events(Captured::default(), Err(code))]
            ),
        );
        let err = invoke(&handler, request_approval_payload(), later())
            .await
            .unwrap_err();
        assert_eq!(err.name(), name, "{code}: {err}");
        assert!(err.to_string().contains("Review Requested"), "{err}");
        assert!(err.to_string().contains("gate-events"), "{err}");
        assert!(published.all().is_empty(), "{code}: the email went out");
    }
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
    let handler = approval(
        scan.s3.clone(),
        client!(aws_sdk_sns, scan.calls, [publish]),
        client!(
            aws_sdk_eventbridge,
            scan.calls,
            [put_events(Captured::default(), Ok("event-1"))]
        ),
    );
    let err = invoke(&handler, request_approval_payload(), later())
        .await
        .unwrap_err();
    assert_eq!(err.name(), "AwsRequestFailed");
    assert!(err.to_string().contains("Publish"), "{err}");
}
