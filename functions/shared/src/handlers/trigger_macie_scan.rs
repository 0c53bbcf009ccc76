//! triggerMacieScan: moves every object in the raw bucket to scan-stage, tagged with the run's
//! workflow id, then starts the Macie job over exactly those objects.
//!
//! The step is a loop driven by the state machine. While objects remain it returns `MOVING` with
//! a cursor; when a pass finds nothing left it returns `READY_TO_SCAN`, and only the next
//! invocation creates the job. Job creation never moves anything, so a retried creation cannot
//! tag an object the already-started job did not see.
//!
//! On the Distributed Map path (see [`fan_out`](crate::handlers::fan_out)) the first call only
//! names the workflow (`FAN_OUT`), Map children send intake batches, and the call after the Map
//! adds their outcomes up (`FANNED_OUT`) into `READY_TO_SCAN` or `NOTHING_TO_SCAN`.

use aws_types::SdkConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, instrument};

use crate::config::TriggerConfig;
use crate::deadline::Deadline;
use crate::error::PipelineError;
use crate::handlers::fan_out::{self, BatchOutcome, MovePath, Request, Response};
use crate::lambda::Handler;
use crate::macie::job::create_job;
use crate::s3::objects::{Listed, Moved, Objects};
use crate::s3::pass::{Outcome, PassEnd, Tally, visit_bucket};
use crate::tags::{self, SENSITIVE_DATA_FOUND, Tag, WORKFLOW_ID};
use crate::workflow::{WorkflowId, workflow_id_for};

/// The task input, built by the state machine's `Parameters`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerInput {
    /// `$$.Execution.Input`: the scheduled event, or what was passed to StartExecution.
    pub execution_input: Value,
    /// `$$.Execution.Name`.
    pub execution_name: String,
    /// `$$.State.RetryCount`: non-zero when Step Functions retries this step.
    #[serde(default)]
    pub retry_count: u32,
    /// The previous invocation's result while the step loops; null on the first call.
    pub progress: Option<ScanProgress>,
    /// `$.config.movePath`; a state machine from before the Map path sends none.
    #[serde(default)]
    pub move_path: MovePath,
}

/// What every intake batch of one run shares.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntakeBatchInput {
    pub workflow_id: WorkflowId,
}

/// Where the step stands. The state machine loops while `MOVING` or `READY_TO_SCAN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScanProgress {
    /// Objects remain in raw; call again with this progress.
    #[serde(rename_all = "camelCase")]
    Moving {
        workflow_id: WorkflowId,
        resume_after: Option<String>,
        tally: Tally,
    },
    /// Every object is in scan-stage; the next call creates the job.
    #[serde(rename_all = "camelCase")]
    ReadyToScan {
        workflow_id: WorkflowId,
        tally: Tally,
    },
    /// The Macie job is running.
    #[serde(rename_all = "camelCase")]
    JobStarted {
        workflow_id: WorkflowId,
        job_id: String,
        tally: Tally,
    },
    /// The raw bucket held nothing this run could move.
    #[serde(rename_all = "camelCase")]
    NothingToScan {
        workflow_id: WorkflowId,
        tally: Tally,
    },
    /// Distributed Map path: the Map is to move the raw bucket, in batches.
    #[serde(rename_all = "camelCase")]
    FanOut {
        workflow_id: WorkflowId,
        tally: Tally,
    },
    /// Distributed Map path: the Map has moved every batch; `batches` are their outcomes.
    #[serde(rename_all = "camelCase")]
    FannedOut {
        workflow_id: WorkflowId,
        tally: Tally,
        batches: Vec<BatchOutcome>,
    },
}

impl ScanProgress {
    fn status(&self) -> &'static str {
        match self {
            Self::Moving { .. } => "MOVING",
            Self::ReadyToScan { .. } => "READY_TO_SCAN",
            Self::JobStarted { .. } => "JOB_STARTED",
            Self::NothingToScan { .. } => "NOTHING_TO_SCAN",
            Self::FanOut { .. } => "FAN_OUT",
            Self::FannedOut { .. } => "FANNED_OUT",
        }
    }
}

/// The handler, with its clients built once per cold start.
pub struct TriggerMacieScan {
    pub s3: aws_sdk_s3::Client,
    pub macie: aws_sdk_macie2::Client,
    pub config: TriggerConfig,
}

impl TriggerMacieScan {
    pub fn new(aws: &SdkConfig, config: TriggerConfig) -> Self {
        Self {
            s3: aws_sdk_s3::Client::new(aws),
            macie: aws_sdk_macie2::Client::new(aws),
            config,
        }
    }

    async fn move_raw_objects(
        &self,
        workflow_id: WorkflowId,
        resume_after: Option<String>,
        mut tally: Tally,
        first_attempt: bool,
        deadline: Deadline,
    ) -> Result<ScanProgress, PipelineError> {
        let objects = Objects::new(&self.s3, &self.config.moves);
        let end = visit_bucket(
            &self.s3,
            &self.config.raw_bucket,
            resume_after,
            &self.config.moves,
            deadline,
            &mut tally,
            |object| self.move_to_scan_stage(objects, &workflow_id, object),
        )
        .await?;
        info!(
            workflow_id = workflow_id.as_str(),
            moved = tally.moved,
            rejected = tally.rejected,
            deferred = tally.deferred,
            "raw pass ended"
        );
        Ok(match end {
            PassEnd::Interrupted { resume_after } => ScanProgress::Moving {
                workflow_id,
                resume_after,
                tally,
            },
            // A retried first call may follow an attempt that moved objects and then failed;
            // only a first call that found nothing proves there is nothing to scan.
            PassEnd::Complete if tally.moved > 0 || !first_attempt => {
                ScanProgress::ReadyToScan { workflow_id, tally }
            }
            PassEnd::Complete => ScanProgress::NothingToScan { workflow_id, tally },
        })
    }

