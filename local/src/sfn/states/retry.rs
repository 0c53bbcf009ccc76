//! Retry and Catch around the attempts of a Task, Parallel or Map state: retriers are scanned
//! in order and each counts its own attempts over the whole visit; when none applies (or it is
//! exhausted) the first matching catcher writes `{"Error", "Cause"}` into the raw input at its
//! ResultPath and goes to its Next; otherwise the error fails the machine.

use std::future::Future;

use serde_json::Value;

use super::context;
use super::dataflow;
use super::frame::{Frame, Outcome, Visit};
use crate::sfn::definition::recovery::{Jitter, Recovery};
use crate::sfn::definition::state::Node;
use crate::sfn::error::StatesError;
use crate::sfn::expr::env::{Env, Variables};

/// Runs `attempt` (given the retry count so far) until it succeeds, is caught, or fails.
pub async fn recover<F, Fut>(
    frame: Frame<'_>,
    node: &Node,
    recovery: &Recovery,
    visit: &Visit<'_>,
    first_retry_count: u32,
    mut attempt: F,
) -> Result<Outcome, StatesError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<(Value, Variables), StatesError>>,
{
    let mut attempts = vec![0u64; recovery.retry.len()];
    let mut retry_count = first_retry_count;
    loop {
        let error = match attempt(retry_count).await {
            Ok((output, assigned)) => {
                return Ok(Outcome {
                    next: node.common.next.clone(),
                    output,
                    assigned,
                });
            }
            Err(error) => error.located(&node.name, visit.entered_event),
        };
        if error.is_terminal() {
            return Err(error);
        }
        if let Some(index) = recovery.retry.iter().position(|r| r.matches(&error.error)) {
            let retrier = &recovery.retry[index];
            if attempts[index] < retrier.max_attempts {
                let mut delay = retrier.delay(attempts[index]);
                if retrier.jitter == Jitter::Full {
                    delay *= rand::random::<f64>();
                }
                attempts[index] += 1;
                retry_count += 1;
                frame.runtime.clock.sleep(delay).await;
                continue;
            }
        }
        let Some(catcher) = recovery.catch.iter().find(|c| c.matches(&error.error)) else {
            return Err(error);
        };
        let error_output = error.output();
        let context = context::object(
            frame.execution,
            &node.name,
            visit.entered_ms,
            Some(retry_count),
        );
        let env = Env::new(&error_output, &context, visit.variables);
        let assigned = dataflow::assign(catcher.assign.as_ref(), &error_output, env)?;
        let output = catcher
            .result_path
            .apply(visit.input.clone(), error_output)?;
        return Ok(Outcome {
            next: Some(catcher.next.clone()),
            output,
            assigned,
        });
    }
}
