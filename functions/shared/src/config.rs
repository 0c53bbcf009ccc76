//! Configuration from environment variables, validated once per cold start. Every function's
//! settings are read through [`EnvReader`], which reports all missing or invalid variables in one
//! error and records which names were read (a test checks them against `template.yaml`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::false_positives::allow_lists::GateAllowLists;
use crate::macie::cost::MicroUsdPerGb;
use crate::macie::job::JobSettings;
use crate::macie::severity::Severity;

/// Configuration that cannot be used, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub missing: Vec<&'static str>,
    pub invalid: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration:")?;
        if !self.missing.is_empty() {
            write!(
                f,
                " missing environment variables {}",
                self.missing.join(", ")
            )?;
        }
        for problem in &self.invalid {
            write!(f, "; {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Looks a variable up by name.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Reads variables from a lookup (the process environment, or a map in tests and the local stack).
pub struct EnvReader<'a> {
    lookup: Lookup<'a>,
    read: Vec<&'static str>,
    missing: Vec<&'static str>,
    invalid: Vec<String>,
}

impl<'a> EnvReader<'a> {
    /// Reads the process environment.
    pub fn process() -> EnvReader<'static> {
        EnvReader::from_fn(|name| std::env::var(name).ok())
    }

    /// Reads through `lookup`.
    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self {
            lookup: Box::new(lookup),
            read: Vec::new(),
            missing: Vec::new(),
            invalid: Vec::new(),
        }
    }

    /// Names read so far, in order.
    pub fn names_read(&self) -> &[&'static str] {
        &self.read
    }

    fn get(&mut self, name: &'static str) -> Option<String> {
        if !self.read.contains(&name) {
            self.read.push(name);
        }
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    /// A variable that must be set.
    pub fn required(&mut self, name: &'static str) -> String {
        self.get(name).unwrap_or_else(|| {
            self.missing.push(name);
            String::new()
        })
    }

    /// A variable that falls back to `default` when unset; a value that does not parse is an error.
    pub fn optional<T>(&mut self, name: &'static str, default: T) -> T
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.get(name) {
            None => default,
            Some(raw) => raw.trim().parse().unwrap_or_else(|err| {
                self.invalid.push(format!("{name}={raw:?}: {err}"));
                default
            }),
        }
    }

    /// A number that must lie within `range`.
    pub fn bounded(
        &mut self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> u64 {
        let value = self.optional(name, default);
        if !range.contains(&value) {
            self.invalid.push(format!(
                "{name}={value} is outside {}..={}",
                range.start(),
                range.end()
            ));
            return default;
        }
        value
    }

    /// A comma-separated list; empty entries are ignored.
    pub fn list(&mut self, name: &'static str) -> Vec<String> {
        self.get(name)
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Records a problem found while combining variables.
    pub fn reject(&mut self, problem: String) {
        self.invalid.push(problem);
    }

    /// Ends reading: an error naming every problem, or success.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.missing.is_empty() && self.invalid.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                missing: self.missing,
                invalid: self.invalid,
            })
        }
    }
}

/// Implemented by each function's settings.
pub trait FromEnv: Sized {
    /// Reads every variable the function uses (all of them, even after a failure, so that one
    /// error names every problem).
    fn read(env: &mut EnvReader<'_>) -> Self;

    /// Reads from the process environment.
    fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads through `lookup`.
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = EnvReader::from_fn(lookup);
        let config = Self::read(&mut env);
        env.finish().map(|()| config)
    }

    /// The variable names this configuration reads.
    fn variable_names() -> Vec<&'static str> {
        let mut env = EnvReader::from_fn(|_| None);
        let _ = Self::read(&mut env);
        env.names_read().to_vec()
    }
}

const GIB: u64 = 1024 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;

/// How objects are moved between buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveSettings {
    /// Objects moved at the same time.
    pub concurrency: usize,
    /// Objects larger than this are copied in parts (CopyObject stops at 5 GiB).
    pub multipart_threshold: u64,
    /// Size of each copied part; raised automatically so an object needs at most 10,000 parts.
    pub part_size: u64,
    /// Stop taking new objects when less than this is left before the Lambda deadline.
    pub deadline_margin: Duration,
}

impl Default for MoveSettings {
    fn default() -> Self {
        Self {
            concurrency: 32,
            multipart_threshold: 5 * GIB,
            part_size: 512 * MIB,
            deadline_margin: Duration::from_secs(60),
        }
    }
}

impl FromEnv for MoveSettings {
    fn read(env: &mut EnvReader<'_>) -> Self {
        let defaults = Self::default();
        let concurrency = env.bounded("MOVE_CONCURRENCY", defaults.concurrency as u64, 1..=256);
        Self {
            concurrency: usize::try_from(concurrency).unwrap_or(defaults.concurrency),
            multipart_threshold: env.bounded(
                "MULTIPART_COPY_THRESHOLD_BYTES",
                defaults.multipart_threshold,
                1..=5 * GIB,
            ),
            part_size: env.bounded(
                "MULTIPART_PART_SIZE_BYTES",
                defaults.part_size,
                5 * MIB..=5 * GIB,
            ),
            deadline_margin: Duration::from_secs(env.bounded(
                "DEADLINE_MARGIN_SECONDS",
                defaults.deadline_margin.as_secs(),
                1..=600,
            )),
        }
    }
}

