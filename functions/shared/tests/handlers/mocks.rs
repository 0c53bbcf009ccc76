//! Mock clients that record which operations a handler called, in order.

use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use macie_pipeline::deployment;

/// The operations called through the clients it is attached to.
#[derive(Clone, Debug, Default)]
pub struct Calls(Arc<Mutex<Vec<String>>>);

impl Intercept for Calls {
    fn name(&self) -> &'static str {
        "Calls"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(metadata) = cfg.load::<Metadata>() {
            self.0.lock().unwrap().push(metadata.name().to_owned());
        }
        Ok(())
    }
}

impl Calls {
    pub fn list(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn count(&self, operation: &str) -> usize {
        self.list().iter().filter(|op| *op == operation).count()
    }

    /// Fails if the function called anything its row in the deployment table does not list
    /// (so its IAM policy would not allow it either).
    pub fn assert_declared_for(&self, logical_id: &str) {
        let function = deployment::function(logical_id);
        for operation in self.list() {
            assert!(
                function.calls_operation(&operation),
                "{logical_id} called {operation}, which the deployment table does not grant it"
            );
        }
    }
}

/// A shared list for capturing requests inside mock closures.
#[derive(Clone, Debug)]
pub struct Captured<T>(Arc<Mutex<Vec<T>>>);

impl<T> Default for Captured<T> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<T: Clone> Captured<T> {
    pub fn push(&self, item: T) {
        self.0.lock().unwrap().push(item);
    }
    pub fn all(&self) -> Vec<T> {
        self.0.lock().unwrap().clone()
    }
}

/// An S3-style XML error response.
pub fn s3_error(status: u16, code: &str) -> HttpResponse {
    HttpResponse::new(
        status.try_into().unwrap(),
        SdkBody::from(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>mocked {code}</Message></Error>"
        )),
    )
}

/// A restJson1/awsJson-style error response.
pub fn json_error(status: u16, code: &str) -> HttpResponse {
    let mut response = HttpResponse::new(
        status.try_into().unwrap(),
        SdkBody::from(format!("{{\"message\":\"mocked {code}\"}}")),
    );
    response
        .headers_mut()
        .insert("x-amzn-ErrorType", code.to_owned());
    response
}

/// Builds a mock client of `$crate` with `$rules`, recording calls into `$calls`, retries off.
#[macro_export]
macro_rules! client {
    ($crate_name:ident, $calls:expr, [$($rule:expr),* $(,)?]) => {{
        let calls = $calls.clone();
        aws_smithy_mocks::mock_client!(
            $crate_name,
            aws_smithy_mocks::RuleMode::MatchAny,
            &[$(&$rule),*],
            move |builder: $crate_name::config::Builder| builder
                .interceptor(calls.clone())
                .retry_config(aws_smithy_types::retry::RetryConfig::disabled())
        )
    }};
}
