//! The local Macie: classification jobs that run asynchronously over the local S3 (RUNNING,
//! then COMPLETE after a start-up delay), findings in Macie's shape with ListFindings criteria and
//! pagination, custom data identifiers, allow lists, the session, and status changes through
//! UpdateClassificationJob (cancel, pause, resume), and sensitive data discovery results for
//! every object a job sees, written to the configured results location. State lives in the data
//! directory.

pub mod api;
pub mod finding;
pub mod results;
pub mod scope;

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::aws::{ACCOUNT, REGION};
use crate::clock::{Clock, now_ms, rfc3339_ms};
use crate::s3::store::Store;
use macie_classifier::{
    AllowList, Classifier, Config, CustomDefinition, CustomIdentifier, MANAGED, Selection,
};

/// How the local Macie behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct MacieOptions {
    /// A job's start-up delay, in workflow seconds.
    pub startup_delay_seconds: f64,
    /// Objects larger than this (after decompression) are skipped with
    /// `FILE_EXCEEDS_SIZE_LIMIT`.
    pub size_limit_bytes: u64,
    /// How long after a job completes its discovery results appear, in workflow seconds. At 0
    /// they are there when the status says COMPLETE.
    pub results_delay_seconds: f64,
}

impl Default for MacieOptions {
    fn default() -> Self {
        Self {
            startup_delay_seconds: 120.0,
            size_limit_bytes: 20 * 1024 * 1024,
            results_delay_seconds: 0.0,
        }
    }
}

/// A Macie error: its exception name, HTTP status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacieError {
    pub code: &'static str,
    pub status: u16,
    pub message: String,
}

impl MacieError {
    pub fn validation(message: impl Into<String>) -> Self {
        Self {
            code: "ValidationException",
            status: 400,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            code: "ResourceNotFoundException",
            status: 404,
            message: message.into(),
        }
    }

    fn conflict(message: impl Into<String>) -> Self {
        Self {
            code: "ConflictException",
            status: 409,
            message: message.into(),
        }
    }
}

