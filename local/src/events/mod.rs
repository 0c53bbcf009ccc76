//! The local EventBridge: `PutEvents` onto event buses, from the AWS CLI, the SDK and Step
//! Functions' `events:putEvents` integration. Every event is written to
//! `<data>/events/buses/<bus>.jsonl` in the envelope EventBridge delivers (one JSON object a
//! line) and handed to a printer; the template's rules match it with their event patterns
//! ([`pattern`]) and send it to their targets, API destinations with their connection's
//! authorization ([`delivery`]), as the rule's role; SQS queues, as EventBridge's service
//! principal under the queue's policy; the state machine, as the target's role, with the
//! target's input transformer ([`transform`]). Each delivery attempt is recorded in
//! `<data>/events/deliveries.jsonl`. S3 puts `Object Created` events on the default bus for
//! buckets that send their events to EventBridge ([`EventBridge::object_created`]).

pub mod api;
pub mod delivery;
pub mod pattern;
pub mod transform;
pub mod webhooks;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tracing::{info, warn};

use crate::aws::{ACCOUNT, REGION};
use crate::clock::{Clock, now_ms};
use crate::deployment::{Deployment, LocalApiDestination, LocalConnection, LocalEventRule};
use crate::iam::{Iam, Principal};
use delivery::Delivery;
use pattern::Patterns;

/// Called with each event put on a bus, and the bus's name (the CLI prints it).
pub type OnEvent = Arc<dyn Fn(&Value, &str) + Send + Sync>;

/// EventBridge accepts entries of at most 256 KB.
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;

/// The account's own bus, which always exists.
pub const DEFAULT_BUS: &str = "default";

/// `arn:aws:events:<region>:<account>:event-bus/<name>`.
pub fn bus_arn(name: &str) -> String {
    format!("arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{name}")
}

/// One `PutEventsRequestEntry`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    pub source: Option<String>,
    pub detail_type: Option<String>,
    /// The detail as JSON text.
    pub detail: Option<String>,
    pub resources: Vec<String>,
    /// A bus name or ARN; the default bus when absent.
    pub bus: Option<String>,
    /// The event's time, ms since the epoch; the call's when absent.
    pub time_ms: Option<i64>,
}

/// What became of one entry: its event id, or EventBridge's error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryResult {
    Put { event_id: String },
    Failed { code: &'static str, message: String },
}

impl EntryResult {
    fn failed(code: &'static str, message: impl Into<String>) -> Self {
        Self::Failed {
            code,
            message: message.into(),
        }
    }
}

/// A request EventBridge refuses as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct EventsError {
    pub code: &'static str,
    pub status: u16,
    pub message: String,
}

impl EventsError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            status: if code == "InternalException" {
                500
            } else {
                400
            },
            message: message.into(),
        }
    }
}

pub struct EventBridge {
    dir: PathBuf,
    /// Buses made with `CreateEventBus`, kept in `<data>/events/event-buses.json`, beside the
    /// default bus and the template's.
    created: Mutex<BTreeSet<String>>,
    deployed: BTreeSet<String>,
    rules: Vec<LocalEventRule>,
    patterns: Patterns<usize>,
    destinations: BTreeMap<String, LocalApiDestination>,
    connections: BTreeMap<String, LocalConnection>,
    iam: Arc<Iam>,
    delivery: Delivery,
    deliveries: DeliveryLog,
    on_event: Option<OnEvent>,
    /// One writer at a time, so lines never interleave.
    log: Mutex<()>,
    sqs: Arc<crate::sqs::Sqs>,
    /// The Step Functions engine, attached once it exists (it calls back into EventBridge).
    engine: std::sync::OnceLock<crate::sfn::engine::Engine>,
}

