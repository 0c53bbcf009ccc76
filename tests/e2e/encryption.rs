//! Customer-managed KMS keys (`BucketEncryption=SSE-KMS`): every object and every copy the
//! gate makes is under the stack's key, an object that landed under a key of its own which does
//! not let the gate in stays in raw with the statement that key needs, and an object Macie may
//! not decrypt is held with Macie's reason. The keys, their policies and S3's use of them are
//! the local KMS's, checked by the local IAM as AWS checks them.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use e2e::macie_pipeline_local::stack::StackConfig;
use e2e::{Bucket, Encryption, Gate, http, link_after};
use serde_json::json;

fn sse_kms(config: &mut StackConfig) {
    Encryption::StackKey.apply(config);
}

/// A key made with CreateKey (KMS's default policy); its ARN.
async fn create_key(kms: &aws_sdk_kms::Client, description: &str) -> String {
    kms.create_key()
        .description(description)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned()
}

/// The ARN of the stack's own bucket key.
fn bucket_key(gate: &Gate) -> String {
    gate.bucket_key()
        .expect("the stack creates BucketKey with SSE-KMS")
}

async fn kms_client(gate: &Gate) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(&gate.stack.sdk_config().await)
}

/// Every object in `bucket` with the key S3 says it is encrypted with.
async fn keys_of(gate: &Gate, bucket: Bucket) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for key in gate.sorted_keys(bucket).await {
        let head = gate
            .s3
            .head_object()
            .bucket(gate.bucket(bucket))
            .key(&key)
            .send()
            .await
            .unwrap();
        out.push((key, head.ssekms_key_id().map(str::to_owned)));
    }
    out
}

async fn all_under(gate: &Gate, bucket: Bucket, expected: &str) {
    let objects = keys_of(gate, bucket).await;
    assert!(!objects.is_empty(), "{bucket:?} is empty");
    for (key, kms_key) in objects {
        assert_eq!(kms_key.as_deref(), Some(expected), "{bucket:?} {key}");
    }
}

