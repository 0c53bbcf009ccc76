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
