//! The SQS API in its JSON protocol (awsJson1.0, `X-Amz-Target: AmazonSQS.<Operation>`, which
//! the AWS CLI and SDKs speak): enough to look at the gate's queues and to work a dead-letter
//! queue by hand. `ListQueues`, `GetQueueUrl`, `GetQueueAttributes`, `SendMessage`,
//! `ReceiveMessage`, `DeleteMessage`. Each call is authorized on the queue it names.

use serde_json::{Value, json};

use super::{Sqs, SqsError};
use crate::iam::{Iam, Principal};
use crate::json_api::Reply;

fn fail(err: &SqsError) -> Reply {
    let status = if err.code == "InternalError" {
        500
    } else {
        400
    };
    Reply {
        status,
        body: json!({"__type": format!("com.amazonaws.sqs#{}", err.code), "message": err.message}),
        error: Some(err.code),
    }
}

/// Serves one request from `principal`.
pub fn handle(
    sqs: &Sqs,
    iam: &Iam,
    principal: &Principal,
    target: &str,
    body: &[u8],
    secure: bool,
) -> Reply {
    let input = match crate::json_api::parse_body(body) {
        Ok(input) => input,
        Err(message) => return fail(&SqsError::new("InvalidParameterValue", message)),
    };
    let operation = target.trim_start_matches("AmazonSQS.");
    let queue = match operation {
        "ListQueues" => Ok(None),
        "GetQueueUrl" => input["QueueName"]
            .as_str()
            .map(|name| sqs.arn_for_name(name).map(Some))
            .unwrap_or_else(|| Err(missing("QueueName"))),
        _ => input["QueueUrl"]
            .as_str()
            .map(|url| sqs.arn_for_url(url).map(Some))
            .unwrap_or_else(|| Err(missing("QueueUrl"))),
    };
    let queue = match queue {
        Ok(queue) => queue,
        Err(err) => return fail(&err),
    };
    let resource = queue.clone().unwrap_or_else(|| "*".to_owned());
    if let Err(denied) = iam.authorize(
        principal,
        &format!("sqs:{operation}"),
        &resource,
        crate::iam::evaluate::transport(secure),
    ) {
        return Reply {
            status: 403,
            body: json!({"__type": "com.amazonaws.sqs#AccessDenied", "message": denied.message}),
            error: Some("AccessDenied"),
        };
    }
    let result = match (operation, queue) {
        ("ListQueues", _) => Ok(json!({
            "QueueUrls": sqs.configs().map(|q| q.url.clone()).collect::<Vec<_>>()
        })),
        ("GetQueueUrl", Some(arn)) => sqs.config(&arn).map(|q| json!({"QueueUrl": q.url})),
        ("GetQueueAttributes", Some(arn)) => attributes(sqs, &arn),
        ("SendMessage", Some(arn)) => match input["MessageBody"].as_str() {
            Some(body) => sqs
                .send(&arn, body)
                .map(|id| json!({"MessageId": id, "MD5OfMessageBody": md5_hex(body)})),
            None => Err(missing("MessageBody")),
        },
        ("ReceiveMessage", Some(arn)) => {
            let max = input["MaxNumberOfMessages"].as_u64().unwrap_or(1);
            if !(1..=10).contains(&max) {
                Err(SqsError::new(
                    "InvalidParameterValue",
                    format!("MaxNumberOfMessages must be between 1 and 10; it is {max}."),
                ))
            } else {
                sqs.receive(&arn, max as usize).map(|messages| {
                    json!({"Messages": messages.iter().map(|m| json!({
                        "MessageId": m.id,
                        "ReceiptHandle": m.receipt,
                        "MD5OfBody": md5_hex(&m.body),
                        "Body": m.body,
                        "Attributes": {
                            "ApproximateReceiveCount": m.receive_count.to_string(),
                            "SentTimestamp": m.sent_ms.to_string(),
                        },
                    })).collect::<Vec<_>>()})
                })
            }
        }
        ("DeleteMessage", Some(arn)) => match input["ReceiptHandle"].as_str() {
            Some(receipt) => sqs.delete(&arn, receipt).map(|()| json!({})),
            None => Err(missing("ReceiptHandle")),
        },
        (other, _) => Err(SqsError::new(
            "UnsupportedOperation",
            format!("the local SQS does not serve {other}"),
        )),
    };
    match result {
        Ok(body) => Reply::ok(body),
        Err(err) => fail(&err),
    }
}

fn missing(field: &str) -> SqsError {
    SqsError::new(
        "MissingParameter",
        format!("The request must contain the parameter {field}."),
    )
}

use super::md5_hex;

fn attributes(sqs: &Sqs, arn: &str) -> Result<Value, SqsError> {
    let config = sqs.config(arn)?;
    let (visible, in_flight) = sqs.counts(arn)?;
    let mut attributes = json!({
        "QueueArn": config.arn,
        "ApproximateNumberOfMessages": visible.to_string(),
        "ApproximateNumberOfMessagesNotVisible": in_flight.to_string(),
        "VisibilityTimeout": config.visibility_timeout_seconds.to_string(),
        "MessageRetentionPeriod": config.retention_seconds.to_string(),
        "SqsManagedSseEnabled": "true",
    });
    if let Some((dead_letter, max)) = &config.dead_letter {
        attributes["RedrivePolicy"] =
            json!(json!({"deadLetterTargetArn": dead_letter, "maxReceiveCount": max}).to_string());
    }
    Ok(json!({"Attributes": attributes}))
}
