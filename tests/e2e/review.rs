//! Review per object on the local stack, through the real state machine: a run's held objects
//! decided in two visits, each ending where its own decision put it, and at the timeout the
//! configured action applied to the undecided ones only.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use e2e::{Bucket, Gate, http, link_after};
use macie_pipeline::s3::documents::hashed_name;

const CARD: &str = "name,card\nAda,4111 1111 1111 1111\n";

/// A run holding `keys` (each with a card number) plus one clean object; the review link and the
/// form's token once the run waits.
async fn waiting(gate: &Gate, name: &str, keys: &[&str]) -> (String, String, String) {
    for key in keys {
        gate.upload(key, CARD, &[], &[]).await;
    }
    gate.upload("clean.txt", "nothing here", &[], &[]).await;
    let arn = gate.start_run(name, json!({ "id": name })).await;
    let email = gate.approval_email().await;
    gate.reaches(&arn, "triggerManualApproval").await;
    let link = link_after(&email.message, "Decide each object");
    let page = http::get(&link).await;
    assert_eq!(page.status(), 200, "{}", page.body());
    let token = http::form_token(page.body());
    (arn, link, token)
}

fn chosen(choices: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
    choices
        .iter()
        .map(|(key, choice)| (hashed_name(key), *choice))
        .collect()
}

