//! One port for every service, routed by request shape as the AWS protocols allow: a signed
//! request names its service in the SigV4 credential scope (`.../us-east-1/s3/aws4_request`);
//! the unsigned ones are the approval API (`/review`, `/allow`, `/deny`) and the stack's own controls
//! (`/_local/...`). Credentials are not checked: any key signs a valid local request.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};

use macie_pipeline::handlers::receive_approval_decision::ReceiveApprovalDecision;

use crate::approval;
use crate::faults::{FaultError, FaultRule, Faults};
use crate::iam::{Iam, Principal};
use crate::macie::{Macie, api as macie_api};
use crate::sfn::api as sfn_api;
use crate::sfn::engine::Engine;
use crate::sns::{self, Sns, SnsError};

/// Everything the router dispatches to.
pub struct Services {
    pub s3: s3s::service::S3Service,
    pub macie: Macie,
    pub sns: Arc<Sns>,
    pub engine: Engine,
    pub approval: Arc<ReceiveApprovalDecision>,
    /// The approval API's routes as the template defines them: (method, path).
    pub api_routes: std::collections::BTreeSet<(String, String)>,
    pub faults: Arc<Faults>,
    pub iam: Arc<Iam>,
    /// The objects, for the KMS key of an object a request reads.
    pub store: Arc<crate::s3::Store>,
    pub kms: Arc<crate::kms::Kms>,
    pub events: Arc<crate::events::EventBridge>,
    pub sqs: Arc<crate::sqs::Sqs>,
    /// The webhook receiver API destinations can be pointed at.
    pub webhooks: crate::events::webhooks::Webhooks,
}

/// How a request reached the stack: over TLS or plain HTTP (`aws:SecureTransport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    pub tls: bool,
}

type Reply = Response<s3s::Body>;

fn reply(status: u16, headers: &[(&str, String)], body: impl Into<Bytes>) -> Reply {
    let mut builder = Response::builder().status(status);
    builder = builder.header("x-amzn-RequestId", uuid::Uuid::new_v4().to_string());
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    builder
        .body(s3s::Body::from(body.into()))
        .expect("valid response")
}

fn json_reply(status: u16, content_type: &str, body: &Value, error: Option<&str>) -> Reply {
    let mut headers = vec![("content-type", content_type.to_owned())];
    if let Some(code) = error {
        headers.push(("x-amzn-ErrorType", code.to_owned()));
    }
    reply(status, &headers, body.to_string())
}

/// A signed request's credential (`<access key>/<date>/<region>/<service>/aws4_request`), from
/// its Authorization header or a presigned URL's query.
fn credential_scope(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| auth.split("Credential=").nth(1))
        .map(|rest| rest.split([',', ' ']).next().unwrap_or_default().to_owned())
        .or_else(|| {
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .find(|(name, _)| name == "X-Amz-Credential")
                .map(|(_, value)| value.into_owned())
        })
}

