//! Registered state machines, and the names Step Functions accepts.

use crate::sfn::definition::state::Machine;

/// A registered state machine.
pub struct Registered {
    pub arn: String,
    pub name: String,
    pub machine: Machine,
    pub definition: String,
    pub role_arn: String,
    /// The customer-managed KMS key its execution data is encrypted with, if any.
    pub kms_key: Option<String>,
    pub created_ms: i64,
}

/// Execution and state machine names: 1-80 characters, none of the forbidden ones.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 80
        && !name.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c)
                || ('\u{7f}'..='\u{9f}').contains(&c)
                || c == '\u{fffe}'
                || c == '\u{ffff}'
        })
}
