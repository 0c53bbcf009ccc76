//! The data flow of one state, in AWS's order: InputPath selects from the raw input,
//! Parameters builds the effective input, the state works, ResultSelector reshapes its result,
//! ResultPath writes that into the raw input, OutputPath selects the output, and Assign sets
//! variables from the result. Every expression sees the variables as they were when the state
//! was entered; what Assign sets is visible from the next state on.

use serde_json::{Map, Value};

use crate::sfn::definition::fields::IoPath;
use crate::sfn::definition::state::Common;
use crate::sfn::error::StatesError;
use crate::sfn::expr::env::{Env, Variables};
use crate::sfn::expr::reference::ResultPath;
use crate::sfn::expr::template::Template;

/// InputPath or OutputPath applied to `value`.
pub fn select(path: &IoPath, value: &Value, env: Env) -> Result<Value, StatesError> {
    match path {
        IoPath::All => Ok(value.clone()),
        IoPath::Discard => Ok(Value::Object(Map::new())),
        IoPath::Path(path) => path
            .read(&env.with_input(value))
            .map_err(|_| StatesError::runtime(path.invalid())),
    }
}

/// The effective input: InputPath, then Parameters.
pub fn effective_input(
    common: &Common,
    parameters: Option<&Template>,
    raw: &Value,
    env: Env,
) -> Result<Value, StatesError> {
    let selected = select(&common.input_path, raw, env)?;
    match parameters {
        Some(template) => template.build(&env.with_input(&selected)),
        None => Ok(selected),
    }
}

/// The variables an Assign sets, with `$` the value it assigns from.
pub fn assign(
    template: Option<&Template>,
    from: &Value,
    env: Env,
) -> Result<Variables, StatesError> {
    let Some(template) = template else {
        return Ok(Variables::new());
    };
    match template.build(&env.with_input(from))? {
        Value::Object(fields) => Ok(fields.into_iter().collect()),
        other => Err(StatesError::runtime(format!(
            "Assign must be an object, got {other}"
        ))),
    }
}

/// From a state's result to its output and assignments: ResultSelector, ResultPath, Assign,
/// OutputPath.
pub fn finish(
    common: &Common,
    result_selector: Option<&Template>,
    result_path: &ResultPath,
    raw: Value,
    result: Value,
    env: Env,
) -> Result<(Value, Variables), StatesError> {
    let selected = match result_selector {
        Some(template) => template.build(&env.with_input(&result))?,
        None => result,
    };
    let assigned = assign(common.assign.as_ref(), &selected, env)?;
    let combined = result_path.apply(raw, selected)?;
    let output = select(&common.output_path, &combined, env)?;
    Ok((output, assigned))
}
