//! The S3 operations the gate, the AWS CLI and the tests use, on top of [`Store`]. The `s3s`
//! crate does the protocol (routing, XML, headers); this maps each operation onto the store with
//! S3's semantics: metadata and tagging directives, ETag conditions on sources and conditional
//! writes on targets (`If-None-Match: *`, `If-Match`), versioning (version ids on reads, copies,
//! tags and deletes, delete markers, ListObjectVersions), tag limits, listing pagination with
//! `encoding-type=url`, multipart uploads and part copies.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use tokio_util::io::ReaderStream;

use macie_pipeline::tags::{self, MAX_KEY_CHARS, MAX_TAGS, Tag as GateTag};

use crate::kms::Kms;
use crate::s3::encryption;
use crate::s3::store::{
    Attributes, DefaultEncryption, Entry, Listing, Match, ObjectMeta, Store, StoreError,
    Versioning, WriteCondition,
};

/// The S3 service over a store.
#[derive(Clone)]
pub struct LocalS3 {
    store: Arc<Store>,
    kms: Arc<Kms>,
}

/// S3's 400 for a key it cannot use (`KMS.NotFoundException`, `KMS.DisabledException`, ...).
fn kms_error(code: String, message: String) -> S3Error {
    let mut error = S3Error::with_message(S3ErrorCode::Custom(code.into()), message);
    error.set_status_code(http::StatusCode::BAD_REQUEST);
    error
}

/// The encryption headers of a response about an object: SSE-KMS with its key, or SSE-S3.
fn sse_of(attributes: &Attributes) -> (Option<ServerSideEncryption>, Option<String>, Option<bool>) {
    match &attributes.kms_key_id {
        Some(key) => (
            Some(ServerSideEncryption::from_static(
                ServerSideEncryption::AWS_KMS,
            )),
            Some(key.clone()),
            attributes.kms_bucket_key.then_some(true),
        ),
        None => (
            Some(ServerSideEncryption::from_static(
                ServerSideEncryption::AES256,
            )),
            None,
            None,
        ),
    }
}

impl LocalS3 {
    pub fn new(store: Arc<Store>, kms: Arc<Kms>) -> Self {
        Self { store, kms }
    }

    /// The key a write to `bucket` is encrypted with (see [`encryption::for_write`]).
    fn write_key(
        &self,
        bucket: &str,
        sse: Option<&ServerSideEncryption>,
        key: Option<&str>,
        bucket_key: Option<bool>,
    ) -> S3Result<Option<encryption::WriteKey>> {
        encryption::for_write(
            &self.store,
            &self.kms,
            bucket,
            sse.map(ServerSideEncryption::as_str),
            key,
            bucket_key,
        )
        .map_err(|err| {
            let mut error =
                S3Error::with_message(S3ErrorCode::Custom(err.code.into()), err.message);
            error.set_status_code(http::StatusCode::BAD_REQUEST);
            error
        })
    }

    /// The `x-amz-version-id` to report for `meta` in `bucket`.
    fn version_of(&self, bucket: &str, meta: &ObjectMeta) -> Option<String> {
        let versioning = self.store.versioning(bucket).unwrap_or_default();
        version_header(meta.version_id.as_deref(), versioning)
    }
}

fn map_error(err: StoreError) -> S3Error {
    match err {
        StoreError::NoSuchBucket => s3_error!(NoSuchBucket),
        StoreError::BucketExists => s3_error!(BucketAlreadyOwnedByYou),
        StoreError::BucketNotEmpty => s3_error!(BucketNotEmpty),
        StoreError::NoSuchKey => s3_error!(NoSuchKey),
        StoreError::NoSuchVersion => {
            s3_error!(NoSuchVersion, "The specified version does not exist.")
        }
        StoreError::MethodNotAllowed => s3_error!(
            MethodNotAllowed,
            "The specified method is not allowed against this resource."
        ),
        StoreError::PreconditionFailed => s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        ),
        StoreError::ConditionalConflict => s3_error!(
            ConditionalRequestConflict,
            "A conflicting operation occurred. If using PutObject you can retry the request. If using multipart upload you should initiate another CreateMultipartUpload request and re-upload each part."
        ),
        StoreError::InvalidVersioning(message) => s3_error!(MalformedXML, "{message}"),
        StoreError::NoSuchUpload => s3_error!(NoSuchUpload),
        StoreError::InvalidPart(message) => s3_error!(InvalidPart, "{message}"),
        StoreError::EntityTooSmall(part) => s3_error!(
            EntityTooSmall,
            "Part {part} is smaller than the minimum allowed size"
        ),
        StoreError::InvalidRange => s3_error!(InvalidRange),
        StoreError::Io(err) => s3_error!(err, InternalError),
    }
}

fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

fn millis(at: Timestamp) -> i64 {
    i64::try_from(time::OffsetDateTime::from(at).unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn etag(meta: &ObjectMeta) -> ETag {
    ETag::Strong(meta.etag.clone())
}

fn condition(value: Option<ETagCondition>) -> Option<Match> {
    value.map(|condition| match condition {
        ETagCondition::Any => Match::Any,
        ETagCondition::ETag(tag) => Match::ETag(tag.into_value()),
    })
}

/// A write's condition on its target: `If-None-Match: *` or `If-Match: <etag>`, as S3 takes
/// them on PutObject, CopyObject and CompleteMultipartUpload.
fn write_condition(
    if_match: Option<ETagCondition>,
    if_none_match: Option<ETagCondition>,
) -> S3Result<Option<WriteCondition>> {
    match (if_match, if_none_match) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(s3_error!(
            NotImplemented,
            "A header you provided implies functionality that is not implemented: If-Match and If-None-Match together"
        )),
        (None, Some(ETagCondition::Any)) => Ok(Some(WriteCondition::IfAbsent)),
        (Some(ETagCondition::ETag(tag)), None) => {
            Ok(Some(WriteCondition::IfMatch(tag.into_value())))
        }
        (None, Some(ETagCondition::ETag(_))) | (Some(ETagCondition::Any), None) => Err(s3_error!(
            NotImplemented,
            "A header you provided implies functionality that is not implemented: If-None-Match takes only *, If-Match an ETag"
        )),
    }
}

/// A header the s3s request model does not carry for this operation (CopyObject's target
/// conditions), parsed as the others are.
fn header_condition(headers: &http::HeaderMap, name: &str) -> S3Result<Option<ETagCondition>> {
    headers
        .get(name)
        .map(|value| {
            let text = value
                .to_str()
                .map_err(|_| s3_error!(InvalidArgument, "{name} is not valid text"))?;
            Ok(if text.trim() == "*" {
                ETagCondition::Any
            } else {
                ETagCondition::ETag(ETag::Strong(text.trim().trim_matches('"').to_owned()))
            })
        })
        .transpose()
}

/// The `x-amz-version-id` of a version: its id in a bucket that is or was versioned, `null`
/// for its null version there, and nothing in a bucket that never was.
fn version_header(meta_version: Option<&str>, versioning: Versioning) -> Option<String> {
    match (meta_version, versioning) {
        (Some(id), _) => Some(id.to_owned()),
        (None, Versioning::Unversioned) => None,
        (None, _) => Some("null".to_owned()),
    }
}

/// Archived objects cannot be read or copied until restored.
fn archived(meta: &ObjectMeta) -> bool {
    matches!(
        meta.attributes.storage_class.as_deref(),
        Some("GLACIER" | "DEEP_ARCHIVE")
    )
}

fn archived_error() -> S3Error {
    s3_error!(
        InvalidObjectState,
        "The operation is not valid for the object's storage class"
    )
}

/// Checks tags against S3's limits.
fn check_tags(tags: &[GateTag]) -> S3Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(s3_error!(
            InvalidTag,
            "Object tags cannot be greater than {MAX_TAGS}"
        ));
    }
    for (index, tag) in tags.iter().enumerate() {
        let key_chars = tag.key.chars().count();
        if key_chars == 0 || key_chars > MAX_KEY_CHARS {
            return Err(s3_error!(
                InvalidTag,
                "The TagKey you have provided is invalid"
            ));
        }
        if tags[..index].iter().any(|other| other.key == tag.key) {
            return Err(s3_error!(
                InvalidTag,
                "Cannot provide multiple Tags with the same key"
            ));
        }
        if tags::validate_value(&tag.key).is_err() || tags::validate_value(&tag.value).is_err() {
            return Err(s3_error!(
                InvalidTag,
                "The TagValue you have provided is invalid"
            ));
        }
    }
    Ok(())
}

fn header_tags(header: Option<String>) -> S3Result<Vec<GateTag>> {
    let tags = match header {
        None => Vec::new(),
        Some(encoded) => tags::decode(&encoded).map_err(|err| s3_error!(InvalidTag, "{err}"))?,
    };
    check_tags(&tags)?;
    Ok(tags)
}

fn tag_set(tags: &[GateTag]) -> TagSet {
    tags.iter()
        .map(|tag| Tag {
            key: Some(tag.key.clone()),
            value: Some(tag.value.clone()),
        })
        .collect()
}

/// Characters S3 leaves as they are when a listing asks for `encoding-type=url`.
const LISTED_KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

