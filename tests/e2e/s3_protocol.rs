//! The local S3 over the wire, through the Rust SDK: conditional writes (`If-None-Match: *`,
//! `If-Match`) on PutObject, CopyObject and CompleteMultipartUpload with S3's error codes, and
//! versioning (version ids on reads, copies, tags and deletes, delete markers,
//! ListObjectVersions). The gate relies on each of these behaving exactly as S3's.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, Tag, Tagging,
    VersioningConfiguration,
};
use e2e::Gate;

const BUCKET: &str = "protocol-tests";

async fn scratch() -> Gate {
    let gate = Gate::start().await;
    gate.s3
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("CreateBucket");
    gate
}

async fn put(
    s3: &Client,
    key: &str,
    text: &str,
) -> aws_sdk_s3::operation::put_object::PutObjectOutput {
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(text.as_bytes().to_vec()))
        .send()
        .await
        .expect("PutObject")
}

async fn text(s3: &Client, key: &str, version: Option<&str>) -> String {
    let body = s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .expect("GetObject")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    String::from_utf8(body.to_vec()).expect("text")
}

/// The service error code of a failed request, and its HTTP status.
fn code<E: ProvideErrorMetadata>(
    err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> (String, u16) {
    (
        err.code().unwrap_or_default().to_owned(),
        err.raw_response().map_or(0, |r| r.status().as_u16()),
    )
}

#[tokio::test]
async fn conditional_puts_refuse_to_replace_what_the_writer_did_not_expect() {
    let gate = scratch().await;
    let s3 = &gate.s3;
    let first = s3
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .if_none_match("*")
        .body(ByteStream::from_static(b"one"))
        .send()
        .await
        .expect("a key that does not exist is written");
    let again = s3
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .if_none_match("*")
        .body(ByteStream::from_static(b"two"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&again), ("PreconditionFailed".into(), 412));
    let stale = s3
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .if_match("\"00000000000000000000000000000000\"")
        .body(ByteStream::from_static(b"two"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&stale), ("PreconditionFailed".into(), 412));
    let missing = s3
        .put_object()
        .bucket(BUCKET)
        .key("nothing-here")
        .if_match(first.e_tag().unwrap())
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing), ("NoSuchKey".into(), 404));
    s3.put_object()
        .bucket(BUCKET)
        .key("k")
        .if_match(first.e_tag().unwrap())
        .body(ByteStream::from_static(b"two"))
        .send()
        .await
        .expect("the ETag it replaces is the current one");
    assert_eq!(text(s3, "k", None).await, "two");
}

#[tokio::test]
async fn conditional_copies_check_the_target_as_well_as_the_source() {
    let gate = scratch().await;
    let s3 = &gate.s3;
    put(s3, "a", "from a").await;
    put(s3, "b", "from b").await;
    let copy = |source: &str, target: &str| {
        s3.copy_object()
            .copy_source(format!("{BUCKET}/{source}"))
            .bucket(BUCKET)
            .key(target)
    };
    let written = copy("a", "t")
        .if_none_match("*")
        .send()
        .await
        .expect("CopyObject");
    let target_etag = written
        .copy_object_result()
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned();
    let taken = copy("b", "t").if_none_match("*").send().await.unwrap_err();
    assert_eq!(code(&taken), ("PreconditionFailed".into(), 412));
    assert_eq!(text(s3, "t", None).await, "from a");
    let b_etag = put(s3, "b", "from b").await.e_tag().unwrap().to_owned();
    let wrong = copy("b", "t").if_match(&b_etag).send().await.unwrap_err();
    assert_eq!(code(&wrong), ("PreconditionFailed".into(), 412));
    let absent = copy("b", "absent")
        .if_match(&target_etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&absent), ("NoSuchKey".into(), 404));
    copy("b", "t")
        .if_match(&target_etag)
        .copy_source_if_match(&b_etag)
        .send()
        .await
        .expect("both conditions hold");
    assert_eq!(text(s3, "t", None).await, "from b");
}

#[tokio::test]
async fn a_conditional_completion_fails_on_an_existing_key_and_conflicts_after_a_delete() {
    let gate = scratch().await;
    let s3 = &gate.s3;
    put(s3, "big", "old").await;
    let upload = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("big")
        .send()
        .await
        .expect("CreateMultipartUpload");
    let id = upload.upload_id().unwrap();
    let part = s3
        .upload_part()
        .bucket(BUCKET)
        .key("big")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"new"))
        .send()
        .await
        .expect("UploadPart");
    let parts = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(1)
                .e_tag(part.e_tag().unwrap())
                .build(),
        )
        .build();
    let complete = || {
        s3.complete_multipart_upload()
            .bucket(BUCKET)
            .key("big")
            .upload_id(id)
            .multipart_upload(parts.clone())
            .if_none_match("*")
    };
    let exists = complete().send().await.unwrap_err();
    assert_eq!(code(&exists), ("PreconditionFailed".into(), 412));
    s3.delete_object()
        .bucket(BUCKET)
        .key("big")
        .send()
        .await
        .expect("DeleteObject");
    let conflict = complete().send().await.unwrap_err();
    assert_eq!(code(&conflict), ("ConditionalRequestConflict".into(), 409));
    let gone = complete().send().await.unwrap_err();
    assert_eq!(code(&gone).0, "NoSuchUpload", "a conflict ends the upload");
}

