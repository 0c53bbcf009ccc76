//! Macie's sensitive data discovery results: one record per object a job looked at, including the
//! objects it skipped or only partly analysed, which produce no finding. Without them a skipped
//! object is indistinguishable from a clean one.
//!
//! Macie writes the records as gzip-compressed JSON Lines under the account's configured results
//! location (`GetClassificationExportConfiguration`), at
//! `<keyPrefix>/AWSLogs/<account>/Macie/<region>/<jobId>/…`. The location is an account-wide
//! setting other teams may use, so it is read at run time and never changed here.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use aws_sdk_macie2::Client as Macie;
use aws_sdk_s3::Client as S3;
use futures::{StreamExt, TryStreamExt};
use serde_json::Value;

use crate::error::PipelineError;
use crate::manifest::{FlaggedObject, NotAnalysedObject, NotAnalysedStatus, Route};
use crate::s3::documents;

/// Results files read at once.
const CONCURRENT_READS: usize = 8;
/// A decompressed results file larger than this is refused rather than held in memory.
const MAX_RESULTS_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// Where the account's Macie writes discovery results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultsLocation {
    pub bucket: String,
    pub key_prefix: String,
    pub kms_key_arn: String,
}

impl ResultsLocation {
    /// The prefix holding one job's results.
    pub fn job_prefix(&self, account_id: &str, region: &str, job_id: &str) -> String {
        let prefix = self.key_prefix.trim_matches('/');
        let root = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        format!("{root}AWSLogs/{account_id}/Macie/{region}/{job_id}/")
    }
}

/// The command that sets the results location, for error messages and the README.
/// Matches the template's `ConfigureDiscoveryResultsCommand` output.
pub fn configure_command(region: &str, bucket: &str, kms_key_arn: &str) -> String {
    format!(
        "aws macie2 put-classification-export-configuration --region {region} --configuration \
         's3Destination={{bucketName={bucket},keyPrefix={KEY_PREFIX},kmsKeyArn={kms_key_arn}}}'"
    )
}

/// The key prefix the documented set-up uses. Any prefix works: the gate reads the configured one.
pub const KEY_PREFIX: &str = "macie-discovery-results";

/// The account's results location, checked against the bucket and key this deployment may read.
pub async fn location(
    macie: &Macie,
    region: &str,
    granted_bucket: &str,
    granted_kms_key_arn: &str,
) -> Result<ResultsLocation, PipelineError> {
    let output = macie
        .get_classification_export_configuration()
        .send()
        .await
        .map_err(|err| PipelineError::from_sdk("GetClassificationExportConfiguration", err))?;
    let destination = output
        .configuration()
        .and_then(|configuration| configuration.s3_destination());
    let Some((bucket, kms_key_arn)) =
        destination.and_then(|d| Some((d.bucket_name()?, d.kms_key_arn()?)))
    else {
        return Err(PipelineError::DiscoveryResultsNotConfigured(format!(
            "Macie has no location for sensitive data discovery results in this account and \
             region, so objects Macie skips would look clean. Nothing was moved on. Set it once \
             with: {}",
            configure_command(region, granted_bucket, granted_kms_key_arn)
        )));
    };
    if bucket != granted_bucket || kms_key_arn != granted_kms_key_arn {
        return Err(PipelineError::DiscoveryResultsNotConfigured(format!(
            "Macie writes sensitive data discovery results to bucket {bucket} with KMS key \
             {kms_key_arn}, but this deployment may read bucket {granted_bucket} with key \
             {granted_kms_key_arn}. Redeploy with DiscoveryResultsBucketName={bucket} and \
             DiscoveryResultsKmsKeyArn={kms_key_arn}. Nothing was moved on."
        )));
    }
    Ok(ResultsLocation {
        bucket: bucket.to_owned(),
        key_prefix: destination
            .and_then(|d| d.key_prefix())
            .unwrap_or_default()
            .to_owned(),
        kms_key_arn: kms_key_arn.to_owned(),
    })
}

