//! The reviewer's side in a real browser: the link from the email in the outbox opens the review
//! page, a person presses a button, and the objects end up where the decision says. Also: a plain
//! GET (what a mail scanner does) decides nothing, a used link says so, and the page fits a phone.
//! `MACIE_PIPELINE_SCREENSHOT_DIR=docs cargo test -p e2e browser::` rewrites the screenshots.

use std::time::Duration;

use e2e::browser::{Browser, Screen, eml_body};
use e2e::macie_pipeline_local::demo;
use e2e::{Bucket, Gate, link_after};
use serde_json::json;

/// A run waiting for review of one flagged object and one Macie could not analyse, and the body
/// of its approval email as the `.eml` in the outbox has it.
async fn waiting_run(gate: &Gate, name: &str) -> (String, String) {
    gate.upload(
        "customers/cards.csv",
        "customer,card\nAda,card 4111 1111 1111 1111\n",
        &[("team", "billing")],
        &[],
    )
    .await;
    gate.upload(
        "scans/photo.png",
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
        &[],
        &[],
    )
    .await;
    gate.upload("readme.txt", "nothing sensitive", &[], &[])
        .await;
    let arn = gate.start_run(name, json!({"id": name})).await;
    let email = gate.approval_email().await;
    gate.reaches(&arn, "triggerManualApproval").await;
    let eml = email.files.first().expect("an .eml file in the outbox");
    (arn, eml_body(eml))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approving_in_the_browser_releases_every_listed_object() {
    let Some(browser) = Browser::start(Screen::DESKTOP).await else {
        return;
    };
    let gate = Gate::start().await;
    let (arn, body) = waiting_run(&gate, "browser-approve").await;
    browser.open(&link_after(&body, "Approve")).await;

    let title = browser.client.title().await.unwrap();
    assert_eq!(title, "Review 2 held object(s)");
    assert!(browser.source().await.contains("<html lang=\"en\">"));
    assert_eq!(
        browser.texts("td.key").await,
        vec!["customers/cards.csv", "scans/photo.png"]
    );
    let page = browser.text("main").await;
    assert!(page.contains("CREDIT_CARD_NUMBER x1"), "{page}");
    assert!(page.contains("UNSUPPORTED_FILE_TYPE_EXCEPTION"), "{page}");
    assert!(!page.contains("4111"), "values are never shown");
    assert!(
        browser
            .text("button.allow")
            .await
            .starts_with("Approve: release 2")
    );
    assert_eq!(browser.text("button.deny").await, "Deny: delete 2");
    assert_eq!(
        gate.current_state(&arn).await.as_deref(),
        Some("triggerManualApproval"),
        "opening the page decided something"
    );

    browser.press("button.allow").await;
    assert_eq!(browser.text("h1").await, "Approved");
    gate.ends_with(&arn, "SUCCEEDED").await;
    assert_eq!(
        gate.sorted_keys(Bucket::ScannedData).await,
        vec!["customers/cards.csv", "readme.txt", "scans/photo.png"]
    );
    assert_eq!(
        gate.tags(Bucket::ScannedData, "customers/cards.csv").await["SensitiveDataFound"],
        "true"
    );
    assert_eq!(
        gate.tags(Bucket::ScannedData, "scans/photo.png").await["SensitiveDataFound"],
        "unknown"
    );

    // The same link, opened again: already decided, and no buttons.
    browser.open(&link_after(&body, "Approve")).await;
    assert_eq!(browser.text("h1").await, "Already decided or expired");
    assert!(browser.text("main").await.contains("approved on"));
    assert!(browser.texts("button").await.is_empty());
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn denying_in_the_browser_deletes_every_listed_object() {
    let Some(browser) = Browser::start(Screen::DESKTOP).await else {
        return;
    };
    let gate = Gate::start().await;
    let (arn, body) = waiting_run(&gate, "browser-deny").await;
    browser.open(&link_after(&body, "Deny")).await;
    assert_eq!(browser.texts("td.key").await.len(), 2);
    browser.press("button.deny").await;
    assert_eq!(browser.text("h1").await, "Denied");
    gate.ends_with(&arn, "SUCCEEDED").await;
    assert!(gate.keys(Bucket::ManualReview).await.is_empty());
    assert_eq!(gate.keys(Bucket::ScannedData).await, vec!["readme.txt"]);

    browser.open(&link_after(&body, "Approve")).await;
    assert_eq!(browser.text("h1").await, "Already decided or expired");
    assert!(browser.text("main").await.contains("denied on"));
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opening_the_links_as_a_mail_scanner_does_leaves_the_run_waiting() {
    let Some(browser) = Browser::start(Screen::DESKTOP).await else {
        return;
    };
    let gate = Gate::start().await;
    let (arn, body) = waiting_run(&gate, "browser-scanner").await;
    for label in ["Approve", "Deny", "Approve"] {
        browser.open(&link_after(&body, label)).await;
        assert_eq!(browser.texts("td.key").await.len(), 2);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        gate.current_state(&arn).await.as_deref(),
        Some("triggerManualApproval")
    );
    assert_eq!(
        gate.sorted_keys(Bucket::ManualReview).await,
        vec!["customers/cards.csv", "scans/photo.png"]
    );
    assert_eq!(gate.keys(Bucket::ScannedData).await, vec!["readme.txt"]);
    browser.close().await;
}

/// The width and height a PNG declares in its header.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let number = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (number(16), number(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_page_fits_a_desktop_and_a_phone() {
    let gate = Gate::start().await;
    demo::upload(&gate.s3, &gate.bucket(Bucket::Raw), &demo::samples())
        .await
        .unwrap();
    let arn = gate
        .start_run("screenshot", json!({"id": "demo-2026-11-28"}))
        .await;
    let email = gate.approval_email().await;
    gate.reaches(&arn, "triggerManualApproval").await;
    let link = link_after(&eml_body(&email.files[0]), "Approve");
    // A relative directory is taken from the workspace root, where the command is documented.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = std::env::var_os("MACIE_PIPELINE_SCREENSHOT_DIR").map(|dir| root.join(dir));
    // The phone is taller than a real one, so the picture shows the buttons under the list.
    let phone = Screen {
        height: 1400,
        ..Screen::PHONE
    };
    for (name, screen) in [("desktop", Screen::DESKTOP), ("phone", phone)] {
        let Some(browser) = Browser::start(screen).await else {
            return;
        };
        browser.open(&link).await;
        assert_eq!(browser.texts("td.key").await.len(), 3);
        // Nothing wider than the screen: no sideways scrolling on a phone.
        let overflow = browser
            .client
            .execute(
                "return document.documentElement.scrollWidth - window.innerWidth;",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            overflow.as_i64().unwrap() <= 0,
            "{name}: {overflow} px wider than the window"
        );
        let png = browser.screenshot().await;
        let (shot_width, _) = png_size(&png);
        assert!(
            shot_width > 0 && shot_width <= screen.width,
            "{name}: {shot_width} px wide"
        );
        if let Some(dir) = &output {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(format!("review-page-{name}.png")), &png).unwrap();
        }
        browser.close().await;
    }
}
