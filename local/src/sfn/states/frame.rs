//! What a state runs with: the engine's shared parts, the execution it belongs to, the scope it
//! runs in (the top level, a Parallel branch or inline Map iteration, or a Distributed Map
//! child), the visit being made, and what the visit leads to.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::clock::Clock;
use crate::sfn::definition::state::Machine;
use crate::sfn::error::{DATA_LIMIT_EXCEEDED, StatesError};
use crate::sfn::execution::record::Phase;
use crate::sfn::execution::store::Executions;
use crate::sfn::execution::tokens::Tokens;
use crate::sfn::expr::env::Variables;
use crate::sfn::integrations::Integrations;

/// The largest state input or output, in bytes.
pub const MAX_PAYLOAD: usize = 262_144;

/// The engine's parts every state may use.
pub struct Runtime {
    pub executions: Arc<Executions>,
    pub tokens: Arc<Tokens>,
    pub integrations: Arc<dyn Integrations>,
    pub clock: Clock,
}

/// What the context object says about the execution.
#[derive(Debug, Clone)]
pub struct Execution {
    pub arn: String,
    pub name: String,
    pub input: Value,
    pub start_ms: i64,
    pub machine_arn: String,
    pub machine_name: String,
    pub role_arn: String,
}

/// Where a state runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The execution's own states: history is recorded and the position saved.
    Top,
    /// A Parallel branch or an inline Map iteration: history is recorded, nothing saved (after
    /// a restart the whole Parallel or Map runs again).
    Nested,
    /// A Distributed Map child, which in AWS is an execution of its own: no history here.
    Child,
}

/// Runs sub-machines: how Parallel and Map reach back into the dispatcher.
pub trait Interpreter: Send + Sync {
    fn run_machine<'a>(
        &'a self,
        frame: Frame<'a>,
        machine: &'a Machine,
        input: Value,
        variables: Variables,
    ) -> BoxFuture<'a, Result<Value, StatesError>>;
}

#[derive(Clone, Copy)]
pub struct Frame<'a> {
    pub runtime: &'a Runtime,
    pub execution: &'a Execution,
    pub scope: Scope,
    pub interpreter: &'a dyn Interpreter,
}

impl Frame<'_> {
    /// Records a history event (not in a Distributed Map child); returns its id.
    pub fn event(&self, kind: &str, details: Value) -> Option<u64> {
        if self.scope == Scope::Child {
            return None;
        }
        self.runtime
            .executions
            .event(&self.execution.arn, kind, details)
    }

    /// Saves where a top-level state is, so that a restart resumes there.
    pub fn set_phase(&self, phase: Phase) {
        if self.scope == Scope::Top {
            self.runtime
                .executions
                .set_phase(&self.execution.arn, phase);
        }
    }

    /// The same frame one level down.
    pub fn nested(self, scope: Scope) -> Self {
        let scope = if self.scope == Scope::Child {
            Scope::Child
        } else {
            scope
        };
        Self { scope, ..self }
    }
}

/// One visit of a state.
pub struct Visit<'a> {
    pub input: Value,
    pub entered_ms: i64,
    /// The id of its StateEntered event, which runtime failures name.
    pub entered_event: u64,
    pub phase: Phase,
    pub variables: &'a Variables,
}

/// Where a visit leads.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The next state, or none when the machine ends.
    pub next: Option<String>,
    pub output: Value,
    /// The variables the state assigned, visible from the next state on.
    pub assigned: Variables,
}

/// Fails with `States.DataLimitExceeded` when a value is over the payload limit.
pub fn size_checked(value: Value, who: &str) -> Result<Value, StatesError> {
    let size = value.to_string().len();
    if size > MAX_PAYLOAD {
        return Err(StatesError::new(
            DATA_LIMIT_EXCEEDED,
            format!(
                "The state/task '{who}' returned a result with a size exceeding the maximum number of bytes service limit."
            ),
        ));
    }
    Ok(value)
}
