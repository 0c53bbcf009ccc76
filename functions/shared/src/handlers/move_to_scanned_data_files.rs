//! moveToScannedDataS3Files: the reviewer approved. Releases the objects the approval request
//! showed from manual-review to scanned-data, their `SensitiveDataFound=true` tag kept. A
//! version whose key already has a newer version in scanned-data is not released over it: it
//! stays in manual-review, recorded, and the run's notification says where.

use aws_types::SdkConfig;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{info, instrument};

use crate::approval::record::{self, OutcomeRecord};
use crate::config::ReleaseConfig;
use crate::deadline::Deadline;
use crate::error::PipelineError;
use crate::handlers::steps::StepStatus;
use crate::handlers::steps::{PassContext, RunManifest, StepProgress, release_held};
use crate::lambda::Handler;
use crate::manifest::SupersededIn;
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
    /// The reviewer's decision as the approval API sent it (the release gets it; the delete,
    /// which a timeout can start too, does not).
    #[serde(default)]
    pub decision: Option<Decided>,
}

/// The output of the approval callback (`SendTaskSuccess`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Decided {
    pub action: String,
    pub decided_at: String,
    /// The key of the approval request's record, where the release records what it did.
    /// Decisions sent before the gate recorded outcomes have none.
    #[serde(default)]
    pub request: Option<String>,
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
        let run = RunManifest {
            location: &input.manifest,
            manifest: &manifest,
        };
        let progress = release_held(
            &context,
            &self.config.manual_review_bucket,
            &self.config.scanned_data_bucket,
            &run,
            input.progress,
            Self::NAME,
        )
        .await?;
        if progress.status == StepStatus::Done
            && let Some(request) = input.decision.as_ref().and_then(|d| d.request.as_deref())
        {
            // Read again: the tally lists only the first few, the records every one.
            let complete = manifest::read(&self.s3, &input.manifest, &input.workflow_id).await?;
            let outcome = OutcomeRecord {
                released: progress.tally.moved,
                superseded: complete
                    .superseded
                    .into_iter()
                    .filter(|s| s.step == SupersededIn::Release)
                    .collect(),
                finished_at: OffsetDateTime::now_utc()
                    .format(&Rfc3339)
                    .expect("now formats"),
            };
            record::write_outcome(&self.s3, &input.manifest.bucket, request, &outcome).await?;
        }
        info!(
            status = ?progress.status,
            released = progress.tally.moved,
            superseded = progress.tally.superseded,
            "release pass ended"
        );
        Ok(progress)
    }
}
