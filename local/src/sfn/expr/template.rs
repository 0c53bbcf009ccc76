//! Payload templates (`Parameters`, `ResultSelector`, `ItemSelector`, `BatchInput`, `Assign`):
//! JSON whose keys ending in `.$` take a path's value or an intrinsic function's result.

use serde_json::{Map, Value};

use super::env::Env;
use super::intrinsics::{self, Call};
use super::path::Path;
use crate::sfn::error::StatesError;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    Literal(Value),
    Object(Vec<(String, Field)>),
    Array(Vec<Template>),
}

/// One key of an object template.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Template(Template),
    /// `key.$: "$..."`, kept with the key as written for error messages.
    Path(Path),
    /// `key.$: "States.Format(...)"`.
    Call(Box<Call>),
}

impl Template {
    /// Parses a template; `what` names it in errors (`Parameters`, `Assign`, ...).
    pub fn parse(value: &Value, what: &str) -> Result<Self, String> {
        match value {
            Value::Object(fields) => {
                let mut parsed = Vec::with_capacity(fields.len());
                for (key, value) in fields {
                    let field = match key.strip_suffix(".$") {
                        Some(_) => {
                            let Value::String(expression) = value else {
                                return Err(format!(
                                    "{what}: the value of {key} must be a path or an intrinsic function, got {value}"
                                ));
                            };
                            if intrinsics::is_call(expression) {
                                Field::Call(Box::new(
                                    intrinsics::parse(expression)
                                        .map_err(|err| format!("{what}: {key}: {err}"))?,
                                ))
                            } else {
                                Field::Path(
                                    Path::parse(expression)
                                        .map_err(|err| format!("{what}: {key}: {err}"))?,
                                )
                            }
                        }
                        None => Field::Template(Self::parse(value, what)?),
                    };
                    parsed.push((key.clone(), field));
                }
                Ok(Self::Object(parsed))
            }
            Value::Array(items) => items
                .iter()
                .map(|item| Self::parse(item, what))
                .collect::<Result<_, _>>()
                .map(Self::Array),
            other => Ok(Self::Literal(other.clone())),
        }
    }

    /// The payload for `env`.
    pub fn build(&self, env: &Env) -> Result<Value, StatesError> {
        match self {
            Self::Literal(value) => Ok(value.clone()),
            Self::Array(items) => items
                .iter()
                .map(|item| item.build(env))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            Self::Object(fields) => {
                let mut out = Map::with_capacity(fields.len());
                for (key, field) in fields {
                    let (name, value) = match field {
                        Field::Template(template) => (key.as_str(), template.build(env)?),
                        Field::Path(path) => (
                            key.strip_suffix(".$").unwrap_or(key),
                            path.read(env).map_err(|_| {
                                StatesError::runtime(path.not_found(key, env.input))
                            })?,
                        ),
                        Field::Call(call) => (
                            key.strip_suffix(".$").unwrap_or(key),
                            call.evaluate(env).map_err(|why| {
                                StatesError::runtime(format!(
                                    "The function {} specified for the field '{key}' failed: {why}",
                                    call.function.name()
                                ))
                            })?,
                        ),
                    };
                    out.insert(name.to_owned(), value);
                }
                Ok(Value::Object(out))
            }
        }
    }

    /// The names an `Assign` template sets.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Self::Object(fields) => fields
                .iter()
                .map(|(key, _)| key.strip_suffix(".$").unwrap_or(key))
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sfn::expr::env::Variables;
    use serde_json::json;

    fn build(template: Value, input: Value, context: Value) -> Result<Value, StatesError> {
        let variables = Variables::from([("bucket".to_owned(), json!("b"))]);
        Template::parse(&template, "Parameters")
            .unwrap()
            .build(&Env::new(&input, &context, &variables))
    }

    // The Parameters example of specs/stepfunctions.md §10 (2).
    #[test]
    fn parameters_mix_literals_and_paths() {
        let input = json!({"comment": "Example for Parameters.", "product": {"details": {"color": "blue", "size": "small", "material": "cotton"}, "availability": "in stock", "sku": "2317", "cost": "$23"}});
        let template = json!({"comment": "Selecting what I care about.", "MyDetails": {"size.$": "$.product.details.size", "exists.$": "$.product.availability", "StaticValue": "foo"}});
        assert_eq!(
            build(template, input, json!({})).unwrap(),
            json!({"comment": "Selecting what I care about.", "MyDetails": {"size": "small", "exists": "in stock", "StaticValue": "foo"}})
        );
    }

    #[test]
    fn context_paths_variables_and_literal_dollars() {
        let context = json!({"Execution": {"Name": "run-1"}, "Task": {"Token": "t"}});
        let template = json!({"name.$": "$$.Execution.Name", "token.$": "$$.Task.Token",
            "bucket.$": "$bucket", "literal": "$bucket", "list": [{"n.$": "States.MathAdd(1, 2)"}]});
        assert_eq!(
            build(template, json!({}), context).unwrap(),
            json!({"name": "run-1", "token": "t", "bucket": "b", "literal": "$bucket", "list": [{"n": 3}]})
        );
    }

    #[test]
    fn a_missing_path_says_which_field_and_input() {
        let err = build(
            json!({"value.$": "$.no_such_jsonpath"}),
            json!({"a": 1}),
            json!({}),
        )
        .unwrap_err()
        .located("pass", 2);
        assert_eq!(err.error, "States.Runtime");
        assert_eq!(
            err.cause.as_deref(),
            Some(
                "An error occurred while executing the state 'pass' (entered at the event id #2). The JSONPath '$.no_such_jsonpath' specified for the field 'value.$' could not be found in the input '{\"a\":1}'"
            )
        );
        assert!(Template::parse(&json!({"x.$": 3}), "Parameters").is_err());
        assert!(Template::parse(&json!({"x.$": "States.Nope()"}), "Parameters").is_err());
    }
}
