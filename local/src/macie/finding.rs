//! Findings in Macie's JSON shape, and the `findingCriteria` filter of ListFindings.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::clock::rfc3339_ms;
use crate::macie::classify::{CustomIdentifier, Detections};
use crate::s3::store::ObjectMeta;
use crate::sfn::engine::{ACCOUNT, REGION};

/// Occurrences a finding lists, at most.
const MAX_OCCURRENCES: usize = 15;

/// Finding fields ListFindings and GetFindingStatistics may filter on.
pub const CRITERIA_FIELDS: &[&str] = &[
    "accountId",
    "archived",
    "category",
    "classificationDetails.jobArn",
    "classificationDetails.jobId",
    "classificationDetails.originType",
    "classificationDetails.result.customDataIdentifiers.detections.arn",
    "classificationDetails.result.customDataIdentifiers.detections.name",
    "classificationDetails.result.sensitiveData.category",
    "classificationDetails.result.sensitiveData.detections.type",
    "classificationDetails.result.status.code",
    "createdAt",
    "id",
    "region",
    "resourcesAffected.s3Bucket.name",
    "resourcesAffected.s3Object.extension",
    "resourcesAffected.s3Object.key",
    "resourcesAffected.s3Object.path",
    "resourcesAffected.s3Object.tags.key",
    "resourcesAffected.s3Object.tags.value",
    "sample",
    "severity.description",
    "severity.score",
    "type",
    "updatedAt",
];

fn severity_rank(description: &str) -> u8 {
    match description {
        "High" => 3,
        "Medium" => 2,
        _ => 1,
    }
}

fn severity_name(rank: u8) -> &'static str {
    match rank {
        3 => "High",
        2 => "Medium",
        _ => "Low",
    }
}

/// The emulator's severity policy (specs/macie2.md §7): credentials are High; financial data is
/// Medium, High from 100 occurrences; personal data Low for one, Medium, High from 100.
fn managed_severity(category: &str, count: u64) -> u8 {
    match category {
        "CREDENTIALS" => 3,
        "FINANCIAL_INFORMATION" if count >= 100 => 3,
        "FINANCIAL_INFORMATION" => 2,
        _ if count >= 100 => 3,
        _ if count >= 2 => 2,
        _ => 1,
    }
}

/// A custom identifier's severity for `count` occurrences, or none below its lowest threshold.
fn custom_severity(identifier: &CustomIdentifier, count: u64) -> Option<u8> {
    if identifier.severity_levels.is_empty() {
        return Some(2);
    }
    identifier
        .severity_levels
        .iter()
        .filter(|(threshold, _)| count >= *threshold)
        .map(|(_, severity)| match severity.as_str() {
            "HIGH" => 3,
            "MEDIUM" => 2,
            _ => 1,
        })
        .max()
}

fn occurrences(lines: &[usize]) -> Value {
    json!({"lineRanges": lines.iter().take(MAX_OCCURRENCES).map(|line| json!({"start": line, "end": line, "startColumn": 1})).collect::<Vec<_>>()})
}