    async fn move_to_scan_stage(
        &self,
        objects: Objects<'_>,
        workflow_id: &WorkflowId,
        object: Listed,
    ) -> Result<Outcome, PipelineError> {
        let raw = &self.config.raw_bucket;
        let Some(existing) = objects.tags(raw, &object.key).await? else {
            return Ok(Outcome::Vanished);
        };
        let tags = match tags::merge(
            &existing,
            &[Tag::new(WORKFLOW_ID, workflow_id.as_str())],
            &[SENSITIVE_DATA_FOUND],
        ) {
            Ok(tags) => tags,
            Err(too_many) => {
                return Ok(Outcome::Rejected {
                    key: object.key,
                    reason: too_many.to_string(),
                });
            }
        };
        Ok(
            match objects
                .move_object(raw, &self.config.scan_stage_bucket, &object, &tags)
                .await?
            {
                Moved::Done { bytes } => Outcome::Moved { bytes },
                Moved::SourceChanged => Outcome::Deferred,
                Moved::SourceGone => Outcome::Vanished,
                Moved::Refused(reason) => Outcome::Rejected {
                    key: object.key,
                    reason,
                },
            },
        )
    }
}

impl Handler for TriggerMacieScan {
    type Input = Request<IntakeBatchInput, TriggerInput>;
    type Output = Response<ScanProgress>;
    const NAME: &'static str = "triggerMacieScan";

    async fn handle(
        &self,
        input: Self::Input,
        deadline: Deadline,
    ) -> Result<Self::Output, PipelineError> {
        match input {
            Request::Batch(batch) => {
                let workflow_id = batch.batch_input.workflow_id;
                let objects = Objects::new(&self.s3, &self.config.moves);
                let outcome = fan_out::move_batch(batch.items, &self.config.moves, deadline, |o| {
                    self.move_to_scan_stage(objects, &workflow_id, o)
                })
                .await?;
                info!(
                    workflow_id = workflow_id.as_str(),
                    moved = outcome.moved,
                    rejected = outcome.rejected,
                    "intake batch moved"
                );
                Ok(Response::Batch(outcome))
            }
            Request::Step(input) => self.step(input, deadline).await.map(Response::Step),
        }
    }
}

impl TriggerMacieScan {
    #[instrument(skip_all, fields(execution = %input.execution_name))]
    pub async fn step(
        &self,
        input: TriggerInput,
        deadline: Deadline,
    ) -> Result<ScanProgress, PipelineError> {
        match input.progress {
            None => {
                let workflow_id = workflow_id_for(&input.execution_input, &input.execution_name)?;
                if input.move_path == MovePath::DistributedMap {
                    return Ok(ScanProgress::FanOut {
                        workflow_id,
                        tally: Tally::default(),
                    });
                }
                self.move_raw_objects(
                    workflow_id,
                    None,
                    Tally::default(),
                    input.retry_count == 0,
                    deadline,
                )
                .await
            }
            Some(ScanProgress::Moving {
                workflow_id,
                resume_after,
                tally,
            }) => {
                self.move_raw_objects(workflow_id, resume_after, tally, false, deadline)
                    .await
            }
            Some(ScanProgress::FannedOut {
                workflow_id,
                batches,
                ..
            }) => {
                let tally = BatchOutcome::total(batches);
                info!(
                    workflow_id = workflow_id.as_str(),
                    moved = tally.moved,
                    rejected = tally.rejected,
                    deferred = tally.deferred,
                    "raw bucket moved by the map"
                );
                // A retried batch finds the objects its first attempt moved gone: those count
                // as vanished, so only a map that neither moved nor missed anything proves there
                // is nothing to scan. A job over nothing costs a job, never an object.
                Ok(if tally.moved > 0 || tally.vanished > 0 {
                    ScanProgress::ReadyToScan { workflow_id, tally }
                } else {
                    ScanProgress::NothingToScan { workflow_id, tally }
                })
            }
            Some(ScanProgress::ReadyToScan { workflow_id, tally }) => {
                let job_id = create_job(
                    &self.macie,
                    &self.config.account_id,
                    &self.config.scan_stage_bucket,
                    &workflow_id,
                    &input.execution_name,
                    &self.config.job,
                )
                .await?;
                info!(
                    workflow_id = workflow_id.as_str(),
                    job_id, "Macie job started"
                );
                Ok(ScanProgress::JobStarted {
                    workflow_id,
                    job_id,
                    tally,
                })
            }
            Some(done) => Err(PipelineError::InvalidInput(format!(
                "triggerMacieScan was called again after {}; the state machine must move on",
                done.status()
            ))),
        }
    }
}
