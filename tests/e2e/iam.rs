//! The template's permissions, enforced: every statement of every function's policy is needed
//! (a template without it fails the run with `AccessDenied` naming its action, and leaves every
//! object where it was), bucket policies deny plain HTTP, and enforcement can be turned off.

use std::time::{Duration, Instant};

use e2e::macie_pipeline_local::deployment::TEMPLATE;
use e2e::{Bucket, Encryption, Gate, http, link_after};
use serde_json::json;
use serde_norway::Value as Yaml;

/// The functions' inline statements present with the default parameters (a statement under
/// `!If` is there only with its condition), as (function, index in its first policy).
fn default_statements(template: &Yaml) -> Vec<(String, usize, Vec<String>)> {
    let mut out = Vec::new();
    for (id, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let id = id.as_str().unwrap().to_owned();
        let statements = resource["Properties"]["Policies"][0]["Statement"]
            .as_sequence()
            .unwrap();
        for (index, statement) in statements.iter().enumerate() {
            if matches!(statement, Yaml::Tagged(_)) {
                continue;
            }
            let actions = statement["Action"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect();
            out.push((id.clone(), index, actions));
        }
    }
    out
}

fn without_statement(template: &Yaml, function: &str, index: usize) -> String {
    let mut copy = template.clone();
    copy["Resources"][function]["Properties"]["Policies"][0]["Statement"]
        .as_sequence_mut()
        .unwrap()
        .remove(index);
    serde_norway::to_string(&copy).unwrap()
}

/// What a run on a template came to.
struct Outcome {
    status: String,
    explained: String,
    decision_status: Option<u16>,
}

/// A suppression rule on the list before the run, matching nothing of it: the findings step
/// reads every rule.
async fn seed_rule(gate: &Gate) {
    use macie_pipeline::approval::decisions::Reviewer;
    use macie_pipeline::false_positives::rules::{ListedRule, Rule};
    let rule = Rule::suppression("SensitiveData:S3Object/Personal", "iam-nothing/").unwrap();
    let seed = Reviewer {
        name: "seed".into(),
        source_ip: None,
        user_agent: None,
    };
    let listed = ListedRule::new(
        rule,
        seed,
        "2026-12-01T00:00:00Z",
        macie_pipeline::workflow::WorkflowId::parse("seed").unwrap(),
        None,
    );
    gate.s3
        .put_object()
        .bucket(gate.bucket(Bucket::Manifests))
        .key(format!("false-positives/rules/{}.json", listed.id))
        .body(serde_json::to_vec(&listed).unwrap().into())
        .send()
        .await
        .unwrap();
}

/// The reviewer marks a phrase a false positive and takes it off the list again, from the page
/// `link` (a review link) leads to: every grant the rules need. The first status that is not 200.
async fn add_and_remove_a_rule(link: &str, token: &str) -> Option<u16> {
    let base = link.split('?').next().unwrap().rsplit_once('/').unwrap().0;
    let rules = format!("{base}/false-positives");
    let rule = macie_pipeline::false_positives::rules::Rule::phrase("iam phrase").unwrap();
    for fields in [
        vec![("kind", "phrase"), ("text", "iam phrase")],
        vec![("remove", rule.id().as_str())],
    ] {
        let sent = http::post_false_positive(&rules, token, http::REVIEWER, &fields).await;
        if sent.status() != 200 {
            return Some(sent.status().as_u16());
        }
    }
    None
}

/// Uploads a flagged and a clean object and runs the gate; the reviewer adds and removes a
/// false-positive rule, then approves, or denies when `deny`. Returns when the run ends, or when
/// the reviewer's side was refused and the run waits.
async fn run(gate: &Gate, deny: bool) -> Outcome {
    seed_rule(gate).await;
    gate.upload(
        "cards.csv",
        "customer,card\nAda,card 4111 1111 1111 1111\n",
        &[],
        &[],
    )
    .await;
    gate.upload("readme.txt", "nothing sensitive", &[], &[])
        .await;
    let arn = gate.start_run("iam", json!({"id": "iam"})).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut decision_status = None;
    loop {
        let described = gate.describe(&arn).await;
        if described.status.as_str() != "RUNNING" {
            return Outcome {
                status: described.status.as_str().to_owned(),
                explained: gate.explain(&arn),
                decision_status,
            };
        }
        if decision_status.is_none()
            && let Some(email) = gate
                .emails()
                .into_iter()
                .find(|e| e.message.contains("/allow?token="))
        {
            let link = link_after(
                &email.message,
                if deny { "Delete all" } else { "Release all" },
            );
            let page = http::get(&link).await;
            let status = if page.status() == 200 {
                let token = http::form_token(page.body());
                match add_and_remove_a_rule(&link, &token).await {
                    Some(refused) => refused,
                    None => http::post_decision(&link, &token).await.status().as_u16(),
                }
            } else {
                page.status().as_u16()
            };
            decision_status = Some(status);
            if status != 200 {
                return Outcome {
                    status: "RUNNING".into(),
                    explained: gate.explain(&arn),
                    decision_status,
                };
            }
        }
        assert!(
            Instant::now() < deadline,
            "the run did not end: {}",
            gate.explain(&arn)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A run whose flagged key another run already holds for review: routing keeps its version
/// aside and records it beside the manifest (`workflows/<run>/aside/`), the one write of the
/// gate that a run of fresh keys never makes. Returns the second run's outcome.
async fn run_over_a_held_key(gate: &Gate) -> Outcome {
    gate.upload("cards.csv", "card 4111 1111 1111 1111\n", &[], &[])
        .await;
    let first = gate.start_run("first", json!({"id": "first"})).await;
    gate.approval_email().await;
    gate.reaches(&first, "triggerManualApproval").await;
    gate.upload("cards.csv", "card 5500 0000 0000 0004\n", &[], &[])
        .await;
    let second = gate.start_run("second", json!({"id": "second"})).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let described = gate.describe(&second).await;
        let waiting = gate.current_state(&second).await.as_deref() == Some("triggerManualApproval");
        if described.status.as_str() != "RUNNING" || waiting {
            return Outcome {
                status: described.status.as_str().to_owned(),
                explained: gate.explain(&second),
                decision_status: None,
            };
        }
        assert!(
            Instant::now() < deadline,
            "the run did not end: {}",
            gate.explain(&second)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every uploaded object is in exactly one bucket, and the flagged one in scanned-data only if
/// its reviewer approved it (and must be there if the run then succeeded). A denied object may
/// be in none: deleted, and the deletion's record of it refused.
async fn nothing_lost(gate: &Gate, context: &str, outcome: &Outcome, approved: bool) {
    for key in ["cards.csv", "readme.txt"] {
        let mut places = Vec::new();
        for bucket in [
            Bucket::Raw,
            Bucket::ScanStage,
            Bucket::ManualReview,
            Bucket::ScannedData,
        ] {
            if gate.keys(bucket).await.iter().any(|k| k == key) {
                places.push(bucket);
            }
        }
        let deleted_as_denied = !approved && key == "cards.csv" && places.is_empty();
        assert!(
            places.len() == 1 || deleted_as_denied,
            "{context}: {key} is in {places:?}"
        );
    }
    let released = gate
        .keys(Bucket::ScannedData)
        .await
        .iter()
        .any(|k| k == "cards.csv");
    let approved = approved && outcome.decision_status == Some(200);
    assert!(
        !released || approved,
        "{context}: released without an approval"
    );
    if outcome.status == "SUCCEEDED" {
        assert_eq!(released, approved, "{context}: the run succeeded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_statement_of_every_function_policy_is_needed() {
    let template: Yaml = serde_norway::from_str(TEMPLATE).unwrap();
    let statements = default_statements(&template);
    assert!(
        statements.len() >= 25,
        "only {} statements found",
        statements.len()
    );
    for (function, index, actions) in statements {
        let context = format!(
            "{function} without statement {index} ({})",
            actions.join(", ")
        );
        let modified = without_statement(&template, &function, index);
        let aside = serde_norway::to_string(
            &template["Resources"][&function]["Properties"]["Policies"][0]["Statement"][index],
        )
        .unwrap()
        .contains("/aside/");
        let gate = Gate::start_with(|config| config.template = Some(modified)).await;
        let outcome = if aside {
            run_over_a_held_key(&gate).await
        } else {
            run(&gate, function == "DeleteManualReviewS3Files").await
        };
        let usage = gate.stack.iam().usage();
        let denied: Vec<&String> = usage.principals[&function]
            .actions
            .iter()
            .filter(|(action, [_, denied])| *denied > 0 && actions.contains(action))
            .map(|(action, _)| action)
            .collect();
        assert!(
            !denied.is_empty(),
            "{context}: no request of these actions was denied ({:?}); the run {}:\n{}",
            usage.principals[&function].actions,
            outcome.status,
            outcome.explained
        );
        if function == "ReceiveApprovalDecision" {
            // The API answers the reviewer with an error (without PutObject no decision can be
            // recorded, and the run is told only of recorded ones; without the grants of the
            // false-positive rules the rule is not changed); the run keeps waiting.
            assert_ne!(outcome.decision_status, Some(200), "{context}");
            assert_eq!(outcome.status, "RUNNING", "{context}");
        } else {
            assert_eq!(
                outcome.status, "FAILED",
                "{context}:\n{}",
                outcome.explained
            );
            // The failure names the action: in AccessDenied's message, or for a HEAD (whose
            // response has no body) in the handler's account of what HeadObject needs.
            assert!(
                denied.iter().any(|action| outcome
                    .explained
                    .contains(&format!("not authorized to perform: {action}"))
                    || (outcome.explained.contains("HeadObject needs")
                        && outcome.explained.contains(action.as_str()))),
                "{context}: the failure does not name a denied action {denied:?}:\n{}",
                outcome.explained
            );
        }
        if aside {
            // The first version is held, the second still in scan-stage where routing met it
            // (its copy kept aside was made before the record of it was refused, and stays
            // beside it unrecorded).
            let held = gate.keys(Bucket::ManualReview).await;
            assert!(held.iter().any(|k| k == "cards.csv"), "{context}: {held:?}");
            assert_eq!(
                gate.keys(Bucket::ScanStage).await,
                ["cards.csv"],
                "{context}"
            );
        } else {
            let approved = function != "DeleteManualReviewS3Files";
            nothing_lost(&gate, &context, &outcome, approved).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_template_as_it_is_lets_both_decisions_through_with_every_grant_checked() {
    for (encryption, deny) in Encryption::ALL
        .into_iter()
        .flat_map(|encryption| [(encryption, false), (encryption, true)])
    {
        let mut given = None;
        let gate = Gate::start_with(|config| given = encryption.apply(config)).await;
        // Macie may not use a given key the README's statement was not added to; with it the
        // clean object passes.
        if let Some(key) = &given {
            gate.let_macie_use(key).await;
        }
        let outcome = run(&gate, deny).await;
        assert_eq!(
            outcome.status, "SUCCEEDED",
            "{encryption:?}: {}",
            outcome.explained
        );
        // The clean object passed: Macie could read it, under whichever key.
        assert!(
            gate.keys(Bucket::ScannedData)
                .await
                .contains(&"readme.txt".to_owned()),
            "{encryption:?}"
        );
        let usage = gate.stack.iam().usage();
        for (principal, used) in &usage.principals {
            for (action, [allowed, denied]) in &used.actions {
                assert_eq!(
                    *denied, 0,
                    "{principal} was denied {action} ({allowed} allowed)"
                );
            }
        }
        // Every function and the state machine made requests, each under its own role.
        for principal in [
            "TriggerMacieScan",
            "CheckMacieStatus",
            "GetFindingsCount",
            "TriggerManualApproval",
            "ReceiveApprovalDecision",
            "MoveAllScanStageS3Files",
            "MaciePipelineScanStateMachine",
            "macie.amazonaws.com",
        ] {
            assert!(
                usage.principals.contains_key(principal),
                "{principal} made no request"
            );
        }
        let released_or_deleted = if deny {
            "DeleteManualReviewS3Files"
        } else {
            "MoveToScannedDataS3Files"
        };
        assert!(usage.principals.contains_key(released_or_deleted));
        // Reading the KMS-encrypted discovery results needs the key, granted through the key
        // policy's account statement.
        assert!(
            usage.principals["GetFindingsCount"].actions["kms:Decrypt"][0] > 0,
            "{:?}",
            usage.principals["GetFindingsCount"]
        );
    }
}

/// The functions whose policy grants the pipeline buckets' key (`!If [EncryptWithKms, ...]`), with
/// that statement's index.
fn bucket_key_statements(template: &Yaml) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (id, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let statements = resource["Properties"]["Policies"][0]["Statement"]
            .as_sequence()
            .unwrap();
        for (index, statement) in statements.iter().enumerate() {
            if let Yaml::Tagged(tagged) = statement
                && tagged.value[0].as_str() == Some("EncryptWithKms")
            {
                out.push((id.as_str().unwrap().to_owned(), index));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_sse_kms_every_function_needs_its_grant_on_the_bucket_key() {
    let template: Yaml = serde_norway::from_str(TEMPLATE).unwrap();
    let statements = bucket_key_statements(&template);
    assert_eq!(statements.len(), 7, "{statements:?}");
    for (function, index) in statements {
        let context = format!("{function} without its grant on the bucket key");
        let modified = without_statement(&template, &function, index);
        let gate = Gate::start_with(|config| {
            Encryption::StackKey.apply(config);
            config.template = Some(modified);
        })
        .await;
        let outcome = run(&gate, function == "DeleteManualReviewS3Files").await;
        let usage = gate.stack.iam().usage();
        let denied: Vec<&String> = usage.principals[&function]
            .actions
            .iter()
            .filter(|(action, [_, denied])| *denied > 0 && action.starts_with("kms:"))
            .map(|(action, _)| action)
            .collect();
        assert!(!denied.is_empty(), "{context}: no KMS request was denied");
        if function == "ReceiveApprovalDecision" {
            assert_ne!(outcome.decision_status, Some(200), "{context}");
            assert_eq!(outcome.status, "RUNNING", "{context}");
        } else {
            assert_eq!(
                outcome.status, "FAILED",
                "{context}:\n{}",
                outcome.explained
            );
            assert!(
                denied.iter().any(|action| outcome
                    .explained
                    .contains(&format!("not authorized to perform: {action}"))),
                "{context}: the failure does not name a denied action {denied:?}:\n{}",
                outcome.explained
            );
        }
        let approved = function != "DeleteManualReviewS3Files";
        nothing_lost(&gate, &context, &outcome, approved).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bucket_policies_deny_plain_http_even_to_the_account_user() {
    let gate = Gate::start().await;
    let raw = gate.bucket(Bucket::Raw);
    gate.upload("over-https.txt", "fine", &[], &[]).await;
    let plain = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&gate.stack.sdk_config().await)
            .endpoint_url(gate.stack.http_url())
            .build(),
    );
    let err = plain
        .get_object()
        .bucket(&raw)
        .key("over-https.txt")
        .send()
        .await
        .expect_err("plain HTTP is denied");
    let message = format!(
        "{}",
        aws_smithy_types::error::display::DisplayErrorContext(&err)
    );
    assert!(message.contains("AccessDenied"), "{message}");
    assert!(
        message.contains("explicit deny in a resource-based policy"),
        "{message}"
    );
    assert!(
        message.contains("arn:aws:iam::000000000000:user/local"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_enforcement_off_a_missing_grant_is_only_recorded() {
    let template: Yaml = serde_norway::from_str(TEMPLATE).unwrap();
    let (function, index, actions) = default_statements(&template)
        .into_iter()
        .find(|(function, _, actions)| {
            function == "TriggerMacieScan" && actions.contains(&"s3:ListBucket".to_owned())
        })
        .unwrap();
    let modified = without_statement(&template, &function, index);
    let gate = Gate::start_with(|config| {
        config.template = Some(modified);
        config.enforce_iam = false;
    })
    .await;
    let outcome = run(&gate, false).await;
    assert_eq!(outcome.status, "SUCCEEDED", "{}", outcome.explained);
    let usage = gate.stack.iam().usage();
    assert!(usage.principals[&function].actions[&actions[0]][1] > 0);
}

/// The state machine's role must be allowed the state machine's key, as Step Functions uses it
/// for the role: without that grant no execution starts (Step Functions'
/// `KmsAccessDeniedException`, naming the role) and nothing leaves raw.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_its_key_grant_the_state_machine_starts_no_execution() {
    let modified = e2e::without_state_machine_grant("kms:Decrypt");
    let gate = Gate::start_with(|config| config.template = Some(modified)).await;
    gate.upload("a.txt", "fine", &[], &[]).await;
    let refused = gate
        .sfn
        .start_execution()
        .state_machine_arn(gate.stack.state_machine_arn())
        .input(json!({"id": "wf-no-key"}).to_string())
        .send()
        .await
        .expect_err("the role may not use the key");
    let service = refused.as_service_error().expect("a service error");
    assert!(service.is_kms_access_denied_exception(), "{refused:?}");
    let message = aws_sdk_sfn::error::ProvideErrorMetadata::message(service).unwrap_or_default();
    assert!(
        message.contains("MaciePipelineScanStateMachine") && message.contains("kms:"),
        "{message}"
    );
    assert_eq!(gate.keys(Bucket::Raw).await, ["a.txt"]);
}

/// The schedule starts runs as its rule's role, which must be allowed the state machine's key
/// too: without that grant the schedule starts nothing (EventBridge records a failed
/// invocation), and the refusal is the role's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_its_key_grant_the_schedule_starts_no_run() {
    let mut template: Yaml = serde_norway::from_str(TEMPLATE).unwrap();
    let statements = template["Resources"]["StartRunsRole"]["Properties"]["Policies"][0]
        ["PolicyDocument"]["Statement"]
        .as_sequence_mut()
        .unwrap();
    statements.retain(|statement| statement["Action"][0].as_str() == Some("states:StartExecution"));
    assert_eq!(statements.len(), 1);
    let modified = serde_norway::to_string(&template).unwrap();
    let gate = Gate::start_with(|config| {
        config.template = Some(modified);
        config.schedule = true;
        // An hour takes 3.6 s at the tests' time scale: two ticks in 8 s.
        config
            .parameters
            .insert("ScanSchedule".into(), "rate(1 hour)".into());
    })
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let executions = gate.executions().await;
    assert!(executions.is_empty(), "{executions:?}");
    let usage = gate.stack.iam().usage();
    let [allowed, denied] = usage.principals["StartRuns"].actions["kms:GenerateDataKey"];
    assert_eq!(allowed, 0);
    assert!(denied >= 1, "the schedule asked for the key");
}