/// The finding for one object, or none when nothing counts (e.g. below custom thresholds).
pub fn build(
    job_id: &str,
    bucket: &str,
    object: &ObjectMeta,
    detections: &Detections,
    custom: &[CustomIdentifier],
    mime_type: &str,
) -> Option<Value> {
    let mut rank = 0u8;
    let mut categories: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for (id, (category, lines)) in &detections.managed {
        let count = lines.len() as u64;
        rank = rank.max(managed_severity(category, count));
        categories
            .entry(category.as_str())
            .or_default()
            .push(json!({"type": id, "count": count, "occurrences": occurrences(lines)}));
    }
    let mut custom_detections = Vec::new();
    let mut custom_total = 0u64;
    for (id, lines) in &detections.custom {
        let Some(identifier) = custom.iter().find(|c| &c.id == id) else {
            continue;
        };
        let count = lines.len() as u64;
        let Some(severity) = custom_severity(identifier, count) else {
            continue;
        };
        rank = rank.max(severity);
        custom_total += count;
        custom_detections.push(json!({"arn": identifier.arn, "name": identifier.name, "count": count, "occurrences": occurrences(lines)}));
    }
    if categories.is_empty() && custom_detections.is_empty() {
        return None;
    }
    let kinds = categories.len() + usize::from(!custom_detections.is_empty());
    let finding_type = if kinds > 1 {
        "SensitiveData:S3Object/Multiple"
    } else if !custom_detections.is_empty() {
        "SensitiveData:S3Object/CustomIdentifier"
    } else {
        match *categories.keys().next().expect("one category") {
            "FINANCIAL_INFORMATION" => "SensitiveData:S3Object/Financial",
            "CREDENTIALS" => "SensitiveData:S3Object/Credentials",
            _ => "SensitiveData:S3Object/Personal",
        }
    };
    let sensitive_data: Vec<Value> = categories
        .into_iter()
        .map(|(category, detections)| {
            let total: u64 = detections
                .iter()
                .map(|d| d["count"].as_u64().unwrap_or(0))
                .sum();
            json!({"category": category, "detections": detections, "totalCount": total})
        })
        .collect();
    let now = rfc3339_ms(crate::clock::now_ms());
    let id = uuid::Uuid::new_v4().simple().to_string();
    let extension = object
        .key
        .rsplit_once('.')
        .map_or("", |(_, e)| e)
        .to_owned();
    Some(json!({
        "accountId": ACCOUNT,
        "archived": false,
        "category": "CLASSIFICATION",
        "classificationDetails": {
            "jobArn": format!("arn:aws:macie2:{REGION}:{ACCOUNT}:classification-job/{job_id}"),
            "jobId": job_id,
            "originType": "SENSITIVE_DATA_DISCOVERY_JOB",
            "result": {
                "additionalOccurrences": false,
                "customDataIdentifiers": {"detections": custom_detections, "totalCount": custom_total},
                "mimeType": mime_type,
                "sensitiveData": sensitive_data,
                "sizeClassified": object.size,
                "status": {"code": "COMPLETE"},
            },
        },
        "count": 1,
        "createdAt": now,
        "description": format!("The object {} contains sensitive data.", object.key),
        "id": id,
        "partition": "aws",
        "region": REGION,
        "resourcesAffected": {
            "s3Bucket": {"arn": format!("arn:aws:s3:::{bucket}"), "name": bucket, "tags": []},
            "s3Object": {
                "bucketArn": format!("arn:aws:s3:::{bucket}"),
                "key": object.key,
                "path": format!("{bucket}/{}", object.key),
                "extension": extension,
                "eTag": object.etag,
                "lastModified": rfc3339_ms(object.last_modified_ms),
                "size": object.size,
                "storageClass": object.attributes.storage_class.clone().unwrap_or_else(|| "STANDARD".into()),
                "tags": object.tags.iter().map(|t| json!({"key": t.key, "value": t.value})).collect::<Vec<_>>(),
                "publicAccess": false,
            },
        },
        "sample": false,
        "schemaVersion": "1.0",
        "severity": {"description": severity_name(rank), "score": rank},
        "title": "The S3 object contains sensitive data.",
        "type": finding_type,
        "updatedAt": now,
    }))
}

/// The values at a dotted path; arrays along the way contribute every element.
fn values_at<'a>(value: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![value];
    for part in path.split('.') {
        let mut next = Vec::new();
        for node in current {
            match node {
                Value::Array(items) => next.extend(items.iter().filter_map(|item| item.get(part))),
                other => next.extend(other.get(part)),
            }
        }
        current = next
            .into_iter()
            .flat_map(|node| match node {
                Value::Array(items) => items.iter().collect::<Vec<_>>(),
                other => vec![other],
            })
            .collect();
    }
    current
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn as_number(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        value.as_str().and_then(|text| {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|at| i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
        })
    })
}

/// Checks that every criterion names a known field.
pub fn validate_criteria(criteria: &Value) -> Result<(), String> {
    for (field, _) in criteria["criterion"].as_object().into_iter().flatten() {
        if !CRITERIA_FIELDS.contains(&field.as_str()) {
            return Err(format!("{field} is not a valid finding criterion"));
        }
    }
    Ok(())
}

