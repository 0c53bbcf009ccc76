//! The end-to-end harness: a local stack on a free port with a fresh data directory, SDK clients
//! pointed at it, and helpers to upload, run, decide and look at where every object ended up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput;
use aws_sdk_sfn::types::ExecutionStatus;
use macie_pipeline_local::sns::{Delivered, delivered_in};
use macie_pipeline_local::stack::{LocalStack, StackConfig};
use serde_json::Value;

pub use macie_pipeline_local;
pub use macie_pipeline_local::client as http;

pub use macie_pipeline::deployment::Bucket;

pub mod browser;
pub mod events;
pub mod logs;
pub mod soak;

/// A local stack with clients, in a temporary directory removed when dropped.
pub struct Gate {
    pub stack: LocalStack,
    pub s3: aws_sdk_s3::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub macie: aws_sdk_macie2::Client,
    pub dir: tempfile::TempDir,
}

/// How a test stack's pipeline buckets are encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// SSE-S3, the default.
    SseS3,
    /// `BucketEncryption=SSE-KMS`: the stack creates its key.
    StackKey,
    /// `BucketEncryption=SSE-KMS` with `BucketKmsKeyArn`: a key already in the account, with
    /// KMS's default policy (the account's IAM policies grant its use; Macie's role holds none).
    GivenKey,
}

/// The account's root, the only principal a key made before the stack may name.
struct AccountRoot;

impl macie_pipeline_local::kms::Principals for AccountRoot {
    fn exists(&self, arn: &str) -> bool {
        arn == format!("arn:aws:iam::{}:root", macie_pipeline_local::aws::ACCOUNT)
    }
}

impl Encryption {
    pub const ALL: [Encryption; 3] = [Self::SseS3, Self::StackKey, Self::GivenKey];

    /// Sets the parameters (creating the given key first); returns the given key's ARN.
    pub fn apply(self, config: &mut StackConfig) -> Option<String> {
        if self == Self::SseS3 {
            return None;
        }
        config
            .parameters
            .insert("BucketEncryption".into(), "SSE-KMS".into());
        if self == Self::StackKey {
            return None;
        }
        let kms = macie_pipeline_local::kms::Kms::open(config.data_dir.join("kms"))
            .expect("the local KMS opens");
        // One id for every test that names a key: the IAM report then counts the grants on it
        // across those tests, as it does the stack's own key.
        let arn = kms
            .create_key_at(
                "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
                "a key already in the account",
                None,
                &AccountRoot,
            )
            .expect("a key with the default policy")
            .arn;
        config
            .parameters
            .insert("BucketKmsKeyArn".into(), arn.clone());
        Some(arn)
    }
}

/// The statement the README tells the owner of a key to add so that Macie may analyse the
/// objects under it (the JSON block after `<!-- key-policy: macie -->`), for this account.
pub fn readme_macie_key_statement() -> Value {
    let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
    let after = readme
        .split("<!-- key-policy: macie -->")
        .nth(1)
        .expect("the README has the Macie key statement");
    let block = after
        .split("```json")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a JSON block follows the marker");
    serde_json::from_str(&block.replace("111122223333", macie_pipeline_local::aws::ACCOUNT))
        .expect("the README's statement is JSON")
}

impl Gate {
    /// The ARN of the key the stack creates for its buckets (`BucketEncryption=SSE-KMS` without
    /// `BucketKmsKeyArn`), if it creates one.
    pub fn bucket_key(&self) -> Option<String> {
        self.stack
            .deployment()
            .keys
            .iter()
            .find(|key| key.logical_id == "BucketKey")
            .map(|key| macie_pipeline_local::kms::key_arn(&key.key_id))
    }

    /// Adds the README's Macie statement to the policy of `key`, as its owner would.
    pub async fn let_macie_use(&self, key: &str) {
        let kms = aws_sdk_kms::Client::new(&self.stack.sdk_config().await);
        let mut policy: Value = serde_json::from_str(
            kms.get_key_policy()
                .key_id(key)
                .send()
                .await
                .expect("GetKeyPolicy")
                .policy()
                .expect("a policy"),
        )
        .expect("a JSON policy");
        policy["Statement"]
            .as_array_mut()
            .expect("statements")
            .push(readme_macie_key_statement());
        kms.put_key_policy()
            .key_id(key)
            .policy(policy.to_string())
            .send()
            .await
            .expect("PutKeyPolicy");
    }
}

