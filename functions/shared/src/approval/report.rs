//! A run's review on record, for an auditor without AWS access: every held object with why it
//! was held (detection types and counts, never values), who decided what, when, from which
//! address and browser, and where the object ended; the findings the reviewers' suppression rules
//! set aside, with each rule. The last step of a review writes it as JSON and as a page
//! (`approvals/<review id>/report.json` and `report.html` in the manifest bucket), both read
//! from the records alone, so the report never depends on API Gateway's or Lambda's logs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::approval::decisions::{Choice, ObjectDecision};
use crate::approval::outcomes::ObjectOutcome;
use crate::approval::page::{self, escape, table, visible, when};
use crate::approval::record::PREFIX;
use crate::false_positives::rules::ListedRule;
use crate::false_positives::suppression::SuppressedFinding;
use crate::manifest::{Manifest, ManifestRef};
use crate::workflow::WorkflowId;

/// The report's format version.
pub const VERSION: u32 = 1;

/// One held object in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportedObject {
    pub key: String,
    pub size: u64,
    /// Why it was held, as the review page said it.
    pub held_for: String,
    pub decision: Option<ObjectDecision>,
    pub outcome: Option<ObjectOutcome>,
}

/// A finding a rule set aside, with the rule as it read when the report was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportedSuppression {
    #[serde(flatten)]
    pub finding: SuppressedFinding,
    /// The rule, or None if it was removed from the list since.
    pub rule_text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub version: u32,
    pub workflow_id: WorkflowId,
    pub job_id: String,
    pub manifest: ManifestRef,
    /// RFC 3339.
    pub written_at: String,
    pub held: Vec<ReportedObject>,
    pub suppressed: Vec<ReportedSuppression>,
}

/// The keys of a review's report.
pub fn keys(review: &str) -> (String, String) {
    (
        format!("{PREFIX}{review}/report.json"),
        format!("{PREFIX}{review}/report.html"),
    )
}

impl Report {
    /// Puts the records of a review together.
    pub fn new(
        location: &ManifestRef,
        manifest: &Manifest,
        decisions: &BTreeMap<String, ObjectDecision>,
        outcomes: &BTreeMap<String, ObjectOutcome>,
        rules: &[ListedRule],
        written_at: &str,
    ) -> Self {
        let mut held: Vec<ReportedObject> = manifest
            .review()
            .map(|object| {
                let found: Vec<String> =
                    object.detections.iter().map(ToString::to_string).collect();
                let mut held_for = format!(
                    "{} ({}): {}",
                    object.highest_severity.as_str(),
                    object.finding_types.join(", "),
                    found.join(", ")
                );
                if let Some(incomplete) = &object.incomplete_analysis {
                    let _ = write!(held_for, "; only partly analysed: {incomplete}");
                }
                (object.key.as_str(), object.size, held_for)
            })
            .chain(manifest.not_analysed.iter().map(|object| {
                (
                    object.key.as_str(),
                    object.size,
                    format!(
                        "not analysed ({}): {}",
                        object.status.as_str(),
                        object.reasons.join("; ")
                    ),
                )
            }))
            .map(|(key, size, held_for)| ReportedObject {
                key: key.to_owned(),
                size,
                held_for,
                decision: decisions.get(key).cloned(),
                outcome: outcomes.get(key).cloned(),
            })
            .collect();
        held.sort_by(|a, b| a.key.cmp(&b.key));
        let suppressed = manifest
            .suppressed
            .iter()
            .map(|finding| ReportedSuppression {
                finding: finding.clone(),
                rule_text: rules
                    .iter()
                    .find(|listed| listed.id == finding.rule)
                    .map(|listed| listed.rule.describe()),
            })
            .collect();
        Self {
            version: VERSION,
            workflow_id: manifest.workflow_id.clone(),
            job_id: manifest.job_id.clone(),
            manifest: location.clone(),
            written_at: written_at.to_owned(),
            held,
            suppressed,
        }
    }