struct Encoder(bool);

impl Encoder {
    fn apply(&self, text: String) -> String {
        if self.0 {
            utf8_percent_encode(&text, LISTED_KEY).to_string()
        } else {
            text
        }
    }
}

fn listed_object(meta: &ObjectMeta, encoder: &Encoder) -> Object {
    Object {
        key: Some(encoder.apply(meta.key.clone())),
        e_tag: Some(etag(meta)),
        size: Some(i64::try_from(meta.size).unwrap_or(i64::MAX)),
        last_modified: Some(timestamp(meta.last_modified_ms)),
        storage_class: Some(ObjectStorageClass::from(
            meta.attributes
                .storage_class
                .clone()
                .unwrap_or_else(|| "STANDARD".to_owned()),
        )),
        ..Default::default()
    }
}

/// The objects and common prefixes of a listing page, encoded as the request asked.
fn listed(listing: &Listing, encoder: &Encoder) -> (Vec<Object>, Vec<CommonPrefix>) {
    let objects = listing
        .objects
        .iter()
        .map(|m| listed_object(m, encoder))
        .collect();
    let prefixes = listing
        .common_prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: Some(encoder.apply(p.clone())),
        })
        .collect();
    (objects, prefixes)
}

fn token_for(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn key_from_token(token: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

fn parse_copy_range(range: &str) -> S3Result<(u64, u64)> {
    let invalid = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last"
        )
    };
    let (first, last) = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(invalid)?;
    Ok((
        first.parse().map_err(|_| invalid())?,
        last.parse().map_err(|_| invalid())?,
    ))
}

fn copy_source(source: &CopySource) -> S3Result<(String, String, Option<String>)> {
    match source {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => Ok((
            bucket.to_string(),
            key.to_string(),
            version_id.as_deref().map(str::to_owned),
        )),
        _ => Err(s3_error!(
            NotImplemented,
            "Access point copy sources are not supported locally"
        )),
    }
}

