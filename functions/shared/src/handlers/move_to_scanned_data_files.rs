//! moveToScannedDataS3Files: the first step after a review, decided or timed out. Releases the
//! held objects the reviewer chose to release, from manual-review to scanned-data, their
//! `SensitiveDataFound=true` tag kept. A version whose key already has a newer version in
//! scanned-data is not released over it: it stays in manual-review, recorded, and the run's
//! notification says where. Each object's decision is read from S3 as it is reached (see
//! [`crate::approval::decisions`]).

use aws_types::SdkConfig;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{info, instrument};

use crate::approval::decisions::ReviewRecords;
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

/// Input of the release after a review.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleaseInput {
    pub workflow_id: WorkflowId,
    /// The run's manifest: only the objects it held for review, and of those the ones decided
    /// for release, are acted on.
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
    type Input = ReleaseInput;
    type Output = StepProgress;
    const NAME: &'static str = "moveToScannedDataS3Files";

    #[instrument(skip_all, fields(workflow_id = %input.workflow_id))]
    async fn handle(
        &self,
        input: ReleaseInput,
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
        let progress = release_held(
            &context,
            &self.config.manual_review_bucket,
            &self.config.scanned_data_bucket,
            &run,
            &decided,
            input.progress,
            Self::NAME,
        )
        .await?;
        if progress.status == StepStatus::Done {
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
            record::write_outcome(&self.s3, &input.manifest.bucket, &decided.review, &outcome)
                .await?;
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
