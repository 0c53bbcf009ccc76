//! `macie-pipeline-local`: the sensitive-data gate on one machine, no AWS account needed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::Value;

use macie_pipeline_local::client;
use macie_pipeline_local::demo;
use macie_pipeline_local::faults::{FaultError, FaultRule};
use macie_pipeline_local::lambdas::FunctionOverrides;
use macie_pipeline_local::macie::MacieOptions;
use macie_pipeline_local::s3::SECRET_ACCESS_KEY;
use macie_pipeline_local::sfn::definition::substitute::substitute;
use macie_pipeline_local::stack::{LocalStack, StackConfig};

mod bench_cli;

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
    Demo(DemoArgs),
    /// Serve the local stack until stopped (Ctrl-C).
    Serve(ServeArgs),
    /// Work with state machine definitions.
    States {
        #[command(subcommand)]
        command: StatesCommand,
    },
    /// Measure: a whole run's wall time, move rates by size and concurrency, billed state transitions.
    Bench {
        #[command(subcommand)]
        command: bench_cli::BenchCommand,
    },
    /// Least privilege: what each role of the template was granted and what it used.
    Iam {
        #[command(subcommand)]
        command: IamCommand,
    },
    /// Add, list or clear fault rules of a running stack.
    Fault {
        #[command(subcommand)]
        command: FaultCommand,
    },
    /// Classify local files as Macie would, with the built-in classifier. Exits 0 when all are
    /// clean, 1 when any holds sensitive data, 3 when any could not be classified in full (and
    /// none holds sensitive data), 2 on bad arguments or definitions.
    Scan(ScanArgs),
}

