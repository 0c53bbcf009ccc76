//! Amazon States Language data flow: reading paths from the state input (`$`) and the context
//! object (`$$`), building payloads from templates with `.$` keys, and writing results into the
//! input at a `ResultPath`.

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use crate::sfn::intrinsics;

/// A runtime error of the state machine: an error name (`States.Runtime`, a function's
/// `errorType`, ...) and an optional cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatesError {
    pub error: String,
    pub cause: Option<String>,
}

impl StatesError {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            cause: Some(cause.into()),
        }
    }
}

impl std::fmt::Display for StatesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cause {
            Some(cause) => write!(f, "{}: {cause}", self.error),
            None => f.write_str(&self.error),
        }
    }
}

/// Whether a path can select several nodes, in which case the result is an array.
fn selects_many(path: &str) -> bool {
    path.contains('*')
        || path.contains("..")
        || path.contains("?(")
        || path.contains(':')
        || path.contains(',')
}

/// Reads a path: `$...` from `input`, `$$...` from `context`.
pub fn read(path: &str, input: &Value, context: &Value) -> Result<Value, String> {
    let (target, query) = match path.strip_prefix("$$") {
        Some(rest) => (context, format!("${rest}")),
        None => (input, path.to_owned()),
    };
    let parsed = JsonPath::parse(&query).map_err(|err| format!("invalid path {path:?}: {err}"))?;
    let nodes = parsed.query(target);
    if selects_many(&query) {
        return Ok(Value::Array(nodes.all().into_iter().cloned().collect()));
    }
    nodes
        .exactly_one()
        .cloned()
        .map_err(|_| format!("the JSONPath {path:?} could not be found in the input"))
}

/// InputPath / OutputPath: absent means `$`, JSON null means `{}`.
pub fn select(value: &Value, path: Option<&Value>, context: &Value) -> Result<Value, StatesError> {
    match path {
        None => Ok(value.clone()),
        Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(Value::String(path)) => {
            read(path, value, context).map_err(|cause| StatesError::new("States.Runtime", cause))
        }
        Some(other) => Err(StatesError::new(
            "States.Runtime",
            format!("a path must be a string, got {other}"),
        )),
    }
}

