//! IAM's evaluation logic for one account: an explicit deny in any policy wins; otherwise an
//! allow from the principal's identity policies or from the resource's policy grants the
//! request. A KMS key policy is the exception IAM makes: the key policy must allow, directly
//! or by naming the account (which lets identity policies grant).

use std::collections::BTreeMap;

use crate::iam::policy::{
    Condition, Effect, Operator, Patterns, Policy, Principals, SetOperator, Statement,
};

/// Who sends a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The ARN in messages: an assumed-role session, a user, or a service principal.
    pub arn: String,
    /// ARNs a resource policy can name for this caller (the role and its session).
    pub names: Vec<String>,
    pub account: String,
    /// `Some("macie.amazonaws.com")` for a service principal acting on its own.
    pub service: Option<String>,
}

/// The request context's keys (lower-cased) and their values.
pub type Context = BTreeMap<String, Vec<String>>;

/// A request context holding only `aws:SecureTransport`: whether the request came over TLS.
pub fn transport(secure: bool) -> Context {
    Context::from([("aws:securetransport".to_owned(), vec![secure.to_string()])])
}

/// One action on one resource, as IAM authorizes it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub caller: &'a Caller,
    pub action: &'a str,
    /// The resource ARN, or `*` for an action without resource-level permissions.
    pub resource: &'a str,
    pub context: &'a Context,
}

/// How much the resource's policy counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourcePolicyKind {
    /// S3 bucket and SNS topic policies: either side may allow.
    Either,
    /// A KMS key policy: it must allow, itself or through the account.
    Required,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Denied explicitly by a statement (`in_resource_policy` says which side).
    ExplicitDeny {
        in_resource_policy: bool,
        sid: Option<String>,
    },
    /// Nothing allowed it; `resource_policy_missing` for a key policy that does not allow.
    ImplicitDeny {
        resource_policy_missing: bool,
    },
}

impl Decision {
    /// The reason in AWS's words, for the `AccessDenied` message.
    pub fn reason(&self, action: &str) -> String {
        match self {
            Self::Allowed => "it is allowed".into(),
            Self::ExplicitDeny {
                in_resource_policy: true,
                ..
            } => "with an explicit deny in a resource-based policy".into(),
            Self::ExplicitDeny { .. } => "with an explicit deny in an identity-based policy".into(),
            Self::ImplicitDeny {
                resource_policy_missing: true,
            } => format!("because no resource-based policy allows the {action} action"),
            Self::ImplicitDeny { .. } => {
                format!("because no identity-based policy allows the {action} action")
            }
        }
    }
}

/// `*` matches any run of characters, `?` any one; `fold` compares case-insensitively.
pub fn wildcard(pattern: &str, value: &str, fold: bool) -> bool {
    let lower = |text: &str| {
        if fold {
            text.to_ascii_lowercase()
        } else {
            text.to_owned()
        }
    };
    let pattern: Vec<char> = lower(pattern).chars().collect();
    let value: Vec<char> = lower(value).chars().collect();
    let (mut p, mut v) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == value[v]) {
            p += 1;
            v += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, v));
            p += 1;
        } else if let Some((sp, sv)) = star {
            p = sp + 1;
            v = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

fn matches_patterns(patterns: &Patterns, value: &str, fold: bool) -> bool {
    match patterns {
        Patterns::Only(items) => items.iter().any(|item| wildcard(item, value, fold)),
        Patterns::Except(items) => !items.iter().any(|item| wildcard(item, value, fold)),
    }
}

/// How a resource policy's principal element names the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Named {
    No,
    /// By its account (`arn:aws:iam::<account>:root` or the bare id): a grant to the account,
    /// which its identity policies then pass on.
    Account,
    Directly,
}

fn named(principals: &Principals, caller: &Caller) -> Named {
    let Principals::Named(kinds) = principals else {
        return Named::Directly;
    };
    let mut best = Named::No;
    for id in kinds.get("AWS").into_iter().flatten() {
        if id == "*" || caller.names.iter().any(|name| name == id) || *id == caller.arn {
            return Named::Directly;
        }
        let root = format!("arn:aws:iam::{}:root", caller.account);
        if caller.service.is_none() && (*id == root || *id == caller.account) {
            best = Named::Account;
        }
    }
    if let Some(service) = &caller.service
        && kinds
            .get("Service")
            .is_some_and(|ids| ids.iter().any(|id| id == service))
    {
        return Named::Directly;
    }
    best
}

