//! `states run`: a state machine definition run on the local handlers.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Subcommand, ValueEnum};
use serde_json::Value;

use super::stack_args::{StackArgs, pairs, stack_config};
use crate::demo;
use crate::sfn::definition::substitute::substitute;
use crate::stack::LocalStack;

#[derive(Subcommand)]
pub enum StatesCommand {
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

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunOutput {
    Text,
    Json,
}

/// Runs a `states` command.
pub async fn run(command: StatesCommand) -> Result<ExitCode, String> {
    match command {
        StatesCommand::Run {
            stack,
            definition,
            input,
            substitutions,
            output,
        } => run_definition(stack, definition, input, substitutions, output).await,
    }
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
        config.on_event = Some(demo::event_printer(false));
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
