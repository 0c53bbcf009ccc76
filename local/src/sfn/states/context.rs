//! The context object (`$$`), filled as AWS fills it: the execution, the state (with
//! `RetryCount` only for states that can retry), the state machine, and (where they apply)
//! the task token and the Map item.

use serde_json::{Value, json};

use super::frame::Execution;
use crate::clock::rfc3339_ms;

/// The context object of a state entered at `entered_ms`; `retry_count` for Task, Parallel and
/// Map states.
pub fn object(
    execution: &Execution,
    state: &str,
    entered_ms: i64,
    retry_count: Option<u32>,
) -> Value {
    let mut state_object = json!({"EnteredTime": rfc3339_ms(entered_ms), "Name": state});
    if let Some(count) = retry_count {
        state_object["RetryCount"] = json!(count);
    }
    json!({
        "Execution": {
            "Id": execution.arn,
            "Input": execution.input,
            "Name": execution.name,
            "RoleArn": execution.role_arn,
            "StartTime": rfc3339_ms(execution.start_ms),
            "RedriveCount": 0,
        },
        "State": state_object,
        "StateMachine": {"Id": execution.machine_arn, "Name": execution.machine_name},
    })
}

/// The context object with the task token of a callback task.
pub fn with_token(mut context: Value, token: &str) -> Value {
    context["Task"] = json!({"Token": token});
    context
}

/// The context object of one Map item, for ItemSelector.
pub fn with_item(context: &Value, index: usize, item: Value) -> Value {
    let mut context = context.clone();
    context["Map"] = json!({"Item": {"Index": index, "Value": item}});
    context
}
