//! The demo: sample files with and without sensitive data, uploaded to the raw bucket, one run of
//! the gate printing each state as it is entered, the approval email, the reviewer's click, and
//! where every object ended up.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sfn::types::ExecutionStatus;

/// A sample object.
pub struct Sample {
    pub key: &'static str,
    pub body: Vec<u8>,
    pub tags: &'static [(&'static str, &'static str)],
    pub metadata: &'static [(&'static str, &'static str)],
    /// What it holds, for the printout.
    pub about: &'static str,
}

/// The demo's files: clean ones, personal and financial data, credentials, an image Macie
/// cannot analyse, and keys with spaces, `+`, `%` and non-ASCII characters.
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
            key: "logs/app.jsonl",
            body: "{\"level\":\"info\",\"msg\":\"started\"}\n{\"level\":\"warn\",\"msg\":\"slow query\"}\n".into(),
            tags: &[],
            metadata: &[],
            about: "clean JSON Lines",
        },
    ]
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

/// Where every object is: bucket role, key, and tags.
pub async fn placement(
    s3: &aws_sdk_s3::Client,
    buckets: &[(&str, String)],
) -> Result<Vec<(String, String, BTreeMap<String, String>)>, String> {
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
                out.push(((*role).to_owned(), key, tags));
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
