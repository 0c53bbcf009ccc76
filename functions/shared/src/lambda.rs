//! How a handler meets Lambda: JSON in, JSON out, errors as [`Diagnostic`]s with stable names.
//! Handlers take the raw payload and parse it themselves, so that a malformed task input is an
//! `InvalidInput` error the state machine can catch, not a runtime type name.

use std::future::Future;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::error;

use crate::deadline::Deadline;
use crate::error::PipelineError;

/// A step of the workflow.
pub trait Handler: Sync {
    type Input: DeserializeOwned;
    type Output: Serialize;

    /// The function's name as the state machine knows it, for messages.
    const NAME: &'static str;

    fn handle(
        &self,
        input: Self::Input,
        deadline: Deadline,
    ) -> impl Future<Output = Result<Self::Output, PipelineError>> + Send;
}

/// Parses `payload`, runs the handler and serializes its result.
pub async fn invoke<H: Handler>(
    handler: &H,
    payload: Value,
    deadline: Deadline,
) -> Result<Value, PipelineError> {
    let input: H::Input = serde_json::from_value(payload).map_err(|err| {
        PipelineError::InvalidInput(format!(
            "{} received an unusable task input: {err}",
            H::NAME
        ))
    })?;
    let output = handler.handle(input, deadline).await?;
    Ok(serde_json::to_value(output).expect("handler outputs always serialize"))
}

/// Serves `handler` on the Lambda runtime API until the process ends.
pub async fn serve<H: Handler>(handler: H) -> Result<(), lambda_runtime::Error> {
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = Deadline::from_epoch_millis(event.context.deadline);
        // Boxed: the move futures nest deeply enough to overflow the compiler's layout depth
        // limit when inlined into the runtime's future.
        Box::pin(invoke(handler, event.payload, deadline))
            .await
            .map_err(|err| {
                error!(
                    error_type = err.name(),
                    error = %aws_smithy_types::error::display::DisplayErrorContext(&err),
                    "step failed"
                );
                Diagnostic::from(err)
            })
    }))
    .await
}
