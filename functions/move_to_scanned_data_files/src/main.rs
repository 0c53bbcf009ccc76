//! Lambda entry point of moveToScannedDataS3Files: wires configuration and clients to the handler in `macie_pipeline`.

use aws_config::BehaviorVersion;
use macie_pipeline::FromEnv;
use macie_pipeline::config::ReleaseConfig;
use macie_pipeline::handlers::move_to_scanned_data_files::MoveToScannedDataFiles;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = ReleaseConfig::from_env()?;
    let aws = aws_config::load_defaults(BehaviorVersion::latest()).await;
    macie_pipeline::lambda::serve(MoveToScannedDataFiles::new(&aws, config)).await
}
