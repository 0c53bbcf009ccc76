//! The approval email, as SNS sends it: plain text, a short ASCII subject, a body a reviewer can
//! take in at a glance. Only detection types and counts appear, never sensitive values.

use std::fmt::Write as _;

use time::OffsetDateTime;
use time::macros::format_description;

use crate::approval::TimeoutAction;
use crate::manifest::{FlaggedObject, Manifest, ManifestRef};
use crate::s3::pass::Tally;

/// SNS rejects subjects of 100 characters or more.
pub const MAX_SUBJECT_CHARS: usize = 99;
/// Objects listed in the body; the rest are counted.
pub const MAX_LISTED_OBJECTS: usize = 25;
/// Detection types listed per object; the rest are counted.
pub const MAX_DETECTIONS_PER_OBJECT: usize = 4;
/// Characters of a key shown before it is cut.
pub const MAX_KEY_CHARS: usize = 120;

/// How every approval request's subject starts, so that mail rules (and the local tools) can
/// tell requests from alerts.
pub const REVIEW_SUBJECT_PREFIX: &str = "Review needed";

/// Everything the email says.
pub struct ApprovalEmail<'a> {
    pub manifest: &'a Manifest,
    pub manifest_location: &'a ManifestRef,
    pub manual_review_bucket: &'a str,
    pub scanned_data_bucket: &'a str,
    pub routed: &'a Tally,
    pub expires_at: OffsetDateTime,
    pub timeout_action: TimeoutAction,
    /// Opens the review page.
    pub review_link: &'a str,
    /// Open the same page with "release all" or "delete all" preselected for every undecided
    /// object.
    pub release_all_link: &'a str,
    pub delete_all_link: &'a str,
}

