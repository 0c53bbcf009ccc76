//! One pass over a bucket, or over a run's list of keys: act on each object with bounded
//! concurrency, stopping before the Lambda deadline. A bucket is listed page by page and only
//! one page is held at a time, so memory does not grow with the bucket. The pass resumes after
//! the last key it started, so a continuation never skips an object and objects left in place
//! are not visited twice.

use std::future::Future;

use aws_sdk_s3::Client;
use futures::{StreamExt, stream};
use serde::{Deserialize, Serialize};

use crate::config::MoveSettings;
use crate::deadline::Deadline;
use crate::error::PipelineError;
use crate::manifest::Supersession;
use crate::s3::objects::Listed;

/// What a step did with one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Moved to its destination.
    Moved { bytes: u64 },
    /// Moved to the manual-review bucket.
    HeldForReview { bytes: u64 },
    /// Deleted.
    Deleted,
    /// Belongs to another workflow; not touched.
    NotOurs,
    /// Left in raw for a later run: it changed while being moved, or an earlier version of its
    /// key is still being scanned.
    Deferred { key: String, reason: String },
    /// Not moved to its destination because a newer version of its key is there (or one whose
    /// age nobody can tell); kept where the record says. `moved` is set when keeping it meant
    /// moving it (into manual-review).
    Superseded {
        moved: Option<u64>,
        supersession: Supersession,
    },
    /// Disappeared before it was reached.
    Vanished,
    /// A held object its reviewer decided for the other step after the review (released,
    /// not deleted; or the other way round): this step leaves it alone.
    NotChosen,
    /// A held object nobody decided before the review timed out: deleted (the `deny` default)
    /// or left in manual-review (`hold`).
    Undecided { deleted: bool },
    /// Cannot be handled; left in place, and reported at the end of the run.
    Rejected { key: String, reason: String },
}

/// An object left in place, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rejection {
    pub key: String,
    pub reason: String,
}

/// Counts carried from one continuation to the next, so the end of a loop reports the whole step.
/// Its wire form is [`TallyInState`]'s (names, unknown fields refused, and its lists as text).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "TallyInState", from = "TallyInState")]
pub struct Tally {
    /// Objects written to a destination bucket, held ones and ones kept aside included.
    pub moved: u64,
    /// Objects moved on to the step's own destination: scan-stage for the intake, scanned-data
    /// for routing and the release. Not those held for review or kept aside in manual-review.
    #[serde(default)]
    pub passed: u64,
    pub moved_bytes: u64,
    pub held_for_review: u64,
    pub deleted: u64,
    pub deferred: u64,
    pub vanished: u64,
    pub rejected: u64,
    /// The first rejections, with reasons; `rejected` counts them all.
    #[serde(default)]
    pub rejections: Vec<Rejection>,
    /// The first objects deferred, with reasons; `deferred` counts them all.
    #[serde(default)]
    pub deferrals: Vec<Rejection>,
    /// Versions kept aside instead of replacing a newer one (see [`Outcome::Superseded`]).
    #[serde(default)]
    pub superseded: u64,
    /// The first of them, with where each is kept.
    #[serde(default)]
    pub supersessions: Vec<Supersession>,
    /// Held objects nobody decided, met by the deletion after a review.
    #[serde(default)]
    pub undecided: u64,
}

impl Tally {
    /// Rejections, deferrals and supersessions kept with their reasons (each list); the state
    /// payload must stay small.
    pub const MAX_REJECTIONS_LISTED: usize = 20;

    /// Adds `other`'s counts; its rejections are listed while there is room.
    pub fn absorb(&mut self, other: Tally) {
        self.moved += other.moved;
        self.passed += other.passed;
        self.moved_bytes += other.moved_bytes;
        self.held_for_review += other.held_for_review;
        self.deleted += other.deleted;
        self.deferred += other.deferred;
        self.vanished += other.vanished;
        self.rejected += other.rejected;
        self.superseded += other.superseded;
        self.undecided += other.undecided;
        listed(&mut self.rejections, other.rejections);
        listed(&mut self.deferrals, other.deferrals);
        listed(&mut self.supersessions, other.supersessions);
    }

    pub fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Moved { bytes } => {
                self.moved += 1;
                self.passed += 1;
                self.moved_bytes += bytes;
            }
            Outcome::HeldForReview { bytes } => {
                self.moved += 1;
                self.moved_bytes += bytes;
                self.held_for_review += 1;
            }
            Outcome::Deleted => self.deleted += 1,
            Outcome::NotOurs => {}
            Outcome::Deferred { key, reason } => {
                self.deferred += 1;
                listed(&mut self.deferrals, [Rejection { key, reason }]);
            }
            Outcome::Superseded {
                moved,
                supersession,
            } => {
                if let Some(bytes) = moved {
                    self.moved += 1;
                    self.moved_bytes += bytes;
                }
                self.superseded += 1;
                listed(&mut self.supersessions, [supersession]);
            }
            Outcome::Vanished => self.vanished += 1,
            Outcome::NotChosen => {}
            Outcome::Undecided { deleted } => {
                self.undecided += 1;
                if deleted {
                    self.deleted += 1;
                }
            }
            Outcome::Rejected { key, reason } => {
                self.rejected += 1;
                listed(&mut self.rejections, [Rejection { key, reason }]);
            }
        }
    }
}

