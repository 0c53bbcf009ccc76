//! False positives handled once, on the local stack through the real state machine: a rule a
//! reviewer adds from a review changes what the next run of the same content holds, and removing
//! it brings the finding back. The same key is rewritten before every run, as a daily export is.

use serde_json::{Value, json};

use e2e::{Bucket, Gate, http, link_after};
use macie_pipeline::false_positives::allow_lists::{WORDS_HEADER, WORDS_KEY};
use macie_pipeline::s3::documents::hashed_name;

const CARD: &str = "name,card\nTest customer,4111 1111 1111 1111\n";
const REVIEWER: &str = "ada@example.com";

/// The `n`-th review request email (from 1), once it is there.
async fn review_email(gate: &Gate, n: usize) -> macie_pipeline_local::sns::Delivered {
    let start = std::time::Instant::now();
    loop {
        let requests: Vec<_> = gate
            .emails()
            .into_iter()
            .filter(|e| e.is_review_request())
            .collect();
        if requests.len() >= n {
            return requests[n - 1].clone();
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "no review request number {n}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn review_requests(gate: &Gate) -> usize {
    gate.emails()
        .iter()
        .filter(|e| e.is_review_request())
        .count()
}

/// Runs the gate once over `objects` (each rewritten at its key first). Returns the run's arn and,
/// if it waits for a review, the review link and the form's token.
async fn run(
    gate: &Gate,
    name: &str,
    objects: &[(&str, &str)],
) -> (String, Option<(String, String)>) {
    for (key, body) in objects {
        gate.upload(key, *body, &[], &[]).await;
    }
    let before = review_requests(gate);
    let arn = gate.start_run(name, json!({ "id": name })).await;
    loop {
        if review_requests(gate) > before {
            let email = review_email(gate, before + 1).await;
            gate.reaches(&arn, "triggerManualApproval").await;
            let link = link_after(&email.message, "Decide each object");
            let page = http::get(&link).await;
            assert_eq!(page.status(), 200, "{}", page.body());
            let token = http::form_token(page.body());
            return (arn, Some((link, token)));
        }
        let described = gate.describe(&arn).await;
        if described.status().as_str() != "RUNNING" {
            return (arn, None);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The false-positives page's address beside the review page's.
fn page_of(link: &str) -> String {
    let review = link.split('?').next().unwrap();
    format!("{}/false-positives", review.rsplit_once('/').unwrap().0)
}

/// Releases every held object, so the run ends.
async fn release_all(gate: &Gate, arn: &str, link: &str, token: &str) {
    let action = link.split('?').next().unwrap();
    let done = http::post_review(action, token, REVIEWER, &[], "release").await;
    assert_eq!(done.status(), 200, "{}", done.body());
    gate.ends_with(arn, "SUCCEEDED").await;
}

async fn add_rule(link: &str, token: &str, fields: &[(&str, &str)]) -> String {
    let added = http::post_false_positive(&page_of(link), token, REVIEWER, fields).await;
    assert_eq!(added.status(), 200, "{}", added.body());
    assert!(added.body().contains("Added: "), "{}", added.body());
    added.body().to_owned()
}

/// The id of the only rule the page lists.
fn only_rule_id(page: &str) -> String {
    let ids: Vec<&str> = page
        .match_indices("name=\"remove\" value=\"")
        .map(|(at, found)| &page[at + found.len()..at + found.len() + 64])
        .collect();
    assert_eq!(ids.len(), 1, "{page}");
    ids[0].to_owned()
}

async fn remove_rule(link: &str, token: &str, id: &str) {
    let removed =
        http::post_false_positive(&page_of(link), token, "bob@example.com", &[("remove", id)])
            .await;
    assert_eq!(removed.status(), 200, "{}", removed.body());
    assert!(removed.body().contains("Removed: "), "{}", removed.body());
}

async fn rule_record(gate: &Gate, id: &str) -> Value {
    serde_json::from_slice(
        &gate
            .body(
                Bucket::Manifests,
                &format!("false-positives/rules/{id}.json"),
            )
            .await,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_phrase_or_pattern_marked_false_positive_is_not_flagged_by_the_next_run_until_removed() {
    let gate = Gate::start().await;
    let objects = [("exports/customers.csv", CARD)];

    // Run 1 holds the export; the reviewer marks its card number, a test card, as a phrase.
    let (arn, Some((link, token))) = run(&gate, "day-1", &objects).await else {
        panic!("the card number is held the first time");
    };
    let object = hashed_name("exports/customers.csv");
    let judged = http::get(&format!(
        "{}?token={}&object={object}",
        page_of(&link),
        urlencode(&token)
    ))
    .await;
    assert_eq!(judged.status(), 200, "{}", judged.body());
    assert!(
        judged.body().contains("CREDIT_CARD_NUMBER"),
        "{}",
        judged.body()
    );
    assert!(
        !judged.body().contains("4111"),
        "the page never shows a detected value"
    );
    let added = add_rule(
        &link,
        &token,
        &[
            ("object", &object),
            ("kind", "phrase"),
            ("text", " 4111 1111 1111 1111 "),
        ],
    )
    .await;
    let phrase = only_rule_id(&added);
    let record = rule_record(&gate, &phrase).await;
    assert_eq!(record["addedBy"]["name"], REVIEWER);
    assert_eq!(record["judgedObject"], "exports/customers.csv");
    assert_eq!(
        record["rule"],
        json!({"kind": "phrase", "text": "4111 1111 1111 1111"})
    );
    let words = String::from_utf8(gate.body(Bucket::Manifests, WORDS_KEY).await).unwrap();
    assert_eq!(words, format!("{WORDS_HEADER}\n4111 1111 1111 1111\n"));
    release_all(&gate, &arn, &link, &token).await;

    // Run 2, the same content rewritten: Macie ignores the phrase, nothing is held.
    let (arn, review) = run(&gate, "day-2", &objects).await;
    assert!(review.is_none(), "the phrase is allowed now");
    gate.ends_with(&arn, "SUCCEEDED").await;
    assert!(
        !gate
            .tags(Bucket::ScannedData, "exports/customers.csv")
            .await
            .contains_key("SensitiveDataFound")
    );

    // The rule is removed (from run 3's review, the only open link): run 3 holds the export again.
    let (arn, Some((link, token))) = run(
        &gate,
        "day-3-before-removal",
        &[(
            "exports/other.csv",
            CARD.replace("4111 1111 1111 1111", "5555 5555 5555 4444")
                .as_str(),
        )],
    )
    .await
    else {
        panic!("another card is still held");
    };
    remove_rule(&link, &token, &phrase).await;
    let words = String::from_utf8(gate.body(Bucket::Manifests, WORDS_KEY).await).unwrap();
    assert_eq!(words, format!("{WORDS_HEADER}\n"));
    release_all(&gate, &arn, &link, &token).await;
    let (arn, Some((link, token))) = run(&gate, "day-4", &objects).await else {
        panic!("without the phrase the card is held again");
    };

    // A pattern instead: Macie ignores text the regex matches completely.
    add_rule(
        &link,
        &token,
        &[("kind", "pattern"), ("regex", r"4111( 1111){3}")],
    )
    .await;
    release_all(&gate, &arn, &link, &token).await;
    let (arn, review) = run(&gate, "day-5", &objects).await;
    assert!(review.is_none(), "the pattern is allowed now");
    gate.ends_with(&arn, "SUCCEEDED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_finding_type_suppressed_under_a_prefix_holds_nothing_there_until_removed() {
    let gate = Gate::start().await;
    let fixtures = [("fixtures/people.csv", CARD)];

    let (arn, Some((link, token))) = run(&gate, "fixtures-1", &fixtures).await else {
        panic!("the fixture is held the first time");
    };
    let added = add_rule(
        &link,
        &token,
        &[
            ("object", &hashed_name("fixtures/people.csv")),
            ("kind", "suppression"),
            ("findingType", "SensitiveData:S3Object/Financial"),
            ("keyPrefix", "fixtures/"),
        ],
    )
    .await;
    let rule = only_rule_id(&added);
    release_all(&gate, &arn, &link, &token).await;

    // The same type under the prefix holds nothing; elsewhere it still does.
    let (arn, review) = run(
        &gate,
        "fixtures-2",
        &[("fixtures/people.csv", CARD), ("exports/people.csv", CARD)],
    )
    .await;
    let (link, token) = review.expect("exports/ is not under the prefix");
    let page = http::get(&link).await;
    assert!(page.body().contains("exports/people.csv"));
    assert!(
        !page.body().contains("fixtures/people.csv"),
        "{}",
        page.body()
    );
    // The run's manifest says which rule set the finding aside.
    let manifest_key = gate
        .keys(Bucket::Manifests)
        .await
        .into_iter()
        .find(|k| k.starts_with("workflows/fixtures%2D2/") && k.ends_with("/findings.json"))
        .expect("run 2's manifest");
    let manifest: Value =
        serde_json::from_slice(&gate.body(Bucket::Manifests, &manifest_key).await).unwrap();
    assert_eq!(manifest["suppressed"][0]["key"], "fixtures/people.csv");
    assert_eq!(manifest["suppressed"][0]["rule"], rule.as_str());
    remove_rule(&link, &token, &rule).await;
    release_all(&gate, &arn, &link, &token).await;
    assert!(
        !gate
            .tags(Bucket::ScannedData, "fixtures/people.csv")
            .await
            .contains_key("SensitiveDataFound")
    );

    // Removed: the fixture is held again.
    let (_, review) = run(&gate, "fixtures-3", &fixtures).await;
    let (link, _) = review.expect("without the rule the fixture is held again");
    assert!(
        http::get(&link)
            .await
            .body()
            .contains("fixtures/people.csv")
    );
    assert!(
        gate.keys(Bucket::Manifests)
            .await
            .iter()
            .any(|k| k.starts_with(&format!("false-positives/removed/{rule}/"))),
        "the removal is on record"
    );
}

fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_macie_suppression_rule_of_your_own_archives_findings_the_gate_then_does_not_count() {
    use aws_sdk_macie2::types::{
        CriterionAdditionalProperties, FindingCriteria, FindingsFilterAction,
    };
    let gate = Gate::start().await;
    // Archive Financial findings on objects of the scan stage named exactly so: Macie's
    // criteria compare whole values.
    let criteria = FindingCriteria::builder()
        .criterion(
            "type",
            CriterionAdditionalProperties::builder()
                .eq("SensitiveData:S3Object/Financial")
                .build(),
        )
        .criterion(
            "resourcesAffected.s3Object.key",
            CriterionAdditionalProperties::builder()
                .eq("samples/test-cards.csv")
                .build(),
        )
        .build();
    let created = gate
        .macie
        .create_findings_filter()
        .name("test cards")
        .action(FindingsFilterAction::Archive)
        .finding_criteria(criteria)
        .client_token("test-cards")
        .send()
        .await
        .unwrap();
    let listed = gate.macie.list_findings_filters().send().await.unwrap();
    assert_eq!(listed.findings_filter_list_items().len(), 1);

    let (arn, review) = run(
        &gate,
        "own-rule",
        &[
            ("samples/test-cards.csv", CARD),
            ("exports/cards.csv", CARD),
        ],
    )
    .await;
    let (link, token) = review.expect("the other object is still held");
    let page = http::get(&link).await;
    assert!(page.body().contains("exports/cards.csv"));
    assert!(
        !page.body().contains("samples/test-cards.csv"),
        "{}",
        page.body()
    );
    release_all(&gate, &arn, &link, &token).await;
    // The archived finding is still there, archived.
    let archived = gate
        .macie
        .list_findings()
        .finding_criteria(
            FindingCriteria::builder()
                .criterion(
                    "archived",
                    CriterionAdditionalProperties::builder().eq("true").build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(archived.finding_ids().len(), 1);

    // Deleted, the rule archives nothing: the next run of the same content holds it.
    gate.macie
        .delete_findings_filter()
        .id(created.id().unwrap())
        .send()
        .await
        .unwrap();
    let (_, review) = run(&gate, "own-rule-gone", &[("samples/test-cards.csv", CARD)]).await;
    assert!(review.is_some(), "without the rule the object is held");
}
