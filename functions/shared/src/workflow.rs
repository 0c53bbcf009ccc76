//! The workflow id: the name of one run. Every object a run moves carries it as the
//! `WorkflowId` tag, and the Macie job is scoped to that tag, so overlapping runs never touch
//! each other's objects.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::PipelineError;
use crate::tags;

/// A validated workflow id (usable as an S3 tag value and in a Macie tag scope).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkflowId(String);

impl WorkflowId {
    /// Checks `id` against the S3 tag-value rules; the message says what is wrong.
    pub fn parse(id: &str) -> Result<Self, PipelineError> {
        if id.is_empty() {
            return Err(PipelineError::InvalidInput(
                "workflow id must not be empty".into(),
            ));
        }
        tags::validate_value(id)
            .map(|()| Self(id.to_owned()))
            .map_err(|problem| {
                PipelineError::InvalidInput(format!(
                    "workflow id {:?} cannot be used as an S3 tag value: {problem}",
                    truncate_for_message(id)
                ))
            })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkflowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for WorkflowId {
    type Error = PipelineError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<WorkflowId> for String {
    fn from(id: WorkflowId) -> Self {
        id.0
    }
}

/// The workflow id of a run: the execution input's `id` when present (an EventBridge event, a
/// scheduled one or one TriggerEventPattern matched, carries one), else the execution name.
/// The arrival pipe starts a run with its batch, a JSON array of the arrivals' S3 event ids:
/// the batch has no id of its own, and the execution name Step Functions gave it is unique.
pub fn workflow_id_for(
    execution_input: &Value,
    execution_name: &str,
) -> Result<WorkflowId, PipelineError> {
    let by_name = || {
        WorkflowId::parse(execution_name).map_err(|err| {
            PipelineError::InvalidInput(format!(
                "the execution has no input `id`, and its name cannot be the workflow id ({err}); \
                 start it with {{\"id\": \"...\"}} or a name of letters, digits, - and _"
            ))
        })
    };
    let fields = match execution_input {
        Value::Object(fields) => fields,
        Value::Array(_) => return by_name(),
        other => {
            return Err(PipelineError::InvalidInput(format!(
                "execution input must be a JSON object or an arrival batch (an array), got {}",
                json_type(other)
            )));
        }
    };
    match fields.get("id") {
        None | Some(Value::Null) => by_name(),
        Some(Value::String(id)) => WorkflowId::parse(id),
        Some(other) => Err(PipelineError::InvalidInput(format!(
            "execution input field `id` must be a string, got {}",
            json_type(other)
        ))),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Long ids are cut in messages so an error stays readable.
fn truncate_for_message(text: &str) -> String {
    const LIMIT: usize = 80;
    if text.chars().count() <= LIMIT {
        text.to_owned()
    } else {
        let head: String = text.chars().take(LIMIT).collect();
        format!("{head}… ({} characters)", text.chars().count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_input_id_wins_over_the_execution_name() {
        let id =
            workflow_id_for(&json!({"id": "a1b2-c3", "source": "aws.events"}), "exec").unwrap();
        assert_eq!(id.as_str(), "a1b2-c3");
    }

    #[test]
    fn the_execution_name_is_used_without_an_input_id() {
        assert_eq!(
            workflow_id_for(&json!({}), "manual-run_1")
                .unwrap()
                .as_str(),
            "manual-run_1"
        );
        assert_eq!(
            workflow_id_for(&json!({"id": null}), "manual-run_2")
                .unwrap()
                .as_str(),
            "manual-run_2"
        );
    }

    #[test]
    fn an_id_of_the_wrong_type_is_a_clear_error() {
        let err = workflow_id_for(&json!({"id": 42}), "exec").unwrap_err();
        assert_eq!(err.name(), "InvalidInput");
        assert!(
            err.to_string().contains("must be a string, got a number"),
            "{err}"
        );
    }

    #[test]
    fn input_that_is_neither_an_object_nor_a_batch_is_rejected() {
        for input in [json!("id"), json!(7), json!(true)] {
            let err = workflow_id_for(&input, "exec").unwrap_err();
            assert!(
                err.to_string().contains("JSON object or an arrival batch"),
                "{err}"
            );
        }
    }

    #[test]
    fn an_arrival_batch_is_named_by_its_execution() {
        let batch = json!([{"eventId": "e-1"}, {"eventId": "e-2"}]);
        let id = workflow_id_for(&batch, "0b6f3c1e-2a4d-4f57-9e0b-6d1f2c3a4b5c").unwrap();
        assert_eq!(id.as_str(), "0b6f3c1e-2a4d-4f57-9e0b-6d1f2c3a4b5c");
        let err = workflow_id_for(&batch, "run(1)").unwrap_err();
        assert!(err.to_string().contains("start it with"), "{err}");
    }

    #[test]
    fn ids_that_s3_tags_reject_are_rejected() {
        for bad in ["", "semi;colon", "quote\"", "new\nline", &"x".repeat(257)] {
            let err = workflow_id_for(&json!({ "id": bad }), "exec").unwrap_err();
            assert_eq!(err.name(), "InvalidInput", "{bad:?}");
        }
        assert!(WorkflowId::parse(&"x".repeat(256)).is_ok());
        assert!(WorkflowId::parse("Zürich run 2026-11-28T10:00:00Z/+=.@_").is_ok());
    }

    #[test]
    fn an_unusable_execution_name_says_how_to_fix_it() {
        let err = workflow_id_for(&json!({}), "run(1)").unwrap_err();
        assert!(err.to_string().contains("start it with"), "{err}");
    }

    #[test]
    fn huge_ids_are_truncated_in_the_message() {
        let err = WorkflowId::parse(&"é;".repeat(10_000)).unwrap_err();
        assert!(err.to_string().len() < 400, "{}", err.to_string().len());
    }
}
