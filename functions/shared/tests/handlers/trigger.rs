//! triggerMacieScan.

use std::time::Duration;

use aws_sdk_macie2::operation::create_classification_job::{
    CreateClassificationJobInput, CreateClassificationJobOutput,
};
use aws_sdk_s3::operation::copy_object::{CopyObjectInput, CopyObjectOutput};
use aws_sdk_s3::operation::delete_object::{DeleteObjectInput, DeleteObjectOutput};
use aws_sdk_s3::operation::get_object_tagging::GetObjectTaggingOutput;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::operation::list_objects_v2::{ListObjectsV2Input, ListObjectsV2Output};
use aws_sdk_s3::types::{MetadataDirective, Object, Tag, TaggingDirective};
use aws_smithy_mocks::mock;
use macie_pipeline::config::{MoveSettings, TriggerConfig};
use macie_pipeline::handlers::trigger_macie_scan::{ScanProgress, TriggerMacieScan};
use macie_pipeline::lambda::invoke;
use macie_pipeline::macie::job::{JobSettings, client_token};
use macie_pipeline::s3::landing;
use macie_pipeline::s3::pass::Tally;
use macie_pipeline::workflow::WorkflowId;
use macie_pipeline::{Deadline, PipelineError};
use serde_json::{Value, json};

use crate::client;
use crate::mocks::{Calls, Captured, json_error, s3_error};

const KEY: &str = "dir/a b+c%d?e#f.csv";
const UNICODE_KEY: &str = "café/日本.txt";

fn config() -> TriggerConfig {
    TriggerConfig {
        raw_bucket: "raw".into(),
        scan_stage_bucket: "scan".into(),
        account_id: "123456789012".into(),
        bucket_kms_key: String::new(),
        job: JobSettings {
            managed_selector: "RECOMMENDED".into(),
            custom_data_identifier_ids: vec!["cdi-1".into()],
            ..JobSettings::default()
        },
        moves: MoveSettings::default(),
    }
}

fn listing(objects: &[(&str, &str)]) -> ListObjectsV2Output {
    let mut output = ListObjectsV2Output::builder().is_truncated(false);
    for (key, etag) in objects {
        output = output.contents(Object::builder().key(*key).e_tag(*etag).size(10).build());
    }
    output.build()
}

fn tags(pairs: &[(&str, &str)]) -> GetObjectTaggingOutput {
    GetObjectTaggingOutput::builder()
        .set_tag_set(Some(
            pairs
                .iter()
                .map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap())
                .collect(),
        ))
        .build()
        .unwrap()
}

fn first_call(name: &str) -> Value {
    json!({"executionInput": {"id": "wf-1"}, "executionName": name, "retryCount": 0, "progress": null})
}

/// HeadObject of the raw objects as listed: ETag `"e1"` or `"e2"`, with upstream metadata.
fn head_as_listed() -> aws_smithy_mocks::Rule {
    mock!(aws_sdk_s3::Client::head_object).then_compute_output(|input| {
        let etag = if input.key() == Some(KEY) {
            "\"e1\""
        } else {
            "\"e2\""
        };
        HeadObjectOutput::builder()
            .e_tag(etag)
            .content_length(10)
            .content_type("text/csv")
            .metadata("origin", "sftp")
            .build()
    })
}

/// S3 with two raw objects, each carrying an upstream tag; copies and deletes are captured.
struct Raw {
    calls: Calls,
    copies: Captured<CopyObjectInput>,
    deletes: Captured<DeleteObjectInput>,
    events: Captured<String>,
    s3: aws_sdk_s3::Client,
}