/// A [`Tally`] as the state machine holds it: the same fields, and its rejections and
/// supersessions as lines of text, which the notifications quote. Step Functions' intrinsic
/// functions can only render a list as JSON, and a reason that quotes JSON (the key-policy
/// statement a refused KMS key needs) would come out with every quote escaped. The text is
/// derived on every write and ignored on every read.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TallyInState {
    moved: u64,
    #[serde(default)]
    passed: u64,
    moved_bytes: u64,
    held_for_review: u64,
    deleted: u64,
    deferred: u64,
    vanished: u64,
    rejected: u64,
    #[serde(default)]
    rejections: Vec<Rejection>,
    #[serde(default)]
    deferrals: Vec<Rejection>,
    #[serde(default)]
    superseded: u64,
    #[serde(default)]
    supersessions: Vec<Supersession>,
    #[serde(default)]
    undecided: u64,
    /// `key: reason`, one line each.
    #[serde(default)]
    rejections_text: String,
    /// `key: reason; kept at s3://…`, one line each.
    #[serde(default)]
    supersessions_text: String,
}

impl From<Tally> for TallyInState {
    fn from(tally: Tally) -> Self {
        let rejections_text = tally
            .rejections
            .iter()
            .map(|rejection| format!("- {}: {}", rejection.key, rejection.reason))
            .collect::<Vec<_>>()
            .join("\n");
        let supersessions_text = tally
            .supersessions
            .iter()
            .map(|kept| {
                format!(
                    "- {}: {}; kept at {}",
                    kept.key,
                    kept.reason(),
                    kept.location()
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        Self {
            moved: tally.moved,
            passed: tally.passed,
            moved_bytes: tally.moved_bytes,
            held_for_review: tally.held_for_review,
            deleted: tally.deleted,
            deferred: tally.deferred,
            vanished: tally.vanished,
            rejected: tally.rejected,
            rejections: tally.rejections,
            deferrals: tally.deferrals,
            superseded: tally.superseded,
            supersessions: tally.supersessions,
            undecided: tally.undecided,
            rejections_text,
            supersessions_text,
        }
    }
}

impl From<TallyInState> for Tally {
    fn from(state: TallyInState) -> Self {
        Self {
            moved: state.moved,
            passed: state.passed,
            moved_bytes: state.moved_bytes,
            held_for_review: state.held_for_review,
            deleted: state.deleted,
            deferred: state.deferred,
            vanished: state.vanished,
            rejected: state.rejected,
            rejections: state.rejections,
            deferrals: state.deferrals,
            superseded: state.superseded,
            supersessions: state.supersessions,
            undecided: state.undecided,
        }
    }
}

/// Adds `more` to a list of examples while it has room: the state payload must stay small.
fn listed<T>(list: &mut Vec<T>, more: impl IntoIterator<Item = T>) {
    let room = Tally::MAX_REJECTIONS_LISTED.saturating_sub(list.len());
    list.extend(more.into_iter().take(room));
}

/// Where a pass ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassEnd {
    /// Every object was visited.
    Complete,
    /// The deadline came first; resume after this key (`None`: nothing was started yet).
    Interrupted { resume_after: Option<String> },
}

/// Visits every object of `bucket` listed after `resume_after`, applying `visit` to each.
/// An error from any object ends the pass with that error once the objects already started
/// have finished, so nothing is abandoned half-moved by this process.
pub async fn visit_bucket<F, Fut>(
    s3: &Client,
    bucket: &str,
    resume_after: Option<String>,
    settings: &MoveSettings,
    deadline: Deadline,
    tally: &mut Tally,
    visit: F,
) -> Result<PassEnd, PipelineError>
where
    F: Fn(Listed) -> Fut,
    Fut: Future<Output = Result<Outcome, PipelineError>>,
{
    let mut cursor = resume_after;
    loop {
        if deadline.is_near(settings.deadline_margin) {
            return Ok(PassEnd::Interrupted {
                resume_after: cursor,
            });
        }
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .set_start_after(cursor.clone())
            .send()
            .await
            .map_err(|err| PipelineError::from_sdk("ListObjectsV2", err).naming_bucket(bucket))?;
        let truncated = page.is_truncated().unwrap_or(false);
        let objects: Vec<Listed> = page
            .contents()
            .iter()
            .filter_map(|object| {
                Some(Listed {
                    key: object.key()?.to_owned(),
                    etag: object.e_tag().unwrap_or_default().to_owned(),
                    size: u64::try_from(object.size().unwrap_or(0)).unwrap_or(0),
                })
            })
            .collect();
        let Some(last_listed) = objects.last().map(|object| object.key.clone()) else {
            return Ok(PassEnd::Complete);
        };

        match visit_listed(objects, settings, deadline, tally, &visit).await? {
            PassEnd::Complete => {}
            PassEnd::Interrupted { resume_after } => {
                return Ok(PassEnd::Interrupted {
                    resume_after: resume_after.or(cursor),
                });
            }
        }
        if !truncated {
            return Ok(PassEnd::Complete);
        }
        cursor = Some(last_listed);
    }
}

/// Visits `objects` (one listing page, or one Distributed Map batch) with bounded concurrency,
/// starting none once the deadline is near. `Interrupted` names the last object started
/// (`None`: none was). An error from any object is returned once the objects already started
/// have finished, so nothing is abandoned half-moved by this process.
pub async fn visit_listed<F, Fut>(
    objects: Vec<Listed>,
    settings: &MoveSettings,
    deadline: Deadline,
    tally: &mut Tally,
    visit: F,
) -> Result<PassEnd, PipelineError>
where
    F: Fn(Listed) -> Fut,
    Fut: Future<Output = Result<Outcome, PipelineError>>,
{
    visit_items(
        objects,
        |object| &object.key,
        settings,
        deadline,
        tally,
        visit,
    )
    .await
}

/// Visits every key of `keys` (sorted here) after `resume_after`, as [`visit_bucket`] visits a
/// bucket: for the steps that act on a run's own list of objects rather than on a listing.
pub async fn visit_keys<F, Fut>(
    mut keys: Vec<String>,
    resume_after: Option<String>,
    settings: &MoveSettings,
    deadline: Deadline,
    tally: &mut Tally,
    visit: F,
) -> Result<PassEnd, PipelineError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Outcome, PipelineError>>,
{
    keys.sort_unstable();
    keys.dedup();
    if let Some(after) = &resume_after {
        keys.retain(|key| key > after);
    }
    match visit_items(keys, String::as_str, settings, deadline, tally, visit).await? {
        PassEnd::Interrupted { resume_after: None } => Ok(PassEnd::Interrupted { resume_after }),
        end => Ok(end),
    }
}

/// Visits `items` with bounded concurrency, starting none once the deadline is near.
async fn visit_items<T, F, Fut>(
    items: Vec<T>,
    key_of: impl Fn(&T) -> &str,
    settings: &MoveSettings,
    deadline: Deadline,
    tally: &mut Tally,
    visit: F,
) -> Result<PassEnd, PipelineError>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<Outcome, PipelineError>>,
{
    let listed = items.len();
    let mut started = 0usize;
    let mut last_started = None;
    let results: Vec<Result<Outcome, PipelineError>> = stream::iter(items)
        .take_while(|_| futures::future::ready(!deadline.is_near(settings.deadline_margin)))
        .map(|item| {
            started += 1;
            last_started = Some(key_of(&item).to_owned());
            visit(item)
        })
        .buffer_unordered(settings.concurrency)
        .collect()
        .await;

    let mut first_error = None;
    for result in results {
        match result {
            Ok(outcome) => tally.record(outcome),
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    if let Some(err) = first_error {
        return Err(err);
    }
    if started < listed {
        return Ok(PassEnd::Interrupted {
            resume_after: last_started,
        });
    }
    Ok(PassEnd::Complete)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_the_state_a_tally_lists_its_reasons_as_text_a_person_can_read() {
        let mut tally = Tally::default();
        let statement = r#"{"Sid": "SensitiveDataGateTakesObjects", "Action": "kms:Decrypt"}"#;
        tally.record(Outcome::Rejected {
            key: "a.csv".into(),
            reason: format!("its key refuses the gate; add {statement}"),
        });
        tally.record(Outcome::Rejected {
            key: "b.csv".into(),
            reason: "archived".into(),
        });
        let state = serde_json::to_value(&tally).unwrap();
        assert_eq!(
            state["rejectionsText"],
            format!("- a.csv: its key refuses the gate; add {statement}\n- b.csv: archived")
        );
        assert_eq!(state["supersessionsText"], "");
        // The text is derived: reading it back gives the same tally, and a stale text is ignored.
        let mut stale = state.clone();
        stale["rejectionsText"] = "- nothing".into();
        assert_eq!(serde_json::from_value::<Tally>(stale).unwrap(), tally);
        assert_eq!(serde_json::from_value::<Tally>(state).unwrap(), tally);
        let mut unknown = serde_json::to_value(&tally).unwrap();
        unknown["surprise"] = 1.into();
        assert!(serde_json::from_value::<Tally>(unknown).is_err());
    }

    #[test]
    fn rejections_are_counted_beyond_the_listed_ones() {
        let mut tally = Tally::default();
        for i in 0..25 {
            tally.record(Outcome::Rejected {
                key: format!("k{i}"),
                reason: "r".into(),
            });
        }
        assert_eq!(tally.rejected, 25);
        assert_eq!(tally.rejections.len(), Tally::MAX_REJECTIONS_LISTED);
    }

    #[test]
    fn review_moves_count_as_moves() {
        let mut tally = Tally::default();
        tally.record(Outcome::HeldForReview { bytes: 10 });
        tally.record(Outcome::Moved { bytes: 5 });
        tally.record(Outcome::NotOurs);
        assert_eq!(
            (tally.moved, tally.moved_bytes, tally.held_for_review),
            (2, 15, 1)
        );
    }
}
