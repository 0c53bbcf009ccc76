//! The IAM actions an S3 request needs, from its method, path, query and headers alone (before
//! its body is read): one request can need several (a copy reads its source and writes its
//! destination; a write with tags needs the tagging action as well).

use http::HeaderMap;
use percent_encoding::percent_decode_str;

use crate::iam::evaluate::Context;

/// One action on one resource, and the condition keys the request sets for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub action: &'static str,
    pub resource: String,
    pub context: Context,
}

fn check(action: &'static str, resource: String) -> Check {
    Check {
        action,
        resource,
        context: Context::new(),
    }
}

fn versioned(
    version: Option<&str>,
    plain: &'static str,
    with_version: &'static str,
) -> &'static str {
    if version.is_some() {
        with_version
    } else {
        plain
    }
}

fn decoded(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// The source of a copy: `bucket/key[?versionId=v]`, with or without a leading slash.
fn copy_source(headers: &HeaderMap) -> Option<(String, String, Option<String>)> {
    let raw = headers.get("x-amz-copy-source")?.to_str().ok()?;
    let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
    let path = decoded(path.trim_start_matches('/'));
    let (bucket, key) = path.split_once('/')?;
    let version = form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "versionId")
        .map(|(_, value)| value.into_owned());
    Some((bucket.to_owned(), key.to_owned(), version))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The object a request reads (bucket, key, version), whose KMS key must then allow
/// `kms:Decrypt` as well: a GET, or the source of a copy. A HEAD reads only metadata, which S3
/// keeps outside the encrypted data: it takes no key.
pub fn read_object(
    operation: &str,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Option<(String, String, Option<String>)> {
    match operation {
        "GetObject" => {
            let (bucket, key) = path.trim_start_matches('/').split_once('/')?;
            let version = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .find(|(name, _)| name == "versionId")
                .map(|(_, value)| value.into_owned());
            Some((decoded(bucket), decoded(key), version))
        }
        "CopyObject" | "UploadPartCopy" => copy_source(headers),
        _ => None,
    }
}

/// The checks for a request `operation` names (see `router::s3_operation`); `Err` for an
/// operation this table does not cover, which is then refused rather than let through.
pub fn checks(
    operation: &str,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Vec<Check>, String> {
    let params: Vec<(String, String)> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let trimmed = path.trim_start_matches('/');
    let (bucket, key) = match trimmed.split_once('/') {
        Some((bucket, key)) if !key.is_empty() => (decoded(bucket), Some(decoded(key))),
        Some((bucket, _)) => (decoded(bucket), None),
        None => (decoded(trimmed), None),
    };
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    let object_arn = format!("{bucket_arn}/{}", key.as_deref().unwrap_or_default());
    let target_arn = object_arn.clone();
    let version = param("versionId");
    let mut out = match operation {
        "ListBuckets" => vec![check("s3:ListAllMyBuckets", "*".into())],
        "CreateBucket" => vec![check("s3:CreateBucket", bucket_arn)],
        "DeleteBucket" => vec![check("s3:DeleteBucket", bucket_arn)],
        "HeadBucket" => vec![check("s3:ListBucket", bucket_arn)],
        "GetBucketLocation" => vec![check("s3:GetBucketLocation", bucket_arn)],
        "GetBucketVersioning" => vec![check("s3:GetBucketVersioning", bucket_arn)],
        "PutBucketVersioning" => vec![check("s3:PutBucketVersioning", bucket_arn)],
        // S3 names both after the older notification API.
        "GetBucketNotificationConfiguration" => {
            vec![check("s3:GetBucketNotification", bucket_arn)]
        }
        "PutBucketNotificationConfiguration" => {
            vec![check("s3:PutBucketNotification", bucket_arn)]
        }
        "GetBucketEncryption" => vec![check("s3:GetEncryptionConfiguration", bucket_arn)],
        // S3 has no action of its own for removing it.
        "PutBucketEncryption" | "DeleteBucketEncryption" => {
            vec![check("s3:PutEncryptionConfiguration", bucket_arn)]
        }
        "ListMultipartUploads" => vec![check("s3:ListBucketMultipartUploads", bucket_arn)],
        "ListObjects" | "ListObjectsV2" | "ListObjectVersions" => {
            let action = if operation == "ListObjectVersions" {
                "s3:ListBucketVersions"
            } else {
                "s3:ListBucket"
            };
            let mut listing = check(action, bucket_arn);
            for (name, key) in [
                ("prefix", "s3:prefix"),
                ("delimiter", "s3:delimiter"),
                ("max-keys", "s3:max-keys"),
            ] {
                if let Some(value) = param(name) {
                    listing.context.insert(key.into(), vec![value.to_owned()]);
                }
            }
            vec![listing]
        }
        "GetObject" | "HeadObject" => vec![check(
            versioned(version, "s3:GetObject", "s3:GetObjectVersion"),
            object_arn,
        )],
        "GetObjectTagging" => vec![check(
            versioned(version, "s3:GetObjectTagging", "s3:GetObjectVersionTagging"),
            object_arn,
        )],
        "PutObjectTagging" => vec![check(
            versioned(version, "s3:PutObjectTagging", "s3:PutObjectVersionTagging"),
            object_arn,
        )],
        "DeleteObjectTagging" => vec![check(
            versioned(
                version,
                "s3:DeleteObjectTagging",
                "s3:DeleteObjectVersionTagging",
            ),
            object_arn,
        )],
        "DeleteObject" => vec![check(
            versioned(version, "s3:DeleteObject", "s3:DeleteObjectVersion"),
            object_arn,
        )],
        "PutObject" | "CreateMultipartUpload" => {
            let mut checks = vec![check("s3:PutObject", object_arn.clone())];
            if header(headers, "x-amz-tagging").is_some_and(|tags| !tags.is_empty()) {
                checks.push(check("s3:PutObjectTagging", object_arn));
            }
            checks
        }
        "UploadPart" | "CompleteMultipartUpload" => vec![check("s3:PutObject", object_arn)],
        "AbortMultipartUpload" => vec![check("s3:AbortMultipartUpload", object_arn)],
        "ListParts" => vec![check("s3:ListMultipartUploadParts", object_arn)],
        "CopyObject" | "UploadPartCopy" => {
            let (source_bucket, source_key, source_version) =
                copy_source(headers).ok_or("a copy without a readable x-amz-copy-source header")?;
            let source_arn = format!("arn:aws:s3:::{source_bucket}/{source_key}");
            let mut checks = vec![
                check(
                    versioned(
                        source_version.as_deref(),
                        "s3:GetObject",
                        "s3:GetObjectVersion",
                    ),
                    source_arn.clone(),
                ),
                check("s3:PutObject", object_arn.clone()),
            ];
            if operation == "CopyObject" {
                let replace = header(headers, "x-amz-tagging-directive")
                    .is_some_and(|directive| directive.eq_ignore_ascii_case("REPLACE"));
                if replace {
                    if header(headers, "x-amz-tagging").is_some_and(|tags| !tags.is_empty()) {
                        checks.push(check("s3:PutObjectTagging", object_arn));
                    }
                } else {
                    // Tags copied with the object are read from the source and written to the
                    // destination. AWS asks for both when the source has tags; here they are
                    // asked for on every copy that copies tags, which can only be stricter.
                    checks.push(check(
                        versioned(
                            source_version.as_deref(),
                            "s3:GetObjectTagging",
                            "s3:GetObjectVersionTagging",
                        ),
                        source_arn,
                    ));
                    checks.push(check("s3:PutObjectTagging", object_arn));
                }
            }
            checks
        }
        "DeleteObjects" => {
            // The keys are in the body; every key of the bucket stands for them.
            vec![check("s3:DeleteObject", format!("{bucket_arn}/*"))]
        }
        other => {
            return Err(format!(
                "the local IAM has no rule for the S3 operation {other}"
            ));
        }
    };
    // A write or delete conditional on the current object's ETag (If-Match) reads that object,
    // and S3 asks for s3:GetObject on it as well (S3 User Guide, conditional writes and deletes).
    let if_match = header(headers, "if-match").is_some();
    if if_match
        && matches!(
            operation,
            "PutObject" | "CopyObject" | "CompleteMultipartUpload" | "DeleteObject"
        )
        && !out
            .iter()
            .any(|c| c.action == "s3:GetObject" && c.resource == target_arn)
    {
        out.push(check("s3:GetObject", target_arn));
    }
    for item in &mut out {
        if let Some(version) = version
            && item.action.contains("Version")
        {
            item.context
                .insert("s3:versionid".into(), vec![version.to_owned()]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(
        operation: &str,
        path: &str,
        query: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        checks(operation, path, query, &map)
            .unwrap()
            .into_iter()
            .map(|c| (c.action.to_owned(), c.resource))
            .collect()
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, r)| ((*a).to_owned(), (*r).to_owned()))
            .collect()
    }

    #[test]
    fn a_tagged_copy_of_a_version_reads_the_version_and_writes_object_and_tags() {
        assert_eq!(
            actions(
                "CopyObject",
                "/scan/a%20b.csv",
                None,
                &[
                    ("x-amz-copy-source", "raw/a%20b.csv?versionId=v1"),
                    ("x-amz-tagging-directive", "REPLACE"),
                    ("x-amz-tagging", "WorkflowId=w"),
                ]
            ),
            pairs(&[
                ("s3:GetObjectVersion", "arn:aws:s3:::raw/a b.csv"),
                ("s3:PutObject", "arn:aws:s3:::scan/a b.csv"),
                ("s3:PutObjectTagging", "arn:aws:s3:::scan/a b.csv"),
            ])
        );
    }

    #[test]
    fn reads_deletes_and_listings_map_to_their_actions() {
        assert_eq!(
            actions("DeleteObject", "/b/k", Some("versionId=v"), &[]),
            pairs(&[("s3:DeleteObjectVersion", "arn:aws:s3:::b/k")])
        );
        assert_eq!(
            actions("HeadObject", "/b/k", None, &[]),
            pairs(&[("s3:GetObject", "arn:aws:s3:::b/k")])
        );
        assert_eq!(
            actions("ListObjectVersions", "/b", Some("versions"), &[]),
            pairs(&[("s3:ListBucketVersions", "arn:aws:s3:::b")])
        );
        let listing = checks(
            "ListObjectsV2",
            "/b",
            Some("list-type=2&prefix=a%2F"),
            &HeaderMap::new(),
        )
        .unwrap();
        assert_eq!(listing[0].context["s3:prefix"], vec!["a/".to_owned()]);
        let mut conditional = HeaderMap::new();
        conditional.insert("if-match", "\"e\"".parse().unwrap());
        let delete: Vec<&str> = checks("DeleteObject", "/b/k", None, &conditional)
            .unwrap()
            .iter()
            .map(|c| c.action)
            .collect();
        assert_eq!(delete, ["s3:DeleteObject", "s3:GetObject"]);
        assert!(checks("PutBucketAcl", "/b", Some("acl"), &HeaderMap::new()).is_err());
    }
}
