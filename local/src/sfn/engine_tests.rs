//! The engine end to end over a fake set of integrations: data flow, Retry and Catch, Map,
//! callbacks and restarts.

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::clock::Clock;
use crate::sfn::engine::{ApiError, CallbackMessage, Engine, Integrations, TokenError};
use crate::sfn::error::StatesError;
use crate::sfn::execution::record::{ExecutionRecord, Phase, Position};
use crate::sfn::execution::tokens;
use crate::sfn::states::frame::MAX_PAYLOAD;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Functions: `echo` returns its payload, `flaky` fails twice with `Transient`, `boom` always
/// fails with `Permanent`, `slow` takes a second.
struct Fake {
    flaky_calls: AtomicUsize,
}

impl Integrations for Fake {
    fn invoke(
        &self,
        function: String,
        payload: Value,
    ) -> BoxFuture<'static, Result<Value, StatesError>> {
        let flaky = self
            .flaky_calls
            .fetch_add(usize::from(function == "flaky"), Ordering::SeqCst);
        Box::pin(async move {
            match function.as_str() {
                "echo" => Ok(payload),
                "flaky" if flaky < 2 => Err(StatesError::new(
                    "Transient",
                    "{\"errorType\":\"Transient\"}",
                )),
                "flaky" => Ok(json!({"calls": flaky + 1})),
                "slow" => {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    Ok(json!("late"))
                }
                _ => Err(StatesError::new(
                    "Permanent",
                    "{\"errorType\":\"Permanent\"}",
                )),
            }
        })
    }

    fn publish(&self, _parameters: Value) -> BoxFuture<'static, Result<Value, StatesError>> {
        Box::pin(async { Ok(json!({"MessageId": "m"})) })
    }

    /// Bucket `b` holds `in/k0` .. `in/k4` and `other`; any other bucket does not exist.
    fn list_objects(
        &self,
        bucket: String,
        prefix: String,
    ) -> BoxFuture<'static, Result<Vec<Value>, StatesError>> {
        Box::pin(async move {
            if bucket != "b" {
                return Err(StatesError::new("States.ItemReaderFailed", "NoSuchBucket"));
            }
            let keys = (0..5)
                .map(|i| format!("in/k{i}"))
                .chain(["other".to_owned()]);
            Ok(keys
                .filter(|key| key.starts_with(&prefix))
                .map(|key| json!({"Etag": "\"e\"", "Key": key, "LastModified": 1, "Size": 3, "StorageClass": "STANDARD"}))
                .collect())
        })
    }
}

fn engine(dir: &Path) -> Engine {
    Engine::open(
        dir,
        Arc::new(Fake {
            flaky_calls: AtomicUsize::new(0),
        }),
        Clock::new(0.001),
        None,
    )
    .unwrap()
}

async fn finished(engine: &Engine, arn: &str) -> ExecutionRecord {
    for _ in 0..500 {
        let record = engine.describe(arn).unwrap();
        if record.status != "RUNNING" {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{arn} did not finish");
}

fn task(function: &str, extra: Value) -> Value {
    let mut state = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function, "Payload.$": "$"}, "ResultSelector": {"r.$": "$.Payload"}});
    for (key, value) in extra.as_object().unwrap() {
        state[key] = value.clone();
    }
    state
}

async fn run(definition: Value, input: Value) -> ExecutionRecord {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let arn = engine
        .register("m", &definition.to_string(), "arn:aws:iam::0:role/r")
        .unwrap();
    let (execution, _) = engine
        .start(&arn, Some("e"), Some(&input.to_string()))
        .unwrap();
    finished(&engine, &execution).await
}

#[tokio::test]
async fn a_task_result_goes_through_selector_and_result_path() {
    let record = run(
        json!({"StartAt": "t", "States": {"t": task("echo", json!({"ResultPath": "$.out", "End": true}))}}),
        json!({"x": 1}),
    )
    .await;
    assert_eq!(record.status, "SUCCEEDED");
    assert_eq!(record.output, Some(json!({"x": 1, "out": {"r": {"x": 1}}})));
    let kinds: Vec<&str> = record.history.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "ExecutionStarted",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
}

#[tokio::test]
async fn retries_absorb_transient_errors_and_catch_takes_the_rest() {
    let retry = json!([{"ErrorEquals": ["Transient"], "IntervalSeconds": 1, "MaxAttempts": 3}]);
    let record = run(
        json!({"StartAt": "t", "States": {"t": task("flaky", json!({"Retry": retry, "End": true}))}}),
        json!({}),
    )
    .await;
    assert_eq!(record.output, Some(json!({"r": {"calls": 3}})));

    let catch =
        json!([{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "handled"}]);
    let record = run(
        json!({"StartAt": "t", "States": {
            "t": task("boom", json!({"Retry": retry, "Catch": catch, "Next": "done"})),
            "handled": {"Type": "Pass", "End": true},
            "done": {"Type": "Succeed"}}}),
        json!({"foo": "bar"}),
    )
    .await;
    assert_eq!(record.output.unwrap()["error"]["Error"], "Permanent");
}

