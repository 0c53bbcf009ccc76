//! Where a version may go when its key is taken at its destination. Every write the gate makes
//! into manual-review and scanned-data goes through here, and none replaces what the gate did
//! not expect to find:
//!
//! * [`deliver`] to scanned-data writes with `If-None-Match: *`. If the key is taken, the
//!   version there is compared (see [`landing`](crate::s3::landing)): the same version (a retried
//!   move) is done; an older one the gate wrote is replaced with `If-Match` on its ETag; a newer
//!   one, one the gate did not write, or one whose age cannot be told stays, and the incoming
//!   version is *superseded*.
//! * [`hold`] to manual-review writes at the key with `If-None-Match: *`; if another version of
//!   the key is held there (its own decision pending), this one waits aside, under
//!   `gate-versions/<landed>/<key>`, so both survive until each is decided.
//! * [`keep_aside`] puts a superseded version under `gate-versions/` in manual-review, where a
//!   person can still recover it.

use crate::error::PipelineError;
use crate::manifest::SupersededBy;
use crate::s3::landing::{self, Landing, Order};
use crate::s3::objects::{Copied, Found, Metadata, Objects, Target, Version};
use crate::tags::{self, Tag};

/// A write that keeps meeting a different object at its target gives up after this many
/// rounds, as `ObjectChanged`, for the state machine to retry.
const ROUNDS: usize = 4;

/// The version being placed, with what the gate knows about it.
pub struct Candidate {
    pub version: Version,
    pub tags: Vec<Tag>,
    /// Its landing record, once read (`None` inside: it has none).
    landing: Option<Option<Landing>>,
}

impl Candidate {
    /// A version whose landing record is read only if a conflict needs it.
    pub fn new(version: Version, tags: Vec<Tag>) -> Self {
        Self {
            version,
            tags,
            landing: None,
        }
    }

    /// A version whose landing record is known already.
    pub fn with_landing(version: Version, tags: Vec<Tag>, landing: Option<Landing>) -> Self {
        Self {
            version,
            tags,
            landing: Some(landing),
        }
    }

    /// Its landing record, read from `bucket` the first time; `Err` if the version is gone or
    /// was replaced meanwhile.
    pub async fn landing(
        &mut self,
        objects: Objects<'_>,
        bucket: &str,
    ) -> Result<Result<Option<Landing>, Copied>, PipelineError> {
        if let Some(known) = &self.landing {
            return Ok(Ok(known.clone()));
        }
        let version = &self.version;
        match objects
            .head(
                bucket,
                &version.key,
                version.version_id.as_deref(),
                Some(&version.etag),
            )
            .await?
        {
            Found::Found(head) => {
                self.landing = Some(head.landing.clone());
                Ok(Ok(head.landing))
            }
            Found::Gone => Ok(Err(Copied::SourceGone)),
            Found::Changed => Ok(Err(Copied::SourceChanged)),
        }
    }

    /// Its landing record if it was read already (`None` too when it has none).
    pub fn recorded_landing(&self) -> Option<&Landing> {
        self.landing.as_ref().and_then(Option::as_ref)
    }

    fn workflow(&self) -> Option<&str> {
        tags::workflow_of(&self.tags)
    }
}

/// What is at a target key.
#[derive(Debug, Clone)]
pub struct Occupant {
    pub etag: String,
    pub landing: Option<Landing>,
    /// Its `WorkflowId`, read only when it has no landing record.
    pub workflow: Option<String>,
}

impl Occupant {
    /// The object at `key`, if any.
    async fn at(
        objects: Objects<'_>,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Self>, PipelineError> {
        let head = match objects.head(bucket, key, None, None).await? {
            Found::Found(head) => head,
            Found::Gone | Found::Changed => return Ok(None),
        };
        let workflow = if head.landing.is_some() {
            None
        } else {
            match objects
                .tags(bucket, key, head.version.version_id.as_deref())
                .await?
            {
                Some((tags, _)) => tags::workflow_of(&tags).map(str::to_owned),
                None => return Ok(None),
            }
        };
        Ok(Some(Self {
            etag: head.version.etag,
            landing: head.landing,
            workflow,
        }))
    }

    /// Whether this is `candidate` itself, put there by an earlier attempt of the same move.
    fn is(&self, candidate: &Candidate, landing: Option<&Landing>) -> bool {
        match (landing, &self.landing) {
            (Some(landing), Some(occupant)) => landing.same_version(occupant),
            // Moved before landings were recorded: the same bytes of the same run.
            (None, None) => {
                self.etag == candidate.version.etag
                    && self.workflow.as_deref() == candidate.workflow()
            }
            _ => false,
        }
    }

    /// Whether the gate wrote it: it has a landing record, or a `WorkflowId` from before
    /// landings were recorded.
    fn written_by_the_gate(&self) -> bool {
        self.landing.is_some() || self.workflow.is_some()
    }

    /// How `candidate` compares with this occupant.
    fn order(&self, candidate: &Candidate, landing: Option<&Landing>) -> Order {
        if self.is(candidate, landing) {
            return Order::Same;
        }
        landing::compare(landing, self.landing.as_ref(), self.written_by_the_gate())
    }

    /// Why a version that may not replace this occupant did not.
    fn why_kept(&self, order: Order) -> SupersededBy {
        match order {
            Order::Older => SupersededBy::Newer,
            _ if !self.written_by_the_gate() => SupersededBy::Foreign,
            _ => SupersededBy::Unordered,
        }
    }
}