type Result<T> = std::result::Result<T, MacieError>;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Job {
    id: String,
    request: Value,
    status: String,
    created_ms: i64,
    last_run_ms: Option<i64>,
    /// (bucket, key) of every object in scope when the job was created.
    objects: Vec<(String, String)>,
    processed: usize,
    /// Macie could not reach a bucket or its objects: `lastRunErrorStatus` ERROR.
    run_error: bool,
    paused_ms: Option<i64>,
    finding_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Settings {
    session_status: String,
    session_created_ms: i64,
    client_tokens: BTreeMap<String, String>,
    custom_identifiers: BTreeMap<String, Value>,
    allow_lists: BTreeMap<String, Value>,
    allow_list_tokens: BTreeMap<String, String>,
    export_configuration: Option<Value>,
}

struct State {
    settings: Settings,
    jobs: BTreeMap<String, Job>,
    findings: BTreeMap<String, Value>,
}

struct Inner {
    dir: PathBuf,
    s3: Arc<Store>,
    /// Macie writes discovery results as its service principal, under the results bucket's
    /// policy and the key's.
    iam: Arc<crate::iam::Iam>,
    clock: Clock,
    options: MacieOptions,
    state: Mutex<State>,
    /// Keys whose discovery result is left out, as if Macie lost it (for tests).
    withheld: Mutex<HashSet<String>>,
}

/// The Macie emulator.
#[derive(Clone)]
pub struct Macie {
    inner: Arc<Inner>,
}

/// Saves Macie's state. Jobs and settings live in memory first; a save that fails is logged
/// and the next change saves again (a restart would resume from the last save).
fn write_json<T: Serialize>(path: &std::path::Path, value: &T) {
    if let Err(err) = crate::json_file::write(path, value) {
        warn!(?path, %err, "could not save Macie state");
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &std::path::Path) -> Option<T> {
    crate::json_file::read(path).ok()
}

fn job_arn(id: &str) -> String {
    format!("arn:aws:macie2:{REGION}:{ACCOUNT}:classification-job/{id}")
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// A stored (or requested) custom data identifier as the classifier defines it.
fn custom_definition(c: &Value) -> CustomDefinition {
    CustomDefinition {
        id: c["id"].as_str().map(str::to_owned),
        arn: c["arn"].as_str().map(str::to_owned),
        name: c["name"].as_str().unwrap_or_default().to_owned(),
        regex: c["regex"].as_str().unwrap_or_default().to_owned(),
        keywords: strings(&c["keywords"]),
        ignore_words: strings(&c["ignoreWords"]),
        maximum_match_distance: c["maximumMatchDistance"]
            .as_u64()
            .and_then(|d| u32::try_from(d).ok()),
        severity_levels: serde_json::from_value(c["severityLevels"].clone()).unwrap_or_default(),
        description: None,
    }
}

/// Rejects what Macie's regex dialect does not support: lookaround and backreferences.
fn check_regex(pattern: &str) -> Result<Regex> {
    if pattern.is_empty() || pattern.chars().count() > 512 {
        return Err(MacieError::validation("regex must be 1 to 512 characters"));
    }
    for unsupported in ["(?=", "(?!", "(?<=", "(?<!"] {
        if pattern.contains(unsupported) {
            return Err(MacieError::validation(
                "lookahead and lookbehind are not supported in regex",
            ));
        }
    }
    if Regex::new(r"\\[1-9]").expect("valid").is_match(pattern) {
        return Err(MacieError::validation(
            "backreferences are not supported in regex",
        ));
    }
    Regex::new(pattern).map_err(|err| MacieError::validation(format!("regex is not valid: {err}")))
}

impl Macie {
    /// Opens the Macie state under `dir`; jobs that were running resume.
    pub fn open(
        dir: impl Into<PathBuf>,
        s3: Arc<Store>,
        clock: Clock,
        options: MacieOptions,
        iam: Arc<crate::iam::Iam>,
    ) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join("jobs"))?;
        std::fs::create_dir_all(dir.join("findings"))?;
        let settings =
            read_json::<Settings>(&dir.join("settings.json")).unwrap_or_else(|| Settings {
                session_status: "ENABLED".into(),
                session_created_ms: now_ms(),
                ..Settings::default()
            });
        let mut jobs = BTreeMap::new();
        let mut findings = BTreeMap::new();
        for entry in std::fs::read_dir(dir.join("jobs"))? {
            if let Some(job) = read_json::<Job>(&entry?.path()) {
                jobs.insert(job.id.clone(), job);
            }
        }
        for entry in std::fs::read_dir(dir.join("findings"))? {
            for finding in read_json::<Vec<Value>>(&entry?.path()).unwrap_or_default() {
                findings.insert(
                    finding["id"].as_str().unwrap_or_default().to_owned(),
                    finding,
                );
            }
        }
        let macie = Self {
            inner: Arc::new(Inner {
                dir,
                s3,
                iam,
                clock,
                options,
                state: Mutex::new(State {
                    settings,
                    jobs,
                    findings,
                }),
                withheld: Mutex::new(HashSet::new()),
            }),
        };
        let unfinished: Vec<String> = macie
            .state()
            .jobs
            .values()
            .filter(|job| matches!(job.status.as_str(), "RUNNING" | "USER_PAUSED"))
            .map(|job| job.id.clone())
            .collect();
        for id in unfinished {
            tokio::spawn(Arc::clone(&macie.inner).run(id));
        }
        Ok(macie)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn save_settings(&self, state: &State) {
        write_json(&self.inner.dir.join("settings.json"), &state.settings);
    }

    /// Fails every operation but EnableMacie while Macie is not enabled.
    fn enabled(&self) -> Result<()> {
        if self.state().settings.session_status == "ENABLED" {
            Ok(())
        } else {
            Err(MacieError {
                code: "AccessDeniedException",
                status: 403,
                message: "Macie is not enabled".into(),
            })
        }
    }

    pub fn create_job(&self, body: &Value) -> Result<Value> {
        self.enabled()?;
        let token = body["clientToken"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if let Some(id) = self.state().settings.client_tokens.get(&token) {
            return Ok(json!({"jobId": id, "jobArn": job_arn(id)}));
        }
        let name = body["name"].as_str().unwrap_or_default();
        if name.is_empty() || name.chars().count() > 500 {
            return Err(MacieError::validation(
                "name is required and must be at most 500 characters",
            ));
        }
        if body["description"]
            .as_str()
            .is_some_and(|d| d.chars().count() > 200)
        {
            return Err(MacieError::validation(
                "description must be at most 200 characters",
            ));
        }
        match body["jobType"].as_str() {
            Some("ONE_TIME") if body.get("scheduleFrequency").is_some_and(|s| !s.is_null()) => {
                return Err(MacieError::validation(
                    "a ONE_TIME job cannot have a scheduleFrequency",
                ));
            }
            Some("ONE_TIME") => {}
            Some("SCHEDULED") => {
                return Err(MacieError::validation(
                    "the local Macie runs ONE_TIME jobs only",
                ));
            }
            _ => {
                return Err(MacieError::validation(
                    "jobType must be ONE_TIME or SCHEDULED",
                ));
            }
        }
        if let Some(sampling) = body.get("samplingPercentage").and_then(Value::as_i64)
            && !(1..=100).contains(&sampling)
        {
            return Err(MacieError::validation(
                "samplingPercentage must be between 1 and 100",
            ));
        }
        let selector = body["managedDataIdentifierSelector"]
            .as_str()
            .unwrap_or("RECOMMENDED");
        let managed_ids = strings(&body["managedDataIdentifierIds"]);
        let custom_ids = strings(&body["customDataIdentifierIds"]);
        match selector {
            "ALL" | "RECOMMENDED" | "NONE" if !managed_ids.is_empty() => {
                return Err(MacieError::validation(format!(
                    "managedDataIdentifierIds must be empty for {selector}"
                )));
            }
            "INCLUDE" | "EXCLUDE" if managed_ids.is_empty() => {
                return Err(MacieError::validation(format!(
                    "{selector} needs managedDataIdentifierIds"
                )));
            }
            "NONE" if custom_ids.is_empty() => {
                return Err(MacieError::validation(
                    "NONE needs at least one customDataIdentifierIds",
                ));
            }
            "ALL" | "RECOMMENDED" | "NONE" | "INCLUDE" | "EXCLUDE" => {}
            other => {
                return Err(MacieError::validation(format!(
                    "{other} is not a managedDataIdentifierSelector"
                )));
            }
        }
        {
            let state = self.state();
            for id in &custom_ids {
                if !state.settings.custom_identifiers.contains_key(id) {
                    return Err(MacieError::not_found(format!(
                        "custom data identifier {id} does not exist"
                    )));
                }
            }
            for id in strings(&body["allowListIds"]) {
                if !state.settings.allow_lists.contains_key(&id) {
                    return Err(MacieError::not_found(format!(
                        "allow list {id} does not exist"
                    )));
                }
            }
        }
        let definition = &body["s3JobDefinition"];
        let (buckets, run_error) = self.job_buckets(definition)?;
        let scoping = definition.get("scoping").cloned().unwrap_or(Value::Null);
        scope::validate(&scoping).map_err(MacieError::validation)?;
        let mut objects = Vec::new();
        for bucket in &buckets {
            let mut after: Option<String> = None;
            while let Ok(page) = self.inner.s3.list(bucket, "", after.as_deref(), None, 1000) {
                for meta in &page.objects {
                    if scoping.is_null() || scope::in_scope(&scoping, meta) {
                        objects.push((bucket.clone(), meta.key.clone()));
                    }
                }
                if !page.truncated {
                    break;
                }
                after = page.last;
            }
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut request = body.clone();
        if let Some(fields) = request.as_object_mut() {
            fields.remove("clientToken");
        }
        let job = Job {
            id: id.clone(),
            request,
            status: "RUNNING".into(),
            created_ms: now_ms(),
            last_run_ms: None,
            objects,
            processed: 0,
            run_error,
            paused_ms: None,
            finding_ids: Vec::new(),
        };
        info!(
            job_id = id,
            objects = job.objects.len(),
            "Macie job created"
        );
        {
            let mut state = self.state();
            state.settings.client_tokens.insert(token, id.clone());
            self.save_settings(&state);
            write_json(
                &self.inner.dir.join("jobs").join(format!("{id}.json")),
                &job,
            );
            state.jobs.insert(id.clone(), job);
        }
        tokio::spawn(Arc::clone(&self.inner).run(id.clone()));
        Ok(json!({"jobId": id, "jobArn": job_arn(&id)}))
    }

    /// The buckets a job definition names, and whether one of them is unreachable.
    fn job_buckets(&self, definition: &Value) -> Result<(Vec<String>, bool)> {
        let existing: Vec<String> = self
            .inner
            .s3
            .buckets()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        match (
            definition.get("bucketDefinitions"),
            definition.get("bucketCriteria"),
        ) {
            (Some(definitions), None) => {
                let mut buckets = Vec::new();
                let mut missing = false;
                for entry in definitions.as_array().into_iter().flatten() {
                    if entry["accountId"].as_str() != Some(ACCOUNT) {
                        missing = true;
                        continue;
                    }
                    for bucket in strings(&entry["buckets"]) {
                        if existing.contains(&bucket) {
                            buckets.push(bucket);
                        } else {
                            missing = true;
                        }
                    }
                }
                if buckets.is_empty() && !missing {
                    return Err(MacieError::validation("bucketDefinitions names no buckets"));
                }
                Ok((buckets, missing))
            }
            (None, Some(criteria)) => {
                let mut buckets = existing;
                for term in criteria["includes"]["and"].as_array().into_iter().flatten() {
                    let simple = &term["simpleCriterion"];
                    if simple["key"].as_str() != Some("S3_BUCKET_NAME") {
                        return Err(MacieError::validation(
                            "the local Macie supports bucketCriteria on S3_BUCKET_NAME only",
                        ));
                    }
                    let values = strings(&simple["values"]);
                    let equal = simple["comparator"].as_str() != Some("NE");
                    buckets.retain(|b| values.contains(b) == equal);
                }
                Ok((buckets, false))
            }
            _ => Err(MacieError::validation(
                "s3JobDefinition needs exactly one of bucketDefinitions and bucketCriteria",
            )),
        }
    }

    fn describe_value(job: &Job) -> Value {
        let mut described = job.request.clone();
        let fields = described.as_object_mut().expect("requests are objects");
        let selector = job.request["managedDataIdentifierSelector"]
            .as_str()
            .unwrap_or("RECOMMENDED");
        fields.insert("managedDataIdentifierSelector".into(), json!(selector));
        if matches!(selector, "ALL" | "NONE" | "RECOMMENDED") {
            fields.remove("managedDataIdentifierIds");
        }
        fields.insert("jobId".into(), json!(job.id));
        fields.insert("jobArn".into(), json!(job_arn(&job.id)));
        fields.insert("jobStatus".into(), json!(job.status));
        fields.insert("createdAt".into(), json!(rfc3339_ms(job.created_ms)));
        fields.insert("initialRun".into(), json!(false));
        if let Some(at) = job.last_run_ms {
            fields.insert("lastRunTime".into(), json!(rfc3339_ms(at)));
        }
        fields.insert(
            "lastRunErrorStatus".into(),
            json!({"code": if job.run_error { "ERROR" } else { "NONE" }}),
        );
        let remaining = job.objects.len().saturating_sub(job.processed);
        fields.insert(
            "statistics".into(),
            json!({"approximateNumberOfObjectsToProcess": remaining as f64, "numberOfRuns": if job.status == "COMPLETE" { 1.0 } else { 0.0 }}),
        );
        if let (Some(paused), "USER_PAUSED") = (job.paused_ms, job.status.as_str()) {
            fields.insert(
                "userPausedDetails".into(),
                json!({"jobPausedAt": rfc3339_ms(paused), "jobExpiresAt": rfc3339_ms(paused + 30 * 86_400_000)}),
            );
        }
        described
    }

    pub fn describe_job(&self, id: &str) -> Result<Value> {
        self.enabled()?;
        let state = self.state();
        let job = state
            .jobs
            .get(id)
            .ok_or_else(|| MacieError::not_found(format!("job {id} does not exist")))?;
        Ok(Self::describe_value(job))
    }

    /// UpdateClassificationJob: CANCELLED, USER_PAUSED, or RUNNING to resume.
    pub fn update_job(&self, id: &str, body: &Value) -> Result<Value> {
        self.enabled()?;
        let wanted = body["jobStatus"].as_str().unwrap_or_default();
        let mut state = self.state();
        let job = state
            .jobs
            .get_mut(id)
            .ok_or_else(|| MacieError::not_found(format!("job {id} does not exist")))?;
        let allowed = match (job.status.as_str(), wanted) {
            ("RUNNING" | "IDLE" | "PAUSED" | "USER_PAUSED", "CANCELLED") => true,
            ("RUNNING" | "IDLE", "USER_PAUSED") => true,
            ("USER_PAUSED", "RUNNING") => true,
            (_, "CANCELLED" | "USER_PAUSED" | "RUNNING") => false,
            _ => {
                return Err(MacieError::validation(format!(
                    "jobStatus {wanted:?} is not CANCELLED, USER_PAUSED or RUNNING"
                )));
            }
        };
        if !allowed {
            return Err(MacieError::conflict(format!(
                "a {} job cannot become {wanted}",
                job.status
            )));
        }
        job.status = wanted.to_owned();
        job.paused_ms = (wanted == "USER_PAUSED").then(now_ms);
        write_json(&self.inner.dir.join("jobs").join(format!("{id}.json")), job);
        Ok(json!({}))
    }

    pub fn list_jobs(&self, body: &Value) -> Result<Value> {
        self.enabled()?;
        let state = self.state();
        let mut jobs: Vec<&Job> = state.jobs.values().collect();
        let term_matches = |job: &Job, term: &Value| {
            let values = strings(&term["values"]);
            let actual = match term["key"].as_str() {
                Some("jobStatus") => job.status.clone(),
                Some("jobType") => job.request["jobType"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                Some("name") => job.request["name"].as_str().unwrap_or_default().to_owned(),
                _ => return true,
            };
            let hit = match term["comparator"].as_str() {
                Some("CONTAINS") => values.iter().any(|v| actual.contains(v.as_str())),
                _ => values.contains(&actual),
            };
            if term["comparator"].as_str() == Some("NE") {
                !hit
            } else {
                hit
            }
        };
        let criteria = &body["filterCriteria"];
        jobs.retain(|job| {
            criteria["includes"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|t| term_matches(job, t))
                && !criteria["excludes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|t| term_matches(job, t))
        });
        jobs.sort_by_key(|job| std::cmp::Reverse(job.created_ms));
        if body["sortCriteria"]["orderBy"].as_str() == Some("ASC") {
            jobs.reverse();
        }
        let (page, next) = paginate(&jobs, body, 100)?;
        let items: Vec<Value> = page
            .iter()
            .map(|job| {
                json!({"jobId": job.id, "jobType": job.request["jobType"], "jobStatus": job.status,
                       "name": job.request["name"], "createdAt": rfc3339_ms(job.created_ms),
                       "bucketDefinitions": job.request["s3JobDefinition"]["bucketDefinitions"],
                       "lastRunErrorStatus": {"code": if job.run_error { "ERROR" } else { "NONE" }}})
            })
            .collect();
        Ok(json!({"items": items, "nextToken": next}))
    }

    pub fn list_findings(&self, body: &Value) -> Result<Value> {
        self.enabled()?;
        let criteria = &body["findingCriteria"];
        finding::validate_criteria(criteria).map_err(MacieError::validation)?;
        let state = self.state();
        let mut findings: Vec<&Value> = state
            .findings
            .values()
            .filter(|f| finding::matches(f, criteria))
            .collect();
        sort_findings(&mut findings, &body["sortCriteria"]);
        let maximum = body["maxResults"].as_u64().map_or(50, |n| n.clamp(1, 50));
        let (page, next) = paginate(
            &findings,
            &json!({"maxResults": maximum, "nextToken": body["nextToken"]}),
            50,
        )?;
        Ok(
            json!({"findingIds": page.iter().map(|f| f["id"].clone()).collect::<Vec<_>>(), "nextToken": next}),
        )
    }

    pub fn get_findings(&self, body: &Value) -> Result<Value> {
        self.enabled()?;
        let ids = strings(&body["findingIds"]);
        if ids.len() > 50 {
            return Err(MacieError::validation("findingIds can have at most 50 ids"));
        }
        let state = self.state();
        let mut findings: Vec<&Value> =
            ids.iter().filter_map(|id| state.findings.get(id)).collect();
        if !body["sortCriteria"].is_null() {
            sort_findings(&mut findings, &body["sortCriteria"]);
        }
        Ok(json!({"findings": findings}))
    }

    pub fn finding_statistics(&self, body: &Value) -> Result<Value> {
        self.enabled()?;
        let group_by = body["groupBy"].as_str().unwrap_or_default();
        if ![
            "resourcesAffected.s3Bucket.name",
            "type",
            "classificationDetails.jobId",
            "severity.description",
        ]
        .contains(&group_by)
        {
            return Err(MacieError::validation(format!(
                "groupBy {group_by:?} is not valid"
            )));
        }
        finding::validate_criteria(&body["findingCriteria"]).map_err(MacieError::validation)?;
        let state = self.state();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for f in state
            .findings
            .values()
            .filter(|f| finding::matches(f, &body["findingCriteria"]))
        {
            let mut node: &Value = f;
            for part in group_by.split('.') {
                node = &node[part];
            }
            *counts
                .entry(node.as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
        Ok(
            json!({"countsByGroup": counts.into_iter().map(|(k, n)| json!({"groupKey": k, "count": n})).collect::<Vec<_>>()}),
        )
    }

    pub fn create_custom_identifier(&self, body: &Value) -> Result<Value> {
        self.enabled()?;
        let name = body["name"].as_str().unwrap_or_default();
        if name.is_empty() || name.chars().count() > 128 {
            return Err(MacieError::validation(
                "name is required and must be at most 128 characters",
            ));
        }
        check_regex(body["regex"].as_str().unwrap_or_default())?;
        let keywords = strings(&body["keywords"]);
        if keywords.len() > 50
            || keywords
                .iter()
                .any(|k| !(3..=90).contains(&k.chars().count()))
        {
            return Err(MacieError::validation(
                "keywords: at most 50, each 3 to 90 characters",
            ));
        }
        let ignore_words = strings(&body["ignoreWords"]);
        if ignore_words.len() > 10
            || ignore_words
                .iter()
                .any(|w| !(4..=90).contains(&w.chars().count()))
        {
            return Err(MacieError::validation(
                "ignoreWords: at most 10, each 4 to 90 characters",
            ));
        }
        if let Some(distance) = body["maximumMatchDistance"].as_i64()
            && !(1..=300).contains(&distance)
        {
            return Err(MacieError::validation(
                "maximumMatchDistance must be between 1 and 300",
            ));
        }
        let levels = body["severityLevels"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if levels.len() > 3 {
            return Err(MacieError::validation(
                "severityLevels has at most 3 entries",
            ));
        }
        let mut previous = -1i64;
        for level in &levels {
            let threshold = level["occurrencesThreshold"].as_i64().unwrap_or(-1);
            if threshold <= previous
                || !matches!(level["severity"].as_str(), Some("LOW" | "MEDIUM" | "HIGH"))
            {
                return Err(MacieError::validation(
                    "severityLevels need ascending thresholds and LOW, MEDIUM or HIGH",
                ));
            }
            previous = threshold;
        }
        // What the jobs will compile, refused now rather than skipped later.
        CustomIdentifier::new(custom_definition(body))
            .map_err(|err| MacieError::validation(err.to_string()))?;
        let id = uuid::Uuid::new_v4().to_string();
        let mut stored = body.clone();
        let fields = stored
            .as_object_mut()
            .ok_or_else(|| MacieError::validation("the body must be an object"))?;
        fields.remove("clientToken");
        fields.insert("id".into(), json!(id));
        fields.insert(
            "arn".into(),
            json!(format!(
                "arn:aws:macie2:{REGION}:{ACCOUNT}:custom-data-identifier/{id}"
            )),
        );
        fields.insert("createdAt".into(), json!(rfc3339_ms(now_ms())));
        fields.insert("deleted".into(), json!(false));
        fields.entry("maximumMatchDistance").or_insert(json!(50));
        let mut state = self.state();
        state.settings.custom_identifiers.insert(id.clone(), stored);
        self.save_settings(&state);
        Ok(json!({"customDataIdentifierId": id}))
    }

    pub fn get_custom_identifier(&self, id: &str) -> Result<Value> {
        self.enabled()?;
        self.state()
            .settings
            .custom_identifiers
            .get(id)
            .cloned()
            .ok_or_else(|| {
                MacieError::not_found(format!("custom data identifier {id} does not exist"))
            })
    }

    pub fn batch_get_custom_identifiers(&self, body: &Value) -> Result<Value> {
        self.enabled()?;
        let state = self.state();
        let (mut found, mut missing) = (Vec::new(), Vec::new());
        for id in strings(&body["ids"]) {
            match state.settings.custom_identifiers.get(&id) {
                Some(c) => found.push(json!({"arn": c["arn"], "createdAt": c["createdAt"], "deleted": c["deleted"],
                                             "description": c["description"], "id": c["id"], "name": c["name"]})),
                None => missing.push(id),
            }
        }
        Ok(json!({"customDataIdentifiers": found, "notFoundIdentifierIds": missing}))
    }

    pub fn list_custom_identifiers(&self) -> Result<Value> {
        self.enabled()?;
        let state = self.state();
        let items: Vec<Value> = state
            .settings
            .custom_identifiers
            .values()
            .map(|c| json!({"arn": c["arn"], "createdAt": c["createdAt"], "description": c["description"], "id": c["id"], "name": c["name"]}))
            .collect();
        Ok(json!({"items": items}))
    }

    pub fn create_allow_list(&self, body: &Value) -> Result<Value> {
        self.enabled()?;
        let token = body["clientToken"].as_str().unwrap_or_default().to_owned();
        if let Some(id) = self.state().settings.allow_list_tokens.get(&token) {
            let id = id.clone();
            return Ok(
                json!({"id": id, "arn": format!("arn:aws:macie2:{REGION}:{ACCOUNT}:allow-list/{id}")}),
            );
        }
        let name = body["name"].as_str().unwrap_or_default();
        if name.is_empty() || name.chars().count() > 128 {
            return Err(MacieError::validation("name must be 1 to 128 characters"));
        }
        let criteria = &body["criteria"];
        match (criteria.get("regex"), criteria.get("s3WordsList")) {
            (Some(regex), None) => {
                check_regex(regex.as_str().unwrap_or_default())?;
            }
            (None, Some(list)) => {
                if list["bucketName"].as_str().is_none() || list["objectKey"].as_str().is_none() {
                    return Err(MacieError::validation(
                        "s3WordsList needs bucketName and objectKey",
                    ));
                }
            }
            _ => {
                return Err(MacieError::validation(
                    "criteria needs exactly one of regex and s3WordsList",
                ));
            }
        }
        let id: String = uuid::Uuid::new_v4().simple().to_string()[..22].to_owned();
        let arn = format!("arn:aws:macie2:{REGION}:{ACCOUNT}:allow-list/{id}");
        let now = rfc3339_ms(now_ms());
        let stored = json!({"arn": arn, "id": id, "name": name, "description": body["description"],
            "criteria": criteria, "tags": body["tags"], "createdAt": now, "updatedAt": now});
        let mut state = self.state();
        state.settings.allow_lists.insert(id.clone(), stored);
        state.settings.allow_list_tokens.insert(token, id.clone());
        self.save_settings(&state);
        Ok(json!({"id": id, "arn": arn}))
    }

    pub fn get_allow_list(&self, id: &str) -> Result<Value> {
        self.enabled()?;
        let mut list = self
            .state()
            .settings
            .allow_lists
            .get(id)
            .cloned()
            .ok_or_else(|| MacieError::not_found(format!("allow list {id} does not exist")))?;
        let status = match list["criteria"].get("s3WordsList") {
            Some(words) => match self.inner.s3.head(
                words["bucketName"].as_str().unwrap_or_default(),
                words["objectKey"].as_str().unwrap_or_default(),
            ) {
                Ok(meta) if meta.size == 0 => "S3_OBJECT_EMPTY",
                Ok(_) => "OK",
                Err(_) => "S3_OBJECT_NOT_FOUND",
            },
            None => "OK",
        };
        list["status"] = json!({"code": status});
        Ok(list)
    }

    pub fn session(&self) -> Value {
        let state = self.state();
        json!({"createdAt": rfc3339_ms(state.settings.session_created_ms), "updatedAt": rfc3339_ms(state.settings.session_created_ms),
               "findingPublishingFrequency": "FIFTEEN_MINUTES", "status": state.settings.session_status,
               "serviceRole": format!("arn:aws:iam::{ACCOUNT}:role/aws-service-role/macie.amazonaws.com/AWSServiceRoleForAmazonMacie")})
    }

    /// EnableMacie; also turns a disabled Macie back on.
    pub fn enable(&self, body: &Value) -> Result<Value> {
        let mut state = self.state();
        state.settings.session_status = body["status"].as_str().unwrap_or("ENABLED").to_owned();
        self.save_settings(&state);
        Ok(json!({}))
    }

    /// Turns Macie off: every operation then fails with AccessDeniedException.
    pub fn disable(&self) {
        let mut state = self.state();
        state.settings.session_status = "PAUSED".into();
        self.save_settings(&state);
    }

    pub fn managed_identifiers(&self) -> Value {
        json!({"items": MANAGED.iter().map(|m| json!({"id": m.id, "category": m.category.as_str()})).collect::<Vec<_>>()})
    }

    pub fn put_export_configuration(&self, body: &Value) -> Result<Value> {
        self.enabled()?;
        let destination = &body["configuration"]["s3Destination"];
        if destination["bucketName"].as_str().is_none()
            || destination["kmsKeyArn"].as_str().is_none()
        {
            return Err(MacieError::validation(
                "s3Destination needs bucketName and kmsKeyArn",
            ));
        }
        let mut state = self.state();
        state.settings.export_configuration = Some(body["configuration"].clone());
        self.save_settings(&state);
        Ok(json!({"configuration": body["configuration"]}))
    }

    pub fn get_export_configuration(&self) -> Result<Value> {
        self.enabled()?;
        // Macie answers `{}` when no location is configured.
        Ok(match &self.state().settings.export_configuration {
            Some(configuration) => json!({"configuration": configuration}),
            None => json!({}),
        })
    }

    /// Leaves `key` out of the discovery results of every later job, as if Macie had lost its
    /// record. Tests use it to check that an object without a result is never passed as clean.
    pub fn withhold_result(&self, key: &str) {
        self.inner
            .withheld
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(key.to_owned());
    }
}

fn sort_findings(findings: &mut Vec<&Value>, sort: &Value) {
    let attribute = sort["attributeName"].as_str().unwrap_or("createdAt");
    let ascending = sort["orderBy"].as_str() == Some("ASC");
    // Keys computed once per finding: a sort compares each finding many times.
    let key = |f: &Value| -> (String, String) {
        let primary = if attribute.starts_with("severity") {
            finding::severity_of(f).to_string()
        } else {
            let mut node = f;
            for part in attribute.split('.') {
                node = &node[part];
            }
            match node {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            }
        };
        (primary, f["id"].as_str().unwrap_or_default().to_owned())
    };
    let mut keyed: Vec<((String, String), &Value)> =
        findings.iter().map(|f| (key(f), *f)).collect();
    keyed.sort_by(|a, b| {
        if ascending {
            a.0.cmp(&b.0)
        } else {
            b.0.cmp(&a.0)
        }
    });
    *findings = keyed.into_iter().map(|(_, f)| f).collect();
}

/// A page of `items` by the request's `maxResults` and opaque `nextToken`.
fn paginate<'a, T>(
    items: &'a [T],
    body: &Value,
    default: u64,
) -> Result<(&'a [T], Option<String>)> {
    let size = usize::try_from(body["maxResults"].as_u64().unwrap_or(default).max(1))
        .unwrap_or(usize::MAX);
    let start = match body["nextToken"].as_str() {
        None | Some("") => 0,
        Some(token) => token
            .strip_prefix("page-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| MacieError::validation("nextToken is not valid"))?,
    };
    let end = start.saturating_add(size).min(items.len());
    let next = (end < items.len()).then(|| format!("page-{end}"));
    Ok((&items[start..end], next))
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn status(&self, id: &str) -> String {
        self.lock()
            .jobs
            .get(id)
            .map(|j| j.status.clone())
            .unwrap_or_default()
    }

    /// Waits while the job is paused; false if it was cancelled.
    async fn proceed(&self, id: &str) -> bool {
        loop {
            match self.status(id).as_str() {
                "USER_PAUSED" => tokio::time::sleep(Duration::from_millis(20)).await,
                "CANCELLED" | "" => return false,
                _ => return true,
            }
        }
    }

    /// Runs a job: waits out the start-up delay, analyses each object in scope, records the
    /// findings and completes, then writes a discovery result for every object. Pauses and
    /// cancellations are honoured between objects.
    async fn run(self: Arc<Self>, id: String) {
        self.clock.sleep(self.options.startup_delay_seconds).await;
        let Some(job) = self.lock().jobs.get(&id).cloned() else {
            return;
        };
        // A custom identifier that cannot be built (CreateCustomDataIdentifier refuses those, so
        // only damaged state gets here) must not be left out silently: every object of the job
        // is then reported not analysed, and the pipeline holds it.
        let classifier = self
            .job_classifier(&job)
            .inspect_err(|err| warn!(job_id = job.id, %err, "the job's identifiers are unusable; nothing is analysed"))
            .ok()
            .map(Arc::new);
        let mut findings = Vec::new();
        let mut records = Vec::new();
        for (index, (bucket, key)) in job.objects.iter().enumerate().skip(job.processed) {
            if !self.proceed(&id).await {
                return;
            }
            let (record, found) = match &classifier {
                // Reading and classifying is blocking work: a large job would otherwise hold one
                // of the runtime's workers, and every request the stack serves, for seconds.
                Some(classifier) => {
                    let (inner, classifier) = (Arc::clone(&self), Arc::clone(classifier));
                    let (job_id, in_bucket, in_key) = (job.id.clone(), bucket.clone(), key.clone());
                    tokio::task::spawn_blocking(move || {
                        inner.classify_object(&job_id, &in_bucket, &in_key, &classifier)
                    })
                    .await
                    .unwrap_or_else(|err| {
                        // A classifier panic must not pass the object as clean: it is reported
                        // not analysed, and the pipeline holds it.
                        warn!(job_id = job.id, key, %err, "classification failed");
                        (results::unknown_error(&job.id, bucket, key), None)
                    })
                }
                None => (results::unknown_error(&job.id, bucket, key), None),
            };
            records.push((key.clone(), record));
            findings.extend(found);
            if let Some(running) = self.lock().jobs.get_mut(&id) {
                running.processed = index + 1;
            }
        }
        if !self.proceed(&id).await {
            return;
        }
        write_json(
            &self.dir.join("findings").join(format!("{id}.json")),
            &findings,
        );
        // Macie writes the results after the job's status says COMPLETE, sometimes minutes
        // later, and the pipeline waits up to 5 minutes for them. Scaled waits shrink that
        // window below the real time a large job's results take to write here, so when no delay
        // is asked for they are written before the status changes; a delay opens the window
        // on purpose, to test it.
        let mut pending = Some(records);
        if self.options.results_delay_seconds <= 0.0 {
            let configuration = self.lock().settings.export_configuration.clone();
            self.write_results(&id, configuration, pending.take().unwrap_or_default())
                .await;
        }
        let configuration = {
            let mut state = self.lock();
            for found in findings {
                let finding_id = found["id"].as_str().unwrap_or_default().to_owned();
                if let Some(job) = state.jobs.get_mut(&id) {
                    job.finding_ids.push(finding_id.clone());
                }
                state.findings.insert(finding_id, found);
            }
            if let Some(job) = state.jobs.get_mut(&id) {
                job.status = "COMPLETE".into();
                job.last_run_ms = Some(now_ms());
                write_json(&self.dir.join("jobs").join(format!("{id}.json")), job);
                info!(
                    job_id = id,
                    findings = job.finding_ids.len(),
                    "Macie job complete"
                );
            }
            state.settings.export_configuration.clone()
        };
        if let Some(records) = pending {
            self.clock.sleep(self.options.results_delay_seconds).await;
            self.write_results(&id, configuration, records).await;
        }
    }

    /// Whether Macie's service principal may write the results object and encrypt it with the
    /// configured key, as Macie does with `aws:SourceAccount` and `aws:SourceArn` set to the job.
    fn results_allowed(
        &self,
        job_id: &str,
        bucket: &str,
        key: &str,
        configuration: Option<&Value>,
    ) -> std::result::Result<(), crate::iam::Denied> {
        let mut context = crate::iam::evaluate::transport(true);
        context.extend([
            (
                "aws:sourceaccount".to_owned(),
                vec![crate::aws::ACCOUNT.to_owned()],
            ),
            (
                "aws:sourcearn".to_owned(),
                vec![format!(
                    "arn:aws:macie2:{}:{}:classification-job/{job_id}",
                    crate::aws::REGION,
                    crate::aws::ACCOUNT
                )],
            ),
        ]);
        let macie = self.iam.macie();
        self.iam.authorize(
            &macie,
            "s3:PutObject",
            &format!("arn:aws:s3:::{bucket}/{key}"),
            context.clone(),
        )?;
        if let Some(kms) = configuration
            .and_then(|c| c["s3Destination"]["kmsKeyArn"].as_str())
            .filter(|arn| arn.starts_with("arn:aws:kms:"))
        {
            self.iam
                .authorize(&macie, "kms:GenerateDataKey", kms, context)?;
        }
        Ok(())
    }

    /// Writes a job's discovery results to the configured location. Without a configuration
    /// Macie keeps them to itself, so nothing is written.
    async fn write_results(
        &self,
        job_id: &str,
        configuration: Option<Value>,
        records: Vec<(String, Value)>,
    ) {
        let Some((bucket, key)) = configuration
            .as_ref()
            .and_then(|c| results::location(c, job_id))
        else {
            warn!(
                job_id,
                "no discovery results location is configured; results are not written"
            );
            return;
        };
        let withheld = self
            .withheld
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let kept: Vec<Value> = records
            .into_iter()
            .filter(|(object_key, _)| !withheld.contains(object_key))
            .map(|(_, record)| record)
            .collect();
        if let Err(denied) = self.results_allowed(job_id, &bucket, &key, configuration.as_ref()) {
            warn!(job_id, bucket, %denied, "discovery results could not be written");
            return;
        }
        let body = bytes::Bytes::from(results::gzip_lines(&kept));
        let attributes = crate::s3::store::Attributes {
            content_type: Some("application/gzip".into()),
            kms_key_id: configuration
                .as_ref()
                .and_then(|c| c["s3Destination"]["kmsKeyArn"].as_str())
                .map(str::to_owned),
            ..Default::default()
        };
        let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(body) });
        match self
            .s3
            .put(
                &bucket,
                &key,
                Box::pin(stream),
                attributes,
                Vec::new(),
                None,
            )
            .await
        {
            Ok(_) => info!(
                job_id,
                bucket,
                key,
                records = kept.len(),
                "discovery results written"
            ),
            Err(err) => warn!(job_id, bucket, %err, "discovery results could not be written"),
        }
    }

    /// The classifier a job runs: its managed-identifier selection, custom identifiers and
    /// allow lists, and the size limit.
    fn job_classifier(&self, job: &Job) -> std::result::Result<Classifier, String> {
        let state = self.lock();
        let custom = strings(&job.request["customDataIdentifierIds"])
            .iter()
            .filter_map(|id| state.settings.custom_identifiers.get(id))
            .map(|c| CustomIdentifier::new(custom_definition(c)).map_err(|err| err.to_string()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let ids = strings(&job.request["managedDataIdentifierIds"]);
        let managed = match job.request["managedDataIdentifierSelector"].as_str() {
            Some("NONE") => Selection::None,
            Some("INCLUDE") => Selection::Include(ids),
            Some("EXCLUDE") => Selection::Exclude(ids),
            _ => Selection::All,
        };
        let mut allow = AllowList::default();
        for id in strings(&job.request["allowListIds"]) {
            let Some(list) = state.settings.allow_lists.get(&id) else {
                continue;
            };
            if let Some(regex) = list["criteria"]["regex"].as_str() {
                if let Err(err) = allow.add_regex(regex) {
                    warn!(job_id = job.id, %err, "allow list not used");
                }
            } else if let Some(source) = list["criteria"].get("s3WordsList")
                && let Ok((_, mut file)) = self.s3.open_object(
                    source["bucketName"].as_str().unwrap_or_default(),
                    source["objectKey"].as_str().unwrap_or_default(),
                )
            {
                let mut text = String::new();
                if file.read_to_string(&mut text).is_ok() {
                    allow.add_words(&text);
                }
            }
        }
        Ok(Classifier::new(Config {
            managed,
            custom,
            allow,
            size_limit: self.options.size_limit_bytes,
        }))
    }

    /// Analyses one object: its discovery result, and its finding if anything counts.
    fn classify_object(
        &self,
        job_id: &str,
        bucket: &str,
        key: &str,
        classifier: &Classifier,
    ) -> (Value, Option<Value>) {
        let Ok((meta, file)) = self.s3.open_object(bucket, key) else {
            let gone = results::not_read(
                "SKIPPED",
                "SOURCE_OBJECT_NO_LONGER_AVAILABLE",
                macie_classifier::mime_type(key),
            );
            return (results::record(job_id, bucket, key, None, gone, None), None);
        };
        let report = classifier.classify(key, Some(meta.size), file);
        let found = report
            .is_sensitive()
            .then(|| finding::build(job_id, bucket, &meta, &report));
        if let Some(reason) = report.reason {
            info!(
                job_id,
                bucket,
                key,
                reason,
                detail = report.detail.as_deref().unwrap_or(""),
                "object not analysed in full"
            );
        }
        let result = report.macie_result(macie_classifier::MAX_KEPT_OCCURRENCES);
        let record = results::record(job_id, bucket, key, Some(&meta), result, found.as_ref());
        (record, found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_with_lookaround_or_backreferences_are_refused() {
        assert!(check_regex("(?=a)b").is_err());
        assert!(check_regex(r"(a)\1").is_err());
        assert!(check_regex("P-[A-Z]{2}[0-9]{4}").is_ok());
    }

    #[test]
    fn pagination_tokens_are_opaque_and_checked() {
        let items: Vec<u32> = (0..120).collect();
        let (page, next) = paginate(&items, &json!({"maxResults": 50}), 50).unwrap();
        assert_eq!((page.len(), next.as_deref()), (50, Some("page-50")));
        let (page, next) = paginate(
            &items,
            &json!({"maxResults": 50, "nextToken": "page-100"}),
            50,
        )
        .unwrap();
        assert_eq!((page.len(), next), (20, None));
        assert!(paginate(&items, &json!({"nextToken": "junk"}), 50).is_err());
    }
}
