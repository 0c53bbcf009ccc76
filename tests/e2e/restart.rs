//! The local stack keeps executions, jobs, objects and emails in its data directory; a restarted
//! stack carries on where the old one stopped.

use e2e::macie_pipeline_local::stack::LocalStack;
use e2e::{Bucket, Gate, http, link_after, test_config};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_waiting_for_approval_survives_a_restart() {
    let gate = Gate::start().await;
    gate.upload("cards.csv", "card 4111 1111 1111 1111", &[], &[])
        .await;
    let arn = gate.start_run("restart", json!({"id": "wf-restart"})).await;
    let email = gate.approval_email().await;
    gate.reaches(&arn, "triggerManualApproval").await;
    let Gate { stack, dir, .. } = gate;
    stack.shutdown().await;

    let stack = LocalStack::start(test_config(dir.path()))
        .await
        .expect("restart");
    let aws = stack.sdk_config().await;
    let gate = Gate {
        s3: aws_sdk_s3::Client::new(&aws),
        sfn: aws_sdk_sfn::Client::new(&aws),
        macie: aws_sdk_macie2::Client::new(&aws),
        stack,
        dir,
    };
    assert_eq!(gate.describe(&arn).await.status.as_str(), "RUNNING");
    // The old link names the old port; the token in it still works on the new one.
    let old = link_after(&email.message, "Release all");
    let token_query = old.split_once('?').unwrap().1;
    let response = http::decide(&format!("{}/allow?{token_query}", gate.stack.http_url())).await;
    assert_eq!(response.status(), 200, "{}", response.body());
    assert_eq!(gate.finished(&arn).await.status.as_str(), "SUCCEEDED");
    assert_eq!(gate.keys(Bucket::ScannedData).await, vec!["cards.csv"]);
}
