//! The later moves of a run, each limited to the objects tagged with its workflow id: routing
//! scan-stage objects by the manifest, releasing approved objects, deleting denied ones. Each is
//! a loop like triggerMacieScan's: `MORE` with a cursor until a pass completes, then `DONE`.
//! Routing can also run as a Distributed Map (`FAN_OUT`, batches, `FANNED_OUT`; see
//! [`fan_out`](crate::handlers::fan_out)).
//!
//! Routing lists scan-stage. The release and the delete act on the run's own list of held keys
//! (the manifest), each on exactly the version routing held, wherever it put it. No step writes
//! over an object it did not expect (see [`placement`](crate::s3::placement)), so a version
//! never replaces a newer one and two versions of one key held by two runs both survive until
//! each is decided.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::approval::decisions::{Choice, ReviewRecords, Undecided};
use crate::approval::outcomes::Ending;
use crate::config::MoveSettings;
use crate::deadline::Deadline;
use crate::error::PipelineError;
use crate::handlers::fan_out::{self, BatchItem, BatchOutcome};
use crate::manifest::{
    self, Manifest, ManifestRef, Placement, SupersededBy, SupersededIn, Supersession,
};
use crate::s3::objects::{Copied, Deleted, Found, Listed, Objects, Version};
use crate::s3::pass::{Outcome, PassEnd, Tally, visit_bucket, visit_keys};
use crate::s3::placement::{self, Candidate, Delivery, Held, Occupant};
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
    /// The deletion after a review only, once `DONE`: how many held objects nobody decided
    /// (deleted with them when the approval timed out with `deny`, kept otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undecided: Option<u64>,
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
                undecided: None,
                batches: Vec::new(),
            },
            PassEnd::Interrupted { resume_after } => Self {
                status: StepStatus::More,
                resume_after,
                tally,
                awaiting_review: None,
                undecided: None,
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
            undecided: None,
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

    /// The current version of a listed object with its tags, if it is this workflow's, or the
    /// outcome that ends its visit.
    async fn ours(
        &self,
        bucket: &str,
        object: &Listed,
    ) -> Result<Result<Candidate, Outcome>, PipelineError> {
        match self.objects().tags(bucket, &object.key, None).await? {
            None => Ok(Err(Outcome::Vanished)),
            Some((tags, version_id))
                if tags::workflow_of(&tags) == Some(self.workflow_id.as_str()) =>
            {
                let version = Version {
                    version_id,
                    ..Version::listed(object)
                };
                Ok(Ok(Candidate::new(version, tags)))
            }
            Some(_) => Ok(Err(Outcome::NotOurs)),
        }
    }

    /// The run's held version at `location` in `bucket` with its tags and landing record, if it
    /// is there and this workflow's, or the outcome that ends its visit.
    async fn held(
        &self,
        bucket: &str,
        location: &str,
    ) -> Result<Result<Candidate, Outcome>, PipelineError> {
        let objects = self.objects();
        let head = match objects.head(bucket, location, None, None).await? {
            Found::Found(head) => head,
            Found::Gone | Found::Changed => return Ok(Err(Outcome::Vanished)),
        };
        let Some((tags, _)) = objects
            .tags(bucket, location, head.version.version_id.as_deref())
            .await?
        else {
            return Ok(Err(Outcome::Vanished));
        };
        if tags::workflow_of(&tags) != Some(self.workflow_id.as_str()) {
            return Ok(Err(Outcome::NotOurs));
        }
        Ok(Ok(Candidate::with_landing(
            head.version,
            tags,
            head.landing,
        )))
    }

    /// Deletes the moved version from where it was. Past intake only the gate writes these
    /// buckets, and never over an object, so a different object there is left alone.
    async fn remove_source(&self, bucket: &str, version: &Version) -> Result<(), PipelineError> {
        if self.objects().delete(bucket, version).await? == Deleted::Changed {
            warn!(
                bucket,
                key = version.key,
                "the object changed after it was copied; the newer one stays"
            );
        }
        Ok(())
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
    let mut candidate = match context.ours(targets.scan_stage, &object).await? {
        Ok(candidate) => candidate,
        Err(outcome) => return Ok(outcome),
    };
    let mark = |tags: &[Tag], value: &str| {
        tags::merge(tags, &[Tag::new(SENSITIVE_DATA_FOUND, value)], &[]).map_err(|err| {
            PipelineError::TooManyTags {
                bucket: targets.scan_stage.to_owned(),
                key: object.key.clone(),
                detail: err.to_string(),
            }
        })
    };
    let (tags, review) = match placements.get(object.key.as_str()) {
        Some(Placement::ReviewFlagged) => (mark(&candidate.tags, tags::FOUND)?, true),
        Some(Placement::PassTagged) => (mark(&candidate.tags, tags::FOUND)?, false),
        Some(Placement::ReviewNotAnalysed) => (mark(&candidate.tags, tags::NOT_ANALYSED)?, true),
        Some(Placement::PassClean) => (candidate.tags.clone(), false),
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
            (mark(&candidate.tags, tags::NOT_ANALYSED)?, true)
        }
    };
    candidate.tags = tags;
    let objects = context.objects();
    let from = targets.scan_stage;
    let outcome = if review {
        match placement::hold(
            objects,
            from,
            &mut candidate,
            targets.manual_review,
            &object.key,
        )
        .await?
        {
            Held::At { key, bytes } => {
                if key != object.key {
                    manifest::record_held_aside(
                        context.s3,
                        run.location,
                        run.manifest,
                        &object.key,
                        &key,
                    )
                    .await?;
                }
                Outcome::HeldForReview { bytes }
            }
            Held::Source(copied) => return settle(copied, from, &object.key),
        }
    } else {
        match placement::deliver(
            objects,
            from,
            &mut candidate,
            targets.scanned_data,
            &object.key,
        )
        .await?
        {
            Delivery::Delivered { bytes } => Outcome::Moved { bytes },
            Delivery::Superseded { by, why } => {
                let kept = placement::keep_aside(
                    objects,
                    from,
                    &mut candidate,
                    targets.manual_review,
                    &object.key,
                )
                .await?;
                let (kept_at, bytes) = match kept {
                    Held::At { key, bytes } => (key, bytes),
                    Held::Source(copied) => return settle(copied, from, &object.key),
                };
                let supersession = supersession(
                    &object.key,
                    SupersededIn::Routing,
                    targets.manual_review,
                    kept_at,
                    candidate.recorded_landing(),
                    &by,
                    why,
                );
                manifest::record_supersession(
                    context.s3,
                    run.location,
                    run.manifest,
                    &supersession,
                )
                .await?;
                Outcome::Superseded {
                    moved: Some(bytes),
                    supersession,
                }
            }
            Delivery::Source(copied) => return settle(copied, from, &object.key),
        }
    };
    context.remove_source(from, &candidate.version).await?;
    Ok(outcome)
}

