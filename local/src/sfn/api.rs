//! The Step Functions API (awsJson1.0): dispatch on `X-Amz-Target`, JSON in and out, timestamps
//! as epoch seconds, `input`/`output`/`cause` as JSON text, errors as `{"__type", "message"}`.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::sfn::engine::{
    ApiError, CallbackMessage, Engine, ExecutionRecord, HistoryEvent, TokenError,
};

pub use crate::json_api::Reply;

fn ok(body: Value) -> Reply {
    Reply::ok(body)
}

fn fail(code: &'static str, message: impl Into<String>) -> Reply {
    let namespace = if code == "ValidationException" {
        "com.amazon.coral.validate"
    } else {
        "com.amazonaws.swf.service.v2.model"
    };
    Reply {
        status: 400,
        body: json!({"__type": format!("{namespace}#{code}"), "message": message.into()}),
        error: Some(code),
    }
}

fn seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

fn api_error(err: ApiError) -> Reply {
    match err {
        ApiError::StateMachineDoesNotExist => {
            fail("StateMachineDoesNotExist", "State Machine Does Not Exist")
        }
        ApiError::ExecutionDoesNotExist => {
            fail("ExecutionDoesNotExist", "Execution Does Not Exist")
        }
        ApiError::ExecutionAlreadyExists => {
            fail("ExecutionAlreadyExists", "Execution Already Exists")
        }
        ApiError::InvalidName(message) => fail("InvalidName", message),
        ApiError::InvalidExecutionInput(message) => fail("InvalidExecutionInput", message),
        ApiError::KmsAccessDenied(message) => fail("KmsAccessDeniedException", message),
        // AWS's common error for a request that failed on the service's side.
        ApiError::Internal(message) => Reply {
            status: 500,
            body: json!({"__type": "InternalFailure", "message": message}),
            error: Some("InternalFailure"),
        },
    }
}

fn token_error(err: TokenError) -> Reply {
    match err {
        TokenError::InvalidToken => fail("InvalidToken", "Invalid Token"),
        TokenError::TaskDoesNotExist => fail("TaskDoesNotExist", "Task Does Not Exist"),
        TokenError::TaskTimedOut => fail("TaskTimedOut", "Task Timed Out"),
    }
}

fn required<'a>(body: &'a Value, field: &str) -> Result<&'a str, Reply> {
    body[field]
        .as_str()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| fail("ValidationException", format!("1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null")))
}

fn describe(record: &ExecutionRecord) -> Value {
    let mut out = json!({
        "executionArn": record.arn,
        "stateMachineArn": record.state_machine_arn,
        "name": record.name,
        "status": record.status,
        "startDate": seconds(record.start_ms),
        "input": record.input.to_string(),
        "inputDetails": {"included": true},
        "redriveCount": 0,
        "redriveStatus": "NOT_REDRIVABLE",
    });
    if let Some(stop) = record.stop_ms {
        out["stopDate"] = seconds(stop);
    }
    if record.status == "SUCCEEDED"
        && let Some(output) = &record.output
    {
        out["output"] = json!(output.to_string());
        out["outputDetails"] = json!({"included": true});
    }
    if let Some(error) = &record.error {
        out["error"] = json!(error);
    }
    if let Some(cause) = &record.cause {
        out["cause"] = json!(cause);
    }
    out
}

fn summary(record: &ExecutionRecord) -> Value {
    let mut out = json!({
        "executionArn": record.arn,
        "stateMachineArn": record.state_machine_arn,
        "name": record.name,
        "status": record.status,
        "startDate": seconds(record.start_ms),
    });
    if let Some(stop) = record.stop_ms {
        out["stopDate"] = seconds(stop);
    }
    out
}

fn event(event: &HistoryEvent, include_data: bool) -> Value {
    let mut out =
        json!({"timestamp": seconds(event.timestamp_ms), "type": event.kind, "id": event.id});
    if let Some(previous) = event.previous_event_id {
        out["previousEventId"] = json!(previous);
    }
    if let Some(details) = event.details.as_object() {
        for (key, value) in details {
            let mut value = value.clone();
            if !include_data && let Some(fields) = value.as_object_mut() {
                for field in ["input", "output", "parameters"] {
                    fields.remove(field);
                }
            }
            out[key] = value;
        }
    }
    out
}

/// A page of `items`: `maxResults` (0 or absent means `default`, at most 1000) and an opaque token.
fn page<T: Clone>(
    items: &[T],
    body: &Value,
    default: usize,
) -> Result<(Vec<T>, Option<String>), Reply> {
    let size = match body["maxResults"].as_u64() {
        None | Some(0) => default,
        Some(n) if n <= 1000 => usize::try_from(n).unwrap_or(default),
        Some(_) => {
            return Err(fail(
                "ValidationException",
                "maxResults must be at most 1000",
            ));
        }
    };
    let start = match body["nextToken"].as_str() {
        None | Some("") => 0,
        Some(token) => base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| t.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| fail("InvalidToken", "Invalid Token: the nextToken is not valid"))?,
    };
    let end = start.saturating_add(size).min(items.len());
    let next = (end < items.len())
        .then(|| base64::engine::general_purpose::STANDARD.encode(end.to_string()));
    Ok((items[start..end].to_vec(), next))
}

