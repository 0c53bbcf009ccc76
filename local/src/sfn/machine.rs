//! A state machine definition: parsed from ASL JSON after definition substitutions, and checked
//! before anything runs, so a broken definition is a load error with a clear message rather than
//! a failure half-way through a run.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

/// States this interpreter runs.
const TYPES: &[&str] = &["Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Map"];

/// A checked state machine (or the sub-machine of a Map state).
#[derive(Debug, Clone)]
pub struct Machine {
    pub start_at: String,
    pub timeout_seconds: Option<u64>,
    states: BTreeMap<String, Value>,
    /// Sub-machines of Map states, by the Map state's name.
    processors: BTreeMap<String, Machine>,
}

impl Machine {
    /// Parses and checks a definition.
    pub fn parse(text: &str) -> Result<Self, String> {
        let definition: Value = serde_json::from_str(text)
            .map_err(|err| format!("the definition is not JSON: {err}"))?;
        Self::from_value(&definition, "the state machine")
    }

    fn from_value(definition: &Value, scope: &str) -> Result<Self, String> {
        let start_at = definition["StartAt"]
            .as_str()
            .ok_or_else(|| format!("{scope} has no StartAt"))?
            .to_owned();
        let states: BTreeMap<String, Value> = definition["States"]
            .as_object()
            .ok_or_else(|| format!("{scope} has no States"))?
            .iter()
            .map(|(name, state)| (name.clone(), state.clone()))
            .collect();
        if !states.contains_key(&start_at) {
            return Err(format!("{scope}: StartAt {start_at} is not a state"));
        }
        let mut processors = BTreeMap::new();
        for (name, state) in &states {
            let kind = state["Type"].as_str().unwrap_or_default();
            if !TYPES.contains(&kind) {
                return Err(format!("state {name}: Type {kind:?} is not supported"));
            }
            let targets = transitions(state);
            for target in &targets {
                if !states.contains_key(target) {
                    return Err(format!(
                        "state {name} goes to {target}, which does not exist"
                    ));
                }
            }
            let ends = state["End"] == Value::Bool(true) || matches!(kind, "Succeed" | "Fail");
            match kind {
                "Choice" if state["Choices"].as_array().is_none_or(Vec::is_empty) => {
                    return Err(format!("Choice state {name} has no Choices"));
                }
                "Choice" | "Succeed" | "Fail" => {}
                _ if state["Next"].is_string() == ends => {
                    return Err(format!(
                        "state {name} must have exactly one of Next and End"
                    ));
                }
                _ => {}
            }
            if kind == "Task" {
                check_task(name, state)?;
            }
            if kind == "Wait" {
                let ways = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
                    .iter()
                    .filter(|field| state.get(**field).is_some())
                    .count();
                if ways != 1 {
                    return Err(format!(
                        "Wait state {name} needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath"
                    ));
                }
            }
            if kind == "Map" {
                let processor = state
                    .get("ItemProcessor")
                    .or_else(|| state.get("Iterator"))
                    .ok_or_else(|| format!("Map state {name} has no ItemProcessor"))?;
                processors.insert(
                    name.clone(),
                    Self::from_value(processor, &format!("Map state {name}"))?,
                );
            }
            for catcher in state["Catch"].as_array().into_iter().flatten() {
                if catcher["ErrorEquals"].as_array().is_none_or(Vec::is_empty) {
                    return Err(format!("state {name} has a Catch without ErrorEquals"));
                }
            }
            for retrier in state["Retry"].as_array().into_iter().flatten() {
                if retrier["ErrorEquals"].as_array().is_none_or(Vec::is_empty) {
                    return Err(format!("state {name} has a Retry without ErrorEquals"));
                }
            }
        }
        Ok(Self {
            start_at,
            timeout_seconds: definition["TimeoutSeconds"].as_u64(),
            states,
            processors,
        })
    }

    pub fn state(&self, name: &str) -> Option<&Value> {
        self.states.get(name)
    }

    pub fn processor(&self, name: &str) -> Option<&Machine> {
        self.processors.get(name)
    }
}

fn check_task(name: &str, state: &Value) -> Result<(), String> {
    let resource = state["Resource"]
        .as_str()
        .ok_or_else(|| format!("Task state {name} has no Resource"))?;
    if resource.starts_with("arn:aws:states:::lambda:invoke") {
        let parameters = &state["Parameters"];
        if parameters.get("FunctionName").is_none() && parameters.get("FunctionName.$").is_none() {
            return Err(format!(
                "Task state {name} invokes a Lambda without FunctionName"
            ));
        }
        if parameters.get("Payload").is_none() && parameters.get("Payload.$").is_none() {
            return Err(format!(
                "Task state {name} invokes a Lambda without Payload"
            ));
        }
    } else if resource != "arn:aws:states:::sns:publish" && !resource.starts_with("arn:aws:lambda:")
    {
        return Err(format!(
            "Task state {name}: resource {resource} is not supported locally"
        ));
    }
    if state.get("TimeoutSeconds").is_some() && state.get("TimeoutSecondsPath").is_some() {
        return Err(format!(
            "Task state {name} has both TimeoutSeconds and TimeoutSecondsPath"
        ));
    }
    Ok(())
}

