//! Object tags: the run's `WorkflowId` and the `SensitiveDataFound` flag, merged into the tags
//! the upstream pipeline set, never replacing them.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};

/// Tag naming the run that moved an object.
pub const WORKFLOW_ID: &str = "WorkflowId";
/// Tag marking an object in which Macie found sensitive data.
pub const SENSITIVE_DATA_FOUND: &str = "SensitiveDataFound";
/// `SensitiveDataFound` values: Macie found sensitive data; or Macie could not (fully) analyse
/// the object, so nobody knows.
pub const FOUND: &str = "true";
pub const NOT_ANALYSED: &str = "unknown";
/// S3 allows at most ten tags per object.
pub const MAX_TAGS: usize = 10;
/// S3 tag keys are at most 128 characters.
pub const MAX_KEY_CHARS: usize = 128;
/// S3 tag values are at most 256 characters.
pub const MAX_VALUE_CHARS: usize = 256;

/// One object tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

impl Tag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Merging would give an object more tags than S3 allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooManyTags {
    /// Tags the object has.
    pub existing: usize,
    /// Tags it would need, counting the gate's own.
    pub needed: usize,
}

impl fmt::Display for TooManyTags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the object has {} tags and the gate needs room for {} in all ({WORKFLOW_ID} and {SENSITIVE_DATA_FOUND} \
             included) but S3 allows {MAX_TAGS}; remove a tag so the gate can mark the object",
            self.existing, self.needed
        )
    }
}

/// The existing tags with `updates` applied: a key already present gets the new value, a new
/// key is appended, order is kept. `reserve` names keys a later step may add; they must fit too,
/// so that an object accepted now can always be marked later.
pub fn merge(existing: &[Tag], updates: &[Tag], reserve: &[&str]) -> Result<Vec<Tag>, TooManyTags> {
    let mut merged = existing.to_vec();
    for update in updates {
        match merged.iter_mut().find(|tag| tag.key == update.key) {
            Some(tag) => tag.value.clone_from(&update.value),
            None => merged.push(update.clone()),
        }
    }
    let reserved = reserve
        .iter()
        .filter(|key| !merged.iter().any(|tag| tag.key == **key))
        .count();
    let needed = merged.len() + reserved;
    if needed > MAX_TAGS {
        return Err(TooManyTags {
            existing: existing.len(),
            needed,
        });
    }
    Ok(merged)
}

/// The value of the `WorkflowId` tag, if the object has one.
pub fn workflow_of(tags: &[Tag]) -> Option<&str> {
    tags.iter()
        .find(|tag| tag.key == WORKFLOW_ID)
        .map(|tag| tag.value.as_str())
}

