//! Lambda entry point of triggerManualApproval: wires configuration and clients to the handler in `macie_pipeline`.

use aws_config::BehaviorVersion;
use macie_pipeline::FromEnv;
use macie_pipeline::config::ApprovalConfig;
use macie_pipeline::handlers::trigger_manual_approval::TriggerManualApproval;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = ApprovalConfig::from_env()?;
    let aws = aws_config::load_defaults(BehaviorVersion::latest()).await;
    macie_pipeline::lambda::serve(TriggerManualApproval::new(&aws, config)).await
}
