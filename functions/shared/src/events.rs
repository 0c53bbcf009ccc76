//! The gate's EventBridge events: what a program can subscribe to instead of reading email.
//! The state machine puts four of them itself (`events:putEvents`); `Review Requested` is put
//! by triggerManualApproval, the only place that holds the task token its links carry. Every
//! detail has the same core (`version`, the run's ids, bucket names and the run's counts so far)
//! and never a detected value; `events/schemas/` holds a JSON Schema for each detail type.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde::Serialize;
use serde_json::Value;

use crate::error::PipelineError;

/// The `source` of every event the gate puts (and the only one its roles may put).
pub const SOURCE: &str = "macie-pipeline";

/// The detail's `version`: a field added keeps it, a field removed or changed in meaning
/// raises it.
pub const DETAIL_VERSION: &str = "1";

/// What happened, as the event's `detail-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DetailType {
    /// Routing held objects for review (flagged, or not analysed completely).
    ObjectsHeld,
    /// The review request went out: its links, deadline and default.
    ReviewRequested,
    /// Every decision was carried out, or the review timed out and its default applied.
    ReviewDecided,
    /// The run ended with every object where it belongs.
    RunSucceeded,
    /// The run failed; the detail says why in a sentence.
    RunFailed,
}

impl DetailType {
    pub const ALL: [DetailType; 5] = [
        Self::ObjectsHeld,
        Self::ReviewRequested,
        Self::ReviewDecided,
        Self::RunSucceeded,
        Self::RunFailed,
    ];

    /// The `detail-type` as it appears on the bus.
    pub fn name(self) -> &'static str {
        match self {
            Self::ObjectsHeld => "Objects Held",
            Self::ReviewRequested => "Review Requested",
            Self::ReviewDecided => "Review Decided",
            Self::RunSucceeded => "Run Succeeded",
            Self::RunFailed => "Run Failed",
        }
    }

    /// The detail type with this name.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// The file of its JSON Schema under `events/schemas/`.
    pub fn schema_file(self) -> &'static str {
        match self {
            Self::ObjectsHeld => "objects-held.json",
            Self::ReviewRequested => "review-requested.json",
            Self::ReviewDecided => "review-decided.json",
            Self::RunSucceeded => "run-succeeded.json",
            Self::RunFailed => "run-failed.json",
        }
    }
}

/// The links of a review request, as the email gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewLinks {
    pub review: String,
    pub release_all: String,
    pub delete_all: String,
}

/// What `Review Requested` adds to the run's detail, under `request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewRequest {
    /// The SHA-256 of the manifest's location: one per run, the name of its decision records.
    pub review_id: String,
    /// Objects held for a decision.
    pub held: u64,
    /// RFC 3339.
    pub expires_at: String,
    /// `hold` or `deny`: what happens to objects still undecided then.
    pub timeout_action: crate::approval::TimeoutAction,
    pub links: ReviewLinks,
}

/// The detail of `Review Requested`: the run's detail as the state machine passes it, with the
/// request added.
pub fn review_requested(run: &Value, request: &ReviewRequest) -> Result<Value, PipelineError> {
    let mut detail = run.clone();
    let fields = detail.as_object_mut().ok_or_else(|| {
        PipelineError::InvalidInput(format!("the event detail must be an object, got {run}"))
    })?;
    if fields.get("version").and_then(Value::as_str) != Some(DETAIL_VERSION) {
        return Err(PipelineError::InvalidInput(format!(
            "the event detail must have version {DETAIL_VERSION:?}, got {:?}",
            fields.get("version")
        )));
    }
    fields.insert(
        "request".into(),
        serde_json::to_value(request).expect("a request serializes"),
    );
    Ok(detail)
}

/// The ARNs the state machine's own events name (`resources`), from a detail.
pub fn resources(detail: &Value) -> Vec<String> {
    ["executionArn", "stateMachineArn"]
        .iter()
        .filter_map(|field| detail[*field].as_str().map(str::to_owned))
        .collect()
}

/// A PutEvents entry that failed, as the error's source.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
struct EntryFailed {
    code: String,
    message: String,
}

/// Puts one event of the gate on `bus`; returns its id. An entry EventBridge refused is an
/// error like a refused call: transient when EventBridge says to try again.
pub async fn put(
    client: &aws_sdk_eventbridge::Client,
    bus: &str,
    kind: DetailType,
    detail: &Value,
) -> Result<String, PipelineError> {
    let entry = PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source(SOURCE)
        .detail_type(kind.name())
        .detail(detail.to_string())
        .set_resources(Some(resources(detail)))
        .build();
    let response = client
        .put_events()
        .entries(entry)
        .send()
        .await
        .map_err(|err| PipelineError::from_sdk("PutEvents", err))?;
    let result = response.entries().first();
    match (
        result.and_then(|r| r.event_id()),
        result.and_then(|r| r.error_code()),
    ) {
        (Some(id), None) => Ok(id.to_owned()),
        (_, code) => {
            let code = code.unwrap_or("NoEventId").to_owned();
            let message = format!(
                "the {} event was not put on the {bus} bus: {}",
                kind.name(),
                result
                    .and_then(|r| r.error_message())
                    .unwrap_or("no reason given")
            );
            let source = Box::new(EntryFailed {
                code: code.clone(),
                message: message.clone(),
            });
            Err(
                if ["ThrottlingException", "InternalFailure"].contains(&code.as_str()) {
                    PipelineError::Transient {
                        operation: "PutEvents",
                        message,
                        source,
                    }
                } else {
                    PipelineError::Aws {
                        operation: "PutEvents",
                        code,
                        message,
                        source,
                    }
                },
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request() -> ReviewRequest {
        ReviewRequest {
            review_id: "r".into(),
            held: 2,
            expires_at: "2026-12-12T00:00:00Z".into(),
            timeout_action: crate::approval::TimeoutAction::Hold,
            links: ReviewLinks {
                review: "https://api/review?token=t".into(),
                release_all: "https://api/allow?token=t".into(),
                delete_all: "https://api/deny?token=t".into(),
            },
        }
    }

    #[test]
    fn the_request_is_added_to_the_runs_detail() {
        let run = json!({"version": "1", "workflowId": "wf", "executionArn": "e", "stateMachineArn": "m"});
        let detail = review_requested(&run, &request()).unwrap();
        assert_eq!(detail["workflowId"], "wf");
        assert_eq!(detail["request"]["held"], 2);
        assert_eq!(detail["request"]["timeoutAction"], "hold");
        assert_eq!(
            detail["request"]["links"]["releaseAll"],
            "https://api/allow?token=t"
        );
        assert_eq!(resources(&detail), ["e", "m"]);
    }

    #[test]
    fn a_detail_of_another_shape_or_version_is_refused() {
        for run in [json!("text"), json!({"version": "2"}), json!({})] {
            let err = review_requested(&run, &request()).unwrap_err();
            assert_eq!(err.name(), "InvalidInput", "{run}");
        }
    }

    #[test]
    fn detail_types_round_trip_by_name() {
        for kind in DetailType::ALL {
            assert_eq!(DetailType::named(kind.name()), Some(kind));
        }
        assert_eq!(DetailType::named("Run Started"), None);
    }
}
