//! Custom data identifiers (specs/macie2.md §9.2) and allow lists (§9.3).

use regex::Regex;
use serde::Deserialize;

use crate::keywords::Keywords;
use crate::report::Severity;

/// Why a custom identifier or allow list was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DefinitionError {
    #[error("custom data identifier {name:?}: {reason}")]
    Identifier { name: String, reason: String },
    #[error("allow list: {0}")]
    AllowList(String),
}

/// A custom data identifier as `CreateCustomDataIdentifier` describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomDefinition {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub arn: Option<String>,
    pub name: String,
    pub regex: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub ignore_words: Vec<String>,
    #[serde(default)]
    pub maximum_match_distance: Option<u32>,
    #[serde(default)]
    pub severity_levels: Vec<SeverityLevel>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SeverityLevel {
    pub occurrences_threshold: u64,
    pub severity: Severity,
}

/// A validated, compiled custom data identifier.
#[derive(Debug, Clone)]
pub struct CustomIdentifier {
    pub id: String,
    pub arn: String,
    pub name: String,
    regex: Regex,
    keywords: Keywords,
    ignore_words: Vec<String>,
    maximum_match_distance: usize,
    /// Ascending thresholds.
    severity_levels: Vec<SeverityLevel>,
}

/// Constructs Macie does not support in a custom identifier's regex (PCRE subset): lookaround
/// and backreferences. Rust's `regex` has neither, but a pattern using them must be refused
/// with Macie's reason, not with a parser error about an unknown group.
fn unsupported_construct(regex: &str) -> Option<&'static str> {
    if ["(?=", "(?!", "(?<=", "(?<!"]
        .iter()
        .any(|l| regex.contains(l))
    {
        return Some("lookahead and lookbehind are not supported");
    }
    let bytes = regex.as_bytes();
    let backreference = bytes.windows(2).enumerate().any(|(i, w)| {
        w[0] == b'\\' && w[1].is_ascii_digit() && w[1] != b'0' && (i == 0 || bytes[i - 1] != b'\\')
    });
    backreference.then_some("backreferences are not supported")
}

impl CustomIdentifier {
    /// Checks the definition against Macie's limits and compiles it.
    pub fn new(definition: CustomDefinition) -> Result<Self, DefinitionError> {
        let name = definition.name.clone();
        let refuse = |reason: String| DefinitionError::Identifier {
            name: name.clone(),
            reason,
        };
        if definition.name.is_empty() || definition.name.len() > 128 {
            return Err(refuse("the name must be 1 to 128 characters".into()));
        }
        if definition.regex.is_empty() || definition.regex.len() > 512 {
            return Err(refuse("the regex must be 1 to 512 characters".into()));
        }
        if let Some(reason) = unsupported_construct(&definition.regex) {
            return Err(refuse(reason.into()));
        }
        if definition.keywords.len() > 50
            || definition
                .keywords
                .iter()
                .any(|k| !(3..=90).contains(&k.chars().count()))
        {
            return Err(refuse(
                "at most 50 keywords, each 3 to 90 characters".into(),
            ));
        }
        if definition.ignore_words.len() > 10
            || definition
                .ignore_words
                .iter()
                .any(|w| !(4..=90).contains(&w.chars().count()))
        {
            return Err(refuse(
                "at most 10 ignore words, each 4 to 90 characters".into(),
            ));
        }
        let distance = definition.maximum_match_distance.unwrap_or(50);
        if !(1..=300).contains(&distance) {
            return Err(refuse("maximumMatchDistance must be 1 to 300".into()));
        }
        let levels = &definition.severity_levels;
        if levels.len() > 3
            || levels.windows(2).any(|w| {
                w[0].occurrences_threshold >= w[1].occurrences_threshold
                    || w[0].severity >= w[1].severity
            })
        {
            return Err(refuse(
                "severityLevels: at most 3, thresholds and severities ascending LOW -> MEDIUM -> HIGH".into(),
            ));
        }
        let regex = Regex::new(&definition.regex)
            .map_err(|e| refuse(format!("the regex does not compile: {e}")))?;
        let id = definition.id.unwrap_or_else(|| definition.name.clone());
        let arn = definition
            .arn
            .unwrap_or_else(|| format!("local:custom-data-identifier/{id}"));
        Ok(Self {
            id,
            arn,
            name: definition.name,
            regex,
            keywords: Keywords::new(&definition.keywords),
            ignore_words: definition.ignore_words,
            maximum_match_distance: distance as usize,
            severity_levels: definition.severity_levels,
        })
    }

