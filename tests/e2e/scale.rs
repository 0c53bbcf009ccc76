//! Runs larger than one invocation or one state payload can hold.

use std::time::Duration;

use e2e::{Bucket, Gate, http, link_after};
use serde_json::json;

async fn upload_many(gate: &Gate, count: usize, body: impl Fn(usize) -> String) {
    gate.upload_many(
        (0..count)
            .map(|i| (format!("many/{i:05}.txt"), body(i)))
            .collect(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_objects_move_through_deadline_continuations() {
    let gate = Gate::start_with(|config| {
        // Each invocation gets a fifth of a second before it must hand back a continuation.
        // The margin is large so that the local stack's hard stop (2 s after the timeout) is
        // 8 s after that point: on a loaded 2-core CI machine a batch of requests in flight can
        // take seconds, and a kill there would test the machine, not the continuation loop.
        config.functions.timeout = Some(Duration::from_millis(6200));
        config
            .functions
            .environment
            .insert("DEADLINE_MARGIN_SECONDS".into(), "6".into());
        config
            .functions
            .environment
            .insert("MOVE_CONCURRENCY".into(), "4".into());
    })
    .await;
    upload_many(&gate, 1000, |i| format!("row {i}")).await;
    let arn = gate
        .start_run("thousand", json!({"id": "wf-thousand"}))
        .await;
    gate.ends_within(&arn, "SUCCEEDED", Duration::from_secs(300))
        .await;
    assert_eq!(gate.keys(Bucket::ScannedData).await.len(), 1000);
    assert!(gate.keys(Bucket::Raw).await.is_empty());
    let triggers = gate.entries(&arn, "triggerMacieScan");
    assert!(
        triggers > 3,
        "expected continuations, triggerMacieScan ran {triggers} times"
    );
    assert!(
        gate.entries(&arn, "moveAllScanStageS3Files") > 1,
        "the final move loops too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_thousand_flagged_objects_travel_by_manifest_and_are_all_released() {
    let gate = Gate::start().await;
    upload_many(&gate, 5000, |i| {
        format!("customer {i} card 4111 1111 1111 1111")
    })
    .await;
    let started = std::time::Instant::now();
    let arn = gate
        .start_run("many-flagged", json!({"id": "wf-many"}))
        .await;
    let email = gate.approval_email_within(Duration::from_secs(600)).await;
    eprintln!(
        "approval email after {:?}: {:?}",
        started.elapsed(),
        gate.timings(&arn)
    );
    assert!(
        email.message.contains("5000 object(s)"),
        "{}",
        &email.message[..200]
    );
    assert!(email.message.contains("... and 4975 more"));
    assert!(
        email.message.len() < 16_384,
        "the email stays short: {} bytes",
        email.message.len()
    );
    let manifests: Vec<String> = gate
        .keys(Bucket::Manifests)
        .await
        .into_iter()
        .filter(|key| key.starts_with("workflows/"))
        .collect();
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    let manifest = gate.body(Bucket::Manifests, &manifests[0]).await;
    assert!(
        manifest.len() > 262_144,
        "the manifest ({} bytes) is past the state payload limit",
        manifest.len()
    );
    assert_eq!(gate.keys(Bucket::ManualReview).await.len(), 5000);

    let response = http::decide(&link_after(&email.message, "Release all")).await;
    assert_eq!(response.status(), 200);
    let described = gate.finished_within(&arn, Duration::from_secs(300)).await;
    assert_eq!(
        described.status.as_str(),
        "SUCCEEDED",
        "{:?}",
        described.cause
    );
    assert_eq!(gate.keys(Bucket::ScannedData).await.len(), 5000);
    assert!(gate.keys(Bucket::ManualReview).await.is_empty());
    let record = gate.stack.engine().describe(&arn).unwrap();
    let largest = record
        .history
        .iter()
        .map(|e| e.details.to_string().len())
        .max()
        .unwrap();
    assert!(largest < 262_144, "a state payload reached {largest} bytes");
}

/// The move benchmark's harness: every pass moves every object at each concurrency (`run`
/// fails when one does not), and it removes the buckets it made.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_move_benchmark_moves_every_object_at_each_concurrency_and_cleans_up() {
    use e2e::macie_pipeline_local::bench::moves::{self, Endpoint, MoveOptions};

    let gate = Gate::start().await;
    let before = gate.s3.list_buckets().send().await.unwrap().buckets().len();
    let options = MoveOptions {
        endpoint: Endpoint {
            url: gate.stack.endpoint().to_owned(),
            local: Some(gate.stack.ca_pem().to_owned()),
        },
        sizes: vec![150],
        concurrencies: vec![1, 8, 32],
        object_bytes: 100,
        worker: None,
        budget: Duration::from_secs(900),
    };
    let cases = moves::run(&options).await.unwrap();
    assert_eq!(
        cases
            .iter()
            .map(|c| (c.objects, c.concurrency))
            .collect::<Vec<_>>(),
        vec![(150, 1), (150, 8), (150, 32)]
    );
    assert!(
        cases
            .iter()
            .all(|c| c.objects_per_second > 0.0 && c.invocations == 1),
        "{cases:?}"
    );
    let after = gate.s3.list_buckets().send().await.unwrap().buckets().len();
    assert_eq!(after, before, "the benchmark's buckets are gone");
}
