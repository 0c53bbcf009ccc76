//! Lambda entry point of deleteManualReviewS3Files: wires configuration and clients to the handler in `macie_pipeline`.

use aws_config::BehaviorVersion;
use macie_pipeline::FromEnv;
use macie_pipeline::config::DeleteConfig;
use macie_pipeline::handlers::delete_manual_review_files::DeleteManualReviewFiles;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = DeleteConfig::from_env()?;
    let aws = aws_config::load_defaults(BehaviorVersion::latest()).await;
    macie_pipeline::lambda::serve(DeleteManualReviewFiles::new(&aws, config)).await
}
