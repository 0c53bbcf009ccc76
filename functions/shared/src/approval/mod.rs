//! The reviewer's side: decision links, the approval email, and the decision page.

pub mod decisions;
pub mod email;
pub mod false_positives;
pub mod links;
pub mod outcomes;
pub mod page;
pub mod record;
pub mod report;
pub mod review_page;
pub mod visit;

use serde::{Deserialize, Serialize};

/// What happens to held objects nobody decided when the review times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeoutAction {
    /// Delete them, as a denial would.
    Deny,
    /// Leave them in manual-review and fail the run, so someone acts on them by hand.
    Hold,
}

impl TimeoutAction {
    /// What happens to the objects still undecided at the deadline.
    pub fn describe_undecided(self) -> &'static str {
        match self {
            Self::Deny => "the objects still undecided are deleted, as if denied",
            Self::Hold => {
                "the objects still undecided stay in the manual-review bucket and the run fails, for someone to handle them by hand"
            }
        }
    }
}
