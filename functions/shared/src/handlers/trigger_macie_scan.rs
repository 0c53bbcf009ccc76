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
use tracing::{info, instrument, warn};

use crate::config::TriggerConfig;
use crate::deadline::Deadline;
use crate::error::PipelineError;
use crate::handlers::fan_out::{self, BatchOutcome, MovePath, Request, Response};
use crate::lambda::Handler;
use crate::macie::job::create_job;
use crate::s3::landing::Landing;
use crate::s3::objects::{Copied, Deleted, Found, Listed, Metadata, Objects, Target, Version};
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

    /// Takes one raw object into scan-stage: a copy pinned to the listed version, with the
    /// run's `WorkflowId` merged into its tags and a fresh landing record in its metadata,
    /// written only if scan-stage has nothing at the key. A key keeps one version in scan-stage
    /// at a time: a newer version waits in raw until the one before it has moved on, so versions
    /// go through the gate in the order they landed.
    async fn move_to_scan_stage(
        &self,
        objects: Objects<'_>,
        workflow_id: &WorkflowId,
        object: Listed,
    ) -> Result<Outcome, PipelineError> {
        let raw = &self.config.raw_bucket;
        let scan_stage = &self.config.scan_stage_bucket;
        let overwritten = |key: String| Outcome::Deferred {
            key,
            reason: "it was overwritten while the gate was taking it; a later run takes the \
                     newer version"
                .to_owned(),
        };
        let head = match objects
            .head(raw, &object.key, None, Some(&object.etag))
            .await?
        {
            Found::Found(head) => head,
            Found::Gone => return Ok(Outcome::Vanished),
            Found::Changed => return Ok(overwritten(object.key)),
        };
        let version = head.version.clone();
        let Some((existing, _)) = objects
            .tags(raw, &object.key, version.version_id.as_deref())
            .await?
        else {
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
        let landing = Landing::now(&version.etag, version.version_id.as_deref());
        let metadata = landing.into_metadata(head.metadata());
        if let Err(reason) = check_metadata_size(&metadata) {
            return Ok(Outcome::Rejected {
                key: object.key,
                reason,
            });
        }
        // The copy reads raw's current version, pinned to its ETag, never a version by its id:
        // a version the gate took is hidden behind a delete marker but still there, and by its
        // id it could be copied, and taken, again.
        let current = Version {
            version_id: None,
            ..version.clone()
        };
        let copied = objects
            .copy(
                raw,
                &current,
                scan_stage,
                &object.key,
                &tags,
                Metadata::Replaced(&head, &metadata),
                &Target::Absent,
            )
            .await?;
        let bytes = match copied {
            Copied::Done {
                bytes,
                source_version_id,
                etag,
                version_id,
            } => {
                if version.version_id.is_some() && source_version_id != version.version_id {
                    // The same bytes were uploaded again between the look and the copy, so the
                    // landing record names the wrong raw version: undo the copy, and let the
                    // next run take the new version.
                    let copy = Version {
                        key: object.key.clone(),
                        etag,
                        size: version.size,
                        version_id,
                    };
                    // Done, Gone or Changed (replaced since by another write): in each case no
                    // copy of the wrong version is left current in scan-stage.
                    let _taken_back = objects.delete(scan_stage, &copy).await?;
                    return Ok(overwritten(object.key));
                }
                bytes
            }
            // `TargetChanged` answers only a replacing write, which intake never makes.
            Copied::Taken | Copied::TargetChanged => {
                match self
                    .occupant_of_scan_stage(objects, workflow_id, &object.key, &landing)
                    .await?
                {
                    Occupant::ThisVersion => version.size,
                    Occupant::ThisVersionOfAnotherRun => return Ok(Outcome::NotOurs),
                    Occupant::Gone => {
                        return Ok(Outcome::Deferred {
                            key: object.key,
                            reason: "scan-stage held another version of this key a moment ago; \
                                     a later run takes this one"
                                .to_owned(),
                        });
                    }
                    Occupant::EarlierVersion(workflow) => {
                        return Ok(Outcome::Deferred {
                            key: object.key,
                            reason: format!(
                                "an earlier version of this key (workflow {workflow}) is still \
                                 in scan-stage; this one waits in raw until that one has \
                                 moved on"
                            ),
                        });
                    }
                }
            }
            Copied::SourceChanged => return Ok(overwritten(object.key)),
            Copied::SourceGone => return Ok(Outcome::Vanished),
            Copied::Refused(reason) => {
                return Ok(Outcome::Rejected {
                    key: object.key,
                    reason,
                });
            }
            // An object that landed under a key of its own which does not let the gate decrypt
            // it stays in raw, and the run reports it with the statement that key needs. Any
            // other key refusal is the gate's own buckets' key: every object would meet it.
            // Only a refused decrypt is the source key's: a refused data key is the target
            // bucket's, which would meet every object.
            Copied::KeyDenied(message) => match head.kms_key() {
                Some(kms_key)
                    if !self.config.is_bucket_key(kms_key) && message.contains("kms:Decrypt") =>
                {
                    return Ok(Outcome::Rejected {
                        key: object.key,
                        reason: crate::s3::kms::source_key_refused(kms_key, &message),
                    });
                }
                _ => return Err(crate::s3::kms::denied(raw, &object.key, &message)),
            },
        };
        // In a versioned raw bucket this only hides the version behind a delete marker: it stays
        // there as a noncurrent version (and is deleted for good if it is denied), while a
        // version landed since stays current for the next run.
        if objects
            .delete_if_unchanged(raw, &object.key, &version.etag)
            .await?
            == Deleted::Changed
        {
            warn!(
                bucket = raw.as_str(),
                key = object.key,
                "a newer version arrived after the copy; it stays for a later run"
            );
        }
        Ok(Outcome::Moved { bytes })
    }

    /// What holds the scan-stage key that intake found taken.
    async fn occupant_of_scan_stage(
        &self,
        objects: Objects<'_>,
        workflow_id: &WorkflowId,
        key: &str,
        landing: &Landing,
    ) -> Result<Occupant, PipelineError> {
        let scan_stage = &self.config.scan_stage_bucket;
        let head = match objects.head(scan_stage, key, None, None).await? {
            Found::Found(head) => head,
            Found::Gone | Found::Changed => return Ok(Occupant::Gone),
        };
        let workflow = objects
            .tags(scan_stage, key, head.version.version_id.as_deref())
            .await?
            .and_then(|(tags, _)| tags::workflow_of(&tags).map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned());
        Ok(match &head.landing {
            Some(there) if there.same_raw_version(landing) => {
                if workflow == workflow_id.as_str() {
                    Occupant::ThisVersion
                } else {
                    Occupant::ThisVersionOfAnotherRun
                }
            }
            _ => Occupant::EarlierVersion(workflow),
        })
    }
}

/// What intake found at a scan-stage key it meant to write.
enum Occupant {
    /// The version being taken, copied by an earlier attempt of this run.
    ThisVersion,
    /// The version being taken, copied by an overlapping run, which moves it on.
    ThisVersionOfAnotherRun,
    /// An earlier version of the key, with the workflow it belongs to.
    EarlierVersion(String),
    /// Nothing any more: it moved on between the copy and the look.
    Gone,
}

/// S3 allows 2 KB of user metadata (names and values, in UTF-8 bytes).
const MAX_METADATA_BYTES: usize = 2048;

fn check_metadata_size(metadata: &std::collections::HashMap<String, String>) -> Result<(), String> {
    let bytes: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_METADATA_BYTES {
        return Err(format!(
            "its user metadata leaves no room for the gate's landing record ({bytes} bytes with \
             it, S3 allows {MAX_METADATA_BYTES}); remove some metadata so the gate can take it"
        ));
    }
    Ok(())
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
