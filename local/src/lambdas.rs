//! The Lambda functions, in process. Each is built exactly as its `main.rs` builds it: its
//! configuration read from the environment the template sets for it, its SDK clients from an
//! `SdkConfig` (here pointed at the local stack). Invocations get a deadline from the function's
//! timeout, and a function error reaches the state machine as Lambda reports it: the error's
//! name as the error, the whole error payload as the cause.

use crate::faults::Faults;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_types::SdkConfig;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use macie_pipeline::config::{
    ApprovalConfig, DecisionConfig, DeleteConfig, FindingsConfig, ReleaseConfig, RouteConfig,
    StatusConfig, TriggerConfig,
};
use macie_pipeline::handlers::check_macie_status::CheckMacieStatus;
use macie_pipeline::handlers::delete_manual_review_files::DeleteManualReviewFiles;
use macie_pipeline::handlers::get_findings_count::GetFindingsCount;
use macie_pipeline::handlers::move_all_scan_stage_files::MoveAllScanStageFiles;
use macie_pipeline::handlers::move_to_scanned_data_files::MoveToScannedDataFiles;
use macie_pipeline::handlers::receive_approval_decision::ReceiveApprovalDecision;
use macie_pipeline::handlers::trigger_macie_scan::TriggerMacieScan;
use macie_pipeline::handlers::trigger_manual_approval::TriggerManualApproval;
use macie_pipeline::lambda::{Handler, invoke};
use macie_pipeline::{Deadline, FromEnv, PipelineError};

use crate::deployment::Deployment;
use crate::sfn::error::StatesError;

/// A JSON step function, whatever its input and output types.
trait Step: Send + Sync {
    fn call(
        &self,
        payload: Value,
        deadline: Deadline,
    ) -> BoxFuture<'_, Result<Value, PipelineError>>;
}

impl<H> Step for H
where
    H: Handler + Send + Sync,
    H::Input: Send,
    H::Output: Send,
{
    fn call(
        &self,
        payload: Value,
        deadline: Deadline,
    ) -> BoxFuture<'_, Result<Value, PipelineError>> {
        Box::pin(invoke(self, payload, deadline))
    }
}

struct Function {
    step: Arc<dyn Step>,
    timeout: Duration,
}

/// Changes to how functions run locally, for tests and experiments.
#[derive(Debug, Clone, Default)]
pub struct FunctionOverrides {
    /// Replaces every function's timeout (the deadline the handlers see).
    pub timeout: Option<Duration>,
    /// Replaces these variables in every function that has them.
    pub environment: BTreeMap<String, String>,
}

/// Every function of the deployment, ready to invoke.
pub struct Lambdas {
    functions: HashMap<String, Function>,
    approval: Arc<ReceiveApprovalDecision>,
    /// Injected crashes kill the invocations in flight.
    faults: Arc<Faults>,
}

fn configured<C: FromEnv>(name: &str, environment: &BTreeMap<String, String>) -> Result<C, String> {
    C::from_lookup(|variable| environment.get(variable).cloned())
        .map_err(|err| format!("{name}: {err}"))
}

