//! `bench`: the benchmark suite's command line. Every figure is printed as a table and as JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::bench::flow::{self, FlowReport};
use crate::bench::moves::{self, Endpoint, MoveCase, MoveOptions};
use crate::bench::transitions::{self, TransitionsCase};
use crate::stack::LocalStack;

use super::stack_args::{StackArgs, stack_config};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// The whole suite: transitions, the flow on both paths, and the move matrix.
    All(AllArgs),
    /// N mixed objects through a full run (with an approval when any is flagged).
    Flow(FlowArgs),
    /// Uploads with TriggerMode=ObjectCreated and nobody starting a run: upload to final
    /// bucket, and the runs and Macie jobs the uploads started.
    Arrivals(ArrivalsArgs),
    /// raw -> scan-stage move rate of the production pass, by object count and concurrency,
    /// against the local stack or any S3-compatible endpoint.
    Move(MoveArgs),
    /// Step Functions state transitions per run for Macie jobs of given lengths.
    Transitions(TransitionsArgs),
    /// One measured move pass in a process of its own (started by `bench move`).
    #[command(hide = true)]
    MoveWorker(MoveWorkerArgs),
}

#[derive(Args)]
pub struct FlowArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Objects in the run.
    #[arg(long, default_value_t = 1000)]
    objects: usize,
    /// One object in this many holds sensitive data (0: none, the clean path).
    #[arg(long, default_value_t = 10)]
    flag_every: usize,
    /// Print the figures as JSON only.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ArrivalsArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Object counts, one case each, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10000")]
    objects: Vec<usize>,
    /// Print the figures as JSON only.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Clone)]
pub struct MoveMatrix {
    /// Object counts, comma-separated.
    #[arg(
        long = "objects",
        value_delimiter = ',',
        default_value = "1000,10000,100000"
    )]
    sizes: Vec<usize>,
    /// Objects moved at once, comma-separated (the template's MoveConcurrency).
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
    concurrency: Vec<usize>,
    /// Size of each object.
    #[arg(long, default_value_t = 1024)]
    object_bytes: usize,
}

