//! Findings in Macie's JSON shape, and the `findingCriteria` filter of ListFindings.

use macie_classifier::{ObjectReport, Severity};
use serde_json::{Value, json};

use crate::aws::{ACCOUNT, REGION};
use crate::clock::rfc3339_ms;
use crate::s3::store::ObjectMeta;

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

/// The finding for an object the classifier flagged (`report.is_sensitive()`).
pub fn build(job_id: &str, bucket: &str, object: &ObjectMeta, report: &ObjectReport) -> Value {
    let severity = report.severity().unwrap_or(Severity::Low);
    let now = rfc3339_ms(crate::clock::now_ms());
    let id = uuid::Uuid::new_v4().simple().to_string();
    let extension = object
        .key
        .rsplit_once('.')
        .map_or("", |(_, e)| e)
        .to_owned();
    json!({
        "accountId": ACCOUNT,
        "archived": false,
        "category": "CLASSIFICATION",
        "classificationDetails": {
            "jobArn": format!("arn:aws:macie2:{REGION}:{ACCOUNT}:classification-job/{job_id}"),
            "jobId": job_id,
            "originType": "SENSITIVE_DATA_DISCOVERY_JOB",
            "result": report.macie_result(MAX_OCCURRENCES),
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
        "severity": {"description": severity.description(), "score": severity.score()},
        "title": "The S3 object contains sensitive data.",
        "type": report.finding_type().unwrap_or("SensitiveData:S3Object/Multiple"),
        "updatedAt": now,
    })
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

/// A finding's severity as a rank, Low = 1 to High = 3 (for sorting and statistics).
pub fn severity_of(finding: &Value) -> u8 {
    match finding["severity"]["description"].as_str() {
        Some("High") => 3,
        Some("Medium") => 2,
        _ => 1,
    }
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
    fn findings_carry_the_classifiers_severity_type_and_result() {
        let object = ObjectMeta::for_test("data.csv", 30, Attributes::default());
        let classifier = macie_classifier::Classifier::new(macie_classifier::Config::default());
        let report = classifier.classify("data.csv", None, "ssn\n123-45-6789\n".as_bytes());
        let finding = build("j", "scan", &object, &report);
        assert_eq!(finding["severity"]["description"], "Low");
        assert_eq!(finding["type"], "SensitiveData:S3Object/Personal");
        assert_eq!(finding["resourcesAffected"]["s3Object"]["extension"], "csv");
        let detection =
            &finding["classificationDetails"]["result"]["sensitiveData"][0]["detections"][0];
        assert_eq!(detection["type"], "USA_SOCIAL_SECURITY_NUMBER");
        assert_eq!(detection["occurrences"]["cells"][0]["cellReference"], "A2");
        let report = classifier.classify(
            "k.txt",
            None,
            "SSN 123-45-6789 -----BEGIN PRIVATE KEY-----".as_bytes(),
        );
        let finding = build("j", "scan", &object, &report);
        assert_eq!(finding["severity"]["description"], "High");
        assert_eq!(finding["type"], "SensitiveData:S3Object/Multiple");
    }
}
