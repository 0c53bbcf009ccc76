//! The local SNS: `Publish` to the gate's topic, delivered as email to an outbox directory. Each
//! recipient gets an RFC 5322 `.eml` rendered as SNS email subscriptions render it, with a JSON
//! sidecar that tests read without parsing MIME. Subject and size limits are enforced as AWS
//! does, so a message the real service would refuse is refused here too.

use macie_pipeline::approval::email::REVIEW_SUBJECT_PREFIX;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::now_ms;
use crate::json_file::write_bytes as write_atomic;

/// SNS rejects messages larger than this (UTF-8 bytes, attributes included).
pub const MAX_MESSAGE_BYTES: usize = 262_144;

/// A Publish request's parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishRequest {
    pub topic_arn: Option<String>,
    pub target_arn: Option<String>,
    pub phone_number: Option<String>,
    pub message: Option<String>,
    pub subject: Option<String>,
    pub message_structure: Option<String>,
    /// Name -> (data type, value).
    pub attributes: BTreeMap<String, (String, String)>,
}

/// A Publish error: the short query code, its HTTP status and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsError {
    pub code: &'static str,
    pub status: u16,
    pub message: String,
}

impl SnsError {
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: "InvalidParameter",
            status: 400,
            message: message.into(),
        }
    }
}

/// What was sent, as the JSON sidecar records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivered {
    pub message_id: String,
    pub topic_arn: String,
    pub subject: Option<String>,
    pub message: String,
    pub attributes: BTreeMap<String, String>,
    pub recipients: Vec<String>,
    pub timestamp_ms: i64,
    /// The `.eml` files written, one per recipient.
    pub files: Vec<PathBuf>,
    /// With `MessageStructure=json`, the message for each protocol (`default`, `email`,
    /// `https`, ...) as published: what subscribers of that protocol get. An HTTPS
    /// subscription (Amazon Q Developer in chat applications) gets `https`, else `default`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub protocol_messages: BTreeMap<String, String>,
}

impl Delivered {
    /// What a subscriber of `protocol` gets: its own message, else the default one.
    pub fn for_protocol(&self, protocol: &str) -> &str {
        self.protocol_messages
            .get(protocol)
            .or_else(|| self.protocol_messages.get("default"))
            .map_or(&self.message, String::as_str)
    }
}

impl Delivered {
    /// An approval request, as opposed to an alert.
    pub fn is_review_request(&self) -> bool {
        self.subject
            .as_deref()
            .is_some_and(|s| s.starts_with(REVIEW_SUBJECT_PREFIX))
    }
}

/// Called with each delivered message (the CLI prints it).
pub type OnPublish = Arc<dyn Fn(&Delivered, &str) + Send + Sync>;

/// One topic with its confirmed email subscribers.
#[derive(Clone)]
pub struct Topic {
    pub arn: String,
    pub display_name: String,
    pub subscribers: Vec<String>,
}

pub struct Sns {
    outbox: PathBuf,
    topics: Vec<Topic>,
    on_publish: Option<OnPublish>,
}

fn control(c: char) -> bool {
    c.is_control()
}

impl Sns {
    pub fn new(
        outbox: impl Into<PathBuf>,
        topics: Vec<Topic>,
        on_publish: Option<OnPublish>,
    ) -> std::io::Result<Self> {
        let outbox = outbox.into();
        std::fs::create_dir_all(&outbox)?;
        Ok(Self {
            outbox,
            topics,
            on_publish,
        })
    }

    pub fn outbox(&self) -> &Path {
        &self.outbox
    }