/// How far Macie got with an object, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Complete,
    Partial,
    Skipped,
}

/// What the results say about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectAnalysis {
    pub status: Status,
    /// Macie's reasons, with the archive member they concern when there is one.
    pub reasons: Vec<String>,
    pub size: u64,
}

impl ObjectAnalysis {
    fn add(&mut self, status: Status, reason: Option<String>) {
        self.status = self.status.max(status);
        if let Some(reason) = reason
            && !self.reasons.contains(&reason)
        {
            self.reasons.push(reason);
        }
    }
}

/// One record, reduced to what routing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    /// Bytes Macie analysed (`sizeClassified`): what the job is billed for.
    pub size_classified: u64,
    pub status: Status,
    pub reason: Option<String>,
}

/// Reads one JSON Lines record. A status the gate does not know counts as skipped: only
/// `COMPLETE` ever lets an object through.
pub fn parse_record(line: &str) -> Result<Record, String> {
    let value: Value = serde_json::from_str(line).map_err(|err| format!("not JSON: {err}"))?;
    let text = |path: &[&str]| {
        path.iter()
            .try_fold(&value, |node, part| node.get(part))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let object = &value["resourcesAffected"]["s3Object"];
    let bucket = text(&["resourcesAffected", "s3Bucket", "name"])
        .or_else(|| {
            object["bucketArn"]
                .as_str()
                .and_then(|arn| arn.rsplit(':').next())
                .map(str::to_owned)
        })
        .ok_or("no resourcesAffected.s3Bucket.name")?;
    let key = text(&["resourcesAffected", "s3Object", "key"])
        .ok_or("no resourcesAffected.s3Object.key")?;
    let code = text(&["classificationDetails", "result", "status", "code"]);
    let reason = text(&["classificationDetails", "result", "status", "reason"]);
    let (status, reason) = match code.as_deref() {
        Some("COMPLETE") => (Status::Complete, None),
        Some("PARTIAL") => (Status::Partial, reason),
        Some("SKIPPED") => (Status::Skipped, reason),
        Some(other) => (
            Status::Skipped,
            Some(reason.unwrap_or_else(|| format!("unknown status {other}"))),
        ),
        None => (Status::Skipped, Some("the result has no status".to_owned())),
    };
    // A record for a file inside an archive: the object is only as analysed as its worst member.
    let member = &object["embeddedFileDetails"];
    let (status, reason) = if member.is_null() {
        (status, reason)
    } else if status == Status::Complete {
        (Status::Complete, None)
    } else {
        let path = member["filePath"]
            .as_str()
            .map_or_else(|| member.to_string(), str::to_owned);
        let reason = reason.unwrap_or_else(|| "not analysed".to_owned());
        (Status::Partial, Some(format!("{path}: {reason}")))
    };
    let size = object["size"].as_u64().unwrap_or(0);
    let size_classified = value["classificationDetails"]["result"]["sizeClassified"]
        .as_u64()
        .unwrap_or(0);
    Ok(Record {
        bucket,
        key,
        size,
        size_classified,
        status,
        reason,
    })
}

/// Parses a decompressed results file.
pub fn parse_file(text: &str) -> Result<Vec<Record>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| parse_record(line).map_err(|err| format!("line {}: {err}", index + 1)))
        .collect()
}

/// Decompresses a results file (gzip, possibly several members).
pub fn decompress(bytes: &[u8]) -> Result<String, String> {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(MAX_RESULTS_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(|err| format!("not gzip-compressed UTF-8 text: {err}"))?;
    Ok(text)
}

/// The results of one job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobResults {
    /// Results files read.
    pub files: usize,
    /// Per object of `bucket`, what Macie did with it.
    pub objects: HashMap<String, ObjectAnalysis>,
    /// Bytes Macie analysed in the objects of `bucket`, archive members included.
    pub bytes_classified: u64,
}

