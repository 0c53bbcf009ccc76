//! S3 operations on single objects, each exactly as safe as a move needs: reads pinned to the
//! version the gate saw, copies conditional on both ends (the source pinned to its ETag and
//! version, the target with `If-None-Match: *` or `If-Match`), and deletes of exactly the version
//! copied. Nothing here decides where an object goes; [`placement`](crate::s3::placement) and
//! the steps do.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, MetadataDirective, TaggingDirective,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use futures::{StreamExt, TryStreamExt, stream};
use tracing::warn;

use crate::config::MoveSettings;
use crate::error::{PipelineError, http_status};
use crate::s3::copy_source::copy_source;
use crate::s3::landing::Landing;
use crate::tags::{self, Tag};

/// An object as a listing saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    /// The ETag, quotes included, exactly as S3 returned it.
    pub etag: String,
    pub size: u64,
}

/// One version of an object, as the gate last saw it: what a copy reads and a delete removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub key: String,
    /// Quotes included.
    pub etag: String,
    pub size: u64,
    /// Its id in a bucket that is or was versioned (`null` for a version written while it
    /// was not, which S3 accepts back); `None` where the bucket never kept versions.
    pub version_id: Option<String>,
}

impl Version {
    /// The current version of a listed object, its id not known yet.
    pub fn listed(object: &Listed) -> Self {
        Self {
            key: object.key.clone(),
            etag: object.etag.clone(),
            size: object.size,
            version_id: None,
        }
    }
}

/// What HeadObject said of one version.
#[derive(Debug, Clone)]
pub struct Head {
    pub version: Version,
    pub landing: Option<Landing>,
    output: HeadObjectOutput,
}

impl Head {
    pub fn metadata(&self) -> Option<&HashMap<String, String>> {
        self.output.metadata()
    }

    /// The KMS key an SSE-KMS object is encrypted with.
    pub fn kms_key(&self) -> Option<&str> {
        self.output.ssekms_key_id()
    }
}

/// What a read pinned to an ETag found.
#[derive(Debug, Clone)]
pub enum Found<T> {
    Found(T),
    /// The object (or that version) no longer exists.
    Gone,
    /// The object has another ETag now: it was replaced.
    Changed,
}

/// How a copy's metadata is set.
#[derive(Debug, Clone, Copy)]
pub enum Metadata<'a> {
    /// As the source has it (`COPY`), the landing record included.
    Kept,
    /// The source's headers with these user metadata (`REPLACE`): how intake adds the record.
    Replaced(&'a Head, &'a HashMap<String, String>),
}

/// What a copy expects at its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// No object: `If-None-Match: *`.
    Absent,
    /// Exactly this object (ETag, quotes included), which the gate means to replace: `If-Match`.
    Replacing(String),
}

/// What happened to one copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copied {
    /// Written; the new object's ETag and version id, and the version id of the source version
    /// S3 copied (where the source bucket is versioned).
    Done {
        etag: String,
        version_id: Option<String>,
        source_version_id: Option<String>,
        bytes: u64,
    },
    /// The source no longer has the ETag it was pinned to: it was overwritten.
    SourceChanged,
    /// The source no longer exists.
    SourceGone,
    /// S3 refused to copy this object (e.g. it is archived); it stays where it is.
    Refused(String),
    /// S3 could not use a KMS key for the copy on the caller's behalf (the source's to decrypt,
    /// or the target bucket's to encrypt); S3's message.
    KeyDenied(String),
    /// `Absent` was expected but an object is there.
    Taken,
    /// `Replacing` was expected but the target changed or went.
    TargetChanged,
}

/// What a delete of one version did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Done,
    /// The object was replaced after it was seen; the newer version stays.
    Changed,
    Gone,
}

/// A copy that raced another write to its target (409 `ConditionalRequestConflict`) is tried
/// this many times in all, then handed to the state machine's retry as a transient error.
const CONFLICT_ATTEMPTS: u32 = 4;

/// One attempt at a copy.
enum Attempt {
    Finished(Copied),
    Conflict,
}

/// S3 operations on objects, bounded by the move settings.
#[derive(Clone, Copy)]
pub struct Objects<'a> {
    s3: &'a Client,
    settings: &'a MoveSettings,
}

