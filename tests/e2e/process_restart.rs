//! The local stack killed with SIGKILL in the middle of a run, in each kind of state (moving
//! objects, polling the Macie job, waiting for approval), then started again on the same data
//! directory and port: the execution resumes, ends, and every object is in exactly one place
//! with its content. The stack runs as its own process (`local-stack`), so the kill is real.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use serde_json::{Value, json};

use e2e::macie_pipeline_local::sns::{Delivered, delivered_in};
use e2e::macie_pipeline_local::stack::sdk_config;
use e2e::{http, link_after};

struct Served {
    child: Child,
    info: Value,
    s3: aws_sdk_s3::Client,
    sfn: aws_sdk_sfn::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("an address")
        .port()
}

async fn launch(dir: &Path, port: u16, flags: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_local-stack"))
        .arg(dir)
        .arg(port.to_string())
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the local-stack binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    })
    .await
    .expect("reader")
    .expect("the stack describes itself");
    let info: Value = serde_json::from_str(&line)
        .unwrap_or_else(|err| panic!("the stack did not start ({err}): {line:?}"));
    let aws = sdk_config(
        info["endpoint"].as_str().expect("an endpoint"),
        info["caPem"].as_str().expect("the stack's CA").as_bytes(),
    )
    .await;
    Served {
        child,
        info,
        s3: aws_sdk_s3::Client::new(&aws),
        sfn: aws_sdk_sfn::Client::new(&aws),
    }
}

impl Served {
    /// SIGKILL: no shutdown, no flushing, as a crash.
    fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reaped");
    }

    fn bucket(&self, name: &str) -> String {
        self.info[name].as_str().expect("a bucket").to_owned()
    }

    async fn keys(&self, bucket: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(self.bucket(bucket))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            keys.extend(
                page.expect("ListObjectsV2")
                    .contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        keys.sort();
        keys
    }

    async fn upload(&self, key: &str, body: &str) {
        self.s3
            .put_object()
            .bucket(self.bucket("raw"))
            .key(key)
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await
            .expect("PutObject");
    }

    async fn start(&self, workflow: &str) -> String {
        self.sfn
            .start_execution()
            .state_machine_arn(self.info["stateMachineArn"].as_str().expect("an ARN"))
            .name(workflow)
            .input(json!({ "id": workflow }).to_string())
            .send()
            .await
            .expect("StartExecution")
            .execution_arn
    }

    async fn status(&self, arn: &str) -> String {
        self.sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .expect("DescribeExecution")
            .status
            .as_str()
            .to_owned()
    }

    async fn finished(&self, arn: &str) -> String {
        let started = Instant::now();
        loop {
            let status = self.status(arn).await;
            if status != "RUNNING" {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{arn} still running"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every object is in exactly one bucket, with its content; returns the keys per bucket.
    async fn where_all(&self, uploaded: &[(String, String)]) -> Vec<(String, Vec<String>)> {
        let mut places = Vec::new();
        let mut seen = std::collections::BTreeMap::new();
        for bucket in ["raw", "scanStage", "manualReview", "scannedData"] {
            let keys = self.keys(bucket).await;
            for key in &keys {
                *seen.entry(key.clone()).or_insert(0) += 1;
                let body = self
                    .s3
                    .get_object()
                    .bucket(self.bucket(bucket))
                    .key(key)
                    .send()
                    .await
                    .expect("GetObject")
                    .body
                    .collect()
                    .await
                    .expect("body")
                    .into_bytes();
                let expected = uploaded
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, b)| b.as_bytes());
                assert_eq!(Some(body.as_ref()), expected, "{key} in {bucket}");
            }
            places.push((bucket.to_owned(), keys));
        }
        for (key, _) in uploaded {
            assert_eq!(
                seen.get(key),
                Some(&1),
                "{key} is in {:?} place(s)",
                seen.get(key)
            );
        }
        places
    }
}

fn objects(count: usize, flagged: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| {
            let body = if i < flagged {
                format!("card number 4111 1111 1111 1111 ({i})")
            } else {
                format!("nothing sensitive {i}")
            };
            (format!("in/obj {i:03}.txt"), body)
        })
        .collect()
}

