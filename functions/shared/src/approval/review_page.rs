//! The review page: every held object of a run with its own choice (release, delete, or decide
//! later), a reviewer name required before anything is recorded, and a bulk choice for every
//! object still undecided. A GET (what a mail scanner's pre-fetch does) decides nothing; only the
//! form, posted, records decisions. What was decided is shown as decided, by whom and when, and
//! offers no choice any more. Long runs are paged, [`PAGE_SIZE`] objects a page; the bulk choice
//! covers every page.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::approval::decisions::{Choice, ObjectDecision};
use crate::approval::email::human_size;
use crate::approval::false_positives::PATH_SEGMENT;
use crate::approval::links::{Entry, encoded_token};
use crate::approval::page::{Page, escape, page, supersessions, table, visible, when};
use crate::approval::record::{ApprovalRecord, OutcomeRecord};
use crate::approval::visit::{MAX_REVIEWER_LEN, OBJECT_FIELD, VisitOutcome};
use crate::manifest::Manifest;
use crate::s3::documents::hashed_name;

/// Held objects per page.
pub const PAGE_SIZE: usize = 100;

/// Everything the review page shows.
pub struct ReviewView<'a> {
    /// The link the reviewer came by; the bulk links preselect the bulk choice.
    pub entry: Entry,
    pub token: &'a str,
    pub record: &'a ApprovalRecord,
    pub manifest: &'a Manifest,
    /// The decisions made so far, by key.
    pub decisions: &'a BTreeMap<String, ObjectDecision>,
    /// Which page of held objects, from 1.
    pub page: usize,
    /// After a POST: what it recorded, and the reviewer name to keep in the field.
    pub visit: Option<(&'a VisitOutcome, &'a str)>,
    /// What the release did, once it finished.
    pub outcome: Option<&'a OutcomeRecord>,
}

/// One held object as the page lists it.
struct Held<'a> {
    key: &'a str,
    /// Held for a finding, so a false positive can be marked; not for an object Macie could
    /// not read.
    flagged: bool,
    size: u64,
    severity: &'static str,
    severity_class: &'static str,
    found: String,
}

/// The run's held objects, by key: flagged ones with what Macie found, the others with why
/// Macie could not look.
fn held(manifest: &Manifest) -> Vec<Held<'_>> {
    let mut rows: Vec<Held<'_>> = manifest
        .review()
        .map(|object| {
            let (severity, severity_class) = match object.highest_severity.as_str() {
                "High" => ("High", "high"),
                "Medium" => ("Medium", "medium"),
                _ => ("Low", ""),
            };
            let mut found: Vec<String> = if object.detections.is_empty() {
                object.finding_types.clone()
            } else {
                object.detections.iter().map(ToString::to_string).collect()
            };
            if let Some(incomplete) = &object.incomplete_analysis {
                found.push(format!("only partly analysed: {incomplete}"));
            }
            Held {
                key: &object.key,
                flagged: true,
                size: object.size,
                severity,
                severity_class,
                found: found.join(", "),
            }
        })
        .chain(manifest.not_analysed.iter().map(|object| Held {
            key: &object.key,
            flagged: false,
            size: object.size,
            severity: "Not analysed",
            severity_class: "",
            found: format!("{}: {}", object.status.as_str(), object.reasons.join("; ")),
        }))
        .collect();
    rows.sort_by(|a, b| a.key.cmp(b.key));
    rows
}

fn decided_text(decision: &ObjectDecision) -> String {
    let what = match decision.choice {
        Choice::Release => "Release",
        Choice::Delete => "Delete",
    };
    format!(
        "{what}: decided by {} on {}",
        visible(&decision.reviewer.name),
        when(&decision.decided_at)
    )
}

/// What each choice does, in the page's words and the email's.
pub fn choices_explained(record: &ApprovalRecord) -> [String; 3] {
    [
        format!(
            "Release: the object goes on to s3://{}, tagged SensitiveDataFound=true.",
            record.scanned_data_bucket
        ),
        "Delete: the object is deleted from manual-review (and, where raw keeps versions, its raw version too).".to_owned(),
        format!(
            "Decide later: nothing happens to it yet; decide it from the same link before the deadline. At the deadline, {}.",
            record.timeout_action.describe_undecided()
        ),
    ]
}