#[async_trait::async_trait]
impl S3 for LocalS3 {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.store
            .create_bucket(&req.input.bucket)
            .map_err(map_error)?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{}", req.input.bucket)),
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.store
            .delete_bucket(&req.input.bucket)
            .map_err(map_error)?;
        Ok(S3Response::new(DeleteBucketOutput::default()))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        if !self.store.bucket_exists(&req.input.bucket) {
            return Err(s3_error!(NoSuchBucket));
        }
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        if !self.store.bucket_exists(&req.input.bucket) {
            return Err(s3_error!(NoSuchBucket));
        }
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let buckets = self
            .store
            .buckets()
            .into_iter()
            .map(|(name, created)| Bucket {
                name: Some(name),
                creation_date: Some(timestamp(created)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            ..Default::default()
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        let tags = header_tags(input.tagging)?;
        let target = write_condition(input.if_match, input.if_none_match)?;
        let body = input.body.ok_or_else(|| s3_error!(IncompleteBody))?;
        let write_key = self.write_key(
            &input.bucket,
            input.server_side_encryption.as_ref(),
            input.ssekms_key_id.as_deref(),
            input.bucket_key_enabled,
        )?;
        let attributes = Attributes {
            content_type: input.content_type,
            content_encoding: input.content_encoding,
            content_disposition: input.content_disposition,
            content_language: input.content_language,
            cache_control: input.cache_control,
            expires_ms: input.expires.map(millis),
            website_redirect_location: input.website_redirect_location,
            storage_class: input.storage_class.map(|c| c.as_str().to_owned()),
            metadata: input.metadata.unwrap_or_default().into_iter().collect(),
            kms_bucket_key: write_key.as_ref().is_some_and(|k| k.bucket_key),
            kms_key_id: write_key.map(|k| k.arn),
        };
        let meta = self
            .store
            .put(&input.bucket, &input.key, body, attributes, tags, target)
            .await
            .map_err(map_error)?;
        let (server_side_encryption, ssekms_key_id, bucket_key_enabled) = sse_of(&meta.attributes);
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(etag(&meta)),
            version_id: self.version_of(&input.bucket, &meta),
            server_side_encryption,
            ssekms_key_id,
            bucket_key_enabled,
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let (meta, file) = self
            .store
            .open_version(&input.bucket, &input.key, input.version_id.as_deref())
            .map_err(map_error)?;
        if let Some(expected) = condition(input.if_match)
            && expected != Match::Any
            && expected != Match::ETag(meta.etag.clone())
        {
            return Err(map_error(StoreError::PreconditionFailed));
        }
        if archived(&meta) {
            return Err(archived_error());
        }
        // Reading decrypts with the object's key, which must still be usable.
        if let Some(key) = &meta.attributes.kms_key_id
            && let Err(err) = self.kms.usable(key)
        {
            return Err(kms_error(format!("KMS.{}", err.code()), err.to_string()));
        }
        let mut file = tokio::fs::File::from_std(file);
        let (start, length, content_range) = match input.range {
            None => (0, meta.size, None),
            Some(range) => {
                let range = range
                    .check(meta.size)
                    .map_err(|_| s3_error!(InvalidRange))?;
                let content_range =
                    format!("bytes {}-{}/{}", range.start, range.end - 1, meta.size);
                (range.start, range.end - range.start, Some(content_range))
            }
        };
        tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(start))
            .await
            .map_err(|err| s3_error!(err, InternalError))?;
        let reader = tokio::io::AsyncReadExt::take(file, length);
        let body = StreamingBlob::wrap(ReaderStream::with_capacity(reader, 64 * 1024));
        let attributes = &meta.attributes;
        let (server_side_encryption, ssekms_key_id, bucket_key_enabled) = sse_of(attributes);
        Ok(S3Response::new(GetObjectOutput {
            body: Some(body),
            content_length: Some(i64::try_from(length).unwrap_or(i64::MAX)),
            content_range,
            accept_ranges: Some("bytes".into()),
            e_tag: Some(etag(&meta)),
            last_modified: Some(timestamp(meta.last_modified_ms)),
            content_type: attributes.content_type.clone(),
            content_encoding: attributes.content_encoding.clone(),
            content_disposition: attributes.content_disposition.clone(),
            content_language: attributes.content_language.clone(),
            cache_control: attributes.cache_control.clone(),
            expires: attributes.expires_ms.map(timestamp),
            website_redirect_location: attributes.website_redirect_location.clone(),
            metadata: Some(attributes.metadata.clone().into_iter().collect()),
            tag_count: (!meta.tags.is_empty()).then(|| i32::try_from(meta.tags.len()).unwrap_or(0)),
            storage_class: attributes.storage_class.clone().map(StorageClass::from),
            version_id: self.version_of(&input.bucket, &meta),
            server_side_encryption,
            ssekms_key_id,
            bucket_key_enabled,
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let meta = self
            .store
            .head_version(&input.bucket, &input.key, input.version_id.as_deref())
            .map_err(map_error)?;
        if let Some(expected) = condition(input.if_match)
            && expected != Match::Any
            && expected != Match::ETag(meta.etag.clone())
        {
            return Err(map_error(StoreError::PreconditionFailed));
        }
        let attributes = &meta.attributes;
        let (server_side_encryption, ssekms_key_id, bucket_key_enabled) = sse_of(attributes);
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(i64::try_from(meta.size).unwrap_or(i64::MAX)),
            accept_ranges: Some("bytes".into()),
            e_tag: Some(etag(&meta)),
            last_modified: Some(timestamp(meta.last_modified_ms)),
            content_type: attributes.content_type.clone(),
            content_encoding: attributes.content_encoding.clone(),
            content_disposition: attributes.content_disposition.clone(),
            content_language: attributes.content_language.clone(),
            cache_control: attributes.cache_control.clone(),
            expires: attributes.expires_ms.map(timestamp),
            website_redirect_location: attributes.website_redirect_location.clone(),
            metadata: Some(attributes.metadata.clone().into_iter().collect()),
            storage_class: attributes.storage_class.clone().map(StorageClass::from),
            version_id: self.version_of(&input.bucket, &meta),
            server_side_encryption,
            ssekms_key_id,
            bucket_key_enabled,
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        let deletion = self
            .store
            .delete(
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
                condition(input.if_match).as_ref(),
            )
            .map_err(map_error)?;
        let versioning = self.store.versioning(&input.bucket).map_err(map_error)?;
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: deletion.delete_marker.then_some(true),
            version_id: version_header(deletion.version_id.as_deref(), versioning)
                .filter(|_| deletion.delete_marker || input.version_id.is_some()),
            ..Default::default()
        }))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        let versioning = self.store.versioning(&input.bucket).map_err(map_error)?;
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for object in input.delete.objects {
            let matcher = object.e_tag.map(|tag| Match::ETag(tag.into_value()));
            match self.store.delete(
                &input.bucket,
                &object.key,
                object.version_id.as_deref(),
                matcher.as_ref(),
            ) {
                Ok(deletion) => {
                    let version = version_header(deletion.version_id.as_deref(), versioning);
                    let added_marker = deletion.delete_marker && object.version_id.is_none();
                    deleted.push(DeletedObject {
                        key: Some(object.key),
                        delete_marker: deletion.delete_marker.then_some(true),
                        delete_marker_version_id: added_marker.then(|| version.clone()).flatten(),
                        version_id: object.version_id,
                    })
                }
                Err(StoreError::NoSuchBucket) => return Err(s3_error!(NoSuchBucket)),
                Err(err) => {
                    let error = map_error(err);
                    errors.push(Error {
                        key: Some(object.key),
                        code: Some(error.code().as_str().to_owned()),
                        message: error.message().map(str::to_owned),
                        ..Default::default()
                    });
                }
            }
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: (!quiet).then_some(deleted),
            errors: Some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        // s3s 0.14 does not model CopyObject's target conditions; the headers are S3's.
        let target = write_condition(
            header_condition(&req.headers, "if-match")?,
            header_condition(&req.headers, "if-none-match")?,
        )?;
        let input = req.input;
        let (source_bucket, source_key, source_version) = copy_source(&input.copy_source)?;
        let replace_metadata = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let replace_tags = input
            .tagging_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == TaggingDirective::REPLACE);
        let new_tags = if replace_tags {
            Some(header_tags(input.tagging)?)
        } else {
            None
        };
        let storage_class = input.storage_class.map(|c| c.as_str().to_owned());
        if source_bucket == input.bucket
            && source_key == input.key
            && source_version.is_none()
            && !replace_metadata
            && !replace_tags
            && storage_class.is_none()
        {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let source_meta = self
            .store
            .head_version(&source_bucket, &source_key, source_version.as_deref())
            .map_err(map_error)?;
        if archived(&source_meta) {
            return Err(archived_error());
        }
        let write_key = self.write_key(
            &input.bucket,
            input.server_side_encryption.as_ref(),
            input.ssekms_key_id.as_deref(),
            input.bucket_key_enabled,
        )?;
        let requested = Attributes {
            content_type: input.content_type,
            content_encoding: input.content_encoding,
            content_disposition: input.content_disposition,
            content_language: input.content_language,
            cache_control: input.cache_control,
            expires_ms: input.expires.map(millis),
            website_redirect_location: input.website_redirect_location,
            storage_class: storage_class.clone(),
            metadata: input.metadata.unwrap_or_default().into_iter().collect(),
            kms_key_id: None,
            kms_bucket_key: false,
        };
        let (copied, meta) = self
            .store
            .copy(
                (&source_bucket, &source_key, source_version.as_deref()),
                condition(input.copy_source_if_match).as_ref(),
                (&input.bucket, &input.key),
                target.as_ref(),
                |source| {
                    let mut attributes = if replace_metadata {
                        requested
                    } else {
                        source.attributes.clone()
                    };
                    // A copy is stored as STANDARD unless it asks for another class.
                    attributes.storage_class = storage_class;
                    // Encryption is the copy's own (its headers, else the target bucket's
                    // default), never the source's, as in S3.
                    attributes.kms_bucket_key = write_key.as_ref().is_some_and(|k| k.bucket_key);
                    attributes.kms_key_id = write_key.map(|k| k.arn);
                    let tags = new_tags.unwrap_or_else(|| source.tags.clone());
                    (attributes, tags)
                },
            )
            .map_err(map_error)?;
        let (server_side_encryption, ssekms_key_id, bucket_key_enabled) = sse_of(&meta.attributes);
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&meta)),
                last_modified: Some(timestamp(meta.last_modified_ms)),
                ..Default::default()
            }),
            copy_source_version_id: self.version_of(&source_bucket, &copied),
            version_id: self.version_of(&input.bucket, &meta),
            server_side_encryption,
            ssekms_key_id,
            bucket_key_enabled,
            ..Default::default()
        }))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let encoder = Encoder(
            input
                .encoding_type
                .as_ref()
                .is_some_and(|e| e.as_str() == EncodingType::URL),
        );
        let max_keys = input.max_keys.unwrap_or(1000).clamp(0, 1000);
        let prefix = input.prefix.clone().unwrap_or_default();
        let listing = self
            .store
            .list_versions(
                &input.bucket,
                &prefix,
                input.key_marker.as_deref(),
                input.version_id_marker.as_deref(),
                input.delimiter.as_deref(),
                usize::try_from(max_keys).unwrap_or(0),
            )
            .map_err(map_error)?;
        let versioning = self.store.versioning(&input.bucket).map_err(map_error)?;
        let mut versions = Vec::new();
        let mut delete_markers = Vec::new();
        for (entry, latest) in &listing.entries {
            let version_id =
                version_header(entry.version_id(), versioning).or_else(|| Some("null".to_owned()));
            match entry {
                Entry::Object(meta) => versions.push(ObjectVersion {
                    e_tag: Some(etag(meta)),
                    is_latest: Some(*latest),
                    key: Some(encoder.apply(meta.key.clone())),
                    last_modified: Some(timestamp(meta.last_modified_ms)),
                    size: Some(i64::try_from(meta.size).unwrap_or(i64::MAX)),
                    storage_class: Some(ObjectVersionStorageClass::from(
                        meta.attributes
                            .storage_class
                            .clone()
                            .unwrap_or_else(|| "STANDARD".to_owned()),
                    )),
                    version_id,
                    ..Default::default()
                }),
                Entry::DeleteMarker(marker) => delete_markers.push(DeleteMarkerEntry {
                    is_latest: Some(*latest),
                    key: Some(encoder.apply(marker.key.clone())),
                    last_modified: Some(timestamp(marker.last_modified_ms)),
                    version_id,
                    ..Default::default()
                }),
            }
        }
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(encoder.apply(prefix)),
            delimiter: input.delimiter.map(|d| encoder.apply(d)),
            max_keys: Some(max_keys),
            is_truncated: Some(listing.truncated),
            key_marker: input.key_marker.map(|k| encoder.apply(k)),
            version_id_marker: input.version_id_marker,
            next_key_marker: listing.next_key_marker.map(|k| encoder.apply(k)),
            next_version_id_marker: listing.next_version_id_marker,
            encoding_type: input.encoding_type,
            versions: Some(versions),
            delete_markers: Some(delete_markers),
            common_prefixes: Some(
                listing
                    .common_prefixes
                    .into_iter()
                    .map(|p| CommonPrefix {
                        prefix: Some(encoder.apply(p)),
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let encryption = self
            .store
            .encryption(&req.input.bucket)
            .map_err(map_error)?
            .unwrap_or_default();
        let by_default = ServerSideEncryptionByDefault {
            sse_algorithm: ServerSideEncryption::from_static(if encryption.kms_key.is_some() {
                ServerSideEncryption::AWS_KMS
            } else {
                ServerSideEncryption::AES256
            }),
            kms_master_key_id: encryption.kms_key,
        };
        Ok(S3Response::new(GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration {
                rules: vec![ServerSideEncryptionRule {
                    apply_server_side_encryption_by_default: Some(by_default),
                    bucket_key_enabled: Some(encryption.bucket_key),
                }],
            }),
        }))
    }

    /// The key of a default SSE-KMS must exist (S3 checks it on the first write; locally it is
    /// checked here, so a typo fails where it was made).
    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let input = req.input;
        let rule = input
            .server_side_encryption_configuration
            .rules
            .first()
            .ok_or_else(|| {
                s3_error!(
                    MalformedXML,
                    "a ServerSideEncryptionConfiguration needs a Rule"
                )
            })?;
        let by_default = rule.apply_server_side_encryption_by_default.as_ref();
        let encryption = match by_default.map(|d| d.sse_algorithm.as_str()) {
            None | Some(ServerSideEncryption::AES256) => None,
            Some(ServerSideEncryption::AWS_KMS) => {
                let key = by_default
                    .and_then(|d| d.kms_master_key_id.as_deref())
                    .ok_or_else(|| {
                        s3_error!(
                            InvalidArgument,
                            "the local stack serves SSE-KMS with a named key only (not aws/s3): give KMSMasterKeyID"
                        )
                    })?;
                let arn = self.kms.usable(key).map_err(|err| {
                    s3_error!(
                        InvalidArgument,
                        "KMSMasterKeyID {key} cannot be used: {err}"
                    )
                })?;
                Some(DefaultEncryption {
                    kms_key: Some(arn),
                    bucket_key: rule.bucket_key_enabled.unwrap_or(false),
                })
            }
            Some(other) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "The encryption method specified is not supported: {other}"
                ));
            }
        };
        self.store
            .set_encryption(&input.bucket, encryption)
            .map_err(map_error)?;
        Ok(S3Response::new(PutBucketEncryptionOutput::default()))
    }

    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        self.store
            .set_encryption(&req.input.bucket, None)
            .map_err(map_error)?;
        Ok(S3Response::new(DeleteBucketEncryptionOutput::default()))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let status = match self
            .store
            .versioning(&req.input.bucket)
            .map_err(map_error)?
        {
            Versioning::Unversioned => None,
            Versioning::Enabled => Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::ENABLED,
            )),
            Versioning::Suspended => Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::SUSPENDED,
            )),
        };
        Ok(S3Response::new(GetBucketVersioningOutput {
            status,
            ..Default::default()
        }))
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let input = req.input;
        let versioning = match input
            .versioning_configuration
            .status
            .as_ref()
            .map(BucketVersioningStatus::as_str)
        {
            Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "The versioning status must be Enabled or Suspended"
                ));
            }
        };
        self.store
            .set_versioning(&input.bucket, versioning)
            .map_err(map_error)?;
        Ok(S3Response::new(PutBucketVersioningOutput::default()))
    }

    /// Only `EventBridgeConfiguration` is served: the gate's arrival trigger needs it, and a
    /// configuration with topic, queue or Lambda destinations is refused rather than ignored.
    async fn get_bucket_notification_configuration(
        &self,
        req: S3Request<GetBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketNotificationConfigurationOutput>> {
        let on = self
            .store
            .eventbridge(&req.input.bucket)
            .map_err(map_error)?;
        Ok(S3Response::new(GetBucketNotificationConfigurationOutput {
            event_bridge_configuration: on.then(EventBridgeConfiguration::default),
            ..Default::default()
        }))
    }

    async fn put_bucket_notification_configuration(
        &self,
        req: S3Request<PutBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketNotificationConfigurationOutput>> {
        let configuration = &req.input.notification_configuration;
        let destinations = [
            configuration
                .topic_configurations
                .as_ref()
                .map_or(0, Vec::len),
            configuration
                .queue_configurations
                .as_ref()
                .map_or(0, Vec::len),
            configuration
                .lambda_function_configurations
                .as_ref()
                .map_or(0, Vec::len),
        ];
        if destinations.iter().any(|n| *n > 0) {
            return Err(s3_error!(
                NotImplemented,
                "The local S3 sends events to EventBridge only (EventBridgeConfiguration)"
            ));
        }
        self.store
            .set_eventbridge(
                &req.input.bucket,
                configuration.event_bridge_configuration.is_some(),
            )
            .map_err(map_error)?;
        Ok(S3Response::new(
            PutBucketNotificationConfigurationOutput::default(),
        ))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let encoder = Encoder(
            input
                .encoding_type
                .as_ref()
                .is_some_and(|e| e.as_str() == EncodingType::URL),
        );
        let max_keys = input.max_keys.unwrap_or(1000).clamp(0, 1000);
        let prefix = input.prefix.clone().unwrap_or_default();
        let after = match &input.continuation_token {
            Some(token) => Some(key_from_token(token)?),
            None => input.start_after.clone(),
        };
        let listing = self
            .store
            .list(
                &input.bucket,
                &prefix,
                after.as_deref(),
                input.delimiter.as_deref(),
                usize::try_from(max_keys).unwrap_or(0),
            )
            .map_err(map_error)?;
        let key_count = listing.objects.len() + listing.common_prefixes.len();
        let (contents, common_prefixes) = listed(&listing, &encoder);
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(encoder.apply(prefix)),
            delimiter: input.delimiter.map(|d| encoder.apply(d)),
            max_keys: Some(max_keys),
            key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
            is_truncated: Some(listing.truncated),
            continuation_token: input.continuation_token,
            next_continuation_token: listing
                .truncated
                .then(|| listing.last.as_deref().map(token_for))
                .flatten(),
            start_after: input.start_after.map(|s| encoder.apply(s)),
            encoding_type: input.encoding_type,
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let encoder = Encoder(
            input
                .encoding_type
                .as_ref()
                .is_some_and(|e| e.as_str() == EncodingType::URL),
        );
        let max_keys = input.max_keys.unwrap_or(1000).clamp(0, 1000);
        let prefix = input.prefix.clone().unwrap_or_default();
        let listing = self
            .store
            .list(
                &input.bucket,
                &prefix,
                input.marker.as_deref(),
                input.delimiter.as_deref(),
                usize::try_from(max_keys).unwrap_or(0),
            )
            .map_err(map_error)?;
        let (contents, common_prefixes) = listed(&listing, &encoder);
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(encoder.apply(prefix)),
            marker: input.marker,
            delimiter: input.delimiter.clone(),
            max_keys: Some(max_keys),
            is_truncated: Some(listing.truncated),
            next_marker: (listing.truncated && input.delimiter.is_some())
                .then(|| listing.last.clone())
                .flatten(),
            encoding_type: input.encoding_type,
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            ..Default::default()
        }))
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let input = req.input;
        let meta = self
            .store
            .head_version(&input.bucket, &input.key, input.version_id.as_deref())
            .map_err(map_error)?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: tag_set(&meta.tags),
            version_id: self.version_of(&input.bucket, &meta),
        }))
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let input = req.input;
        let tags: Vec<GateTag> = input
            .tagging
            .tag_set
            .into_iter()
            .map(|tag| GateTag::new(tag.key.unwrap_or_default(), tag.value.unwrap_or_default()))
            .collect();
        check_tags(&tags)?;
        let meta = self
            .store
            .set_tags(&input.bucket, &input.key, input.version_id.as_deref(), tags)
            .map_err(map_error)?;
        Ok(S3Response::new(PutObjectTaggingOutput {
            version_id: self.version_of(&input.bucket, &meta),
        }))
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let input = req.input;
        let meta = self
            .store
            .set_tags(
                &input.bucket,
                &input.key,
                input.version_id.as_deref(),
                Vec::new(),
            )
            .map_err(map_error)?;
        Ok(S3Response::new(DeleteObjectTaggingOutput {
            version_id: self.version_of(&input.bucket, &meta),
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        let tags = header_tags(input.tagging)?;
        let write_key = self.write_key(
            &input.bucket,
            input.server_side_encryption.as_ref(),
            input.ssekms_key_id.as_deref(),
            input.bucket_key_enabled,
        )?;
        let attributes = Attributes {
            content_type: input.content_type,
            content_encoding: input.content_encoding,
            content_disposition: input.content_disposition,
            content_language: input.content_language,
            cache_control: input.cache_control,
            expires_ms: input.expires.map(millis),
            website_redirect_location: input.website_redirect_location,
            storage_class: input.storage_class.map(|c| c.as_str().to_owned()),
            metadata: input.metadata.unwrap_or_default().into_iter().collect(),
            kms_bucket_key: write_key.as_ref().is_some_and(|k| k.bucket_key),
            kms_key_id: write_key.map(|k| k.arn),
        };
        let upload_id = self
            .store
            .create_upload(&input.bucket, &input.key, attributes, tags)
            .map_err(map_error)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        if !(1..=10_000).contains(&input.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000"
            ));
        }
        let body = input.body.ok_or_else(|| s3_error!(IncompleteBody))?;
        let etag = self
            .store
            .put_part(
                &input.bucket,
                &input.key,
                &input.upload_id,
                input.part_number,
                body,
            )
            .await
            .map_err(map_error)?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(etag)),
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        if !(1..=10_000).contains(&input.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000"
            ));
        }
        let (source_bucket, source_key, source_version) = copy_source(&input.copy_source)?;
        if archived(
            &self
                .store
                .head_version(&source_bucket, &source_key, source_version.as_deref())
                .map_err(map_error)?,
        ) {
            return Err(archived_error());
        }
        let range = input
            .copy_source_range
            .as_deref()
            .map(parse_copy_range)
            .transpose()?;
        let store = Arc::clone(&self.store);
        let matcher = condition(input.copy_source_if_match);
        let target = (
            input.bucket.clone(),
            input.key.clone(),
            input.upload_id.clone(),
            input.part_number,
        );
        let source_name = source_bucket.clone();
        let (etag, copied) = tokio::task::spawn_blocking(move || {
            store.copy_part(
                (&source_bucket, &source_key, source_version.as_deref()),
                matcher.as_ref(),
                range,
                (&target.0, &target.1, &target.2, target.3),
            )
        })
        .await
        .map_err(|err| s3_error!(err, InternalError))?
        .map_err(map_error)?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(etag)),
                last_modified: Some(timestamp(crate::s3::store::now_ms())),
                ..Default::default()
            }),
            copy_source_version_id: self.version_of(&source_name, &copied),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let target = write_condition(input.if_match, input.if_none_match)?;
        let parts: Vec<(i32, String)> = input
            .multipart_upload
            .and_then(|upload| upload.parts)
            .unwrap_or_default()
            .into_iter()
            .map(|part| {
                (
                    part.part_number.unwrap_or(0),
                    part.e_tag.map(ETag::into_value).unwrap_or_default(),
                )
            })
            .collect();
        let store = Arc::clone(&self.store);
        let (bucket, key, upload_id) = (
            input.bucket.clone(),
            input.key.clone(),
            input.upload_id.clone(),
        );
        let meta = tokio::task::spawn_blocking(move || {
            store.complete_upload(&bucket, &key, &upload_id, &parts, target.as_ref())
        })
        .await
        .map_err(|err| s3_error!(err, InternalError))?
        .map_err(map_error)?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            version_id: self.version_of(&input.bucket, &meta),
            bucket: Some(input.bucket),
            key: Some(input.key),
            e_tag: Some(etag(&meta)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        self.store
            .abort_upload(&input.bucket, &input.key, &input.upload_id)
            .map_err(map_error)?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }
}
