//! getMacieFindingsCount.

use std::time::Duration;

use aws_sdk_macie2::operation::get_classification_export_configuration::GetClassificationExportConfigurationOutput;
use aws_sdk_macie2::operation::get_findings::GetFindingsOutput;
use aws_sdk_macie2::operation::list_findings::{ListFindingsInput, ListFindingsOutput};
use aws_sdk_macie2::types::{
    ClassificationDetails, ClassificationResult, DefaultDetection, Finding, FindingType,
    ResourcesAffected, S3Bucket, S3Object, SensitiveDataItem, SensitiveDataItemCategory,
    Severity as MacieSeverity, SeverityDescription,
};
use aws_sdk_macie2::types::{ClassificationExportConfiguration, S3Destination};
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::Object as S3ListedObject;
use aws_smithy_mocks::{Rule, mock};
use flate2::Compression;
use flate2::write::GzEncoder;
use macie_pipeline::config::FindingsConfig;
use macie_pipeline::handlers::get_findings_count::{FindingsSummary, GetFindingsCount};
use macie_pipeline::lambda::invoke;
use macie_pipeline::macie::cost::MicroUsdPerGb;
use macie_pipeline::macie::severity::Severity;
use macie_pipeline::manifest::{Manifest, NotAnalysedStatus, Route};
use macie_pipeline::{Deadline, PipelineError};
use serde_json::json;
use std::io::Write;

use crate::client;
use crate::mocks::{Calls, Captured, json_error};

const PAGE: usize = 50;

