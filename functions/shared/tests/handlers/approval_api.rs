//! receiveApprovalDecision: GET shows, POST decides.

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
use macie_pipeline::approval::record::{ApprovalRecord, decision_key, request_key};
use macie_pipeline::config::DecisionConfig;
use macie_pipeline::handlers::receive_approval_decision::ReceiveApprovalDecision;
use macie_pipeline::macie::cost::MicroUsdPerGb;
use macie_pipeline::macie::severity::Severity;
use macie_pipeline::manifest::{
    self, Detection, FlaggedObject, Manifest, ManifestRef, NotAnalysedObject, NotAnalysedStatus,
    Route,
};
use macie_pipeline::workflow::WorkflowId;
use serde_json::{Value, json};

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
    let list = mock!(aws_sdk_s3::Client::list_objects_v2)
        .then_output(|| ListObjectsV2Output::builder().build());
    let writing = Arc::clone(&stored);
    let put = mock!(aws_sdk_s3::Client::put_object).then_compute_output(move |input| {
        let body = input.body.bytes().unwrap().to_vec();
        writing
            .lock()
            .unwrap()
            .insert(input.key().unwrap().to_owned(), body);
        PutObjectOutput::builder().build()
    });
    let handler = ReceiveApprovalDecision {
        sfn: client!(aws_sdk_sfn, calls, [rule]),
        s3: client!(aws_sdk_s3, calls, [get, list, put]),
        config: DecisionConfig {
            manifest_bucket: MANIFESTS.into(),
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

#[tokio::test]
async fn a_get_shows_every_held_object_and_changes_nothing() {
    // The reference decided on GET, so a mail scanner pre-fetching the link approved by itself.
    let api = api(None);
    for path in ["/Prod/allow", "/Prod/deny"] {
        let response = api.handler.handle(get(path, Some(TOKEN))).await;
        assert_eq!(response.status(), 200);
        let page = text(&response);
        assert!(
            page.contains("<form method=\"post\" action=\"allow\">"),
            "{page}"
        );
        assert!(page.contains("<form method=\"post\" action=\"deny\">"));
        assert!(page.contains(&format!("value=\"{TOKEN}\"")));
        assert!(page.contains("cards.csv") && page.contains("CREDIT_CARD_NUMBER x2"));
        assert!(page.contains("photo.png") && page.contains("UNSUPPORTED_FILE_TYPE_EXCEPTION"));
        assert!(!page.contains("clean.csv"), "only held objects are listed");
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
async fn a_get_for_an_unknown_decided_or_expired_request_says_so() {
    let unknown = api_with(None, BTreeMap::new());
    let response = unknown.handler.handle(get("/allow", Some(TOKEN))).await;
    assert_eq!(response.status(), 404);
    assert!(!text(&response).contains("<form"));

    let mut decided = pending();
    decided.insert(
        decision_key(TOKEN),
        serde_json::to_vec(&json!({"action": "allow", "decidedAt": "2026-11-28T10:00:00Z"}))
            .unwrap(),
    );
    let response = api_with(None, decided)
        .handler
        .handle(get("/deny", Some(TOKEN)))
        .await;
    assert_eq!(response.status(), 410);
    let page = text(&response);
    assert!(page.contains("approved on 2026-11-28 10:00 UTC"), "{page}");
    assert!(!page.contains("<form"));

    let mut expired = pending();
    expired.insert(
        request_key(TOKEN),
        serde_json::to_vec(&request_record("2026-01-01T00:00:00Z")).unwrap(),
    );
    let response = api_with(None, expired)
        .handler
        .handle(get("/allow", Some(TOKEN)))
        .await;
    assert_eq!(response.status(), 410);
    assert!(text(&response).contains("expired on 2026-01-01 00:00 UTC"));
}

#[tokio::test]
async fn a_get_outside_api_gateway_reads_the_encoded_query() {
    let api = api(None);
    let request = http::Request::builder()
        .method("GET")
        .uri(format!("http://127.0.0.1/deny?token={ENCODED}"))
        .body(Body::Empty)
        .unwrap();
    let page = text(&api.handler.handle(request).await);
    assert!(page.contains(&format!("value=\"{TOKEN}\"")), "{page}");
}

#[tokio::test]
async fn a_post_sends_the_decision_with_the_token_decoded_once() {
    for (path, action) in [("/Prod/allow", "allow"), ("/Prod/deny", "delete")] {
        let api = api(None);
        let response = api
            .handler
            .handle(post(
                path,
                "application/x-www-form-urlencoded",
                &format!("token={ENCODED}"),
            ))
            .await;
        assert_eq!(response.status(), 200);
        let sent = api.sent.all();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].task_token(), Some(TOKEN));
        let output: Value = serde_json::from_str(sent[0].output().unwrap()).unwrap();
        assert_eq!(output["action"], action);
        assert!(text(&response).contains("run wf-1"));
        // Recorded, so the link reopened says it was decided.
        let stored = api.stored.lock().unwrap();
        let decision: Value = serde_json::from_slice(&stored[&decision_key(TOKEN)]).unwrap();
        assert_eq!(decision["action"], action);
        drop(stored);
        api.calls.assert_declared_for("ReceiveApprovalDecision");
    }
}

#[tokio::test]
async fn a_used_or_expired_token_is_already_decided() {
    for code in ["TaskTimedOut", "InvalidToken", "TaskDoesNotExist"] {
        let api = api(Some((400, code)));
        let response = api
            .handler
            .handle(post(
                "/allow",
                "application/x-www-form-urlencoded; charset=utf-8",
                &format!("token={ENCODED}"),
            ))
            .await;
        assert_eq!(response.status(), 410, "{code}");
        let page = text(&response);
        assert!(page.contains("Already decided or expired"));
        assert!(
            !page.contains(TOKEN) && !page.contains(ENCODED),
            "the token is echoed"
        );
    }
}

#[tokio::test]
async fn other_failures_are_a_502_without_internals() {
    let api = api(Some((500, "ServiceUnavailable")));
    let response = api
        .handler
        .handle(post(
            "/deny",
            "application/x-www-form-urlencoded",
            &format!("token={ENCODED}"),
        ))
        .await;
    assert_eq!(response.status(), 502);
    let page = text(&response);
    assert!(!page.contains("ServiceUnavailable") && !page.contains(TOKEN));
}

#[tokio::test]
async fn malformed_requests_get_clear_pages_and_decide_nothing() {
    let api = api(None);
    let cases = [
        (get("/allow", None), 400),
        (get("/allow", Some("")), 400),
        (get("/allow", Some(&"x".repeat(2049))), 400),
        (get("/elsewhere", Some(TOKEN)), 400),
        (
            post(
                "/allow",
                "application/json",
                &format!("{{\"token\":\"{TOKEN}\"}}"),
            ),
            400,
        ),
        (
            post("/allow", "application/x-www-form-urlencoded", "other=1"),
            400,
        ),
        (
            http::Request::builder()
                .method("PUT")
                .uri("https://api.example/allow")
                .body(Body::Empty)
                .unwrap(),
            405,
        ),
    ];
    for (request, status) in cases {
        let described = format!("{} {}", request.method(), request.uri());
        let response = api.handler.handle(request).await;
        assert_eq!(response.status(), status, "{described}");
        assert!(response.headers().contains_key("content-security-policy"));
    }
    assert!(api.sent.all().is_empty());
}
