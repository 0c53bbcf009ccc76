//! The false-positive rules reviewers add, and their records. A rule is one of three things a
//! reviewer types: a phrase Macie must ignore, a regular expression Macie must ignore, or a
//! finding type that does not count under a key prefix. The value typed is the only value stored;
//! nothing Macie detected is ever written here.
//!
//! Each rule lives in a record of its own, `false-positives/rules/<id>.json`, whose id is the
//! SHA-256 of the rule itself: adding a rule twice finds the first record (`If-None-Match: *`),
//! and two reviewers adding the same rule at once get one record. Removing a rule writes who
//! removed it and when (`false-positives/removed/<id>/<time>.json`) before the rule's record is
//! deleted, so the list's history survives the list. Nothing under `false-positives/` expires.

use aws_sdk_s3::Client;
use serde::{Deserialize, Serialize};

use crate::approval::decisions::Reviewer;
use crate::error::PipelineError;
use crate::s3::documents::{self, Created};
use crate::workflow::WorkflowId;

/// Where the rules and everything derived from them live in the manifest bucket.
pub const PREFIX: &str = "false-positives/";
const RULES: &str = "false-positives/rules/";
const REMOVED: &str = "false-positives/removed/";

/// Macie's limit for one phrase of an S3 words list.
pub const MAX_PHRASE_CHARS: usize = 90;
/// Macie's limit for an allow list's regex; the gate's patterns share one list.
pub const MAX_PATTERN_CHARS: usize = 512;
/// S3's limit for a key, and so for a prefix.
pub const MAX_PREFIX_CHARS: usize = 1024;

/// The finding types of Macie's sensitive data findings.
pub const FINDING_TYPES: &[&str] = &[
    "SensitiveData:S3Object/Credentials",
    "SensitiveData:S3Object/CustomIdentifier",
    "SensitiveData:S3Object/Financial",
    "SensitiveData:S3Object/Multiple",
    "SensitiveData:S3Object/Personal",
];

/// What a reviewer judged a false positive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Rule {
    /// Text Macie ignores wherever it is detected exactly (ignoring case): the gate's words list.
    Phrase { text: String },
    /// Text Macie ignores wherever a detection matches it completely: the gate's regex list.
    Pattern { regex: String },
    /// Findings of this type on objects under this prefix do not hold the object.
    Suppression {
        finding_type: String,
        key_prefix: String,
    },
}

impl Rule {
    /// A phrase as typed: surrounding spaces are not part of it.
    pub fn phrase(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let chars = text.chars().count();
        if chars == 0 || chars > MAX_PHRASE_CHARS {
            return Err(format!(
                "A phrase must be 1 to {MAX_PHRASE_CHARS} characters (Macie's limit for one entry of a words list)."
            ));
        }
        if text.chars().any(char::is_control) {
            return Err("A phrase must be one line of text.".into());
        }
        Ok(Self::Phrase {
            text: text.to_owned(),
        })
    }

    /// A regular expression in the dialect Macie and the local stack both accept.
    pub fn pattern(regex: &str) -> Result<Self, String> {
        if regex.is_empty() || regex.chars().count() > MAX_PATTERN_CHARS {
            return Err(format!(
                "A pattern must be 1 to {MAX_PATTERN_CHARS} characters."
            ));
        }
        if regex.chars().any(char::is_control) {
            return Err("A pattern must be one line.".into());
        }
        for construct in ["(?=", "(?!", "(?<=", "(?<!"] {
            if regex.contains(construct) {
                return Err(format!(
                    "A pattern cannot use lookaround ({construct}): Macie's regular expressions do not support it."
                ));
            }
        }
        if regex
            .as_bytes()
            .windows(2)
            .any(|pair| pair[0] == b'\\' && pair[1].is_ascii_digit() && pair[1] != b'0')
        {
            return Err("A pattern cannot use backreferences such as \\1.".into());
        }
        regex::Regex::new(regex).map_err(|err| format!("The pattern does not compile: {err}"))?;
        Ok(Self::Pattern {
            regex: regex.to_owned(),
        })
    }

    /// A finding type that does not count under `key_prefix`.
    pub fn suppression(finding_type: &str, key_prefix: &str) -> Result<Self, String> {
        if !FINDING_TYPES.contains(&finding_type) {
            return Err(format!(
                "{finding_type:?} is not a Macie sensitive data finding type."
            ));
        }
        let chars = key_prefix.chars().count();
        if chars == 0 || chars > MAX_PREFIX_CHARS {
            return Err(format!(
                "A key prefix must be 1 to {MAX_PREFIX_CHARS} characters: suppressing a finding type in the whole bucket is not offered."
            ));
        }
        if key_prefix.chars().any(char::is_control) {
            return Err("A key prefix must be one line.".into());
        }
        Ok(Self::Suppression {
            finding_type: finding_type.to_owned(),
            key_prefix: key_prefix.to_owned(),
        })
    }

    /// The rule's id: the SHA-256 of the rule, so the same rule always has the same record.
    pub fn id(&self) -> String {
        documents::hashed_name(&serde_json::to_string(self).expect("rules serialize"))
    }

    /// The rule as the page and the report say it.
    pub fn describe(&self) -> String {
        match self {
            Self::Phrase { text } => format!("Ignore the phrase {text:?}"),
            Self::Pattern { regex } => format!("Ignore text matching /{regex}/"),
            Self::Suppression {
                finding_type,
                key_prefix,
            } => format!("Do not hold for {finding_type} under {key_prefix:?}"),
        }
    }
}

