//! What SAM adds to a role besides the template's inline statements: the policy templates the
//! template names (their definitions as in aws-sam-translator 1.115.0,
//! `samtranslator/policy_templates_data/policy_templates.json`), and the managed policies it
//! attaches (`AWSLambdaBasicExecutionRole` to every function, `AWSXrayWriteOnlyAccess` with
//! tracing on), with the statements AWS publishes for them.

use serde_json::{Value, json};

use crate::aws::{ACCOUNT, REGION};

fn parameter<'a>(template: &str, parameters: &'a Value, name: &str) -> Result<&'a str, String> {
    parameters
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the SAM policy template {template} needs {name}"))
}

/// Expands a SAM policy template with its (resolved) parameters.
pub fn policy_template(template: &str, parameters: &Value) -> Result<Value, String> {
    let statement = match template {
        "LambdaInvokePolicy" => {
            let function = parameter(template, parameters, "FunctionName")?;
            json!({"Action": ["lambda:InvokeFunction"], "Effect": "Allow",
                "Resource": format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}*")})
        }
        "SNSPublishMessagePolicy" => {
            let topic = parameter(template, parameters, "TopicName")?;
            json!({"Action": ["sns:Publish"], "Effect": "Allow",
                "Resource": format!("arn:aws:sns:{REGION}:{ACCOUNT}:{topic}")})
        }
        other => {
            return Err(format!(
                "the local stack does not know the SAM policy template {other}; add its definition to local/src/iam/sam.rs"
            ));
        }
    };
    Ok(json!({"Version": "2012-10-17", "Statement": [statement]}))
}

/// A managed policy by name or ARN.
pub fn managed_policy(name: &str) -> Result<Value, String> {
    let short = name.rsplit('/').next().unwrap_or(name);
    let statement = match short {
        "AWSLambdaBasicExecutionRole" => json!({"Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*"}),
        "AWSXrayWriteOnlyAccess" => json!({"Effect": "Allow",
            "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                "xray:GetSamplingTargets", "xray:GetSamplingStatisticSummaries"],
            "Resource": "*"}),
        other => {
            return Err(format!(
                "the local stack does not know the managed policy {other}; add its statements to local/src/iam/sam.rs"
            ));
        }
    };
    Ok(json!({"Version": "2012-10-17", "Statement": [statement]}))
}

/// The managed policies SAM attaches to a function: basic execution, and X-Ray with tracing.
pub fn function_managed_policies(tracing_active: bool) -> Vec<&'static str> {
    let mut names = vec!["AWSLambdaBasicExecutionRole"];
    if tracing_active {
        names.push("AWSXrayWriteOnlyAccess");
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameters(pairs: &[(&str, &str)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
                .collect(),
        )
    }

    #[test]
    fn templates_expand_to_their_published_statements() {
        let invoke =
            policy_template("LambdaInvokePolicy", &parameters(&[("FunctionName", "F")])).unwrap();
        assert_eq!(
            invoke["Statement"][0]["Resource"],
            format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:F*")
        );
        assert!(policy_template("LambdaInvokePolicy", &json!({})).is_err());
        assert!(
            policy_template("S3CrudPolicy", &parameters(&[("BucketName", "b")]))
                .unwrap_err()
                .contains("S3CrudPolicy")
        );
        assert!(
            managed_policy("arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole")
                .is_ok()
        );
    }
}
