//! The approval API on loopback: `/review`, `/allow` and `/deny` handed to the receiveApprovalDecision
//! handler as API Gateway REST proxy events, parsed by `lambda_http` exactly as in Lambda.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderMap, Method, Response};
use serde_json::{Value, json};

use macie_pipeline::handlers::receive_approval_decision::ReceiveApprovalDecision;

use crate::aws::ACCOUNT;
use crate::clock::now_ms;

/// The API Gateway stage the links carry in AWS (`/Prod/allow`); locally the paths are bare.
const STAGE: &str = "Prod";

/// The proxy event API Gateway would send for this request. Query parameters arrive decoded
/// (`+` as a space, `%XX` as the byte), as API Gateway decodes them.
pub fn proxy_event(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Value {
    let mut single = BTreeMap::new();
    let mut multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        single.insert(name.to_string(), value.to_string());
        multi
            .entry(name.to_string())
            .or_default()
            .push(value.to_string());
    }
    let mut header_map = BTreeMap::new();
    let mut multi_headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        let value = value.to_str().unwrap_or_default().to_owned();
        header_map.insert(name.to_string(), value.clone());
        multi_headers
            .entry(name.to_string())
            .or_default()
            .push(value);
    }
    let (body, encoded) = match std::str::from_utf8(body) {
        Ok(text) if !body.is_empty() => (Value::String(text.to_owned()), false),
        Ok(_) => (Value::Null, false),
        Err(_) => {
            use base64::Engine as _;
            (
                Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
                true,
            )
        }
    };
    let resource = ["/review", "/allow", "/deny"]
        .into_iter()
        .find(|resource| path.ends_with(resource))
        .unwrap_or("/review");
    // API Gateway reports the caller's user agent in the identity, as the record of a decision
    // keeps it.
    let user_agent = headers
        .get(http::header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map_or(Value::Null, |agent| Value::String(agent.to_owned()));
    json!({
        "resource": resource,
        "path": path,
        "httpMethod": method.as_str(),
        "headers": header_map,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": if single.is_empty() { Value::Null } else { json!(single) },
        "multiValueQueryStringParameters": if multi.is_empty() { Value::Null } else { json!(multi) },
        "pathParameters": null,
        "stageVariables": null,
        "requestContext": {
            "accountId": ACCOUNT,
            "resourceId": "local",
            "stage": STAGE,
            "requestId": uuid::Uuid::new_v4().to_string(),
            "identity": {"sourceIp": "127.0.0.1", "userAgent": user_agent},
            "resourcePath": resource,
            "httpMethod": method.as_str(),
            "path": format!("/{STAGE}{path}"),
            "apiId": "local",
            "protocol": "HTTP/1.1",
            "requestTimeEpoch": now_ms(),
        },
        "body": body,
        "isBase64Encoded": encoded,
    })
}

/// Serves one request through the handler.
pub async fn serve(
    handler: &ReceiveApprovalDecision,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response<Bytes> {
    let event = proxy_event(method, path, query, headers, body);
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(request) => request,
        Err(err) => {
            return Response::builder()
                .status(500)
                .body(Bytes::from(format!(
                    "could not build the API Gateway event: {err}"
                )))
                .expect("valid response");
        }
    };
    let response = handler.handle(request).await;
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Bytes::copy_from_slice(body.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_arrive_decoded_once() {
        let event = proxy_event(
            &Method::GET,
            "/allow",
            Some("token=a%2Bb%2F%3D"),
            &HeaderMap::new(),
            b"",
        );
        assert_eq!(event["queryStringParameters"]["token"], "a+b/=");
        assert_eq!(event["requestContext"]["path"], "/Prod/allow");
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        use lambda_http::RequestExt;
        assert_eq!(
            request.query_string_parameters().first("token"),
            Some("a+b/=")
        );
    }
}
