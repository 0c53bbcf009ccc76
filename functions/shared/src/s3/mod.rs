//! S3 adapters: encoding copy sources, moving objects safely, and deadline-aware bucket passes.

pub mod copy_source;
pub mod objects;
pub mod pass;