impl ApprovalEmail<'_> {
    pub fn subject(&self) -> String {
        let flagged = self.manifest.review().count();
        let not_analysed = self.manifest.not_analysed.len();
        let severity = self
            .manifest
            .review()
            .map(|o| o.highest_severity)
            .max()
            .map_or("unknown", |s| s.as_str());
        let plural = |n: usize| if n == 1 { "object" } else { "objects" };
        let what = match (flagged, not_analysed) {
            (_, 0) => format!(
                "{flagged} {} with sensitive data ({severity})",
                plural(flagged)
            ),
            (0, _) => format!(
                "{not_analysed} {} Macie could not analyse",
                plural(not_analysed)
            ),
            _ => format!(
                "{} objects, {flagged} with sensitive data ({severity}), {not_analysed} not analysed",
                flagged + not_analysed
            ),
        };
        safe_subject(&format!(
            "{REVIEW_SUBJECT_PREFIX}: {what}, run {}",
            self.manifest.workflow_id
        ))
    }

    /// The message SNS sends with `MessageStructure=json`: the email text by default, and for
    /// HTTPS subscribers (Amazon Q Developer in chat applications) a custom notification with
    /// the counts, the deadline and the links. `execution_arn` threads it with the run's other
    /// notices.
    pub fn structured_message(&self, execution_arn: &str) -> String {
        serde_json::json!({
            "default": self.body(),
            "https": self.chat(execution_arn).to_string(),
        })
        .to_string()
    }

    /// The request as an Amazon Q Developer custom notification.
    pub fn chat(&self, execution_arn: &str) -> serde_json::Value {
        let manifest = self.manifest;
        let flagged = manifest.review().count();
        let not_analysed = manifest.not_analysed.len();
        let severity = manifest
            .review()
            .map(|o| o.highest_severity)
            .max()
            .map_or("none", |s| s.as_str());
        let subject = self.subject();
        let description = format!(
            "Run {} holds {} object(s) in s3://{} until someone decides: {flagged} with sensitive data (highest severity {severity}), {not_analysed} Macie could not analyse. Decide by {}; {}.",
            display_key(manifest.workflow_id.as_str()),
            flagged + not_analysed,
            self.manual_review_bucket,
            format_time(self.expires_at),
            self.timeout_action.describe_undecided(),
        );
        serde_json::json!({
            "version": "1.0",
            "source": "custom",
            "content": {
                "textType": "client-markdown",
                "title": subject,
                "description": description,
                "nextSteps": [
                    format!("Decide each object: {}", self.review_link),
                    format!("Release all: {}", self.release_all_link),
                    format!("Delete all: {}", self.delete_all_link),
                ],
            },
            "metadata": {
                "threadId": execution_arn.rsplit(':').next().unwrap_or_default(),
                "summary": subject,
                "eventType": "Review Requested",
                "relatedResources": [execution_arn],
            },
        })
    }

    pub fn body(&self) -> String {
        let manifest = self.manifest;
        let flagged: Vec<&FlaggedObject> = manifest.review().collect();
        let not_analysed = &manifest.not_analysed;
        let held = flagged.len() + not_analysed.len();
        let mut text = String::new();
        let expires = format_time(self.expires_at);
        let what = match (flagged.len(), not_analysed.len()) {
            (n, 0) => format!("Macie found sensitive data in {n} object(s)"),
            (0, m) => format!("Macie could not analyse {m} object(s)"),
            (n, m) => format!(
                "Macie found sensitive data in {n} object(s) and could not analyse {m} more"
            ),
        };
        let _ = writeln!(
            text,
            "{what} of pipeline run {}. They are held in the manual-review bucket until you decide.",
            display_key(manifest.workflow_id.as_str())
        );
        let _ = writeln!(text);
        let _ = writeln!(
            text,
            "Workflow id:     {}",
            display_key(manifest.workflow_id.as_str())
        );
        let _ = writeln!(
            text,
            "Held objects:    {held} in s3://{}",
            self.manual_review_bucket
        );
        let _ = writeln!(
            text,
            "Released:        {} object(s) analysed without findings above the review threshold, to s3://{}",
            self.routed.passed, self.scanned_data_bucket
        );
        let _ = writeln!(
            text,
            "Macie scanned:   {}, about USD {} at {}",
            human_size(manifest.bytes_scanned),
            manifest.macie_price.cost_text(manifest.bytes_scanned),
            manifest.macie_price
        );
        let _ = writeln!(text, "Decide by:       {expires}");
        let _ = writeln!(
            text,
            "Undecided then:  {}.",
            self.timeout_action.describe_undecided()
        );
        if !flagged.is_empty() {
            let _ = writeln!(text);
            let _ = writeln!(
                text,
                "Objects with sensitive data (types and counts only, no values):"
            );
            for object in flagged.iter().take(MAX_LISTED_OBJECTS) {
                let _ = writeln!(
                    text,
                    "- [{}] {} ({})",
                    object.highest_severity,
                    display_key(&object.key),
                    human_size(object.size)
                );
                let _ = writeln!(text, "    {}", detections_line(object));
                if let Some(incomplete) = &object.incomplete_analysis {
                    let _ = writeln!(
                        text,
                        "    only partly analysed: {}",
                        display_key(incomplete)
                    );
                }
            }
            self.more(&mut text, flagged.len());
        }
        if !not_analysed.is_empty() {
            let _ = writeln!(text);
            let _ = writeln!(
                text,
                "Objects Macie could not analyse (no finding does not mean no sensitive data):"
            );
            for object in not_analysed.iter().take(MAX_LISTED_OBJECTS) {
                let _ = writeln!(
                    text,
                    "- [{}] {} ({})",
                    object.status.as_str(),
                    display_key(&object.key),
                    human_size(object.size)
                );
                let _ = writeln!(text, "    {}", display_key(&object.reasons.join("; ")));
            }
            self.more(&mut text, not_analysed.len());
        }
        if !manifest.held_aside.is_empty() {
            let _ = writeln!(text);
            let _ = writeln!(
                text,
                "Held aside, because another version of the same key is held at its key for its own decision:"
            );
            for (key, location) in manifest.held_aside.iter().take(MAX_LISTED_OBJECTS) {
                let _ = writeln!(
                    text,
                    "- {}
    at s3://{}/{}",
                    display_key(key),
                    self.manual_review_bucket,
                    display_key(location)
                );
            }
            self.more(&mut text, manifest.held_aside.len());
        }
        if !manifest.superseded.is_empty() {
            let _ = writeln!(text);
            let _ = writeln!(
                text,
                "Not passed on, kept aside (nothing replaced, nothing lost):"
            );
            for supersession in manifest.superseded.iter().take(MAX_LISTED_OBJECTS) {
                let _ = writeln!(
                    text,
                    "- {}\n    {}\n    kept at s3://{}/{}",
                    display_key(&supersession.key),
                    supersession.reason(),
                    supersession.kept_in,
                    display_key(&supersession.kept_at)
                );
            }
            self.more(&mut text, manifest.superseded.len());
        }
        let _ = writeln!(text);
        let _ = writeln!(
            text,
            "Decide each object (release, delete, or decide later), now or in several visits until the deadline:"
        );
        let _ = writeln!(text, "{}", self.review_link);
        let _ = writeln!(text);
        let _ = writeln!(
            text,
            "- Release: the object goes on to s3://{}, tagged SensitiveDataFound=true (=unknown for objects not analysed).",
            self.scanned_data_bucket
        );
        let _ = writeln!(
            text,
            "- Delete: the object is deleted from manual-review (and, where raw keeps versions, its raw version too)."
        );
        let _ = writeln!(
            text,
            "- Decide later: nothing happens yet. A recorded decision is final."
        );
        let _ = writeln!(
            text,
            "- False positive: an object held only for text that is not sensitive has a link on the page to have Macie ignore that text (or the finding type under a key prefix) from the next run on."
        );
        let _ = writeln!(text);
        let _ = writeln!(
            text,
            "Release all (the same page, with release chosen for every undecided object):"
        );
        let _ = writeln!(text, "{}", self.release_all_link);
        let _ = writeln!(
            text,
            "Delete all (the same page, with delete chosen for every undecided object):"
        );
        let _ = writeln!(text, "{}", self.delete_all_link);
        let _ = writeln!(text);
        let _ = writeln!(
            text,
            "Every link opens the page that lists every held object; opening it changes nothing, and it asks for your name before it records anything."
        );
        let _ = writeln!(
            text,
            "If a newer version of a held key reaches s3://{} before the release, the released version does not replace it: it stays in manual-review, and the notification and the page say where.",
            self.scanned_data_bucket
        );
        text
    }

    /// The line after a cut list: how many more, and where the full list is.
    fn more(&self, text: &mut String, listed: usize) {
        if listed > MAX_LISTED_OBJECTS {
            let _ = writeln!(
                text,
                "... and {} more: the links below open a page with the full list (also in s3://{}/{}).",
                listed - MAX_LISTED_OBJECTS,
                self.manifest_location.bucket,
                self.manifest_location.key
            );
        }
    }
}

