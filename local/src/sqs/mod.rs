//! The local SQS: the template's queues, with SQS's delivery semantics as far as the gate's
//! arrival trigger relies on them. A received message is invisible for the queue's visibility
//! timeout (scaled by the clock) and comes back unless deleted; one received more than its
//! redrive policy's `maxReceiveCount` moves to the dead-letter queue; messages older than the
//! retention period are dropped. Each queue keeps a journal, `<data>/sqs/<name>.jsonl`, so
//! what was sent survives a restart of the stack.

pub mod api;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use md5::Digest as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;

use crate::clock::{Clock, now_ms};
use crate::deployment::LocalQueue;

/// SQS refuses a message body over 256 KiB.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// An error of the SQS API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SqsError {
    pub code: &'static str,
    pub message: String,
}

impl SqsError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A message as the queue holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Message {
    id: String,
    body: String,
    sent_ms: i64,
    #[serde(default)]
    receive_count: u32,
    #[serde(default)]
    first_received_ms: Option<i64>,
    /// In flight until this real instant.
    #[serde(skip)]
    invisible_until_ms: i64,
    #[serde(skip)]
    receipt: Option<String>,
}

/// A message as `ReceiveMessage` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub id: String,
    pub receipt: String,
    pub body: String,
    pub sent_ms: i64,
    pub receive_count: u32,
    pub first_received_ms: i64,
}

impl Received {
    /// The record an EventBridge Pipe or a Lambda event source mapping passes on for it.
    pub fn record(&self, queue_arn: &str) -> serde_json::Value {
        json!({
            "messageId": self.id,
            "receiptHandle": self.receipt,
            "body": self.body,
            "attributes": {
                "ApproximateReceiveCount": self.receive_count.to_string(),
                "SentTimestamp": self.sent_ms.to_string(),
                "SenderId": crate::iam::EVENTS_SERVICE,
                "ApproximateFirstReceiveTimestamp": self.first_received_ms.to_string(),
            },
            "messageAttributes": {},
            "md5OfBody": md5_hex(&self.body),
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": crate::aws::REGION,
        })
    }
}

