//! The Step Functions engine: registers state machines and runs their executions, one driver
//! task per execution, with the operations the API serves (start, describe, list, stop, task
//! callbacks). Executions survive a restart (see `execution::store`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::aws::{execution_arn, state_machine_arn};
use crate::clock::{Clock, now_ms};
use crate::sfn::definition::parse;
use crate::sfn::driver::drive;
use crate::sfn::execution::store::{Executions, Running};
use crate::sfn::execution::tokens::{self, Tokens};
use crate::sfn::registry::{Registered, valid_name};
use crate::sfn::states::frame::{MAX_PAYLOAD, Runtime};

pub use crate::sfn::execution::record::{ExecutionRecord, HistoryEvent, Phase, Position};
pub use crate::sfn::execution::store::Observer;
pub use crate::sfn::execution::tokens::{CallbackMessage, TokenError};
pub use crate::sfn::integrations::Integrations;

/// Errors of the execution API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    StateMachineDoesNotExist,
    ExecutionDoesNotExist,
    ExecutionAlreadyExists,
    InvalidName(String),
    InvalidExecutionInput(String),
    /// The state machine's role may not use its KMS key.
    KmsAccessDenied(String),
    /// The change could not be saved; nothing was changed.
    Internal(String),
}

/// The Step Functions interpreter.
#[derive(Clone)]
pub struct Engine {
    machines: Arc<Mutex<BTreeMap<String, Arc<Registered>>>>,
    runtime: Arc<Runtime>,
}

impl Engine {
    /// An engine keeping its executions under `dir`. Executions found there that were running are
    /// resumed once their state machine is registered (see [`Engine::resume`]).
    pub fn open(
        dir: impl Into<PathBuf>,
        integrations: Arc<dyn Integrations>,
        clock: Clock,
        observer: Option<Observer>,
    ) -> std::io::Result<Self> {
        let tokens = Arc::new(Tokens::default());
        let executions = Arc::new(Executions::open(dir.into(), observer, &tokens)?);
        Ok(Self {
            machines: Arc::default(),
            runtime: Arc::new(Runtime {
                executions,
                tokens,
                integrations,
                clock,
            }),
        })
    }

    pub fn clock(&self) -> Clock {
        self.runtime.clock
    }

    /// Registers a state machine under `name`; returns its ARN.
    pub fn register(&self, name: &str, definition: &str, role_arn: &str) -> Result<String, String> {
        self.register_encrypted(name, definition, role_arn, None)
    }

    /// Registers a state machine whose execution data is encrypted with `kms_key`: every
    /// execution then needs its role to be allowed to use that key.
    pub fn register_encrypted(
        &self,
        name: &str,
        definition: &str,
        role_arn: &str,
        kms_key: Option<&str>,
    ) -> Result<String, String> {
        if !valid_name(name) {
            return Err(format!("{name:?} is not a valid state machine name"));
        }
        let machine = parse::definition(definition)?;
        let arn = state_machine_arn(name);
        self.machines.lock().expect("lock").insert(
            arn.clone(),
            Arc::new(Registered {
                arn: arn.clone(),
                name: name.to_owned(),
                machine,
                definition: definition.to_owned(),
                role_arn: role_arn.to_owned(),
                kms_key: kms_key.map(str::to_owned),
                created_ms: now_ms(),
            }),
        );
        Ok(arn)
    }

    pub fn machine(&self, arn: &str) -> Option<Arc<Registered>> {
        self.machines.lock().expect("lock").get(arn).cloned()
    }

    pub fn machines(&self) -> Vec<Arc<Registered>> {
        self.machines
            .lock()
            .expect("lock")
            .values()
            .cloned()
            .collect()
    }

    fn spawn(&self, registered: Arc<Registered>, arn: String) {
        tokio::spawn(drive(Arc::clone(&self.runtime), registered, arn));
    }

    /// Resumes every running execution whose state machine is registered.
    pub fn resume(&self) -> usize {
        let running = self
            .runtime
            .executions
            .summaries(|record| record.status == "RUNNING");
        let mut resumed = 0;
        for record in running {
            if let Some(registered) = self.machine(&record.state_machine_arn) {
                self.spawn(registered, record.arn);
                resumed += 1;
            }
        }
        resumed
    }

