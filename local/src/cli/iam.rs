//! `iam report`: per role, the actions the suite or a stack used and the grants none needed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use crate::deployment::{Deployment, TEMPLATE};
use crate::iam::{Iam, report};

#[derive(Subcommand)]
pub enum IamCommand {
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

/// Runs an `iam` command.
pub fn run(command: IamCommand) -> Result<ExitCode, String> {
    match command {
        IamCommand::Report {
            usage,
            template,
            check,
            json,
        } => iam_report(&usage, template.as_deref(), check, json),
    }
}

fn iam_report(
    paths: &[PathBuf],
    template: Option<&Path>,
    check: bool,
    json: bool,
) -> Result<ExitCode, String> {
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
