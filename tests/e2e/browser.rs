//! The reviewer's side in a real browser: the link from the email in the outbox opens the review
//! page, a person decides each object (some now, the rest on a later visit), and the objects end
//! up where their own decisions say. Also: a decision needs a name, a plain GET (what a mail
//! scanner does) decides nothing, a decided object offers no choice any more, and the page fits
//! a phone. `MACIE_PIPELINE_SCREENSHOT_DIR=docs cargo test -p e2e browser::` rewrites the
//! screenshots.

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
async fn a_review_decided_in_two_visits_in_the_browser_acts_on_each_object_as_decided() {
    let Some(browser) = Browser::start(Screen::DESKTOP).await else {
        return;
    };
    let gate = Gate::start().await;
    let (arn, body) = waiting_run(&gate, "browser-review").await;
    browser.open(&link_after(&body, "Decide each object")).await;

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
        page.contains("Release: the object goes on to s3://"),
        "{page}"
    );
    // Every object starts undecided, and so does the bulk choice on this link.
    assert!(browser.checked("#o0-keep").await && browser.checked("#o1-keep").await);
    assert!(browser.checked("input[name=remaining][value=keep]").await);

    // A choice without a name is not sent: the browser asks for the name first.
    browser.click("#o0-release").await;
    browser.click("button.record").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(browser.text("h1").await, "Review 2 held object(s)");
    assert!(!browser.text("main").await.contains("Recorded"));

    // First visit: release the card file, leave the photo for later.
    browser.fill("#reviewer", "ada@example.com").await;
    browser.press("button.record").await;
    let page = browser.text("main").await;
    assert!(page.contains("Recorded 1 decision(s)."), "{page}");
    assert!(
        page.contains("Release: decided by ada@example.com on"),
        "{page}"
    );
    assert_eq!(
        browser
            .texts("td[data-label=Decision] fieldset")
            .await
            .len(),
        1,
        "only the photo still offers a choice"
    );
    assert_eq!(
        gate.current_state(&arn).await.as_deref(),
        Some("triggerManualApproval"),
        "the run waits for the photo"
    );

    // Second visit, later, from the "delete all" link: the rest is deleted.
    browser.open(&link_after(&body, "Delete all")).await;
    assert!(browser.checked("input[name=remaining][value=delete]").await);
    browser.fill("#reviewer", "bob@example.com").await;
    browser.press("button.record").await;
    assert_eq!(browser.text("h1").await, "Every held object is decided");
    gate.ends_with(&arn, "SUCCEEDED").await;
    assert_eq!(
        gate.sorted_keys(Bucket::ScannedData).await,
        vec!["customers/cards.csv", "readme.txt"]
    );
    assert_eq!(
        gate.tags(Bucket::ScannedData, "customers/cards.csv").await["SensitiveDataFound"],
        "true"
    );
    assert!(gate.keys(Bucket::ManualReview).await.is_empty());

    // The link, opened again: each decision with its reviewer, and no choice left.
    browser.open(&link_after(&body, "Release all")).await;
    assert_eq!(browser.text("h1").await, "Every held object is decided");
    let page = browser.text("main").await;
    assert!(
        page.contains("Release: decided by ada@example.com"),
        "{page}"
    );
    assert!(
        page.contains("Delete: decided by bob@example.com"),
        "{page}"
    );
    assert!(page.contains("1 object(s) released"), "{page}");
    assert!(browser.texts("input[type=radio]").await.is_empty());
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opening_the_links_as_a_mail_scanner_does_leaves_the_run_waiting() {
    let Some(browser) = Browser::start(Screen::DESKTOP).await else {
        return;
    };
    let gate = Gate::start().await;
    let (arn, body) = waiting_run(&gate, "browser-scanner").await;
    for label in ["Decide each object", "Release all", "Delete all"] {
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
    let link = link_after(&eml_body(&email.files[0]), "Decide each object");
    // A relative directory is taken from the workspace root, where the command is documented.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = std::env::var_os("MACIE_PIPELINE_SCREENSHOT_DIR").map(|dir| root.join(dir));
    // The phone is taller than a real one, so the picture shows the choices under the list.
    let phone = Screen {
        height: 2400,
        ..Screen::PHONE
    };
    for (name, screen) in [("desktop", Screen::DESKTOP), ("phone", phone)] {
        let Some(browser) = Browser::start(screen).await else {
            return;
        };
        browser.open(&link).await;
        assert_eq!(browser.texts("td.key").await.len(), 3);
        if name == "desktop" {
            // One object decided, so the pictures show a decided row beside the choices.
            browser.click("#o0-release").await;
            browser.fill("#reviewer", "ada@example.com").await;
            browser.press("button.record").await;
            assert!(
                browser
                    .text("main")
                    .await
                    .contains("Recorded 1 decision(s).")
            );
        }
        assert_eq!(
            browser
                .texts("td[data-label=Decision] fieldset")
                .await
                .len(),
            2
        );
        // Nothing wider than the screen: no sideways scrolling on a phone.
        let overflow = browser.overflow().await;
        assert!(overflow <= 0, "{name}: {overflow} px wider than the window");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_false_positive_is_marked_from_its_row_and_removed_from_the_list_in_the_browser() {
    let gate = Gate::start().await;
    let (arn, body) = waiting_run(&gate, "browser-false-positive").await;
    let link = link_after(&body, "Decide each object");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = std::env::var_os("MACIE_PIPELINE_SCREENSHOT_DIR").map(|dir| root.join(dir));
    for (name, screen) in [("desktop", Screen::DESKTOP), ("phone", Screen::PHONE)] {
        let Some(browser) = Browser::start(screen).await else {
            return;
        };
        browser.open(&link).await;
        // Only the flagged object offers it; the one Macie could not read does not.
        let offered = browser.texts("td[data-label=Found] a").await;
        assert_eq!(offered, vec!["False positive?"]);
        browser.press("td[data-label=Found] a").await;
        let page = browser.text("main").await;
        assert!(page.contains("customers/cards.csv"), "{page}");
        assert!(page.contains("CREDIT_CARD_NUMBER x1"), "{page}");
        assert!(!page.contains("4111"), "values are never shown");
        let overflow = browser.overflow().await;
        assert!(overflow <= 0, "{name}: {overflow} px wider than the window");
        if let Some(dir) = &output {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(
                dir.join(format!("false-positive-page-{name}.png")),
                browser.screenshot().await,
            )
            .unwrap();
        }
        if name == "phone" {
            browser.close().await;
            break;
        }
        // The suppression's prefix is filled in from the object's folder.
        assert_eq!(
            browser
                .client
                .find(fantoccini::Locator::Css("#keyPrefix"))
                .await
                .unwrap()
                .prop("value")
                .await
                .unwrap()
                .as_deref(),
            Some("customers/")
        );
        browser.fill("#reviewer-add", "ada@example.com").await;
        browser.fill("#text", "card 4111 1111 1111 1111").await;
        browser.press("button.record").await;
        let added = browser.text("main").await;
        assert!(added.contains("Added: Ignore the phrase"), "{added}");
        assert_eq!(
            browser.texts("td[data-label=\"Added by\"]").await,
            vec!["ada@example.com"]
        );
        browser.fill("#reviewer-remove", "bob@example.com").await;
        browser.press("button[name=remove]").await;
        let removed = browser.text("main").await;
        assert!(removed.contains("Removed: Ignore the phrase"), "{removed}");
        assert!(removed.contains("Rules on the list (0)"), "{removed}");
        browser.close().await;
    }
    assert_eq!(
        gate.current_state(&arn).await.as_deref(),
        Some("triggerManualApproval"),
        "marking a false positive decides nothing"
    );
}
