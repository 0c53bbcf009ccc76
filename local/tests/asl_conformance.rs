//! Conformance of the local Step Functions with the Amazon States Language (JSONPath), one
//! group per construct. Each case is an example of the AWS documentation (the input and output
//! processing pages, the state type pages, workflow variables, intrinsic functions) or a
//! behaviour AWS recorded for it, with the output or error name and cause AWS gives. Tasks call
//! a fake function that returns "Hello, AWS Step Functions!", as the documentation's examples do.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use macie_pipeline_local::clock::Clock;
use macie_pipeline_local::sfn::engine::{Engine, ExecutionRecord, Integrations};
use macie_pipeline_local::sfn::error::StatesError;
use serde_json::{Value, json};

const HELLO: &str = "Hello, AWS Step Functions!";
const HELLO_ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:hello";

/// `hello` returns the greeting; `fail` fails with "Error here" and no cause; `echo` returns
/// its payload.
struct Functions;

impl Integrations for Functions {
    fn invoke(
        &self,
        function: String,
        payload: Value,
    ) -> BoxFuture<'static, Result<Value, StatesError>> {
        Box::pin(async move {
            match function.rsplit(':').next().unwrap_or_default() {
                "hello" => Ok(json!(HELLO)),
                "echo" => Ok(payload),
                _ => Err(StatesError::named(Some("Error here".into()), None)),
            }
        })
    }

    fn publish(&self, _: Value) -> BoxFuture<'static, Result<Value, StatesError>> {
        Box::pin(async { Ok(json!({"MessageId": "m"})) })
    }

    fn list_objects(
        &self,
        _: String,
        _: String,
    ) -> BoxFuture<'static, Result<Vec<Value>, StatesError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