/// The operation a JSON protocol request names (`X-Amz-Target: <Service>.<Operation>`).
fn amz_target(headers: &HeaderMap) -> &str {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The service a signed request is for, from its credential scope.
fn signing_service(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    credential_scope(headers, query)?
        .split('/')
        .nth(3)
        .map(str::to_owned)
}

/// The access key id a signed request names in its credential scope.
fn access_key(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    credential_scope(headers, query)?
        .split('/')
        .next()
        .map(str::to_owned)
}

/// The S3 operation a request is, for fault rules and IAM.
pub fn s3_operation(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> &'static str {
    let params: Vec<String> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(name, _)| name.into_owned())
        .collect();
    let has = |name: &str| params.iter().any(|p| p == name);
    // `/bucket/` (as the SDK lists) is the bucket; `/bucket/key` an object.
    let has_key = path
        .trim_start_matches('/')
        .split_once('/')
        .is_some_and(|(_, key)| !key.is_empty());
    let copy = headers.contains_key("x-amz-copy-source");
    match *method {
        Method::GET if path == "/" => "ListBuckets",
        Method::GET if has("tagging") => "GetObjectTagging",
        Method::GET if has_key && has("uploadId") => "ListParts",
        Method::GET if has_key => "GetObject",
        Method::GET if has("versioning") => "GetBucketVersioning",
        Method::GET if has("notification") => "GetBucketNotificationConfiguration",
        Method::GET if has("encryption") => "GetBucketEncryption",
        Method::GET if has("versions") => "ListObjectVersions",
        Method::GET if has("uploads") => "ListMultipartUploads",
        Method::GET if has("list-type") => "ListObjectsV2",
        Method::GET if has("location") => "GetBucketLocation",
        Method::GET => "ListObjects",
        Method::HEAD if has_key => "HeadObject",
        Method::HEAD => "HeadBucket",
        Method::PUT if has("tagging") => "PutObjectTagging",
        Method::PUT if has("versioning") => "PutBucketVersioning",
        Method::PUT if has("notification") => "PutBucketNotificationConfiguration",
        Method::PUT if has("encryption") => "PutBucketEncryption",
        Method::PUT if has("partNumber") && copy => "UploadPartCopy",
        Method::PUT if has("partNumber") => "UploadPart",
        Method::PUT if copy => "CopyObject",
        Method::PUT if has_key => "PutObject",
        Method::PUT => "CreateBucket",
        Method::POST if has("uploads") => "CreateMultipartUpload",
        Method::POST if has("uploadId") => "CompleteMultipartUpload",
        Method::POST if has("delete") => "DeleteObjects",
        Method::DELETE if has("tagging") => "DeleteObjectTagging",
        Method::DELETE if has("encryption") => "DeleteBucketEncryption",
        Method::DELETE if has("uploadId") => "AbortMultipartUpload",
        Method::DELETE if has_key => "DeleteObject",
        Method::DELETE => "DeleteBucket",
        _ => "Unknown",
    }
}

/// The KMS actions S3 takes on a writer's behalf with the key the write is encrypted with: a
/// data key for a new object; a multipart upload's parts are also decrypted to be assembled.
fn s3_write_key_actions(operation: &str) -> &'static [&'static str] {
    match operation {
        "PutObject" | "CopyObject" => &["kms:GenerateDataKey"],
        "CreateMultipartUpload" => &["kms:GenerateDataKey", "kms:Decrypt"],
        _ => &[],
    }
}

/// The bucket, key and KMS key of a write that is encrypted with SSE-KMS. A key that cannot
/// be used is left to the S3 service, which answers with S3's error for it.
fn write_key(
    services: &Services,
    operation: &str,
    path: &str,
    headers: &HeaderMap,
) -> Option<(String, String, crate::s3::encryption::WriteKey)> {
    if s3_write_key_actions(operation).is_empty() {
        return None;
    }
    let (bucket, key) = path.trim_start_matches('/').split_once('/')?;
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8_lossy()
            .into_owned()
    };
    let (bucket, key) = (decode(bucket), decode(key));
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let write_key = crate::s3::encryption::for_write(
        &services.store,
        &services.kms,
        &bucket,
        header("x-amz-server-side-encryption"),
        header("x-amz-server-side-encryption-aws-kms-key-id"),
        header("x-amz-server-side-encryption-bucket-key-enabled")
            .map(|v| v.eq_ignore_ascii_case("true")),
    )
    .ok()??;
    Some((bucket, key, write_key))
}

