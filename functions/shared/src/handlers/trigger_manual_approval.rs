//! triggerManualApproval: the `.waitForTaskToken` state. Routing has already put every object
//! where the email says it is; this step stores the request the links open, announces it on the
//! event bus (`Review Requested`, with the links: only this step holds the task token), and
//! publishes the review email, with a chat form beside its text.

use std::time::Duration;

use aws_types::SdkConfig;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{info, instrument};

use crate::approval::TimeoutAction;
use crate::approval::decisions::review_id;
use crate::approval::email::ApprovalEmail;
use crate::approval::links::{Entry, link};
use crate::approval::record::{self, ApprovalRecord};
use crate::config::ApprovalConfig;
use crate::deadline::Deadline;
use crate::error::PipelineError;
use crate::events::{self, DetailType, ReviewLinks, ReviewRequest};
use crate::lambda::Handler;
use crate::manifest::{self, ManifestRef};
use crate::s3::pass::Tally;
use crate::workflow::WorkflowId;

/// SNS accepts messages up to 256 KiB.
const MAX_MESSAGE_BYTES: usize = 262_144;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalInput {
    pub workflow_id: WorkflowId,
    pub manifest: ManifestRef,
    /// What routing did, for the email's summary.
    pub routed: Tally,
    /// `$$.Task.Token`. Never logged.
    pub task_token: String,
    /// `$$.State.EnteredTime`: the approval timeout counts from here.
    pub entered_time: String,
    pub approval_timeout_seconds: u64,
    pub timeout_action: TimeoutAction,
    /// The run's event detail as the state machine's own events carry it (ids, buckets, counts
    /// so far); `Review Requested` adds the request to it.
    pub event: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequested {
    pub message_id: String,
    pub event_id: String,
    pub expires_at: String,
}

pub struct TriggerManualApproval {
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub config: ApprovalConfig,
}

impl TriggerManualApproval {
    pub fn new(aws: &SdkConfig, config: ApprovalConfig) -> Self {
        Self {
            s3: aws_sdk_s3::Client::new(aws),
            sns: aws_sdk_sns::Client::new(aws),
            events: aws_sdk_eventbridge::Client::new(aws),
            config,
        }
    }

    async fn request_approval(
        &self,
        input: ApprovalInput,
    ) -> Result<ApprovalRequested, PipelineError> {
        let ApprovalInput {
            workflow_id,
            manifest: location,
            routed,
            task_token,
            entered_time,
            approval_timeout_seconds: timeout_seconds,
            timeout_action,
            event,
        } = input;
        let manifest = manifest::read(&self.s3, &location, &workflow_id).await?;
        let entered = OffsetDateTime::parse(&entered_time, &Rfc3339).map_err(|err| {
            PipelineError::InvalidInput(format!(
                "enteredTime {entered_time:?} is not RFC 3339: {err}"
            ))
        })?;
        let expires_at = entered + Duration::from_secs(timeout_seconds);
        let url = &self.config.approval_api_url;
        let review = link(url, Entry::Review, &task_token);
        let release_all = link(url, Entry::ReleaseAll, &task_token);
        let delete_all = link(url, Entry::DeleteAll, &task_token);
        let email = ApprovalEmail {
            manifest: &manifest,
            manifest_location: &location,
            manual_review_bucket: &self.config.manual_review_bucket,
            scanned_data_bucket: &self.config.scanned_data_bucket,
            routed: &routed,
            expires_at,
            timeout_action,
            review_link: &review,
            release_all_link: &release_all,
            delete_all_link: &delete_all,
        };
        let message = email.structured_message(
            events::resources(&event)
                .first()
                .map(String::as_str)
                .unwrap_or_default(),
        );
        if message.len() > MAX_MESSAGE_BYTES {
            return Err(PipelineError::Notification(format!(
                "the approval email and its chat form have {} bytes, SNS accepts {MAX_MESSAGE_BYTES}",
                message.len()
            )));
        }
        let expires_text = expires_at.format(&Rfc3339).expect("a valid date formats");
        let detail = events::review_requested(
            &event,
            &ReviewRequest {
                review_id: review_id(&location),
                held: manifest.held_keys().len() as u64,
                expires_at: expires_text.clone(),
                timeout_action,
                links: ReviewLinks {
                    review: review.clone(),
                    release_all: release_all.clone(),
                    delete_all: delete_all.clone(),
                },
            },
        )?;
        // Stored before the links go out: the page a link opens reads it.
        let approval = ApprovalRecord {
            workflow_id: workflow_id.clone(),
            manifest: location.clone(),
            expires_at: expires_at.format(&Rfc3339).expect("a valid date formats"),
            timeout_action,
            manual_review_bucket: self.config.manual_review_bucket.clone(),
            scanned_data_bucket: self.config.scanned_data_bucket.clone(),
        };
        record::write_request(&self.s3, &location.bucket, &task_token, &approval).await?;
        // Announced before the email goes out: a bus the gate cannot put to fails the step
        // with nobody yet holding a link to a review that would never end well.
        let event_id = events::put(
            &self.events,
            &self.config.event_bus_name,
            DetailType::ReviewRequested,
            &detail,
        )
        .await?;
        let published = self
            .sns
            .publish()
            .topic_arn(&self.config.topic_arn)
            .subject(email.subject())
            .message_structure("json")
            .message(message)
            .send()
            .await
            .map_err(|err| PipelineError::from_sdk("Publish", err))?;
        let expires_at = expires_text;
        info!(
            workflow_id = workflow_id.as_str(),
            held = manifest.held_keys().len(),
            expires_at,
            "approval requested"
        );
        Ok(ApprovalRequested {
            message_id: published.message_id().unwrap_or_default().to_owned(),
            event_id,
            expires_at,
        })
    }
}

impl Handler for TriggerManualApproval {
    type Input = ApprovalInput;
    type Output = ApprovalRequested;
    const NAME: &'static str = "triggerManualApproval";

    #[instrument(skip_all)]
    async fn handle(
        &self,
        input: ApprovalInput,
        _deadline: Deadline,
    ) -> Result<ApprovalRequested, PipelineError> {
        self.request_approval(input).await
    }
}