/// A body's MD5 in hexadecimal, as SQS reports it.
fn md5_hex(text: &str) -> String {
    md5::Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The journal's lines.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
enum Journal {
    Send(Message),
    Receive { id: String },
    Delete { id: String },
}

struct Queue {
    config: LocalQueue,
    messages: Mutex<VecDeque<Message>>,
    journal: PathBuf,
    /// Woken when a message is sent.
    arrived: Notify,
}

pub struct Sqs {
    queues: BTreeMap<String, Arc<Queue>>,
    clock: Clock,
}

impl Sqs {
    /// Opens the deployment's queues under `dir`, replaying their journals.
    pub fn open(
        dir: &Path,
        queues: &BTreeMap<String, LocalQueue>,
        clock: Clock,
    ) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|err| format!("{}: {err}", dir.display()))?;
        let mut open = BTreeMap::new();
        for (arn, config) in queues {
            let journal = dir.join(format!("{}.jsonl", config.name));
            let messages = replay(&journal)?;
            open.insert(
                arn.clone(),
                Arc::new(Queue {
                    config: config.clone(),
                    messages: Mutex::new(messages),
                    journal,
                    arrived: Notify::new(),
                }),
            );
        }
        Ok(Self {
            queues: open,
            clock,
        })
    }

    fn queue(&self, arn: &str) -> Result<&Arc<Queue>, SqsError> {
        self.queues.get(arn).ok_or_else(|| {
            SqsError::new("QueueDoesNotExist", "The specified queue does not exist.")
        })
    }

    /// The queue a URL names (`https://sqs.<region>.amazonaws.com/<account>/<name>`, or any
    /// URL ending in the name, as the CLI may build it from the endpoint).
    pub fn arn_for_url(&self, url: &str) -> Result<String, SqsError> {
        let name = url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default();
        self.arn_for_name(name)
    }

    pub fn arn_for_name(&self, name: &str) -> Result<String, SqsError> {
        self.queues
            .values()
            .find(|queue| queue.config.name == name)
            .map(|queue| queue.config.arn.clone())
            .ok_or_else(|| {
                SqsError::new("QueueDoesNotExist", "The specified queue does not exist.")
            })
    }

    pub fn config(&self, arn: &str) -> Result<&LocalQueue, SqsError> {
        Ok(&self.queue(arn)?.config)
    }

    pub fn configs(&self) -> impl Iterator<Item = &LocalQueue> {
        self.queues.values().map(|queue| &queue.config)
    }

    /// `SendMessage`: returns the message id.
    pub fn send(&self, arn: &str, body: &str) -> Result<String, SqsError> {
        if body.is_empty() || body.len() > MAX_BODY_BYTES {
            return Err(SqsError::new(
                "InvalidParameterValue",
                format!(
                    "The message body must be between 1 and {MAX_BODY_BYTES} bytes; it has {}.",
                    body.len()
                ),
            ));
        }
        let queue = self.queue(arn)?;
        let message = Message {
            id: uuid::Uuid::new_v4().to_string(),
            body: body.to_owned(),
            sent_ms: now_ms(),
            receive_count: 0,
            first_received_ms: None,
            invisible_until_ms: 0,
            receipt: None,
        };
        let id = message.id.clone();
        {
            let mut messages = queue.messages.lock().expect("queue lock");
            append(&queue.journal, &Journal::Send(message.clone()))?;
            messages.push_back(message);
        }
        queue.arrived.notify_one();
        Ok(id)
    }

    /// `ReceiveMessage`: up to `max` visible messages, oldest first, each now in flight for
    /// the visibility timeout. A message already received `maxReceiveCount` times moves to the
    /// dead-letter queue instead.
    pub fn receive(&self, arn: &str, max: usize) -> Result<Vec<Received>, SqsError> {
        let queue = self.queue(arn)?;
        let now = now_ms();
        let retention_ms = i64::try_from(
            self.clock
                .scaled(queue.config.retention_seconds as f64)
                .as_millis(),
        )
        .unwrap_or(i64::MAX);
        let mut dead = Vec::new();
        let mut received = Vec::new();
        {
            let mut messages = queue.messages.lock().expect("queue lock");
            let mut index = 0;
            while index < messages.len() && received.len() < max {
                let message = &mut messages[index];
                if message.sent_ms.saturating_add(retention_ms) < now {
                    let gone = messages.remove(index).expect("in range");
                    append(&queue.journal, &Journal::Delete { id: gone.id })?;
                    continue;
                }
                if message.invisible_until_ms > now {
                    index += 1;
                    continue;
                }
                if let Some((_, max_receives)) = &queue.config.dead_letter
                    && message.receive_count >= *max_receives
                {
                    // Left in place until its copy is in the dead-letter queue (below).
                    dead.push((message.id.clone(), message.body.clone()));
                    index += 1;
                    continue;
                }
                message.receive_count += 1;
                message.first_received_ms.get_or_insert(now);
                message.invisible_until_ms = self
                    .clock
                    .after_ms(queue.config.visibility_timeout_seconds as f64);
                let receipt = uuid::Uuid::new_v4().simple().to_string();
                message.receipt = Some(receipt.clone());
                append(
                    &queue.journal,
                    &Journal::Receive {
                        id: message.id.clone(),
                    },
                )?;
                received.push(Received {
                    id: message.id.clone(),
                    receipt,
                    body: message.body.clone(),
                    sent_ms: message.sent_ms,
                    receive_count: message.receive_count,
                    first_received_ms: message.first_received_ms.unwrap_or(now),
                });
                index += 1;
            }
        }
        // A message leaves only once the dead-letter queue holds it: if that send fails, it stays
        // (and is tried again at the next receive), never lost between the two queues.
        if let Some((dead_letter, _)) = &queue.config.dead_letter {
            for (id, body) in dead {
                self.send(dead_letter, &body)?;
                tracing::warn!(queue = %queue.config.name, message = %id, "message moved to the dead-letter queue");
                let mut messages = queue.messages.lock().expect("queue lock");
                if let Some(index) = messages.iter().position(|m| m.id == id) {
                    messages.remove(index);
                    append(&queue.journal, &Journal::Delete { id })?;
                }
            }
        }
        Ok(received)
    }

    /// `DeleteMessage` by the receipt handle of its latest receive.
    pub fn delete(&self, arn: &str, receipt: &str) -> Result<(), SqsError> {
        let queue = self.queue(arn)?;
        let mut messages = queue.messages.lock().expect("queue lock");
        let Some(index) = messages
            .iter()
            .position(|m| m.receipt.as_deref() == Some(receipt))
        else {
            // SQS accepts a stale receipt of a message already gone; an unknown one it refuses.
            return Err(SqsError::new(
                "ReceiptHandleIsInvalid",
                format!("The input receipt handle \"{receipt}\" is not a valid receipt handle."),
            ));
        };
        let gone = messages.remove(index).expect("in range");
        append(&queue.journal, &Journal::Delete { id: gone.id })
    }

    /// (visible, in flight) messages.
    pub fn counts(&self, arn: &str) -> Result<(usize, usize), SqsError> {
        let queue = self.queue(arn)?;
        let now = now_ms();
        let messages = queue.messages.lock().expect("queue lock");
        let in_flight = messages
            .iter()
            .filter(|m| m.invisible_until_ms > now)
            .count();
        Ok((messages.len() - in_flight, in_flight))
    }

    /// Waits until a message is sent to the queue (or was since the last wait), or until the
    /// real instant `until_ms`.
    pub async fn wait_for_arrival(&self, arn: &str, until_ms: i64) {
        let Ok(queue) = self.queue(arn) else {
            return;
        };
        tokio::select! {
            () = queue.arrived.notified() => {}
            () = self.clock.sleep_until_ms(until_ms) => {}
        }
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }
}