#[derive(Args)]
struct ScanArgs {
    /// Files or directories (walked recursively).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    format: ScanFormat,
    /// JSON array of custom data identifiers in CreateCustomDataIdentifier's shape.
    #[arg(long)]
    custom_identifiers: Option<PathBuf>,
    /// Allow-list file: one phrase per line; matches equal to a phrase are not findings.
    #[arg(long)]
    allow_words: Vec<PathBuf>,
    /// Allow-list regex: text it matches is not a finding.
    #[arg(long)]
    allow_regex: Vec<String>,
    /// Managed identifiers: ALL, NONE, INCLUDE:ID,ID... or EXCLUDE:ID,ID...
    #[arg(long, default_value = "ALL", value_parser = parse_selection)]
    managed: macie_classifier::Selection,
    /// Files larger than this (before or after decompression) are reported as not classified.
    #[arg(long, default_value_t = macie_classifier::DEFAULT_SIZE_LIMIT)]
    size_limit_bytes: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScanFormat {
    Table,
    Json,
}

fn parse_selection(text: &str) -> Result<macie_classifier::Selection, String> {
    use macie_classifier::Selection;
    let ids = |list: &str| -> Result<Vec<String>, String> {
        let ids: Vec<String> = list
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        match ids
            .iter()
            .find(|id| macie_classifier::identifier::managed(id).is_none())
        {
            Some(unknown) => Err(format!("{unknown} is not a managed data identifier")),
            None if ids.is_empty() => Err("list at least one managed data identifier".into()),
            None => Ok(ids),
        }
    };
    match text.split_once(':') {
        None if text.eq_ignore_ascii_case("all") || text.eq_ignore_ascii_case("recommended") => {
            Ok(Selection::All)
        }
        None if text.eq_ignore_ascii_case("none") => Ok(Selection::None),
        Some((kind, list)) if kind.eq_ignore_ascii_case("include") => {
            Ok(Selection::Include(ids(list)?))
        }
        Some((kind, list)) if kind.eq_ignore_ascii_case("exclude") => {
            Ok(Selection::Exclude(ids(list)?))
        }
        _ => Err(format!(
            "{text}: expected ALL, NONE, INCLUDE:ID,... or EXCLUDE:ID,..."
        )),
    }
}

fn scan(args: ScanArgs) -> Result<ExitCode, String> {
    use macie_pipeline_local::scan::{self, Format, ScanOptions, Verdict};
    let options = ScanOptions {
        paths: args.paths,
        format: match args.format {
            ScanFormat::Table => Format::Table,
            ScanFormat::Json => Format::Json,
        },
        custom_identifiers: args.custom_identifiers,
        allow_words: args.allow_words,
        allow_regexes: args.allow_regex,
        managed: args.managed,
        size_limit: args.size_limit_bytes,
    };
    let verdict = match scan::run(&options, &mut std::io::stdout().lock()) {
        Ok(verdict) => verdict,
        Err(err) => {
            // Not 1: that means "sensitive data found" to a CI gate.
            eprintln!("error: {err}");
            return Ok(ExitCode::from(2));
        }
    };
    Ok(match verdict {
        Verdict::Clean => ExitCode::SUCCESS,
        Verdict::Sensitive => ExitCode::from(1),
        Verdict::Unclassified => ExitCode::from(3),
    })
}

#[derive(Args, Clone)]
struct StackArgs {
    /// Where buckets, jobs, executions and emails are kept (kept between runs).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// 0 picks a free port.
    #[arg(long)]
    port: Option<u16>,
    /// Multiplies every workflow wait: 0.01 turns the 60 s poll into 0.6 s.
    #[arg(long)]
    time_scale: Option<f64>,
    /// Macie's job start-up delay, in workflow seconds.
    #[arg(long, default_value_t = 120.0)]
    macie_delay_seconds: f64,
    /// Objects larger than this (after gzip) are skipped by the local Macie with
    /// FILE_EXCEEDS_SIZE_LIMIT, and so held for review.
    #[arg(long, default_value_t = 20 * 1024 * 1024)]
    macie_size_limit_bytes: u64,
    /// Seconds (workflow time) after a job completes before its discovery results appear.
    #[arg(long, default_value_t = 0.0)]
    macie_results_delay_seconds: f64,
    /// Do not set Macie's discovery results location at start-up (runs then fail closed until
    /// it is set, e.g. with aws macie2 put-classification-export-configuration).
    #[arg(long)]
    no_discovery_results: bool,
    /// A template parameter, NAME=VALUE (repeatable), e.g. ApprovalTimeoutAction=deny.
    #[arg(long = "parameter", value_name = "NAME=VALUE")]
    parameters: Vec<String>,
    /// Overrides every function's timeout (the deadline handlers see).
    #[arg(long)]
    function_timeout_seconds: Option<f64>,
    /// Overrides a function environment variable, NAME=VALUE (repeatable).
    #[arg(long = "function-env", value_name = "NAME=VALUE")]
    function_env: Vec<String>,
    /// Deploy this template instead of the one built in, to try a changed template without
    /// rebuilding.
    #[arg(long, value_name = "PATH")]
    template: Option<PathBuf>,
    /// Do not enforce the template's permissions: requests IAM would deny are logged and let
    /// through.
    #[arg(long)]
    no_iam: bool,
}

#[derive(Args)]
struct DemoArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Decide as the reviewer instead of waiting for a click in a browser.
    #[arg(long, value_enum)]
    decide: Option<DecideArg>,
}

#[derive(Clone, Copy, ValueEnum)]
enum DecideArg {
    Allow,
    Deny,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Start runs on the template's schedule (scaled by --time-scale).
    #[arg(long)]
    schedule: bool,
}

