//! receiveApprovalDecision: the approval API behind `/review` (and the bulk links `/allow` and
//! `/deny`, which open the same page with a bulk choice preselected). A GET renders the review
//! page (the run's held objects with the decisions made so far) and changes nothing, because mail
//! scanners pre-fetch links. A POST of the page's form records a decision per object (the first
//! decision of an object stands), and once every held object is decided tells the waiting run
//! with `SendTaskSuccess`. The token is never logged or echoed outside the forms it came in.

use std::collections::BTreeMap;
use std::convert::Infallible;

use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::SdkConfig;
use http::Method;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response, service_fn};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{error, info, warn};

use crate::approval::decisions::{self, ObjectDecision, Reviewer, review_id};
use crate::approval::false_positives::{self, Change, FalsePositivesView};
use crate::approval::links::{Entry, MAX_TOKEN_LEN, token_param};
use crate::approval::page::{self, Page};
use crate::approval::record::{self, ApprovalRecord};
use crate::approval::review_page::{self, ReviewView};
use crate::approval::visit::{self, Form, HeldObject, OpenReview};
use crate::config::DecisionConfig;
use crate::error::PipelineError;
use crate::false_positives::allow_lists;
use crate::false_positives::rules::{self, Added, ListedRule, Rule};
use crate::manifest::{self, FlaggedObject, Manifest};
use crate::s3::documents::hashed_name;

/// The `action` of the output the waiting run gets once every held object is decided; the state
/// machine's `manualApprovalChoice` reads it.
pub const DECIDED_ACTION: &str = "decided";

/// Task errors meaning the run no longer waits: the token was used, expired, or its execution
/// ended.
const CLOSED_TASK_CODES: &[&str] = &["TaskTimedOut", "InvalidToken", "TaskDoesNotExist"];

pub struct ReceiveApprovalDecision {
    pub sfn: aws_sdk_sfn::Client,
    pub s3: aws_sdk_s3::Client,
    pub macie: aws_sdk_macie2::Client,
    pub config: DecisionConfig,
}

/// A review as a request finds it.
struct Loaded {
    record: ApprovalRecord,
    manifest: Manifest,
    review: String,
    decisions: BTreeMap<String, ObjectDecision>,
}

impl Loaded {
    fn held(&self) -> Vec<HeldObject> {
        let mut keys: Vec<&str> = self.manifest.held_keys().into_iter().collect();
        keys.sort_unstable();
        keys.into_iter()
            .map(|key| HeldObject {
                key: key.to_owned(),
                location: self.manifest.held_location(key).to_owned(),
            })
            .collect()
    }

    /// The flagged object whose key hashes to `hash` (as the pages name objects), if the run
    /// holds one.
    fn flagged(&self, hash: &str) -> Option<&FlaggedObject> {
        let hash = hash.to_ascii_lowercase();
        self.manifest
            .objects
            .iter()
            .find(|object| hashed_name(&object.key) == hash)
    }

    fn expired(&self) -> bool {
        OffsetDateTime::parse(&self.record.expires_at, &Rfc3339)
            .is_ok_and(|at| at <= OffsetDateTime::now_utc())
    }
}

impl ReceiveApprovalDecision {
    pub fn new(aws: &SdkConfig, config: DecisionConfig) -> Self {
        Self {
            sfn: aws_sdk_sfn::Client::new(aws),
            s3: aws_sdk_s3::Client::new(aws),
            macie: aws_sdk_macie2::Client::new(aws),
            config,
        }
    }