fn one_value(operator: Operator, policy: &str, value: &str) -> bool {
    let number = |text: &str| text.parse::<f64>().ok();
    match operator {
        Operator::StringEquals | Operator::StringNotEquals => policy == value,
        Operator::StringEqualsIgnoreCase | Operator::StringNotEqualsIgnoreCase => {
            policy.eq_ignore_ascii_case(value)
        }
        Operator::StringLike | Operator::StringNotLike => wildcard(policy, value, false),
        Operator::ArnEquals | Operator::ArnNotEquals | Operator::ArnLike | Operator::ArnNotLike => {
            // ARNs compare component by component; a wildcard stays within its component.
            let policy_parts: Vec<&str> = policy.splitn(6, ':').collect();
            let value_parts: Vec<&str> = value.splitn(6, ':').collect();
            policy_parts.len() == 6
                && value_parts.len() == 6
                && policy_parts
                    .iter()
                    .zip(&value_parts)
                    .all(|(p, v)| wildcard(p, v, false))
        }
        Operator::Bool => policy.eq_ignore_ascii_case(value),
        Operator::NumericEquals | Operator::NumericNotEquals => {
            matches!((number(policy), number(value)), (Some(p), Some(v)) if p == v)
        }
        Operator::NumericLessThan => {
            matches!((number(policy), number(value)), (Some(p), Some(v)) if v < p)
        }
        Operator::NumericLessThanEquals => {
            matches!((number(policy), number(value)), (Some(p), Some(v)) if v <= p)
        }
        Operator::NumericGreaterThan => {
            matches!((number(policy), number(value)), (Some(p), Some(v)) if v > p)
        }
        Operator::NumericGreaterThanEquals => {
            matches!((number(policy), number(value)), (Some(p), Some(v)) if v >= p)
        }
        Operator::Null => unreachable!("Null is decided on the key's presence"),
    }
}

fn condition_holds(condition: &Condition, context: &Context) -> bool {
    let values = context
        .get(&condition.key)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if condition.operator == Operator::Null {
        let absent = values.is_empty();
        return condition
            .values
            .iter()
            .any(|wanted| wanted.eq_ignore_ascii_case("true") == absent);
    }
    let negated = condition.operator.negated();
    let any_policy = |value: &str| {
        condition
            .values
            .iter()
            .any(|policy| one_value(condition.operator, policy, value))
    };
    match condition.set {
        Some(SetOperator::ForAllValues) => values.iter().all(|value| any_policy(value) != negated),
        Some(SetOperator::ForAnyValue) => values.iter().any(|value| any_policy(value) != negated),
        None if values.is_empty() => condition.if_exists || negated,
        None => {
            let matched = values.iter().any(|value| any_policy(value));
            matched != negated
        }
    }
}

/// Whether a statement applies to the request, principal aside.
pub fn applies(statement: &Statement, request: &Request<'_>) -> bool {
    matches_patterns(&statement.actions, request.action, true)
        && matches_patterns(&statement.resources, request.resource, false)
        && statement
            .conditions
            .iter()
            .all(|condition| condition_holds(condition, request.context))
}

/// How a resource-policy statement names the caller (`NotPrincipal` inverted).
fn statement_names(statement: &Statement, caller: &Caller) -> Named {
    match (&statement.principal, &statement.not_principal) {
        (Some(principals), _) => named(principals, caller),
        (None, Some(excluded)) if named(excluded, caller) == Named::No => Named::Directly,
        _ => Named::No,
    }
}

