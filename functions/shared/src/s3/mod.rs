//! S3 adapters: encoding copy sources, moving objects safely, deadline-aware bucket passes, and
//! the small documents the gate keeps.

pub mod copy_source;
pub mod documents;
pub mod objects;
pub mod pass;