/// triggerMacieScan: raw -> scan-stage, then the Macie job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerConfig {
    pub raw_bucket: String,
    pub scan_stage_bucket: String,
    pub account_id: String,
    /// The pipeline buckets' KMS key (`BucketEncryption=SSE-KMS`); empty with SSE-S3.
    pub bucket_kms_key: String,
    pub job: JobSettings,
    pub moves: MoveSettings,
}

impl TriggerConfig {
    /// Whether `kms_key` (an object's key ARN, as S3 reports it) is the pipeline buckets' own.
    pub fn is_bucket_key(&self, kms_key: &str) -> bool {
        !self.bucket_kms_key.is_empty() && self.bucket_kms_key == kms_key
    }
}

impl FromEnv for TriggerConfig {
    fn read(env: &mut EnvReader<'_>) -> Self {
        Self {
            raw_bucket: env.required("RAW_BUCKET"),
            scan_stage_bucket: env.required("SCAN_STAGE_BUCKET"),
            account_id: env.required("ACCOUNT_ID"),
            bucket_kms_key: env.optional("BUCKET_KMS_KEY_ARN", String::new()),
            job: JobSettings::read(env),
            moves: MoveSettings::read(env),
        }
    }
}

/// checkMacieStatus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusConfig {
    /// A job still unfinished this long after it was created fails the run.
    pub job_timeout: Duration,
}

impl FromEnv for StatusConfig {
    fn read(env: &mut EnvReader<'_>) -> Self {
        Self {
            job_timeout: Duration::from_secs(env.bounded(
                "MACIE_JOB_TIMEOUT_SECONDS",
                86_400,
                60..=30 * 86_400,
            )),
        }
    }
}

/// getMacieFindingsCount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingsConfig {
    pub scan_stage_bucket: String,
    pub manifest_bucket: String,
    /// The account whose Macie results are read: part of the results path.
    pub account_id: String,
    /// The bucket and KMS key this deployment was granted to read discovery results from. The
    /// account's Macie setting must name the same ones.
    pub discovery_results_bucket: String,
    pub discovery_results_kms_key_arn: String,
    /// Objects whose highest severity is below this pass, tagged `SensitiveDataFound=true`.
    pub minimum_severity: Severity,
    /// Count findings a suppression rule archived.
    pub include_archived: bool,
    /// Macie's price, for the run's cost estimate.
    pub macie_price: MicroUsdPerGb,
}

impl FromEnv for FindingsConfig {
    fn read(env: &mut EnvReader<'_>) -> Self {
        Self {
            scan_stage_bucket: env.required("SCAN_STAGE_BUCKET"),
            manifest_bucket: env.required("MANIFEST_BUCKET"),
            account_id: env.required("ACCOUNT_ID"),
            discovery_results_bucket: env.required("DISCOVERY_RESULTS_BUCKET"),
            discovery_results_kms_key_arn: env.required("DISCOVERY_RESULTS_KMS_KEY_ARN"),
            minimum_severity: env.optional("MINIMUM_SEVERITY", Severity::Low),
            include_archived: env.optional("INCLUDE_ARCHIVED_FINDINGS", false),
            macie_price: env.optional("MACIE_USD_PER_GB", MicroUsdPerGb::LIST_PRICE),
        }
    }
}

/// moveAllScanStageS3Files: routes this workflow's scan-stage objects to manual-review or
/// scanned-data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    pub scan_stage_bucket: String,
    pub manual_review_bucket: String,
    pub scanned_data_bucket: String,
    pub moves: MoveSettings,
}

impl FromEnv for RouteConfig {
    fn read(env: &mut EnvReader<'_>) -> Self {
        Self {
            scan_stage_bucket: env.required("SCAN_STAGE_BUCKET"),
            manual_review_bucket: env.required("MANUAL_REVIEW_BUCKET"),
            scanned_data_bucket: env.required("SCANNED_DATA_BUCKET"),
            moves: MoveSettings::read(env),
        }
    }
}

/// triggerManualApproval: publishes the approval request for the objects routing held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalConfig {
    pub manual_review_bucket: String,
    pub scanned_data_bucket: String,
    pub topic_arn: String,
    /// Base URL of the approval API, e.g. `https://abc.execute-api.eu-west-1.amazonaws.com/Prod`.
    pub approval_api_url: String,
    /// The EventBridge bus `Review Requested` is put on.
    pub event_bus_name: String,
}