async fn run(definition: Value, input: Value) -> ExecutionRecord {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), Arc::new(Functions), Clock::new(0.001), None).unwrap();
    let machine = engine
        .register(
            "conformance",
            &definition.to_string(),
            "arn:aws:iam::000000000000:role/r",
        )
        .unwrap_or_else(|err| panic!("{definition}: {err}"));
    let (arn, _) = engine
        .start(&machine, Some("e"), Some(&input.to_string()))
        .unwrap();
    for _ in 0..1000 {
        let record = engine.describe(&arn).unwrap();
        if record.status != "RUNNING" {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{definition} did not finish");
}

/// A machine of one state named `S`.
fn one(state: Value) -> Value {
    json!({"StartAt": "S", "States": {"S": state}})
}

async fn output(definition: Value, input: Value) -> Value {
    let record = run(definition.clone(), input).await;
    assert_eq!(
        record.status, "SUCCEEDED",
        "{definition}: {:?} {:?}",
        record.error, record.cause
    );
    record.output.unwrap()
}

async fn failure(definition: Value, input: Value) -> (Option<String>, Option<String>) {
    let record = run(definition.clone(), input).await;
    assert_eq!(record.status, "FAILED", "{definition}: {:?}", record.output);
    (record.error, record.cause)
}

fn hello_task(extra: Value) -> Value {
    let mut state = json!({"Type": "Task", "Resource": HELLO_ARN, "End": true});
    for (key, value) in extra.as_object().unwrap() {
        state[key] = value.clone();
    }
    state
}

mod pass {
    use super::*;

    #[tokio::test]
    async fn input_path_result_and_result_path() {
        let input = json!({"comment": "Example for InputPath.", "dataset1": {"val1": 1, "val2": 2, "val3": 3}, "dataset2": {"val1": "a", "val2": "b", "val3": "c"}});
        assert_eq!(
            output(
                one(json!({"Type": "Pass", "InputPath": "$.dataset2", "End": true})),
                input
            )
            .await,
            json!({"val1": "a", "val2": "b", "val3": "c"})
        );
        let coords = json!({"x-datum": 0.381018, "y-datum": 622.2269926397355});
        assert_eq!(
            output(
                one(
                    json!({"Type": "Pass", "Result": coords, "ResultPath": "$.coords", "End": true})
                ),
                json!({"georefOf": "Home"})
            )
            .await,
            json!({"georefOf": "Home", "coords": coords})
        );
        assert_eq!(
            output(one(json!({"Type": "Pass", "Parameters": {"comment": "Selecting what I care about.", "MyDetails": {"size.$": "$.product.details.size", "exists.$": "$.product.availability", "StaticValue": "foo"}}, "End": true})),
                json!({"product": {"details": {"size": "small"}, "availability": "in stock"}})).await,
            json!({"comment": "Selecting what I care about.", "MyDetails": {"size": "small", "exists": "in stock", "StaticValue": "foo"}})
        );
    }

    #[tokio::test]
    async fn a_path_that_selects_nothing_is_a_located_runtime_error() {
        let (error, cause) = failure(
            one(json!({"Type": "Pass", "InputPath": "$.NoSuchInputPath", "End": true})),
            json!({}),
        )
        .await;
        assert_eq!(error.as_deref(), Some("States.Runtime"));
        assert_eq!(
            cause.as_deref(),
            Some(
                "An error occurred while executing the state 'S' (entered at the event id #2). Invalid path '$.NoSuchInputPath' : No results for path: $['NoSuchInputPath']"
            )
        );
        let (error, cause) = failure(one(json!({"Type": "Pass", "Parameters": {"value.$": "$.no_such_jsonpath"}, "End": true})), json!({"a": 1})).await;
        assert_eq!(error.as_deref(), Some("States.Runtime"));
        assert!(cause.unwrap().ends_with("The JSONPath '$.no_such_jsonpath' specified for the field 'value.$' could not be found in the input '{\"a\":1}'"));
    }
}

mod task {
    use super::*;

    const INPUT: &str = r#"{"comment": "This is a test of the input and output of a Task state.", "details": "Default example", "who": "AWS Step Functions"}"#;

    #[tokio::test]
    async fn result_path_appends_nests_overwrites_and_discards() {
        let input: Value = serde_json::from_str(INPUT).unwrap();
        let mut appended = input.clone();
        appended["taskresult"] = json!(HELLO);
        assert_eq!(
            output(
                one(hello_task(json!({"ResultPath": "$.taskresult"}))),
                input.clone()
            )
            .await,
            appended
        );
        let mut overwritten = input.clone();
        overwritten["comment"] = json!(HELLO);
        assert_eq!(
            output(
                one(hello_task(json!({"ResultPath": "$.comment"}))),
                input.clone()
            )
            .await,
            overwritten
        );
        assert_eq!(
            output(one(hello_task(json!({"ResultPath": null}))), input.clone()).await,
            input
        );
        assert_eq!(
            output(
                one(hello_task(json!({"ResultPath": "$.strings.lambdaresult"}))),
                json!({"strings": {"string1": "foo"}})
            )
            .await,
            json!({"strings": {"string1": "foo", "lambdaresult": HELLO}})
        );
    }

    #[tokio::test]
    async fn input_path_result_path_and_output_path_together() {
        let input = json!({"comment": "An input comment.", "data": {"val1": 23, "val2": 17}, "extra": "foo", "lambda": {"who": "AWS Step Functions"}});
        assert_eq!(
            output(one(hello_task(json!({"InputPath": "$.lambda", "ResultPath": "$.data.lambdaresult", "OutputPath": "$.data"}))), input).await,
            json!({"val1": 23, "val2": 17, "lambdaresult": HELLO})
        );
    }

    #[tokio::test]
    async fn a_catch_writes_the_error_without_a_cause_at_its_result_path() {
        let definition = json!({"StartAt": "T", "States": {
            "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:000000000000:function:fail",
                  "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "NextTask"}], "End": true},
            "NextTask": {"Type": "Pass", "End": true}}});
        assert_eq!(
            output(definition, json!({"foo": "bar"})).await,
            json!({"foo": "bar", "error": {"Error": "Error here"}})
        );
    }

    #[tokio::test]
    async fn the_context_object_of_a_task_counts_retries_and_a_pass_does_not() {
        let task = output(one(json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:000000000000:function:echo",
            "Parameters": {"state.$": "$$.State"}, "End": true})), json!({})).await;
        assert_eq!(task["state"]["RetryCount"], 0);
        assert_eq!(task["state"]["Name"], "S");
        let pass = output(
            one(json!({"Type": "Pass", "Parameters": {"context.$": "$$"}, "End": true})),
            json!({"a": 1}),
        )
        .await;
        assert!(
            pass["context"]["State"].get("RetryCount").is_none(),
            "{pass}"
        );
        assert_eq!(pass["context"]["Execution"]["Input"], json!({"a": 1}));
        assert_eq!(pass["context"]["Execution"]["RedriveCount"], 0);
        assert_eq!(pass["context"]["StateMachine"]["Name"], "conformance");
    }
}

