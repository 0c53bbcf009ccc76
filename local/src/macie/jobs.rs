//! Classification jobs: CreateClassificationJob's checks and the objects in scope,
//! DescribeClassificationJob, UpdateClassificationJob (cancel, pause, resume) and
//! ListClassificationJobs.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::info;

use super::error::{MacieError, Result};
use super::request::{paginate, strings};
use super::scope;
use super::service::{Macie, save};
use crate::aws::{ACCOUNT, REGION};
use crate::clock::{now_ms, rfc3339_ms};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Job {
    pub(super) id: String,
    pub(super) request: Value,
    pub(super) status: String,
    pub(super) created_ms: i64,
    pub(super) last_run_ms: Option<i64>,
    /// (bucket, key) of every object in scope when the job was created.
    pub(super) objects: Vec<(String, String)>,
    pub(super) processed: usize,
    /// Macie could not reach a bucket or its objects: `lastRunErrorStatus` ERROR.
    pub(super) run_error: bool,
    pub(super) paused_ms: Option<i64>,
    pub(super) finding_ids: Vec<String>,
}

fn job_arn(id: &str) -> String {
    format!("arn:aws:macie2:{REGION}:{ACCOUNT}:classification-job/{id}")
}

impl Macie {
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
        // The job is saved before the token that names it, so a save that fails leaves neither.
        save(&self.job_path(&id), &job)?;
        if let Err(err) = self.change_settings(|settings| {
            settings.client_tokens.insert(token, id.clone());
        }) {
            let _ = std::fs::remove_file(self.job_path(&id));
            return Err(err);
        }
        self.state().jobs.insert(id.clone(), job);
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
            .get(id)
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
        let mut changed = job.clone();
        changed.status = wanted.to_owned();
        changed.paused_ms = (wanted == "USER_PAUSED").then(now_ms);
        save(&self.job_path(id), &changed)?;
        state.jobs.insert(id.to_owned(), changed);
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
}
