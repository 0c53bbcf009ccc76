//! The false-positives page: the rules reviewers added (who, when, from which run) with a way to
//! remove each, and, opened from a held object, the three ways to say what about it is a false
//! positive. Like the review page it is reached with the review's link, changes nothing on a GET,
//! and asks for the reviewer's name before anything is recorded. The only values it stores are
//! the ones the reviewer types; it never shows what Macie detected.

use std::fmt::Write as _;

use crate::approval::page::{Page, escape, page, visible, when};
use crate::approval::visit::MAX_REVIEWER_LEN;
use crate::false_positives::rules::{FINDING_TYPES, ListedRule, Rule};
use crate::manifest::FlaggedObject;

/// The API path of the page.
pub const PATH_SEGMENT: &str = "false-positives";

/// What a form of the page asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Add a rule; `object` is the SHA-256 of the held key it was judged from, if any.
    Add { rule: Rule, object: Option<String> },
    /// Remove the rule with this id.
    Remove { id: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub token: String,
    pub reviewer: String,
    pub change: Change,
}

fn is_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads a form of the page. Fields the page does not send are refused; a rule that Macie would
/// refuse is refused here, with the reason, before anything is stored.
pub fn parse_form(body: &str) -> Result<Form, String> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(body.as_bytes()) {
        let name = name.into_owned();
        if ![
            "token",
            "reviewer",
            "object",
            "kind",
            "text",
            "regex",
            "findingType",
            "keyPrefix",
            "remove",
        ]
        .contains(&name.as_str())
        {
            return Err("The form has a field the page does not send.".into());
        }
        if fields.iter().any(|(seen, _)| *seen == name) {
            return Err("The form sends a field twice.".into());
        }
        fields.push((name, value.into_owned()));
    }
    let field = |name: &str| {
        fields
            .iter()
            .find(|(seen, _)| seen == name)
            .map(|(_, value)| value.as_str())
    };
    let token = field("token")
        .filter(|t| !t.is_empty())
        .ok_or("The form has no approval token.")?
        .to_owned();
    let reviewer = field("reviewer").map(str::trim).unwrap_or_default();
    if reviewer.is_empty() {
        return Err(
            "Enter your name or address first: every change of the list is recorded with it."
                .into(),
        );
    }
    if reviewer.chars().count() > MAX_REVIEWER_LEN || reviewer.chars().any(char::is_control) {
        return Err("The reviewer name must be one line of at most 200 characters.".into());
    }
    let change = if let Some(id) = field("remove") {
        if !is_hash(id) {
            return Err("The form names a rule the page does not list.".into());
        }
        Change::Remove {
            id: id.to_ascii_lowercase(),
        }
    } else {
        let object = match field("object") {
            None | Some("") => None,
            Some(hash) if is_hash(hash) => Some(hash.to_ascii_lowercase()),
            Some(_) => return Err("The form names an object the review does not hold.".into()),
        };
        let rule = match field("kind") {
            Some("phrase") => Rule::phrase(field("text").unwrap_or_default())?,
            Some("pattern") => Rule::pattern(field("regex").unwrap_or_default())?,
            Some("suppression") => Rule::suppression(
                field("findingType").unwrap_or_default(),
                field("keyPrefix").unwrap_or_default(),
            )?,
            _ => return Err("Choose what kind of rule to add.".into()),
        };
        Change::Add { rule, object }
    };
    Ok(Form {
        token,
        reviewer: reviewer.to_owned(),
        change,
    })
}

/// Everything the page shows.
pub struct FalsePositivesView<'a> {
    pub token: &'a str,
    pub rules: &'a [ListedRule],
    /// The held object the reviewer came from, if any.
    pub judged: Option<&'a FlaggedObject>,
    /// What the last POST did, and the reviewer name to keep in the fields.
    pub notice: Option<(&'a str, &'a str)>,
    /// The scan-stage bucket, where prefixes apply.
    pub scan_stage_bucket: &'a str,
}

/// The folder of a key: what a prefix rule for objects like it would most likely name.
fn folder(key: &str) -> &str {
    key.rfind('/').map_or("", |end| &key[..=end])
}

fn reviewer_field(content: &mut String, id: &str, value: &str) {
    let _ = writeln!(
        content,
        "<p><label for=\"{id}\">Your name or email address (recorded with the change)</label><br>\
         <input id=\"{id}\" name=\"reviewer\" type=\"text\" required maxlength=\"{MAX_REVIEWER_LEN}\" autocomplete=\"email\" value=\"{}\"></p>",
        escape(value)
    );
}

