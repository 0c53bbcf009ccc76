//! The same key, many versions: a daily export rewritten while its previous version is held,
//! two versions of one key held by two runs and decided differently, a version meeting a newer
//! (or a foreign) object in scanned-data, and a key landing again while its previous version is
//! still moving. In each case no version replaces a newer one, nothing is lost, and what was
//! kept aside is reported with where it is. Each runs with and without `BucketVersioning`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use e2e::macie_pipeline_local::faults::{FaultError, FaultRule};
use e2e::macie_pipeline_local::sns::Delivered;
use e2e::{Bucket, Gate, http, link_after};
use serde_json::{Value, json};

const KEY: &str = "daily/export.csv";
/// Two SSNs: Macie flags it.
const SENSITIVE: &str = "name,ssn\nAda,ssn 123-45-6789\nBob,ssn 219-09-9999\n";
const CLEAN: &str = "name,city\nAda,Lyon\nBob,Turin\n";
/// Another flagged version of the same key.
const SENSITIVE_TOO: &str = "name,card\nEve,card 4111 1111 1111 1111\n";

const PIPELINE: [Bucket; 4] = [
    Bucket::Raw,
    Bucket::ScanStage,
    Bucket::ManualReview,
    Bucket::ScannedData,
];

async fn gate(versioning: bool) -> Gate {
    Gate::start_with(|config| {
        if versioning {
            config
                .parameters
                .insert("BucketVersioning".into(), "Enabled".into());
        }
    })
    .await
}

