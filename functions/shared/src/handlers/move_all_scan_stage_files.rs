//! moveAllScanStageS3Files: routes this workflow's scan-stage objects by the manifest. Objects
//! with findings at or above the threshold, and objects Macie did not analyse completely, go to
//! manual-review; the rest go on to scanned-data. Once the pass is done it reports how many
//! objects wait for a decision, and the state machine asks for one only then.

use aws_types::SdkConfig;
use serde::Deserialize;
use tracing::{info, instrument};

use crate::config::RouteConfig;
use crate::deadline::Deadline;
use crate::error::PipelineError;
use crate::handlers::steps::{
    PassContext, RouteTargets, RunManifest, StepProgress, StepStatus, route_scan_stage,
};
use crate::lambda::Handler;
use crate::manifest::{self, ManifestRef};
use crate::workflow::WorkflowId;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteInput {
    pub workflow_id: WorkflowId,
    pub manifest: ManifestRef,
    pub progress: Option<StepProgress>,
}

pub struct MoveAllScanStageFiles {
    pub s3: aws_sdk_s3::Client,
    pub config: RouteConfig,
}

impl MoveAllScanStageFiles {
    pub fn new(aws: &SdkConfig, config: RouteConfig) -> Self {
        Self {
            s3: aws_sdk_s3::Client::new(aws),
            config,
        }
    }
}

impl Handler for MoveAllScanStageFiles {
    type Input = RouteInput;
    type Output = StepProgress;
    const NAME: &'static str = "moveAllScanStageS3Files";

    #[instrument(skip_all, fields(workflow_id = %input.workflow_id))]
    async fn handle(
        &self,
        input: RouteInput,
        deadline: Deadline,
    ) -> Result<StepProgress, PipelineError> {
        let manifest = manifest::read(&self.s3, &input.manifest, &input.workflow_id).await?;
        let context = PassContext {
            s3: &self.s3,
            settings: &self.config.moves,
            workflow_id: &input.workflow_id,
            deadline,
        };
        let targets = RouteTargets {
            scan_stage: &self.config.scan_stage_bucket,
            manual_review: &self.config.manual_review_bucket,
            scanned_data: &self.config.scanned_data_bucket,
        };
        let run = RunManifest {
            location: &input.manifest,
            manifest: &manifest,
        };
        let mut progress =
            route_scan_stage(&context, &targets, &run, input.progress, Self::NAME).await?;
        if progress.status == StepStatus::Done {
            // Read again: this pass may have recorded objects without a discovery result.
            let complete = manifest::read(&self.s3, &input.manifest, &input.workflow_id).await?;
            progress.awaiting_review = Some(complete.held_keys().len() as u64);
        }
        info!(
            status = ?progress.status,
            moved = progress.tally.moved,
            held = progress.tally.held_for_review,
            awaiting_review = progress.awaiting_review,
            "routing pass ended"
        );
        Ok(progress)
    }
}
