//! Parsing ASL JSON into the typed definition, with AWS validator's checks: every field of the
//! right type and known to its state type, transitions that lead to states that exist, exactly
//! one of Next and End, and the fields that exclude each other.

use std::collections::BTreeMap;

use serde_json::Value;

use super::choice_rule::Rule;
use super::fields::{Fields, invalid};
use super::recovery::Recovery;
use super::state::{
    Branch, Choice, Common, Fail, ItemBatcher, ItemReader, Machine, Map, Node, Parallel, Pass,
    Resource, Seconds, State, Task, Text, Wait,
};
use crate::sfn::expr::intrinsics;

/// The one reader a Distributed Map may use locally: every object under a prefix.
pub const LIST_OBJECTS_V2: &str = "arn:aws:states:::s3:listObjectsV2";

const COMMON: &[&str] = &[
    "Type",
    "Comment",
    "QueryLanguage",
    "InputPath",
    "OutputPath",
    "Next",
    "End",
    "Assign",
];

/// Parses and checks a whole definition.
pub fn definition(text: &str) -> Result<Machine, String> {
    let value: Value = serde_json::from_str(text)
        .map_err(|err| format!("INVALID_JSON_DESCRIPTION: the definition is not JSON: {err}"))?;
    machine(&value, "")
}

fn refuse_jsonata(fields: &Fields, what: &str) -> Result<(), String> {
    match fields.string("QueryLanguage")?.as_deref() {
        None | Some("JSONPath") => Ok(()),
        Some("JSONata") => Err(invalid(
            "UNSUPPORTED_QUERY_LANGUAGE",
            format!(
                "{what} uses the JSONata query language, which the local Step Functions does not run; use JSONPath"
            ),
            &fields.at("QueryLanguage"),
        )),
        Some(other) => Err(invalid(
            "SCHEMA_VALIDATION_FAILED",
            format!("QueryLanguage must be JSONPath or JSONata, not {other}"),
            &fields.at("QueryLanguage"),
        )),
    }
}

/// A machine (the top level, a Parallel branch or a Map's item processor) at `at`.
fn machine(value: &Value, at: &str) -> Result<Machine, String> {
    let fields = Fields::new(value, at)?;
    fields.only(
        &[
            "StartAt",
            "States",
            "Comment",
            "TimeoutSeconds",
            "Version",
            "QueryLanguage",
            "ProcessorConfig",
        ],
        "a state machine",
    )?;
    refuse_jsonata(&fields, "the state machine")?;
    if fields.has("TimeoutSeconds") {
        // Refused rather than ignored: a definition that relies on it would run unbounded.
        return Err(invalid(
            "UNSUPPORTED_FIELD",
            "the state machine's TimeoutSeconds is not enforced by the local Step Functions; remove it to run locally",
            &fields.at("TimeoutSeconds"),
        ));
    }
    let start_at = fields.required_string("StartAt")?;
    let states_fields = fields.object("States")?.ok_or_else(|| {
        invalid(
            "SCHEMA_VALIDATION_FAILED",
            "These fields are required: [States]",
            at,
        )
    })?;
    let mut states = BTreeMap::new();
    for (name, value) in states_fields.object {
        let state_at = states_fields.at(name);
        if name.is_empty() || name.chars().count() > 80 {
            return Err(invalid(
                "SCHEMA_VALIDATION_FAILED",
                "A state name has 1 to 80 characters",
                &state_at,
            ));
        }
        states.insert(name.clone(), node(name, value, &state_at)?);
    }
    if !states.contains_key(&start_at) {
        return Err(invalid(
            "MISSING_TRANSITION_TARGET",
            format!("StartAt {start_at} is not a state"),
            &fields.at("StartAt"),
        ));
    }
    for node in states.values() {
        for (target, field) in transitions(node) {
            if !states.contains_key(target) {
                return Err(invalid(
                    "MISSING_TRANSITION_TARGET",
                    format!(
                        "Missing 'Next' target: state {} goes to {target}, which does not exist",
                        node.name
                    ),
                    &format!("{}/{}/{field}", states_fields.at, node.name),
                ));
            }
        }
    }
    Ok(Machine { start_at, states })
}