/// Finding `i`: object `obj-{i}.csv`, every third one High, the rest Low.
fn finding(id: &str) -> Finding {
    let index: usize = id.trim_start_matches("f-").parse().unwrap();
    let (description, score) = if index.is_multiple_of(3) {
        (SeverityDescription::High, 3)
    } else {
        (SeverityDescription::Low, 1)
    };
    Finding::builder()
        .id(id)
        .r#type(FindingType::SensitiveDataS3ObjectFinancial)
        .severity(
            MacieSeverity::builder()
                .description(description)
                .score(score)
                .build(),
        )
        .resources_affected(
            ResourcesAffected::builder()
                .s3_bucket(S3Bucket::builder().name("scan").build())
                .s3_object(
                    S3Object::builder()
                        .key(format!("obj-{index}.csv"))
                        .size(1000)
                        .build(),
                )
                .build(),
        )
        .classification_details(
            ClassificationDetails::builder()
                .job_id("job-1")
                .result(
                    ClassificationResult::builder()
                        .sensitive_data(
                            SensitiveDataItem::builder()
                                .category(SensitiveDataItemCategory::FinancialInformation)
                                .detections(
                                    DefaultDetection::builder()
                                        .r#type("CREDIT_CARD_NUMBER")
                                        .count(4)
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .build()
}

struct Macie {
    calls: Calls,
    lists: Captured<ListFindingsInput>,
    batches: Captured<usize>,
    /// Bodies of the manifests written.
    puts: Captured<Vec<u8>>,
    /// Prefixes the discovery results were listed under.
    result_prefixes: Captured<String>,
    handler: GetFindingsCount,
}

const RESULTS_BUCKET: &str = "results";
const RESULTS_KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/k";

/// One discovery result line: a 1,000-byte object, read in full, in half or not at all.
fn result(key: &str, code: &str, reason: Option<&str>) -> String {
    let classified = match code {
        "COMPLETE" => 1000,
        "PARTIAL" => 500,
        _ => 0,
    };
    json!({
        "resourcesAffected": {"s3Bucket": {"name": "scan"}, "s3Object": {"key": key, "size": 1000}},
        "classificationDetails": {"result": {
            "status": {"code": code, "reason": reason},
            "sizeClassified": classified,
        }},
    })
    .to_string()
}

fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

/// How the account's discovery results look.
struct Results {
    /// The export configuration: (bucket, key ARN), or none configured.
    configured: Option<(&'static str, &'static str)>,
    /// Extra lines beside a COMPLETE result for every object with a finding; `None` for no
    /// results file at all.
    lines: Option<Vec<String>>,
}

impl Results {
    fn complete() -> Self {
        Self {
            configured: Some((RESULTS_BUCKET, RESULTS_KEY)),
            lines: Some(vec![]),
        }
    }
}

fn macie_with(findings: usize, minimum: Severity, drop_one: bool) -> Macie {
    macie_with_results(findings, minimum, drop_one, Results::complete())
}

fn macie_with_results(
    findings: usize,
    minimum: Severity,
    drop_one: bool,
    results: Results,
) -> Macie {
    let calls = Calls::default();
    let (lists, batches, puts, result_prefixes) = (
        Captured::default(),
        Captured::default(),
        Captured::default(),
        Captured::default(),
    );
    let captured = lists.clone();
    let list = mock!(aws_sdk_macie2::Client::list_findings).then_compute_output(
        move |input: &ListFindingsInput| {
            captured.push(input.clone());
            let start: usize = input.next_token().map_or(0, |t| t.parse().unwrap());
            let end = (start + PAGE).min(findings);
            ListFindingsOutput::builder()
                .set_finding_ids(Some((start..end).map(|i| format!("f-{i}")).collect()))
                .set_next_token((end < findings).then(|| end.to_string()))
                .build()
        },
    );
    let captured = batches.clone();
    let get = mock!(aws_sdk_macie2::Client::get_findings).then_compute_output(move |input| {
        captured.push(input.finding_ids().len());
        let mut described: Vec<Finding> =
            input.finding_ids().iter().map(|id| finding(id)).collect();
        if drop_one {
            described.pop();
        }
        GetFindingsOutput::builder()
            .set_findings(Some(described))
            .build()
    });
    let export = export_configuration(results.configured);
    let captured = puts.clone();
    let put = mock!(aws_sdk_s3::Client::put_object).then_compute_output(move |input| {
        captured.push(input.body.bytes().expect("an in-memory body").to_vec());
        PutObjectOutput::builder().build()
    });
    let has_files = results.lines.is_some();
    let captured = result_prefixes.clone();
    let list_results =
        mock!(aws_sdk_s3::Client::list_objects_v2).then_compute_output(move |input| {
            captured.push(input.prefix().unwrap_or_default().to_owned());
            let contents = has_files.then(|| {
                vec![
                    S3ListedObject::builder()
                        .key(format!("{}a.jsonl.gz", input.prefix().unwrap()))
                        .build(),
                ]
            });
            ListObjectsV2Output::builder()
                .set_contents(contents)
                .build()
        });
    let mut lines: Vec<String> = (0..findings)
        .map(|i| result(&format!("obj-{i}.csv"), "COMPLETE", None))
        .collect();
    lines.extend(results.lines.unwrap_or_default());
    let body = gzip(&lines.join("\n"));
    let get_results = mock!(aws_sdk_s3::Client::get_object).then_compute_output(move |_| {
        GetObjectOutput::builder()
            .body(ByteStream::from(body.clone()))
            .build()
    });
    let handler = GetFindingsCount {
        s3: client!(aws_sdk_s3, calls, [put, list_results, get_results]),
        macie: client!(aws_sdk_macie2, calls, [list, get, export]),
        config: FindingsConfig {
            minimum_severity: minimum,
            ..config()
        },
    };
    Macie {
        calls,
        lists,
        batches,
        puts,
        result_prefixes,
        handler,
    }
}

fn export_configuration(configured: Option<(&'static str, &'static str)>) -> Rule {
    mock!(aws_sdk_macie2::Client::get_classification_export_configuration).then_compute_output(
        move |_| {
            GetClassificationExportConfigurationOutput::builder()
                .set_configuration(configured.map(|(bucket, key)| {
                    ClassificationExportConfiguration::builder()
                        .s3_destination(
                            S3Destination::builder()
                                .bucket_name(bucket)
                                .key_prefix("macie-discovery-results")
                                .kms_key_arn(key)
                                .build(),
                        )
                        .build()
                }))
                .build()
        },
    )
}

fn config() -> FindingsConfig {
    FindingsConfig {
        scan_stage_bucket: "scan".into(),
        manifest_bucket: "manifests".into(),
        account_id: "111122223333".into(),
        discovery_results_bucket: RESULTS_BUCKET.into(),
        discovery_results_kms_key_arn: RESULTS_KEY.into(),
        minimum_severity: Severity::Low,
        include_archived: false,
        // An implausible price, so the estimate of a few kilobytes shows in four decimals.
        macie_price: MicroUsdPerGb(1_000_000_000),
    }
}

async fn summarise(macie: &Macie) -> Result<serde_json::Value, PipelineError> {
    invoke(
        &macie.handler,
        json!({"workflowId": "wf-1", "jobId": "job-1"}),
        Deadline::after(Duration::from_secs(600)),
    )
    .await
}

fn written_manifest(macie: &Macie) -> Manifest {
    let puts = macie.puts.all();
    assert_eq!(puts.len(), 1);
    serde_json::from_slice(&puts[0]).unwrap()
}

#[tokio::test]
async fn thousands_of_flagged_objects_stay_out_of_the_state_payload() {
    // The reference returned the whole key list through the state: it fails past 256 KiB.
    let macie = macie_with(5_000, Severity::Low, false);
    let value = summarise(&macie).await.unwrap();
    let size = value.to_string().len();
    assert!(size < 1024, "the step output has {size} bytes");
    let summary: FindingsSummary = serde_json::from_value(value).unwrap();
    assert_eq!(
        (
            summary.finding_count,
            summary.flagged_objects,
            summary.review_objects
        ),
        (5_000, 5_000, 5_000)
    );
    assert_eq!(summary.manifest.bucket, "manifests");
    assert_eq!(
        summary.manifest.key,
        "workflows/wf%2D1/job%2D1/findings.json"
    );

    let manifest = written_manifest(&macie);
    assert_eq!(manifest.objects.len(), 5_000);
    assert_eq!(manifest.workflow_id.as_str(), "wf-1");
    assert_eq!(manifest.objects[0].detections[0].kind, "CREDIT_CARD_NUMBER");
    macie.calls.assert_declared_for("GetFindingsCount");
}

#[tokio::test]
async fn findings_are_read_in_full_in_batches_of_at_most_fifty() {
    let macie = macie_with(120, Severity::Low, false);
    summarise(&macie).await.unwrap();
    let batches = macie.batches.all();
    assert_eq!(batches.iter().sum::<usize>(), 120);
    assert!(batches.iter().all(|n| *n <= 50), "{batches:?}");
    let lists = macie.lists.all();
    assert_eq!(lists.len(), 3, "every ListFindings page is read");
    let criteria = lists[0].finding_criteria().unwrap().criterion().unwrap();
    assert_eq!(
        criteria["classificationDetails.jobId"].eq(),
        ["job-1".to_owned()]
    );
    assert_eq!(
        criteria["archived"].eq(),
        ["false".to_owned()],
        "archived findings are excluded"
    );
}

#[tokio::test]
async fn the_minimum_severity_decides_what_needs_review() {
    let macie = macie_with(9, Severity::High, false);
    let summary: FindingsSummary =
        serde_json::from_value(summarise(&macie).await.unwrap()).unwrap();
    assert_eq!(
        (summary.review_objects, summary.pass_tagged_objects),
        (3, 6)
    );
    assert_eq!(summary.highest_severity, Some(Severity::High));
    let manifest = written_manifest(&macie);
    let review: Vec<&str> = manifest
        .objects
        .iter()
        .filter(|o| o.route == Route::Review)
        .map(|o| o.key.as_str())
        .collect();
    assert_eq!(review, vec!["obj-0.csv", "obj-3.csv", "obj-6.csv"]);
}

#[tokio::test]
async fn no_findings_still_writes_a_manifest_and_reports_zero() {
    let macie = macie_with(0, Severity::Low, false);
    let summary: FindingsSummary =
        serde_json::from_value(summarise(&macie).await.unwrap()).unwrap();
    assert_eq!(summary.review_objects, 0);
    assert_eq!(summary.highest_severity, None);
    assert!(written_manifest(&macie).objects.is_empty());
}

#[tokio::test]
async fn findings_that_cannot_be_described_stop_the_run() {
    let macie = macie_with(10, Severity::Low, true);
    let err = summarise(&macie).await.unwrap_err();
    assert_eq!(err.name(), "UnexpectedFinding");
    assert!(
        macie.puts.all().is_empty(),
        "no manifest from an incomplete read"
    );
}

#[tokio::test]
async fn a_list_failure_is_an_error() {
    let calls = Calls::default();
    let list = mock!(aws_sdk_macie2::Client::list_findings)
        .then_http_response(|| json_error(500, "InternalServerException"));
    let handler = GetFindingsCount {
        s3: client!(aws_sdk_s3, calls, []),
        macie: client!(
            aws_sdk_macie2,
            calls,
            [
                list,
                export_configuration(Some((RESULTS_BUCKET, RESULTS_KEY)))
            ]
        ),
        config: config(),
    };
    let err = invoke(
        &handler,
        json!({"workflowId": "wf-1", "jobId": "job-1"}),
        Deadline::after(Duration::from_secs(60)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.name(), "TransientAwsError");
}

#[tokio::test]
async fn results_are_read_from_the_jobs_prefix_and_skipped_objects_are_held() {
    let macie = macie_with_results(
        3,
        Severity::High,
        false,
        Results {
            lines: Some(vec![
                result("clean.csv", "COMPLETE", None),
                result(
                    "photo.png",
                    "SKIPPED",
                    Some("UNSUPPORTED_FILE_TYPE_EXCEPTION"),
                ),
                result("obj-1.csv", "PARTIAL", Some("TIME_CUT_OFF_REACHED")),
            ]),
            ..Results::complete()
        },
    );
    let summary: FindingsSummary =
        serde_json::from_value(summarise(&macie).await.unwrap()).unwrap();
    // The reviewers' suppression rules are read first, then the job's results.
    assert_eq!(
        macie.result_prefixes.all(),
        vec![
            "false-positives/rules/",
            "macie-discovery-results/AWSLogs/111122223333/Macie/us-east-1/job-1/"
        ]
    );
    // obj-0 is High; obj-1 is Low but only partly analysed, so it is held too; obj-2 passes
    // tagged; photo.png was skipped.
    assert_eq!(
        (
            summary.review_objects,
            summary.pass_tagged_objects,
            summary.not_analysed_objects,
            summary.analysed_clean_objects
        ),
        (3, 1, 1, 1)
    );
    // Billed bytes: 1,000 for each complete record (three objects with findings and
    // clean.csv), 500 for the partial one, nothing for the skipped image.
    assert_eq!(summary.bytes_scanned, 4500);
    assert_eq!(summary.estimated_macie_cost_usd, "0.0042");
    let manifest = written_manifest(&macie);
    assert_eq!(
        (manifest.bytes_scanned, manifest.macie_price),
        (4500, MicroUsdPerGb(1_000_000_000))
    );
    assert_eq!(manifest.analysed, vec!["clean.csv"]);
    assert_eq!(manifest.not_analysed[0].key, "photo.png");
    assert_eq!(manifest.not_analysed[0].status, NotAnalysedStatus::Skipped);
    assert_eq!(
        manifest.not_analysed[0].reasons,
        vec!["UNSUPPORTED_FILE_TYPE_EXCEPTION"]
    );
    let partial = manifest
        .objects
        .iter()
        .find(|o| o.key == "obj-1.csv")
        .unwrap();
    assert_eq!(partial.route, Route::Review);
    assert_eq!(
        partial.incomplete_analysis.as_deref(),
        Some("TIME_CUT_OFF_REACHED")
    );
    macie.calls.assert_declared_for("GetFindingsCount");
}

#[tokio::test]
async fn without_a_results_location_the_run_stops_and_says_how_to_set_it() {
    let macie = macie_with_results(
        2,
        Severity::Low,
        false,
        Results {
            configured: None,
            lines: Some(vec![]),
        },
    );
    let err = summarise(&macie).await.unwrap_err();
    assert_eq!(err.name(), "DiscoveryResultsNotConfigured");
    let message = err.to_string();
    assert!(
        message.contains("aws macie2 put-classification-export-configuration --region us-east-1")
            && message.contains("bucketName=results"),
        "{message}"
    );
    assert!(macie.puts.all().is_empty(), "no manifest without results");
}

#[tokio::test]
async fn a_results_location_this_deployment_cannot_read_is_named() {
    let macie = macie_with_results(
        2,
        Severity::Low,
        false,
        Results {
            configured: Some(("another-teams-bucket", RESULTS_KEY)),
            lines: Some(vec![]),
        },
    );
    let err = summarise(&macie).await.unwrap_err();
    assert_eq!(err.name(), "DiscoveryResultsNotConfigured");
    assert!(
        err.to_string()
            .contains("DiscoveryResultsBucketName=another-teams-bucket"),
        "{err}"
    );
}

#[tokio::test]
async fn results_not_written_yet_are_waited_for() {
    let macie = macie_with_results(
        2,
        Severity::Low,
        false,
        Results {
            lines: None,
            ..Results::complete()
        },
    );
    let err = summarise(&macie).await.unwrap_err();
    assert_eq!(err.name(), "DiscoveryResultsIncomplete");
    assert!(macie.puts.all().is_empty());
}
