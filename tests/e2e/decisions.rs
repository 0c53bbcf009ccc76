//! Decisions per held object on the local S3: a choice, once made, is final, and S3's
//! `If-None-Match` decides which of two racing decisions stands.

use std::collections::BTreeMap;

use macie_pipeline::approval::decisions::{
    self, Choice, ObjectDecision, Recorded, Reviewer, record_key,
};
use macie_pipeline::approval::visit::{Form, HeldObject, OpenReview};
use macie_pipeline::s3::documents::{self, hashed_name};

use e2e::{Bucket, Gate};
use macie_pipeline::workflow::WorkflowId;

fn decision(key: &str, choice: Choice, reviewer: &str) -> ObjectDecision {
    ObjectDecision {
        workflow_id: WorkflowId::parse("wf-decisions").unwrap(),
        key: key.to_owned(),
        location: key.to_owned(),
        choice,
        reviewer: Reviewer {
            name: reviewer.to_owned(),
            source_ip: Some("192.0.2.7".into()),
            user_agent: Some("test".into()),
        },
        decided_at: "2026-12-02T10:00:00Z".into(),
    }
}

#[tokio::test]
async fn of_two_racing_decisions_of_one_object_exactly_one_stands() {
    let gate = Gate::start().await;
    let bucket = gate.bucket(Bucket::Manifests);
    let hash = hashed_name("a token");
    for round in 0..20 {
        let key = format!("customers/{round}.csv");
        let release = decision(&key, Choice::Release, "ada@example.com");
        let delete = decision(&key, Choice::Delete, "bob@example.com");
        let (first, second) = tokio::join!(
            decisions::record(&gate.s3, &bucket, &hash, &release),
            decisions::record(&gate.s3, &bucket, &hash, &delete),
        );
        let (first, second) = (first.unwrap(), second.unwrap());
        let winner = match (&first, &second) {
            (Recorded::Decided, Recorded::AlreadyDecided(earlier)) => {
                assert_eq!(earlier, &release);
                &release
            }
            (Recorded::AlreadyDecided(earlier), Recorded::Decided) => {
                assert_eq!(earlier, &delete);
                &delete
            }
            other => panic!("round {round}: not exactly one winner: {other:?}"),
        };
        let stored = decisions::read_all(&gate.s3, &bucket, &hash).await.unwrap();
        assert_eq!(stored.get(&key), Some(winner), "round {round}");
        // A later visit cannot change it either.
        let again = decision(&key, Choice::Release, "carol@example.com");
        assert_eq!(
            decisions::record(&gate.s3, &bucket, &hash, &again)
                .await
                .unwrap(),
            Recorded::AlreadyDecided(winner.clone())
        );
    }
}