/// Every state a state can go to, with the field that says so.
fn transitions(node: &Node) -> Vec<(&str, &'static str)> {
    let mut out: Vec<(&str, &'static str)> = Vec::new();
    if let Some(next) = &node.common.next {
        out.push((next, "Next"));
    }
    let recovery = match &node.state {
        State::Choice(choice) => {
            out.extend(choice.choices.iter().map(|b| (b.next.as_str(), "Choices")));
            out.extend(choice.default.as_deref().map(|d| (d, "Default")));
            None
        }
        State::Task(task) => Some(&task.recovery),
        State::Parallel(parallel) => Some(&parallel.recovery),
        State::Map(map) => Some(&map.recovery),
        _ => None,
    };
    for catcher in recovery.map(|r| r.catch.as_slice()).unwrap_or_default() {
        out.push((&catcher.next, "Catch"));
    }
    out
}

fn node(name: &str, value: &Value, at: &str) -> Result<Node, String> {
    let fields = Fields::new(value, at)?;
    refuse_jsonata(&fields, &format!("state {name}"))?;
    let kind = fields.required_string("Type")?;
    let (extra, ends): (&[&str], bool) = match kind.as_str() {
        "Pass" => (&["Parameters", "Result", "ResultPath"], false),
        "Task" => (
            &[
                "Resource",
                "Parameters",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
                "TimeoutSeconds",
                "TimeoutSecondsPath",
                "HeartbeatSeconds",
                "HeartbeatSecondsPath",
                "Credentials",
            ],
            false,
        ),
        "Choice" => (&["Choices", "Default"], true),
        "Wait" => (
            &["Seconds", "SecondsPath", "Timestamp", "TimestampPath"],
            false,
        ),
        "Succeed" => (&[], true),
        "Fail" => (&["Error", "ErrorPath", "Cause", "CausePath"], true),
        "Parallel" => (
            &[
                "Branches",
                "Parameters",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
            ],
            false,
        ),
        "Map" => (
            &[
                "ItemProcessor",
                "Iterator",
                "ItemsPath",
                "ItemSelector",
                "Parameters",
                "ItemReader",
                "ItemBatcher",
                "ResultWriter",
                "MaxConcurrency",
                "MaxConcurrencyPath",
                "ToleratedFailurePercentage",
                "ToleratedFailurePercentagePath",
                "ToleratedFailureCount",
                "ToleratedFailureCountPath",
                "Label",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
            ],
            false,
        ),
        other => {
            return Err(invalid(
                "SCHEMA_VALIDATION_FAILED",
                format!("state {name}: Type {other:?} is not a state type"),
                &fields.at("Type"),
            ));
        }
    };
    let mut known: Vec<&str> = match kind.as_str() {
        // These have no Next or End, and Fail no paths or Assign either.
        "Choice" => vec![
            "Type",
            "Comment",
            "QueryLanguage",
            "InputPath",
            "OutputPath",
            "Assign",
        ],
        "Succeed" => vec![
            "Type",
            "Comment",
            "QueryLanguage",
            "InputPath",
            "OutputPath",
        ],
        "Fail" => vec!["Type", "Comment", "QueryLanguage"],
        _ => COMMON.to_vec(),
    };
    known.extend_from_slice(extra);
    fields.only(&known, &format!("state type '{kind}'"))?;
    let next = fields.string("Next")?;
    if !ends {
        let end = fields.boolean("End")? == Some(true);
        if next.is_some() == end {
            return Err(invalid(
                "SCHEMA_VALIDATION_FAILED",
                format!("state {name} must have exactly one of Next and End"),
                at,
            ));
        }
    }
    let common = Common {
        input_path: fields.io_path("InputPath")?,
        output_path: fields.io_path("OutputPath")?,
        next,
        assign: fields.template("Assign")?,
    };
    let state = match kind.as_str() {
        "Pass" => State::Pass(Pass {
            parameters: fields.template("Parameters")?,
            result: fields.value("Result").cloned(),
            result_path: fields.result_path()?,
        }),
        "Task" => State::Task(Box::new(task(&fields)?)),
        "Choice" => State::Choice(choice(&fields)?),
        "Wait" => State::Wait(wait(&fields)?),
        "Succeed" => State::Succeed,
        "Fail" => State::Fail(fail(&fields)?),
        "Parallel" => State::Parallel(Box::new(parallel(&fields)?)),
        _ => State::Map(Box::new(map(&fields)?)),
    };
    Ok(Node {
        name: name.to_owned(),
        common,
        state,
    })
}

fn seconds(fields: &Fields, name: &str) -> Result<Option<Seconds>, String> {
    let path_name = format!("{name}Path");
    fields.exclusive(&[name, &path_name])?;
    if let Some(seconds) = fields.positive(name)? {
        return Ok(Some(Seconds::Fixed(seconds)));
    }
    Ok(fields.path(&path_name)?.map(Seconds::Path))
}

fn task(fields: &Fields) -> Result<Task, String> {
    let resource_arn = fields.required_string("Resource")?;
    let parameters = fields.value("Parameters");
    let has = |field: &str| {
        parameters.is_some_and(|p| p.get(field).is_some() || p.get(format!("{field}.$")).is_some())
    };
    let resource = match resource_arn.as_str() {
        "arn:aws:states:::lambda:invoke" | "arn:aws:states:::lambda:invoke.waitForTaskToken" => {
            for required in ["FunctionName", "Payload"] {
                if !has(required) {
                    return Err(invalid(
                        "SCHEMA_VALIDATION_FAILED",
                        format!("a Lambda invoke without {required} in its Parameters"),
                        &fields.at("Parameters"),
                    ));
                }
            }
            Resource::LambdaInvoke {
                callback: resource_arn.ends_with(".waitForTaskToken"),
            }
        }
        "arn:aws:states:::sns:publish" => Resource::SnsPublish,
        "arn:aws:states:::events:putEvents" => {
            if !has("Entries") {
                return Err(invalid(
                    "SCHEMA_VALIDATION_FAILED",
                    "an events:putEvents task without Entries in its Parameters".to_owned(),
                    &fields.at("Parameters"),
                ));
            }
            Resource::EventsPutEvents
        }
        arn if arn.starts_with("arn:aws:lambda:") => Resource::Function(arn.to_owned()),
        other => {
            return Err(invalid(
                "SCHEMA_VALIDATION_FAILED",
                format!(
                    "the resource {other} is not supported locally (lambda:invoke, lambda:invoke.waitForTaskToken, sns:publish, events:putEvents and function ARNs are)"
                ),
                &fields.at("Resource"),
            ));
        }
    };
    let timeout = seconds(fields, "TimeoutSeconds")?;
    let heartbeat = seconds(fields, "HeartbeatSeconds")?;
    if let (Some(Seconds::Fixed(timeout)), Some(Seconds::Fixed(heartbeat))) = (&timeout, &heartbeat)
        && heartbeat >= timeout
    {
        return Err(invalid(
            "SCHEMA_VALIDATION_FAILED",
            "HeartbeatSeconds must be smaller than TimeoutSeconds",
            &fields.at("HeartbeatSeconds"),
        ));
    }
    Ok(Task {
        resource,
        resource_arn,
        parameters: fields.template("Parameters")?,
        result_selector: fields.template("ResultSelector")?,
        result_path: fields.result_path()?,
        timeout,
        heartbeat,
        recovery: Recovery::parse(fields)?,
    })
}

fn choice(fields: &Fields) -> Result<Choice, String> {
    let rules = fields.array("Choices")?.filter(|rules| !rules.is_empty());
    let rules = rules.ok_or_else(|| {
        invalid(
            "SCHEMA_VALIDATION_FAILED",
            "a Choice state has no Choices",
            &fields.at("Choices"),
        )
    })?;
    let mut choices = Vec::with_capacity(rules.len());
    for (index, value) in rules.iter().enumerate() {
        let rule_fields = Fields::new(value, format!("{}/{index}", fields.at("Choices")))?;
        choices.push(Branch {
            rule: Rule::parse(&rule_fields, &["Next", "Assign"])?,
            next: rule_fields.required_string("Next")?,
            assign: rule_fields.template("Assign")?,
        });
    }
    Ok(Choice {
        choices,
        default: fields.string("Default")?,
    })
}

fn wait(fields: &Fields) -> Result<Wait, String> {
    let ways = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"];
    if ways.iter().filter(|way| fields.has(way)).count() != 1 {
        return Err(invalid(
            "SCHEMA_VALIDATION_FAILED",
            "a Wait state needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath",
            &fields.at,
        ));
    }
    if let Some(seconds) = fields.count("Seconds")? {
        return Ok(Wait::Seconds(seconds));
    }
    if let Some(path) = fields.path("SecondsPath")? {
        return Ok(Wait::SecondsPath(path));
    }
    if let Some(timestamp) = fields.string("Timestamp")? {
        return Ok(Wait::Timestamp(timestamp));
    }
    Ok(Wait::TimestampPath(
        fields.path("TimestampPath")?.expect("one way is given"),
    ))
}

fn fail(fields: &Fields) -> Result<Fail, String> {
    let text = |name: &str| -> Result<Option<Text>, String> {
        let path_name = format!("{name}Path");
        fields.exclusive(&[name, &path_name])?;
        if let Some(literal) = fields.string(name)? {
            return Ok(Some(Text::Literal(literal)));
        }
        match fields.string(&path_name)? {
            None => Ok(None),
            Some(expression) if intrinsics::is_call(&expression) => intrinsics::parse(&expression)
                .map(|call| Some(Text::Call(call)))
                .map_err(|why| invalid("SCHEMA_VALIDATION_FAILED", why, &fields.at(&path_name))),
            Some(_) => Ok(fields.path(&path_name)?.map(Text::Path)),
        }
    };
    Ok(Fail {
        error: text("Error")?,
        cause: text("Cause")?,
    })
}

fn parallel(fields: &Fields) -> Result<Parallel, String> {
    let branches = fields.array("Branches")?.filter(|b| !b.is_empty());
    let branches = branches.ok_or_else(|| {
        invalid(
            "SCHEMA_VALIDATION_FAILED",
            "a Parallel state needs at least one branch in Branches",
            &fields.at("Branches"),
        )
    })?;
    Ok(Parallel {
        branches: branches
            .iter()
            .enumerate()
            .map(|(index, branch)| machine(branch, &format!("{}/{index}", fields.at("Branches"))))
            .collect::<Result<_, _>>()?,
        parameters: fields.template("Parameters")?,
        result_selector: fields.template("ResultSelector")?,
        result_path: fields.result_path()?,
        recovery: Recovery::parse(fields)?,
    })
}

fn map(fields: &Fields) -> Result<Map, String> {
    fields.exclusive(&["ItemProcessor", "Iterator"])?;
    fields.exclusive(&["ItemSelector", "Parameters"])?;
    fields.exclusive(&["ItemsPath", "ItemReader"])?;
    let processor_field = if fields.has("Iterator") {
        "Iterator"
    } else {
        "ItemProcessor"
    };
    let processor_value = fields.value(processor_field).ok_or_else(|| {
        invalid(
            "SCHEMA_VALIDATION_FAILED",
            "These fields are required: [ItemProcessor]",
            &fields.at,
        )
    })?;
    let processor_fields = Fields::new(processor_value, fields.at(processor_field))?;
    let distributed = match processor_fields.object("ProcessorConfig")? {
        None => false,
        Some(config) => {
            config.only(&["Mode", "ExecutionType"], "ProcessorConfig")?;
            match config.string("Mode")?.as_deref() {
                None | Some("INLINE") => false,
                Some("DISTRIBUTED") => true,
                Some(other) => {
                    return Err(invalid(
                        "SCHEMA_VALIDATION_FAILED",
                        format!("ProcessorConfig Mode must be INLINE or DISTRIBUTED, not {other}"),
                        &config.at("Mode"),
                    ));
                }
            }
        }
    };
    if fields.has("ResultWriter") {
        return Err(invalid(
            "SCHEMA_VALIDATION_FAILED",
            "ResultWriter is not supported locally: the Map's output is its result array",
            &fields.at("ResultWriter"),
        ));
    }
    let distributed_only = [
        "ItemReader",
        "ItemBatcher",
        "ToleratedFailurePercentage",
        "ToleratedFailurePercentagePath",
        "ToleratedFailureCount",
        "ToleratedFailureCountPath",
        "Label",
    ];
    if let Some(field) = distributed_only
        .iter()
        .find(|f| !distributed && fields.has(f))
    {
        return Err(invalid(
            "SCHEMA_VALIDATION_FAILED",
            format!("{field} needs ProcessorConfig Mode DISTRIBUTED"),
            &fields.at(field),
        ));
    }
    let item_reader = fields
        .object("ItemReader")?
        .map(|reader| -> Result<ItemReader, String> {
            reader.only(&["Resource", "Parameters", "ReaderConfig"], "ItemReader")?;
            let resource = reader.required_string("Resource")?;
            if resource != LIST_OBJECTS_V2 {
                return Err(invalid(
                    "SCHEMA_VALIDATION_FAILED",
                    format!("ItemReader resource {resource:?} is not supported locally; use {LIST_OBJECTS_V2}"),
                    &reader.at("Resource"),
                ));
            }
            let max_items = match reader.object("ReaderConfig")? {
                Some(config) => config.number_or_path("MaxItems")?,
                None => None,
            };
            Ok(ItemReader {
                parameters: reader.template("Parameters")?.ok_or_else(|| {
                    invalid("SCHEMA_VALIDATION_FAILED", "ItemReader needs Parameters with a Bucket", &reader.at)
                })?,
                max_items,
            })
        })
        .transpose()?;
    let item_batcher = fields
        .object("ItemBatcher")?
        .map(|batcher| -> Result<ItemBatcher, String> {
            batcher.only(
                &[
                    "MaxItemsPerBatch",
                    "MaxItemsPerBatchPath",
                    "MaxInputBytesPerBatch",
                    "MaxInputBytesPerBatchPath",
                    "BatchInput",
                ],
                "ItemBatcher",
            )?;
            Ok(ItemBatcher {
                max_items_per_batch: batcher.number_or_path("MaxItemsPerBatch")?,
                max_input_bytes_per_batch: batcher.number_or_path("MaxInputBytesPerBatch")?,
                batch_input: batcher.template("BatchInput")?,
            })
        })
        .transpose()?;
    Ok(Map {
        processor: machine(processor_value, &fields.at(processor_field))?,
        distributed,
        items_path: fields.path("ItemsPath")?,
        item_selector: match fields.template("ItemSelector")? {
            Some(selector) => Some(selector),
            None => fields.template("Parameters")?,
        },
        item_reader,
        item_batcher,
        max_concurrency: fields.number_or_path("MaxConcurrency")?,
        tolerated_failure_percentage: fields.number_or_path("ToleratedFailurePercentage")?,
        tolerated_failure_count: fields.number_or_path("ToleratedFailureCount")?,
        result_selector: fields.template("ResultSelector")?,
        result_path: fields.result_path()?,
        recovery: Recovery::parse(fields)?,
    })
}
