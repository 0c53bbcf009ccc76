//! What the gate says when S3 is refused a KMS key on its behalf: which key, and the statement
//! that key's policy needs, so whoever owns the key can let the gate in without reading logs.

use crate::error::PipelineError;

/// The IAM role a denied request was made as, from S3's message (`User: arn:aws:sts::<account>:
/// assumed-role/<role>/<session> is not authorized ...`), as a role ARN.
fn caller_role(message: &str) -> Option<String> {
    let caller = message
        .split_whitespace()
        .find(|word| word.starts_with("arn:"))?;
    let (prefix, rest) = caller.split_once(":assumed-role/")?;
    let account = prefix.rsplit(':').next()?;
    let partition = prefix.split(':').nth(1)?;
    let role = rest.split('/').next()?;
    Some(format!("arn:{partition}:iam::{account}:role/{role}"))
}

/// The reason an object that arrived encrypted with a key of its own stays in raw: the key, and
/// the statement to add to its policy (naming the gate's role, which needs nothing more).
pub fn source_key_refused(kms_key: &str, message: &str) -> String {
    let role =
        caller_role(message).unwrap_or_else(|| "<the TriggerMacieScan function's role ARN>".into());
    let region = kms_key.split(':').nth(3).unwrap_or("<region>");
    format!(
        "it is encrypted with KMS key {kms_key}, whose key policy does not let the gate decrypt it \
         (S3: {message}). Add this statement to that key's policy and the next run takes it: \
         {{\"Sid\": \"SensitiveDataGateTakesObjects\", \"Effect\": \"Allow\", \"Principal\": {{\"AWS\": \"{role}\"}}, \
         \"Action\": \"kms:Decrypt\", \"Resource\": \"*\", \"Condition\": {{\"StringEquals\": \
         {{\"kms:ViaService\": \"s3.{region}.amazonaws.com\"}}}}}}"
    )
}

/// The error for a key refusal no single object is to blame for: the pipeline buckets' own key
/// (or, past intake, any key) does not let this function's role use it.
pub fn denied(bucket: &str, key: &str, message: &str) -> PipelineError {
    PipelineError::KmsAccessDenied {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        detail: format!(
            "S3 could not use a KMS key on the gate's behalf ({message}); the pipeline buckets' key \
             must let the gate's roles use it through S3 (see BucketKmsKeyArn in the README)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_names_the_role_that_was_refused() {
        let message = "User: arn:aws:sts::123456789012:assumed-role/gate-TriggerMacieScanRole-AB12/TriggerMacieScan is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:eu-west-1:123456789012:key/k";
        let reason = source_key_refused("arn:aws:kms:eu-west-1:123456789012:key/k", message);
        assert!(
            reason.contains("KMS key arn:aws:kms:eu-west-1:123456789012:key/k"),
            "{reason}"
        );
        assert!(
            reason.contains(
                "\"AWS\": \"arn:aws:iam::123456789012:role/gate-TriggerMacieScanRole-AB12\""
            ),
            "{reason}"
        );
        assert!(reason.contains("s3.eu-west-1.amazonaws.com"), "{reason}");
        let statement = &reason[reason.find("{\"Sid\"").unwrap()..];
        let parsed: serde_json::Value = serde_json::from_str(statement).unwrap();
        assert_eq!(parsed["Action"], "kms:Decrypt");
    }

    #[test]
    fn a_message_without_a_role_still_says_what_to_add() {
        let reason = source_key_refused("arn:aws:kms:us-east-1:1:key/k", "Access Denied");
        assert!(
            reason.contains("TriggerMacieScan function's role"),
            "{reason}"
        );
    }
}
