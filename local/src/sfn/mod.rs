//! The local Step Functions: an interpreter for the Amazon States Language and its API.

pub mod api;
pub mod choice;
pub mod distributed;
pub mod engine;
pub mod intrinsics;
pub mod machine;
pub mod paths;
