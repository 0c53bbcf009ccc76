//! The sensitive-data gate on one machine: S3, Macie2, SNS, Step Functions and the approval API
//! on loopback, speaking the real wire protocols, running the unmodified handlers and the real
//! state machine.

pub mod clock;
pub mod s3;
pub mod sfn;
