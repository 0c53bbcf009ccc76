//! `RawBucketName`: the gate takes objects from a landing bucket made outside the stack, and
//! changes nothing on it. Every test names the same bucket, so that the IAM report counts the
//! grants on it across them.

use e2e::macie_pipeline_local::s3::Store;
use e2e::{Bucket, Encryption, Gate, http, link_after};
use serde_json::json;

/// The landing bucket of every `RawBucketName` test (the AWS CLI's too).
pub const LANDING: &str = "acme-landing";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_existing_landing_bucket_is_gated_end_to_end_and_left_as_it_was() {
    let gate = Gate::start_with(|config| {
        // Made by another team before the stack, with S3's defaults.
        Store::open(config.data_dir.join("s3"))
            .unwrap()
            .create_bucket(LANDING)
            .unwrap();
        Encryption::StackKey.apply(config);
        // Through the Distributed Maps, whose reader lists the landing bucket as the state
        // machine's role (the CLI's test takes the loop).
        for (name, value) in [("RawBucketName", LANDING), ("MovePath", "DistributedMap")] {
            config.parameters.insert(name.into(), value.into());
        }
    })
    .await;
    assert_eq!(gate.bucket(Bucket::Raw), LANDING);
    assert!(
        gate.s3
            .head_bucket()
            .bucket("local-data-pipeline-raw")
            .send()
            .await
            .is_err(),
        "the stack makes no raw bucket of its own"
    );
    gate.upload(
        "cards.csv",
        "customer,card\nAda,card 4111 1111 1111 1111\n",
        &[],
        &[],
    )
    .await;
    gate.upload("readme.txt", "nothing sensitive", &[], &[])
        .await;
    let arn = gate.start_run("landing", json!({"id": "landing"})).await;
    let email = gate.approval_email().await;
    let response = http::decide(&link_after(&email.message, "Release all")).await;
    assert_eq!(response.status(), 200, "{}", response.body());
    let finished = gate.finished(&arn).await;
    assert_eq!(
        finished.status.as_str(),
        "SUCCEEDED",
        "{}",
        gate.explain(&arn)
    );
    assert_eq!(
        gate.sorted_keys(Bucket::ScannedData).await,
        vec!["cards.csv", "readme.txt"]
    );
    assert!(gate.keys(Bucket::Raw).await.is_empty());
    // The landing bucket is as it was made: no default encryption, no versioning set by the
    // stack, while the copies are under the stack's key.
    let encryption = gate
        .s3
        .get_bucket_encryption()
        .bucket(LANDING)
        .send()
        .await
        .unwrap();
    let rule = &encryption
        .server_side_encryption_configuration()
        .unwrap()
        .rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .kms_master_key_id(),
        None
    );
    let versioning = gate
        .s3
        .get_bucket_versioning()
        .bucket(LANDING)
        .send()
        .await
        .unwrap();
    assert!(versioning.status().is_none(), "{versioning:?}");
    let head = gate
        .s3
        .head_object()
        .bucket(gate.bucket(Bucket::ScannedData))
        .key("readme.txt")
        .send()
        .await
        .unwrap();
    assert!(head.ssekms_key_id().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_landing_bucket_that_does_not_exist_fails_the_run_naming_it() {
    // Not made this time.
    let gate = Gate::start_with(|config| {
        config
            .parameters
            .insert("RawBucketName".into(), LANDING.into());
    })
    .await;
    let arn = gate.start_run("missing", json!({"id": "missing"})).await;
    let finished = gate.finished(&arn).await;
    assert_eq!(finished.status.as_str(), "FAILED");
    let explained = gate.explain(&arn);
    assert!(
        explained.contains(LANDING) && explained.contains("NoSuchBucket"),
        "{explained}"
    );
    assert!(
        gate.emails()
            .iter()
            .any(|email| email.message.contains(LANDING)),
        "the failure is emailed naming the bucket"
    );
}
