//! The typed definition: a machine of named states, each one of the eight state types with
//! exactly the fields its type has, checked when it was parsed (see `parse`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::choice_rule::Rule;
use super::fields::{IoPath, NumberField};
use super::recovery::Recovery;
use crate::sfn::expr::intrinsics::Call;
use crate::sfn::expr::path::Path;
use crate::sfn::expr::reference::ResultPath;
use crate::sfn::expr::template::Template;

/// A state machine, or a Parallel branch, or a Map's item processor.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub start_at: String,
    pub states: BTreeMap<String, Node>,
}

impl Machine {
    pub fn state(&self, name: &str) -> Option<&Node> {
        self.states.get(name)
    }
}

/// One named state.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub common: Common,
    pub state: State,
}

/// The fields most state types share.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    pub input_path: IoPath,
    pub output_path: IoPath,
    /// `None` ends the machine (End, or a Succeed or Fail state); a Choice picks its own.
    pub next: Option<String>,
    pub assign: Option<Template>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Pass(Pass),
    Task(Box<Task>),
    Choice(Choice),
    Wait(Wait),
    Succeed,
    Fail(Fail),
    Parallel(Box<Parallel>),
    Map(Box<Map>),
}

impl State {
    /// The type's name as in `Type` and in history events (`PassStateEntered`).
    pub fn kind(&self) -> &'static str {
        match self {
            State::Pass(_) => "Pass",
            State::Task(_) => "Task",
            State::Choice(_) => "Choice",
            State::Wait(_) => "Wait",
            State::Succeed => "Succeed",
            State::Fail(_) => "Fail",
            State::Parallel(_) => "Parallel",
            State::Map(_) => "Map",
        }
    }

    /// Whether the state can retry, so that its context object has `State.RetryCount`.
    pub fn retries(&self) -> bool {
        matches!(self, State::Task(_) | State::Parallel(_) | State::Map(_))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pass {
    pub parameters: Option<Template>,
    pub result: Option<Value>,
    pub result_path: ResultPath,
}

/// What a Task calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `arn:aws:states:::lambda:invoke`, or with `.waitForTaskToken`.
    LambdaInvoke { callback: bool },
    /// `arn:aws:states:::sns:publish`.
    SnsPublish,
    /// `arn:aws:states:::events:putEvents`.
    EventsPutEvents,
    /// A function ARN as the resource: the legacy form, which returns only the output.
    Function(String),
}

/// Seconds given literally or read from a path.
#[derive(Debug, Clone, PartialEq)]
pub enum Seconds {
    Fixed(u64),
    Path(Path),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub resource: Resource,
    /// The resource as written, for history events.
    pub resource_arn: String,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: ResultPath,
    pub timeout: Option<Seconds>,
    pub heartbeat: Option<Seconds>,
    pub recovery: Recovery,
}

/// A top-level Choice rule and where it leads.
#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    pub rule: Rule,
    pub next: String,
    pub assign: Option<Template>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub choices: Vec<Branch>,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Wait {
    Seconds(u64),
    SecondsPath(Path),
    Timestamp(String),
    TimestampPath(Path),
}

/// A Fail state's Error or Cause.
#[derive(Debug, Clone, PartialEq)]
pub enum Text {
    Literal(String),
    Path(Path),
    Call(Call),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fail {
    pub error: Option<Text>,
    pub cause: Option<Text>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Parallel {
    pub branches: Vec<Machine>,
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: ResultPath,
    pub recovery: Recovery,
}

/// A Distributed Map's `ItemReader` over an S3 listing.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemReader {
    pub parameters: Template,
    pub max_items: Option<NumberField>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ItemBatcher {
    pub max_items_per_batch: Option<NumberField>,
    pub max_input_bytes_per_batch: Option<NumberField>,
    pub batch_input: Option<Template>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Map {
    pub processor: Machine,
    pub distributed: bool,
    pub items_path: Option<Path>,
    pub item_selector: Option<Template>,
    pub item_reader: Option<ItemReader>,
    pub item_batcher: Option<ItemBatcher>,
    pub max_concurrency: Option<NumberField>,
    pub tolerated_failure_percentage: Option<NumberField>,
    pub tolerated_failure_count: Option<NumberField>,
    pub result_selector: Option<Template>,
    pub result_path: ResultPath,
    pub recovery: Recovery,
}
