//! What the classifier found in one object, in Macie's terms: status, detections, severity,
//! finding type, and the `classificationDetails.result` JSON of a finding or discovery result.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::batch::{Occurrence, cell_reference};
use crate::identifier::{Category, Managed};

/// Macie's severities, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    /// The capitalised form findings use in `severity.description`.
    pub fn description(self) -> &'static str {
        match self {
            Self::Low => "Low",
            Self::Medium => "Medium",
            Self::High => "High",
        }
    }

    /// `severity.score` (1–3).
    pub fn score(self) -> u8 {
        self as u8 + 1
    }

    /// The emulator policy for managed identifiers (specs/macie2.md §7): credentials High;
    /// financial Medium, High from 100 occurrences; personal Low for one, Medium from two, High
    /// from 100.
    pub fn managed(category: Category, count: u64) -> Self {
        match category {
            Category::Credentials => Self::High,
            _ if count >= 100 => Self::High,
            Category::FinancialInformation => Self::Medium,
            Category::PersonalInformation if count >= 2 => Self::Medium,
            Category::PersonalInformation => Self::Low,
        }
    }
}

/// `classificationDetails.result.status.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Read in full.
    Complete,
    /// Read in part (detections so far are reported); never clean.
    Partial,
    /// Not read; never clean.
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "COMPLETE",
            Self::Partial => "PARTIAL",
            Self::Skipped => "SKIPPED",
        }
    }
}

/// Which identifier a detection belongs to.
#[derive(Debug, Clone)]
pub enum Identifier {
    Managed(&'static Managed),
    Custom {
        id: String,
        name: String,
        arn: String,
    },
}

impl Identifier {
    pub fn label(&self) -> &str {
        match self {
            Self::Managed(m) => m.id,
            Self::Custom { name, .. } => name,
        }
    }
}

/// One identifier's occurrences in an object.
#[derive(Debug, Clone)]
pub struct Detection {
    pub identifier: Identifier,
    pub count: u64,
    /// The first [`crate::MAX_KEPT_OCCURRENCES`] occurrences, in reading order.
    pub occurrences: Vec<Occurrence>,
    pub severity: Severity,
}

/// The classifier's verdict on one object.
#[derive(Debug, Clone)]
pub struct ObjectReport {
    pub status: Status,
    /// Macie's reason code when the status is not COMPLETE.
    pub reason: Option<&'static str>,
    /// A human explanation of the reason (the CLI prints it).
    pub detail: Option<String>,
    pub mime_type: &'static str,
    /// Bytes read and classified (after decompression).
    pub size_classified: u64,
    /// Managed detections first (in table order), then custom ones.
    pub detections: Vec<Detection>,
}

impl ObjectReport {
    /// Whether Macie would create a finding.
    pub fn is_sensitive(&self) -> bool {
        !self.detections.is_empty()
    }

    /// Whether the object counts as clean: read in full and nothing found.
    pub fn is_clean(&self) -> bool {
        self.status == Status::Complete && self.detections.is_empty()
    }

    /// The finding's severity: the highest of its detections.
    pub fn severity(&self) -> Option<Severity> {
        self.detections.iter().map(|d| d.severity).max()
    }

    /// The finding's type: one category, custom identifiers only, or `Multiple`.
    pub fn finding_type(&self) -> Option<&'static str> {
        let mut kinds: Vec<Option<Category>> = self
            .detections
            .iter()
            .map(|d| match &d.identifier {
                Identifier::Managed(m) => Some(m.category),
                Identifier::Custom { .. } => None,
            })
            .collect();
        kinds.sort();
        kinds.dedup();
        match kinds.as_slice() {
            [] => None,
            [None] => Some("SensitiveData:S3Object/CustomIdentifier"),
            [Some(Category::Credentials)] => Some("SensitiveData:S3Object/Credentials"),
            [Some(Category::FinancialInformation)] => Some("SensitiveData:S3Object/Financial"),
            [Some(Category::PersonalInformation)] => Some("SensitiveData:S3Object/Personal"),
            _ => Some("SensitiveData:S3Object/Multiple"),
        }
    }