/// The page: a GET of the link, or the answer to a POST that left objects undecided.
pub fn review(view: &ReviewView<'_>) -> Page {
    let rows = held(view.manifest);
    let undecided = rows
        .iter()
        .filter(|row| !view.decisions.contains_key(row.key))
        .count();
    if undecided == 0 {
        return all_decided(view, &rows);
    }
    let pages = rows.len().div_ceil(PAGE_SIZE).max(1);
    let current = view.page.clamp(1, pages);
    let mut content = String::new();
    if let Some((visit, _)) = view.visit {
        notice(&mut content, visit);
    }
    let _ = writeln!(
        content,
        "<p>{} object(s) of this run are held in the manual-review bucket: {} decided, {undecided} still to decide. \
         Decide each one, or use the choice for every undecided object at the end. Nothing changes until you press Record decisions, and a recorded decision is final.</p>",
        rows.len(),
        rows.len() - undecided,
    );
    let _ = writeln!(
        content,
        "<dl>\n<dt>Run</dt><dd>{}</dd>\n<dt>Held in</dt><dd>s3://{}</dd>\n\
         <dt>Decide by</dt><dd>{}</dd>\n<dt>Undecided at the deadline</dt><dd>{}.</dd>\n</dl>",
        escape(&visible(view.manifest.workflow_id.as_str())),
        escape(&view.record.manual_review_bucket),
        escape(&when(&view.record.expires_at)),
        escape(view.record.timeout_action.describe_undecided()),
    );
    content.push_str("<ul class=\"note\">\n");
    for line in choices_explained(view.record) {
        let _ = writeln!(content, "<li>{}</li>", escape(&line));
    }
    content.push_str("</ul>\n");
    let token = encoded_token(view.token);
    let _ = writeln!(
        content,
        "<p class=\"note\">An object held only for text that is not sensitive? Follow its False positive link to have Macie ignore that text, or the finding type under a prefix, from the next run on. \
         The <a href=\"{PATH_SEGMENT}?token={token}\">false-positive rules</a> page lists every rule and removes one.</p>"
    );
    let _ = writeln!(
        content,
        "<form method=\"post\" action=\"{action}\">\n\
         <input type=\"hidden\" name=\"token\" value=\"{token}\">",
        action = view.entry.path_segment(),
        token = escape(view.token),
    );
    reviewer_field(&mut content, view.visit.map(|(_, name)| name));
    let _ = writeln!(
        content,
        "<h2>Held objects{}</h2>",
        if pages > 1 {
            format!(" (page {current} of {pages})")
        } else {
            String::new()
        }
    );
    content.push_str(
        "<table>\n<caption>Detection types and counts only; the values are never shown.</caption>\n\
         <thead><tr><th scope=\"col\">Object</th><th scope=\"col\">Size</th><th scope=\"col\">Severity</th>\
         <th scope=\"col\">Found</th><th scope=\"col\">Decision</th></tr></thead>\n<tbody>\n",
    );
    for (index, row) in rows
        .iter()
        .enumerate()
        .skip((current - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
    {
        let _ = write!(
            content,
            "<tr><td data-label=\"Object\" class=\"key\">{}</td><td data-label=\"Size\">{}</td>\
             <td data-label=\"Severity\"{}>{}</td><td data-label=\"Found\">{}",
            escape(&visible(row.key)),
            escape(&human_size(row.size)),
            if row.severity_class.is_empty() {
                String::new()
            } else {
                format!(" class=\"{}\"", row.severity_class)
            },
            row.severity,
            escape(&row.found),
        );
        if row.flagged {
            let _ = write!(
                content,
                " <a href=\"{PATH_SEGMENT}?token={token}&amp;object={}\">False positive?</a>",
                hashed_name(row.key)
            );
        }
        content.push_str("</td><td data-label=\"Decision\">");
        match view.decisions.get(row.key) {
            Some(decision) => {
                let _ = write!(
                    content,
                    "<span class=\"decided\">{}</span>",
                    escape(&decided_text(decision))
                );
            }
            None => choice_group(&mut content, index, row.key),
        }
        content.push_str("</td></tr>\n");
    }
    content.push_str("</tbody>\n</table>\n");
    if pages > 1 {
        pager(&mut content, view, current, pages);
    }
    let preselected = match view.entry {
        Entry::Review => "keep",
        Entry::ReleaseAll => "release",
        Entry::DeleteAll => "delete",
    };
    let _ = write!(
        content,
        "<fieldset class=\"bulk\"><legend>Every object still undecided ({undecided}{}) after the choices above</legend>",
        if pages > 1 { ", on every page" } else { "" }
    );
    for (value, label) in [
        ("keep", "Leave as chosen above".to_owned()),
        (
            "release",
            format!("Release all to s3://{}", view.record.scanned_data_bucket),
        ),
        ("delete", "Delete all".to_owned()),
    ] {
        let _ = write!(
            content,
            "<label><input type=\"radio\" name=\"remaining\" value=\"{value}\"{}> {}</label>",
            if value == preselected { " checked" } else { "" },
            escape(&label)
        );
    }
    content.push_str("</fieldset>\n");
    content.push_str(
        "<div class=\"actions\"><button type=\"submit\" class=\"record\">Record decisions</button></div>\n</form>\n",
    );
    aside(&mut content, view);
    page(
        200,
        &format!("Review {} held object(s)", rows.len()),
        &content,
    )
}

fn notice(content: &mut String, visit: &VisitOutcome) {
    let _ = write!(
        content,
        "<p class=\"notice\" role=\"status\">Recorded {} decision(s).",
        visit.decided.len()
    );
    if !visit.earlier.is_empty() {
        let _ = write!(
            content,
            " {} object(s) you chose had been decided before, by someone else or in another window; those earlier decisions stand and are shown below.",
            visit.earlier.len()
        );
    }
    let _ = writeln!(content, " {} still to decide.</p>", visit.undecided);
}

fn reviewer_field(content: &mut String, value: Option<&str>) {
    let _ = writeln!(
        content,
        "<p><label for=\"reviewer\">Your name or email address (recorded with every decision)</label><br>\
         <input id=\"reviewer\" name=\"reviewer\" type=\"text\" required maxlength=\"{MAX_REVIEWER_LEN}\" autocomplete=\"email\" value=\"{}\"></p>",
        escape(value.unwrap_or_default())
    );
}

/// The three choices of one undecided object; "decide later" is checked.
fn choice_group(content: &mut String, index: usize, key: &str) {
    let name = format!("{OBJECT_FIELD}{}", hashed_name(key));
    let _ = write!(
        content,
        "<fieldset class=\"choice\"><legend class=\"sr\">Decision for {}</legend>",
        escape(&visible(key))
    );
    for (value, label, checked) in [
        ("release", "Release", ""),
        ("delete", "Delete", ""),
        ("keep", "Decide later", " checked"),
    ] {
        let _ = write!(
            content,
            "<label><input type=\"radio\" id=\"o{index}-{value}\" name=\"{name}\" value=\"{value}\"{checked}> {label}</label>"
        );
    }
    content.push_str("</fieldset>");
}

/// Links to the other pages. A page change leaves the choices of this page unrecorded, and the
/// page says so.
fn pager(content: &mut String, view: &ReviewView<'_>, current: usize, pages: usize) {
    let token = encoded_token(view.token);
    let link = |page: usize, label: &str| {
        format!(
            "<a href=\"{}?token={token}&amp;page={page}\">{label}</a>",
            view.entry.path_segment()
        )
    };
    content.push_str("<nav class=\"pages\" aria-label=\"Pages of held objects\">");
    if current > 1 {
        content.push_str(&link(current - 1, "Previous page"));
    }
    let _ = write!(content, "<span>Page {current} of {pages}</span>");
    if current < pages {
        content.push_str(&link(current + 1, "Next page"));
    }
    content.push_str(
        "</nav>\n<p class=\"note\">Record the choices of this page before you go to another: a page change does not keep them.</p>\n",
    );
}

/// What else the run holds and keeps, for the reviewer's information.
fn aside(content: &mut String, view: &ReviewView<'_>) {
    let manifest = view.manifest;
    if !manifest.held_aside.is_empty() {
        let _ = writeln!(
            content,
            "<h2>Held aside ({})</h2>",
            manifest.held_aside.len()
        );
        let rows = manifest
            .held_aside
            .iter()
            .take(PAGE_SIZE)
            .map(|(key, location)| {
                vec![
                    (visible(key), "key"),
                    (
                        format!(
                            "s3://{}/{}",
                            view.record.manual_review_bucket,
                            visible(location)
                        ),
                        "key",
                    ),
                ]
            });
        table(
            content,
            "Another version of each of these keys is held at its key for its own decision, so this run's version waits here. Your decision acts on this run's version only.",
            &["Object", "Held at"],
            rows,
        );
    }
    if !manifest.superseded.is_empty() {
        let _ = writeln!(
            content,
            "<h2>Kept aside, not passed on ({})</h2>",
            manifest.superseded.len()
        );
        supersessions(content, &manifest.superseded);
    }
    let _ = writeln!(
        content,
        "<p class=\"note\">If a newer version of a held key reaches s3://{} before the release, the released version does not replace it: it stays in manual-review, and reopening this link then says where. The full list of this run is in s3://{}/{}.</p>",
        escape(&view.record.scanned_data_bucket),
        escape(&view.record.manifest.bucket),
        escape(&view.record.manifest.key),
    );
}

/// Every held object is decided: what was decided, by whom and when, and what the release did
/// once it finished.
fn all_decided(view: &ReviewView<'_>, rows: &[Held<'_>]) -> Page {
    let mut content = String::new();
    if let Some((visit, _)) = view.visit {
        notice(&mut content, visit);
    }
    let (release, delete) = rows
        .iter()
        .filter_map(|row| view.decisions.get(row.key))
        .fold((0, 0), |(r, d), decision| match decision.choice {
            Choice::Release => (r + 1, d),
            Choice::Delete => (r, d + 1),
        });
    let _ = writeln!(
        content,
        "<p>Every one of the {} held object(s) of run {} is decided: {release} to release, {delete} to delete. The run carries the decisions out; nothing here can change them.</p>",
        rows.len(),
        escape(&visible(view.manifest.workflow_id.as_str())),
    );
    match view.outcome {
        Some(outcome) => {
            let _ = writeln!(
                content,
                "<p>The release finished on {}: {} object(s) released.</p>",
                escape(&when(&outcome.finished_at)),
                outcome.released
            );
            if !outcome.superseded.is_empty() {
                let _ = writeln!(
                    content,
                    "<h2>Decided for release but not released ({})</h2>",
                    outcome.superseded.len()
                );
                supersessions(&mut content, &outcome.superseded);
            }
        }
        None => {
            // The run is told when the last object is decided; if that call failed, sending
            // again is safe (a run that was told already refuses it).
            let _ = writeln!(
                content,
                "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"token\" value=\"{}\">",
                view.entry.path_segment(),
                escape(view.token)
            );
            reviewer_field(&mut content, view.visit.map(|(_, name)| name));
            content.push_str(
                "<p class=\"note\">The run has not reported the release yet. If it does not move on, send the decisions to it again.</p>\
                 <div class=\"actions\"><button type=\"submit\" class=\"record\">Send the decisions again</button></div></form>\n",
            );
        }
    }
    let decided = rows.iter().take(PAGE_SIZE * 10).map(|row| {
        let text = view
            .decisions
            .get(row.key)
            .map(decided_text)
            .unwrap_or_default();
        vec![(visible(row.key), "key"), (text, "")]
    });
    table(
        &mut content,
        "Each object's decision, as recorded.",
        &["Object", "Decision"],
        decided,
    );
    if rows.len() > PAGE_SIZE * 10 {
        let _ = writeln!(
            content,
            "<p class=\"note\">... and {} more; every decision is recorded in the manifest bucket under approvals/.</p>",
            rows.len() - PAGE_SIZE * 10
        );
    }
    page(200, "Every held object is decided", &content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::TimeoutAction;
    use crate::approval::decisions::Reviewer;
    use crate::macie::severity::Severity;
    use crate::manifest::fixtures::{flagged, manifest};
    use crate::manifest::{Detection, ManifestRef};
    use crate::workflow::WorkflowId;

    fn record() -> ApprovalRecord {
        ApprovalRecord {
            workflow_id: WorkflowId::parse("wf-1").unwrap(),
            manifest: ManifestRef {
                bucket: "manifests".into(),
                key: "workflows/wf-1/j/findings.json".into(),
            },
            expires_at: "2026-12-03T10:00:00Z".into(),
            timeout_action: TimeoutAction::Deny,
            manual_review_bucket: "review".into(),
            scanned_data_bucket: "scanned".into(),
        }
    }

    fn run(keys: &[String]) -> Manifest {
        let cards = Detection {
            kind: "CREDIT_CARD_NUMBER".into(),
            count: 3,
        };
        manifest(
            "wf-1",
            keys.iter()
                .map(|k| flagged(k, Severity::High, vec![cards.clone()]))
                .collect(),
        )
    }

    fn decided(key: &str, choice: Choice) -> (String, ObjectDecision) {
        let decision = ObjectDecision {
            workflow_id: WorkflowId::parse("wf-1").unwrap(),
            key: key.into(),
            location: key.into(),
            choice,
            reviewer: Reviewer {
                name: "Ada <ada@example.com>".into(),
                source_ip: None,
                user_agent: None,
            },
            decided_at: "2026-12-02T10:00:00Z".into(),
        };
        (key.to_owned(), decision)
    }

    fn render(
        manifest: &Manifest,
        decisions: &BTreeMap<String, ObjectDecision>,
        page: usize,
    ) -> String {
        review(&ReviewView {
            entry: Entry::Review,
            token: "a+b/\"<c>",
            record: &record(),
            manifest,
            decisions,
            page,
            visit: None,
            outcome: None,
        })
        .body
    }

    #[test]
    fn undecided_objects_get_choices_and_decided_ones_say_by_whom() {
        let keys = vec!["a.csv".to_owned(), "evil\n<b>x</b>".to_owned()];
        let decisions = BTreeMap::from([decided("a.csv", Choice::Delete)]);
        let body = render(&run(&keys), &decisions, 1);
        assert!(
            body.contains("<title>Review 2 held object(s)</title>"),
            "{body}"
        );
        assert!(body.contains("1 decided, 1 still to decide"));
        // The decided object: its decision, the reviewer's name escaped, no choice.
        assert!(
            body.contains("Delete: decided by Ada &lt;ada@example.com&gt; on 2026-12-02 10:00 UTC")
        );
        assert!(!body.contains(&format!("name=\"{OBJECT_FIELD}{}\"", hashed_name("a.csv"))));
        // The other: three choices, "decide later" checked; its key shown, never interpreted.
        let name = format!("{OBJECT_FIELD}{}", hashed_name("evil\n<b>x</b>"));
        assert!(body.contains(&format!("name=\"{name}\" value=\"keep\" checked")));
        assert!(body.contains(&format!("name=\"{name}\" value=\"release\">")));
        assert!(body.contains("evil\\u{a}&lt;b&gt;x&lt;/b&gt;"), "{body}");
        assert!(body.contains("value=\"a+b/&quot;&lt;c&gt;\""));
        assert!(body.contains("name=\"remaining\" value=\"keep\" checked"));
        assert!(body.contains("the objects still undecided are deleted, as if denied"));
        assert!(!body.contains("<script"));
    }

    #[test]
    fn long_reviews_are_paged_and_the_bulk_choice_covers_every_page() {
        let keys: Vec<String> = (0..PAGE_SIZE * 2 + 50)
            .map(|i| format!("k{i:04}"))
            .collect();
        let manifest = run(&keys);
        let none = BTreeMap::new();
        let first = render(&manifest, &none, 1);
        assert!(first.contains("Held objects (page 1 of 3)"));
        assert_eq!(
            first.matches("value=\"keep\" checked").count(),
            PAGE_SIZE + 1
        );
        assert!(first.contains("k0000") && !first.contains("k0100"));
        assert!(first.contains("href=\"review?token=a%2Bb%2F%22%3Cc%3E&amp;page=2\">Next page"));
        assert!(!first.contains("Previous page"));
        assert!(first.contains("(250, on every page)"), "{first}");
        let last = render(&manifest, &none, 3);
        assert!(last.contains("k0249") && !last.contains("k0199"));
        assert!(last.contains("Previous page") && !last.contains("Next page"));
        // A page past the end shows the last one.
        assert_eq!(render(&manifest, &none, 99), last);
    }

    #[test]
    fn a_review_with_every_object_decided_lists_the_decisions_and_offers_no_choice() {
        let keys = vec!["a.csv".to_owned(), "b.csv".to_owned()];
        let decisions = BTreeMap::from([
            decided("a.csv", Choice::Release),
            decided("b.csv", Choice::Delete),
        ]);
        let body = render(&run(&keys), &decisions, 1);
        assert!(body.contains("<title>Every held object is decided</title>"));
        assert!(body.contains("1 to release, 1 to delete"));
        assert!(body.contains("Release: decided by Ada"));
        assert!(!body.contains("type=\"radio\""));
        // Until the release reports, the decisions can be sent to the run again.
        assert!(body.contains("Send the decisions again"));
        let outcome = OutcomeRecord {
            released: 1,
            superseded: Vec::new(),
            finished_at: "2026-12-02T11:00:00Z".into(),
        };
        let finished = review(&ReviewView {
            entry: Entry::Review,
            token: "t",
            record: &record(),
            manifest: &run(&keys),
            decisions: &decisions,
            page: 1,
            visit: None,
            outcome: Some(&outcome),
        })
        .body;
        assert!(
            finished
                .contains("The release finished on 2026-12-02 11:00 UTC: 1 object(s) released.")
        );
        assert!(!finished.contains("<form"));
    }
}