impl JobResults {
    /// Folds records in, keeping the objects of `bucket`.
    pub fn add(&mut self, bucket: &str, records: Vec<Record>) {
        for record in records.into_iter().filter(|r| r.bucket == bucket) {
            self.bytes_classified += record.size_classified;
            let analysis = self
                .objects
                .entry(record.key)
                .or_insert_with(|| ObjectAnalysis {
                    status: Status::Complete,
                    reasons: Vec::new(),
                    size: record.size,
                });
            analysis.size = analysis.size.max(record.size);
            analysis.add(record.status, record.reason);
        }
    }
}

/// Reads every results file of a job and keeps the records about objects of `bucket`.
pub async fn read_job(
    s3: &S3,
    location: &ResultsLocation,
    prefix: &str,
    bucket: &str,
) -> Result<JobResults, PipelineError> {
    let keys = documents::list_keys(s3, &location.bucket, prefix, ".jsonl.gz").await?;
    let files: Vec<Vec<Record>> = futures::stream::iter(keys)
        .map(|key| read_file(s3, &location.bucket, key))
        .buffer_unordered(CONCURRENT_READS)
        .try_collect()
        .await?;
    let mut results = JobResults {
        files: files.len(),
        ..JobResults::default()
    };
    for records in files {
        results.add(bucket, records);
    }
    Ok(results)
}

async fn read_file(s3: &S3, bucket: &str, key: String) -> Result<Vec<Record>, PipelineError> {
    let invalid = |reason: String| PipelineError::InvalidDiscoveryResults {
        bucket: bucket.to_owned(),
        key: key.clone(),
        reason,
    };
    let bytes = documents::read(s3, bucket, &key)
        .await?
        .ok_or_else(|| invalid("it was listed but is gone".to_owned()))?;
    let text = decompress(&bytes).map_err(invalid)?;
    parse_file(&text).map_err(invalid)
}

/// The per-object verdicts of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdicts {
    pub flagged: Vec<FlaggedObject>,
    pub not_analysed: Vec<NotAnalysedObject>,
    /// Analysed completely, no finding: the only objects that pass unreviewed.
    pub analysed: Vec<String>,
}

