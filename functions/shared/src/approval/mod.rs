//! The reviewer's side: decision links, the approval email, and the decision page.

pub mod email;
pub mod links;
pub mod page;
pub mod record;

use serde::{Deserialize, Serialize};

/// What happens to held objects when nobody decides before the approval times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeoutAction {
    /// Delete them, as a denial would.
    Deny,
    /// Leave them in manual-review and fail the run, so someone acts on them by hand.
    Hold,
}

impl TimeoutAction {
    /// What the email tells the reviewer will happen.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Deny => "the held objects will be deleted, as if denied",
            Self::Hold => {
                "the held objects stay in the manual-review bucket and the run fails, for someone to handle them by hand"
            }
        }
    }
}
