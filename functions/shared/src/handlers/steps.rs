//! The later moves of a run, each limited to the objects tagged with its workflow id: routing
//! scan-stage objects by the manifest, releasing approved objects, deleting denied ones. Each is
//! a loop like triggerMacieScan's: `MORE` with a cursor until a pass completes, then `DONE`.
//! Routing can also run as a Distributed Map (`FAN_OUT`, batches, `FANNED_OUT`; see
//! [`fan_out`](crate::handlers::fan_out)).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::config::MoveSettings;
use crate::deadline::Deadline;
use crate::error::PipelineError;
use crate::handlers::fan_out::{self, BatchItem, BatchOutcome};
use crate::manifest::{self, Manifest, ManifestRef, Placement};
use crate::s3::objects::{Deleted, Listed, Moved, Objects};
use crate::s3::pass::{Outcome, PassEnd, Tally, visit_bucket};
use crate::tags::{self, SENSITIVE_DATA_FOUND, Tag};
use crate::workflow::WorkflowId;

/// Whether a looping step has finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepStatus {
    More,
    Done,
    /// Routing on the Distributed Map path: the Map is to route the scan-stage bucket.
    FanOut,
    /// The Map has routed every batch; `batches` holds their outcomes.
    FannedOut,
}

/// A looping step's result, passed back to it while `MORE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepProgress {
    pub status: StepStatus,
    pub resume_after: Option<String>,
    pub tally: Tally,
    /// Routing only, once `DONE`: how many objects of the run wait in manual-review for a
    /// decision. Counted from the manifest, not the tally, which a retried pass can undercount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_review: Option<u64>,
    /// `FANNED_OUT` only: the Map children's outcomes, put here by the Map's `ResultPath`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<BatchOutcome>,
}

impl StepProgress {
    pub(crate) fn from_pass(end: PassEnd, tally: Tally) -> Self {
        match end {
            PassEnd::Complete => Self {
                status: StepStatus::Done,
                resume_after: None,
                tally,
                awaiting_review: None,
                batches: Vec::new(),
            },
            PassEnd::Interrupted { resume_after } => Self {
                status: StepStatus::More,
                resume_after,
                tally,
                awaiting_review: None,
                batches: Vec::new(),
            },
        }
    }

    /// The first answer on the Distributed Map path: nothing moved yet.
    pub fn fan_out() -> Self {
        Self {
            status: StepStatus::FanOut,
            resume_after: None,
            tally: Tally::default(),
            awaiting_review: None,
            batches: Vec::new(),
        }
    }

    /// Where to resume from the previous result; a finished step must not run again.
    pub fn resume(
        previous: Option<Self>,
        step: &str,
    ) -> Result<(Option<String>, Tally), PipelineError> {
        match previous {
            None => Ok((None, Tally::default())),
            Some(Self {
                status: StepStatus::More,
                resume_after,
                tally,
                ..
            }) => Ok((resume_after, tally)),
            Some(Self {
                status: StepStatus::Done,
                ..
            }) => Err(PipelineError::InvalidInput(format!(
                "{step} was called again after it reported DONE"
            ))),
            Some(Self {
                status: status @ (StepStatus::FanOut | StepStatus::FannedOut),
                ..
            }) => Err(PipelineError::InvalidInput(format!(
                "{step} cannot continue a loop from {status:?}: that progress belongs to the \
                 Distributed Map path"
            ))),
        }
    }
}

/// Buckets and settings for one pass.
pub struct PassContext<'a> {
    pub s3: &'a aws_sdk_s3::Client,
    pub settings: &'a MoveSettings,
    pub workflow_id: &'a WorkflowId,
    pub deadline: Deadline,
}

impl PassContext<'_> {
    fn objects(&self) -> Objects<'_> {
        Objects::new(self.s3, self.settings)
    }

    /// This workflow's tags on `object`, or the outcome that ends its visit.
    async fn our_tags(
        &self,
        bucket: &str,
        object: &Listed,
    ) -> Result<Result<Vec<Tag>, Outcome>, PipelineError> {
        match self.objects().tags(bucket, &object.key).await? {
            None => Ok(Err(Outcome::Vanished)),
            Some(tags) if tags::workflow_of(&tags) == Some(self.workflow_id.as_str()) => {
                Ok(Ok(tags))
            }
            Some(_) => Ok(Err(Outcome::NotOurs)),
        }
    }
}

