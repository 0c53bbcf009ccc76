//! The local Step Functions: an interpreter for the Amazon States Language (JSONPath) and its
//! API. Read it in the order of the language: `definition` parses a definition into types,
//! `expr` holds paths, templates and intrinsic functions, `states` evaluates each state type,
//! `driver` runs an execution over them, `execution` keeps records and task tokens, `engine`
//! and `api` serve the Step Functions operations.

pub mod api;
pub mod definition;
pub mod driver;
pub mod engine;
pub mod error;
pub mod execution;
pub mod expr;
pub mod integrations;
pub mod registry;
pub mod states;

#[cfg(test)]
mod engine_tests;
