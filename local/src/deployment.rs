//! The deployment as the local stack runs it: the real `template.yaml`, resolved for loopback.
//! Each function gets the environment the template sets for it (same names, same values), the
//! state machine gets the template's definition substitutions, and the schedule is the
//! template's. The one value replaced is `APPROVAL_API_URL`, which points at the local API.

use std::collections::BTreeMap;

use serde_norway::Value as Yaml;

use crate::aws::{ACCOUNT, REGION};

/// The template and state machine this build was made from.
pub const TEMPLATE: &str = include_str!("../../template.yaml");
pub const DEFINITION: &str = include_str!("../../statemachine/macie_pipeline_scan.asl.json");
/// Where the template names that definition.
const DEFINITION_PATH: &str = "statemachine/macie_pipeline_scan.asl.json";
/// The stack name resources are named after locally.
pub const STACK: &str = "macie-pipeline-local";

/// The name of the role `owner` (a function, the state machine, the schedule rule) assumes:
/// `<stack>-<owner>Role`, as CloudFormation names the template's `<owner>Role`.
pub fn role_name(owner: &str) -> String {
    format!("{STACK}-{owner}Role")
}

/// Values for the template's parameters that have no default.
const LOCAL_DEFAULTS: &[(&str, &str)] = &[
    ("BucketNamePrefix", "local"),
    ("ApprovalEmailDestination", "reviewer@example.com"),
];

/// A function as the local stack runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFunction {
    pub environment: BTreeMap<String, String>,
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub parameters: BTreeMap<String, String>,
    /// Bucket names by logical id.
    pub buckets: BTreeMap<String, String>,
    /// The names of the buckets the template versions (`VersioningConfiguration: Status:
    /// Enabled`, after its conditions).
    pub versioned_buckets: std::collections::BTreeSet<String>,
    pub functions: BTreeMap<String, LocalFunction>,
    pub topic_arn: String,
    pub topic_display_name: String,
    pub subscriber: String,
    pub state_machine_name: String,
    pub substitutions: BTreeMap<String, String>,
    /// The customer-managed key the state machine's execution data is encrypted with, if any.
    pub state_machine_key: Option<String>,
    /// The schedule rule, unless `ScanSchedule` is `disabled`.
    pub schedule: Option<LocalSchedule>,
    /// The API Gateway routes the template defines, as (method in capitals, path): what the
    /// local approval API serves, and nothing else.
    pub api_routes: std::collections::BTreeSet<(String, String)>,
    /// Where the deployment reads Macie's discovery results: (bucket, KMS key ARN).
    pub discovery_results: (String, String),
    /// The policies of each function's role and of the state machine's, by logical id.
    pub roles: BTreeMap<String, Vec<RolePolicy>>,
    /// Bucket policies, key policies and topic policies.
    pub resource_policies: Vec<ResourcePolicy>,
    /// The Macie allow lists the template creates, by logical id.
    pub allow_lists: BTreeMap<String, LocalAllowList>,
    /// Buckets the deployment uses but does not create (`RawBucketName`): the stack changes
    /// nothing on them.
    pub external_buckets: std::collections::BTreeSet<String>,
    /// Each bucket's default encryption, by bucket name.
    pub bucket_encryption: BTreeMap<String, BucketEncryption>,
    /// The KMS keys the template creates.
    pub keys: Vec<LocalKey>,
    /// The template's KMS aliases: (`alias/<name>`, the key's ARN).
    pub key_aliases: Vec<(String, String)>,
    /// Event buses the template creates (the account's `default` bus always exists).
    pub event_buses: std::collections::BTreeSet<String>,
    /// The template's event-pattern rules.
    pub event_rules: Vec<LocalEventRule>,
    /// API destinations and connections, by ARN.
    pub api_destinations: BTreeMap<String, LocalApiDestination>,
    pub connections: BTreeMap<String, LocalConnection>,
    /// Buckets that send their events to EventBridge (`NotificationConfiguration:
    /// EventBridgeConfiguration: EventBridgeEnabled: true`).
    pub eventbridge_buckets: std::collections::BTreeSet<String>,
    /// The template's SQS queues, by ARN.
    pub queues: BTreeMap<String, LocalQueue>,
    /// The template's EventBridge Pipes.
    pub pipes: Vec<LocalPipe>,
}

/// An `AWS::SQS::Queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalQueue {
    pub name: String,
    pub arn: String,
    pub url: String,
    pub visibility_timeout_seconds: u64,
    pub retention_seconds: u64,
    /// `RedrivePolicy`: the dead-letter queue's ARN and how often a message may be received
    /// before it moves there.
    pub dead_letter: Option<(String, u32)>,
}

/// An `AWS::Pipes::Pipe` from an SQS queue to the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPipe {
    pub logical_id: String,
    pub arn: String,
    /// The owner of its role in [`Deployment::roles`].
    pub role: String,
    /// The source queue's ARN.
    pub source: String,
    pub batch_size: usize,
    pub batching_window_seconds: u64,
    /// The state machine it starts.
    pub target: String,
    /// `TargetParameters.InputTemplate`, applied to each record of a batch.
    pub input_template: Option<String>,
}

/// A bucket's default encryption (`BucketEncryption` of an `AWS::S3::Bucket`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BucketEncryption {
    /// `None` for SSE-S3; the key (ARN, id or alias) for SSE-KMS.
    pub kms_key: Option<String>,
    /// S3 Bucket Keys: S3 asks KMS for a bucket-level key, with the bucket's ARN as the
    /// encryption context, instead of a data key per object.
    pub bucket_key: bool,
}

/// An `AWS::KMS::Key` of the template.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalKey {
    pub logical_id: String,
    /// Stable across restarts (see `key_id`).
    pub key_id: String,
    pub description: String,
    pub policy: serde_json::Value,
}

/// The template's schedule rule: what starts runs on a clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSchedule {
    /// The rule's logical id.
    pub logical_id: String,
    pub expression: String,
    /// The ARN the rule's target starts.
    pub target: String,
    /// The owner of the target's role (`<owner>Role`), in [`Deployment::roles`] under it.
    pub role: String,
    pub enabled: bool,
}

/// An `AWS::Events::Rule` with an event pattern: what it matches on which bus, and where it
/// sends what matched.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalEventRule {
    pub logical_id: String,
    pub arn: String,
    /// The event bus's name.
    pub bus: String,
    pub pattern: serde_json::Value,
    pub enabled: bool,
    pub targets: Vec<LocalRuleTarget>,
}

/// One target of an event rule.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRuleTarget {
    pub id: String,
    pub arn: String,
    /// The owner of the role the target names (`<owner>Role`), in [`Deployment::roles`]
    /// under it.
    pub role: Option<String>,
    /// `InputTransformer`: (`InputPathsMap`, `InputTemplate`); the whole event when absent.
    pub input_transformer: Option<(BTreeMap<String, String>, String)>,
    /// `DeadLetterConfig.Arn`: the queue an event goes to when it cannot be delivered.
    pub dead_letter: Option<String>,
    /// `RetryPolicy.MaximumRetryAttempts`, if set.
    pub maximum_retry_attempts: Option<u32>,
}

/// An `AWS::Events::ApiDestination`: an HTTP endpoint a rule sends events to.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalApiDestination {
    pub arn: String,
    pub endpoint: String,
    pub method: String,
    /// The connection's ARN.
    pub connection: String,
}

/// An `AWS::Events::Connection`: how an API destination is authorized.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalConnection {
    pub arn: String,
    pub authorization: ConnectionAuthorization,
    /// `InvocationHttpParameters.HeaderParameters`: extra headers sent with every request.
    pub headers: Vec<(String, String)>,
}

/// The authorization a connection adds to each request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionAuthorization {
    /// A header named `name` with `value`.
    ApiKey { name: String, value: String },
    /// `Authorization: Basic`.
    Basic { username: String, password: String },
}

/// An `AWS::Macie::AllowList` of the template, as the local Macie holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalAllowList {
    /// Stable across restarts (see [`allow_list_id`]).
    pub id: String,
    pub name: String,
    pub description: String,
    /// In Macie's API shape: `{"regex": ...}` or `{"s3WordsList": {"bucketName", "objectKey"}}`.
    pub criteria: serde_json::Value,
}

/// One policy of a role: inline, a SAM policy template, or a managed policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RolePolicy {
    /// Where it comes from, for reports (`TriggerMacieScan Policies[0]`).
    pub name: String,
    pub document: serde_json::Value,
}

/// What a resource policy is attached to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyTarget {
    Bucket(String),
    Key(String),
    Topic(String),
    Queue(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResourcePolicy {
    pub target: PolicyTarget,
    /// The template resource that holds it.
    pub logical_id: String,
    pub document: serde_json::Value,
}

struct Resolver<'a> {
    template: &'a Yaml,
    parameters: BTreeMap<String, String>,
    conditions: BTreeMap<String, bool>,
}