/// Every state a state can go to.
pub fn transitions(state: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |value: &Value| {
        if let Some(target) = value.as_str() {
            out.push(target.to_owned());
        }
    };
    add(&state["Next"]);
    add(&state["Default"]);
    for rule in state["Choices"].as_array().into_iter().flatten() {
        add(&rule["Next"]);
    }
    for catcher in state["Catch"].as_array().into_iter().flatten() {
        add(&catcher["Next"]);
    }
    out
}

/// Replaces each `${Name}` with its value, as SAM's `DefinitionSubstitutions` do. A name without a
/// value is an error.
pub fn substitute(text: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut missing = HashSet::new();
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map(|end| start + end)
            .ok_or("an unterminated ${ in the definition")?;
        let name = &rest[start + 2..end];
        match values.get(name) {
            Some(value) => out.push_str(value),
            None => {
                missing.insert(name.to_owned());
            }
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    if !missing.is_empty() {
        let mut missing: Vec<_> = missing.into_iter().collect();
        missing.sort();
        return Err(format!(
            "no value for the substitutions {}",
            missing.join(", ")
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_dangling_transition_is_a_load_error() {
        let text =
            json!({"StartAt": "a", "States": {"a": {"Type": "Pass", "Next": "b"}}}).to_string();
        assert!(
            Machine::parse(&text)
                .unwrap_err()
                .contains("b, which does not exist")
        );
    }

    #[test]
    fn a_lambda_task_without_payload_is_rejected() {
        let text = json!({"StartAt": "a", "States": {"a": {"Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "f"}, "End": true}}})
        .to_string();
        assert!(
            Machine::parse(&text)
                .unwrap_err()
                .contains("without Payload")
        );
    }

    #[test]
    fn substitutions_must_all_resolve() {
        let values = BTreeMap::from([("A".to_owned(), "1".to_owned())]);
        assert_eq!(substitute("x${A}y", &values).unwrap(), "x1y");
        assert!(substitute("${A}${B}", &values).unwrap_err().contains("B"));
    }

    #[test]
    fn the_project_state_machine_loads() {
        let text = include_str!("../../../statemachine/macie_pipeline_scan.asl.json");
        let mut values = BTreeMap::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            let end = rest[start..].find('}').unwrap() + start;
            values.insert(rest[start + 2..end].to_owned(), "1".to_owned());
            rest = &rest[end + 1..];
        }
        let machine = Machine::parse(&substitute(text, &values).unwrap()).unwrap();
        assert_eq!(machine.start_at, "startRun");
    }

    /// Every intrinsic function in the project's state machine parses and evaluates on a state
    /// shaped like the one it meets (a broken notification message would otherwise fail only when
    /// the run it announces fails).
    #[test]
    fn every_intrinsic_of_the_project_state_machine_evaluates() {
        let text = include_str!("../../../statemachine/macie_pipeline_scan.asl.json");
        let definition: Value = serde_json::from_str(text).unwrap();
        let state = json!({
            "config": {"pollIntervalSeconds": 60, "approvalTimeoutSeconds": 432000, "approvalTimeoutAction": "hold"},
            "scan": {"Payload": {"status": "JOB_STARTED", "workflowId": "wf-1", "jobId": "j",
                     "tally": {"rejected": 2, "rejections": [{"key": "k", "reason": "r"}]}}},
            "job": {"Payload": {"status": "STOPPED", "jobStatus": "CANCELLED", "reason": "cancelled"}},
            "routing": {"Payload": {"status": "DONE", "tally": {"moved": 3, "superseded": 1,
                        "supersessions": [{"key": "k", "by": "v2"}]}}},
            "release": {"Payload": {"status": "DONE", "tally": {"moved": 1, "superseded": 1,
                        "supersessions": [{"key": "k", "by": "v3"}]}}},
            "error": {"Error": "AwsRequestFailed", "Cause": "{\"errorType\":\"AwsRequestFailed\"}"},
        });
        let context = json!({"Execution": {"Name": "run", "Id": "arn:aws:states:us-east-1:0:execution:m:run"}});
        fn intrinsics(value: &Value, out: &mut Vec<(String, String)>) {
            for (key, nested) in value.as_object().into_iter().flatten() {
                match nested.as_str() {
                    Some(expression)
                        if key.ends_with(".$") && expression.starts_with("States.") =>
                    {
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
                    let expression = substitute(
                        &expression,
                        &BTreeMap::from([
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
                    let result = crate::sfn::intrinsics::evaluate(&expression, &state, &context);
                    assert!(result.is_ok(), "{name}.{key}: {}", result.unwrap_err());
                    checked += 1;
                }
            }
        }
        assert!(checked >= 7, "only {checked} intrinsics found");
    }
}
