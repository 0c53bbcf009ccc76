//! Fail: ends the machine with its Error and Cause, literal or from a path or an intrinsic
//! function. Without Error the failure has no name at all, as in AWS.

use super::context;
use super::frame::{Frame, Visit};
use crate::sfn::definition::state::{Fail, Node, Text};
use crate::sfn::error::StatesError;
use crate::sfn::expr::env::Env;

fn text(text: Option<&Text>, field: &str, env: &Env) -> Result<Option<String>, StatesError> {
    let value = match text {
        None => return Ok(None),
        Some(Text::Literal(literal)) => return Ok(Some(literal.clone())),
        Some(Text::Path(path)) => path
            .read(env)
            .map_err(|_| StatesError::runtime(path.not_found(field, env.input)))?,
        Some(Text::Call(call)) => call.evaluate(env).map_err(|why| {
            StatesError::runtime(format!(
                "The function {} specified for the field '{field}' failed: {why}",
                call.function.name()
            ))
        })?,
    };
    match value {
        serde_json::Value::String(text) => Ok(Some(text)),
        other => Err(StatesError::runtime(format!(
            "The value of the field '{field}' must be a string, got {other}"
        ))),
    }
}

/// The error the Fail state ends with (or a runtime failure evaluating it).
pub fn run(frame: Frame, node: &Node, fail: &Fail, visit: &Visit) -> StatesError {
    let ctx = context::object(frame.execution, &node.name, visit.entered_ms, None);
    let env = Env::new(&visit.input, &ctx, visit.variables);
    let error = match text(fail.error.as_ref(), "ErrorPath", &env) {
        Ok(error) => error,
        Err(err) => return err,
    };
    match text(fail.cause.as_ref(), "CausePath", &env) {
        Ok(cause) => StatesError::named(error, cause),
        Err(err) => err,
    }
}
