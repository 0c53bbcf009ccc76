//! The options every command that starts a local stack takes, and the stack settings they make.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::lambdas::FunctionOverrides;
use crate::macie::MacieOptions;
use crate::stack::StackConfig;

#[derive(Args, Clone)]
pub struct StackArgs {
    /// Where buckets, jobs, executions and emails are kept (kept between runs).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
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
    pub parameters: Vec<String>,
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

/// NAME=VALUE arguments as a map; `what` names the option in the error.
pub fn pairs(values: &[String], what: &str) -> Result<BTreeMap<String, String>, String> {
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
pub fn stack_config(
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
