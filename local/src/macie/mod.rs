//! The local Macie: classification jobs that run asynchronously over the local S3 (RUNNING,
//! then COMPLETE after a start-up delay), findings in Macie's shape with ListFindings criteria and
//! pagination, custom data identifiers, allow lists, findings filters (suppression rules archive the new
//! findings they meet), the session, and status changes through
//! UpdateClassificationJob (cancel, pause, resume), and sensitive data discovery results for
//! every object a job sees, written to the configured results location. State lives in the data
//! directory.

pub mod api;
mod error;
pub mod finding;
mod finding_queries;
mod findings_filters;
mod identifiers;
mod jobs;
mod request;
pub mod results;
mod runner;
pub mod scope;
mod service;
mod session;

pub use error::MacieError;
pub use service::{Macie, MacieOptions};

#[cfg(test)]
mod persistence_tests;
