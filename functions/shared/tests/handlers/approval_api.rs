//! receiveApprovalDecision: GET shows, POST records decisions per object and tells the run once
//! none is left.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sfn::operation::send_task_success::{SendTaskSuccessInput, SendTaskSuccessOutput};
use aws_smithy_mocks::{MockResponse, mock};
use lambda_http::{Body, Request, RequestExt};
use macie_pipeline::approval::TimeoutAction;
use macie_pipeline::approval::decisions::{record_key, review_id};
use macie_pipeline::approval::record::{ApprovalRecord, request_key};
use macie_pipeline::config::DecisionConfig;
use macie_pipeline::handlers::receive_approval_decision::ReceiveApprovalDecision;
use macie_pipeline::macie::cost::MicroUsdPerGb;
use macie_pipeline::macie::severity::Severity;
use macie_pipeline::manifest::{
    self, Detection, FlaggedObject, Manifest, ManifestRef, NotAnalysedObject, NotAnalysedStatus,
    Route,
};
use macie_pipeline::s3::documents::hashed_name;
use macie_pipeline::workflow::WorkflowId;
use serde_json::Value;

use crate::client;
use crate::mocks::{Calls, Captured, json_error, s3_error};

const TOKEN: &str = "AAAA+/token==";
const ENCODED: &str = "AAAA%2B%2Ftoken%3D%3D";

struct Api {
    calls: Calls,
    sent: Captured<SendTaskSuccessInput>,
    /// The manifest bucket: approval records, the manifest, decisions written.
    stored: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    handler: ReceiveApprovalDecision,
}

const MANIFESTS: &str = "manifests";
const MANIFEST_KEY: &str = "workflows/wf%2D1/job/findings.json";

fn request_record(expires_at: &str) -> ApprovalRecord {
    ApprovalRecord {
        workflow_id: WorkflowId::parse("wf-1").unwrap(),
        manifest: ManifestRef {
            bucket: MANIFESTS.into(),
            key: MANIFEST_KEY.into(),
        },
        expires_at: expires_at.into(),
        timeout_action: TimeoutAction::Hold,
        manual_review_bucket: "review".into(),
        scanned_data_bucket: "scanned".into(),
    }
}

fn run_manifest() -> Manifest {
    Manifest {
        version: manifest::VERSION,
        workflow_id: WorkflowId::parse("wf-1").unwrap(),
        job_id: "job".into(),
        scan_stage_bucket: "scan".into(),
        minimum_severity: Severity::Low,
        finding_count: 1,
        objects: vec![FlaggedObject {
            key: "cards.csv".into(),
            size: 100,
            highest_severity: Severity::Medium,
            finding_types: vec!["SensitiveData:S3Object/Financial".into()],
            detections: vec![Detection {
                kind: "CREDIT_CARD_NUMBER".into(),
                count: 2,
            }],
            finding_ids: vec!["f".into()],
            route: Route::Review,
            incomplete_analysis: None,
        }],
        not_analysed: vec![NotAnalysedObject {
            key: "photo.png".into(),
            size: 10,
            status: NotAnalysedStatus::Skipped,
            reasons: vec!["UNSUPPORTED_FILE_TYPE_EXCEPTION".into()],
        }],
        analysed: vec!["clean.csv".into()],
        bytes_scanned: 1000,
        macie_price: MicroUsdPerGb::LIST_PRICE,
        held_aside: Default::default(),
        superseded: Vec::new(),
        suppressed: Vec::new(),
    }
}

/// A manifest bucket holding a pending request for TOKEN that expires far in the future.
fn pending() -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        (
            request_key(TOKEN),
            serde_json::to_vec(&request_record("2099-01-01T00:00:00Z")).unwrap(),
        ),
        (
            MANIFEST_KEY.to_owned(),
            serde_json::to_vec(&run_manifest()).unwrap(),
        ),
    ])
}

