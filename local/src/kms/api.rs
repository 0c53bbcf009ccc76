//! The KMS API (awsJson1.1, `X-Amz-Target: TrentService.<Operation>`): the operations the AWS
//! CLI, S3 and the tests use on keys, key policies, aliases and data keys. Blobs are base64 in
//! the JSON, timestamps epoch seconds, errors `{"__type", "message"}`.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::aws::{ACCOUNT, REGION};
use crate::kms::keys::{KeyMetadata, Kms, KmsError, Principals};

pub use crate::json_api::Reply;

fn ok(body: Value) -> Reply {
    Reply::ok(body)
}

fn fail(err: &KmsError) -> Reply {
    let code = err.code();
    Reply {
        status: if code == "KMSInternalException" {
            500
        } else {
            400
        },
        body: json!({"__type": code, "message": err.to_string()}),
        error: Some(code),
    }
}

fn metadata(key: &KeyMetadata) -> Value {
    json!({
        "AWSAccountId": ACCOUNT,
        "KeyId": key.key_id,
        "Arn": key.arn,
        "CreationDate": key.created_ms as f64 / 1000.0,
        "Enabled": key.enabled,
        "Description": key.description,
        "KeyUsage": "ENCRYPT_DECRYPT",
        "KeyState": if key.enabled { "Enabled" } else { "Disabled" },
        "Origin": "AWS_KMS",
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
        "KeySpec": "SYMMETRIC_DEFAULT",
        "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        "MultiRegion": false,
    })
}

fn text<'a>(input: &'a Value, field: &str) -> Result<&'a str, KmsError> {
    input[field].as_str().ok_or_else(|| {
        KmsError::Validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            lower_first(field)
        ))
    })
}

