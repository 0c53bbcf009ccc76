//! Benchmarks that print their figures (never timed assertions): the flow of a whole run, the
//! raw -> scan-stage move rate by size and concurrency, and the state transitions a run is billed.

pub mod flow;
pub mod moves;
pub mod transitions;
