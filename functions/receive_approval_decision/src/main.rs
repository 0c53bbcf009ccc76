//! Lambda entry point of receiveApprovalDecision, the approval API behind API Gateway.

use aws_config::BehaviorVersion;
use macie_pipeline::FromEnv;
use macie_pipeline::config::DecisionConfig;
use macie_pipeline::handlers::receive_approval_decision::{ReceiveApprovalDecision, serve};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = DecisionConfig::from_env()?;
    let aws = aws_config::load_defaults(BehaviorVersion::latest()).await;
    serve(ReceiveApprovalDecision::new(&aws, config)).await
}