impl EventBridge {
    /// Opens the event log under `dir` and compiles the deployment's rules. A rule on a bus
    /// that does not exist fails the start, as it fails a deployment.
    pub fn open(
        dir: impl Into<PathBuf>,
        deployment: &Deployment,
        iam: Arc<Iam>,
        clock: Clock,
        ca_pem: &str,
        on_event: Option<OnEvent>,
        sqs: Arc<crate::sqs::Sqs>,
    ) -> Result<Self, String> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join("buses"))
            .map_err(|err| format!("{}: {err}", dir.display()))?;
        let buses_file = dir.join("event-buses.json");
        let created: BTreeSet<String> = if buses_file.exists() {
            crate::json_file::read(&buses_file)
                .map_err(|err| format!("{}: {err}", buses_file.display()))?
        } else {
            BTreeSet::new()
        };
        let mut patterns = Patterns::default();
        for (index, rule) in deployment.event_rules.iter().enumerate() {
            if rule.bus != DEFAULT_BUS
                && !deployment.event_buses.contains(&rule.bus)
                && !created.contains(&rule.bus)
            {
                return Err(format!(
                    "{}: its event bus {} does not exist (create it first, e.g. aws events create-event-bus --name {})",
                    rule.logical_id, rule.bus, rule.bus
                ));
            }
            patterns
                .add(index, &rule.pattern)
                .map_err(|err| format!("{}: {err}", rule.logical_id))?;
        }
        Ok(Self {
            dir: dir.clone(),
            created: Mutex::new(created),
            deployed: deployment.event_buses.clone(),
            rules: deployment.event_rules.clone(),
            patterns,
            destinations: deployment.api_destinations.clone(),
            connections: deployment.connections.clone(),
            iam,
            delivery: Delivery::new(ca_pem, clock)?,
            deliveries: DeliveryLog {
                path: dir.join("deliveries.jsonl"),
            },
            on_event,
            log: Mutex::new(()),
            sqs,
            engine: std::sync::OnceLock::new(),
        })
    }

    /// Lets rules start the state machine.
    pub fn attach_engine(&self, engine: crate::sfn::engine::Engine) {
        let _ = self.engine.set(engine);
    }

    /// S3's `Object Created` event for an object created in a bucket that sends its events to
    /// EventBridge, in the shape S3 puts on the account's default bus.
    pub fn object_created(&self, created: crate::s3::store::ObjectCreated) {
        let id = uuid::Uuid::new_v4().to_string();
        let mut object = json!({
            "key": created.key,
            "size": created.size,
            "etag": created.etag,
            "sequencer": created.sequencer,
        });
        if let Some(version) = &created.version_id {
            object["version-id"] = json!(version);
        }
        let event = json!({
            "version": "0",
            "id": id,
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": ACCOUNT,
            "time": seconds_rfc3339(now_ms()),
            "region": REGION,
            "resources": [format!("arn:aws:s3:::{}", created.bucket)],
            "detail": {
                "version": "0",
                "bucket": {"name": created.bucket},
                "object": object,
                "request-id": uuid::Uuid::new_v4().simple().to_string()[..16].to_ascii_uppercase(),
                "requester": ACCOUNT,
                "reason": created.reason,
            },
        });
        if let Err(err) = self.append(&self.log_path(DEFAULT_BUS), &event) {
            warn!(%err, "an S3 event could not be logged");
        }
        if let Some(on_event) = &self.on_event {
            on_event(&event, DEFAULT_BUS);
        }
        self.route(DEFAULT_BUS, &event);
    }

    /// Where the events of `bus` are written, one JSON object a line.
    pub fn log_path(&self, bus: &str) -> PathBuf {
        self.dir.join("buses").join(format!("{bus}.jsonl"))
    }

    /// Every bus: the default one, the template's and those made with `CreateEventBus`.
    pub fn buses(&self) -> BTreeSet<String> {
        let mut buses = self.created.lock().expect("buses lock").clone();
        buses.extend(self.deployed.iter().cloned());
        buses.insert(DEFAULT_BUS.to_owned());
        buses
    }

    /// The template's event rules.
    pub fn rules(&self) -> &[LocalEventRule] {
        &self.rules
    }

    /// `CreateEventBus`: a custom bus, kept across restarts.
    pub fn create_bus(&self, name: &str) -> Result<String, EventsError> {
        let valid = !name.is_empty()
            && name.len() <= 256
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            && !name.starts_with("aws.");
        if !valid {
            return Err(EventsError::new(
                "ValidationException",
                format!(
                    "Event bus name {name:?} is not valid: letters, digits, '.', '-' and '_', not starting with aws."
                ),
            ));
        }
        let mut created = self.created.lock().expect("buses lock");
        if name == DEFAULT_BUS || self.deployed.contains(name) || created.contains(name) {
            return Err(EventsError::new(
                "ResourceAlreadyExistsException",
                format!("Event bus {name} already exists."),
            ));
        }
        let mut next = created.clone();
        next.insert(name.to_owned());
        crate::json_file::write(&self.dir.join("event-buses.json"), &next)
            .map_err(|err| EventsError::new("InternalException", err.to_string()))?;
        *created = next;
        Ok(bus_arn(name))
    }

    /// `PutEvents` by `principal`: each entry is checked, authorized (`events:PutEvents` on its
    /// bus, with `events:source` and `events:detail-type`), logged, matched and delivered on
    /// its own; one entry failing does not stop the others.
    pub fn put_events(
        &self,
        principal: &Principal,
        entries: Vec<Entry>,
        secure: bool,
    ) -> Result<Vec<EntryResult>, EventsError> {
        if entries.is_empty() || entries.len() > 10 {
            return Err(EventsError::new(
                "ValidationException",
                format!(
                    "1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length between 1 and 10 (it has {})",
                    entries.len()
                ),
            ));
        }
        Ok(entries
            .into_iter()
            .map(|entry| self.put_one(principal, entry, secure))
            .collect())
    }

    fn put_one(&self, principal: &Principal, entry: Entry, secure: bool) -> EntryResult {
        let (Some(source), Some(detail_type), Some(detail)) = (
            entry.source.filter(|s| !s.is_empty()),
            entry.detail_type.filter(|s| !s.is_empty()),
            entry.detail.filter(|s| !s.is_empty()),
        ) else {
            return EntryResult::failed(
                "InvalidArgument",
                "Parameters Detail, DetailType and Source are required.",
            );
        };
        let size = source.len()
            + detail_type.len()
            + detail.len()
            + entry.resources.iter().map(String::len).sum::<usize>();
        if size > MAX_ENTRY_BYTES {
            return EntryResult::failed(
                "InvalidArgument",
                format!("The entry has {size} bytes; EventBridge accepts {MAX_ENTRY_BYTES}."),
            );
        }
        let detail: Value = match serde_json::from_str(&detail) {
            Ok(value @ Value::Object(_)) => value,
            _ => return EntryResult::failed("MalformedDetail", "Detail is malformed."),
        };
        let bus = match entry.bus.as_deref().filter(|b| !b.is_empty()) {
            None => DEFAULT_BUS.to_owned(),
            Some(arn) if arn.starts_with("arn:") => match arn.strip_prefix(&bus_arn("")) {
                Some(name) => name.to_owned(),
                None => {
                    return EntryResult::failed(
                        "InvalidArgument",
                        format!("Event bus {arn} is not in this account and region."),
                    );
                }
            },
            Some(name) => name.to_owned(),
        };
        if source.starts_with("aws.") {
            return EntryResult::failed(
                "NotAuthorizedForSourceException",
                format!("Not authorized for the source {source}."),
            );
        }
        let mut context = crate::iam::evaluate::transport(secure);
        context.insert("events:source".into(), vec![source.clone()]);
        context.insert("events:detail-type".into(), vec![detail_type.clone()]);
        if let Err(denied) =
            self.iam
                .authorize(principal, "events:PutEvents", &bus_arn(&bus), context)
        {
            return EntryResult::failed("AccessDeniedException", denied.message);
        }
        if !self.buses().contains(&bus) {
            return EntryResult::failed(
                "ResourceNotFoundException",
                format!("Event bus {bus} does not exist."),
            );
        }
        let id = uuid::Uuid::new_v4().to_string();
        let event = json!({
            "version": "0",
            "id": id,
            "detail-type": detail_type,
            "source": source,
            "account": ACCOUNT,
            "time": seconds_rfc3339(entry.time_ms.unwrap_or_else(now_ms)),
            "region": REGION,
            "resources": entry.resources,
            "detail": detail,
        });
        if let Err(err) = self.append(&self.log_path(&bus), &event) {
            return EntryResult::failed("InternalFailure", err.to_string());
        }
        if let Some(on_event) = &self.on_event {
            on_event(&event, &bus);
        }
        self.route(&bus, &event);
        EntryResult::Put { event_id: id }
    }

    /// Sends the event to every target of every enabled rule on `bus` that matches it.
    fn route(&self, bus: &str, event: &Value) {
        for index in self.patterns.matching(event) {
            let rule = &self.rules[index];
            if rule.bus != bus || !rule.enabled {
                continue;
            }
            for target in &rule.targets {
                let record = DeliveryRecord {
                    rule: rule.logical_id.clone(),
                    target: target.id.clone(),
                    event_id: event["id"].as_str().unwrap_or_default().to_owned(),
                };
                let input = match &target.input_transformer {
                    Some((paths, template)) => {
                        transform::rule_input(event, &rule.arn, paths, template)
                    }
                    None => event.to_string(),
                };
                // Queues and the state machine take the event at once, or not at all.
                let taken = if target.arn.starts_with("arn:aws:sqs:") {
                    Some(self.send_to_queue(&rule.arn, &target.arn, &input))
                } else if target.arn.starts_with("arn:aws:states:") {
                    Some(self.start_run(rule, target, &input))
                } else {
                    None
                };
                if let Some(taken) = taken {
                    self.deliveries.record(
                        &record,
                        1,
                        taken.as_ref().map(|()| 200).map_err(String::as_str),
                    );
                    if taken.is_err() {
                        self.dead_letter(rule, target, &record, event);
                    }
                    continue;
                }
                let Some(destination) = self.destinations.get(&target.arn).cloned() else {
                    continue;
                };
                let Some(connection) = self.connections.get(&destination.connection).cloned()
                else {
                    continue;
                };
                let role = target.role.as_deref().and_then(|role| self.iam.role(role));
                let allowed = match &role {
                    Some(role) => self
                        .iam
                        .authorize(
                            role,
                            "events:InvokeApiDestination",
                            &destination.arn,
                            crate::iam::evaluate::transport(true),
                        )
                        .map_err(|denied| denied.message),
                    None => Err("the target names no role".to_owned()),
                };
                if let Err(reason) = allowed {
                    warn!(rule = %rule.logical_id, %reason, "event not delivered");
                    self.deliveries.record(&record, 0, Err(&reason));
                    continue;
                }
                let attempts = 1 + target
                    .maximum_retry_attempts
                    .unwrap_or(delivery::LOCAL_RETRIES)
                    .min(delivery::LOCAL_RETRIES);
                let request = delivery::request(&destination, &connection, event);
                let delivery = self.delivery.clone();
                let log = self.deliveries.clone();
                tokio::spawn(async move {
                    delivery
                        .send_with_retries(&request, attempts, |attempt, outcome| {
                            log.record(&record, attempt, outcome);
                        })
                        .await;
                });
            }
        }
    }

    /// Sends `body` to a queue as EventBridge's service principal for the rule `rule_arn`,
    /// which the queue's policy must allow.
    fn send_to_queue(&self, rule_arn: &str, queue: &str, body: &str) -> Result<(), String> {
        self.iam
            .authorize(
                &self.iam.events_service(),
                "sqs:SendMessage",
                queue,
                crate::iam::on_behalf_of(rule_arn),
            )
            .map_err(|denied| denied.message)?;
        self.sqs
            .send(queue, body)
            .map(|_| ())
            .map_err(|err| err.to_string())
    }

    /// Starts the state machine a rule's target names, as the target's role.
    fn start_run(
        &self,
        rule: &LocalEventRule,
        target: &crate::deployment::LocalRuleTarget,
        input: &str,
    ) -> Result<(), String> {
        let role = target
            .role
            .as_deref()
            .and_then(|role| self.iam.role(role))
            .ok_or("the target names no role")?;
        let engine = self.engine.get().ok_or("Step Functions is not running")?;
        let execution =
            crate::triggers::start_run(&self.iam, engine, &role, &target.arn, None, input)?;
        info!(rule = %rule.logical_id, execution, "an event started a run");
        Ok(())
    }

    /// An event a target did not take goes to the target's dead-letter queue, if it has one
    /// (EventBridge does so once its retries are spent; locally at once), and is recorded.
    fn dead_letter(
        &self,
        rule: &LocalEventRule,
        target: &crate::deployment::LocalRuleTarget,
        record: &DeliveryRecord,
        event: &Value,
    ) {
        let Some(queue) = &target.dead_letter else {
            return;
        };
        let kept = self.send_to_queue(&rule.arn, queue, &event.to_string());
        if let Err(err) = &kept {
            warn!(rule = %rule.logical_id, %err, "an undelivered event was lost: its dead-letter queue refused it");
        }
        self.deliveries.dead_lettered(
            record,
            queue,
            kept.as_ref().copied().map_err(String::as_str),
        );
    }

    fn append(&self, path: &Path, value: &Value) -> std::io::Result<()> {
        let _guard = self.log.lock().expect("log lock");
        append_line(path, value)
    }
}

