//! IAM policy documents, parsed once into types: statements with their effect, principals,
//! actions, resources and conditions. A document IAM would refuse is refused here with the
//! statement and the element that is wrong.

use std::collections::BTreeMap;

use serde_json::Value;

/// A policy document, identity-based or resource-based.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub statements: Vec<Statement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// `Action` or `NotAction`, `Resource` or `NotResource`: patterns, or every value except them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patterns {
    Only(Vec<String>),
    Except(Vec<String>),
}

/// `Principal` or `NotPrincipal` of a resource policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principals {
    /// `"*"`: everyone, signed or not.
    Everyone,
    /// By kind (`AWS`, `Service`, `Federated`, `CanonicalUser`), the ids of each.
    Named(BTreeMap<String, Vec<String>>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    pub principal: Option<Principals>,
    pub not_principal: Option<Principals>,
    pub actions: Patterns,
    pub resources: Patterns,
    pub conditions: Vec<Condition>,
}

/// The condition operators the local stack evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    ArnEquals,
    ArnNotEquals,
    ArnLike,
    ArnNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    Bool,
    Null,
}

impl Operator {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "StringEquals" => Self::StringEquals,
            "StringNotEquals" => Self::StringNotEquals,
            "StringEqualsIgnoreCase" => Self::StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => Self::StringNotEqualsIgnoreCase,
            "StringLike" => Self::StringLike,
            "StringNotLike" => Self::StringNotLike,
            "ArnEquals" => Self::ArnEquals,
            "ArnNotEquals" => Self::ArnNotEquals,
            "ArnLike" => Self::ArnLike,
            "ArnNotLike" => Self::ArnNotLike,
            "NumericEquals" => Self::NumericEquals,
            "NumericNotEquals" => Self::NumericNotEquals,
            "NumericLessThan" => Self::NumericLessThan,
            "NumericLessThanEquals" => Self::NumericLessThanEquals,
            "NumericGreaterThan" => Self::NumericGreaterThan,
            "NumericGreaterThanEquals" => Self::NumericGreaterThanEquals,
            "Bool" => Self::Bool,
            "Null" => Self::Null,
            _ => return None,
        })
    }

    /// A negated operator matches a request whose key matches none of the values, or that has
    /// no such key.
    pub fn negated(self) -> bool {
        matches!(
            self,
            Self::StringNotEquals
                | Self::StringNotEqualsIgnoreCase
                | Self::StringNotLike
                | Self::ArnNotEquals
                | Self::ArnNotLike
                | Self::NumericNotEquals
        )
    }
}

/// How a condition treats a key with several values in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOperator {
    ForAnyValue,
    ForAllValues,
}

/// One key of one operator block: `"StringEquals": {"aws:SourceAccount": "123"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub operator: Operator,
    pub set: Option<SetOperator>,
    pub if_exists: bool,
    /// Lower-cased: condition keys are case-insensitive.
    pub key: String,
    pub values: Vec<String>,
}