#[tokio::test]
async fn an_uncaught_error_fails_the_execution_with_its_name() {
    let record = run(
        json!({"StartAt": "t", "States": {"t": task("boom", json!({"End": true}))}}),
        json!({}),
    )
    .await;
    assert_eq!(
        (record.status.as_str(), record.error.as_deref()),
        ("FAILED", Some("Permanent"))
    );
}

#[tokio::test]
async fn task_timeouts_are_states_timeout() {
    // Real seconds: a task's own work is not scaled, so this waits a second.
    let catch = json!([{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.e", "Next": "late"}]);
    let record = run(
        json!({"StartAt": "t", "States": {
            "t": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "TimeoutSeconds": 1,
                  "Parameters": {"FunctionName": "slow", "Payload": {}}, "Catch": catch, "End": true},
            "late": {"Type": "Pass", "End": true}}}),
        json!({}),
    )
    .await;
    assert_eq!(record.output.unwrap()["e"]["Error"], "States.Timeout");
}

#[tokio::test]
async fn inline_maps_keep_item_order_and_see_the_item_context() {
    let record = run(
        json!({"StartAt": "m", "States": {"m": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2,
            "ItemSelector": {"ContextIndex.$": "$$.Map.Item.Index", "ContextValue.$": "$$.Map.Item.Value"},
            "ItemProcessor": {"StartAt": "p", "States": {"p": {"Type": "Pass", "End": true}}}, "End": true}}}),
        json!({"items": [{"who": "bob"}, {"who": "meg"}, {"who": "joe"}]}),
    )
    .await;
    assert_eq!(
        record.output,
        Some(json!([
            {"ContextIndex": 0, "ContextValue": {"who": "bob"}},
            {"ContextIndex": 1, "ContextValue": {"who": "meg"}},
            {"ContextIndex": 2, "ContextValue": {"who": "joe"}}
        ]))
    );
}

/// A Distributed Map over `s3://b/in/`, in batches of two; the processor fails the batch
/// that starts with `in/k0` (two items of five).
fn distributed_map(tolerance: Value) -> Value {
    let mut map = json!({"Type": "Map",
        "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2",
                       "Parameters": {"Bucket.$": "$.bucket", "Prefix": "in/"}},
        "ItemSelector": {"key.$": "$$.Map.Item.Value.Key"},
        "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"run.$": "$.run"}},
        "MaxConcurrency": 2,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "c", "States": {
                "c": {"Type": "Choice", "Choices": [
                    {"Variable": "$.Items[0].key", "StringEquals": "in/k0", "Next": "fail"}],
                    "Default": "ok"},
                "fail": task("boom", json!({"End": true})),
                "ok": {"Type": "Pass", "End": true}}},
        "End": true});
    for (key, value) in tolerance.as_object().unwrap() {
        map[key] = value.clone();
    }
    json!({"StartAt": "m", "States": {"m": map}})
}

