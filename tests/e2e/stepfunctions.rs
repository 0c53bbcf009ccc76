//! The local Step Functions API through the real SDK.

use aws_sdk_sfn::error::ProvideErrorMetadata;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEventType};
use e2e::{Bucket, Gate};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn executions_can_be_listed_inspected_and_started_idempotently() {
    // Macie jobs that never complete keep the run RUNNING for as long as the test needs.
    let gate = Gate::start_with(|config| config.macie.startup_delay_seconds = 1e9).await;
    gate.upload("a.txt", "fine", &[], &[]).await;
    let machine = gate.stack.state_machine_arn().to_owned();
    let first = gate.start_run("listed", json!({"id": "wf-listed"})).await;
    // Same name and input while running: the same execution.
    let again = gate
        .sfn
        .start_execution()
        .state_machine_arn(&machine)
        .name("listed")
        .input(json!({"id": "wf-listed"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(again.execution_arn, first);
    let running = gate
        .sfn
        .list_executions()
        .state_machine_arn(&machine)
        .status_filter(ExecutionStatus::Running)
        .send()
        .await
        .unwrap();
    assert_eq!(running.executions().len(), 1);
    gate.sfn
        .stop_execution()
        .execution_arn(&first)
        .send()
        .await
        .unwrap();
    // A closed execution's name cannot be reused.
    let err = gate
        .sfn
        .start_execution()
        .state_machine_arn(&machine)
        .name("listed")
        .input("{}")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ExecutionAlreadyExists"));

    let listed = gate
        .sfn
        .list_executions()
        .state_machine_arn(&machine)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.executions().len(), 1);
    assert_eq!(listed.executions()[0].status, ExecutionStatus::Aborted);
    assert!(listed.executions()[0].start_date.secs() > 1_700_000_000);

    let mut events = Vec::new();
    let mut pages = gate
        .sfn
        .get_execution_history()
        .execution_arn(&first)
        .max_results(3)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        assert!(page.events().len() <= 3);
        events.extend(page.events().iter().map(|e| (e.id, e.r#type.clone())));
    }
    assert_eq!(
        events.first().map(|e| &e.1),
        Some(&HistoryEventType::ExecutionStarted)
    );
    assert_eq!(
        events.last().map(|e| &e.1),
        Some(&HistoryEventType::ExecutionAborted)
    );
    assert!(
        events.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "ids count up from 1"
    );
    let newest = gate
        .sfn
        .get_execution_history()
        .execution_arn(&first)
        .reverse_order(true)
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        newest.events()[0].r#type,
        HistoryEventType::ExecutionAborted
    );

    let missing = gate
        .sfn
        .describe_execution()
        .execution_arn(format!("{first}-nope"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some("ExecutionDoesNotExist"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_failure_callback_fails_the_run_and_a_stopped_run_is_aborted() {
    let gate = Gate::start().await;
    gate.upload("cards.csv", "card 4111 1111 1111 1111", &[], &[])
        .await;
    let arn = gate
        .start_run("callback", json!({"id": "wf-callback"}))
        .await;
    gate.approval_email().await;
    gate.reaches(&arn, "triggerManualApproval").await;
    let token = match gate
        .stack
        .engine()
        .describe(&arn)
        .unwrap()
        .position
        .unwrap()
        .phase
    {
        e2e::macie_pipeline_local::sfn::engine::Phase::Callback { token, .. } => token,
        other => panic!("not waiting for a callback: {other:?}"),
    };
    gate.sfn
        .send_task_heartbeat()
        .task_token(&token)
        .send()
        .await
        .unwrap();
    gate.sfn
        .send_task_failure()
        .task_token(&token)
        .error("ReviewerUnavailable")
        .cause("out of office")
        .send()
        .await
        .unwrap();
    let described = gate.finished(&arn).await;
    assert_eq!(described.status, ExecutionStatus::Failed);
    assert_eq!(
        gate.keys(Bucket::ManualReview).await,
        vec!["cards.csv"],
        "a failed review keeps the objects held"
    );
    let again = gate
        .sfn
        .send_task_success()
        .task_token(&token)
        .output("{}")
        .send()
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some("TaskTimedOut"));

    gate.upload("more.csv", "card 5555 5555 5555 4444", &[], &[])
        .await;
    let second = gate
        .start_run("stopped", json!({"id": "wf-stopped-run"}))
        .await;
    gate.reaches(&second, "triggerManualApproval").await;
    gate.sfn
        .stop_execution()
        .execution_arn(&second)
        .error("Operator")
        .cause("stopped by hand")
        .send()
        .await
        .unwrap();
    let described = gate.describe(&second).await;
    assert_eq!(described.status, ExecutionStatus::Aborted);
    assert_eq!(described.error(), Some("Operator"));
}

/// The schedule rule starts runs by itself, as its own role (allowed to start the state machine
/// and to use its key), with EventBridge's scheduled event as the input; an object landed in
/// raw reaches scanned-data with nobody starting anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_schedule_starts_runs_as_its_own_role() {
    let gate = Gate::start_with(|config| {
        config.schedule = true;
        // An hour takes 3.6 s at the tests' time scale.
        config
            .parameters
            .insert("ScanSchedule".into(), "rate(1 hour)".into());
    })
    .await;
    gate.upload("daily/clean.txt", "nothing to see", &[], &[])
        .await;
    let started = std::time::Instant::now();
    let first = loop {
        if let Some(oldest) = gate.executions().await.last() {
            break oldest.execution_arn().to_owned();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no scheduled run started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let done = gate.finished(&first).await;
    assert_eq!(done.status(), &ExecutionStatus::Succeeded, "{done:?}");
    let input: serde_json::Value =
        serde_json::from_str(done.input().expect("an input")).expect("JSON");
    assert_eq!(input["detail-type"], "Scheduled Event");
    assert_eq!(
        input["resources"][0],
        format!(
            "arn:aws:events:{}:{}:rule/{}-ScanScheduleRule",
            e2e::macie_pipeline_local::aws::REGION,
            e2e::macie_pipeline_local::aws::ACCOUNT,
            e2e::macie_pipeline_local::deployment::STACK
        )
    );
    assert_eq!(gate.keys(Bucket::ScannedData).await, ["daily/clean.txt"]);
}
