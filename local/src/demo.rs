//! The demo: sample files with and without sensitive data, uploaded to the raw bucket, one run of
//! the gate printing each state as it is entered, the approval email, the reviewer's click, and
//! where every object ended up.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sfn::types::ExecutionStatus;

use crate::sfn::engine::{HistoryEvent, Observer};
use crate::sns::{Delivered, OnPublish};
use crate::stack::{LocalStack, StackConfig};

/// A sample object.
pub struct Sample {
    pub key: &'static str,
    pub body: Vec<u8>,
    pub tags: &'static [(&'static str, &'static str)],
    pub metadata: &'static [(&'static str, &'static str)],
    /// What it holds, for the printout.
    pub about: &'static str,
}

/// The demo's files: clean ones (text, CSV, JSON, JSON Lines, a Parquet table, a `.tar.gz`),
/// personal and financial data, credentials, an image Macie cannot analyse, and keys with
/// spaces, `+`, `%` and non-ASCII characters.
pub fn samples() -> Vec<Sample> {
    vec![
        Sample {
            key: "clean/sales-2026-11.csv",
            body: "region,units,revenue\nnorth,120,14400\nsouth,87,10440\neast,133,15960\n".into(),
            tags: &[("team", "sales")],
            metadata: &[("source", "erp-export")],
            about: "clean sales figures",
        },
        Sample {
            key: "clean/release notes.txt",
            body: "Release 4.2 ships faster exports and a new dashboard.\n".into(),
            tags: &[],
            metadata: &[],
            about: "clean text, a space in the key",
        },
        Sample {
            key: "clean/événements.json",
            body: "{\"event\":\"login\",\"count\":42}\n".into(),
            tags: &[("lang", "fr")],
            metadata: &[],
            about: "clean JSON, a non-ASCII key",
        },
        Sample {
            key: "customers/customers.csv",
            body: "name,identity,payment\nAda Lovelace,SSN 123-45-6789,card 4111 1111 1111 1111\nAlan Turing,SSN 234-56-7891,card 5555 5555 5555 4444\n".into(),
            tags: &[("team", "crm"), ("retention", "1y")],
            metadata: &[("source", "sftp")],
            about: "social security and credit card numbers",
        },
        Sample {
            key: "config/deploy.env",
            body: "region=eu-west-1\naws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n".into(),
            tags: &[("team", "platform")],
            metadata: &[],
            about: "an AWS secret access key",
        },
        Sample {
            key: "payments/2026+11%batch.txt",
            body: "batch 77 settled\n".into(),
            tags: &[],
            metadata: &[],
            about: "clean, + and % in the key",
        },
        Sample {
            key: "scans/passport-0042.png",
            // A PNG header: Macie does not analyse images, so this cannot count as clean.
            body: b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x02\0\0\0".to_vec(),
            tags: &[("team", "kyc")],
            metadata: &[],
            about: "an image: Macie cannot analyse it",
        },
        Sample {
            key: "exports/orders-2026-11.parquet",
            body: parquet_sample(),
            tags: &[("team", "sales")],
            metadata: &[],
            about: "a clean Parquet table, read column by column",
        },
        Sample {
            key: "archive/reports-2026-11.tar.gz",
            body: archive_sample(),
            tags: &[],
            metadata: &[],
            about: "a clean gzip-compressed TAR of a CSV and a JSON file, each read",
        },
        Sample {
            key: "logs/app.jsonl",
            body: "{\"level\":\"info\",\"msg\":\"started\"}\n{\"level\":\"warn\",\"msg\":\"slow query\"}\n".into(),
            tags: &[],
            metadata: &[],
            about: "clean JSON Lines",
        },
    ]
}

fn parquet_sample() -> Vec<u8> {
    let rows = [
        ["1001", "north", "3"],
        ["1002", "south", "1"],
        ["1003", "east", "7"],
    ];
    let rows = rows
        .iter()
        .map(|row| row.iter().map(|v| (*v).to_owned()).collect());
    macie_classifier::encode::parquet(Vec::new(), &["order", "region", "items"], rows, 1000)
        .expect("the sample Parquet table is written in memory")
}

