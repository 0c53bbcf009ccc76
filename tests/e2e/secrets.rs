//! What must never leave the gate: no task token and no sensitive value in any log line of a
//! run; and hostile requests to the approval API get a clear answer, echo nothing, expose no
//! internals and decide nothing.

use aws_sdk_sfn::error::ProvideErrorMetadata;
use bytes::Bytes;
use http_body_util::Full;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rand::RngExt;
use serde_json::json;

use e2e::{Bucket, Gate, http as client, link_after, logs};
use macie_pipeline::approval::links::token_param;

/// A Luhn-valid Visa number no other test uses.
fn unique_card() -> String {
    let mut rng = rand::rng();
    let mut digits: Vec<u8> = std::iter::once(4)
        .chain((0..14).map(|_| rng.random_range(0..10u8)))
        .collect();
    let check = (0..10u8)
        .find(|c| {
            let mut all = digits.clone();
            all.push(*c);
            macie_classifier::checks::luhn(&all)
        })
        .expect("a check digit");
    digits.push(check);
    digits.iter().map(|d| char::from(b'0' + d)).collect()
}

fn unique_ssn() -> String {
    let mut rng = rand::rng();
    format!(
        "{:03}-{:02}-{:04}",
        rng.random_range(1..600u32),
        rng.random_range(1..100u32),
        rng.random_range(1..10000u32)
    )
}

fn unique_secret() -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    // Fixed mixed-case prefix so the secret always has the shape of one.
    "Ab1"
        .chars()
        .chain((0..37).map(|_| char::from(B64[rng.random_range(0..B64.len())])))
        .collect()
}

/// The token a decision link carries, decoded.
fn token_of(link: &str) -> String {
    let query = link.split_once('?').expect("a query").1;
    token_param(query).expect("a token")
}

