//! The Distributed Map path (template parameter `MovePath=DistributedMap`): instead of one
//! Lambda looping over a bucket, Step Functions lists the bucket (`ItemReader` over
//! `s3:listObjectsV2`), groups the listing into batches (`ItemBatcher`) and runs a child per
//! batch, up to `MaxConcurrency` at once. The same two functions that run the loop move the
//! batches: triggerMacieScan takes intake batches, moveAllScanStageS3Files routing batches, so
//! no new function and no new object permission is needed.
//!
//! A step on this path makes three kinds of call: the first (no progress) answers `FAN_OUT`
//! without moving anything; each child sends a batch and gets a [`BatchOutcome`]; the call after
//! the Map sends every outcome back (`FANNED_OUT`) and gets the step's result, in the shape the
//! loop gives, so the rest of the state machine does not know which path ran.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::config::MoveSettings;
use crate::deadline::Deadline;
use crate::error::PipelineError;
use crate::manifest::Supersession;
use crate::s3::objects::Listed;
use crate::s3::pass::{Outcome, PassEnd, Rejection, Tally, visit_listed};

/// How a run moves objects: the template parameter `MovePath`, carried in the state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MovePath {
    /// One Lambda invocation after another, each handing a cursor to the next.
    #[default]
    Loop,
    /// Step Functions Distributed Map: batches moved in parallel.
    DistributedMap,
}

/// One object of an `ItemReader` listing (specs/stepfunctions.md §9.2). Other fields
/// (`LastModified`, `StorageClass`) are ignored; a move checks the object itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BatchItem {
    #[serde(rename = "Key")]
    pub key: String,
    /// Quotes included, as S3 lists it.
    #[serde(rename = "Etag")]
    pub etag: String,
    #[serde(rename = "Size")]
    pub size: u64,
}

impl From<BatchItem> for Listed {
    fn from(item: BatchItem) -> Self {
        Listed {
            key: item.key,
            etag: item.etag,
            size: item.size,
        }
    }
}

/// A child's input as `ItemBatcher` builds it: the shared `BatchInput` and the items.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch<I> {
    #[serde(rename = "BatchInput")]
    pub batch_input: I,
    #[serde(rename = "Items")]
    pub items: Vec<BatchItem>,
}

/// What a child reports: its counts, zeros left out. Every outcome travels in the Map's result
/// (at most 256 KiB, and exceeding it fails the execution where no Catch can announce it), so a
/// typical outcome must stay tiny: `{"moved":1000,"movedBytes":1234567}` is 36 bytes, which
/// allows several thousand batches a run. Reasons (rejections, deferrals, supersessions) are
/// kept only for the first [`BatchOutcome::REJECTIONS_LISTED`] of each kind in a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchOutcome {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub moved: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub moved_bytes: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub held_for_review: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deferred: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub vanished: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rejected: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejections: Vec<Rejection>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deferrals: Vec<Rejection>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub superseded: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supersessions: Vec<Supersession>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl BatchOutcome {
    pub const REJECTIONS_LISTED: usize = 2;

    fn new(tally: Tally) -> Self {
        let Tally {
            moved,
            // Derived again from the counts below when the outcomes are added up.
            passed: _,
            moved_bytes,
            held_for_review,
            deleted: _,
            deferred,
            vanished,
            rejected,
            mut rejections,
            mut deferrals,
            superseded,
            mut supersessions,
            // Batches move intake and routing, never the held objects of a review.
            undecided: _,
        } = tally;
        rejections.truncate(Self::REJECTIONS_LISTED);
        deferrals.truncate(Self::REJECTIONS_LISTED);
        supersessions.truncate(Self::REJECTIONS_LISTED);
        Self {
            moved,
            moved_bytes,
            held_for_review,
            deferred,
            vanished,
            rejected,
            rejections,
            deferrals,
            superseded,
            supersessions,
        }
    }

    /// The counts of a whole step: every child's outcome added up. What a batch passed on is
    /// what it moved less what it held or kept aside: batches move intake, which holds nothing,
    /// and routing, which moves every version it keeps aside into manual-review.
    pub fn total(outcomes: Vec<BatchOutcome>) -> Tally {
        let mut total = Tally::default();
        for outcome in outcomes {
            total.absorb(Tally {
                moved: outcome.moved,
                passed: outcome
                    .moved
                    .saturating_sub(outcome.held_for_review)
                    .saturating_sub(outcome.superseded),
                moved_bytes: outcome.moved_bytes,
                held_for_review: outcome.held_for_review,
                deleted: 0,
                deferred: outcome.deferred,
                vanished: outcome.vanished,
                rejected: outcome.rejected,
                rejections: outcome.rejections,
                deferrals: outcome.deferrals,
                superseded: outcome.superseded,
                supersessions: outcome.supersessions,
                undecided: 0,
            });
        }
        total
    }
}

/// A step function's input on either path: a Map child's batch, or a step of the state
/// machine's own. Told apart by the `Items` field only a batch has, so a bad input gets the
/// error of the shape it was meant to be, not "matched no variant".
#[derive(Debug, Clone)]
pub enum Request<B, S> {
    Batch(Batch<B>),
    Step(S),
}

impl<'de, B: DeserializeOwned, S: DeserializeOwned> Deserialize<'de> for Request<B, S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let is_batch = value.get("Items").is_some();
        let parsed = if is_batch {
            serde_json::from_value(value).map(Request::Batch)
        } else {
            serde_json::from_value(value).map(Request::Step)
        };
        parsed.map_err(|err| {
            let shape = if is_batch { "a map batch" } else { "a step" };
            serde::de::Error::custom(format!("as {shape}: {err}"))
        })
    }
}