mod choice {
    use super::*;

    fn definition() -> Value {
        json!({"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [
                {"Not": {"Variable": "$.type", "StringEquals": "Private"}, "Next": "Public"},
                {"Variable": "$.value", "NumericEquals": 0, "Next": "ValueIsZero"},
                {"And": [{"Variable": "$.value", "NumericGreaterThanEquals": 20}, {"Variable": "$.value", "NumericLessThan": 30}], "Next": "ValueInTwenties"}]},
            "Public": {"Type": "Pass", "Result": "Public", "End": true},
            "ValueIsZero": {"Type": "Pass", "Result": "ValueIsZero", "End": true},
            "ValueInTwenties": {"Type": "Pass", "Result": "ValueInTwenties", "End": true}}})
    }

    #[tokio::test]
    async fn the_first_matching_rule_wins_and_no_match_without_default_fails() {
        assert_eq!(
            output(definition(), json!({"type": "Private", "value": 22})).await,
            json!("ValueInTwenties")
        );
        assert_eq!(
            output(definition(), json!({"type": "Public", "value": 22})).await,
            json!("Public")
        );
        let (error, _) = failure(definition(), json!({"type": "Private", "value": 99})).await;
        assert_eq!(error.as_deref(), Some("States.NoChoiceMatched"));
    }
}

mod wait {
    use super::*;

    #[tokio::test]
    async fn waits_pass_their_input_and_bad_seconds_fail_as_aws_says() {
        assert_eq!(
            output(
                one(json!({"Type": "Wait", "Seconds": 1, "End": true})),
                json!({"a": 1})
            )
            .await,
            json!({"a": 1})
        );
        assert_eq!(
            output(
                one(json!({"Type": "Wait", "Timestamp": "2016-03-14T01:59:00Z", "End": true})),
                json!({})
            )
            .await,
            json!({})
        );
        let (error, cause) = failure(
            one(json!({"Type": "Wait", "SecondsPath": "$.input.waitSeconds", "End": true})),
            json!({"input": {"waitSeconds": -1}}),
        )
        .await;
        assert_eq!(error.as_deref(), Some("States.Runtime"));
        assert!(cause.unwrap().ends_with(
            "The SecondsPath parameter references a negative value: $.input.waitSeconds == -1"
        ));
        let (_, cause) = failure(
            one(json!({"Type": "Wait", "Timestamp": "2016-12-05 21:29:29Z", "End": true})),
            json!({}),
        )
        .await;
        assert!(cause.unwrap().ends_with("The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: 2016-12-05 21:29:29Z"));
    }
}

mod succeed_and_fail {
    use super::*;

    #[tokio::test]
    async fn succeed_applies_its_paths() {
        assert_eq!(
            output(
                one(json!({"Type": "Succeed", "InputPath": "$.a", "OutputPath": "$.b"})),
                json!({"a": {"b": 2}})
            )
            .await,
            json!(2)
        );
    }

    #[tokio::test]
    async fn fail_reports_its_error_and_cause_or_none() {
        assert_eq!(
            failure(one(json!({"Type": "Fail", "Error": "SomeFailure", "Cause": "This state machines raises a 'SomeFailure' failure."})), json!({})).await,
            (Some("SomeFailure".into()), Some("This state machines raises a 'SomeFailure' failure.".into()))
        );
        assert_eq!(
            failure(one(json!({"Type": "Fail"})), json!({})).await,
            (None, None),
            "no States.Fail"
        );
        assert_eq!(
            failure(one(json!({"Type": "Fail", "ErrorPath": "$.Error", "CausePath": "States.Format('This is a custom error message for {}, caused by {}.', $.Error, $.Cause)"})),
                json!({"Error": "error string", "Cause": "cause string"})).await,
            (Some("error string".into()), Some("This is a custom error message for error string, caused by cause string.".into()))
        );
    }
}

