//! moveAllScanStageS3Files: the path with nothing to review. Moves this workflow's scan-stage
//! objects to scanned-data, tagging the ones with low-severity findings. It cannot send anything
//! to manual review: an object the manifest holds for review stops the step instead.

use aws_types::SdkConfig;
use serde::Deserialize;
use tracing::{info, instrument};

use crate::config::RouteConfig;
use crate::deadline::Deadline;
use crate::error::PipelineError;
use crate::handlers::steps::{PassContext, RouteTargets, StepProgress, route_scan_stage};
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
            scanned_data: &self.config.scanned_data_bucket,
            manual_review: None,
        };
        let progress =
            route_scan_stage(&context, &targets, &manifest, input.progress, Self::NAME).await?;
        info!(status = ?progress.status, moved = progress.tally.moved, "scan-stage pass ended");
        Ok(progress)
    }
}
