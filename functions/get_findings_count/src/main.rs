//! Lambda entry point of getMacieFindingsCount: wires configuration and clients to the handler in `macie_pipeline`.

use aws_config::BehaviorVersion;
use macie_pipeline::FromEnv;
use macie_pipeline::config::FindingsConfig;
use macie_pipeline::handlers::get_findings_count::GetFindingsCount;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = FindingsConfig::from_env()?;
    let aws = aws_config::load_defaults(BehaviorVersion::latest()).await;
    macie_pipeline::lambda::serve(GetFindingsCount::new(&aws, config)).await
}
