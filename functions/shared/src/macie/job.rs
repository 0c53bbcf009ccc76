//! The Macie classification job of one run: created once per workflow (a retried invocation gets
//! the same job back through the client token), scoped to the objects tagged with the workflow
//! id, and read back as a typed status.

use std::time::{Duration, SystemTime};

use aws_sdk_macie2::Client;
use aws_sdk_macie2::types::{
    JobScopeTerm, JobScopingBlock, JobStatus, JobType, LastRunErrorStatusCode,
    ManagedDataIdentifierSelector, S3BucketDefinitionForJob, S3JobDefinition, Scoping,
    TagScopeTerm, TagTarget, TagValuePair,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{EnvReader, FromEnv};
use crate::error::PipelineError;
use crate::tags::WORKFLOW_ID;
use crate::workflow::WorkflowId;

/// Which identifiers a job uses, from configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobSettings {
    pub custom_data_identifier_ids: Vec<String>,
    pub allow_list_ids: Vec<String>,
    /// The gate's own allow lists (false-positive phrases and patterns), used by every job.
    pub gate_allow_list_ids: Vec<String>,
    /// `RECOMMENDED` (Macie's default), `ALL`, `NONE`, `INCLUDE` or `EXCLUDE`.
    pub managed_selector: String,
    pub managed_identifier_ids: Vec<String>,
}

impl FromEnv for JobSettings {
    fn read(env: &mut EnvReader<'_>) -> Self {
        let settings = Self {
            custom_data_identifier_ids: env.list("CUSTOM_DATA_IDENTIFIER_IDS"),
            allow_list_ids: env.list("ALLOW_LIST_IDS"),
            gate_allow_list_ids: env.list("GATE_ALLOW_LIST_IDS"),
            managed_selector: env
                .optional("MANAGED_DATA_IDENTIFIER_SELECTOR", "RECOMMENDED".to_owned())
                .to_ascii_uppercase(),
            managed_identifier_ids: env.list("MANAGED_DATA_IDENTIFIER_IDS"),
        };
        if let Err(problem) = settings.validate() {
            env.reject(problem);
        }
        settings
    }
}

/// Macie's limit of allow lists per job.
pub const MAX_ALLOW_LISTS: usize = 10;