async fn wait_for(mut done: impl AsyncFnMut() -> bool, what: &str) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < Duration::from_secs(60), "never {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits for the newest review request in `outbox`.
async fn review_request(outbox: &Path) -> Delivered {
    wait_for(
        async || {
            delivered_in(outbox)
                .iter()
                .any(Delivered::is_review_request)
        },
        "asked for a review",
    )
    .await;
    delivered_in(outbox)
        .into_iter()
        .rfind(|e| e.is_review_request())
        .expect("a request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_while_moving_the_run_resumes_and_nothing_is_lost_or_doubled() {
    let dir = tempfile::tempdir().expect("a directory");
    let port = free_port();
    // Each copy takes 40 ms, so the move of 200 objects lasts long enough to be interrupted.
    let served = launch(dir.path(), port, &["--move-latency-ms", "40"]).await;
    let uploaded = objects(200, 0);
    for (key, body) in &uploaded {
        served.upload(key, body).await;
    }
    let arn = served.start("wf-kill-moving").await;
    wait_for(
        async || !served.keys("scanStage").await.is_empty(),
        "started moving",
    )
    .await;
    let raw_left = served.keys("raw").await.len();
    served.kill();
    assert!(raw_left > 0, "the kill came after the move had finished");

    let served = launch(dir.path(), port, &[]).await;
    assert_eq!(served.finished(&arn).await, "SUCCEEDED");
    let places = served.where_all(&uploaded).await;
    assert_eq!(places[3].1.len(), 200, "{places:?}");
    served.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_while_polling_macie_the_run_resumes_with_the_same_job() {
    let dir = tempfile::tempdir().expect("a directory");
    let port = free_port();
    let served = launch(dir.path(), port, &["--slow-macie"]).await;
    let uploaded = objects(6, 2);
    for (key, body) in &uploaded {
        served.upload(key, body).await;
    }
    let arn = served.start("wf-kill-polling").await;
    // Polling: everything is in scan-stage and the job runs.
    wait_for(
        async || served.keys("scanStage").await.len() == 6,
        "moved to scan-stage",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    served.kill();

    // Started again with a Macie that finishes: the resumed run polls the same job.
    let served = launch(dir.path(), port, &[]).await;
    let outbox = dir.path().join("outbox");
    let email = review_request(&outbox).await;
    assert_eq!(
        http::decide(&link_after(&email.message, "Delete all"))
            .await
            .status(),
        200
    );
    assert_eq!(served.finished(&arn).await, "SUCCEEDED");
    let jobs = aws_sdk_macie2::Client::new(
        &sdk_config(
            served.info["endpoint"].as_str().expect("endpoint"),
            served.info["caPem"]
                .as_str()
                .expect("the stack's CA")
                .as_bytes(),
        )
        .await,
    )
    .list_classification_jobs()
    .send()
    .await
    .expect("ListClassificationJobs");
    assert_eq!(jobs.items().len(), 1, "one Macie job across the restart");
    // Denied: the two flagged objects are gone, the four clean ones released.
    let remaining: Vec<(String, String)> = uploaded[2..].to_vec();
    let places = served.where_all(&remaining).await;
    assert_eq!(places[3].1.len(), 4, "{places:?}");
    served.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_while_waiting_for_approval_the_link_still_decides() {
    let dir = tempfile::tempdir().expect("a directory");
    let port = free_port();
    let served = launch(dir.path(), port, &[]).await;
    let uploaded = objects(4, 1);
    for (key, body) in &uploaded {
        served.upload(key, body).await;
    }
    let arn = served.start("wf-kill-waiting").await;
    let outbox = dir.path().join("outbox");
    let email = review_request(&outbox).await;
    served.kill();

    let served = launch(dir.path(), port, &[]).await;
    assert_eq!(served.status(&arn).await, "RUNNING");
    assert_eq!(
        http::decide(&link_after(&email.message, "Release all"))
            .await
            .status(),
        200
    );
    assert_eq!(served.finished(&arn).await, "SUCCEEDED");
    let places = served.where_all(&uploaded).await;
    assert_eq!(places[3].1.len(), 4, "{places:?}");
    served.kill();
}