#[tokio::test]
async fn a_requests_decisions_are_read_back_by_key_and_kept_apart_from_other_requests() {
    let gate = Gate::start().await;
    let bucket = gate.bucket(Bucket::Manifests);
    let (mine, other) = (hashed_name("mine"), hashed_name("other"));
    let keys: Vec<String> = (0..1_200).map(|n| format!("batch/{n:04}.json")).collect();
    for (n, key) in keys.iter().enumerate() {
        let choice = if n % 3 == 0 {
            Choice::Delete
        } else {
            Choice::Release
        };
        let recorded = decisions::record(&gate.s3, &bucket, &mine, &decision(key, choice, "ada"))
            .await
            .unwrap();
        assert_eq!(recorded, Recorded::Decided);
    }
    decisions::record(
        &gate.s3,
        &bucket,
        &other,
        &decision("elsewhere.csv", Choice::Delete, "bob"),
    )
    .await
    .unwrap();
    // More than one listing page.
    let stored = decisions::read_all(&gate.s3, &bucket, &mine).await.unwrap();
    assert_eq!(stored.len(), keys.len());
    assert_eq!(stored["batch/0000.json"].choice, Choice::Delete);
    assert_eq!(stored["batch/0001.json"].choice, Choice::Release);
    assert!(!stored.contains_key("elsewhere.csv"));
    assert_eq!(
        decisions::read_all(&gate.s3, &bucket, &hashed_name("none"))
            .await
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn a_record_at_another_objects_key_is_refused() {
    let gate = Gate::start().await;
    let bucket = gate.bucket(Bucket::Manifests);
    let hash = hashed_name("a token");
    // A record for a.csv stored where b.csv's decision belongs would decide b.csv.
    documents::put_json(
        &gate.s3,
        &bucket,
        &record_key(&hash, "b.csv"),
        &decision("a.csv", Choice::Release, "mallory"),
    )
    .await
    .unwrap();
    let err = decisions::read_all(&gate.s3, &bucket, &hash)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "InvalidManifest");
    assert!(err.to_string().contains("does not belong"), "{err}");
}

fn form(reviewer: &str, choices: &[(&str, Choice)], remaining: Option<Choice>) -> Form {
    Form {
        token: "a token".into(),
        reviewer: reviewer.into(),
        choices: choices
            .iter()
            .map(|(key, choice)| (hashed_name(key), *choice))
            .collect::<BTreeMap<_, _>>(),
        remaining,
    }
}

#[tokio::test]
async fn a_review_is_decided_in_two_visits_and_the_first_decision_of_each_object_stands() {
    let gate = Gate::start().await;
    let bucket = gate.bucket(Bucket::Manifests);
    let hash = hashed_name("a token");
    let held: Vec<HeldObject> = ["a.csv", "b.csv", "c.csv", "d.csv", "e.csv"]
        .into_iter()
        .map(|key| HeldObject {
            key: key.into(),
            location: format!("gate-versions/2026-12-02T10:00:00Z/{key}"),
        })
        .collect();
    let ada = Reviewer {
        name: "ada@example.com".into(),
        source_ip: Some("192.0.2.1".into()),
        user_agent: None,
    };
    let workflow = WorkflowId::parse("wf-decisions").unwrap();
    let visit = |existing| OpenReview {
        s3: &gate.s3,
        workflow_id: &workflow,
        bucket: &bucket,
        review: &hash,
        held: &held,
        existing,
    };

    let none = BTreeMap::new();
    let first = visit(&none)
        .decide(
            &form(
                "ada@example.com",
                &[
                    ("a.csv", Choice::Release),
                    ("b.csv", Choice::Release),
                    ("c.csv", Choice::Delete),
                ],
                None,
            ),
            &ada,
            "2026-12-02T10:05:00Z",
        )
        .await
        .unwrap();
    assert_eq!(first.decided.len(), 3);
    assert_eq!(first.undecided, 2);
    assert_eq!(
        first.decided[2].location,
        "gate-versions/2026-12-02T10:00:00Z/c.csv"
    );

    // Later, another reviewer: "release the rest", and a change of c.csv that must not take.
    let bob = Reviewer {
        name: "bob@example.com".into(),
        source_ip: None,
        user_agent: Some("phone".into()),
    };
    let so_far = decisions::read_all(&gate.s3, &bucket, &hash).await.unwrap();
    let second = visit(&so_far)
        .decide(
            &form(
                "bob@example.com",
                &[("c.csv", Choice::Release)],
                Some(Choice::Release),
            ),
            &bob,
            "2026-12-02T11:00:00Z",
        )
        .await
        .unwrap();
    assert_eq!(
        second
            .decided
            .iter()
            .map(|d| d.key.as_str())
            .collect::<Vec<_>>(),
        ["d.csv", "e.csv"]
    );
    assert_eq!(second.earlier.len(), 1);
    assert_eq!(
        (second.earlier[0].key.as_str(), second.earlier[0].choice),
        ("c.csv", Choice::Delete)
    );
    assert_eq!(second.undecided, 0);

    let all = decisions::read_all(&gate.s3, &bucket, &hash).await.unwrap();
    let summary: Vec<(&str, Choice, &str)> = all
        .values()
        .map(|d| (d.key.as_str(), d.choice, d.reviewer.name.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("a.csv", Choice::Release, "ada@example.com"),
            ("b.csv", Choice::Release, "ada@example.com"),
            ("c.csv", Choice::Delete, "ada@example.com"),
            ("d.csv", Choice::Release, "bob@example.com"),
            ("e.csv", Choice::Release, "bob@example.com"),
        ]
    );

    // A form naming an object the review does not hold decides nothing.
    let err = visit(&all)
        .decide(
            &form("eve", &[("other.csv", Choice::Release)], None),
            &bob,
            "now",
        )
        .await
        .unwrap_err();
    assert_eq!(err.name(), "InvalidInput");
}