    /// Checks and delivers a Publish; returns the message id.
    pub fn publish(&self, request: PublishRequest) -> Result<String, SnsError> {
        let topic_arn = match (
            &request.topic_arn,
            &request.target_arn,
            &request.phone_number,
        ) {
            (Some(arn), None, None) => arn.clone(),
            (None, None, None) => {
                return Err(SnsError::invalid(
                    "Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter",
                ));
            }
            _ => {
                return Err(SnsError::invalid(
                    "Invalid parameter: the local stack publishes to topics only",
                ));
            }
        };
        let topic = self
            .topics
            .iter()
            .find(|t| t.arn == topic_arn)
            .ok_or_else(|| SnsError {
                code: "NotFound",
                status: 404,
                message: "Topic does not exist".into(),
            })?;
        let mut message = request.message.clone().unwrap_or_default();
        if message.is_empty() {
            return Err(SnsError::invalid("Invalid parameter: Empty message"));
        }
        if let Some(subject) = &request.subject
            && (subject.is_empty()
                || subject.chars().count() >= 100
                || subject.chars().any(control))
        {
            return Err(SnsError::invalid("Invalid parameter: Subject"));
        }
        let attributes_size: usize = request
            .attributes
            .iter()
            .map(|(name, (kind, value))| name.len() + kind.len() + value.len())
            .sum();
        if message.len() + attributes_size > MAX_MESSAGE_BYTES {
            return Err(SnsError::invalid("Invalid parameter: Message too long"));
        }
        let mut protocol_messages = BTreeMap::new();
        if let Some(structure) = &request.message_structure {
            if structure != "json" {
                return Err(SnsError::invalid("Invalid parameter: MessageStructure"));
            }
            let unparsable = || {
                SnsError::invalid(
                    "Invalid parameter: Message Structure - JSON message body failed to parse",
                )
            };
            let parsed: serde_json::Map<String, Value> =
                serde_json::from_str(&message).map_err(|_| unparsable())?;
            for (protocol, text) in parsed {
                protocol_messages
                    .insert(protocol, text.as_str().ok_or_else(unparsable)?.to_owned());
            }
            let default = protocol_messages.get("default").ok_or_else(|| {
                SnsError::invalid(
                    "Invalid parameter: Message Structure - No default entry in JSON message body",
                )
            })?;
            message = protocol_messages.get("email").unwrap_or(default).to_owned();
        }
        for (name, (kind, _)) in &request.attributes {
            if !["String", "String.Array", "Number", "Binary"]
                .iter()
                .any(|k| kind.starts_with(k))
            {
                return Err(SnsError {
                    code: "ParameterValueInvalid",
                    status: 400,
                    message: format!(
                        "The message attribute '{name}' has an invalid message attribute type"
                    ),
                });
            }
        }

        let message_id = uuid::Uuid::new_v4().to_string();
        let timestamp_ms = now_ms();
        let mut delivered = Delivered {
            message_id: message_id.clone(),
            topic_arn: topic.arn.clone(),
            subject: request.subject.clone(),
            message: message.clone(),
            attributes: request
                .attributes
                .iter()
                .map(|(name, (_, value))| (name.clone(), value.clone()))
                .collect(),
            recipients: topic.subscribers.clone(),
            timestamp_ms,
            files: Vec::new(),
            protocol_messages,
        };
        let mut rendered_first = String::new();
        for (index, recipient) in topic.subscribers.iter().enumerate() {
            let eml = render(topic, recipient, &delivered);
            let base = self
                .outbox
                .join(format!("{timestamp_ms}-{message_id}-{}", index + 1));
            write_atomic(&base.with_extension("eml"), eml.as_bytes()).map_err(|err| SnsError {
                code: "InternalError",
                status: 500,
                message: err.to_string(),
            })?;
            delivered.files.push(base.with_extension("eml"));
            if index == 0 {
                rendered_first = eml;
            }
        }
        let sidecar = self
            .outbox
            .join(format!("{timestamp_ms}-{message_id}.json"));
        write_atomic(
            &sidecar,
            &serde_json::to_vec_pretty(&delivered).expect("serializes"),
        )
        .map_err(|err| SnsError {
            code: "InternalError",
            status: 500,
            message: err.to_string(),
        })?;
        if let Some(on_publish) = &self.on_publish {
            on_publish(&delivered, &rendered_first);
        }
        Ok(message_id)
    }

    /// Every message delivered so far, oldest first.
    pub fn delivered(&self) -> Vec<Delivered> {
        delivered_in(&self.outbox)
    }
}

/// The messages recorded in an outbox directory, oldest first.
pub fn delivered_in(outbox: &Path) -> Vec<Delivered> {
    let mut messages: Vec<Delivered> = std::fs::read_dir(outbox)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .filter_map(|path| serde_json::from_slice(&std::fs::read(path).ok()?).ok())
        .collect();
    messages.sort_by(|a, b| (a.timestamp_ms, &a.message_id).cmp(&(b.timestamp_ms, &b.message_id)));
    messages
}

