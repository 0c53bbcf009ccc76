//! Lambda entry point of checkMacieStatus: wires configuration and clients to the handler in `macie_pipeline`.

use aws_config::BehaviorVersion;
use macie_pipeline::FromEnv;
use macie_pipeline::config::StatusConfig;
use macie_pipeline::handlers::check_macie_status::CheckMacieStatus;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = StatusConfig::from_env()?;
    let aws = aws_config::load_defaults(BehaviorVersion::latest()).await;
    macie_pipeline::lambda::serve(CheckMacieStatus::new(&aws, config)).await
}
