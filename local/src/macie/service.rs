//! The local Macie's state and its persistence: the session and its settings, jobs and findings
//! in memory, saved as JSON under the data directory, and jobs that were running resumed on open.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::warn;

use super::error::{MacieError, Result};
use super::jobs::Job;
use crate::clock::{Clock, now_ms};
use crate::s3::store::Store;

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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Settings {
    pub(super) session_status: String,
    pub(super) session_created_ms: i64,
    pub(super) client_tokens: BTreeMap<String, String>,
    pub(super) custom_identifiers: BTreeMap<String, Value>,
    pub(super) allow_lists: BTreeMap<String, Value>,
    pub(super) allow_list_tokens: BTreeMap<String, String>,
    pub(super) export_configuration: Option<Value>,
    /// Suppression rules and saved filters, by id; settings saved before they existed have none.
    #[serde(default)]
    pub(super) findings_filters: BTreeMap<String, Value>,
    #[serde(default)]
    pub(super) findings_filter_tokens: BTreeMap<String, String>,
}

pub(super) struct State {
    pub(super) settings: Settings,
    pub(super) jobs: BTreeMap<String, Job>,
    pub(super) findings: BTreeMap<String, Value>,
}

pub(super) struct Inner {
    pub(super) dir: PathBuf,
    pub(super) s3: Arc<Store>,
    /// Macie writes discovery results as its service principal, under the results bucket's
    /// policy and the key's.
    pub(super) iam: Arc<crate::iam::Iam>,
    pub(super) clock: Clock,
    pub(super) options: MacieOptions,
    pub(super) state: Mutex<State>,
    /// Keys whose discovery result is left out, as if Macie lost it (for tests).
    pub(super) withheld: Mutex<HashSet<String>>,
}

/// The Macie emulator.
#[derive(Clone)]
pub struct Macie {
    pub(super) inner: Arc<Inner>,
}

/// Saves a piece of Macie's state for a request: a change that cannot be saved fails the request
/// with `InternalServerException`, and the caller changes nothing in memory (see
/// [`crate::json_file`]).
pub(super) fn save<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    crate::json_file::write(path, value)
        .map_err(|err| MacieError::internal(format!("the change could not be saved: {err}")))
}

/// Saves a piece of Macie's state for a running job, which has no caller to tell: a save that
/// fails is logged, and a restart resumes the job from its last save.
pub(super) fn save_in_background<T: Serialize>(path: &Path, value: &T) {
    if let Err(err) = crate::json_file::write(path, value) {
        warn!(?path, %err, "could not save Macie state");
    }
}

/// Reads a saved file. One that is there but unreadable stops the stack from opening, naming the
/// file: leaving it out would lose a job, its findings or the settings without a word.
fn load<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<T> {
    crate::json_file::read(path).map_err(|err| {
        std::io::Error::new(
            err.kind(),
            format!(
                "the Macie state file {} cannot be read ({err}); move it away to start without it",
                path.display()
            ),
        )
    })
}

/// The saved files of a folder (not the temporaries of a write that was cut short).
fn saved_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            paths.push(path);
        }
    }
    Ok(paths)
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
        let settings_path = dir.join("settings.json");
        let settings = if settings_path.exists() {
            load::<Settings>(&settings_path)?
        } else {
            Settings {
                session_status: "ENABLED".into(),
                session_created_ms: now_ms(),
                ..Settings::default()
            }
        };
        let mut jobs = BTreeMap::new();
        let mut findings = BTreeMap::new();
        for path in saved_files(&dir.join("jobs"))? {
            let job = load::<Job>(&path)?;
            jobs.insert(job.id.clone(), job);
        }
        for path in saved_files(&dir.join("findings"))? {
            for finding in load::<Vec<Value>>(&path)? {
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

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes the settings, saved first: if the save fails, the request fails and nothing changes.
    pub(super) fn change_settings<R>(&self, change: impl FnOnce(&mut Settings) -> R) -> Result<R> {
        let mut state = self.state();
        let mut settings = state.settings.clone();
        let result = change(&mut settings);
        save(&self.inner.dir.join("settings.json"), &settings)?;
        state.settings = settings;
        Ok(result)
    }

    /// Where a job is saved.
    pub(super) fn job_path(&self, id: &str) -> PathBuf {
        self.inner.job_path(id)
    }

    /// Fails every operation but EnableMacie while Macie is not enabled.
    pub(super) fn enabled(&self) -> Result<()> {
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
}

impl Inner {
    pub(super) fn job_path(&self, id: &str) -> PathBuf {
        self.dir.join("jobs").join(format!("{id}.json"))
    }
}
