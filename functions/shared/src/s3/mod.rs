//! S3 adapters: encoding copy sources, conditional copies and deletes of exact versions, which
//! version of a key is newer and where a version may go, deadline-aware bucket passes, and the
//! small documents the gate keeps.

pub mod copy_source;
pub mod documents;
pub mod kms;
pub mod landing;
pub mod objects;
pub mod pass;
pub mod placement;