/// Settings for tests: a thousandth of real time, so a 60 s poll takes 60 ms.
pub fn test_config(dir: &std::path::Path) -> StackConfig {
    let mut config = StackConfig::new(dir);
    config.time_scale = 0.001;
    config.macie.startup_delay_seconds = 30.0;
    config
}

impl Gate {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a stack after `adjust` has changed the test settings.
    pub async fn start_with(adjust: impl FnOnce(&mut StackConfig)) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = test_config(dir.path());
        adjust(&mut config);
        let stack = LocalStack::start(config)
            .await
            .expect("the local stack starts");
        let aws = stack.sdk_config().await;
        Self {
            s3: aws_sdk_s3::Client::new(&aws),
            sfn: aws_sdk_sfn::Client::new(&aws),
            macie: aws_sdk_macie2::Client::new(&aws),
            stack,
            dir,
        }
    }

    pub fn bucket(&self, bucket: Bucket) -> String {
        self.stack
            .deployment()
            .bucket(bucket.logical_id())
            .to_owned()
    }

    /// Uploads an object to the raw bucket.
    pub async fn upload(
        &self,
        key: &str,
        body: impl Into<Vec<u8>>,
        tags: &[(&str, &str)],
        metadata: &[(&str, &str)],
    ) {
        let mut request = self
            .s3
            .put_object()
            .bucket(self.bucket(Bucket::Raw))
            .key(key)
            .body(ByteStream::from(body.into()));
        if !tags.is_empty() {
            let tagging: Vec<(String, String)> = tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let tag_set: Vec<macie_pipeline::tags::Tag> = tagging
                .iter()
                .map(|(k, v)| macie_pipeline::tags::Tag::new(k.clone(), v.clone()))
                .collect();
            request = request.tagging(macie_pipeline::tags::encode(&tag_set));
        }
        for (name, value) in metadata {
            request = request.metadata(*name, *value);
        }
        request
            .send()
            .await
            .unwrap_or_else(|err| panic!("upload {key}: {err:?}"));
    }

    /// Uploads many small objects to the raw bucket, sixteen at a time: `(key, body)` pairs.
    pub async fn upload_many(&self, objects: Vec<(String, String)>) {
        let per_task = objects.len().div_ceil(16).max(1);
        let mut uploads = tokio::task::JoinSet::new();
        let mut objects = objects.into_iter().peekable();
        while objects.peek().is_some() {
            let chunk: Vec<(String, String)> = objects.by_ref().take(per_task).collect();
            let (s3, bucket) = (self.s3.clone(), self.bucket(Bucket::Raw));
            uploads.spawn(async move {
                for (key, body) in chunk {
                    s3.put_object()
                        .bucket(&bucket)
                        .key(&key)
                        .body(ByteStream::from(body.into_bytes()))
                        .send()
                        .await
                        .unwrap_or_else(|err| panic!("upload {key}: {err:?}"));
                }
            });
        }
        while let Some(done) = uploads.join_next().await {
            done.expect("an upload task");
        }
    }

    /// Starts an execution with `input`; returns its ARN.
    /// A Step Functions client of the local read-only user: may read everything, holds no key.
    pub async fn read_only_sfn(&self) -> aws_sdk_sfn::Client {
        let aws = self
            .stack
            .sdk_config_as(macie_pipeline_local::iam::READ_ONLY_ACCESS_KEY)
            .await;
        aws_sdk_sfn::Client::new(&aws)
    }

    /// The state machine's executions, newest first (one page).
    pub async fn executions(&self) -> Vec<aws_sdk_sfn::types::ExecutionListItem> {
        self.sfn
            .list_executions()
            .state_machine_arn(self.stack.state_machine_arn())
            .send()
            .await
            .expect("ListExecutions")
            .executions
    }

    pub async fn start_run(&self, name: &str, input: Value) -> String {
        self.sfn
            .start_execution()
            .state_machine_arn(self.stack.state_machine_arn())
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .expect("StartExecution")
            .execution_arn
    }

    pub async fn describe(&self, arn: &str) -> DescribeExecutionOutput {
        self.sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .expect("DescribeExecution")
    }

    /// Waits until the execution is no longer running.
    pub async fn finished(&self, arn: &str) -> DescribeExecutionOutput {
        self.finished_within(arn, Duration::from_secs(60)).await
    }

    pub async fn finished_within(&self, arn: &str, limit: Duration) -> DescribeExecutionOutput {
        let start = Instant::now();
        loop {
            let described = self.describe(arn).await;
            if described.status != ExecutionStatus::Running {
                return described;
            }
            assert!(
                start.elapsed() < limit,
                "{arn} still running after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the execution to end and checks it ended with `status`, explaining it if not.
    pub async fn ends_with(&self, arn: &str, status: &str) -> DescribeExecutionOutput {
        self.ends_within(arn, status, Duration::from_secs(60)).await
    }

    /// Waits up to `limit` for the execution to end and asserts it ended with `status`; the
    /// message lists its failed tasks.
    pub async fn ends_within(
        &self,
        arn: &str,
        status: &str,
        limit: Duration,
    ) -> DescribeExecutionOutput {
        let described = self.finished_within(arn, limit).await;
        assert_eq!(described.status.as_str(), status, "{}", self.explain(arn));
        described
    }

    /// Every failed task of an execution, with its error and cause: for assertion messages.
    pub fn explain(&self, arn: &str) -> String {
        let Some(record) = self.stack.engine().describe(arn) else {
            return format!("{arn} does not exist");
        };
        let mut lines = vec![format!(
            "{} {:?} {:?}",
            record.status, record.error, record.cause
        )];
        for event in &record.history {
            let failed = &event.details["taskFailedEventDetails"];
            if !failed.is_null() {
                lines.push(format!(
                    "  task failed: {} {}",
                    failed["error"], failed["cause"]
                ));
            }
            let entered = &event.details["stateEnteredEventDetails"];
            if !entered.is_null() {
                let input: Value =
                    serde_json::from_str(entered["input"].as_str().unwrap_or("null"))
                        .unwrap_or(Value::Null);
                let error = &input["error"];
                let suffix = if error.is_null() {
                    String::new()
                } else {
                    format!(" with error {error}")
                };
                lines.push(format!("  entered {}{suffix}", entered["name"]));
            }
        }
        lines.join("\n")
    }

    /// The states the execution entered, in order.
    pub fn states_entered(&self, arn: &str) -> Vec<String> {
        self.stack
            .engine()
            .describe(arn)
            .expect("a known execution")
            .history
            .iter()
            .filter_map(|e| e.details["stateEnteredEventDetails"]["name"].as_str())
            .map(str::to_owned)
            .collect()
    }

    /// How many times the execution entered `state`.
    pub fn entries(&self, arn: &str, state: &str) -> usize {
        self.states_entered(arn)
            .iter()
            .filter(|name| *name == state)
            .count()
    }

    /// Asserts that the run's objects all sit in `bucket`, `count` of them, and that no other
    /// pipeline bucket holds anything.
    pub async fn only_in(&self, bucket: Bucket, count: usize) {
        assert_eq!(self.keys(bucket).await.len(), count, "{bucket:?}");
        for other in [
            Bucket::Raw,
            Bucket::ScanStage,
            Bucket::ManualReview,
            Bucket::ScannedData,
        ] {
            if other != bucket {
                let keys = self.keys(other).await;
                assert!(keys.is_empty(), "{other:?} holds {keys:?}");
            }
        }
    }

    /// Seconds from the start of the execution at which each state was entered.
    pub fn timings(&self, arn: &str) -> Vec<(String, f64)> {
        let Some(record) = self.stack.engine().describe(arn) else {
            return Vec::new();
        };
        record
            .history
            .iter()
            .filter_map(|e| {
                let name = e.details["stateEnteredEventDetails"]["name"].as_str()?;
                Some((
                    name.to_owned(),
                    (e.timestamp_ms - record.start_ms) as f64 / 1000.0,
                ))
            })
            .collect()
    }

    /// The state the execution is in, if it is waiting in one.
    pub async fn current_state(&self, arn: &str) -> Option<String> {
        let record = self.stack.engine().describe(arn)?;
        record.position.map(|p| p.state)
    }

    /// Waits until the execution waits in `state`.
    pub async fn reaches(&self, arn: &str, state: &str) {
        let start = Instant::now();
        loop {
            if self.current_state(arn).await.as_deref() == Some(state) {
                return;
            }
            let status = self.describe(arn).await.status;
            assert_eq!(
                status,
                ExecutionStatus::Running,
                "{arn} ended before reaching {state}"
            );
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{arn} never reached {state}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every key of a bucket.
    pub async fn keys(&self, bucket: Bucket) -> Vec<String> {
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
        keys
    }

    /// Every key of a bucket, sorted.
    pub async fn sorted_keys(&self, bucket: Bucket) -> Vec<String> {
        let mut keys = self.keys(bucket).await;
        keys.sort();
        keys
    }

    pub async fn tags(&self, bucket: Bucket, key: &str) -> BTreeMap<String, String> {
        self.s3
            .get_object_tagging()
            .bucket(self.bucket(bucket))
            .key(key)
            .send()
            .await
            .unwrap_or_else(|err| panic!("tags of {key}: {err:?}"))
            .tag_set()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect()
    }

    pub async fn body(&self, bucket: Bucket, key: &str) -> Vec<u8> {
        self.s3
            .get_object()
            .bucket(self.bucket(bucket))
            .key(key)
            .send()
            .await
            .unwrap_or_else(|err| panic!("get {key}: {err:?}"))
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .to_vec()
    }

    /// Every message the topic delivered, oldest first.
    pub fn emails(&self) -> Vec<Delivered> {
        delivered_in(self.stack.outbox())
    }

    /// Waits for the approval request email and returns it.
    pub async fn approval_email(&self) -> Delivered {
        self.approval_email_within(Duration::from_secs(60)).await
    }

    pub async fn approval_email_within(&self, limit: Duration) -> Delivered {
        let start = Instant::now();
        loop {
            if let Some(email) = self.emails().into_iter().find(|e| e.is_review_request()) {
                return email;
            }
            assert!(start.elapsed() < limit, "no approval email after {limit:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Gate {
    /// Uploads one flagged object (`cards.csv`, a card number) and one clean one (`readme.txt`),
    /// and starts a run with `name` as execution name and workflow id.
    pub async fn start_flagged(&self, name: &str) -> String {
        self.upload(
            "cards.csv",
            "customer,card\nAda,card 4111 1111 1111 1111\n",
            &[("team", "billing")],
            &[],
        )
        .await;
        self.upload("readme.txt", "nothing sensitive", &[], &[])
            .await;
        self.start_run(name, serde_json::json!({"id": name})).await
    }

    /// A flagged run waiting for its reviewer, with the approval email.
    pub async fn flagged_run(&self, name: &str) -> (String, Delivered) {
        let arn = self.start_flagged(name).await;
        let email = self.approval_email().await;
        self.reaches(&arn, "triggerManualApproval").await;
        (arn, email)
    }
}

/// `template.yaml` without the one statement of the state machine's role that grants `action`
/// (it must be exactly one), to run the gate without that grant.
pub fn without_state_machine_grant(action: &str) -> String {
    let mut template: serde_norway::Value =
        serde_norway::from_str(macie_pipeline_local::deployment::TEMPLATE).expect("the template");
    let statements = template["Resources"]["MaciePipelineScanStateMachineRole"]["Properties"]
        ["Policies"][0]["PolicyDocument"]["Statement"]
        .as_sequence_mut()
        .expect("the role's statements");
    let before = statements.len();
    statements.retain(|statement| {
        !statement["Action"]
            .as_sequence()
            .expect("a list of actions")
            .iter()
            .any(|granted| granted.as_str() == Some(action))
    });
    assert_eq!(
        statements.len(),
        before - 1,
        "one statement of the state machine's role grants {action}"
    );
    serde_norway::to_string(&template).expect("a template")
}

/// The reason an email gives under an object it lists as not analysed in full
/// (`- [skipped] key (size)`, the reason on the next line).
pub fn listed_reason<'m>(body: &'m str, key: &str) -> &'m str {
    let at = body
        .find(&format!("] {key} ("))
        .unwrap_or_else(|| panic!("{key} is not listed:\n{body}"));
    body[at..].lines().nth(1).unwrap_or_default().trim()
}

/// The link after `label` in an email body.
pub fn link_after(body: &str, label: &str) -> String {
    let start = body
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in the email"));
    body[start..]
        .lines()
        .find(|line| line.starts_with("http"))
        .expect("a link")
        .trim()
        .to_owned()
}