fn archive_sample() -> Vec<u8> {
    let files = [
        (
            "reports/summary.csv".to_owned(),
            b"region,orders\nnorth,1\nsouth,1\neast,1\n".to_vec(),
        ),
        (
            "reports/meta.json".to_owned(),
            b"{\"generated\": \"2026-11-30\", \"rows\": 3}".to_vec(),
        ),
    ];
    let tar = macie_classifier::encode::tar(Vec::new(), files)
        .expect("the sample archive is written in memory");
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&tar)
        .and_then(|()| gzip.finish())
        .expect("the sample archive is compressed in memory")
}

/// Uploads the samples to the raw bucket through the S3 API.
pub async fn upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    samples: &[Sample],
) -> Result<(), String> {
    for sample in samples {
        let tags: Vec<macie_pipeline::tags::Tag> = sample
            .tags
            .iter()
            .map(|(k, v)| macie_pipeline::tags::Tag::new(*k, *v))
            .collect();
        let mut request = s3
            .put_object()
            .bucket(bucket)
            .key(sample.key)
            .body(ByteStream::from(sample.body.clone()));
        if !tags.is_empty() {
            request = request.tagging(macie_pipeline::tags::encode(&tags));
        }
        for (name, value) in sample.metadata {
            request = request.metadata(*name, *value);
        }
        request.send().await.map_err(|err| {
            format!(
                "upload of {}: {}",
                sample.key,
                aws_smithy_types::error::display::DisplayErrorContext(&err)
            )
        })?;
    }
    Ok(())
}

/// An object where it is: bucket role, key, tags, and the KMS key it is encrypted with
/// (SSE-KMS), if any.
pub struct Placed {
    pub role: String,
    pub key: String,
    pub tags: BTreeMap<String, String>,
    pub kms_key: Option<String>,
}

/// Where every object is.
pub async fn placement(
    s3: &aws_sdk_s3::Client,
    buckets: &[(&str, String)],
) -> Result<Vec<Placed>, String> {
    let mut out = Vec::new();
    for (role, bucket) in buckets {
        let mut pages = s3.list_objects_v2().bucket(bucket).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|err| format!("listing {bucket}: {err}"))?;
            for object in page.contents() {
                let key = object.key().unwrap_or_default().to_owned();
                let tags = s3
                    .get_object_tagging()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|err| format!("tags of {key}: {err}"))?
                    .tag_set()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()))
                    .collect();
                let kms_key = s3
                    .head_object()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|err| format!("head of {key}: {err}"))?
                    .ssekms_key_id()
                    .map(str::to_owned);
                out.push(Placed {
                    role: (*role).to_owned(),
                    key,
                    tags,
                    kms_key,
                });
            }
        }
    }
    Ok(out)
}

