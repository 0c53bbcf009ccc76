//! getMacieFindingsCount.

use std::time::Duration;

use aws_sdk_macie2::operation::get_findings::GetFindingsOutput;
use aws_sdk_macie2::operation::list_findings::{ListFindingsInput, ListFindingsOutput};
use aws_sdk_macie2::types::{
    ClassificationDetails, ClassificationResult, DefaultDetection, Finding, FindingType,
    ResourcesAffected, S3Bucket, S3Object, SensitiveDataItem, SensitiveDataItemCategory,
    Severity as MacieSeverity, SeverityDescription,
};
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_smithy_mocks::mock;
use macie_pipeline::config::FindingsConfig;
use macie_pipeline::handlers::get_findings_count::{FindingsSummary, GetFindingsCount};
use macie_pipeline::lambda::invoke;
use macie_pipeline::macie::severity::Severity;
use macie_pipeline::manifest::{Manifest, Route};
use macie_pipeline::{Deadline, PipelineError};
use serde_json::json;

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
    handler: GetFindingsCount,
}

fn macie_with(findings: usize, minimum: Severity, drop_one: bool) -> Macie {
    let calls = Calls::default();
    let (lists, batches, puts) = (
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
    let captured = puts.clone();
    let put = mock!(aws_sdk_s3::Client::put_object).then_compute_output(move |input| {
        captured.push(input.body.bytes().expect("an in-memory body").to_vec());
        PutObjectOutput::builder().build()
    });
    let handler = GetFindingsCount {
        s3: client!(aws_sdk_s3, calls, [put]),
        macie: client!(aws_sdk_macie2, calls, [list, get]),
        config: FindingsConfig {
            scan_stage_bucket: "scan".into(),
            manifest_bucket: "manifests".into(),
            minimum_severity: minimum,
            include_archived: false,
        },
    };
    Macie {
        calls,
        lists,
        batches,
        puts,
        handler,
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
        macie: client!(aws_sdk_macie2, calls, [list]),
        config: FindingsConfig {
            scan_stage_bucket: "scan".into(),
            manifest_bucket: "manifests".into(),
            minimum_severity: Severity::Low,
            include_archived: false,
        },
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
