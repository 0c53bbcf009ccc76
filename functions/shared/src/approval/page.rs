//! The decision page. A GET (what a mail scanner's link pre-fetch does) only shows what is being
//! decided; the decision is the form's POST. The page needs no script and loads nothing from
//! elsewhere, and the headers keep the token out of Referer headers, caches and frames.

use std::sync::LazyLock;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::approval::links::Decision;

/// The page's only style sheet, allowed by its hash in the CSP.
const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;padding:1.5rem;color:#1a1a1a;background:#fff;line-height:1.5}\
main{max-width:40rem;margin:0 auto}\
h1{font-size:1.5rem;margin:0 0 1rem}\
p{margin:0 0 1rem}\
button{font-size:1.1rem;padding:.75rem 1.5rem;border:0;border-radius:.4rem;color:#fff;cursor:pointer}\
.allow{background:#0b6e2f}.deny{background:#a4161a}\
.note{color:#444;font-size:.95rem}";

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

/// GET: asks the reviewer to confirm. Nothing has been decided yet.
pub fn confirm(decision: Decision, token: &str) -> Page {
    let (title, explanation, button, class) = match decision {
        Decision::Allow => (
            "Approve the flagged objects?",
            "Approving releases the objects held for review to the scanned-data bucket, tagged SensitiveDataFound=true, where the next pipeline stage reads them.",
            "Approve and release",
            "allow",
        ),
        Decision::Deny => (
            "Deny the flagged objects?",
            "Denying deletes the objects held for review. This cannot be undone.",
            "Deny and delete",
            "deny",
        ),
    };
    page(
        200,
        title,
        &format!(
            "<p>{explanation}</p>\n<p class=\"note\">Nothing has changed yet: the decision is made only when you press the button.</p>\n\
             <form method=\"post\" action=\"{action}\">\n<input type=\"hidden\" name=\"token\" value=\"{token}\">\n\
             <button type=\"submit\" class=\"{class}\">{button}</button>\n</form>",
            action = decision.path_segment(),
            token = escape(token),
        ),
    )
}

/// POST succeeded.
pub fn decided(decision: Decision) -> Page {
    let (title, text) = match decision {
        Decision::Allow => (
            "Approved",
            "The objects are being released to the scanned-data bucket.",
        ),
        Decision::Deny => ("Denied", "The objects are being deleted."),
    };
    page(200, title, &format!("<p>{text}</p>"))
}

/// The token was used already, or expired, or the run ended.
pub fn already_decided() -> Page {
    page(
        410,
        "Already decided or expired",
        "<p>This approval request was already answered, has expired, or its run has ended. Nothing was changed.</p>",
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

    fn header<'a>(page: &'a Page, name: &str) -> &'a str {
        page.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    #[test]
    fn the_confirmation_page_posts_the_token_and_decides_nothing() {
        let page = confirm(Decision::Allow, "a+b/\"<c>");
        assert_eq!(page.status, 200);
        assert!(
            page.body
                .contains("<form method=\"post\" action=\"allow\">")
        );
        assert!(page.body.contains("value=\"a+b/&quot;&lt;c&gt;\""));
        assert!(page.body.contains("<html lang=\"en\">"));
        assert!(!page.body.contains("<script"));
    }

    #[test]
    fn every_page_has_the_security_headers() {
        for page in [
            confirm(Decision::Deny, "t"),
            decided(Decision::Allow),
            already_decided(),
            bad_request("x"),
            upstream_failure(),
            method_not_allowed(),
        ] {
            assert_eq!(header(&page, "referrer-policy"), "no-referrer");
            assert_eq!(header(&page, "cache-control"), "no-store");
            assert_eq!(header(&page, "x-content-type-options"), "nosniff");
            let csp = header(&page, "content-security-policy");
            assert!(csp.starts_with("default-src 'none';"));
            assert!(csp.contains("frame-ancestors 'none'"));
        }
    }

    #[test]
    fn the_style_hash_matches_the_inline_style() {
        let page = decided(Decision::Deny);
        let csp = header(&page, "content-security-policy");
        let hash =
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
        assert!(csp.contains(&format!("'sha256-{hash}'")));
        assert!(page.body.contains(&format!("<style>{STYLE}</style>")));
    }

    #[test]
    fn statuses_tell_what_happened() {
        assert_eq!(already_decided().status, 410);
        assert_eq!(bad_request("x").status, 400);
        assert_eq!(upstream_failure().status, 502);
        assert_eq!(method_not_allowed().status, 405);
    }
}
