//! What tasks call: the in-process Lambda functions and SNS, behind [`Integrations`], and the
//! results the Step Functions service integrations wrap them in.

use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::sfn::definition::state::Resource;
use crate::sfn::error::StatesError;

/// What tasks call.
pub trait Integrations: Send + Sync + 'static {
    /// Invokes a function; a function error comes back with its `errorType` as the error name
    /// and the whole error payload as the cause.
    fn invoke(
        &self,
        function: String,
        payload: Value,
    ) -> BoxFuture<'static, Result<Value, StatesError>>;
    /// Publishes to SNS with Publish's parameters; returns `{"MessageId": ...}`.
    fn publish(&self, parameters: Value) -> BoxFuture<'static, Result<Value, StatesError>>;
    /// Puts events with PutEvents' parameters (each entry's `Resources` already holds the
    /// execution and the state machine); returns PutEvents' response.
    fn put_events(&self, parameters: Value) -> BoxFuture<'static, Result<Value, StatesError>> {
        let _ = parameters;
        Box::pin(async {
            Err(StatesError::new(
                "EventBridge.AccessDeniedException",
                "no EventBridge is connected",
            ))
        })
    }
    /// Lists every object of `bucket` under `prefix`, in key order, as a Distributed Map's
    /// `s3:listObjectsV2` reader presents them (`Etag`, `Key`, `LastModified`, `Size`,
    /// `StorageClass`).
    fn list_objects(
        &self,
        bucket: String,
        prefix: String,
    ) -> BoxFuture<'static, Result<Vec<Value>, StatesError>>;
    /// Authorizes a call the state machine's role makes on its own behalf: starting,
    /// describing and stopping a Distributed Map's child executions.
    fn authorize(&self, action: &str, resource: &str) -> Result<(), StatesError> {
        let _ = (action, resource);
        Ok(())
    }
    /// Authorizes the state machine's role to encrypt and decrypt the execution data of
    /// `machine_arn` with `key` (a customer-managed key), as Step Functions does for it.
    fn use_key(&self, key: &str, machine_arn: &str) -> Result<(), StatesError> {
        let _ = (key, machine_arn);
        Ok(())
    }
}

/// The `resourceType` and `resource` a task's history events name.
pub fn describe(resource: &Resource) -> (&'static str, &'static str) {
    match resource {
        Resource::LambdaInvoke { .. } | Resource::Function(_) => ("lambda", "invoke"),
        Resource::SnsPublish => ("sns", "publish"),
        Resource::EventsPutEvents => ("events", "putEvents"),
    }
}

/// The execution a task runs in, which some integrations name in what they send.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub execution_arn: &'a str,
    pub machine_arn: &'a str,
}

/// Calls a task's resource with its parameters and returns the task result.
pub async fn call(
    integrations: &dyn Integrations,
    resource: &Resource,
    parameters: &Value,
    caller: Caller<'_>,
) -> Result<Value, StatesError> {
    match resource {
        Resource::LambdaInvoke { .. } => {
            let function = parameters["FunctionName"]
                .as_str()
                .ok_or_else(|| {
                    StatesError::runtime(format!(
                        "The Parameters '{parameters}' could not be used to start the Task: [The field 'FunctionName' must be a string]"
                    ))
                })?
                .to_owned();
            let payload = parameters.get("Payload").cloned().unwrap_or(Value::Null);
            let output = integrations.invoke(function, payload).await?;
            let request_id = uuid::Uuid::new_v4().to_string();
            Ok(json!({
                "ExecutedVersion": "$LATEST",
                "Payload": output,
                "SdkHttpMetadata": {"HttpHeaders": {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST", "x-amzn-RequestId": request_id}, "HttpStatusCode": 200},
                "SdkResponseMetadata": {"RequestId": request_id},
                "StatusCode": 200,
            }))
        }
        Resource::SnsPublish => {
            let published = integrations.publish(parameters.clone()).await?;
            let request_id = uuid::Uuid::new_v4().to_string();
            Ok(json!({
                "MessageId": published["MessageId"],
                "SdkHttpMetadata": {"HttpHeaders": {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, "HttpStatusCode": 200},
                "SdkResponseMetadata": {"RequestId": request_id},
            }))
        }
        Resource::EventsPutEvents => {
            // The optimized integration appends the execution and the state machine to each
            // entry's Resources, and fails the task when any entry failed.
            let mut parameters = parameters.clone();
            if let Some(entries) = parameters["Entries"].as_array_mut() {
                for entry in entries.iter_mut().filter(|entry| entry.is_object()) {
                    let mut resources = entry["Resources"].as_array().cloned().unwrap_or_default();
                    resources.push(json!(caller.execution_arn));
                    resources.push(json!(caller.machine_arn));
                    entry["Resources"] = Value::Array(resources);
                }
            }
            let response = integrations.put_events(parameters).await?;
            if response["FailedEntryCount"].as_u64().unwrap_or(0) > 0 {
                return Err(StatesError::new(
                    "EventBridge.FailedEntry",
                    response.to_string(),
                ));
            }
            let request_id = uuid::Uuid::new_v4().to_string();
            Ok(json!({
                "Entries": response["Entries"],
                "FailedEntryCount": 0,
                "SdkHttpMetadata": {"HttpHeaders": {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": request_id}, "HttpStatusCode": 200},
                "SdkResponseMetadata": {"RequestId": request_id},
            }))
        }
        // The legacy form returns only the function's output.
        Resource::Function(arn) => integrations.invoke(arn.clone(), parameters.clone()).await,
    }
}