    /// Answers one request. Every outcome, failures included, is a page with the security headers.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let page = self.respond(&request).await;
        into_response(page)
    }

    async fn respond(&self, request: &Request) -> Page {
        if is_false_positives(request.uri().path()) {
            return match *request.method() {
                Method::GET => match query_token(request) {
                    Ok(token) => {
                        self.show_false_positives(&token, query(request, "object"))
                            .await
                    }
                    Err(problem) => page::bad_request(problem),
                },
                Method::POST => match form_body(request)
                    .and_then(|body| check_token(token_param(body)).map(|_| body))
                {
                    Ok(body) => match false_positives::parse_form(body) {
                        Ok(form) => {
                            let reviewer = caller(request, &form.reviewer);
                            self.change_false_positives(&form, reviewer).await
                        }
                        Err(problem) => page::form_problem(&problem),
                    },
                    Err(problem) => page::bad_request(problem),
                },
                _ => page::method_not_allowed(),
            };
        }
        let Some(entry) = Entry::from_path(request.uri().path()) else {
            return page::bad_request("This address is not an approval link.");
        };
        match *request.method() {
            Method::GET => match query_token(request) {
                Ok(token) => self.show(entry, &token, page_number(request)).await,
                Err(problem) => page::bad_request(problem),
            },
            Method::POST => match read_form(request) {
                Ok(form) => {
                    let reviewer = caller(request, &form.reviewer);
                    self.decide(entry, &form, reviewer).await
                }
                Err(problem) => page::bad_request(problem),
            },
            _ => page::method_not_allowed(),
        }
    }

    /// The request, its manifest and the decisions made so far; None if no request is stored.
    async fn load(&self, token: &str) -> Result<Option<Loaded>, PipelineError> {
        let bucket = &self.config.manifest_bucket;
        let Some(record) = record::read_request(&self.s3, bucket, token).await? else {
            return Ok(None);
        };
        let manifest = manifest::read(&self.s3, &record.manifest, &record.workflow_id).await?;
        let review = review_id(&record.manifest);
        let decisions = decisions::read_all(&self.s3, bucket, &review).await?;
        Ok(Some(Loaded {
            record,
            manifest,
            review,
            decisions,
        }))
    }

    /// The review page, or why there is none: expired, unknown.
    async fn show(&self, entry: Entry, token: &str, page_number: usize) -> Page {
        let shown = async {
            let Some(loaded) = self.load(token).await? else {
                return Ok(page::not_found());
            };
            let outcome =
                record::read_outcome(&self.s3, &self.config.manifest_bucket, &loaded.review)
                    .await?;
            if loaded.expired() && outcome.is_none() {
                return Ok(page::expired(&loaded.record));
            }
            Ok::<_, PipelineError>(review_page::review(&ReviewView {
                entry,
                token,
                record: &loaded.record,
                manifest: &loaded.manifest,
                decisions: &loaded.decisions,
                page: page_number,
                visit: None,
                outcome: outcome.as_ref(),
            }))
        };
        match shown.await {
            Ok(page) => page,
            Err(err) => {
                error!(error = %DisplayErrorContext(&err), "the approval request could not be loaded");
                page::unavailable()
            }
        }
    }

    /// Records the form's decisions; tells the run once every held object is decided.
    async fn decide(&self, entry: Entry, form: &Form, reviewer: Reviewer) -> Page {
        let bucket = &self.config.manifest_bucket;
        let recorded = async {
            let Some(loaded) = self.load(&form.token).await? else {
                return Ok(Err(page::not_found()));
            };
            if loaded.expired() {
                return Ok(Err(page::expired(&loaded.record)));
            }
            let held = loaded.held();
            let decided_at = OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .expect("now formats");
            let visit = OpenReview {
                s3: &self.s3,
                workflow_id: &loaded.record.workflow_id,
                bucket,
                review: &loaded.review,
                held: &held,
                existing: &loaded.decisions,
            }
            .decide(form, &reviewer, &decided_at)
            .await?;
            info!(
                decided = visit.decided.len(),
                earlier = visit.earlier.len(),
                undecided = visit.undecided,
                "decisions recorded"
            );
            // Read again after the writes: two visits recording at once each saw the other's
            // objects undecided, and only the records say whether none is left.
            let decisions = decisions::read_all(&self.s3, bucket, &loaded.review).await?;
            let mut visit = visit;
            visit.undecided = held
                .iter()
                .filter(|object| !decisions.contains_key(&object.key))
                .count();
            Ok::<_, PipelineError>(Ok((loaded, visit, decisions)))
        };
        let (loaded, visit, decisions) = match recorded.await {
            Ok(Ok(found)) => found,
            Ok(Err(page)) => return page,
            Err(PipelineError::InvalidInput(problem)) => {
                warn!(%problem, "a decision form the review does not match");
                return page::bad_request(
                    "The form names an object this review does not hold. Open the link again.",
                );
            }
            Err(err) => {
                error!(error = %DisplayErrorContext(&err), "the decisions could not be recorded");
                return page::unavailable();
            }
        };
        if visit.undecided == 0
            && let Err(page) = self.tell_the_run(&form.token, &loaded.review).await
        {
            return page;
        }
        review_page::review(&ReviewView {
            entry,
            token: &form.token,
            record: &loaded.record,
            manifest: &loaded.manifest,
            decisions: &decisions,
            page: 1,
            visit: Some((&visit, &reviewer.name)),
            outcome: None,
        })
    }

    /// The false-positives page, from the held object `object` (the SHA-256 of its key) if
    /// given. Like the review page it needs a review's link that has not expired.
    async fn show_false_positives(&self, token: &str, object: Option<&str>) -> Page {
        let shown = async {
            let Some(loaded) = self.load(token).await? else {
                return Ok(page::not_found());
            };
            if loaded.expired() {
                return Ok(page::expired(&loaded.record));
            }
            let listed = rules::read_all(&self.s3, &self.config.manifest_bucket).await?;
            let judged = object.and_then(|hash| loaded.flagged(hash));
            Ok::<_, PipelineError>(false_positives::render(&FalsePositivesView {
                token,
                rules: &listed,
                judged,
                notice: None,
                scan_stage_bucket: &loaded.manifest.scan_stage_bucket,
            }))
        };
        shown.await.unwrap_or_else(|err| {
            error!(error = %DisplayErrorContext(&err), "the false-positive rules could not be loaded");
            page::unavailable()
        })
    }

    /// Adds or removes one rule, then rewrites the gate's allow lists from the whole list.
    async fn change_false_positives(
        &self,
        form: &false_positives::Form,
        reviewer: Reviewer,
    ) -> Page {
        let bucket = &self.config.manifest_bucket;
        let changed = async {
            let Some(loaded) = self.load(&form.token).await? else {
                return Ok(Err(page::not_found()));
            };
            if loaded.expired() {
                return Ok(Err(page::expired(&loaded.record)));
            }
            let now = OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .expect("now formats");
            let (notice, touches_allow_lists) = match &form.change {
                Change::Add { rule, object } => {
                    let judged_object = match object {
                        None => None,
                        Some(hash) => {
                            Some(loaded.flagged(hash).map(|o| o.key.clone()).ok_or_else(|| {
                                PipelineError::InvalidInput(
                                    "the form names an object this review does not hold".into(),
                                )
                            })?)
                        }
                    };
                    let listed = ListedRule::new(
                        rule.clone(),
                        reviewer.clone(),
                        &now,
                        loaded.record.workflow_id.clone(),
                        judged_object,
                    );
                    if matches!(rule, Rule::Pattern { .. }) {
                        let mut all = rules::read_all(&self.s3, bucket).await?;
                        if !all.iter().any(|l| l.id == listed.id) {
                            all.push(listed.clone());
                        }
                        if let Err(problem) = allow_lists::check_patterns_fit(&all) {
                            return Ok(Err(page::form_problem(&problem)));
                        }
                    }
                    let notice = match rules::add(&self.s3, bucket, &listed).await? {
                        Added::Added => {
                            format!("Added: {}. It applies from the next run.", rule.describe())
                        }
                        Added::AlreadyListed => {
                            format!("Already on the list: {}.", rule.describe())
                        }
                    };
                    info!(rule = listed.id, "false-positive rule added");
                    (notice, !matches!(rule, Rule::Suppression { .. }))
                }
                Change::Remove { id } => {
                    match rules::remove(&self.s3, bucket, id, &reviewer, &now).await? {
                        Some(removed) => {
                            info!(rule = id, "false-positive rule removed");
                            (
                                format!(
                                    "Removed: {}. From the next run it no longer applies.",
                                    removed.rule.rule.describe()
                                ),
                                !matches!(removed.rule.rule, Rule::Suppression { .. }),
                            )
                        }
                        None => (
                            "That rule is not on the list any more: someone removed it before."
                                .to_owned(),
                            true,
                        ),
                    }
                }
            };
            // The list as the allow lists were rewritten from, or as it is now.
            let listed = if touches_allow_lists {
                allow_lists::sync(&self.s3, &self.macie, bucket, &self.config.allow_lists).await?
            } else {
                rules::read_all(&self.s3, bucket).await?
            };
            Ok::<_, PipelineError>(Ok((loaded, notice, listed)))
        };
        match changed.await {
            Ok(Ok((loaded, notice, listed))) => false_positives::render(&FalsePositivesView {
                token: &form.token,
                rules: &listed,
                judged: None,
                notice: Some((&notice, &reviewer.name)),
                scan_stage_bucket: &loaded.manifest.scan_stage_bucket,
            }),
            Ok(Err(page)) => page,
            Err(PipelineError::InvalidInput(problem)) => page::form_problem(&problem),
            Err(err) => {
                error!(error = %DisplayErrorContext(&err), "the false-positive rules could not be changed");
                page::page(
                    503,
                    "The list could not be changed",
                    "<p>The rules or the gate's allow lists could not be written just now. Send the same change again in a minute: adding a rule that is on the list, or removing one that is gone, rewrites the allow lists without changing the list.</p>",
                )
            }
        }
    }

    /// Every held object is decided: the run may go on. The decisions are in S3; the output only
    /// says so, and the steps that follow read them.
    async fn tell_the_run(&self, token: &str, review: &str) -> Result<(), Page> {
        let output = serde_json::json!({
            "action": DECIDED_ACTION,
            "decidedAt": OffsetDateTime::now_utc().format(&Rfc3339).expect("now formats"),
            "review": review,
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
                info!("every held object is decided; the run goes on");
                Ok(())
            }
            Err(err)
                if err
                    .code()
                    .is_some_and(|code| CLOSED_TASK_CODES.contains(&code)) =>
            {
                // Told before (a resent form), or the run stopped waiting (timed out, stopped).
                warn!(code = err.code(), "the run no longer waits for this review");
                Err(page::closed())
            }
            Err(err) => {
                error!(error = %DisplayErrorContext(&err), "SendTaskSuccess failed");
                Err(page::upstream_failure())
            }
        }
    }
}