fn lower_first(field: &str) -> String {
    let mut chars = field.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn blob(input: &Value, field: &str) -> Result<Vec<u8>, KmsError> {
    base64::engine::general_purpose::STANDARD
        .decode(text(input, field)?)
        .map_err(|_| KmsError::Validation(format!("{field} is not valid base64")))
}

/// The request's encryption context: string pairs only.
pub fn encryption_context(input: &Value) -> Result<BTreeMap<String, String>, KmsError> {
    match &input["EncryptionContext"] {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(pairs) => pairs
            .iter()
            .map(|(name, value)| {
                value
                    .as_str()
                    .map(|value| (name.clone(), value.to_owned()))
                    .ok_or_else(|| {
                        KmsError::Validation(format!("EncryptionContext {name} must be a string"))
                    })
            })
            .collect(),
        _ => Err(KmsError::Validation(
            "EncryptionContext must be a map of strings".into(),
        )),
    }
}

fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The resource an operation acts on, for IAM: the key it names (from the blob for Decrypt),
/// or `*` for the operations that name none. A key that does not exist is left to the
/// operation, which answers `NotFoundException`.
pub fn resource(kms: &Kms, operation: &str, body: &[u8]) -> String {
    let input: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let key = match operation {
        "CreateKey" | "ListKeys" | "ListAliases" => None,
        "Decrypt" => match input["KeyId"].as_str() {
            Some(key) => kms.describe(key).ok().map(|key| key.arn),
            None => blob(&input, "CiphertextBlob")
                .ok()
                .and_then(|blob| kms.key_of_blob(&blob).ok()),
        },
        "CreateAlias" => input["TargetKeyId"]
            .as_str()
            .and_then(|key| kms.describe(key).ok())
            .map(|key| key.arn),
        _ => input["KeyId"]
            .as_str()
            .and_then(|key| kms.describe(key).ok())
            .map(|key| key.arn),
    };
    key.unwrap_or_else(|| "*".into())
}

/// Handles one request. `principals` says which principals a key policy may name.
pub fn handle(kms: &Kms, target: &str, body: &[u8], principals: &dyn Principals) -> Reply {
    let operation = target.strip_prefix("TrentService.").unwrap_or(target);
    let input: Value = match serde_json::from_slice(body) {
        Ok(input) => input,
        Err(err) => {
            return fail(&KmsError::Validation(format!(
                "the request body is not JSON: {err}"
            )));
        }
    };
    match call(kms, operation, &input, principals) {
        Ok(body) => ok(body),
        Err(err) => fail(&err),
    }
}

fn call(
    kms: &Kms,
    operation: &str,
    input: &Value,
    principals: &dyn Principals,
) -> Result<Value, KmsError> {
    Ok(match operation {
        "CreateKey" => {
            if input["KeySpec"]
                .as_str()
                .is_some_and(|s| s != "SYMMETRIC_DEFAULT")
                || input["KeyUsage"]
                    .as_str()
                    .is_some_and(|u| u != "ENCRYPT_DECRYPT")
            {
                return Err(KmsError::Validation(
                    "the local KMS makes symmetric encryption keys only (KeySpec SYMMETRIC_DEFAULT, KeyUsage ENCRYPT_DECRYPT)".into(),
                ));
            }
            let key = kms.create_key(
                input["Description"].as_str().unwrap_or_default(),
                input["Policy"].as_str(),
                principals,
            )?;
            json!({"KeyMetadata": metadata(&key)})
        }
        "DescribeKey" => json!({"KeyMetadata": metadata(&kms.describe(text(input, "KeyId")?)?)}),
        "ListKeys" => json!({
            "Keys": kms.list().iter().map(|key| json!({"KeyId": key.key_id, "KeyArn": key.arn})).collect::<Vec<_>>(),
            "Truncated": false,
        }),
        "GetKeyPolicy" => {
            policy_name(input)?;
            json!({"Policy": kms.policy_text(text(input, "KeyId")?)?, "PolicyName": "default"})
        }
        "PutKeyPolicy" => {
            policy_name(input)?;
            kms.put_policy(text(input, "KeyId")?, text(input, "Policy")?, principals)?;
            json!({})
        }
        "EnableKey" | "DisableKey" => {
            kms.set_enabled(text(input, "KeyId")?, operation == "EnableKey")?;
            json!({})
        }
        "CreateAlias" => {
            kms.set_alias(
                text(input, "AliasName")?,
                text(input, "TargetKeyId")?,
                false,
            )?;
            json!({})
        }
        "ListAliases" => json!({
            "Aliases": kms.aliases().iter().map(|(alias, key_id)| json!({
                "AliasName": alias,
                "AliasArn": format!("arn:aws:kms:{REGION}:{ACCOUNT}:{alias}"),
                "TargetKeyId": key_id,
            })).collect::<Vec<_>>(),
            "Truncated": false,
        }),
        "Encrypt" => {
            let (ciphertext, key) = kms.encrypt(
                text(input, "KeyId")?,
                &blob(input, "Plaintext")?,
                &encryption_context(input)?,
            )?;
            json!({"CiphertextBlob": encode(&ciphertext), "KeyId": key, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"})
        }
        "Decrypt" => {
            let ciphertext = blob(input, "CiphertextBlob")?;
            let (plaintext, key) = kms.decrypt(&ciphertext, &encryption_context(input)?)?;
            if let Some(named) = input["KeyId"].as_str()
                && kms.describe(named)?.arn != key
            {
                return Err(KmsError::IncorrectKey(format!(
                    "The key ID in the request does not identify the key that encrypted the ciphertext ({key}, not {named})."
                )));
            }
            json!({"Plaintext": encode(&plaintext), "KeyId": key, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"})
        }
        "GenerateDataKey" => {
            let length = match (input["NumberOfBytes"].as_u64(), input["KeySpec"].as_str()) {
                (Some(n), None) if (1..=1024).contains(&n) => n as usize,
                (None, Some("AES_256")) => 32,
                (None, Some("AES_128")) => 16,
                _ => {
                    return Err(KmsError::Validation(
                        "give exactly one of KeySpec (AES_256 or AES_128) and NumberOfBytes (1 to 1024)".into(),
                    ));
                }
            };
            let mut plaintext = vec![0u8; length];
            aws_lc_rs::rand::fill(&mut plaintext)
                .map_err(|_| KmsError::Internal("no random bytes".into()))?;
            let (ciphertext, key) = kms.encrypt(
                text(input, "KeyId")?,
                &plaintext,
                &encryption_context(input)?,
            )?;
            json!({"CiphertextBlob": encode(&ciphertext), "Plaintext": encode(&plaintext), "KeyId": key})
        }
        other => {
            return Err(KmsError::Validation(format!(
                "the local KMS does not implement {other}"
            )));
        }
    })
}

/// KMS keys have one policy, named `default`.
fn policy_name(input: &Value) -> Result<(), KmsError> {
    match input["PolicyName"].as_str() {
        None | Some("default") => Ok(()),
        Some(other) => Err(KmsError::NotFound(format!(
            "No such policy exists: {other} (a key's only policy is named default)"
        ))),
    }
}
