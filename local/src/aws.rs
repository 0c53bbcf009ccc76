//! The one account and region the local stack plays, and the ARNs it names things by. Every
//! service of the stack (S3, Macie, SNS, Step Functions, IAM) takes them from here.

/// The region every local resource lives in.
pub const REGION: &str = "us-east-1";
/// The account every local resource belongs to.
pub const ACCOUNT: &str = "000000000000";

/// `arn:aws:states:<region>:<account>:stateMachine:<name>`.
pub fn state_machine_arn(name: &str) -> String {
    format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}")
}

/// `arn:aws:states:<region>:<account>:execution:<machine>:<name>`.
pub fn execution_arn(machine: &str, name: &str) -> String {
    format!("arn:aws:states:{REGION}:{ACCOUNT}:execution:{machine}:{name}")
}

/// A function's ARN from its name; an ARN is returned as it is.
pub fn lambda_function_arn(function: &str) -> String {
    if function.starts_with("arn:") {
        function.to_owned()
    } else {
        format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}")
    }
}

/// `arn:aws:sns:<region>:<account>:<topic>`.
pub fn topic_arn(topic: &str) -> String {
    format!("arn:aws:sns:{REGION}:{ACCOUNT}:{topic}")
}

/// `arn:aws:iam::<account>:role/<name>`.
pub fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_name_the_local_account_and_region() {
        assert_eq!(
            execution_arn("m", "e"),
            "arn:aws:states:us-east-1:000000000000:execution:m:e"
        );
        assert_eq!(
            lambda_function_arn("f"),
            "arn:aws:lambda:us-east-1:000000000000:function:f"
        );
        assert_eq!(lambda_function_arn("arn:aws:lambda:x"), "arn:aws:lambda:x");
    }
}
