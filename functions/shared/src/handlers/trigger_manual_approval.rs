//! triggerManualApproval, in two phases driven by two states of the state machine.
//! `ROUTE` (a plain invoke, looping while `MORE`) tags the objects needing review
//! `SensitiveDataFound=true` and moves them to manual-review, and moves the rest of the run on to
//! scanned-data. `REQUEST_APPROVAL` (the `.waitForTaskToken` state) only publishes the approval
//! email, once, after every object is where the email says it is.

use std::time::Duration;

use aws_types::SdkConfig;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{info, instrument};

use crate::approval::TimeoutAction;
use crate::approval::email::ApprovalEmail;
use crate::approval::links::{Decision, link};
use crate::config::ApprovalConfig;
use crate::deadline::Deadline;
use crate::error::PipelineError;
use crate::handlers::steps::{PassContext, RouteTargets, StepProgress, route_scan_stage};
use crate::lambda::Handler;
use crate::manifest::{self, ManifestRef};
use crate::s3::pass::Tally;
use crate::workflow::WorkflowId;

/// SNS accepts messages up to 256 KiB.
const MAX_MESSAGE_BYTES: usize = 262_144;

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "phase", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApprovalInput {
    #[serde(rename_all = "camelCase")]
    Route {
        workflow_id: WorkflowId,
        manifest: ManifestRef,
        progress: Option<StepProgress>,
    },
    #[serde(rename_all = "camelCase")]
    RequestApproval {
        workflow_id: WorkflowId,
        manifest: ManifestRef,
        /// What the route phase did, for the email's summary.
        routed: Tally,
        /// `$$.Task.Token`. Never logged.
        task_token: String,
        /// `$$.State.EnteredTime`: the approval timeout counts from here.
        entered_time: String,
        approval_timeout_seconds: u64,
        timeout_action: TimeoutAction,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ApprovalOutput {
    Routing(StepProgress),
    #[serde(rename_all = "camelCase")]
    Requested {
        message_id: String,
        expires_at: String,
    },
}

pub struct TriggerManualApproval {
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    pub config: ApprovalConfig,
}

impl TriggerManualApproval {
    pub fn new(aws: &SdkConfig, config: ApprovalConfig) -> Self {
        Self {
            s3: aws_sdk_s3::Client::new(aws),
            sns: aws_sdk_sns::Client::new(aws),
            config,
        }
    }

    async fn route(
        &self,
        workflow_id: WorkflowId,
        location: ManifestRef,
        progress: Option<StepProgress>,
        deadline: Deadline,
    ) -> Result<ApprovalOutput, PipelineError> {
        let manifest = manifest::read(&self.s3, &location, &workflow_id).await?;
        let context = PassContext {
            s3: &self.s3,
            settings: &self.config.moves,
            workflow_id: &workflow_id,
            deadline,
        };
        let targets = RouteTargets {
            scan_stage: &self.config.scan_stage_bucket,
            scanned_data: &self.config.scanned_data_bucket,
            manual_review: Some(&self.config.manual_review_bucket),
        };
        let progress =
            route_scan_stage(&context, &targets, &manifest, progress, Self::NAME).await?;
        info!(
            status = ?progress.status,
            moved = progress.tally.moved,
            held = progress.tally.held_for_review,
            "routing pass ended"
        );
        Ok(ApprovalOutput::Routing(progress))
    }

    #[allow(clippy::too_many_arguments)]
    async fn request_approval(
        &self,
        workflow_id: WorkflowId,
        location: ManifestRef,
        routed: Tally,
        task_token: String,
        entered_time: String,
        timeout_seconds: u64,
        timeout_action: TimeoutAction,
    ) -> Result<ApprovalOutput, PipelineError> {
        let manifest = manifest::read(&self.s3, &location, &workflow_id).await?;
        let entered = OffsetDateTime::parse(&entered_time, &Rfc3339).map_err(|err| {
            PipelineError::InvalidInput(format!(
                "enteredTime {entered_time:?} is not RFC 3339: {err}"
            ))
        })?;
        let expires_at = entered + Duration::from_secs(timeout_seconds);
        let allow = link(&self.config.approval_api_url, Decision::Allow, &task_token);
        let deny = link(&self.config.approval_api_url, Decision::Deny, &task_token);
        let email = ApprovalEmail {
            manifest: &manifest,
            manifest_location: &location,
            manual_review_bucket: &self.config.manual_review_bucket,
            scanned_data_bucket: &self.config.scanned_data_bucket,
            routed: &routed,
            expires_at,
            timeout_action,
            allow_link: &allow,
            deny_link: &deny,
        };
        let body = email.body();
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(PipelineError::Notification(format!(
                "the approval email has {} bytes, SNS accepts {MAX_MESSAGE_BYTES}",
                body.len()
            )));
        }
        let published = self
            .sns
            .publish()
            .topic_arn(&self.config.topic_arn)
            .subject(email.subject())
            .message(body)
            .send()
            .await
            .map_err(|err| PipelineError::from_sdk("Publish", err))?;
        let expires_at = expires_at.format(&Rfc3339).expect("a valid date formats");
        info!(
            workflow_id = workflow_id.as_str(),
            held = manifest.review().count(),
            expires_at,
            "approval requested"
        );
        Ok(ApprovalOutput::Requested {
            message_id: published.message_id().unwrap_or_default().to_owned(),
            expires_at,
        })
    }
}

impl Handler for TriggerManualApproval {
    type Input = ApprovalInput;
    type Output = ApprovalOutput;
    const NAME: &'static str = "triggerManualApproval";

    #[instrument(skip_all)]
    async fn handle(
        &self,
        input: ApprovalInput,
        deadline: Deadline,
    ) -> Result<ApprovalOutput, PipelineError> {
        match input {
            ApprovalInput::Route {
                workflow_id,
                manifest,
                progress,
            } => self.route(workflow_id, manifest, progress, deadline).await,
            ApprovalInput::RequestApproval {
                workflow_id,
                manifest,
                routed,
                task_token,
                entered_time,
                approval_timeout_seconds,
                timeout_action,
            } => {
                self.request_approval(
                    workflow_id,
                    manifest,
                    routed,
                    task_token,
                    entered_time,
                    approval_timeout_seconds,
                    timeout_action,
                )
                .await
            }
        }
    }
}
