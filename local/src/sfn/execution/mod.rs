//! Executions as data: their records (status, position, history, variables) and how they are
//! kept on disk after every transition, and the task tokens of callback tasks.

pub mod record;
pub mod store;
pub mod tokens;