/// Puts the findings and the discovery results together. An object counts as clean only when
/// its result says `COMPLETE` and it has no finding. A flagged object that Macie read only in
/// part is held whatever its severity. Results not yet written (none at all, or none for an
/// object with a finding) are an error to wait on: Macie writes them shortly after the job.
pub fn verdicts(
    job_id: &str,
    mut flagged: Vec<FlaggedObject>,
    results: &JobResults,
) -> Result<Verdicts, PipelineError> {
    let pending = |detail: String| PipelineError::DiscoveryResultsIncomplete {
        job_id: job_id.to_owned(),
        detail,
    };
    if results.files == 0 {
        return Err(pending(
            "no results file has been written yet. If this persists, check that Macie may write \
             to the results bucket and use its KMS key"
                .to_owned(),
        ));
    }
    let mut flagged_keys = HashSet::new();
    for object in &mut flagged {
        let Some(analysis) = results.objects.get(&object.key) else {
            return Err(pending(format!(
                "there is a finding for {:?} but no result yet",
                object.key
            )));
        };
        if analysis.status != Status::Complete {
            object.route = Route::Review;
            object.incomplete_analysis = Some(if analysis.reasons.is_empty() {
                "only part of the object was analysed".to_owned()
            } else {
                analysis.reasons.join("; ")
            });
        }
        flagged_keys.insert(object.key.as_str());
    }
    let mut not_analysed = Vec::new();
    let mut analysed = Vec::new();
    let mut keys: Vec<&String> = results.objects.keys().collect();
    keys.sort();
    for key in keys {
        if flagged_keys.contains(key.as_str()) {
            continue;
        }
        let analysis = &results.objects[key];
        let status = match analysis.status {
            Status::Complete => {
                analysed.push(key.clone());
                continue;
            }
            Status::Partial => NotAnalysedStatus::Partial,
            Status::Skipped => NotAnalysedStatus::Skipped,
        };
        not_analysed.push(NotAnalysedObject {
            key: key.clone(),
            size: analysis.size,
            status,
            reasons: if analysis.reasons.is_empty() {
                vec!["Macie gave no reason".to_owned()]
            } else {
                analysis.reasons.clone()
            },
        });
    }
    Ok(Verdicts {
        flagged,
        not_analysed,
        analysed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(key: &str, code: &str, reason: Option<&str>) -> String {
        json!({
            "resourcesAffected": {
                "s3Bucket": {"name": "scan"},
                "s3Object": {"key": key, "size": 10},
            },
            "classificationDetails": {"result": {"status": {"code": code, "reason": reason}}},
        })
        .to_string()
    }

    #[test]
    fn the_job_prefix_follows_macies_layout() {
        let location = ResultsLocation {
            bucket: "results".into(),
            key_prefix: "macie/".into(),
            kms_key_arn: "k".into(),
        };
        assert_eq!(
            location.job_prefix("111122223333", "eu-west-1", "job1"),
            "macie/AWSLogs/111122223333/Macie/eu-west-1/job1/"
        );
        let bare = ResultsLocation {
            key_prefix: String::new(),
            ..location
        };
        assert_eq!(bare.job_prefix("1", "r", "j"), "AWSLogs/1/Macie/r/j/");
    }

    #[test]
    fn statuses_and_reasons_are_read_and_unknown_ones_fail_closed() {
        let complete = parse_record(&record("a.csv", "COMPLETE", None)).unwrap();
        assert_eq!((complete.status, complete.reason), (Status::Complete, None));
        let skipped = parse_record(&record(
            "b.bin",
            "SKIPPED",
            Some("UNSUPPORTED_FILE_TYPE_EXCEPTION"),
        ))
        .unwrap();
        assert_eq!(skipped.status, Status::Skipped);
        assert_eq!(
            skipped.reason.as_deref(),
            Some("UNSUPPORTED_FILE_TYPE_EXCEPTION")
        );
        let odd = parse_record(&record("c", "SOMETHING_NEW", None)).unwrap();
        assert_eq!(odd.status, Status::Skipped);
        assert_eq!(odd.reason.as_deref(), Some("unknown status SOMETHING_NEW"));
        let no_status = parse_record(
            &json!({"resourcesAffected": {"s3Bucket": {"name": "scan"}, "s3Object": {"key": "d"}}})
                .to_string(),
        )
        .unwrap();
        assert_eq!(no_status.status, Status::Skipped);
        assert!(parse_record("{}").unwrap_err().contains("s3Bucket"));
        assert!(parse_record("not json").is_err());
    }

    #[test]
    fn an_archive_is_only_as_analysed_as_its_worst_member() {
        let member = json!({
            "resourcesAffected": {
                "s3Bucket": {"name": "scan"},
                "s3Object": {"key": "bundle.zip", "size": 99,
                             "embeddedFileDetails": {"filePath": "inner/photo.png"}},
            },
            "classificationDetails": {"result": {"status": {"code": "SKIPPED", "reason": "UNSUPPORTED_FILE_TYPE_EXCEPTION"}}},
        })
        .to_string();
        let text = [
            record("bundle.zip", "COMPLETE", None),
            member,
            String::new(),
        ]
        .join("\n");
        let mut results = JobResults::default();
        results.add("scan", parse_file(&text).unwrap());
        let bundle = &results.objects["bundle.zip"];
        assert_eq!(bundle.status, Status::Partial);
        assert_eq!(
            bundle.reasons,
            vec!["inner/photo.png: UNSUPPORTED_FILE_TYPE_EXCEPTION"]
        );
        assert_eq!(bundle.size, 99);
    }

    #[test]
    fn records_of_other_buckets_are_ignored_and_the_worst_status_wins() {
        let other = record("x", "COMPLETE", None).replace("\"scan\"", "\"elsewhere\"");
        let text = [
            record("a", "COMPLETE", None),
            record("a", "PARTIAL", Some("TIME_CUT_OFF_REACHED")),
            other,
        ]
        .join("\n");
        let mut results = JobResults::default();
        results.add("scan", parse_file(&text).unwrap());
        assert_eq!(results.objects.len(), 1);
        assert_eq!(results.objects["a"].status, Status::Partial);
        let err = parse_file(&format!("{}\n{{", record("a", "COMPLETE", None))).unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
    }

    #[test]
    fn files_are_gzip_and_anything_else_is_refused() {
        use flate2::Compression;
        use flate2::write::GzEncoder;
        use std::io::Write;
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(b"{\"a\":1}\n").unwrap();
        let bytes = encoder.finish().unwrap();
        assert_eq!(decompress(&bytes).unwrap(), "{\"a\":1}\n");
        assert!(decompress(b"plain text").is_err());
    }

    #[test]
    fn the_configure_command_names_the_bucket_and_key() {
        let command = configure_command("eu-west-1", "results", "arn:aws:kms:eu-west-1:1:key/k");
        assert!(
            command.starts_with(
                "aws macie2 put-classification-export-configuration --region eu-west-1 "
            )
        );
        assert!(command.contains("bucketName=results"));
        assert!(command.contains("kmsKeyArn=arn:aws:kms:eu-west-1:1:key/k"));
    }

    fn flagged(key: &str, route: Route) -> FlaggedObject {
        FlaggedObject {
            key: key.into(),
            size: 1,
            highest_severity: crate::macie::severity::Severity::Low,
            finding_types: vec![],
            detections: vec![],
            finding_ids: vec!["f".into()],
            route,
            incomplete_analysis: None,
        }
    }

    fn results(lines: &[String]) -> JobResults {
        let mut results = JobResults {
            files: 1,
            ..JobResults::default()
        };
        results.add("scan", parse_file(&lines.join("\n")).unwrap());
        results
    }

    #[test]
    fn only_complete_results_without_findings_count_as_clean() {
        let results = results(&[
            record("clean.csv", "COMPLETE", None),
            record("cards.csv", "COMPLETE", None),
            record("low-partial.csv", "PARTIAL", Some("TIME_CUT_OFF_REACHED")),
            record(
                "photo.png",
                "SKIPPED",
                Some("UNSUPPORTED_FILE_TYPE_EXCEPTION"),
            ),
            record("half.txt", "PARTIAL", None),
        ]);
        let verdicts = verdicts(
            "job",
            vec![
                flagged("cards.csv", Route::Review),
                flagged("low-partial.csv", Route::PassTagged),
            ],
            &results,
        )
        .unwrap();
        assert_eq!(verdicts.analysed, vec!["clean.csv"]);
        // A low finding in a partly read object is held: the rest was never looked at.
        let partial = &verdicts.flagged[1];
        assert_eq!(partial.route, Route::Review);
        assert_eq!(
            partial.incomplete_analysis.as_deref(),
            Some("TIME_CUT_OFF_REACHED")
        );
        assert_eq!(verdicts.flagged[0].incomplete_analysis, None);
        let not_analysed: Vec<_> = verdicts
            .not_analysed
            .iter()
            .map(|o| (o.key.as_str(), o.status, o.reasons.join(",")))
            .collect();
        assert_eq!(
            not_analysed,
            vec![
                (
                    "half.txt",
                    NotAnalysedStatus::Partial,
                    "Macie gave no reason".to_owned()
                ),
                (
                    "photo.png",
                    NotAnalysedStatus::Skipped,
                    "UNSUPPORTED_FILE_TYPE_EXCEPTION".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn missing_results_are_waited_for() {
        let none = JobResults::default();
        let err = verdicts("job", vec![], &none).unwrap_err();
        assert_eq!(err.name(), "DiscoveryResultsIncomplete");
        let some = results(&[record("a", "COMPLETE", None)]);
        let err = verdicts("job", vec![flagged("b", Route::Review)], &some).unwrap_err();
        assert_eq!(err.name(), "DiscoveryResultsIncomplete");
        assert!(err.to_string().contains("\"b\""), "{err}");
    }
}
