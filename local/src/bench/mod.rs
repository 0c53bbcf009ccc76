//! Benchmarks that print their figures (never timed assertions): the flow of a whole run, the
//! raw -> scan-stage move rate by size and concurrency, and the state transitions a run is billed.

pub mod arrivals;
pub mod flow;
pub mod moves;
pub mod transitions;

use std::time::Duration;

use serde_json::json;

use crate::demo;
use crate::sfn::engine::ExecutionRecord;
use crate::stack::{LocalStack, StackConfig};

/// A local stack started for one measured run, with the clients and the raw bucket it uses.
pub(crate) struct RunStack {
    pub stack: LocalStack,
    pub s3: aws_sdk_s3::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub raw: String,
}

impl RunStack {
    /// Starts the stack quietly: no state printing, no email printing.
    pub async fn start(mut config: StackConfig) -> Result<Self, String> {
        config.on_publish = None;
        config.observer = None;
        let stack = LocalStack::start(config).await?;
        let aws = stack.sdk_config().await;
        let raw = stack
            .deployment()
            .bucket("DataPipelineRawBucket")
            .to_owned();
        Ok(Self {
            s3: aws_sdk_s3::Client::new(&aws),
            sfn: aws_sdk_sfn::Client::new(&aws),
            raw,
            stack,
        })
    }

    /// Starts an execution named `id` for workflow `id`; returns its ARN.
    pub async fn start_run(&self, id: &str) -> Result<String, String> {
        Ok(self
            .sfn
            .start_execution()
            .state_machine_arn(self.stack.state_machine_arn())
            .name(id)
            .input(json!({ "id": id }).to_string())
            .send()
            .await
            .map_err(|err| format!("StartExecution: {}", err.into_service_error()))?
            .execution_arn)
    }

    /// Waits up to `limit` for the run to end, shuts the stack down, and returns the run's
    /// final status and record.
    pub async fn finish(
        self,
        arn: &str,
        limit: Duration,
    ) -> Result<(String, ExecutionRecord), String> {
        let ended = demo::wait_for_end(&self.sfn, arn, limit).await?;
        let record = self
            .stack
            .engine()
            .describe(arn)
            .ok_or("the execution disappeared")?;
        self.stack.shutdown().await;
        Ok((ended.status.as_str().to_owned(), record))
    }
}

/// The states a run entered, in order: what Step Functions Standard bills.
pub fn states_entered(record: &ExecutionRecord) -> Vec<&str> {
    record
        .history
        .iter()
        .filter(|event| event.kind.ends_with("StateEntered"))
        .filter_map(|event| event.details["stateEnteredEventDetails"]["name"].as_str())
        .collect()
}
