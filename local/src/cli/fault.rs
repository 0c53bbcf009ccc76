//! `fault`: add, list or clear the fault rules of a running stack, over its `/_local/faults` API.

use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use crate::client;
use crate::faults::{FaultError, FaultRule};

#[derive(Subcommand)]
pub enum FaultCommand {
    /// Make matching requests fail.
    Add {
        #[arg(long, default_value = "http://127.0.0.1:4566")]
        endpoint: String,
        /// s3, macie2, sns, states or *.
        #[arg(long)]
        service: String,
        /// e.g. CopyObject, CreateClassificationJob, Publish; all if absent.
        #[arg(long)]
        operation: Option<String>,
        #[arg(long, value_enum, default_value = "slow-down")]
        error: ErrorArg,
        /// Fail only the next N matching requests.
        #[arg(long)]
        count: Option<u64>,
        /// Fail each matching request with this probability.
        #[arg(long)]
        probability: Option<f64>,
        /// Delay matching requests.
        #[arg(long)]
        latency_ms: Option<u64>,
    },
    /// Show the rules and how many errors were injected.
    List {
        #[arg(long, default_value = "http://127.0.0.1:4566")]
        endpoint: String,
    },
    /// Remove every rule.
    Clear {
        #[arg(long, default_value = "http://127.0.0.1:4566")]
        endpoint: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ErrorArg {
    InternalError,
    SlowDown,
    Throttling,
    None,
    /// Kill the Lambda invocations in flight before the request is carried out.
    Crash,
    /// S3: 409 ConditionalRequestConflict, as for a conditional write that raced another.
    Conflict,
}

/// Sends a fault command to the stack and prints its answer.
pub async fn run(command: FaultCommand) -> Result<ExitCode, String> {
    let response = match command {
        FaultCommand::Add {
            endpoint,
            service,
            operation,
            error,
            count,
            probability,
            latency_ms,
        } => {
            let rule = FaultRule {
                service,
                operation,
                error: match error {
                    ErrorArg::InternalError => FaultError::InternalError,
                    ErrorArg::SlowDown => FaultError::SlowDown,
                    ErrorArg::Throttling => FaultError::Throttling,
                    ErrorArg::None => FaultError::None,
                    ErrorArg::Crash => FaultError::Crash,
                    ErrorArg::Conflict => FaultError::Conflict,
                },
                count,
                probability,
                latency_ms,
            };
            let body = serde_json::to_string(&rule).map_err(|err| err.to_string())?;
            client::post_json(
                &format!("{}/_local/faults", endpoint.trim_end_matches('/')),
                &body,
            )
            .await
        }
        FaultCommand::List { endpoint } => {
            client::get(&format!("{}/_local/faults", endpoint.trim_end_matches('/'))).await
        }
        FaultCommand::Clear { endpoint } => {
            client::delete(&format!("{}/_local/faults", endpoint.trim_end_matches('/'))).await
        }
    };
    println!("{}", response.body());
    Ok(if response.status().is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
