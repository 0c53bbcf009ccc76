//! Definitions AWS's validator refuses are refused when they load, with its code and the
//! location of what is wrong; the project's own state machine loads.

use std::collections::BTreeMap;

use macie_pipeline_local::sfn::definition::parse;
use macie_pipeline_local::sfn::definition::state::Machine;
use macie_pipeline_local::sfn::definition::substitute::substitute;
use serde_json::{Value, json};

fn parse(definition: Value) -> Result<Machine, String> {
    parse::definition(&definition.to_string())
}

#[test]
fn a_dangling_transition_is_a_load_error() {
    let err =
        parse(json!({"StartAt": "a", "States": {"a": {"Type": "Pass", "Next": "b"}}})).unwrap_err();
    assert!(err.starts_with("MISSING_TRANSITION_TARGET"), "{err}");
    assert!(
        err.contains("b, which does not exist") && err.ends_with("/States/a/Next"),
        "{err}"
    );
}

#[test]
fn fields_are_checked_against_the_state_type() {
    let cases = [
        (
            json!({"Type": "Pass", "Next": "x", "End": true}),
            "exactly one of Next and End",
        ),
        (
            json!({"Type": "Pass", "End": true, "Seconds": 1}),
            "Field 'Seconds' is not supported",
        ),
        (
            json!({"Type": "Fail", "Error": "E", "ErrorPath": "$.e"}),
            "cannot be used together",
        ),
        (
            json!({"Type": "Wait", "End": true}),
            "exactly one of Seconds",
        ),
        (
            json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "f"}, "End": true}),
            "without Payload",
        ),
        (
            json!({"Type": "Task", "Resource": "arn:aws:states:::dynamodb:getItem", "End": true}),
            "not supported locally",
        ),
        (
            json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:0:function:f", "End": true,
                "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["E"]}]}),
            "last retrier",
        ),
        (
            json!({"Type": "Pass", "End": true, "Parameters": {"x.$": "States.Format('{}')"}}),
            "placeholders",
        ),
        (
            json!({"Type": "Pass", "End": true, "QueryLanguage": "JSONata"}),
            "JSONata",
        ),
        (
            json!({"Type": "Parallel", "End": true, "Branches": []}),
            "at least one branch",
        ),
        (
            json!({"Type": "Map", "End": true, "ItemsPath": "$.a", "ToleratedFailureCount": 1,
                "ItemProcessor": {"StartAt": "p", "States": {"p": {"Type": "Succeed"}}}}),
            "DISTRIBUTED",
        ),
        (
            json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "BooleanEquals": 1, "Next": "s"}]}),
            "wrong type",
        ),
        (json!({"Type": "Nope"}), "not a state type"),
    ];
    for (state, expected) in cases {
        let err = parse(json!({"StartAt": "s", "States": {"s": state}})).unwrap_err();
        assert!(err.contains(expected), "{state}: {err}");
    }
}

#[test]
fn a_machine_timeout_is_refused_rather_than_ignored() {
    let err =
        parse(json!({"StartAt": "s", "TimeoutSeconds": 60, "States": {"s": {"Type": "Succeed"}}}))
            .unwrap_err();
    assert!(
        err.starts_with("UNSUPPORTED_FIELD") && err.ends_with("/TimeoutSeconds"),
        "{err}"
    );
}

#[test]
fn branches_and_processors_are_checked_like_machines() {
    let err = parse(
        json!({"StartAt": "p", "States": {"p": {"Type": "Parallel", "End": true,
        "Branches": [{"StartAt": "a", "States": {"a": {"Type": "Pass", "Next": "zz"}}}]}}}),
    )
    .unwrap_err();
    assert!(err.ends_with("/States/p/Branches/0/States/a/Next"), "{err}");
}

#[test]
fn the_project_state_machine_loads() {
    let text = include_str!("../../statemachine/macie_pipeline_scan.asl.json");
    let mut values = BTreeMap::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let end = rest[start..].find('}').unwrap() + start;
        values.insert(rest[start + 2..end].to_owned(), "1".to_owned());
        rest = &rest[end + 1..];
    }
    let machine = parse::definition(&substitute(text, &values).unwrap()).unwrap();
    assert_eq!(machine.start_at, "startRun");
}
