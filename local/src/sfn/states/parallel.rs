//! Parallel: every branch runs on the effective input at once; the result is the array of the
//! branches' outputs in branch order. The first branch to fail fails the state with its own
//! error (the other branches are stopped), and the state's Retry and Catch apply.

use futures::future::try_join_all;
use serde_json::{Value, json};

use super::context;
use super::dataflow;
use super::frame::{Frame, Outcome, Scope, Visit};
use super::retry;
use crate::sfn::definition::state::{Node, Parallel};
use crate::sfn::error::StatesError;
use crate::sfn::expr::env::{Env, Variables};

pub async fn run(
    frame: Frame<'_>,
    node: &Node,
    parallel: &Parallel,
    visit: &Visit<'_>,
) -> Result<Outcome, StatesError> {
    retry::recover(frame, node, &parallel.recovery, visit, 0, |retry_count| {
        attempt(frame, node, parallel, visit, retry_count)
    })
    .await
}

async fn attempt(
    frame: Frame<'_>,
    node: &Node,
    parallel: &Parallel,
    visit: &Visit<'_>,
    retry_count: u32,
) -> Result<(Value, Variables), StatesError> {
    let ctx = context::object(
        frame.execution,
        &node.name,
        visit.entered_ms,
        Some(retry_count),
    );
    let env = Env::new(&visit.input, &ctx, visit.variables);
    let effective = dataflow::effective_input(
        &node.common,
        parallel.parameters.as_ref(),
        &visit.input,
        env,
    )?;
    frame.event("ParallelStateStarted", json!({}));
    let branches = parallel.branches.iter().map(|branch| {
        frame.interpreter.run_machine(
            frame.nested(Scope::Nested),
            branch,
            effective.clone(),
            visit.variables.clone(),
        )
    });
    let outputs = match try_join_all(branches).await {
        Ok(outputs) => outputs,
        Err(err) => {
            frame.event("ParallelStateFailed", json!({}));
            return Err(err);
        }
    };
    frame.event("ParallelStateSucceeded", json!({}));
    dataflow::finish(
        &node.common,
        parallel.result_selector.as_ref(),
        &parallel.result_path,
        visit.input.clone(),
        Value::Array(outputs),
        env,
    )
}
