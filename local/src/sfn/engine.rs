//! The interpreter: runs executions of registered state machines, one task per execution, and
//! keeps each execution's record (status, position, history, tokens) on disk after every
//! transition, so a restarted stack resumes them: a Wait sleeps what is left, a callback task
//! keeps waiting for its token, any other state runs again from its start.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::clock::{Clock, now_ms, rfc3339_ms};
use crate::sfn::choice;
use crate::sfn::distributed;
use crate::sfn::machine::Machine;
use crate::sfn::paths::{self, StatesError};

/// The largest state input or output, in bytes.
pub const MAX_PAYLOAD: usize = 262_144;
pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "000000000000";

/// What tasks call: the in-process Lambda functions and SNS.
pub trait Integrations: Send + Sync + 'static {
    /// Invokes a function; a function error comes back with its `errorType` as the error name
    /// and the whole error payload as the cause.
    fn invoke(
        &self,
        function: String,
        payload: Value,
    ) -> BoxFuture<'static, Result<Value, StatesError>>;
    /// Publishes to SNS with Publish's parameters; returns `{"MessageId": ...}`.
    fn publish(&self, parameters: Value) -> BoxFuture<'static, Result<Value, StatesError>>;
    /// Lists every object of `bucket` under `prefix`, in key order, as a Distributed Map's
    /// `s3:listObjectsV2` reader presents them (`Etag`, `Key`, `LastModified`, `Size`,
    /// `StorageClass`).
    fn list_objects(
        &self,
        bucket: String,
        prefix: String,
    ) -> BoxFuture<'static, Result<Vec<Value>, StatesError>>;
    /// Authorizes a call the state machine's role makes on its own behalf: starting,
    /// describing and stopping a Distributed Map's child executions.
    fn authorize(&self, action: &str, resource: &str) -> Result<(), StatesError> {
        let _ = (action, resource);
        Ok(())
    }
}

/// Receives every history event as it is recorded (the demo prints state names from these).
pub type Observer = Arc<dyn Fn(&str, &HistoryEvent) + Send + Sync>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEvent {
    pub id: u64,
    pub previous_event_id: Option<u64>,
    pub timestamp_ms: i64,
    #[serde(rename = "type")]
    pub kind: String,
    /// The details object under its key, e.g. `{"stateEnteredEventDetails": {...}}`.
    pub details: Value,
}

/// Where a running execution is, kept so that a restart resumes there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    pub state: String,
    pub input: Value,
    pub entered_ms: i64,
    pub phase: Phase,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Phase {
    /// About to run the state (again, after a restart).
    Enter,
    /// In a Wait state until this instant.
    Wait { until_ms: i64 },
    /// A callback task waiting for its token.
    #[serde(rename_all = "camelCase")]
    Callback {
        token: String,
        timeout_at_ms: Option<i64>,
        retry_count: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRecord {
    pub arn: String,
    pub state_machine_arn: String,
    pub name: String,
    pub status: String,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub start_ms: i64,
    pub stop_ms: Option<i64>,
    pub position: Option<Position>,
    pub history: Vec<HistoryEvent>,
    /// Tokens whose task has closed: a callback with one of these is `TaskTimedOut`.
    #[serde(default)]
    pub closed_tokens: Vec<String>,
}

/// A registered state machine.
pub struct Registered {
    pub arn: String,
    pub name: String,
    pub machine: Machine,
    pub definition: String,
    pub role_arn: String,
    pub created_ms: i64,
}

/// A message to a waiting callback task.
#[derive(Debug)]
pub enum CallbackMessage {
    Success(Value),
    Failure {
        error: String,
        cause: Option<String>,
    },
    Heartbeat,
}

struct TokenSlot {
    sender: Option<mpsc::UnboundedSender<CallbackMessage>>,
    receiver: Option<mpsc::UnboundedReceiver<CallbackMessage>>,
}

/// Why a callback could not be delivered (the SendTask* error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    InvalidToken,
    TaskDoesNotExist,
    TaskTimedOut,
}

/// Errors of the execution API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    StateMachineDoesNotExist,
    ExecutionDoesNotExist,
    ExecutionAlreadyExists,
    InvalidName(String),
    InvalidExecutionInput(String),
}

struct Running {
    record: ExecutionRecord,
    cancel: CancellationToken,
}

struct Inner {
    machines: Mutex<BTreeMap<String, Arc<Registered>>>,
    executions: Mutex<BTreeMap<String, Running>>,
    tokens: Mutex<HashMap<String, TokenSlot>>,
    dir: PathBuf,
    integrations: Arc<dyn Integrations>,
    clock: Clock,
    observer: Option<Observer>,
}

/// The Step Functions interpreter.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// What running one state leads to.
enum Transition {
    Next { state: String, output: Value },
    End(Value),
}

/// What a state run needs to know about its execution.
struct ExecutionContext {
    arn: String,
    name: String,
    input: Value,
    start_ms: i64,
    machine_arn: String,
    machine_name: String,
    role_arn: String,
    /// Only the top-level machine records its position; states inside a Map do not.
    top_level: bool,
}

fn token_hash(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new task token. It contains `+`, `/` and `=` on purpose, as real tokens do.
fn mint_token() -> String {
    let bytes: [u8; 64] = rand::random();
    let mut token = base64::engine::general_purpose::STANDARD.encode(bytes);
    token.push_str("+/=");
    token
}

fn well_formed(token: &str) -> bool {
    token
        .strip_suffix("+/=")
        .and_then(|body| base64::engine::general_purpose::STANDARD.decode(body).ok())
        .is_some_and(|bytes| bytes.len() == 64)
}

/// Execution and state machine names: 1-80 characters, none of the forbidden ones.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 80
        && !name.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c)
                || ('\u{7f}'..='\u{9f}').contains(&c)
                || c == '\u{fffe}'
                || c == '\u{ffff}'
        })
}

fn size_checked(value: Value, what: &str) -> Result<Value, StatesError> {
    let size = value.to_string().len();
    if size > MAX_PAYLOAD {
        return Err(StatesError::new(
            "States.DataLimitExceeded",
            format!("the {what} has {size} bytes, more than the {MAX_PAYLOAD} allowed"),
        ));
    }
    Ok(value)
}

/// Whether `error` is matched by a Retry or Catch `ErrorEquals` list.
fn error_matches(names: &Value, error: &str) -> bool {
    names
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|name| match name {
            "States.ALL" => !matches!(error, "States.DataLimitExceeded" | "States.Runtime"),
            "States.TaskFailed" => !matches!(
                error,
                "States.Timeout"
                    | "States.HeartbeatTimeout"
                    | "States.DataLimitExceeded"
                    | "States.Runtime"
            ),
            "States.Timeout" => matches!(error, "States.Timeout" | "States.HeartbeatTimeout"),
            exact => exact == error,
        })
}

