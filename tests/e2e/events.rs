//! The gate's events and the notifications beside its emails: every event meets the JSON Schema
//! the repository publishes for its detail type; a bus the gate may not put to fails the run and
//! says which, with the objects where the run put them; review requests reach a ticketing
//! webhook through the template's API destination, authorized by its connection; chat (HTTPS)
//! subscribers get an Amazon Q Developer notification beside every email; and no event or
//! notification carries a detected value.

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::events::{check, schema_text};
use e2e::macie_pipeline_local::events::webhooks::received_in;
use e2e::{Bucket, Gate, http, link_after};
use macie_pipeline::events::DetailType;
use serde_json::{Value, json};

#[test]
fn each_detail_type_has_a_published_schema_that_names_it() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/schemas");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut expected: Vec<String> = DetailType::ALL
        .iter()
        .map(|kind| kind.schema_file().to_owned())
        .chain(["run.json".to_owned()])
        .collect();
    expected.sort();
    assert_eq!(files, expected);
    for kind in DetailType::ALL {
        let schema: Value = serde_json::from_str(schema_text(kind)).unwrap();
        assert_eq!(schema["title"], kind.name());
        assert_eq!(schema["properties"]["detail-type"]["const"], kind.name());
        assert_eq!(
            schema["properties"]["source"]["const"],
            macie_pipeline::events::SOURCE
        );
    }
    // A schema is only a check if it refuses something: a detected value slipped into a detail,
    // a count gone negative, a missing field.
    let event = json!({
        "version": "0", "id": "e", "detail-type": "Run Succeeded", "source": "macie-pipeline",
        "account": "000000000000", "time": "2026-12-07T10:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:states:us-east-1:000000000000:execution:m:r",
                      "arn:aws:states:us-east-1:000000000000:stateMachine:m"],
        "detail": {"version": "1", "workflowId": "wf", "executionArn": "arn:aws:states:us-east-1:000000000000:execution:m:r",
                   "stateMachineArn": "arn:aws:states:us-east-1:000000000000:stateMachine:m",
                   "buckets": {"raw": "r", "scanStage": "s", "manualReview": "m", "scannedData": "d", "manifests": "f"},
                   "intake": {"taken": 0, "deferred": 0, "leftInRaw": 0}, "macieJobId": null,
                   "scan": null, "routing": null, "review": null},
    });
    assert_eq!(check(&event), Ok(DetailType::RunSucceeded));
    for (pointer, value) in [
        ("/detail/ssn", json!("123-45-6789")),
        ("/detail/intake/taken", json!(-1)),
        ("/detail/version", json!("2")),
        ("/detail/intake", json!({"taken": 1})),
        ("/source", json!("aws.s3")),
    ] {
        let mut changed = event.clone();
        let (parent, field) = pointer.rsplit_once('/').unwrap();
        changed.pointer_mut(parent).unwrap()[field] = value.clone();
        assert!(check(&changed).is_err(), "{pointer} = {value} passed");
    }
    let mut no_intake = event.clone();
    no_intake["detail"]["intake"] = Value::Null;
    assert!(
        check(&no_intake).is_err(),
        "a run that succeeded took something"
    );
}

