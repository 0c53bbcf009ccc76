//! An execution's record, as DescribeExecution and GetExecutionHistory show it and as it is
//! saved: status, input and output, where a running execution is, and its history.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sfn::expr::env::Variables;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEvent {
    pub id: u64,
    pub previous_event_id: Option<u64>,
    pub timestamp_ms: i64,
    #[serde(rename = "type")]
    pub kind: String,
    /// The details object under its key, e.g. `{"stateEnteredEventDetails": {...}}`.
    pub details: Value,
}

/// Where a running execution is, kept so that a restart resumes there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    pub state: String,
    pub input: Value,
    pub entered_ms: i64,
    pub phase: Phase,
    /// The workflow variables when the state was entered.
    #[serde(default)]
    pub variables: Variables,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Phase {
    /// About to run the state (again, after a restart).
    Enter,
    /// In a Wait state until this instant.
    Wait { until_ms: i64 },
    /// A callback task waiting for its token.
    #[serde(rename_all = "camelCase")]
    Callback {
        token: String,
        timeout_at_ms: Option<i64>,
        retry_count: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRecord {
    pub arn: String,
    pub state_machine_arn: String,
    pub name: String,
    pub status: String,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub start_ms: i64,
    pub stop_ms: Option<i64>,
    pub position: Option<Position>,
    pub history: Vec<HistoryEvent>,
    /// Tokens whose task has closed: a callback with one of these is `TaskTimedOut`.
    #[serde(default)]
    pub closed_tokens: Vec<String>,
}

impl ExecutionRecord {
    /// Appends an event; returns its id.
    pub fn push(&mut self, kind: &str, details: Value, timestamp_ms: i64) -> u64 {
        let id = self.history.len() as u64 + 1;
        self.history.push(HistoryEvent {
            id,
            previous_event_id: (id > 1).then_some(id - 1),
            timestamp_ms,
            kind: kind.to_owned(),
            details,
        });
        id
    }
}
