//! The formats of a data lake through the whole gate: the local Macie reads Parquet, Avro and
//! archives as Macie does, so clean ones pass and flagged ones are held, and an archive with a
//! file it cannot read is held as not analysed in full.

use std::io::{Cursor, Write};

use e2e::{Bucket, Gate, http, link_after, listed_reason};
use macie_classifier::encode;
use serde_json::json;

fn rows(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|row| row.iter().map(|v| (*v).to_owned()).collect())
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parquet_avro_and_archives_are_gated_by_what_they_hold() {
    let gate = Gate::start().await;
    let people = ["name", "ssn"];
    let flagged = rows(&[&["Jane", "123-45-6789"], &["John", "234-56-7890"]]);
    let sales = ["region", "units"];
    let clean = rows(&[&["north", "1"], &["south", "2"]]);
    let uploads: Vec<(&str, Vec<u8>)> = vec![
        (
            "lake/people.parquet",
            encode::parquet(Vec::new(), &people, flagged.clone(), 1000).unwrap(),
        ),
        (
            "lake/sales.parquet",
            encode::parquet(Vec::new(), &sales, clean.clone(), 1000).unwrap(),
        ),
        (
            "lake/people.avro",
            encode::avro(Vec::new(), &people, flagged).unwrap(),
        ),
        (
            "lake/export.tar.gz",
            gzip(
                &encode::tar(
                    Vec::new(),
                    [
                        ("sales.csv".to_owned(), b"region,units\nnorth,1\n".to_vec()),
                        (
                            "sales.avro".to_owned(),
                            encode::avro(Vec::new(), &sales, clean).unwrap(),
                        ),
                    ],
                )
                .unwrap(),
            ),
        ),
        (
            "lake/bundle.zip",
            encode::zip(
                Cursor::new(Vec::new()),
                [
                    ("sales.csv".to_owned(), b"region,units\nnorth,1\n".to_vec()),
                    ("chart.png".to_owned(), b"\x89PNG\r\n\x1a\n".to_vec()),
                ],
            )
            .unwrap()
            .into_inner(),
        ),
    ];
    for (key, body) in uploads {
        gate.upload(key, body, &[], &[]).await;
    }
    let arn = gate.start_run("formats", json!({"id": "wf-formats"})).await;
    let email = gate.approval_email().await;
    gate.reaches(&arn, "triggerManualApproval").await;
    let subject = email.subject.clone().unwrap();
    assert!(
        subject.starts_with("Review needed: 3 objects, 2 with sensitive data"),
        "{subject}"
    );
    assert!(subject.contains("1 not analysed"), "{subject}");
    assert_eq!(
        listed_reason(&email.message, "lake/bundle.zip"),
        "ARCHIVE_CONTAINS_UNPROCESSED_FILES",
        "{}",
        email.message
    );
    assert!(
        email.message.contains("USA_SOCIAL_SECURITY_NUMBER x2"),
        "{}",
        email.message
    );
    assert_eq!(
        gate.sorted_keys(Bucket::ManualReview).await,
        ["lake/bundle.zip", "lake/people.avro", "lake/people.parquet"]
    );
    assert_eq!(
        gate.sorted_keys(Bucket::ScannedData).await,
        ["lake/export.tar.gz", "lake/sales.parquet"],
        "only what was read in full and found clean passes"
    );
    assert_eq!(
        gate.tags(Bucket::ManualReview, "lake/bundle.zip").await["SensitiveDataFound"],
        "unknown"
    );
    let response = http::decide(&link_after(&email.message, "Delete all")).await;
    assert_eq!(response.status(), 200);
    gate.ends_with(&arn, "SUCCEEDED").await;
    assert!(gate.keys(Bucket::ManualReview).await.is_empty());
}
