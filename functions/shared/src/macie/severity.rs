//! Finding severity, ordered so that "the highest" and "at least" are plain comparisons.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Macie's finding severity (`severity.description`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "Low",
            Self::Medium => "Medium",
            Self::High => "High",
        }
    }

    /// Reads a finding's severity. A missing or unknown value counts as High: an object is never
    /// released because its severity could not be read.
    pub fn of_finding(description: Option<&str>, score: Option<i64>) -> Self {
        description
            .and_then(|text| text.parse().ok())
            .or(match score {
                Some(1) => Some(Self::Low),
                Some(2) => Some(Self::Medium),
                _ => None,
            })
            .unwrap_or(Self::High)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "low" => Ok(Self::Low),
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            _ => Err(format!("expected Low, Medium or High, got {text:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_low_to_high() {
        assert!(Severity::Low < Severity::Medium && Severity::Medium < Severity::High);
        assert_eq!("MEDIUM".parse::<Severity>(), Ok(Severity::Medium));
        assert!("critical".parse::<Severity>().is_err());
    }

    #[test]
    fn an_unreadable_severity_counts_as_high() {
        assert_eq!(Severity::of_finding(None, None), Severity::High);
        assert_eq!(
            Severity::of_finding(Some("Severe"), Some(7)),
            Severity::High
        );
        assert_eq!(Severity::of_finding(None, Some(1)), Severity::Low);
        assert_eq!(
            Severity::of_finding(Some("Medium"), Some(3)),
            Severity::Medium
        );
    }
}
