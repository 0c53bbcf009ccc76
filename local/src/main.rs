//! `macie-pipeline-local`: the sensitive-data gate on one machine, no AWS account needed.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use macie_pipeline_local::cli::{bench, demo, fault, iam, scan, serve, states};

#[derive(Parser)]
#[command(
    name = "macie-pipeline-local",
    version,
    about = "The sensitive-data gate on one machine: S3, Macie, SNS, Step Functions and the approval API on loopback."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gate once on sample data, end to end, and show where every object ends up.
    Demo(demo::DemoArgs),
    /// Serve the local stack until stopped (Ctrl-C).
    Serve(serve::ServeArgs),
    /// Work with state machine definitions.
    States {
        #[command(subcommand)]
        command: states::StatesCommand,
    },
    /// Measure: a whole run's wall time, move rates by size and concurrency, billed state transitions.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Least privilege: what each role of the template was granted and what it used.
    Iam {
        #[command(subcommand)]
        command: iam::IamCommand,
    },
    /// Add, list or clear fault rules of a running stack.
    Fault {
        #[command(subcommand)]
        command: fault::FaultCommand,
    },
    /// Classify local files as Macie would, with the built-in classifier. Exits 0 when all are
    /// clean, 1 when any holds sensitive data, 3 when any could not be classified in full (and
    /// none holds sensitive data), 2 on bad arguments or definitions.
    Scan(scan::ScanArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_filter = match cli.command {
        Command::Serve(_) => "info,s3s=warn,aws=warn,hyper=warn",
        _ => "warn,s3s=error",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let outcome = match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::States { command } => states::run(command).await,
        Command::Bench { command } => bench::run(command).await,
        Command::Fault { command } => fault::run(command).await,
        Command::Iam { command } => iam::run(command),
        Command::Scan(args) => scan::run(args),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