/// The record of a version kept in `kept_in`/`kept_at` instead of replacing `by`.
fn supersession(
    key: &str,
    step: SupersededIn,
    kept_in: &str,
    kept_at: String,
    landing: Option<&crate::s3::landing::Landing>,
    by: &Occupant,
    why: SupersededBy,
) -> Supersession {
    Supersession {
        key: key.to_owned(),
        step,
        kept_in: kept_in.to_owned(),
        kept_at,
        landed_at: landing.map(|l| l.at.to_rfc3339()),
        by: why,
        newer_landed_at: by.landing.as_ref().map(|l| l.at.to_rfc3339()),
    }
}

/// Releases the held objects of this workflow the reviewer chose to release, from manual-review
/// to scanned-data, tags kept; each object's decision is read as it is reached. Only the versions the reviewer was shown are
/// released, from where routing held each; one whose key already has a newer version in
/// scanned-data stays where it is, recorded.
pub async fn release_held(
    context: &PassContext<'_>,
    manual_review: &str,
    scanned_data: &str,
    run: &RunManifest<'_>,
    decided: &ReviewRecords<'_>,
    previous: Option<StepProgress>,
    step: &str,
) -> Result<StepProgress, PipelineError> {
    let (resume_after, mut tally) = StepProgress::resume(previous, step)?;
    let end = visit_keys(
        held_keys(run.manifest),
        resume_after,
        context.settings,
        context.deadline,
        &mut tally,
        |key| release_one(context, manual_review, scanned_data, run, decided, key),
    )
    .await?;
    Ok(StepProgress::from_pass(end, tally))
}

async fn release_one(
    context: &PassContext<'_>,
    manual_review: &str,
    scanned_data: &str,
    run: &RunManifest<'_>,
    decided: &ReviewRecords<'_>,
    key: String,
) -> Result<Outcome, PipelineError> {
    let location = run.manifest.held_location(&key).to_owned();
    if decided.choice(&key, &location).await? != Some(Choice::Release) {
        return Ok(Outcome::NotChosen);
    }
    let mut candidate = match context.held(manual_review, &location).await? {
        Ok(held) => held,
        Err(outcome) => {
            if outcome == Outcome::Vanished {
                decided.gone(&key).await?;
            }
            return Ok(outcome);
        }
    };
    let objects = context.objects();
    match placement::deliver(objects, manual_review, &mut candidate, scanned_data, &key).await? {
        Delivery::Delivered { bytes } => {
            context
                .remove_source(manual_review, &candidate.version)
                .await?;
            // On record once the object is in one place only: a record that cannot be written
            // fails the step with the object released, never with it in two buckets.
            decided
                .ended(
                    &key,
                    Ending::Released {
                        bucket: scanned_data.to_owned(),
                    },
                )
                .await?;
            Ok(Outcome::Moved { bytes })
        }
        Delivery::Superseded { by, why } => {
            let supersession = supersession(
                &key,
                SupersededIn::Release,
                manual_review,
                location,
                candidate.recorded_landing(),
                &by,
                why,
            );
            manifest::record_supersession(context.s3, run.location, run.manifest, &supersession)
                .await?;
            decided
                .ended(
                    &key,
                    Ending::KeptAside {
                        kept_at: supersession.location(),
                        reason: supersession.reason(),
                    },
                )
                .await?;
            Ok(Outcome::Superseded {
                moved: None,
                supersession,
            })
        }
        Delivery::Source(copied) => settle(copied, manual_review, &location),
    }
}

