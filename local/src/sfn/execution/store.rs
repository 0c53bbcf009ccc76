//! Every execution's record, in memory and on disk: saved after every transition, so that a
//! restarted stack resumes what was running (a Wait sleeps what is left, a callback task keeps
//! waiting for its token, any other state runs again from its start).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::record::{ExecutionRecord, HistoryEvent, Phase, Position};
use super::tokens::{Tokens, hash};
use crate::clock::now_ms;
use crate::json_file;

/// Receives every history event as it is recorded (the demo prints state names from these).
pub type Observer = Arc<dyn Fn(&str, &HistoryEvent) + Send + Sync>;

/// An execution and the token that stops its driver.
pub struct Running {
    pub record: ExecutionRecord,
    pub cancel: CancellationToken,
}

pub struct Executions {
    map: Mutex<BTreeMap<String, Running>>,
    dir: PathBuf,
    observer: Option<Observer>,
}

impl Executions {
    /// The executions saved under `dir`; tokens of waiting callbacks are opened again.
    pub fn open(
        dir: PathBuf,
        observer: Option<Observer>,
        tokens: &Tokens,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut map = BTreeMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            // Skipping a record would lose its execution, and the callback it waits on, without
            // a word: a damaged one stops the stack from opening, naming the file.
            let record: ExecutionRecord = json_file::read(&path).map_err(|err| {
                std::io::Error::other(format!(
                    "the execution record {} cannot be read ({err}); move it away to start without it",
                    path.display()
                ))
            })?;
            for token_hash in &record.closed_tokens {
                tokens.close(token_hash);
            }
            if let Some(Position {
                phase: Phase::Callback { token, .. },
                ..
            }) = &record.position
                && record.status == "RUNNING"
            {
                tokens.open(hash(token));
            }
            map.insert(
                record.arn.clone(),
                Running {
                    record,
                    cancel: CancellationToken::new(),
                },
            );
        }
        Ok(Self {
            map: Mutex::new(map),
            dir,
            observer,
        })
    }

    /// Changes an execution (if it exists) under the lock; events pushed through the
    /// [`Recorder`] reach the observer.
    pub fn update<R>(
        &self,
        arn: &str,
        change: impl FnOnce(&mut Running, &Recorder) -> R,
    ) -> Option<R> {
        let recorder = Recorder {
            observer: self.observer.as_ref(),
        };
        self.map
            .lock()
            .expect("lock")
            .get_mut(arn)
            .map(|running| change(running, &recorder))
    }

    /// Adds a new execution; false if one of that ARN exists.
    pub fn insert(&self, running: Running) -> bool {
        let mut map = self.map.lock().expect("lock");
        if map.contains_key(&running.record.arn) {
            return false;
        }
        map.insert(running.record.arn.clone(), running);
        true
    }

    pub fn record(&self, arn: &str) -> Option<ExecutionRecord> {
        self.map
            .lock()
            .expect("lock")
            .get(arn)
            .map(|r| r.record.clone())
    }

    pub fn cancel_token(&self, arn: &str) -> Option<CancellationToken> {
        self.map
            .lock()
            .expect("lock")
            .get(arn)
            .map(|r| r.cancel.clone())
    }

    /// Records (without history) matching `keep`.
    pub fn summaries(&self, keep: impl Fn(&ExecutionRecord) -> bool) -> Vec<ExecutionRecord> {
        self.map
            .lock()
            .expect("lock")
            .values()
            .filter(|r| keep(&r.record))
            .map(|r| {
                let mut record = r.record.clone();
                record.history.clear();
                record
            })
            .collect()
    }

    /// Appends an in-state event; returns its id. A closed execution's history ends with its
    /// closing event: a task still finishing after StopExecution (whose result is discarded)
    /// leaves no trace, as in AWS.
    pub fn event(&self, arn: &str, kind: &str, details: Value) -> Option<u64> {
        self.update(arn, |running, recorder| {
            (running.record.status == "RUNNING")
                .then(|| recorder.push(&mut running.record, kind, details))
        })
        .flatten()
    }

    /// Sets the phase of the running state and saves the record.
    pub fn set_phase(&self, arn: &str, phase: Phase) {
        self.update(arn, |running, _| {
            if let Some(position) = &mut running.record.position {
                position.phase = phase;
            }
        });
        self.persist_in_background(arn);
    }

    /// Takes back an execution that was never started (its record could not be saved).
    pub fn remove(&self, arn: &str) {
        self.map.lock().expect("lock").remove(arn);
    }

    /// Notes a token as closed in the record, so that it stays closed after a restart.
    pub fn close_token(&self, arn: &str, token_hash: &str) {
        self.update(arn, |running, _| {
            if !running.record.closed_tokens.iter().any(|h| h == token_hash) {
                running.record.closed_tokens.push(token_hash.to_owned());
            }
        });
    }

    /// Saves a record. A request whose change cannot be saved reports the error (see
    /// [`crate::json_file`]); an execution advancing has no caller, and uses
    /// [`Executions::persist_in_background`].
    pub fn persist(&self, arn: &str) -> std::io::Result<()> {
        let Some(record) = self.record(arn) else {
            return Ok(());
        };
        json_file::write(&self.dir.join(format!("{}.json", hash(arn))), &record)
    }

    /// Saves a record for the driver. A save that fails is logged: the execution goes on in
    /// memory, the next transition saves again, and a restart resumes from the last save.
    pub fn persist_in_background(&self, arn: &str) {
        if let Err(err) = self.persist(arn) {
            warn!(arn, %err, "could not save the execution record");
        }
    }
}

/// Pushes history events and tells the observer.
pub struct Recorder<'a> {
    observer: Option<&'a Observer>,
}

impl Recorder<'_> {
    pub fn push(&self, record: &mut ExecutionRecord, kind: &str, details: Value) -> u64 {
        let id = record.push(kind, details, now_ms());
        if let Some(observer) = self.observer {
            observer(&record.arn, record.history.last().expect("just pushed"));
        }
        id
    }
}