impl FromEnv for ApprovalConfig {
    fn read(env: &mut EnvReader<'_>) -> Self {
        let config = Self {
            manual_review_bucket: env.required("MANUAL_REVIEW_BUCKET"),
            scanned_data_bucket: env.required("SCANNED_DATA_BUCKET"),
            topic_arn: env.required("APPROVAL_TOPIC_ARN"),
            approval_api_url: env.required("APPROVAL_API_URL"),
            event_bus_name: env.required("EVENT_BUS_NAME"),
        };
        let url = &config.approval_api_url;
        if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
            env.reject(format!("APPROVAL_API_URL={url:?} must be an http(s) URL"));
        }
        config
    }
}

/// moveToScannedDataS3Files: releases approved objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseConfig {
    pub manual_review_bucket: String,
    pub scanned_data_bucket: String,
    pub moves: MoveSettings,
}

impl FromEnv for ReleaseConfig {
    fn read(env: &mut EnvReader<'_>) -> Self {
        Self {
            manual_review_bucket: env.required("MANUAL_REVIEW_BUCKET"),
            scanned_data_bucket: env.required("SCANNED_DATA_BUCKET"),
            moves: MoveSettings::read(env),
        }
    }
}

/// deleteManualReviewS3Files: deletes denied objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteConfig {
    pub manual_review_bucket: String,
    /// Where raw is versioned, a denied object's raw version is deleted too.
    pub raw_bucket: String,
    pub moves: MoveSettings,
}

impl FromEnv for DeleteConfig {
    fn read(env: &mut EnvReader<'_>) -> Self {
        Self {
            manual_review_bucket: env.required("MANUAL_REVIEW_BUCKET"),
            raw_bucket: env.required("RAW_BUCKET"),
            moves: MoveSettings::read(env),
        }
    }
}

/// receiveApprovalDecision: reads approval requests and run manifests to show the held objects,
/// and keeps the false-positive rules and the gate's allow lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionConfig {
    pub manifest_bucket: String,
    pub allow_lists: GateAllowLists,
}

impl FromEnv for DecisionConfig {
    fn read(env: &mut EnvReader<'_>) -> Self {
        Self {
            manifest_bucket: env.required("MANIFEST_BUCKET"),
            allow_lists: GateAllowLists {
                patterns_id: env.required("PATTERN_ALLOW_LIST_ID"),
                patterns_name: env.required("PATTERN_ALLOW_LIST_NAME"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn every_missing_variable_is_reported_at_once() {
        let err = TriggerConfig::from_lookup(lookup(&[("RAW_BUCKET", "raw")])).unwrap_err();
        assert_eq!(err.missing, vec!["SCAN_STAGE_BUCKET", "ACCOUNT_ID"]);
        let text = err.to_string();
        assert!(text.contains("SCAN_STAGE_BUCKET") && text.contains("ACCOUNT_ID"));
    }

    #[test]
    fn unparsable_and_out_of_range_values_are_errors_not_defaults() {
        let err = DeleteConfig::from_lookup(lookup(&[
            ("MANUAL_REVIEW_BUCKET", "review"),
            ("RAW_BUCKET", "raw"),
            ("MOVE_CONCURRENCY", "lots"),
            ("MULTIPART_PART_SIZE_BYTES", "1024"),
        ]))
        .unwrap_err();
        assert!(err.missing.is_empty());
        assert_eq!(err.invalid.len(), 2, "{err}");
        assert!(err.invalid[0].contains("MOVE_CONCURRENCY"));
        assert!(err.invalid[1].contains("MULTIPART_PART_SIZE_BYTES"));
    }

    #[test]
    fn defaults_apply_when_optional_values_are_unset() {
        let config = ReleaseConfig::from_lookup(lookup(&[
            ("MANUAL_REVIEW_BUCKET", "review"),
            ("SCANNED_DATA_BUCKET", "scanned"),
        ]))
        .unwrap();
        assert_eq!(config.moves, MoveSettings::default());
    }

    #[test]
    fn approval_url_must_be_http() {
        let err = ApprovalConfig::from_lookup(lookup(&[
            ("SCAN_STAGE_BUCKET", "a"),
            ("MANUAL_REVIEW_BUCKET", "b"),
            ("SCANNED_DATA_BUCKET", "c"),
            ("MANIFEST_BUCKET", "d"),
            ("APPROVAL_TOPIC_ARN", "arn:aws:sns:eu-west-1:123456789012:t"),
            ("APPROVAL_API_URL", "ftp://example"),
        ]))
        .unwrap_err();
        assert!(err.invalid[0].contains("APPROVAL_API_URL"));
    }

    #[test]
    fn variable_names_lists_everything_read() {
        let names = TriggerConfig::variable_names();
        for name in [
            "RAW_BUCKET",
            "SCAN_STAGE_BUCKET",
            "ACCOUNT_ID",
            "CUSTOM_DATA_IDENTIFIER_IDS",
            "MOVE_CONCURRENCY",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
    }
}
