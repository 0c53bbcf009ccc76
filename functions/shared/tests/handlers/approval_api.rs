//! receiveApprovalDecision: GET shows, POST decides.

use std::collections::HashMap;

use aws_sdk_sfn::operation::send_task_success::{SendTaskSuccessInput, SendTaskSuccessOutput};
use aws_smithy_mocks::mock;
use lambda_http::{Body, Request, RequestExt};
use macie_pipeline::handlers::receive_approval_decision::ReceiveApprovalDecision;
use serde_json::Value;

use crate::client;
use crate::mocks::{Calls, Captured, json_error};

const TOKEN: &str = "AAAA+/token==";
const ENCODED: &str = "AAAA%2B%2Ftoken%3D%3D";

struct Api {
    calls: Calls,
    sent: Captured<SendTaskSuccessInput>,
    handler: ReceiveApprovalDecision,
}

fn api(error: Option<(u16, &'static str)>) -> Api {
    let calls = Calls::default();
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
    let handler = ReceiveApprovalDecision {
        sfn: client!(aws_sdk_sfn, calls, [rule]),
    };
    Api {
        calls,
        sent,
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
async fn a_get_shows_the_decision_and_changes_nothing() {
    // The reference decided on GET, so a mail scanner pre-fetching the link approved by itself.
    let api = api(None);
    for path in ["/Prod/allow", "/Prod/deny"] {
        let response = api.handler.handle(get(path, Some(TOKEN))).await;
        assert_eq!(response.status(), 200);
        let page = text(&response);
        assert!(page.contains("<form method=\"post\""), "{page}");
        assert!(page.contains(&format!("value=\"{TOKEN}\"")));
        assert_eq!(response.headers()["referrer-policy"], "no-referrer");
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
    assert!(api.sent.all().is_empty(), "a GET must not decide");
    assert!(api.calls.list().is_empty());
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