/// Waits until an execution is no longer running, printing a dot every few seconds.
pub async fn wait_for_end(
    sfn: &aws_sdk_sfn::Client,
    arn: &str,
    limit: Duration,
) -> Result<aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput, String> {
    let start = Instant::now();
    let mut last_dot = Instant::now();
    loop {
        let described = sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .map_err(|err| format!("DescribeExecution: {err}"))?;
        if described.status != ExecutionStatus::Running {
            return Ok(described);
        }
        if start.elapsed() > limit {
            return Err(format!("the run is still going after {limit:?}"));
        }
        if last_dot.elapsed() > Duration::from_secs(5) {
            print!(".");
            let _ = std::io::stdout().flush();
            last_dot = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The reviewer's choice in the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
}

/// Runs the demo on a stack configured by `config`: uploads the samples, starts a run, decides
/// as `decide` says (or waits for a person to click), and prints where every object ended up.
/// `temporary` says the data directory goes away afterwards. True when the run succeeded.
pub async fn run(
    mut config: StackConfig,
    decide: Option<Decision>,
    temporary: bool,
) -> Result<bool, String> {
    let start = Instant::now();
    config.observer = Some(state_printer(start));
    config.on_publish = Some(email_printer());
    config.on_event = Some(event_printer(false));
    let stack = LocalStack::start(config).await?;
    let aws = stack.sdk_config().await;
    let s3 = aws_sdk_s3::Client::new(&aws);
    let sfn = aws_sdk_sfn::Client::new(&aws);
    let deployment = stack.deployment();
    let raw = deployment.bucket("DataPipelineRawBucket").to_owned();
    println!("Sensitive-data gate, local demo");
    println!(
        "   endpoint {}   data {}",
        stack.endpoint(),
        stack.data_dir().display()
    );
    if let Some(key) = deployment
        .bucket_encryption
        .get(&raw)
        .and_then(|encryption| encryption.kms_key.as_deref())
    {
        println!("   buckets encrypted with SSE-KMS, key {key}");
    }
    println!();

    let samples = samples();
    println!("1. Uploading {} objects to s3://{raw}", samples.len());
    for sample in &samples {
        println!("   {:<32} {}", sample.key, sample.about);
    }
    upload(&s3, &raw, &samples).await?;

    let name = format!("demo-{}", uuid::Uuid::new_v4().simple());
    println!();
    println!("2. Starting execution {name} (each state as it is entered):");
    let arn = sfn
        .start_execution()
        .state_machine_arn(stack.state_machine_arn())
        .name(&name)
        .input(serde_json::json!({"id": name}).to_string())
        .send()
        .await
        .map_err(|err| format!("StartExecution: {err}"))?
        .execution_arn;

    // The approval request arrives in the outbox; then someone has to decide.
    let outbox = stack.outbox().to_owned();
    let decided = tokio::spawn(async move {
        let email = loop {
            let review = crate::sns::delivered_in(&outbox)
                .into_iter()
                .find(|e| e.is_review_request());
            if let Some(email) = review {
                break email;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (label, button) = match decide {
            Some(Decision::Approve) => ("Release all", "release every held object"),
            Some(Decision::Deny) => ("Delete all", "delete every held object"),
            None => {
                let link = link_after(&email.message, "Decide each object").unwrap_or_default();
                println!(
                    "3. Waiting for the reviewer. Open one of the links above in a browser, e.g."
                );
                println!("   {link}");
                println!("   (the page asks you to confirm; Ctrl-C stops the demo)");
                return;
            }
        };
        let Some(link) = link_after(&email.message, label) else {
            return;
        };
        println!(
            "3. The reviewer opens the {label} link, enters a name and records the decisions:"
        );
        let page = crate::client::get(&link).await;
        println!(
            "   GET  {} -> {} \"{}\" (nothing decided yet)",
            path_of(&link),
            page.status(),
            title_of(page.body())
        );
        let token = crate::client::form_token(page.body());
        let action = link.split('?').next().unwrap_or_default().to_owned();
        let result = crate::client::post_decision(&link, &token).await;
        println!(
            "   POST {} -> {} \"{}\" ({button})",
            path_of(&action),
            result.status(),
            title_of(result.body())
        );
    });

    let described = wait_for_end(&sfn, &arn, Duration::from_secs(24 * 3600)).await?;
    decided.abort();
    println!();
    println!(
        "4. Run {} after {:.1} s{}",
        described.status.as_str(),
        start.elapsed().as_secs_f64(),
        described
            .error()
            .map(|e| format!(": {e} ({})", described.cause().unwrap_or_default()))
            .unwrap_or_default()
    );
    let roles = [
        ("raw", deployment.bucket("DataPipelineRawBucket").to_owned()),
        (
            "scan-stage",
            deployment.bucket("DataPipelineScanStageBucket").to_owned(),
        ),
        (
            "manual-review",
            deployment
                .bucket("DataPipelineManualReviewBucket")
                .to_owned(),
        ),
        (
            "scanned-data",
            deployment
                .bucket("DataPipelineScannedDataBucket")
                .to_owned(),
        ),
    ];
    println!();
    println!("Where every object is:");
    let placement = placement(&s3, &roles).await?;
    for sample in &samples {
        match placement.iter().find(|placed| placed.key == sample.key) {
            Some(placed) => {
                let tags: Vec<String> = placed
                    .tags
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                // With BucketEncryption=SSE-KMS, the key each copy is under.
                let encryption = placed
                    .kms_key
                    .as_deref()
                    .map(|key| format!("  [SSE-KMS {}]", key.rsplit('/').next().unwrap_or(key)))
                    .unwrap_or_default();
                println!(
                    "   {:<14} {:<32} {}{encryption}",
                    placed.role,
                    placed.key,
                    tags.join(" ")
                );
            }
            None => println!("   {:<14} {}", "deleted", sample.key),
        }
    }
    if temporary {
        println!();
        println!("(The demo's data was in a temporary directory; pass --data-dir to keep it.)");
    }
    stack.shutdown().await;
    Ok(described.status.as_str() == "SUCCEEDED")
}

/// Prints each state as it is entered, and failed tasks.
pub fn state_printer(start: Instant) -> Observer {
    Arc::new(move |_arn: &str, event: &HistoryEvent| {
        if event.kind.ends_with("StateEntered") {
            let name = event.details["stateEnteredEventDetails"]["name"]
                .as_str()
                .unwrap_or_default();
            println!("   {:>6.2}s  {name}", start.elapsed().as_secs_f64());
        }
        if let Some(error) = event.details["taskFailedEventDetails"]["error"].as_str() {
            println!("           task failed: {error} (retried or caught by the state machine)");
        }
    })
}

/// Prints each email as it is sent.
pub fn email_printer() -> OnPublish {
    Arc::new(|delivered: &Delivered, _eml: &str| {
        println!();
        println!("   ---- email to {} ----", delivered.recipients.join(", "));
        println!(
            "   Subject: {}",
            delivered
                .subject
                .as_deref()
                .unwrap_or("AWS Notification Message")
        );
        println!();
        for line in delivered.message.lines() {
            println!("   {line}");
        }
        if let Some(chat) = delivered
            .protocol_messages
            .get("https")
            .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        {
            println!(
                "   (chat subscribers get a notification: {})",
                chat["content"]["title"].as_str().unwrap_or_default()
            );
        }
        println!(
            "   ---- ({}) ----",
            delivered
                .files
                .first()
                .map(|f| f.display().to_string())
                .unwrap_or_default()
        );
        println!();
    })
}

/// Prints each event put on a bus: its detail type and, when `whole`, the event itself.
pub fn event_printer(whole: bool) -> crate::events::OnEvent {
    Arc::new(move |event: &serde_json::Value, bus: &str| {
        let kind = event["detail-type"].as_str().unwrap_or_default();
        let source = event["source"].as_str().unwrap_or_default();
        if !whole {
            println!("           event {kind:?} from {source} on the {bus} bus");
            return;
        }
        println!();
        println!("   ---- event {kind:?} from {source} on the {bus} bus ----");
        let pretty = serde_json::to_string_pretty(event).unwrap_or_default();
        for line in pretty.lines() {
            println!("   {line}");
        }
        println!("   ----");
        println!();
    })
}

fn link_after(body: &str, label: &str) -> Option<String> {
    let start = body.find(label)?;
    body[start..]
        .lines()
        .find(|l| l.starts_with("http"))
        .map(|l| l.trim().to_owned())
}

fn path_of(url: &str) -> String {
    url.split("://")
        .nth(1)
        .and_then(|rest| rest.find('/').map(|i| rest[i..].to_owned()))
        .unwrap_or_default()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn title_of(page: &str) -> String {
    page.split("<title>")
        .nth(1)
        .and_then(|rest| rest.split("</title>").next())
        .unwrap_or_default()
        .to_owned()
}