    /// The severity for `count` occurrences, or none below the lowest threshold (no finding).
    pub fn severity(&self, count: u64) -> Option<Severity> {
        if self.severity_levels.is_empty() {
            return (count >= 1).then_some(Severity::Medium);
        }
        self.severity_levels
            .iter()
            .filter(|l| count >= l.occurrences_threshold)
            .map(|l| l.severity)
            .max()
    }

    /// Matches in `text` as byte spans.
    pub(crate) fn find_iter<'t>(
        &'t self,
        text: &'t str,
    ) -> impl Iterator<Item = (usize, usize)> + 't {
        self.regex.find_iter(text).map(|m| (m.start(), m.end()))
    }

    /// Whether the match `cell[start..end]` counts: no ignore word in it, and, when keywords are
    /// set, a complete keyword before it that ends at most `maximumMatchDistance` characters
    /// before the match's end, or a keyword in the column name or JSON path.
    pub(crate) fn accepts(&self, cell: &str, start: usize, end: usize, context: &str) -> bool {
        let matched = &cell[start..end];
        if self
            .ignore_words
            .iter()
            .any(|w| matched.contains(w.as_str()))
        {
            return false;
        }
        if self.keywords.is_empty() || self.keywords.found_in(context) {
            return true;
        }
        let reach = self.maximum_match_distance + self.keywords.longest();
        let from = cell.floor_char_boundary(end.saturating_sub(reach));
        let before = &cell[from..start];
        self.keywords.spans(before).any(|(_, keyword_end)| {
            cell[from + keyword_end..end].chars().count() <= self.maximum_match_distance
        })
    }
}

/// Allow lists: text that is never a finding. `words` are literal phrases (one per line of an
/// `s3WordsList`), compared with the whole matched text ignoring case; `regexes` must match the
/// whole matched text, as Macie ignores only text that completely matches a list's pattern.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    words: std::collections::HashSet<String>,
    regexes: Vec<Regex>,
}

