//! Choice rules, typed: comparisons of a variable with a literal or another path, the type
//! tests, and `And`/`Or`/`Not`.

use serde_json::Value;

use super::fields::{Fields, invalid};
use crate::sfn::expr::path::Path;

/// What a comparison compares as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Numeric,
    Boolean,
    Timestamp,
    /// `StringMatches`: `*` is any run of characters.
    Matches,
}

/// How the two sides must be ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Equals,
    LessThan,
    GreaterThan,
    LessThanEquals,
    GreaterThanEquals,
}

/// The type tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

const TESTS: &[(&str, Test)] = &[
    ("IsNull", Test::IsNull),
    ("IsPresent", Test::IsPresent),
    ("IsNumeric", Test::IsNumeric),
    ("IsString", Test::IsString),
    ("IsBoolean", Test::IsBoolean),
    ("IsTimestamp", Test::IsTimestamp),
];

const KINDS: &[(&str, Kind)] = &[
    ("String", Kind::String),
    ("Numeric", Kind::Numeric),
    ("Boolean", Kind::Boolean),
    ("Timestamp", Kind::Timestamp),
];

const RELATIONS: &[(&str, Relation)] = &[
    ("LessThanEquals", Relation::LessThanEquals),
    ("GreaterThanEquals", Relation::GreaterThanEquals),
    ("LessThan", Relation::LessThan),
    ("GreaterThan", Relation::GreaterThan),
    ("Equals", Relation::Equals),
];

/// The other side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Literal(Value),
    Path(Path),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Test {
        variable: Path,
        test: Test,
        expected: bool,
    },
    Compare {
        variable: Path,
        kind: Kind,
        relation: Relation,
        operand: Operand,
    },
}

/// The operator a field name spells (`NumericLessThanPath` is Numeric, LessThan, by path).
fn operator(name: &str) -> Option<(Kind, Relation, bool)> {
    let (name, by_path) = match name.strip_suffix("Path") {
        Some(base) => (base, true),
        None => (name, false),
    };
    if name == "StringMatches" {
        return (!by_path).then_some((Kind::Matches, Relation::Equals, false));
    }
    let (prefix, kind) = KINDS.iter().find(|(p, _)| name.starts_with(p))?;
    let rest = &name[prefix.len()..];
    let relation = RELATIONS.iter().find(|(r, _)| *r == rest)?.1;
    if *kind == Kind::Boolean && relation != Relation::Equals {
        return None;
    }
    Some((*kind, relation, by_path))
}

impl Rule {
    /// Parses one rule; a top-level rule also has `Next` (and maybe `Assign`), read by the
    /// Choice state, so `extra` lists the fields the caller reads.
    pub fn parse(fields: &Fields, extra: &[&str]) -> Result<Self, String> {
        let nested = |value: &Value, at: String| -> Result<Rule, String> {
            Rule::parse(&Fields::new(value, at)?, &["Comment"])
        };
        for (name, combine) in [("And", true), ("Or", false)] {
            if let Some(rules) = fields.array(name)? {
                if rules.is_empty() {
                    return Err(invalid(
                        "SCHEMA_VALIDATION_FAILED",
                        format!("{name} needs at least one rule"),
                        &fields.at(name),
                    ));
                }
                let rules = rules
                    .iter()
                    .enumerate()
                    .map(|(i, rule)| nested(rule, format!("{}/{i}", fields.at(name))))
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(if combine {
                    Rule::And(rules)
                } else {
                    Rule::Or(rules)
                });
            }
        }
        if let Some(rule) = fields.value("Not") {
            return Ok(Rule::Not(Box::new(nested(rule, fields.at("Not"))?)));
        }
        let variable = fields.path("Variable")?.ok_or_else(|| {
            invalid(
                "SCHEMA_VALIDATION_FAILED",
                "A Choice rule needs a Variable, or And, Or or Not",
                &fields.at,
            )
        })?;
        let mut found = None;
        for (key, value) in fields.object {
            if key == "Variable" || key == "Comment" || extra.contains(&key.as_str()) {
                continue;
            }
            let rule = if let Some((_, test)) = TESTS.iter().find(|(n, _)| n == key) {
                let expected = value.as_bool().ok_or_else(|| {
                    invalid(
                        "SCHEMA_VALIDATION_FAILED",
                        format!("{key} takes a boolean"),
                        &fields.at(key),
                    )
                })?;
                Rule::Test {
                    variable: variable.clone(),
                    test: *test,
                    expected,
                }
            } else if let Some((kind, relation, by_path)) = operator(key) {
                let operand = if by_path {
                    Operand::Path(fields.path(key)?.expect("present"))
                } else {
                    check_literal(kind, value)
                        .map_err(|why| invalid("SCHEMA_VALIDATION_FAILED", why, &fields.at(key)))?;
                    Operand::Literal(value.clone())
                };
                Rule::Compare {
                    variable: variable.clone(),
                    kind,
                    relation,
                    operand,
                }
            } else {
                return Err(invalid(
                    "SCHEMA_VALIDATION_FAILED",
                    format!("Field '{key}' is not supported by a Choice rule"),
                    &fields.at(key),
                ));
            };
            if found.replace(rule).is_some() {
                return Err(invalid(
                    "SCHEMA_VALIDATION_FAILED",
                    "A Choice rule has exactly one comparison operator",
                    &fields.at,
                ));
            }
        }
        found.ok_or_else(|| {
            invalid(
                "SCHEMA_VALIDATION_FAILED",
                "A Choice rule has no comparison operator",
                &fields.at,
            )
        })
    }
}

/// A literal operand must have the operator's type, as AWS's validator checks.
fn check_literal(kind: Kind, value: &Value) -> Result<(), String> {
    let ok = match kind {
        Kind::String | Kind::Matches | Kind::Timestamp => value.is_string(),
        Kind::Numeric => value.is_number(),
        Kind::Boolean => value.is_boolean(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the operand {value} has the wrong type for a {kind:?} comparison"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(rule: Value) -> Result<Rule, String> {
        Rule::parse(&Fields::new(&rule, "/States/c/Choices/0")?, &["Next"])
    }

    #[test]
    fn operators_are_read_from_their_names() {
        assert_eq!(
            operator("NumericLessThanEqualsPath"),
            Some((Kind::Numeric, Relation::LessThanEquals, true))
        );
        assert_eq!(
            operator("StringMatches"),
            Some((Kind::Matches, Relation::Equals, false))
        );
        assert_eq!(operator("BooleanLessThan"), None);
        assert_eq!(operator("StringMatchesPath"), None);
    }

    #[test]
    fn bad_rules_are_load_errors() {
        assert!(parse(json!({"Variable": "$.a", "NumericEquals": 1, "Next": "x"})).is_ok());
        assert!(parse(json!({"Variable": "$.a", "NumericEquals": "1", "Next": "x"})).is_err());
        assert!(parse(json!({"Variable": "$.a", "Next": "x"})).is_err());
        assert!(
            parse(json!({"Variable": "$.a", "IsNull": true, "IsString": true, "Next": "x"}))
                .is_err()
        );
        assert!(parse(json!({"And": [], "Next": "x"})).is_err());
        assert!(parse(json!({"Variable": "$.a", "StringEqualz": "x", "Next": "x"})).is_err());
    }
}
