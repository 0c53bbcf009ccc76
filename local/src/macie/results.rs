//! Sensitive data discovery results as Macie writes them: one JSON record per object a job looked
//! at (clean, flagged, skipped), gzip-compressed JSON Lines under the configured location at
//! `<keyPrefix>/AWSLogs/<account>/Macie/<region>/<jobId>/<account>/<file>.jsonl.gz`. The records
//! use the finding's field names (specs/macie2.md §8). KMS encryption is not emulated.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use crate::aws::{ACCOUNT, REGION};
use crate::clock::{now_ms, rfc3339_ms};
use crate::s3::store::ObjectMeta;

/// `classificationDetails.result` for an object Macie did not read.
pub fn not_read(status: &str, reason: &str, mime_type: &str) -> Value {
    json!({
        "status": {"code": status, "reason": reason},
        "mimeType": mime_type,
        "sizeClassified": 0,
        "sensitiveData": [],
        "customDataIdentifiers": {"detections": [], "totalCount": 0},
        "additionalOccurrences": false,
    })
}

/// The record of an object the job could not analyse for a reason of its own (Macie's
/// `UNKNOWN_ERROR`): skipped, so the pipeline holds it.
pub fn unknown_error(job_id: &str, bucket: &str, key: &str) -> Value {
    let skipped = not_read("SKIPPED", "UNKNOWN_ERROR", macie_classifier::mime_type(key));
    record(job_id, bucket, key, None, skipped, None)
}

/// The results file a job writes, from the export configuration: (bucket, key).
pub fn location(configuration: &Value, job_id: &str) -> Option<(String, String)> {
    let destination = &configuration["s3Destination"];
    let bucket = destination["bucketName"].as_str()?.to_owned();
    let prefix = destination["keyPrefix"]
        .as_str()
        .unwrap_or_default()
        .trim_matches('/');
    let root = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    let file = uuid::Uuid::new_v4().simple();
    Some((
        bucket,
        format!("{root}AWSLogs/{ACCOUNT}/Macie/{REGION}/{job_id}/{ACCOUNT}/{file}.jsonl.gz"),
    ))
}

/// The record for an object: `result` is its `classificationDetails.result` (a record lists up
/// to 1,000 occurrences per type, a finding 15); a flagged object's record shares its finding's
/// id, as Macie's do.
pub fn record(
    job_id: &str,
    bucket: &str,
    key: &str,
    object: Option<&ObjectMeta>,
    result: Value,
    finding: Option<&Value>,
) -> Value {
    let mut s3_object = json!({
        "bucketArn": format!("arn:aws:s3:::{bucket}"),
        "key": key,
        "path": format!("{bucket}/{key}"),
        "extension": key.rsplit('/').next().and_then(|n| n.rsplit_once('.')).map_or("", |(_, e)| e),
    });
    if let Some(object) = object {
        s3_object["eTag"] = json!(object.etag);
        s3_object["size"] = json!(object.size);
        s3_object["lastModified"] = json!(rfc3339_ms(object.last_modified_ms));
        s3_object["storageClass"] = json!(
            object
                .attributes
                .storage_class
                .clone()
                .unwrap_or_else(|| "STANDARD".into())
        );
    }
    json!({
        "schemaVersion": "1.0",
        "accountId": ACCOUNT,
        "region": REGION,
        "partition": "aws",
        "category": "CLASSIFICATION",
        "createdAt": rfc3339_ms(now_ms()),
        "id": finding.and_then(|f| f["id"].as_str()).map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned),
        "classificationDetails": {
            "jobArn": format!("arn:aws:macie2:{REGION}:{ACCOUNT}:classification-job/{job_id}"),
            "jobId": job_id,
            "originType": "SENSITIVE_DATA_DISCOVERY_JOB",
            "result": result,
        },
        "resourcesAffected": {
            "s3Bucket": {"arn": format!("arn:aws:s3:::{bucket}"), "name": bucket},
            "s3Object": s3_object,
        },
    })
}

/// Records as one gzip-compressed JSON Lines file.
pub fn gzip_lines(records: &[Value]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    for record in records {
        let _ = serde_json::to_writer(&mut encoder, record);
        let _ = encoder.write_all(b"\n");
    }
    encoder.finish().expect("writing to memory does not fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_location_follows_macies_layout() {
        let configuration =
            json!({"s3Destination": {"bucketName": "r", "keyPrefix": "p/", "kmsKeyArn": "k"}});
        let (bucket, key) = location(&configuration, "job1").unwrap();
        assert_eq!(bucket, "r");
        let expected = format!("p/AWSLogs/{ACCOUNT}/Macie/{REGION}/job1/{ACCOUNT}/");
        assert!(key.starts_with(&expected), "{key}");
        assert!(key.ends_with(".jsonl.gz"));
        assert!(location(&Value::Null, "job1").is_none());
    }

    #[test]
    fn records_compress_to_json_lines_the_pipeline_reads() {
        let skipped = not_read("SKIPPED", "MALFORMED_FILE", "application/gzip");
        let records = vec![record("j", "scan", "a.gz", None, skipped, None)];
        let text = macie_pipeline::macie::results::decompress(&gzip_lines(&records)).unwrap();
        let parsed = macie_pipeline::macie::results::parse_file(&text).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].key, "a.gz");
        assert_eq!(parsed[0].bucket, "scan");
        assert_eq!(parsed[0].reason.as_deref(), Some("MALFORMED_FILE"));
    }
}
