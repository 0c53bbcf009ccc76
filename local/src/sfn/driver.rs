//! Drives one execution from its saved position until it ends or is stopped: runs the state
//! there, records where that leads (the next position, or the execution's end), and saves the
//! record after every transition.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::clock::now_ms;
use crate::sfn::error::StatesError;
use crate::sfn::execution::record::{Phase, Position};
use crate::sfn::registry::Registered;
use crate::sfn::states::frame::{Execution, Frame, Outcome, Runtime, Scope};
use crate::sfn::states::run::{Dispatcher, run_state};

/// `{"error", "cause"}` with the absent ones left out, as AWS's ExecutionFailed shows them.
fn failure_details(err: &StatesError) -> Value {
    let mut details = Map::new();
    if let Some(error) = err.name() {
        details.insert("error".into(), error.into());
    }
    if let Some(cause) = &err.cause {
        details.insert("cause".into(), cause.clone().into());
    }
    Value::Object(details)
}

pub async fn drive(runtime: Arc<Runtime>, registered: Arc<Registered>, arn: String) {
    let executions = Arc::clone(&runtime.executions);
    loop {
        let (Some(record), Some(cancel)) = (executions.record(&arn), executions.cancel_token(&arn))
        else {
            return;
        };
        if record.status != "RUNNING" {
            return;
        }
        let Some(position) = record.position.clone() else {
            return;
        };
        let execution = Execution {
            arn: arn.clone(),
            name: record.name.clone(),
            input: record.input.clone(),
            start_ms: record.start_ms,
            machine_arn: registered.arn.clone(),
            machine_name: registered.name.clone(),
            role_arn: registered.role_arn.clone(),
        };
        let frame = Frame {
            runtime: &runtime,
            execution: &execution,
            scope: Scope::Top,
            interpreter: &Dispatcher,
        };
        let step = run_state(
            frame,
            &registered.machine,
            &position.state,
            position.input.clone(),
            position.entered_ms,
            position.phase.clone(),
            &position.variables,
        );
        let outcome = tokio::select! {
            outcome = step => outcome,
            () = cancel.cancelled() => return,
        };
        let running = executions.update(&arn, |running, recorder| {
            let record = &mut running.record;
            if record.status != "RUNNING" {
                return false;
            }
            match outcome {
                Ok(Outcome { next: Some(state), output, assigned }) => {
                    let mut variables = position.variables;
                    variables.extend(assigned);
                    record.position = Some(Position {
                        state,
                        input: output,
                        entered_ms: now_ms(),
                        phase: Phase::Enter,
                        variables,
                    });
                }
                Ok(Outcome { next: None, output, .. }) => {
                    record.status = "SUCCEEDED".into();
                    record.stop_ms = Some(now_ms());
                    record.position = None;
                    recorder.push(
                        record,
                        "ExecutionSucceeded",
                        json!({"executionSucceededEventDetails": {"output": output.to_string(), "outputDetails": {"truncated": false}}}),
                    );
                    record.output = Some(output);
                }
                Err(err) => {
                    record.status = "FAILED".into();
                    record.stop_ms = Some(now_ms());
                    record.position = None;
                    record.error = err.name().map(str::to_owned);
                    record.cause = err.cause.clone();
                    recorder.push(
                        record,
                        "ExecutionFailed",
                        json!({"executionFailedEventDetails": failure_details(&err)}),
                    );
                }
            }
            true
        });
        if running != Some(true) {
            return;
        }
        executions.persist_in_background(&arn);
    }
}