mod parallel {
    use super::*;

    fn branch(states: Value, start: &str) -> Value {
        json!({"StartAt": start, "States": states})
    }

    #[tokio::test]
    async fn branches_run_on_the_same_input_and_give_an_array_in_branch_order() {
        let definition = json!({"StartAt": "LoadInput", "States": {
            "LoadInput": {"Type": "Pass", "Result": [1, 2, 3, 4], "Next": "ParallelState"},
            "ParallelState": {"Type": "Parallel", "End": true, "Branches": [
                branch(json!({"Branch1": {"Type": "Pass", "End": true}}), "Branch1"),
                branch(json!({"Branch21": {"Type": "Pass", "Next": "Branch22"}, "Branch22": {"Type": "Pass", "End": true}}), "Branch21"),
                branch(json!({"Branch31": {"Type": "Wait", "Seconds": 2, "Next": "Branch32"}, "Branch32": {"Type": "Pass", "Result": {"branch": 3}, "End": true}}), "Branch31")]}}});
        let record = run(definition, json!({})).await;
        assert_eq!(
            record.output,
            Some(json!([[1, 2, 3, 4], [1, 2, 3, 4], {"branch": 3}]))
        );
        let kinds: Vec<&str> = record.history.iter().map(|e| e.kind.as_str()).collect();
        for kind in [
            "ParallelStateEntered",
            "ParallelStateStarted",
            "ParallelStateSucceeded",
            "ParallelStateExited",
        ] {
            assert!(kinds.contains(&kind), "{kinds:?}");
        }
        assert!(
            kinds.iter().filter(|k| **k == "PassStateEntered").count() >= 5,
            "branch states are in the history"
        );
        let parameters = output(one(json!({"Type": "Parallel", "Parameters": {"static-input-0": 0}, "End": true,
            "ResultSelector": {"first.$": "$[0]"},
            "Branches": [branch(json!({"A": {"Type": "Pass", "End": true}}), "A"), branch(json!({"B": {"Type": "Pass", "End": true}}), "B")]})), json!({})).await;
        assert_eq!(parameters, json!({"first": {"static-input-0": 0}}));
    }

    fn failing(extra: Value) -> Value {
        let mut state = json!({"Type": "Parallel", "Branches": [branch(json!({"Branch1": {"Type": "Fail", "Error": "FailureType", "Cause": "Cause description"}}), "Branch1")]});
        for (key, value) in extra.as_object().unwrap() {
            state[key] = value.clone();
        }
        json!({"StartAt": "P", "States": {"P": state, "FinalCaught": {"Type": "Pass", "End": true}}})
    }

    #[tokio::test]
    async fn a_failing_branch_fails_the_state_with_its_own_error_and_retry_and_catch_apply() {
        assert_eq!(
            failure(failing(json!({"End": true})), json!({})).await,
            (Some("FailureType".into()), Some("Cause description".into()))
        );
        let caught = failing(
            json!({"End": true, "Catch": [{"ErrorEquals": ["FailureType"], "Next": "FinalCaught"}]}),
        );
        assert_eq!(
            output(caught, json!({})).await,
            json!({"Error": "FailureType", "Cause": "Cause description"})
        );
        let retried = failing(
            json!({"End": true, "Retry": [{"ErrorEquals": ["FailureType"], "MaxAttempts": 2, "IntervalSeconds": 1}]}),
        );
        let record = run(retried, json!({})).await;
        assert_eq!(record.error.as_deref(), Some("FailureType"));
        let starts = record
            .history
            .iter()
            .filter(|e| e.kind == "ParallelStateStarted")
            .count();
        assert_eq!(starts, 3, "the first attempt and two retries");
    }
}

mod map {
    use super::*;