/// Waits until the webhook `name` has received `count` requests, and returns them.
async fn received(gate: &Gate, name: &str, count: usize) -> Vec<Value> {
    let path = gate
        .stack
        .data_dir()
        .join("webhooks")
        .join(format!("{name}.jsonl"));
    let start = Instant::now();
    loop {
        let requests = received_in(&path);
        if requests.len() >= count {
            return requests;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the webhook got {} request(s), not {count}",
            requests.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A gate serving on a socket bound first, so that `parameters` can name its own webhook
/// receiver (`{webhook}` in a value becomes its URL).
async fn gate_with_webhook(parameters: &[(&str, &str)]) -> Gate {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let webhook = format!(
        "https://{}/_local/webhooks/tickets",
        listener.local_addr().unwrap()
    );
    let parameters: Vec<(String, String)> = parameters
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.replace("{webhook}", &webhook)))
        .collect();
    Gate::start_with(move |config| {
        config.listener = Some(Arc::new(listener));
        config.parameters.extend(parameters);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_review_request_reaches_the_ticketing_webhook_authorized_by_the_connection() {
    let api_key = [
        ("TicketingWebhookUrl", "{webhook}"),
        ("TicketingWebhookHeaderName", "X-Api-Key"),
        ("TicketingWebhookSecret", "s3cret-key"),
    ];
    let basic = [
        ("TicketingWebhookUrl", "{webhook}"),
        ("TicketingWebhookAuthorization", "BASIC"),
        ("TicketingWebhookUsername", "gate"),
        ("TicketingWebhookSecret", "pw"),
    ];
    for (parameters, header, value) in [
        (&api_key[..], "x-api-key", "s3cret-key"),
        (&basic[..], "authorization", "Basic Z2F0ZTpwdw=="),
    ] {
        let gate = gate_with_webhook(parameters).await;
        let (arn, email) = gate.flagged_run("tickets").await;
        let requests = received(&gate, "tickets", 1).await;
        let request = &requests[0];
        assert_eq!(request["method"], "POST");
        assert_eq!(request["headers"][header], value, "{request}");
        assert_eq!(
            request["headers"]["content-type"],
            "application/json; charset=utf-8"
        );
        // The body is the event as it is on the bus, and meets its schema.
        let event = &request["body"];
        assert_eq!(check(event), Ok(DetailType::ReviewRequested));
        let on_bus = gate.run_events(&arn);
        assert_eq!(on_bus[1]["id"], event["id"]);
        // The ticketing system can act on it as a recipient of the email would.
        let release_all = event["detail"]["request"]["links"]["releaseAll"]
            .as_str()
            .unwrap();
        assert_eq!(release_all, link_after(&email.message, "Release all"));
        assert_eq!(http::decide(release_all).await.status(), 200);
        assert_eq!(gate.finished(&arn).await.status.as_str(), "SUCCEEDED");
        assert_eq!(
            gate.sorted_keys(Bucket::ScannedData).await,
            ["cards.csv", "readme.txt"]
        );
        // The rule sends review requests only: not the other three events of the run.
        assert_eq!(gate.run_event_types(&arn).len(), 4);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(received(&gate, "tickets", 1).await.len(), 1);
        let deliveries = e2e::macie_pipeline_local::events::logged(
            &gate
                .stack
                .data_dir()
                .join("events")
                .join("deliveries.jsonl"),
        );
        assert_eq!(deliveries.len(), 1, "{deliveries:?}");
        assert_eq!(deliveries[0]["delivered"], true);
        assert_eq!(deliveries[0]["rule"], "ReviewTicketRule");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_that_cannot_be_reached_is_retried_and_the_review_goes_on() {
    // Port 9 (discard) is closed on loopback: every attempt fails to connect.
    let gate = gate_with_webhook(&[
        ("TicketingWebhookUrl", "https://127.0.0.1:9/tickets"),
        ("TicketingWebhookSecret", "k"),
    ])
    .await;
    let (arn, email) = gate.flagged_run("unreachable").await;
    let path = gate
        .stack
        .data_dir()
        .join("events")
        .join("deliveries.jsonl");
    let start = Instant::now();
    let attempts = loop {
        let attempts = e2e::macie_pipeline_local::events::logged(&path);
        if attempts.len() == 5 {
            break attempts;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} attempt(s)",
            attempts.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for (index, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt["attempt"], index + 1);
        assert_eq!(attempt["delivered"], false);
        assert!(
            attempt["error"].as_str().unwrap().contains("127.0.0.1:9"),
            "{attempt}"
        );
    }
    // The email is the reviewer's way in whatever the webhook does.
    http::decide(&link_after(&email.message, "Delete all")).await;
    assert_eq!(gate.finished(&arn).await.status.as_str(), "SUCCEEDED");
    assert_eq!(gate.keys(Bucket::ScannedData).await, ["readme.txt"]);
}

fn alerts(gate: &Gate, subject: &str) -> Vec<e2e::macie_pipeline_local::sns::Delivered> {
    gate.emails()
        .into_iter()
        .filter(|e| e.subject.as_deref().is_some_and(|s| s.contains(subject)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bus_that_does_not_exist_fails_the_run_with_the_objects_where_it_put_them() {
    let gate = Gate::start_with(|config| {
        config
            .parameters
            .insert("EventBusName".into(), "gate-events".into());
    })
    .await;
    gate.upload("a.txt", "fine", &[], &[]).await;
    let arn = gate.start_run("no-bus", json!({"id": "no-bus"})).await;
    let described = gate.finished(&arn).await;
    assert_eq!(
        described.status.as_str(),
        "FAILED",
        "{}",
        gate.explain(&arn)
    );
    assert_eq!(gate.keys(Bucket::ScannedData).await, ["a.txt"]);
    let alert = alerts(&gate, "run failed");
    assert_eq!(alert.len(), 1);
    let message = &alert[0].message;
    for needed in [
        "failed: EventBridge.FailedEntry: ResourceNotFoundException: Event bus gate-events does not exist. (step announceRunSucceeded, announcing the run's end on the event bus)",
        "The run's objects are where it put them",
    ] {
        assert!(message.contains(needed), "{needed:?} is not in {message}");
    }
    assert!(gate.events().is_empty());

    // Once the bus exists, the next run announces itself there.
    let events = aws_sdk_eventbridge::Client::new(&gate.stack.sdk_config().await);
    events
        .create_event_bus()
        .name("gate-events")
        .send()
        .await
        .unwrap();
    let (arn, email) = gate.flagged_run("bus").await;
    http::decide(&link_after(&email.message, "Release all")).await;
    assert_eq!(gate.finished(&arn).await.status.as_str(), "SUCCEEDED");
    let on_bus = e2e::macie_pipeline_local::events::logged(
        &gate.stack.data_dir().join("events/buses/gate-events.jsonl"),
    );
    let kinds: Vec<DetailType> = on_bus.iter().map(|event| check(event).unwrap()).collect();
    assert_eq!(
        kinds,
        [
            DetailType::ObjectsHeld,
            DetailType::ReviewRequested,
            DetailType::ReviewDecided,
            DetailType::RunSucceeded
        ]
    );
    assert!(gate.events().is_empty(), "nothing on the default bus");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_its_grant_the_state_machine_puts_no_event_and_the_run_says_so() {
    let modified = e2e::without_state_machine_grant("events:PutEvents");
    let gate = Gate::start_with(|config| config.template = Some(modified)).await;
    gate.upload("a.txt", "fine", &[], &[]).await;
    let arn = gate.start_run("no-grant", json!({"id": "no-grant"})).await;
    assert_eq!(gate.finished(&arn).await.status.as_str(), "FAILED");
    let alert = alerts(&gate, "run failed");
    assert!(
        alert[0]
            .message
            .contains("is not authorized to perform: events:PutEvents on resource: arn:aws:events:us-east-1:000000000000:event-bus/default"),
        "{}",
        alert[0].message
    );
    assert!(gate.events().is_empty());
    assert_eq!(gate.keys(Bucket::ScannedData).await, ["a.txt"]);
}

/// What Amazon Q Developer in chat applications accepts as a custom notification.
fn chat_schema() -> jsonschema::Validator {
    jsonschema::validator_for(&json!({
        "type": "object",
        "required": ["version", "source", "content"],
        "properties": {
            "version": {"const": "1.0"},
            "source": {"const": "custom"},
            "content": {
                "type": "object",
                "required": ["description"],
                "properties": {
                    "textType": {"const": "client-markdown"},
                    "title": {"type": "string", "minLength": 1},
                    "description": {"type": "string", "minLength": 1},
                    "nextSteps": {"type": "array", "items": {"type": "string"}},
                    "keywords": {"type": "array", "items": {"type": "string"}}
                },
                "additionalProperties": false
            },
            "metadata": {
                "type": "object",
                "properties": {
                    "threadId": {"type": "string"},
                    "summary": {"type": "string"},
                    "eventType": {"type": "string"},
                    "relatedResources": {"type": "array", "items": {"type": "string"}},
                    "additionalContext": {"type": "object"}
                },
                "additionalProperties": false
            }
        },
        "additionalProperties": false
    }))
    .unwrap()
}

/// The chat form of a delivered message, checked against what Amazon Q Developer accepts.
fn chat_of(message: &e2e::macie_pipeline_local::sns::Delivered) -> Value {
    let text = message.for_protocol("https");
    let chat: Value = serde_json::from_str(text)
        .unwrap_or_else(|err| panic!("{:?}: the chat form is not JSON: {err}", message.subject));
    let errors: Vec<String> = chat_schema()
        .iter_errors(&chat)
        .map(|err| err.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}: {chat:#}");
    chat
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chat_subscribers_get_a_notification_beside_every_email() {
    let gate = Gate::start_with(|config| {
        config
            .parameters
            .insert("ApprovalTimeoutSeconds".into(), "300".into());
    })
    .await;
    // A review that times out (the request, then the alert that objects stay held), and a run
    // that fails: every message the topic sends has both forms.
    let arn = gate.start_flagged("chat").await;
    assert_eq!(gate.finished(&arn).await.status.as_str(), "FAILED");
    let request = gate.approval_email().await;
    let chat = chat_of(&request);
    assert_eq!(chat["content"]["title"], request.subject.clone().unwrap());
    assert_eq!(chat["metadata"]["threadId"], "chat");
    assert_eq!(chat["metadata"]["eventType"], "Review Requested");
    let steps: Vec<&str> = chat["content"]["nextSteps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for label in ["Release all", "Delete all"] {
        let link = link_after(&request.message, label);
        assert!(steps.iter().any(|s| s.ends_with(&link)), "{steps:?}");
    }
    let expired = alerts(&gate, "review expired");
    assert_eq!(expired.len(), 1);
    let chat = chat_of(&expired[0]);
    assert_eq!(chat["metadata"]["threadId"], "chat");
    assert!(
        chat["content"]["description"]
            .as_str()
            .unwrap()
            .contains("ApprovalTimedOut: the review timed out with 1 held object(s) undecided"),
        "{chat}"
    );

    gate.stack.macie().disable().expect("Macie turned off");
    gate.upload("a.txt", "fine", &[], &[]).await;
    let failed = gate
        .start_run("chat-fails", json!({"id": "chat-fails"}))
        .await;
    assert_eq!(gate.finished(&failed).await.status.as_str(), "FAILED");
    let alert = alerts(&gate, "run failed");
    assert_eq!(alert.len(), 1);
    let chat = chat_of(&alert[0]);
    assert_eq!(chat["content"]["title"], "Sensitive-data gate: run failed");
    assert_eq!(chat["metadata"]["eventType"], "Run Failed");
    let description = chat["content"]["description"].as_str().unwrap();
    assert!(
        description.starts_with("AwsRequestFailed: ")
            && description.contains("CreateClassificationJob"),
        "{description}"
    );
    // Email subscribers still get plain text.
    for message in gate.emails() {
        assert!(
            !message.message.trim_start().starts_with('{'),
            "{}",
            message.message
        );
        chat_of(&message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_event_webhook_body_or_chat_message_carries_a_detected_value() {
    const VALUES: &[&str] = &[
        "4111 1111 1111 1111",
        "4111111111111111",
        "123-45-6789",
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ];
    let gate = gate_with_webhook(&[
        ("TicketingWebhookUrl", "{webhook}"),
        ("TicketingWebhookSecret", "k"),
    ])
    .await;
    gate.upload(
        "cards.csv",
        "customer,card,ssn\nAda,4111 1111 1111 1111,123-45-6789\n",
        &[],
        &[],
    )
    .await;
    gate.upload(
        "deploy.env",
        "aws_access_key_id=AKIAIOSFODNN7EXAMPLE\naws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
        &[],
        &[],
    )
    .await;
    let arn = gate.start_run("values", json!({"id": "values"})).await;
    let email = gate.approval_email().await;
    let requests = received(&gate, "tickets", 1).await;
    http::decide(&link_after(&email.message, "Delete all")).await;
    assert_eq!(gate.finished(&arn).await.status.as_str(), "SUCCEEDED");
    let events = gate.run_events(&arn);
    assert_eq!(events.len(), 4);
    assert_eq!(events[0]["detail"]["routing"]["held"], 2);
    let mut texts: Vec<String> = events.iter().map(Value::to_string).collect();
    texts.extend(requests.iter().map(Value::to_string));
    texts.extend(
        gate.emails()
            .iter()
            .map(|m| m.for_protocol("https").to_owned()),
    );
    for text in &texts {
        for value in VALUES {
            assert!(!text.contains(value), "{value} leaked into {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn patterns_select_the_gates_events_as_eventbridge_does() {
    let gate = Gate::start().await;
    let (arn, email) = gate.flagged_run("patterns").await;
    http::decide(&link_after(&email.message, "Release all")).await;
    assert_eq!(gate.finished(&arn).await.status.as_str(), "SUCCEEDED");
    let events = gate.run_events(&arn);
    let client = aws_sdk_eventbridge::Client::new(&gate.stack.sdk_config().await);
    let matches = |pattern: Value, event: &Value| {
        let client = client.clone();
        let event = event.to_string();
        async move {
            client
                .test_event_pattern()
                .event_pattern(pattern.to_string())
                .event(event)
                .send()
                .await
                .unwrap()
                .result()
        }
    };
    let held = &events[0];
    let machine = gate.stack.state_machine_arn();
    for (pattern, expected) in [
        (
            json!({"source": ["macie-pipeline"], "resources": [machine]}),
            true,
        ),
        (json!({"detail-type": [{"prefix": "Objects"}]}), true),
        (json!({"detail-type": [{"suffix": "Held"}]}), true),
        (
            json!({"detail-type": [{"anything-but": ["Objects Held"]}]}),
            false,
        ),
        (
            json!({"detail": {"routing": {"held": [{"numeric": [">=", 1]}]}}}),
            true,
        ),
        (
            json!({"detail": {"routing": {"held": [{"numeric": [">", 1]}]}}}),
            false,
        ),
        (json!({"detail": {"review": [null]}}), true),
        (json!({"detail": {"failure": [{"exists": true}]}}), false),
        (
            json!({"detail": {"workflowId": [{"wildcard": "pat*ns"}]}}),
            true,
        ),
        (
            json!({"$or": [{"detail-type": ["Run Failed"]}, {"detail": {"scan": {"highestSeverity": ["Medium", "High"]}}}]}),
            true,
        ),
    ] {
        assert_eq!(matches(pattern.clone(), held).await, expected, "{pattern}");
    }
    let refused = client
        .test_event_pattern()
        .event_pattern(json!({"source": "macie-pipeline"}).to_string())
        .event(held.to_string())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        refused.into_service_error().meta().code(),
        Some("InvalidEventPatternException")
    );
}
