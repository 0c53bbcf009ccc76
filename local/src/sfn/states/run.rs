//! Running one state: its StateEntered event, the state type's own evaluation, the size limit on
//! its output, and its StateExited event with the variables it assigned; and running a
//! sub-machine (a Parallel branch, a Map iteration) from its StartAt to its end.

use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

use super::frame::{Frame, Interpreter, Outcome, Visit, size_checked};
use super::{choice, fail, map, parallel, pass, succeed, task, wait};
use crate::clock::now_ms;
use crate::sfn::definition::state::{Machine, State};
use crate::sfn::error::{RUNTIME, StatesError};
use crate::sfn::execution::record::Phase;
use crate::sfn::expr::env::Variables;

/// Runs sub-machines for Parallel and Map.
pub struct Dispatcher;

impl Interpreter for Dispatcher {
    fn run_machine<'a>(
        &'a self,
        frame: Frame<'a>,
        machine: &'a Machine,
        input: Value,
        variables: Variables,
    ) -> BoxFuture<'a, Result<Value, StatesError>> {
        Box::pin(run_machine(frame, machine, input, variables))
    }
}

/// Runs a machine to its end; its variables start as the ones given (the outer scope's) and
/// what it assigns stays inside it.
pub async fn run_machine(
    frame: Frame<'_>,
    machine: &Machine,
    mut input: Value,
    mut variables: Variables,
) -> Result<Value, StatesError> {
    let mut current = machine.start_at.clone();
    loop {
        let outcome = run_state(
            frame,
            machine,
            &current,
            input,
            now_ms(),
            Phase::Enter,
            &variables,
        )
        .await?;
        variables.extend(outcome.assigned);
        match outcome.next {
            Some(next) => {
                current = next;
                input = outcome.output;
            }
            None => return Ok(outcome.output),
        }
    }
}

/// The `assignedVariables` of a StateExited event: each value as JSON text.
fn assigned_details(assigned: &Variables) -> Value {
    Value::Object(
        assigned
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.to_string())))
            .collect::<Map<String, Value>>(),
    )
}

/// Runs one state of `machine` to where it leads.
pub async fn run_state(
    frame: Frame<'_>,
    machine: &Machine,
    name: &str,
    input: Value,
    entered_ms: i64,
    phase: Phase,
    variables: &Variables,
) -> Result<Outcome, StatesError> {
    let node = machine
        .state(name)
        .ok_or_else(|| StatesError::new(RUNTIME, format!("there is no state {name}")))?;
    let kind = node.state.kind();
    let entered_event = if phase == Phase::Enter {
        frame
            .event(
                &format!("{kind}StateEntered"),
                json!({"stateEnteredEventDetails": {"name": name, "input": input.to_string()}}),
            )
            .unwrap_or_default()
    } else {
        0
    };
    let visit = Visit {
        input,
        entered_ms,
        entered_event,
        phase,
        variables,
    };
    let outcome = match &node.state {
        State::Pass(state) => pass::run(frame, node, state, &visit),
        State::Task(state) => task::run(frame, node, state, &visit).await,
        State::Choice(state) => choice::run(frame, node, state, &visit),
        State::Wait(state) => wait::run(frame, node, state, &visit).await,
        State::Succeed => succeed::run(frame, node, &visit),
        State::Fail(state) => Err(fail::run(frame, node, state, &visit)),
        State::Parallel(state) => parallel::run(frame, node, state, &visit).await,
        State::Map(state) => map::run(frame, node, state, &visit).await,
    };
    let mut outcome = outcome.map_err(|err| err.located(name, entered_event))?;
    outcome.output = size_checked(outcome.output, name)?;
    let mut details = json!({"name": name, "output": outcome.output.to_string()});
    if !outcome.assigned.is_empty() {
        details["assignedVariables"] = assigned_details(&outcome.assigned);
        details["assignedVariablesDetails"] = json!({"truncated": false});
    }
    frame.event(
        &format!("{kind}StateExited"),
        json!({"stateExitedEventDetails": details}),
    );
    Ok(outcome)
}
