//! deleteManualReviewS3Files: the reviewer denied (or the approval timed out with the `deny`
//! default). Deletes the objects the approval request showed from manual-review, and, where raw
//! is versioned, the raw version each came from.

use aws_types::SdkConfig;
use tracing::{info, instrument};

use crate::config::DeleteConfig;
use crate::deadline::Deadline;
use crate::error::PipelineError;
use crate::handlers::move_to_scanned_data_files::HeldInput;
use crate::handlers::steps::{PassContext, RunManifest, StepProgress, delete_held};
use crate::lambda::Handler;
use crate::manifest;

pub struct DeleteManualReviewFiles {
    pub s3: aws_sdk_s3::Client,
    pub config: DeleteConfig,
}

impl DeleteManualReviewFiles {
    pub fn new(aws: &SdkConfig, config: DeleteConfig) -> Self {
        Self {
            s3: aws_sdk_s3::Client::new(aws),
            config,
        }
    }
}

impl Handler for DeleteManualReviewFiles {
    type Input = HeldInput;
    type Output = StepProgress;
    const NAME: &'static str = "deleteManualReviewS3Files";

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
        let run = RunManifest {
            location: &input.manifest,
            manifest: &manifest,
        };
        let progress = delete_held(
            &context,
            &self.config.manual_review_bucket,
            &self.config.raw_bucket,
            &run,
            input.progress,
            Self::NAME,
        )
        .await?;
        info!(status = ?progress.status, deleted = progress.tally.deleted, "delete pass ended");
        Ok(progress)
    }
}
