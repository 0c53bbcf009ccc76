//! A state machine definition: parsed from ASL JSON (after SAM's definition substitutions) into
//! types and checked before anything runs, so a broken definition is a load error with AWS's
//! validation code and the location of what is wrong, rather than a failure half-way through a
//! run. Evaluation reads only these types.

pub mod choice_rule;
pub mod fields;
pub mod parse;
pub mod recovery;
pub mod state;
pub mod substitute;
