//! The gate's two Macie allow lists, kept in step with the rules. Macie reads an allow list when a
//! job starts, so a rule added now applies from the next run. The template creates both lists:
//!
//! * phrases: an S3 words list, [`WORDS_KEY`] in the manifest bucket, one phrase per line;
//! * patterns: a regex list, whose single regex is every pattern rule joined as alternatives.
//!
//! Both are rewritten from the whole list of rules after every change, never patched, and the
//! words file is written only over the version the rules were read after (`If-Match`), so two
//! reviewers changing the list at once cannot leave the older list in place: the loser reads the
//! rules again. The regex list has no such condition in Macie's API; a writer whose words file
//! was replaced while it updated the regex goes round again, so the last writer's regex is made
//! from a list read after every earlier write.

use aws_sdk_macie2::types::AllowListCriteria;
use aws_sdk_s3::primitives::ByteStream;
use tracing::info;

use crate::error::PipelineError;
use crate::false_positives::rules::{self, ListedRule, MAX_PATTERN_CHARS, Rule};
use crate::s3::objects;

/// The words list Macie reads, in the manifest bucket.
pub const WORDS_KEY: &str = "false-positives/allow-list-phrases.txt";

/// The first line of the words file. Macie marks an empty words list `S3_OBJECT_EMPTY` and does
/// not use it; a line no identifier detects keeps the list valid while it holds no phrase.
pub const WORDS_HEADER: &str = "macie-pipeline false-positive phrases";

/// The regex of the pattern list while it holds no pattern: a word boundary that is not one,
/// which matches nothing.
pub const NO_PATTERN: &str = r"\b\B";

/// Rewrites go round at most this often before the change is reported as contended.
const SYNC_ATTEMPTS: u32 = 8;

/// The gate's allow lists, as the template names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateAllowLists {
    pub patterns_id: String,
    /// Macie's UpdateAllowList needs the list's name.
    pub patterns_name: String,
}

/// The words file for `rules`: the header, then each phrase once, sorted.
pub fn words_file(rules: &[ListedRule]) -> String {
    let mut phrases: Vec<&str> = rules
        .iter()
        .filter_map(|listed| match &listed.rule {
            Rule::Phrase { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    phrases.sort_unstable();
    phrases.dedup();
    let mut file = String::from(WORDS_HEADER);
    file.push('\n');
    for phrase in phrases {
        file.push_str(phrase);
        file.push('\n');
    }
    file
}

/// The one regex of the pattern list: each pattern as a group of its own, so that an
/// alternative in one cannot take over another; [`NO_PATTERN`] when there are none.
pub fn combined_pattern(rules: &[ListedRule]) -> String {
    let patterns: Vec<String> = rules
        .iter()
        .filter_map(|listed| match &listed.rule {
            Rule::Pattern { regex } => Some(format!("(?:{regex})")),
            _ => None,
        })
        .collect();
    if patterns.is_empty() {
        NO_PATTERN.to_owned()
    } else {
        patterns.join("|")
    }
}

/// Whether `rules` fit Macie's limit for the one regex of the pattern list.
pub fn check_patterns_fit(rules: &[ListedRule]) -> Result<(), String> {
    let combined = combined_pattern(rules);
    let chars = combined.chars().count();
    if chars > MAX_PATTERN_CHARS {
        return Err(format!(
            "The gate's patterns would take {chars} characters together, and Macie allows {MAX_PATTERN_CHARS} in one allow list. Remove a pattern first, or add the text as a phrase."
        ));
    }
    Ok(())
}

/// Rewrites both allow lists from the rules as they are now, and returns those rules.
pub async fn sync(
    s3: &aws_sdk_s3::Client,
    macie: &aws_sdk_macie2::Client,
    bucket: &str,
    lists: &GateAllowLists,
) -> Result<Vec<ListedRule>, PipelineError> {
    for _ in 0..SYNC_ATTEMPTS {
        // The version first, then the rules: a write over this version is a write of rules read
        // after it.
        let before = words_etag(s3, bucket).await?;
        let rules = rules::read_all(s3, bucket).await?;
        let request = s3
            .put_object()
            .bucket(bucket)
            .key(WORDS_KEY)
            .content_type("text/plain; charset=utf-8")
            .body(ByteStream::from(words_file(&rules).into_bytes()));
        let request = match &before {
            Some(etag) => request.if_match(etag),
            None => request.if_none_match("*"),
        };
        let written = match request.send().await {
            Ok(output) => output.e_tag().map(str::to_owned),
            Err(err) if objects::is_precondition_failed(&err) || objects::is_conflict(&err) => {
                continue;
            }
            Err(err) => return Err(PipelineError::from_sdk("PutObject", err)),
        };
        macie
            .update_allow_list()
            .id(&lists.patterns_id)
            .name(&lists.patterns_name)
            .criteria(
                AllowListCriteria::builder()
                    .regex(combined_pattern(&rules))
                    .build(),
            )
            .send()
            .await
            .map_err(|err| PipelineError::from_sdk("UpdateAllowList", err))?;
        if written.is_some() && words_etag(s3, bucket).await? == written {
            info!(rules = rules.len(), "allow lists rewritten");
            return Ok(rules);
        }
    }
    Err(PipelineError::Transient {
        operation: "PutObject",
        message: format!(
            "the allow lists changed {SYNC_ATTEMPTS} times while they were rewritten; try again"
        ),
        source: "contended allow list".into(),
    })
}

async fn words_etag(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<Option<String>, PipelineError> {
    match s3.head_object().bucket(bucket).key(WORDS_KEY).send().await {
        Ok(head) => Ok(head.e_tag().map(str::to_owned)),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(aws_sdk_s3::operation::head_object::HeadObjectError::is_not_found) =>
        {
            Ok(None)
        }
        Err(err) => Err(PipelineError::from_sdk("HeadObject", err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::decisions::Reviewer;
    use crate::workflow::WorkflowId;

    fn listed(rule: Rule) -> ListedRule {
        let ada = Reviewer {
            name: "ada".into(),
            source_ip: None,
            user_agent: None,
        };
        ListedRule::new(
            rule,
            ada,
            "2026-12-02T10:00:00Z",
            WorkflowId::parse("wf").unwrap(),
            None,
        )
    }

    #[test]
    fn the_words_file_has_its_header_and_each_phrase_once() {
        assert_eq!(words_file(&[]), format!("{WORDS_HEADER}\n"));
        let rules = [
            listed(Rule::phrase("zeta test").unwrap()),
            listed(Rule::pattern("x+").unwrap()),
            listed(Rule::phrase("alpha test").unwrap()),
        ];
        assert_eq!(
            words_file(&rules),
            format!("{WORDS_HEADER}\nalpha test\nzeta test\n")
        );
    }

    #[test]
    fn patterns_join_as_groups_and_none_matches_nothing() {
        let none = regex::Regex::new(&combined_pattern(&[])).unwrap();
        for text in ["", "a", "a b", " "] {
            assert!(!none.is_match(text), "{text:?}");
        }
        let rules = [
            listed(Rule::pattern("a|b").unwrap()),
            listed(Rule::pattern("c").unwrap()),
        ];
        assert_eq!(combined_pattern(&rules), "(?:a|b)|(?:c)");
        assert!(check_patterns_fit(&rules).is_ok());
        let long = [
            listed(Rule::pattern(&"a".repeat(300)).unwrap()),
            listed(Rule::pattern(&"b".repeat(300)).unwrap()),
        ];
        assert!(check_patterns_fit(&long).unwrap_err().contains("512"));
    }
}