/// Errors that end the execution whatever the state's Retry and Catch say.
fn terminal(error: &StatesError) -> bool {
    error.error == "States.DataLimitExceeded"
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
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let mut executions = BTreeMap::new();
        let mut tokens = HashMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let record: ExecutionRecord = match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
            {
                Ok(record) => record,
                Err(err) => {
                    warn!(?path, %err, "unreadable execution record skipped");
                    continue;
                }
            };
            for hash in &record.closed_tokens {
                tokens.insert(
                    hash.clone(),
                    TokenSlot {
                        sender: None,
                        receiver: None,
                    },
                );
            }
            if let Some(Position {
                phase: Phase::Callback { token, .. },
                ..
            }) = &record.position
                && record.status == "RUNNING"
            {
                let (sender, receiver) = mpsc::unbounded_channel();
                tokens.insert(
                    token_hash(token),
                    TokenSlot {
                        sender: Some(sender),
                        receiver: Some(receiver),
                    },
                );
            }
            executions.insert(
                record.arn.clone(),
                Running {
                    record,
                    cancel: CancellationToken::new(),
                },
            );
        }
        Ok(Self {
            inner: Arc::new(Inner {
                machines: Mutex::new(BTreeMap::new()),
                executions: Mutex::new(executions),
                tokens: Mutex::new(tokens),
                dir,
                integrations,
                clock,
                observer,
            }),
        })
    }

    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// Registers a state machine under `name`; returns its ARN.
    pub fn register(&self, name: &str, definition: &str, role_arn: &str) -> Result<String, String> {
        if !valid_name(name) {
            return Err(format!("{name:?} is not a valid state machine name"));
        }
        let machine = Machine::parse(definition)?;
        let arn = format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}");
        self.inner.machines.lock().expect("lock").insert(
            arn.clone(),
            Arc::new(Registered {
                arn: arn.clone(),
                name: name.to_owned(),
                machine,
                definition: definition.to_owned(),
                role_arn: role_arn.to_owned(),
                created_ms: now_ms(),
            }),
        );
        Ok(arn)
    }

    pub fn machine(&self, arn: &str) -> Option<Arc<Registered>> {
        self.inner.machines.lock().expect("lock").get(arn).cloned()
    }

    pub fn machines(&self) -> Vec<Arc<Registered>> {
        self.inner
            .machines
            .lock()
            .expect("lock")
            .values()
            .cloned()
            .collect()
    }

    /// Resumes every running execution whose state machine is registered.
    pub fn resume(&self) -> usize {
        let running: Vec<String> = self
            .inner
            .executions
            .lock()
            .expect("lock")
            .values()
            .filter(|r| r.record.status == "RUNNING")
            .filter(|r| self.machine(&r.record.state_machine_arn).is_some())
            .map(|r| r.record.arn.clone())
            .collect();
        for arn in &running {
            tokio::spawn(Arc::clone(&self.inner).drive(arn.clone()));
        }
        running.len()
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
        let arn = format!(
            "arn:aws:states:{REGION}:{ACCOUNT}:execution:{}:{name}",
            registered.name
        );
        let start_ms = now_ms();
        {
            let mut executions = self.inner.executions.lock().expect("lock");
            if let Some(existing) = executions.get(&arn) {
                if existing.record.status == "RUNNING" && existing.record.input == input {
                    return Ok((arn, existing.record.start_ms));
                }
                return Err(ApiError::ExecutionAlreadyExists);
            }
            let mut record = ExecutionRecord {
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
                }),
                history: Vec::new(),
                closed_tokens: Vec::new(),
            };
            push_event(
                &mut record,
                "ExecutionStarted",
                json!({"executionStartedEventDetails": {"input": input.to_string(), "inputDetails": {"truncated": false}, "roleArn": registered.role_arn}}),
                self.inner.observer.as_ref(),
            );
            executions.insert(
                arn.clone(),
                Running {
                    record,
                    cancel: CancellationToken::new(),
                },
            );
        }
        self.inner.persist(&arn);
        tokio::spawn(Arc::clone(&self.inner).drive(arn.clone()));
        Ok((arn, start_ms))
    }

    /// A snapshot of an execution's record.
    pub fn describe(&self, arn: &str) -> Option<ExecutionRecord> {
        self.inner
            .executions
            .lock()
            .expect("lock")
            .get(arn)
            .map(|r| r.record.clone())
    }

    /// Every execution of a state machine, most recent first.
    pub fn list(&self, machine_arn: &str) -> Result<Vec<ExecutionRecord>, ApiError> {
        if self.machine(machine_arn).is_none() {
            return Err(ApiError::StateMachineDoesNotExist);
        }
        let mut records: Vec<ExecutionRecord> = self
            .inner
            .executions
            .lock()
            .expect("lock")
            .values()
            .filter(|r| r.record.state_machine_arn == machine_arn)
            .map(|r| {
                let mut record = r.record.clone();
                record.history.clear();
                record
            })
            .collect();
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
        let stop_ms = {
            let mut executions = self.inner.executions.lock().expect("lock");
            let running = executions
                .get_mut(arn)
                .ok_or(ApiError::ExecutionDoesNotExist)?;
            if running.record.status != "RUNNING" {
                return Ok(running.record.stop_ms.unwrap_or_else(now_ms));
            }
            running.cancel.cancel();
            let record = &mut running.record;
            if let Some(Position {
                phase: Phase::Callback { token, .. },
                ..
            }) = &record.position
            {
                let hash = token_hash(token);
                record.closed_tokens.push(hash.clone());
                if let Some(slot) = self.inner.tokens.lock().expect("lock").get_mut(&hash) {
                    slot.sender = None;
                    slot.receiver = None;
                }
            }
            record.status = "ABORTED".into();
            record.error = error.clone();
            record.cause = cause.clone();
            record.stop_ms = Some(now_ms());
            record.position = None;
            push_event(
                record,
                "ExecutionAborted",
                json!({"executionAbortedEventDetails": {"error": error, "cause": cause}}),
                self.inner.observer.as_ref(),
            );
            record.stop_ms.unwrap_or_default()
        };
        self.inner.persist(arn);
        Ok(stop_ms)
    }

    /// Delivers SendTaskSuccess, SendTaskFailure or SendTaskHeartbeat.
    pub fn callback(&self, token: &str, message: CallbackMessage) -> Result<(), TokenError> {
        let hash = token_hash(token);
        let mut tokens = self.inner.tokens.lock().expect("lock");
        let Some(slot) = tokens.get_mut(&hash) else {
            return Err(if well_formed(token) {
                TokenError::TaskDoesNotExist
            } else {
                TokenError::InvalidToken
            });
        };
        let Some(sender) = &slot.sender else {
            return Err(TokenError::TaskTimedOut);
        };
        let closes = !matches!(message, CallbackMessage::Heartbeat);
        if sender.send(message).is_err() {
            return Err(TokenError::TaskTimedOut);
        }
        if closes {
            // Closed at once, so a second click answers TaskTimedOut even before the run moves on.
            slot.sender = None;
        }
        Ok(())
    }
}

fn push_event(
    record: &mut ExecutionRecord,
    kind: &str,
    details: Value,
    observer: Option<&Observer>,
) {
    let id = record.history.len() as u64 + 1;
    let event = HistoryEvent {
        id,
        previous_event_id: (id > 1).then_some(id - 1),
        timestamp_ms: now_ms(),
        kind: kind.to_owned(),
        details,
    };
    if let Some(observer) = observer {
        observer(&record.arn, &event);
    }
    record.history.push(event);
}

/// The history event name prefix of a state type (`TaskStateEntered`, `ChoiceStateExited`, ...).
fn state_event(kind: &str, suffix: &str) -> String {
    format!("{kind}State{suffix}")
}

