//! False positives, handled once. A reviewer who judges a held object a false positive adds a
//! rule from the review: a phrase or a pattern the gate's Macie allow lists ignore from the next
//! run on ([`allow_lists`]), or a finding type that does not hold objects under a key prefix
//! ([`suppression`]). The rules and who added them are kept in the manifest bucket
//! ([`rules`]) and listed, with a way to remove each, on a page of their own.

pub mod allow_lists;
pub mod rules;
pub mod suppression;