fn api(error: Option<(u16, &'static str)>) -> Api {
    api_with(error, pending())
}

fn api_with(error: Option<(u16, &'static str)>, objects: BTreeMap<String, Vec<u8>>) -> Api {
    let calls = Calls::default();
    let stored = Arc::new(Mutex::new(objects));
    let sent = Captured::default();
    let captured = sent.clone();
    let rule = match error {
        None => mock!(aws_sdk_sfn::Client::send_task_success).then_compute_output(move |input| {
            captured.push(input.clone());
            SendTaskSuccessOutput::builder().build()
        }),
        Some((status, code)) => mock!(aws_sdk_sfn::Client::send_task_success)
            .then_compute_response(move |input| {
                captured.push(input.clone());
                aws_smithy_mocks::MockResponse::Http(json_error(status, code))
            }),
    };
    let reading = Arc::clone(&stored);
    let get = mock!(aws_sdk_s3::Client::get_object).then_compute_response(move |input| {
        assert_eq!(input.bucket(), Some(MANIFESTS));
        match reading.lock().unwrap().get(input.key().unwrap()) {
            Some(body) => MockResponse::Output(
                GetObjectOutput::builder()
                    .body(ByteStream::from(body.clone()))
                    .build(),
            ),
            None => MockResponse::Http(s3_error(404, "NoSuchKey")),
        }
    });
    let listing = Arc::clone(&stored);
    let list = mock!(aws_sdk_s3::Client::list_objects_v2).then_compute_output(move |input| {
        let prefix = input.prefix().unwrap_or_default();
        let contents = listing
            .lock()
            .unwrap()
            .keys()
            .filter(|key| key.starts_with(prefix))
            .map(|key| aws_sdk_s3::types::Object::builder().key(key).build())
            .collect::<Vec<_>>();
        ListObjectsV2Output::builder()
            .set_contents(Some(contents))
            .build()
    });
    let writing = Arc::clone(&stored);
    let put = mock!(aws_sdk_s3::Client::put_object).then_compute_response(move |input| {
        let body = input.body.bytes().unwrap().to_vec();
        let mut stored = writing.lock().unwrap();
        let key = input.key().unwrap().to_owned();
        if input.if_none_match() == Some("*") && stored.contains_key(&key) {
            return MockResponse::Http(s3_error(412, "PreconditionFailed"));
        }
        stored.insert(key, body);
        MockResponse::Output(PutObjectOutput::builder().build())
    });
    let update = mock!(aws_sdk_macie2::Client::update_allow_list).then_output(|| {
        aws_sdk_macie2::operation::update_allow_list::UpdateAllowListOutput::builder().build()
    });
    let handler = ReceiveApprovalDecision {
        sfn: client!(aws_sdk_sfn, calls, [rule]),
        s3: client!(aws_sdk_s3, calls, [get, list, put]),
        macie: client!(aws_sdk_macie2, calls, [update]),
        config: DecisionConfig {
            manifest_bucket: MANIFESTS.into(),
            allow_lists: macie_pipeline::false_positives::allow_lists::GateAllowLists {
                patterns_id: "patterns".into(),
                patterns_name: "local-false-positive-patterns".into(),
            },
        },
    };
    Api {
        calls,
        sent,
        stored,
        handler,
    }
}

/// A GET as API Gateway delivers it: the query already decoded into parameters.
fn get(path: &str, token: Option<&str>) -> Request {
    let mut parameters = HashMap::new();
    if let Some(token) = token {
        parameters.insert("token".to_owned(), token.to_owned());
    }
    http::Request::builder()
        .method("GET")
        .uri(format!("https://api.example{path}"))
        .body(Body::Empty)
        .unwrap()
        .with_query_string_parameters(parameters)
}

fn post(path: &str, content_type: &str, body: &str) -> Request {
    http::Request::builder()
        .method("POST")
        .uri(format!("https://api.example{path}"))
        .header("content-type", content_type)
        .body(Body::Text(body.to_owned()))
        .unwrap()
}

fn text(response: &http::Response<Body>) -> String {
    String::from_utf8(response.body().as_ref().to_vec()).unwrap()
}

fn decision_of(api: &Api, key: &str) -> Option<Value> {
    let review = review_id(&request_record("2099-01-01T00:00:00Z").manifest);
    let stored = api.stored.lock().unwrap();
    stored
        .get(&record_key(&review, key))
        .map(|bytes| serde_json::from_slice(bytes).unwrap())
}

fn field(key: &str) -> String {
    format!("object.{}", hashed_name(key))
}

fn form(extra: &str) -> String {
    format!("token={ENCODED}&reviewer=Ada+Lovelace{extra}")
}

#[tokio::test]
async fn a_get_shows_every_held_object_with_its_choices_and_changes_nothing() {
    // The reference decided on GET, so a mail scanner pre-fetching the link approved by itself.
    let api = api(None);
    for (path, action, preselected) in [
        ("/Prod/review", "review", "keep"),
        ("/Prod/allow", "allow", "release"),
        ("/Prod/deny", "deny", "delete"),
    ] {
        let response = api.handler.handle(get(path, Some(TOKEN))).await;
        assert_eq!(response.status(), 200);
        let page = text(&response);
        assert!(
            page.contains(&format!("<form method=\"post\" action=\"{action}\">")),
            "{page}"
        );
        assert_eq!(page.matches("<form").count(), 1, "one form");
        assert!(page.contains(&format!("value=\"{TOKEN}\"")));
        assert!(page.contains("name=\"reviewer\" type=\"text\" required"));
        for key in ["cards.csv", "photo.png"] {
            for choice in ["release", "delete", "keep"] {
                assert!(
                    page.contains(&format!("name=\"{}\" value=\"{choice}\"", field(key))),
                    "{key} {choice}"
                );
            }
        }
        assert!(page.contains(&format!(
            "name=\"remaining\" value=\"{preselected}\" checked"
        )));
        assert!(page.contains("cards.csv") && page.contains("CREDIT_CARD_NUMBER x2"));
        assert!(page.contains("photo.png") && page.contains("UNSUPPORTED_FILE_TYPE_EXCEPTION"));
        assert!(!page.contains("clean.csv"), "only held objects are listed");
        assert!(page.contains("the objects still undecided stay in the manual-review bucket"));
        assert_eq!(response.headers()["referrer-policy"], "no-referrer");
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
    assert!(api.sent.all().is_empty(), "a GET must not decide");
    assert_eq!(
        api.calls.count("SendTaskSuccess") + api.calls.count("PutObject"),
        0
    );
    api.calls.assert_declared_for("ReceiveApprovalDecision");
}

#[tokio::test]
async fn a_get_for_an_unknown_or_expired_request_says_so() {
    let unknown = api_with(None, BTreeMap::new());
    let response = unknown.handler.handle(get("/review", Some(TOKEN))).await;
    assert_eq!(response.status(), 404);
    assert!(!text(&response).contains("<form"));

    let mut expired = pending();
    expired.insert(
        request_key(TOKEN),
        serde_json::to_vec(&request_record("2026-01-01T00:00:00Z")).unwrap(),
    );
    let expired = api_with(None, expired);
    let response = expired.handler.handle(get("/allow", Some(TOKEN))).await;
    assert_eq!(response.status(), 410);
    assert!(text(&response).contains("expired on 2026-01-01 00:00 UTC"));
    // Nor is anything recorded after the deadline.
    let response = expired
        .handler
        .handle(post(
            "/review",
            "application/x-www-form-urlencoded",
            &form("&remaining=release"),
        ))
        .await;
    assert_eq!(response.status(), 410);
    assert_eq!(expired.calls.count("PutObject"), 0);
}

#[tokio::test]
async fn a_get_outside_api_gateway_reads_the_encoded_query() {
    let api = api(None);
    let request = http::Request::builder()
        .method("GET")
        .uri(format!("http://127.0.0.1/review?token={ENCODED}"))
        .body(Body::Empty)
        .unwrap();
    let page = text(&api.handler.handle(request).await);
    assert!(page.contains(&format!("value=\"{TOKEN}\"")), "{page}");
}

#[tokio::test]
async fn decisions_are_recorded_per_object_and_the_run_is_told_once_none_is_left() {
    let api = api(None);
    let mut first = post(
        "/Prod/review",
        "application/x-www-form-urlencoded",
        &form(&format!(
            "&{}=release&{}=keep&remaining=keep",
            field("cards.csv"),
            field("photo.png")
        )),
    );
    first
        .headers_mut()
        .insert("user-agent", "Firefox/140".parse().unwrap());
    let response = api.handler.handle(first).await;
    assert_eq!(response.status(), 200);
    let page = text(&response);
    assert!(page.contains("Recorded 1 decision(s)."), "{page}");
    assert!(page.contains("1 still to decide"));
    assert!(
        page.contains("Release: decided by Ada Lovelace on"),
        "{page}"
    );
    assert!(
        page.contains("value=\"Ada Lovelace\""),
        "the name stays in the field"
    );
    assert!(api.sent.all().is_empty(), "photo.png is undecided");
    let cards = decision_of(&api, "cards.csv").expect("recorded");
    assert_eq!(cards["choice"], "release");
    assert_eq!(cards["location"], "cards.csv");
    assert_eq!(cards["reviewer"]["name"], "Ada Lovelace");
    assert_eq!(cards["reviewer"]["userAgent"], "Firefox/140");
    assert_eq!(cards["workflowId"], "wf-1");
    assert!(decision_of(&api, "photo.png").is_none());

    // Later: a change of cards.csv does not take; the rest is deleted in bulk.
    let response = api
        .handler
        .handle(post(
            "/Prod/deny",
            "application/x-www-form-urlencoded",
            &format!(
                "token={ENCODED}&reviewer=bob%40example.com&{}=delete&remaining=delete",
                field("cards.csv")
            ),
        ))
        .await;
    assert_eq!(response.status(), 200);
    let page = text(&response);
    assert!(page.contains("Every held object is decided"), "{page}");
    assert!(page.contains("decided before"), "{page}");
    assert_eq!(decision_of(&api, "cards.csv").unwrap()["choice"], "release");
    let photo = decision_of(&api, "photo.png").unwrap();
    assert_eq!(
        (photo["choice"].as_str(), photo["reviewer"]["name"].as_str()),
        (Some("delete"), Some("bob@example.com"))
    );
    let sent = api.sent.all();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].task_token(), Some(TOKEN));
    let output: Value = serde_json::from_str(sent[0].output().unwrap()).unwrap();
    assert_eq!(output["action"], "decided");
    // The output carries no decision: the steps read them from S3.
    assert!(output.get("decisions").is_none());
    api.calls.assert_declared_for("ReceiveApprovalDecision");
}

#[tokio::test]
async fn a_run_that_no_longer_waits_closes_the_review() {
    for code in ["TaskTimedOut", "InvalidToken", "TaskDoesNotExist"] {
        let api = api(Some((400, code)));
        let response = api
            .handler
            .handle(post(
                "/review",
                "application/x-www-form-urlencoded; charset=utf-8",
                &form("&remaining=release"),
            ))
            .await;
        assert_eq!(response.status(), 410, "{code}");
        let page = text(&response);
        assert!(page.contains("This review is closed"));
        assert!(
            !page.contains(TOKEN) && !page.contains(ENCODED),
            "the token is echoed"
        );
    }
}

#[tokio::test]
async fn other_failures_are_a_502_without_internals_and_the_decisions_stay() {
    let api = api(Some((500, "ServiceUnavailable")));
    let response = api
        .handler
        .handle(post(
            "/deny",
            "application/x-www-form-urlencoded",
            &form("&remaining=delete"),
        ))
        .await;
    assert_eq!(response.status(), 502);
    let page = text(&response);
    assert!(!page.contains("ServiceUnavailable") && !page.contains(TOKEN));
    assert!(page.contains("Your decisions are recorded"));
    assert_eq!(decision_of(&api, "cards.csv").unwrap()["choice"], "delete");
    // The reopened link offers to send them again.
    let page = text(&api.handler.handle(get("/review", Some(TOKEN))).await);
    assert!(page.contains("Send the decisions again"), "{page}");
}

#[tokio::test]
async fn malformed_requests_get_clear_pages_and_decide_nothing() {
    let api = api(None);
    let cases = [
        (get("/review", None), 400, "no approval token"),
        (get("/review", Some("")), 400, "no approval token"),
        (get("/review", Some(&"x".repeat(2049))), 400, "too long"),
        (get("/elsewhere", Some(TOKEN)), 400, "not an approval link"),
        (
            post(
                "/review",
                "application/json",
                &format!("{{\"token\":\"{TOKEN}\"}}"),
            ),
            400,
            "form",
        ),
        (
            post("/review", "application/x-www-form-urlencoded", "other=1"),
            400,
            "no approval token",
        ),
        (
            post(
                "/review",
                "application/x-www-form-urlencoded",
                &format!("token={ENCODED}&remaining=release"),
            ),
            400,
            "Enter your name",
        ),
        (
            post(
                "/review",
                "application/x-www-form-urlencoded",
                &form(&format!("&{}=release", field("not-held.csv"))),
            ),
            400,
            "does not hold",
        ),
        (
            http::Request::builder()
                .method("PUT")
                .uri("https://api.example/review")
                .body(Body::Empty)
                .unwrap(),
            405,
            "",
        ),
    ];
    for (request, status, says) in cases {
        let described = format!("{} {}", request.method(), request.uri());
        let response = api.handler.handle(request).await;
        assert_eq!(response.status(), status, "{described}");
        assert!(
            text(&response).contains(says),
            "{described}: {}",
            text(&response)
        );
        assert!(response.headers().contains_key("content-security-policy"));
    }
    assert!(api.sent.all().is_empty());
    assert!(decision_of(&api, "cards.csv").is_none());
}

#[tokio::test]
async fn two_visits_recording_at_once_still_tell_the_run_when_nothing_is_left() {
    // Each visit sees the other's object undecided when it loads; only the records read after
    // both writes show that nothing is.
    let api = api(None);
    let one = post(
        "/review",
        "application/x-www-form-urlencoded",
        &form(&format!("&{}=release", field("cards.csv"))),
    );
    let other = post(
        "/review",
        "application/x-www-form-urlencoded",
        &form(&format!("&{}=delete", field("photo.png"))),
    );
    let (first, second) = tokio::join!(api.handler.handle(one), api.handler.handle(other));
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    assert!(decision_of(&api, "cards.csv").is_some() && decision_of(&api, "photo.png").is_some());
    assert!(
        !api.sent.all().is_empty(),
        "neither visit told the run, though every object is decided"
    );
}