/// Most parts a multipart upload may have.
const MAX_PARTS: u64 = 10_000;
/// Parts of one object copied at the same time.
const PART_CONCURRENCY: usize = 4;

impl<'a> Objects<'a> {
    pub fn new(s3: &'a Client, settings: &'a MoveSettings) -> Self {
        Self { s3, settings }
    }

    /// A version's tags and its version id (`version_id: None` reads the current version).
    /// `None` if it does not exist.
    pub async fn tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<(Vec<Tag>, Option<String>)>, PipelineError> {
        match self
            .s3
            .get_object_tagging()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
        {
            Ok(output) => Ok(Some((
                output
                    .tag_set()
                    .iter()
                    .map(|tag| Tag::new(tag.key(), tag.value()))
                    .collect(),
                output.version_id().map(str::to_owned),
            ))),
            Err(err) if is_no_such_key(&err) => Ok(None),
            Err(err) => Err(PipelineError::from_sdk("GetObjectTagging", err)),
        }
    }

    /// HeadObject of `key` (its `version_id`, or the current one), pinned to `etag` if given.
    pub async fn head(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        etag: Option<&str>,
    ) -> Result<Found<Head>, PipelineError> {
        let result = self
            .s3
            .head_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_owned))
            .set_if_match(etag.map(str::to_owned))
            .send()
            .await;
        match result {
            Ok(output) => Ok(Found::Found(Head {
                version: Version {
                    key: key.to_owned(),
                    etag: output.e_tag().unwrap_or_default().to_owned(),
                    size: u64::try_from(output.content_length().unwrap_or(0)).unwrap_or(0),
                    version_id: output.version_id().map(str::to_owned),
                },
                landing: Landing::from_metadata(output.metadata()),
                output,
            })),
            Err(err) if is_precondition_failed(&err) => Ok(Found::Changed),
            Err(err) if is_no_such_key(&err) => Ok(Found::Gone),
            Err(err) => Err(PipelineError::from_sdk("HeadObject", err)),
        }
    }

    /// Copies `source` from `from` to `to`/`key` with exactly `tags`, if the target is as
    /// `target` expects. A copy that races another write to the target is tried again.
    #[allow(clippy::too_many_arguments)]
    pub async fn copy(
        &self,
        from: &str,
        source: &Version,
        to: &str,
        key: &str,
        tags: &[Tag],
        metadata: Metadata<'_>,
        target: &Target,
    ) -> Result<Copied, PipelineError> {
        for attempt in 1..=CONFLICT_ATTEMPTS {
            let outcome = if source.size > self.settings.multipart_threshold {
                self.copy_in_parts(from, source, to, key, tags, metadata, target)
                    .await?
            } else {
                self.copy_whole(from, source, to, key, tags, metadata, target)
                    .await?
            };
            match outcome {
                Attempt::Finished(copied @ (Copied::Taken | Copied::TargetChanged)) => {
                    return self.blame(from, source, copied).await;
                }
                Attempt::Finished(copied) => return Ok(copied),
                Attempt::Conflict => {
                    warn!(
                        bucket = to,
                        key, attempt, "a conditional copy raced another write"
                    );
                    tokio::time::sleep(Duration::from_millis(25 * u64::from(attempt))).await;
                }
            }
        }
        Err(PipelineError::Transient {
            operation: "CopyObject",
            message: format!(
                "s3://{to}/{key}: the conditional write conflicted with another write \
                 {CONFLICT_ATTEMPTS} times (ConditionalRequestConflict)"
            ),
            source: "ConditionalRequestConflict".into(),
        })
    }

    /// A copy refused by a condition: S3 answers 412 (or 404) whether the source or the target
    /// failed it, so the source is looked at again to tell.
    async fn blame(
        &self,
        from: &str,
        source: &Version,
        verdict: Copied,
    ) -> Result<Copied, PipelineError> {
        Ok(
            match self
                .head(
                    from,
                    &source.key,
                    source.version_id.as_deref(),
                    Some(&source.etag),
                )
                .await?
            {
                Found::Found(_) => verdict,
                Found::Gone => Copied::SourceGone,
                Found::Changed => Copied::SourceChanged,
            },
        )
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy_whole(
        &self,
        from: &str,
        source: &Version,
        to: &str,
        key: &str,
        tags: &[Tag],
        metadata: Metadata<'_>,
        target: &Target,
    ) -> Result<Attempt, PipelineError> {
        let mut request = self
            .s3
            .copy_object()
            .copy_source(copy_source(from, &source.key, source.version_id.as_deref()))
            .copy_source_if_match(&source.etag)
            .bucket(to)
            .key(key)
            .tagging_directive(TaggingDirective::Replace)
            .tagging(tags::encode(tags));
        request = match target {
            Target::Absent => request.if_none_match("*"),
            Target::Replacing(etag) => request.if_match(etag),
        };
        request = match metadata {
            Metadata::Kept => request.metadata_directive(MetadataDirective::Copy),
            Metadata::Replaced(head, user) => {
                let head = &head.output;
                request
                    .metadata_directive(MetadataDirective::Replace)
                    .set_metadata(Some(user.clone()))
                    .set_content_type(head.content_type().map(str::to_owned))
                    .set_content_encoding(head.content_encoding().map(str::to_owned))
                    .set_content_disposition(head.content_disposition().map(str::to_owned))
                    .set_content_language(head.content_language().map(str::to_owned))
                    .set_cache_control(head.cache_control().map(str::to_owned))
                    .set_website_redirect_location(
                        head.website_redirect_location().map(str::to_owned),
                    )
                    .set_expires(expires(head))
            }
        };
        match request.send().await {
            Ok(output) => Ok(Attempt::Finished(Copied::Done {
                etag: output
                    .copy_object_result()
                    .and_then(|result| result.e_tag())
                    .unwrap_or_default()
                    .to_owned(),
                version_id: output.version_id().map(str::to_owned),
                source_version_id: output.copy_source_version_id().map(str::to_owned),
                bytes: source.size,
            })),
            Err(err) => copy_failure("CopyObject", err, target),
        }
    }

    /// Copies an object too large for CopyObject: UploadPartCopy with the source pinned to its
    /// ETag and version in every part, metadata and tags set when the upload is created, the
    /// target condition checked when it completes. On any failure the upload is aborted so no
    /// partial object or stored parts remain.
    #[allow(clippy::too_many_arguments)]
    async fn copy_in_parts(
        &self,
        from: &str,
        source: &Version,
        to: &str,
        key: &str,
        tags: &[Tag],
        metadata: Metadata<'_>,
        target: &Target,
    ) -> Result<Attempt, PipelineError> {
        let fetched;
        let (head, user) = match metadata {
            Metadata::Replaced(head, user) => (head, Some(user.clone())),
            Metadata::Kept => {
                fetched = match self
                    .head(
                        from,
                        &source.key,
                        source.version_id.as_deref(),
                        Some(&source.etag),
                    )
                    .await?
                {
                    Found::Found(head) => head,
                    Found::Gone => return Ok(Attempt::Finished(Copied::SourceGone)),
                    Found::Changed => return Ok(Attempt::Finished(Copied::SourceChanged)),
                };
                let user = fetched.metadata().cloned();
                (&fetched, user)
            }
        };
        let output = &head.output;
        let upload = self
            .s3
            .create_multipart_upload()
            .bucket(to)
            .key(key)
            .set_metadata(user)
            .set_content_type(output.content_type().map(str::to_owned))
            .set_content_encoding(output.content_encoding().map(str::to_owned))
            .set_content_disposition(output.content_disposition().map(str::to_owned))
            .set_content_language(output.content_language().map(str::to_owned))
            .set_cache_control(output.cache_control().map(str::to_owned))
            .set_website_redirect_location(output.website_redirect_location().map(str::to_owned))
            .set_expires(expires(output))
            .tagging(tags::encode(tags))
            .send()
            .await
            .map_err(|err| PipelineError::from_sdk("CreateMultipartUpload", err))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();

        let (parts, source_version_id) =
            match self.copy_parts(from, source, to, key, &upload_id).await {
                Ok(Some(copied)) => copied,
                Ok(None) => {
                    self.abort(to, key, &upload_id).await;
                    return Ok(Attempt::Finished(Copied::SourceChanged));
                }
                Err(err) => {
                    self.abort(to, key, &upload_id).await;
                    return Err(err);
                }
            };
        let mut complete = self
            .s3
            .complete_multipart_upload()
            .bucket(to)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        complete = match target {
            Target::Absent => complete.if_none_match("*"),
            Target::Replacing(etag) => complete.if_match(etag),
        };
        match complete.send().await {
            Ok(output) => Ok(Attempt::Finished(Copied::Done {
                etag: output.e_tag().unwrap_or_default().to_owned(),
                version_id: output.version_id().map(str::to_owned),
                source_version_id,
                bytes: source.size,
            })),
            Err(err) => {
                // After a conflict S3 has ended the upload; the abort then finds none.
                self.abort(to, key, &upload_id).await;
                copy_failure("CompleteMultipartUpload", err, target)
            }
        }
    }

    /// Copies every part, with the source version they came from; `None` if the source changed
    /// part-way (a part failed its condition, or the parts came from different versions).
    async fn copy_parts(
        &self,
        from: &str,
        source: &Version,
        to: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<(Vec<CompletedPart>, Option<String>)>, PipelineError> {
        let part_size = part_size(source.size, self.settings.part_size);
        let copy_from = copy_source(from, &source.key, source.version_id.as_deref());
        let ranges = (0..source.size.div_ceil(part_size)).map(|index| {
            let start = index * part_size;
            let end = (start + part_size).min(source.size) - 1;
            (index + 1, start, end)
        });
        let results: Vec<Option<(CompletedPart, Option<String>)>> = stream::iter(ranges)
            .map(|(number, start, end)| {
                let copy_from = copy_from.clone();
                async move {
                    let part_number = i32::try_from(number).expect("at most 10,000 parts");
                    match self
                        .s3
                        .upload_part_copy()
                        .bucket(to)
                        .key(key)
                        .upload_id(upload_id)
                        .part_number(part_number)
                        .copy_source(copy_from)
                        .copy_source_if_match(&source.etag)
                        .copy_source_range(format!("bytes={start}-{end}"))
                        .send()
                        .await
                    {
                        Ok(output) => Ok(Some((
                            CompletedPart::builder()
                                .part_number(part_number)
                                .set_e_tag(
                                    output
                                        .copy_part_result()
                                        .and_then(|part| part.e_tag())
                                        .map(str::to_owned),
                                )
                                .build(),
                            output.copy_source_version_id().map(str::to_owned),
                        ))),
                        Err(err) if is_precondition_failed(&err) || is_no_such_key(&err) => {
                            Ok(None)
                        }
                        Err(err) => Err(PipelineError::from_sdk("UploadPartCopy", err)),
                    }
                }
            })
            .buffered(PART_CONCURRENCY.min(self.settings.concurrency))
            .try_collect()
            .await?;
        let Some(copied): Option<Vec<(CompletedPart, Option<String>)>> =
            results.into_iter().collect()
        else {
            return Ok(None);
        };
        let source_version_id = copied.first().and_then(|(_, version)| version.clone());
        if copied
            .iter()
            .any(|(_, version)| *version != source_version_id)
        {
            return Ok(None);
        }
        Ok(Some((
            copied.into_iter().map(|(part, _)| part).collect(),
            source_version_id,
        )))
    }

    /// Best effort: a failed abort leaves parts that the bucket's lifecycle rule removes.
    async fn abort(&self, bucket: &str, key: &str, upload_id: &str) {
        match self
            .s3
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => {}
            Err(err) if err.code() == Some("NoSuchUpload") => {}
            Err(err) => warn!(
                bucket,
                key,
                error = %aws_smithy_types::error::display::DisplayErrorContext(&err),
                "could not abort a multipart copy; the lifecycle rule will remove its parts"
            ),
        }
    }

    /// Deletes exactly `version`: by its id where the bucket is versioned (for good), else only
    /// if the key still has its ETag (S3 conditional delete).
    pub async fn delete(&self, bucket: &str, version: &Version) -> Result<Deleted, PipelineError> {
        match &version.version_id {
            Some(id) => {
                self.delete_version(bucket, &version.key, id).await?;
                Ok(Deleted::Done)
            }
            None => {
                self.delete_if_unchanged(bucket, &version.key, &version.etag)
                    .await
            }
        }
    }

    /// Deletes `key` only if its current version still has `etag`. In a versioned bucket this
    /// adds a delete marker and the version stays, noncurrent.
    pub async fn delete_if_unchanged(
        &self,
        bucket: &str,
        key: &str,
        etag: &str,
    ) -> Result<Deleted, PipelineError> {
        match self
            .s3
            .delete_object()
            .bucket(bucket)
            .key(key)
            .if_match(etag)
            .send()
            .await
        {
            Ok(_) => Ok(Deleted::Done),
            Err(err) if is_precondition_failed(&err) => Ok(Deleted::Changed),
            Err(err) if is_no_such_key(&err) => Ok(Deleted::Gone),
            Err(err) => Err(PipelineError::from_sdk("DeleteObject", err)),
        }
    }

    /// Deletes one version of `key` for good. A version that is gone already is no error.
    pub async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<(), PipelineError> {
        self.s3
            .delete_object()
            .bucket(bucket)
            .key(key)
            .version_id(version_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| PipelineError::from_sdk("DeleteObject", err))
    }
}

