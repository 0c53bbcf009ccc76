//! Lambda entry point of moveAllScanStageS3Files: wires configuration and clients to the handler in `macie_pipeline`.

use aws_config::BehaviorVersion;
use macie_pipeline::FromEnv;
use macie_pipeline::config::RouteConfig;
use macie_pipeline::handlers::move_all_scan_stage_files::MoveAllScanStageFiles;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = RouteConfig::from_env()?;
    let aws = aws_config::load_defaults(BehaviorVersion::latest()).await;
    macie_pipeline::lambda::serve(MoveAllScanStageFiles::new(&aws, config)).await
}
