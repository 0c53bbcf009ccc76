//! Pass: its Result (or its effective input) goes through ResultPath and OutputPath.

use super::context;
use super::dataflow;
use super::frame::{Frame, Outcome, Visit};
use crate::sfn::definition::state::{Node, Pass};
use crate::sfn::error::StatesError;
use crate::sfn::expr::env::Env;

pub fn run(frame: Frame, node: &Node, pass: &Pass, visit: &Visit) -> Result<Outcome, StatesError> {
    let ctx = context::object(frame.execution, &node.name, visit.entered_ms, None);
    let env = Env::new(&visit.input, &ctx, visit.variables);
    let effective =
        dataflow::effective_input(&node.common, pass.parameters.as_ref(), &visit.input, env)?;
    let result = pass.result.clone().unwrap_or(effective);
    let (output, assigned) = dataflow::finish(
        &node.common,
        None,
        &pass.result_path,
        visit.input.clone(),
        result,
        env,
    )?;
    Ok(Outcome {
        next: node.common.next.clone(),
        output,
        assigned,
    })
}
