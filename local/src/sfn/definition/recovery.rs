//! Retry and Catch of Task, Parallel and Map states, typed.

use super::fields::{Fields, invalid};
use crate::sfn::error::name_matches;
use crate::sfn::expr::reference::ResultPath;
use crate::sfn::expr::template::Template;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    None,
    Full,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u64,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    pub jitter: Jitter,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    pub result_path: ResultPath,
    pub assign: Option<Template>,
}

/// A state's Retry and Catch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recovery {
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

impl Retrier {
    pub fn matches(&self, error: &str) -> bool {
        self.error_equals
            .iter()
            .any(|name| name_matches(name, error))
    }

    /// The wait before retry number `attempt` (0-based), before jitter.
    pub fn delay(&self, attempt: u64) -> f64 {
        let delay = self.interval_seconds
            * self
                .backoff_rate
                .powi(i32::try_from(attempt).unwrap_or(i32::MAX));
        self.max_delay_seconds.map_or(delay, |cap| delay.min(cap))
    }
}

impl Catcher {
    pub fn matches(&self, error: &str) -> bool {
        self.error_equals
            .iter()
            .any(|name| name_matches(name, error))
    }
}

fn error_equals(fields: &Fields) -> Result<Vec<String>, String> {
    let names = fields.array("ErrorEquals")?.ok_or_else(|| {
        invalid(
            "SCHEMA_VALIDATION_FAILED",
            "These fields are required: [ErrorEquals]",
            &fields.at,
        )
    })?;
    let names = names
        .iter()
        .map(|name| name.as_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()
        .filter(|names| !names.is_empty())
        .ok_or_else(|| {
            invalid(
                "SCHEMA_VALIDATION_FAILED",
                "ErrorEquals must be a non-empty array of error names",
                &fields.at("ErrorEquals"),
            )
        })?;
    if names.len() > 1 && names.iter().any(|name| name == "States.ALL") {
        return Err(invalid(
            "SCHEMA_VALIDATION_FAILED",
            "States.ALL must appear alone in ErrorEquals",
            &fields.at("ErrorEquals"),
        ));
    }
    Ok(names)
}

/// `States.ALL` must be in the last retrier or catcher.
fn all_is_last(lists: &[&Vec<String>], at: &str) -> Result<(), String> {
    let last = lists.len().saturating_sub(1);
    match lists
        .iter()
        .position(|names| names.iter().any(|name| name == "States.ALL"))
    {
        Some(index) if index != last => Err(invalid(
            "SCHEMA_VALIDATION_FAILED",
            "States.ALL must be in the last retrier or catcher",
            at,
        )),
        _ => Ok(()),
    }
}

impl Recovery {
    pub fn parse(state: &Fields) -> Result<Self, String> {
        let mut recovery = Self::default();
        for (index, value) in state.array("Retry")?.into_iter().flatten().enumerate() {
            let fields = Fields::new(value, format!("{}/{index}", state.at("Retry")))?;
            fields.only(
                &[
                    "ErrorEquals",
                    "IntervalSeconds",
                    "MaxAttempts",
                    "BackoffRate",
                    "MaxDelaySeconds",
                    "JitterStrategy",
                    "Comment",
                ],
                "a retrier",
            )?;
            let backoff_rate = fields.number("BackoffRate")?.unwrap_or(2.0);
            if backoff_rate < 1.0 {
                return Err(invalid(
                    "SCHEMA_VALIDATION_FAILED",
                    "BackoffRate must be at least 1.0",
                    &fields.at("BackoffRate"),
                ));
            }
            let jitter = match fields.string("JitterStrategy")?.as_deref() {
                None | Some("NONE") => Jitter::None,
                Some("FULL") => Jitter::Full,
                Some(other) => {
                    return Err(invalid(
                        "SCHEMA_VALIDATION_FAILED",
                        format!("JitterStrategy must be NONE or FULL, not {other}"),
                        &fields.at("JitterStrategy"),
                    ));
                }
            };
            recovery.retry.push(Retrier {
                error_equals: error_equals(&fields)?,
                interval_seconds: fields.positive("IntervalSeconds")?.unwrap_or(1) as f64,
                max_attempts: fields.count("MaxAttempts")?.unwrap_or(3),
                backoff_rate,
                max_delay_seconds: fields.positive("MaxDelaySeconds")?.map(|s| s as f64),
                jitter,
            });
        }
        for (index, value) in state.array("Catch")?.into_iter().flatten().enumerate() {
            let fields = Fields::new(value, format!("{}/{index}", state.at("Catch")))?;
            fields.only(
                &["ErrorEquals", "Next", "ResultPath", "Assign", "Comment"],
                "a catcher",
            )?;
            recovery.catch.push(Catcher {
                error_equals: error_equals(&fields)?,
                next: fields.required_string("Next")?,
                result_path: fields.result_path()?,
                assign: fields.template("Assign")?,
            });
        }
        all_is_last(
            &recovery
                .retry
                .iter()
                .map(|r| &r.error_equals)
                .collect::<Vec<_>>(),
            &state.at("Retry"),
        )?;
        all_is_last(
            &recovery
                .catch
                .iter()
                .map(|c| &c.error_equals)
                .collect::<Vec<_>>(),
            &state.at("Catch"),
        )?;
        Ok(recovery)
    }
}