fn expires(head: &HeadObjectOutput) -> Option<aws_smithy_types::DateTime> {
    head.expires_string().and_then(|raw| {
        aws_smithy_types::DateTime::from_str(raw, aws_smithy_types::date_time::Format::HttpDate)
            .ok()
    })
}

/// The part size for an object: at least `preferred`, large enough for 10,000 parts.
pub fn part_size(object_size: u64, preferred: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    let needed = object_size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    preferred.max(needed)
}

/// What a failed copy means. A 412 or 404 may be the source's as well as the target's: the
/// target's verdict is given here and [`Objects::blame`] checks the source.
fn copy_failure<E>(
    operation: &'static str,
    err: SdkError<E, HttpResponse>,
    target: &Target,
) -> Result<Attempt, PipelineError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if is_conflict(&err) {
        return Ok(Attempt::Conflict);
    }
    let finished = |copied| Ok(Attempt::Finished(copied));
    if is_precondition_failed(&err) {
        return finished(match target {
            // Both conditions answer 412; the caller looks at the source again to tell.
            Target::Absent => Copied::Taken,
            Target::Replacing(_) => Copied::TargetChanged,
        });
    }
    if is_no_such_key(&err) {
        return finished(match target {
            // An If-Match on a missing target is 404 as well.
            Target::Replacing(_) => Copied::TargetChanged,
            Target::Absent => Copied::SourceGone,
        });
    }
    if let Some(message) = kms_denial(&err) {
        return finished(Copied::KeyDenied(message));
    }
    match err.code() {
        Some("ObjectNotInActiveTierError" | "InvalidObjectState") => finished(Copied::Refused(
            "the object is in an archive storage class; restore it before the gate can move it"
                .into(),
        )),
        _ => Err(PipelineError::from_sdk(operation, err)),
    }
}

