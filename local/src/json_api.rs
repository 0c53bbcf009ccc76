//! A reply of the AWS JSON protocols the local services speak (Step Functions, KMS,
//! EventBridge): the status, the JSON body, and the error code the router puts in
//! `x-amzn-ErrorType`. Each service builds its own error bodies; the shape of a reply is one.

use serde_json::Value;

/// A response: status, body, and the error code for `x-amzn-ErrorType`.
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub error: Option<&'static str>,
}

impl Reply {
    /// A success with `body`.
    pub fn ok(body: Value) -> Self {
        Self {
            status: 200,
            body,
            error: None,
        }
    }
}

/// A request body as JSON: an empty body is `{}`; otherwise the message says what is wrong.
pub fn parse_body(body: &[u8]) -> Result<Value, String> {
    if body.is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_slice(body).map_err(|err| format!("the request is not JSON: {err}"))
}
