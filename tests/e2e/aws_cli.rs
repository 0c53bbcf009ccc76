//! The AWS CLI works against the local stack unmodified: the commands the README shows.
//! CI installs the CLI and sets MACIE_PIPELINE_REQUIRE_AWS_CLI=1, so there a missing CLI fails
//! the test; elsewhere the test says it was skipped.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use e2e::macie_pipeline_local::s3::SECRET_ACCESS_KEY;
use e2e::{Bucket, Gate, http, link_after};
use macie_pipeline::macie::results::configure_command;
use serde_json::Value;

fn aws_cli() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MACIE_PIPELINE_AWS_CLI") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("aws"))
            .find(|candidate| candidate.is_file())
    })
}

async fn aws(cli: &PathBuf, gate: &Gate, args: &[&str]) -> String {
    let empty = gate.dir.path().join("no-aws-config");
    let output = tokio::process::Command::new(cli)
        .arg("--endpoint-url")
        .arg(gate.stack.endpoint())
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CA_BUNDLE", gate.stack.ca_path())
        .env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
        .output()
        .await
        .expect("the AWS CLI runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "aws {}: {}\n{stdout}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The CLI, or `None` where it is not required and missing (the test then says it skipped).
fn required_cli() -> Option<PathBuf> {
    let cli = aws_cli();
    if cli.is_none() {
        assert!(
            std::env::var("MACIE_PIPELINE_REQUIRE_AWS_CLI").is_err(),
            "the AWS CLI is required here but was not found (set MACIE_PIPELINE_AWS_CLI or put aws on PATH)"
        );
        eprintln!("skipped: no AWS CLI found");
    }
    cli
}

/// Splits a documented shell command into arguments: words, with single quotes grouping.
fn shell_words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in command.chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_documented_cli_step_sets_the_discovery_results_location() {
    let Some(cli) = required_cli() else {
        return;
    };
    let gate = Gate::start_with(|config| config.configure_discovery_results = false).await;
    let none = aws(
        &cli,
        &gate,
        &["macie2", "get-classification-export-configuration"],
    )
    .await;
    // Macie answers `{}` when nothing is configured, which the CLI prints as nothing.
    assert!(none.trim().is_empty(), "{none}");

    // The command the template's ConfigureDiscoveryResultsCommand output and the failure
    // message give, run as a user would paste it.
    let (bucket, key) = gate.stack.deployment().discovery_results.clone();
    let command = configure_command("us-east-1", &bucket, &key);
    let words = shell_words(&command);
    assert_eq!(words[0], "aws");
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    aws(&cli, &gate, &args).await;
    let set: Value = serde_json::from_str(
        &aws(
            &cli,
            &gate,
            &["macie2", "get-classification-export-configuration"],
        )
        .await,
    )
    .unwrap();
    assert_eq!(set["configuration"]["s3Destination"]["bucketName"], bucket);
    assert_eq!(set["configuration"]["s3Destination"]["kmsKeyArn"], key);

    gate.upload("clean.csv", "region,units\nnorth,1\n", &[], &[])
        .await;
    let arn = gate
        .start_run("configured", serde_json::json!({"id": "configured"}))
        .await;
    gate.ends_with(&arn, "SUCCEEDED").await;
    assert_eq!(gate.keys(Bucket::ScannedData).await, vec!["clean.csv"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_aws_cli_drives_the_gate_unmodified() {
    let Some(cli) = required_cli() else {
        return;
    };
    let gate = Gate::start().await;
    let raw = gate.bucket(Bucket::Raw);
    let scanned = gate.bucket(Bucket::ScannedData);
    let file = gate.dir.path().join("upload.csv");
    std::fs::write(&file, "region,units\nnorth,1\n").unwrap();
    let key = "incoming/2026 11/data+1%.csv";

    aws(
        &cli,
        &gate,
        &[
            "s3",
            "cp",
            file.to_str().unwrap(),
            &format!("s3://{raw}/{key}"),
        ],
    )
    .await;
    let listing = aws(
        &cli,
        &gate,
        &["s3", "ls", &format!("s3://{raw}/"), "--recursive"],
    )
    .await;
    assert!(listing.contains(key), "{listing}");

    let started = aws(
        &cli,
        &gate,
        &[
            "stepfunctions",
            "start-execution",
            "--state-machine-arn",
            gate.stack.state_machine_arn(),
            "--name",
            "cli-run",
            "--input",
            r#"{"id":"cli-run"}"#,
        ],
    )
    .await;
    let arn = serde_json::from_str::<Value>(&started).unwrap()["executionArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let start = Instant::now();
    loop {
        let described: Value = serde_json::from_str(
            &aws(
                &cli,
                &gate,
                &[
                    "stepfunctions",
                    "describe-execution",
                    "--execution-arn",
                    &arn,
                ],
            )
            .await,
        )
        .unwrap();
        if described["status"] != "RUNNING" {
            assert_eq!(described["status"], "SUCCEEDED", "{described}");
            assert!(described["startDate"].is_string() || described["startDate"].is_number());
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the run did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let listing = aws(
        &cli,
        &gate,
        &["s3", "ls", &format!("s3://{scanned}/"), "--recursive"],
    )
    .await;
    assert!(listing.contains(key), "{listing}");
    let tagging: Value = serde_json::from_str(
        &aws(
            &cli,
            &gate,
            &[
                "s3api",
                "get-object-tagging",
                "--bucket",
                &scanned,
                "--key",
                key,
            ],
        )
        .await,
    )
    .unwrap();
    assert_eq!(
        tagging["TagSet"][0],
        serde_json::json!({"Key": "WorkflowId", "Value": "cli-run"})
    );
    let downloaded = gate.dir.path().join("download.csv");
    aws(
        &cli,
        &gate,
        &[
            "s3",
            "cp",
            &format!("s3://{scanned}/{key}"),
            downloaded.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(downloaded).unwrap(),
        "region,units\nnorth,1\n"
    );
}

/// The CLI's JSON output of `args`.
async fn aws_json(cli: &PathBuf, gate: &Gate, args: &[&str]) -> Value {
    serde_json::from_str(&aws(cli, gate, args).await).expect("the CLI printed JSON")
}

/// Starts an execution with the CLI and waits for it to reach `state` or to end; returns the
/// execution ARN.
async fn cli_run(cli: &PathBuf, gate: &Gate, name: &str) -> String {
    let input = format!(r#"{{"id":"{name}"}}"#);
    let started = aws_json(
        cli,
        gate,
        &[
            "stepfunctions",
            "start-execution",
            "--state-machine-arn",
            gate.stack.state_machine_arn(),
            "--name",
            name,
            "--input",
            &input,
        ],
    )
    .await;
    started["executionArn"].as_str().unwrap().to_owned()
}

async fn cli_status(cli: &PathBuf, gate: &Gate, arn: &str) -> String {
    let described = aws_json(
        cli,
        gate,
        &[
            "stepfunctions",
            "describe-execution",
            "--execution-arn",
            arn,
        ],
    )
    .await;
    described["status"].as_str().unwrap().to_owned()
}

async fn cli_until_succeeded(cli: &PathBuf, gate: &Gate, arn: &str) {
    let start = Instant::now();
    loop {
        match cli_status(cli, gate, arn).await.as_str() {
            "RUNNING" => {}
            "SUCCEEDED" => return,
            other => panic!("{arn} ended {other}\n{}", gate.explain(arn)),
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{arn} still running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The user's scenario from the "same key, many versions" issue, with the CLI only (and the
/// emailed link for the approval): v1 of `daily/export.csv` with two SSNs is held by run-1, v2
/// without sensitive data passes in run-2, then run-1 is approved. scanned-data ends with v2,
/// and v1 is recoverable in manual-review and reported as superseded.
async fn a_rewritten_export_keeps_its_newest_version(versioning: bool) {
    let Some(cli) = required_cli() else {
        return;
    };
    let gate = Gate::start_with(|config| {
        if versioning {
            config
                .parameters
                .insert("BucketVersioning".into(), "Enabled".into());
        }
    })
    .await;
    let (raw, review, scanned) = (
        gate.bucket(Bucket::Raw),
        gate.bucket(Bucket::ManualReview),
        gate.bucket(Bucket::ScannedData),
    );
    let v1 = gate.dir.path().join("v1.csv");
    std::fs::write(&v1, "name,ssn\nAda,ssn 123-45-6789\nBob,ssn 219-09-9999\n").unwrap();
    let v2 = gate.dir.path().join("v2.csv");
    std::fs::write(&v2, "name,city\nAda,Lyon\nBob,Turin\n").unwrap();
    let key = "daily/export.csv";
    let raw_uri = format!("s3://{raw}/{key}");

    aws(&cli, &gate, &["s3", "cp", v1.to_str().unwrap(), &raw_uri]).await;
    let run1 = cli_run(&cli, &gate, "run-1").await;
    let request = {
        let start = Instant::now();
        loop {
            if let Some(email) = gate.emails().into_iter().find(|e| e.is_review_request()) {
                break email;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no review request"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    gate.reaches(&run1, "triggerManualApproval").await;

    aws(&cli, &gate, &["s3", "cp", v2.to_str().unwrap(), &raw_uri]).await;
    let run2 = cli_run(&cli, &gate, "run-2").await;
    cli_until_succeeded(&cli, &gate, &run2).await;

    let approved = http::decide(&link_after(&request.message, "Release all")).await;
    assert_eq!(approved.status(), 200);
    cli_until_succeeded(&cli, &gate, &run1).await;

    let download = |bucket: String, name: &'static str| {
        let (cli, gate) = (&cli, &gate);
        async move {
            let to = gate.dir.path().join(name);
            aws(
                cli,
                gate,
                &[
                    "s3",
                    "cp",
                    &format!("s3://{bucket}/{key}"),
                    to.to_str().unwrap(),
                ],
            )
            .await;
            std::fs::read(to).unwrap()
        }
    };
    assert_eq!(
        download(scanned.clone(), "out.csv").await,
        std::fs::read(&v2).unwrap()
    );
    assert_eq!(
        download(review.clone(), "kept.csv").await,
        std::fs::read(&v1).unwrap()
    );
    let listing = aws(
        &cli,
        &gate,
        &["s3", "ls", &format!("s3://{scanned}/"), "--recursive"],
    )
    .await;
    assert_eq!(listing.lines().count(), 1, "{listing}");

    let notice = gate
        .emails()
        .into_iter()
        .find(|e| {
            e.subject
                .as_deref()
                .is_some_and(|s| s.contains("older versions kept aside"))
        })
        .expect("a notice of the version kept aside");
    assert!(notice.message.contains(key) && notice.message.contains(&review));
    let page = http::get(&link_after(&request.message, "Release all")).await;
    assert!(
        page.body().contains(&format!("s3://{review}/{key}")),
        "{}",
        page.body()
    );

    if versioning {
        // scanned-data's only version is v2: v1 never replaced it, not even for a moment.
        let versions = aws_json(
            &cli,
            &gate,
            &["s3api", "list-object-versions", "--bucket", &scanned],
        )
        .await;
        assert_eq!(
            versions["Versions"].as_array().map(Vec::len),
            Some(1),
            "{versions}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rewritten_export_keeps_its_newest_version_through_the_cli() {
    a_rewritten_export_keeps_its_newest_version(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rewritten_export_keeps_its_newest_version_through_the_cli_with_versioning() {
    a_rewritten_export_keeps_its_newest_version(true).await;
}

/// A landing bucket and a producer's key made with the CLI after the stack is up: the object
/// under that key stays where it landed until the statement the alert gives is added to the
/// key's policy with `aws kms put-key-policy`; the next run moves it under the stack's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_landing_bucket_and_a_producers_key_made_with_the_cli() {
    let Some(cli) = required_cli() else {
        return;
    };
    let gate = Gate::start_with(|config| {
        config
            .parameters
            .insert("BucketEncryption".into(), "SSE-KMS".into());
        config
            .parameters
            .insert("RawBucketName".into(), crate::landing::LANDING.into());
    })
    .await;
    aws(
        &cli,
        &gate,
        &["s3", "mb", &format!("s3://{}", crate::landing::LANDING)],
    )
    .await;
    let key = aws_json(
        &cli,
        &gate,
        &["kms", "create-key", "--description", "a producer's key"],
    )
    .await["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = gate.dir.path().join("orders.csv");
    std::fs::write(&file, "order,total\n1,20\n").unwrap();
    let file = file.to_string_lossy().into_owned();
    aws(
        &cli,
        &gate,
        &[
            "s3",
            "cp",
            &file,
            &format!("s3://{}/orders.csv", crate::landing::LANDING),
            "--sse",
            "aws:kms",
            "--sse-kms-key-id",
            &key,
        ],
    )
    .await;

    let first = cli_run(&cli, &gate, "cli-kms-1").await;
    let start = Instant::now();
    while cli_status(&cli, &gate, &first).await == "RUNNING" {
        assert!(start.elapsed() < Duration::from_secs(60), "still running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cli_status(&cli, &gate, &first).await, "FAILED");
    assert_eq!(gate.keys(Bucket::Raw).await, vec!["orders.csv"]);
    let alert = gate
        .emails()
        .into_iter()
        .find(|email| email.message.contains(&key))
        .expect("the alert names the key");
    assert!(!alert.message.contains("\\\""), "{}", alert.message);
    let text = &alert.message;
    let from = text
        .find("{\"Sid\": \"SensitiveDataGateTakesObjects\"")
        .expect("the alert gives the statement");
    let statement: Value = serde_json::Deserializer::from_str(&text[from..])
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    let policy = aws(
        &cli,
        &gate,
        &[
            "kms",
            "get-key-policy",
            "--key-id",
            &key,
            "--policy-name",
            "default",
            "--query",
            "Policy",
            "--output",
            "text",
        ],
    )
    .await;
    let mut policy: Value = serde_json::from_str(policy.trim()).unwrap();
    policy["Statement"].as_array_mut().unwrap().push(statement);
    aws(
        &cli,
        &gate,
        &[
            "kms",
            "put-key-policy",
            "--key-id",
            &key,
            "--policy-name",
            "default",
            "--policy",
            &policy.to_string(),
        ],
    )
    .await;

    let second = cli_run(&cli, &gate, "cli-kms-2").await;
    cli_until_succeeded(&cli, &gate, &second).await;
    let head = aws_json(
        &cli,
        &gate,
        &[
            "s3api",
            "head-object",
            "--bucket",
            &gate.bucket(Bucket::ScannedData),
            "--key",
            "orders.csv",
        ],
    )
    .await;
    assert_eq!(head["ServerSideEncryption"], "aws:kms");
    assert_ne!(
        head["SSEKMSKeyId"],
        key.as_str(),
        "copied under the stack's key"
    );
    assert!(gate.keys(Bucket::Raw).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_makes_a_bus_puts_events_and_tests_patterns_against_the_gates_events() {
    let Some(cli) = required_cli() else {
        return;
    };
    let gate = Gate::start().await;
    let made: Value = serde_json::from_str(
        &aws(
            &cli,
            &gate,
            &["events", "create-event-bus", "--name", "gate-events"],
        )
        .await,
    )
    .unwrap();
    assert_eq!(
        made["EventBusArn"],
        "arn:aws:events:us-east-1:000000000000:event-bus/gate-events"
    );
    // A producer's events: one accepted, one with a source only AWS may use refused on its own.
    let entries = serde_json::json!([
        {"Source": "acme.ingest", "DetailType": "Batch Landed", "Detail": "{\"files\": 3}",
         "EventBusName": "gate-events"},
        {"Source": "aws.s3", "DetailType": "Object Created", "Detail": "{}", "EventBusName": "gate-events"},
    ]);
    let put: Value = serde_json::from_str(
        &aws(
            &cli,
            &gate,
            &["events", "put-events", "--entries", &entries.to_string()],
        )
        .await,
    )
    .unwrap();
    assert_eq!(put["FailedEntryCount"], 1);
    assert!(put["Entries"][0]["EventId"].is_string());
    assert_eq!(
        put["Entries"][1]["ErrorCode"],
        "NotAuthorizedForSourceException"
    );
    let logged = e2e::macie_pipeline_local::events::logged(
        &gate.stack.data_dir().join("events/buses/gate-events.jsonl"),
    );
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["detail"], serde_json::json!({"files": 3}));

    // The README's pattern test, on the event a clean run ends with.
    gate.upload("a.txt", "fine", &[], &[]).await;
    let arn = gate
        .start_run("cli-events", serde_json::json!({"id": "cli-events"}))
        .await;
    assert_eq!(gate.finished(&arn).await.status.as_str(), "SUCCEEDED");
    let last = gate.events().pop().expect("the run's event");
    for (pattern, matched) in [
        (r#"{"detail-type": [{"prefix": "Run"}]}"#, true),
        (r#"{"detail-type": [{"prefix": "Review"}]}"#, false),
    ] {
        let answer: Value = serde_json::from_str(
            &aws(
                &cli,
                &gate,
                &[
                    "events",
                    "test-event-pattern",
                    "--event-pattern",
                    pattern,
                    "--event",
                    &last.to_string(),
                ],
            )
            .await,
        )
        .unwrap();
        assert_eq!(answer["Result"], matched, "{pattern}");
    }
}

/// With `TriggerMode=ObjectCreated`, files copied to raw with `aws s3 cp` are gated by
/// themselves: nobody starts a run. The bucket's EventBridge setting and the arrival queues are
/// what the CLI shows, and turning the setting off stops the runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_copied_with_the_cli_are_gated_with_no_run_started_by_hand() {
    let Some(cli) = required_cli() else {
        return;
    };
    let gate = Gate::start_with(|config| {
        for (name, value) in [
            ("TriggerMode", "ObjectCreated"),
            ("ScanSchedule", "disabled"),
        ] {
            config.parameters.insert(name.into(), value.into());
        }
    })
    .await;
    let raw = gate.bucket(Bucket::Raw);
    let notification = aws_json(
        &cli,
        &gate,
        &[
            "s3api",
            "get-bucket-notification-configuration",
            "--bucket",
            &raw,
        ],
    )
    .await;
    assert!(
        notification.get("EventBridgeConfiguration").is_some(),
        "{notification}"
    );
    let files = gate.dir.path().join("export");
    std::fs::create_dir_all(&files).unwrap();
    for index in 0..9 {
        std::fs::write(files.join(format!("part-{index}.csv")), "id,units\n1,2\n").unwrap();
    }
    std::fs::write(
        files.join("cards.csv"),
        "customer,card\nAda,4111 1111 1111 1111\n",
    )
    .unwrap();
    aws(
        &cli,
        &gate,
        &[
            "s3",
            "cp",
            files.to_str().unwrap(),
            &format!("s3://{raw}/export/"),
            "--recursive",
        ],
    )
    .await;
    let start = Instant::now();
    while (
        gate.keys(Bucket::ScannedData).await.len(),
        gate.keys(Bucket::ManualReview).await.len(),
    ) != (9, 1)
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "raw {:?}, scanned-data {:?}",
            gate.keys(Bucket::Raw).await,
            gate.keys(Bucket::ScannedData).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gate.keys(Bucket::Raw).await.is_empty());
    // Every run was the pipe's: its input is a batch, not a hand-made {"id": ...}.
    for execution in gate.executions().await {
        let described = gate.describe(&execution.execution_arn).await;
        assert!(
            described
                .input
                .as_deref()
                .unwrap_or_default()
                .starts_with('[')
        );
    }
    let dead_letter = format!(
        "{}-ArrivalDeadLetterQueue",
        e2e::macie_pipeline_local::deployment::STACK
    );
    let url = aws_json(
        &cli,
        &gate,
        &["sqs", "get-queue-url", "--queue-name", &dead_letter],
    )
    .await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let attributes = aws_json(
        &cli,
        &gate,
        &[
            "sqs",
            "get-queue-attributes",
            "--queue-url",
            &url,
            "--attribute-names",
            "ApproximateNumberOfMessages",
        ],
    )
    .await;
    assert_eq!(attributes["Attributes"]["ApproximateNumberOfMessages"], "0");

    // Off, S3 sends EventBridge nothing for a new upload.
    aws(
        &cli,
        &gate,
        &[
            "s3api",
            "put-bucket-notification-configuration",
            "--bucket",
            &raw,
            "--notification-configuration",
            "{}",
        ],
    )
    .await;
    aws(
        &cli,
        &gate,
        &[
            "s3",
            "cp",
            files.join("part-0.csv").to_str().unwrap(),
            &format!("s3://{raw}/late.csv"),
        ],
    )
    .await;
    let s3_events = || {
        gate.bus_events("default")
            .into_iter()
            .filter(|event| event["source"] == "aws.s3")
            .count()
    };
    assert_eq!(
        s3_events(),
        10,
        "one Object Created event an upload, none once off"
    );
}
