//! One visit of the review page that decides something: the form read and checked against the
//! run's held objects, each choice recorded (the first decision of an object stands), and what is
//! left undecided. The run is told only when nothing is.
//!
//! The form names objects by the SHA-256 of their key (`object.<hex>`), never by the key, so a
//! field name needs no escaping and a form can only name what the run holds.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_s3::Client;
use futures::{StreamExt, TryStreamExt};

use crate::approval::decisions::{self, Choice, ObjectDecision, Recorded, Reviewer};
use crate::error::PipelineError;
use crate::s3::documents::hashed_name;
use crate::workflow::WorkflowId;

/// Decisions recorded at the same time.
const WRITE_CONCURRENCY: usize = 16;

/// The longest reviewer name or address the page takes.
pub const MAX_REVIEWER_LEN: usize = 200;

/// The prefix of a per-object field of the form.
pub const OBJECT_FIELD: &str = "object.";

/// What a form asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub token: String,
    /// Who decides, as typed on the page.
    pub reviewer: String,
    /// Choices per object, by the SHA-256 of its key. Objects left "undecided" are not listed.
    pub choices: BTreeMap<String, Choice>,
    /// A choice for every held object still undecided after `choices` (the bulk actions).
    pub remaining: Option<Choice>,
}

/// Why a form cannot be used; shown to the reviewer as it is.
pub type FormProblem = &'static str;

/// Reads an `application/x-www-form-urlencoded` body as the review page sends it. Anything the
/// page does not send is refused, not ignored: a decision is too consequential to guess at.
pub fn parse_form(body: &str) -> Result<Form, FormProblem> {
    let mut token = None;
    let mut reviewer = None;
    let mut choices = BTreeMap::new();
    let mut remaining = None;
    for (name, value) in form_urlencoded::parse(body.as_bytes()) {
        match name.as_ref() {
            "token" if token.is_none() => token = Some(value.into_owned()),
            "reviewer" if reviewer.is_none() => reviewer = Some(value.trim().to_owned()),
            "remaining" if remaining.is_none() => {
                remaining = Some(match value.as_ref() {
                    "" | "keep" => None,
                    other => Some(
                        Choice::parse(other)
                            .ok_or("The bulk choice is not one the page offers.")?,
                    ),
                });
            }
            field => {
                let Some(hash) = field.strip_prefix(OBJECT_FIELD) else {
                    return Err("The form has a field the review page does not send.");
                };
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err("The form names an object the review page does not show.");
                }
                let choice = match value.as_ref() {
                    "keep" | "" => None,
                    other => {
                        Some(Choice::parse(other).ok_or("A choice is not one the page offers.")?)
                    }
                };
                if choices.contains_key(hash) {
                    return Err("The form decides one object twice.");
                }
                if let Some(choice) = choice {
                    choices.insert(hash.to_ascii_lowercase(), choice);
                }
            }
        }
    }
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or("The form has no approval token.")?;
    let reviewer = reviewer
        .filter(|r| !r.is_empty())
        .ok_or("Enter your name or address before deciding: every decision is recorded with it.")?;
    if reviewer.chars().count() > MAX_REVIEWER_LEN || reviewer.chars().any(char::is_control) {
        return Err("The reviewer name must be one line of at most 200 characters.");
    }
    Ok(Form {
        token,
        reviewer,
        choices,
        remaining: remaining.flatten(),
    })
}

/// One object the run holds: its key and where the version shown is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldObject {
    pub key: String,
    pub location: String,
}

/// What a visit did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisitOutcome {
    /// Decided in this visit.
    pub decided: Vec<ObjectDecision>,
    /// Asked for, but decided before (in another tab, by another reviewer); those stand.
    pub earlier: Vec<ObjectDecision>,
    /// Held objects with no decision yet.
    pub undecided: usize,
}

/// A review as a visit finds it: the run's held objects and the decisions made so far.
pub struct OpenReview<'a> {
    pub s3: &'a Client,
    pub workflow_id: &'a WorkflowId,
    /// The manifest bucket, where the decision records are kept.
    pub bucket: &'a str,
    pub review: &'a str,
    pub held: &'a [HeldObject],
    pub existing: &'a BTreeMap<String, ObjectDecision>,
}