/// One run on an SSE-KMS stack, decided with `decision`; where the flagged object ends up.
async fn decided_run(round: &str, decision: &str, released: bool) {
    let gate = Gate::start_with(sse_kms).await;
    let key = bucket_key(&gate);
    gate.upload(
        "cards.csv",
        "customer,card\nAda,card 4111 1111 1111 1111\n",
        &[],
        &[],
    )
    .await;
    gate.upload("readme.txt", "nothing sensitive", &[], &[])
        .await;
    // The producer's upload takes the raw bucket's default: the stack's key.
    all_under(&gate, Bucket::Raw, &key).await;
    let arn = gate.start_run(round, json!({"id": round})).await;
    let email = gate.approval_email().await;
    gate.reaches(&arn, "triggerManualApproval").await;
    all_under(&gate, Bucket::ManualReview, &key).await;
    let response = http::decide(&link_after(&email.message, decision)).await;
    assert_eq!(response.status(), 200, "{}", response.body());
    let finished = gate.finished(&arn).await;
    assert_eq!(
        finished.status.as_str(),
        "SUCCEEDED",
        "{}",
        gate.explain(&arn)
    );
    let expected: Vec<&str> = if released {
        vec!["cards.csv", "readme.txt"]
    } else {
        vec!["readme.txt"]
    };
    assert_eq!(gate.sorted_keys(Bucket::ScannedData).await, expected);
    for bucket in [Bucket::Raw, Bucket::ScanStage, Bucket::ManualReview] {
        assert!(gate.keys(bucket).await.is_empty(), "{bucket:?}");
    }
    // Every copy and every record the gate wrote is under the stack's key.
    all_under(&gate, Bucket::ScannedData, &key).await;
    all_under(&gate, Bucket::Manifests, &key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stacks_key_is_served_with_the_templates_policy() {
    let gate = Gate::start_with(sse_kms).await;
    let kms = kms_client(&gate).await;
    let described = kms
        .describe_key()
        .key_id("alias/local-data-pipeline")
        .send()
        .await
        .unwrap();
    let metadata = described.key_metadata().unwrap();
    assert_eq!(metadata.arn(), Some(bucket_key(&gate).as_str()));
    assert!(metadata.enabled());
    let policy = kms
        .get_key_policy()
        .key_id(bucket_key(&gate))
        .send()
        .await
        .unwrap();
    let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let sids: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["Sid"].as_str())
        .collect();
    assert_eq!(
        sids,
        [
            "AccountAdministersTheKey",
            "IdentityPoliciesGrantUseThroughS3ForThePipelineBuckets",
            "MacieServiceLinkedRoleAnalysesThePipelineBuckets"
        ]
    );
    // A reader of the account who holds no grant on the key may not read an object under it.
    gate.upload("readme.txt", "nothing sensitive", &[], &[])
        .await;
    let reader = aws_sdk_s3::Client::new(
        &gate
            .stack
            .sdk_config_as(e2e::macie_pipeline_local::iam::READ_ONLY_ACCESS_KEY)
            .await,
    );
    let denied = reader
        .get_object()
        .bucket(gate.bucket(Bucket::Raw))
        .key("readme.txt")
        .send()
        .await
        .unwrap_err();
    assert!(format!("{denied:?}").contains("kms:Decrypt"), "{denied:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_sse_kms_a_release_leaves_every_copy_under_the_stacks_key() {
    decided_run("kms-allow", "Release all", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_sse_kms_a_denial_leaves_every_copy_under_the_stacks_key() {
    decided_run("kms-deny", "Delete all", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_object_under_a_key_that_keeps_the_gate_out_stays_in_raw_until_its_policy_lets_it_in() {
    let gate = Gate::start_with(sse_kms).await;
    let kms = kms_client(&gate).await;
    // A producer's own key, with KMS's default policy: the account's IAM policies grant its use,
    // and none of the gate's roles has a grant on it.
    let theirs = create_key(&kms, "a producer's key").await;
    gate.s3
        .put_object()
        .bucket(gate.bucket(Bucket::Raw))
        .key("theirs/orders.txt")
        .body(ByteStream::from_static(b"nothing sensitive"))
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&theirs)
        .send()
        .await
        .unwrap();
    gate.upload("ours.txt", "nothing sensitive either", &[], &[])
        .await;

    let arn = gate.start_run("theirs-1", json!({"id": "theirs-1"})).await;
    let finished = gate.finished(&arn).await;
    // The rest of the run went through; the run fails naming the key and what to add.
    assert_eq!(finished.status.as_str(), "FAILED", "{}", gate.explain(&arn));
    assert_eq!(gate.keys(Bucket::ScannedData).await, vec!["ours.txt"]);
    assert_eq!(gate.keys(Bucket::Raw).await, vec!["theirs/orders.txt"]);
    let email = gate
        .emails()
        .into_iter()
        .find(|email| {
            email
                .message
                .contains("could not be taken from the raw bucket")
        })
        .expect("the run's failure is emailed");
    assert!(email.message.contains(&theirs), "{}", email.message);
    // The statement to add, as the email gives it: JSON a person can paste, not escaped.
    assert!(!email.message.contains("\\\""), "{}", email.message);
    let text = &email.message;
    let start = text
        .find("{\"Sid\": \"SensitiveDataGateTakesObjects\"")
        .expect("a statement");
    let statement: serde_json::Value = serde_json::Deserializer::from_str(&text[start..])
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(statement["Action"], "kms:Decrypt");

    let mut policy: serde_json::Value = serde_json::from_str(
        kms.get_key_policy()
            .key_id(&theirs)
            .send()
            .await
            .unwrap()
            .policy()
            .unwrap(),
    )
    .unwrap();
    policy["Statement"].as_array_mut().unwrap().push(statement);
    kms.put_key_policy()
        .key_id(&theirs)
        .policy(policy.to_string())
        .send()
        .await
        .unwrap();

    let arn = gate.start_run("theirs-2", json!({"id": "theirs-2"})).await;
    let finished = gate.finished(&arn).await;
    assert_eq!(
        finished.status.as_str(),
        "SUCCEEDED",
        "{}",
        gate.explain(&arn)
    );
    assert!(gate.keys(Bucket::Raw).await.is_empty());
    assert_eq!(
        keys_of(&gate, Bucket::ScannedData).await,
        vec![
            ("ours.txt".to_owned(), Some(bucket_key(&gate))),
            ("theirs/orders.txt".to_owned(), Some(bucket_key(&gate))),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_object_under_a_key_macie_may_not_use_is_held_with_macies_reason() {
    // An existing key whose policy (KMS's default) lets IAM policies grant it: the gate's roles
    // get their grants from the template, Macie's role has none.
    let mut given = String::new();
    let gate = Gate::start_with(|config| {
        given = Encryption::GivenKey.apply(config).unwrap();
    })
    .await;
    assert!(
        gate.stack
            .deployment()
            .keys
            .iter()
            .all(|k| k.logical_id != "BucketKey"),
        "a given key means no key of the stack's"
    );
    gate.upload("plain.txt", "nothing sensitive", &[], &[])
        .await;
    let arn = gate.start_run("no-macie", json!({"id": "no-macie"})).await;
    let email = gate
        .approval_email_within(std::time::Duration::from_secs(120))
        .await;
    assert!(
        email.message.contains("INVALID_ENCRYPTION"),
        "{}",
        email.message
    );
    gate.reaches(&arn, "triggerManualApproval").await;
    assert_eq!(
        keys_of(&gate, Bucket::ManualReview).await,
        vec![("plain.txt".to_owned(), Some(given.clone()))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_policy_naming_macies_role_fails_a_deployment_that_enables_macie() {
    use e2e::macie_pipeline_local::deployment::TEMPLATE;
    use e2e::macie_pipeline_local::stack::LocalStack;
    let role = e2e::macie_pipeline_local::iam::macie_service_linked_role();
    let role = role.as_str();
    // The key policy as AWS's documentation first suggests it: the role named as the principal.
    let named = TEMPLATE.replacen(
        "          - Sid: MacieServiceLinkedRoleAnalysesThePipelineBuckets\n            Effect: Allow\n            Principal:\n              AWS: \"*\"",
        &format!("          - Sid: MacieServiceLinkedRoleAnalysesThePipelineBuckets\n            Effect: Allow\n            Principal:\n              AWS: \"{role}\""),
        1,
    );
    assert_ne!(named, TEMPLATE, "the template's Macie statement moved");
    for (enable_macie, starts) in [("yes", false), ("no", true)] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = e2e::test_config(dir.path());
        config.template = Some(named.clone());
        sse_kms(&mut config);
        config
            .parameters
            .insert("EnableMacie".into(), enable_macie.into());
        match LocalStack::start(config).await {
            Ok(stack) => {
                assert!(starts, "EnableMacie={enable_macie} must fail");
                stack.shutdown().await;
            }
            Err(err) => {
                assert!(!starts, "EnableMacie={enable_macie}: {err}");
                assert!(err.contains("MalformedPolicyDocumentException"), "{err}");
                assert!(err.contains(role), "{err}");
            }
        }
    }
    // The template's own policy deploys with Macie enabled by the stack.
    let dir = tempfile::tempdir().unwrap();
    let mut config = e2e::test_config(dir.path());
    sse_kms(&mut config);
    config.parameters.insert("EnableMacie".into(), "yes".into());
    LocalStack::start(config).await.unwrap().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_buckets_default_encryption_is_set_read_and_applied_as_s3_does() {
    use aws_sdk_s3::types::{
        ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    };
    let gate = Gate::start().await;
    let kms = kms_client(&gate).await;
    let key = create_key(&kms, "a landing bucket's key").await;
    kms.create_alias()
        .alias_name("alias/landing")
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    let bucket = "landing-by-hand";
    gate.s3.create_bucket().bucket(bucket).send().await.unwrap();
    let rule = |key_id: &str| {
        ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(
                        ServerSideEncryptionByDefault::builder()
                            .sse_algorithm(ServerSideEncryption::AwsKms)
                            .kms_master_key_id(key_id)
                            .build()
                            .unwrap(),
                    )
                    .bucket_key_enabled(true)
                    .build(),
            )
            .build()
            .unwrap()
    };
    // A key that does not exist is refused where it is named.
    assert!(
        gate.s3
            .put_bucket_encryption()
            .bucket(bucket)
            .server_side_encryption_configuration(rule("alias/none"))
            .send()
            .await
            .is_err()
    );
    gate.s3
        .put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(rule("alias/landing"))
        .send()
        .await
        .unwrap();
    let read = gate
        .s3
        .get_bucket_encryption()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let by_default = read.server_side_encryption_configuration().unwrap().rules()[0]
        .apply_server_side_encryption_by_default()
        .unwrap()
        .clone();
    assert_eq!(by_default.kms_master_key_id(), Some(key.as_str()));
    let put = gate
        .s3
        .put_object()
        .bucket(bucket)
        .key("a.txt")
        .body(ByteStream::from_static(b"a"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.ssekms_key_id(), Some(key.as_str()));
    assert_eq!(put.bucket_key_enabled(), Some(true));
    // The request's own encryption wins over the default; a key that does not exist fails.
    let plain = gate
        .s3
        .put_object()
        .bucket(bucket)
        .key("b.txt")
        .body(ByteStream::from_static(b"b"))
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.ssekms_key_id(), None);
    let missing = gate
        .s3
        .put_object()
        .bucket(bucket)
        .key("c.txt")
        .body(ByteStream::from_static(b"c"))
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id("alias/none")
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{missing:?}").contains("KMS.NotFoundException"),
        "{missing:?}"
    );
    // A disabled key stops reads and writes under it.
    kms.disable_key().key_id(&key).send().await.unwrap();
    let disabled = gate
        .s3
        .put_object()
        .bucket(bucket)
        .key("d.txt")
        .body(ByteStream::from_static(b"d"))
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{disabled:?}").contains("KMS.DisabledException"),
        "{disabled:?}"
    );
    let unreadable = gate
        .s3
        .get_object()
        .bucket(bucket)
        .key("a.txt")
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{unreadable:?}").contains("KMS.DisabledException"),
        "{unreadable:?}"
    );
}
