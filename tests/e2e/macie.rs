//! The local Macie through the real SDK and the gate: custom data identifiers, allow lists,
//! and the job settings the template passes on.

use aws_sdk_macie2::types::{AllowListCriteria, DataIdentifierSeverity, SeverityLevel};
use e2e::macie_pipeline_local::stack::LocalStack;
use e2e::{Bucket, Gate, http, link_after, test_config};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn custom_identifiers_and_allow_lists_shape_what_needs_review() {
    let gate = Gate::start().await;
    let part = gate
        .macie
        .create_custom_data_identifier()
        .name("internal-part-number")
        .regex("P-[A-Z]{2}[0-9]{4}")
        .keywords("part")
        .maximum_match_distance(20)
        .severity_levels(
            SeverityLevel::builder()
                .occurrences_threshold(1)
                .severity(DataIdentifierSeverity::High)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .custom_data_identifier_id
        .unwrap();
    let batch = gate
        .macie
        .batch_get_custom_data_identifiers()
        .ids(&part)
        .ids("missing-id")
        .send()
        .await
        .unwrap();
    assert_eq!(batch.custom_data_identifiers().len(), 1);
    assert_eq!(batch.not_found_identifier_ids(), ["missing-id".to_owned()]);
    // The test card number below is a documented test value; the allow list keeps it out.
    let allow = gate
        .macie
        .create_allow_list()
        .name("test-cards")
        .criteria(
            AllowListCriteria::builder()
                .regex("^4111[ -]?1111[ -]?1111[ -]?1111$")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .id
        .unwrap();
    assert_eq!(
        gate.macie
            .get_allow_list()
            .id(&allow)
            .send()
            .await
            .unwrap()
            .status()
            .unwrap()
            .code()
            .unwrap()
            .as_str(),
        "OK"
    );

    // Redeploy with the identifiers, as a deployer would set the template parameters.
    let Gate { stack, dir, .. } = gate;
    stack.shutdown().await;
    let mut config = test_config(dir.path());
    config
        .parameters
        .insert("CustomDataIdentifierIds".into(), part.clone());
    config.parameters.insert("AllowListIds".into(), allow);
    let stack = LocalStack::start(config).await.unwrap();
    let aws = stack.sdk_config().await;
    let gate = Gate {
        s3: aws_sdk_s3::Client::new(&aws),
        sfn: aws_sdk_sfn::Client::new(&aws),
        macie: aws_sdk_macie2::Client::new(&aws),
        stack,
        dir,
    };
    gate.upload("parts.txt", "order for part P-AB1234 shipped", &[], &[])
        .await;
    gate.upload("test-card.txt", "card 4111 1111 1111 1111", &[], &[])
        .await;
    let arn = gate.start_run("custom", json!({"id": "wf-custom"})).await;
    let email = gate.approval_email().await;
    assert!(
        email.message.contains("CUSTOM:internal-part-number x1"),
        "{}",
        email.message
    );
    assert!(
        !email.message.contains("test-card.txt"),
        "the allow list keeps the test card out"
    );

    let jobs = gate.macie.list_classification_jobs().send().await.unwrap();
    let job = gate
        .macie
        .describe_classification_job()
        .job_id(jobs.items()[0].job_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(job.custom_data_identifier_ids(), [part]);
    assert_eq!(job.sampling_percentage(), Some(100));
    let findings = gate.macie.list_findings().send().await.unwrap();
    let described = gate
        .macie
        .get_findings()
        .set_finding_ids(Some(findings.finding_ids().to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.findings()[0].r#type().unwrap().as_str(),
        "SensitiveData:S3Object/CustomIdentifier"
    );
    assert_eq!(
        described.findings()[0]
            .severity()
            .unwrap()
            .description()
            .unwrap()
            .as_str(),
        "High"
    );

    http::decide(&link_after(&email.message, "Delete all")).await;
    assert_eq!(gate.finished(&arn).await.status.as_str(), "SUCCEEDED");
    assert_eq!(gate.keys(Bucket::ScannedData).await, vec!["test-card.txt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_findings_refuses_more_than_fifty_ids_and_list_findings_pages() {
    let gate = Gate::start().await;
    let ids: Vec<String> = (0..51).map(|i| format!("f{i}")).collect();
    let err = gate
        .macie
        .get_findings()
        .set_finding_ids(Some(ids))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_macie2::error::ProvideErrorMetadata::code(&err),
        Some("ValidationException")
    );
    let session = gate.macie.get_macie_session().send().await.unwrap();
    assert_eq!(session.status().unwrap().as_str(), "ENABLED");
    for i in 0..60 {
        gate.upload(
            &format!("p/{i:02}.txt"),
            format!("ssn {}-45-6789", 100 + i),
            &[],
            &[],
        )
        .await;
    }
    let arn = gate
        .start_run("many-findings", json!({"id": "wf-findings"}))
        .await;
    let email = gate.approval_email().await;
    assert!(email.message.contains("60 object(s)"));
    let mut pages = gate
        .macie
        .list_findings()
        .max_results(25)
        .into_paginator()
        .send();
    let mut count = 0;
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        assert!(page.finding_ids().len() <= 25);
        count += page.finding_ids().len();
    }
    assert_eq!(count, 60);
    http::decide(&link_after(&email.message, "Release all")).await;
    assert_eq!(gate.finished(&arn).await.status.as_str(), "SUCCEEDED");
    assert_eq!(gate.keys(Bucket::ScannedData).await.len(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_custom_identifier_the_classifier_cannot_use_is_refused_at_creation() {
    let gate = Gate::start().await;
    // Thresholds ascend but severities fall: jobs could not apply it, so it is refused now
    // instead of being left out of every job that names it.
    let refused = gate
        .macie
        .create_custom_data_identifier()
        .name("falling")
        .regex("P-[0-9]{4}")
        .severity_levels(
            SeverityLevel::builder()
                .occurrences_threshold(1)
                .severity(DataIdentifierSeverity::High)
                .build(),
        )
        .severity_levels(
            SeverityLevel::builder()
                .occurrences_threshold(5)
                .severity(DataIdentifierSeverity::Low)
                .build(),
        )
        .send()
        .await
        .expect_err("refused");
    let message = format!("{:?}", refused);
    assert!(message.contains("ValidationException"), "{message}");
    assert!(message.contains("severityLevels"), "{message}");
}
