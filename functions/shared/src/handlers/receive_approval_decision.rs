//! receiveApprovalDecision: the approval API behind `/allow` and `/deny`. A GET renders the review
//! page (the run's held objects, read from its approval record and manifest, and two buttons) and
//! changes nothing, because mail scanners pre-fetch links. A POST of one of the page's forms sends
//! the decision to Step Functions, records it beside the request, and renders the outcome.
//! The token is never logged or echoed outside the forms it came in.

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
use crate::approval::page::{self, Page, Review};
use crate::approval::record::{self, DecisionRecord};
use crate::config::DecisionConfig;
use crate::manifest;

/// Task errors meaning the decision came too late or twice: the token was used, expired, or
/// its execution ended.
const CLOSED_TASK_CODES: &[&str] = &["TaskTimedOut", "InvalidToken", "TaskDoesNotExist"];

pub struct ReceiveApprovalDecision {
    pub sfn: aws_sdk_sfn::Client,
    pub s3: aws_sdk_s3::Client,
    pub config: DecisionConfig,
}

impl ReceiveApprovalDecision {
    pub fn new(aws: &SdkConfig, config: DecisionConfig) -> Self {
        Self {
            sfn: aws_sdk_sfn::Client::new(aws),
            s3: aws_sdk_s3::Client::new(aws),
            config,
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
                Ok(token) => self.show(decision, &token).await,
                Err(problem) => page::bad_request(problem),
            },
            Method::POST => match form_token(request) {
                Ok(token) => self.decide(decision, &token).await,
                Err(problem) => page::bad_request(problem),
            },
            _ => page::method_not_allowed(),
        }
    }

    /// The review page, or why there is none: decided already, expired, unknown.
    async fn show(&self, opened: Decision, token: &str) -> Page {
        let bucket = &self.config.manifest_bucket;
        let loaded = async {
            if let Some(decided) = record::read_decision(&self.s3, bucket, token).await? {
                let outcome = record::read_outcome(&self.s3, bucket, token).await?;
                return Ok(page::already_decided(Some(&decided), outcome.as_ref()));
            }
            let Some(request) = record::read_request(&self.s3, bucket, token).await? else {
                return Ok(page::not_found());
            };
            let expired = OffsetDateTime::parse(&request.expires_at, &Rfc3339)
                .is_ok_and(|at| at <= OffsetDateTime::now_utc());
            if expired {
                return Ok(page::expired(&request));
            }
            let manifest =
                manifest::read(&self.s3, &request.manifest, &request.workflow_id).await?;
            Ok::<_, crate::PipelineError>(page::review(&Review {
                opened,
                token,
                record: &request,
                manifest: &manifest,
            }))
        };
        match loaded.await {
            Ok(page) => page,
            Err(err) => {
                error!(error = %DisplayErrorContext(&err), "the approval request could not be loaded");
                page::unavailable()
            }
        }
    }

    async fn decide(&self, decision: Decision, token: &str) -> Page {
        let decided_at = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .expect("now formats");
        // The request's record key tells the release where to record what it did; it is a hash
        // and says nothing about the token.
        let output = serde_json::json!({
            "action": decision.action(),
            "decidedAt": decided_at,
            "request": record::request_key(token),
        });
        let bucket = &self.config.manifest_bucket;
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
                // The run already has the decision; the record only lets a reopened link say
                // so, so failing to write it is logged, not shown.
                let decided = DecisionRecord {
                    action: decision.action().to_owned(),
                    decided_at,
                };
                if let Err(err) = record::write_decision(&self.s3, bucket, token, &decided).await {
                    warn!(error = %DisplayErrorContext(&err), "the decision record could not be written");
                }
                let request = record::read_request(&self.s3, bucket, token)
                    .await
                    .ok()
                    .flatten();
                page::decided(decision, request.as_ref())
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
                let earlier = record::read_decision(&self.s3, bucket, token)
                    .await
                    .ok()
                    .flatten();
                let outcome = record::read_outcome(&self.s3, bucket, token)
                    .await
                    .ok()
                    .flatten();
                page::already_decided(earlier.as_ref(), outcome.as_ref())
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