/// The email as SNS sends it: the message verbatim, then the unsubscribe footer.
fn render(topic: &Topic, recipient: &str, message: &Delivered) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(message.timestamp_ms) * 1_000_000,
    )
    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    .format(&time::format_description::well_known::Rfc2822)
    .unwrap_or_default();
    let subscription = format!(
        "{}:{}",
        topic.arn,
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, recipient.as_bytes())
    );
    let subject = message
        .subject
        .clone()
        .unwrap_or_else(|| "AWS Notification Message".into());
    let region = topic.arn.split(':').nth(3).unwrap_or("us-east-1");
    let body = format!(
        "{}\n\n--\nIf you wish to stop receiving notifications from this topic, please click or visit the link below to unsubscribe:\n\
         https://sns.{region}.amazonaws.com/unsubscribe.html?SubscriptionArn={subscription}&Endpoint={recipient}\n\n\
         Please do not reply directly to this email. If you have any questions or comments regarding this email, please contact us at https://aws.amazon.com/support\n",
        message.message
    );
    format!(
        "From: {} <no-reply@sns.amazonaws.com>\r\nTo: {recipient}\r\nSubject: {}\r\nDate: {date}\r\nMessage-ID: <{}@sns.local>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\nX-SNS-TopicArn: {}\r\n\r\n{}",
        topic.display_name,
        subject,
        message.message_id,
        topic.arn,
        body.replace('\n', "\r\n")
    )
}

/// Reads Publish from an awsQuery form body (`Action=Publish&...`).
pub fn parse_form(body: &[u8]) -> Result<PublishRequest, SnsError> {
    let fields: BTreeMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    match fields.get("Action").map(String::as_str) {
        Some("Publish") => {}
        Some(other) => {
            return Err(SnsError {
                code: "InvalidAction",
                status: 400,
                message: format!("The action {other} is not valid for this endpoint."),
            });
        }
        None => return Err(SnsError::invalid("Missing Action")),
    }
    let mut attributes = BTreeMap::new();
    for index in 1.. {
        let prefix = format!("MessageAttributes.entry.{index}");
        let Some(name) = fields.get(&format!("{prefix}.Name")) else {
            break;
        };
        let kind = fields
            .get(&format!("{prefix}.Value.DataType"))
            .cloned()
            .unwrap_or_default();
        let value = fields
            .get(&format!("{prefix}.Value.StringValue"))
            .or_else(|| fields.get(&format!("{prefix}.Value.BinaryValue")))
            .cloned()
            .unwrap_or_default();
        attributes.insert(name.clone(), (kind, value));
    }
    Ok(PublishRequest {
        topic_arn: fields.get("TopicArn").cloned(),
        target_arn: fields.get("TargetArn").cloned(),
        phone_number: fields.get("PhoneNumber").cloned(),
        message: fields.get("Message").cloned(),
        subject: fields.get("Subject").cloned(),
        message_structure: fields.get("MessageStructure").cloned(),
        attributes,
    })
}

