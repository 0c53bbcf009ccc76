//! Small documents the gate keeps in S3 (manifests, unresolved-object records, approval
//! records) and the results files it reads: whole-object writes and reads, and names derived
//! from hashes.

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::PipelineError;
use crate::s3::objects;

/// Writes `value` as JSON to `bucket/key`. Writing the same value again stores the same content.
pub async fn put_json<T: Serialize>(
    s3: &Client,
    bucket: &str,
    key: &str,
    value: &T,
) -> Result<(), PipelineError> {
    let body = serde_json::to_string(value).expect("the gate's documents always serialize");
    put_text(s3, bucket, key, "application/json", body).await
}

/// Writes `body` to `bucket/key` as `content_type` (a page, a words list).
pub async fn put_text(
    s3: &Client,
    bucket: &str,
    key: &str,
    content_type: &str,
    body: String,
) -> Result<(), PipelineError> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(ByteStream::from(body.into_bytes()))
        .send()
        .await
        .map_err(|err| PipelineError::from_sdk("PutObject", err))?;
    Ok(())
}

/// What a create-only write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Created,
    /// Something is at the key already; it was left as it is.
    Exists,
}

/// A write that raced another conditional write of the same key (409) is tried this many times.
const CREATE_ATTEMPTS: u32 = 4;

/// Writes `value` as JSON to `bucket/key` only if nothing is there (`If-None-Match: *`), so
/// that of two writers racing for one key exactly one wins, decided by S3 itself.
pub async fn create_json<T: Serialize>(
    s3: &Client,
    bucket: &str,
    key: &str,
    value: &T,
) -> Result<Created, PipelineError> {
    let body = serde_json::to_vec(value).expect("the gate's documents always serialize");
    let mut attempt = 1;
    loop {
        let sent = s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .if_none_match("*")
            .body(ByteStream::from(body.clone()))
            .send()
            .await;
        match sent {
            Ok(_) => return Ok(Created::Created),
            Err(err) if objects::is_precondition_failed(&err) => return Ok(Created::Exists),
            // The other writer's commit decides; asking again tells which one won.
            Err(err) if objects::is_conflict(&err) && attempt < CREATE_ATTEMPTS => attempt += 1,
            Err(err) => return Err(PipelineError::from_sdk("PutObject", err)),
        }
    }
}

/// Records read at the same time by [`read_each`].
const READ_CONCURRENCY: usize = 16;

/// Every record under `prefix` whose key ends with `suffix`, each read by `read_one` (which
/// checks it, and says `None` for one deleted since the listing), [`READ_CONCURRENCY`] at a time.
pub async fn read_each<T, F, Fut>(
    s3: &Client,
    bucket: &str,
    prefix: &str,
    suffix: &str,
    read_one: F,
) -> Result<Vec<T>, PipelineError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Option<T>, PipelineError>>,
{
    use futures::{StreamExt, TryStreamExt};
    let keys = list_keys(s3, bucket, prefix, suffix).await?;
    let found: Vec<Option<T>> = futures::stream::iter(keys)
        .map(read_one)
        .buffer_unordered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

/// Every key under `prefix` in `bucket` that ends with `suffix`, over as many listing pages as
/// there are.
pub async fn list_keys(
    s3: &Client,
    bucket: &str,
    prefix: &str,
    suffix: &str,
) -> Result<Vec<String>, PipelineError> {
    let mut keys = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| PipelineError::from_sdk("ListObjectsV2", err))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|object| object.key())
                .filter(|key| key.ends_with(suffix))
                .map(str::to_owned),
        );
    }
    Ok(keys)
}

/// The bytes of `bucket/key`, or `None` when there is no such object.
pub async fn read(s3: &Client, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, PipelineError> {
    let object = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(object) => object,
        Err(err)
            if err
                .as_service_error()
                .is_some_and(GetObjectError::is_no_such_key) =>
        {
            return Ok(None);
        }
        Err(err) => return Err(PipelineError::from_sdk("GetObject", err)),
    };
    // A connection dropped while the body streams is worth another try.
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|err| PipelineError::Transient {
            operation: "GetObject",
            message: format!("reading s3://{bucket}/{key} failed: {err}"),
            source: Box::new(err),
        })?;
    Ok(Some(bytes.into_bytes().to_vec()))
}

/// A name derived from `text`: its SHA-256 in hex. Fixed length, safe in any key, and it
/// reveals nothing of the text (a key, a task token).
pub fn hashed_name(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names_are_fixed_length_hex() {
        let name = hashed_name("../a key/with?odd&chars");
        assert_eq!(name.len(), 64);
        assert!(name.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            hashed_name("mystery.csv"),
            "6607676c1391adac677cd552c36e8fdf3784513ac5888e653ea8f5cd72572c61"
        );
    }
}