/// S3's message when it was denied a KMS key on the caller's behalf: `AccessDenied`, naming a
/// `kms:` action (S3 reports KMS's refusal as its own access denial).
pub(crate) fn kms_denial<E: ProvideErrorMetadata>(
    err: &SdkError<E, HttpResponse>,
) -> Option<String> {
    let message = err.message()?;
    (err.code() == Some("AccessDenied")
        && (message.contains("kms:Decrypt") || message.contains("kms:GenerateDataKey")))
    .then(|| message.to_owned())
}

pub(crate) fn is_conflict<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    err.code() == Some("ConditionalRequestConflict") || http_status(err) == Some(409)
}

pub(crate) fn is_precondition_failed<E: ProvideErrorMetadata>(
    err: &SdkError<E, HttpResponse>,
) -> bool {
    err.code() == Some("PreconditionFailed") || http_status(err) == Some(412)
}

/// A missing key or version (but not a missing bucket, which is a configuration error).
fn is_no_such_key<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err.code() {
        Some("NoSuchKey" | "NotFound" | "NoSuchVersion") => true,
        Some(_) => false,
        // HEAD responses have no body, so only the status tells.
        None => http_status(err) == Some(404),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_grows_so_no_object_needs_more_than_ten_thousand_parts() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(part_size(6 * 1024 * MIB, 512 * MIB), 512 * MIB);
        let five_tib = 5 * 1024 * 1024 * MIB;
        let size = part_size(five_tib, 512 * MIB);
        assert!(five_tib.div_ceil(size) <= MAX_PARTS);
        assert_eq!(size % MIB, 0);
    }
}
