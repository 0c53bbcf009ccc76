//! getMacieFindingsCount: reads every finding of the run's job and its sensitive data discovery
//! results, decides per object whether it passes, passes tagged or is held for review, writes
//! the manifest and returns only its location and the counts. Findings the reviewers'
//! suppression rules cover are set aside first and recorded in the manifest.

use aws_types::SdkConfig;
use serde::{Deserialize, Serialize};
use tracing::{info, instrument};

use crate::config::FindingsConfig;
use crate::deadline::Deadline;
use crate::error::PipelineError;
use crate::false_positives::rules;
use crate::false_positives::suppression::Suppressions;
use crate::lambda::Handler;
use crate::macie::findings::{flag_objects, job_findings};
use crate::macie::results::{self, verdicts};
use crate::macie::severity::Severity;
use crate::manifest::{self, Manifest, ManifestRef, Route};
use crate::workflow::WorkflowId;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FindingsInput {
    pub workflow_id: WorkflowId,
    pub job_id: String,
}

/// What the run's job found, for the execution history; routing reads the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FindingsSummary {
    pub manifest: ManifestRef,
    pub finding_count: u64,
    pub flagged_objects: u64,
    /// Flagged objects held for review plus objects Macie did not analyse completely.
    pub review_objects: u64,
    pub pass_tagged_objects: u64,
    pub not_analysed_objects: u64,
    pub analysed_clean_objects: u64,
    pub highest_severity: Option<Severity>,
    /// Flagged objects by their highest severity.
    pub flagged_by_severity: BySeverity,
    /// Bytes Macie analysed, and what that costs at the configured price (USD, estimated).
    pub bytes_scanned: u64,
    pub estimated_macie_cost_usd: String,
}

/// A count for each severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BySeverity {
    pub high: u64,
    pub medium: u64,
    pub low: u64,
}

impl BySeverity {
    /// Counts each severity of `severities`.
    pub fn count(severities: impl IntoIterator<Item = Severity>) -> Self {
        let mut counts = Self::default();
        for severity in severities {
            match severity {
                Severity::High => counts.high += 1,
                Severity::Medium => counts.medium += 1,
                Severity::Low => counts.low += 1,
            }
        }
        counts
    }
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
        let config = &self.config;
        let region = self
            .macie
            .config()
            .region()
            .map(ToString::to_string)
            .ok_or_else(|| PipelineError::InvalidInput("no AWS region is configured".into()))?;
        let location = results::location(
            &self.macie,
            &region,
            &config.discovery_results_bucket,
            &config.discovery_results_kms_key_arn,
        )
        .await?;
        let prefix = location.job_prefix(&config.account_id, &region, &input.job_id);
        let all_findings =
            job_findings(&self.macie, &input.job_id, config.include_archived).await?;
        let finding_count = all_findings.len() as u64;
        // Reviewers' suppression rules, as they are when the run counts its findings.
        let listed = rules::read_all(&self.s3, &config.manifest_bucket).await?;
        let (findings, suppressed) = Suppressions::new(&listed).apply(all_findings);
        let flagged = flag_objects(
            &findings,
            &config.scan_stage_bucket,
            config.minimum_severity,
        )?;
        let job_results =
            results::read_job(&self.s3, &location, &prefix, &config.scan_stage_bucket).await?;
        let verdicts = verdicts(&input.job_id, flagged, &job_results)?;
        let manifest = Manifest {
            version: manifest::VERSION,
            workflow_id: input.workflow_id,
            job_id: input.job_id,
            scan_stage_bucket: config.scan_stage_bucket.clone(),
            minimum_severity: config.minimum_severity,
            finding_count,
            objects: verdicts.flagged,
            not_analysed: verdicts.not_analysed,
            analysed: verdicts.analysed,
            bytes_scanned: job_results.bytes_classified,
            macie_price: config.macie_price,
            held_aside: Default::default(),
            superseded: Vec::new(),
            suppressed,
        };
        let count =
            |route: Route| manifest.objects.iter().filter(|o| o.route == route).count() as u64;
        let written = manifest::write(&self.s3, &config.manifest_bucket, &manifest).await?;
        let not_analysed = manifest.not_analysed.len() as u64;
        let summary = FindingsSummary {
            manifest: written,
            finding_count: manifest.finding_count,
            flagged_objects: manifest.objects.len() as u64,
            review_objects: count(Route::Review) + not_analysed,
            pass_tagged_objects: count(Route::PassTagged),
            not_analysed_objects: not_analysed,
            analysed_clean_objects: manifest.analysed.len() as u64,
            highest_severity: manifest.highest_severity(),
            flagged_by_severity: BySeverity::count(
                manifest.objects.iter().map(|o| o.highest_severity),
            ),
            bytes_scanned: manifest.bytes_scanned,
            estimated_macie_cost_usd: manifest.macie_price.cost_text(manifest.bytes_scanned),
        };
        info!(
            findings = summary.finding_count,
            review = summary.review_objects,
            suppressed = manifest.suppressed.len(),
            pass_tagged = summary.pass_tagged_objects,
            not_analysed,
            bytes_scanned = summary.bytes_scanned,
            estimated_macie_cost_usd = summary.estimated_macie_cost_usd,
            results_files = job_results.files,
            results_prefix = prefix,
            "findings and discovery results summarised"
        );
        Ok(summary)
    }
}
