//! The paths a run can take, each checked by where every object ends up and what was emailed.

use std::collections::BTreeMap;

use e2e::{Bucket, Gate, http, link_after};
use serde_json::json;

/// Keys that break naive encodings.
const AWKWARD_KEYS: &[&str] = &[
    "a b/c d.txt",
    "plus+sign.csv",
    "per%cent.json",
    "ünïcödé/日本.txt",
    "q?uery#frag.txt",
];

/// Clean content that is valid for the key's format (a `.json` object must parse, or Macie
/// holds it as malformed).
fn harmless(key: &str) -> String {
    if key.ends_with(".json") {
        json!({ "note": format!("harmless {key}") }).to_string()
    } else {
        format!("harmless {key}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_empty_raw_bucket_is_nothing_to_scan() {
    let gate = Gate::start().await;
    let arn = gate.start_run("empty", json!({"id": "wf-empty"})).await;
    let described = gate.finished(&arn).await;
    assert_eq!(described.status.as_str(), "SUCCEEDED");
    let history = gate.stack.engine().describe(&arn).unwrap().history;
    assert!(
        history
            .iter()
            .any(|e| e.details["stateEnteredEventDetails"]["name"] == "noNewKeysInRawBucket")
    );
    let jobs = gate.macie.list_classification_jobs().send().await.unwrap();
    assert!(jobs.items().is_empty(), "no Macie job for an empty run");
    assert!(gate.emails().is_empty());
    // One event: the run succeeded, with nothing taken, scanned or routed.
    let events = gate.run_events(&arn);
    assert_eq!(gate.run_event_types(&arn), ["Run Succeeded"]);
    let detail = &events[0]["detail"];
    assert_eq!(detail["workflowId"], "wf-empty");
    assert_eq!(
        detail["intake"],
        json!({"taken": 0, "deferred": 0, "leftInRaw": 0})
    );
    for stage in ["macieJobId", "scan", "routing", "review"] {
        assert!(detail[stage].is_null(), "{stage}: {detail}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clean_objects_pass_with_keys_tags_and_metadata_intact() {
    let gate = Gate::start().await;
    for key in AWKWARD_KEYS {
        gate.upload(
            key,
            harmless(key),
            &[("team", "data eng"), ("origin", "sftp:/in")],
            &[("source", "upstream")],
        )
        .await;
    }
    let arn = gate.start_run("clean", json!({"id": "wf-clean"})).await;
    let described = gate.finished(&arn).await;
    assert_eq!(
        described.status.as_str(),
        "SUCCEEDED",
        "{:?}",
        described.cause
    );
    let mut expected: Vec<String> = AWKWARD_KEYS.iter().map(|k| (*k).to_owned()).collect();
    expected.sort();
    assert_eq!(gate.sorted_keys(Bucket::ScannedData).await, expected);
    for bucket in [Bucket::Raw, Bucket::ScanStage, Bucket::ManualReview] {
        assert!(
            gate.keys(bucket).await.is_empty(),
            "{bucket:?} is not empty"
        );
    }
    for key in AWKWARD_KEYS {
        assert_eq!(
            gate.body(Bucket::ScannedData, key).await,
            harmless(key).into_bytes()
        );
        let tags = gate.tags(Bucket::ScannedData, key).await;
        assert_eq!(
            tags,
            BTreeMap::from([
                ("WorkflowId".to_owned(), "wf-clean".to_owned()),
                ("origin".to_owned(), "sftp:/in".to_owned()),
                ("team".to_owned(), "data eng".to_owned()),
            ])
        );
        let head = gate
            .s3
            .head_object()
            .bucket(gate.bucket(Bucket::ScannedData))
            .key(*key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.metadata()
                .and_then(|m| m.get("source"))
                .map(String::as_str),
            Some("upstream")
        );
    }
    assert!(gate.emails().is_empty(), "a clean run sends no email");
    assert_eq!(gate.run_event_types(&arn), ["Run Succeeded"]);
    let detail = &gate.run_events(&arn)[0]["detail"];
    assert_eq!(detail["intake"]["taken"], AWKWARD_KEYS.len());
    assert_eq!(
        detail["routing"],
        json!({"passed": AWKWARD_KEYS.len(), "held": 0, "keptAside": 0})
    );
    assert_eq!(detail["scan"]["analysedClean"], AWKWARD_KEYS.len());
    assert!(detail["review"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flagged_objects_wait_in_review_and_an_approval_releases_them_tagged() {
    let gate = Gate::start().await;
    let (arn, email) = gate.flagged_run("approve").await;
    assert_eq!(gate.keys(Bucket::ManualReview).await, vec!["cards.csv"]);
    assert_eq!(gate.keys(Bucket::ScannedData).await, vec!["readme.txt"]);
    assert!(
        email.message.contains("CREDIT_CARD_NUMBER x1"),
        "{}",
        email.message
    );
    assert!(
        !email.message.contains("4111"),
        "the email must not carry the values"
    );
    // What Macie was billed for: both objects read in full, 43 + 17 bytes, from the discovery
    // results through the manifest.
    assert!(
        email
            .message
            .contains("Macie scanned:   60 B, about USD 0.0000 at USD 1.00 per GB"),
        "{}",
        email.message
    );

    let response = http::decide(&link_after(&email.message, "Release all")).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.body().contains("Every held object is decided"),
        "{}",
        response.body()
    );
    assert!(response.body().contains("1 to release, 0 to delete"));
    assert_eq!(gate.finished(&arn).await.status.as_str(), "SUCCEEDED");
    assert_eq!(
        gate.sorted_keys(Bucket::ScannedData).await,
        vec!["cards.csv", "readme.txt"]
    );
    assert!(gate.keys(Bucket::ManualReview).await.is_empty());
    let tags = gate.tags(Bucket::ScannedData, "cards.csv").await;
    assert_eq!(tags["SensitiveDataFound"], "true");
    assert_eq!(tags["team"], "billing");
    assert!(
        !gate
            .tags(Bucket::ScannedData, "readme.txt")
            .await
            .contains_key("SensitiveDataFound")
    );
    assert_eq!(gate.run_event_types(&arn), e2e::events::REVIEWED);
    let events = gate.run_events(&arn);
    assert_eq!(
        events[0]["detail"]["routing"],
        json!({"passed": 1, "held": 1, "keptAside": 0})
    );
    // A card number alone is of medium severity in Macie's policy.
    assert_eq!(events[0]["detail"]["scan"]["highestSeverity"], "Medium");
    assert_eq!(
        events[0]["detail"]["scan"]["flaggedBySeverity"],
        json!({"high": 0, "medium": 1, "low": 0})
    );
    // The event's links are the email's.
    assert_eq!(
        events[1]["detail"]["request"]["links"]["releaseAll"],
        link_after(&email.message, "Release all")
    );
    assert_eq!(
        events[2]["detail"]["review"],
        json!({"released": 1, "keptAside": 0, "deleted": 0, "undecided": 0,
               "timedOut": false, "timeoutAction": "hold"})
    );
    assert_eq!(events[3]["detail"]["review"], events[2]["detail"]["review"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_denial_deletes_the_flagged_objects_only() {
    let gate = Gate::start().await;
    let (arn, email) = gate.flagged_run("deny").await;
    let response = http::decide(&link_after(&email.message, "Delete all")).await;
    assert!(response.body().contains("0 to release, 1 to delete"));
    assert_eq!(gate.finished(&arn).await.status.as_str(), "SUCCEEDED");
    assert_eq!(gate.keys(Bucket::ScannedData).await, vec!["readme.txt"]);
    assert!(gate.keys(Bucket::ManualReview).await.is_empty());
    assert!(gate.keys(Bucket::ScanStage).await.is_empty());
    assert_eq!(gate.run_event_types(&arn), e2e::events::REVIEWED);
    assert_eq!(
        gate.run_events(&arn)[2]["detail"]["review"],
        json!({"released": 0, "keptAside": 0, "deleted": 1, "undecided": 0,
               "timedOut": false, "timeoutAction": "hold"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opening_a_link_decides_nothing_and_a_second_click_changes_nothing() {
    let gate = Gate::start().await;
    let (arn, email) = gate.flagged_run("clicks").await;
    let approve = link_after(&email.message, "Release all");
    // What a mail scanner does: fetch the link.
    for _ in 0..3 {
        assert_eq!(http::get(&approve).await.status(), 200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        gate.current_state(&arn).await.as_deref(),
        Some("triggerManualApproval")
    );
    assert_eq!(gate.keys(Bucket::ManualReview).await, vec!["cards.csv"]);

    // A page left open in another tab still holds the token in its forms.
    let token = http::form_token(http::get(&approve).await.body());
    assert_eq!(http::decide(&approve).await.status(), 200);
    let reopened = http::get(&approve).await;
    assert_eq!(reopened.status(), 200);
    assert!(
        reopened.body().contains("Every held object is decided"),
        "{}",
        reopened.body()
    );
    assert!(
        reopened
            .body()
            .contains("Release: decided by local reviewer on")
    );
    assert!(
        !reopened.body().contains("name=\"object."),
        "a decided object offers no choice"
    );
    let again = http::post_decision(&approve, &token).await;
    assert_eq!(again.status(), 410);
    assert!(again.body().contains("This review is closed"));
    let deny_after = http::post_decision(&link_after(&email.message, "Delete all"), &token).await;
    assert_eq!(
        deny_after.status(),
        410,
        "a deny after the approval must not delete anything"
    );
    assert_eq!(gate.finished(&arn).await.status.as_str(), "SUCCEEDED");
    assert_eq!(
        gate.sorted_keys(Bucket::ScannedData).await,
        vec!["cards.csv", "readme.txt"]
    );
}

async fn timeout_gate(action: &str) -> Gate {
    let action = action.to_owned();
    Gate::start_with(move |config| {
        config
            .parameters
            .insert("ApprovalTimeoutSeconds".into(), "300".into());
        config
            .parameters
            .insert("ApprovalTimeoutAction".into(), action);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_approval_holds_the_objects_by_default_and_says_so() {
    let gate = timeout_gate("hold").await;
    let arn = gate.start_flagged("timeout-hold").await;
    let described = gate.finished(&arn).await;
    assert_eq!(described.status.as_str(), "FAILED");
    assert_eq!(described.error(), Some("ApprovalTimedOut"));
    assert_eq!(gate.keys(Bucket::ManualReview).await, vec!["cards.csv"]);
    let notices: Vec<_> = gate
        .emails()
        .into_iter()
        .filter(|e| {
            e.subject
                .as_deref()
                .is_some_and(|s| s.contains("review expired"))
        })
        .collect();
    assert_eq!(notices.len(), 1);
    assert!(notices[0].message.contains("ApprovalTimeoutAction=hold"));
    assert_eq!(
        gate.run_event_types(&arn),
        [
            "Objects Held",
            "Review Requested",
            "Review Decided",
            "Run Failed"
        ]
    );
    let events = gate.run_events(&arn);
    assert_eq!(
        events[2]["detail"]["review"],
        json!({"released": 0, "keptAside": 0, "deleted": 0, "undecided": 1,
               "timedOut": true, "timeoutAction": "hold"})
    );
    let failure = &events[3]["detail"]["failure"];
    assert_eq!(failure["error"], "ApprovalTimedOut");
    assert_eq!(failure["cause"], "States.Timeout");
    assert_eq!(failure["message"], described.cause().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_approval_deletes_with_the_deny_default_and_says_so() {
    let gate = timeout_gate("deny").await;
    let arn = gate.start_flagged("timeout-deny").await;
    assert_eq!(gate.finished(&arn).await.status.as_str(), "SUCCEEDED");
    assert_eq!(gate.run_event_types(&arn), e2e::events::REVIEWED);
    // The undecided object was deleted with the deny default, and is counted among the deleted.
    assert_eq!(
        gate.run_events(&arn)[2]["detail"]["review"],
        json!({"released": 0, "keptAside": 0, "deleted": 1, "undecided": 1,
               "timedOut": true, "timeoutAction": "deny"})
    );
    assert!(gate.keys(Bucket::ManualReview).await.is_empty());
    assert_eq!(gate.keys(Bucket::ScannedData).await, vec!["readme.txt"]);
    let notices: Vec<_> = gate
        .emails()
        .into_iter()
        .filter(|e| {
            e.subject
                .as_deref()
                .is_some_and(|s| s.contains("objects deleted"))
        })
        .collect();
    assert_eq!(notices.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn objects_below_the_minimum_severity_pass_tagged_without_review() {
    let gate = Gate::start_with(|config| {
        config
            .parameters
            .insert("MinimumSeverity".into(), "High".into());
    })
    .await;
    gate.upload("ssn.txt", "ssn 123-45-6789", &[], &[]).await;
    let arn = gate
        .start_run("threshold", json!({"id": "wf-threshold"}))
        .await;
    assert_eq!(gate.finished(&arn).await.status.as_str(), "SUCCEEDED");
    assert_eq!(gate.keys(Bucket::ScannedData).await, vec!["ssn.txt"]);
    assert_eq!(
        gate.tags(Bucket::ScannedData, "ssn.txt").await["SensitiveDataFound"],
        "true"
    );
    assert!(gate.emails().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_runs_each_take_every_object_exactly_once() {
    let gate = Gate::start().await;
    for i in 0..60 {
        gate.upload(&format!("batch/{i:03}.txt"), format!("row {i}"), &[], &[])
            .await;
    }
    let first = gate.start_run("overlap-1", json!({"id": "wf-a"})).await;
    let second = gate.start_run("overlap-2", json!({"id": "wf-b"})).await;
    assert_eq!(gate.finished(&first).await.status.as_str(), "SUCCEEDED");
    assert_eq!(gate.finished(&second).await.status.as_str(), "SUCCEEDED");
    let keys = gate.sorted_keys(Bucket::ScannedData).await;
    assert_eq!(keys.len(), 60);
    for key in &keys {
        let workflow = &gate.tags(Bucket::ScannedData, key).await["WorkflowId"];
        assert!(workflow == "wf-a" || workflow == "wf-b");
    }
    for bucket in [Bucket::Raw, Bucket::ScanStage, Bucket::ManualReview] {
        assert!(gate.keys(bucket).await.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_object_with_too_many_tags_stays_in_raw_and_the_run_says_so() {
    let gate = Gate::start().await;
    let nine: Vec<(String, String)> = (0..9).map(|i| (format!("k{i}"), "v".to_owned())).collect();
    let tags: Vec<(&str, &str)> = nine.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    gate.upload("crowded.txt", "fine", &tags, &[]).await;
    gate.upload("plain.txt", "fine", &[], &[]).await;
    let arn = gate.start_run("rejects", json!({"id": "wf-rejects"})).await;
    let described = gate.finished(&arn).await;
    assert_eq!(described.status.as_str(), "FAILED");
    assert_eq!(described.error(), Some("ObjectsRejected"));
    assert_eq!(gate.keys(Bucket::Raw).await, vec!["crowded.txt"]);
    assert_eq!(gate.run_event_types(&arn), ["Run Failed"]);
    let detail = &gate.run_events(&arn)[0]["detail"];
    assert_eq!(detail["intake"]["leftInRaw"], 1);
    assert_eq!(detail["routing"]["passed"], 1);
    assert_eq!(detail["failure"]["error"], "ObjectsRejected");
    assert_eq!(detail["failure"]["message"], described.cause().unwrap());
    assert_eq!(gate.keys(Bucket::ScannedData).await, vec!["plain.txt"]);
    let notices: Vec<_> = gate
        .emails()
        .into_iter()
        .filter(|e| {
            e.subject
                .as_deref()
                .is_some_and(|s| s.contains("left in the raw bucket"))
        })
        .collect();
    assert_eq!(notices.len(), 1);
    assert!(
        notices[0].message.contains("crowded.txt") && notices[0].message.contains("S3 allows 10")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approval_releases_only_what_its_request_showed_even_when_an_id_is_reused() {
    let gate = Gate::start().await;
    gate.upload("first.csv", "card 4111 1111 1111 1111", &[], &[])
        .await;
    let first = gate.start_run("reused-1", json!({"id": "wf-reused"})).await;
    gate.approval_email().await;
    gate.reaches(&first, "triggerManualApproval").await;
    gate.sfn
        .stop_execution()
        .execution_arn(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(gate.keys(Bucket::ManualReview).await, vec!["first.csv"]);

    // A second run with the same id holds another object, and the reviewer approves it.
    gate.upload("second.csv", "card 5555 5555 5555 4444", &[], &[])
        .await;
    let second = gate.start_run("reused-2", json!({"id": "wf-reused"})).await;
    let waiting = std::time::Instant::now();
    let email = loop {
        assert!(
            waiting.elapsed() < std::time::Duration::from_secs(60),
            "no second approval request"
        );
        let mut requests: Vec<_> = gate
            .emails()
            .into_iter()
            .filter(|e| e.is_review_request())
            .collect();
        if requests.len() == 2 {
            break requests.pop().unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(email.message.contains("second.csv") && !email.message.contains("first.csv"));
    http::decide(&link_after(&email.message, "Release all")).await;
    assert_eq!(gate.finished(&second).await.status.as_str(), "SUCCEEDED");
    assert_eq!(gate.keys(Bucket::ScannedData).await, vec!["second.csv"]);
    assert_eq!(
        gate.keys(Bucket::ManualReview).await,
        vec!["first.csv"],
        "the unseen object stays held"
    );
}
