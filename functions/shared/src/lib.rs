//! The sensitive-data gate's domain: the workflow model, S3 moves, the Macie job and its
//! findings, approval links and messages, configuration and errors. Each Lambda is a thin binary
//! over one of [`handlers`].

pub mod approval;
pub mod config;
pub mod deadline;
pub mod deployment;
pub mod error;
pub mod events;
pub mod false_positives;
pub mod handlers;
pub mod lambda;
pub mod macie;
pub mod manifest;
pub mod s3;
pub mod tags;
pub mod workflow;

pub use config::FromEnv;
pub use deadline::Deadline;
pub use error::PipelineError;