    #[tokio::test]
    async fn items_see_their_index_and_value_in_order() {
        let definition = one(
            json!({"Type": "Map", "ItemSelector": {"ContextIndex.$": "$$.Map.Item.Index", "ContextValue.$": "$$.Map.Item.Value"},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}),
        );
        assert_eq!(
            output(
                definition,
                json!([{"who": "bob"}, {"who": "meg"}, {"who": "joe"}])
            )
            .await,
            json!([{"ContextIndex": 0, "ContextValue": {"who": "bob"}}, {"ContextIndex": 1, "ContextValue": {"who": "meg"}}, {"ContextIndex": 2, "ContextValue": {"who": "joe"}}])
        );
    }

    #[tokio::test]
    async fn items_that_are_not_an_array_fail_as_aws_says() {
        let definition = one(json!({"Type": "Map", "ItemsPath": "$.items",
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}));
        let (error, cause) = failure(definition, json!({"items": 1})).await;
        assert_eq!(error.as_deref(), Some("States.Runtime"));
        assert!(
            cause
                .unwrap()
                .ends_with("Map state input must be an array but was: 1")
        );
    }
}

mod variables {
    use super::*;

    #[tokio::test]
    async fn assign_is_evaluated_at_entry_and_visible_from_the_next_state() {
        let definition = json!({"StartAt": "State0", "States": {
            "State0": {"Type": "Pass", "Result": {"theQuestion": "What is the answer to life the universe and everything?"},
                       "Assign": {"question.$": "$.theQuestion", "answer": 42}, "Next": "State1"},
            "State1": {"Type": "Pass", "InputPath": "$answer", "ResultPath": "$.theAnswer", "OutputPath": "$answer",
                       "Assign": {"answer": "<omitted>"}, "End": true}}});
        let record = run(definition, json!({})).await;
        assert_eq!(record.output, Some(json!(42)));
        let exited = &record
            .history
            .iter()
            .find(|e| e.kind == "PassStateExited")
            .unwrap()
            .details;
        assert_eq!(
            exited["stateExitedEventDetails"]["assignedVariables"]["answer"],
            "42"
        );
    }

    #[tokio::test]
    async fn choice_rules_assign_and_templates_read_variables() {
        let definition = json!({"StartAt": "Check", "States": {
            "Check": {"Type": "Choice", "Choices": [
                {"Variable": "$.input_value", "IsPresent": false, "Assign": {"status": "UNKNOWN"}, "Next": "Final"},
                {"Variable": "$.input_value", "NumericEquals": 42, "Assign": {"status": "CORRECT"}, "Next": "Final"}],
                "Assign": {"status": "INCORRECT", "guess.$": "$.input_value"}, "Default": "Final"},
            "Final": {"Type": "Pass", "Parameters": {"result.$": "$status", "literal": "$status",
                "formatted.$": "States.Format('{}!', $status)"}, "End": true}}});
        assert_eq!(
            output(definition.clone(), json!({"input_value": 42})).await,
            json!({"result": "CORRECT", "literal": "$status", "formatted": "CORRECT!"})
        );
        assert_eq!(
            output(definition.clone(), json!({"input_value": 1})).await["result"],
            "INCORRECT"
        );
        assert_eq!(output(definition, json!({})).await["result"], "UNKNOWN");
    }

    #[tokio::test]
    async fn branches_read_the_outer_scope_and_keep_their_own_assignments() {
        let inner = |name: &str| {
            json!({"StartAt": name, "States": {name: {"Type": "Pass", "Assign": {"innerX.$": "$x", "value.$": "$"}, "Next": "Read"},
            "Read": {"Type": "Pass", "Parameters": {"x.$": "$innerX"}, "End": true}}})
        };
        let definition = json!({"StartAt": "State0", "States": {
            "State0": {"Type": "Pass", "Assign": {"x": 42}, "Next": "State1"},
            "State1": {"Type": "Parallel", "Branches": [inner("B1"), inner("B2")], "Next": "After"},
            "After": {"Type": "Pass", "Parameters": {"x.$": "$x"}, "End": true}}});
        assert_eq!(output(definition, json!({})).await, json!({"x": 42}));
        let leaked = json!({"StartAt": "P", "States": {
            "P": {"Type": "Parallel", "Branches": [inner("B1")], "Next": "After"},
            "After": {"Type": "Pass", "Parameters": {"x.$": "$innerX"}, "End": true}}});
        let (error, _) = failure(leaked, json!({"x": 1})).await;
        assert_eq!(
            error.as_deref(),
            Some("States.Runtime"),
            "an inner variable is not visible outside"
        );
    }

