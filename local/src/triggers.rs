//! What starts runs besides a person: EventBridge rules (the schedule, an event pattern) and
//! the EventBridge Pipe that batches arrivals from the raw bucket's queue. Each starts the
//! state machine as its own role, asked what StartExecution asks of a caller, and the pipe
//! reads its queue as that role too.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::aws::{ACCOUNT, REGION};
use crate::clock::{now_ms, rfc3339_ms};
use crate::deployment::{LocalPipe, LocalSchedule};
use crate::iam::{Iam, Principal};
use crate::sfn::engine::Engine;
use crate::sqs::Sqs;

/// Starts the state machine `machine_arn` as `role` with `input` and an execution name of
/// Step Functions' choosing (or `name`), after asking IAM what the API asks of a caller:
/// `states:StartExecution`, and the state machine's key when it has one. Returns the
/// execution's ARN, or why it did not start.
pub fn start_run(
    iam: &Iam,
    engine: &Engine,
    role: &Principal,
    machine_arn: &str,
    name: Option<&str>,
    input: &str,
) -> Result<String, String> {
    iam.authorize(
        role,
        "states:StartExecution",
        machine_arn,
        crate::iam::evaluate::transport(true),
    )
    .map_err(|denied| denied.message)?;
    if let Some(key) = engine.machine(machine_arn).and_then(|m| m.kms_key.clone()) {
        iam.authorize_state_machine_key(
            role,
            crate::iam::state_machine_key_actions("StartExecution", &Value::Null),
            &key,
            machine_arn,
            true,
        )
        .map_err(|denied| denied.message)?;
    }
    engine
        .start(machine_arn, name, Some(input))
        .map(|(arn, _)| arn)
        .map_err(|err| format!("{err:?}"))
}