/// A run with flagged objects waiting for approval: (gate, execution ARN, Approve link).
async fn waiting_run(name: &str, files: &[(&str, String)]) -> (Gate, String, String) {
    let gate = Gate::start().await;
    for (key, body) in files {
        gate.upload(key, body.clone(), &[], &[]).await;
    }
    let arn = gate.start_run(name, json!({ "id": name })).await;
    let email = gate.approval_email().await;
    gate.reaches(&arn, "triggerManualApproval").await;
    let link = link_after(&email.message, "Release all");
    (gate, arn, link)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_token_or_sensitive_value_reaches_the_logs() {
    let logs = logs::capture();
    let (card, ssn, secret) = (unique_card(), unique_ssn(), unique_secret());
    let workflow = format!("wf-secrets-{}", rand::random::<u32>());
    let (gate, arn, link) = waiting_run(
        &workflow,
        &[
            (
                "customers/cards.csv",
                format!("name,card number,ssn\nAda,{card},{ssn}\n"),
            ),
            (
                "config/app.env",
                format!("aws_secret_access_key = {secret}\n"),
            ),
            ("notes/clean.txt", "nothing to see".into()),
        ],
    )
    .await;
    let token = token_of(&link);
    // A mail scanner's GET, a stale form with a damaged token, the real decision, a reopened
    // link: every path that handles the token.
    assert_eq!(client::get(&link).await.status(), 200);
    let damaged = client::post_decision(&link, &token[..token.len() / 2]).await;
    assert!(damaged.status().is_client_error(), "{}", damaged.status());
    // The false-positives page handles the token too: opened, and a rule added and removed.
    let base = link
        .split('?')
        .next()
        .unwrap()
        .rsplit_once('/')
        .unwrap()
        .0
        .to_owned();
    let rules = format!("{base}/false-positives");
    let opened = client::get(&format!(
        "{rules}?token={}",
        utf8_percent_encode(&token, NON_ALPHANUMERIC)
    ))
    .await;
    assert_eq!(opened.status(), 200, "{}", opened.body());
    let added = client::post_false_positive(
        &rules,
        &token,
        client::REVIEWER,
        &[("kind", "phrase"), ("text", "ACME switchboard")],
    )
    .await;
    assert_eq!(added.status(), 200, "{}", added.body());
    let id = macie_pipeline::false_positives::rules::Rule::phrase("ACME switchboard")
        .unwrap()
        .id();
    let removed =
        client::post_false_positive(&rules, &token, client::REVIEWER, &[("remove", &id)]).await;
    assert_eq!(removed.status(), 200, "{}", removed.body());
    assert_eq!(client::decide(&link).await.status(), 200);
    gate.ends_with(&arn, "SUCCEEDED").await;
    assert!(
        client::get(&link)
            .await
            .body()
            .contains("Every held object is decided")
    );
    assert_eq!(gate.keys(Bucket::ScannedData).await.len(), 3);

    let text = logs.text();
    assert!(
        text.contains(&workflow),
        "the capture holds this run's logs"
    );
    let encoded = utf8_percent_encode(&token, NON_ALPHANUMERIC).to_string();
    let forbidden = [
        ("the task token", token.as_str()),
        ("the percent-encoded task token", encoded.as_str()),
        ("half the task token", &token[..token.len() / 2]),
        ("the card number", card.as_str()),
        ("the SSN", ssn.as_str()),
        ("the secret key", secret.as_str()),
    ];
    for (what, value) in forbidden {
        assert!(
            !text.contains(value),
            "{what} appears in the logs:\n{}",
            text.lines()
                .filter(|line| line.contains(value))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    // Nor is the token in anything else the stack wrote: objects (the approval records name
    // it by hash), Macie's jobs and findings, the IAM usage. The places that hold it are where
    // it must be: the email that carries the link (the outbox), the execution history (states/),
    // which AWS keeps under the state machine's key and the local stack plainly, and the
    // `Review Requested` event on the bus, whose links are the email's; no other event.
    gate.stack
        .write_iam_usage()
        .expect("the IAM usage is written");
    let mut files = vec![gate.dir.path().to_owned()];
    let mut read = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            let name = path.file_name().and_then(|n| n.to_str());
            if path != gate.dir.path() && matches!(name, Some("outbox" | "states")) {
                continue;
            }
            for entry in std::fs::read_dir(&path).expect("a readable directory") {
                files.push(entry.expect("an entry").path());
            }
            continue;
        }
        let bytes = std::fs::read(&path).expect("a readable file");
        let text = String::from_utf8_lossy(&bytes);
        read += 1;
        let on_a_bus = path.parent().and_then(|p| p.file_name()) == Some("buses".as_ref());
        for line in text.lines() {
            let review_requested = on_a_bus
                && serde_json::from_str::<serde_json::Value>(line)
                    .is_ok_and(|event| event["detail-type"] == "Review Requested");
            for (what, value) in &forbidden[..2] {
                assert!(
                    !line.contains(value) || review_requested,
                    "{what} is in {}",
                    path.display()
                );
            }
        }
    }
    assert!(read > 20, "only {read} files were read");
}

/// Every input, output and task parameters an execution history's events carry. (The SDK's
/// `Debug` redacts them, so they are read field by field.)
fn execution_data(events: &[aws_sdk_sfn::types::HistoryEvent]) -> Vec<String> {
    let mut texts = Vec::new();
    for event in events {
        let fields = [
            event
                .execution_started_event_details()
                .and_then(|d| d.input()),
            event.state_entered_event_details().and_then(|d| d.input()),
            event.state_exited_event_details().and_then(|d| d.output()),
            event.task_scheduled_event_details().map(|d| d.parameters()),
            event
                .task_submitted_event_details()
                .and_then(|d| d.output()),
            event
                .task_succeeded_event_details()
                .and_then(|d| d.output()),
        ];
        // Parameters are a required field to the SDK: absent, they read as empty.
        texts.extend(
            fields
                .into_iter()
                .flatten()
                .filter(|text| !text.is_empty())
                .map(str::to_owned),
        );
    }
    texts
}

/// Step Functions refused the request because its caller may not use the state machine's key.
fn key_refused(err: &(impl ProvideErrorMetadata + std::fmt::Debug)) {
    assert_eq!(err.code(), Some("KmsAccessDeniedException"), "{err:?}");
}

/// The execution history holds the task token (the approval step's input, where Step Functions
/// needs it). The state machine's customer-managed key keeps it from every reader the key does
/// not allow: a read-only user sees the history's events but is refused their data and the
/// execution's, while the administrator, allowed the key through IAM, reads the token there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_execution_history_keeps_the_token_under_the_state_machine_s_key() {
    let workflow = format!("wf-history-{}", rand::random::<u32>());
    let (gate, arn, link) = waiting_run(
        &workflow,
        &[(
            "customers/cards.csv",
            format!("name,card number\nAda,{}\n", unique_card()),
        )],
    )
    .await;
    let token = token_of(&link);
    let machine = gate
        .sfn
        .describe_state_machine()
        .state_machine_arn(gate.stack.state_machine_arn())
        .send()
        .await
        .expect("DescribeStateMachine");
    let encryption = machine.encryption_configuration().expect("encrypted");
    assert_eq!(
        encryption.r#type(),
        &aws_sdk_sfn::types::EncryptionType::CustomerManagedKmsKey
    );
    assert_eq!(
        encryption.kms_key_id(),
        gate.stack.deployment().state_machine_key.as_deref()
    );

    let reader = gate.read_only_sfn().await;
    let history = reader
        .get_execution_history()
        .execution_arn(&arn)
        .send()
        .await
        .expect_err("the history's data needs the key");
    key_refused(&history);
    let described = reader
        .describe_execution()
        .execution_arn(&arn)
        .send()
        .await
        .expect_err("the execution's input needs the key");
    key_refused(&described);
    let bare = reader
        .get_execution_history()
        .execution_arn(&arn)
        .include_execution_data(false)
        .send()
        .await
        .expect("the history without its data needs no key");
    assert!(
        bare.events()
            .iter()
            .any(|event| event.r#type() == &aws_sdk_sfn::types::HistoryEventType::TaskScheduled)
    );
    assert!(
        execution_data(bare.events()).is_empty(),
        "events without their data"
    );

    let full = gate
        .sfn
        .get_execution_history()
        .execution_arn(&arn)
        .send()
        .await
        .expect("the administrator may use the key");
    let data = execution_data(full.events());
    assert!(
        data.iter().any(|text| text.contains(&token)),
        "the token is in the approval step's input, so the key is what keeps it"
    );
    assert_eq!(client::decide(&link).await.status(), 200);
    gate.ends_with(&arn, "SUCCEEDED").await;
}

/// A hostile request: method, URL, content type, body, and sent text that must not come back.
type Probe<'a> = (&'a str, String, Option<&'a str>, Vec<u8>, Option<String>);

/// Markers of internals a response must never show.
const INTERNALS: &[&str] = &[
    "panicked",
    "backtrace",
    "ServiceError",
    "DispatchFailure",
    "dispatch failure",
    "src/",
    "arn:aws:states",
];

async fn send(method: &str, url: &str, content_type: Option<&str>, body: Vec<u8>) -> (u16, String) {
    let mut request = http::Request::builder().method(method).uri(url);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = client::send(request.body(Full::new(Bytes::from(body))).expect("request")).await;
    (response.status().as_u16(), response.into_body())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_approval_requests_get_clear_answers_and_decide_nothing() {
    let (gate, arn, link) = waiting_run(
        "wf-hostile",
        &[("cards.csv", format!("card number\n{}\n", unique_card()))],
    )
    .await;
    let token = token_of(&link);
    let base = link.split('?').next().expect("a path").to_owned();
    let deny = base.replace("/allow", "/deny");
    let mut rng = rand::rng();
    let random = |rng: &mut rand::rngs::ThreadRng, n: usize| -> String {
        (0..n)
            .map(|_| char::from(rng.random_range(b'!'..=b'~')))
            .collect()
    };
    let encode = |t: &str| utf8_percent_encode(t, NON_ALPHANUMERIC).to_string();
    let truncated = token[..token.len() - 5].to_owned();
    let mut junk_tokens: Vec<String> = vec![
        truncated.clone(),
        format!("{token}x"),
        "A".repeat(4096),
        "<script>alert(1)</script>".into(),
        "' OR 1=1 --".into(),
    ];
    for n in [8, 64, 600] {
        junk_tokens.push(random(&mut rng, n));
    }
    // (method, url, content type, body, text that must not be echoed)
    let mut requests: Vec<Probe<'_>> = vec![
        ("GET", base.clone(), None, vec![], None),
        ("GET", format!("{base}?token="), None, vec![], None),
        ("GET", format!("{base}?token=%ZZ%"), None, vec![], None),
        (
            "GET",
            format!("{base}?token={}", "B".repeat(60_000)),
            None,
            vec![],
            Some("B".repeat(60_000)),
        ),
        (
            "GET",
            format!("{base}?other={}", encode(&token)),
            None,
            vec![],
            None,
        ),
        (
            "POST",
            base.clone(),
            None,
            format!("token={}", encode(&token)).into_bytes(),
            Some(token.clone()),
        ),
        (
            "POST",
            base.clone(),
            Some("application/json"),
            json!({"token": token}).to_string().into_bytes(),
            Some(token.clone()),
        ),
        (
            "POST",
            base.clone(),
            Some("text/plain"),
            format!("token={}", encode(&token)).into_bytes(),
            Some(token.clone()),
        ),
        (
            "POST",
            base.clone(),
            Some("multipart/form-data; boundary=x"),
            format!(
                "--x\r\ncontent-disposition: form-data; name=\"token\"\r\n\r\n{token}\r\n--x--"
            )
            .into_bytes(),
            Some(token.clone()),
        ),
        (
            "POST",
            base.clone(),
            Some("application/x-www-form-urlencoded"),
            vec![],
            None,
        ),
        (
            "POST",
            base.clone(),
            Some("application/x-www-form-urlencoded"),
            b"token=".to_vec(),
            None,
        ),
        (
            "POST",
            base.clone(),
            Some("application/x-www-form-urlencoded"),
            vec![0xff, 0xfe, 0x00, 0x80],
            None,
        ),
        (
            "POST",
            base.clone(),
            Some("application/x-www-form-urlencoded"),
            (0..200_000).map(|_| rng.random::<u8>()).collect(),
            None,
        ),
        (
            "PUT",
            format!("{base}?token={}", encode(&token)),
            None,
            vec![],
            Some(token.clone()),
        ),
        (
            "DELETE",
            format!("{base}?token={}", encode(&token)),
            None,
            vec![],
            Some(token.clone()),
        ),
        (
            "PATCH",
            format!("{deny}?token={}", encode(&token)),
            Some("application/x-www-form-urlencoded"),
            format!("token={}", encode(&token)).into_bytes(),
            Some(token.clone()),
        ),
    ];
    for junk in &junk_tokens {
        requests.push((
            "GET",
            format!("{base}?token={}", encode(junk)),
            None,
            vec![],
            Some(junk.clone()),
        ));
        requests.push((
            "GET",
            format!("{deny}?token={}", encode(junk)),
            None,
            vec![],
            Some(junk.clone()),
        ));
        requests.push((
            "POST",
            deny.clone(),
            Some("application/x-www-form-urlencoded"),
            format!("token={}", encode(junk)).into_bytes(),
            Some(junk.clone()),
        ));
    }
    // The real token by GET on both links: the page, with the token only in its own form.
    requests.push(("GET", link.clone(), None, vec![], None));
    requests.push(("GET", link.replace("/allow", "/deny"), None, vec![], None));

    for (method, url, content_type, body, secret) in requests {
        let shown = format!("{method} {}", &url[..url.len().min(120)]);
        let (status, page) = send(method, &url, content_type, body).await;
        assert!(status < 500, "{shown}: {status}\n{page}");
        for marker in INTERNALS {
            assert!(
                !page.contains(marker),
                "{shown}: the answer shows {marker:?}:\n{page}"
            );
        }
        if let Some(secret) = secret.filter(|s| s.len() >= 8) {
            let escaped = secret
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
                .replace('\'', "&#39;");
            assert!(
                !page.contains(&secret)
                    && !page.contains(&escaped)
                    && !page.contains(&encode(&secret)),
                "{shown}: the answer echoes what was sent"
            );
        }
        if status == 200 {
            assert!(page.contains("<html"), "{shown}: a page, not internals");
        }
    }

    // Nothing was decided: the run still waits and the object is still held.
    assert_eq!(gate.describe(&arn).await.status.as_str(), "RUNNING");
    assert_eq!(gate.keys(Bucket::ManualReview).await, ["cards.csv"]);
    assert!(gate.keys(Bucket::ScannedData).await.is_empty());
    // And the real link still works.
    assert_eq!(client::decide(&link).await.status(), 200);
    gate.ends_with(&arn, "SUCCEEDED").await;
    assert_eq!(gate.keys(Bucket::ScannedData).await, ["cards.csv"]);
}

/// The local approval API serves what the template routes and nothing else, as API Gateway
/// does: a route taken out of the template answers 403 "Missing Authentication Token".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_routes_the_template_defines_are_served() {
    let routed = "        ReviewGet:\n          Type: Api\n          Properties:\n            RestApiId: !Ref ApprovalApi\n            Path: /review\n            Method: get\n";
    let template = e2e::macie_pipeline_local::deployment::TEMPLATE;
    assert!(template.contains(routed), "the template routes GET /review");
    let without = template.replace(routed, "");
    let gate = Gate::start_with(|config| config.template = Some(without)).await;
    let endpoint = gate.stack.http_url();
    let missing = client::get(&format!("{endpoint}/review?token=x")).await;
    assert_eq!(missing.status(), 403);
    assert!(missing.body().contains("Missing Authentication Token"));
    // The routes still in the template answer.
    let routed = client::get(&format!("{endpoint}/allow?token=x")).await;
    assert_eq!(routed.status(), 404, "{}", routed.body());
    assert!(routed.body().contains("No such approval request"));
}
