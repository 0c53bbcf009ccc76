//! Choice: the first rule that matches picks the next state (and its Assign), else Default
//! (with the state's Assign). A type mismatch makes a comparison false; a missing variable is a
//! runtime error unless an `IsPresent` test asks about it.

use std::cmp::Ordering;

use serde_json::Value;
use time::OffsetDateTime;

use super::context;
use super::dataflow;
use super::frame::{Frame, Outcome, Visit};
use crate::sfn::definition::choice_rule::{Kind, Operand, Relation, Rule, Test};
use crate::sfn::definition::state::{Choice, Node};
use crate::sfn::error::{NO_CHOICE_MATCHED, StatesError};
use crate::sfn::expr::env::Env;

pub fn run(
    frame: Frame,
    node: &Node,
    choice: &Choice,
    visit: &Visit,
) -> Result<Outcome, StatesError> {
    let ctx = context::object(frame.execution, &node.name, visit.entered_ms, None);
    let env = Env::new(&visit.input, &ctx, visit.variables);
    let effective = dataflow::select(&node.common.input_path, &visit.input, env)?;
    let env = env.with_input(&effective);
    let mut picked = None;
    for branch in &choice.choices {
        if matches(&branch.rule, &env)? {
            picked = Some((branch.next.clone(), branch.assign.as_ref()));
            break;
        }
    }
    let (next, assign) = match picked {
        Some(picked) => picked,
        None => (
            choice.default.clone().ok_or_else(|| {
                StatesError::new(
                    NO_CHOICE_MATCHED,
                    format!(
                        "No Choice Rules matched and no Default was specified in the state '{}'",
                        node.name
                    ),
                )
            })?,
            node.common.assign.as_ref(),
        ),
    };
    let assigned = dataflow::assign(assign, &effective, env)?;
    Ok(Outcome {
        next: Some(next),
        output: dataflow::select(&node.common.output_path, &effective, env)?,
        assigned,
    })
}

