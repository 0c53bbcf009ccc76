//! Reference paths (`$`, `$.a.b`, `$['a'][0]`): the single node a ResultPath writes to.

use serde_json::{Map, Value};

use crate::sfn::error::{RESULT_PATH_MATCH_FAILURE, StatesError};

/// One step of a reference path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Field(String),
    Index(usize),
}

/// Where a state's result goes in its raw input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultPath {
    /// `$` or absent: the result replaces the input.
    Replace,
    /// `null`: the result is discarded and the input passes through.
    Discard,
    /// Written at a node, creating the objects on the way.
    At { text: String, steps: Vec<Step> },
}

impl ResultPath {
    /// The field's value: absent, null or a reference path.
    pub fn parse(value: Option<&Value>) -> Result<Self, String> {
        match value {
            None => Ok(Self::Replace),
            Some(Value::Null) => Ok(Self::Discard),
            Some(Value::String(text)) => {
                let steps = steps(text)?;
                Ok(if steps.is_empty() {
                    Self::Replace
                } else {
                    Self::At {
                        text: text.clone(),
                        steps,
                    }
                })
            }
            Some(other) => Err(format!("ResultPath must be a string or null, got {other}")),
        }
    }

    /// Writes `result` into `input`.
    pub fn apply(&self, input: Value, result: Value) -> Result<Value, StatesError> {
        let (text, steps) = match self {
            Self::Replace => return Ok(result),
            Self::Discard => return Ok(input),
            Self::At { text, steps } => (text, steps),
        };
        let failure = |why: String| {
            StatesError::new(
                RESULT_PATH_MATCH_FAILURE,
                format!("Unable to apply ResultPath {text} to the state input: {why}"),
            )
        };
        let mut root = input;
        let mut node = &mut root;
        let (last, walk) = steps.split_last().expect("a written path has steps");
        for step in walk {
            node = match step {
                Step::Field(name) => {
                    let Value::Object(fields) = node else {
                        return Err(failure(format!("{name} is not inside an object")));
                    };
                    fields
                        .entry(name.clone())
                        .or_insert_with(|| Value::Object(Map::new()))
                }
                Step::Index(index) => node
                    .get_mut(*index)
                    .ok_or_else(|| failure(format!("there is no element {index}")))?,
            };
        }
        match (last, node) {
            (Step::Field(name), Value::Object(fields)) => {
                fields.insert(name.clone(), result);
            }
            (Step::Index(index), Value::Array(items)) if *index < items.len() => {
                items[*index] = result;
            }
            _ => return Err(failure("its parent is not an object".into())),
        }
        Ok(root)
    }
}

fn steps(path: &str) -> Result<Vec<Step>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(input: Value, path: Option<Value>, result: Value) -> Result<Value, StatesError> {
        ResultPath::parse(path.as_ref())
            .unwrap()
            .apply(input, result)
    }

    // The ResultPath examples of specs/stepfunctions.md §10 (4 to 7).
    #[test]
    fn result_path_writes_into_the_raw_input() {
        let result = json!("Hello, AWS Step Functions!");
        let input =
            json!({"comment": "c", "details": "Default example", "who": "AWS Step Functions"});
        let mut appended = input.clone();
        appended["taskresult"] = result.clone();
        assert_eq!(
            put(input.clone(), Some(json!("$.taskresult")), result.clone()).unwrap(),
            appended
        );
        let nested = json!({"comment": "x", "strings": {"string1": "foo"}, "who": "w"});
        assert_eq!(
            put(
                nested,
                Some(json!("$.strings.lambdaresult")),
                result.clone()
            )
            .unwrap(),
            json!({"comment": "x", "strings": {"string1": "foo", "lambdaresult": result}, "who": "w"})
        );
        let mut overwritten = input.clone();
        overwritten["comment"] = result.clone();
        assert_eq!(
            put(input.clone(), Some(json!("$.comment")), result.clone()).unwrap(),
            overwritten
        );
        assert_eq!(
            put(input.clone(), Some(Value::Null), result.clone()).unwrap(),
            input
        );
        assert_eq!(put(input, None, result.clone()).unwrap(), result);
        assert_eq!(
            put(json!({}), Some(json!("$.a.b")), json!(1)).unwrap(),
            json!({"a": {"b": 1}})
        );
    }

    #[test]
    fn result_path_into_a_non_object_fails_and_filters_are_refused() {
        let err = put(json!({"a": 1}), Some(json!("$.a.b")), json!(2)).unwrap_err();
        assert_eq!(err.error, RESULT_PATH_MATCH_FAILURE);
        assert!(put(json!([1]), Some(json!("$.x")), json!(2)).is_err());
        assert!(ResultPath::parse(Some(&json!("$.a[*]"))).is_err());
        assert!(ResultPath::parse(Some(&json!(3))).is_err());
    }
}
