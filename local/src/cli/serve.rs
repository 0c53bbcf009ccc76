//! `serve`: the local stack until Ctrl-C, with how to use it from the AWS CLI.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::stack_args::{StackArgs, stack_config};
use crate::demo;
use crate::s3::SECRET_ACCESS_KEY;
use crate::stack::LocalStack;

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Start runs on the template's schedule (scaled by --time-scale).
    #[arg(long)]
    schedule: bool,
}

/// Serves until Ctrl-C, then shuts the stack down (saving its IAM usage).
pub async fn run(args: ServeArgs) -> Result<ExitCode, String> {
    let mut temp = None;
    let mut stack_args = args.stack.clone();
    if stack_args.data_dir.is_none() {
        stack_args.data_dir = Some(PathBuf::from(".macie-pipeline-local"));
    }
    let mut config = stack_config(&stack_args, 1.0, 4566, &mut temp)?;
    config.schedule = args.schedule;
    config.on_publish = Some(demo::email_printer());
    config.on_event = Some(demo::event_printer(true));
    let stack = LocalStack::start(config).await?;
    let deployment = stack.deployment();
    let endpoint = stack.endpoint();
    println!(
        "macie-pipeline-local serving {endpoint} (data in {})",
        stack.data_dir().display()
    );
    println!("State machine: {}", stack.state_machine_arn());
    println!(
        "Buckets:       {}",
        deployment
            .buckets
            .values()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "Emails:        printed here and written to {}",
        stack.outbox().display()
    );
    println!(
        "Events:        printed here and written to {} (one file per bus)",
        stack.data_dir().join("events").join("buses").display()
    );
    println!(
        "Webhooks:      {}/_local/webhooks/<name> records what API destinations send",
        stack.endpoint()
    );
    match (&deployment.schedule, args.schedule) {
        (Some(schedule), true) => println!(
            "Schedule:      {} (scaled by --time-scale)",
            schedule.expression
        ),
        (None, true) => println!("Schedule:      none (ScanSchedule=disabled)"),
        _ => {}
    }
    for pipe in &deployment.pipes {
        println!(
            "Trigger:       objects created in {} start runs, batched by {} (a run for each {} arrivals or {} s after the first, scaled by --time-scale)",
            deployment.bucket("DataPipelineRawBucket"),
            pipe.logical_id,
            pipe.batch_size,
            pipe.batching_window_seconds
        );
    }
    for rule in deployment.run_starting_rules() {
        println!(
            "Trigger:       events on the {} bus matching {} start runs ({})",
            rule.bus, rule.pattern, rule.logical_id
        );
    }
    let raw = deployment.bucket("DataPipelineRawBucket");
    let scanned = deployment.bucket("DataPipelineScannedDataBucket");
    println!();
    println!(
        "Use the AWS CLI against it, over HTTPS (its certificate authority is {}; the bucket policies deny plain HTTP):",
        stack.ca_path().display()
    );
    println!(
        "  export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY={SECRET_ACCESS_KEY} AWS_DEFAULT_REGION=us-east-1 AWS_CA_BUNDLE={}",
        stack.ca_path().display()
    );
    println!("  aws --endpoint-url {endpoint} s3 cp ./data.csv s3://{raw}/incoming/data.csv");
    println!(
        "  aws --endpoint-url {endpoint} stepfunctions start-execution --state-machine-arn {} --input '{{\"id\":\"manual-1\"}}'",
        stack.state_machine_arn()
    );
    println!(
        "  aws --endpoint-url {endpoint} stepfunctions describe-execution --execution-arn <arn from above>"
    );
    println!("  aws --endpoint-url {endpoint} s3 ls s3://{scanned}/ --recursive");
    println!(
        "  aws --endpoint-url {endpoint} s3api get-object-tagging --bucket {scanned} --key incoming/data.csv"
    );
    println!();
    tokio::signal::ctrl_c()
        .await
        .map_err(|err| err.to_string())?;
    println!("stopping");
    stack.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