/// The review request of `workflow`, once it is sent.
async fn review_request(gate: &Gate, workflow: &str) -> Delivered {
    let start = Instant::now();
    loop {
        if let Some(email) = gate
            .emails()
            .into_iter()
            .find(|e| e.is_review_request() && e.message.contains(&format!("run {workflow}")))
        {
            return email;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no review request for {workflow}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts a run of `workflow` and waits until it asks for review.
async fn held_run(gate: &Gate, workflow: &str) -> (String, Delivered) {
    let arn = gate.start_run(workflow, json!({"id": workflow})).await;
    let email = review_request(gate, workflow).await;
    gate.reaches(&arn, "triggerManualApproval").await;
    (arn, email)
}

/// The notices of versions kept aside.
fn kept_aside_notices(gate: &Gate) -> Vec<Delivered> {
    gate.emails()
        .into_iter()
        .filter(|e| {
            e.subject
                .as_deref()
                .is_some_and(|s| s.contains("older versions kept aside"))
        })
        .collect()
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("text")
}

/// Every version of every object in the pipeline buckets, with its content: with versioning,
/// noncurrent versions included.
async fn every_copy(gate: &Gate) -> Vec<(Bucket, String, String)> {
    let mut copies = Vec::new();
    for bucket in PIPELINE {
        let name = gate.bucket(bucket);
        let listed = gate
            .s3
            .list_object_versions()
            .bucket(&name)
            .send()
            .await
            .expect("ListObjectVersions");
        assert!(!listed.is_truncated().unwrap_or(false));
        for version in listed.versions() {
            let key = version.key().unwrap().to_owned();
            let body = gate
                .s3
                .get_object()
                .bucket(&name)
                .key(&key)
                .set_version_id(version.version_id().map(str::to_owned))
                .send()
                .await
                .expect("GetObject of a version")
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes();
            copies.push((bucket, key, text(body.to_vec())));
        }
    }
    copies
}

fn holding(copies: &[(Bucket, String, String)], content: &str) -> Vec<(Bucket, String)> {
    copies
        .iter()
        .filter(|(_, _, body)| body == content)
        .map(|(bucket, key, _)| (*bucket, key.clone()))
        .collect()
}

/// The run's output as the execution reports it.
async fn output(gate: &Gate, arn: &str) -> Value {
    serde_json::from_str(gate.describe(arn).await.output().unwrap_or("null")).unwrap()
}

/// The scenario: v1 (two SSNs) is held by run-1, v2 (clean) passes in run-2, then the
/// reviewer approves run-1. v2 stays in scanned-data; v1 stays in manual-review, reported.
async fn an_approval_after_a_newer_version_passed_keeps_the_newer(versioning: bool) {
    let gate = gate(versioning).await;
    gate.upload(KEY, SENSITIVE, &[("team", "crm")], &[]).await;
    let (run1, request) = held_run(&gate, "run-1").await;
    assert_eq!(text(gate.body(Bucket::ManualReview, KEY).await), SENSITIVE);

    gate.upload(KEY, CLEAN, &[("team", "crm")], &[]).await;
    let run2 = gate.start_run("run-2", json!({"id": "run-2"})).await;
    gate.ends_with(&run2, "SUCCEEDED").await;
    assert_eq!(text(gate.body(Bucket::ScannedData, KEY).await), CLEAN);

    let approve = link_after(&request.message, "Release all");
    assert_eq!(http::decide(&approve).await.status(), 200);
    gate.ends_with(&run1, "SUCCEEDED").await;

    // The newer version stays; the approved older one is kept, recoverable.
    assert_eq!(text(gate.body(Bucket::ScannedData, KEY).await), CLEAN);
    assert_eq!(text(gate.body(Bucket::ManualReview, KEY).await), SENSITIVE);
    let tags = gate.tags(Bucket::ManualReview, KEY).await;
    assert_eq!(
        (
            tags["WorkflowId"].as_str(),
            tags["SensitiveDataFound"].as_str()
        ),
        ("run-1", "true")
    );
    let release = output(&gate, &run1).await["release"]["Payload"]["tally"].clone();
    assert_eq!(
        (release["moved"].as_u64(), release["superseded"].as_u64()),
        (Some(0), Some(1))
    );

    // The run's notification says so, and where the version is.
    let location = format!("s3://{}/{KEY}", gate.bucket(Bucket::ManualReview));
    let notices = kept_aside_notices(&gate);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].message.contains("run-1") && notices[0].message.contains("chose to release")
    );
    assert!(
        notices[0]
            .message
            .contains(&format!("- {KEY}: not released (landed "))
            && notices[0]
                .message
                .contains("a newer version was already in scanned-data"),
        "{}",
        notices[0].message
    );
    // So does the decision page, reopened.
    let page = http::get(&approve).await;
    assert_eq!(page.status(), 200);
    let body = page.body();
    assert!(
        body.contains("Decided for release but not released (1)"),
        "{body}"
    );
    assert!(
        body.contains("a newer version was already in scanned-data"),
        "{body}"
    );
    assert!(body.contains(&location), "{body}");
    // And the review's outcome record beside its decisions.
    let records = gate
        .s3
        .list_objects_v2()
        .bucket(gate.bucket(Bucket::Manifests))
        .prefix("approvals/")
        .send()
        .await
        .unwrap();
    let outcome = records
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .find(|k| k.ends_with("/outcome.json"))
        .expect("an outcome record");
    let outcome: Value =
        serde_json::from_slice(&gate.body(Bucket::Manifests, outcome).await).unwrap();
    assert_eq!(outcome["released"], 0);
    assert_eq!(outcome["superseded"][0]["key"], KEY);
    assert_eq!(outcome["superseded"][0]["keptAt"], KEY);
    assert_eq!(outcome["superseded"][0]["by"], "NEWER");

    // Nothing else anywhere: every version is where its outcome puts it.
    let copies = every_copy(&gate).await;
    assert_eq!(
        holding(&copies, CLEAN),
        if versioning {
            // Raw keeps what the gate took there, as a noncurrent version.
            vec![
                (Bucket::Raw, KEY.to_owned()),
                (Bucket::ScannedData, KEY.to_owned()),
            ]
        } else {
            vec![(Bucket::ScannedData, KEY.to_owned())]
        }
    );
    assert!(holding(&copies, SENSITIVE).contains(&(Bucket::ManualReview, KEY.to_owned())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approval_after_a_newer_version_passed_keeps_the_newer_version() {
    an_approval_after_a_newer_version_passed_keeps_the_newer(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approval_after_a_newer_version_passed_keeps_the_newer_version_with_versioning() {
    an_approval_after_a_newer_version_passed_keeps_the_newer(true).await;
}

/// Two runs hold two versions of one key; each decision acts on its own version.
async fn two_held_versions_are_decided_apart(versioning: bool, deny_the_older: bool) {
    let gate = gate(versioning).await;
    gate.upload(KEY, SENSITIVE, &[], &[]).await;
    let (run1, first) = held_run(&gate, "run-1").await;
    gate.upload(KEY, SENSITIVE_TOO, &[], &[]).await;
    let (run2, second) = held_run(&gate, "run-2").await;

    // Both survive: the second waits aside, and its request says where.
    let held = gate.sorted_keys(Bucket::ManualReview).await;
    assert_eq!(held.len(), 2, "{held:?}");
    let aside = held
        .iter()
        .find(|k| k.starts_with("gate-versions/") && k.ends_with(KEY))
        .expect("the second version held aside")
        .clone();
    assert_eq!(text(gate.body(Bucket::ManualReview, KEY).await), SENSITIVE);
    assert_eq!(
        text(gate.body(Bucket::ManualReview, &aside).await),
        SENSITIVE_TOO
    );
    assert!(
        second.message.contains("Held aside") && second.message.contains(&aside),
        "{}",
        second.message
    );
    let page = http::get(&link_after(&second.message, "Release all")).await;
    assert!(page.body().contains(&aside), "{}", page.body());

    // The reviewers decide late and in either order: the later run first.
    let (denied, kept) = if deny_the_older {
        http::decide(&link_after(&second.message, "Release all")).await;
        gate.ends_with(&run2, "SUCCEEDED").await;
        http::decide(&link_after(&first.message, "Delete all")).await;
        gate.ends_with(&run1, "SUCCEEDED").await;
        (SENSITIVE, SENSITIVE_TOO)
    } else {
        http::decide(&link_after(&second.message, "Delete all")).await;
        gate.ends_with(&run2, "SUCCEEDED").await;
        http::decide(&link_after(&first.message, "Release all")).await;
        gate.ends_with(&run1, "SUCCEEDED").await;
        (SENSITIVE_TOO, SENSITIVE)
    };
    assert_eq!(text(gate.body(Bucket::ScannedData, KEY).await), kept);
    assert!(gate.keys(Bucket::ManualReview).await.is_empty());
    assert!(kept_aside_notices(&gate).is_empty());
    let copies = every_copy(&gate).await;
    assert_eq!(
        holding(&copies, denied),
        vec![],
        "the denied version must be gone from every bucket, every version included"
    );
    let kept_at = holding(&copies, kept);
    assert!(
        kept_at.contains(&(Bucket::ScannedData, KEY.to_owned())),
        "{kept_at:?}"
    );
    assert!(
        kept_at
            .iter()
            .all(|(bucket, _)| *bucket == Bucket::ScannedData
                || (versioning && *bucket == Bucket::Raw)),
        "{kept_at:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_held_versions_the_newer_approved_the_older_denied() {
    two_held_versions_are_decided_apart(false, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_held_versions_the_older_approved_the_newer_denied() {
    two_held_versions_are_decided_apart(false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_held_versions_decided_apart_leave_no_version_of_the_denied_one() {
    two_held_versions_are_decided_apart(true, true).await;
    two_held_versions_are_decided_apart(true, false).await;
}

/// Writes `body` straight into scanned-data, as something other than this run would have.
async fn put_into_scanned_data(
    gate: &Gate,
    key: &str,
    body: &str,
    tags: &[(&str, &str)],
    metadata: &[(&str, &str)],
) {
    let tag_set: Vec<macie_pipeline::tags::Tag> = tags
        .iter()
        .map(|(k, v)| macie_pipeline::tags::Tag::new(*k, *v))
        .collect();
    let mut request = gate
        .s3
        .put_object()
        .bucket(gate.bucket(Bucket::ScannedData))
        .key(key)
        .body(ByteStream::from(body.as_bytes().to_vec()))
        .tagging(macie_pipeline::tags::encode(&tag_set));
    for (name, value) in metadata {
        request = request.metadata(*name, *value);
    }
    request.send().await.expect("PutObject");
}

/// Routing passes versions to scanned-data where each key already holds something: an object
/// the gate did not write (a backfill), one the gate wrote before it recorded landings, and a
/// version that landed later. Only the second is replaced; the others stay, and the passing
/// versions are kept aside, reported.
async fn routing_replaces_only_older_versions_the_gate_wrote(versioning: bool) {
    let gate = gate(versioning).await;
    put_into_scanned_data(&gate, "backfill.csv", "written by a backfill job", &[], &[]).await;
    put_into_scanned_data(
        &gate,
        "legacy.csv",
        "passed before the upgrade",
        &[("WorkflowId", "wf-2026-11-01")],
        &[],
    )
    .await;
    put_into_scanned_data(
        &gate,
        "future.csv",
        "landed later",
        &[("WorkflowId", "wf-later")],
        &[
            ("gate-landed-at", "2099-01-01T00:00:00.000000Z"),
            ("gate-raw-etag", "\"0123\""),
        ],
    )
    .await;
    for key in ["backfill.csv", "legacy.csv", "future.csv"] {
        gate.upload(key, format!("today's {key}"), &[], &[]).await;
    }
    let arn = gate.start_run("daily", json!({"id": "daily"})).await;
    gate.ends_with(&arn, "SUCCEEDED").await;

    let scanned = |key: &'static str| {
        let gate = &gate;
        async move { text(gate.body(Bucket::ScannedData, key).await) }
    };
    assert_eq!(scanned("backfill.csv").await, "written by a backfill job");
    assert_eq!(scanned("legacy.csv").await, "today's legacy.csv");
    assert_eq!(scanned("future.csv").await, "landed later");
    let aside: BTreeMap<String, String> = {
        let mut aside = BTreeMap::new();
        for key in gate.keys(Bucket::ManualReview).await {
            let body = text(gate.body(Bucket::ManualReview, &key).await);
            aside.insert(key, body);
        }
        aside
    };
    assert_eq!(aside.len(), 2, "{aside:?}");
    for (key, body) in &aside {
        assert!(key.starts_with("gate-versions/"), "{key}");
        assert!(
            (key.ends_with("/backfill.csv") && body == "today's backfill.csv")
                || (key.ends_with("/future.csv") && body == "today's future.csv"),
            "{key}: {body}"
        );
    }
    let routing = output(&gate, &arn).await["routing"]["Payload"]["tally"].clone();
    assert_eq!(routing["superseded"], 2);
    let notices = kept_aside_notices(&gate);
    assert_eq!(notices.len(), 1);
    let message = &notices[0].message;
    assert!(
        message.contains("- backfill.csv: not passed on (landed ")
            && message
                .contains("scanned-data holds an object at this key that the gate did not write")
            && message.contains("a newer version was already in scanned-data (landed 2099-01-01"),
        "{message}"
    );
    for key in aside.keys() {
        assert!(message.contains(key.as_str()), "{key} not in {message}");
    }
    assert!(gate.keys(Bucket::ScanStage).await.is_empty());
    assert!(gate.keys(Bucket::Raw).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routing_replaces_only_older_versions_the_gate_wrote_itself() {
    routing_replaces_only_older_versions_the_gate_wrote(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routing_replaces_only_older_versions_the_gate_wrote_itself_with_versioning() {
    routing_replaces_only_older_versions_the_gate_wrote(true).await;
}

/// v2 lands while v1 is being scanned, and a second run starts: v2 waits in raw, deferred with
/// the reason, until v1 has moved on; the next run takes it and it replaces v1.
async fn a_version_landing_while_the_previous_is_scanned_waits(versioning: bool) {
    let gate = Gate::start_with(|config| {
        // Two seconds of Macie start-up, so run-1's job is still running when run-2 starts.
        config.macie.startup_delay_seconds = 2000.0;
        if versioning {
            config
                .parameters
                .insert("BucketVersioning".into(), "Enabled".into());
        }
    })
    .await;
    gate.upload(KEY, CLEAN, &[], &[]).await;
    let run1 = gate.start_run("run-1", json!({"id": "run-1"})).await;
    gate.reaches(&run1, "pollForCompletionWait").await;
    assert_eq!(gate.keys(Bucket::ScanStage).await, vec![KEY]);

    let newer = "name,city\nAda,Lyon\nBob,Turin\nCy,Oslo\n";
    gate.upload(KEY, newer, &[], &[]).await;
    let run2 = gate.start_run("run-2", json!({"id": "run-2"})).await;
    gate.ends_with(&run2, "SUCCEEDED").await;
    let scan = output(&gate, &run2).await["scan"]["Payload"].clone();
    assert_eq!(scan["status"], "NOTHING_TO_SCAN");
    assert_eq!(scan["tally"]["deferred"], 1);
    let reason = scan["tally"]["deferrals"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("earlier version") && reason.contains("run-1"),
        "{reason}"
    );
    assert_eq!(text(gate.body(Bucket::Raw, KEY).await), newer);

    gate.ends_with(&run1, "SUCCEEDED").await;
    assert_eq!(text(gate.body(Bucket::ScannedData, KEY).await), CLEAN);
    let run3 = gate.start_run("run-3", json!({"id": "run-3"})).await;
    gate.ends_with(&run3, "SUCCEEDED").await;
    assert_eq!(text(gate.body(Bucket::ScannedData, KEY).await), newer);
    assert!(gate.keys(Bucket::Raw).await.is_empty());
    if versioning {
        // The older version stays in scanned-data's history, noncurrent.
        let copies = every_copy(&gate).await;
        assert!(holding(&copies, CLEAN).contains(&(Bucket::ScannedData, KEY.to_owned())));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_landing_while_the_previous_is_scanned_waits_in_raw() {
    a_version_landing_while_the_previous_is_scanned_waits(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_landing_while_the_previous_is_scanned_waits_in_raw_with_versioning() {
    a_version_landing_while_the_previous_is_scanned_waits(true).await;
}

/// v2 lands while the gate is copying v1 out of raw: the copy, pinned to v1's ETag, fails, v1
/// is not taken (it was replaced by the upstream before the gate had it), and v2 waits for the
/// next run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_landing_during_its_predecessors_copy_is_taken_next_time() {
    let gate = Gate::start().await;
    gate.upload(KEY, CLEAN, &[], &[]).await;
    gate.stack
        .faults()
        .add(FaultRule {
            service: "s3".into(),
            operation: Some("CopyObject".into()),
            error: FaultError::None,
            count: None,
            probability: None,
            latency_ms: Some(3000),
        })
        .unwrap();
    let run1 = gate.start_run("run-1", json!({"id": "run-1"})).await;
    gate.reaches(&run1, "triggerMacieScan").await;
    // Listing, HeadObject and GetObjectTagging are done well within this; the copy waits.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let newer = "name,city\nAda,Lyon\nBob,Turin\nCy,Oslo\n";
    gate.upload(KEY, newer, &[], &[]).await;
    gate.stack.faults().clear();
    gate.ends_with(&run1, "SUCCEEDED").await;
    let scan = output(&gate, &run1).await["scan"]["Payload"].clone();
    assert_eq!(scan["status"], "NOTHING_TO_SCAN", "{scan}");
    let reason = scan["tally"]["deferrals"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("overwritten"), "{reason}");
    assert_eq!(text(gate.body(Bucket::Raw, KEY).await), newer);
    let run2 = gate.start_run("run-2", json!({"id": "run-2"})).await;
    gate.ends_with(&run2, "SUCCEEDED").await;
    assert_eq!(text(gate.body(Bucket::ScannedData, KEY).await), newer);
    gate.only_in(Bucket::ScannedData, 1).await;
}

/// A conditional copy that races another write (409 `ConditionalRequestConflict`) is tried
/// again, and the run ends with every object once in its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conditional_write_conflict_is_retried() {
    let gate = Gate::start().await;
    for index in 0..4 {
        gate.upload(&format!("k{index}.csv"), CLEAN, &[], &[]).await;
    }
    gate.stack
        .faults()
        .add(FaultRule {
            service: "s3".into(),
            operation: Some("CopyObject".into()),
            error: FaultError::Conflict,
            count: Some(3),
            probability: None,
            latency_ms: None,
        })
        .unwrap();
    let arn = gate
        .start_run("conflicts", json!({"id": "conflicts"}))
        .await;
    gate.ends_with(&arn, "SUCCEEDED").await;
    assert_eq!(gate.stack.faults().injected(), 3);
    gate.only_in(Bucket::ScannedData, 4).await;
}

/// The same two cases with every copy made in parts (UploadPartCopy, then a conditional
/// CompleteMultipartUpload), as objects over 5 GiB are: the conditions and version ids hold on
/// that path too. The export is 6 MiB, so it is copied in two parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copies_in_parts_keep_versions_apart_too() {
    for versioning in [false, true] {
        let gate = Gate::start_with(|config| {
            for (variable, value) in [
                ("MULTIPART_COPY_THRESHOLD_BYTES", "1"),
                ("MULTIPART_PART_SIZE_BYTES", "5242880"),
            ] {
                config
                    .functions
                    .environment
                    .insert(variable.into(), value.into());
            }
            if versioning {
                config
                    .parameters
                    .insert("BucketVersioning".into(), "Enabled".into());
            }
        })
        .await;
        let padding = "n".repeat(6 * 1024 * 1024);
        let older = format!("name,ssn\nAda,ssn 123-45-6789\n{padding}\n");
        let newer = format!("name,city\nAda,Lyon\n{padding}\n");
        let denied = format!("name,card\nEve,card 4111 1111 1111 1111\n{padding}\n");
        gate.upload(
            KEY,
            older.clone(),
            &[("team", "crm")],
            &[("origin", "sftp")],
        )
        .await;
        let (run1, first) = held_run(&gate, "run-1").await;
        gate.upload(KEY, denied.clone(), &[], &[]).await;
        let (run2, second) = held_run(&gate, "run-2").await;
        gate.upload(KEY, newer.clone(), &[], &[]).await;
        // run-2's version is held aside; run-3's passes while both are held.
        let run3 = gate.start_run("run-3", json!({"id": "run-3"})).await;
        gate.ends_with(&run3, "SUCCEEDED").await;
        http::decide(&link_after(&second.message, "Delete all")).await;
        gate.ends_with(&run2, "SUCCEEDED").await;
        http::decide(&link_after(&first.message, "Release all")).await;
        gate.ends_with(&run1, "SUCCEEDED").await;

        assert_eq!(text(gate.body(Bucket::ScannedData, KEY).await), newer);
        assert_eq!(text(gate.body(Bucket::ManualReview, KEY).await), older);
        let head = gate
            .s3
            .head_object()
            .bucket(gate.bucket(Bucket::ManualReview))
            .key(KEY)
            .send()
            .await
            .unwrap();
        assert!(
            head.e_tag().unwrap().ends_with("-2\""),
            "copied in two parts"
        );
        assert_eq!(head.metadata().unwrap()["origin"], "sftp");
        assert_eq!(kept_aside_notices(&gate).len(), 1);
        let copies = every_copy(&gate).await;
        assert!(
            holding(&copies, &denied).is_empty(),
            "versioning {versioning}"
        );
    }
}