#[derive(Args)]
pub struct MoveArgs {
    #[command(flatten)]
    matrix: MoveMatrix,
    /// An S3-compatible endpoint to measure instead of a local stack, e.g. http://127.0.0.1:9000.
    /// Credentials and region come from the SDK's default chain (AWS_ACCESS_KEY_ID, ...). The
    /// benchmark creates two buckets per object count and deletes them afterwards.
    #[arg(long)]
    endpoint_url: Option<String>,
    /// Each handler invocation's time budget (Lambda's maximum by default).
    #[arg(long, default_value_t = 900.0)]
    budget_seconds: f64,
    /// Print the figures as JSON only.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Clone)]
pub struct TransitionsOptions {
    /// Macie job lengths, in minutes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,60")]
    job_minutes: Vec<f64>,
    /// The computed backoff poll's longest wait.
    #[arg(long, default_value_t = 300)]
    backoff_cap_seconds: u64,
    /// Step Functions Standard price, USD per 1,000 state transitions.
    #[arg(long, default_value_t = 0.025)]
    usd_per_thousand_transitions: f64,
}

#[derive(Args)]
pub struct TransitionsArgs {
    #[command(flatten)]
    stack: StackArgs,
    #[command(flatten)]
    options: TransitionsOptions,
    /// Print the figures as JSON only.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct AllArgs {
    #[command(flatten)]
    matrix: MoveMatrix,
    #[command(flatten)]
    transitions: TransitionsOptions,
    /// Objects in each of the two flow runs (clean path, review path).
    #[arg(long, default_value_t = 10_000)]
    flow_objects: usize,
    /// Where to write the JSON document as well as printing it.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

#[derive(Args)]
pub struct MoveWorkerArgs {
    #[arg(long)]
    endpoint_url: String,
    /// The local stack's certificate authority: sign as its local user and trust it.
    #[arg(long)]
    local_ca: Option<PathBuf>,
    #[arg(long)]
    from: String,
    #[arg(long)]
    to: String,
    #[arg(long)]
    concurrency: usize,
    #[arg(long)]
    budget_seconds: f64,
}

/// The stack settings a subcommand would get with no flags.
fn default_stack() -> StackArgs {
    #[derive(Parser)]
    struct Defaults {
        #[command(flatten)]
        stack: StackArgs,
    }
    Defaults::parse_from(["bench"]).stack
}

fn build() -> &'static str {
    if cfg!(debug_assertions) {
        "debug build: use --release for figures worth quoting"
    } else {
        "release build"
    }
}

fn to_json(value: &impl Serialize) -> Result<String, String> {
    serde_json::to_string_pretty(value).map_err(|err| err.to_string())
}

pub async fn run(command: BenchCommand) -> Result<ExitCode, String> {
    match command {
        BenchCommand::All(args) => all(args).await,
        BenchCommand::Flow(args) => {
            let report = flow_run(&args.stack, args.objects, args.flag_every).await?;
            if args.json {
                println!("{}", to_json(&report)?);
            } else {
                println!("Flow benchmark ({})", build());
                print!("{}", flow::table(&report));
            }
            Ok(flow_exit(&report))
        }
        BenchCommand::Arrivals(args) => {
            let mut reports = Vec::new();
            for objects in &args.objects {
                let mut temp = None;
                // A tenth of real time: the 60 s window lasts 6 s, Macie's start 12 s.
                let config = stack_config(&args.stack, 0.1, 0, &mut temp)?;
                reports.push(crate::bench::arrivals::run(config, *objects).await?);
            }
            if args.json {
                println!("{}", to_json(&reports)?);
            } else {
                println!("Arrivals with TriggerMode=ObjectCreated ({})", build());
                print!("{}", crate::bench::arrivals::table(&reports));
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Move(args) => {
            let cases = move_matrix(&args.matrix, args.endpoint_url, args.budget_seconds).await?;
            if args.json {
                println!("{}", to_json(&cases)?);
            } else {
                println!("raw -> scan-stage moves ({})", build());
                print!("{}", moves::table(&cases));
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Transitions(args) => {
            let cases = transitions_cases(&args.stack, &args.options).await?;
            if args.json {
                println!("{}", to_json(&cases)?);
            } else {
                println!("State transitions per clean run");
                print!("{}", transitions::table(&cases));
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::MoveWorker(args) => {
            let endpoint = Endpoint {
                url: args.endpoint_url,
                local: args
                    .local_ca
                    .as_ref()
                    .map(|path| {
                        std::fs::read_to_string(path)
                            .map_err(|err| format!("{}: {err}", path.display()))
                    })
                    .transpose()?,
            };
            let report = moves::worker(
                &endpoint,
                &args.from,
                &args.to,
                args.concurrency,
                Duration::from_secs_f64(args.budget_seconds),
            )
            .await?;
            println!(
                "{}",
                serde_json::to_string(&report).map_err(|err| err.to_string())?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn flow_run(
    stack: &StackArgs,
    objects: usize,
    flag_every: usize,
) -> Result<FlowReport, String> {
    let mut temp = None;
    let config = stack_config(stack, 0.001, 0, &mut temp)?;
    flow::run(config, objects, flag_every).await
}

fn flow_exit(report: &FlowReport) -> ExitCode {
    if report.status == "SUCCEEDED" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The move matrix against `endpoint_url`, or against a local stack started for it.
async fn move_matrix(
    matrix: &MoveMatrix,
    endpoint_url: Option<String>,
    budget_seconds: f64,
) -> Result<Vec<MoveCase>, String> {
    let worker = std::env::current_exe().map_err(|err| format!("this program's path: {err}"))?;
    let mut options = MoveOptions {
        endpoint: Endpoint {
            url: String::new(),
            local: None,
        },
        sizes: matrix.sizes.clone(),
        concurrencies: matrix.concurrency.clone(),
        object_bytes: matrix.object_bytes,
        worker: Some(worker),
        budget: Duration::from_secs_f64(budget_seconds),
    };
    if let Some(url) = endpoint_url {
        options.endpoint.url = url;
        return moves::run(&options).await;
    }
    let mut temp = None;
    let config = stack_config(&default_stack(), 0.001, 0, &mut temp)?;
    let stack = LocalStack::start(config).await?;
    options.endpoint = Endpoint {
        url: stack.endpoint().to_owned(),
        local: Some(stack.ca_pem().to_owned()),
    };
    let cases = moves::run(&options).await;
    stack.shutdown().await;
    cases
}

async fn transitions_cases(
    stack: &StackArgs,
    options: &TransitionsOptions,
) -> Result<Vec<TransitionsCase>, String> {
    let mut cases = Vec::new();
    for &minutes in &options.job_minutes {
        let mut temp = None;
        // Waits scaled by 0.01: an hour-long job takes 36 s, and each 60 s poll waits 600 ms,
        // so the few milliseconds a status check takes barely shift the count.
        let config = stack_config(stack, 0.01, 0, &mut temp)?;
        cases.push(
            transitions::measure(
                config,
                minutes,
                options.backoff_cap_seconds,
                options.usd_per_thousand_transitions,
            )
            .await?,
        );
    }
    Ok(cases)
}

/// Everything the suite measured, as one JSON document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Suite {
    build: &'static str,
    date: String,
    transitions: Vec<TransitionsCase>,
    flow_clean: FlowReport,
    flow_review: FlowReport,
    flow_review_distributed_map: FlowReport,
    moves: Vec<MoveCase>,
}

async fn all(args: AllArgs) -> Result<ExitCode, String> {
    let stack = default_stack();
    println!("Benchmark suite ({})\n", build());

    let transitions = transitions_cases(&stack, &args.transitions).await?;
    println!("State transitions per clean run");
    println!("{}", transitions::table(&transitions));

    let flow_clean = flow_run(&stack, args.flow_objects, 0).await?;
    println!("Flow, clean path ({} objects)", args.flow_objects);
    println!("{}", flow::table(&flow_clean));
    let flow_review = flow_run(&stack, args.flow_objects, 10).await?;
    println!(
        "Flow, review path ({} objects, one in ten flagged, approved)",
        args.flow_objects
    );
    println!("{}", flow::table(&flow_review));
    let mut map_stack = default_stack();
    map_stack
        .parameters
        .push("MovePath=DistributedMap".to_owned());
    let flow_review_distributed_map = flow_run(&map_stack, args.flow_objects, 10).await?;
    println!(
        "Flow, review path on the Distributed Map path ({} objects, as above)",
        args.flow_objects
    );
    println!("{}", flow::table(&flow_review_distributed_map));

    let moves = move_matrix(&args.matrix, None, 900.0).await?;
    println!("raw -> scan-stage moves, local stack");
    println!("{}", moves::table(&moves));

    let ok = [&flow_clean, &flow_review, &flow_review_distributed_map]
        .iter()
        .all(|report| report.status == "SUCCEEDED");
    let suite = Suite {
        build: build(),
        date: crate::clock::rfc3339_ms(crate::clock::now_ms()),
        transitions,
        flow_clean,
        flow_review,
        flow_review_distributed_map,
        moves,
    };
    let document = to_json(&suite)?;
    println!("{document}");
    if let Some(path) = &args.json_out {
        std::fs::write(path, &document)
            .map_err(|err| format!("writing {}: {err}", path.display()))?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
