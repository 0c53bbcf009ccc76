//! Succeed: ends the machine with its input, after InputPath and OutputPath.

use super::context;
use super::dataflow;
use super::frame::{Frame, Outcome, Visit};
use crate::sfn::definition::state::Node;
use crate::sfn::error::StatesError;
use crate::sfn::expr::env::{Env, Variables};

pub fn run(frame: Frame, node: &Node, visit: &Visit) -> Result<Outcome, StatesError> {
    let ctx = context::object(frame.execution, &node.name, visit.entered_ms, None);
    let env = Env::new(&visit.input, &ctx, visit.variables);
    let effective = dataflow::select(&node.common.input_path, &visit.input, env)?;
    Ok(Outcome {
        next: None,
        output: dataflow::select(&node.common.output_path, &effective, env)?,
        assigned: Variables::new(),
    })
}
