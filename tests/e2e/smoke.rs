use e2e::{Bucket, Gate};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clean_object_reaches_scanned_data() {
    let gate = Gate::start().await;
    gate.upload("hello.txt", "nothing to see", &[], &[]).await;
    let arn = gate.start_run("run-1", json!({"id": "wf-smoke"})).await;
    let described = gate.finished(&arn).await;
    assert_eq!(
        described.status.as_str(),
        "SUCCEEDED",
        "{:?} {:?}",
        described.error,
        described.cause
    );
    assert_eq!(gate.keys(Bucket::ScannedData).await, vec!["hello.txt"]);
    assert!(gate.keys(Bucket::Raw).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flagged_object_waits_for_approval_and_is_released_on_allow() {
    let gate = Gate::start().await;
    gate.upload(
        "customers.csv",
        "name,ssn\nAda,SSN 123-45-6789\n",
        &[("team", "crm")],
        &[],
    )
    .await;
    gate.upload("clean.txt", "nothing", &[], &[]).await;
    let arn = gate.start_run("run-2", json!({"id": "wf-review"})).await;
    let email = gate.approval_email().await;
    println!("{}", email.message);
    assert_eq!(gate.keys(Bucket::ManualReview).await, vec!["customers.csv"]);
    assert_eq!(gate.keys(Bucket::ScannedData).await, vec!["clean.txt"]);
    let link = e2e::link_after(&email.message, "Approve");
    let decided = e2e::http::decide(&link).await;
    assert_eq!(decided.status(), 200, "{}", decided.body());
    let described = gate.finished(&arn).await;
    assert_eq!(
        described.status.as_str(),
        "SUCCEEDED",
        "{:?} {:?}",
        described.error,
        described.cause
    );
    let mut scanned = gate.keys(Bucket::ScannedData).await;
    scanned.sort();
    assert_eq!(scanned, vec!["clean.txt", "customers.csv"]);
    let tags = gate.tags(Bucket::ScannedData, "customers.csv").await;
    assert_eq!(
        tags.get("SensitiveDataFound").map(String::as_str),
        Some("true")
    );
    assert_eq!(tags.get("team").map(String::as_str), Some("crm"));
}