/// Whether a finding meets every criterion.
pub fn matches(finding: &Value, criteria: &Value) -> bool {
    criteria["criterion"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(field, condition)| {
            let found: Vec<&Value> = values_at(finding, field);
            let texts: Vec<String> = found.iter().map(|v| as_text(v)).collect();
            let strings = |name: &str| -> Vec<String> {
                condition[name]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(as_text)
                    .collect()
            };
            if condition.get("eq").is_some() && !strings("eq").iter().any(|v| texts.contains(v)) {
                return false;
            }
            if condition.get("neq").is_some() && strings("neq").iter().any(|v| texts.contains(v)) {
                return false;
            }
            if condition.get("eqExactMatch").is_some()
                && !strings("eqExactMatch").iter().all(|v| texts.contains(v))
            {
                return false;
            }
            for (name, test) in [
                ("gt", (|a: i64, b: i64| a > b) as fn(i64, i64) -> bool),
                ("gte", |a, b| a >= b),
                ("lt", |a, b| a < b),
                ("lte", |a, b| a <= b),
            ] {
                if let Some(limit) = condition[name].as_i64()
                    && !found
                        .iter()
                        .filter_map(|v| as_number(v))
                        .any(|n| test(n, limit))
                {
                    return false;
                }
            }
            true
        })
}

/// The severity description of the more severe of two findings (for sorting and statistics).
pub fn severity_of(finding: &Value) -> u8 {
    severity_rank(finding["severity"]["description"].as_str().unwrap_or("Low"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::store::Attributes;

    #[test]
    fn criteria_match_nested_arrays_and_booleans() {
        let finding = json!({"archived": false, "classificationDetails": {"jobId": "j1",
            "result": {"sensitiveData": [{"category": "PERSONAL_INFORMATION", "detections": [{"type": "USA_SOCIAL_SECURITY_NUMBER"}]}]}},
            "severity": {"description": "High", "score": 3}, "createdAt": "2026-01-01T00:00:00.000Z"});
        let criteria = |c: Value| json!({"criterion": c});
        assert!(matches(
            &finding,
            &criteria(json!({"classificationDetails.jobId": {"eq": ["j1", "j2"]}}))
        ));
        assert!(!matches(
            &finding,
            &criteria(json!({"classificationDetails.jobId": {"eq": ["j2"]}}))
        ));
        assert!(matches(
            &finding,
            &criteria(json!({"archived": {"eq": ["false"]}}))
        ));
        assert!(matches(
            &finding,
            &criteria(
                json!({"classificationDetails.result.sensitiveData.detections.type": {"eq": ["USA_SOCIAL_SECURITY_NUMBER"]}})
            )
        ));
        assert!(matches(
            &finding,
            &criteria(json!({"severity.score": {"gte": 2}}))
        ));
        assert!(!matches(
            &finding,
            &criteria(json!({"severity.description": {"neq": ["High"]}}))
        ));
        assert!(validate_criteria(&criteria(json!({"nonsense": {"eq": ["x"]}}))).is_err());
    }

    #[test]
    fn severity_and_type_follow_the_emulator_policy() {
        let object = ObjectMeta::for_test("data.csv", 10, Attributes::default());
        let mut detections = Detections::default();
        detections.managed.insert(
            "USA_SOCIAL_SECURITY_NUMBER".into(),
            ("PERSONAL_INFORMATION".into(), vec![1]),
        );
        let finding = build("j", "scan", &object, &detections, &[], "text/plain").unwrap();
        assert_eq!(finding["severity"]["description"], "Low");
        assert_eq!(finding["type"], "SensitiveData:S3Object/Personal");
        detections
            .managed
            .insert("PKCS".into(), ("CREDENTIALS".into(), vec![2]));
        let finding = build("j", "scan", &object, &detections, &[], "text/plain").unwrap();
        assert_eq!(finding["severity"]["description"], "High");
        assert_eq!(finding["type"], "SensitiveData:S3Object/Multiple");
        assert_eq!(finding["resourcesAffected"]["s3Object"]["extension"], "csv");
    }
}
