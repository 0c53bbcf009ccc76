//! The gate's events as the local EventBridge logged them, and the JSON Schemas the repository
//! publishes for them (`events/schemas/`): every event a test sees is checked against its own.

use std::sync::OnceLock;

use jsonschema::{Registry, Validator};
use macie_pipeline::events::DetailType;
use serde_json::Value;

use crate::Gate;

/// The events of a run that held objects and whose review ended without failing it (every
/// object decided, or the deny default applied), in order.
pub const REVIEWED: [&str; 4] = [
    "Objects Held",
    "Review Requested",
    "Review Decided",
    "Run Succeeded",
];

/// The schema every detail type's schema refers to.
const RUN_SCHEMA: (&str, &str) = (
    "urn:macie-pipeline:events:1:run",
    include_str!("../../events/schemas/run.json"),
);

/// The published schema of `kind`, as text.
pub fn schema_text(kind: DetailType) -> &'static str {
    match kind {
        DetailType::ObjectsHeld => include_str!("../../events/schemas/objects-held.json"),
        DetailType::ReviewRequested => include_str!("../../events/schemas/review-requested.json"),
        DetailType::ReviewDecided => include_str!("../../events/schemas/review-decided.json"),
        DetailType::RunSucceeded => include_str!("../../events/schemas/run-succeeded.json"),
        DetailType::RunFailed => include_str!("../../events/schemas/run-failed.json"),
    }
}

fn validators() -> &'static Vec<(DetailType, Validator)> {
    static VALIDATORS: OnceLock<Vec<(DetailType, Validator)>> = OnceLock::new();
    VALIDATORS.get_or_init(|| {
        let run: Value = serde_json::from_str(RUN_SCHEMA.1).expect("run.json is JSON");
        let registry = Registry::new()
            .add(RUN_SCHEMA.0, run)
            .expect("run.json is a schema")
            .prepare()
            .expect("the schemas' references resolve");
        DetailType::ALL
            .into_iter()
            .map(|kind| {
                let schema: Value = serde_json::from_str(schema_text(kind))
                    .unwrap_or_else(|err| panic!("{}: {err}", kind.schema_file()));
                let validator = jsonschema::options()
                    .with_registry(&registry)
                    .should_validate_formats(true)
                    .build(&schema)
                    .unwrap_or_else(|err| panic!("{}: {err}", kind.schema_file()));
                (kind, validator)
            })
            .collect()
    })
}

/// Checks an event against the schema of its detail type; the error lists what is wrong.
pub fn check(event: &Value) -> Result<DetailType, String> {
    let name = event["detail-type"].as_str().unwrap_or_default();
    let kind = DetailType::named(name)
        .ok_or_else(|| format!("{name:?} is not a detail type of the gate"))?;
    let (_, validator) = validators()
        .iter()
        .find(|(k, _)| *k == kind)
        .expect("a validator per detail type");
    let errors: Vec<String> = validator
        .iter_errors(event)
        .map(|err| format!("{} at {}", err, err.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(kind)
    } else {
        Err(format!("{name}: {}\n{event:#}", errors.join("; ")))
    }
}

impl Gate {
    /// The gate's events (source `macie-pipeline`) put on the default bus so far, oldest first.
    pub fn events(&self) -> Vec<Value> {
        self.bus_events("default")
            .into_iter()
            .filter(|event| event["source"] == macie_pipeline::events::SOURCE)
            .collect()
    }

    /// Every event put on `bus` so far (S3's and anyone's too), oldest first.
    pub fn bus_events(&self, bus: &str) -> Vec<Value> {
        macie_pipeline_local::events::logged(&self.data_events_path(bus))
    }

    fn data_events_path(&self, bus: &str) -> std::path::PathBuf {
        self.stack
            .data_dir()
            .join("events")
            .join("buses")
            .join(format!("{bus}.jsonl"))
    }

    /// The gate's events of one execution, in order, each checked against its schema.
    pub fn run_events(&self, execution_arn: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|event| event["detail"]["executionArn"] == execution_arn)
            .inspect(|event| {
                if let Err(err) = check(event) {
                    panic!("an event does not match its schema: {err}");
                }
            })
            .collect()
    }

    /// The detail types of one execution's events, in order.
    pub fn run_event_types(&self, execution_arn: &str) -> Vec<String> {
        self.run_events(execution_arn)
            .iter()
            .map(|event| event["detail-type"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}