/// Which held objects the deletion after a review deletes: those decided for deletion, and the
/// undecided ones if `undecided` says so.
#[derive(Clone, Copy)]
pub struct ToDelete<'a> {
    pub decided: &'a ReviewRecords<'a>,
    pub undecided: Undecided,
}

/// Deletes the held objects of this workflow chosen for deletion, and the undecided ones when
/// `undecided` says so: exactly the versions the reviewer was shown, from where routing held
/// each. Undecided objects are counted either way. Where raw is versioned, the raw version each came from is deleted
/// for good as well: denied data leaves no version behind in any bucket the gate moved it
/// through.
pub async fn delete_held(
    context: &PassContext<'_>,
    manual_review: &str,
    raw: &str,
    run: &RunManifest<'_>,
    chosen: ToDelete<'_>,
    previous: Option<StepProgress>,
    step: &str,
) -> Result<StepProgress, PipelineError> {
    let (resume_after, mut tally) = StepProgress::resume(previous, step)?;
    let end = visit_keys(
        held_keys(run.manifest),
        resume_after,
        context.settings,
        context.deadline,
        &mut tally,
        |key| delete_one(context, manual_review, raw, run, chosen, key),
    )
    .await?;
    Ok(StepProgress::from_pass(end, tally))
}

async fn delete_one(
    context: &PassContext<'_>,
    manual_review: &str,
    raw: &str,
    run: &RunManifest<'_>,
    chosen: ToDelete<'_>,
    key: String,
) -> Result<Outcome, PipelineError> {
    let location = run.manifest.held_location(&key);
    let records = chosen.decided;
    let nobody_decided = match records.choice(&key, location).await? {
        Some(Choice::Delete) => false,
        Some(Choice::Release) => return Ok(Outcome::NotChosen),
        None if chosen.undecided == Undecided::Keep => {
            records.ended(&key, Ending::LeftHeldAtDeadline).await?;
            return Ok(Outcome::Undecided { deleted: false });
        }
        None => true,
    };
    let (deleted, ending) = if nobody_decided {
        (
            Outcome::Undecided { deleted: true },
            Ending::DeletedAtDeadline,
        )
    } else {
        (Outcome::Deleted, Ending::Deleted)
    };
    let candidate = match context.held(manual_review, location).await? {
        Ok(held) => held,
        Err(outcome) => {
            if outcome == Outcome::Vanished {
                records.gone(&key).await?;
            }
            return Ok(outcome);
        }
    };
    let objects = context.objects();
    // Raw's version first: once the held one is gone, a retry would no longer find the record
    // that names it.
    if let Some(raw_version) = candidate
        .recorded_landing()
        .and_then(|landing| landing.raw_version_id.as_deref())
    {
        objects.delete_version(raw, &key, raw_version).await?;
    }
    match objects.delete(manual_review, &candidate.version).await? {
        Deleted::Done => {
            records.ended(&key, ending).await?;
            Ok(deleted)
        }
        Deleted::Gone => {
            records.gone(&key).await?;
            Ok(Outcome::Vanished)
        }
        Deleted::Changed => Err(PipelineError::ObjectChanged {
            bucket: manual_review.to_owned(),
            key: location.to_owned(),
        }),
    }
}

/// The keys a decision acts on: those the reviewer was shown. Objects held by an earlier run
/// that reused the workflow id stay held.
/// Every key the run held for review, flagged or not analysed: what a review decides.
fn held_keys(manifest: &Manifest) -> Vec<String> {
    manifest
        .held_keys()
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// What a copy that did not happen means. Past intake, an object that changes under a move is
/// an error to retry, never something to leave behind silently.
fn settle(copied: Copied, bucket: &str, key: &str) -> Result<Outcome, PipelineError> {
    match copied {
        Copied::SourceGone => Ok(Outcome::Vanished),
        Copied::Refused(reason) => Err(PipelineError::InvalidInput(format!(
            "s3://{bucket}/{key} cannot be moved: {reason}"
        ))),
        Copied::KeyDenied(message) => Err(crate::s3::kms::denied(bucket, key, &message)),
        Copied::Done { .. } | Copied::SourceChanged | Copied::Taken | Copied::TargetChanged => {
            Err(PipelineError::ObjectChanged {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            })
        }
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
            undecided: None,
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
            undecided: None,
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
