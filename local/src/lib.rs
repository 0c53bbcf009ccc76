//! The sensitive-data gate on one machine: S3, Macie2, SNS, Step Functions and the approval API
//! on loopback, speaking the real wire protocols, running the unmodified handlers and the real
//! state machine.

pub mod approval;
pub mod aws;
pub mod bench;
pub mod cli;
pub mod client;
pub mod clock;
pub mod demo;
pub mod deployment;
pub mod events;
pub mod faults;
pub mod iam;
pub mod json_api;
pub mod json_file;
pub mod kms;
pub mod lambdas;
pub mod macie;
pub mod router;
pub mod s3;
pub mod scan;
pub mod sfn;
pub mod sns;
pub mod sqs;
pub mod stack;
pub mod tls;
pub mod triggers;
