//! Lambda entry point of triggerMacieScan: wires configuration and clients to the handler in `macie_pipeline`.

use aws_config::BehaviorVersion;
use macie_pipeline::FromEnv;
use macie_pipeline::config::TriggerConfig;
use macie_pipeline::handlers::trigger_macie_scan::TriggerMacieScan;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = TriggerConfig::from_env()?;
    let aws = aws_config::load_defaults(BehaviorVersion::latest()).await;
    macie_pipeline::lambda::serve(TriggerMacieScan::new(&aws, config)).await
}
