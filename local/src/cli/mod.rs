//! The `macie-pipeline-local` command line: one module per command, each with its arguments and
//! what it does, so that `main.rs` only parses and dispatches.

pub mod bench;
pub mod demo;
pub mod fault;
pub mod iam;
pub mod scan;
pub mod serve;
pub mod stack_args;
pub mod states;