/// Which delivery a line of `deliveries.jsonl` is about.
#[derive(Debug, Clone)]
struct DeliveryRecord {
    rule: String,
    target: String,
    event_id: String,
}

/// `deliveries.jsonl`: one line per attempt to deliver an event to a rule's target.
#[derive(Clone)]
struct DeliveryLog {
    path: PathBuf,
}

impl DeliveryLog {
    /// A line about `record`'s delivery: when, which rule, target and event.
    fn line(record: &DeliveryRecord) -> Value {
        json!({
            "time": crate::clock::rfc3339_ms(now_ms()),
            "rule": record.rule,
            "target": record.target,
            "eventId": record.event_id,
        })
    }

    fn append(&self, line: &Value) {
        if let Err(err) = append_line(&self.path, line) {
            warn!(%err, "a delivery could not be recorded");
        }
    }

    fn record(&self, record: &DeliveryRecord, attempt: u32, outcome: Result<u16, &str>) {
        let mut line = Self::line(record);
        line["attempt"] = json!(attempt);
        match outcome {
            Ok(status) => {
                line["status"] = json!(status);
                line["delivered"] = json!((200..300).contains(&status));
            }
            Err(error) => {
                line["error"] = json!(error);
                line["delivered"] = json!(false);
            }
        }
        if line["delivered"] == true {
            info!(rule = %record.rule, event = %record.event_id, "event delivered");
        }
        self.append(&line);
    }