#[tokio::test]
async fn a_distributed_map_lists_the_bucket_batches_and_tolerates_failures() {
    let record = run(
        distributed_map(json!({"ToleratedFailurePercentage": 40})),
        json!({"bucket": "b", "run": "wf"}),
    )
    .await;
    assert_eq!(record.status, "SUCCEEDED", "{:?}", record.cause);
    let output = record.output.unwrap();
    assert_eq!(output.as_array().unwrap().len(), 3, "{output}");
    assert_eq!(
        output[0]["Error"], "Permanent",
        "a tolerated failure keeps its place"
    );
    assert_eq!(
        output[1],
        json!({"BatchInput": {"run": "wf"}, "Items": [{"key": "in/k2"}, {"key": "in/k3"}]})
    );
    assert_eq!(
        output[2]["Items"],
        json!([{"key": "in/k4"}]),
        "other is outside the prefix"
    );
    let kinds: Vec<&str> = record.history.iter().map(|e| e.kind.as_str()).collect();
    assert!(
        kinds.contains(&"MapRunStarted") && kinds.contains(&"MapRunSucceeded"),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_distributed_map_past_its_failure_threshold_fails() {
    let record = run(
        distributed_map(json!({"ToleratedFailurePercentage": 39})),
        json!({"bucket": "b", "run": "wf"}),
    )
    .await;
    assert_eq!(record.status, "FAILED");
    assert_eq!(
        record.error.as_deref(),
        Some("States.ExceedToleratedFailureThreshold")
    );
    assert!(
        record
            .cause
            .as_deref()
            .unwrap_or_default()
            .starts_with("2 of 5 items failed"),
        "{:?}",
        record.cause
    );
    let unreadable = run(
        distributed_map(json!({})),
        json!({"bucket": "nope", "run": "wf"}),
    )
    .await;
    assert_eq!(unreadable.error.as_deref(), Some("States.ItemReaderFailed"));
}

#[tokio::test]
async fn max_concurrency_may_come_from_the_input() {
    let mut by_path = distributed_map(json!({"ToleratedFailurePercentage": 40}));
    let map = by_path["States"]["m"].as_object_mut().unwrap();
    map.remove("MaxConcurrency");
    map.insert("MaxConcurrencyPath".into(), json!("$.limit"));
    let record = run(
        by_path.clone(),
        json!({"bucket": "b", "run": "wf", "limit": 3}),
    )
    .await;
    assert_eq!(record.status, "SUCCEEDED", "{:?}", record.cause);
    assert_eq!(record.output.unwrap().as_array().unwrap().len(), 3);
    for bad in [json!("three"), json!(-1), json!(1.5)] {
        let record = run(
            by_path.clone(),
            json!({"bucket": "b", "run": "wf", "limit": bad}),
        )
        .await;
        assert_eq!(record.status, "FAILED", "limit {bad}");
        assert_eq!(
            record.error.as_deref(),
            Some("States.Runtime"),
            "limit {bad}"
        );
    }
}

#[tokio::test]
async fn oversized_outputs_fail_the_execution_uncatchably() {
    let catch = json!([{"ErrorEquals": ["States.ALL"], "Next": "x"}]);
    let record = run(
        json!({"StartAt": "t", "States": {
            "t": task("echo", json!({"Catch": catch, "End": true})),
            "x": {"Type": "Succeed"}}}),
        json!({"big": "x".repeat(MAX_PAYLOAD - 100)}),
    )
    .await;
    assert_eq!(record.error.as_deref(), Some("States.DataLimitExceeded"));
}

fn callback_machine() -> Value {
    json!({"StartAt": "ask", "States": {
        "ask": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "echo", "Payload": {"token.$": "$$.Task.Token"}},
                "TimeoutSeconds": 100000, "ResultPath": "$.decision", "End": true}}})
}

async fn waiting_token(engine: &Engine, arn: &str) -> String {
    for _ in 0..500 {
        if let Some(Position {
            phase: Phase::Callback { token, .. },
            ..
        }) = engine.describe(arn).unwrap().position
        {
            return token;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("no callback task");
}

#[tokio::test]
async fn callbacks_complete_once_and_then_answer_task_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let machine = engine
        .register("m", &callback_machine().to_string(), "r")
        .unwrap();
    let (arn, _) = engine.start(&machine, Some("e"), None).unwrap();
    let token = waiting_token(&engine, &arn).await;
    assert!(token.contains('+') && token.contains('/') && token.contains('='));
    engine
        .callback(&token, CallbackMessage::Success(json!({"action": "allow"})))
        .unwrap();
    assert_eq!(
        engine.callback(&token, CallbackMessage::Success(json!({}))),
        Err(TokenError::TaskTimedOut)
    );
    let record = finished(&engine, &arn).await;
    assert_eq!(
        record.output,
        Some(json!({"decision": {"action": "allow"}}))
    );
    assert_eq!(
        engine.callback("not a token", CallbackMessage::Heartbeat),
        Err(TokenError::InvalidToken)
    );
    assert_eq!(
        engine.callback(&tokens::mint(), CallbackMessage::Heartbeat),
        Err(TokenError::TaskDoesNotExist)
    );
}

#[tokio::test]
async fn a_waiting_callback_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (arn, token) = {
        let engine = engine(dir.path());
        let machine = engine
            .register("m", &callback_machine().to_string(), "r")
            .unwrap();
        let (arn, _) = engine.start(&machine, Some("e"), None).unwrap();
        let token = waiting_token(&engine, &arn).await;
        (arn, token)
    };
    let engine = engine(dir.path());
    engine
        .register("m", &callback_machine().to_string(), "r")
        .unwrap();
    assert_eq!(engine.resume(), 1);
    engine
        .callback(
            &token,
            CallbackMessage::Success(json!({"action": "delete"})),
        )
        .unwrap();
    let record = finished(&engine, &arn).await;
    assert_eq!(
        record.output,
        Some(json!({"decision": {"action": "delete"}}))
    );
}