impl AllowList {
    /// Adds the phrases of a words list (one per line; blank lines ignored).
    pub fn add_words(&mut self, list: &str) {
        self.words.extend(
            list.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_lowercase),
        );
    }

    /// Adds an allow-list regex (same dialect rules as custom identifiers, at most 512 chars).
    pub fn add_regex(&mut self, regex: &str) -> Result<(), DefinitionError> {
        if regex.is_empty() || regex.len() > 512 {
            return Err(DefinitionError::AllowList(
                "the regex must be 1 to 512 characters".into(),
            ));
        }
        if let Some(reason) = unsupported_construct(regex) {
            return Err(DefinitionError::AllowList(reason.into()));
        }
        let compiled = Regex::new(&format!("^(?:{regex})$")).map_err(|e| {
            DefinitionError::AllowList(format!("the regex {regex:?} does not compile: {e}"))
        })?;
        self.regexes.push(compiled);
        Ok(())
    }

    pub fn allows(&self, matched: &str) -> bool {
        (!self.words.is_empty() && self.words.contains(&matched.trim().to_lowercase()))
            || self.regexes.iter().any(|r| r.is_match(matched))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part_number(keywords: &[&str], ignore: &[&str], distance: u32) -> CustomIdentifier {
        CustomIdentifier::new(CustomDefinition {
            id: None,
            arn: None,
            name: "part".into(),
            regex: r"P-[A-Z]{2}[0-9]{4}".into(),
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
            ignore_words: ignore.iter().map(|k| k.to_string()).collect(),
            maximum_match_distance: Some(distance),
            severity_levels: vec![],
            description: None,
        })
        .unwrap()
    }

    fn accepted(identifier: &CustomIdentifier, text: &str, context: &str) -> Vec<String> {
        identifier
            .find_iter(text)
            .filter(|&(s, e)| identifier.accepts(text, s, e, context))
            .map(|(s, e)| text[s..e].to_owned())
            .collect()
    }

    #[test]
    fn keywords_must_precede_within_the_distance_of_the_match_end() {
        let id = part_number(&["part"], &[], 12);
        // "part " + 8-char match: 9 characters from keyword end to match end.
        assert_eq!(accepted(&id, "part P-AB1234", ""), ["P-AB1234"]);
        assert!(accepted(&id, "part      P-AB1234", "").is_empty());
        // A keyword after the match does not count.
        assert!(accepted(&id, "P-AB1234 part", "").is_empty());
        // A keyword in the column name does.
        assert_eq!(accepted(&id, "P-AB1234", "part no"), ["P-AB1234"]);
        // Keywords are whole words, any case.
        assert_eq!(accepted(&id, "PART: P-AB1234", ""), ["P-AB1234"]);
        assert!(accepted(&id, "counterpart P-AB1234", "").is_empty());
    }

    #[test]
    fn ignore_words_are_case_sensitive_substrings() {
        let id = part_number(&[], &["XX00"], 50);
        assert_eq!(accepted(&id, "P-XX0012 P-xx0012 P-AB1234", "").len(), 1);
    }

    #[test]
    fn severity_levels_choose_the_highest_reached_and_none_below_the_lowest() {
        let mut definition = CustomDefinition {
            id: None,
            arn: None,
            name: "x".into(),
            regex: "x".into(),
            keywords: vec![],
            ignore_words: vec![],
            maximum_match_distance: None,
            severity_levels: vec![
                SeverityLevel {
                    occurrences_threshold: 2,
                    severity: Severity::Low,
                },
                SeverityLevel {
                    occurrences_threshold: 5,
                    severity: Severity::High,
                },
            ],
            description: None,
        };
        let id = CustomIdentifier::new(definition.clone()).unwrap();
        assert_eq!(id.severity(1), None);
        assert_eq!(id.severity(4), Some(Severity::Low));
        assert_eq!(id.severity(5), Some(Severity::High));
        definition.severity_levels.clear();
        assert_eq!(
            CustomIdentifier::new(definition).unwrap().severity(1),
            Some(Severity::Medium)
        );
    }

    #[test]
    fn definitions_macie_refuses_are_refused_with_a_reason() {
        let refused = |regex: &str| {
            let mut d: CustomDefinition =
                serde_json::from_value(serde_json::json!({"name": "n", "regex": regex})).unwrap();
            d.maximum_match_distance = Some(50);
            CustomIdentifier::new(d).unwrap_err().to_string()
        };
        assert!(refused("(?=a)b").contains("lookahead"));
        assert!(refused(r"(a)\1").contains("backreferences"));
        assert!(refused("[unclosed").contains("does not compile"));
        assert!(
            serde_json::from_value::<CustomDefinition>(
                serde_json::json!({"name": "n", "regex": "x", "bogus": 1})
            )
            .is_err()
        );
    }

    #[test]
    fn allow_lists_match_words_and_regexes() {
        let mut allow = AllowList::default();
        allow.add_words("4111 1111 1111 1111\n\n  Jane Doe \n");
        allow.add_regex("^555-01[0-9]{2}$").unwrap();
        assert!(allow.allows("4111 1111 1111 1111"));
        assert!(allow.allows("JANE DOE"));
        assert!(allow.allows("555-0123"));
        assert!(!allow.allows("4111111111111111"));
        assert!(allow.add_regex("(?!x)").is_err());
        // Macie ignores only text the pattern matches completely.
        let mut unanchored = AllowList::default();
        unanchored.add_regex("555-01[0-9]{2}").unwrap();
        assert!(unanchored.allows("555-0123"));
        assert!(!unanchored.allows("1-555-0123"));
    }
}
