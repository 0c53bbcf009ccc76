//! Objects Macie could not analyse never pass as clean: the gate reads the job's sensitive data
//! discovery results and holds skipped, unreadable and result-less objects for review.

use std::io::Write;
use std::time::Duration;

use e2e::{Bucket, Gate, http, link_after, listed_reason};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;

fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

/// The failure email of a run, once it has been sent.
async fn failure_email(gate: &Gate) -> String {
    for _ in 0..500 {
        if let Some(email) = gate.emails().into_iter().find(|e| {
            e.subject
                .as_deref()
                .is_some_and(|s| s.contains("run failed"))
        }) {
            return email.message;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no failure email: {:?}", gate.emails());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn binary_oversized_and_corrupt_objects_are_held_with_their_reasons() {
    let gate = Gate::start_with(|config| config.macie.size_limit_bytes = 4096).await;
    let mut corrupt = gzip("name,ssn\nAda,123-45-6789\n");
    corrupt.truncate(corrupt.len() - 12);
    let uploads: Vec<(&str, Vec<u8>)> = vec![
        ("photo.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec()),
        (
            "exports/huge.csv",
            "region,units\n".repeat(400).into_bytes(),
        ),
        ("exports/broken.csv.gz", corrupt),
        ("exports/clean.csv", b"region,units\nnorth,1\n".to_vec()),
        ("exports/clean.csv.gz", gzip("region,units\nsouth,2\n")),
        (
            "exports/cards.csv",
            b"customer,card\nAda,card 4111 1111 1111 1111\n".to_vec(),
        ),
    ];
    for (key, body) in uploads {
        gate.upload(key, body, &[], &[]).await;
    }
    let arn = gate
        .start_run("unanalysed", json!({"id": "wf-unanalysed"}))
        .await;
    let email = gate.approval_email().await;
    gate.reaches(&arn, "triggerManualApproval").await;

    let subject = email.subject.clone().unwrap();
    assert!(
        subject.starts_with(
            "Review needed: 4 objects, 1 with sensitive data (Medium), 3 not analysed"
        ),
        "{subject}"
    );
    for (key, reason) in [
        ("photo.png", "UNSUPPORTED_FILE_TYPE_EXCEPTION"),
        ("exports/huge.csv", "FILE_EXCEEDS_SIZE_LIMIT"),
        ("exports/broken.csv.gz", "MALFORMED_FILE"),
    ] {
        // A corrupt gzip may be read in part before it breaks: [skipped] or [partial].
        assert_eq!(
            listed_reason(&email.message, key),
            reason,
            "{}",
            email.message
        );
    }
    assert!(email.message.contains("CREDIT_CARD_NUMBER x1"));
    assert_eq!(
        gate.sorted_keys(Bucket::ManualReview).await,
        vec![
            "exports/broken.csv.gz",
            "exports/cards.csv",
            "exports/huge.csv",
            "photo.png"
        ]
    );
    assert_eq!(
        gate.sorted_keys(Bucket::ScannedData).await,
        vec!["exports/clean.csv", "exports/clean.csv.gz"],
        "only what Macie analysed completely and found clean passes"
    );
    for key in ["photo.png", "exports/huge.csv", "exports/broken.csv.gz"] {
        assert_eq!(
            gate.tags(Bucket::ManualReview, key).await["SensitiveDataFound"],
            "unknown"
        );
    }
    assert_eq!(
        gate.tags(Bucket::ManualReview, "exports/cards.csv").await["SensitiveDataFound"],
        "true"
    );

    // Denied: every held object goes, flagged or not analysed; the clean ones stay released.
    let response = http::decide(&link_after(&email.message, "Delete all")).await;
    assert_eq!(response.status(), 200);
    gate.ends_with(&arn, "SUCCEEDED").await;
    assert!(gate.keys(Bucket::ManualReview).await.is_empty());
    assert_eq!(gate.keys(Bucket::ScannedData).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_object_without_a_discovery_result_goes_to_review() {
    let gate = Gate::start().await;
    gate.stack.macie().withhold_result("lost.csv");
    gate.upload(
        "lost.csv",
        "region,units\nnorth,1\n",
        &[("team", "ops")],
        &[],
    )
    .await;
    gate.upload("kept.csv", "region,units\nsouth,2\n", &[], &[])
        .await;
    let arn = gate
        .start_run("no-result", json!({"id": "wf-no-result"}))
        .await;
    let email = gate.approval_email().await;
    gate.reaches(&arn, "triggerManualApproval").await;
    assert!(
        email
            .subject
            .as_deref()
            .unwrap()
            .starts_with("Review needed: 1 object Macie could not analyse"),
        "{:?}",
        email.subject
    );
    assert!(
        email.message.contains(
            "- [no discovery result] lost.csv (21 B)\n    Macie wrote no discovery result for this object"
        ),
        "{}",
        email.message
    );
    assert_eq!(gate.keys(Bucket::ManualReview).await, vec!["lost.csv"]);
    assert_eq!(gate.keys(Bucket::ScannedData).await, vec!["kept.csv"]);

    let response = http::decide(&link_after(&email.message, "Release all")).await;
    assert_eq!(response.status(), 200);
    gate.ends_with(&arn, "SUCCEEDED").await;
    let tags = gate.tags(Bucket::ScannedData, "lost.csv").await;
    assert_eq!(tags["SensitiveDataFound"], "unknown");
    assert_eq!(tags["team"], "ops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_results_location_the_run_fails_and_nothing_moves_on() {
    let gate = Gate::start_with(|config| config.configure_discovery_results = false).await;
    gate.upload("clean.csv", "region,units\nnorth,1\n", &[], &[])
        .await;
    gate.upload("cards.csv", "card 4111 1111 1111 1111\n", &[], &[])
        .await;
    let arn = gate
        .start_run("no-location", json!({"id": "wf-no-location"}))
        .await;
    gate.ends_with(&arn, "FAILED").await;
    let message = failure_email(&gate).await;
    assert!(
        message.contains("DiscoveryResultsNotConfigured")
            && message.contains("aws macie2 put-classification-export-configuration"),
        "{message}"
    );
    assert_eq!(
        gate.sorted_keys(Bucket::ScanStage).await,
        vec!["cards.csv", "clean.csv"],
        "both stay in scan-stage"
    );
    assert!(gate.keys(Bucket::ScannedData).await.is_empty());
    assert!(gate.keys(Bucket::ManualReview).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_results_are_waited_for() {
    // Results appear 100 s (workflow time) after COMPLETE; the gate retries every 30 s. At a
    // hundredth of real time, so the first read comes well within those 100 s (a second) even
    // on a loaded machine: at the usual thousandth, a tenth of a second was once not enough.
    let gate = Gate::start_with(|config| {
        config.time_scale = 0.01;
        config.macie.results_delay_seconds = 100.0;
    })
    .await;
    gate.upload("clean.csv", "region,units\nnorth,1\n", &[], &[])
        .await;
    let arn = gate.start_run("late", json!({"id": "wf-late"})).await;
    gate.ends_with(&arn, "SUCCEEDED").await;
    assert!(
        gate.explain(&arn)
            .contains("task failed: \"DiscoveryResultsIncomplete\""),
        "the gate waited: {}",
        gate.explain(&arn)
    );
    assert_eq!(gate.keys(Bucket::ScannedData).await, vec!["clean.csv"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn results_that_never_come_fail_the_run_after_a_bounded_wait() {
    let gate = Gate::start_with(|config| config.macie.results_delay_seconds = 1e9).await;
    gate.upload("clean.csv", "region,units\nnorth,1\n", &[], &[])
        .await;
    let arn = gate.start_run("never", json!({"id": "wf-never"})).await;
    gate.ends_with(&arn, "FAILED").await;
    let waits = gate
        .explain(&arn)
        .matches("task failed: \"DiscoveryResultsIncomplete\"")
        .count();
    assert_eq!(
        waits,
        11,
        "one attempt and ten retries: {}",
        gate.explain(&arn)
    );
    let message = failure_email(&gate).await;
    assert!(message.contains("DiscoveryResultsIncomplete"), "{message}");
    assert_eq!(gate.keys(Bucket::ScanStage).await, vec!["clean.csv"]);
    assert!(gate.keys(Bucket::ScannedData).await.is_empty());
}