    /// StartExecution. The same name and input while running returns the running execution.
    pub fn start(
        &self,
        machine_arn: &str,
        name: Option<&str>,
        input: Option<&str>,
    ) -> Result<(String, i64), ApiError> {
        let registered = self
            .machine(machine_arn)
            .ok_or(ApiError::StateMachineDoesNotExist)?;
        let name = name.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        if !valid_name(&name) {
            return Err(ApiError::InvalidName(format!(
                "{name:?} is not a valid execution name"
            )));
        }
        let input_text = input.unwrap_or("{}");
        let input: Value = serde_json::from_str(input_text).map_err(|err| {
            ApiError::InvalidExecutionInput(format!("input is not valid JSON: {err}"))
        })?;
        if input_text.len() > MAX_PAYLOAD {
            return Err(ApiError::InvalidExecutionInput(format!(
                "input has {} bytes, more than {MAX_PAYLOAD}",
                input_text.len()
            )));
        }
        // Step Functions encrypts the execution's data with the state machine's key, as its role.
        if let Some(key) = &registered.kms_key {
            self.runtime
                .integrations
                .use_key(key, &registered.arn)
                .map_err(|err| ApiError::KmsAccessDenied(err.cause.unwrap_or(err.error)))?;
        }
        let arn = execution_arn(&registered.name, &name);
        if let Some(existing) = self.runtime.executions.record(&arn) {
            if existing.status == "RUNNING" && existing.input == input {
                return Ok((arn, existing.start_ms));
            }
            return Err(ApiError::ExecutionAlreadyExists);
        }
        let start_ms = now_ms();
        let record = ExecutionRecord {
            arn: arn.clone(),
            state_machine_arn: registered.arn.clone(),
            name,
            status: "RUNNING".into(),
            input: input.clone(),
            output: None,
            error: None,
            cause: None,
            start_ms,
            stop_ms: None,
            position: Some(Position {
                state: registered.machine.start_at.clone(),
                input: input.clone(),
                entered_ms: start_ms,
                phase: Phase::Enter,
                variables: BTreeMap::new(),
            }),
            history: Vec::new(),
            closed_tokens: Vec::new(),
        };
        if !self.runtime.executions.insert(Running {
            record,
            cancel: CancellationToken::new(),
        }) {
            // Started by a concurrent call with this name a moment ago.
            return Err(ApiError::ExecutionAlreadyExists);
        }
        self.runtime.executions.update(&arn, |running, recorder| {
            recorder.push(
                &mut running.record,
                "ExecutionStarted",
                json!({"executionStartedEventDetails": {"input": input.to_string(), "inputDetails": {"truncated": false}, "roleArn": registered.role_arn}}),
            );
        });
        if let Err(err) = self.runtime.executions.persist(&arn) {
            self.runtime.executions.remove(&arn);
            return Err(ApiError::Internal(format!(
                "the execution could not be saved: {err}"
            )));
        }
        self.spawn(registered, arn.clone());
        Ok((arn, start_ms))
    }

    /// A snapshot of an execution's record.
    pub fn describe(&self, arn: &str) -> Option<ExecutionRecord> {
        self.runtime.executions.record(arn)
    }

    /// Every execution of a state machine, most recent first.
    pub fn list(&self, machine_arn: &str) -> Result<Vec<ExecutionRecord>, ApiError> {
        if self.machine(machine_arn).is_none() {
            return Err(ApiError::StateMachineDoesNotExist);
        }
        let mut records = self
            .runtime
            .executions
            .summaries(|record| record.state_machine_arn == machine_arn);
        // Most recent first: running executions by start, closed ones by stop.
        records.sort_by_key(|r| std::cmp::Reverse(r.stop_ms.unwrap_or(r.start_ms)));
        Ok(records)
    }

    /// StopExecution: the execution ends as ABORTED and its pending callback closes.
    pub fn stop(
        &self,
        arn: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<i64, ApiError> {
        let tokens = &self.runtime.tokens;
        let stop_ms = self
            .runtime
            .executions
            .update(arn, |running, recorder| {
                if running.record.status != "RUNNING" {
                    return running.record.stop_ms.unwrap_or_else(now_ms);
                }
                running.cancel.cancel();
                let record = &mut running.record;
                if let Some(Position {
                    phase: Phase::Callback { token, .. },
                    ..
                }) = &record.position
                {
                    let token_hash = tokens::hash(token);
                    tokens.close(&token_hash);
                    record.closed_tokens.push(token_hash);
                }
                record.status = "ABORTED".into();
                record.error = error.clone();
                record.cause = cause.clone();
                let stop_ms = now_ms();
                record.stop_ms = Some(stop_ms);
                record.position = None;
                recorder.push(
                    record,
                    "ExecutionAborted",
                    json!({"executionAbortedEventDetails": {"error": error, "cause": cause}}),
                );
                stop_ms
            })
            .ok_or(ApiError::ExecutionDoesNotExist)?;
        // The execution is stopped in memory either way; a caller told of a failed save knows
        // that a restart would resume it, and can stop it again.
        self.runtime
            .executions
            .persist(arn)
            .map_err(|err| ApiError::Internal(format!("the stop could not be saved: {err}")))?;
        Ok(stop_ms)
    }

    /// Delivers SendTaskSuccess, SendTaskFailure or SendTaskHeartbeat.
    pub fn callback(&self, token: &str, message: CallbackMessage) -> Result<(), TokenError> {
        self.runtime.tokens.deliver(token, message)
    }

    /// Records an event on an execution (tests use this to play a late task).
    #[cfg(test)]
    pub(crate) fn event(&self, arn: &str, kind: &str, details: Value) {
        self.runtime.executions.event(arn, kind, details);
    }
}