fn tagged(value: &Yaml) -> Option<(String, &Yaml)> {
    match value {
        Yaml::Tagged(tagged) => Some((
            tagged.tag.to_string().trim_start_matches('!').to_owned(),
            &tagged.value,
        )),
        _ => None,
    }
}

fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(text) => Some(text.clone()),
        Yaml::Number(number) => Some(number.to_string()),
        Yaml::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

impl Resolver<'_> {
    fn resource(&self, id: &str) -> Result<&Yaml, String> {
        let resource = &self.template["Resources"][id];
        if resource.is_null() {
            return Err(format!("the template has no resource or parameter {id}"));
        }
        Ok(resource)
    }

    /// `!Ref name`: a parameter, a pseudo parameter or a resource.
    fn reference(&self, name: &str) -> Result<String, String> {
        if let Some(value) = self.parameters.get(name) {
            return Ok(value.clone());
        }
        match name {
            "AWS::AccountId" => return Ok(ACCOUNT.into()),
            "AWS::Region" => return Ok(REGION.into()),
            "AWS::Partition" => return Ok("aws".into()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".into()),
            "AWS::StackName" => return Ok(STACK.into()),
            "AWS::NoValue" => return Err("AWS::NoValue has no value".into()),
            _ => {}
        }
        let resource = self.resource(name)?;
        match resource["Type"].as_str().unwrap_or_default() {
            "AWS::S3::Bucket" => self.value(&resource["Properties"]["BucketName"]),
            "AWS::SNS::Topic" => Ok(crate::aws::topic_arn(&format!("{STACK}-{name}"))),
            "AWS::Serverless::Function" => Ok(name.to_owned()),
            "AWS::Macie::Session" => Ok(ACCOUNT.into()),
            "AWS::Serverless::Api" => Ok("local".to_owned()),
            "AWS::StepFunctions::StateMachine" => Ok(format!(
                "arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{}",
                self.value(&resource["Properties"]["StateMachineName"])?
            )),
            "AWS::IAM::Role" => name
                .strip_suffix("Role")
                .map(role_name)
                .ok_or_else(|| format!("{name}: a role's logical id ends in Role")),
            "AWS::Logs::LogGroup" => Ok(format!("/local/{name}")),
            "AWS::KMS::Key" => Ok(key_id(name)),
            "AWS::Macie::AllowList" => Ok(allow_list_id(name)),
            "AWS::SQS::Queue" => Ok(queue_url(&queue_name(name))),
            "AWS::Events::Rule"
            | "AWS::Events::Connection"
            | "AWS::Events::ApiDestination"
            | "AWS::Events::EventBus" => self.events_name(name),
            other => Err(format!(
                "the local stack cannot resolve a reference to {name} ({other})"
            )),
        }
    }

    /// `!GetAtt resource.attribute`.
    fn attribute(&self, id: &str, attribute: &str) -> Result<String, String> {
        let resource = self.resource(id)?;
        let kind = resource["Type"].as_str().unwrap_or_default();
        match (kind, attribute) {
            ("AWS::S3::Bucket", "Arn") => Ok(format!("arn:aws:s3:::{}", self.reference(id)?)),
            ("AWS::SNS::Topic", "TopicName") => Ok(format!("{STACK}-{id}")),
            ("AWS::SNS::Topic", "TopicArn") => self.reference(id),
            ("AWS::Serverless::Function", "Arn") => {
                Ok(format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{id}"))
            }
            ("AWS::Logs::LogGroup", "Arn") => Ok(format!(
                "arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/local/{id}"
            )),
            ("AWS::Macie::AllowList", "Id") => Ok(allow_list_id(id)),
            ("AWS::Macie::AllowList", "Arn") => Ok(format!(
                "arn:aws:macie2:{REGION}:{ACCOUNT}:allow-list/{}",
                allow_list_id(id)
            )),
            ("AWS::Macie::Session", "AwsAccountId") => Ok(ACCOUNT.into()),
            ("AWS::IAM::Role", "Arn") => Ok(crate::aws::role_arn(&self.reference(id)?)),
            ("AWS::KMS::Key", "Arn") => {
                Ok(format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{}", key_id(id)))
            }
            ("AWS::Events::Connection", "Arn") => Ok(format!(
                "arn:aws:events:{REGION}:{ACCOUNT}:connection/{}/{}",
                self.events_name(id)?,
                key_id(id)
            )),
            ("AWS::Events::ApiDestination", "Arn") => Ok(format!(
                "arn:aws:events:{REGION}:{ACCOUNT}:api-destination/{}/{}",
                self.events_name(id)?,
                key_id(id)
            )),
            ("AWS::Events::Rule", "Arn") => {
                let bus = self.rule_bus(&resource["Properties"])?;
                let name = self.events_name(id)?;
                Ok(if bus == "default" {
                    format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}")
                } else {
                    format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{bus}/{name}")
                })
            }
            ("AWS::Events::EventBus", "Arn") => Ok(format!(
                "arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{}",
                self.events_name(id)?
            )),
            ("AWS::Events::EventBus", "Name") => self.events_name(id),
            ("AWS::SQS::Queue", "Arn") => Ok(queue_arn(&queue_name(id))),
            ("AWS::SQS::Queue", "QueueName") => Ok(queue_name(id)),
            ("AWS::SQS::Queue", "QueueUrl") => Ok(queue_url(&queue_name(id))),
            ("AWS::Pipes::Pipe", "Arn") => Ok(format!(
                "arn:aws:pipes:{REGION}:{ACCOUNT}:pipe/{}",
                self.events_name(id)?
            )),
            _ => Err(format!("the local stack cannot resolve {id}.{attribute}")),
        }
    }

    fn substitute(
        &self,
        text: &str,
        variables: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .ok_or("an unterminated ${ in !Sub")?
                + start;
            let name = &rest[start + 2..end];
            let value = match name.split_once('.') {
                _ if variables.contains_key(name) => variables[name].clone(),
                Some((id, attribute)) if !name.starts_with("AWS::") => {
                    self.attribute(id, attribute)?
                }
                _ => self.reference(name)?,
            };
            out.push_str(&value);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn condition(&self, value: &Yaml) -> Result<bool, String> {
        if let Some(name) = value.as_str().or_else(|| value["Condition"].as_str()) {
            return self
                .conditions
                .get(name)
                .copied()
                .ok_or_else(|| format!("unknown condition {name}"));
        }
        let (tag, inner) = tagged(value).ok_or_else(|| format!("not a condition: {value:?}"))?;
        let items = inner.as_sequence().cloned().unwrap_or_default();
        match tag.as_str() {
            "Equals" if items.len() == 2 => Ok(self.value(&items[0])? == self.value(&items[1])?),
            "Not" if items.len() == 1 => Ok(!self.condition(&items[0])?),
            "And" => items
                .iter()
                .try_fold(true, |all, item| Ok(all && self.condition(item)?)),
            "Or" => items
                .iter()
                .try_fold(false, |any, item| Ok(any || self.condition(item)?)),
            _ => Err(format!("unsupported condition !{tag}")),
        }
    }

    /// The branch an `!If [condition, then, else]` takes.
    fn branch<'y>(&self, arguments: &'y Yaml) -> Result<&'y Yaml, String> {
        match arguments.as_sequence().map(Vec::as_slice) {
            Some([condition, then, otherwise]) => Ok(if self.condition(condition)? {
                then
            } else {
                otherwise
            }),
            _ => Err("!If takes [condition, value if true, value if false]".into()),
        }
    }

    /// Whether a bucket's `VersioningConfiguration` (possibly under `!If`) turns versioning on.
    fn versioned(&self, configuration: &Yaml) -> Result<bool, String> {
        if let Some(("If", inner)) = tagged(configuration)
            .as_ref()
            .map(|(tag, inner)| (tag.as_str(), *inner))
        {
            return self.versioned(self.branch(inner)?);
        }
        if let Some(("Ref", name)) = tagged(configuration)
            .as_ref()
            .map(|(tag, inner)| (tag.as_str(), *inner))
            && name.as_str() == Some("AWS::NoValue")
        {
            return Ok(false);
        }
        if configuration.is_null() {
            return Ok(false);
        }
        Ok(self.value(&configuration["Status"])? == "Enabled")
    }

    /// A scalar value with its intrinsic functions resolved.
    fn value(&self, value: &Yaml) -> Result<String, String> {
        if let Some(text) = scalar(value) {
            return Ok(text);
        }
        let (tag, inner) =
            tagged(value).ok_or_else(|| format!("cannot resolve {value:?} to a value"))?;
        match tag.as_str() {
            "Ref" => self.reference(inner.as_str().unwrap_or_default()),
            "Sub" => match inner {
                Yaml::String(text) => self.substitute(text, &BTreeMap::new()),
                Yaml::Sequence(items) if items.len() == 2 => {
                    let text = items[0]
                        .as_str()
                        .ok_or("!Sub's first item is not a string")?;
                    let mut variables = BTreeMap::new();
                    for (name, value) in items[1].as_mapping().ok_or("!Sub's variables")? {
                        variables.insert(
                            name.as_str().unwrap_or_default().to_owned(),
                            self.value(value)?,
                        );
                    }
                    self.substitute(text, &variables)
                }
                _ => Err("!Sub takes a string or a [string, variables] list".into()),
            },
            "GetAtt" => {
                let text = inner.as_str().unwrap_or_default();
                let (id, attribute) = text
                    .split_once('.')
                    .ok_or_else(|| format!("!GetAtt {text} names no attribute"))?;
                self.attribute(id, attribute)
            }
            "If" => self.value(self.branch(inner)?),
            "Join" => {
                let items = inner.as_sequence().ok_or("!Join takes a list")?;
                let separator = items[0].as_str().unwrap_or_default();
                let parts = items[1].as_sequence().ok_or("!Join joins a list")?;
                Ok(parts
                    .iter()
                    .map(|p| self.value(p))
                    .collect::<Result<Vec<_>, _>>()?
                    .join(separator))
            }
            other => Err(format!("the local stack cannot resolve !{other}")),
        }
    }
}

