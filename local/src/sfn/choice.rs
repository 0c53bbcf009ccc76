//! Choice rules: comparisons (and their `...Path` variants), `And`/`Or`/`Not`, and the type
//! tests. A type mismatch makes a rule false; a missing variable is an error unless an
//! `IsPresent` test asks about it.

use std::cmp::Ordering;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::sfn::paths::{self, StatesError};

const COMPARISONS: &[&str] = &[
    "StringEquals",
    "StringLessThan",
    "StringGreaterThan",
    "StringLessThanEquals",
    "StringGreaterThanEquals",
    "StringMatches",
    "NumericEquals",
    "NumericLessThan",
    "NumericGreaterThan",
    "NumericLessThanEquals",
    "NumericGreaterThanEquals",
    "BooleanEquals",
    "TimestampEquals",
    "TimestampLessThan",
    "TimestampGreaterThan",
    "TimestampLessThanEquals",
    "TimestampGreaterThanEquals",
];

const TESTS: &[&str] = &[
    "IsNull",
    "IsPresent",
    "IsNumeric",
    "IsString",
    "IsBoolean",
    "IsTimestamp",
];

/// The `Next` of the first rule that matches, if any.
pub fn choose(
    rules: &[Value],
    input: &Value,
    context: &Value,
) -> Result<Option<String>, StatesError> {
    for rule in rules {
        if matches(rule, input, context)? {
            return rule["Next"]
                .as_str()
                .map(|next| Some(next.to_owned()))
                .ok_or_else(|| {
                    StatesError::new("States.Runtime", "a top-level Choice rule has no Next")
                });
        }
    }
    Ok(None)
}

fn runtime(cause: impl Into<String>) -> StatesError {
    StatesError::new("States.Runtime", cause)
}

