//! The errors handlers return. Each variant has a stable name (the Lambda `errorType`) that
//! the state machine's `Retry` and `Catch` match, so a new message never breaks the workflow.

use std::error::Error as StdError;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Everything that can make a pipeline step fail. None of these is ever turned into a success.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The task input (built by the state machine from the execution input) is unusable. The
    /// message says what was wrong with it; alerts put the name `InvalidInput` before it.
    #[error("{0}")]
    InvalidInput(String),

    /// An AWS call failed in a way that may succeed if tried again (throttling, 5xx, timeouts,
    /// connection errors). The SDK has already retried it; the state machine retries the step.
    #[error("{operation} failed with a transient error: {message}")]
    Transient {
        operation: &'static str,
        message: String,
        #[source]
        source: BoxError,
    },

    /// An AWS call failed for a reason that another try will not fix (access denied, missing
    /// bucket, validation).
    #[error("{operation} failed ({code}): {message}")]
    Aws {
        operation: &'static str,
        code: String,
        message: String,
        #[source]
        source: BoxError,
    },

    /// An object of this workflow changed between listing and moving it. The step is retried
    /// and sees the new version.
    #[error("s3://{bucket}/{key} changed while it was being moved")]
    ObjectChanged { bucket: String, key: String },

    /// A run manifest could not be read or does not belong to this workflow.
    #[error("manifest s3://{bucket}/{key} is unusable: {reason}")]
    InvalidManifest {
        bucket: String,
        key: String,
        reason: String,
    },

    /// Macie returned a finding this workflow cannot account for; the run stops rather than
    /// guess where the object belongs.
    #[error("unexpected Macie finding: {0}")]
    UnexpectedFinding(String),

    /// Macie has no location for sensitive data discovery results, or not the one this
    /// deployment may read. Without the results a skipped object looks clean, so the run stops.
    #[error("{0}")]
    DiscoveryResultsNotConfigured(String),

    /// The job's discovery results are not all written yet (none at all, or none for an object
    /// with a finding). Macie writes them shortly after the job completes; the state machine
    /// waits a bounded time and then fails the run.
    #[error("the discovery results of Macie job {job_id} are incomplete: {detail}")]
    DiscoveryResultsIncomplete { job_id: String, detail: String },

    /// A discovery results file cannot be read as gzip-compressed JSON Lines.
    #[error("discovery results s3://{bucket}/{key} are unusable: {reason}")]
    InvalidDiscoveryResults {
        bucket: String,
        key: String,
        reason: String,
    },

    /// A later step cannot add its tag because the object's tags were changed after intake.
    #[error("s3://{bucket}/{key} cannot be tagged: {detail}")]
    TooManyTags {
        bucket: String,
        key: String,
        detail: String,
    },

    /// The approval request cannot be built or sent.
    #[error("approval notification cannot be sent: {0}")]
    Notification(String),

    /// A version cannot be placed without replacing an object the gate did not expect: its key
    /// and the place it would wait aside are both taken by other objects. Another try finds the
    /// same, so the run fails with the version where it was.
    #[error("s3://{bucket}/{key} cannot take this version: {detail}")]
    PlacementConflict {
        bucket: String,
        key: String,
        detail: String,
    },

    /// S3 could not use a KMS key on the gate's behalf: the key of the bucket it writes to (or
    /// of an object past intake) does not let this function's role encrypt or decrypt. Another
    /// try meets the same key policy; the objects stay where they are.
    #[error("s3://{bucket}/{key}: {detail}")]
    KmsAccessDenied {
        bucket: String,
        key: String,
        detail: String,
    },

    /// A Distributed Map batch met the Lambda deadline before every object in it was started.
    /// The Map's child retries the whole batch; the objects already moved are found gone.
    #[error("{0}")]
    BatchUnfinished(String),
}

