//! moveToScannedDataS3Files: the reviewer approved. Releases the objects the approval request
//! showed from manual-review to scanned-data, their `SensitiveDataFound=true` tag kept.

use aws_types::SdkConfig;
use serde::Deserialize;
use tracing::{info, instrument};

use crate::config::ReleaseConfig;
use crate::deadline::Deadline;
use crate::error::PipelineError;
use crate::handlers::steps::{PassContext, StepProgress, release_held};
use crate::lambda::Handler;
use crate::manifest::{self, ManifestRef};
use crate::workflow::WorkflowId;

/// Input of the steps that act on the held objects.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeldInput {
    pub workflow_id: WorkflowId,
    /// The run's manifest: only the objects it held for review are acted on.
    pub manifest: ManifestRef,
    pub progress: Option<StepProgress>,
}

pub struct MoveToScannedDataFiles {
    pub s3: aws_sdk_s3::Client,
    pub config: ReleaseConfig,
}

impl MoveToScannedDataFiles {
    pub fn new(aws: &SdkConfig, config: ReleaseConfig) -> Self {
        Self {
            s3: aws_sdk_s3::Client::new(aws),
            config,
        }
    }
}

impl Handler for MoveToScannedDataFiles {
    type Input = HeldInput;
    type Output = StepProgress;
    const NAME: &'static str = "moveToScannedDataS3Files";

    #[instrument(skip_all, fields(workflow_id = %input.workflow_id))]
    async fn handle(
        &self,
        input: HeldInput,
        deadline: Deadline,
    ) -> Result<StepProgress, PipelineError> {
        let manifest = manifest::read(&self.s3, &input.manifest, &input.workflow_id).await?;
        let context = PassContext {
            s3: &self.s3,
            settings: &self.config.moves,
            workflow_id: &input.workflow_id,
            deadline,
        };
        let progress = release_held(
            &context,
            &self.config.manual_review_bucket,
            &self.config.scanned_data_bucket,
            &manifest,
            input.progress,
            Self::NAME,
        )
        .await?;
        info!(status = ?progress.status, released = progress.tally.moved, "release pass ended");
        Ok(progress)
    }
}