#[derive(Subcommand)]
enum StatesCommand {
    /// Run a definition (e.g. a changed statemachine/macie_pipeline_scan.asl.json) on the local handlers.
    Run {
        #[command(flatten)]
        stack: StackArgs,
        /// The ASL file; its ${Name} substitutions get the template's values.
        #[arg(long)]
        definition: PathBuf,
        /// The execution input (JSON).
        #[arg(long, default_value = "{}")]
        input: String,
        /// An extra or replaced substitution, NAME=VALUE (repeatable).
        #[arg(long = "substitution", value_name = "NAME=VALUE")]
        substitutions: Vec<String>,
        /// `text` prints each state as it is entered and the emails sent; `json` prints only
        /// the outcome, as one JSON object: status, and output or error and cause.
        #[arg(long, value_enum, default_value = "text")]
        output: RunOutput,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RunOutput {
    Text,
    Json,
}

#[derive(Subcommand)]
enum IamCommand {
    /// Lists per role the actions it used and the grants no request needed. Reads the usage a
    /// stack writes at shutdown (`<data-dir>/iam-usage.json`), or every file in a directory
    /// such as the one the test suite fills (`MACIE_PIPELINE_LOCAL_IAM_USAGE`).
    Report {
        /// Usage files or directories of them.
        #[arg(required = true)]
        usage: Vec<PathBuf>,
        /// The template the usage was recorded with (the built-in one by default).
        #[arg(long, value_name = "PATH")]
        template: Option<PathBuf>,
        /// Exit 1 if a grant was never used and `local/src/iam/unused-grants.yaml` gives no
        /// reason for it.
        #[arg(long)]
        check: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum FaultCommand {
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
enum ErrorArg {
    InternalError,
    SlowDown,
    Throttling,
    None,
    /// Kill the Lambda invocations in flight before the request is carried out.
    Crash,
    /// S3: 409 ConditionalRequestConflict, as for a conditional write that raced another.
    Conflict,
}

fn pairs(values: &[String], what: &str) -> Result<BTreeMap<String, String>, String> {
    values
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("{what} {pair:?} is not NAME=VALUE"))
        })
        .collect()
}

/// The stack settings from the command line; `temp` holds a temporary data directory.
fn stack_config(
    args: &StackArgs,
    default_scale: f64,
    default_port: u16,
    temp: &mut Option<tempfile::TempDir>,
) -> Result<StackConfig, String> {
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("macie-pipeline-local-")
                .tempdir()
                .map_err(|err| format!("temporary directory: {err}"))?;
            let path = dir.path().to_owned();
            *temp = Some(dir);
            path
        }
    };
    let mut config = StackConfig::new(data_dir);
    config.host = args.host;
    config.port = args.port.unwrap_or(default_port);
    config.time_scale = args.time_scale.unwrap_or(default_scale);
    config.macie = MacieOptions {
        startup_delay_seconds: args.macie_delay_seconds,
        size_limit_bytes: args.macie_size_limit_bytes,
        results_delay_seconds: args.macie_results_delay_seconds,
    };
    config.configure_discovery_results = !args.no_discovery_results;
    config.parameters = pairs(&args.parameters, "--parameter")?;
    config.functions = FunctionOverrides {
        timeout: args.function_timeout_seconds.map(Duration::from_secs_f64),
        environment: pairs(&args.function_env, "--function-env")?,
    };
    config.enforce_iam = !args.no_iam;
    config.template = args
        .template
        .as_ref()
        .map(|path| {
            std::fs::read_to_string(path).map_err(|err| format!("{}: {err}", path.display()))
        })
        .transpose()?;
    Ok(config)
}

