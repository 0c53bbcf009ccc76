//! The findings of one job, summarised per object: highest severity, finding types, and
//! detection types with counts. Every finding is read (ListFindings pages, GetFindings in
//! batches of at most 50); the list never travels through the state payload.

use std::collections::BTreeMap;

use aws_sdk_macie2::Client;
use aws_sdk_macie2::types::{CriterionAdditionalProperties, Finding, FindingCriteria};

use crate::error::PipelineError;
use crate::macie::severity::Severity;
use crate::manifest::{Detection, FlaggedObject, Route};

/// GetFindings accepts at most this many ids.
pub const GET_FINDINGS_BATCH: usize = 50;

/// Macie shows at most 100,000 findings of a job run through its API. A run that reaches this
/// many may have findings nobody can see, so it cannot be called complete.
pub const VISIBLE_FINDINGS_LIMIT: usize = 100_000;

/// What the pipeline needs from one finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingSummary {
    pub id: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub size: u64,
    pub severity: Severity,
    pub finding_type: String,
    /// (detection type, count): managed identifier ids, and `CUSTOM:<name>` for custom ones.
    pub detections: Vec<(String, u64)>,
}

impl FindingSummary {
    pub fn from_sdk(finding: &Finding) -> Self {
        let object = finding
            .resources_affected()
            .and_then(|resources| resources.s3_object());
        let bucket = finding
            .resources_affected()
            .and_then(|resources| resources.s3_bucket())
            .and_then(|bucket| bucket.name())
            .map(str::to_owned);
        let result = finding
            .classification_details()
            .and_then(|details| details.result());
        let mut detections = Vec::new();
        if let Some(result) = result {
            for item in result.sensitive_data() {
                for detection in item.detections() {
                    detections.push((
                        detection.r#type().unwrap_or("UNKNOWN").to_owned(),
                        count(detection.count()),
                    ));
                }
            }
            if let Some(custom) = result.custom_data_identifiers() {
                for detection in custom.detections() {
                    detections.push((
                        format!("CUSTOM:{}", detection.name().unwrap_or("unnamed")),
                        count(detection.count()),
                    ));
                }
            }
        }
        Self {
            id: finding.id().unwrap_or_default().to_owned(),
            bucket,
            key: object.and_then(|object| object.key()).map(str::to_owned),
            size: object.and_then(|object| object.size()).map_or(0, count_i64),
            severity: Severity::of_finding(
                finding
                    .severity()
                    .and_then(|s| s.description())
                    .map(|d| d.as_str()),
                finding.severity().and_then(|s| s.score()),
            ),
            finding_type: finding
                .r#type()
                .map_or("SensitiveData:S3Object/Unknown", |t| t.as_str())
                .to_owned(),
            detections,
        }
    }
}

fn count(value: Option<i64>) -> u64 {
    value.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)
}

fn count_i64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Groups findings by object. Objects at or above `minimum` go to review; lower ones pass,
/// tagged. A finding without an object, or for another bucket, is an error: the run cannot say
/// where that data is, so it stops.
pub fn flag_objects(
    findings: &[FindingSummary],
    scan_stage_bucket: &str,
    minimum: Severity,
) -> Result<Vec<FlaggedObject>, PipelineError> {
    let mut by_key: BTreeMap<&str, FlaggedObject> = BTreeMap::new();
    for finding in findings {
        let key = finding.key.as_deref().ok_or_else(|| {
            PipelineError::UnexpectedFinding(format!("finding {} names no S3 object", finding.id))
        })?;
        if finding.bucket.as_deref() != Some(scan_stage_bucket) {
            return Err(PipelineError::UnexpectedFinding(format!(
                "finding {} is for bucket {:?}, not the scan-stage bucket {scan_stage_bucket}",
                finding.id, finding.bucket
            )));
        }
        let object = by_key.entry(key).or_insert_with(|| FlaggedObject {
            key: key.to_owned(),
            size: finding.size,
            highest_severity: finding.severity,
            finding_types: Vec::new(),
            detections: Vec::new(),
            finding_ids: Vec::new(),
            route: Route::Review,
            incomplete_analysis: None,
        });
        object.highest_severity = object.highest_severity.max(finding.severity);
        if !object.finding_types.contains(&finding.finding_type) {
            object.finding_types.push(finding.finding_type.clone());
        }
        object.finding_ids.push(finding.id.clone());
        for (kind, n) in &finding.detections {
            match object.detections.iter_mut().find(|d| &d.kind == kind) {
                Some(detection) => detection.count += n,
                None => object.detections.push(Detection {
                    kind: kind.clone(),
                    count: *n,
                }),
            }
        }
    }
    Ok(by_key
        .into_values()
        .map(|mut object| {
            object.route = if object.highest_severity >= minimum {
                Route::Review
            } else {
                Route::PassTagged
            };
            object
                .detections
                .sort_by(|a, b| b.count.cmp(&a.count).then(a.kind.cmp(&b.kind)));
            object
        })
        .collect())
}

