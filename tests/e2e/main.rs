//! End-to-end: the real state machine and the unmodified handlers on the local stack, over the
//! real wire protocols, for every path a run can take.

mod aws_cli;
mod browser;
mod decisions;
mod distributed_map;
mod encryption;
mod events;
mod failures;
mod false_positives;
mod formats;
mod iam;
mod landing;
mod macie;
mod paths;
mod process_restart;
mod restart;
mod review;
mod s3_protocol;
mod scale;
mod secrets;
mod soak;
mod stepfunctions;
mod triggers;
mod unanalysed;
mod versions;