impl OpenReview<'_> {
    /// Records the form's choices. A choice for an object decided before is not recorded; the
    /// earlier decision stands and is reported.
    pub async fn decide(
        &self,
        form: &Form,
        reviewer: &Reviewer,
        decided_at: &str,
    ) -> Result<VisitOutcome, PipelineError> {
        let (s3, bucket, review, held, existing) =
            (self.s3, self.bucket, self.review, self.held, self.existing);
        let by_hash: HashMap<String, &HeldObject> = held
            .iter()
            .map(|object| (hashed_name(&object.key), object))
            .collect();
        if let Some(unknown) = form
            .choices
            .keys()
            .find(|hash| !by_hash.contains_key(*hash))
        {
            return Err(PipelineError::InvalidInput(format!(
                "the form decides object {unknown}, which this review does not hold"
            )));
        }
        // Owned before the writes start: the futures must not borrow from the stream's items.
        let wanted: Vec<ObjectDecision> = held
            .iter()
            .filter_map(|object| {
                let asked = form.choices.get(&hashed_name(&object.key)).copied();
                let bulk = form
                    .remaining
                    .filter(|_| !existing.contains_key(&object.key));
                asked.or(bulk).map(|choice| ObjectDecision {
                    workflow_id: self.workflow_id.clone(),
                    key: object.key.clone(),
                    location: object.location.clone(),
                    choice,
                    reviewer: reviewer.clone(),
                    decided_at: decided_at.to_owned(),
                })
            })
            .collect();
        let recorded: Vec<(ObjectDecision, Recorded)> = futures::stream::iter(wanted)
            .map(|decision| async move {
                let recorded = decisions::record(s3, bucket, review, &decision).await?;
                Ok::<_, PipelineError>((decision, recorded))
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect()
            .await?;
        let mut outcome = VisitOutcome::default();
        let mut now_decided: BTreeSet<&str> = existing.keys().map(String::as_str).collect();
        for (decision, result) in &recorded {
            now_decided.insert(decision.key.as_str());
            match result {
                Recorded::Decided => outcome.decided.push(decision.clone()),
                Recorded::AlreadyDecided(earlier) => outcome.earlier.push(earlier.clone()),
            }
        }
        outcome.decided.sort_by(|a, b| a.key.cmp(&b.key));
        outcome.earlier.sort_by(|a, b| a.key.cmp(&b.key));
        outcome.undecided = held
            .iter()
            .filter(|object| !now_decided.contains(object.key.as_str()))
            .count();
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(key: &str) -> String {
        format!("{OBJECT_FIELD}{}", hashed_name(key))
    }

    #[test]
    fn a_form_names_objects_by_hash_and_needs_a_reviewer() {
        let body = format!(
            "token=t%2B1&reviewer=+Ada+Lovelace+&{}=release&{}=delete&{}=keep&remaining=",
            field("a.csv"),
            field("b.csv"),
            field("c.csv")
        );
        let form = parse_form(&body).unwrap();
        assert_eq!(form.token, "t+1");
        assert_eq!(form.reviewer, "Ada Lovelace");
        assert_eq!(form.remaining, None);
        assert_eq!(
            form.choices,
            BTreeMap::from([
                (hashed_name("a.csv"), Choice::Release),
                (hashed_name("b.csv"), Choice::Delete),
            ])
        );
        let bulk = parse_form("token=t&reviewer=ada&remaining=delete").unwrap();
        assert_eq!(bulk.remaining, Some(Choice::Delete));
        assert!(bulk.choices.is_empty());
    }

    #[test]
    fn anything_the_page_does_not_send_is_refused() {
        let one = field("a.csv");
        for (body, problem) in [
            ("token=t&reviewer=", "Enter your name"),
            ("token=t", "Enter your name"),
            ("reviewer=ada", "no approval token"),
            ("token=t&reviewer=ada&action=allow", "does not send"),
            ("token=t&reviewer=ada&object.abc=release", "does not show"),
            (
                &format!("token=t&reviewer=ada&{one}=allow"),
                "not one the page offers",
            ),
            (
                &format!("token=t&reviewer=ada&{one}=release&{one}=delete"),
                "twice",
            ),
            ("token=t&reviewer=ada&remaining=allow", "bulk choice"),
            ("token=t&reviewer=a%0Ab", "one line"),
            (&format!("token=t&reviewer={}", "x".repeat(201)), "one line"),
        ] {
            let err = parse_form(body).unwrap_err();
            assert!(err.contains(problem), "{body}: {err}");
        }
    }
}