/// Reads Publish from the parameters of the `arn:aws:states:::sns:publish` task.
pub fn from_task_parameters(parameters: &Value) -> PublishRequest {
    let text = |name: &str| {
        parameters
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let message = match parameters.get("Message") {
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    let attributes = parameters["MessageAttributes"]
        .as_object()
        .map(|attributes| {
            attributes
                .iter()
                .map(|(name, value)| {
                    (
                        name.clone(),
                        (
                            value["DataType"].as_str().unwrap_or_default().to_owned(),
                            value["StringValue"].as_str().unwrap_or_default().to_owned(),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    PublishRequest {
        topic_arn: text("TopicArn"),
        target_arn: text("TargetArn"),
        phone_number: text("PhoneNumber"),
        message,
        subject: text("Subject"),
        message_structure: text("MessageStructure"),
        attributes,
    }
}

/// The XML response of a successful Publish.
pub fn success_xml(message_id: &str, request_id: &str) -> String {
    format!(
        "<PublishResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><PublishResult><MessageId>{message_id}</MessageId></PublishResult><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></PublishResponse>"
    )
}

/// The XML response of a failed Publish.
pub fn error_xml(error: &SnsError, request_id: &str) -> String {
    let kind = if error.status >= 500 {
        "Receiver"
    } else {
        "Sender"
    };
    format!(
        "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
        error.code,
        xml_escape(&error.message)
    )
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sns(dir: &Path) -> Sns {
        Sns::new(
            dir,
            vec![Topic {
                arn: "arn:aws:sns:us-east-1:000000000000:gate".into(),
                display_name: "Sensitive-data gate".into(),
                subscribers: vec!["reviewer@example.com".into()],
            }],
            None,
        )
        .unwrap()
    }

    fn request(subject: Option<&str>, message: &str) -> PublishRequest {
        PublishRequest {
            topic_arn: Some("arn:aws:sns:us-east-1:000000000000:gate".into()),
            subject: subject.map(str::to_owned),
            message: Some(message.into()),
            ..PublishRequest::default()
        }
    }

    #[test]
    fn a_publish_becomes_an_email_in_the_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let sns = sns(dir.path());
        let id = sns
            .publish(request(Some("Review needed"), "line 1\nline 2"))
            .unwrap();
        let delivered = sns.delivered();
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].message_id, id);
        let eml = std::fs::read_to_string(&delivered[0].files[0]).unwrap();
        assert!(eml.starts_with("From: Sensitive-data gate <no-reply@sns.amazonaws.com>\r\nTo: reviewer@example.com\r\nSubject: Review needed\r\n"));
        assert!(eml.contains(
            "\r\n\r\nline 1\r\nline 2\r\n\r\n--\r\nIf you wish to stop receiving notifications"
        ));
    }

    #[test]
    fn subjects_and_sizes_are_checked_as_aws_does() {
        let dir = tempfile::tempdir().unwrap();
        let sns = sns(dir.path());
        for subject in ["", "line\nbreak", &"x".repeat(100)] {
            let err = sns.publish(request(Some(subject), "m")).unwrap_err();
            assert_eq!(
                (err.code, err.message.as_str()),
                ("InvalidParameter", "Invalid parameter: Subject")
            );
        }
        assert!(sns.publish(request(Some(&"x".repeat(99)), "m")).is_ok());
        assert_eq!(
            sns.publish(request(None, "")).unwrap_err().message,
            "Invalid parameter: Empty message"
        );
        let err = sns
            .publish(request(None, &"x".repeat(MAX_MESSAGE_BYTES + 1)))
            .unwrap_err();
        assert_eq!(err.message, "Invalid parameter: Message too long");
        let mut unknown = request(None, "m");
        unknown.topic_arn = Some("arn:aws:sns:us-east-1:000000000000:other".into());
        assert_eq!(sns.publish(unknown).unwrap_err().code, "NotFound");
    }

    #[test]
    fn form_bodies_decode_plus_as_space_and_percent_escapes() {
        let request = parse_form(b"Action=Publish&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A0%3At&Message=a+b%2Bc&Subject=Hi%20there").unwrap();
        assert_eq!(request.message.as_deref(), Some("a b+c"));
        assert_eq!(request.subject.as_deref(), Some("Hi there"));
        assert_eq!(
            parse_form(b"Action=Subscribe").unwrap_err().code,
            "InvalidAction"
        );
    }

    #[test]
    fn json_message_structure_uses_the_email_entry() {
        let dir = tempfile::tempdir().unwrap();
        let sns = sns(dir.path());
        let mut structured = request(None, r#"{"default": "d", "email": "e"}"#);
        structured.message_structure = Some("json".into());
        sns.publish(structured).unwrap();
        let delivered = &sns.delivered()[0];
        assert_eq!(delivered.message, "e");
        assert_eq!(delivered.for_protocol("email"), "e");
        assert_eq!(delivered.for_protocol("sqs"), "d");
        let mut chat = request(
            None,
            r#"{"default": "d", "https": "{\"version\": \"1.0\"}"}"#,
        );
        chat.message_structure = Some("json".into());
        sns.publish(chat).unwrap();
        let delivered = sns.delivered();
        let delivered = delivered
            .iter()
            .find(|d| d.protocol_messages.contains_key("https"))
            .unwrap();
        assert_eq!(delivered.message, "d");
        assert_eq!(delivered.for_protocol("https"), r#"{"version": "1.0"}"#);
        for bad in [r#"{"email": "e"}"#, r#"{"default": 1}"#, "text"] {
            let mut structured = request(None, bad);
            structured.message_structure = Some("json".into());
            assert_eq!(
                sns.publish(structured).unwrap_err().code,
                "InvalidParameter",
                "{bad}"
            );
        }
    }
}