/// Where routing sends scan-stage objects.
pub struct RouteTargets<'a> {
    pub scan_stage: &'a str,
    pub manual_review: &'a str,
    pub scanned_data: &'a str,
}

/// The run's manifest and where it is stored (routing adds to it).
pub struct RunManifest<'a> {
    pub location: &'a ManifestRef,
    pub manifest: &'a Manifest,
}

/// Routes this workflow's scan-stage objects by the manifest: flagged ones needing review and
/// ones Macie did not analyse completely to manual-review, flagged ones below the threshold to
/// scanned-data, and objects analysed completely without findings to scanned-data with their
/// tags as they are. An object the manifest does not know (Macie wrote no result for it) is
/// recorded beside the manifest and held as well.
pub async fn route_scan_stage(
    context: &PassContext<'_>,
    targets: &RouteTargets<'_>,
    run: &RunManifest<'_>,
    previous: Option<StepProgress>,
    step: &str,
) -> Result<StepProgress, PipelineError> {
    let (resume_after, mut tally) = StepProgress::resume(previous, step)?;
    let placements = run.manifest.placements();
    let end = visit_bucket(
        context.s3,
        targets.scan_stage,
        resume_after,
        context.settings,
        context.deadline,
        &mut tally,
        |object| route_one(context, targets, run, &placements, object),
    )
    .await?;
    Ok(StepProgress::from_pass(end, tally))
}

/// Routes one Distributed Map batch of scan-stage objects, as [`route_scan_stage`] routes a
/// listing page.
pub async fn route_batch(
    context: &PassContext<'_>,
    targets: &RouteTargets<'_>,
    run: &RunManifest<'_>,
    items: Vec<BatchItem>,
) -> Result<BatchOutcome, PipelineError> {
    let placements = run.manifest.placements();
    fan_out::move_batch(items, context.settings, context.deadline, |object| {
        route_one(context, targets, run, &placements, object)
    })
    .await
}

async fn route_one(
    context: &PassContext<'_>,
    targets: &RouteTargets<'_>,
    run: &RunManifest<'_>,
    placements: &HashMap<&str, Placement>,
    object: Listed,
) -> Result<Outcome, PipelineError> {
    let tags = match context.our_tags(targets.scan_stage, &object).await? {
        Ok(tags) => tags,
        Err(outcome) => return Ok(outcome),
    };
    let mark = |value: &str| {
        tags::merge(&tags, &[Tag::new(SENSITIVE_DATA_FOUND, value)], &[]).map_err(|err| {
            PipelineError::TooManyTags {
                bucket: targets.scan_stage.to_owned(),
                key: object.key.clone(),
                detail: err.to_string(),
            }
        })
    };
    let (destination, tags, review) = match placements.get(object.key.as_str()) {
        Some(Placement::ReviewFlagged) => (targets.manual_review, mark(tags::FOUND)?, true),
        Some(Placement::PassTagged) => (targets.scanned_data, mark(tags::FOUND)?, false),
        Some(Placement::ReviewNotAnalysed) => {
            (targets.manual_review, mark(tags::NOT_ANALYSED)?, true)
        }
        Some(Placement::PassClean) => (targets.scanned_data, tags.clone(), false),
        None => {
            // Recorded before the move, so a crash in between still leaves it on the list the
            // reviewer sees and the decision acts on.
            manifest::record_unresolved(
                context.s3,
                run.location,
                run.manifest,
                &object.key,
                object.size,
            )
            .await?;
            (targets.manual_review, mark(tags::NOT_ANALYSED)?, true)
        }
    };
    let moved = context
        .objects()
        .move_object(targets.scan_stage, destination, &object, &tags)
        .await?;
    settle(moved, targets.scan_stage, object, review)
}