/// A query parameter of a GET, as API Gateway decoded it.
fn query<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request
        .query_string_parameters_ref()
        .and_then(|parameters| parameters.first(name))
}

/// Whether the request is for the false-positives page (stage prefix allowed).
fn is_false_positives(path: &str) -> bool {
    path.trim_end_matches('/').rsplit('/').next() == Some(false_positives::PATH_SEGMENT)
}

/// Which page of held objects a GET asks for (`page=N`, from 1); anything else is the first.
fn page_number(request: &Request) -> usize {
    query(request, "page")
        .and_then(|page| page.parse().ok())
        .filter(|page| *page >= 1)
        .unwrap_or(1)
}

/// Who decides: the name the form gives, and what API Gateway reports of the caller.
fn caller(request: &Request, name: &str) -> Reviewer {
    let identity = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => Some(&context.identity),
        _ => None,
    };
    let clip = |text: &str| {
        text.chars()
            .take(visit::MAX_REVIEWER_LEN * 2)
            .collect::<String>()
    };
    Reviewer {
        name: name.to_owned(),
        source_ip: identity.and_then(|i| i.source_ip.clone()),
        user_agent: identity
            .and_then(|i| i.user_agent.as_deref())
            .or_else(|| {
                request
                    .headers()
                    .get(http::header::USER_AGENT)
                    .and_then(|value| value.to_str().ok())
            })
            .map(clip),
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

/// The form of a POST: the token, the reviewer and the choices, URL-encoded in the body.
fn read_form(request: &Request) -> Result<Form, &'static str> {
    let body = form_body(request)?;
    // The token is checked first, so that a damaged link says so before anything else.
    check_token(token_param(body))?;
    visit::parse_form(body)
}

/// The URL-encoded body of a form a page posted.
fn form_body(request: &Request) -> Result<&str, &'static str> {
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
        return Err("The decision must be sent from the review page's form.");
    }
    std::str::from_utf8(request.body().as_ref()).map_err(|_| "The form could not be read.")
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