/// Characters left as they are in the `x-amz-tagging` header; the rest are percent-encoded.
const TAGGING: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Encodes tags as S3 expects them in `x-amz-tagging` (`Key1=Value1&Key2=Value2`, URL-encoded).
pub fn encode(tags: &[Tag]) -> String {
    tags.iter()
        .map(|tag| {
            format!(
                "{}={}",
                utf8_percent_encode(&tag.key, TAGGING),
                utf8_percent_encode(&tag.value, TAGGING)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes an `x-amz-tagging` value (the inverse of [`encode`]; `+` is a space as in forms).
pub fn decode(encoded: &str) -> Result<Vec<Tag>, String> {
    if encoded.is_empty() {
        return Ok(Vec::new());
    }
    encoded
        .split('&')
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode_part = |part: &str| {
                percent_decode_str(&part.replace('+', " "))
                    .decode_utf8()
                    .map(|text| text.into_owned())
                    .map_err(|err| format!("tag {part:?} is not UTF-8: {err}"))
            };
            Ok(Tag::new(decode_part(key)?, decode_part(value)?))
        })
        .collect()
}

/// Whether `c` may appear in an S3 tag key or value: letters, digits, spaces and `+ - = . _ : / @`.
fn allowed(c: char) -> bool {
    c.is_alphanumeric()
        || (c.is_whitespace() && !c.is_control())
        || matches!(c, '+' | '-' | '=' | '.' | '_' | ':' | '/' | '@')
}

/// Checks a tag value against S3's rules.
pub fn validate_value(value: &str) -> Result<(), String> {
    let chars = value.chars().count();
    if chars > MAX_VALUE_CHARS {
        return Err(format!(
            "it has {chars} characters, S3 allows {MAX_VALUE_CHARS}"
        ));
    }
    match value.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(format!(
            "character {c:?} is not allowed (letters, digits, spaces and + - = . _ : / @ are)"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
        pairs.iter().map(|(k, v)| Tag::new(*k, *v)).collect()
    }

    #[test]
    fn merging_keeps_upstream_tags() {
        // The reference replaced the whole tag set with WorkflowId, losing these.
        let upstream = tags(&[("team", "payments"), ("source", "sftp")]);
        let merged = merge(&upstream, &[Tag::new(WORKFLOW_ID, "wf-1")], &[]).unwrap();
        assert_eq!(
            merged,
            tags(&[
                ("team", "payments"),
                ("source", "sftp"),
                (WORKFLOW_ID, "wf-1")
            ])
        );
    }

    #[test]
    fn merging_overwrites_our_own_keys_in_place() {
        let existing = tags(&[(WORKFLOW_ID, "old"), ("team", "x")]);
        let merged = merge(
            &existing,
            &[
                Tag::new(WORKFLOW_ID, "new"),
                Tag::new(SENSITIVE_DATA_FOUND, "true"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            merged,
            tags(&[
                (WORKFLOW_ID, "new"),
                ("team", "x"),
                (SENSITIVE_DATA_FOUND, "true")
            ])
        );
    }

    #[test]
    fn merging_past_ten_tags_is_refused() {
        let ten: Vec<Tag> = (0..10).map(|i| Tag::new(format!("k{i}"), "v")).collect();
        let err = merge(&ten, &[Tag::new(WORKFLOW_ID, "wf")], &[]).unwrap_err();
        assert_eq!(
            err,
            TooManyTags {
                existing: 10,
                needed: 11
            }
        );
        assert!(err.to_string().contains("S3 allows 10"));
        // Ten tags that already include ours still fit.
        let mut with_ours = ten[..9].to_vec();
        with_ours.push(Tag::new(WORKFLOW_ID, "old"));
        assert_eq!(
            merge(&with_ours, &[Tag::new(WORKFLOW_ID, "wf")], &[])
                .unwrap()
                .len(),
            10
        );
    }

    #[test]
    fn reserved_keys_must_fit_too() {
        let eight: Vec<Tag> = (0..8).map(|i| Tag::new(format!("k{i}"), "v")).collect();
        let update = [Tag::new(WORKFLOW_ID, "wf")];
        assert_eq!(
            merge(&eight, &update, &[SENSITIVE_DATA_FOUND])
                .unwrap()
                .len(),
            9
        );
        let nine: Vec<Tag> = (0..9).map(|i| Tag::new(format!("k{i}"), "v")).collect();
        assert_eq!(
            merge(&nine, &update, &[SENSITIVE_DATA_FOUND]).unwrap_err(),
            TooManyTags {
                existing: 9,
                needed: 11
            }
        );
        // A reserved key already present takes no extra room.
        let mut flagged = nine[..8].to_vec();
        flagged.push(Tag::new(SENSITIVE_DATA_FOUND, "true"));
        assert!(merge(&flagged, &update, &[SENSITIVE_DATA_FOUND]).is_ok());
    }

    #[test]
    fn encoding_escapes_separators_and_spaces() {
        let encoded = encode(&tags(&[("a b", "x&y=z"), ("k+", "ü/@")]));
        assert_eq!(encoded, "a%20b=x%26y%3Dz&k%2B=%C3%BC%2F%40");
    }

    #[test]
    fn workflow_tag_is_found() {
        assert_eq!(
            workflow_of(&tags(&[("a", "b"), (WORKFLOW_ID, "w")])),
            Some("w")
        );
        assert_eq!(workflow_of(&tags(&[("a", "b")])), None);
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(pairs in proptest::collection::vec(("\\PC{1,20}", "\\PC{0,40}"), 0..10)) {
            let original: Vec<Tag> = pairs.into_iter().map(|(k, v)| Tag::new(k, v)).collect();
            prop_assert_eq!(decode(&encode(&original)).unwrap(), original);
        }

        #[test]
        fn merge_never_drops_an_upstream_key(
            keys in proptest::collection::btree_set("[a-z]{1,8}", 0..9),
            workflow in "[a-z0-9-]{1,20}",
        ) {
            let upstream: Vec<Tag> = keys.iter().map(|k| Tag::new(k.clone(), "v")).collect();
            let merged = merge(&upstream, &[Tag::new(WORKFLOW_ID, workflow.clone())], &[SENSITIVE_DATA_FOUND]).unwrap();
            for tag in &upstream {
                prop_assert!(merged.contains(tag));
            }
            prop_assert_eq!(workflow_of(&merged), Some(workflow.as_str()));
        }
    }
}
