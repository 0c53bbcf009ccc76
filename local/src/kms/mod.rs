//! A local KMS: the template's keys and those made with the AWS CLI, their key policies (which
//! IAM's evaluation reads, as a key policy must allow every use of its key), aliases, and the
//! cryptographic operations S3 and the API use.

pub mod api;
pub mod keys;

pub use keys::{Kms, KmsError, Principals, key_arn};