impl PipelineError {
    /// Names of errors the state machine retries: another attempt can succeed.
    pub const RETRYABLE_NAMES: &'static [&'static str] = &["TransientAwsError", "ObjectChanged"];

    /// Every name `name()` can return, for the checks that keep the ASL in step with this enum.
    pub const ALL_NAMES: &'static [&'static str] = &[
        "InvalidInput",
        "TransientAwsError",
        "AwsRequestFailed",
        "ObjectChanged",
        "InvalidManifest",
        "UnexpectedFinding",
        "DiscoveryResultsNotConfigured",
        "DiscoveryResultsIncomplete",
        "InvalidDiscoveryResults",
        "TooManyTags",
        "NotificationFailed",
        "PlacementConflict",
        "BatchUnfinished",
        "KmsAccessDenied",
    ];

    /// The name of the error that means "wait for Macie to finish writing its results".
    pub const RESULTS_PENDING_NAME: &'static str = "DiscoveryResultsIncomplete";

    /// The stable error name reported to Step Functions as the Lambda `errorType`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => "InvalidInput",
            Self::Transient { .. } => "TransientAwsError",
            Self::Aws { .. } => "AwsRequestFailed",
            Self::ObjectChanged { .. } => "ObjectChanged",
            Self::InvalidManifest { .. } => "InvalidManifest",
            Self::UnexpectedFinding(_) => "UnexpectedFinding",
            Self::DiscoveryResultsNotConfigured(_) => "DiscoveryResultsNotConfigured",
            Self::DiscoveryResultsIncomplete { .. } => "DiscoveryResultsIncomplete",
            Self::InvalidDiscoveryResults { .. } => "InvalidDiscoveryResults",
            Self::TooManyTags { .. } => "TooManyTags",
            Self::Notification(_) => "NotificationFailed",
            Self::PlacementConflict { .. } => "PlacementConflict",
            Self::BatchUnfinished(_) => "BatchUnfinished",
            Self::KmsAccessDenied { .. } => "KmsAccessDenied",
        }
    }

    /// Names the bucket in a `NoSuchBucket` error, which S3 reports without it: a bucket the
    /// stack did not make (`RawBucketName`) may not exist yet.
    pub fn naming_bucket(mut self, bucket: &str) -> Self {
        if let Self::Aws { code, message, .. } = &mut self
            && code == "NoSuchBucket"
        {
            *message = format!(
                "the bucket {bucket} does not exist (a landing bucket named by RawBucketName must be made before the gate runs); {message}"
            );
        }
        self
    }

    /// Wraps an SDK error from `operation`, deciding whether it is transient.
    pub fn from_sdk<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let message = readable(&err);
        if is_transient(&err) {
            return Self::Transient {
                operation,
                message,
                source: Box::new(err),
            };
        }
        let status = http_status(&err);
        // A HEAD response has no body, so a denied HeadObject says neither its code nor its
        // reason: name the permission it needs, which is what a deployer has to check.
        if err.code().is_none() && status == Some(403) && operation == "HeadObject" {
            return Self::Aws {
                operation,
                code: "AccessDenied".into(),
                message: format!(
                    "HTTP 403 with no reason (a HEAD response has no body): HeadObject needs s3:GetObject on the object (s3:GetObjectVersion for a version id); {message}"
                ),
                source: Box::new(err),
            };
        }
        let code = err
            .code()
            .map(str::to_owned)
            .or_else(|| status.map(|s| format!("HTTP {s}")))
            .unwrap_or_else(|| "Unknown".to_owned());
        Self::Aws {
            operation,
            code,
            message,
            source: Box::new(err),
        }
    }
}

/// Service error codes that mean "try again later", across S3, Macie, SNS and Step Functions.
const TRANSIENT_CODES: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "Throttled",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "InternalServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

/// True when another attempt of the same request may succeed.
pub fn is_transient<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            status == 429
                || status >= 500
                || service
                    .err()
                    .code()
                    .is_some_and(|code| TRANSIENT_CODES.contains(&code))
        }
        _ => false,
    }
}