/// What [`deliver`] did.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// Written at its key (or found there, written by an earlier attempt).
    Delivered { bytes: u64 },
    /// Not written: the occupant stays, for the reason given.
    Superseded { by: Occupant, why: SupersededBy },
    /// The source is not as it was seen (changed, gone, refused).
    Source(Copied),
}

/// Puts `candidate`, now in `from`, at `key` of `to` (scanned-data), unless something newer or
/// unknown is there.
pub async fn deliver(
    objects: Objects<'_>,
    from: &str,
    candidate: &mut Candidate,
    to: &str,
    key: &str,
) -> Result<Delivery, PipelineError> {
    let mut target = Target::Absent;
    for _ in 0..ROUNDS {
        match objects
            .copy(
                from,
                &candidate.version,
                to,
                key,
                &candidate.tags,
                Metadata::Kept,
                &target,
            )
            .await?
        {
            Copied::Done { bytes, .. } => return Ok(Delivery::Delivered { bytes }),
            Copied::Taken | Copied::TargetChanged => {}
            other => return Ok(Delivery::Source(other)),
        }
        let Some(occupant) = Occupant::at(objects, to, key).await? else {
            target = Target::Absent;
            continue;
        };
        let landing = match candidate.landing(objects, from).await? {
            Ok(landing) => landing,
            Err(source) => return Ok(Delivery::Source(source)),
        };
        match occupant.order(candidate, landing.as_ref()) {
            Order::Same => {
                return Ok(Delivery::Delivered {
                    bytes: candidate.version.size,
                });
            }
            Order::Newer => target = Target::Replacing(occupant.etag),
            order @ (Order::Older | Order::Unknown) => {
                let why = occupant.why_kept(order);
                return Ok(Delivery::Superseded { by: occupant, why });
            }
        }
    }
    Err(PipelineError::ObjectChanged {
        bucket: to.to_owned(),
        key: key.to_owned(),
    })
}

/// What [`hold`] and [`keep_aside`] did.
#[derive(Debug, Clone)]
pub enum Held {
    /// The version is at this key of manual-review.
    At { key: String, bytes: u64 },
    /// The source is not as it was seen (changed, gone, refused).
    Source(Copied),
}

/// Puts `candidate`, now in `from`, in `to` (manual-review) at `key`, or aside if another
/// version of the key is held there.
pub async fn hold(
    objects: Objects<'_>,
    from: &str,
    candidate: &mut Candidate,
    to: &str,
    key: &str,
) -> Result<Held, PipelineError> {
    match place(objects, from, candidate, to, key).await? {
        Placed::Done(held) => Ok(held),
        Placed::Taken => keep_aside(objects, from, candidate, to, key).await,
    }
}

/// Puts `candidate`, now in `from`, under `gate-versions/<landed>/<key>` in `to`
/// (manual-review).
pub async fn keep_aside(
    objects: Objects<'_>,
    from: &str,
    candidate: &mut Candidate,
    to: &str,
    key: &str,
) -> Result<Held, PipelineError> {
    let landing = match candidate.landing(objects, from).await? {
        Ok(landing) => landing,
        Err(source) => return Ok(Held::Source(source)),
    };
    let conflict = |detail: String| PipelineError::PlacementConflict {
        bucket: to.to_owned(),
        key: key.to_owned(),
        detail,
    };
    let Some(aside) = landing::aside_key(key, landing.as_ref(), &candidate.version.etag) else {
        return Err(conflict(
            "another version of the key is there, and the key is too long to keep a second one \
             under gate-versions/ (S3 keys are at most 1,024 bytes)"
                .to_owned(),
        ));
    };
    match place(objects, from, candidate, to, &aside).await? {
        Placed::Done(held) => Ok(held),
        Placed::Taken => Err(conflict(format!(
            "another version of the key is there, and s3://{to}/{aside} holds an object that is \
             not this version"
        ))),
    }
}

enum Placed {
    Done(Held),
    /// Another object is at the key.
    Taken,
}

/// Writes `candidate` at `key` if nothing is there, or finds it there already.
async fn place(
    objects: Objects<'_>,
    from: &str,
    candidate: &mut Candidate,
    to: &str,
    key: &str,
) -> Result<Placed, PipelineError> {
    for _ in 0..ROUNDS {
        match objects
            .copy(
                from,
                &candidate.version,
                to,
                key,
                &candidate.tags,
                Metadata::Kept,
                &Target::Absent,
            )
            .await?
        {
            Copied::Done { bytes, .. } => {
                return Ok(Placed::Done(Held::At {
                    key: key.to_owned(),
                    bytes,
                }));
            }
            Copied::Taken => {}
            other => return Ok(Placed::Done(Held::Source(other))),
        }
        let Some(occupant) = Occupant::at(objects, to, key).await? else {
            continue;
        };
        let landing = match candidate.landing(objects, from).await? {
            Ok(landing) => landing,
            Err(source) => return Ok(Placed::Done(Held::Source(source))),
        };
        return Ok(if occupant.is(candidate, landing.as_ref()) {
            Placed::Done(Held::At {
                key: key.to_owned(),
                bytes: candidate.version.size,
            })
        } else {
            Placed::Taken
        });
    }
    Err(PipelineError::ObjectChanged {
        bucket: to.to_owned(),
        key: key.to_owned(),
    })
}
