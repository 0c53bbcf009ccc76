//! Suppression rules, applied where the gate counts findings. Macie's finding criteria compare
//! values (`eq`, `neq`, `gt`, ...) and have no prefix operator, so a findings filter cannot say
//! "this type under this prefix"; the gate applies the rule itself, to the run's own findings,
//! before deciding what to hold. Every finding a rule set aside is written into the run's
//! manifest with the rule that did it, so the record says why an object passed.

use serde::{Deserialize, Serialize};

use crate::false_positives::rules::{ListedRule, Rule};
use crate::macie::findings::FindingSummary;

/// A finding a suppression rule set aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuppressedFinding {
    pub key: String,
    pub finding_id: String,
    pub finding_type: String,
    /// The id of the rule that set it aside.
    pub rule: String,
}

/// The suppression rules of the list.
#[derive(Debug, Clone, Default)]
pub struct Suppressions {
    rules: Vec<(String, String, String)>,
}

impl Suppressions {
    pub fn new(listed: &[ListedRule]) -> Self {
        let rules = listed
            .iter()
            .filter_map(|listed| match &listed.rule {
                Rule::Suppression {
                    finding_type,
                    key_prefix,
                } => Some((listed.id.clone(), finding_type.clone(), key_prefix.clone())),
                _ => None,
            })
            .collect();
        Self { rules }
    }

    /// The rule that sets a finding of `finding_type` on `key` aside, if any.
    pub fn matching(&self, finding_type: &str, key: &str) -> Option<&str> {
        self.rules
            .iter()
            .find(|(_, kind, prefix)| kind == finding_type && key.starts_with(prefix.as_str()))
            .map(|(id, _, _)| id.as_str())
    }

    /// Splits `findings` into those that count and those a rule set aside.
    pub fn apply(
        &self,
        findings: Vec<FindingSummary>,
    ) -> (Vec<FindingSummary>, Vec<SuppressedFinding>) {
        let mut kept = Vec::with_capacity(findings.len());
        let mut suppressed = Vec::new();
        for finding in findings {
            let rule = finding
                .key
                .as_deref()
                .and_then(|key| self.matching(&finding.finding_type, key));
            match rule {
                Some(rule) => suppressed.push(SuppressedFinding {
                    key: finding.key.clone().unwrap_or_default(),
                    finding_id: finding.id.clone(),
                    finding_type: finding.finding_type.clone(),
                    rule: rule.to_owned(),
                }),
                None => kept.push(finding),
            }
        }
        suppressed.sort_by(|a, b| a.key.cmp(&b.key).then(a.finding_id.cmp(&b.finding_id)));
        (kept, suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::decisions::Reviewer;
    use crate::macie::severity::Severity;
    use crate::workflow::WorkflowId;

    fn finding(id: &str, key: &str, kind: &str) -> FindingSummary {
        FindingSummary {
            id: id.into(),
            bucket: Some("scan".into()),
            key: Some(key.into()),
            size: 1,
            severity: Severity::High,
            finding_type: kind.into(),
            detections: vec![],
        }
    }

    #[test]
    fn only_the_type_under_the_prefix_is_set_aside() {
        let rule = Rule::suppression("SensitiveData:S3Object/Personal", "fixtures/").unwrap();
        let listed = ListedRule::new(
            rule,
            Reviewer {
                name: "ada".into(),
                source_ip: None,
                user_agent: None,
            },
            "2026-12-02T10:00:00Z",
            WorkflowId::parse("wf").unwrap(),
            None,
        );
        let rules = Suppressions::new(std::slice::from_ref(&listed));
        let (kept, suppressed) = rules.apply(vec![
            finding("1", "fixtures/a.csv", "SensitiveData:S3Object/Personal"),
            finding("2", "fixtures/b.csv", "SensitiveData:S3Object/Financial"),
            finding(
                "3",
                "exports/fixtures/c.csv",
                "SensitiveData:S3Object/Personal",
            ),
            finding("4", "fixtures", "SensitiveData:S3Object/Personal"),
        ]);
        let kept: Vec<&str> = kept.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(kept, ["2", "3", "4"]);
        assert_eq!(
            suppressed,
            vec![SuppressedFinding {
                key: "fixtures/a.csv".into(),
                finding_id: "1".into(),
                finding_type: "SensitiveData:S3Object/Personal".into(),
                rule: listed.id.clone(),
            }]
        );
        assert!(
            Suppressions::default()
                .apply(vec![finding("1", "a", "x")])
                .1
                .is_empty()
        );
    }
}