/// The Macie operation a request is, for fault rules and IAM, and the resource it acts on
/// (`*` where the operation names none).
fn macie_operation(method: &Method, path: &str) -> (String, String) {
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let arn = |kind: &str, id: &str| {
        format!(
            "arn:aws:macie2:{}:{}:{kind}/{id}",
            crate::aws::REGION,
            crate::aws::ACCOUNT
        )
    };
    let (name, resource) = match (method.as_str(), segments.as_slice()) {
        ("POST", ["jobs"]) => ("CreateClassificationJob", arn("classification-job", "*")),
        ("POST", ["jobs", "list"]) => ("ListClassificationJobs", "*".into()),
        ("GET", ["jobs", id]) => ("DescribeClassificationJob", arn("classification-job", id)),
        ("PATCH", ["jobs", id]) => ("UpdateClassificationJob", arn("classification-job", id)),
        ("POST", ["findings"]) => ("ListFindings", "*".into()),
        ("POST", ["findings", "describe"]) => ("GetFindings", "*".into()),
        ("POST", ["findings", "statistics"]) => ("GetFindingStatistics", "*".into()),
        ("POST", ["custom-data-identifiers"]) => (
            "CreateCustomDataIdentifier",
            arn("custom-data-identifier", "*"),
        ),
        ("POST", ["custom-data-identifiers", "get"]) => {
            ("BatchGetCustomDataIdentifiers", "*".into())
        }
        ("POST", ["custom-data-identifiers", "list"]) => ("ListCustomDataIdentifiers", "*".into()),
        ("GET", ["custom-data-identifiers", id]) => {
            ("GetCustomDataIdentifier", arn("custom-data-identifier", id))
        }
        ("POST", ["allow-lists"]) => ("CreateAllowList", arn("allow-list", "*")),
        ("GET", ["allow-lists", id]) => ("GetAllowList", arn("allow-list", id)),
        ("PUT", ["allow-lists", id]) => ("UpdateAllowList", arn("allow-list", id)),
        ("POST", ["findingsfilters"]) => ("CreateFindingsFilter", arn("findings-filter", "*")),
        ("GET", ["findingsfilters"]) => ("ListFindingsFilters", "*".into()),
        ("GET", ["findingsfilters", id]) => ("GetFindingsFilter", arn("findings-filter", id)),
        ("PATCH", ["findingsfilters", id]) => ("UpdateFindingsFilter", arn("findings-filter", id)),
        ("DELETE", ["findingsfilters", id]) => ("DeleteFindingsFilter", arn("findings-filter", id)),
        ("GET", ["macie"]) => ("GetMacieSession", "*".into()),
        ("POST", ["macie"]) => ("EnableMacie", "*".into()),
        ("POST", ["managed-data-identifiers", "list"]) => {
            ("ListManagedDataIdentifiers", "*".into())
        }
        ("PUT", ["classification-export-configuration"]) => {
            ("PutClassificationExportConfiguration", "*".into())
        }
        ("GET", ["classification-export-configuration"]) => {
            ("GetClassificationExportConfiguration", "*".into())
        }
        _ => return (format!("{method} {path}"), "*".into()),
    };
    (name.to_owned(), resource)
}

/// The state machine an execution, map run or state machine ARN belongs to.
fn machine_of(resource: &str) -> Option<String> {
    let mut parts = resource.splitn(7, ':');
    let prefix: Vec<&str> = parts.by_ref().take(5).collect();
    let kind = parts.next()?;
    let name = parts.next()?.split(['/', ':']).next()?;
    match kind {
        "stateMachine" | "execution" | "mapRun" if prefix.len() == 5 => {
            Some(format!("{}:stateMachine:{name}", prefix.join(":")))
        }
        _ => None,
    }
}

