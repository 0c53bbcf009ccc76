//! Running a job: the start-up delay, each object in scope read and classified, findings recorded,
//! the job completed, and a sensitive data discovery result written for every object.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tracing::{info, warn};

use super::identifiers::custom_definition;
use super::jobs::Job;
use super::request::strings;
use super::service::{Inner, Macie, State, save_in_background};
use super::{finding, results};
use crate::clock::now_ms;
use macie_classifier::{AllowList, Classifier, Config, CustomIdentifier, Selection};

impl Macie {
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
    pub(super) async fn run(self: Arc<Self>, id: String) {
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
        save_in_background(
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
            for mut found in findings {
                // Suppression rules act on a finding as it is created.
                super::findings_filters::apply(&state.settings, &mut found);
                let finding_id = found["id"].as_str().unwrap_or_default().to_owned();
                if let Some(job) = state.jobs.get_mut(&id) {
                    job.finding_ids.push(finding_id.clone());
                }
                state.findings.insert(finding_id, found);
            }
            if let Some(job) = state.jobs.get_mut(&id) {
                job.status = "COMPLETE".into();
                job.last_run_ms = Some(now_ms());
                save_in_background(&self.job_path(&id), job);
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
            ..Config::default()
        }))
    }

    /// Why Macie cannot decrypt an SSE-KMS object, in Macie's words: its key is disabled or gone
    /// (`INVALID_KMS_KEY`), or the key's policy does not let Macie's service-linked role use it
    /// through S3 (`INVALID_ENCRYPTION`). None for an object it can read.
    fn key_refusal(
        &self,
        bucket: &str,
        key: &str,
        meta: &crate::s3::store::ObjectMeta,
    ) -> Option<&'static str> {
        let kms_key = meta.attributes.kms_key_id.as_deref()?;
        if let Some(kms) = self.iam.kms()
            && kms.usable(kms_key).is_err()
        {
            return Some("INVALID_KMS_KEY");
        }
        let context =
            crate::s3::encryption::context_arn(bucket, key, meta.attributes.kms_bucket_key);
        self.iam
            .authorize(
                &self.iam.macie_role(),
                "kms:Decrypt",
                kms_key,
                crate::s3::encryption::kms_context(true, &context),
            )
            .err()
            .map(|_| "INVALID_ENCRYPTION")
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
        if let Some(reason) = self.key_refusal(bucket, key, &meta) {
            info!(
                job_id,
                bucket, key, reason, "Macie cannot use the object's KMS key"
            );
            let skipped = results::not_read("SKIPPED", reason, macie_classifier::mime_type(key));
            return (
                results::record(job_id, bucket, key, Some(&meta), skipped, None),
                None,
            );
        }
        // The stored bytes are a file: ZIP and Parquet are read in place, not copied first.
        let report = classifier.classify_open_file(key, file);
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