impl Resolver<'_> {
    /// The name of an EventBridge resource: its `Name`, or one CloudFormation would make.
    fn events_name(&self, id: &str) -> Result<String, String> {
        let name = &self.resource(id)?["Properties"]["Name"];
        if name.is_null() {
            Ok(format!("{STACK}-{id}"))
        } else {
            self.value(name)
        }
    }

    /// The name of the bus a rule is on (`EventBusName` takes a name or an ARN).
    fn rule_bus(&self, properties: &Yaml) -> Result<String, String> {
        let bus = &properties["EventBusName"];
        if bus.is_null() {
            return Ok("default".into());
        }
        let bus = self.value(bus)?;
        Ok(bus.rsplit('/').next().unwrap_or(&bus).to_owned())
    }

    /// An event pattern, as YAML or as JSON text, with numbers kept as numbers.
    fn event_pattern(&self, id: &str, pattern: &Yaml) -> Result<serde_json::Value, String> {
        // (`as_str` sees through a tag: `!Ref Name` would read as the text "Name".)
        if let Some(text) = pattern.as_str().filter(|_| tagged(pattern).is_none()) {
            return serde_json::from_str(text)
                .map_err(|err| format!("{id}: its EventPattern is not JSON: {err}"));
        }
        let resolved = match self
            .json_typed(pattern, true)?
            .ok_or_else(|| format!("{id} has no EventPattern"))?
        {
            // A pattern given by parameter (`!Ref TriggerEventPattern`) is JSON text.
            serde_json::Value::String(text) => serde_json::from_str(&text)
                .map_err(|err| format!("{id}: its EventPattern is not JSON: {err}"))?,
            resolved => resolved,
        };
        crate::events::pattern::test(&resolved, &serde_json::json!({}))
            .map_err(|err| format!("{id}: {err}"))?;
        Ok(resolved)
    }

    /// An event rule's targets, each of a kind the local EventBridge delivers to.
    fn rule_targets(&self, id: &str, targets: &Yaml) -> Result<Vec<LocalRuleTarget>, String> {
        let mut out = Vec::new();
        for target in targets.as_sequence().into_iter().flatten() {
            let target_id = self.value(&target["Id"])?;
            for unsupported in ["Input", "InputPath"] {
                if !target[unsupported].is_null() {
                    return Err(format!(
                        "{id}: target {target_id} sets {unsupported}, which the local EventBridge does not apply (it applies InputTransformer)"
                    ));
                }
            }
            let role = if target["RoleArn"].is_null() {
                None
            } else {
                Some(self.role_owner(&format!("{id} target {target_id}"), &target["RoleArn"])?)
            };
            let transformer = &target["InputTransformer"];
            let input_transformer = if transformer.is_null() {
                None
            } else {
                let mut paths = BTreeMap::new();
                for (name, path) in transformer["InputPathsMap"]
                    .as_mapping()
                    .into_iter()
                    .flatten()
                {
                    paths.insert(scalar(name).unwrap_or_default(), self.value(path)?);
                }
                Some((paths, self.value(&transformer["InputTemplate"])?))
            };
            let attempts = &target["RetryPolicy"]["MaximumRetryAttempts"];
            out.push(LocalRuleTarget {
                id: target_id,
                arn: self.value(&target["Arn"])?,
                role,
                input_transformer,
                dead_letter: if target["DeadLetterConfig"].is_null() {
                    None
                } else {
                    Some(self.value(&target["DeadLetterConfig"]["Arn"])?)
                },
                maximum_retry_attempts: if attempts.is_null() {
                    None
                } else {
                    Some(
                        self.value(attempts)?
                            .parse()
                            .map_err(|_| format!("{id}: MaximumRetryAttempts is not a number"))?,
                    )
                },
            });
        }
        Ok(out)
    }

    /// The owner of the template role whose ARN `arn` resolves to (`<owner>Role`), which the
    /// local IAM knows the role by.
    fn role_owner(&self, what: &str, arn: &Yaml) -> Result<String, String> {
        let arn = self.value(arn)?;
        for (id, resource) in self.template["Resources"]
            .as_mapping()
            .into_iter()
            .flatten()
        {
            let id = id.as_str().unwrap_or_default();
            if resource["Type"].as_str() == Some("AWS::IAM::Role")
                && self.attribute(id, "Arn")? == arn
            {
                return id
                    .strip_suffix("Role")
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{id}: a role's logical id ends in Role"));
            }
        }
        Err(format!(
            "{what}: its role {arn} is not one of the template's"
        ))
    }

    /// A connection's authorization, as `AuthParameters` gives it (its `!If`s resolved).
    fn connection(&self, id: &str, properties: &Yaml) -> Result<LocalConnection, String> {
        let parameters = self
            .json(&properties["AuthParameters"])?
            .ok_or_else(|| format!("{id} has no AuthParameters"))?;
        let text = |pointer: &str| {
            parameters
                .pointer(pointer)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("{id}: AuthParameters{pointer} is missing"))
        };
        let authorization = match self.value(&properties["AuthorizationType"])?.as_str() {
            "API_KEY" => ConnectionAuthorization::ApiKey {
                name: text("/ApiKeyAuthParameters/ApiKeyName")?,
                value: text("/ApiKeyAuthParameters/ApiKeyValue")?,
            },
            "BASIC" => ConnectionAuthorization::Basic {
                username: text("/BasicAuthParameters/Username")?,
                password: text("/BasicAuthParameters/Password")?,
            },
            other => {
                return Err(format!(
                    "{id}: the local EventBridge authorizes API destinations with API_KEY or BASIC, not {other}"
                ));
            }
        };
        let headers = parameters
            .pointer("/InvocationHttpParameters/HeaderParameters")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .map(|header| {
                (
                    header["Key"].as_str().unwrap_or_default().to_owned(),
                    header["Value"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        Ok(LocalConnection {
            arn: self.attribute(id, "Arn")?,
            authorization,
            headers,
        })
    }
}

impl Resolver<'_> {
    /// A whole tree (a policy document) with its intrinsic functions resolved: `!If` picks a
    /// branch, and `!Ref AWS::NoValue` removes the item or key that holds it. `None` is
    /// `AWS::NoValue` itself.
    fn json(&self, value: &Yaml) -> Result<Option<serde_json::Value>, String> {
        self.json_typed(value, false)
    }

    /// [`Self::json`], with YAML numbers kept as JSON numbers when `numbers` is set (an event
    /// pattern compares numbers; a policy document holds them as text).
    fn json_typed(&self, value: &Yaml, numbers: bool) -> Result<Option<serde_json::Value>, String> {
        use serde_json::Value as Json;
        if let Some((tag, inner)) = tagged(value) {
            return match tag.as_str() {
                "Ref" if inner.as_str() == Some("AWS::NoValue") => Ok(None),
                "If" => self.json_typed(self.branch(inner)?, numbers),
                _ => self.value(value).map(|text| Some(Json::String(text))),
            };
        }
        Ok(Some(match value {
            Yaml::Null => Json::Null,
            Yaml::Bool(flag) => Json::Bool(*flag),
            Yaml::Number(number) if numbers => {
                serde_json::to_value(number).map_err(|err| format!("the number {number}: {err}"))?
            }
            Yaml::Number(_) | Yaml::String(_) => Json::String(scalar(value).unwrap_or_default()),
            Yaml::Sequence(items) => Json::Array(
                items
                    .iter()
                    .map(|item| self.json_typed(item, numbers))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .flatten()
                    .collect(),
            ),
            Yaml::Mapping(entries) => {
                let mut object = serde_json::Map::new();
                for (key, item) in entries {
                    let key = scalar(key).ok_or("a mapping key is not a string")?;
                    if let Some(item) = self.json_typed(item, numbers)? {
                        object.insert(key, item);
                    }
                }
                Json::Object(object)
            }
            Yaml::Tagged(_) => unreachable!("handled above"),
        }))
    }

    /// A function's or state machine's `Policies`, SAM policy templates expanded.
    fn policies(&self, id: &str, policies: &Yaml) -> Result<Vec<RolePolicy>, String> {
        let mut out = Vec::new();
        for (index, policy) in policies.as_sequence().into_iter().flatten().enumerate() {
            let Some(resolved) = self.json(policy)? else {
                continue;
            };
            let label = format!("{id} Policies[{index}]");
            match resolved {
                serde_json::Value::Object(object) if object.contains_key("Statement") => {
                    out.push(RolePolicy {
                        name: label,
                        document: serde_json::Value::Object(object),
                    });
                }
                serde_json::Value::Object(object) if object.len() == 1 => {
                    let (template, parameters) = object.into_iter().next().expect("one entry");
                    out.push(RolePolicy {
                        name: format!("{label} ({template})"),
                        document: crate::iam::sam::policy_template(&template, &parameters)?,
                    });
                }
                serde_json::Value::String(managed) => {
                    out.push(RolePolicy {
                        name: managed.clone(),
                        document: crate::iam::sam::managed_policy(&managed)?,
                    });
                }
                other => {
                    return Err(format!(
                        "{label}: not a policy the local stack reads: {other}"
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// A stable key id for a KMS key resource, so ARNs stay the same across restarts.
fn key_id(logical_id: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, logical_id.as_bytes()).to_string()
}

/// A stable allow list id for an allow list resource, in Macie's form (22 lowercase letters and
/// digits).
pub fn allow_list_id(logical_id: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, logical_id.as_bytes())
        .simple()
        .to_string()[..22]
        .to_owned()
}

/// Checks an override against the parameter's declared constraints.
fn check_parameter(name: &str, declared: &Yaml, value: &str) -> Result<(), String> {
    if let Some(allowed) = declared["AllowedValues"].as_sequence() {
        let allowed: Vec<String> = allowed.iter().filter_map(scalar).collect();
        if !allowed.iter().any(|a| a == value) {
            return Err(format!(
                "{name}={value:?} is not one of {}",
                allowed.join(", ")
            ));
        }
    }
    if let Some(pattern) = declared["AllowedPattern"].as_str() {
        let anchored =
            regex::Regex::new(pattern).map_err(|err| format!("{name}'s pattern: {err}"))?;
        if !anchored.is_match(value) {
            return Err(format!("{name}={value:?} does not match {pattern}"));
        }
    }
    if declared["Type"].as_str() == Some("Number") {
        let number: f64 = value
            .parse()
            .map_err(|_| format!("{name}={value:?} is not a number"))?;
        if declared["MinValue"]
            .as_f64()
            .is_some_and(|min| number < min)
            || declared["MaxValue"]
                .as_f64()
                .is_some_and(|max| number > max)
        {
            return Err(format!("{name}={value} is outside its allowed range"));
        }
    }
    Ok(())
}

impl Deployment {
    /// Resolves `template` with parameter `overrides`; `api_url` is the local approval API.
    pub fn resolve(
        template: &str,
        overrides: &BTreeMap<String, String>,
        api_url: &str,
    ) -> Result<Self, String> {
        let template: Yaml =
            serde_norway::from_str(template).map_err(|err| format!("template.yaml: {err}"))?;
        let declared = template["Parameters"]
            .as_mapping()
            .ok_or("the template has no Parameters")?;
        let mut parameters = BTreeMap::new();
        for (name, spec) in declared {
            let name = name.as_str().unwrap_or_default().to_owned();
            let value = overrides
                .get(&name)
                .cloned()
                .or_else(|| scalar(&spec["Default"]))
                .or_else(|| {
                    LOCAL_DEFAULTS
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, v)| (*v).to_owned())
                })
                .ok_or_else(|| format!("parameter {name} needs a value"))?;
            check_parameter(&name, spec, &value)?;
            parameters.insert(name, value);
        }
        for name in overrides.keys() {
            if !parameters.contains_key(name) {
                return Err(format!("the template has no parameter {name}"));
            }
        }
        let mut resolver = Resolver {
            template: &template,
            parameters,
            conditions: BTreeMap::new(),
        };
        if let Some(conditions) = template["Conditions"].as_mapping() {
            for (name, condition) in conditions {
                let value = resolver.condition(condition)?;
                resolver
                    .conditions
                    .insert(name.as_str().unwrap_or_default().to_owned(), value);
            }
        }

        // The template's Rules hold across parameters, as CloudFormation checks them.
        // A rule with a RuleCondition applies only when that condition holds.
        for (name, rule) in template["Rules"].as_mapping().into_iter().flatten() {
            if !rule["RuleCondition"].is_null() && !resolver.condition(&rule["RuleCondition"])? {
                continue;
            }
            for assertion in rule["Assertions"].as_sequence().into_iter().flatten() {
                if !resolver.condition(&assertion["Assert"])? {
                    return Err(format!(
                        "rule {}: {}",
                        name.as_str().unwrap_or_default(),
                        assertion["AssertDescription"].as_str().unwrap_or("not met")
                    ));
                }
            }
        }

        let resources = template["Resources"]
            .as_mapping()
            .ok_or("the template has no Resources")?;
        let mut buckets = BTreeMap::new();
        let mut versioned_buckets = std::collections::BTreeSet::new();
        let mut api_routes = std::collections::BTreeSet::new();
        let mut functions = BTreeMap::new();
        let mut machine = None;
        let mut schedule = None;
        let mut topic = None;
        let mut roles = BTreeMap::new();
        let mut resource_policies = Vec::new();
        let mut allow_lists = BTreeMap::new();
        let mut bucket_encryption = BTreeMap::new();
        let mut keys = Vec::new();
        let mut key_aliases = Vec::new();
        let mut event_buses = std::collections::BTreeSet::new();
        let mut event_rules = Vec::new();
        let mut api_destinations = BTreeMap::new();
        let mut connections = BTreeMap::new();
        let mut eventbridge_buckets = std::collections::BTreeSet::new();
        let mut queues = BTreeMap::new();
        let mut pipes = Vec::new();
        let global_tracing = template["Globals"]["Function"]["Tracing"].as_str() == Some("Active");
        let global_timeout = template["Globals"]["Function"]["Timeout"]
            .as_u64()
            .unwrap_or(3);
        for (id, resource) in resources {
            let id = id.as_str().unwrap_or_default();
            if let Some(condition) = resource["Condition"].as_str()
                && !resolver.condition(&Yaml::String(condition.to_owned()))?
            {
                continue;
            }
            let properties = &resource["Properties"];
            match resource["Type"].as_str().unwrap_or_default() {
                "AWS::S3::Bucket" => {
                    let name = resolver.reference(id)?;
                    if resolver.versioned(&properties["VersioningConfiguration"])? {
                        versioned_buckets.insert(name.clone());
                    }
                    let notifications = resolver.json(&properties["NotificationConfiguration"])?;
                    if let Some(enabled) = notifications
                        .as_ref()
                        .and_then(|n| n.pointer("/EventBridgeConfiguration/EventBridgeEnabled"))
                        && (enabled == true || enabled == "true")
                    {
                        eventbridge_buckets.insert(name.clone());
                    }
                    if let Some(encryption) = resolver.json(&properties["BucketEncryption"])? {
                        bucket_encryption
                            .insert(name.clone(), default_encryption(id, &encryption)?);
                    }
                    buckets.insert(id.to_owned(), name);
                }
                "AWS::Serverless::Function" => {
                    let mut environment = BTreeMap::new();
                    if let Some(variables) = properties["Environment"]["Variables"].as_mapping() {
                        for (name, value) in variables {
                            environment.insert(
                                name.as_str().unwrap_or_default().to_owned(),
                                resolver.value(value)?,
                            );
                        }
                    }
                    if environment.contains_key("APPROVAL_API_URL") {
                        environment.insert(
                            "APPROVAL_API_URL".into(),
                            api_url.trim_end_matches('/').to_owned(),
                        );
                    }
                    for event in properties["Events"]
                        .as_mapping()
                        .into_iter()
                        .flatten()
                        .map(|(_, e)| e)
                    {
                        if event["Type"].as_str() == Some("Api") {
                            let route = &event["Properties"];
                            api_routes.insert((
                                resolver.value(&route["Method"])?.to_ascii_uppercase(),
                                resolver.value(&route["Path"])?,
                            ));
                        }
                    }
                    let mut policies = resolver.policies(id, &properties["Policies"])?;
                    let tracing = properties["Tracing"]
                        .as_str()
                        .map_or(global_tracing, |mode| mode == "Active");
                    for managed in crate::iam::sam::function_managed_policies(tracing) {
                        policies.push(RolePolicy {
                            name: managed.to_owned(),
                            document: crate::iam::sam::managed_policy(managed)?,
                        });
                    }
                    roles.insert(id.to_owned(), policies);
                    functions.insert(
                        id.to_owned(),
                        LocalFunction {
                            environment,
                            timeout_seconds: properties["Timeout"]
                                .as_u64()
                                .unwrap_or(global_timeout),
                        },
                    );
                }
                "AWS::SNS::Topic" => {
                    let subscriber = properties["Subscription"][0]["Endpoint"].clone();
                    topic = Some((
                        resolver.reference(id)?,
                        resolver
                            .value(&properties["DisplayName"])
                            .unwrap_or_else(|_| "AWS Notifications".into()),
                        resolver.value(&subscriber)?,
                    ));
                }
                "AWS::StepFunctions::StateMachine" => {
                    let location = resolver.value(&properties["DefinitionS3Location"])?;
                    if location != DEFINITION_PATH {
                        return Err(format!(
                            "{id}: the local stack runs {DEFINITION_PATH}, not {location}"
                        ));
                    }
                    let mut substitutions = BTreeMap::new();
                    for (name, value) in properties["DefinitionSubstitutions"]
                        .as_mapping()
                        .into_iter()
                        .flatten()
                    {
                        substitutions.insert(
                            name.as_str().unwrap_or_default().to_owned(),
                            resolver.value(value)?,
                        );
                    }
                    // Its role is `<id>Role`, the name SAM gave it and the local IAM expects.
                    let role = resolver.value(&properties["RoleArn"])?;
                    if role != resolver.attribute(&format!("{id}Role"), "Arn")? {
                        return Err(format!("{id}: its RoleArn must be {id}Role's"));
                    }
                    let encryption = &properties["EncryptionConfiguration"];
                    let key = match encryption["Type"].as_str() {
                        None | Some("AWS_OWNED_KEY") => None,
                        Some("CUSTOMER_MANAGED_KMS_KEY") => {
                            Some(resolver.value(&encryption["KmsKeyId"])?)
                        }
                        Some(other) => {
                            return Err(format!("{id}: unknown encryption type {other}"));
                        }
                    };
                    machine = Some((
                        resolver.value(&properties["StateMachineName"])?,
                        substitutions,
                        key,
                    ));
                }
                "AWS::IAM::Role" => {
                    // Keyed by what assumes it: `<owner>Role` is the role of `<owner>`.
                    let owner = id
                        .strip_suffix("Role")
                        .ok_or_else(|| format!("{id}: a role's logical id ends in Role"))?;
                    let mut policies = Vec::new();
                    for (index, policy) in properties["Policies"]
                        .as_sequence()
                        .into_iter()
                        .flatten()
                        .enumerate()
                    {
                        policies.push(RolePolicy {
                            name: format!(
                                "{id} {}",
                                resolver
                                    .value(&policy["PolicyName"])
                                    .unwrap_or_else(|_| format!("Policies[{index}]"))
                            ),
                            document: resolver
                                .json(&policy["PolicyDocument"])?
                                .ok_or_else(|| format!("{id} Policies[{index}] has no document"))?,
                        });
                    }
                    for managed in properties["ManagedPolicyArns"]
                        .as_sequence()
                        .into_iter()
                        .flatten()
                    {
                        let managed = resolver.value(managed)?;
                        policies.push(RolePolicy {
                            document: crate::iam::sam::managed_policy(&managed)?,
                            name: managed,
                        });
                    }
                    roles.insert(owner.to_owned(), policies);
                }
                // A schedule rule; the template has no other kind.
                "AWS::Events::Rule" if !properties["ScheduleExpression"].is_null() => {
                    let target = &properties["Targets"][0];
                    schedule = Some(LocalSchedule {
                        logical_id: id.to_owned(),
                        expression: resolver.value(&properties["ScheduleExpression"])?,
                        target: resolver.value(&target["Arn"])?,
                        role: resolver.role_owner(id, &target["RoleArn"])?,
                        enabled: properties["State"].as_str() != Some("DISABLED"),
                    });
                }
                "AWS::SQS::Queue" => {
                    let seconds = |name: &str, default: u64| -> Result<u64, String> {
                        if properties[name].is_null() {
                            return Ok(default);
                        }
                        resolver
                            .value(&properties[name])?
                            .parse()
                            .map_err(|_| format!("{id}: {name} is not a number of seconds"))
                    };
                    let redrive = resolver.json(&properties["RedrivePolicy"])?;
                    let dead_letter = match redrive {
                        None | Some(serde_json::Value::Null) => None,
                        Some(policy) => Some((
                            policy["deadLetterTargetArn"]
                                .as_str()
                                .ok_or_else(|| {
                                    format!("{id}: RedrivePolicy has no deadLetterTargetArn")
                                })?
                                .to_owned(),
                            policy["maxReceiveCount"]
                                .as_str()
                                .and_then(|n| n.parse().ok())
                                .ok_or_else(|| {
                                    format!("{id}: RedrivePolicy has no maxReceiveCount")
                                })?,
                        )),
                    };
                    let name = queue_name(id);
                    queues.insert(
                        queue_arn(&name),
                        LocalQueue {
                            arn: queue_arn(&name),
                            url: queue_url(&name),
                            visibility_timeout_seconds: seconds("VisibilityTimeout", 30)?,
                            retention_seconds: seconds("MessageRetentionPeriod", 345_600)?,
                            dead_letter,
                            name,
                        },
                    );
                }
                "AWS::Pipes::Pipe" => {
                    let sqs = resolver
                        .json(&properties["SourceParameters"]["SqsQueueParameters"])?
                        .unwrap_or_default();
                    let number = |name: &str, default: u64| -> Result<u64, String> {
                        match &sqs[name] {
                            serde_json::Value::Null => Ok(default),
                            value => value
                                .as_str()
                                .and_then(|n| n.parse().ok())
                                .ok_or_else(|| format!("{id}: {name} is not a number")),
                        }
                    };
                    let target_parameters = resolver
                        .json(&properties["TargetParameters"])?
                        .unwrap_or_default();
                    let invocation = target_parameters
                        .pointer("/StepFunctionStateMachineParameters/InvocationType")
                        .and_then(serde_json::Value::as_str);
                    if invocation != Some("FIRE_AND_FORGET") {
                        return Err(format!(
                            "{id}: a Standard state machine is started with InvocationType FIRE_AND_FORGET"
                        ));
                    }
                    pipes.push(LocalPipe {
                        logical_id: id.to_owned(),
                        arn: resolver.attribute(id, "Arn")?,
                        role: resolver.role_owner(id, &properties["RoleArn"])?,
                        source: resolver.value(&properties["Source"])?,
                        batch_size: number("BatchSize", 10)? as usize,
                        batching_window_seconds: number("MaximumBatchingWindowInSeconds", 0)?,
                        target: resolver.value(&properties["Target"])?,
                        input_template: target_parameters["InputTemplate"]
                            .as_str()
                            .map(str::to_owned),
                    });
                }
                "AWS::Events::Rule" if !properties["EventPattern"].is_null() => {
                    event_rules.push(LocalEventRule {
                        logical_id: id.to_owned(),
                        arn: resolver.attribute(id, "Arn")?,
                        bus: resolver.rule_bus(properties)?,
                        pattern: resolver.event_pattern(id, &properties["EventPattern"])?,
                        enabled: properties["State"].as_str() != Some("DISABLED"),
                        targets: resolver.rule_targets(id, &properties["Targets"])?,
                    });
                }
                "AWS::Events::EventBus" => {
                    event_buses.insert(resolver.events_name(id)?);
                }
                "AWS::Events::Connection" => {
                    let connection = resolver.connection(id, properties)?;
                    connections.insert(connection.arn.clone(), connection);
                }
                "AWS::Events::ApiDestination" => {
                    let destination = LocalApiDestination {
                        arn: resolver.attribute(id, "Arn")?,
                        endpoint: resolver.value(&properties["InvocationEndpoint"])?,
                        method: resolver.value(&properties["HttpMethod"])?,
                        connection: resolver.value(&properties["ConnectionArn"])?,
                    };
                    api_destinations.insert(destination.arn.clone(), destination);
                }
                "AWS::S3::BucketPolicy" => resource_policies.push(ResourcePolicy {
                    target: PolicyTarget::Bucket(resolver.value(&properties["Bucket"])?),
                    logical_id: id.to_owned(),
                    document: resolver
                        .json(&properties["PolicyDocument"])?
                        .ok_or_else(|| format!("{id} has no PolicyDocument"))?,
                }),
                "AWS::KMS::Key" => {
                    let policy = resolver
                        .json(&properties["KeyPolicy"])?
                        .ok_or_else(|| format!("{id} has no KeyPolicy"))?;
                    keys.push(LocalKey {
                        logical_id: id.to_owned(),
                        key_id: key_id(id),
                        description: resolver
                            .json(&properties["Description"])?
                            .and_then(|d| d.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        policy: policy.clone(),
                    });
                    resource_policies.push(ResourcePolicy {
                        target: PolicyTarget::Key(resolver.attribute(id, "Arn")?),
                        logical_id: id.to_owned(),
                        document: policy,
                    });
                }
                "AWS::KMS::Alias" => {
                    let target = resolver.value(&properties["TargetKeyId"])?;
                    key_aliases.push((
                        resolver.value(&properties["AliasName"])?,
                        crate::kms::key_arn(target.rsplit('/').next().unwrap_or(&target)),
                    ));
                }
                "AWS::Macie::AllowList" => {
                    let criteria = &properties["Criteria"];
                    let criteria = if criteria["Regex"].is_null() {
                        let words = &criteria["S3WordsList"];
                        serde_json::json!({"s3WordsList": {
                            "bucketName": resolver.value(&words["BucketName"])?,
                            "objectKey": resolver.value(&words["ObjectKey"])?,
                        }})
                    } else {
                        serde_json::json!({"regex": resolver.value(&criteria["Regex"])?})
                    };
                    allow_lists.insert(
                        id.to_owned(),
                        LocalAllowList {
                            id: allow_list_id(id),
                            name: resolver.value(&properties["Name"])?,
                            // Optional in the template; when given it must resolve.
                            description: if properties["Description"].is_null() {
                                String::new()
                            } else {
                                resolver.value(&properties["Description"])?
                            },
                            criteria,
                        },
                    );
                }
                // One policy for a list of topics (their ARNs) or of queues (their URLs).
                kind @ ("AWS::SNS::TopicPolicy" | "AWS::SQS::QueuePolicy") => {
                    let document = resolver
                        .json(&properties["PolicyDocument"])?
                        .ok_or_else(|| format!("{id} has no PolicyDocument"))?;
                    let queues = kind == "AWS::SQS::QueuePolicy";
                    let list = if queues { "Queues" } else { "Topics" };
                    for named in properties[list].as_sequence().into_iter().flatten() {
                        let named = resolver.value(named)?;
                        let target = if queues {
                            PolicyTarget::Queue(queue_arn(
                                named.rsplit('/').next().unwrap_or_default(),
                            ))
                        } else {
                            PolicyTarget::Topic(named)
                        };
                        resource_policies.push(ResourcePolicy {
                            target,
                            logical_id: id.to_owned(),
                            document: document.clone(),
                        });
                    }
                }
                _ => {}
            }
        }
        // An existing landing bucket stands in for the raw bucket the stack would create.
        let mut external_buckets = std::collections::BTreeSet::new();
        if let Some(raw) = resolver
            .parameters
            .get("RawBucketName")
            .filter(|name| !name.is_empty())
        {
            buckets.insert("DataPipelineRawBucket".to_owned(), raw.clone());
            external_buckets.insert(raw.clone());
        }
        let (topic_arn, topic_display_name, subscriber) =
            topic.ok_or("the template has no SNS topic")?;
        let (state_machine_name, substitutions, state_machine_key) =
            machine.ok_or("the template has no state machine")?;
        let machine_arn =
            format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{state_machine_name}");
        for rule in &event_rules {
            for target in &rule.targets {
                if let Some(dead_letter) = target
                    .dead_letter
                    .as_ref()
                    .filter(|arn| !queues.contains_key(*arn))
                {
                    return Err(format!(
                        "{}: target {}'s dead-letter queue {dead_letter} is not one of the template's",
                        rule.logical_id, target.id
                    ));
                }
                if target.arn == machine_arn || queues.contains_key(&target.arn) {
                    if target.arn == machine_arn && target.role.is_none() {
                        return Err(format!(
                            "{}: target {} needs a RoleArn to start the state machine",
                            rule.logical_id, target.id
                        ));
                    }
                    continue;
                }
                let destination = api_destinations.get(&target.arn).ok_or_else(|| {
                    format!(
                        "{}: target {} is {}; the local EventBridge delivers to the template's API destinations, queues and state machine",
                        rule.logical_id, target.id, target.arn
                    )
                })?;
                if !connections.contains_key(&destination.connection) {
                    return Err(format!(
                        "{}: its connection {} is not one of the template's",
                        destination.arn, destination.connection
                    ));
                }
                if target.role.is_none() {
                    return Err(format!(
                        "{}: target {} needs a RoleArn to invoke an API destination",
                        rule.logical_id, target.id
                    ));
                }
            }
        }
        if let Some(schedule) = schedule.as_ref().filter(|s| s.target != machine_arn) {
            return Err(format!(
                "the schedule starts {}, not the state machine",
                schedule.target
            ));
        }
        for pipe in &pipes {
            if !queues.contains_key(&pipe.source) {
                return Err(format!(
                    "{}: its source {} is not one of the template's queues",
                    pipe.logical_id, pipe.source
                ));
            }
            if pipe.target != machine_arn {
                return Err(format!(
                    "{}: it starts {}, not the state machine",
                    pipe.logical_id, pipe.target
                ));
            }
        }
        for queue in queues.values() {
            if let Some((dead_letter, _)) = &queue.dead_letter
                && !queues.contains_key(dead_letter)
            {
                return Err(format!(
                    "queue {}: its dead-letter queue {dead_letter} is not one of the template's",
                    queue.name
                ));
            }
        }
        let findings = &functions
            .get("GetFindingsCount")
            .ok_or("the template has no GetFindingsCount function")?
            .environment;
        let discovery_results = (
            findings["DISCOVERY_RESULTS_BUCKET"].clone(),
            findings["DISCOVERY_RESULTS_KMS_KEY_ARN"].clone(),
        );
        Ok(Self {
            parameters: resolver.parameters,
            buckets,
            versioned_buckets,
            functions,
            topic_arn,
            topic_display_name,
            subscriber,
            state_machine_name,
            substitutions,
            state_machine_key,
            schedule,
            api_routes,
            discovery_results,
            roles,
            resource_policies,
            allow_lists,
            external_buckets,
            bucket_encryption,
            keys,
            key_aliases,
            event_buses,
            event_rules,
            api_destinations,
            connections,
            eventbridge_buckets,
            queues,
            pipes,
        })
    }

    /// The event-pattern rules that start the state machine (`TriggerMode=EventPattern`).
    pub fn run_starting_rules(&self) -> impl Iterator<Item = &LocalEventRule> {
        let machine = self.state_machine_arn();
        self.event_rules
            .iter()
            .filter(move |rule| rule.targets.iter().any(|t| t.arn == machine))
    }

    pub fn state_machine_arn(&self) -> String {
        format!(
            "arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{}",
            self.state_machine_name
        )
    }

    /// A bucket's name by its logical id.
    pub fn bucket(&self, logical_id: &str) -> &str {
        self.buckets.get(logical_id).map_or("", String::as_str)
    }
}

/// The name CloudFormation gives a queue the template does not name.
fn queue_name(logical_id: &str) -> String {
    format!("{STACK}-{logical_id}")
}

/// `https://sqs.<region>.amazonaws.com/<account>/<name>`, as CloudFormation's `!Ref` gives it.
pub fn queue_url(name: &str) -> String {
    format!("https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}")
}

pub fn queue_arn(name: &str) -> String {
    format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")
}

/// A bucket's `BucketEncryption` (resolved): SSE-S3 or SSE-KMS with its key.
fn default_encryption(
    id: &str,
    encryption: &serde_json::Value,
) -> Result<BucketEncryption, String> {
    let rule = &encryption["ServerSideEncryptionConfiguration"][0];
    let by_default = &rule["ServerSideEncryptionByDefault"];
    let bucket_key = rule["BucketKeyEnabled"].as_bool().unwrap_or(false)
        || rule["BucketKeyEnabled"].as_str() == Some("true");
    match by_default["SSEAlgorithm"].as_str() {
        Some("AES256") => Ok(BucketEncryption {
            kms_key: None,
            bucket_key: false,
        }),
        Some("aws:kms") => Ok(BucketEncryption {
            kms_key: Some(
                by_default["KMSMasterKeyID"]
                    .as_str()
                    .filter(|key| !key.is_empty())
                    .ok_or_else(|| {
                        format!("{id}: SSE-KMS without KMSMasterKeyID (the aws/s3 key) is not served locally")
                    })?
                    .to_owned(),
            ),
            bucket_key,
        }),
        other => Err(format!("{id}: unknown SSEAlgorithm {other:?}")),
    }
}

/// Parses a schedule expression `rate(N unit)` into seconds; `cron(...)` is not supported locally.
pub fn rate_seconds(expression: &str) -> Result<u64, String> {
    let inner = expression
        .strip_prefix("rate(")
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(|| {
            format!("the local scheduler runs rate(...) expressions, not {expression:?}")
        })?;
    let (count, unit) = inner
        .trim()
        .split_once(' ')
        .ok_or_else(|| format!("{expression:?} has no unit"))?;
    let count: u64 = count
        .parse()
        .map_err(|_| format!("{expression:?}: {count:?} is not a number"))?;
    let unit_seconds = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        other => return Err(format!("{expression:?}: unknown unit {other}")),
    };
    Ok(count * unit_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use macie_pipeline::deployment::functions;

    fn local() -> Deployment {
        Deployment::resolve(TEMPLATE, &BTreeMap::new(), "http://127.0.0.1:4566/").unwrap()
    }

    #[test]
    fn every_function_gets_every_variable_it_reads() {
        let deployment = local();
        for function in functions() {
            let local = &deployment.functions[function.logical_id];
            for variable in &function.variables {
                assert!(
                    local.environment.contains_key(*variable),
                    "{} lacks {variable}",
                    function.logical_id
                );
            }
        }
        let trigger = &deployment.functions["TriggerMacieScan"].environment;
        assert_eq!(trigger["RAW_BUCKET"], "local-data-pipeline-raw");
        assert_eq!(trigger["ACCOUNT_ID"], ACCOUNT);
        assert_eq!(
            deployment.functions["TriggerManualApproval"].environment["APPROVAL_API_URL"],
            "http://127.0.0.1:4566"
        );
        assert_eq!(
            deployment.functions["ReceiveApprovalDecision"].timeout_seconds,
            29
        );
        assert_eq!(
            deployment.functions["TriggerMacieScan"].timeout_seconds,
            900
        );
    }

    fn with(parameters: &[(&str, &str)]) -> Result<Deployment, String> {
        let parameters = parameters
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        Deployment::resolve(TEMPLATE, &parameters, "http://127.0.0.1:1")
    }

    #[test]
    fn each_trigger_mode_deploys_what_it_needs_and_nothing_else() {
        let schedule = local();
        assert!(schedule.pipes.is_empty() && schedule.queues.is_empty());
        assert!(schedule.eventbridge_buckets.is_empty());
        assert_eq!(schedule.run_starting_rules().count(), 0);

        let arrivals = with(&[
            ("TriggerMode", "ObjectCreated"),
            ("TriggerBatchWindowSeconds", "30"),
            ("TriggerBatchSize", "500"),
            ("ScanSchedule", "disabled"),
        ])
        .unwrap();
        assert!(arrivals.schedule.is_none());
        let raw = arrivals.bucket("DataPipelineRawBucket").to_owned();
        assert_eq!(
            arrivals.eventbridge_buckets,
            std::collections::BTreeSet::from([raw.clone()])
        );
        let [pipe] = arrivals.pipes.as_slice() else {
            panic!("one pipe: {:?}", arrivals.pipes)
        };
        assert_eq!((pipe.batch_size, pipe.batching_window_seconds), (500, 30));
        assert_eq!(pipe.role, "ArrivalPipe");
        assert_eq!(pipe.target, arrivals.state_machine_arn());
        let queue = &arrivals.queues[&pipe.source];
        let (dead_letter, receives) = queue.dead_letter.clone().expect("a redrive policy");
        assert!(arrivals.queues.contains_key(&dead_letter));
        assert_eq!(receives, 5);
        let rule = arrivals
            .event_rules
            .iter()
            .find(|rule| rule.logical_id == "ArrivalRule")
            .unwrap();
        assert_eq!(
            rule.pattern["detail"]["bucket"]["name"],
            serde_json::json!([raw])
        );
        assert_eq!(rule.targets[0].arn, pipe.source);
        assert!(
            arrivals
                .resource_policies
                .iter()
                .any(|policy| policy.target == PolicyTarget::Queue(pipe.source.clone()))
        );

        let pattern = r#"{"source": ["aws.glue"], "detail-type": ["Glue Job State Change"], "detail": {"state": ["SUCCEEDED"]}}"#;
        let events = with(&[
            ("TriggerMode", "EventPattern"),
            ("TriggerEventPattern", pattern),
        ])
        .unwrap();
        let [rule] = events.run_starting_rules().collect::<Vec<_>>()[..] else {
            panic!("one rule starts runs")
        };
        assert_eq!(rule.pattern["source"], serde_json::json!(["aws.glue"]));
        let (paths, template) = rule.targets[0].input_transformer.clone().unwrap();
        assert_eq!(paths["id"], "$.id");
        assert!(template.contains("<id>"), "{template}");
        assert_eq!(rule.targets[0].role.as_deref(), Some("StartRuns"));
        assert!(
            events.schedule.is_some(),
            "the schedule stays on as a sweep"
        );
    }

    #[test]
    fn the_template_refuses_trigger_settings_that_start_nothing_or_guess() {
        let err = with(&[("ScanSchedule", "disabled")]).unwrap_err();
        assert!(
            err.contains("TriggerMode=Schedule needs ScanSchedule"),
            "{err}"
        );
        let err = with(&[("TriggerMode", "EventPattern")]).unwrap_err();
        assert!(err.contains("needs TriggerEventPattern"), "{err}");
        let err = with(&[
            ("TriggerMode", "EventPattern"),
            ("TriggerEventPattern", "{source"),
        ])
        .unwrap_err();
        assert!(
            err.contains("TriggerPatternRule: its EventPattern is not JSON"),
            "{err}"
        );
    }

    #[test]
    fn substitutions_cover_the_definition() {
        let deployment = local();
        crate::sfn::definition::substitute::substitute(DEFINITION, &deployment.substitutions)
            .unwrap();
        assert_eq!(
            deployment.substitutions["TriggerMacieScan"],
            format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:TriggerMacieScan")
        );
        assert_eq!(deployment.substitutions["ApprovalTimeoutAction"], "hold");
        let schedule = deployment.schedule.as_ref().expect("a schedule");
        assert_eq!(schedule.expression, "rate(6 hours)");
        assert_eq!(schedule.role, "StartRuns");
        assert_eq!(schedule.logical_id, "ScanScheduleRule");
        assert_eq!(deployment.subscriber, "reviewer@example.com");
    }

    #[test]
    fn the_state_machine_runs_under_its_own_role_and_key_and_the_schedule_under_its_own() {
        let deployment = local();
        let key = deployment.state_machine_key.as_deref().expect("a key");
        assert_eq!(
            key,
            format!(
                "arn:aws:kms:{REGION}:{ACCOUNT}:key/{}",
                key_id("StateMachineKey")
            )
        );
        assert!(
            deployment
                .resource_policies
                .iter()
                .any(|policy| policy.target == PolicyTarget::Key(key.to_owned()))
        );
        for owner in ["MaciePipelineScanStateMachine", "StartRuns"] {
            let grants: String = deployment.roles[owner]
                .iter()
                .map(|policy| policy.document.to_string())
                .collect();
            assert!(grants.contains("kms:GenerateDataKey"), "{owner}: {grants}");
        }
        assert_eq!(
            deployment.schedule.as_ref().expect("a schedule").target,
            format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:maciepipelinescanstatemachine")
        );
        let moved = TEMPLATE.replace(
            "DefinitionS3Location: statemachine/macie_pipeline_scan.asl.json",
            "DefinitionS3Location: statemachine/other.asl.json",
        );
        assert!(
            Deployment::resolve(&moved, &BTreeMap::new(), "http://x")
                .unwrap_err()
                .contains("statemachine/other.asl.json")
        );
    }

    #[test]
    fn the_gate_s_allow_lists_are_deployed_with_stable_ids_whether_or_not_the_stack_enables_macie()
    {
        for enable in ["no", "yes"] {
            let parameters = BTreeMap::from([("EnableMacie".to_owned(), enable.to_owned())]);
            let deployment = Deployment::resolve(TEMPLATE, &parameters, "http://x").unwrap();
            let phrases = &deployment.allow_lists["FalsePositivePhrases"];
            let patterns = &deployment.allow_lists["FalsePositivePatterns"];
            assert_eq!(phrases.id, allow_list_id("FalsePositivePhrases"));
            assert_eq!(phrases.id.len(), 22);
            assert_eq!(
                phrases.criteria["s3WordsList"]["objectKey"],
                macie_pipeline::false_positives::allow_lists::WORDS_KEY
            );
            assert_eq!(
                patterns.criteria["regex"],
                macie_pipeline::false_positives::allow_lists::NO_PATTERN
            );
            assert_eq!(
                phrases.description.contains(ACCOUNT),
                enable == "yes",
                "{enable}: {}",
                phrases.description
            );
            assert_eq!(
                deployment.functions["TriggerMacieScan"].environment["GATE_ALLOW_LIST_IDS"],
                format!("{},{}", phrases.id, patterns.id)
            );
        }
    }

    #[test]
    fn overrides_are_checked_against_the_template() {
        let bad = BTreeMap::from([("ApprovalTimeoutAction".to_owned(), "shrug".to_owned())]);
        assert!(
            Deployment::resolve(TEMPLATE, &bad, "http://x")
                .unwrap_err()
                .contains("not one of hold, deny")
        );
        let unknown = BTreeMap::from([("Nope".to_owned(), "1".to_owned())]);
        assert!(Deployment::resolve(TEMPLATE, &unknown, "http://x").is_err());
        let deny = BTreeMap::from([("ApprovalTimeoutAction".to_owned(), "deny".to_owned())]);
        assert_eq!(
            Deployment::resolve(TEMPLATE, &deny, "http://x")
                .unwrap()
                .substitutions["ApprovalTimeoutAction"],
            "deny"
        );
    }

    #[test]
    fn bucket_encryption_follows_the_parameter_with_the_stacks_key_or_the_one_given() {
        let pipeline = |deployment: &Deployment| -> Vec<Option<String>> {
            deployment
                .buckets
                .iter()
                .filter(|(id, _)| id.starts_with("DataPipeline"))
                .map(|(_, name)| deployment.bucket_encryption[name].kms_key.clone())
                .collect()
        };
        let default = local();
        assert_eq!(pipeline(&default), vec![None; 5]);
        assert!(default.keys.iter().all(|k| k.logical_id != "BucketKey"));

        let kms = BTreeMap::from([("BucketEncryption".to_owned(), "SSE-KMS".to_owned())]);
        let created = Deployment::resolve(TEMPLATE, &kms, "http://x").unwrap();
        let key = created
            .keys
            .iter()
            .find(|k| k.logical_id == "BucketKey")
            .unwrap();
        let arn = crate::kms::key_arn(&key.key_id);
        assert_eq!(pipeline(&created), vec![Some(arn.clone()); 5]);
        assert!(
            created
                .bucket_encryption
                .values()
                .filter(|e| e.kms_key.is_some())
                .all(|e| e.bucket_key)
        );
        assert!(
            created
                .key_aliases
                .contains(&("alias/local-data-pipeline".to_owned(), arn))
        );
        assert_eq!(
            created.functions["TriggerMacieScan"].environment["BUCKET_KMS_KEY_ARN"],
            crate::kms::key_arn(&key.key_id)
        );

        let given_arn =
            format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab");
        let mut given = kms.clone();
        given.insert("BucketKmsKeyArn".into(), given_arn.clone());
        let given = Deployment::resolve(TEMPLATE, &given, "http://x").unwrap();
        assert_eq!(pipeline(&given), vec![Some(given_arn); 5]);
        assert!(given.keys.iter().all(|k| k.logical_id != "BucketKey"));

        let stray = BTreeMap::from([(
            "BucketKmsKeyArn".to_owned(),
            "arn:aws:kms:us-east-1:000000000000:key/k".to_owned(),
        )]);
        let err = Deployment::resolve(TEMPLATE, &stray, "http://x").unwrap_err();
        assert!(err.contains("BucketKmsKeyOnlyWithSseKms"), "{err}");
    }

    #[test]
    fn a_landing_bucket_named_by_parameter_replaces_the_raw_bucket_and_is_left_alone() {
        let given = BTreeMap::from([
            ("RawBucketName".to_owned(), "acme-landing".to_owned()),
            ("BucketVersioning".to_owned(), "Enabled".to_owned()),
            ("BucketEncryption".to_owned(), "SSE-KMS".to_owned()),
        ]);
        let deployment = Deployment::resolve(TEMPLATE, &given, "http://x").unwrap();
        assert_eq!(deployment.bucket("DataPipelineRawBucket"), "acme-landing");
        assert!(deployment.external_buckets.contains("acme-landing"));
        assert!(!deployment.versioned_buckets.contains("acme-landing"));
        assert!(!deployment.bucket_encryption.contains_key("acme-landing"));
        assert!(
            deployment
                .resource_policies
                .iter()
                .all(|policy| policy.logical_id != "DataPipelineRawBucketPolicy")
        );
        for function in ["TriggerMacieScan", "DeleteManualReviewS3Files"] {
            assert_eq!(
                deployment.functions[function].environment["RAW_BUCKET"],
                "acme-landing"
            );
        }
        assert_eq!(deployment.substitutions["RawBucket"], "acme-landing");
        let grants: String = deployment.roles["TriggerMacieScan"]
            .iter()
            .map(|policy| policy.document.to_string())
            .collect();
        assert!(grants.contains("arn:aws:s3:::acme-landing/*"), "{grants}");
        assert!(!grants.contains("data-pipeline-raw"), "{grants}");
        assert!(local().external_buckets.is_empty());
    }

    #[test]
    fn buckets_are_versioned_only_with_bucket_versioning_enabled() {
        assert!(local().versioned_buckets.is_empty());
        let enabled = BTreeMap::from([("BucketVersioning".to_owned(), "Enabled".to_owned())]);
        let versioned = Deployment::resolve(TEMPLATE, &enabled, "http://x").unwrap();
        let expected: std::collections::BTreeSet<String> = [
            "raw",
            "scan-stage",
            "manual-review",
            "scanned-data",
            "manifests",
        ]
        .iter()
        .map(|role| format!("local-data-pipeline-{role}"))
        .collect();
        assert_eq!(versioned.versioned_buckets, expected);
    }

    #[test]
    fn discovery_results_are_created_unless_an_existing_location_is_given() {
        let created = local();
        let key = format!(
            "arn:aws:kms:{REGION}:{ACCOUNT}:key/{}",
            key_id("DiscoveryResultsKey")
        );
        assert_eq!(
            created.discovery_results,
            ("local-macie-discovery-results".to_owned(), key)
        );
        assert_eq!(
            created.bucket("DiscoveryResultsBucket"),
            "local-macie-discovery-results"
        );
        let existing = BTreeMap::from([
            (
                "DiscoveryResultsBucketName".to_owned(),
                "audit-results".to_owned(),
            ),
            (
                "DiscoveryResultsKmsKeyArn".to_owned(),
                format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/abc-123"),
            ),
        ]);
        let given = Deployment::resolve(TEMPLATE, &existing, "http://x").unwrap();
        assert_eq!(given.discovery_results.0, "audit-results");
        assert!(
            !given.buckets.contains_key("DiscoveryResultsBucket"),
            "a conditional resource is not created"
        );
        let half = BTreeMap::from([(
            "DiscoveryResultsBucketName".to_owned(),
            "audit-results".to_owned(),
        )]);
        let err = Deployment::resolve(TEMPLATE, &half, "http://x").unwrap_err();
        assert!(
            err.contains("DiscoveryResultsBucketAndKeyTogether"),
            "{err}"
        );
    }

    #[test]
    fn the_ticketing_webhook_is_a_rule_an_api_destination_and_a_connection() {
        assert!(local().event_rules.is_empty(), "no ticketing without a URL");
        let with = |pairs: &[(&str, &str)]| {
            let parameters: BTreeMap<String, String> = pairs
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect();
            Deployment::resolve(TEMPLATE, &parameters, "http://x")
        };
        let url = ("TicketingWebhookUrl", "https://tickets.example/hook");
        let basic = with(&[
            url,
            ("TicketingWebhookAuthorization", "BASIC"),
            ("TicketingWebhookUsername", "gate"),
            ("TicketingWebhookSecret", "pw"),
        ])
        .unwrap();
        let [rule] = basic.event_rules.as_slice() else {
            panic!("{:?}", basic.event_rules)
        };
        assert_eq!(rule.bus, "default");
        assert_eq!(
            rule.pattern,
            serde_json::json!({"source": ["macie-pipeline"], "detail-type": ["Review Requested"],
                "resources": [format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:maciepipelinescanstatemachine")]})
        );
        assert_eq!(rule.targets[0].role.as_deref(), Some("ReviewTicketRule"));
        let destination = &basic.api_destinations[&rule.targets[0].arn];
        assert_eq!(
            (destination.endpoint.as_str(), destination.method.as_str()),
            ("https://tickets.example/hook", "POST")
        );
        assert_eq!(
            basic.connections[&destination.connection].authorization,
            ConnectionAuthorization::Basic {
                username: "gate".into(),
                password: "pw".into()
            }
        );
        let api_key = with(&[
            url,
            ("TicketingWebhookHeaderName", "X-Api-Key"),
            ("TicketingWebhookSecret", "k"),
        ])
        .unwrap();
        let destination = api_key.api_destinations.values().next().unwrap();
        assert_eq!(
            api_key.connections[&destination.connection].authorization,
            ConnectionAuthorization::ApiKey {
                name: "X-Api-Key".into(),
                value: "k".into()
            }
        );
        // The template's rules refuse a webhook without its secret, or Basic without a user.
        let err = with(&[url]).unwrap_err();
        assert!(err.contains("TicketingWebhookNeedsASecret"), "{err}");
        let err = with(&[
            url,
            ("TicketingWebhookAuthorization", "BASIC"),
            ("TicketingWebhookSecret", "pw"),
        ])
        .unwrap_err();
        assert!(err.contains("BasicTicketingNeedsAUsername"), "{err}");
        assert!(with(&[("TicketingWebhookUrl", "http://plain.example/hook")]).is_err());
    }

    #[test]
    fn rates_parse() {
        assert_eq!(rate_seconds("rate(6 hours)").unwrap(), 21_600);
        assert_eq!(rate_seconds("rate(1 minute)").unwrap(), 60);
        assert!(rate_seconds("cron(0 * * * ? *)").is_err());
    }
}
