//! Macie adapters: the run's classification job, its findings and its discovery results.

pub mod cost;
pub mod findings;
pub mod job;
pub mod results;
pub mod severity;