/// Starts a run at the template's rate, with the input the EventBridge schedule sends, as the
/// rule's role (see [`start_run`]). A run that cannot start is EventBridge's failed invocation:
/// logged, and the rule stays on.
pub async fn schedule(
    engine: Engine,
    iam: Arc<Iam>,
    role: Arc<Principal>,
    rule: LocalSchedule,
    shutdown: CancellationToken,
) {
    let seconds = match crate::deployment::rate_seconds(&rule.expression) {
        Ok(seconds) => seconds,
        Err(err) => {
            warn!(%err, "the schedule is not running");
            return;
        }
    };
    let clock = engine.clock();
    loop {
        tokio::select! {
            () = clock.sleep(seconds as f64) => {}
            () = shutdown.cancelled() => return,
        }
        let id = uuid::Uuid::new_v4().to_string();
        let event = json!({
            "version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events",
            "account": ACCOUNT, "time": rfc3339_ms(now_ms()), "region": REGION,
            "resources": [format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{}-{}", crate::deployment::STACK, rule.logical_id)],
            "detail": {},
        });
        match start_run(
            &iam,
            &engine,
            &role,
            &rule.target,
            Some(&id),
            &event.to_string(),
        ) {
            Ok(execution) => info!(execution, "scheduled run started"),
            Err(reason) => warn!(%reason, "scheduled run could not start"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// Where a pipe records each batch: `<data>/pipes/<pipe>.jsonl`.
pub fn pipe_log(data_dir: &std::path::Path, pipe: &str) -> PathBuf {
    data_dir.join("pipes").join(format!("{pipe}.jsonl"))
}

/// Runs an EventBridge Pipe from an SQS queue to the state machine, as AWS batches: it polls
/// the queue, and from the first message it receives gathers more until the batch holds
/// `batch_size` or the batching window (scaled by the clock) has passed, whichever comes
/// first. The batch, each record through the input template, is one JSON array: the input of
/// one execution. Once the execution started the batch is deleted from the queue; if it could
/// not start, its messages come back after the visibility timeout and are tried again, until
/// the queue's redrive policy moves them to the dead-letter queue.
pub async fn run_pipe(
    pipe: LocalPipe,
    sqs: Arc<Sqs>,
    iam: Arc<Iam>,
    engine: Engine,
    log: PathBuf,
    shutdown: CancellationToken,
) {
    let Some(role) = iam.role(&pipe.role) else {
        warn!(pipe = %pipe.logical_id, "the pipe's role is not in the template; it does not run");
        return;
    };
    if let Some(dir) = log.parent()
        && let Err(err) = std::fs::create_dir_all(dir)
    {
        // The pipe still runs; only its record of batches is missing.
        warn!(pipe = %pipe.logical_id, %err, "the pipe's batch log cannot be written");
    }
    let clock = sqs.clock();
    let queue = pipe.source.as_str();
    let secure = || crate::iam::evaluate::transport(true);
    // A pipe reads its source's attributes when it starts (and fails if it may not).
    if let Err(denied) = iam.authorize(&role, "sqs:GetQueueAttributes", queue, secure()) {
        record(&log, &pipe, 0, Err(&denied.message));
        return;
    }
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        // Pipes poll with long polls of 20 s.
        let poll_until = clock.after_ms(20.0);
        if let Err(denied) = iam.authorize(&role, "sqs:ReceiveMessage", queue, secure()) {
            record(&log, &pipe, 0, Err(&denied.message));
            tokio::select! {
                () = clock.sleep_until_ms(poll_until) => continue,
                () = shutdown.cancelled() => return,
            }
        }
        let mut batch = match sqs.receive(queue, pipe.batch_size) {
            Ok(batch) => batch,
            Err(err) => {
                warn!(pipe = %pipe.logical_id, %err, "the pipe could not read its queue");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                () = sqs.wait_for_arrival(queue, poll_until) => continue,
                () = shutdown.cancelled() => return,
            }
        }
        let window_ends = clock.after_ms(pipe.batching_window_seconds as f64);
        while batch.len() < pipe.batch_size && now_ms() < window_ends {
            tokio::select! {
                () = sqs.wait_for_arrival(queue, window_ends) => {}
                () = shutdown.cancelled() => return,
            }
            match sqs.receive(queue, pipe.batch_size - batch.len()) {
                Ok(more) => batch.extend(more),
                Err(err) => {
                    warn!(pipe = %pipe.logical_id, %err, "the pipe could not read its queue")
                }
            }
        }
        let records: Vec<Value> = batch
            .iter()
            .map(|message| {
                let record = message.record(queue);
                match &pipe.input_template {
                    Some(template) => {
                        let text =
                            crate::events::transform::pipe_input(&record, &pipe.arn, template);
                        serde_json::from_str(&text).unwrap_or(Value::String(text))
                    }
                    None => record,
                }
            })
            .collect();
        let input = Value::Array(records).to_string();
        match start_run(&iam, &engine, &role, &pipe.target, None, &input) {
            Ok(execution) => {
                info!(pipe = %pipe.logical_id, execution, records = batch.len(), "arrivals started a run");
                for message in &batch {
                    let deleted = iam
                        .authorize(&role, "sqs:DeleteMessage", queue, secure())
                        .map_err(|denied| denied.message)
                        .and_then(|()| {
                            sqs.delete(queue, &message.receipt)
                                .map_err(|e| e.to_string())
                        });
                    if let Err(err) = deleted {
                        // It comes back after its visibility timeout and starts another run,
                        // which finds raw emptied by this one: a run too many, nothing missed.
                        warn!(pipe = %pipe.logical_id, %err, "a message of a started batch was not deleted");
                    }
                }
                record(&log, &pipe, batch.len(), Ok(&execution));
            }
            Err(reason) => {
                warn!(pipe = %pipe.logical_id, %reason, "a batch could not start a run");
                record(&log, &pipe, batch.len(), Err(&reason));
            }
        }
    }
}

fn record(log: &std::path::Path, pipe: &LocalPipe, records: usize, outcome: Result<&str, &str>) {
    let mut line = json!({
        "time": rfc3339_ms(now_ms()),
        "pipe": pipe.logical_id,
        "records": records,
    });
    match outcome {
        Ok(execution) => line["executionArn"] = json!(execution),
        Err(error) => line["error"] = json!(error),
    }
    if let Err(err) = crate::events::append_line(log, &line) {
        warn!(%err, "a pipe's batch could not be recorded");
    }
}

/// The batches a pipe recorded, oldest first.
pub fn pipe_batches(log: &std::path::Path) -> Vec<Value> {
    crate::events::logged(log)
}
