//! What a failed save and a damaged saved file do to the local Macie (see `crate::json_file`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use super::error::MacieError;
use super::service::{Macie, MacieOptions};
use crate::aws::ACCOUNT;
use crate::clock::Clock;
use crate::deployment::{Deployment, TEMPLATE};
use crate::iam::Iam;
use crate::s3::store::Store;

fn open(dir: &Path, store: &Arc<Store>) -> std::io::Result<Macie> {
    let deployment =
        Deployment::resolve(TEMPLATE, &BTreeMap::new(), "http://127.0.0.1").expect("template");
    let iam = Arc::new(Iam::from_deployment(&deployment, true).expect("policies"));
    Macie::open(
        dir,
        Arc::clone(store),
        Clock::new(0.001),
        MacieOptions::default(),
        iam,
    )
}

fn job_request(name: &str) -> Value {
    json!({"name": name, "jobType": "ONE_TIME", "clientToken": name,
           "s3JobDefinition": {"bucketDefinitions": [{"accountId": ACCOUNT, "buckets": ["b"]}]}})
}

fn identifier(name: &str) -> Value {
    json!({"name": name, "regex": "P-[0-9]{4}"})
}

fn assert_internal(result: Result<Value, MacieError>) {
    let err = result.expect_err("a change that cannot be saved fails");
    assert_eq!((err.code, err.status), ("InternalServerException", 500));
    assert!(
        err.message.contains("could not be saved"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_change_that_cannot_be_saved_fails_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("s3")).unwrap());
    store.create_bucket("b").unwrap();
    let macie_dir = dir.path().join("macie");
    let macie = open(&macie_dir, &store).unwrap();
    macie.create_custom_identifier(&identifier("kept")).unwrap();

    // Writes into a folder that is gone fail, as on a full or read-only disk.
    std::fs::remove_dir_all(&macie_dir).unwrap();
    assert_internal(macie.create_custom_identifier(&identifier("lost")));
    assert_internal(macie.create_job(&job_request("lost")));
    let names: Vec<Value> = macie.list_custom_identifiers().unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("kept")]);
    assert_eq!(macie.list_jobs(&json!({})).unwrap()["items"], json!([]));

    // With the disk back, the same client token creates the job: the failed call kept nothing.
    std::fs::create_dir_all(macie_dir.join("jobs")).unwrap();
    let created = macie.create_job(&job_request("lost")).unwrap();
    let listed = macie.list_jobs(&json!({})).unwrap();
    assert_eq!(listed["items"][0]["jobId"], created["jobId"]);
}

#[tokio::test]
async fn a_damaged_job_file_stops_the_open_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path().join("s3")).unwrap());
    store.create_bucket("b").unwrap();
    let macie_dir = dir.path().join("macie");
    let created = open(&macie_dir, &store)
        .unwrap()
        .create_job(&job_request("j"))
        .unwrap();
    let job_file = macie_dir
        .join("jobs")
        .join(format!("{}.json", created["jobId"].as_str().unwrap()));
    std::fs::write(&job_file, b"{\"id\": ").unwrap();
    let err = open(&macie_dir, &store)
        .err()
        .expect("a damaged job is not skipped");
    assert!(
        err.to_string().contains(&job_file.display().to_string()),
        "{err}"
    );
    // A temporary left by a write that was cut short is not a saved file.
    std::fs::remove_file(&job_file).unwrap();
    std::fs::write(macie_dir.join("jobs").join("x.tmp-1"), b"{").unwrap();
    assert!(open(&macie_dir, &store).is_ok());
}
