//! Nothing the template turns on records a task token outside the link it travels in: the
//! approval API has no X-Ray tracing (a trace keeps the request URL with its query string), no
//! execution logs or data traces, and an access log format, when logging is on, with no variable
//! that could hold a query string or a body; the state machine logs no execution data.

mod common;

use serde_norway::Value as Yaml;

use common::{resources, tagged, template};

fn approval_api() -> Yaml {
    let template = template();
    let apis = resources(&template, "AWS::Serverless::Api");
    assert_eq!(apis.len(), 1, "one API: the approval API");
    apis.into_iter().next().expect("one").1
}

#[test]
fn the_approval_api_is_not_traced() {
    let api = approval_api();
    assert_eq!(
        api["Properties"]["TracingEnabled"].as_bool(),
        Some(false),
        "X-Ray would record /allow?token=... in every trace"
    );
}

#[test]
fn the_approval_api_writes_no_execution_logs_or_data_traces() {
    let api = approval_api();
    let settings = api["Properties"]["MethodSettings"]
        .as_sequence()
        .expect("MethodSettings");
    assert!(!settings.is_empty());
    for setting in settings {
        assert_eq!(setting["LoggingLevel"].as_str(), Some("OFF"), "{setting:?}");
        assert_eq!(
            setting["DataTraceEnabled"].as_bool(),
            Some(false),
            "{setting:?}"
        );
    }
}

/// Access log variables that name the request without its query string or body.
const SAFE_VARIABLES: &[&str] = &[
    "$context.requestId",
    "$context.extendedRequestId",
    "$context.requestTime",
    "$context.requestTimeEpoch",
    "$context.httpMethod",
    "$context.resourcePath",
    "$context.status",
    "$context.identity.sourceIp",
    "$context.identity.userAgent",
    "$context.protocol",
    "$context.responseLength",
    "$context.responseLatency",
    "$context.integrationLatency",
    "$context.stage",
    "$context.error.responseType",
];

/// The `$name.part...` variables of an access log format.
fn variables(format: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = format;
    while let Some(at) = rest.find('$') {
        let tail = &rest[at + 1..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
            .unwrap_or(tail.len());
        found.push(format!("${}", tail[..end].trim_end_matches('.')));
        rest = &tail[end..];
    }
    found
}

#[test]
fn the_access_log_format_cannot_hold_a_query_string_or_a_body() {
    let api = approval_api();
    let setting = &api["Properties"]["AccessLogSetting"];
    let (tag, branches) = tagged(setting).expect("AccessLogSetting is !If LogApiAccess");
    assert_eq!(tag, "If");
    let branches = branches.as_sequence().expect("!If takes a list");
    assert_eq!(branches[0].as_str(), Some("LogApiAccess"));
    let format = branches[1]["Format"].as_str().expect("a format");
    serde_json::from_str::<serde_json::Value>(format).expect("the format is JSON");
    let used = variables(format);
    assert!(used.contains(&"$context.requestId".to_owned()), "{used:?}");
    for variable in &used {
        assert!(
            SAFE_VARIABLES.contains(&variable.as_str()),
            "{variable} may hold the query string or body (and the token); allowed: {SAFE_VARIABLES:?}"
        );
    }
    // The checker itself: what would leak the token is refused.
    for leaking in ["$input.body", "$context.requestOverride.querystring.token"] {
        assert!(!SAFE_VARIABLES.contains(&variables(leaking)[0].as_str()));
    }
}

#[test]
fn the_state_machine_logs_no_execution_data() {
    let template = template();
    let machines = resources(&template, "AWS::StepFunctions::StateMachine");
    assert_eq!(machines.len(), 1);
    let logging = &machines[0].1["Properties"]["LoggingConfiguration"];
    assert_eq!(
        logging["IncludeExecutionData"].as_bool(),
        Some(false),
        "execution data holds the task token"
    );
}

/// The execution history holds the task token (the approval step's input): the state machine is
/// encrypted with a customer-managed key of the stack, whose policy lets no one use it but
/// through Step Functions for this state machine's data, and grants nothing by itself (IAM
/// policies decide who, and a read-only policy grants no kms:Decrypt).
#[test]
fn the_execution_history_is_encrypted_with_a_key_only_iam_grants_for_this_state_machine() {
    let template = template();
    let machines = resources(&template, "AWS::StepFunctions::StateMachine");
    let encryption = &machines[0].1["Properties"]["EncryptionConfiguration"];
    assert_eq!(
        encryption["Type"].as_str(),
        Some("CUSTOMER_MANAGED_KMS_KEY")
    );
    let (tag, key) = tagged(&encryption["KmsKeyId"]).expect("a key of the stack");
    assert_eq!(tag, "GetAtt");
    let key = key.as_str().unwrap().trim_end_matches(".Arn");
    let key = &template["Resources"][key];
    assert_eq!(key["Type"].as_str(), Some("AWS::KMS::Key"));
    assert_eq!(key["Properties"]["EnableKeyRotation"].as_bool(), Some(true));
    let statements = key["Properties"]["KeyPolicy"]["Statement"]
        .as_sequence()
        .unwrap();
    let uses = [
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "kms:*",
        "kms:Decrypt*",
    ];
    for statement in statements {
        let actions: Vec<&str> = statement["Action"]
            .as_sequence()
            .map(|all| all.iter().filter_map(Yaml::as_str).collect())
            .unwrap_or_else(|| vec![statement["Action"].as_str().unwrap()]);
        let sid = statement["Sid"].as_str().unwrap_or_default();
        if !actions.iter().any(|action| uses.contains(action)) {
            continue;
        }
        let condition = &statement["Condition"];
        let scoped = !condition["StringEquals"]["kms:EncryptionContext:aws:states:stateMachineArn"]
            .is_null()
            || !condition["StringLike"]["kms:EncryptionContext:SourceArn"].is_null();
        assert!(scoped, "{sid} lets the key be used for other data");
        if actions.contains(&"kms:Decrypt") && statement["Principal"]["Service"].is_null() {
            assert!(
                !condition["StringEquals"]["kms:ViaService"].is_null(),
                "{sid} lets the history's data be decrypted outside Step Functions"
            );
        }
        assert!(!actions.contains(&"kms:*"), "{sid} grants every use");
    }
}
