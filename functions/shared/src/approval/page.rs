//! The pages of the approval API: what every page shares (the style, the security headers, the
//! table), and the pages that are not the review itself (see [`crate::approval::review_page`]).
//! No page needs a script or loads anything from elsewhere, and the headers keep the token out of
//! Referer headers, caches and frames. On a narrow screen the tables become one card per object.

use std::fmt::Write as _;
use std::sync::LazyLock;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::approval::email::format_time;
use crate::approval::record::ApprovalRecord;
use crate::manifest::Supersession;

/// Rows a supporting table (versions kept aside) lists; the rest are in the manifest.
pub const MAX_TABLE_ROWS: usize = 1000;

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
fieldset{border:0;padding:0;margin:0}\
.choice label{display:inline-block;margin:0 .75rem .25rem 0;white-space:nowrap}\
.bulk{border:1px solid #767676;border-radius:.4rem;padding:.5rem 1rem;margin:1rem 0}.bulk legend{font-weight:600;padding:0 .25rem}.bulk label{display:block;margin:.25rem 0}\
input[type=radio]{width:1.15rem;height:1.15rem;vertical-align:-.2rem;margin:0 .25rem 0 0}\
input[type=text]{font:inherit;padding:.5rem;width:100%;max-width:30rem;box-sizing:border-box;border:1px solid #767676;border-radius:.25rem}\
button{font:inherit;font-size:1.1rem;padding:.75rem 1.5rem;border:0;border-radius:.4rem;color:#fff;cursor:pointer;min-height:3rem}\
button:focus,input:focus,a:focus{outline:3px solid #1a4f9c;outline-offset:2px}\
.record{background:#1a4f9c}\
.decided{font-weight:600}\
.notice{background:#e8f0fe;border-left:4px solid #1a4f9c;padding:.5rem 1rem}\
.pages{display:flex;flex-wrap:wrap;gap:1rem;align-items:center;margin:0 0 1rem}\
.sr{position:absolute;left:-9999px}\
.note{color:#444;font-size:.95rem}\
@media (max-width:40rem){dl{grid-template-columns:1fr}dd{margin:0 0 .5rem}thead{position:absolute;left:-9999px}table,caption,tbody,tr,td{display:block}tr{border-bottom:2px solid #999;padding:.5rem 0}td{border:0;padding:.1rem 0}td::before{content:attr(data-label) \": \";font-weight:600;font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif}.choice label{display:block;padding:.35rem 0}.actions{flex-direction:column}button{width:100%}}";

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

pub(crate) fn page(status: u16, title: &str, content: &str) -> Page {
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

/// A table of versions kept aside instead of replacing a newer one.
pub(crate) fn supersessions(content: &mut String, kept: &[Supersession]) {
    let rows = kept.iter().take(MAX_TABLE_ROWS).map(|supersession| {
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

/// A table whose cells are (text, class); texts are escaped here.
pub(crate) fn table(
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

/// A key with control characters made visible, so a key cannot forge lines or hide text.
pub(crate) fn visible(text: &str) -> String {
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
pub(crate) fn when(rfc3339: &str) -> String {
    OffsetDateTime::parse(rfc3339, &Rfc3339).map_or_else(|_| rfc3339.to_owned(), format_time)
}

/// The run no longer waits for this review: every object was decided and the run was told, it
/// timed out, or it ended otherwise.
pub fn closed() -> Page {
    page(
        410,
        "This review is closed",
        "<p>Its run no longer waits for decisions: every held object was decided, the review timed out, or the run ended. Nothing was changed.</p>",
    )
}

/// The request's time ran out before a decision.
pub fn expired(record: &ApprovalRecord) -> Page {
    page(
        410,
        "This review has expired",
        &format!(
            "<p>It expired on {}. Decisions made before then are carried out; as configured, {}. Nothing was changed by opening this link.</p>",
            escape(&when(&record.expires_at)),
            escape(record.timeout_action.describe_undecided())
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

/// A form whose content cannot be used (a rule Macie would refuse, a field left empty).
pub fn form_problem(problem: &str) -> Page {
    page(
        400,
        "The change was not made",
        &format!(
            "<p>{}</p><p class=\"note\">Go back, correct it and send it again.</p>",
            escape(problem)
        ),
    )
}

/// Step Functions could not be reached or refused for another reason. No internals are shown.
pub fn upstream_failure() -> Page {
    page(
        502,
        "The run could not be told",
        "<p>Your decisions are recorded, but the workflow service did not take the news that every object is decided. Open the link again in a minute and send them again.</p>",
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
    use crate::manifest::ManifestRef;
    use crate::workflow::WorkflowId;

    pub(crate) fn header<'a>(page: &'a Page, name: &str) -> &'a str {
        page.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    pub(crate) fn record() -> ApprovalRecord {
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

    #[test]
    fn every_page_has_the_security_headers() {
        for page in [
            closed(),
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
        let page = closed();
        let csp = header(&page, "content-security-policy");
        let hash =
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
        assert!(csp.contains(&format!("'sha256-{hash}'")));
        assert!(page.body.contains(&format!("<style>{STYLE}</style>")));
    }

    #[test]
    fn outcomes_say_what_happened() {
        assert_eq!(closed().status, 410);
        let expired = expired(&record());
        assert_eq!(expired.status, 410);
        assert!(
            expired
                .body
                .contains("Decisions made before then are carried out")
        );
        assert_eq!(not_found().status, 404);
        assert_eq!(bad_request("x").status, 400);
        assert_eq!(upstream_failure().status, 502);
        assert_eq!(unavailable().status, 503);
        assert_eq!(method_not_allowed().status, 405);
    }
}
