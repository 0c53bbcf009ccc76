//! Moving one object between buckets without ever losing it: copy (pinned to the listed ETag,
//! metadata kept, tags set in the same request), then delete the source only if it is still the
//! version that was copied. A crash between the two leaves the object in both buckets, which a
//! retry repairs; it never leaves it in neither, nor untagged.

use aws_sdk_s3::Client;
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
use crate::tags::{self, Tag};

/// An object as a listing saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    /// The ETag, quotes included, exactly as S3 returned it.
    pub etag: String,
    pub size: u64,
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moved {
    /// Copied to the destination; the source is gone or was replaced by a newer version.
    Done { bytes: u64 },
    /// The source no longer has the listed ETag: it was overwritten. Nothing was copied.
    SourceChanged,
    /// The source no longer exists.
    SourceGone,
    /// S3 refused to copy this object (e.g. it is archived); it stays where it is.
    Refused(String),
}

/// What a conditional delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Done,
    /// The object was replaced after it was listed; the newer version stays.
    Changed,
    Gone,
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

    /// The object's tags, or `None` if it does not exist.
    pub async fn tags(&self, bucket: &str, key: &str) -> Result<Option<Vec<Tag>>, PipelineError> {
        match self
            .s3
            .get_object_tagging()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => Ok(Some(
                output
                    .tag_set()
                    .iter()
                    .map(|tag| Tag::new(tag.key(), tag.value()))
                    .collect(),
            )),
            Err(err) if is_no_such_key(&err) => Ok(None),
            Err(err) => Err(PipelineError::from_sdk("GetObjectTagging", err)),
        }
    }

    /// Copies `object` from `from` to `to` with exactly `tags`, then deletes the source if it
    /// is unchanged.
    pub async fn move_object(
        &self,
        from: &str,
        to: &str,
        object: &Listed,
        tags: &[Tag],
    ) -> Result<Moved, PipelineError> {
        let copied = if object.size > self.settings.multipart_threshold {
            self.copy_in_parts(from, to, object, tags).await?
        } else {
            self.copy_whole(from, to, object, tags).await?
        };
        if !matches!(copied, Moved::Done { .. }) {
            return Ok(copied);
        }
        match self
            .delete_if_unchanged(from, &object.key, &object.etag)
            .await?
        {
            Deleted::Done | Deleted::Gone => {}
            Deleted::Changed => warn!(
                bucket = from,
                key = object.key,
                "a newer version arrived after the copy; it stays for a later run"
            ),
        }
        Ok(copied)
    }

    /// Deletes `key` only if its ETag is still `etag` (S3 conditional delete).
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

    async fn copy_whole(
        &self,
        from: &str,
        to: &str,
        object: &Listed,
        tags: &[Tag],
    ) -> Result<Moved, PipelineError> {
        let result = self
            .s3
            .copy_object()
            .copy_source(copy_source(from, &object.key, None))
            .copy_source_if_match(&object.etag)
            .bucket(to)
            .key(&object.key)
            .metadata_directive(MetadataDirective::Copy)
            .tagging_directive(TaggingDirective::Replace)
            .tagging(tags::encode(tags))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Moved::Done { bytes: object.size }),
            Err(err) => copy_failure("CopyObject", err),
        }
    }

    /// Copies an object too large for CopyObject: UploadPartCopy with the source pinned to its
    /// ETag in every part, metadata and tags set when the upload is created. On any failure the
    /// upload is aborted so no partial object or stored parts remain.
    async fn copy_in_parts(
        &self,
        from: &str,
        to: &str,
        object: &Listed,
        tags: &[Tag],
    ) -> Result<Moved, PipelineError> {
        let head = match self
            .s3
            .head_object()
            .bucket(from)
            .key(&object.key)
            .if_match(&object.etag)
            .send()
            .await
        {
            Ok(head) => head,
            Err(err) => return copy_failure("HeadObject", err),
        };
        let mut create = self
            .s3
            .create_multipart_upload()
            .bucket(to)
            .key(&object.key)
            .set_metadata(head.metadata().cloned())
            .set_content_type(head.content_type().map(str::to_owned))
            .set_content_encoding(head.content_encoding().map(str::to_owned))
            .set_content_disposition(head.content_disposition().map(str::to_owned))
            .set_content_language(head.content_language().map(str::to_owned))
            .set_cache_control(head.cache_control().map(str::to_owned))
            .set_website_redirect_location(head.website_redirect_location().map(str::to_owned))
            .tagging(tags::encode(tags));
        if let Some(expires) = head.expires_string().and_then(|raw| {
            aws_smithy_types::DateTime::from_str(raw, aws_smithy_types::date_time::Format::HttpDate)
                .ok()
        }) {
            create = create.expires(expires);
        }
        let upload = create
            .send()
            .await
            .map_err(|err| PipelineError::from_sdk("CreateMultipartUpload", err))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();

        let outcome = self.copy_parts(from, to, object, &upload_id).await;
        match outcome {
            Ok(Some(parts)) => {
                let completed = self
                    .s3
                    .complete_multipart_upload()
                    .bucket(to)
                    .key(&object.key)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await;
                match completed {
                    Ok(_) => Ok(Moved::Done { bytes: object.size }),
                    Err(err) => {
                        self.abort(to, &object.key, &upload_id).await;
                        Err(PipelineError::from_sdk("CompleteMultipartUpload", err))
                    }
                }
            }
            Ok(None) => {
                self.abort(to, &object.key, &upload_id).await;
                Ok(Moved::SourceChanged)
            }
            Err(err) => {
                self.abort(to, &object.key, &upload_id).await;
                Err(err)
            }
        }
    }

    /// Copies every part; `None` if the source changed part-way.
    async fn copy_parts(
        &self,
        from: &str,
        to: &str,
        object: &Listed,
        upload_id: &str,
    ) -> Result<Option<Vec<CompletedPart>>, PipelineError> {
        let part_size = part_size(object.size, self.settings.part_size);
        let source = copy_source(from, &object.key, None);
        let ranges = (0..object.size.div_ceil(part_size)).map(|index| {
            let start = index * part_size;
            let end = (start + part_size).min(object.size) - 1;
            (index + 1, start, end)
        });
        let results: Vec<Option<CompletedPart>> = stream::iter(ranges)
            .map(|(number, start, end)| {
                let source = source.clone();
                async move {
                    let part_number = i32::try_from(number).expect("at most 10,000 parts");
                    match self
                        .s3
                        .upload_part_copy()
                        .bucket(to)
                        .key(&object.key)
                        .upload_id(upload_id)
                        .part_number(part_number)
                        .copy_source(source)
                        .copy_source_if_match(&object.etag)
                        .copy_source_range(format!("bytes={start}-{end}"))
                        .send()
                        .await
                    {
                        Ok(output) => Ok(Some(
                            CompletedPart::builder()
                                .part_number(part_number)
                                .set_e_tag(
                                    output
                                        .copy_part_result()
                                        .and_then(|part| part.e_tag())
                                        .map(str::to_owned),
                                )
                                .build(),
                        )),
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
        Ok(results.into_iter().collect())
    }

    /// Best effort: a failed abort leaves parts that the bucket's lifecycle rule removes.
    async fn abort(&self, bucket: &str, key: &str, upload_id: &str) {
        if let Err(err) = self
            .s3
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            warn!(
                bucket,
                key,
                error = %aws_smithy_types::error::display::DisplayErrorContext(&err),
                "could not abort a multipart copy; the lifecycle rule will remove its parts"
            );
        }
    }
}

/// The part size for an object: at least `preferred`, large enough for 10,000 parts.
pub fn part_size(object_size: u64, preferred: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    let needed = object_size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    preferred.max(needed)
}

fn copy_failure<E>(
    operation: &'static str,
    err: SdkError<E, HttpResponse>,
) -> Result<Moved, PipelineError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if is_precondition_failed(&err) {
        return Ok(Moved::SourceChanged);
    }
    if is_no_such_key(&err) {
        return Ok(Moved::SourceGone);
    }
    match err.code() {
        Some("ObjectNotInActiveTierError" | "InvalidObjectState") => Ok(Moved::Refused(
            "the object is in an archive storage class; restore it before the gate can move it"
                .into(),
        )),
        _ => Err(PipelineError::from_sdk(operation, err)),
    }
}

fn is_precondition_failed<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    err.code() == Some("PreconditionFailed") || http_status(err) == Some(412)
}

/// A missing key (but not a missing bucket, which is a configuration error).
fn is_no_such_key<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err.code() {
        Some("NoSuchKey" | "NotFound") => true,
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