    #[tokio::test]
    async fn a_catcher_assigns_from_the_error_output() {
        let definition = json!({"StartAt": "T", "States": {
            "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:000000000000:function:fail", "Assign": {"result": "SUCCESS"},
                  "Catch": [{"ErrorEquals": ["States.ALL"], "Assign": {"result.$": "$.Error", "state.$": "$$.State.Name"}, "Next": "fallback"}], "End": true},
            "fallback": {"Type": "Pass", "Parameters": {"result.$": "$result", "state.$": "$state"}, "End": true}}});
        assert_eq!(
            output(definition, json!({})).await,
            json!({"result": "Error here", "state": "T"}),
            "a catcher's Assign reads the context object too"
        );
    }
}

mod intrinsics {
    use super::*;

    #[tokio::test]
    async fn intrinsics_follow_aws_argument_rules() {
        let state = one(json!({"Type": "Pass", "Parameters": {
            "sum.$": "States.MathAdd($.a, $.b)",
            "json.$": "States.StringToJson($.s)",
            "named.$": "States.Format('{} in {}', $$.Execution.Name, $$.StateMachine)",
            "last.$": "States.ArrayGetItem(States.StringSplit($$.StateMachine.Name, 'o'), States.MathAdd(States.ArrayLength(States.StringSplit($$.StateMachine.Name, 'o')), -1))"},
            "End": true}));
        let out = output(state, json!({"a": 1.49, "b": 1.5, "s": " "})).await;
        assert_eq!(out["sum"], 3);
        assert_eq!(out["json"], Value::Null);
        assert!(
            out["named"]
                .as_str()
                .unwrap()
                .starts_with("e in {Id=arn:aws:states:"),
            "{out}"
        );
        assert_eq!(out["last"], "rmance");
    }

    #[tokio::test]
    async fn a_failing_intrinsic_is_a_located_runtime_error() {
        let (error, cause) = failure(one(json!({"Type": "Pass", "Parameters": {"x.$": "States.ArrayGetItem($.a, 5)"}, "End": true})), json!({"a": []})).await;
        assert_eq!(error.as_deref(), Some("States.Runtime"));
        assert!(cause.unwrap().contains("States.ArrayGetItem"));
    }
}

mod definitions {
    use super::*;

    #[test]
    fn jsonata_is_refused_naming_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let engine =
            Engine::open(dir.path(), Arc::new(Functions), Clock::new(0.001), None).unwrap();
        let err = engine
            .register(
                "m",
                &one(json!({"Type": "Pass", "QueryLanguage": "JSONata", "End": true})).to_string(),
                "r",
            )
            .unwrap_err();
        assert!(
            err.contains("state S uses the JSONata query language"),
            "{err}"
        );
    }
}

/// `states run --output json` runs a documentation example on the whole local stack and prints
/// the outcome as one JSON object.
#[test]
fn states_run_prints_the_outcome_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let definition = dir.path().join("parallel.asl.json");
    std::fs::write(
        &definition,
        json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": {"branch": 0}, "End": true}}},
            {"StartAt": "B", "States": {"B": {"Type": "Fail", "Error": "FailureType", "Cause": "Cause description"}}}]}}})
        .to_string(),
    )
    .unwrap();
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_macie-pipeline-local"))
        .args(["states", "run", "--output", "json", "--definition"])
        .arg(&definition)
        .arg("--template")
        .arg(&template)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let stdout = String::from_utf8(run.stdout).unwrap();
    let outcome: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|err| panic!("{err}: {stdout:?}"));
    assert_eq!(
        outcome,
        json!({"status": "FAILED", "error": "FailureType", "cause": "Cause description"})
    );
    assert!(!run.status.success());
}