/// A document IAM would reject, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn strings(value: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    let one = |item: &Value| match item {
        Value::String(text) => Ok(text.clone()),
        Value::Bool(flag) => Ok(flag.to_string()),
        Value::Number(number) => Ok(number.to_string()),
        other => Err(PolicyError(format!("{what} holds {other}, not a string"))),
    };
    match value {
        Value::Array(items) if items.is_empty() => Err(PolicyError(format!("{what} is empty"))),
        Value::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

fn principals(value: &Value, what: &str) -> Result<Principals, PolicyError> {
    match value {
        Value::String(text) if text == "*" => Ok(Principals::Everyone),
        Value::Object(kinds) => {
            let mut named = BTreeMap::new();
            for (kind, ids) in kinds {
                if !matches!(
                    kind.as_str(),
                    "AWS" | "Service" | "Federated" | "CanonicalUser"
                ) {
                    return Err(PolicyError(format!("{what} has an unknown kind {kind}")));
                }
                named.insert(kind.clone(), strings(ids, what)?);
            }
            if named
                .get("AWS")
                .is_some_and(|ids| ids.len() == 1 && ids[0] == "*")
            {
                return Ok(Principals::Everyone);
            }
            Ok(Principals::Named(named))
        }
        other => Err(PolicyError(format!(
            "{what} must be \"*\" or an object, not {other}"
        ))),
    }
}

fn patterns(
    statement: &serde_json::Map<String, Value>,
    only: &str,
    except: &str,
    label: &str,
) -> Result<Patterns, PolicyError> {
    match (statement.get(only), statement.get(except)) {
        (Some(value), None) => Ok(Patterns::Only(strings(value, &format!("{label} {only}"))?)),
        (None, Some(value)) => Ok(Patterns::Except(strings(
            value,
            &format!("{label} {except}"),
        )?)),
        (Some(_), Some(_)) => Err(PolicyError(format!("{label} has both {only} and {except}"))),
        (None, None) => Err(PolicyError(format!(
            "{label} has neither {only} nor {except}"
        ))),
    }
}

fn conditions(value: &Value, label: &str) -> Result<Vec<Condition>, PolicyError> {
    let blocks = value
        .as_object()
        .ok_or_else(|| PolicyError(format!("{label} Condition is not an object")))?;
    let mut out = Vec::new();
    for (name, keys) in blocks {
        let (set, rest) = if let Some(rest) = name.strip_prefix("ForAnyValue:") {
            (Some(SetOperator::ForAnyValue), rest)
        } else if let Some(rest) = name.strip_prefix("ForAllValues:") {
            (Some(SetOperator::ForAllValues), rest)
        } else {
            (None, name.as_str())
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (rest, false),
        };
        let operator = Operator::parse(base).ok_or_else(|| {
            PolicyError(format!(
                "{label} uses the condition operator {name}, which the local stack does not evaluate"
            ))
        })?;
        let keys = keys
            .as_object()
            .ok_or_else(|| PolicyError(format!("{label} {name} is not an object")))?;
        for (key, values) in keys {
            out.push(Condition {
                operator,
                set,
                if_exists,
                key: key.to_ascii_lowercase(),
                values: strings(values, &format!("{label} {name} {key}"))?,
            });
        }
    }
    Ok(out)
}

impl Policy {
    /// Parses a document; `resource_based` documents need a principal in every statement,
    /// identity-based ones must not name one.
    pub fn parse(document: &Value, resource_based: bool) -> Result<Self, PolicyError> {
        let object = document
            .as_object()
            .ok_or_else(|| PolicyError("a policy document is a JSON object".into()))?;
        if let Some(version) = object.get("Version")
            && version != "2012-10-17"
            && version != "2008-10-17"
        {
            return Err(PolicyError(format!("unknown policy Version {version}")));
        }
        let statements = match object.get("Statement") {
            Some(Value::Array(items)) => items.clone(),
            Some(item @ Value::Object(_)) => vec![item.clone()],
            _ => return Err(PolicyError("the document has no Statement".into())),
        };
        let statements = statements
            .iter()
            .enumerate()
            .map(|(index, statement)| Self::statement(statement, index, resource_based))
            .collect::<Result<_, _>>()?;
        Ok(Self { statements })
    }

    fn statement(
        value: &Value,
        index: usize,
        resource_based: bool,
    ) -> Result<Statement, PolicyError> {
        let object = value
            .as_object()
            .ok_or_else(|| PolicyError(format!("statement {} is not an object", index + 1)))?;
        let sid = object.get("Sid").and_then(Value::as_str).map(str::to_owned);
        let label = match &sid {
            Some(sid) => format!("statement {sid}"),
            None => format!("statement {}", index + 1),
        };
        let effect = match object.get("Effect").and_then(Value::as_str) {
            Some("Allow") => Effect::Allow,
            Some("Deny") => Effect::Deny,
            other => {
                return Err(PolicyError(format!(
                    "{label} has Effect {other:?}: it must be Allow or Deny"
                )));
            }
        };
        let principal = object
            .get("Principal")
            .map(|value| principals(value, &format!("{label} Principal")))
            .transpose()?;
        let not_principal = object
            .get("NotPrincipal")
            .map(|value| principals(value, &format!("{label} NotPrincipal")))
            .transpose()?;
        let named = principal.is_some() || not_principal.is_some();
        if resource_based && !named {
            return Err(PolicyError(format!(
                "{label} has no Principal, which a resource policy needs"
            )));
        }
        if !resource_based && named {
            return Err(PolicyError(format!(
                "{label} names a principal, which an identity policy must not"
            )));
        }
        for key in object.keys() {
            if !matches!(
                key.as_str(),
                "Sid"
                    | "Effect"
                    | "Principal"
                    | "NotPrincipal"
                    | "Action"
                    | "NotAction"
                    | "Resource"
                    | "NotResource"
                    | "Condition"
            ) {
                return Err(PolicyError(format!("{label} has an unknown element {key}")));
            }
        }
        Ok(Statement {
            sid,
            effect,
            principal,
            not_principal,
            actions: patterns(object, "Action", "NotAction", &label)?,
            resources: patterns(object, "Resource", "NotResource", &label)?,
            conditions: object
                .get("Condition")
                .map(|value| conditions(value, &label))
                .transpose()?
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bucket_policy_parses_into_its_parts() {
        let policy = Policy::parse(
            &json!({"Version": "2012-10-17", "Statement": [{
                "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*",
                "Action": "s3:*", "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}),
            true,
        )
        .unwrap();
        let statement = &policy.statements[0];
        assert_eq!(statement.effect, Effect::Deny);
        assert_eq!(statement.principal, Some(Principals::Everyone));
        assert_eq!(statement.actions, Patterns::Only(vec!["s3:*".into()]));
        assert_eq!(statement.conditions[0].key, "aws:securetransport");
        assert_eq!(statement.conditions[0].values, vec!["false".to_owned()]);
    }

    #[test]
    fn documents_iam_would_refuse_are_refused_with_the_reason() {
        let refused = |document: Value, resource_based: bool| {
            Policy::parse(&document, resource_based).unwrap_err().0
        };
        assert!(
            refused(
                json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject"}]}),
                false
            )
            .contains("neither Resource nor NotResource")
        );
        assert!(
            refused(
                json!({"Statement": {"Effect": "Permit", "Action": "*", "Resource": "*"}}),
                false
            )
            .contains("Effect")
        );
        assert!(
            refused(
                json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
                true
            )
            .contains("no Principal")
        );
        assert!(
            refused(
                json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
                    "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2026-01-01"}}}]}),
                false
            )
            .contains("DateGreaterThan")
        );
    }
}
