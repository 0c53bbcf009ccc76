//! moveAllScanStageS3Files: routes this workflow's scan-stage objects by the manifest. Objects
//! with findings at or above the threshold, and objects Macie did not analyse completely, go to
//! manual-review; the rest go on to scanned-data. Once the pass is done it reports how many
//! objects wait for a decision, and the state machine asks for one only then.
//!
//! On the Distributed Map path the first call answers `FAN_OUT`, Map children send routing
//! batches, and the call after the Map adds their outcomes up into `DONE`.

use std::sync::{Arc, Mutex};

use aws_types::SdkConfig;
use serde::Deserialize;
use tracing::{info, instrument};

use crate::config::RouteConfig;
use crate::deadline::Deadline;
use crate::error::PipelineError;
use crate::handlers::fan_out::{Batch, BatchOutcome, MovePath, Request, Response};
use crate::handlers::steps::{
    PassContext, RouteTargets, RunManifest, StepProgress, StepStatus, route_batch, route_scan_stage,
};
use crate::lambda::Handler;
use crate::manifest::{self, Manifest, ManifestRef};
use crate::s3::pass::PassEnd;
use crate::workflow::WorkflowId;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteInput {
    pub workflow_id: WorkflowId,
    pub manifest: ManifestRef,
    pub progress: Option<StepProgress>,
    /// `$.config.movePath`; a state machine from before the Map path sends none.
    #[serde(default)]
    pub move_path: MovePath,
}

/// What every routing batch of one run shares.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteBatchInput {
    pub workflow_id: WorkflowId,
    pub manifest: ManifestRef,
}

pub struct MoveAllScanStageFiles {
    pub s3: aws_sdk_s3::Client,
    pub config: RouteConfig,
    /// The last manifest a routing batch read. A warm function routes batch after batch of the
    /// same run, so the manifest (a line per object of the run) is read once per instance, not
    /// once per batch. Keys it lacks are recorded as unresolved and held, so a copy without a
    /// later addendum can only hold an object, never release one.
    manifests: Mutex<Option<(ManifestRef, Arc<Manifest>)>>,
}

impl MoveAllScanStageFiles {
    pub fn new(aws: &SdkConfig, config: RouteConfig) -> Self {
        Self::with_client(aws_sdk_s3::Client::new(aws), config)
    }

    /// The handler over an S3 client built elsewhere (tests, benchmarks).
    pub fn with_client(s3: aws_sdk_s3::Client, config: RouteConfig) -> Self {
        Self {
            s3,
            config,
            manifests: Mutex::new(None),
        }
    }

    fn targets(&self) -> RouteTargets<'_> {
        RouteTargets {
            scan_stage: &self.config.scan_stage_bucket,
            manual_review: &self.config.manual_review_bucket,
            scanned_data: &self.config.scanned_data_bucket,
        }
    }

    /// The run's manifest, from the instance's copy when it is the same run's.
    async fn cached_manifest(
        &self,
        location: &ManifestRef,
        workflow_id: &WorkflowId,
    ) -> Result<Arc<Manifest>, PipelineError> {
        let cached = self
            .manifests
            .lock()
            .expect("the manifest cache is never poisoned: nothing panics while holding it")
            .clone();
        if let Some((cached_at, manifest)) = cached
            && &cached_at == location
            && &manifest.workflow_id == workflow_id
        {
            return Ok(manifest);
        }
        let manifest = Arc::new(manifest::read(&self.s3, location, workflow_id).await?);
        *self
            .manifests
            .lock()
            .expect("the manifest cache is never poisoned: nothing panics while holding it") =
            Some((location.clone(), manifest.clone()));
        Ok(manifest)
    }

    #[instrument(skip_all, fields(workflow_id = %input.batch_input.workflow_id))]
    async fn route_batch(
        &self,
        input: Batch<RouteBatchInput>,
        deadline: Deadline,
    ) -> Result<BatchOutcome, PipelineError> {
        let RouteBatchInput {
            workflow_id,
            manifest: location,
        } = input.batch_input;
        let manifest = self.cached_manifest(&location, &workflow_id).await?;
        let context = PassContext {
            s3: &self.s3,
            settings: &self.config.moves,
            workflow_id: &workflow_id,
            deadline,
        };
        let run = RunManifest {
            location: &location,
            manifest: &manifest,
        };
        let outcome = route_batch(&context, &self.targets(), &run, input.items).await?;
        info!(
            moved = outcome.moved,
            held = outcome.held_for_review,
            "routing batch moved"
        );
        Ok(outcome)
    }

    #[instrument(skip_all, fields(workflow_id = %input.workflow_id))]
    pub async fn step(
        &self,
        input: RouteInput,
        deadline: Deadline,
    ) -> Result<StepProgress, PipelineError> {
        let mut progress = match input.progress {
            None if input.move_path == MovePath::DistributedMap => {
                return Ok(StepProgress::fan_out());
            }
            Some(StepProgress {
                status: StepStatus::FannedOut,
                batches,
                ..
            }) => StepProgress::from_pass(PassEnd::Complete, BatchOutcome::total(batches)),
            previous => {
                let manifest =
                    manifest::read(&self.s3, &input.manifest, &input.workflow_id).await?;
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
                route_scan_stage(&context, &self.targets(), &run, previous, Self::NAME).await?
            }
        };
        if progress.status == StepStatus::Done {
            // Read again: the pass or the batches may have recorded objects without a
            // discovery result.
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

impl Handler for MoveAllScanStageFiles {
    type Input = Request<RouteBatchInput, RouteInput>;
    type Output = Response<StepProgress>;
    const NAME: &'static str = "moveAllScanStageS3Files";

    async fn handle(
        &self,
        input: Self::Input,
        deadline: Deadline,
    ) -> Result<Self::Output, PipelineError> {
        match input {
            Request::Batch(batch) => self.route_batch(batch, deadline).await.map(Response::Batch),
            Request::Step(input) => self.step(input, deadline).await.map(Response::Step),
        }
    }
}