/// Every decision record in the manifests bucket (each test's stack holds one review), by key.
async fn decision_records(gate: &Gate) -> BTreeMap<String, Value> {
    let mut records = BTreeMap::new();
    for key in gate.keys(Bucket::Manifests).await {
        if key.starts_with("approvals/") && key.contains("/objects/") {
            let record: Value =
                serde_json::from_slice(&gate.body(Bucket::Manifests, &key).await).unwrap();
            records.insert(record["key"].as_str().unwrap().to_owned(), record);
        }
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_held_objects_decided_in_two_visits_each_end_where_their_decision_put_them() {
    let gate = Gate::start().await;
    let keys = ["a.csv", "b.csv", "c.csv", "d.csv", "e.csv"];
    let (arn, link, token) = waiting(&gate, "two-visits", &keys).await;
    let action = link.split('?').next().unwrap().to_owned();

    // First visit: two released, one deleted, two left for later.
    let first = http::post_review(
        &action,
        &token,
        "ada@example.com",
        &chosen(&[
            ("a.csv", "release"),
            ("b.csv", "release"),
            ("c.csv", "delete"),
        ]),
        "keep",
    )
    .await;
    assert_eq!(first.status(), 200, "{}", first.body());
    assert!(
        first.body().contains("Recorded 3 decision(s)."),
        "{}",
        first.body()
    );
    assert!(first.body().contains("2 still to decide"));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        gate.current_state(&arn).await.as_deref(),
        Some("triggerManualApproval"),
        "the run waits for the two undecided objects"
    );
    assert_eq!(gate.sorted_keys(Bucket::ManualReview).await, keys);

    // Second visit, another reviewer: the other two released.
    let second = http::post_review(
        &action,
        &token,
        "bob@example.com",
        &chosen(&[("d.csv", "release"), ("e.csv", "release")]),
        "keep",
    )
    .await;
    assert!(
        second.body().contains("Every held object is decided"),
        "{}",
        second.body()
    );
    gate.ends_with(&arn, "SUCCEEDED").await;
    assert_eq!(
        gate.sorted_keys(Bucket::ScannedData).await,
        ["a.csv", "b.csv", "clean.txt", "d.csv", "e.csv"]
    );
    assert!(
        gate.keys(Bucket::ManualReview).await.is_empty(),
        "c.csv deleted"
    );
    for key in ["a.csv", "d.csv"] {
        assert_eq!(
            gate.tags(Bucket::ScannedData, key).await["SensitiveDataFound"],
            "true"
        );
    }

    let records = decision_records(&gate).await;
    let summary: Vec<(&str, &str, &str)> = records
        .values()
        .map(|r| {
            (
                r["key"].as_str().unwrap(),
                r["choice"].as_str().unwrap(),
                r["reviewer"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("a.csv", "release", "ada@example.com"),
            ("b.csv", "release", "ada@example.com"),
            ("c.csv", "delete", "ada@example.com"),
            ("d.csv", "release", "bob@example.com"),
            ("e.csv", "release", "bob@example.com"),
        ]
    );
    assert!(
        records
            .values()
            .all(|r| r["reviewer"]["sourceIp"] == "127.0.0.1")
    );
    assert!(records.values().all(|r| r["workflowId"] == "two-visits"));

    // The report an auditor reads: each object's decision, its reviewer and where it ended.
    let (report, html) = report(&gate).await;
    assert_eq!(
        endings(&report),
        [
            ("a.csv", "released"),
            ("b.csv", "released"),
            ("c.csv", "deleted"),
            ("d.csv", "released"),
            ("e.csv", "released"),
        ]
        .map(|(k, o)| (k.to_owned(), o.to_owned()))
    );
    assert_eq!(
        report["held"][3]["decision"]["reviewer"]["name"],
        "bob@example.com"
    );
    assert!(html.contains("Delete by ada@example.com"), "{html}");
    assert!(html.contains("released to s3://"), "{html}");
    assert!(!html.contains("4111"), "never a detected value");
}

/// The review's report (JSON and page) the last step wrote; each test's stack holds one review.
async fn report(gate: &Gate) -> (Value, String) {
    let keys = gate.keys(Bucket::Manifests).await;
    let json = keys
        .iter()
        .find(|k| k.starts_with("approvals/") && k.ends_with("/report.json"))
        .expect("a report");
    let report: Value = serde_json::from_slice(&gate.body(Bucket::Manifests, json).await).unwrap();
    let html = String::from_utf8(
        gate.body(Bucket::Manifests, &json.replace(".json", ".html"))
            .await,
    )
    .unwrap();
    (report, html)
}

/// (key, outcome) of every held object in a report.
fn endings(report: &Value) -> Vec<(String, String)> {
    report["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["key"].as_str().unwrap().to_owned(),
                o["outcome"]["outcome"]
                    .as_str()
                    .unwrap_or("none")
                    .to_owned(),
            )
        })
        .collect()
}

/// A stack whose reviews time out after `seconds` of workflow time with `action`.
async fn timing_out(action: &str, seconds: u32) -> Gate {
    let action = action.to_owned();
    Gate::start_with(move |config| {
        config
            .parameters
            .insert("ApprovalTimeoutSeconds".into(), seconds.to_string());
        config
            .parameters
            .insert("ApprovalTimeoutAction".into(), action);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_the_timeout_the_default_action_applies_to_the_undecided_objects_only() {
    for (action, status) in [("hold", "FAILED"), ("deny", "SUCCEEDED")] {
        // 4,000 workflow seconds are 4 s here: time enough to decide one object first.
        let gate = timing_out(action, 4000).await;
        let (arn, link, token) = waiting(
            &gate,
            &format!("timeout-{action}"),
            &["kept.csv", "undecided.csv"],
        )
        .await;
        let action_url = link.split('?').next().unwrap().to_owned();
        let posted = http::post_review(
            &action_url,
            &token,
            "ada@example.com",
            &chosen(&[("kept.csv", "release")]),
            "keep",
        )
        .await;
        assert!(
            posted.body().contains("Recorded 1 decision(s)."),
            "{}",
            posted.body()
        );

        let described = gate.finished(&arn).await;
        assert_eq!(
            described.status.as_str(),
            status,
            "{action}: {}",
            gate.explain(&arn)
        );
        assert_eq!(
            gate.sorted_keys(Bucket::ScannedData).await,
            ["clean.txt", "kept.csv"],
            "{action}: the decided object is released"
        );
        let held = gate.keys(Bucket::ManualReview).await;
        let notice = gate
            .emails()
            .into_iter()
            .find(|e| {
                e.subject
                    .as_deref()
                    .is_some_and(|s| s.contains("review expired"))
            })
            .unwrap_or_else(|| panic!("{action}: no notice"));
        assert!(
            notice.message.contains("with 1 held object(s) undecided"),
            "{}",
            notice.message
        );
        let (report, _) = report(&gate).await;
        let undecided = match action {
            "hold" => "leftHeldAtDeadline",
            _ => "deletedAtDeadline",
        };
        assert_eq!(
            endings(&report),
            [("kept.csv", "released"), ("undecided.csv", undecided)]
                .map(|(k, o)| (k.to_owned(), o.to_owned()))
        );
        assert!(report["held"][1]["decision"].is_null());
        match action {
            "hold" => {
                assert_eq!(held, ["undecided.csv"], "held for someone to handle");
                assert_eq!(described.error(), Some("ApprovalTimedOut"));
                assert!(notice.message.contains("ApprovalTimeoutAction=hold"));
            }
            _ => {
                assert!(held.is_empty(), "the undecided object is deleted: {held:?}");
                assert!(notice.message.contains("ApprovalTimeoutAction=deny"));
            }
        }
    }
}