impl JobSettings {
    /// The allow lists a job uses: the gate's own, then the configured ones, each once.
    pub fn job_allow_list_ids(&self) -> Vec<String> {
        let mut ids = self.gate_allow_list_ids.clone();
        for id in &self.allow_list_ids {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        ids
    }

    /// Macie's rules for combining the selector with identifier ids.
    pub fn validate(&self) -> Result<(), String> {
        let lists = self.job_allow_list_ids().len();
        if lists > MAX_ALLOW_LISTS {
            return Err(format!(
                "ALLOW_LIST_IDS names {} allow lists besides the gate's {}; Macie allows {MAX_ALLOW_LISTS} a job",
                lists - self.gate_allow_list_ids.len(),
                self.gate_allow_list_ids.len()
            ));
        }
        let with_ids = !self.managed_identifier_ids.is_empty();
        match self.managed_selector.as_str() {
            "ALL" | "RECOMMENDED" if with_ids => Err(format!(
                "MANAGED_DATA_IDENTIFIER_IDS must be empty when MANAGED_DATA_IDENTIFIER_SELECTOR is {}",
                self.managed_selector
            )),
            "NONE" if with_ids => Err(
                "MANAGED_DATA_IDENTIFIER_IDS must be empty when MANAGED_DATA_IDENTIFIER_SELECTOR is NONE"
                    .into(),
            ),
            "NONE" if self.custom_data_identifier_ids.is_empty() => Err(
                "MANAGED_DATA_IDENTIFIER_SELECTOR=NONE needs at least one CUSTOM_DATA_IDENTIFIER_IDS entry, or the job detects nothing"
                    .into(),
            ),
            "INCLUDE" | "EXCLUDE" if !with_ids => Err(format!(
                "MANAGED_DATA_IDENTIFIER_SELECTOR={} needs MANAGED_DATA_IDENTIFIER_IDS",
                self.managed_selector
            )),
            "ALL" | "RECOMMENDED" | "NONE" | "INCLUDE" | "EXCLUDE" => Ok(()),
            other => Err(format!(
                "MANAGED_DATA_IDENTIFIER_SELECTOR={other:?} is not one of ALL, RECOMMENDED, NONE, INCLUDE, EXCLUDE"
            )),
        }
    }
}

/// The idempotency token of a run's job. It covers the execution name as well as the workflow
/// id: a retried invocation of the same execution gets its job back, while a later execution that
/// reuses an id (say a manual `{"id": "x"}` run) gets a new job that sees its own objects, instead
/// of the old, finished job that never scanned them.
pub fn client_token(workflow: &WorkflowId, execution_name: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(workflow.as_str().as_bytes());
    hash.update([0u8]);
    hash.update(execution_name.as_bytes());
    let digest = hash.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("macie-pipeline-{hex}")
}

/// The job's name (Macie allows 500 characters; a workflow id has at most 256).
pub fn job_name(workflow: &WorkflowId) -> String {
    format!("macie-pipeline-scan-{workflow}")
}

/// Creates (or, on a retry, finds again) the run's one-time job over the scan-stage bucket.
pub async fn create_job(
    macie: &Client,
    account_id: &str,
    scan_stage_bucket: &str,
    workflow: &WorkflowId,
    execution_name: &str,
    settings: &JobSettings,
) -> Result<String, PipelineError> {
    let scope = TagScopeTerm::builder()
        .comparator(aws_sdk_macie2::types::JobComparator::Eq)
        .key("TAG")
        .target(TagTarget::S3Object)
        .tag_values(
            TagValuePair::builder()
                .key(WORKFLOW_ID)
                .value(workflow.as_str())
                .build(),
        )
        .build();
    let definition = S3JobDefinition::builder()
        .bucket_definitions(
            S3BucketDefinitionForJob::builder()
                .account_id(account_id)
                .buckets(scan_stage_bucket)
                .build(),
        )
        .scoping(
            Scoping::builder()
                .includes(
                    JobScopingBlock::builder()
                        .and(JobScopeTerm::builder().tag_scope_term(scope).build())
                        .build(),
                )
                .build(),
        )
        .build();
    let description: String = format!("Sensitive-data gate scan of workflow {workflow}")
        .chars()
        .take(200)
        .collect();
    let output = macie
        .create_classification_job()
        .client_token(client_token(workflow, execution_name))
        .name(job_name(workflow))
        .description(description)
        .job_type(JobType::OneTime)
        .sampling_percentage(100)
        .s3_job_definition(definition)
        .managed_data_identifier_selector(ManagedDataIdentifierSelector::from(
            settings.managed_selector.as_str(),
        ))
        .set_managed_data_identifier_ids(non_empty(&settings.managed_identifier_ids))
        .set_custom_data_identifier_ids(non_empty(&settings.custom_data_identifier_ids))
        .set_allow_list_ids(non_empty(&settings.job_allow_list_ids()))
        .tags(WORKFLOW_ID, workflow.as_str())
        .send()
        .await
        .map_err(|err| PipelineError::from_sdk("CreateClassificationJob", err))?;
    output.job_id().map(str::to_owned).ok_or_else(|| {
        PipelineError::UnexpectedFinding("CreateClassificationJob returned no job id".into())
    })
}

fn non_empty(ids: &[String]) -> Option<Vec<String>> {
    (!ids.is_empty()).then(|| ids.to_vec())
}

/// Where a job stands, as far as the pipeline is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Finished analysing every object it could reach: read the findings.
    Complete {
        #[serde(rename = "jobStatus")]
        job_status: String,
    },
    /// Still working (or paused by Macie for its quota): wait and ask again.
    InProgress {
        #[serde(rename = "jobStatus")]
        job_status: String,
    },
    /// Will not finish as a clean, complete scan: the run fails and the objects stay in scan-stage.
    Stopped {
        #[serde(rename = "jobStatus")]
        job_status: String,
        reason: String,
    },
}

