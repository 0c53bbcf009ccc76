//! deleteManualReviewS3Files: the step after the release of a review. Deletes the held objects
//! the reviewer chose to delete, and, when the approval timed out with `deny`, the ones nobody
//! decided, from manual-review and, where raw is versioned, the raw version each came from.
//! Objects nobody decided are otherwise left where they are, and counted for the state machine.

use aws_types::SdkConfig;
use serde::Deserialize;
use tracing::{info, instrument};

use crate::approval::decisions::{self, ReviewRecords};
use crate::approval::outcomes;
use crate::approval::report::{self, Report};
use crate::config::DeleteConfig;
use crate::deadline::Deadline;
use crate::error::PipelineError;
use crate::false_positives::rules;
use crate::handlers::steps::{
    PassContext, RunManifest, StepProgress, StepStatus, ToDelete, delete_held,
};
use crate::lambda::Handler;
use crate::manifest::{self, ManifestRef};
use crate::s3::documents;
use crate::workflow::WorkflowId;

pub use crate::approval::decisions::Undecided;

/// Writes the review's report, JSON and page, from the records: the manifest read again (routing
/// and the release add to it), every decision, every outcome, and the rules the report names.
async fn write_report(
    s3: &aws_sdk_s3::Client,
    location: &ManifestRef,
    review: &str,
    workflow_id: &WorkflowId,
) -> Result<(), PipelineError> {
    let bucket = &location.bucket;
    let manifest = manifest::read(s3, location, workflow_id).await?;
    let decisions = decisions::read_all(s3, bucket, review).await?;
    let outcomes = outcomes::read_all(s3, bucket, review).await?;
    let listed = if manifest.suppressed.is_empty() {
        Vec::new()
    } else {
        rules::read_all(s3, bucket).await?
    };
    let written_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("now formats");
    let report = Report::new(
        location,
        &manifest,
        &decisions,
        &outcomes,
        &listed,
        &written_at,
    );
    let (json_key, html_key) = report::keys(review);
    documents::put_json(s3, bucket, &json_key, &report).await?;
    documents::put_text(
        s3,
        bucket,
        &html_key,
        "text/html; charset=utf-8",
        report.html(),
    )
    .await?;
    info!(
        report = html_key,
        held = report.held.len(),
        "review report written"
    );
    Ok(())
}

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
            // The last step of every review: the run's record, whole.
            write_report(
                &self.s3,
                &input.manifest,
                &decided.review,
                &input.workflow_id,
            )
            .await?;
        }
        info!(status = ?progress.status, deleted = progress.tally.deleted, undecided, "delete pass ended");
        Ok(progress)
    }
}
