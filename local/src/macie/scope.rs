//! Which objects a classification job covers: its `s3JobDefinition` scoping evaluated against
//! each object's tags and properties at the moment the job is created.

use serde_json::Value;

use crate::s3::store::ObjectMeta;

/// Checks a scoping block's shape; the message says what is wrong.
pub fn validate(scoping: &Value) -> Result<(), String> {
    for part in ["includes", "excludes"] {
        for term in scoping[part]["and"].as_array().into_iter().flatten() {
            if let Some(simple) = term.get("simpleScopeTerm") {
                let key = simple["key"].as_str().unwrap_or_default();
                let comparator = simple["comparator"].as_str().unwrap_or("EQ");
                let values = simple["values"].as_array().map_or(0, Vec::len);
                let allowed: &[&str] = match key {
                    "OBJECT_EXTENSION" => &["EQ", "NE"],
                    "OBJECT_KEY" => &["STARTS_WITH"],
                    "OBJECT_LAST_MODIFIED_DATE" | "OBJECT_SIZE" => {
                        &["EQ", "GT", "GTE", "LT", "LTE", "NE"]
                    }
                    other => return Err(format!("simpleScopeTerm key {other:?} is not valid")),
                };
                if !allowed.contains(&comparator) {
                    return Err(format!("comparator {comparator} is not valid for {key}"));
                }
                if values == 0
                    || (matches!(key, "OBJECT_LAST_MODIFIED_DATE" | "OBJECT_SIZE") && values != 1)
                {
                    return Err(format!(
                        "{key} needs {} value",
                        if values == 0 { "a" } else { "exactly one" }
                    ));
                }
            } else if let Some(tag) = term.get("tagScopeTerm") {
                if tag["key"].as_str() != Some("TAG") {
                    return Err("tagScopeTerm key must be TAG".into());
                }
                if !matches!(tag["comparator"].as_str(), Some("EQ" | "NE") | None) {
                    return Err("tagScopeTerm comparator must be EQ or NE".into());
                }
                if tag["tagValues"].as_array().is_none_or(Vec::is_empty) {
                    return Err("tagScopeTerm needs tagValues".into());
                }
            } else {
                return Err("a scope term needs simpleScopeTerm or tagScopeTerm".into());
            }
        }
    }
    Ok(())
}

fn term_matches(term: &Value, object: &ObjectMeta) -> bool {
    if let Some(tag) = term.get("tagScopeTerm") {
        let any = tag["tagValues"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|pair| {
                let key = pair["key"].as_str().unwrap_or_default();
                let value = pair["value"].as_str().unwrap_or_default();
                object
                    .tags
                    .iter()
                    .any(|t| t.key == key && (value.is_empty() || t.value == value))
            });
        return if tag["comparator"].as_str() == Some("NE") {
            !any
        } else {
            any
        };
    }
    let simple = &term["simpleScopeTerm"];
    let comparator = simple["comparator"].as_str().unwrap_or("EQ");
    let values: Vec<&str> = simple["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    match simple["key"].as_str().unwrap_or_default() {
        "OBJECT_EXTENSION" => {
            let extension = object.key.rsplit_once('.').map_or("", |(_, e)| e);
            let any = values.contains(&extension);
            if comparator == "NE" { !any } else { any }
        }
        "OBJECT_KEY" => values.iter().any(|prefix| object.key.starts_with(prefix)),
        "OBJECT_SIZE" => values
            .first()
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|limit| compare(comparator, object.size.cmp(&limit))),
        "OBJECT_LAST_MODIFIED_DATE" => values
            .first()
            .and_then(|v| {
                time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).ok()
            })
            .is_some_and(|at| {
                let at_ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
                compare(comparator, object.last_modified_ms.cmp(&at_ms))
            }),
        _ => false,
    }
}

fn compare(comparator: &str, ordering: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match comparator {
        "EQ" => ordering == Equal,
        "NE" => ordering != Equal,
        "GT" => ordering == Greater,
        "GTE" => ordering != Less,
        "LT" => ordering == Less,
        "LTE" => ordering != Greater,
        _ => false,
    }
}

/// Whether the scoping puts `object` in the job: every include term matches, and not every
/// exclude term does.
pub fn in_scope(scoping: &Value, object: &ObjectMeta) -> bool {
    let includes = scoping["includes"]["and"].as_array();
    let excludes = scoping["excludes"]["and"].as_array();
    let included = includes.is_none_or(|terms| terms.iter().all(|t| term_matches(t, object)));
    let excluded = excludes
        .is_some_and(|terms| !terms.is_empty() && terms.iter().all(|t| term_matches(t, object)));
    included && !excluded
}