/// Every intrinsic function in the project's state machine parses and evaluates on a state
/// shaped like the one it meets (a broken notification message would otherwise fail only when
/// the run it announces fails).
#[test]
fn every_intrinsic_of_the_project_state_machine_evaluates() {
    let text = include_str!("../../statemachine/macie_pipeline_scan.asl.json");
    let definition: Value = serde_json::from_str(text).unwrap();
    let state = json!({
        "config": {"pollIntervalSeconds": 60, "approvalTimeoutSeconds": 432000, "approvalTimeoutAction": "hold"},
        "scan": {"Payload": {"status": "JOB_STARTED", "workflowId": "wf-1", "jobId": "j",
                 "tally": {"rejected": 2, "rejections": [{"key": "k", "reason": "r"}],
                           "rejectionsText": "- k: r"}}},
        "job": {"Payload": {"status": "STOPPED", "jobStatus": "CANCELLED", "reason": "cancelled"}},
        "routing": {"Payload": {"status": "DONE", "tally": {"moved": 3, "superseded": 1,
                    "supersessions": [{"key": "k", "by": "v2"}], "supersessionsText": "- k: v2"}}},
        "release": {"Payload": {"status": "DONE", "tally": {"moved": 1, "superseded": 1,
                    "supersessions": [{"key": "k", "by": "v3"}], "supersessionsText": "- k: v3"}}},
        "deletion": {"Payload": {"status": "DONE", "tally": {"deleted": 2}, "undecided": 1}},
        "error": {"Error": "AwsRequestFailed",
                  "Cause": "{\"errorType\":\"AwsRequestFailed\",\"errorMessage\":\"m\"}"},
        "failedStep": {"name": "triggerMacieScan", "doing": "taking", "objects": "where"},
        "errorDetail": {"parsed": {"errorType": "AwsRequestFailed", "errorMessage": "m",
                        "Entries": [{"ErrorCode": "ResourceNotFoundException", "ErrorMessage": "Event bus x does not exist."}]}},
        "failure": {"step": "triggerMacieScan", "error": "PipelineRunFailed", "cause": "AwsRequestFailed",
                    "message": "m", "details": "where", "subject": "run failed"},
        "chat": {"version": "1.0", "source": "custom", "content": {"description": "m"}},
    });
    let context =
        json!({"Execution": {"Name": "run", "Id": "arn:aws:states:us-east-1:0:execution:m:run"}});
    fn intrinsics(value: &Value, out: &mut Vec<(String, String)>) {
        for (key, nested) in value.as_object().into_iter().flatten() {
            match nested.as_str() {
                Some(expression) if key.ends_with(".$") && expression.starts_with("States.") => {
                    out.push((key.clone(), expression.to_owned()));
                }
                _ => intrinsics(nested, out),
            }
        }
    }
    let mut checked = 0;
    for (name, state_definition) in definition["States"].as_object().unwrap() {
        let mut found = Vec::new();
        intrinsics(&state_definition["Parameters"], &mut found);
        for (key, expression) in found {
            {
                let expression = macie_pipeline_local::sfn::definition::substitute::substitute(
                    &expression,
                    &std::collections::BTreeMap::from([
                        ("PollIntervalSeconds".to_owned(), "60".to_owned()),
                        ("ApprovalTimeoutSeconds".to_owned(), "432000".to_owned()),
                        ("ScanStageBucket".to_owned(), "scan".to_owned()),
                        ("ManualReviewBucket".to_owned(), "review".to_owned()),
                        ("RawBucket".to_owned(), "raw".to_owned()),
                        ("MapMaxConcurrency".to_owned(), "10".to_owned()),
                        ("MapItemsPerBatch".to_owned(), "1000".to_owned()),
                    ]),
                )
                .unwrap();
                let variables = macie_pipeline_local::sfn::expr::env::Variables::new();
                let result = macie_pipeline_local::sfn::expr::intrinsics::parse(&expression)
                    .and_then(|call| {
                        call.evaluate(&macie_pipeline_local::sfn::expr::env::Env::new(
                            &state, &context, &variables,
                        ))
                    });
                assert!(result.is_ok(), "{name}.{key}: {}", result.unwrap_err());
                checked += 1;
            }
        }
    }
    assert!(checked >= 7, "only {checked} intrinsics found");
}