/// A rule on the list, with who added it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListedRule {
    pub id: String,
    pub rule: Rule,
    pub added_by: Reviewer,
    /// RFC 3339.
    pub added_at: String,
    /// The run whose review it was added from.
    pub added_in: WorkflowId,
    /// The held object the reviewer judged, when the rule was added from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judged_object: Option<String>,
}

impl ListedRule {
    /// `rule` as `added_by` puts it on the list, its id derived from it.
    pub fn new(
        rule: Rule,
        added_by: Reviewer,
        added_at: &str,
        added_in: WorkflowId,
        judged_object: Option<String>,
    ) -> Self {
        Self {
            id: rule.id(),
            rule,
            added_by,
            added_at: added_at.to_owned(),
            added_in,
            judged_object,
        }
    }
}

/// A rule taken off the list, and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemovedRule {
    pub rule: ListedRule,
    pub removed_by: Reviewer,
    /// RFC 3339.
    pub removed_at: String,
}

/// What adding a rule did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    Added,
    /// The same rule was on the list already; that record stands.
    AlreadyListed,
}

fn rule_key(id: &str) -> String {
    format!("{RULES}{id}.json")
}

fn invalid(bucket: &str, key: &str, reason: String) -> PipelineError {
    PipelineError::InvalidManifest {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        reason,
    }
}

/// Puts `listed` on the list unless the same rule is there.
pub async fn add(s3: &Client, bucket: &str, listed: &ListedRule) -> Result<Added, PipelineError> {
    debug_assert_eq!(listed.id, listed.rule.id());
    match documents::create_json(s3, bucket, &rule_key(&listed.id), listed).await? {
        Created::Created => Ok(Added::Added),
        Created::Exists => Ok(Added::AlreadyListed),
    }
}

/// Takes rule `id` off the list, recording who did; `None` if it is not on the list.
pub async fn remove(
    s3: &Client,
    bucket: &str,
    id: &str,
    removed_by: &Reviewer,
    removed_at: &str,
) -> Result<Option<RemovedRule>, PipelineError> {
    let key = rule_key(id);
    let Some(rule) = read_one(s3, bucket, &key).await? else {
        return Ok(None);
    };
    let removed = RemovedRule {
        rule,
        removed_by: removed_by.clone(),
        removed_at: removed_at.to_owned(),
    };
    let stamp: String = removed_at.chars().filter(char::is_ascii_digit).collect();
    documents::put_json(s3, bucket, &format!("{REMOVED}{id}/{stamp}.json"), &removed).await?;
    s3.delete_object()
        .bucket(bucket)
        .key(&key)
        .send()
        .await
        .map_err(|err| PipelineError::from_sdk("DeleteObject", err))?;
    Ok(Some(removed))
}

async fn read_one(
    s3: &Client,
    bucket: &str,
    key: &str,
) -> Result<Option<ListedRule>, PipelineError> {
    let Some(bytes) = documents::read(s3, bucket, key).await? else {
        return Ok(None);
    };
    let listed: ListedRule = serde_json::from_slice(&bytes)
        .map_err(|err| invalid(bucket, key, format!("not a false-positive rule: {err}")))?;
    // A record must be the rule its key names: one copied elsewhere would change another rule.
    if key != rule_key(&listed.rule.id()) || listed.id != listed.rule.id() {
        return Err(invalid(
            bucket,
            key,
            "the rule does not belong at this key".into(),
        ));
    }
    Ok(Some(listed))
}

/// Every rule on the list, oldest first.
pub async fn read_all(s3: &Client, bucket: &str) -> Result<Vec<ListedRule>, PipelineError> {
    let mut rules = documents::read_each(s3, bucket, RULES, ".json", |key| async move {
        read_one(s3, bucket, &key).await
    })
    .await?;
    rules.sort_by(|a, b| a.added_at.cmp(&b.added_at).then(a.id.cmp(&b.id)));
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_are_one_trimmed_line_within_macies_limit() {
        assert_eq!(
            Rule::phrase("  ACME Test Card  ").unwrap(),
            Rule::Phrase {
                text: "ACME Test Card".into()
            }
        );
        assert!(Rule::phrase("   ").is_err());
        assert!(Rule::phrase("two\nlines").is_err());
        assert!(Rule::phrase(&"x".repeat(90)).is_ok());
        assert!(Rule::phrase(&"x".repeat(91)).is_err());
    }

    #[test]
    fn patterns_compile_in_macies_dialect() {
        assert!(Rule::pattern(r"4111[ -]?1111[ -]?1111[ -]?1111").is_ok());
        for (bad, why) in [
            ("(?=a)b", "lookaround"),
            (r"(a)\1", "backreferences"),
            ("(unclosed", "does not compile"),
            ("", "1 to 512"),
        ] {
            let err = Rule::pattern(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(Rule::pattern(&"a".repeat(513)).is_err());
    }

    #[test]
    fn suppressions_name_a_finding_type_and_a_prefix() {
        assert!(Rule::suppression("SensitiveData:S3Object/Personal", "fixtures/").is_ok());
        assert!(Rule::suppression("SensitiveData:S3Object/Personal", "").is_err());
        assert!(Rule::suppression("Policy:IAMUser/S3BucketPublic", "a/").is_err());
    }

    #[test]
    fn the_same_rule_has_the_same_id_and_different_rules_differ() {
        let a = Rule::phrase("ACME").unwrap();
        assert_eq!(a.id(), Rule::phrase(" ACME ").unwrap().id());
        assert_ne!(a.id(), Rule::pattern("ACME").unwrap().id());
        assert_eq!(a.id().len(), 64);
        let json = serde_json::to_value(
            Rule::suppression("SensitiveData:S3Object/Personal", "a/").unwrap(),
        )
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "suppression", "findingType": "SensitiveData:S3Object/Personal", "keyPrefix": "a/"})
        );
    }
}
