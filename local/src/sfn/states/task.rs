//! Task: calls its resource with its effective input, under its timeout, with Retry and Catch.
//! A `.waitForTaskToken` task mints a token per attempt, calls the resource (whose result is
//! discarded) and waits for SendTaskSuccess, SendTaskFailure, its timeout or a missed
//! heartbeat; a top-level one saves its token, so that after a restart it keeps waiting.

use serde_json::{Value, json};

use super::context;
use super::dataflow;
use super::frame::{Frame, Outcome, Visit, size_checked};
use super::retry;
use crate::aws::REGION;
use crate::clock::now_ms;
use crate::sfn::definition::state::{Node, Resource, Seconds, Task};
use crate::sfn::error::{HEARTBEAT_TIMEOUT, RUNTIME, StatesError, TIMEOUT};
use crate::sfn::execution::record::Phase;
use crate::sfn::execution::tokens::{self, CallbackMessage};
use crate::sfn::expr::env::{Env, Variables};
use crate::sfn::integrations;

pub async fn run(
    frame: Frame<'_>,
    node: &Node,
    task: &Task,
    visit: &Visit<'_>,
) -> Result<Outcome, StatesError> {
    let first = match &visit.phase {
        Phase::Callback { retry_count, .. } => *retry_count,
        _ => 0,
    };
    let mut resume = Some(visit.phase.clone());
    retry::recover(frame, node, &task.recovery, visit, first, |retry_count| {
        attempt(frame, node, task, visit, retry_count, resume.take())
    })
    .await
}

fn seconds(seconds: Option<&Seconds>, field: &str, env: &Env) -> Result<Option<f64>, StatesError> {
    match seconds {
        None => Ok(None),
        Some(Seconds::Fixed(seconds)) => Ok(Some(*seconds as f64)),
        Some(Seconds::Path(path)) => {
            let value = path
                .read(env)
                .map_err(|_| StatesError::runtime(path.invalid()))?;
            value.as_u64().filter(|s| *s > 0).map(|s| Some(s as f64)).ok_or_else(|| {
                StatesError::runtime(format!(
                    "The {field}Path field refers to value {value}, which is not a positive integer: {}",
                    path.text()
                ))
            })
        }
    }
}