/// The service's own `AccessDenied` reply.
fn denied_reply(service: &str, denied: &crate::iam::Denied) -> Reply {
    match service {
        "s3" => reply(
            403,
            &[("content-type", "application/xml".into())],
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>{}</Message></Error>",
                xml_escape(&denied.message)
            ),
        ),
        "sns" => reply(
            403,
            &[("content-type", "text/xml".into())],
            sns::error_xml(
                &SnsError {
                    code: "AuthorizationError",
                    status: 403,
                    message: denied.message.clone(),
                },
                "local",
            ),
        ),
        "macie2" => json_reply(
            403,
            "application/json",
            &json!({"message": denied.message}),
            Some("AccessDeniedException"),
        ),
        "kms" => json_reply(
            400,
            "application/x-amz-json-1.1",
            &json!({"__type": "AccessDeniedException", "message": denied.message}),
            Some("AccessDeniedException"),
        ),
        // Step Functions names a refusal of the state machine's key apart.
        "states" if denied.action.starts_with("kms:") => json_reply(
            400,
            "application/x-amz-json-1.0",
            &json!({"__type": "KmsAccessDeniedException", "message": denied.message}),
            Some("KmsAccessDeniedException"),
        ),
        _ => json_reply(
            400,
            "application/x-amz-json-1.0",
            &json!({"__type": "AccessDeniedException", "message": denied.message}),
            Some("AccessDeniedException"),
        ),
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Authorizes a signed request before the service sees it.
fn authorize(
    services: &Services,
    principal: &Principal,
    service: &str,
    parts: &http::request::Parts,
    body: &[u8],
    secure: bool,
) -> Result<(), crate::iam::Denied> {
    let iam = &services.iam;
    let path = parts.uri.path();
    let query = parts.uri.query();
    let single = |action: String, resource: String| {
        iam.authorize(
            principal,
            &action,
            &resource,
            crate::iam::evaluate::transport(secure),
        )
    };
    match service {
        "s3" => {
            let operation = s3_operation(&parts.method, path, query, &parts.headers);
            let checks = match crate::iam::s3::checks(operation, path, query, &parts.headers) {
                Ok(checks) => checks,
                // Operations outside the table reach the S3 service, which answers those it
                // does not implement; only the local user may send them.
                Err(_) if iam.is_local_user(principal) => {
                    return Ok(());
                }
                Err(err) => {
                    return Err(crate::iam::Denied {
                        principal: principal.caller.arn.clone(),
                        action: format!("s3:{operation}"),
                        resource: path.to_owned(),
                        message: err,
                    });
                }
            };
            for check in checks {
                let mut context = crate::iam::evaluate::transport(secure);
                context.extend(check.context);
                iam.authorize(principal, check.action, &check.resource, context)?;
            }
            // Reading an SSE-KMS object decrypts it with its key, on the caller's behalf.
            if let Some((bucket, key, version)) =
                crate::iam::s3::read_object(operation, path, query, &parts.headers)
                && let Ok(meta) = services
                    .store
                    .head_version(&bucket, &key, version.as_deref())
                && let Some(kms_key) = &meta.attributes.kms_key_id
            {
                let context = crate::s3::encryption::context_arn(
                    &bucket,
                    &key,
                    meta.attributes.kms_bucket_key,
                );
                iam.authorize(
                    principal,
                    "kms:Decrypt",
                    kms_key,
                    crate::s3::encryption::kms_context(secure, &context),
                )?;
            }
            // Writing one takes a data key from the key it is written with.
            for action in s3_write_key_actions(operation) {
                if let Some((bucket, key, write_key)) =
                    write_key(services, operation, path, &parts.headers)
                {
                    let context =
                        crate::s3::encryption::context_arn(&bucket, &key, write_key.bucket_key);
                    iam.authorize(
                        principal,
                        action,
                        &write_key.arn,
                        crate::s3::encryption::kms_context(secure, &context),
                    )?;
                }
            }
            Ok(())
        }
        "kms" => {
            let target = amz_target(&parts.headers);
            let operation = target.trim_start_matches("TrentService.");
            let resource = crate::kms::api::resource(&services.kms, operation, body);
            let mut context = crate::iam::evaluate::transport(secure);
            context.insert("kms:calleraccount".into(), vec![crate::aws::ACCOUNT.into()]);
            let input: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            if let Ok(pairs) = crate::kms::api::encryption_context(&input) {
                for (name, value) in pairs {
                    context.insert(
                        format!("kms:encryptioncontext:{}", name.to_ascii_lowercase()),
                        vec![value],
                    );
                }
            }
            iam.authorize(principal, &format!("kms:{operation}"), &resource, context)
        }
        "states" => {
            let target = amz_target(&parts.headers);
            let operation = target.trim_start_matches("AWSStepFunctions.");
            let input: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let resource = ["executionArn", "stateMachineArn", "mapRunArn"]
                .iter()
                .find_map(|field| input[*field].as_str())
                .unwrap_or("*")
                .to_owned();
            single(format!("states:{operation}"), resource.clone())?;
            // An encrypted state machine's data also takes its key, used on the caller's behalf.
            // A task token names no state machine; the local stack runs one.
            let machine = machine_of(&resource).or_else(|| {
                services
                    .engine
                    .machines()
                    .first()
                    .map(|machine| machine.arn.clone())
            });
            let Some(machine) = machine.and_then(|arn| services.engine.machine(&arn)) else {
                return Ok(());
            };
            match &machine.kms_key {
                Some(key) => iam.authorize_state_machine_key(
                    principal,
                    crate::iam::state_machine_key_actions(operation, &input),
                    key,
                    &machine.arn,
                    secure,
                ),
                None => Ok(()),
            }
        }
        "events" => {
            let input: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            match crate::events::api::operation(amz_target(&parts.headers), &input) {
                (operation, Some(resource)) => single(format!("events:{operation}"), resource),
                // PutEvents is authorized entry by entry, on each entry's bus.
                (_, None) => Ok(()),
            }
        }
        "sns" => {
            let fields: std::collections::BTreeMap<String, String> =
                form_urlencoded::parse(body).into_owned().collect();
            let action = fields.get("Action").cloned().unwrap_or_default();
            let resource = fields
                .get("TopicArn")
                .or_else(|| fields.get("TargetArn"))
                .cloned()
                .unwrap_or_else(|| "*".into());
            single(format!("sns:{action}"), resource)
        }
        "macie2" => {
            let (operation, resource) = macie_operation(&parts.method, path);
            single(format!("macie2:{operation}"), resource.clone())?;
            // Tags given on create are applied with TagResource, which needs its own grant.
            if operation == "CreateClassificationJob" {
                let input: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                if input["tags"]
                    .as_object()
                    .is_some_and(|tags| !tags.is_empty())
                {
                    single("macie2:TagResource".into(), resource)?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The error a fault rule injects, in the service's protocol.
fn fault_reply(service: &str, error: FaultError) -> Reply {
    let (status, code) = match (service, error) {
        ("s3", FaultError::InternalError) => (500, "InternalError"),
        ("s3", FaultError::Conflict) => (409, "ConditionalRequestConflict"),
        ("s3", _) => (503, "SlowDown"),
        ("macie2", FaultError::Throttling) => (429, "ThrottlingException"),
        ("macie2", _) => (500, "InternalServerException"),
        ("sns", FaultError::Throttling) => (429, "Throttled"),
        ("sns", _) => (500, "InternalError"),
        ("states", FaultError::Throttling) => (400, "ThrottlingException"),
        ("events", FaultError::Throttling) => (400, "ThrottlingException"),
        ("events", _) => (500, "InternalException"),
        (_, _) => (500, "ServiceUnavailable"),
    };
    match service {
        "s3" => reply(
            status,
            &[("content-type", "application/xml".into())],
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>Injected fault: {}</Message></Error>",
                if status == 409 {
                    "a conflicting operation occurred; retry the request."
                } else {
                    "please reduce your request rate."
                }
            ),
        ),
        "sns" => reply(
            status,
            &[("content-type", "text/xml".into())],
            sns::error_xml(
                &SnsError {
                    code: if code == "Throttled" {
                        "Throttled"
                    } else {
                        "InternalError"
                    },
                    status,
                    message: "Injected fault".into(),
                },
                "local",
            ),
        ),
        _ => json_reply(
            status,
            "application/json",
            &json!({"__type": code, "message": "Injected fault"}),
            Some(code),
        ),
    }
}

async fn read_body(body: Incoming) -> Result<Bytes, Reply> {
    body.collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|err| reply(400, &[], format!("could not read the request body: {err}")))
}

/// Serves one request.
pub async fn dispatch(
    services: Arc<Services>,
    request: Request<Incoming>,
) -> Result<Reply, Infallible> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let service = signing_service(&parts.headers, query.as_deref());

    if service.is_none() {
        let body = match read_body(body).await {
            Ok(body) => body,
            Err(reply) => return Ok(reply),
        };
        return Ok(unsigned(
            &services,
            &parts.method,
            &path,
            query.as_deref(),
            &parts.headers,
            &body,
        )
        .await);
    }
    let service = service.unwrap_or_default();
    let secure = parts
        .extensions
        .get::<Transport>()
        .is_some_and(|transport| transport.tls);
    let principal = services
        .iam
        .principal_for_key(access_key(&parts.headers, query.as_deref()).as_deref());
    if service == "s3" {
        let operation = s3_operation(&parts.method, &path, query.as_deref(), &parts.headers);
        if let Err(denied) = authorize(&services, &principal, "s3", &parts, &[], secure) {
            return Ok(denied_reply("s3", &denied));
        }
        if let Some(fault) = injected(&services.faults, "s3", operation).await {
            return Ok(fault);
        }
        let request = Request::from_parts(parts, s3s::Body::from(body));
        return Ok(match services.s3.call(request).await {
            Ok(response) => response,
            Err(err) => reply(500, &[], format!("S3 request failed: {err:?}")),
        });
    }
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(reply) => return Ok(reply),
    };
    if let Err(denied) = authorize(&services, &principal, &service, &parts, &body, secure) {
        return Ok(denied_reply(&service, &denied));
    }
    Ok(match service.as_str() {
        "states" => {
            let target = amz_target(&parts.headers).to_owned();
            let operation = target.trim_start_matches("AWSStepFunctions.").to_owned();
            if let Some(fault) = injected(&services.faults, "states", &operation).await {
                return Ok(fault);
            }
            let result = sfn_api::handle(&services.engine, &target, &body);
            json_reply(
                result.status,
                "application/x-amz-json-1.0",
                &result.body,
                result.error,
            )
        }
        "sns" => {
            if let Some(fault) = injected(&services.faults, "sns", "Publish").await {
                return Ok(fault);
            }
            let request_id = uuid::Uuid::new_v4().to_string();
            match sns::parse_form(&body).and_then(|request| services.sns.publish(request)) {
                Ok(id) => reply(
                    200,
                    &[("content-type", "text/xml".into())],
                    sns::success_xml(&id, &request_id),
                ),
                Err(err) => reply(
                    err.status,
                    &[("content-type", "text/xml".into())],
                    sns::error_xml(&err, &request_id),
                ),
            }
        }
        "macie2" => {
            if let Some(fault) = injected(
                &services.faults,
                "macie2",
                &macie_operation(&parts.method, &path).0,
            )
            .await
            {
                return Ok(fault);
            }
            match macie_api::route(&services.macie, &parts.method, &path, &body) {
                Ok(value) => json_reply(200, "application/json", &value, None),
                Err(err) => json_reply(
                    err.status,
                    "application/json",
                    &json!({"message": err.message}),
                    Some(err.code),
                ),
            }
        }
        "events" => {
            let target = amz_target(&parts.headers);
            let operation = target.trim_start_matches("AWSEvents.").to_owned();
            if let Some(fault) = injected(&services.faults, "events", &operation).await {
                return Ok(fault);
            }
            let result =
                crate::events::api::handle(&services.events, &principal, target, &body, secure);
            json_reply(
                result.status,
                "application/x-amz-json-1.1",
                &result.body,
                result.error,
            )
        }
        "sqs" => {
            let target = amz_target(&parts.headers);
            let operation = target.trim_start_matches("AmazonSQS.").to_owned();
            if let Some(fault) = injected(&services.faults, "sqs", &operation).await {
                return Ok(fault);
            }
            let result = crate::sqs::api::handle(
                &services.sqs,
                &services.iam,
                &principal,
                target,
                &body,
                secure,
            );
            json_reply(
                result.status,
                "application/x-amz-json-1.0",
                &result.body,
                result.error,
            )
        }
        "kms" => {
            let target = amz_target(&parts.headers);
            // Macie is enabled by the time the stack answers requests, so its role exists.
            let principals = crate::iam::KnownPrincipals {
                iam: &services.iam,
                macie_enabled: true,
            };
            let result = crate::kms::api::handle(&services.kms, target, &body, &principals);
            json_reply(
                result.status,
                "application/x-amz-json-1.1",
                &result.body,
                result.error,
            )
        }
        other => reply(
            400,
            &[],
            format!("the local stack does not serve the {other} service"),
        ),
    })
}

/// The webhook receiver: records a request and answers 200, or lists what it received.
fn webhook(
    services: &Services,
    method: &Method,
    name: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Reply {
    let hooks = &services.webhooks;
    let result = if *method == Method::GET {
        hooks
            .received(name)
            .map(|received| json!({"received": received}))
            .map_err(|err| err.to_string())
    } else {
        hooks
            .record(name, method.as_str(), query, headers, body)
            .map(|()| json!({"received": true}))
    };
    match result {
        Ok(body) => json_reply(200, "application/json", &body, None),
        Err(err) => json_reply(400, "application/json", &json!({"message": err}), None),
    }
}

async fn injected(faults: &Faults, service: &str, operation: &str) -> Option<Reply> {
    let decision = faults.decide(service, operation);
    if decision.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(decision.latency_ms)).await;
    }
    if decision.error == Some(FaultError::Crash) {
        // The caller dies before its request is carried out: it never sees an answer.
        faults.crash();
        tokio::time::sleep(Duration::from_secs(30)).await;
        return Some(fault_reply(service, FaultError::InternalError));
    }
    decision
        .error
        .filter(|e| *e != FaultError::None)
        .map(|error| fault_reply(service, error))
}

/// The approval API and the stack's controls.
async fn unsigned(
    services: &Services,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Reply {
    if services
        .api_routes
        .contains(&(method.as_str().to_owned(), path.to_owned()))
    {
        let response =
            approval::serve(&services.approval, method, path, query, headers, body).await;
        let (parts, body) = response.into_parts();
        return Response::from_parts(parts, s3s::Body::from(body));
    }
    if services.api_routes.iter().any(|(_, route)| route == path) {
        // What API Gateway answers for a method the template does not route.
        return json_reply(
            403,
            "application/json",
            &json!({"message": "Missing Authentication Token"}),
            None,
        );
    }
    if let Some(name) = path.strip_prefix(crate::events::webhooks::PREFIX) {
        return webhook(services, method, name, query, headers, body);
    }
    match path {
        "/_local/health" => json_reply(200, "application/json", &json!({"status": "ok"}), None),
        "/_local/faults" => match *method {
            Method::GET => json_reply(
                200,
                "application/json",
                &json!({"rules": services.faults.rules(), "injected": services.faults.injected()}),
                None,
            ),
            Method::DELETE => {
                services.faults.clear();
                json_reply(200, "application/json", &json!({"rules": []}), None)
            }
            Method::POST => match serde_json::from_slice::<FaultRule>(body)
                .map_err(|err| err.to_string())
                .and_then(|rule| services.faults.add(rule))
            {
                Ok(()) => json_reply(
                    200,
                    "application/json",
                    &json!({"rules": services.faults.rules()}),
                    None,
                ),
                Err(err) => json_reply(400, "application/json", &json!({"message": err}), None),
            },
            _ => reply(
                StatusCode::METHOD_NOT_ALLOWED.as_u16(),
                &[],
                "use GET, POST or DELETE",
            ),
        },
        "/" => reply(
            200,
            &[("content-type", "text/plain; charset=utf-8".into())],
            "macie-pipeline-local: S3, Macie2, SNS, EventBridge, KMS and Step Functions for signed requests; /review, /allow and /deny for reviewers; /_local/webhooks/<name> records what API destinations send.\n",
        ),
        _ => reply(
            403,
            &[("content-type", "text/plain; charset=utf-8".into())],
            "unsigned request: sign it with any AWS credentials (the local stack does not check them)\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executions_and_map_runs_name_their_state_machine() {
        let machine = "arn:aws:states:us-east-1:123456789012:stateMachine:gate";
        for resource in [
            machine.to_owned(),
            "arn:aws:states:us-east-1:123456789012:execution:gate:run-1".into(),
            "arn:aws:states:us-east-1:123456789012:mapRun:gate/moveRaw:5f1e:3".into(),
        ] {
            assert_eq!(
                machine_of(&resource).as_deref(),
                Some(machine),
                "{resource}"
            );
        }
        assert_eq!(machine_of("*"), None);
        assert_eq!(machine_of("arn:aws:s3:::bucket"), None);
    }

    #[test]
    fn the_credential_scope_names_the_service() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=local/20261128/us-east-1/macie2/aws4_request, SignedHeaders=host, Signature=x"
                .parse()
                .unwrap(),
        );
        assert_eq!(signing_service(&headers, None).as_deref(), Some("macie2"));
        assert_eq!(
            signing_service(
                &HeaderMap::new(),
                Some("X-Amz-Credential=local%2F20261128%2Fus-east-1%2Fs3%2Faws4_request")
            )
            .as_deref(),
            Some("s3")
        );
        assert_eq!(signing_service(&HeaderMap::new(), None), None);
    }

    #[test]
    fn s3_operations_are_recognised() {
        let none = HeaderMap::new();
        let mut copy = HeaderMap::new();
        copy.insert("x-amz-copy-source", "b/k".parse().unwrap());
        assert_eq!(
            s3_operation(&Method::PUT, "/b/k", None, &copy),
            "CopyObject"
        );
        assert_eq!(
            s3_operation(&Method::PUT, "/b/k", Some("partNumber=1&uploadId=u"), &copy),
            "UploadPartCopy"
        );
        assert_eq!(
            s3_operation(&Method::GET, "/b", Some("list-type=2"), &none),
            "ListObjectsV2"
        );
        assert_eq!(
            s3_operation(&Method::GET, "/b/k", Some("tagging"), &none),
            "GetObjectTagging"
        );
        assert_eq!(
            s3_operation(&Method::DELETE, "/b/k", None, &none),
            "DeleteObject"
        );
    }
}