/// Replays a journal into the messages it leaves, and rewrites it with only those.
fn replay(path: &Path) -> Result<VecDeque<Message>, String> {
    let mut messages: VecDeque<Message> = VecDeque::new();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(messages),
        Err(err) => return Err(format!("{}: {err}", path.display())),
    };
    for (number, line) in text.lines().enumerate() {
        let entry: Journal = serde_json::from_str(line)
            .map_err(|err| format!("{} line {}: {err}", path.display(), number + 1))?;
        match entry {
            Journal::Send(message) => messages.push_back(message),
            Journal::Receive { id } => {
                if let Some(message) = messages.iter_mut().find(|m| m.id == id) {
                    message.receive_count += 1;
                }
            }
            Journal::Delete { id } => messages.retain(|m| m.id != id),
        }
    }
    let mut compacted = String::new();
    for message in &messages {
        compacted.push_str(&serde_json::to_string(&Journal::Send(message.clone())).expect("JSON"));
        compacted.push('\n');
    }
    let temporary = path.with_extension("jsonl.tmp");
    std::fs::write(&temporary, compacted)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|err| format!("{}: {err}", path.display()))?;
    Ok(messages)
}

fn append(path: &Path, entry: &Journal) -> Result<(), SqsError> {
    let value = serde_json::to_value(entry).expect("JSON");
    crate::events::append_line(path, &value)
        .map_err(|err| SqsError::new("InternalError", format!("{}: {err}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::{queue_arn, queue_url};

    fn queues(max_receives: u32) -> BTreeMap<String, LocalQueue> {
        let queue = |name: &str, dead_letter: Option<(String, u32)>| LocalQueue {
            name: name.to_owned(),
            arn: queue_arn(name),
            url: queue_url(name),
            visibility_timeout_seconds: 30,
            retention_seconds: 1_209_600,
            dead_letter,
        };
        BTreeMap::from([
            (
                queue_arn("in"),
                queue("in", Some((queue_arn("dlq"), max_receives))),
            ),
            (queue_arn("dlq"), queue("dlq", None)),
        ])
    }

    #[test]
    fn a_message_not_deleted_comes_back_and_then_goes_to_the_dead_letter_queue() {
        let dir = tempfile::tempdir().unwrap();
        // A 30 s visibility timeout lasts 3 ms.
        let sqs = Sqs::open(dir.path(), &queues(2), Clock::new(0.0001)).unwrap();
        let id = sqs.send(&queue_arn("in"), "first").unwrap();
        let first = sqs.receive(&queue_arn("in"), 10).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].id, id);
        assert!(
            sqs.receive(&queue_arn("in"), 10).unwrap().is_empty(),
            "in flight"
        );
        assert_eq!(sqs.counts(&queue_arn("in")).unwrap(), (0, 1));
        std::thread::sleep(std::time::Duration::from_millis(10));
        let second = sqs.receive(&queue_arn("in"), 10).unwrap();
        assert_eq!(second[0].receive_count, 2);
        assert_eq!(
            sqs.delete(&queue_arn("in"), &first[0].receipt)
                .unwrap_err()
                .code,
            "ReceiptHandleIsInvalid",
            "a receipt of an earlier receive"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
        assert!(sqs.receive(&queue_arn("in"), 10).unwrap().is_empty());
        let dead = sqs.receive(&queue_arn("dlq"), 10).unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].body, "first");
    }

    #[test]
    fn a_message_the_dead_letter_queue_does_not_take_stays_where_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = queues(1);
        config.remove(&queue_arn("dlq"));
        let sqs = Sqs::open(dir.path(), &config, Clock::new(0.0001)).unwrap();
        sqs.send(&queue_arn("in"), "kept").unwrap();
        assert_eq!(sqs.receive(&queue_arn("in"), 10).unwrap().len(), 1);
        std::thread::sleep(std::time::Duration::from_millis(10));
        assert_eq!(
            sqs.receive(&queue_arn("in"), 10).unwrap_err().code,
            "QueueDoesNotExist"
        );
        assert_eq!(sqs.counts(&queue_arn("in")).unwrap(), (1, 0), "still there");
    }

    #[test]
    fn what_was_sent_and_not_deleted_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let sqs = Sqs::open(dir.path(), &queues(5), Clock::new(1.0)).unwrap();
        for body in ["a", "b", "c"] {
            sqs.send(&queue_arn("in"), body).unwrap();
        }
        let received = sqs.receive(&queue_arn("in"), 1).unwrap();
        sqs.delete(&queue_arn("in"), &received[0].receipt).unwrap();
        sqs.receive(&queue_arn("in"), 1).unwrap();
        drop(sqs);
        let sqs = Sqs::open(dir.path(), &queues(5), Clock::new(1.0)).unwrap();
        let again = sqs.receive(&queue_arn("in"), 10).unwrap();
        let bodies: Vec<&str> = again.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(
            bodies,
            ["b", "c"],
            "the in-flight one is visible again after a restart"
        );
        assert_eq!(again[0].receive_count, 2);
        assert_eq!(
            sqs.send(&queue_arn("in"), "").unwrap_err().code,
            "InvalidParameterValue"
        );
        assert_eq!(
            sqs.send(&queue_arn("nope"), "x").unwrap_err().code,
            "QueueDoesNotExist"
        );
    }
}
