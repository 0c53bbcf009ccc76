//! Event patterns as EventBridge evaluates them, with the `quamina` crate (the open-source
//! matcher by the author of EventBridge's own): exact values, `prefix`, `suffix`, `wildcard`,
//! `anything-but` (a value or a list), `numeric`, `exists`, `equals-ignore-case`, `cidr`, and
//! arrays in events matching when any element does. `$or` is expanded here into one pattern
//! per alternative, which quamina then treats as one rule. What quamina refuses (an
//! `anything-but` over a prefix, say) is refused with its reason rather than matched wrongly.

use quamina::Quamina;
use serde_json::{Map, Value};

/// A pattern EventBridge would refuse, or the local one cannot evaluate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Event pattern is not valid. Reason: {0}")]
pub struct InvalidPattern(pub String);

/// Patterns by id, compiled into one matcher.
pub struct Patterns<Id: Clone + Eq + std::hash::Hash + Ord + Send + Sync + 'static> {
    matcher: Quamina<Id>,
}

impl<Id> Default for Patterns<Id>
where
    Id: Clone + Eq + std::hash::Hash + Ord + Send + Sync + 'static,
{
    fn default() -> Self {
        Self {
            matcher: Quamina::new(),
        }
    }
}

impl<Id> Patterns<Id>
where
    Id: Clone + Eq + std::hash::Hash + Ord + Send + Sync + 'static,
{
    /// Adds a pattern (a JSON object) under `id`.
    pub fn add(&mut self, id: Id, pattern: &Value) -> Result<(), InvalidPattern> {
        check_shape(pattern)?;
        for alternative in expand_or(pattern)? {
            self.matcher
                .add_pattern(id.clone(), &alternative.to_string())
                .map_err(|err| InvalidPattern(err.to_string()))?;
        }
        Ok(())
    }

    /// The ids whose pattern the event (a JSON object) matches, each once, in order.
    pub fn matching(&self, event: &Value) -> Vec<Id> {
        let mut ids = self
            .matcher
            .matches_for_event(event.to_string().as_bytes())
            .unwrap_or_default();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// Whether one event matches one pattern (`TestEventPattern`).
pub fn test(pattern: &Value, event: &Value) -> Result<bool, InvalidPattern> {
    let mut patterns = Patterns::default();
    patterns.add(0u8, pattern)?;
    Ok(!patterns.matching(event).is_empty())
}

/// Parses a pattern given as text (the API and the template give it as JSON text or YAML).
pub fn parse(text: &str) -> Result<Value, InvalidPattern> {
    serde_json::from_str(text).map_err(|err| InvalidPattern(format!("not JSON: {err}")))
}

/// EventBridge's own rules on a pattern's shape: an object whose leaves are arrays.
fn check_shape(pattern: &Value) -> Result<(), InvalidPattern> {
    let Value::Object(fields) = pattern else {
        return Err(InvalidPattern("the pattern must be a JSON object".into()));
    };
    if fields.is_empty() {
        return Err(InvalidPattern("the pattern is empty".into()));
    }
    for (name, value) in fields {
        match value {
            Value::Object(_) if name != "$or" => check_shape(value)?,
            Value::Array(items) if name == "$or" => {
                for item in items {
                    check_shape(item)?;
                }
            }
            Value::Array(items) if !items.is_empty() => {}
            Value::Array(_) => {
                return Err(InvalidPattern(format!("the array at {name:?} is empty")));
            }
            _ => {
                return Err(InvalidPattern(format!(
                    "the value at {name:?} must be an object or an array"
                )));
            }
        }
    }
    Ok(())
}

/// A pattern with `$or` replaced by its alternatives: `{"a": [1], "$or": [{"b": [2]}, {"c":
/// [3]}]}` becomes `{"a": [1], "b": [2]}` and `{"a": [1], "c": [3]}`.
fn expand_or(pattern: &Value) -> Result<Vec<Value>, InvalidPattern> {
    let Value::Object(fields) = pattern else {
        return Ok(vec![pattern.clone()]);
    };
    let mut partials: Vec<Map<String, Value>> = vec![Map::new()];
    for (name, value) in fields {
        let options: Vec<Vec<(String, Value)>> = if name == "$or" {
            let alternatives = value
                .as_array()
                .filter(|items| items.len() >= 2)
                .ok_or_else(|| InvalidPattern("$or takes at least two patterns".into()))?;
            let mut options = Vec::new();
            for alternative in alternatives {
                for expanded in expand_or(alternative)? {
                    let Value::Object(entries) = expanded else {
                        return Err(InvalidPattern("$or takes patterns (objects)".into()));
                    };
                    options.push(entries.into_iter().collect());
                }
            }
            options
        } else if value.is_object() {
            expand_or(value)?
                .into_iter()
                .map(|inner| vec![(name.clone(), inner)])
                .collect()
        } else {
            vec![vec![(name.clone(), value.clone())]]
        };
        let mut next = Vec::with_capacity(partials.len() * options.len());
        for partial in &partials {
            for option in &options {
                let mut combined = partial.clone();
                for (key, value) in option {
                    if combined.insert(key.clone(), value.clone()).is_some() {
                        return Err(InvalidPattern(format!(
                            "{key:?} appears both inside and outside $or"
                        )));
                    }
                }
                next.push(combined);
            }
        }
        partials = next;
        if partials.len() > 1000 {
            return Err(InvalidPattern("$or expands to over 1000 patterns".into()));
        }
    }
    Ok(partials.into_iter().map(Value::Object).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "version": "0", "id": "e-1", "source": "macie-pipeline", "detail-type": "Review Requested",
            "account": "000000000000", "region": "us-east-1", "time": "2026-12-07T10:00:00Z",
            "resources": ["arn:aws:states:us-east-1:000000000000:stateMachine:gate", "arn:aws:states:us-east-1:000000000000:execution:gate:run-1"],
            "detail": {"version": "1", "workflowId": "wf-1", "routing": {"held": 3}, "scan": {"highestSeverity": "High"}, "review": null}
        })
    }

    fn matches(pattern: Value) -> bool {
        test(&pattern, &event()).unwrap()
    }

    #[test]
    fn every_operator_the_gate_documents_is_evaluated() {
        assert!(matches(
            json!({"source": ["macie-pipeline"], "detail-type": ["Review Requested"]})
        ));
        assert!(!matches(json!({"source": ["other"]})));
        assert!(matches(json!({"detail-type": [{"prefix": "Review"}]})));
        assert!(!matches(json!({"detail-type": [{"prefix": "Run"}]})));
        assert!(matches(json!({"detail-type": [{"suffix": "Requested"}]})));
        assert!(matches(
            json!({"detail": {"workflowId": [{"anything-but": ["wf-2", "wf-3"]}]}})
        ));
        assert!(!matches(
            json!({"detail": {"workflowId": [{"anything-but": "wf-1"}]}})
        ));
        assert!(matches(
            json!({"detail": {"routing": {"held": [{"numeric": [">", 0, "<=", 3]}]}}})
        ));
        assert!(!matches(
            json!({"detail": {"routing": {"held": [{"numeric": [">", 3]}]}}})
        ));
        assert!(matches(
            json!({"detail": {"scan": {"highestSeverity": [{"exists": true}]}}})
        ));
        assert!(matches(
            json!({"detail": {"reviewer": [{"exists": false}]}})
        ));
        assert!(matches(json!({"detail-type": [{"wildcard": "Review *"}]})));
        assert!(matches(
            json!({"resources": [{"wildcard": "arn:aws:states:*:stateMachine:gate"}]})
        ));
        assert!(matches(json!({"detail": {"review": [null]}})));
        assert!(matches(
            json!({"detail": {"scan": {"highestSeverity": [{"equals-ignore-case": "high"}]}}})
        ));
    }

    #[test]
    fn or_matches_when_any_alternative_does() {
        let either = json!({"source": ["macie-pipeline"], "$or": [
            {"detail-type": ["Run Failed"]},
            {"detail": {"routing": {"held": [{"numeric": [">", 2]}]}}}
        ]});
        assert!(matches(either));
        let neither = json!({"$or": [{"detail-type": ["Run Failed"]}, {"source": ["x"]}]});
        assert!(!matches(neither));
    }

    #[test]
    fn malformed_patterns_are_refused_with_a_reason() {
        for (pattern, reason) in [
            (json!([]), "must be a JSON object"),
            (json!({}), "is empty"),
            (
                json!({"source": "macie-pipeline"}),
                "must be an object or an array",
            ),
            (json!({"source": []}), "is empty"),
            (json!({"$or": [{"source": ["a"]}]}), "at least two"),
            (
                json!({"detail": {"workflowId": [{"anything-but": {"prefix": "wf-"}}]}}),
                "anything-but",
            ),
        ] {
            let err = test(&pattern, &event()).unwrap_err();
            assert!(err.to_string().contains(reason), "{pattern}: {err}");
        }
    }
}