impl Inner {
    fn persist(&self, arn: &str) {
        let record = match self.executions.lock().expect("lock").get(arn) {
            Some(running) => running.record.clone(),
            None => return,
        };
        let path = self.dir.join(format!("{}.json", token_hash(arn)));
        let temporary = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        let written = serde_json::to_vec(&record)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&temporary, bytes))
            .and_then(|()| std::fs::rename(&temporary, &path));
        if let Err(err) = written {
            warn!(arn, %err, "could not save the execution record");
        }
    }

    /// Appends an in-state event. A closed execution's history ends with its closing event: a
    /// task still finishing after StopExecution (whose result is discarded) leaves no trace, as
    /// in AWS.
    fn event(&self, arn: &str, kind: &str, details: Value) {
        if let Some(running) = self.executions.lock().expect("lock").get_mut(arn)
            && running.record.status == "RUNNING"
        {
            push_event(&mut running.record, kind, details, self.observer.as_ref());
        }
    }

    fn set_phase(&self, arn: &str, phase: Phase) {
        if let Some(running) = self.executions.lock().expect("lock").get_mut(arn)
            && let Some(position) = &mut running.record.position
        {
            position.phase = phase;
        }
        self.persist(arn);
    }

    /// Runs an execution from its position until it ends or is stopped.
    async fn drive(self: Arc<Self>, arn: String) {
        loop {
            let Some((record, cancel)) = self
                .executions
                .lock()
                .expect("lock")
                .get(&arn)
                .map(|r| (r.record.clone(), r.cancel.clone()))
            else {
                return;
            };
            if record.status != "RUNNING" {
                return;
            }
            let Some(registered) = self
                .machines
                .lock()
                .expect("lock")
                .get(&record.state_machine_arn)
                .cloned()
            else {
                return;
            };
            let Some(position) = record.position.clone() else {
                return;
            };
            let context = ExecutionContext {
                arn: arn.clone(),
                name: record.name.clone(),
                input: record.input.clone(),
                start_ms: record.start_ms,
                machine_arn: registered.arn.clone(),
                machine_name: registered.name.clone(),
                role_arn: registered.role_arn.clone(),
                top_level: true,
            };
            let step = self.run_state(
                &context,
                &registered.machine,
                &position.state,
                position.input.clone(),
                position.entered_ms,
                position.phase.clone(),
            );
            let outcome = tokio::select! {
                outcome = step => outcome,
                () = cancel.cancelled() => return,
            };
            {
                let mut executions = self.executions.lock().expect("lock");
                let Some(running) = executions.get_mut(&arn) else {
                    return;
                };
                if running.record.status != "RUNNING" {
                    return;
                }
                let record = &mut running.record;
                match outcome {
                    Ok(Transition::Next { state, output }) => {
                        record.position = Some(Position {
                            state,
                            input: output,
                            entered_ms: now_ms(),
                            phase: Phase::Enter,
                        });
                    }
                    Ok(Transition::End(output)) => {
                        record.status = "SUCCEEDED".into();
                        record.stop_ms = Some(now_ms());
                        record.position = None;
                        push_event(
                            record,
                            "ExecutionSucceeded",
                            json!({"executionSucceededEventDetails": {"output": output.to_string(), "outputDetails": {"truncated": false}}}),
                            self.observer.as_ref(),
                        );
                        record.output = Some(output);
                    }
                    Err(err) => {
                        record.status = "FAILED".into();
                        record.stop_ms = Some(now_ms());
                        record.position = None;
                        record.error = Some(err.error.clone());
                        record.cause = err.cause.clone();
                        push_event(
                            record,
                            "ExecutionFailed",
                            json!({"executionFailedEventDetails": {"error": err.error, "cause": err.cause}}),
                            self.observer.as_ref(),
                        );
                    }
                }
            }
            self.persist(&arn);
        }
    }

    fn context_object(
        &self,
        context: &ExecutionContext,
        state: &str,
        entered_ms: i64,
        retry_count: u32,
    ) -> Value {
        json!({
            "Execution": {
                "Id": context.arn,
                "Input": context.input,
                "Name": context.name,
                "RoleArn": context.role_arn,
                "StartTime": rfc3339_ms(context.start_ms),
                "RedriveCount": 0,
            },
            "State": {"EnteredTime": rfc3339_ms(entered_ms), "Name": state, "RetryCount": retry_count},
            "StateMachine": {"Id": context.machine_arn, "Name": context.machine_name},
        })
    }

    /// Runs one state to its transition, with its Retry and Catch.
    fn run_state<'a>(
        self: &'a Arc<Self>,
        context: &'a ExecutionContext,
        machine: &'a Machine,
        name: &'a str,
        raw: Value,
        entered_ms: i64,
        phase: Phase,
    ) -> BoxFuture<'a, Result<Transition, StatesError>> {
        Box::pin(async move {
            let state = machine
                .state(name)
                .ok_or_else(|| StatesError::new("States.Runtime", format!("no state {name}")))?;
            let kind = state["Type"].as_str().unwrap_or_default();
            if phase == Phase::Enter && context.top_level {
                self.event(
                    &context.arn,
                    &state_event(kind, "Entered"),
                    json!({"stateEnteredEventDetails": {"name": name, "input": raw.to_string()}}),
                );
            }
            let next = |output: Value| -> Result<Transition, StatesError> {
                let output = size_checked(output, "state output")?;
                Ok(if state["End"] == Value::Bool(true) {
                    Transition::End(output)
                } else {
                    Transition::Next {
                        state: state["Next"].as_str().unwrap_or_default().to_owned(),
                        output,
                    }
                })
            };
            let transition = match kind {
                "Pass" => {
                    let ctx = self.context_object(context, name, entered_ms, 0);
                    let effective = paths::select(&raw, state.get("InputPath"), &ctx)?;
                    let effective = match state.get("Parameters") {
                        Some(template) => paths::build(template, &effective, &ctx)?,
                        None => effective,
                    };
                    let result = state.get("Result").cloned().unwrap_or(effective);
                    let combined = paths::put(raw.clone(), state.get("ResultPath"), result)?;
                    next(paths::select(&combined, state.get("OutputPath"), &ctx)?)
                }
                "Choice" => {
                    let ctx = self.context_object(context, name, entered_ms, 0);
                    let effective = paths::select(&raw, state.get("InputPath"), &ctx)?;
                    let rules = state["Choices"].as_array().cloned().unwrap_or_default();
                    let target = match choice::choose(&rules, &effective, &ctx)? {
                        Some(target) => target,
                        None => state["Default"]
                            .as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| {
                                StatesError::new(
                                    "States.NoChoiceMatched",
                                    format!(
                                        "no Choice rule of {name} matched and it has no Default"
                                    ),
                                )
                            })?,
                    };
                    let output = size_checked(
                        paths::select(&effective, state.get("OutputPath"), &ctx)?,
                        "state output",
                    )?;
                    Ok(Transition::Next {
                        state: target,
                        output,
                    })
                }
                "Wait" => {
                    let ctx = self.context_object(context, name, entered_ms, 0);
                    let effective = paths::select(&raw, state.get("InputPath"), &ctx)?;
                    let until_ms = match phase {
                        Phase::Wait { until_ms } => until_ms,
                        _ => {
                            let until_ms = self.wait_until(state, &effective, &ctx)?;
                            if context.top_level {
                                self.set_phase(&context.arn, Phase::Wait { until_ms });
                            }
                            until_ms
                        }
                    };
                    self.clock.sleep_until_ms(until_ms).await;
                    next(paths::select(&effective, state.get("OutputPath"), &ctx)?)
                }
                "Succeed" => {
                    let ctx = self.context_object(context, name, entered_ms, 0);
                    let effective = paths::select(&raw, state.get("InputPath"), &ctx)?;
                    Ok(Transition::End(paths::select(
                        &effective,
                        state.get("OutputPath"),
                        &ctx,
                    )?))
                }
                "Fail" => {
                    let ctx = self.context_object(context, name, entered_ms, 0);
                    let pick = |field: &str, path_field: &str| -> Option<String> {
                        state[field].as_str().map(str::to_owned).or_else(|| {
                            state[path_field]
                                .as_str()
                                .and_then(|p| paths::read(p, &raw, &ctx).ok())
                                .and_then(|v| v.as_str().map(str::to_owned))
                        })
                    };
                    Err(StatesError {
                        error: pick("Error", "ErrorPath").unwrap_or_else(|| "States.Fail".into()),
                        cause: pick("Cause", "CausePath"),
                    })
                }
                "Task" | "Map" => {
                    self.run_with_retries(context, machine, name, state, raw, entered_ms, phase)
                        .await
                }
                other => Err(StatesError::new(
                    "States.Runtime",
                    format!("state type {other} is not supported"),
                )),
            };
            if let Ok(Transition::Next { output, .. } | Transition::End(output)) = &transition
                && context.top_level
                && kind != "Fail"
            {
                self.event(
                    &context.arn,
                    &state_event(kind, "Exited"),
                    json!({"stateExitedEventDetails": {"name": name, "output": output.to_string()}}),
                );
            }
            transition
        })
    }

    fn wait_until(
        &self,
        state: &Value,
        effective: &Value,
        ctx: &Value,
    ) -> Result<i64, StatesError> {
        let runtime = |cause: String| StatesError::new("States.Runtime", cause);
        let seconds = |value: &Value| -> Result<f64, StatesError> {
            value.as_f64().filter(|s| *s >= 0.0).ok_or_else(|| {
                runtime(format!(
                    "Wait seconds must be a non-negative number, got {value}"
                ))
            })
        };
        let timestamp = |value: &Value| -> Result<i64, StatesError> {
            let text = value
                .as_str()
                .ok_or_else(|| runtime(format!("Wait timestamp must be a string, got {value}")))?;
            let at =
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .map_err(|err| {
                    runtime(format!("Wait timestamp {text:?} is not RFC 3339: {err}"))
                })?;
            let real_ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
            // The time left until the timestamp is workflow time too, so it is scaled.
            let left = (real_ms - now_ms()).max(0) as f64 / 1000.0;
            Ok(self.clock.after_ms(left))
        };
        if let Some(value) = state.get("Seconds") {
            return Ok(self.clock.after_ms(seconds(value)?));
        }
        if let Some(path) = state["SecondsPath"].as_str() {
            let value = paths::read(path, effective, ctx).map_err(runtime)?;
            return Ok(self.clock.after_ms(seconds(&value)?));
        }
        if let Some(value) = state.get("Timestamp") {
            return timestamp(value);
        }
        let path = state["TimestampPath"].as_str().unwrap_or("$");
        timestamp(&paths::read(path, effective, ctx).map_err(runtime)?)
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_with_retries(
        self: &Arc<Self>,
        context: &ExecutionContext,
        machine: &Machine,
        name: &str,
        state: &Value,
        raw: Value,
        entered_ms: i64,
        phase: Phase,
    ) -> Result<Transition, StatesError> {
        let retriers = state["Retry"].as_array().cloned().unwrap_or_default();
        let mut attempts = vec![0u64; retriers.len()];
        let mut retry_count: u32 = match &phase {
            Phase::Callback { retry_count, .. } => *retry_count,
            _ => 0,
        };
        let mut resume = Some(phase);
        loop {
            let attempt = if state["Type"] == "Map" {
                self.run_map(context, machine, name, state, &raw, entered_ms)
                    .await
            } else {
                self.run_task(
                    context,
                    name,
                    state,
                    &raw,
                    entered_ms,
                    retry_count,
                    resume.take(),
                )
                .await
            };
            let error = match attempt {
                Ok(output) => {
                    let output = size_checked(output, "state output")?;
                    return Ok(if state["End"] == Value::Bool(true) {
                        Transition::End(output)
                    } else {
                        Transition::Next {
                            state: state["Next"].as_str().unwrap_or_default().to_owned(),
                            output,
                        }
                    });
                }
                Err(error) if terminal(&error) => return Err(error),
                Err(error) => error,
            };
            if let Some(index) = retriers
                .iter()
                .position(|r| error_matches(&r["ErrorEquals"], &error.error))
            {
                let retrier = &retriers[index];
                let max_attempts = retrier["MaxAttempts"].as_u64().unwrap_or(3);
                if attempts[index] < max_attempts {
                    let interval = retrier["IntervalSeconds"].as_f64().unwrap_or(1.0);
                    let backoff = retrier["BackoffRate"].as_f64().unwrap_or(2.0);
                    let mut delay =
                        interval * backoff.powi(i32::try_from(attempts[index]).unwrap_or(i32::MAX));
                    if let Some(cap) = retrier["MaxDelaySeconds"].as_f64() {
                        delay = delay.min(cap);
                    }
                    if retrier["JitterStrategy"] == "FULL" {
                        delay *= rand::random::<f64>();
                    }
                    attempts[index] += 1;
                    retry_count += 1;
                    self.clock.sleep(delay).await;
                    continue;
                }
            }
            let catchers = state["Catch"].as_array().cloned().unwrap_or_default();
            if let Some(catcher) = catchers
                .iter()
                .find(|c| error_matches(&c["ErrorEquals"], &error.error))
            {
                let mut details = json!({"Error": error.error});
                if let Some(cause) = &error.cause {
                    details["Cause"] = Value::String(cause.clone());
                }
                let output = paths::put(raw.clone(), catcher.get("ResultPath"), details)?;
                return Ok(Transition::Next {
                    state: catcher["Next"].as_str().unwrap_or_default().to_owned(),
                    output: size_checked(output, "state output")?,
                });
            }
            return Err(error);
        }
    }

    fn task_details(resource: &str) -> (&'static str, String) {
        if let Some(rest) = resource.strip_prefix("arn:aws:states:::") {
            let (service, action) = rest.split_once(':').unwrap_or((rest, ""));
            let service = match service {
                "lambda" => "lambda",
                "sns" => "sns",
                _ => "states",
            };
            (service, action.to_owned())
        } else {
            ("lambda", "invoke".to_owned())
        }
    }

    /// One attempt of a Task state: returns the state output (after ResultSelector, ResultPath
    /// and OutputPath) or the task's error.
    #[allow(clippy::too_many_arguments)]
    async fn run_task(
        self: &Arc<Self>,
        context: &ExecutionContext,
        name: &str,
        state: &Value,
        raw: &Value,
        entered_ms: i64,
        retry_count: u32,
        resume: Option<Phase>,
    ) -> Result<Value, StatesError> {
        let resource = state["Resource"].as_str().unwrap_or_default();
        let callback = resource.ends_with(".waitForTaskToken");
        let (resource_type, action) = Self::task_details(resource);
        let mut ctx = self.context_object(context, name, entered_ms, retry_count);
        let effective = paths::select(raw, state.get("InputPath"), &ctx)?;
        let timeout = match (
            state.get("TimeoutSeconds"),
            state["TimeoutSecondsPath"].as_str(),
        ) {
            (Some(seconds), _) => seconds.as_f64(),
            (None, Some(path)) => Some(
                paths::read(path, &effective, &ctx)
                    .ok()
                    .and_then(|v| v.as_f64())
                    .filter(|s| *s > 0.0)
                    .ok_or_else(|| {
                        StatesError::new(
                            "States.Runtime",
                            format!("TimeoutSecondsPath {path} is not a positive number"),
                        )
                    })?,
            ),
            (None, None) => None,
        };
        let heartbeat = state["HeartbeatSeconds"].as_f64();

        // A callback task resumed after a restart keeps waiting for the token it already sent.
        let resumed = match resume {
            Some(Phase::Callback {
                token,
                timeout_at_ms,
                ..
            }) if callback => Some((token, timeout_at_ms)),
            _ => None,
        };
        let result = match resumed {
            Some((token, timeout_at_ms)) => {
                self.await_callback(context, &token, timeout_at_ms, heartbeat)
                    .await
            }
            None => {
                let token = callback.then(mint_token);
                if let Some(token) = &token {
                    ctx["Task"] = json!({"Token": token});
                }
                let parameters = match state.get("Parameters") {
                    Some(template) => paths::build(template, &effective, &ctx)?,
                    None => effective.clone(),
                };
                let parameters = size_checked(parameters, "task input")?;
                if context.top_level {
                    self.event(
                        &context.arn,
                        "TaskScheduled",
                        json!({"taskScheduledEventDetails": {"resourceType": resource_type, "resource": action, "region": REGION, "parameters": parameters.to_string(), "timeoutInSeconds": timeout}}),
                    );
                    self.event(&context.arn, "TaskStarted", json!({"taskStartedEventDetails": {"resourceType": resource_type, "resource": action}}));
                }
                // A callback task waits for the world (a reviewer), which is workflow time and
                // scaled; any other task times the work it does, which runs in real time.
                let timeout_at_ms = timeout.map(|seconds| {
                    if callback {
                        self.clock.after_ms(seconds)
                    } else {
                        now_ms().saturating_add((seconds * 1000.0) as i64)
                    }
                });
                let work = async {
                    match &token {
                        Some(token) => {
                            self.open_token(context, token, timeout_at_ms, retry_count);
                            self.call(resource, &parameters).await?;
                            if context.top_level {
                                self.event(&context.arn, "TaskSubmitted", json!({"taskSubmittedEventDetails": {"resourceType": resource_type, "resource": action, "output": "{}"}}));
                            }
                            self.await_callback(context, token, timeout_at_ms, heartbeat)
                                .await
                        }
                        None => self.call(resource, &parameters).await,
                    }
                };
                let outcome = match timeout_at_ms {
                    Some(at) => tokio::select! {
                        outcome = work => outcome,
                        () = self.clock.sleep_until_ms(at) => Err(StatesError::new("States.Timeout", format!("the task {name} timed out"))),
                    },
                    None => work.await,
                };
                if let (Some(token), Err(_)) = (&token, &outcome) {
                    self.close_token(context, token);
                }
                outcome
            }
        };
        let result = match result {
            Ok(result) => size_checked(result, "task result")?,
            Err(err) => {
                if context.top_level {
                    let kind = if err.error == "States.Timeout" {
                        "TaskTimedOut"
                    } else {
                        "TaskFailed"
                    };
                    let key = if kind == "TaskTimedOut" {
                        "taskTimedOutEventDetails"
                    } else {
                        "taskFailedEventDetails"
                    };
                    self.event(
                        &context.arn,
                        kind,
                        json!({ key: {"resourceType": resource_type, "resource": action, "error": err.error, "cause": err.cause} }),
                    );
                }
                return Err(err);
            }
        };
        if context.top_level {
            self.event(
                &context.arn,
                "TaskSucceeded",
                json!({"taskSucceededEventDetails": {"resourceType": resource_type, "resource": action, "output": result.to_string()}}),
            );
        }
        let selected = match state.get("ResultSelector") {
            Some(template) => paths::build(template, &result, &ctx)?,
            None => result,
        };
        let combined = paths::put(raw.clone(), state.get("ResultPath"), selected)?;
        paths::select(&combined, state.get("OutputPath"), &ctx)
    }

    /// Calls a task's resource and returns its result.
    async fn call(&self, resource: &str, parameters: &Value) -> Result<Value, StatesError> {
        if resource.starts_with("arn:aws:states:::lambda:invoke") {
            let function = parameters["FunctionName"]
                .as_str()
                .ok_or_else(|| StatesError::new("States.Runtime", "FunctionName must be a string"))?
                .to_owned();
            let payload = parameters.get("Payload").cloned().unwrap_or(Value::Null);
            let output = self.integrations.invoke(function, payload).await?;
            let request_id = uuid::Uuid::new_v4().to_string();
            return Ok(json!({
                "ExecutedVersion": "$LATEST",
                "Payload": output,
                "SdkHttpMetadata": {"HttpHeaders": {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST", "x-amzn-RequestId": request_id}, "HttpStatusCode": 200},
                "SdkResponseMetadata": {"RequestId": request_id},
                "StatusCode": 200,
            }));
        }
        if resource == "arn:aws:states:::sns:publish" {
            let published = self.integrations.publish(parameters.clone()).await?;
            let request_id = uuid::Uuid::new_v4().to_string();
            return Ok(json!({
                "MessageId": published["MessageId"],
                "SdkHttpMetadata": {"HttpHeaders": {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, "HttpStatusCode": 200},
                "SdkResponseMetadata": {"RequestId": request_id},
            }));
        }
        // A function ARN as the resource: the legacy form, which returns only the output.
        self.integrations
            .invoke(resource.to_owned(), parameters.clone())
            .await
    }

    fn open_token(
        &self,
        context: &ExecutionContext,
        token: &str,
        timeout_at_ms: Option<i64>,
        retry_count: u32,
    ) {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.tokens.lock().expect("lock").insert(
            token_hash(token),
            TokenSlot {
                sender: Some(sender),
                receiver: Some(receiver),
            },
        );
        if context.top_level {
            self.set_phase(
                &context.arn,
                Phase::Callback {
                    token: token.to_owned(),
                    timeout_at_ms,
                    retry_count,
                },
            );
        }
    }

    fn close_token(&self, context: &ExecutionContext, token: &str) {
        let hash = token_hash(token);
        if let Some(slot) = self.tokens.lock().expect("lock").get_mut(&hash) {
            slot.sender = None;
            slot.receiver = None;
        }
        if let Some(running) = self.executions.lock().expect("lock").get_mut(&context.arn)
            && !running.record.closed_tokens.contains(&hash)
        {
            running.record.closed_tokens.push(hash);
        }
    }

    async fn await_callback(
        &self,
        context: &ExecutionContext,
        token: &str,
        timeout_at_ms: Option<i64>,
        heartbeat: Option<f64>,
    ) -> Result<Value, StatesError> {
        let receiver = self
            .tokens
            .lock()
            .expect("lock")
            .get_mut(&token_hash(token))
            .and_then(|slot| slot.receiver.take());
        let Some(mut receiver) = receiver else {
            return Err(StatesError::new(
                "States.Runtime",
                "the task token is no longer open",
            ));
        };
        let deadline = async {
            match timeout_at_ms {
                Some(at) => self.clock.sleep_until_ms(at).await,
                None => futures::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        let outcome = loop {
            let beat = async {
                match heartbeat {
                    Some(seconds) => self.clock.sleep(seconds).await,
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                message = receiver.recv() => match message {
                    Some(CallbackMessage::Heartbeat) => continue,
                    Some(CallbackMessage::Success(output)) => break Ok(output),
                    Some(CallbackMessage::Failure { error, cause }) => break Err(StatesError { error, cause }),
                    None => break Err(StatesError::new("States.Runtime", "the task was closed")),
                },
                () = &mut deadline => break Err(StatesError::new("States.Timeout", "no callback arrived before the task's TimeoutSeconds")),
                () = beat => break Err(StatesError::new("States.HeartbeatTimeout", "no heartbeat arrived within HeartbeatSeconds")),
            }
        };
        self.close_token(context, token);
        outcome
    }

    /// A Map: runs the item processor for each item, at most `MaxConcurrency` at once, and
    /// returns the outputs in item order. Inline, the first failure fails the Map. Distributed
    /// (`ProcessorConfig.Mode` DISTRIBUTED), items may come from an `ItemReader` listing and be
    /// grouped by `ItemBatcher`, and failures count against the tolerated threshold. Locally the
    /// children run inside the parent execution rather than as child executions, and a tolerated
    /// failure leaves `{"Error", "Cause"}` where its output would be.
    async fn run_map(
        self: &Arc<Self>,
        context: &ExecutionContext,
        machine: &Machine,
        name: &str,
        state: &Value,
        raw: &Value,
        entered_ms: i64,
    ) -> Result<Value, StatesError> {
        let ctx = self.context_object(context, name, entered_ms, 0);
        let effective = paths::select(raw, state.get("InputPath"), &ctx)?;
        let distributed = state["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED";
        if state.get("ResultWriter").is_some() {
            return Err(StatesError::new(
                "States.Runtime",
                "ResultWriter is not supported locally: the Map's output is its result array",
            ));
        }
        let items = match state.get("ItemReader") {
            Some(reader) if distributed => {
                let listing = distributed::Listing::from_reader(reader, &effective, &ctx)?;
                let mut objects = self
                    .integrations
                    .list_objects(listing.bucket, listing.prefix)
                    .await?;
                if let Some(max) = listing.max_items {
                    objects.truncate(max);
                }
                objects
            }
            Some(_) => {
                return Err(StatesError::new(
                    "States.Runtime",
                    "ItemReader needs ProcessorConfig Mode DISTRIBUTED",
                ));
            }
            None => {
                let items_path = state["ItemsPath"].as_str().unwrap_or("$");
                let items = paths::read(items_path, &effective, &ctx)
                    .map_err(|cause| StatesError::new("States.Runtime", cause))?;
                let Value::Array(items) = items else {
                    return Err(StatesError::new(
                        "States.Runtime",
                        format!("ItemsPath {items_path} is not an array"),
                    ));
                };
                items
            }
        };
        let processor = machine.processor(name).ok_or_else(|| {
            StatesError::new("States.Runtime", format!("Map {name} has no processor"))
        })?;
        let selector = state
            .get("ItemSelector")
            .or_else(|| state.get("Parameters"));
        let unbounded = if distributed {
            distributed::DEFAULT_CONCURRENCY
        } else {
            40
        };
        let concurrency = match distributed::number(state, "MaxConcurrency", &effective, &ctx)? {
            Some(n) if n < 0.0 || n.fract() != 0.0 => {
                return Err(StatesError::new(
                    "States.Runtime",
                    format!("MaxConcurrency must be a non-negative integer, not {n}"),
                ));
            }
            None | Some(0.0) => unbounded,
            Some(n) => n as usize,
        };
        // ItemSelector applies to each item, then ItemBatcher groups the results.
        let mut inputs = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let mut item_ctx = ctx.clone();
            item_ctx["Map"] = json!({"Item": {"Index": index, "Value": item}});
            inputs.push(match selector {
                Some(template) => paths::build(template, &effective, &item_ctx)?,
                None => item_ctx["Map"]["Item"]["Value"].take(),
            });
        }
        let total_items = inputs.len();
        let children: Vec<(Value, usize)> = match state.get("ItemBatcher") {
            Some(batcher) if distributed => {
                distributed::Batcher::from_state(batcher, &effective, &ctx)?.batch(inputs)?
            }
            _ => inputs.into_iter().map(|input| (input, 1)).collect(),
        };
        let tolerance = if distributed {
            Some(distributed::Tolerance::from_state(state, &effective, &ctx)?)
        } else {
            None
        };
        if context.top_level {
            self.event(
                &context.arn,
                "MapStateStarted",
                json!({"mapStateStartedEventDetails": {"length": children.len()}}),
            );
            if distributed {
                self.event(&context.arn, "MapRunStarted", json!({"mapRunStartedEventDetails": {"items": total_items, "children": children.len()}}));
            }
        }
        let nested = ExecutionContext {
            arn: context.arn.clone(),
            name: context.name.clone(),
            input: context.input.clone(),
            start_ms: context.start_ms,
            machine_arn: context.machine_arn.clone(),
            machine_name: context.machine_name.clone(),
            role_arn: context.role_arn.clone(),
            top_level: false,
        };
        // A Distributed Map's children are child executions of the same state machine, which
        // its role must be allowed to start and describe (and stop, when the Map fails).
        let map_run = format!(
            "{}/{}",
            context.machine_arn.replace(":stateMachine:", ":execution:"),
            uuid::Uuid::new_v4()
        );
        if distributed {
            self.integrations
                .authorize("states:StartExecution", &context.machine_arn)?;
        }
        let runs = stream::iter(children.into_iter().enumerate())
            .map(|(index, (input, weight))| {
                let nested = &nested;
                let map_run = &map_run;
                let run = async move {
                    if distributed {
                        self.integrations
                            .authorize("states:DescribeExecution", &format!("{map_run}:{index}"))?;
                    }
                    let mut input = input;
                    let mut current = processor.start_at.clone();
                    loop {
                        match self
                            .run_state(nested, processor, &current, input, now_ms(), Phase::Enter)
                            .await?
                        {
                            Transition::Next { state, output } => {
                                current = state;
                                input = output;
                            }
                            Transition::End(output) => return Ok::<Value, StatesError>(output),
                        }
                    }
                };
                async move { (run.await, weight) }
            })
            .buffered(concurrency);
        let outputs: Vec<Value> = match &tolerance {
            // Inline: the first failure fails the Map and stops the other iterations.
            None => runs.map(|(outcome, _)| outcome).try_collect().await?,
            // Distributed: every child runs; failures count against the threshold, and a
            // tolerated failure leaves its error in the output where its result would be.
            Some(tolerance) => {
                let finished: Vec<(Result<Value, StatesError>, usize)> = runs.collect().await;
                let failed: usize = finished
                    .iter()
                    .filter(|(outcome, _)| outcome.is_err())
                    .map(|(_, weight)| weight)
                    .sum();
                let first_error = finished
                    .iter()
                    .find_map(|(outcome, _)| outcome.as_ref().err())
                    .cloned();
                if tolerance.exceeded(failed as u64, total_items as u64) {
                    self.integrations
                        .authorize("states:StopExecution", &format!("{map_run}:0"))?;
                    if context.top_level {
                        self.event(&context.arn, "MapRunFailed", json!({"mapRunFailedEventDetails": {"failedItems": failed, "items": total_items}}));
                    }
                    let first = first_error.map_or_else(String::new, |err| {
                        format!("; first: {}: {}", err.error, err.cause.unwrap_or_default())
                    });
                    return Err(StatesError::new(
                        "States.ExceedToleratedFailureThreshold",
                        format!("{failed} of {total_items} items failed{first}"),
                    ));
                }
                if context.top_level {
                    self.event(&context.arn, "MapRunSucceeded", json!({"mapRunSucceededEventDetails": {"failedItems": failed, "items": total_items}}));
                }
                finished
                    .into_iter()
                    .map(|(outcome, _)| {
                        outcome
                            .unwrap_or_else(|err| json!({"Error": err.error, "Cause": err.cause}))
                    })
                    .collect()
            }
        };
        let result = Value::Array(outputs);
        let selected = match state.get("ResultSelector") {
            Some(template) => paths::build(template, &result, &ctx)?,
            None => result,
        };
        let combined = paths::put(raw.clone(), state.get("ResultPath"), selected)?;
        paths::select(&combined, state.get("OutputPath"), &ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Functions: `echo` returns its payload, `flaky` fails twice with `Transient`, `boom` always
    /// fails with `Permanent`, `slow` takes a second.
    struct Fake {
        flaky_calls: AtomicUsize,
    }

    impl Integrations for Fake {
        fn invoke(
            &self,
            function: String,
            payload: Value,
        ) -> BoxFuture<'static, Result<Value, StatesError>> {
            let flaky = self
                .flaky_calls
                .fetch_add(usize::from(function == "flaky"), Ordering::SeqCst);
            Box::pin(async move {
                match function.as_str() {
                    "echo" => Ok(payload),
                    "flaky" if flaky < 2 => Err(StatesError::new(
                        "Transient",
                        "{\"errorType\":\"Transient\"}",
                    )),
                    "flaky" => Ok(json!({"calls": flaky + 1})),
                    "slow" => {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        Ok(json!("late"))
                    }
                    _ => Err(StatesError::new(
                        "Permanent",
                        "{\"errorType\":\"Permanent\"}",
                    )),
                }
            })
        }

        fn publish(&self, _parameters: Value) -> BoxFuture<'static, Result<Value, StatesError>> {
            Box::pin(async { Ok(json!({"MessageId": "m"})) })
        }

        /// Bucket `b` holds `in/k0` .. `in/k4` and `other`; any other bucket does not exist.
        fn list_objects(
            &self,
            bucket: String,
            prefix: String,
        ) -> BoxFuture<'static, Result<Vec<Value>, StatesError>> {
            Box::pin(async move {
                if bucket != "b" {
                    return Err(StatesError::new("States.ItemReaderFailed", "NoSuchBucket"));
                }
                let keys = (0..5)
                    .map(|i| format!("in/k{i}"))
                    .chain(["other".to_owned()]);
                Ok(keys
                    .filter(|key| key.starts_with(&prefix))
                    .map(|key| json!({"Etag": "\"e\"", "Key": key, "LastModified": 1, "Size": 3, "StorageClass": "STANDARD"}))
                    .collect())
            })
        }
    }

    fn engine(dir: &std::path::Path) -> Engine {
        Engine::open(
            dir,
            Arc::new(Fake {
                flaky_calls: AtomicUsize::new(0),
            }),
            Clock::new(0.001),
            None,
        )
        .unwrap()
    }

    async fn finished(engine: &Engine, arn: &str) -> ExecutionRecord {
        for _ in 0..500 {
            let record = engine.describe(arn).unwrap();
            if record.status != "RUNNING" {
                return record;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{arn} did not finish");
    }

    fn task(function: &str, extra: Value) -> Value {
        let mut state = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": function, "Payload.$": "$"}, "ResultSelector": {"r.$": "$.Payload"}});
        for (key, value) in extra.as_object().unwrap() {
            state[key] = value.clone();
        }
        state
    }

    async fn run(definition: Value, input: Value) -> ExecutionRecord {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        let arn = engine
            .register("m", &definition.to_string(), "arn:aws:iam::0:role/r")
            .unwrap();
        let (execution, _) = engine
            .start(&arn, Some("e"), Some(&input.to_string()))
            .unwrap();
        finished(&engine, &execution).await
    }

    #[tokio::test]
    async fn a_task_result_goes_through_selector_and_result_path() {
        let record = run(
            json!({"StartAt": "t", "States": {"t": task("echo", json!({"ResultPath": "$.out", "End": true}))}}),
            json!({"x": 1}),
        )
        .await;
        assert_eq!(record.status, "SUCCEEDED");
        assert_eq!(record.output, Some(json!({"x": 1, "out": {"r": {"x": 1}}})));
        let kinds: Vec<&str> = record.history.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            vec![
                "ExecutionStarted",
                "TaskStateEntered",
                "TaskScheduled",
                "TaskStarted",
                "TaskSucceeded",
                "TaskStateExited",
                "ExecutionSucceeded"
            ]
        );
    }

    #[tokio::test]
    async fn retries_absorb_transient_errors_and_catch_takes_the_rest() {
        let retry = json!([{"ErrorEquals": ["Transient"], "IntervalSeconds": 1, "MaxAttempts": 3}]);
        let record = run(
            json!({"StartAt": "t", "States": {"t": task("flaky", json!({"Retry": retry, "End": true}))}}),
            json!({}),
        )
        .await;
        assert_eq!(record.output, Some(json!({"r": {"calls": 3}})));

        let catch =
            json!([{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "handled"}]);
        let record = run(
            json!({"StartAt": "t", "States": {
                "t": task("boom", json!({"Retry": retry, "Catch": catch, "Next": "done"})),
                "handled": {"Type": "Pass", "End": true},
                "done": {"Type": "Succeed"}}}),
            json!({"foo": "bar"}),
        )
        .await;
        assert_eq!(record.output.unwrap()["error"]["Error"], "Permanent");
    }

    #[tokio::test]
    async fn an_uncaught_error_fails_the_execution_with_its_name() {
        let record = run(
            json!({"StartAt": "t", "States": {"t": task("boom", json!({"End": true}))}}),
            json!({}),
        )
        .await;
        assert_eq!(
            (record.status.as_str(), record.error.as_deref()),
            ("FAILED", Some("Permanent"))
        );
    }

    #[tokio::test]
    async fn task_timeouts_are_states_timeout() {
        // Real seconds: a task's own work is not scaled, so this waits a second.
        let catch =
            json!([{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.e", "Next": "late"}]);
        let record = run(
            json!({"StartAt": "t", "States": {
                "t": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "TimeoutSeconds": 1,
                      "Parameters": {"FunctionName": "slow", "Payload": {}}, "Catch": catch, "End": true},
                "late": {"Type": "Pass", "End": true}}}),
            json!({}),
        )
        .await;
        assert_eq!(record.output.unwrap()["e"]["Error"], "States.Timeout");
    }

    #[tokio::test]
    async fn inline_maps_keep_item_order_and_see_the_item_context() {
        let record = run(
            json!({"StartAt": "m", "States": {"m": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2,
                "ItemSelector": {"ContextIndex.$": "$$.Map.Item.Index", "ContextValue.$": "$$.Map.Item.Value"},
                "ItemProcessor": {"StartAt": "p", "States": {"p": {"Type": "Pass", "End": true}}}, "End": true}}}),
            json!({"items": [{"who": "bob"}, {"who": "meg"}, {"who": "joe"}]}),
        )
        .await;
        assert_eq!(
            record.output,
            Some(json!([
                {"ContextIndex": 0, "ContextValue": {"who": "bob"}},
                {"ContextIndex": 1, "ContextValue": {"who": "meg"}},
                {"ContextIndex": 2, "ContextValue": {"who": "joe"}}
            ]))
        );
    }

    /// A Distributed Map over `s3://b/in/`, in batches of two; the processor fails the batch
    /// that starts with `in/k0` (two items of five).
    fn distributed_map(tolerance: Value) -> Value {
        let mut map = json!({"Type": "Map",
            "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2",
                           "Parameters": {"Bucket.$": "$.bucket", "Prefix": "in/"}},
            "ItemSelector": {"key.$": "$$.Map.Item.Value.Key"},
            "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"run.$": "$.run"}},
            "MaxConcurrency": 2,
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "c", "States": {
                    "c": {"Type": "Choice", "Choices": [
                        {"Variable": "$.Items[0].key", "StringEquals": "in/k0", "Next": "fail"}],
                        "Default": "ok"},
                    "fail": task("boom", json!({"End": true})),
                    "ok": {"Type": "Pass", "End": true}}},
            "End": true});
        for (key, value) in tolerance.as_object().unwrap() {
            map[key] = value.clone();
        }
        json!({"StartAt": "m", "States": {"m": map}})
    }

    #[tokio::test]
    async fn a_distributed_map_lists_the_bucket_batches_and_tolerates_failures() {
        let record = run(
            distributed_map(json!({"ToleratedFailurePercentage": 40})),
            json!({"bucket": "b", "run": "wf"}),
        )
        .await;
        assert_eq!(record.status, "SUCCEEDED", "{:?}", record.cause);
        let output = record.output.unwrap();
        assert_eq!(output.as_array().unwrap().len(), 3, "{output}");
        assert_eq!(
            output[0]["Error"], "Permanent",
            "a tolerated failure keeps its place"
        );
        assert_eq!(
            output[1],
            json!({"BatchInput": {"run": "wf"}, "Items": [{"key": "in/k2"}, {"key": "in/k3"}]})
        );
        assert_eq!(
            output[2]["Items"],
            json!([{"key": "in/k4"}]),
            "other is outside the prefix"
        );
        let kinds: Vec<&str> = record.history.iter().map(|e| e.kind.as_str()).collect();
        assert!(
            kinds.contains(&"MapRunStarted") && kinds.contains(&"MapRunSucceeded"),
            "{kinds:?}"
        );
    }

    #[tokio::test]
    async fn a_distributed_map_past_its_failure_threshold_fails() {
        let record = run(
            distributed_map(json!({"ToleratedFailurePercentage": 39})),
            json!({"bucket": "b", "run": "wf"}),
        )
        .await;
        assert_eq!(record.status, "FAILED");
        assert_eq!(
            record.error.as_deref(),
            Some("States.ExceedToleratedFailureThreshold")
        );
        assert!(
            record
                .cause
                .as_deref()
                .unwrap_or_default()
                .starts_with("2 of 5 items failed"),
            "{:?}",
            record.cause
        );
        let unreadable = run(
            distributed_map(json!({})),
            json!({"bucket": "nope", "run": "wf"}),
        )
        .await;
        assert_eq!(unreadable.error.as_deref(), Some("States.ItemReaderFailed"));
    }

    #[tokio::test]
    async fn max_concurrency_may_come_from_the_input() {
        let mut by_path = distributed_map(json!({"ToleratedFailurePercentage": 40}));
        let map = by_path["States"]["m"].as_object_mut().unwrap();
        map.remove("MaxConcurrency");
        map.insert("MaxConcurrencyPath".into(), json!("$.limit"));
        let record = run(
            by_path.clone(),
            json!({"bucket": "b", "run": "wf", "limit": 3}),
        )
        .await;
        assert_eq!(record.status, "SUCCEEDED", "{:?}", record.cause);
        assert_eq!(record.output.unwrap().as_array().unwrap().len(), 3);
        for bad in [json!("three"), json!(-1), json!(1.5)] {
            let record = run(
                by_path.clone(),
                json!({"bucket": "b", "run": "wf", "limit": bad}),
            )
            .await;
            assert_eq!(record.status, "FAILED", "limit {bad}");
            assert_eq!(
                record.error.as_deref(),
                Some("States.Runtime"),
                "limit {bad}"
            );
        }
    }

    #[tokio::test]
    async fn oversized_outputs_fail_the_execution_uncatchably() {
        let catch = json!([{"ErrorEquals": ["States.ALL"], "Next": "x"}]);
        let record = run(
            json!({"StartAt": "t", "States": {
                "t": task("echo", json!({"Catch": catch, "End": true})),
                "x": {"Type": "Succeed"}}}),
            json!({"big": "x".repeat(MAX_PAYLOAD - 100)}),
        )
        .await;
        assert_eq!(record.error.as_deref(), Some("States.DataLimitExceeded"));
    }

    fn callback_machine() -> Value {
        json!({"StartAt": "ask", "States": {
            "ask": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                    "Parameters": {"FunctionName": "echo", "Payload": {"token.$": "$$.Task.Token"}},
                    "TimeoutSeconds": 100000, "ResultPath": "$.decision", "End": true}}})
    }

    async fn waiting_token(engine: &Engine, arn: &str) -> String {
        for _ in 0..500 {
            if let Some(Position {
                phase: Phase::Callback { token, .. },
                ..
            }) = engine.describe(arn).unwrap().position
            {
                return token;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("no callback task");
    }

    #[tokio::test]
    async fn callbacks_complete_once_and_then_answer_task_timed_out() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        let machine = engine
            .register("m", &callback_machine().to_string(), "r")
            .unwrap();
        let (arn, _) = engine.start(&machine, Some("e"), None).unwrap();
        let token = waiting_token(&engine, &arn).await;
        assert!(token.contains('+') && token.contains('/') && token.contains('='));
        engine
            .callback(&token, CallbackMessage::Success(json!({"action": "allow"})))
            .unwrap();
        assert_eq!(
            engine.callback(&token, CallbackMessage::Success(json!({}))),
            Err(TokenError::TaskTimedOut)
        );
        let record = finished(&engine, &arn).await;
        assert_eq!(
            record.output,
            Some(json!({"decision": {"action": "allow"}}))
        );
        assert_eq!(
            engine.callback("not a token", CallbackMessage::Heartbeat),
            Err(TokenError::InvalidToken)
        );
        assert_eq!(
            engine.callback(&mint_token(), CallbackMessage::Heartbeat),
            Err(TokenError::TaskDoesNotExist)
        );
    }

    #[tokio::test]
    async fn a_waiting_callback_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (arn, token) = {
            let engine = engine(dir.path());
            let machine = engine
                .register("m", &callback_machine().to_string(), "r")
                .unwrap();
            let (arn, _) = engine.start(&machine, Some("e"), None).unwrap();
            let token = waiting_token(&engine, &arn).await;
            (arn, token)
        };
        let engine = engine(dir.path());
        engine
            .register("m", &callback_machine().to_string(), "r")
            .unwrap();
        assert_eq!(engine.resume(), 1);
        engine
            .callback(
                &token,
                CallbackMessage::Success(json!({"action": "delete"})),
            )
            .unwrap();
        let record = finished(&engine, &arn).await;
        assert_eq!(
            record.output,
            Some(json!({"decision": {"action": "delete"}}))
        );
    }

    #[tokio::test]
    async fn stopping_aborts_and_closes_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        let machine = engine
            .register("m", &callback_machine().to_string(), "r")
            .unwrap();
        let (arn, _) = engine.start(&machine, Some("e"), None).unwrap();
        let token = waiting_token(&engine, &arn).await;
        engine.stop(&arn, Some("Stopped".into()), None).unwrap();
        assert_eq!(engine.describe(&arn).unwrap().status, "ABORTED");
        assert_eq!(
            engine.callback(&token, CallbackMessage::Success(json!({}))),
            Err(TokenError::TaskTimedOut)
        );
    }

    /// A task that finishes just after StopExecution used to append its exit after
    /// ExecutionAborted (seen once in CI as a flaky history test).
    #[tokio::test]
    async fn nothing_is_appended_to_a_stopped_execution_history() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        let machine = engine
            .register("m", &callback_machine().to_string(), "r")
            .unwrap();
        let (arn, _) = engine.start(&machine, Some("e"), None).unwrap();
        waiting_token(&engine, &arn).await;
        engine.stop(&arn, None, None).unwrap();
        engine.inner.event(
            &arn,
            "TaskStateExited",
            json!({"stateExitedEventDetails": {}}),
        );
        let history = engine.describe(&arn).unwrap().history;
        assert_eq!(
            history.last().map(|event| event.kind.as_str()),
            Some("ExecutionAborted")
        );
    }

    #[tokio::test]
    async fn start_is_idempotent_for_the_same_name_and_input_only() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        let machine = engine
            .register("m", &callback_machine().to_string(), "r")
            .unwrap();
        let (first, _) = engine
            .start(&machine, Some("e"), Some("{\"a\":1}"))
            .unwrap();
        let (again, _) = engine
            .start(&machine, Some("e"), Some("{\"a\":1}"))
            .unwrap();
        assert_eq!(first, again);
        assert_eq!(
            engine.start(&machine, Some("e"), Some("{\"a\":2}")),
            Err(ApiError::ExecutionAlreadyExists)
        );
        assert!(matches!(
            engine.start(&machine, Some("bad name"), None),
            Err(ApiError::InvalidName(_))
        ));
        assert!(matches!(
            engine.start(&machine, None, Some("{")),
            Err(ApiError::InvalidExecutionInput(_))
        ));
    }

    #[tokio::test]
    async fn waits_resume_where_they_were_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let definition = json!({"StartAt": "w", "States": {"w": {"Type": "Wait", "Seconds": 1000, "Next": "d"}, "d": {"Type": "Succeed"}}});
        let arn = {
            let engine = engine(dir.path());
            let machine = engine.register("m", &definition.to_string(), "r").unwrap();
            let (arn, _) = engine.start(&machine, Some("e"), None).unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(matches!(
                engine.describe(&arn).unwrap().position.unwrap().phase,
                Phase::Wait { .. }
            ));
            arn
        };
        let engine = engine(dir.path());
        engine.register("m", &definition.to_string(), "r").unwrap();
        engine.resume();
        assert_eq!(finished(&engine, &arn).await.status, "SUCCEEDED");
    }

    #[test]
    fn error_matching_follows_the_wildcard_rules() {
        assert!(error_matches(&json!(["States.ALL"]), "Anything"));
        assert!(!error_matches(&json!(["States.ALL"]), "States.Runtime"));
        assert!(!error_matches(
            &json!(["States.TaskFailed"]),
            "States.Timeout"
        ));
        assert!(error_matches(
            &json!(["States.Timeout"]),
            "States.HeartbeatTimeout"
        ));
        assert!(error_matches(&json!(["A", "B"]), "B"));
    }
}