/// Releases this workflow's reviewed objects from manual-review to scanned-data, tags kept.
pub async fn release_held(
    context: &PassContext<'_>,
    manual_review: &str,
    scanned_data: &str,
    manifest: &Manifest,
    previous: Option<StepProgress>,
    step: &str,
) -> Result<StepProgress, PipelineError> {
    let (resume_after, mut tally) = StepProgress::resume(previous, step)?;
    // Only the keys the reviewer was shown: objects held by an earlier run that reused the
    // workflow id stay held.
    let shown = manifest.held_keys();
    let shown = &shown;
    let end = visit_bucket(
        context.s3,
        manual_review,
        resume_after,
        context.settings,
        context.deadline,
        &mut tally,
        |object| async move {
            if !shown.contains(object.key.as_str()) {
                return Ok(Outcome::NotOurs);
            }
            let tags = match context.our_tags(manual_review, &object).await? {
                Ok(tags) => tags,
                Err(outcome) => return Ok(outcome),
            };
            let moved = context
                .objects()
                .move_object(manual_review, scanned_data, &object, &tags)
                .await?;
            settle(moved, manual_review, object, false)
        },
    )
    .await?;
    Ok(StepProgress::from_pass(end, tally))
}

/// Deletes this workflow's reviewed objects from manual-review.
pub async fn delete_held(
    context: &PassContext<'_>,
    manual_review: &str,
    manifest: &Manifest,
    previous: Option<StepProgress>,
    step: &str,
) -> Result<StepProgress, PipelineError> {
    let (resume_after, mut tally) = StepProgress::resume(previous, step)?;
    // Only the keys the reviewer was shown: objects held by an earlier run that reused the
    // workflow id stay held.
    let shown = manifest.held_keys();
    let shown = &shown;
    let end = visit_bucket(
        context.s3,
        manual_review,
        resume_after,
        context.settings,
        context.deadline,
        &mut tally,
        |object| async move {
            if !shown.contains(object.key.as_str()) {
                return Ok(Outcome::NotOurs);
            }
            if let Err(outcome) = context.our_tags(manual_review, &object).await? {
                return Ok(outcome);
            }
            match context
                .objects()
                .delete_if_unchanged(manual_review, &object.key, &object.etag)
                .await?
            {
                Deleted::Done => Ok(Outcome::Deleted),
                Deleted::Gone => Ok(Outcome::Vanished),
                Deleted::Changed => Err(PipelineError::ObjectChanged {
                    bucket: manual_review.to_owned(),
                    key: object.key,
                }),
            }
        },
    )
    .await?;
    Ok(StepProgress::from_pass(end, tally))
}

/// What a move of one of this workflow's objects means. Past intake, an object that changes
/// under a move is an error to retry, never something to leave behind silently.
fn settle(
    moved: Moved,
    bucket: &str,
    object: Listed,
    review: bool,
) -> Result<Outcome, PipelineError> {
    match moved {
        Moved::Done { bytes } if review => Ok(Outcome::HeldForReview { bytes }),
        Moved::Done { bytes } => Ok(Outcome::Moved { bytes }),
        Moved::SourceGone => Ok(Outcome::Vanished),
        Moved::SourceChanged => Err(PipelineError::ObjectChanged {
            bucket: bucket.to_owned(),
            key: object.key,
        }),
        Moved::Refused(reason) => Err(PipelineError::InvalidInput(format!(
            "s3://{bucket}/{} cannot be moved: {reason}",
            object.key
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_serializes_as_the_asl_expects() {
        let progress = StepProgress {
            status: StepStatus::More,
            resume_after: Some("k".into()),
            tally: Tally::default(),
            awaiting_review: None,
            batches: Vec::new(),
        };
        let json = serde_json::to_value(&progress).unwrap();
        assert_eq!(json["status"], "MORE");
        assert_eq!(json["resumeAfter"], "k");
        assert_eq!(
            serde_json::from_value::<StepProgress>(json).unwrap(),
            progress
        );
    }

    #[test]
    fn a_finished_step_refuses_to_run_again() {
        let done = StepProgress {
            status: StepStatus::Done,
            resume_after: None,
            tally: Tally::default(),
            awaiting_review: Some(0),
            batches: Vec::new(),
        };
        let err = StepProgress::resume(Some(done), "moveAllScanStageS3Files").unwrap_err();
        assert_eq!(err.name(), "InvalidInput");
        assert_eq!(
            StepProgress::resume(None, "x").unwrap(),
            (None, Tally::default())
        );
    }
}
