//! getMacieFindingsCount: reads every finding of the run's job, decides per object whether it
//! needs review, writes the manifest and returns only its location and the counts.

use aws_types::SdkConfig;
use serde::{Deserialize, Serialize};
use tracing::{info, instrument};

use crate::config::FindingsConfig;
use crate::deadline::Deadline;
use crate::error::PipelineError;
use crate::lambda::Handler;
use crate::macie::findings::{flag_objects, job_findings};
use crate::macie::severity::Severity;
use crate::manifest::{self, Manifest, ManifestRef, Route};
use crate::workflow::WorkflowId;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FindingsInput {
    pub workflow_id: WorkflowId,
    pub job_id: String,
}

/// The summary the state machine branches on. `reviewObjects > 0` means manual review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FindingsSummary {
    pub manifest: ManifestRef,
    pub finding_count: u64,
    pub flagged_objects: u64,
    pub review_objects: u64,
    pub pass_tagged_objects: u64,
    pub highest_severity: Option<Severity>,
}

pub struct GetFindingsCount {
    pub s3: aws_sdk_s3::Client,
    pub macie: aws_sdk_macie2::Client,
    pub config: FindingsConfig,
}

impl GetFindingsCount {
    pub fn new(aws: &SdkConfig, config: FindingsConfig) -> Self {
        Self {
            s3: aws_sdk_s3::Client::new(aws),
            macie: aws_sdk_macie2::Client::new(aws),
            config,
        }
    }
}

impl Handler for GetFindingsCount {
    type Input = FindingsInput;
    type Output = FindingsSummary;
    const NAME: &'static str = "getMacieFindingsCount";

    #[instrument(skip_all, fields(workflow_id = %input.workflow_id, job_id = %input.job_id))]
    async fn handle(
        &self,
        input: FindingsInput,
        _deadline: Deadline,
    ) -> Result<FindingsSummary, PipelineError> {
        let findings =
            job_findings(&self.macie, &input.job_id, self.config.include_archived).await?;
        let objects = flag_objects(
            &findings,
            &self.config.scan_stage_bucket,
            self.config.minimum_severity,
        )?;
        let manifest = Manifest {
            version: manifest::VERSION,
            workflow_id: input.workflow_id,
            job_id: input.job_id,
            scan_stage_bucket: self.config.scan_stage_bucket.clone(),
            minimum_severity: self.config.minimum_severity,
            finding_count: findings.len() as u64,
            objects,
        };
        let count =
            |route: Route| manifest.objects.iter().filter(|o| o.route == route).count() as u64;
        let location = manifest::write(&self.s3, &self.config.manifest_bucket, &manifest).await?;
        let summary = FindingsSummary {
            manifest: location,
            finding_count: manifest.finding_count,
            flagged_objects: manifest.objects.len() as u64,
            review_objects: count(Route::Review),
            pass_tagged_objects: count(Route::PassTagged),
            highest_severity: manifest.highest_severity(),
        };
        info!(
            findings = summary.finding_count,
            review = summary.review_objects,
            pass_tagged = summary.pass_tagged_objects,
            "findings summarised"
        );
        Ok(summary)
    }
}