/// Maps Macie's job status to the pipeline's decision. Anything not known to be a complete scan
/// or a scan still under way stops the run: CANCELLED, USER_PAUSED, an account- or bucket-level
/// error, a status this code does not know, and a job that never finishes.
pub fn job_state(
    status: Option<&JobStatus>,
    last_run_error: Option<&LastRunErrorStatusCode>,
    created: Option<SystemTime>,
    now: SystemTime,
    timeout: Duration,
) -> JobState {
    let job_status = status.map_or("(none)", JobStatus::as_str).to_owned();
    let overdue = created
        .and_then(|at| now.duration_since(at).ok())
        .is_some_and(|age| age > timeout);
    match status {
        Some(JobStatus::Complete) if last_run_error == Some(&LastRunErrorStatusCode::Error) => {
            JobState::Stopped {
                job_status,
                reason: "Macie reported an error for this run (lastRunErrorStatus ERROR): it could not analyse all objects, so the result is not clean".into(),
            }
        }
        Some(JobStatus::Complete) => JobState::Complete { job_status },
        Some(JobStatus::Running | JobStatus::Idle | JobStatus::Paused) if overdue => {
            JobState::Stopped {
                job_status,
                reason: format!(
                    "the job has not completed within {} seconds (MACIE_JOB_TIMEOUT_SECONDS)",
                    timeout.as_secs()
                ),
            }
        }
        Some(JobStatus::Running | JobStatus::Idle | JobStatus::Paused) => {
            JobState::InProgress { job_status }
        }
        Some(JobStatus::Cancelled) => JobState::Stopped {
            job_status,
            reason: "the job was cancelled (by a user, or after a pause expired)".into(),
        },
        Some(JobStatus::UserPaused) => JobState::Stopped {
            job_status,
            reason: "the job was paused by a user; resume it and start a new run, the objects stay in scan-stage".into(),
        },
        _ => JobState::Stopped {
            reason: format!("unknown job status {job_status}"),
            job_status,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: JobStatus) -> JobState {
        job_state(
            Some(&status),
            None,
            Some(SystemTime::now()),
            SystemTime::now(),
            Duration::from_secs(3600),
        )
    }

    fn is_stopped(state: &JobState) -> bool {
        matches!(state, JobState::Stopped { .. })
    }

    #[test]
    fn complete_is_the_only_status_that_reads_findings() {
        assert_eq!(
            state(JobStatus::Complete),
            JobState::Complete {
                job_status: "COMPLETE".into()
            }
        );
        for waiting in [JobStatus::Running, JobStatus::Idle, JobStatus::Paused] {
            assert!(matches!(state(waiting), JobState::InProgress { .. }));
        }
    }

    #[test]
    fn cancelled_paused_and_unknown_stop_the_run() {
        // The reference sent these back to triggerMacieScan through the Choice default.
        assert!(is_stopped(&state(JobStatus::Cancelled)));
        assert!(is_stopped(&state(JobStatus::UserPaused)));
        assert!(is_stopped(&state(JobStatus::from("SOMETHING_NEW"))));
        assert!(is_stopped(&job_state(
            None,
            None,
            None,
            SystemTime::now(),
            Duration::MAX
        )));
    }

    #[test]
    fn a_complete_job_with_a_run_error_is_not_clean() {
        let state = job_state(
            Some(&JobStatus::Complete),
            Some(&LastRunErrorStatusCode::Error),
            None,
            SystemTime::now(),
            Duration::from_secs(60),
        );
        assert!(is_stopped(&state));
    }

    #[test]
    fn a_job_running_past_the_timeout_stops_the_run() {
        let created = SystemTime::now() - Duration::from_secs(7200);
        let state = job_state(
            Some(&JobStatus::Running),
            None,
            Some(created),
            SystemTime::now(),
            Duration::from_secs(3600),
        );
        assert!(is_stopped(&state));
    }

    #[test]
    fn the_state_serializes_with_a_status_the_asl_matches() {
        let json = serde_json::to_value(state(JobStatus::UserPaused)).unwrap();
        assert_eq!(json["status"], "STOPPED");
        assert_eq!(json["jobStatus"], "USER_PAUSED");
    }

    #[test]
    fn the_client_token_is_stable_per_execution_and_distinct_across_executions() {
        let id = WorkflowId::parse("wf-1").unwrap();
        assert_eq!(client_token(&id, "exec-a"), client_token(&id, "exec-a"));
        assert_ne!(client_token(&id, "exec-a"), client_token(&id, "exec-b"));
        let other = WorkflowId::parse("wf-2").unwrap();
        assert_ne!(client_token(&id, "exec-a"), client_token(&other, "exec-a"));
    }

    #[test]
    fn identifier_settings_follow_macie_rules() {
        let mut settings = JobSettings {
            managed_selector: "RECOMMENDED".into(),
            ..JobSettings::default()
        };
        assert!(settings.validate().is_ok());
        settings.managed_identifier_ids = vec!["CREDIT_CARD_NUMBER".into()];
        assert!(settings.validate().is_err());
        settings.managed_selector = "INCLUDE".into();
        assert!(settings.validate().is_ok());
        settings.managed_selector = "NONE".into();
        settings.managed_identifier_ids.clear();
        assert!(
            settings.validate().is_err(),
            "NONE without custom identifiers detects nothing"
        );
        settings.custom_data_identifier_ids = vec!["cdi-1".into()];
        assert!(settings.validate().is_ok());
        settings.managed_selector = "SOME".into();
        assert!(settings.validate().is_err());
    }
}
