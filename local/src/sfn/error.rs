//! Runtime errors of a state machine, and how a Retry's or Catch's `ErrorEquals` matches them.

/// A runtime error: its name (`States.Runtime`, a function's `errorType`, ...) and its cause.
/// A Fail state without `Error` fails with no name at all, as in AWS; that is the empty name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatesError {
    pub error: String,
    pub cause: Option<String>,
    /// Whether the cause still lacks the "An error occurred while executing the state ..."
    /// prefix that AWS puts before the runtime failures of a state's own fields.
    unlocated: bool,
}

pub const RUNTIME: &str = "States.Runtime";
pub const TIMEOUT: &str = "States.Timeout";
pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
pub const BRANCH_FAILED: &str = "States.BranchFailed";
pub const ITEM_READER_FAILED: &str = "States.ItemReaderFailed";
pub const EXCEED_TOLERATED_FAILURE_THRESHOLD: &str = "States.ExceedToleratedFailureThreshold";
pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";

impl StatesError {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            cause: Some(cause.into()),
            unlocated: false,
        }
    }

    /// An error with a name and an optional cause, as a Fail state or SendTaskFailure gives it.
    pub fn named(error: Option<String>, cause: Option<String>) -> Self {
        Self {
            error: error.unwrap_or_default(),
            cause,
            unlocated: false,
        }
    }

    /// A `States.Runtime` failure of one of the state's own fields (a path that selects nothing,
    /// a value of the wrong type); the state adds where it happened.
    pub fn runtime(cause: impl Into<String>) -> Self {
        Self {
            unlocated: true,
            ..Self::new(RUNTIME, cause)
        }
    }

    /// Puts AWS's location prefix before the cause of a runtime failure of the state's fields.
    pub fn located(mut self, state: &str, entered_event: u64) -> Self {
        if self.unlocated {
            self.unlocated = false;
            self.cause = Some(format!(
                "An error occurred while executing the state '{state}' (entered at the event id #{entered_event}). {}",
                self.cause.unwrap_or_default()
            ));
        }
        self
    }

    /// The name, or none for a Fail state without `Error`.
    pub fn name(&self) -> Option<&str> {
        (!self.error.is_empty()).then_some(self.error.as_str())
    }

    /// The `{"Error", "Cause"}` object a Catch writes at its ResultPath, and a tolerated failure
    /// of a Distributed Map leaves in the output.
    pub fn output(&self) -> serde_json::Value {
        let mut output = serde_json::Map::new();
        if let Some(error) = self.name() {
            output.insert("Error".into(), error.into());
        }
        if let Some(cause) = &self.cause {
            output.insert("Cause".into(), cause.clone().into());
        }
        serde_json::Value::Object(output)
    }

    /// Errors that end the execution whatever the state's Retry and Catch say.
    pub fn is_terminal(&self) -> bool {
        self.error == DATA_LIMIT_EXCEEDED
    }
}

impl std::fmt::Display for StatesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cause {
            Some(cause) => write!(f, "{}: {cause}", self.error),
            None => f.write_str(&self.error),
        }
    }
}

/// Whether one `ErrorEquals` name matches an error, with the wildcards' rules: `States.ALL`
/// matches anything but `States.DataLimitExceeded` and `States.Runtime`; `States.TaskFailed`
/// anything but those and the timeouts; `States.Timeout` heartbeat timeouts too.
pub fn name_matches(name: &str, error: &str) -> bool {
    match name {
        "States.ALL" => !matches!(error, DATA_LIMIT_EXCEEDED | RUNTIME),
        "States.TaskFailed" => !matches!(
            error,
            TIMEOUT | HEARTBEAT_TIMEOUT | DATA_LIMIT_EXCEEDED | RUNTIME
        ),
        TIMEOUT => matches!(error, TIMEOUT | HEARTBEAT_TIMEOUT),
        exact => exact == error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_matching_follows_the_wildcard_rules() {
        assert!(name_matches("States.ALL", "Anything"));
        assert!(name_matches("States.ALL", ""), "a nameless Fail is caught");
        assert!(!name_matches("States.ALL", "States.Runtime"));
        assert!(!name_matches("States.TaskFailed", "States.Timeout"));
        assert!(name_matches("States.Timeout", "States.HeartbeatTimeout"));
        assert!(name_matches("B", "B") && !name_matches("A", "B"));
    }

    #[test]
    fn runtime_failures_are_located_once() {
        let err = StatesError::runtime("Invalid path '$.x'")
            .located("s", 2)
            .located("outer", 9);
        assert_eq!(
            err.cause.as_deref(),
            Some(
                "An error occurred while executing the state 's' (entered at the event id #2). Invalid path '$.x'"
            )
        );
        assert_eq!(
            StatesError::named(None, None).output(),
            serde_json::json!({})
        );
    }
}