/// The page: the form to add a rule (for the object judged, if any) and the list.
pub fn render(view: &FalsePositivesView<'_>) -> Page {
    let mut content = String::new();
    let name = view.notice.map_or("", |(_, name)| name);
    if let Some((notice, _)) = view.notice {
        let _ = writeln!(
            content,
            "<p class=\"notice\" role=\"status\">{}</p>",
            escape(notice)
        );
    }
    content.push_str(
        "<p>A rule changes what the gate holds from the next run on; the runs already scanned keep their findings. \
         Phrases and patterns go into the gate's own Macie allow lists, so Macie ignores that text wherever it would detect it. \
         A suppressed finding type stops holding objects under a key prefix; Macie still reports the findings, and each run's manifest lists the ones a rule set aside.</p>\n",
    );
    let _ = writeln!(
        content,
        "<form method=\"post\" action=\"{PATH_SEGMENT}\">\n<input type=\"hidden\" name=\"token\" value=\"{}\">",
        escape(view.token)
    );
    let (heading, prefix, types): (String, &str, Vec<&str>) = match view.judged {
        Some(object) => {
            let _ = writeln!(
                content,
                "<input type=\"hidden\" name=\"object\" value=\"{}\">",
                crate::s3::documents::hashed_name(&object.key)
            );
            let found: Vec<String> = object.detections.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                content,
                "<dl>\n<dt>Object</dt><dd>{}</dd>\n<dt>Finding types</dt><dd>{}</dd>\n<dt>Detected</dt><dd>{}</dd>\n</dl>",
                escape(&visible(&object.key)),
                escape(&object.finding_types.join(", ")),
                escape(&found.join(", ")),
            );
            (
                "Mark what Macie found here as a false positive".to_owned(),
                folder(&object.key),
                object.finding_types.iter().map(String::as_str).collect(),
            )
        }
        None => ("Add a rule".to_owned(), "", FINDING_TYPES.to_vec()),
    };
    let _ = writeln!(content, "<h2>{}</h2>", escape(&heading));
    reviewer_field(&mut content, "reviewer-add", name);
    let _ = write!(
        content,
        "<fieldset class=\"bulk\"><legend>Kind of rule</legend>\
         <label><input type=\"radio\" name=\"kind\" value=\"phrase\" checked> Ignore a phrase: text Macie detects that is exactly this (any case), at most 90 characters</label>\
         <p><label for=\"text\">Phrase</label><input id=\"text\" name=\"text\" type=\"text\" maxlength=\"90\"></p>\
         <label><input type=\"radio\" name=\"kind\" value=\"pattern\"> Ignore a pattern: text Macie detects that this regular expression matches completely</label>\
         <p><label for=\"regex\">Regular expression</label><input id=\"regex\" name=\"regex\" type=\"text\" maxlength=\"512\"></p>\
         <label><input type=\"radio\" name=\"kind\" value=\"suppression\"> Do not hold objects for a finding type under a key prefix (in s3://{})</label>\
         <p><label for=\"findingType\">Finding type</label><select id=\"findingType\" name=\"findingType\">",
        escape(view.scan_stage_bucket)
    );
    for kind in types {
        let _ = write!(content, "<option value=\"{0}\">{0}</option>", escape(kind));
    }
    let _ = writeln!(
        content,
        "</select></p><p><label for=\"keyPrefix\">Key prefix</label><input id=\"keyPrefix\" name=\"keyPrefix\" type=\"text\" maxlength=\"1024\" value=\"{}\"></p></fieldset>\n\
         <p class=\"note\">Type only text that is not sensitive: what you type is stored and shown on this page.</p>\n\
         <div class=\"actions\"><button type=\"submit\" class=\"record\">Add the rule</button></div>\n</form>",
        escape(prefix)
    );
    rule_list(&mut content, view, name);
    page(200, "False positives", &content)
}

