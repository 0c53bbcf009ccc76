//! The EventBridge API (awsJson1.1, `X-Amz-Target: AWSEvents.<Operation>`): `PutEvents`,
//! `TestEventPattern`, and the bus and rule listings the AWS CLI uses to look around. Entries
//! come as JSON with `Time` in epoch seconds; errors are `{"__type", "message"}`.

use serde_json::{Value, json};

use super::{DEFAULT_BUS, Entry, EntryResult, EventBridge, EventsError, bus_arn, pattern};
use crate::iam::Principal;

pub use crate::json_api::Reply;

fn ok(body: Value) -> Reply {
    Reply::ok(body)
}

fn fail(err: &EventsError) -> Reply {
    Reply {
        status: err.status,
        body: json!({"__type": err.code, "message": err.message}),
        error: Some(err.code),
    }
}

/// The operation a target names, and the resource IAM authorizes it on (PutEvents is
/// authorized per entry, by the service).
pub fn operation(target: &str, input: &Value) -> (String, Option<String>) {
    let operation = target.trim_start_matches("AWSEvents.").to_owned();
    let bus = |field: &str| {
        bus_arn(
            input[field]
                .as_str()
                .map(|b| b.rsplit('/').next().unwrap_or(b))
                .unwrap_or(DEFAULT_BUS),
        )
    };
    let resource = match operation.as_str() {
        "PutEvents" => None,
        "CreateEventBus" | "DescribeEventBus" => Some(bus("Name")),
        "ListRules" => Some(bus("EventBusName")),
        _ => Some("*".to_owned()),
    };
    (operation, resource)
}

/// Serves one request from `principal`.
pub fn handle(
    events: &EventBridge,
    principal: &Principal,
    target: &str,
    body: &[u8],
    secure: bool,
) -> Reply {
    let input = match crate::json_api::parse_body(body) {
        Ok(input) => input,
        Err(message) => return fail(&EventsError::new("SerializationException", message)),
    };
    let result = match operation(target, &input).0.as_str() {
        "PutEvents" => put_events(events, principal, &input, secure),
        "TestEventPattern" => test_event_pattern(&input),
        "CreateEventBus" => create_event_bus(events, &input),
        "DescribeEventBus" => describe_event_bus(events, &input),
        "ListEventBuses" => Ok(
            json!({"EventBuses": events.buses().iter().map(|name| json!({"Name": name, "Arn": bus_arn(name)})).collect::<Vec<_>>()}),
        ),
        "ListRules" => list_rules(events, &input),
        other => Err(EventsError::new(
            "UnknownOperationException",
            format!("the local EventBridge does not serve {other}"),
        )),
    };
    match result {
        Ok(body) => ok(body),
        Err(err) => fail(&err),
    }
}

fn text(input: &Value, field: &str) -> Option<String> {
    input[field].as_str().map(str::to_owned)
}

/// Reads the entries of a PutEvents request (the API's, or Step Functions' task parameters,
/// where `Detail` may be an object).
pub fn entries(input: &Value) -> Result<Vec<Entry>, EventsError> {
    let entries = input["Entries"].as_array().ok_or_else(|| {
        EventsError::new(
            "ValidationException",
            "1 validation error detected: Value null at 'entries' failed to satisfy constraint: Member must not be null",
        )
    })?;
    Ok(entries
        .iter()
        .map(|entry| Entry {
            source: text(entry, "Source"),
            detail_type: text(entry, "DetailType"),
            detail: match &entry["Detail"] {
                Value::String(detail) => Some(detail.clone()),
                Value::Null => None,
                object => Some(object.to_string()),
            },
            resources: entry["Resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect(),
            bus: text(entry, "EventBusName"),
            time_ms: entry["Time"]
                .as_f64()
                .map(|seconds| (seconds * 1000.0) as i64),
        })
        .collect())
}

/// The PutEvents response for these results.
pub fn response(results: &[EntryResult]) -> Value {
    let failed = results
        .iter()
        .filter(|r| matches!(r, EntryResult::Failed { .. }))
        .count();
    json!({
        "FailedEntryCount": failed,
        "Entries": results.iter().map(|result| match result {
            EntryResult::Put { event_id } => json!({"EventId": event_id}),
            EntryResult::Failed { code, message } => json!({"ErrorCode": code, "ErrorMessage": message}),
        }).collect::<Vec<_>>(),
    })
}

fn put_events(
    events: &EventBridge,
    principal: &Principal,
    input: &Value,
    secure: bool,
) -> Result<Value, EventsError> {
    let results = events.put_events(principal, entries(input)?, secure)?;
    Ok(response(&results))
}

fn test_event_pattern(input: &Value) -> Result<Value, EventsError> {
    let invalid = |err: pattern::InvalidPattern| {
        EventsError::new("InvalidEventPatternException", err.to_string())
    };
    let pattern =
        pattern::parse(input["EventPattern"].as_str().unwrap_or_default()).map_err(invalid)?;
    let event: Value = serde_json::from_str(input["Event"].as_str().unwrap_or_default())
        .map_err(|_| EventsError::new("ValidationException", "Parameter Event is not valid."))?;
    for field in [
        "id",
        "account",
        "source",
        "time",
        "region",
        "resources",
        "detail-type",
    ] {
        if event.get(field).is_none() {
            return Err(EventsError::new(
                "ValidationException",
                format!("Parameter Event is not valid: it has no {field}."),
            ));
        }
    }
    Ok(json!({"Result": pattern::test(&pattern, &event).map_err(invalid)?}))
}

fn create_event_bus(events: &EventBridge, input: &Value) -> Result<Value, EventsError> {
    let name = input["Name"].as_str().unwrap_or_default();
    Ok(json!({"EventBusArn": events.create_bus(name)?}))
}

fn describe_event_bus(events: &EventBridge, input: &Value) -> Result<Value, EventsError> {
    let name = input["Name"]
        .as_str()
        .map(|b| b.rsplit('/').next().unwrap_or(b))
        .unwrap_or(DEFAULT_BUS);
    if !events.buses().contains(name) {
        return Err(EventsError::new(
            "ResourceNotFoundException",
            format!("Event bus {name} does not exist."),
        ));
    }
    Ok(json!({"Name": name, "Arn": bus_arn(name)}))
}

fn list_rules(events: &EventBridge, input: &Value) -> Result<Value, EventsError> {
    let bus = input["EventBusName"]
        .as_str()
        .map(|b| b.rsplit('/').next().unwrap_or(b))
        .unwrap_or(DEFAULT_BUS);
    let rules: Vec<Value> = events
        .rules()
        .iter()
        .filter(|rule| rule.bus == bus)
        .map(|rule| {
            json!({
                "Name": rule.arn.rsplit('/').next().unwrap_or_default(),
                "Arn": rule.arn,
                "EventPattern": rule.pattern.to_string(),
                "State": if rule.enabled { "ENABLED" } else { "DISABLED" },
                "EventBusName": rule.bus,
            })
        })
        .collect();
    Ok(json!({"Rules": rules}))
}