/// Whether one rule matches.
pub fn matches(rule: &Value, input: &Value, context: &Value) -> Result<bool, StatesError> {
    if let Some(all) = rule.get("And") {
        for nested in all
            .as_array()
            .ok_or_else(|| runtime("And takes an array"))?
        {
            if !matches(nested, input, context)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    if let Some(any) = rule.get("Or") {
        for nested in any.as_array().ok_or_else(|| runtime("Or takes an array"))? {
            if matches(nested, input, context)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    if let Some(nested) = rule.get("Not") {
        return Ok(!matches(nested, input, context)?);
    }
    let variable = rule["Variable"]
        .as_str()
        .ok_or_else(|| runtime("a Choice rule has no Variable"))?;
    let value = paths::read(variable, input, context);

    for test in TESTS {
        if let Some(expected) = rule.get(*test) {
            let expected = expected
                .as_bool()
                .ok_or_else(|| runtime(format!("{test} takes a boolean")))?;
            let actual = match (*test, &value) {
                ("IsPresent", value) => value.is_ok(),
                (_, Err(_)) => false,
                ("IsNull", Ok(v)) => v.is_null(),
                ("IsNumeric", Ok(v)) => v.is_number(),
                ("IsString", Ok(v)) => v.is_string(),
                ("IsBoolean", Ok(v)) => v.is_boolean(),
                ("IsTimestamp", Ok(v)) => v.as_str().and_then(timestamp).is_some(),
                _ => unreachable!("every test is handled"),
            };
            return Ok(actual == expected);
        }
    }

    let value = value.map_err(|cause| runtime(format!("invalid Choice variable: {cause}")))?;
    for operator in COMPARISONS {
        let operand = if let Some(literal) = rule.get(*operator) {
            literal.clone()
        } else if let Some(path) = rule.get(format!("{operator}Path")) {
            let path = path
                .as_str()
                .ok_or_else(|| runtime(format!("{operator}Path takes a path")))?;
            paths::read(path, input, context).map_err(runtime)?
        } else {
            continue;
        };
        return Ok(compare(operator, &value, &operand));
    }
    Err(runtime(format!(
        "the Choice rule {rule} has no comparison operator"
    )))
}

fn timestamp(text: &str) -> Option<OffsetDateTime> {
    // ASL requires an uppercase T and Z-or-offset; RFC 3339 parsing enforces the shape.
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

fn ordered(operator: &str, ordering: Ordering) -> bool {
    if operator.ends_with("LessThanEquals") {
        ordering != Ordering::Greater
    } else if operator.ends_with("GreaterThanEquals") {
        ordering != Ordering::Less
    } else if operator.ends_with("LessThan") {
        ordering == Ordering::Less
    } else if operator.ends_with("GreaterThan") {
        ordering == Ordering::Greater
    } else {
        ordering == Ordering::Equal
    }
}

fn compare(operator: &str, value: &Value, operand: &Value) -> bool {
    if operator == "StringMatches" {
        return match (value.as_str(), operand.as_str()) {
            (Some(text), Some(pattern)) => wildcard(pattern, text),
            _ => false,
        };
    }
    if operator.starts_with("String") {
        return match (value.as_str(), operand.as_str()) {
            (Some(a), Some(b)) => ordered(operator, a.cmp(b)),
            _ => false,
        };
    }
    if operator.starts_with("Numeric") {
        return match (value.as_f64(), operand.as_f64()) {
            (Some(a), Some(b)) if value.is_number() && operand.is_number() => {
                a.partial_cmp(&b).is_some_and(|o| ordered(operator, o))
            }
            _ => false,
        };
    }
    if operator == "BooleanEquals" {
        return match (value.as_bool(), operand.as_bool()) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        };
    }
    match (
        value.as_str().and_then(timestamp),
        operand.as_str().and_then(timestamp),
    ) {
        (Some(a), Some(b)) => ordered(operator, a.cmp(&b)),
        _ => false,
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
    use serde_json::json;

    #[test]
    fn the_spec_example_picks_the_twenties() {
        let rules = json!([
            {"Not": {"Variable": "$.type", "StringEquals": "Private"}, "Next": "Public"},
            {"Variable": "$.value", "NumericEquals": 0, "Next": "ValueIsZero"},
            {"And": [
                {"Variable": "$.value", "NumericGreaterThanEquals": 20},
                {"Variable": "$.value", "NumericLessThan": 30}
            ], "Next": "ValueInTwenties"}
        ]);
        let choice = choose(
            rules.as_array().unwrap(),
            &json!({"type": "Private", "value": 22}),
            &json!({}),
        );
        assert_eq!(choice.unwrap().as_deref(), Some("ValueInTwenties"));
    }

    #[test]
    fn type_mismatches_are_false_and_missing_variables_are_errors() {
        let input = json!({"n": "5", "list": []});
        assert!(
            !matches(
                &json!({"Variable": "$.n", "NumericEquals": 5}),
                &input,
                &json!({})
            )
            .unwrap()
        );
        assert!(
            !matches(
                &json!({"Variable": "$.list", "IsNull": true}),
                &input,
                &json!({})
            )
            .unwrap()
        );
        assert!(
            matches(
                &json!({"Variable": "$.missing", "IsPresent": false}),
                &input,
                &json!({})
            )
            .unwrap()
        );
        let err = matches(
            &json!({"Variable": "$.missing", "StringEquals": "x"}),
            &input,
            &json!({}),
        )
        .unwrap_err();
        assert_eq!(err.error, "States.Runtime");
    }

    #[test]
    fn paths_strings_booleans_and_timestamps() {
        let input = json!({"a": 3, "b": 4, "flag": true, "t": "2026-11-28T10:00:00Z", "name": "log-2026.txt"});
        let context = json!({});
        assert!(
            matches(
                &json!({"Variable": "$.a", "NumericLessThanPath": "$.b"}),
                &input,
                &context
            )
            .unwrap()
        );
        assert!(
            matches(
                &json!({"Variable": "$.flag", "BooleanEquals": true}),
                &input,
                &context
            )
            .unwrap()
        );
        assert!(
            matches(
                &json!({"Variable": "$.t", "TimestampLessThan": "2026-11-28T11:00:00Z"}),
                &input,
                &context
            )
            .unwrap()
        );
        assert!(
            matches(
                &json!({"Variable": "$.t", "IsTimestamp": true}),
                &input,
                &context
            )
            .unwrap()
        );
        assert!(
            matches(
                &json!({"Variable": "$.name", "StringMatches": "log-*.txt"}),
                &input,
                &context
            )
            .unwrap()
        );
        assert!(
            !matches(
                &json!({"Variable": "$.name", "StringMatches": "log-\\*.txt"}),
                &input,
                &context
            )
            .unwrap()
        );
        assert!(
            matches(
                &json!({"Variable": "$.name", "StringGreaterThanEquals": "log"}),
                &input,
                &context
            )
            .unwrap()
        );
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