impl Lambdas {
    pub fn build(
        deployment: &Deployment,
        aws: &SdkConfig,
        overrides: &FunctionOverrides,
        faults: Arc<Faults>,
    ) -> Result<Self, String> {
        let mut functions = HashMap::new();
        let mut approval = None;
        for (name, function) in &deployment.functions {
            // Each function signs with its own role's key, as each Lambda runs with its role.
            let own = aws
                .to_builder()
                .credentials_provider(aws_types::sdk_config::SharedCredentialsProvider::new(
                    aws_sdk_s3::config::Credentials::new(
                        crate::iam::access_key(name),
                        crate::s3::SECRET_ACCESS_KEY,
                        None,
                        None,
                        "macie-pipeline-local-role",
                    ),
                ))
                .build();
            let aws = &own;
            let mut environment = function.environment.clone();
            for (variable, value) in &overrides.environment {
                if environment.contains_key(variable) {
                    environment.insert(variable.clone(), value.clone());
                }
            }
            let step: Arc<dyn Step> = match name.as_str() {
                "TriggerMacieScan" => Arc::new(TriggerMacieScan::new(
                    aws,
                    configured::<TriggerConfig>(name, &environment)?,
                )),
                "CheckMacieStatus" => Arc::new(CheckMacieStatus::new(
                    aws,
                    configured::<StatusConfig>(name, &environment)?,
                )),
                "GetFindingsCount" => Arc::new(GetFindingsCount::new(
                    aws,
                    configured::<FindingsConfig>(name, &environment)?,
                )),
                "TriggerManualApproval" => Arc::new(TriggerManualApproval::new(
                    aws,
                    configured::<ApprovalConfig>(name, &environment)?,
                )),
                "MoveAllScanStageS3Files" => Arc::new(MoveAllScanStageFiles::new(
                    aws,
                    configured::<RouteConfig>(name, &environment)?,
                )),
                "MoveToScannedDataS3Files" => Arc::new(MoveToScannedDataFiles::new(
                    aws,
                    configured::<ReleaseConfig>(name, &environment)?,
                )),
                "DeleteManualReviewS3Files" => Arc::new(DeleteManualReviewFiles::new(
                    aws,
                    configured::<DeleteConfig>(name, &environment)?,
                )),
                "ReceiveApprovalDecision" => {
                    approval = Some(Arc::new(ReceiveApprovalDecision::new(
                        aws,
                        configured::<DecisionConfig>(name, &environment)?,
                    )));
                    continue;
                }
                other => {
                    return Err(format!(
                        "the template defines a function {other} the local stack does not know"
                    ));
                }
            };
            let timeout = overrides
                .timeout
                .unwrap_or(Duration::from_secs(function.timeout_seconds));
            functions.insert(name.clone(), Function { step, timeout });
        }
        Ok(Self {
            functions,
            approval: approval.ok_or("the template has no ReceiveApprovalDecision function")?,
            faults,
        })
    }

    /// The approval API's handler.
    pub fn approval(&self) -> Arc<ReceiveApprovalDecision> {
        Arc::clone(&self.approval)
    }

    /// Invokes a function by name or ARN, as Step Functions' Lambda integration does.
    pub fn invoke(
        self: &Arc<Self>,
        function: &str,
        payload: Value,
    ) -> BoxFuture<'static, Result<Value, StatesError>> {
        let name = function
            .rsplit_once(":function:")
            .map_or(function, |(_, rest)| rest)
            .split(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        let lambdas = Arc::clone(self);
        Box::pin(async move {
            let Some(function) = lambdas.functions.get(&name) else {
                return Err(StatesError::new(
                    "Lambda.ResourceNotFoundException",
                    format!("Function not found: {name}"),
                ));
            };
            let step = Arc::clone(&function.step);
            let timeout = function.timeout;
            let deadline = Deadline::after(timeout);
            let mut crashes = lambdas.faults.watch_crashes();
            crashes.mark_unchanged();
            let mut run = tokio::spawn(async move { step.call(payload, deadline).await });
            // The handler watches its deadline; a hard stop a little after it stands for Lambda
            // killing an invocation that overran.
            let outcome = tokio::select! {
                outcome = tokio::time::timeout(timeout + Duration::from_secs(2), &mut run) => outcome,
                _ = crashes.changed() => {
                    run.abort();
                    return Err(StatesError::new(
                        "Lambda.Unknown",
                        json!({"errorType": "Runtime.ExitError", "errorMessage": format!("The function {name} was killed (injected crash)")}).to_string(),
                    ));
                }
            };
            if outcome.is_err() {
                run.abort();
            }
            match outcome {
                Ok(Ok(Ok(output))) => Ok(output),
                Ok(Ok(Err(err))) => {
                    let payload = json!({"errorType": err.name(), "errorMessage": err.to_string()});
                    Err(StatesError::new(err.name(), payload.to_string()))
                }
                Ok(Err(join)) => Err(StatesError::new(
                    "Lambda.Unknown",
                    json!({"errorMessage": format!("The function {name} crashed: {join}")}).to_string(),
                )),
                Err(_) => Err(StatesError::new(
                    "Lambda.Unknown",
                    json!({"errorMessage": format!("Task timed out after {} seconds", timeout.as_secs())}).to_string(),
                )),
            }
        })
    }
}
