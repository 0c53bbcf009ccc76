//! The decision page. A GET (what a mail scanner's link pre-fetch does) only shows what is being
//! decided: the run, when the request expires and what happens then, and every held object with
//! what Macie found or why it could not look. The decision is one of the page's two forms, posted.
//! The page needs no script and loads nothing from elsewhere, and the headers keep the token out
//! of Referer headers, caches and frames. On a narrow screen the tables become one card per
//! object.

use std::fmt::Write as _;
use std::sync::LazyLock;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::approval::email::{format_time, human_size};
use crate::approval::links::Decision;
use crate::approval::record::{ApprovalRecord, DecisionRecord, OutcomeRecord};
use crate::manifest::{FlaggedObject, Manifest, NotAnalysedObject, Supersession};

/// Rows a page lists per table; the rest are counted, with the manifest's location.
pub const MAX_PAGE_ROWS: usize = 1000;
/// With more held objects than this, the buttons are shown above the list as well as below.
const BUTTONS_ON_TOP_ABOVE: usize = 10;

/// The page's only style sheet, allowed by its hash in the CSP. Colours keep at least 4.5:1
/// contrast (white on the button greens and reds is above 6:1).
const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;padding:1rem;color:#1a1a1a;background:#fff;line-height:1.5}\
main{max-width:60rem;margin:0 auto}\
h1{font-size:1.5rem;margin:0 0 1rem}\
h2{font-size:1.15rem;margin:1.5rem 0 .5rem}\
p{margin:0 0 1rem}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0 0 1rem}\
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}\
table{border-collapse:collapse;width:100%;margin:0 0 1rem}\
caption{text-align:left;color:#444;padding:0 0 .25rem}\
th,td{border-bottom:1px solid #ccc;padding:.4rem .5rem;text-align:left;vertical-align:top}\
td.key{overflow-wrap:anywhere;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9rem}\
.high{color:#a4161a;font-weight:700}.medium{color:#8a4b00;font-weight:700}\
.actions{display:flex;flex-wrap:wrap;gap:1rem;margin:1rem 0}\
form{margin:0}\
button{font:inherit;font-size:1.1rem;padding:.75rem 1.5rem;border:0;border-radius:.4rem;color:#fff;cursor:pointer;min-height:3rem}\
button:focus{outline:3px solid #1a4f9c;outline-offset:2px}\
.allow{background:#0b6e2f}.deny{background:#a4161a}\
.note{color:#444;font-size:.95rem}\
@media (max-width:40rem){thead{position:absolute;left:-9999px}table,caption,tbody,tr,td{display:block}tr{border-bottom:2px solid #999;padding:.5rem 0}td{border:0;padding:.1rem 0}td::before{content:attr(data-label) \": \";font-weight:600;font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif}.actions{flex-direction:column}button{width:100%}}";

static STYLE_HASH: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::digest(STYLE.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
});

/// A rendered page: status, headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// The headers every response carries.
pub fn security_headers() -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "text/html; charset=utf-8".to_owned()),
        ("cache-control", "no-store".to_owned()),
        ("pragma", "no-cache".to_owned()),
        ("referrer-policy", "no-referrer".to_owned()),
        ("x-content-type-options", "nosniff".to_owned()),
        ("x-frame-options", "DENY".to_owned()),
        (
            "content-security-policy",
            format!(
                "default-src 'none'; style-src {}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
                *STYLE_HASH
            ),
        ),
    ]
}

fn page(status: u16, title: &str, content: &str) -> Page {
    Page {
        status,
        headers: security_headers(),
        body: format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"robots\" content=\"noindex\">\n<title>{title}</title>\n<style>{STYLE}</style>\n\
             </head>\n<body>\n<main>\n<h1>{title}</h1>\n{content}\n</main>\n</body>\n</html>\n",
            title = escape(title)
        ),
    }
}

/// Everything the review page shows.
pub struct Review<'a> {
    /// The link the reviewer opened (both buttons are on the page either way).
    pub opened: Decision,
    pub token: &'a str,
    pub record: &'a ApprovalRecord,
    pub manifest: &'a Manifest,
}

/// GET: the held objects and the two buttons. Nothing has been decided yet.
pub fn review(view: &Review<'_>) -> Page {
    let manifest = view.manifest;
    let flagged: Vec<&FlaggedObject> = manifest.review().collect();
    let held = flagged.len() + manifest.not_analysed.len();
    let mut content = String::new();
    let _ = writeln!(
        content,
        "<p>{held} object(s) of this run are held in the manual-review bucket until you decide. \
         Look through them, then approve or deny them all.</p>"
    );
    let _ = writeln!(
        content,
        "<dl>\n<dt>Run</dt><dd>{}</dd>\n<dt>Held in</dt><dd>s3://{}</dd>\n\
         <dt>Decide by</dt><dd>{}</dd>\n<dt>If no decision</dt><dd>{}.</dd>\n</dl>",
        escape(&visible(manifest.workflow_id.as_str())),
        escape(&view.record.manual_review_bucket),
        escape(&when(&view.record.expires_at)),
        escape(view.record.timeout_action.describe()),
    );
    let opened = match view.opened {
        Decision::Allow => "Approve",
        Decision::Deny => "Deny",
    };
    let _ = writeln!(
        content,
        "<p class=\"note\">You opened the {opened} link. Nothing has changed yet: the decision is made only when you press a button.</p>"
    );
    let buttons = buttons(view.token, held, &view.record.scanned_data_bucket);
    if held > BUTTONS_ON_TOP_ABOVE {
        content.push_str(&buttons);
    }
    if !flagged.is_empty() {
        let _ = writeln!(
            content,
            "<h2>Objects with sensitive data ({})</h2>",
            flagged.len()
        );
        let rows = flagged
            .iter()
            .take(MAX_PAGE_ROWS)
            .map(|object| flagged_row(object));
        table(
            &mut content,
            "Detection types and counts only; the values are never shown.",
            &["Object", "Size", "Severity", "Found"],
            rows,
        );
        more(&mut content, flagged.len(), view);
    }
    if !manifest.not_analysed.is_empty() {
        let _ = writeln!(
            content,
            "<h2>Objects Macie could not analyse ({})</h2>",
            manifest.not_analysed.len()
        );
        let rows = manifest
            .not_analysed
            .iter()
            .take(MAX_PAGE_ROWS)
            .map(not_analysed_row);
        table(
            &mut content,
            "No finding here does not mean no sensitive data: Macie did not read these in full.",
            &["Object", "Size", "Status", "Reason"],
            rows,
        );
        more(&mut content, manifest.not_analysed.len(), view);
    }
    if !manifest.held_aside.is_empty() {
        let _ = writeln!(
            content,
            "<h2>Held aside ({})</h2>",
            manifest.held_aside.len()
        );
        let rows = manifest
            .held_aside
            .iter()
            .take(MAX_PAGE_ROWS)
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
            &mut content,
            "Another version of each of these keys is held at its key for its own decision, so this run's version waits here. Your decision acts on this run's version only.",
            &["Object", "Held at"],
            rows,
        );
        more(&mut content, manifest.held_aside.len(), view);
    }
    if !manifest.superseded.is_empty() {
        let _ = writeln!(
            content,
            "<h2>Kept aside, not passed on ({})</h2>",
            manifest.superseded.len()
        );
        supersessions(&mut content, &manifest.superseded);
        more(&mut content, manifest.superseded.len(), view);
    }
    let _ = writeln!(
        content,
        "<p class=\"note\">If a newer version of a held key reaches s3://{} before the release, the approved version does not replace it: it stays in manual-review, and reopening this link then says where.</p>",
        escape(&view.record.scanned_data_bucket)
    );
    content.push_str(&buttons);
    page(200, &format!("Review {held} held object(s)"), &content)
}

/// A table of versions kept aside instead of replacing a newer one.
fn supersessions(content: &mut String, kept: &[Supersession]) {
    let rows = kept.iter().take(MAX_PAGE_ROWS).map(|supersession| {
        vec![
            (visible(&supersession.key), "key"),
            (supersession.reason(), ""),
            (visible(&supersession.location()), "key"),
        ]
    });
    table(
        content,
        "Nothing was replaced and nothing was lost: each version is kept where the table says.",
        &["Object", "Why", "Kept at"],
        rows,
    );
}

/// The two decisions, each its own form and button: different words, colours and positions.
fn buttons(token: &str, held: usize, scanned_data_bucket: &str) -> String {
    let token = escape(token);
    format!(
        "<div class=\"actions\">\n\
         <form method=\"post\" action=\"allow\"><input type=\"hidden\" name=\"token\" value=\"{token}\">\
         <button type=\"submit\" class=\"allow\">Approve: release {held} to s3://{bucket}</button></form>\n\
         <form method=\"post\" action=\"deny\"><input type=\"hidden\" name=\"token\" value=\"{token}\">\
         <button type=\"submit\" class=\"deny\">Deny: delete {held}</button></form>\n</div>\n",
        bucket = escape(scanned_data_bucket),
    )
}

fn table(
    content: &mut String,
    caption: &str,
    headers: &[&str],
    rows: impl Iterator<Item = Vec<(String, &'static str)>>,
) {
    let _ = write!(
        content,
        "<table>\n<caption>{}</caption>\n<thead><tr>",
        escape(caption)
    );
    for header in headers {
        let _ = write!(content, "<th scope=\"col\">{header}</th>");
    }
    content.push_str("</tr></thead>\n<tbody>\n");
    for cells in rows {
        content.push_str("<tr>");
        for ((text, class), label) in cells.iter().zip(headers) {
            let _ = write!(
                content,
                "<td data-label=\"{label}\"{}>{}</td>",
                if class.is_empty() {
                    String::new()
                } else {
                    format!(" class=\"{class}\"")
                },
                escape(text)
            );
        }
        content.push_str("</tr>\n");
    }
    content.push_str("</tbody>\n</table>\n");
}

fn flagged_row(object: &FlaggedObject) -> Vec<(String, &'static str)> {
    let severity_class = match object.highest_severity.as_str() {
        "High" => "high",
        "Medium" => "medium",
        _ => "",
    };
    let mut found: Vec<String> = if object.detections.is_empty() {
        object.finding_types.clone()
    } else {
        object
            .detections
            .iter()
            .map(|d| format!("{} x{}", d.kind, d.count))
            .collect()
    };
    if let Some(incomplete) = &object.incomplete_analysis {
        found.push(format!("only partly analysed: {incomplete}"));
    }
    vec![
        (visible(&object.key), "key"),
        (human_size(object.size), ""),
        (object.highest_severity.as_str().to_owned(), severity_class),
        (found.join(", "), ""),
    ]
}

fn not_analysed_row(object: &NotAnalysedObject) -> Vec<(String, &'static str)> {
    vec![
        (visible(&object.key), "key"),
        (human_size(object.size), ""),
        (object.status.as_str().to_owned(), ""),
        (object.reasons.join("; "), ""),
    ]
}

fn more(content: &mut String, listed: usize, view: &Review<'_>) {
    if listed > MAX_PAGE_ROWS {
        let _ = writeln!(
            content,
            "<p class=\"note\">... and {} more, not shown. The full list is in s3://{}/{}</p>",
            listed - MAX_PAGE_ROWS,
            escape(&view.record.manifest.bucket),
            escape(&view.record.manifest.key)
        );
    }
}

/// A key with control characters made visible, so a key cannot forge lines or hide text.
fn visible(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_unicode().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// An RFC 3339 time as people read it, or as stored if it does not parse.
fn when(rfc3339: &str) -> String {
    OffsetDateTime::parse(rfc3339, &Rfc3339).map_or_else(|_| rfc3339.to_owned(), format_time)
}

/// POST succeeded.
pub fn decided(decision: Decision, record: Option<&ApprovalRecord>) -> Page {
    let (title, text) = match (decision, record) {
        (Decision::Allow, Some(record)) => (
            "Approved",
            format!(
                "The held objects of run {} are being released to s3://{}, with their SensitiveDataFound tag. A version whose key already has a newer version there is kept in manual-review instead; reopen this link later to see what was released.",
                visible(record.workflow_id.as_str()),
                record.scanned_data_bucket
            ),
        ),
        (Decision::Allow, None) => (
            "Approved",
            "The held objects are being released to the scanned-data bucket.".to_owned(),
        ),
        (Decision::Deny, Some(record)) => (
            "Denied",
            format!(
                "The held objects of run {} are being deleted from s3://{}.",
                visible(record.workflow_id.as_str()),
                record.manual_review_bucket
            ),
        ),
        (Decision::Deny, None) => ("Denied", "The held objects are being deleted.".to_owned()),
    };
    page(200, title, &format!("<p>{}</p>", escape(&text)))
}

/// The token was used already, or expired, or the run ended; with what the release did, once it
/// finished.
pub fn already_decided(decision: Option<&DecisionRecord>, outcome: Option<&OutcomeRecord>) -> Page {
    let text = match decision {
        Some(decision) => {
            let what = if decision.action == Decision::Allow.action() {
                "approved"
            } else {
                "denied"
            };
            format!(
                "This approval request was already answered: {what} on {}. Nothing was changed.",
                when(&decision.decided_at)
            )
        }
        None => "This approval request was already answered, has expired, or its run has ended. Nothing was changed.".to_owned(),
    };
    let mut content = format!("<p>{}</p>", escape(&text));
    if let Some(outcome) = outcome {
        let _ = write!(
            content,
            "\n<p>The release finished on {}: {} object(s) released.</p>",
            escape(&when(&outcome.finished_at)),
            outcome.released
        );
        if !outcome.superseded.is_empty() {
            let _ = writeln!(
                content,
                "\n<h2>Approved but not released ({})</h2>",
                outcome.superseded.len()
            );
            supersessions(&mut content, &outcome.superseded);
        }
    }
    page(410, "Already decided or expired", &content)
}

/// The request's time ran out before a decision.
pub fn expired(record: &ApprovalRecord) -> Page {
    page(
        410,
        "This approval request has expired",
        &format!(
            "<p>It expired on {}. As configured, {}. Nothing was changed by opening this link.</p>",
            escape(&when(&record.expires_at)),
            escape(record.timeout_action.describe())
        ),
    )
}

/// No request is stored for this token.
pub fn not_found() -> Page {
    page(
        404,
        "No such approval request",
        "<p>This link does not belong to a pending approval request: it may have been changed, or cleaned up long after its run ended. Nothing was changed.</p>",
    )
}

/// The request itself is wrong (no token, a token too long, not a form).
pub fn bad_request(problem: &str) -> Page {
    page(
        400,
        "This link is not valid",
        &format!(
            "<p>{}</p><p class=\"note\">Open the link from the approval email again.</p>",
            escape(problem)
        ),
    )
}

/// Step Functions could not be reached or refused for another reason. No internals are shown.
pub fn upstream_failure() -> Page {
    page(
        502,
        "The decision could not be recorded",
        "<p>The workflow service did not accept the decision. Nothing was changed; try again in a minute.</p>",
    )
}

/// The request or its object list could not be read. No internals are shown.
pub fn unavailable() -> Page {
    page(
        503,
        "The approval request could not be loaded",
        "<p>The list of held objects could not be read just now. Nothing was changed; try again in a minute.</p>",
    )
}

/// A method other than GET or POST.
pub fn method_not_allowed() -> Page {
    let mut page = page(
        405,
        "Method not allowed",
        "<p>Open the link from the approval email.</p>",
    );
    page.headers.push(("allow", "GET, POST".to_owned()));
    page
}

/// HTML-escapes text for element content and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::TimeoutAction;
    use crate::macie::severity::Severity;
    use crate::manifest::{Detection, ManifestRef, NotAnalysedStatus, fixtures};
    use crate::workflow::WorkflowId;

    fn header<'a>(page: &'a Page, name: &str) -> &'a str {
        page.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    fn record() -> ApprovalRecord {
        ApprovalRecord {
            workflow_id: WorkflowId::parse("wf-1").unwrap(),
            manifest: ManifestRef {
                bucket: "manifests".into(),
                key: "workflows/wf%2D1/j/findings.json".into(),
            },
            expires_at: "2026-12-03T10:00:00Z".into(),
            timeout_action: TimeoutAction::Deny,
            manual_review_bucket: "review".into(),
            scanned_data_bucket: "scanned".into(),
        }
    }

    fn flagged(key: &str) -> FlaggedObject {
        let cards = Detection {
            kind: "CREDIT_CARD_NUMBER".into(),
            count: 3,
        };
        fixtures::flagged(key, Severity::High, vec![cards])
    }

    fn manifest(objects: Vec<FlaggedObject>) -> Manifest {
        let mut manifest = fixtures::manifest("wf-1", objects);
        manifest.not_analysed = vec![NotAnalysedObject {
            key: "scan <1>.png".into(),
            size: 10,
            status: NotAnalysedStatus::Skipped,
            reasons: vec!["UNSUPPORTED_FILE_TYPE_EXCEPTION".into()],
        }];
        manifest
    }

    fn render(manifest: &Manifest) -> Page {
        review(&Review {
            opened: Decision::Allow,
            token: "a+b/\"<c>",
            record: &record(),
            manifest,
        })
    }

    #[test]
    fn the_review_page_lists_every_held_object_and_decides_nothing() {
        let page = render(&manifest(vec![
            flagged("cards.csv"),
            flagged("evil\n<b>x</b>"),
        ]));
        assert_eq!(page.status, 200);
        let body = &page.body;
        assert!(
            body.contains("<title>Review 3 held object(s)</title>"),
            "{body}"
        );
        assert!(body.contains("<td data-label=\"Object\" class=\"key\">cards.csv</td>"));
        assert!(body.contains("CREDIT_CARD_NUMBER x3"));
        assert!(body.contains("<td data-label=\"Severity\" class=\"high\">High</td>"));
        // Keys are shown, never interpreted: markup escaped, control characters visible.
        assert!(body.contains("evil\\u{a}&lt;b&gt;x&lt;/b&gt;"), "{body}");
        assert!(body.contains("scan &lt;1&gt;.png"));
        assert!(body.contains("UNSUPPORTED_FILE_TYPE_EXCEPTION"));
        assert!(body.contains("2026-12-03 10:00 UTC"));
        assert!(body.contains("deleted, as if denied"));
        // Two forms, each posting the token to its own decision.
        assert!(body.contains("<form method=\"post\" action=\"allow\">"));
        assert!(body.contains("<form method=\"post\" action=\"deny\">"));
        assert_eq!(body.matches("value=\"a+b/&quot;&lt;c&gt;\"").count(), 2);
        assert!(body.contains(">Approve: release 3 to s3://scanned</button>"));
        assert!(body.contains(">Deny: delete 3</button>"));
        assert!(body.contains("<html lang=\"en\">"));
        assert!(!body.contains("<script"));
    }

    #[test]
    fn long_lists_put_the_buttons_on_top_too_and_are_cut() {
        let objects = (0..MAX_PAGE_ROWS + 5)
            .map(|i| flagged(&format!("k{i}")))
            .collect();
        let page = render(&manifest(objects));
        assert_eq!(page.body.matches("action=\"allow\"").count(), 2);
        assert!(page.body.contains(
            "... and 5 more, not shown. The full list is in s3://manifests/workflows/wf%2D1/j/findings.json"
        ));
        let short = render(&manifest(vec![flagged("a")]));
        assert_eq!(short.body.matches("action=\"allow\"").count(), 1);
    }

    #[test]
    fn every_page_has_the_security_headers() {
        let manifest = manifest(vec![flagged("a")]);
        let decision = DecisionRecord {
            action: "delete".into(),
            decided_at: "2026-11-28T10:00:00Z".into(),
        };
        for page in [
            render(&manifest),
            decided(Decision::Allow, Some(&record())),
            decided(Decision::Deny, None),
            already_decided(Some(&decision), None),
            already_decided(None, None),
            expired(&record()),
            not_found(),
            bad_request("x"),
            upstream_failure(),
            unavailable(),
            method_not_allowed(),
        ] {
            assert_eq!(header(&page, "referrer-policy"), "no-referrer");
            assert_eq!(header(&page, "cache-control"), "no-store");
            assert_eq!(header(&page, "x-content-type-options"), "nosniff");
            let csp = header(&page, "content-security-policy");
            assert!(csp.starts_with("default-src 'none';"));
            assert!(csp.contains("frame-ancestors 'none'"));
            assert!(!page.body.contains("<script"));
        }
    }

    #[test]
    fn the_style_hash_matches_the_inline_style() {
        let page = decided(Decision::Deny, None);
        let csp = header(&page, "content-security-policy");
        let hash =
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
        assert!(csp.contains(&format!("'sha256-{hash}'")));
        assert!(page.body.contains(&format!("<style>{STYLE}</style>")));
    }

    #[test]
    fn outcomes_say_what_happened() {
        let decision = DecisionRecord {
            action: "delete".into(),
            decided_at: "2026-11-28T10:00:00Z".into(),
        };
        let page = already_decided(Some(&decision), None);
        assert_eq!(page.status, 410);
        assert!(
            page.body
                .contains("already answered: denied on 2026-11-28 10:00 UTC")
        );
        assert!(
            decided(Decision::Allow, Some(&record()))
                .body
                .contains("released to s3://scanned")
        );
        assert_eq!(expired(&record()).status, 410);
        assert_eq!(not_found().status, 404);
        assert_eq!(bad_request("x").status, 400);
        assert_eq!(upstream_failure().status, 502);
        assert_eq!(unavailable().status, 503);
        assert_eq!(method_not_allowed().status, 405);
    }
}