/// Prints each state an execution enters (all executions when `only` is None).
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
        Command::Demo(args) => run_demo(args).await,
        Command::Serve(args) => serve(args).await,
        Command::States {
            command:
                StatesCommand::Run {
                    stack,
                    definition,
                    input,
                    substitutions,
                    output,
                },
        } => run_definition(stack, definition, input, substitutions, output).await,
        Command::Bench { command } => bench_cli::run(command).await,
        Command::Fault { command } => fault(command).await,
        Command::Iam {
            command:
                IamCommand::Report {
                    usage,
                    template,
                    check,
                    json,
                },
        } => iam_report(&usage, template.as_deref(), check, json),
        Command::Scan(args) => scan(args),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run_demo(args: DemoArgs) -> Result<ExitCode, String> {
    let mut temp = None;
    let config = stack_config(&args.stack, 0.01, 0, &mut temp)?;
    let decide = args.decide.map(|decide| match decide {
        DecideArg::Allow => demo::Decision::Approve,
        DecideArg::Deny => demo::Decision::Deny,
    });
    let succeeded = demo::run(config, decide, temp.is_some()).await?;
    Ok(if succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn serve(args: ServeArgs) -> Result<ExitCode, String> {
    let mut temp = None;
    let mut stack_args = args.stack.clone();
    if stack_args.data_dir.is_none() {
        stack_args.data_dir = Some(PathBuf::from(".macie-pipeline-local"));
    }
    let mut config = stack_config(&stack_args, 1.0, 4566, &mut temp)?;
    config.schedule = args.schedule;
    config.on_publish = Some(demo::email_printer());
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
    if args.schedule {
        println!(
            "Schedule:      {} (scaled by --time-scale)",
            deployment.schedule
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

fn iam_report(
    paths: &[PathBuf],
    template: Option<&std::path::Path>,
    check: bool,
    json: bool,
) -> Result<ExitCode, String> {
    use macie_pipeline_local::deployment::{Deployment, TEMPLATE};
    use macie_pipeline_local::iam::{Iam, report};
    let template = match template {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|err| format!("{}: {err}", path.display()))?
        }
        None => TEMPLATE.to_owned(),
    };
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries =
                std::fs::read_dir(path).map_err(|err| format!("{}: {err}", path.display()))?;
            for entry in entries {
                let entry = entry.map_err(|err| err.to_string())?.path();
                if entry.extension().is_some_and(|ext| ext == "json") {
                    files.push(entry);
                }
            }
        } else {
            files.push(path.clone());
        }
    }
    if files.is_empty() {
        return Err("no usage files found".into());
    }
    let mut merged = report::Usage::default();
    let mut parameter_sets = Vec::new();
    for file in &files {
        let usage = report::Usage::read(file)?;
        if !parameter_sets.contains(&usage.parameters) {
            parameter_sets.push(usage.parameters.clone());
        }
        merged.merge(&usage);
    }
    let mut iams = Vec::new();
    for parameters in &parameter_sets {
        let deployment = Deployment::resolve(&template, parameters, "http://127.0.0.1")?;
        iams.push(Iam::from_deployment(&deployment, true)?);
    }
    let reports = report::build(&iams, &merged);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).map_err(|err| err.to_string())?
        );
    } else {
        println!(
            "IAM usage from {} file(s), {} parameter set(s)",
            files.len(),
            parameter_sets.len()
        );
        print!("{}", report::render(&reports));
    }
    let unexplained = reports
        .iter()
        .flat_map(|r| &r.unused)
        .filter(|u| u.reason.is_none())
        .count();
    let denied: u64 = reports
        .iter()
        .flat_map(|r| r.used.values())
        .map(|[_, denied]| denied)
        .sum();
    eprintln!("{unexplained} unused grant(s) without a reason; {denied} request(s) denied");
    if check && unexplained > 0 {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_definition(
    args: StackArgs,
    definition: PathBuf,
    input: String,
    substitutions: Vec<String>,
    output: RunOutput,
) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(&definition)
        .map_err(|err| format!("{}: {err}", definition.display()))?;
    let input: Value =
        serde_json::from_str(&input).map_err(|err| format!("--input is not JSON: {err}"))?;
    let mut temp = None;
    let mut config = stack_config(&args, 0.01, 0, &mut temp)?;
    let start = Instant::now();
    if output == RunOutput::Text {
        config.observer = Some(demo::state_printer(start));
        config.on_publish = Some(demo::email_printer());
    }
    let stack = LocalStack::start(config).await?;
    let mut values = stack.deployment().substitutions.clone();
    values.extend(pairs(&substitutions, "--substitution")?);
    let substituted = substitute(&text, &values)?;
    let arn = stack.engine().register(
        "custom",
        &substituted,
        "arn:aws:iam::000000000000:role/local",
    )?;
    if output == RunOutput::Text {
        println!("Running {} on the local handlers:", definition.display());
    }
    let (execution, _) = stack
        .engine()
        .start(&arn, Some("run"), Some(&input.to_string()))
        .map_err(|err| format!("{err:?}"))?;
    let record = loop {
        let record = stack
            .engine()
            .describe(&execution)
            .ok_or("the execution disappeared")?;
        if record.status != "RUNNING" {
            break record;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    if output == RunOutput::Json {
        let mut outcome = serde_json::json!({"status": record.status});
        for (field, value) in [
            ("output", record.output.clone()),
            ("error", record.error.clone().map(Value::String)),
            ("cause", record.cause.clone().map(Value::String)),
        ] {
            if let Some(value) = value {
                outcome[field] = value;
            }
        }
        println!("{outcome}");
    } else {
        println!();
        println!(
            "{} after {:.2} s",
            record.status,
            start.elapsed().as_secs_f64()
        );
        if let Some(output) = &record.output {
            println!(
                "output: {}",
                serde_json::to_string_pretty(output).unwrap_or_default()
            );
        }
        if let Some(error) = &record.error {
            println!(
                "error:  {error}\ncause:  {}",
                record.cause.as_deref().unwrap_or_default()
            );
        }
    }
    stack.shutdown().await;
    Ok(if record.status == "SUCCEEDED" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn fault(command: FaultCommand) -> Result<ExitCode, String> {
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
