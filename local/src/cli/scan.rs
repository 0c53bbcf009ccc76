//! `scan`: local files classified as Macie would, with the built-in classifier.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::scan::{self, Format, ScanOptions, Verdict};

#[derive(Args)]
pub struct ScanArgs {
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

/// Classifies the files; the exit code says what was found (see `scan --help`).
pub fn run(args: ScanArgs) -> Result<ExitCode, String> {
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
