//! receiveApprovalDecision: the approval API behind `/allow` and `/deny`. A GET renders a page
//! that asks the reviewer to confirm and changes nothing, because mail scanners pre-fetch links.
//! A POST of that page's form sends the decision to Step Functions and renders the outcome.
//! The token is never logged or echoed outside the form it came in.

use std::convert::Infallible;

use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::SdkConfig;
use http::Method;
use lambda_http::{Body, Request, RequestExt, Response, service_fn};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{error, info, warn};

use crate::approval::links::{Decision, MAX_TOKEN_LEN, token_param};
use crate::approval::page::{self, Page};

/// Task errors meaning the decision came too late or twice: the token was used, expired, or
/// its execution ended.
const CLOSED_TASK_CODES: &[&str] = &["TaskTimedOut", "InvalidToken", "TaskDoesNotExist"];

pub struct ReceiveApprovalDecision {
    pub sfn: aws_sdk_sfn::Client,
}

impl ReceiveApprovalDecision {
    pub fn new(aws: &SdkConfig) -> Self {
        Self {
            sfn: aws_sdk_sfn::Client::new(aws),
        }
    }

    /// Answers one request. Every outcome, failures included, is a page with the security headers.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let page = self.respond(&request).await;
        into_response(page)
    }

    async fn respond(&self, request: &Request) -> Page {
        let Some(decision) = Decision::from_path(request.uri().path()) else {
            return page::bad_request("This address is not an approval link.");
        };
        match *request.method() {
            Method::GET => match query_token(request) {
                Ok(token) => page::confirm(decision, &token),
                Err(problem) => page::bad_request(problem),
            },
            Method::POST => match form_token(request) {
                Ok(token) => self.decide(decision, &token).await,
                Err(problem) => page::bad_request(problem),
            },
            _ => page::method_not_allowed(),
        }
    }

    async fn decide(&self, decision: Decision, token: &str) -> Page {
        let decided_at = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .expect("now formats");
        let output = serde_json::json!({
            "action": decision.action(),
            "decidedAt": decided_at,
        });
        match self
            .sfn
            .send_task_success()
            .task_token(token)
            .output(output.to_string())
            .send()
            .await
        {
            Ok(_) => {
                info!(decision = decision.action(), "decision recorded");
                page::decided(decision)
            }
            Err(err)
                if err
                    .code()
                    .is_some_and(|code| CLOSED_TASK_CODES.contains(&code)) =>
            {
                warn!(
                    decision = decision.action(),
                    code = err.code(),
                    "decision for a closed task"
                );
                page::already_decided()
            }
            Err(err) => {
                error!(
                    decision = decision.action(),
                    error = %DisplayErrorContext(&err),
                    "SendTaskSuccess failed"
                );
                page::upstream_failure()
            }
        }
    }
}

/// The token of a GET: API Gateway has already decoded the query string once.
fn query_token(request: &Request) -> Result<String, &'static str> {
    let token = match request.query_string_parameters_ref() {
        Some(parameters) => parameters.first("token").map(str::to_owned),
        None => request.uri().query().and_then(token_param),
    };
    check_token(token)
}

/// The token of a POST: the form's only field, URL-encoded in the body.
fn form_token(request: &Request) -> Result<String, &'static str> {
    let is_form = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value.split(';').next().is_some_and(|mime| {
                mime.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !is_form {
        return Err("The decision must be sent from the approval page's form.");
    }
    let body =
        std::str::from_utf8(request.body().as_ref()).map_err(|_| "The form could not be read.")?;
    check_token(token_param(body))
}

fn check_token(token: Option<String>) -> Result<String, &'static str> {
    match token {
        None => Err("The link has no approval token."),
        Some(token) if token.is_empty() => Err("The link has no approval token."),
        Some(token) if token.len() > MAX_TOKEN_LEN => Err("The approval token is too long."),
        Some(token) => Ok(token),
    }
}

fn into_response(page: Page) -> Response<Body> {
    let mut builder = Response::builder().status(page.status);
    for (name, value) in page.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Body::Text(page.body))
        .expect("static header names and values are valid")
}

/// Serves the handler on the Lambda runtime API (API Gateway proxy events).
pub async fn serve(handler: ReceiveApprovalDecision) -> Result<(), lambda_http::Error> {
    let handler = &handler;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Infallible>(handler.handle(request).await)
    }))
    .await
}