#[tokio::test]
async fn a_versioned_bucket_keeps_versions_and_acts_on_the_one_named() {
    let gate = scratch().await;
    let s3 = &gate.s3;
    s3.put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("PutBucketVersioning");
    let status = s3
        .get_bucket_versioning()
        .bucket(BUCKET)
        .send()
        .await
        .expect("GetBucketVersioning");
    assert_eq!(status.status(), Some(&BucketVersioningStatus::Enabled));
    let one = put(s3, "k", "one").await;
    let two = put(s3, "k", "two").await;
    let (v1, v2) = (one.version_id().unwrap(), two.version_id().unwrap());
    assert_ne!(v1, v2);
    assert_eq!(text(s3, "k", Some(v1)).await, "one");

    // A copy of a named version, and tags on a named version.
    let copied = s3
        .copy_object()
        .copy_source(format!("{BUCKET}/k?versionId={v1}"))
        .bucket(BUCKET)
        .key("copy")
        .send()
        .await
        .expect("CopyObject of a version");
    assert_eq!(copied.copy_source_version_id(), Some(v1));
    assert_eq!(text(s3, "copy", None).await, "one");
    s3.put_object_tagging()
        .bucket(BUCKET)
        .key("k")
        .version_id(v1)
        .tagging(
            Tagging::builder()
                .tag_set(Tag::builder().key("t").value("v").build().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("PutObjectTagging of a version");
    let tags = s3
        .get_object_tagging()
        .bucket(BUCKET)
        .key("k")
        .version_id(v1)
        .send()
        .await
        .expect("GetObjectTagging of a version");
    assert_eq!((tags.tag_set().len(), tags.version_id()), (1, Some(v1)));
    let current_tags = s3
        .get_object_tagging()
        .bucket(BUCKET)
        .key("k")
        .send()
        .await
        .unwrap();
    assert!(current_tags.tag_set().is_empty());

    // A conditional delete of the current version only adds a marker over that ETag.
    let stale = s3
        .delete_object()
        .bucket(BUCKET)
        .key("k")
        .if_match(one.e_tag().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&stale), ("PreconditionFailed".into(), 412));
    let hidden = s3
        .delete_object()
        .bucket(BUCKET)
        .key("k")
        .if_match(two.e_tag().unwrap())
        .send()
        .await
        .expect("DeleteObject");
    assert_eq!(hidden.delete_marker(), Some(true));
    let marker = hidden.version_id().unwrap().to_owned();
    let read = s3
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&read).1, 404);
    let listed = s3
        .list_object_versions()
        .bucket(BUCKET)
        .prefix("k")
        .send()
        .await
        .expect("ListObjectVersions");
    let versions: Vec<(&str, bool)> = listed
        .versions()
        .iter()
        .map(|v| (v.version_id().unwrap(), v.is_latest().unwrap()))
        .collect();
    assert_eq!(versions, vec![(v2, false), (v1, false)]);
    assert_eq!(listed.delete_markers().len(), 1);
    assert_eq!(
        listed.delete_markers()[0].version_id(),
        Some(marker.as_str())
    );

    // Deleting by version id removes for good; the version below becomes current.
    for version in [marker.as_str(), v2] {
        s3.delete_object()
            .bucket(BUCKET)
            .key("k")
            .version_id(version)
            .send()
            .await
            .expect("DeleteObject of a version");
    }
    assert_eq!(text(s3, "k", None).await, "one");
    let gone = s3
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .version_id(v2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&gone).0, "NoSuchVersion");
    // Conditional writes see a current delete marker as no object.
    s3.delete_object()
        .bucket(BUCKET)
        .key("k")
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket(BUCKET)
        .key("k")
        .if_none_match("*")
        .body(ByteStream::from_static(b"three"))
        .send()
        .await
        .expect("a key whose current version is a marker is absent");
}

#[tokio::test]
async fn an_unversioned_bucket_reports_no_version_ids() {
    let gate = scratch().await;
    let written = put(&gate.s3, "k", "x").await;
    assert_eq!(written.version_id(), None);
    let listed = gate
        .s3
        .list_object_versions()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.versions()[0].version_id(), Some("null"));
    assert_eq!(text(&gate.s3, "k", Some("null")).await, "x");
}