    /// An event a target did not take, sent to the target's dead-letter queue (or not).
    fn dead_lettered(&self, record: &DeliveryRecord, queue: &str, outcome: Result<(), &str>) {
        let mut line = Self::line(record);
        line["deadLetterQueue"] = json!(queue);
        line["deadLettered"] = json!(outcome.is_ok());
        if let Err(error) = outcome {
            line["error"] = json!(error);
        }
        self.append(&line);
    }
}

/// Appends one JSON line; a single write, so concurrent appenders do not interleave lines.
pub(crate) fn append_line(path: &Path, value: &Value) -> std::io::Result<()> {
    let mut line = value.to_string();
    line.push('\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(line.as_bytes())
}

/// The events recorded in a bus's log, oldest first.
pub fn logged(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// An instant as EventBridge writes an event's `time`: RFC 3339 to the second, in UTC.
fn seconds_rfc3339(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(&time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .expect("every date formats")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::TEMPLATE;

    /// A bridge over `template` with `parameters`, its queues, and the local user.
    fn bridge_on(
        dir: &Path,
        template: &str,
        parameters: &[(&str, &str)],
    ) -> (
        EventBridge,
        Arc<crate::sqs::Sqs>,
        Deployment,
        Arc<Principal>,
    ) {
        let parameters = parameters
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        let deployment = Deployment::resolve(template, &parameters, "http://127.0.0.1:1").unwrap();
        let iam = Arc::new(Iam::from_deployment(&deployment, true).unwrap());
        let tls = crate::tls::Tls::create(&dir.join("tls")).unwrap();
        let user = iam.principal_for_key(Some(crate::iam::USER_ACCESS_KEY));
        let sqs = Arc::new(
            crate::sqs::Sqs::open(&dir.join("sqs"), &deployment.queues, Clock::new(0.001)).unwrap(),
        );
        let bridge = EventBridge::open(
            dir.join("events"),
            &deployment,
            iam,
            Clock::new(0.001),
            &tls.ca_pem,
            None,
            Arc::clone(&sqs),
        )
        .unwrap();
        (bridge, sqs, deployment, user)
    }

    fn open_bridge(dir: &Path) -> (EventBridge, Arc<Principal>) {
        let (bridge, _, _, user) = bridge_on(dir, TEMPLATE, &[]);
        (bridge, user)
    }

    fn entry(bus: Option<&str>) -> Entry {
        Entry {
            source: Some("acme.ingest".into()),
            detail_type: Some("Batch Landed".into()),
            detail: Some(r#"{"files": 3}"#.into()),
            resources: vec!["arn:aws:s3:::landing".into()],
            bus: bus.map(str::to_owned),
            time_ms: Some(1_796_000_000_123),
        }
    }

    fn code(result: &EntryResult) -> &str {
        match result {
            EntryResult::Put { .. } => "put",
            EntryResult::Failed { code, .. } => code,
        }
    }

    #[test]
    fn each_entry_is_checked_and_logged_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let (bridge, user) = open_bridge(dir.path());
        let mut no_detail = entry(None);
        no_detail.detail = None;
        let mut array_detail = entry(None);
        array_detail.detail = Some("[1]".into());
        let mut aws_source = entry(None);
        aws_source.source = Some("aws.s3".into());
        let mut huge = entry(None);
        huge.detail = Some(format!(r#"{{"x": "{}"}}"#, "x".repeat(MAX_ENTRY_BYTES)));
        let results = bridge
            .put_events(
                &user,
                vec![
                    entry(None),
                    no_detail,
                    array_detail,
                    aws_source,
                    huge,
                    entry(Some("nope")),
                    entry(Some(&bus_arn("default"))),
                    entry(Some("arn:aws:events:eu-west-1:111122223333:event-bus/x")),
                ],
                true,
            )
            .unwrap();
        let codes: Vec<&str> = results.iter().map(code).collect();
        assert_eq!(
            codes,
            [
                "put",
                "InvalidArgument",
                "MalformedDetail",
                "NotAuthorizedForSourceException",
                "InvalidArgument",
                "ResourceNotFoundException",
                "put",
                "InvalidArgument"
            ]
        );
        let logged = logged(&bridge.log_path("default"));
        assert_eq!(logged.len(), 2);
        assert_eq!(logged[0]["time"], "2026-11-30T00:53:20Z");
        assert_eq!(logged[0]["detail"], json!({"files": 3}));
        assert_eq!(logged[0]["resources"], json!(["arn:aws:s3:::landing"]));
        let EntryResult::Put { event_id } = &results[0] else {
            unreachable!()
        };
        assert_eq!(&logged[0]["id"], event_id.as_str());
        assert_eq!(
            bridge.put_events(&user, Vec::new(), true).unwrap_err().code,
            "ValidationException"
        );
        assert_eq!(
            bridge
                .put_events(&user, vec![entry(None); 11], true)
                .unwrap_err()
                .code,
            "ValidationException"
        );
    }

    #[test]
    fn a_bus_made_once_is_kept_across_restarts_and_takes_events() {
        let dir = tempfile::tempdir().unwrap();
        let (bridge, user) = open_bridge(dir.path());
        assert_eq!(
            bridge.create_bus("gate-events").unwrap(),
            bus_arn("gate-events")
        );
        for (name, code) in [
            ("gate-events", "ResourceAlreadyExistsException"),
            ("default", "ResourceAlreadyExistsException"),
            ("aws.custom", "ValidationException"),
            ("bad/name", "ValidationException"),
            ("", "ValidationException"),
        ] {
            assert_eq!(bridge.create_bus(name).unwrap_err().code, code, "{name}");
        }
        drop(bridge);
        let (bridge, _) = open_bridge(dir.path());
        assert!(bridge.buses().contains("gate-events"));
        let results = bridge
            .put_events(&user, vec![entry(Some("gate-events"))], true)
            .unwrap();
        assert_eq!(code(&results[0]), "put");
        assert_eq!(logged(&bridge.log_path("gate-events")).len(), 1);
    }

    /// A bridge for the arrival trigger on `template`, its queues, and the arrival queue.
    fn arrivals_bridge(dir: &Path, template: &str) -> (EventBridge, Arc<crate::sqs::Sqs>, String) {
        let (bridge, sqs, deployment, _) = bridge_on(
            dir,
            template,
            &[
                ("TriggerMode", "ObjectCreated"),
                ("ScanSchedule", "disabled"),
            ],
        );
        (bridge, sqs, deployment.pipes[0].source.clone())
    }

    fn created(bucket: &str) -> crate::s3::store::ObjectCreated {
        crate::s3::store::ObjectCreated {
            bucket: bucket.to_owned(),
            key: "landing/a.csv".into(),
            size: 3,
            etag: "900150983cd24fb0d6963f7d28e17f72".into(),
            version_id: None,
            sequencer: "0000000000000001".into(),
            reason: "PutObject",
        }
    }

    #[tokio::test]
    async fn the_raw_buckets_events_reach_the_arrival_queue_only_as_its_policy_allows() {
        let dir = tempfile::tempdir().unwrap();
        let (bridge, sqs, queue) = arrivals_bridge(dir.path(), TEMPLATE);
        bridge.object_created(created("local-data-pipeline-raw"));
        // Another bucket's events match no rule.
        bridge.object_created(created("someone-elses-bucket"));
        let received = sqs.receive(&queue, 10).unwrap();
        assert_eq!(received.len(), 1);
        let event: Value = serde_json::from_str(&received[0].body).unwrap();
        assert_eq!(event["source"], "aws.s3");
        assert_eq!(event["detail"]["object"]["key"], "landing/a.csv");
        assert_eq!(logged(&bridge.log_path(DEFAULT_BUS)).len(), 2);

        // A queue policy that names another rule lets EventBridge send nothing.
        // (The first such line is the arrival queue's policy; the dead-letter queue's stays.)
        let other = TEMPLATE.replacen(
            "                  - !GetAtt ArrivalRule.Arn\n",
            "                  - !Sub \"arn:aws:events:${AWS::Region}:${AWS::AccountId}:rule/other\"\n",
            1,
        );
        assert_ne!(other, TEMPLATE);
        let dir = tempfile::tempdir().unwrap();
        let (bridge, sqs, queue) = arrivals_bridge(dir.path(), &other);
        bridge.object_created(created("local-data-pipeline-raw"));
        assert!(sqs.receive(&queue, 10).unwrap().is_empty());
        // The undelivered event is kept in the rule target's dead-letter queue.
        let dead_letter = sqs
            .arn_for_name("macie-pipeline-local-ArrivalDeadLetterQueue")
            .unwrap();
        let kept = sqs.receive(&dead_letter, 10).unwrap();
        assert_eq!(kept.len(), 1);
        assert!(kept[0].body.contains("landing/a.csv"), "{}", kept[0].body);
        let deliveries = logged(&dir.path().join("events").join("deliveries.jsonl"));
        assert_eq!(deliveries.len(), 2, "{deliveries:?}");
        assert_eq!(deliveries[1]["deadLettered"], true, "{deliveries:?}");
        assert_eq!(deliveries[0]["rule"], "ArrivalRule");
        assert_eq!(deliveries[0]["delivered"], false);
        assert!(
            deliveries[0]["error"]
                .as_str()
                .unwrap()
                .contains("events.amazonaws.com is not authorized to perform: sqs:SendMessage"),
            "{deliveries:?}"
        );
    }

    #[test]
    fn a_role_may_put_only_what_its_policy_allows() {
        let dir = tempfile::tempdir().unwrap();
        let (bridge, _) = open_bridge(dir.path());
        let role = bridge.iam.role("TriggerManualApproval").unwrap();
        let mut gate = entry(None);
        gate.source = Some("macie-pipeline".into());
        gate.detail_type = Some("Review Requested".into());
        let mut other_type = gate.clone();
        other_type.detail_type = Some("Run Succeeded".into());
        let results = bridge
            .put_events(&role, vec![gate, other_type, entry(None)], true)
            .unwrap();
        let codes: Vec<&str> = results.iter().map(code).collect();
        assert_eq!(
            codes,
            ["put", "AccessDeniedException", "AccessDeniedException"]
        );
        let EntryResult::Failed { message, .. } = &results[1] else {
            unreachable!()
        };
        assert!(
            message.contains("is not authorized to perform: events:PutEvents on resource: arn:aws:events:us-east-1:000000000000:event-bus/default"),
            "{message}"
        );
    }
}