    /// `classificationDetails.result` as Macie writes it, listing at most `max_occurrences`
    /// occurrences per detection (15 in a finding, 1,000 in a discovery result).
    pub fn macie_result(&self, max_occurrences: usize) -> Value {
        let mut additional = false;
        let mut occurrences = |list: &[Occurrence], count: u64| {
            additional |= count > max_occurrences as u64;
            occurrences_json(&list[..list.len().min(max_occurrences)])
        };
        let mut categories: Vec<(Category, Vec<Value>, u64)> = Vec::new();
        let mut custom = Vec::new();
        let mut custom_total = 0;
        for detection in &self.detections {
            match &detection.identifier {
                Identifier::Managed(m) => {
                    let entry = json!({"type": m.id, "count": detection.count, "occurrences": occurrences(&detection.occurrences, detection.count)});
                    match categories.iter_mut().find(|(c, _, _)| *c == m.category) {
                        Some((_, list, total)) => {
                            list.push(entry);
                            *total += detection.count;
                        }
                        None => categories.push((m.category, vec![entry], detection.count)),
                    }
                }
                Identifier::Custom { arn, name, .. } => {
                    custom_total += detection.count;
                    custom.push(json!({"arn": arn, "name": name, "count": detection.count, "occurrences": occurrences(&detection.occurrences, detection.count)}));
                }
            }
        }
        categories.sort_by_key(|(c, _, _)| *c);
        let sensitive: Vec<Value> = categories
            .into_iter()
            .map(|(category, detections, total)| json!({"category": category.as_str(), "detections": detections, "totalCount": total}))
            .collect();
        json!({
            "status": {"code": self.status.as_str(), "reason": self.reason},
            "mimeType": self.mime_type,
            "sizeClassified": self.size_classified,
            "additionalOccurrences": additional,
            "sensitiveData": sensitive,
            "customDataIdentifiers": {"detections": custom, "totalCount": custom_total},
        })
    }
}

/// Macie's `occurrences` object: line ranges for text, cells for CSV, records for JSON.
fn occurrences_json(list: &[Occurrence]) -> Value {
    let mut lines = Vec::new();
    let mut cells = Vec::new();
    let mut records = Vec::new();
    for occurrence in list {
        match occurrence {
            Occurrence::Line { line, column } => {
                lines.push(json!({"start": line, "end": line, "startColumn": column}));
            }
            Occurrence::Cell {
                row,
                column,
                column_name,
            } => cells.push(json!({"row": row, "column": column, "columnName": column_name, "cellReference": cell_reference(*row, *column)})),
            Occurrence::Record {
                record_index,
                json_path,
            } => records.push(json!({"recordIndex": record_index, "jsonPath": json_path})),
        }
    }
    let mut out = serde_json::Map::new();
    for (name, list) in [
        ("lineRanges", lines),
        ("cells", cells),
        ("records", records),
    ] {
        if !list.is_empty() {
            out.insert(name.into(), Value::Array(list));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identifier::managed;

    fn detection(id: &str, count: u64) -> Detection {
        let m = managed(id).unwrap();
        Detection {
            identifier: Identifier::Managed(m),
            count,
            occurrences: (1..=count.min(20))
                .map(|line| Occurrence::Line { line, column: 1 })
                .collect(),
            severity: Severity::managed(m.category, count),
        }
    }

    fn report(detections: Vec<Detection>) -> ObjectReport {
        ObjectReport {
            status: Status::Complete,
            reason: None,
            detail: None,
            mime_type: "text/plain",
            size_classified: 10,
            detections,
        }
    }

    #[test]
    fn severity_follows_the_policy_and_the_finding_takes_the_highest() {
        assert_eq!(
            Severity::managed(Category::PersonalInformation, 1),
            Severity::Low
        );
        assert_eq!(
            Severity::managed(Category::PersonalInformation, 2),
            Severity::Medium
        );
        assert_eq!(
            Severity::managed(Category::PersonalInformation, 100),
            Severity::High
        );
        assert_eq!(
            Severity::managed(Category::FinancialInformation, 99),
            Severity::Medium
        );
        assert_eq!(Severity::managed(Category::Credentials, 1), Severity::High);
        let r = report(vec![
            detection("USA_SOCIAL_SECURITY_NUMBER", 1),
            detection("PKCS", 1),
        ]);
        assert_eq!(r.severity(), Some(Severity::High));
        assert_eq!(r.finding_type(), Some("SensitiveData:S3Object/Multiple"));
        let r = report(vec![
            detection("CREDIT_CARD_NUMBER", 3),
            detection("BANK_ACCOUNT_NUMBER", 1),
        ]);
        assert_eq!(r.finding_type(), Some("SensitiveData:S3Object/Financial"));
        assert!(report(vec![]).finding_type().is_none());
    }

    #[test]
    fn the_macie_result_groups_by_category_and_caps_occurrences() {
        let r = report(vec![
            detection("CREDIT_CARD_NUMBER", 20),
            detection("CREDIT_CARD_EXPIRATION", 2),
            detection("USA_SOCIAL_SECURITY_NUMBER", 1),
        ]);
        let result = r.macie_result(15);
        assert_eq!(result["status"]["code"], "COMPLETE");
        assert_eq!(result["additionalOccurrences"], true);
        let financial = &result["sensitiveData"][0];
        assert_eq!(financial["category"], "FINANCIAL_INFORMATION");
        assert_eq!(financial["totalCount"], 22);
        assert_eq!(
            financial["detections"][0]["occurrences"]["lineRanges"]
                .as_array()
                .unwrap()
                .len(),
            15
        );
        assert_eq!(
            result["sensitiveData"][1]["category"],
            "PERSONAL_INFORMATION"
        );
        assert_eq!(r.macie_result(1000)["additionalOccurrences"], false);
    }
}
