//! Macie adapters: the run's classification job and its findings.

pub mod findings;
pub mod job;
pub mod severity;