#[tokio::test]
async fn stopping_aborts_and_closes_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let machine = engine
        .register("m", &callback_machine().to_string(), "r")
        .unwrap();
    let (arn, _) = engine.start(&machine, Some("e"), None).unwrap();
    let token = waiting_token(&engine, &arn).await;
    engine.stop(&arn, Some("Stopped".into()), None).unwrap();
    assert_eq!(engine.describe(&arn).unwrap().status, "ABORTED");
    assert_eq!(
        engine.callback(&token, CallbackMessage::Success(json!({}))),
        Err(TokenError::TaskTimedOut)
    );
}

/// A task that finishes just after StopExecution used to append its exit after
/// ExecutionAborted (seen once in CI as a flaky history test).
#[tokio::test]
async fn nothing_is_appended_to_a_stopped_execution_history() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let machine = engine
        .register("m", &callback_machine().to_string(), "r")
        .unwrap();
    let (arn, _) = engine.start(&machine, Some("e"), None).unwrap();
    waiting_token(&engine, &arn).await;
    engine.stop(&arn, None, None).unwrap();
    engine.event(
        &arn,
        "TaskStateExited",
        json!({"stateExitedEventDetails": {}}),
    );
    let history = engine.describe(&arn).unwrap().history;
    assert_eq!(
        history.last().map(|event| event.kind.as_str()),
        Some("ExecutionAborted")
    );
}

#[tokio::test]
async fn start_is_idempotent_for_the_same_name_and_input_only() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let machine = engine
        .register("m", &callback_machine().to_string(), "r")
        .unwrap();
    let (first, _) = engine
        .start(&machine, Some("e"), Some("{\"a\":1}"))
        .unwrap();
    let (again, _) = engine
        .start(&machine, Some("e"), Some("{\"a\":1}"))
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(
        engine.start(&machine, Some("e"), Some("{\"a\":2}")),
        Err(ApiError::ExecutionAlreadyExists)
    );
    assert!(matches!(
        engine.start(&machine, Some("bad name"), None),
        Err(ApiError::InvalidName(_))
    ));
    assert!(matches!(
        engine.start(&machine, None, Some("{")),
        Err(ApiError::InvalidExecutionInput(_))
    ));
}

#[tokio::test]
async fn waits_resume_where_they_were_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let definition = json!({"StartAt": "w", "States": {"w": {"Type": "Wait", "Seconds": 1000, "Next": "d"}, "d": {"Type": "Succeed"}}});
    let arn = {
        let engine = engine(dir.path());
        let machine = engine.register("m", &definition.to_string(), "r").unwrap();
        let (arn, _) = engine.start(&machine, Some("e"), None).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(matches!(
            engine.describe(&arn).unwrap().position.unwrap().phase,
            Phase::Wait { .. }
        ));
        arn
    };
    let engine = engine(dir.path());
    engine.register("m", &definition.to_string(), "r").unwrap();
    engine.resume();
    assert_eq!(finished(&engine, &arn).await.status, "SUCCEEDED");
}

#[tokio::test]
async fn a_start_that_cannot_be_saved_fails_and_leaves_no_execution() {
    let dir = tempfile::tempdir().unwrap();
    let executions = dir.path().join("executions");
    let engine = engine(&executions);
    let machine = engine
        .register("m", &callback_machine().to_string(), "r")
        .unwrap();
    // Writes into a folder that is gone fail, as on a full or read-only disk.
    std::fs::remove_dir_all(&executions).unwrap();
    let err = engine.start(&machine, Some("e"), None).unwrap_err();
    assert!(
        matches!(&err, ApiError::Internal(message) if message.contains("could not be saved")),
        "{err:?}"
    );
    assert!(engine.list(&machine).unwrap().is_empty());
    // Once the disk is back, the same name starts: nothing of the failed start was kept.
    std::fs::create_dir_all(&executions).unwrap();
    engine.start(&machine, Some("e"), None).unwrap();
}

#[tokio::test]
async fn a_damaged_execution_record_stops_the_open_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = engine(dir.path());
        let machine = engine
            .register("m", &callback_machine().to_string(), "r")
            .unwrap();
        engine.start(&machine, Some("e"), None).unwrap();
    }
    let record = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|e| e == "json"))
        .expect("the execution was saved");
    std::fs::write(&record, b"{\"arn\": ").unwrap();
    let err = Engine::open(
        dir.path(),
        Arc::new(Fake {
            flaky_calls: AtomicUsize::new(0),
        }),
        Clock::new(0.001),
        None,
    )
    .err()
    .expect("a damaged record is not skipped");
    assert!(
        err.to_string().contains(&record.display().to_string()),
        "{err}"
    );
}