fn detections_line(object: &FlaggedObject) -> String {
    if object.detections.is_empty() {
        return object.finding_types.join(", ");
    }
    let mut parts: Vec<String> = object
        .detections
        .iter()
        .take(MAX_DETECTIONS_PER_OBJECT)
        .map(ToString::to_string)
        .collect();
    if object.detections.len() > MAX_DETECTIONS_PER_OBJECT {
        parts.push(format!(
            "and {} more types",
            object.detections.len() - MAX_DETECTIONS_PER_OBJECT
        ));
    }
    parts.join(", ")
}

/// A subject SNS accepts: ASCII, no control characters, starting with a letter or digit, at
/// most 99 characters.
pub fn safe_subject(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .collect();
    let cleaned = if cleaned.is_empty() {
        "Sensitive-data gate notification".to_owned()
    } else {
        cleaned
    };
    if cleaned.len() <= MAX_SUBJECT_CHARS {
        return cleaned;
    }
    let mut cut: String = cleaned.chars().take(MAX_SUBJECT_CHARS - 3).collect();
    cut.push_str("...");
    cut
}

/// A key as it is safe to show in a plain-text email: control characters escaped (a key with a
/// newline must not forge lines), long keys cut.
pub fn display_key(key: &str) -> String {
    let mut shown = String::new();
    for (count, c) in key.chars().enumerate() {
        if count == MAX_KEY_CHARS {
            shown.push('…');
            break;
        }
        if c.is_control() {
            shown.extend(c.escape_unicode());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// Sizes as people read them.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A time as `2026-12-03 13:41 UTC`.
pub fn format_time(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .expect("the format only uses fields every date has")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::macie::severity::Severity;
    use crate::manifest::{Detection, NotAnalysedObject, NotAnalysedStatus, fixtures};
    use time::macros::datetime;

    fn object(key: &str, severity: Severity, detections: usize) -> FlaggedObject {
        let detections = (0..detections)
            .map(|i| Detection {
                kind: format!("TYPE_{i}"),
                count: 10 - i as u64,
            })
            .collect();
        fixtures::flagged(key, severity, detections)
    }

    fn manifest(objects: Vec<FlaggedObject>) -> Manifest {
        fixtures::manifest("8f2c1a9e-77aa-4b1e-9a51-0d5c2ee0f6a1", objects)
    }

    fn render(manifest: &Manifest) -> (String, String) {
        let location = ManifestRef {
            bucket: "manifests".into(),
            key: "workflows/x/job/findings.json".into(),
        };
        let routed = Tally {
            moved: 7,
            passed: 5,
            held_for_review: 2,
            ..Tally::default()
        };
        let email = ApprovalEmail {
            manifest,
            manifest_location: &location,
            manual_review_bucket: "review",
            scanned_data_bucket: "scanned",
            routed: &routed,
            expires_at: datetime!(2026-12-03 13:41:07 UTC),
            timeout_action: TimeoutAction::Deny,
            review_link: "https://api/review?token=a%2Bb",
            release_all_link: "https://api/allow?token=a%2Bb",
            delete_all_link: "https://api/deny?token=a%2Bb",
        };
        (email.subject(), email.body())
    }

    #[test]
    fn the_subject_names_the_count_and_severity_and_fits_sns() {
        let (subject, _) = render(&manifest(vec![
            object("a", Severity::Medium, 1),
            object("b", Severity::High, 1),
        ]));
        assert!(
            subject.starts_with("Review needed: 2 objects with sensitive data (High)"),
            "{subject}"
        );
        assert!(subject.len() <= MAX_SUBJECT_CHARS);
        assert!(subject.is_ascii());
    }

    #[test]
    fn the_body_says_what_the_scan_cost() {
        let mut scanned = manifest(vec![object("a.csv", Severity::High, 1)]);
        scanned.bytes_scanned = 3 << 30;
        scanned.macie_price = "1.25".parse().unwrap();
        let (_, body) = render(&scanned);
        assert!(
            body.contains("Macie scanned:   3.0 GiB, about USD 3.7500 at USD 1.25 per GB"),
            "{body}"
        );
    }

    #[test]
    fn the_body_lists_objects_expiry_and_the_links() {
        let (_, body) = render(&manifest(vec![object("data/cards.csv", Severity::High, 6)]));
        assert!(body.contains("- [High] data/cards.csv (2.0 KiB)"), "{body}");
        assert!(
            body.contains("TYPE_0 x10, TYPE_1 x9, TYPE_2 x8, TYPE_3 x7, and 2 more types"),
            "{body}"
        );
        assert!(body.contains("Decide by:       2026-12-03 13:41 UTC"));
        assert!(body.contains("still undecided are deleted, as if denied"));
        assert!(body.contains("Macie scanned:   0 B, about USD 0.0000 at USD 1.00 per GB"));
        assert!(body.contains("Released:        5 object(s)"));
        assert!(body.contains("https://api/review?token=a%2Bb"));
        assert!(body.contains("https://api/allow?token=a%2Bb"));
        assert!(body.contains("https://api/deny?token=a%2Bb"));
        // What each choice does, the false-positive rules included.
        for choice in [
            "- Release:",
            "- Delete:",
            "- Decide later:",
            "- False positive:",
        ] {
            assert!(body.contains(choice), "{choice}: {body}");
        }
    }

    #[test]
    fn objects_macie_could_not_analyse_are_listed_with_their_reasons() {
        let mut partial = object("mixed.csv", Severity::Low, 1);
        partial.incomplete_analysis = Some("TIME_CUT_OFF_REACHED".into());
        let mut run = manifest(vec![partial]);
        run.not_analysed = vec![
            NotAnalysedObject {
                key: "photo.png".into(),
                size: 4096,
                status: NotAnalysedStatus::Skipped,
                reasons: vec!["UNSUPPORTED_FILE_TYPE_EXCEPTION".into()],
            },
            NotAnalysedObject {
                key: "late.csv".into(),
                size: 10,
                status: NotAnalysedStatus::NoResult,
                reasons: vec![crate::manifest::NO_RESULT_REASON.into()],
            },
        ];
        let (subject, body) = render(&run);
        assert!(
            subject.starts_with(
                "Review needed: 3 objects, 1 with sensitive data (Low), 2 not analysed"
            ),
            "{subject}"
        );
        assert!(
            body.starts_with(
                "Macie found sensitive data in 1 object(s) and could not analyse 2 more"
            )
        );
        assert!(body.contains("Held objects:    3 in s3://review"), "{body}");
        assert!(body.contains("    only partly analysed: TIME_CUT_OFF_REACHED"));
        assert!(
            body.contains("- [skipped] photo.png (4.0 KiB)\n    UNSUPPORTED_FILE_TYPE_EXCEPTION")
        );
        assert!(body.contains(
            "- [no discovery result] late.csv (10 B)\n    Macie wrote no discovery result"
        ));
        run.objects.clear();
        let (subject, _) = render(&run);
        assert!(subject.starts_with("Review needed: 2 objects Macie could not analyse"));
    }

    #[test]
    fn long_lists_are_cut_with_a_count_and_a_pointer() {
        let objects = (0..40)
            .map(|i| object(&format!("k{i:02}"), Severity::Low, 1))
            .collect();
        let (_, body) = render(&manifest(objects));
        assert!(body.contains(
            "... and 15 more: the links below open a page with the full list (also in s3://manifests/workflows/x/job/findings.json)."
        ));
        assert!(!body.contains("k39"));
    }

    #[test]
    fn keys_cannot_forge_lines_in_the_body() {
        let (_, body) = render(&manifest(vec![object(
            "evil\nApprove: http://x",
            Severity::High,
            1,
        )]));
        assert!(!body.contains("\nApprove: http://x"));
        assert!(body.contains("evil\\u{a}Approve"));
    }

    #[test]
    fn subjects_are_sanitized_and_cut() {
        assert_eq!(safe_subject("  ✓ done\n"), "done?");
        let long = safe_subject(&"x".repeat(300));
        assert_eq!(long.len(), MAX_SUBJECT_CHARS);
        assert!(long.ends_with("..."));
        assert_eq!(safe_subject("!!!"), "Sensitive-data gate notification");
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