fn rule_list(content: &mut String, view: &FalsePositivesView<'_>, name: &str) {
    let _ = writeln!(content, "<h2>Rules on the list ({})</h2>", view.rules.len());
    if view.rules.is_empty() {
        content.push_str("<p>No rule yet.</p>\n");
        return;
    }
    let _ = writeln!(
        content,
        "<form method=\"post\" action=\"{PATH_SEGMENT}\">\n<input type=\"hidden\" name=\"token\" value=\"{}\">",
        escape(view.token)
    );
    reviewer_field(content, "reviewer-remove", name);
    content.push_str(
        "<table>\n<caption>Removing a rule takes effect from the next run, and is recorded with your name.</caption>\n\
         <thead><tr><th scope=\"col\">Rule</th><th scope=\"col\">Added by</th><th scope=\"col\">Added</th>\
         <th scope=\"col\">From</th><th scope=\"col\">Remove</th></tr></thead>\n<tbody>\n",
    );
    for listed in view.rules {
        let from = match &listed.judged_object {
            Some(key) => format!("run {}, object {}", listed.added_in.as_str(), key),
            None => format!("run {}", listed.added_in.as_str()),
        };
        let _ = writeln!(
            content,
            "<tr><td data-label=\"Rule\" class=\"key\">{}</td><td data-label=\"Added by\">{}</td><td data-label=\"Added\">{}</td>\
             <td data-label=\"From\" class=\"key\">{}</td><td data-label=\"Remove\"><button type=\"submit\" class=\"record\" name=\"remove\" value=\"{}\">Remove</button></td></tr>",
            escape(&visible(&listed.rule.describe())),
            escape(&visible(&listed.added_by.name)),
            escape(&when(&listed.added_at)),
            escape(&visible(&from)),
            escape(&listed.id),
        );
    }
    content.push_str("</tbody>\n</table>\n</form>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::decisions::Reviewer;
    use crate::workflow::WorkflowId;

    #[test]
    fn forms_add_or_remove_one_rule_and_need_a_reviewer() {
        let form = parse_form("token=t%2B1&reviewer=+ada+&kind=phrase&text=+ACME+test+card+&regex=&findingType=SensitiveData%3AS3Object%2FPersonal&keyPrefix=a%2F").unwrap();
        assert_eq!(form.token, "t+1");
        assert_eq!(form.reviewer, "ada");
        assert_eq!(
            form.change,
            Change::Add {
                rule: Rule::phrase("ACME test card").unwrap(),
                object: None
            }
        );
        let suppress = parse_form(&format!(
            "token=t&reviewer=ada&object={}&kind=suppression&findingType=SensitiveData%3AS3Object%2FPersonal&keyPrefix=fixtures%2F",
            "A".repeat(64)
        ))
        .unwrap();
        assert_eq!(
            suppress.change,
            Change::Add {
                rule: Rule::suppression("SensitiveData:S3Object/Personal", "fixtures/").unwrap(),
                object: Some("a".repeat(64))
            }
        );
        let remove =
            parse_form(&format!("token=t&reviewer=ada&remove={}", "b".repeat(64))).unwrap();
        assert_eq!(remove.change, Change::Remove { id: "b".repeat(64) });
        for (body, problem) in [
            ("token=t&kind=phrase&text=x", "name or address"),
            ("reviewer=ada&kind=phrase&text=x", "no approval token"),
            ("token=t&reviewer=ada&kind=phrase&text=", "1 to 90"),
            (
                "token=t&reviewer=ada&kind=pattern&regex=(%3F%3Da)",
                "lookaround",
            ),
            (
                "token=t&reviewer=ada&kind=suppression&findingType=x&keyPrefix=a",
                "not a Macie",
            ),
            ("token=t&reviewer=ada&kind=other", "Choose"),
            ("token=t&reviewer=ada&remove=zz", "does not list"),
            ("token=t&reviewer=ada&action=allow", "does not send"),
            ("token=t&token=u&reviewer=ada", "twice"),
        ] {
            let err = parse_form(body).unwrap_err();
            assert!(err.contains(problem), "{body}: {err}");
        }
    }

    #[test]
    fn the_page_lists_rules_with_who_added_them_and_never_a_detected_value() {
        let rule = Rule::phrase("ACME <test>").unwrap();
        let rules = [ListedRule {
            id: rule.id(),
            rule,
            added_by: Reviewer {
                name: "Ada".into(),
                source_ip: Some("203.0.113.9".into()),
                user_agent: None,
            },
            added_at: "2026-12-02T10:00:00Z".into(),
            added_in: WorkflowId::parse("wf-1").unwrap(),
            judged_object: Some("exports/a.csv".into()),
        }];
        let object = FlaggedObject {
            key: "exports/a.csv".into(),
            size: 10,
            highest_severity: crate::macie::severity::Severity::High,
            finding_types: vec!["SensitiveData:S3Object/Personal".into()],
            detections: vec![crate::manifest::Detection {
                kind: "EMAIL_ADDRESS".into(),
                count: 2,
            }],
            finding_ids: vec!["f1".into()],
            route: crate::manifest::Route::Review,
            incomplete_analysis: None,
        };
        let page = render(&FalsePositivesView {
            token: "tok\"en",
            rules: &rules,
            judged: Some(&object),
            notice: Some(("Added.", "Ada")),
            scan_stage_bucket: "scan",
        });
        assert_eq!(page.status, 200);
        let body = &page.body;
        assert!(body.contains("Ignore the phrase &quot;ACME &lt;test&gt;&quot;"));
        assert!(body.contains("Ada"));
        assert!(body.contains(&format!("name=\"remove\" value=\"{}\"", rules[0].id)));
        assert!(body.contains("value=\"tok&quot;en\""));
        assert!(body.contains("EMAIL_ADDRESS x2"));
        assert!(
            body.contains("name=\"keyPrefix\" type=\"text\" maxlength=\"1024\" value=\"exports/\"")
        );
        assert!(
            !body.contains("203.0.113.9"),
            "the list shows names, not addresses"
        );
    }
}