/// Builds a payload from a `Parameters`, `ResultSelector` or `ItemSelector` template: keys ending
/// in `.$` take a path's value or an intrinsic function's result.
pub fn build(template: &Value, input: &Value, context: &Value) -> Result<Value, StatesError> {
    match template {
        Value::Object(fields) => {
            let mut out = Map::with_capacity(fields.len());
            for (key, value) in fields {
                match key.strip_suffix(".$") {
                    Some(name) => {
                        let Value::String(expression) = value else {
                            return Err(StatesError::new(
                                "States.ParameterPathFailure",
                                format!(
                                    "the value of {key} must be a path or an intrinsic function"
                                ),
                            ));
                        };
                        let resolved = if expression.starts_with("States.") {
                            intrinsics::evaluate(expression, input, context).map_err(|cause| {
                                StatesError::new("States.IntrinsicFailure", cause)
                            })?
                        } else {
                            read(expression, input, context).map_err(|cause| {
                                StatesError::new(
                                    "States.ParameterPathFailure",
                                    format!("the value of {key}: {cause}"),
                                )
                            })?
                        };
                        out.insert(name.to_owned(), resolved);
                    }
                    None => {
                        out.insert(key.clone(), build(value, input, context)?);
                    }
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .map(|item| build(item, input, context))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

/// One step of a reference path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(usize),
}

/// Parses a reference path (`$`, `$.a.b`, `$['a'][0]`): a single node, no wildcards or filters.
fn reference_steps(path: &str) -> Result<Vec<Step>, String> {
    let invalid = || format!("{path:?} is not a reference path");
    let mut rest = path.strip_prefix('$').ok_or_else(invalid)?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return Err(invalid());
            }
            steps.push(Step::Field(after[..end].to_owned()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix("['") {
            let end = after.find("']").ok_or_else(invalid)?;
            steps.push(Step::Field(after[..end].to_owned()));
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').ok_or_else(invalid)?;
            steps.push(Step::Index(after[..end].parse().map_err(|_| invalid())?));
            rest = &after[end + 1..];
        } else {
            return Err(invalid());
        }
    }
    Ok(steps)
}

/// Writes `result` into `input` at `ResultPath`: absent means replace (`$`), null means discard.
pub fn put(input: Value, result_path: Option<&Value>, result: Value) -> Result<Value, StatesError> {
    let path = match result_path {
        None => return Ok(result),
        Some(Value::Null) => return Ok(input),
        Some(Value::String(path)) => path,
        Some(other) => {
            return Err(StatesError::new(
                "States.ResultPathMatchFailure",
                format!("ResultPath must be a string or null, got {other}"),
            ));
        }
    };
    let failure = |cause: String| StatesError::new("States.ResultPathMatchFailure", cause);
    let steps = reference_steps(path).map_err(failure)?;
    if steps.is_empty() {
        return Ok(result);
    }
    let mut root = input;
    let mut node = &mut root;
    let (last, walk) = steps.split_last().expect("not empty");
    for step in walk {
        node = match step {
            Step::Field(name) => {
                let Value::Object(fields) = node else {
                    return Err(failure(format!(
                        "cannot apply ResultPath {path}: {name} is not inside an object"
                    )));
                };
                fields
                    .entry(name.clone())
                    .or_insert_with(|| Value::Object(Map::new()))
            }
            Step::Index(index) => node.get_mut(*index).ok_or_else(|| {
                failure(format!(
                    "cannot apply ResultPath {path}: no element {index}"
                ))
            })?,
        };
    }
    match (last, node) {
        (Step::Field(name), Value::Object(fields)) => {
            fields.insert(name.clone(), result);
        }
        (Step::Index(index), Value::Array(items)) if *index < items.len() => items[*index] = result,
        _ => {
            return Err(failure(format!(
                "cannot apply ResultPath {path} to the state input"
            )));
        }
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // The worked examples of specs/stepfunctions.md §10.

    #[test]
    fn input_path_selects_a_node() {
        let input = json!({"comment": "Example for InputPath.", "dataset1": {"val1": 1}, "dataset2": {"val1": "a", "val2": "b", "val3": "c"}});
        assert_eq!(
            select(&input, Some(&json!("$.dataset2")), &json!({})).unwrap(),
            json!({"val1": "a", "val2": "b", "val3": "c"})
        );
        assert_eq!(
            select(&input, Some(&Value::Null), &json!({})).unwrap(),
            json!({})
        );
    }

    #[test]
    fn parameters_mix_literals_and_paths() {
        let input = json!({"comment": "Example for Parameters.", "product": {"details": {"color": "blue", "size": "small", "material": "cotton"}, "availability": "in stock", "sku": "2317", "cost": "$23"}});
        let template = json!({"comment": "Selecting what I care about.", "MyDetails": {"size.$": "$.product.details.size", "exists.$": "$.product.availability", "StaticValue": "foo"}});
        assert_eq!(
            build(&template, &input, &json!({})).unwrap(),
            json!({"comment": "Selecting what I care about.", "MyDetails": {"size": "small", "exists": "in stock", "StaticValue": "foo"}})
        );
    }

    #[test]
    fn context_paths_read_the_context_object() {
        let context = json!({"Execution": {"Name": "run-1"}, "Task": {"Token": "t"}});
        let template = json!({"name.$": "$$.Execution.Name", "token.$": "$$.Task.Token"});
        assert_eq!(
            build(&template, &json!({}), &context).unwrap(),
            json!({"name": "run-1", "token": "t"})
        );
    }

    #[test]
    fn a_missing_parameter_path_is_a_parameter_path_failure() {
        let err = build(&json!({"x.$": "$.missing"}), &json!({}), &json!({})).unwrap_err();
        assert_eq!(err.error, "States.ParameterPathFailure");
    }

    #[test]
    fn result_path_writes_into_the_raw_input() {
        let result = json!("Hello, AWS Step Functions!");
        let input =
            json!({"comment": "c", "details": "Default example", "who": "AWS Step Functions"});
        let mut appended = input.clone();
        appended["taskresult"] = result.clone();
        assert_eq!(
            put(input.clone(), Some(&json!("$.taskresult")), result.clone()).unwrap(),
            appended
        );
        let nested = json!({"comment": "x", "strings": {"string1": "foo"}, "who": "w"});
        assert_eq!(
            put(
                nested,
                Some(&json!("$.strings.lambdaresult")),
                result.clone()
            )
            .unwrap(),
            json!({"comment": "x", "strings": {"string1": "foo", "lambdaresult": result}, "who": "w"})
        );
        assert_eq!(
            put(input.clone(), Some(&Value::Null), result.clone()).unwrap(),
            input
        );
        assert_eq!(put(input, None, result.clone()).unwrap(), result);
        assert_eq!(
            put(json!({}), Some(&json!("$.a.b")), json!(1)).unwrap(),
            json!({"a": {"b": 1}})
        );
    }

    #[test]
    fn input_path_result_path_and_output_path_together() {
        // Example 8: ResultPath writes into the raw input, before InputPath.
        let raw = json!({"comment": "An input comment.", "data": {"val1": 23, "val2": 17}, "extra": "foo", "lambda": {"who": "AWS Step Functions"}});
        let effective = select(&raw, Some(&json!("$.lambda")), &json!({})).unwrap();
        assert_eq!(effective, json!({"who": "AWS Step Functions"}));
        let combined = put(
            raw,
            Some(&json!("$.data.lambdaresult")),
            json!("Hello, AWS Step Functions!"),
        )
        .unwrap();
        assert_eq!(
            select(&combined, Some(&json!("$.data")), &json!({})).unwrap(),
            json!({"val1": 23, "val2": 17, "lambdaresult": "Hello, AWS Step Functions!"})
        );
    }

    #[test]
    fn result_path_into_a_non_object_fails() {
        let err = put(json!({"a": 1}), Some(&json!("$.a.b")), json!(2)).unwrap_err();
        assert_eq!(err.error, "States.ResultPathMatchFailure");
        assert!(put(json!([1]), Some(&json!("$.x")), json!(2)).is_err());
    }

    #[test]
    fn slices_select_arrays() {
        assert_eq!(
            read("$.a[0:2]", &json!({"a": [1, 2, 3, 4]}), &json!({})).unwrap(),
            json!([1, 2])
        );
    }
}
