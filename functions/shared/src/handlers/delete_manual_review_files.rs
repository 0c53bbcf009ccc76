//! deleteManualReviewS3Files: the step after the release of a review. Deletes the held objects
//! the reviewer chose to delete, and, when the approval timed out with `deny`, the ones nobody
//! decided, from manual-review and, where raw is versioned, the raw version each came from.
//! Objects nobody decided are otherwise left where they are, and counted for the state machine.

use aws_types::SdkConfig;
use serde::Deserialize;
use tracing::{info, instrument};

use crate::approval::decisions::ReviewRecords;
use crate::config::DeleteConfig;
use crate::deadline::Deadline;
use crate::error::PipelineError;
use crate::handlers::steps::{
    PassContext, RunManifest, StepProgress, StepStatus, ToDelete, delete_held,
};
use crate::lambda::Handler;
use crate::manifest::{self, ManifestRef};
use crate::workflow::WorkflowId;

pub use crate::approval::decisions::Undecided;

/// Input of the deletion after a review.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteInput {
    pub workflow_id: WorkflowId,
    pub manifest: ManifestRef,
    pub progress: Option<StepProgress>,
    /// Set by the state machine on every path: a review that was completed, or one that timed
    /// out with either action.
    pub undecided: Undecided,
}

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
    type Input = DeleteInput;
    type Output = StepProgress;
    const NAME: &'static str = "deleteManualReviewS3Files";

    #[instrument(skip_all, fields(workflow_id = %input.workflow_id))]
    async fn handle(
        &self,
        input: DeleteInput,
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
        let decided = ReviewRecords::of(&self.s3, &input.manifest);
        let mut progress = delete_held(
            &context,
            &self.config.manual_review_bucket,
            &self.config.raw_bucket,
            &run,
            ToDelete {
                decided: &decided,
                undecided: input.undecided,
            },
            input.progress,
            Self::NAME,
        )
        .await?;
        let undecided = progress.tally.undecided;
        if progress.status == StepStatus::Done {
            progress.undecided = Some(undecided);
        }
        info!(status = ?progress.status, deleted = progress.tally.deleted, undecided, "delete pass ended");
        Ok(progress)
    }
}