/// One attempt: the state's output and assignments, or the task's error.
async fn attempt(
    frame: Frame<'_>,
    node: &Node,
    task: &Task,
    visit: &Visit<'_>,
    retry_count: u32,
    resume: Option<Phase>,
) -> Result<(Value, Variables), StatesError> {
    let callback = matches!(task.resource, Resource::LambdaInvoke { callback: true });
    let (resource_type, resource) = integrations::describe(&task.resource);
    let ctx = context::object(
        frame.execution,
        &node.name,
        visit.entered_ms,
        Some(retry_count),
    );
    let env = Env::new(&visit.input, &ctx, visit.variables);
    let effective = dataflow::select(&node.common.input_path, &visit.input, env)?;
    let at_effective = env.with_input(&effective);
    let timeout = seconds(task.timeout.as_ref(), "TimeoutSeconds", &at_effective)?;
    let heartbeat = seconds(task.heartbeat.as_ref(), "HeartbeatSeconds", &at_effective)?;

    let result = match resume {
        // A callback task resumed after a restart keeps waiting for the token it already sent.
        Some(Phase::Callback {
            token,
            timeout_at_ms,
            ..
        }) if callback => await_callback(frame, &token, timeout_at_ms, heartbeat).await,
        _ => {
            let token = callback.then(tokens::mint);
            let token_ctx = match &token {
                Some(token) => context::with_token(ctx.clone(), token),
                None => ctx.clone(),
            };
            let parameters = match &task.parameters {
                Some(template) => {
                    template.build(&Env::new(&effective, &token_ctx, visit.variables))?
                }
                None => effective.clone(),
            };
            let parameters = size_checked(parameters, &node.name)?;
            frame.event(
                "TaskScheduled",
                json!({"taskScheduledEventDetails": {"resourceType": resource_type, "resource": resource, "region": REGION, "parameters": parameters.to_string(), "timeoutInSeconds": timeout}}),
            );
            frame.event("TaskStarted", json!({"taskStartedEventDetails": {"resourceType": resource_type, "resource": resource}}));
            // A callback task waits for the world (a reviewer), which is workflow time and
            // scaled; any other task times the work it does, which runs in real time.
            let clock = frame.runtime.clock;
            let timeout_at_ms = timeout.map(|seconds| {
                if callback {
                    clock.after_ms(seconds)
                } else {
                    now_ms().saturating_add((seconds * 1000.0) as i64)
                }
            });
            let caller = integrations::Caller {
                execution_arn: &frame.execution.arn,
                machine_arn: &frame.execution.machine_arn,
            };
            let work = async {
                let integrations = frame.runtime.integrations.as_ref();
                match &token {
                    Some(token) => {
                        let token_hash = tokens::hash(token);
                        frame.runtime.tokens.open(token_hash);
                        frame.set_phase(Phase::Callback {
                            token: token.clone(),
                            timeout_at_ms,
                            retry_count,
                        });
                        integrations::call(integrations, &task.resource, &parameters, caller)
                            .await?;
                        frame.event("TaskSubmitted", json!({"taskSubmittedEventDetails": {"resourceType": resource_type, "resource": resource, "output": "{}"}}));
                        await_callback(frame, token, timeout_at_ms, heartbeat).await
                    }
                    None => {
                        integrations::call(integrations, &task.resource, &parameters, caller).await
                    }
                }
            };
            let outcome = match timeout_at_ms {
                Some(at) => tokio::select! {
                    outcome = work => outcome,
                    () = clock.sleep_until_ms(at) => Err(StatesError::new(TIMEOUT, format!("the task {} timed out", node.name))),
                },
                None => work.await,
            };
            if let (Some(token), Err(_)) = (&token, &outcome) {
                close(frame, token);
            }
            outcome
        }
    };
    let result = match result.and_then(|result| size_checked(result, &task.resource_arn)) {
        Ok(result) => result,
        Err(err) => {
            let (kind, key) = if err.error == TIMEOUT {
                ("TaskTimedOut", "taskTimedOutEventDetails")
            } else {
                ("TaskFailed", "taskFailedEventDetails")
            };
            frame.event(
                kind,
                json!({ key: {"resourceType": resource_type, "resource": resource, "error": err.error, "cause": err.cause} }),
            );
            return Err(err);
        }
    };
    frame.event(
        "TaskSucceeded",
        json!({"taskSucceededEventDetails": {"resourceType": resource_type, "resource": resource, "output": result.to_string()}}),
    );
    dataflow::finish(
        &node.common,
        task.result_selector.as_ref(),
        &task.result_path,
        visit.input.clone(),
        result,
        env,
    )
}

fn close(frame: Frame, token: &str) {
    let token_hash = tokens::hash(token);
    frame.runtime.tokens.close(&token_hash);
    frame
        .runtime
        .executions
        .close_token(&frame.execution.arn, &token_hash);
}

/// Waits for the token's callback, its deadline, or a missed heartbeat; the token is closed
/// whatever happens.
async fn await_callback(
    frame: Frame<'_>,
    token: &str,
    timeout_at_ms: Option<i64>,
    heartbeat: Option<f64>,
) -> Result<Value, StatesError> {
    let clock = frame.runtime.clock;
    let Some(mut receiver) = frame.runtime.tokens.take_receiver(&tokens::hash(token)) else {
        return Err(StatesError::new(
            RUNTIME,
            "the task token is no longer open",
        ));
    };
    let deadline = async {
        match timeout_at_ms {
            Some(at) => clock.sleep_until_ms(at).await,
            None => futures::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let outcome = loop {
        let beat = async {
            match heartbeat {
                Some(seconds) => clock.sleep(seconds).await,
                None => futures::future::pending().await,
            }
        };
        tokio::select! {
            message = receiver.recv() => match message {
                Some(CallbackMessage::Heartbeat) => continue,
                Some(CallbackMessage::Success(output)) => break Ok(output),
                Some(CallbackMessage::Failure { error, cause }) => break Err(StatesError::named(Some(error), cause)),
                None => break Err(StatesError::new(RUNTIME, "the task was closed")),
            },
            () = &mut deadline => break Err(StatesError::new(TIMEOUT, "no callback arrived before the task's TimeoutSeconds")),
            () = beat => break Err(StatesError::new(HEARTBEAT_TIMEOUT, "no heartbeat arrived within HeartbeatSeconds")),
        }
    };
    close(frame, token);
    outcome
}
