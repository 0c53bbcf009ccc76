//! Input transformation, as EventBridge rules (`InputTransformer`) and Pipes (`InputTemplate`)
//! apply it: a template whose `<placeholder>`s are filled from the event. A placeholder inside
//! a JSON string is replaced by the value's text (a string without its quotes), one outside a
//! string by the value as JSON, so `{"id": <id>, "text": "run <id>"}` gives
//! `{"id": "abc", "text": "run abc"}`. A path that finds nothing gives `null` (or nothing
//! inside a string), as in AWS.

use std::collections::BTreeMap;

use serde_json::Value;

/// Fills `template`'s placeholders with `resolve(name)`. The result must be JSON when the
/// template is: both services refuse a target input that is not.
pub fn fill(template: &str, resolve: impl Fn(&str) -> Option<Value>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        if c == '<'
            && let Some(end) = rest.find('>')
            && is_name(&rest[1..end])
        {
            let value = resolve(&rest[1..end]);
            if in_string {
                out.push_str(&string_text(value.as_ref()));
            } else {
                out.push_str(&value.unwrap_or(Value::Null).to_string());
            }
            rest = &rest[end + 1..];
            continue;
        }
        match c {
            '\\' if in_string => escaped = !escaped,
            '"' if !escaped => in_string = !in_string,
            _ => escaped = false,
        }
        if c == '"' {
            escaped = false;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// A value's text inside a JSON string: a string's characters (escaped), anything else as
/// JSON text (escaped).
fn string_text(value: Option<&Value>) -> String {
    let text = match value {
        None | Some(Value::Null) => return String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    let quoted = Value::String(text).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "$._-[]".contains(c))
}

/// The value at a JSONPath of the simple form transformers use: `$`, `$.a.b`, `$.a[0].b`,
/// `$.detail-type`. A JSON string met on the way is read as JSON when it is (Pipes' implicit
/// body parsing: `$.body.id` reads into an SQS message's body).
pub fn path(value: &Value, path: &str) -> Option<Value> {
    let rest = path.strip_prefix('$')?;
    let mut current = value.clone();
    for segment in rest.split('.').skip(1) {
        let (name, indexes) = match segment.find('[') {
            Some(at) => (&segment[..at], &segment[at..]),
            None => (segment, ""),
        };
        if let Value::String(text) = &current
            && let Ok(parsed) = serde_json::from_str::<Value>(text)
        {
            current = parsed;
        }
        if !name.is_empty() {
            current = current.get(name)?.clone();
        }
        for index in indexes.split(['[', ']']).filter(|part| !part.is_empty()) {
            current = current.get(index.parse::<usize>().ok()?)?.clone();
        }
    }
    Some(current)
}

/// An EventBridge `InputTransformer`: each name of `paths` read from the event, and the
/// predefined `aws.events.*` variables.
pub fn rule_input(
    event: &Value,
    rule_arn: &str,
    paths: &BTreeMap<String, String>,
    template: &str,
) -> String {
    fill(template, |name| match name {
        "aws.events.event" | "aws.events.event.json" => Some(event.clone()),
        "aws.events.rule-arn" => Some(Value::String(rule_arn.to_owned())),
        "aws.events.rule-name" => Some(Value::String(
            rule_arn.rsplit('/').next().unwrap_or_default().to_owned(),
        )),
        "aws.events.event.ingestion-time" => event.get("time").cloned(),
        _ => paths.get(name).and_then(|p| path(event, p)),
    })
}

/// A Pipes `InputTemplate` over one record: `<$.path>` into the record, and the predefined
/// `aws.pipes.*` variables.
pub fn pipe_input(record: &Value, pipe_arn: &str, template: &str) -> String {
    fill(template, |name| match name {
        "aws.pipes.event" | "aws.pipes.event.json" => Some(record.clone()),
        "aws.pipes.pipe-arn" => Some(Value::String(pipe_arn.to_owned())),
        "aws.pipes.pipe-name" => Some(Value::String(
            pipe_arn.rsplit('/').next().unwrap_or_default().to_owned(),
        )),
        _ if name.starts_with('$') => path(record, name),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_are_json_outside_strings_and_text_inside() {
        let event = json!({"id": "e-1", "detail-type": "Job \"Done\"", "detail": {"n": 3, "tags": ["a", "b"]}});
        let paths = BTreeMap::from([
            ("id".to_owned(), "$.id".to_owned()),
            ("kind".to_owned(), "$.detail-type".to_owned()),
            ("n".to_owned(), "$.detail.n".to_owned()),
            ("second".to_owned(), "$.detail.tags[1]".to_owned()),
            ("missing".to_owned(), "$.detail.nope".to_owned()),
        ]);
        let out = rule_input(
            &event,
            "arn:aws:events:us-east-1:000000000000:rule/r",
            &paths,
            r#"{"id": <id>, "kind": <kind>, "n": <n>, "text": "run <id> of <kind>, <n> <second><missing>", "gone": <missing>, "rule": "<aws.events.rule-name>"}"#,
        );
        let parsed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            parsed,
            json!({"id": "e-1", "kind": "Job \"Done\"", "n": 3, "text": "run e-1 of Job \"Done\", 3 b", "gone": null, "rule": "r"})
        );
    }

    #[test]
    fn a_pipe_template_reads_into_an_sqs_body_that_is_json() {
        let record = json!({"messageId": "m-1", "body": "{\"id\": \"s3-event-1\", \"detail\": {\"object\": {\"key\": \"a/b.csv\"}}}"});
        let out = pipe_input(
            &record,
            "arn:aws:pipes:us-east-1:000000000000:pipe/p",
            r#"{"eventId": "<$.body.id>", "m": <$.messageId>}"#,
        );
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap(),
            json!({"eventId": "s3-event-1", "m": "m-1"})
        );
        // Text that only looks like a placeholder stays as it is.
        assert_eq!(fill("a < b > c", |_| None), "a < b > c");
    }
}