/// Decides a request from the caller's identity policies and the resource's policy.
pub fn decide(
    identity: &[&Policy],
    resource: Option<(&Policy, ResourcePolicyKind)>,
    request: &Request<'_>,
) -> Decision {
    let mut identity_allows = false;
    for policy in identity {
        for statement in &policy.statements {
            if !applies(statement, request) {
                continue;
            }
            match statement.effect {
                Effect::Deny => {
                    return Decision::ExplicitDeny {
                        in_resource_policy: false,
                        sid: statement.sid.clone(),
                    };
                }
                Effect::Allow => identity_allows = true,
            }
        }
    }
    let mut resource_allows = Named::No;
    if let Some((policy, _)) = resource {
        for statement in &policy.statements {
            let names = statement_names(statement, request.caller);
            if names == Named::No || !applies(statement, request) {
                continue;
            }
            match statement.effect {
                Effect::Deny => {
                    return Decision::ExplicitDeny {
                        in_resource_policy: true,
                        sid: statement.sid.clone(),
                    };
                }
                Effect::Allow => resource_allows = resource_allows.max(names),
            }
        }
    }
    let required = matches!(resource, Some((_, ResourcePolicyKind::Required)));
    let allowed = match resource_allows {
        Named::Directly => true,
        Named::Account => identity_allows,
        Named::No => identity_allows && !required,
    };
    if allowed {
        Decision::Allowed
    } else {
        Decision::ImplicitDeny {
            resource_policy_missing: required && resource_allows == Named::No,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn role() -> Caller {
        Caller {
            arn: "arn:aws:sts::123456789012:assumed-role/r/f".into(),
            names: vec![
                "arn:aws:iam::123456789012:role/r".into(),
                "arn:aws:sts::123456789012:assumed-role/r/f".into(),
            ],
            account: "123456789012".into(),
            service: None,
        }
    }

    fn macie() -> Caller {
        Caller {
            arn: "macie.amazonaws.com".into(),
            names: vec![],
            account: "123456789012".into(),
            service: Some("macie.amazonaws.com".into()),
        }
    }

    fn context(pairs: &[(&str, &str)]) -> Context {
        pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), vec![(*v).to_owned()]))
            .collect()
    }

    fn identity(statements: serde_json::Value) -> Policy {
        Policy::parse(
            &json!({"Version": "2012-10-17", "Statement": statements}),
            false,
        )
        .unwrap()
    }

    fn resource(statements: serde_json::Value) -> Policy {
        Policy::parse(
            &json!({"Version": "2012-10-17", "Statement": statements}),
            true,
        )
        .unwrap()
    }

    fn deny_insecure() -> Policy {
        resource(
            json!([{"Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]),
        )
    }

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(wildcard("s3:Get*", "s3:GetObjectTagging", false));
        assert!(wildcard("S3:getobject", "s3:GetObject", true));
        assert!(!wildcard("S3:getobject", "s3:GetObject", false));
        assert!(wildcard(
            "arn:aws:s3:::b/*AWSLogs/1/Macie/us-east-1/*",
            "arn:aws:s3:::b/results/AWSLogs/1/Macie/us-east-1/x.jsonl.gz",
            false
        ));
        assert!(wildcard("a?c", "abc", false));
        assert!(!wildcard("a?c", "ac", false));
        assert!(!wildcard("arn:aws:states:r:1:stateMachine:m", "*", false));
        assert!(wildcard("*", "*", false));
    }

    #[test]
    fn an_identity_allow_grants_unless_the_bucket_policy_denies() {
        let granted = identity(
            json!([{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::b/*"}]),
        );
        let caller = role();
        let secure = transport(true);
        let insecure = transport(false);
        let bucket = deny_insecure();
        let ask = |action: &'static str, resource: &'static str, context| Request {
            caller: &caller,
            action,
            resource,
            context,
        };
        let with_bucket = Some((&bucket, ResourcePolicyKind::Either));
        assert_eq!(
            decide(
                &[&granted],
                with_bucket,
                &ask("s3:GetObject", "arn:aws:s3:::b/k", &secure)
            ),
            Decision::Allowed
        );
        assert_eq!(
            decide(
                &[&granted],
                with_bucket,
                &ask("s3:GetObject", "arn:aws:s3:::b/k", &insecure)
            ),
            Decision::ExplicitDeny {
                in_resource_policy: true,
                sid: None
            }
        );
        assert_eq!(
            decide(
                &[&granted],
                with_bucket,
                &ask("s3:PutObject", "arn:aws:s3:::b/k", &secure)
            ),
            Decision::ImplicitDeny {
                resource_policy_missing: false
            }
        );
        assert_eq!(
            decide(
                &[&granted],
                with_bucket,
                &ask("s3:GetObject", "arn:aws:s3:::other/k", &secure)
            ),
            Decision::ImplicitDeny {
                resource_policy_missing: false
            }
        );
    }

    #[test]
    fn a_key_policy_must_allow_itself_or_through_the_account() {
        let caller = role();
        let none = Context::new();
        let request = Request {
            caller: &caller,
            action: "kms:Decrypt",
            resource: "arn:aws:kms:us-east-1:123456789012:key/k",
            context: &none,
        };
        let granted = identity(
            json!([{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "arn:aws:kms:us-east-1:123456789012:key/k"}]),
        );
        let account = resource(
            json!([{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "kms:*", "Resource": "*"}]),
        );
        let nobody = resource(
            json!([{"Effect": "Allow", "Principal": {"Service": "macie.amazonaws.com"}, "Action": "kms:*", "Resource": "*"}]),
        );
        let direct = resource(
            json!([{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/r"}, "Action": "kms:Decrypt", "Resource": "*"}]),
        );
        let required = ResourcePolicyKind::Required;
        assert_eq!(
            decide(&[&granted], Some((&account, required)), &request),
            Decision::Allowed
        );
        assert_eq!(
            decide(&[], Some((&account, required)), &request),
            Decision::ImplicitDeny {
                resource_policy_missing: false
            }
        );
        assert_eq!(
            decide(&[&granted], Some((&nobody, required)), &request),
            Decision::ImplicitDeny {
                resource_policy_missing: true
            }
        );
        assert_eq!(
            decide(&[], Some((&direct, required)), &request),
            Decision::Allowed
        );
    }

    #[test]
    fn a_service_principal_is_allowed_only_under_the_conditions_named() {
        let caller = macie();
        let results = resource(
            json!([{"Effect": "Allow", "Principal": {"Service": "macie.amazonaws.com"},
            "Action": "s3:PutObject", "Resource": "arn:aws:s3:::r/*",
            "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"},
                "ArnLike": {"aws:SourceArn": ["arn:aws:macie2:us-east-1:123456789012:export-configuration:*",
                    "arn:aws:macie2:us-east-1:123456789012:classification-job/*"]}}}]),
        );
        let decide_with = |pairs: &[(&str, &str)]| {
            let context = context(pairs);
            decide(
                &[],
                Some((&results, ResourcePolicyKind::Either)),
                &Request {
                    caller: &caller,
                    action: "s3:PutObject",
                    resource: "arn:aws:s3:::r/AWSLogs/x",
                    context: &context,
                },
            )
        };
        assert_eq!(
            decide_with(&[
                ("aws:SourceAccount", "123456789012"),
                (
                    "aws:SourceArn",
                    "arn:aws:macie2:us-east-1:123456789012:classification-job/abc"
                ),
            ]),
            Decision::Allowed
        );
        assert!(matches!(
            decide_with(&[
                ("aws:SourceAccount", "999999999999"),
                (
                    "aws:SourceArn",
                    "arn:aws:macie2:us-east-1:123456789012:classification-job/abc"
                ),
            ]),
            Decision::ImplicitDeny { .. }
        ));
        assert!(matches!(
            decide_with(&[("aws:SourceAccount", "123456789012")]),
            Decision::ImplicitDeny { .. }
        ));
    }

    #[test]
    fn negated_null_and_if_exists_conditions_treat_a_missing_key_as_iam_does() {
        let holds = |block: serde_json::Value, pairs: &[(&str, &str)]| {
            let policy = identity(
                json!([{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": block}]),
            );
            let caller = role();
            let context = context(pairs);
            decide(
                &[&policy],
                None,
                &Request {
                    caller: &caller,
                    action: "s3:ListBucket",
                    resource: "arn:aws:s3:::b",
                    context: &context,
                },
            ) == Decision::Allowed
        };
        assert!(holds(
            json!({"StringNotEquals": {"s3:prefix": "secret/"}}),
            &[]
        ));
        assert!(!holds(
            json!({"StringNotEquals": {"s3:prefix": "secret/"}}),
            &[("s3:prefix", "secret/")]
        ));
        assert!(!holds(json!({"StringEquals": {"s3:prefix": "a/"}}), &[]));
        assert!(holds(
            json!({"StringEqualsIfExists": {"s3:prefix": "a/"}}),
            &[]
        ));
        assert!(holds(
            json!({"StringLike": {"s3:prefix": ["a/*", "b/*"]}}),
            &[("s3:prefix", "b/c")]
        ));
        assert!(holds(json!({"Null": {"s3:prefix": "true"}}), &[]));
        assert!(!holds(
            json!({"Null": {"s3:prefix": "true"}}),
            &[("s3:prefix", "a")]
        ));
        assert!(holds(
            json!({"NumericLessThanEquals": {"s3:max-keys": "1000"}}),
            &[("s3:max-keys", "10")]
        ));
    }

    #[test]
    fn not_action_and_not_resource_grant_everything_else() {
        let policy = identity(
            json!([{"Effect": "Allow", "NotAction": "s3:Delete*", "NotResource": "arn:aws:s3:::locked/*"}]),
        );
        let caller = role();
        let none = Context::new();
        let ask = |action, resource| {
            decide(
                &[&policy],
                None,
                &Request {
                    caller: &caller,
                    action,
                    resource,
                    context: &none,
                },
            ) == Decision::Allowed
        };
        assert!(ask("s3:GetObject", "arn:aws:s3:::b/k"));
        assert!(!ask("s3:DeleteObject", "arn:aws:s3:::b/k"));
        assert!(!ask("s3:GetObject", "arn:aws:s3:::locked/k"));
    }
}