    /// The report as a page: self-contained, no script, readable offline.
    pub fn html(&self) -> String {
        let mut content = String::new();
        let _ = writeln!(
            content,
            "<dl>\n<dt>Run</dt><dd>{}</dd>\n<dt>Macie job</dt><dd>{}</dd>\n<dt>Manifest</dt><dd>s3://{}/{}</dd>\n<dt>Written</dt><dd>{}</dd>\n</dl>",
            escape(&visible(self.workflow_id.as_str())),
            escape(&self.job_id),
            escape(&self.manifest.bucket),
            escape(&visible(&self.manifest.key)),
            escape(&when(&self.written_at)),
        );
        let decided = self.held.iter().filter(|o| o.decision.is_some()).count();
        let _ = writeln!(
            content,
            "<p>{} object(s) were held for review; {decided} were decided by a reviewer. Detection types and counts only: the gate never records the values Macie detected.</p>",
            self.held.len()
        );
        let _ = writeln!(content, "<h2>Held objects</h2>");
        let rows = self.held.iter().map(|object| {
            let decision = match &object.decision {
                Some(decision) => format!(
                    "{} by {} on {}{}{}",
                    match decision.choice {
                        Choice::Release => "Release",
                        Choice::Delete => "Delete",
                    },
                    visible(&decision.reviewer.name),
                    when(&decision.decided_at),
                    decision
                        .reviewer
                        .source_ip
                        .as_deref()
                        .map(|ip| format!(", from {}", visible(ip)))
                        .unwrap_or_default(),
                    decision
                        .reviewer
                        .user_agent
                        .as_deref()
                        .map(|agent| format!(", with {}", visible(agent)))
                        .unwrap_or_default(),
                ),
                None => "Not decided".to_owned(),
            };
            let outcome = match &object.outcome {
                Some(outcome) => format!("{}, {}", outcome.ending.describe(), when(&outcome.at)),
                None => "No outcome recorded".to_owned(),
            };
            vec![
                (visible(&object.key), "key"),
                (object.held_for.clone(), ""),
                (decision, ""),
                (outcome, ""),
            ]
        });
        table(
            &mut content,
            "Each object's decision and where it ended, from the records in the manifest bucket.",
            &["Object", "Held for", "Decision", "Outcome"],
            rows,
        );
        if !self.suppressed.is_empty() {
            let _ = writeln!(
                content,
                "<h2>Findings set aside by suppression rules ({})</h2>",
                self.suppressed.len()
            );
            let rows = self.suppressed.iter().map(|suppressed| {
                vec![
                    (visible(&suppressed.finding.key), "key"),
                    (suppressed.finding.finding_type.clone(), ""),
                    (
                        suppressed.rule_text.clone().unwrap_or_else(|| {
                            format!("rule {} (removed since)", suppressed.finding.rule)
                        }),
                        "",
                    ),
                ]
            });
            table(
                &mut content,
                "These findings held nothing: a reviewer had judged the type a false positive under the prefix.",
                &["Object", "Finding type", "Rule"],
                rows,
            );
        }
        page::page(
            200,
            &format!(
                "Review record of run {}",
                visible(self.workflow_id.as_str())
            ),
            &content,
        )
        .body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::decisions::Reviewer;
    use crate::approval::outcomes::Ending;
    use crate::macie::severity::Severity;
    use crate::manifest::{Detection, FlaggedObject, Route};

    fn manifest() -> Manifest {
        let mut manifest: Manifest = serde_json::from_value(serde_json::json!({
            "version": 2, "workflowId": "wf-1", "jobId": "job-1", "scanStageBucket": "scan",
            "minimumSeverity": "Low", "findingCount": 2, "objects": []
        }))
        .unwrap();
        for key in ["a.csv", "b.csv"] {
            manifest.objects.push(FlaggedObject {
                key: key.into(),
                size: 10,
                highest_severity: Severity::High,
                finding_types: vec!["SensitiveData:S3Object/Financial".into()],
                detections: vec![Detection {
                    kind: "CREDIT_CARD_NUMBER".into(),
                    count: 1,
                }],
                finding_ids: vec![format!("f-{key}")],
                route: Route::Review,
                incomplete_analysis: None,
            });
        }
        manifest
    }

    #[test]
    fn the_report_names_each_decision_its_reviewer_and_the_outcome() {
        let decision = ObjectDecision {
            workflow_id: WorkflowId::parse("wf-1").unwrap(),
            key: "a.csv".into(),
            location: "a.csv".into(),
            choice: Choice::Release,
            reviewer: Reviewer {
                name: "Ada <ada@example.com>".into(),
                source_ip: Some("203.0.113.9".into()),
                user_agent: Some("Firefox".into()),
            },
            decided_at: "2026-12-02T10:00:00Z".into(),
        };
        let outcome = ObjectOutcome {
            key: "a.csv".into(),
            ending: Ending::Released {
                bucket: "scanned".into(),
            },
            at: "2026-12-02T10:01:00Z".into(),
        };
        let location = ManifestRef {
            bucket: "manifests".into(),
            key: "workflows/wf%2D1/job%2D1/findings.json".into(),
        };
        let report = Report::new(
            &location,
            &manifest(),
            &BTreeMap::from([("a.csv".to_owned(), decision)]),
            &BTreeMap::from([("a.csv".to_owned(), outcome)]),
            &[],
            "2026-12-02T10:02:00Z",
        );
        assert_eq!(report.held.len(), 2);
        assert_eq!(
            report.held[0].held_for,
            "High (SensitiveData:S3Object/Financial): CREDIT_CARD_NUMBER x1"
        );
        assert!(report.held[1].decision.is_none());
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["held"][0]["decision"]["reviewer"]["sourceIp"],
            "203.0.113.9"
        );
        assert_eq!(json["held"][0]["outcome"]["outcome"], "released");
        let html = report.html();
        assert!(html.contains("Release by Ada &lt;ada@example.com&gt;"));
        assert!(html.contains("from 203.0.113.9, with Firefox"));
        assert!(html.contains("released to s3://scanned"));
        assert!(html.contains("Not decided"));
        assert!(!html.contains("<script"));
    }
}