/// Whether a rule matches.
pub fn matches(rule: &Rule, env: &Env) -> Result<bool, StatesError> {
    match rule {
        Rule::And(rules) => {
            for rule in rules {
                if !matches(rule, env)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Rule::Or(rules) => {
            for rule in rules {
                if matches(rule, env)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Rule::Not(rule) => Ok(!matches(rule, env)?),
        Rule::Test {
            variable,
            test,
            expected,
        } => {
            let value = variable.read(env).ok();
            let actual = match (test, &value) {
                (Test::IsPresent, value) => value.is_some(),
                (_, None) => false,
                (Test::IsNull, Some(v)) => v.is_null(),
                (Test::IsNumeric, Some(v)) => v.is_number(),
                (Test::IsString, Some(v)) => v.is_string(),
                (Test::IsBoolean, Some(v)) => v.is_boolean(),
                (Test::IsTimestamp, Some(v)) => v.as_str().and_then(timestamp).is_some(),
            };
            Ok(actual == *expected)
        }
        Rule::Compare {
            variable,
            kind,
            relation,
            operand,
        } => {
            let value = variable
                .read(env)
                .map_err(|_| StatesError::runtime(variable.invalid()))?;
            let operand = match operand {
                Operand::Literal(value) => value.clone(),
                Operand::Path(path) => path
                    .read(env)
                    .map_err(|_| StatesError::runtime(path.invalid()))?,
            };
            Ok(compare(*kind, *relation, &value, &operand))
        }
    }
}

fn timestamp(text: &str) -> Option<OffsetDateTime> {
    crate::sfn::expr::timestamp::parse(text)
}

fn ordered(relation: Relation, ordering: Ordering) -> bool {
    match relation {
        Relation::Equals => ordering == Ordering::Equal,
        Relation::LessThan => ordering == Ordering::Less,
        Relation::GreaterThan => ordering == Ordering::Greater,
        Relation::LessThanEquals => ordering != Ordering::Greater,
        Relation::GreaterThanEquals => ordering != Ordering::Less,
    }
}

fn compare(kind: Kind, relation: Relation, value: &Value, operand: &Value) -> bool {
    match kind {
        Kind::Matches => match (value.as_str(), operand.as_str()) {
            (Some(text), Some(pattern)) => wildcard(pattern, text),
            _ => false,
        },
        Kind::String => match (value.as_str(), operand.as_str()) {
            (Some(a), Some(b)) => ordered(relation, a.cmp(b)),
            _ => false,
        },
        Kind::Numeric => match (value.as_f64(), operand.as_f64()) {
            (Some(a), Some(b)) if value.is_number() && operand.is_number() => {
                a.partial_cmp(&b).is_some_and(|o| ordered(relation, o))
            }
            _ => false,
        },
        Kind::Boolean => match (value.as_bool(), operand.as_bool()) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        },
        Kind::Timestamp => match (
            value.as_str().and_then(timestamp),
            operand.as_str().and_then(timestamp),
        ) {
            (Some(a), Some(b)) => ordered(relation, a.cmp(&b)),
            _ => false,
        },
    }
}

/// `*` matches any run of characters; `\*` is a literal star.
fn wildcard(pattern: &str, text: &str) -> bool {
    let mut parts: Vec<String> = vec![String::new()];
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => parts.last_mut().expect("never empty").push(escaped),
                None => parts.last_mut().expect("never empty").push('\\'),
            },
            '*' => parts.push(String::new()),
            other => parts.last_mut().expect("never empty").push(other),
        }
    }
    let (first, rest) = parts.split_first().expect("never empty");
    let Some(mut remaining) = text.strip_prefix(first.as_str()) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part.as_str()) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sfn::definition::fields::Fields;
    use crate::sfn::expr::env::Variables;
    use serde_json::json;

    fn check(rule: Value, input: Value) -> Result<bool, StatesError> {
        let rule = Rule::parse(&Fields::new(&rule, "/r").unwrap(), &["Next"]).unwrap();
        let (context, variables) = (json!({}), Variables::new());
        matches(&rule, &Env::new(&input, &context, &variables))
    }

    #[test]
    fn the_spec_example_picks_the_twenties() {
        let input = json!({"type": "Private", "value": 22});
        assert!(
            !check(
                json!({"Not": {"Variable": "$.type", "StringEquals": "Private"}}),
                input.clone()
            )
            .unwrap()
        );
        assert!(
            !check(
                json!({"Variable": "$.value", "NumericEquals": 0}),
                input.clone()
            )
            .unwrap()
        );
        assert!(
            check(
                json!({"And": [
            {"Variable": "$.value", "NumericGreaterThanEquals": 20},
            {"Variable": "$.value", "NumericLessThan": 30}]}),
                input
            )
            .unwrap()
        );
    }

    #[test]
    fn type_mismatches_are_false_and_missing_variables_are_errors() {
        let input = json!({"n": "5", "list": []});
        assert!(
            !check(
                json!({"Variable": "$.n", "NumericEquals": 5}),
                input.clone()
            )
            .unwrap()
        );
        assert!(!check(json!({"Variable": "$.list", "IsNull": true}), input.clone()).unwrap());
        assert!(
            check(
                json!({"Variable": "$.missing", "IsPresent": false}),
                input.clone()
            )
            .unwrap()
        );
        let err = check(json!({"Variable": "$.missing", "StringEquals": "x"}), input).unwrap_err();
        assert_eq!(err.error, "States.Runtime");
    }

    #[test]
    fn paths_strings_booleans_and_timestamps() {
        let input = json!({"a": 3, "b": 4, "flag": true, "t": "2026-11-28T10:00:00Z", "name": "log-2026.txt"});
        for (rule, expected) in [
            (
                json!({"Variable": "$.a", "NumericLessThanPath": "$.b"}),
                true,
            ),
            (json!({"Variable": "$.flag", "BooleanEquals": true}), true),
            (
                json!({"Variable": "$.t", "TimestampLessThan": "2026-11-28T11:00:00Z"}),
                true,
            ),
            (json!({"Variable": "$.t", "IsTimestamp": true}), true),
            (
                json!({"Variable": "$.name", "StringMatches": "log-*.txt"}),
                true,
            ),
            (
                json!({"Variable": "$.name", "StringMatches": "log-\\*.txt"}),
                false,
            ),
            (
                json!({"Variable": "$.name", "StringGreaterThanEquals": "log"}),
                true,
            ),
        ] {
            assert_eq!(
                check(rule.clone(), input.clone()).unwrap(),
                expected,
                "{rule}"
            );
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*", ""));
        assert!(wildcard("a*b*c", "aXbYc"));
        assert!(!wildcard("a*b", "ab-"));
        assert!(wildcard("a\\*", "a*"));
        assert!(!wildcard("abc", "ab"));
    }
}