/// Runs one API call.
pub fn handle(engine: &Engine, target: &str, body: &[u8]) -> Reply {
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(body) => body,
            Err(err) => {
                return fail(
                    "SerializationException",
                    format!("the request is not JSON: {err}"),
                );
            }
        }
    };
    let Some(operation) = target.strip_prefix("AWSStepFunctions.") else {
        return fail(
            "UnknownOperationException",
            format!("unknown target {target}"),
        );
    };
    let result = (|| -> Result<Reply, Reply> {
        Ok(match operation {
            "StartExecution" => {
                let machine = required(&body, "stateMachineArn")?;
                let (arn, start) = engine
                    .start(machine, body["name"].as_str(), body["input"].as_str())
                    .map_err(api_error)?;
                ok(json!({"executionArn": arn, "startDate": seconds(start)}))
            }
            "DescribeExecution" => {
                let arn = required(&body, "executionArn")?;
                let record = engine
                    .describe(arn)
                    .ok_or_else(|| api_error(ApiError::ExecutionDoesNotExist))?;
                ok(describe(&record))
            }
            "ListExecutions" => {
                let machine = required(&body, "stateMachineArn")?;
                let mut records = engine.list(machine).map_err(api_error)?;
                if let Some(status) = body["statusFilter"].as_str() {
                    records.retain(|r| r.status == status);
                }
                let (records, next) = page(&records, &body, 100)?;
                ok(
                    json!({"executions": records.iter().map(summary).collect::<Vec<_>>(), "nextToken": next}),
                )
            }
            "GetExecutionHistory" => {
                let arn = required(&body, "executionArn")?;
                let record = engine
                    .describe(arn)
                    .ok_or_else(|| api_error(ApiError::ExecutionDoesNotExist))?;
                let mut events = record.history;
                if body["reverseOrder"].as_bool() == Some(true) {
                    events.reverse();
                }
                let (events, next) = page(&events, &body, 100)?;
                let include = body["includeExecutionData"].as_bool() != Some(false);
                ok(
                    json!({"events": events.iter().map(|e| event(e, include)).collect::<Vec<_>>(), "nextToken": next}),
                )
            }
            "StopExecution" => {
                let arn = required(&body, "executionArn")?;
                let stop = engine
                    .stop(
                        arn,
                        body["error"].as_str().map(str::to_owned),
                        body["cause"].as_str().map(str::to_owned),
                    )
                    .map_err(api_error)?;
                ok(json!({"stopDate": seconds(stop)}))
            }
            "SendTaskSuccess" => {
                let token = required(&body, "taskToken")?;
                let output = required(&body, "output")?;
                if output.len() > 262_144 {
                    return Err(fail(
                        "ValidationException",
                        "output must be at most 262144 bytes",
                    ));
                }
                let output: Value = serde_json::from_str(output)
                    .map_err(|err| fail("InvalidOutput", format!("Invalid Output: {err}")))?;
                engine
                    .callback(token, CallbackMessage::Success(output))
                    .map_err(token_error)?;
                ok(json!({}))
            }
            "SendTaskFailure" => {
                let token = required(&body, "taskToken")?;
                let message = CallbackMessage::Failure {
                    error: body["error"]
                        .as_str()
                        .unwrap_or("States.TaskFailed")
                        .to_owned(),
                    cause: body["cause"].as_str().map(str::to_owned),
                };
                engine.callback(token, message).map_err(token_error)?;
                ok(json!({}))
            }
            "SendTaskHeartbeat" => {
                let token = required(&body, "taskToken")?;
                engine
                    .callback(token, CallbackMessage::Heartbeat)
                    .map_err(token_error)?;
                ok(json!({}))
            }
            "DescribeStateMachine" => {
                let arn = required(&body, "stateMachineArn")?;
                let machine = engine
                    .machine(arn)
                    .ok_or_else(|| api_error(ApiError::StateMachineDoesNotExist))?;
                ok(
                    json!({"stateMachineArn": machine.arn, "name": machine.name, "status": "ACTIVE",
                    "definition": machine.definition, "roleArn": machine.role_arn, "type": "STANDARD",
                    "creationDate": seconds(machine.created_ms),
                    "encryptionConfiguration": match &machine.kms_key {
                        Some(key) => json!({"type": "CUSTOMER_MANAGED_KMS_KEY", "kmsKeyId": key}),
                        None => json!({"type": "AWS_OWNED_KEY"}),
                    }}),
                )
            }
            "ListStateMachines" => ok(
                json!({"stateMachines": engine.machines().iter().map(|m| json!({
                "stateMachineArn": m.arn, "name": m.name, "type": "STANDARD", "creationDate": seconds(m.created_ms)
            })).collect::<Vec<_>>()}),
            ),
            other => fail(
                "UnknownOperationException",
                format!("{other} is not supported by the local stack"),
            ),
        })
    })();
    result.unwrap_or_else(|reply| reply)
}