/// A step function's output on either path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Response<S> {
    Batch(BatchOutcome),
    Step(S),
}

/// Moves one batch: `visit` on each item with the step's concurrency. A batch is never handed
/// back half-done as a success: if the deadline comes first, the batch fails with
/// `BatchUnfinished` and is retried whole.
pub async fn move_batch<F, Fut>(
    items: Vec<BatchItem>,
    settings: &MoveSettings,
    deadline: Deadline,
    visit: F,
) -> Result<BatchOutcome, PipelineError>
where
    F: Fn(Listed) -> Fut,
    Fut: Future<Output = Result<Outcome, PipelineError>>,
{
    let total = items.len();
    let objects: Vec<Listed> = items.into_iter().map(Listed::from).collect();
    let mut tally = Tally::default();
    match visit_listed(objects, settings, deadline, &mut tally, visit).await? {
        PassEnd::Complete => Ok(BatchOutcome::new(tally)),
        // S3 throttled the batch to a crawl. The moves done stay done; the retry moves the
        // rest and finds the moved objects gone.
        PassEnd::Interrupted { .. } => Err(PipelineError::BatchUnfinished(format!(
            "a batch of {total} objects was not finished before the Lambda deadline \
             ({} moved); it is retried whole",
            tally.moved
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Step {
        progress: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Input {
        workflow_id: String,
    }

    #[test]
    fn a_map_batch_and_a_step_are_told_apart_by_items() {
        let batch: Request<Input, Step> = serde_json::from_value(json!({
            "BatchInput": {"workflowId": "wf"},
            "Items": [{"Key": "a b", "Etag": "\"e\"", "Size": 3, "LastModified": 1,
                       "StorageClass": "STANDARD"}]
        }))
        .unwrap();
        let Request::Batch(batch) = batch else {
            panic!("a batch")
        };
        assert_eq!(batch.batch_input.workflow_id, "wf");
        assert_eq!(
            Listed::from(batch.items[0].clone()),
            Listed {
                key: "a b".into(),
                etag: "\"e\"".into(),
                size: 3
            }
        );
        let step: Request<Input, Step> = serde_json::from_value(json!({"progress": null})).unwrap();
        assert!(matches!(step, Request::Step(Step { progress: None })));
    }

    #[test]
    fn a_bad_input_says_which_shape_it_failed() {
        let err = serde_json::from_value::<Request<Input, Step>>(
            json!({"BatchInput": {"workflowId": "wf"}, "Items": [{"Key": "k"}]}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("as a map batch"), "{err}");
        assert!(err.to_string().contains("Etag"), "{err}");
        let err =
            serde_json::from_value::<Request<Input, Step>>(json!({"progres": 1})).unwrap_err();
        assert!(err.to_string().contains("as a step"), "{err}");
    }

    #[test]
    fn an_outcome_carries_only_its_non_zero_counts() {
        let mut tally = Tally::default();
        for _ in 0..1000 {
            tally.record(Outcome::Moved { bytes: 1234 });
        }
        let json = serde_json::to_string(&BatchOutcome::new(tally)).unwrap();
        assert_eq!(json, r#"{"moved":1000,"movedBytes":1234000}"#);
        assert_eq!(
            serde_json::to_string(&BatchOutcome::default()).unwrap(),
            "{}"
        );
        let back: BatchOutcome = serde_json::from_str(&json).unwrap();
        assert_eq!(BatchOutcome::total(vec![back]).moved, 1000);
    }

    #[test]
    fn outcomes_add_up_and_keep_few_reasons() {
        let mut tally = Tally::default();
        for i in 0..5 {
            tally.record(Outcome::Rejected {
                key: format!("k{i}"),
                reason: "archived".into(),
            });
        }
        tally.record(Outcome::Moved { bytes: 7 });
        let outcome = BatchOutcome::new(tally);
        assert_eq!(outcome.rejections.len(), 2);
        let mut other = Tally::default();
        other.record(Outcome::HeldForReview { bytes: 3 });
        other.record(Outcome::Vanished);
        let total = BatchOutcome::total(vec![outcome, BatchOutcome::new(other)]);
        assert_eq!(
            (
                total.moved,
                total.moved_bytes,
                total.held_for_review,
                total.vanished,
                total.rejected
            ),
            (2, 10, 1, 1, 5)
        );
        assert_eq!(total.rejections.len(), 2);
    }

    #[tokio::test]
    async fn a_batch_that_meets_the_deadline_fails_to_be_retried_whole() {
        let items = vec![BatchItem {
            key: "k".into(),
            etag: "\"e\"".into(),
            size: 1,
        }];
        let settings = MoveSettings::default();
        let err = move_batch(
            items.clone(),
            &settings,
            Deadline::after(std::time::Duration::ZERO),
            |_| async { Ok(Outcome::Moved { bytes: 1 }) },
        )
        .await
        .unwrap_err();
        assert_eq!(err.name(), "BatchUnfinished");
        assert!(err.to_string().contains("batch of 1 objects"), "{err}");
        let done = move_batch(
            items,
            &settings,
            Deadline::after(std::time::Duration::from_secs(3600)),
            |_| async { Ok(Outcome::Moved { bytes: 1 }) },
        )
        .await
        .unwrap();
        assert_eq!(done.moved, 1);
    }
}