/// What an SDK error says, in a sentence: a service's own code and message, or the chain of
/// causes of a failure to send. `DisplayErrorContext` (which the logs use) also appends each
/// error's debug form, raw response included, which no person reading an alert needs.
fn readable<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    if let SdkError::ServiceError(service) = err {
        let service = service.err();
        match (service.code(), service.message()) {
            (_, Some(message)) => return message.to_owned(),
            (Some(code), None) => return format!("{code}, with no message"),
            (None, None) => {}
        }
    }
    let mut parts = vec![err.to_string()];
    let mut cause = err.source();
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        cause = inner.source();
    }
    parts.join(": ")
}

/// The HTTP status of a service error, if the request got that far.
pub fn http_status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    match err {
        SdkError::ServiceError(service) => Some(service.raw().status().as_u16()),
        _ => None,
    }
}

impl From<PipelineError> for lambda_runtime::Diagnostic {
    fn from(err: PipelineError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: err.name().to_owned(),
            // The message alone: the function's log has the whole chain, with each error's
            // details, and what reaches an email must read as a sentence.
            error_message: err.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_name_is_listed_once() {
        let samples = [
            PipelineError::InvalidInput(String::new()),
            PipelineError::ObjectChanged {
                bucket: "b".into(),
                key: "k".into(),
            },
            PipelineError::InvalidManifest {
                bucket: "b".into(),
                key: "k".into(),
                reason: "r".into(),
            },
            PipelineError::UnexpectedFinding(String::new()),
            PipelineError::DiscoveryResultsNotConfigured(String::new()),
            PipelineError::DiscoveryResultsIncomplete {
                job_id: "j".into(),
                detail: "d".into(),
            },
            PipelineError::InvalidDiscoveryResults {
                bucket: "b".into(),
                key: "k".into(),
                reason: "r".into(),
            },
            PipelineError::TooManyTags {
                bucket: "b".into(),
                key: "k".into(),
                detail: "d".into(),
            },
            PipelineError::Notification(String::new()),
            PipelineError::PlacementConflict {
                bucket: "b".into(),
                key: "k".into(),
                detail: "d".into(),
            },
            PipelineError::BatchUnfinished(String::new()),
            PipelineError::KmsAccessDenied {
                bucket: "b".into(),
                key: "k".into(),
                detail: "d".into(),
            },
        ];
        for err in &samples {
            assert!(
                PipelineError::ALL_NAMES.contains(&err.name()),
                "{}",
                err.name()
            );
        }
        let mut names = PipelineError::ALL_NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PipelineError::ALL_NAMES.len());
        for name in PipelineError::RETRYABLE_NAMES {
            assert!(PipelineError::ALL_NAMES.contains(name));
        }
    }

    #[test]
    fn diagnostic_carries_the_stable_name() {
        let diagnostic: lambda_runtime::Diagnostic =
            PipelineError::InvalidInput("id must be a string".into()).into();
        assert_eq!(diagnostic.error_type, "InvalidInput");
        assert!(diagnostic.error_message.contains("id must be a string"));
    }

    #[test]
    fn an_aws_error_reads_as_a_sentence_without_the_raw_response() {
        use aws_sdk_macie2::operation::create_classification_job::CreateClassificationJobError;
        use aws_smithy_runtime_api::http::{Response, StatusCode};
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;

        let service = CreateClassificationJobError::generic(
            ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("Macie is not enabled")
                .build(),
        );
        let raw = Response::new(
            StatusCode::try_from(403).unwrap(),
            SdkBody::from(r#"{"message":"Macie is not enabled"}"#),
        );
        let err = PipelineError::from_sdk(
            "CreateClassificationJob",
            SdkError::service_error(service, raw),
        );
        assert_eq!(
            err.to_string(),
            "CreateClassificationJob failed (AccessDeniedException): Macie is not enabled"
        );
        let diagnostic: lambda_runtime::Diagnostic = err.into();
        assert_eq!(
            diagnostic.error_message,
            "CreateClassificationJob failed (AccessDeniedException): Macie is not enabled"
        );
    }
}
