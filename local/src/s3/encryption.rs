//! Server-side encryption as S3 applies it: a write is encrypted as its request asks
//! (`x-amz-server-side-encryption`, the key id, the bucket-key flag), else with the bucket's
//! default encryption; a copy never keeps its source's key. SSE-KMS writes name an enabled key
//! of the local KMS, and every use of that key is on the caller's behalf, through S3, with the
//! object's ARN as the encryption context (the bucket's with an S3 Bucket Key).

use crate::kms::{Kms, KmsError};
use crate::s3::store::{DefaultEncryption, Store};

/// The KMS key a write is encrypted with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteKey {
    pub arn: String,
    pub bucket_key: bool,
}

/// Why a write's encryption cannot be applied, in S3's error codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionError {
    pub code: &'static str,
    pub message: String,
}

/// The key a write to `bucket` is encrypted with, or None for SSE-S3. `sse`, `key` and
/// `bucket_key` are the request's own headers.
pub fn for_write(
    store: &Store,
    kms: &Kms,
    bucket: &str,
    sse: Option<&str>,
    key: Option<&str>,
    bucket_key: Option<bool>,
) -> Result<Option<WriteKey>, EncryptionError> {
    let (key, bucket_key) = match sse {
        Some("aws:kms") => match key {
            Some(key) => (key.to_owned(), bucket_key.unwrap_or(false)),
            None => {
                return Err(EncryptionError {
                    code: "InvalidArgument",
                    message: "SSE-KMS without a key id uses the AWS managed key aws/s3, which the local stack does not serve; name a key".into(),
                });
            }
        },
        Some("AES256") => return Ok(None),
        Some(other) => {
            return Err(EncryptionError {
                code: "InvalidArgument",
                message: format!("The encryption method specified is not supported: {other}"),
            });
        }
        None => match store.encryption(bucket).ok().flatten() {
            Some(DefaultEncryption {
                kms_key: Some(key),
                bucket_key: default_bucket_key,
            }) => (key, bucket_key.unwrap_or(default_bucket_key)),
            _ => return Ok(None),
        },
    };
    let arn = kms.usable(&key).map_err(|err| match err {
        KmsError::Disabled(message) => EncryptionError {
            code: "KMS.DisabledException",
            message,
        },
        _ => EncryptionError {
            code: "KMS.NotFoundException",
            message: format!("Invalid keyId {key}"),
        },
    })?;
    Ok(Some(WriteKey { arn, bucket_key }))
}

/// The `aws:s3:arn` encryption context S3 uses with an object's key.
pub fn context_arn(bucket: &str, key: &str, bucket_key: bool) -> String {
    if bucket_key {
        format!("arn:aws:s3:::{bucket}")
    } else {
        format!("arn:aws:s3:::{bucket}/{key}")
    }
}

/// The request context of a KMS call S3 makes on a caller's behalf.
pub fn kms_context(secure: bool, context_arn: &str) -> crate::iam::evaluate::Context {
    let mut context = crate::iam::evaluate::transport(secure);
    context.insert(
        "kms:viaservice".into(),
        vec![format!("s3.{}.amazonaws.com", crate::aws::REGION)],
    );
    context.insert(
        "kms:calleraccount".into(),
        vec![crate::aws::ACCOUNT.to_owned()],
    );
    context.insert(
        "kms:encryptioncontext:aws:s3:arn".into(),
        vec![context_arn.to_owned()],
    );
    context
}
