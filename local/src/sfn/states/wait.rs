//! Wait: sleeps the seconds or until the timestamp given, in workflow time (scaled by the
//! stack's clock). A top-level Wait saves when it ends, so a restart sleeps only what is left.

use serde_json::Value;

use super::context;
use super::dataflow;
use super::frame::{Frame, Outcome, Visit};
use crate::clock::now_ms;
use crate::sfn::definition::state::{Node, Wait};
use crate::sfn::error::StatesError;
use crate::sfn::execution::record::Phase;
use crate::sfn::expr::env::Env;

pub async fn run(
    frame: Frame<'_>,
    node: &Node,
    wait: &Wait,
    visit: &Visit<'_>,
) -> Result<Outcome, StatesError> {
    let ctx = context::object(frame.execution, &node.name, visit.entered_ms, None);
    let env = Env::new(&visit.input, &ctx, visit.variables);
    let effective = dataflow::select(&node.common.input_path, &visit.input, env)?;
    let env = env.with_input(&effective);
    let until_ms = match visit.phase {
        Phase::Wait { until_ms } => until_ms,
        _ => {
            let until_ms = until(frame, wait, &env)?;
            frame.set_phase(Phase::Wait { until_ms });
            until_ms
        }
    };
    frame.runtime.clock.sleep_until_ms(until_ms).await;
    let assigned = dataflow::assign(node.common.assign.as_ref(), &effective, env)?;
    Ok(Outcome {
        next: node.common.next.clone(),
        output: dataflow::select(&node.common.output_path, &effective, env)?,
        assigned,
    })
}

/// When the wait ends, on the stack's clock.
fn until(frame: Frame, wait: &Wait, env: &Env) -> Result<i64, StatesError> {
    let clock = frame.runtime.clock;
    let at_timestamp = |text: &str| -> Option<i64> {
        let at = crate::sfn::expr::timestamp::parse(text)?;
        let real_ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        // The time left until the timestamp is workflow time too, so it is scaled.
        let left = (real_ms - now_ms()).max(0) as f64 / 1000.0;
        Some(clock.after_ms(left))
    };
    match wait {
        Wait::Seconds(seconds) => Ok(clock.after_ms(*seconds as f64)),
        Wait::SecondsPath(path) => {
            let value = path.read(env).map_err(|_| {
                StatesError::runtime(format!(
                    "The SecondsPath parameter does not reference an input value: {}",
                    path.text()
                ))
            })?;
            let seconds = match &value {
                Value::Number(n) if n.as_i64().is_some() || n.as_u64().is_some() => n.as_f64(),
                _ => None,
            };
            match seconds {
                Some(s) if s < 0.0 => Err(StatesError::runtime(format!(
                    "The SecondsPath parameter references a negative value: {} == {value}",
                    path.text()
                ))),
                Some(s) => Ok(clock.after_ms(s)),
                None => Err(StatesError::runtime(format!(
                    "The SecondsPath parameter cannot be parsed as a long value: {} == {value}",
                    path.text()
                ))),
            }
        }
        Wait::Timestamp(text) => at_timestamp(text).ok_or_else(|| {
            StatesError::runtime(format!(
                "The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: {text}"
            ))
        }),
        Wait::TimestampPath(path) => {
            let value = path.read(env).map_err(|_| StatesError::runtime(path.invalid()))?;
            value.as_str().and_then(at_timestamp).ok_or_else(|| {
                let shown = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
                StatesError::runtime(format!(
                    "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {} == {shown}",
                    path.text()
                ))
            })
        }
    }
}
