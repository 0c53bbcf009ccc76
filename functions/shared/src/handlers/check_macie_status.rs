//! checkMacieStatus: reads the job's status and says what the run does next: read findings,
//! wait and poll again, or stop.

use std::time::SystemTime;

use aws_types::SdkConfig;
use serde::Deserialize;
use tracing::{info, instrument};

use crate::config::StatusConfig;
use crate::deadline::Deadline;
use crate::error::PipelineError;
use crate::lambda::Handler;
use crate::macie::job::{JobState, job_state};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusInput {
    pub job_id: String,
}

pub struct CheckMacieStatus {
    pub macie: aws_sdk_macie2::Client,
    pub config: StatusConfig,
}

impl CheckMacieStatus {
    pub fn new(aws: &SdkConfig, config: StatusConfig) -> Self {
        Self {
            macie: aws_sdk_macie2::Client::new(aws),
            config,
        }
    }
}

impl Handler for CheckMacieStatus {
    type Input = StatusInput;
    type Output = JobState;
    const NAME: &'static str = "checkMacieStatus";

    #[instrument(skip_all, fields(job_id = %input.job_id))]
    async fn handle(
        &self,
        input: StatusInput,
        _deadline: Deadline,
    ) -> Result<JobState, PipelineError> {
        let job = self
            .macie
            .describe_classification_job()
            .job_id(&input.job_id)
            .send()
            .await
            .map_err(|err| PipelineError::from_sdk("DescribeClassificationJob", err))?;
        let state = job_state(
            job.job_status(),
            job.last_run_error_status().and_then(|status| status.code()),
            job.created_at()
                .and_then(|at| SystemTime::try_from(*at).ok()),
            SystemTime::now(),
            self.config.job_timeout,
        );
        info!(?state, "job status");
        Ok(state)
    }
}