/// Every finding of `job_id` (archived ones only when asked), read in full.
pub async fn job_findings(
    macie: &Client,
    job_id: &str,
    include_archived: bool,
) -> Result<Vec<FindingSummary>, PipelineError> {
    let mut criteria = FindingCriteria::builder().criterion(
        "classificationDetails.jobId",
        CriterionAdditionalProperties::builder().eq(job_id).build(),
    );
    if !include_archived {
        criteria = criteria.criterion(
            "archived",
            CriterionAdditionalProperties::builder().eq("false").build(),
        );
    }
    let criteria = criteria.build();

    let mut ids: Vec<String> = Vec::new();
    let mut pages = macie
        .list_findings()
        .finding_criteria(criteria)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| PipelineError::from_sdk("ListFindings", err))?;
        ids.extend(page.finding_ids().iter().cloned());
    }
    if ids.len() >= VISIBLE_FINDINGS_LIMIT {
        return Err(PipelineError::UnexpectedFinding(format!(
            "job {job_id} has {} findings; Macie shows at most {VISIBLE_FINDINGS_LIMIT} per job, so some flagged objects could be invisible. Split the input into smaller runs",
            ids.len()
        )));
    }
    ids.sort_unstable();
    ids.dedup();

    let mut findings = Vec::with_capacity(ids.len());
    for batch in ids.chunks(GET_FINDINGS_BATCH) {
        let output = macie
            .get_findings()
            .set_finding_ids(Some(batch.to_vec()))
            .send()
            .await
            .map_err(|err| PipelineError::from_sdk("GetFindings", err))?;
        findings.extend(output.findings().iter().map(FindingSummary::from_sdk));
    }
    if findings.len() != ids.len() {
        return Err(PipelineError::UnexpectedFinding(format!(
            "ListFindings returned {} finding ids for job {job_id} but GetFindings described {}",
            ids.len(),
            findings.len()
        )));
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(
        id: &str,
        key: &str,
        severity: Severity,
        detections: &[(&str, u64)],
    ) -> FindingSummary {
        FindingSummary {
            id: id.into(),
            bucket: Some("scan".into()),
            key: Some(key.into()),
            size: 100,
            severity,
            finding_type: "SensitiveData:S3Object/Personal".into(),
            detections: detections.iter().map(|(k, n)| ((*k).into(), *n)).collect(),
        }
    }

    #[test]
    fn findings_of_one_object_are_merged_with_the_highest_severity() {
        let flagged = flag_objects(
            &[
                finding("f1", "a.csv", Severity::Low, &[("PHONE_NUMBER", 2)]),
                finding(
                    "f2",
                    "a.csv",
                    Severity::High,
                    &[("PHONE_NUMBER", 1), ("CREDIT_CARD_NUMBER", 5)],
                ),
                finding(
                    "f3",
                    "b.csv",
                    Severity::Medium,
                    &[("USA_SOCIAL_SECURITY_NUMBER", 1)],
                ),
            ],
            "scan",
            Severity::Low,
        )
        .unwrap();
        assert_eq!(flagged.len(), 2);
        let a = &flagged[0];
        assert_eq!(
            (a.key.as_str(), a.highest_severity),
            ("a.csv", Severity::High)
        );
        assert_eq!(
            a.detections,
            vec![
                Detection {
                    kind: "CREDIT_CARD_NUMBER".into(),
                    count: 5
                },
                Detection {
                    kind: "PHONE_NUMBER".into(),
                    count: 3
                },
            ]
        );
        assert_eq!(a.finding_ids, vec!["f1", "f2"]);
    }

    #[test]
    fn objects_below_the_minimum_severity_pass_tagged() {
        let flagged = flag_objects(
            &[
                finding("f1", "low.csv", Severity::Low, &[]),
                finding("f2", "medium.csv", Severity::Medium, &[]),
                finding("f3", "high.csv", Severity::High, &[]),
            ],
            "scan",
            Severity::Medium,
        )
        .unwrap();
        let routes: Vec<_> = flagged.iter().map(|o| (o.key.as_str(), o.route)).collect();
        assert_eq!(
            routes,
            vec![
                ("high.csv", Route::Review),
                ("low.csv", Route::PassTagged),
                ("medium.csv", Route::Review),
            ]
        );
    }

    #[test]
    fn a_finding_for_another_bucket_or_without_an_object_stops_the_run() {
        let mut foreign = finding("f1", "a", Severity::Low, &[]);
        foreign.bucket = Some("elsewhere".into());
        assert_eq!(
            flag_objects(&[foreign], "scan", Severity::Low)
                .unwrap_err()
                .name(),
            "UnexpectedFinding"
        );
        let mut objectless = finding("f2", "a", Severity::Low, &[]);
        objectless.key = None;
        assert!(flag_objects(&[objectless], "scan", Severity::Low).is_err());
    }

    #[test]
    fn negative_counts_read_as_zero() {
        assert_eq!(count(Some(-3)), 0);
        assert_eq!(count_i64(7), 7);
    }
}
