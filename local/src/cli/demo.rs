//! `demo`: the gate once on sample data, with a stack of its own.

use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::stack_args::{StackArgs, stack_config};
use crate::demo;

#[derive(Args)]
pub struct DemoArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Decide as the reviewer instead of waiting for a click in a browser.
    #[arg(long, value_enum)]
    decide: Option<DecideArg>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum DecideArg {
    Allow,
    Deny,
}

/// Runs the demo; fails (exit 1) when an object did not end where it should.
pub async fn run(args: DemoArgs) -> Result<ExitCode, String> {
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
