//! Failures: every one ends with the objects where a person can see them, one alert, and a
//! failed run; transient ones are absorbed by the state machine's Retry.

use std::time::{Duration, Instant};

use aws_sdk_macie2::types::JobStatus;
use e2e::macie_pipeline_local::faults::{FaultError, FaultRule};
use e2e::{Bucket, Gate};
use serde_json::json;

fn alerts(gate: &Gate, subject: &str) -> Vec<e2e::macie_pipeline_local::sns::Delivered> {
    gate.emails()
        .into_iter()
        .filter(|e| e.subject.as_deref().is_some_and(|s| s.contains(subject)))
        .collect()
}

/// A gate whose Macie jobs stay RUNNING until a test intervenes.
async fn slow_macie() -> Gate {
    Gate::start_with(|config| config.macie.startup_delay_seconds = 1e9).await
}

async fn the_job(gate: &Gate) -> String {
    let start = Instant::now();
    loop {
        let jobs = gate.macie.list_classification_jobs().send().await.unwrap();
        if let Some(job) = jobs.items().first() {
            return job.job_id().unwrap().to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no Macie job was created"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn stopped_job_fails_the_run(status: JobStatus) {
    let gate = slow_macie().await;
    gate.upload("data.csv", "card 4111 1111 1111 1111", &[], &[])
        .await;
    let arn = gate.start_run("stopped", json!({"id": "wf-stopped"})).await;
    let job = the_job(&gate).await;
    gate.macie
        .update_classification_job()
        .job_id(&job)
        .job_status(status.clone())
        .send()
        .await
        .unwrap();
    let described = gate.finished(&arn).await;
    assert_eq!(described.status.as_str(), "FAILED");
    assert_eq!(described.error(), Some("MacieJobStopped"));
    assert_eq!(
        gate.keys(Bucket::ScanStage).await,
        vec!["data.csv"],
        "objects stay in scan-stage"
    );
    assert!(gate.keys(Bucket::ScannedData).await.is_empty());
    let notices = alerts(&gate, "Macie job stopped");
    assert_eq!(notices.len(), 1);
    assert!(
        notices[0].message.contains(status.as_str()),
        "{}",
        notices[0].message
    );
    assert!(notices[0].message.contains("wf-stopped"));
    let history = gate.stack.engine().describe(&arn).unwrap().history;
    let triggers = history
        .iter()
        .filter(|e| e.details["stateEnteredEventDetails"]["name"] == "triggerMacieScan")
        .count();
    assert_eq!(triggers, 2, "the run must not go back to triggerMacieScan");
    assert_eq!(gate.run_event_types(&arn), ["Run Failed"]);
    let detail = &gate.run_events(&arn)[0]["detail"];
    assert_eq!(detail["macieJobId"], job);
    assert!(detail["scan"].is_null());
    let failure = &detail["failure"];
    assert_eq!(failure["error"], "MacieJobStopped");
    assert_eq!(failure["cause"], status.as_str());
    assert_eq!(failure["step"], "checkMacieStatus");
    assert_eq!(failure["message"], described.cause().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_job_fails_the_run_and_keeps_the_objects() {
    stopped_job_fails_the_run(JobStatus::Cancelled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_paused_job_fails_the_run_and_keeps_the_objects() {
    stopped_job_fails_the_run(JobStatus::UserPaused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transient_errors_are_retried_until_the_run_succeeds() {
    let gate = Gate::start().await;
    gate.upload("a.txt", "fine", &[], &[]).await;
    // More failures than the SDK retries inside one invocation, so the state machine retries.
    gate.stack
        .faults()
        .add(FaultRule {
            service: "s3".into(),
            operation: Some("CopyObject".into()),
            error: FaultError::SlowDown,
            count: Some(4),
            probability: None,
            latency_ms: None,
        })
        .unwrap();
    let arn = gate
        .start_run("transient", json!({"id": "wf-transient"}))
        .await;
    let described = gate.finished(&arn).await;
    assert_eq!(
        described.status.as_str(),
        "SUCCEEDED",
        "{}",
        gate.explain(&arn)
    );
    assert_eq!(gate.stack.faults().injected(), 4);
    let history = gate.stack.engine().describe(&arn).unwrap().history;
    assert!(
        history
            .iter()
            .any(|e| e.details["taskFailedEventDetails"]["error"] == "TransientAwsError")
    );
    assert_eq!(gate.keys(Bucket::ScannedData).await, vec!["a.txt"]);
    assert!(gate.emails().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_permanent_error_is_caught_announced_once_and_fails_the_run() {
    let gate = Gate::start().await;
    gate.upload("a.txt", "fine", &[], &[]).await;
    gate.stack.macie().disable().expect("Macie turned off");
    let arn = gate
        .start_run("permanent", json!({"id": "wf-permanent"}))
        .await;
    let described = gate.finished(&arn).await;
    assert_eq!(described.status.as_str(), "FAILED");
    assert_eq!(described.error(), Some("PipelineRunFailed"));
    // The reference swallowed this error and reported "no keys found".
    let notices = alerts(&gate, "run failed");
    assert_eq!(notices.len(), 1);
    // One sentence: the error's name, the function's own message, and the step; not the
    // Step Functions error object as escaped JSON inside the text.
    let message = &notices[0].message;
    assert!(
        message.contains("failed: AwsRequestFailed: ")
            && message.contains("CreateClassificationJob")
            && message.contains("(step triggerMacieScan, taking the raw bucket's objects"),
        "{message}"
    );
    assert!(
        !message.contains("errorMessage") && !message.contains("\\\""),
        "{message}"
    );
    // The execution's cause is the same sentence.
    let cause = described.cause().expect("a failed execution has a cause");
    assert!(
        cause.starts_with("AwsRequestFailed: ") && message.contains(cause),
        "{cause}"
    );
    assert_eq!(gate.keys(Bucket::ScanStage).await, vec!["a.txt"]);
    assert_eq!(
        gate.tags(Bucket::ScanStage, "a.txt").await["WorkflowId"],
        "wf-permanent"
    );
    // The event says it in the same sentence, with the step and the error behind it.
    assert_eq!(gate.run_event_types(&arn), ["Run Failed"]);
    let detail = &gate.run_events(&arn)[0]["detail"];
    assert_eq!(detail["workflowId"], "wf-permanent");
    assert_eq!(
        detail["failure"],
        json!({"error": "PipelineRunFailed", "cause": "AwsRequestFailed",
               "step": "triggerMacieScan", "message": cause})
    );
    assert!(gate.keys(Bucket::ScannedData).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unusable_execution_input_fails_clearly_and_touches_nothing() {
    let gate = Gate::start().await;
    gate.upload("a.txt", "fine", &[], &[]).await;
    let inputs = [
        ("number-id", json!({"id": 42})),
        ("bad-chars", json!({"id": "semi;colon"})),
        ("huge", json!({"id": "x".repeat(5000)})),
        // (An array is an arrival batch, named by its execution: tests/e2e/triggers.rs.)
        ("number-input", json!(7)),
        ("string-input", json!("wf-1")),
        ("array-id", json!({"id": ["wf-1"]})),
        ("empty-id", json!({"id": ""})),
        ("tag-unsafe-id", json!({"id": "wf\u{0}\n<script>"})),
    ];
    for (name, input) in inputs.clone() {
        let arn = gate.start_run(name, input).await;
        let described = gate.finished(&arn).await;
        assert_eq!(described.status.as_str(), "FAILED", "{name}");
        let record = gate.stack.engine().describe(&arn).unwrap();
        let failure = record
            .history
            .iter()
            .find(|e| e.kind == "TaskFailed")
            .expect("a failed task");
        assert_eq!(
            failure.details["taskFailedEventDetails"]["error"], "InvalidInput",
            "{name}"
        );
        // No workflow id was ever taken: the event says so, and what was wrong.
        assert_eq!(gate.run_event_types(&arn), ["Run Failed"], "{name}");
        let detail = &gate.run_events(&arn)[0]["detail"];
        assert!(detail["workflowId"].is_null(), "{name}: {detail}");
        assert_eq!(detail["failure"]["cause"], "InvalidInput", "{name}");
    }
    let failed = alerts(&gate, "run failed");
    assert_eq!(failed.len(), inputs.len(), "one alert per failed run");
    assert!(
        failed.iter().any(|alert| alert.message.contains(
            "failed: InvalidInput: execution input field `id` must be a string, got a number (step triggerMacieScan,"
        )),
        "{:#?}",
        failed.iter().map(|alert| &alert.message).collect::<Vec<_>>()
    );
    assert_eq!(gate.keys(Bucket::Raw).await, vec!["a.txt"]);
    // Fields beyond `id` are ignored, not refused: EventBridge's scheduled event carries many.
    let arn = gate
        .start_run(
            "extra-fields",
            json!({"id": "wf-extra", "detail": {"deep": [1, {"x": null}]}, "bogus": true}),
        )
        .await;
    gate.ends_with(&arn, "SUCCEEDED").await;
    assert_eq!(gate.keys(Bucket::ScannedData).await, vec!["a.txt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_between_copy_and_delete_is_retried_and_leaves_one_copy() {
    let gate = Gate::start().await;
    for key in ["a.txt", "b.txt", "c.txt"] {
        gate.upload(key, format!("fine {key}"), &[("team", "ops")], &[])
            .await;
    }
    // The first copy and the first delete of the raw -> scan-stage move each kill the invocation
    // making them: once before anything moved, once with an object copied but not deleted.
    for operation in ["DeleteObject", "CopyObject"] {
        gate.stack
            .faults()
            .add(FaultRule {
                service: "s3".into(),
                operation: Some(operation.into()),
                error: FaultError::Crash,
                count: Some(1),
                probability: None,
                latency_ms: None,
            })
            .unwrap();
    }
    let arn = gate.start_run("crash", json!({"id": "wf-crash"})).await;
    let described = gate.finished(&arn).await;
    assert_eq!(
        described.status.as_str(),
        "SUCCEEDED",
        "{}",
        gate.explain(&arn)
    );
    assert_eq!(gate.stack.faults().crashes(), 2);
    let history = gate.stack.engine().describe(&arn).unwrap().history;
    let crashed = history
        .iter()
        .filter(|e| {
            e.kind == "TaskFailed"
                && e.details["taskFailedEventDetails"]["error"] == "Lambda.Unknown"
        })
        .count();
    assert_eq!(crashed, 2, "{}", gate.explain(&arn));
    assert_eq!(
        gate.sorted_keys(Bucket::ScannedData).await,
        vec!["a.txt", "b.txt", "c.txt"]
    );
    for bucket in [Bucket::Raw, Bucket::ScanStage, Bucket::ManualReview] {
        assert!(gate.keys(bucket).await.is_empty(), "{bucket:?}");
    }
    assert_eq!(gate.tags(Bucket::ScannedData, "a.txt").await["team"], "ops");
}
