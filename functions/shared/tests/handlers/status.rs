//! checkMacieStatus.

use std::time::Duration;

use aws_sdk_macie2::operation::describe_classification_job::DescribeClassificationJobOutput;
use aws_sdk_macie2::types::{JobStatus, LastRunErrorStatus, LastRunErrorStatusCode};
use aws_smithy_mocks::mock;
use aws_smithy_types::DateTime;
use macie_pipeline::Deadline;
use macie_pipeline::config::StatusConfig;
use macie_pipeline::handlers::check_macie_status::CheckMacieStatus;
use macie_pipeline::lambda::invoke;
use serde_json::{Value, json};

use crate::client;
use crate::mocks::{Calls, json_error};

async fn status_of(output: DescribeClassificationJobOutput) -> Value {
    let calls = Calls::default();
    let describe = mock!(aws_sdk_macie2::Client::describe_classification_job)
        .then_output(move || output.clone());
    let handler = CheckMacieStatus {
        macie: client!(aws_sdk_macie2, calls, [describe]),
        config: StatusConfig {
            job_timeout: Duration::from_secs(3600),
        },
    };
    let value = invoke(
        &handler,
        json!({"jobId": "j"}),
        Deadline::after(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    calls.assert_declared_for("CheckMacieStatus");
    value
}

fn job(status: JobStatus) -> DescribeClassificationJobOutput {
    DescribeClassificationJobOutput::builder()
        .job_status(status)
        .created_at(DateTime::from(std::time::SystemTime::now()))
        .build()
}

#[tokio::test]
async fn statuses_map_to_what_the_run_does_next() {
    assert_eq!(
        status_of(job(JobStatus::Complete)).await["status"],
        "COMPLETE"
    );
    assert_eq!(
        status_of(job(JobStatus::Running)).await["status"],
        "IN_PROGRESS"
    );
    assert_eq!(
        status_of(job(JobStatus::Paused)).await["status"],
        "IN_PROGRESS"
    );
    for stopped in [JobStatus::Cancelled, JobStatus::UserPaused] {
        let value = status_of(job(stopped.clone())).await;
        assert_eq!(value["status"], "STOPPED");
        assert_eq!(value["jobStatus"], stopped.as_str());
        assert!(!value["reason"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_complete_job_that_reported_an_error_is_not_clean() {
    let mut output = job(JobStatus::Complete);
    output.last_run_error_status = Some(
        LastRunErrorStatus::builder()
            .code(LastRunErrorStatusCode::Error)
            .build(),
    );
    assert_eq!(status_of(output).await["status"], "STOPPED");
}

#[tokio::test]
async fn a_describe_failure_is_an_error() {
    let calls = Calls::default();
    let describe = mock!(aws_sdk_macie2::Client::describe_classification_job)
        .then_http_response(|| json_error(404, "ResourceNotFoundException"));
    let handler = CheckMacieStatus {
        macie: client!(aws_sdk_macie2, calls, [describe]),
        config: StatusConfig {
            job_timeout: Duration::from_secs(3600),
        },
    };
    let err = invoke(
        &handler,
        json!({"jobId": "j"}),
        Deadline::after(Duration::from_secs(60)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.name(), "AwsRequestFailed");
    assert!(
        err.to_string().contains("ResourceNotFoundException"),
        "{err}"
    );
}