fn raw_bucket(copy_status: Option<(u16, &'static str)>) -> Raw {
    let calls = Calls::default();
    let copies = Captured::default();
    let deletes = Captured::default();
    let events = Captured::default();
    let list = mock!(aws_sdk_s3::Client::list_objects_v2)
        .then_output(|| listing(&[(KEY, "\"e1\""), (UNICODE_KEY, "\"e2\"")]));
    let tagging =
        mock!(aws_sdk_s3::Client::get_object_tagging).then_output(|| tags(&[("team", "payments")]));
    let (captured, log) = (copies.clone(), events.clone());
    let copy = match copy_status {
        None => mock!(aws_sdk_s3::Client::copy_object).then_compute_output(move |input| {
            captured.push(input.clone());
            log.push(format!("copy {}", input.key().unwrap()));
            CopyObjectOutput::builder().build()
        }),
        Some((status, code)) => {
            mock!(aws_sdk_s3::Client::copy_object).then_compute_response(move |input| {
                captured.push(input.clone());
                aws_smithy_mocks::MockResponse::Http(s3_error(status, code))
            })
        }
    };
    let (captured, log) = (deletes.clone(), events.clone());
    let delete = mock!(aws_sdk_s3::Client::delete_object).then_compute_output(move |input| {
        captured.push(input.clone());
        log.push(format!("delete {}", input.key().unwrap()));
        DeleteObjectOutput::builder().build()
    });
    let head = head_as_listed();
    let s3 = client!(aws_sdk_s3, calls, [list, tagging, copy, delete, head]);
    Raw {
        calls,
        copies,
        deletes,
        events,
        s3,
    }
}

fn handler(s3: aws_sdk_s3::Client, macie: aws_sdk_macie2::Client) -> TriggerMacieScan {
    TriggerMacieScan {
        s3,
        macie,
        config: config(),
    }
}

fn no_macie(calls: &Calls) -> aws_sdk_macie2::Client {
    client!(aws_sdk_macie2, calls, [])
}

fn later() -> Deadline {
    Deadline::after(Duration::from_secs(600))
}

async fn run(handler: &TriggerMacieScan, payload: Value) -> Result<ScanProgress, PipelineError> {
    invoke(handler, payload, later())
        .await
        .map(|value| serde_json::from_value(value).unwrap())
}

#[tokio::test]
async fn each_object_is_moved_by_one_copy_that_merges_tags_then_a_conditional_delete() {
    let raw = raw_bucket(None);
    let handler = handler(raw.s3.clone(), no_macie(&raw.calls));
    let progress = run(&handler, first_call("exec-1")).await.unwrap();

    let ScanProgress::ReadyToScan { workflow_id, tally } = progress else {
        panic!("expected READY_TO_SCAN, got {progress:?}");
    };
    assert_eq!(workflow_id.as_str(), "wf-1");
    assert_eq!((tally.moved, tally.moved_bytes), (2, 20));

    let copies = raw.copies.all();
    assert_eq!(copies.len(), 2);
    let by_key = |key: &str| copies.iter().find(|c| c.key() == Some(key)).unwrap();
    let copy = by_key(KEY);
    assert_eq!(copy.bucket(), Some("scan"));
    assert_eq!(
        copy.copy_source(),
        Some("raw/dir/a%20b%2Bc%25d%3Fe%23f.csv")
    );
    assert_eq!(copy.copy_source_if_match(), Some("\"e1\""));
    // Written only where scan-stage has nothing: a key holds one version there at a time.
    assert_eq!(copy.if_none_match(), Some("*"));
    // The metadata is the source's, headers included, with the landing record added.
    assert_eq!(copy.metadata_directive(), Some(&MetadataDirective::Replace));
    assert_eq!(copy.content_type(), Some("text/csv"));
    let metadata = copy.metadata().unwrap();
    assert_eq!(metadata["origin"], "sftp");
    assert_eq!(metadata[landing::RAW_ETAG], "\"e1\"");
    assert!(landing::LandedAt::parse(&metadata[landing::LANDED_AT]).is_some());
    assert!(!metadata.contains_key(landing::RAW_VERSION_ID));
    // The tags go with the copy, merged: the reference replaced them afterwards, in a third call.
    assert_eq!(copy.tagging_directive(), Some(&TaggingDirective::Replace));
    assert_eq!(copy.tagging(), Some("team=payments&WorkflowId=wf-1"));
    assert_eq!(
        by_key(UNICODE_KEY).copy_source(),
        Some("raw/caf%C3%A9/%E6%97%A5%E6%9C%AC.txt")
    );

    let deletes = raw.deletes.all();
    assert_eq!(deletes.len(), 2);
    for delete in &deletes {
        assert_eq!(delete.bucket(), Some("raw"));
        let expected = if delete.key() == Some(KEY) {
            "\"e1\""
        } else {
            "\"e2\""
        };
        assert_eq!(
            delete.if_match(),
            Some(expected),
            "delete only the copied version"
        );
    }
    for key in [KEY, UNICODE_KEY] {
        let events = raw.events.all();
        let copied = events
            .iter()
            .position(|e| *e == format!("copy {key}"))
            .unwrap();
        let deleted = events
            .iter()
            .position(|e| *e == format!("delete {key}"))
            .unwrap();
        assert!(copied < deleted, "{key} was deleted before it was copied");
    }
    assert_eq!(raw.calls.count("PutObjectTagging"), 0);
    raw.calls.assert_declared_for("TriggerMacieScan");
}

#[tokio::test]
async fn a_failed_copy_keeps_the_source_and_fails_the_step() {
    let raw = raw_bucket(Some((500, "InternalError")));
    let handler = handler(raw.s3.clone(), no_macie(&raw.calls));
    let err = run(&handler, first_call("exec-1")).await.unwrap_err();
    assert_eq!(err.name(), "TransientAwsError");
    assert!(
        raw.deletes.all().is_empty(),
        "nothing may be deleted after a failed copy"
    );
}

#[tokio::test]
async fn a_denied_copy_is_a_permanent_error() {
    let raw = raw_bucket(Some((403, "AccessDenied")));
    let handler = handler(raw.s3.clone(), no_macie(&raw.calls));
    let err = run(&handler, first_call("exec-1")).await.unwrap_err();
    assert_eq!(err.name(), "AwsRequestFailed");
    assert!(err.to_string().contains("AccessDenied"), "{err}");
    assert!(raw.deletes.all().is_empty());
}

#[tokio::test]
async fn an_object_overwritten_since_it_was_listed_stays_in_raw_for_the_next_run() {
    let calls = Calls::default();
    let list = mock!(aws_sdk_s3::Client::list_objects_v2)
        .then_output(|| listing(&[(KEY, "\"e1\""), (UNICODE_KEY, "\"e2\"")]));
    let head = mock!(aws_sdk_s3::Client::head_object)
        .then_http_response(|| s3_error(412, "PreconditionFailed"));
    let s3 = client!(aws_sdk_s3, calls, [list, head]);
    let handler = handler(s3, no_macie(&calls));
    let progress = run(&handler, first_call("exec-1")).await.unwrap();
    let ScanProgress::NothingToScan { tally, .. } = progress else {
        panic!("nothing was moved, got {progress:?}");
    };
    assert_eq!((tally.moved, tally.deferred), (0, 2));
    assert!(
        tally.deferrals[0].reason.contains("overwritten"),
        "{:?}",
        tally.deferrals
    );
    assert_eq!(calls.count("CopyObject") + calls.count("DeleteObject"), 0);
}

#[tokio::test]
async fn an_object_without_room_for_the_gate_tags_stays_in_raw_and_is_reported() {
    let calls = Calls::default();
    let list = mock!(aws_sdk_s3::Client::list_objects_v2)
        .then_output(|| listing(&[("full.csv", "\"e\"")]));
    let nine: Vec<(String, String)> = (0..9).map(|i| (format!("k{i}"), "v".to_owned())).collect();
    let tagging = mock!(aws_sdk_s3::Client::get_object_tagging).then_output(move || {
        let pairs: Vec<(&str, &str)> = nine.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        tags(&pairs)
    });
    let head = mock!(aws_sdk_s3::Client::head_object)
        .then_output(|| HeadObjectOutput::builder().e_tag("\"e\"").build());
    let s3 = client!(aws_sdk_s3, calls, [list, tagging, head]);
    let handler = handler(s3, no_macie(&calls));
    let progress = run(&handler, first_call("exec-1")).await.unwrap();
    let ScanProgress::NothingToScan { tally, .. } = progress else {
        panic!("got {progress:?}");
    };
    assert_eq!(tally.rejected, 1);
    assert_eq!(tally.rejections[0].key, "full.csv");
    assert!(
        tally.rejections[0].reason.contains("S3 allows 10"),
        "{}",
        tally.rejections[0].reason
    );
    assert_eq!(calls.count("CopyObject") + calls.count("DeleteObject"), 0);
}

fn empty_raw(calls: &Calls) -> (aws_sdk_s3::Client, Captured<ListObjectsV2Input>) {
    let lists = Captured::default();
    let captured = lists.clone();
    let list = mock!(aws_sdk_s3::Client::list_objects_v2).then_compute_output(move |input| {
        captured.push(input.clone());
        listing(&[])
    });
    (client!(aws_sdk_s3, calls, [list]), lists)
}

#[tokio::test]
async fn an_empty_raw_bucket_is_nothing_to_scan_unless_an_earlier_attempt_may_have_moved_objects() {
    let calls = Calls::default();
    let (s3, _) = empty_raw(&calls);
    let handler = handler(s3, no_macie(&calls));
    let first = run(&handler, first_call("exec-1")).await.unwrap();
    assert!(
        matches!(first, ScanProgress::NothingToScan { .. }),
        "{first:?}"
    );
    assert_eq!(
        serde_json::to_value(&first).unwrap()["status"],
        "NOTHING_TO_SCAN"
    );

    // A retried first call cannot know what the failed attempt moved: scan whatever it tagged.
    let mut retried = first_call("exec-1");
    retried["retryCount"] = json!(1);
    let second = run(&handler, retried).await.unwrap();
    assert!(
        matches!(second, ScanProgress::ReadyToScan { .. }),
        "{second:?}"
    );
}

#[tokio::test]
async fn near_the_deadline_the_step_returns_a_continuation_and_resumes_from_it() {
    let calls = Calls::default();
    let (s3, lists) = empty_raw(&calls);
    let handler = handler(s3, no_macie(&calls));
    let out_of_time = Deadline::after(Duration::from_secs(1));
    let value = invoke(&handler, first_call("exec-1"), out_of_time)
        .await
        .unwrap();
    assert_eq!(value["status"], "MOVING");
    assert_eq!(
        calls.count("ListObjectsV2"),
        0,
        "no work starts inside the margin"
    );

    let mut resumed = first_call("exec-1");
    resumed["progress"] = json!({"status": "MOVING", "workflowId": "wf-1", "resumeAfter": "k1",
        "tally": {"moved": 5, "movedBytes": 50, "heldForReview": 0, "deleted": 0, "deferred": 0,
                  "vanished": 0, "rejected": 0, "rejections": []}});
    let progress = run(&handler, resumed).await.unwrap();
    assert_eq!(lists.all()[0].start_after(), Some("k1"));
    let ScanProgress::ReadyToScan { tally, .. } = progress else {
        panic!("{progress:?}");
    };
    assert_eq!(tally.moved, 5, "counts carry over continuations");
}

fn ready(execution: &str) -> Value {
    json!({"executionInput": {"id": "wf-1"}, "executionName": execution, "retryCount": 0,
           "progress": {"status": "READY_TO_SCAN", "workflowId": "wf-1",
                        "tally": serde_json::to_value(Tally { moved: 2, ..Tally::default() }).unwrap()}})
}

#[tokio::test]
async fn the_job_is_created_once_per_execution_scoped_to_the_workflow_tag() {
    let calls = Calls::default();
    let requests: Captured<CreateClassificationJobInput> = Captured::default();
    let captured = requests.clone();
    let create = mock!(aws_sdk_macie2::Client::create_classification_job).then_compute_output(
        move |input| {
            captured.push(input.clone());
            CreateClassificationJobOutput::builder()
                .job_id("0123456789abcdef0123456789abcdef")
                .build()
        },
    );
    let macie = client!(aws_sdk_macie2, calls, [create]);
    let s3 = client!(aws_sdk_s3, calls, []);
    let handler = handler(s3, macie);

    let progress = run(&handler, ready("exec-1")).await.unwrap();
    let ScanProgress::JobStarted { job_id, tally, .. } = progress else {
        panic!("{progress:?}");
    };
    assert_eq!(job_id, "0123456789abcdef0123456789abcdef");
    assert_eq!(tally.moved, 2);
    // A retried invocation sends the same token, so Macie returns the same job.
    run(&handler, ready("exec-1")).await.unwrap();

    let requests = requests.all();
    let workflow = WorkflowId::parse("wf-1").unwrap();
    assert_eq!(
        requests[0].client_token(),
        Some(client_token(&workflow, "exec-1").as_str())
    );
    assert_eq!(requests[0].client_token(), requests[1].client_token());
    let request = &requests[0];
    assert_eq!(request.job_type().map(|t| t.as_str()), Some("ONE_TIME"));
    assert_eq!(request.sampling_percentage(), Some(100));
    assert_eq!(request.custom_data_identifier_ids(), ["cdi-1".to_owned()]);
    let definition = request.s3_job_definition().unwrap();
    let buckets = &definition.bucket_definitions()[0];
    assert_eq!(
        (buckets.account_id(), buckets.buckets()),
        (Some("123456789012"), &["scan".to_owned()][..])
    );
    let term = definition.scoping().unwrap().includes().unwrap().and()[0]
        .tag_scope_term()
        .unwrap();
    assert_eq!(term.key(), Some("TAG"));
    assert_eq!(term.target().map(|t| t.as_str()), Some("S3_OBJECT"));
    assert_eq!(term.comparator().map(|c| c.as_str()), Some("EQ"));
    let value = &term.tag_values()[0];
    assert_eq!(
        (value.key(), value.value()),
        (Some("WorkflowId"), Some("wf-1"))
    );
    // Creating the job moves nothing: a retry cannot tag objects the job did not see.
    assert!(
        calls
            .list()
            .iter()
            .all(|op| op == "CreateClassificationJob"),
        "{:?}",
        calls.list()
    );
    calls.assert_declared_for("TriggerMacieScan");
}

#[tokio::test]
async fn another_execution_reusing_the_id_gets_its_own_job() {
    let calls = Calls::default();
    let requests: Captured<CreateClassificationJobInput> = Captured::default();
    let captured = requests.clone();
    let create = mock!(aws_sdk_macie2::Client::create_classification_job).then_compute_output(
        move |input| {
            captured.push(input.clone());
            CreateClassificationJobOutput::builder().job_id("j").build()
        },
    );
    let handler = handler(
        client!(aws_sdk_s3, calls, []),
        client!(aws_sdk_macie2, calls, [create]),
    );
    run(&handler, ready("exec-1")).await.unwrap();
    run(&handler, ready("exec-2")).await.unwrap();
    let requests = requests.all();
    assert_ne!(requests[0].client_token(), requests[1].client_token());
}

async fn create_failing_with(status: u16, code: &str) -> PipelineError {
    let calls = Calls::default();
    let code = code.to_owned();
    let create = mock!(aws_sdk_macie2::Client::create_classification_job)
        .then_http_response(move || json_error(status, &code));
    let handler = handler(
        client!(aws_sdk_s3, calls, []),
        client!(aws_sdk_macie2, calls, [create]),
    );
    run(&handler, ready("exec-1")).await.unwrap_err()
}

#[tokio::test]
async fn a_failed_job_creation_is_an_error_not_nothing_to_scan() {
    // The reference swallowed this and ended the run as "NoKeysFound", objects stranded.
    let err = create_failing_with(403, "AccessDeniedException").await;
    assert_eq!(err.name(), "AwsRequestFailed");
    assert!(err.to_string().contains("CreateClassificationJob"), "{err}");
    let err = create_failing_with(429, "ThrottlingException").await;
    assert_eq!(err.name(), "TransientAwsError");
    let err = create_failing_with(402, "ServiceQuotaExceededException").await;
    assert_eq!(err.name(), "AwsRequestFailed");
}

#[tokio::test]
async fn bad_execution_input_is_a_clear_invalid_input_error() {
    let calls = Calls::default();
    let handler = handler(client!(aws_sdk_s3, calls, []), no_macie(&calls));
    let mut payload = first_call("exec-1");
    payload["executionInput"] = json!({"id": 5});
    let err = run(&handler, payload).await.unwrap_err();
    assert_eq!(err.name(), "InvalidInput");
    assert!(err.to_string().contains("`id` must be a string"), "{err}");

    let mut payload = first_call("exec-1");
    payload["surprise"] = json!(true);
    let err = run(&handler, payload).await.unwrap_err();
    assert_eq!(err.name(), "InvalidInput");
    assert!(err.to_string().contains("surprise"), "{err}");
    assert!(calls.list().is_empty(), "nothing is touched on bad input");
}

#[tokio::test]
async fn the_step_refuses_to_run_after_the_job_started() {
    let calls = Calls::default();
    let handler = handler(client!(aws_sdk_s3, calls, []), no_macie(&calls));
    let mut payload = first_call("exec-1");
    payload["progress"] = json!({"status": "JOB_STARTED", "workflowId": "wf-1", "jobId": "j",
        "tally": serde_json::to_value(Tally::default()).unwrap()});
    let err = run(&handler, payload).await.unwrap_err();
    assert_eq!(err.name(), "InvalidInput");
}

/// Versioned raw: the copy reads the current version (never one by its id: a version the gate
/// took stays in raw, noncurrent, and by its id could be taken again), and if S3 copied
/// another version than the one looked at (the same bytes uploaded again in between), the copy
/// is taken back and the object left for the next run.
#[tokio::test]
async fn with_versioned_raw_the_copy_reads_the_current_version_and_is_taken_back_if_it_was_another()
{
    let calls = Calls::default();
    let list =
        mock!(aws_sdk_s3::Client::list_objects_v2).then_output(|| listing(&[("k.csv", "\"e1\"")]));
    let head = mock!(aws_sdk_s3::Client::head_object).then_output(|| {
        HeadObjectOutput::builder()
            .e_tag("\"e1\"")
            .content_length(10)
            .version_id("v-looked-at")
            .build()
    });
    let tagging = mock!(aws_sdk_s3::Client::get_object_tagging).then_output(|| tags(&[]));
    let copies: Captured<CopyObjectInput> = Captured::default();
    let captured = copies.clone();
    let copy = mock!(aws_sdk_s3::Client::copy_object).then_compute_output(move |input| {
        captured.push(input.clone());
        CopyObjectOutput::builder()
            .copy_source_version_id("v-uploaded-since")
            .version_id("v-copy")
            .build()
    });
    let deletes: Captured<DeleteObjectInput> = Captured::default();
    let captured = deletes.clone();
    let delete = mock!(aws_sdk_s3::Client::delete_object).then_compute_output(move |input| {
        captured.push(input.clone());
        DeleteObjectOutput::builder().build()
    });
    let s3 = client!(aws_sdk_s3, calls, [list, head, tagging, copy, delete]);
    let handler = handler(s3, no_macie(&calls));
    let progress = run(&handler, first_call("exec-1")).await.unwrap();
    let ScanProgress::NothingToScan { tally, .. } = progress else {
        panic!("{progress:?}");
    };
    assert_eq!((tally.moved, tally.deferred), (0, 1));
    let copies = copies.all();
    assert_eq!(copies[0].copy_source(), Some("raw/k.csv"), "no versionId");
    assert_eq!(copies[0].copy_source_if_match(), Some("\"e1\""));
    assert_eq!(
        copies[0].metadata().unwrap()[landing::RAW_VERSION_ID],
        "v-looked-at"
    );
    let deletes = deletes.all();
    assert_eq!(
        deletes.len(),
        1,
        "the copy is taken back, raw is left alone"
    );
    assert_eq!(
        (deletes[0].bucket(), deletes[0].version_id()),
        (Some("scan"), Some("v-copy"))
    );
    calls.assert_declared_for("TriggerMacieScan");
}
