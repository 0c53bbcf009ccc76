//! The local KMS's keys: the template's (at stable ids, their policies re-applied from the
//! template at every start, as a deployment would) and those made through the API, saved in
//! `<data-dir>/kms/keys.json`. Each key has 256 bits of its own material and encrypts with
//! AES-256-GCM, its ciphertext naming the key and bound to the encryption context, so Decrypt
//! finds the key from the blob and refuses another context, as KMS does. The material is kept in
//! the data directory in plain: local data at rest is not protected, only the semantics are.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::aws::{ACCOUNT, REGION};
use crate::iam::policy::Policy;

/// What a KMS request can fail with, in KMS's own error names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmsError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MalformedPolicyDocument(String),
    #[error("{0}")]
    Disabled(String),
    #[error("{0}")]
    InvalidCiphertext(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    IncorrectKey(String),
    #[error("{0}")]
    Internal(String),
}

impl KmsError {
    /// The `__type` KMS answers with.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "NotFoundException",
            Self::MalformedPolicyDocument(_) => "MalformedPolicyDocumentException",
            Self::Disabled(_) => "DisabledException",
            Self::InvalidCiphertext(_) => "InvalidCiphertextException",
            Self::Validation(_) => "ValidationException",
            Self::AlreadyExists(_) => "AlreadyExistsException",
            Self::IncorrectKey(_) => "IncorrectKeyException",
            Self::Internal(_) => "KMSInternalException",
        }
    }
}

/// One key's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyRecord {
    key_id: String,
    arn: String,
    description: String,
    /// The key policy as JSON text, as KMS returns it.
    policy: String,
    enabled: bool,
    created_ms: i64,
    /// The template resource that defines the key, for the template's keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    logical_id: Option<String>,
    /// Base64 of the key's 32 bytes.
    material: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    keys: BTreeMap<String, KeyRecord>,
    /// `alias/<name>` -> key id.
    aliases: BTreeMap<String, String>,
}

/// A key's description, as DescribeKey and CreateKey report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMetadata {
    pub key_id: String,
    pub arn: String,
    pub description: String,
    pub enabled: bool,
    pub created_ms: i64,
    pub from_template: bool,
}

/// Decides which principals a key policy may name: KMS refuses a policy naming one that does
/// not exist (yet).
pub trait Principals: Send + Sync {
    fn exists(&self, arn: &str) -> bool;
}

/// The keys, their policies and aliases.
pub struct Kms {
    path: PathBuf,
    saved: Mutex<Saved>,
    /// Parsed policies by key ARN, for IAM's evaluation.
    policies: Mutex<BTreeMap<String, Arc<Policy>>>,
}

const BLOB_MAGIC: &[u8; 4] = b"LKM1";

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// The ARN of the key `key_id` in the local account and region.
pub fn key_arn(key_id: &str) -> String {
    format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}")
}

/// The AAD an encryption context binds: its pairs sorted, so the order given does not matter.
fn context_aad(context: &BTreeMap<String, String>) -> Vec<u8> {
    serde_json::to_vec(context).unwrap_or_default()
}

/// The policy KMS gives a key created without one: the account administers and uses it, through
/// IAM policies.
pub fn default_policy() -> Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
            "Action": "kms:*",
            "Resource": "*",
        }],
    })
}

/// The `Principal.AWS` ARNs of every statement (not `*`, not service principals).
fn named_principals(policy: &Value) -> Vec<String> {
    let statements = match &policy["Statement"] {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let mut names = Vec::new();
    for statement in statements {
        match &statement["Principal"]["AWS"] {
            Value::String(name) => names.push(name.clone()),
            Value::Array(items) => {
                names.extend(items.iter().filter_map(|v| v.as_str()).map(str::to_owned))
            }
            _ => {}
        }
    }
    names.retain(|name| name != "*");
    names
}

impl Kms {
    /// Opens the keys saved under `dir`, or none.
    pub fn open(dir: PathBuf) -> Result<Self, String> {
        std::fs::create_dir_all(&dir).map_err(|err| format!("{}: {err}", dir.display()))?;
        let path = dir.join("keys.json");
        let saved: Saved = match crate::json_file::read(&path) {
            Ok(saved) => saved,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Saved::default(),
            Err(err) => {
                return Err(format!(
                    "the KMS record {} cannot be read ({err}); move it away to start without it",
                    path.display()
                ));
            }
        };
        let mut policies = BTreeMap::new();
        for record in saved.keys.values() {
            let parsed =
                parse_policy(&record.policy).map_err(|err| format!("{}: {err}", record.arn))?;
            policies.insert(record.arn.clone(), Arc::new(parsed));
        }
        Ok(Self {
            path,
            saved: Mutex::new(saved),
            policies: Mutex::new(policies),
        })
    }

    fn save(&self, saved: &Saved) -> Result<(), KmsError> {
        crate::json_file::write(&self.path, saved)
            .map_err(|err| KmsError::Internal(format!("saving the keys failed: {err}")))
    }

    /// Checks a key policy as KMS does before taking it: valid JSON IAM accepts, naming only
    /// principals that exist.
    fn check_policy(text: &str, principals: &dyn Principals) -> Result<(Policy, String), KmsError> {
        let document: Value = serde_json::from_str(text).map_err(|err| {
            KmsError::MalformedPolicyDocument(format!("the key policy is not valid JSON: {err}"))
        })?;
        let parsed = Policy::parse(&document, true)
            .map_err(|err| KmsError::MalformedPolicyDocument(err.0))?;
        if let Some(missing) = named_principals(&document)
            .into_iter()
            .find(|name| !principals.exists(name))
        {
            return Err(KmsError::MalformedPolicyDocument(format!(
                "Policy contains a statement with one or more invalid principals. ({missing} does not exist)"
            )));
        }
        Ok((parsed, document.to_string()))
    }

    /// Creates or updates a key the template defines, with its policy from the template.
    pub fn deploy_template_key(
        &self,
        logical_id: &str,
        key_id: &str,
        description: &str,
        policy: &Value,
        principals: &dyn Principals,
    ) -> Result<(), String> {
        let (parsed, text) =
            Self::check_policy(&policy.to_string(), principals).map_err(|err| {
                format!(
                    "{logical_id}: KMS refuses its key policy: {}: {err}",
                    err.code()
                )
            })?;
        let arn = key_arn(key_id);
        let mut saved = self.saved.lock().expect("kms lock");
        let record = saved
            .keys
            .entry(key_id.to_owned())
            .or_insert_with(|| KeyRecord {
                key_id: key_id.to_owned(),
                arn: arn.clone(),
                description: String::new(),
                policy: String::new(),
                enabled: true,
                created_ms: now_ms(),
                logical_id: Some(logical_id.to_owned()),
                material: new_material(),
            });
        record.description = description.to_owned();
        record.policy = text;
        record.logical_id = Some(logical_id.to_owned());
        self.save(&saved).map_err(|err| err.to_string())?;
        self.policies
            .lock()
            .expect("kms lock")
            .insert(arn, Arc::new(parsed));
        Ok(())
    }

    /// Points `alias/<name>` at a key (the template's aliases, CreateAlias).
    pub fn set_alias(&self, alias: &str, key: &str, replace: bool) -> Result<(), KmsError> {
        if !alias.starts_with("alias/") || alias.starts_with("alias/aws/") {
            return Err(KmsError::Validation(format!(
                "Alias must start with the prefix \"alias/\" and may not begin with \"alias/aws/\": {alias}"
            )));
        }
        let mut saved = self.saved.lock().expect("kms lock");
        let key_id = resolve(&saved, key)?.key_id.clone();
        if !replace && saved.aliases.contains_key(alias) {
            return Err(KmsError::AlreadyExists(format!(
                "An alias with the name arn:aws:kms:{REGION}:{ACCOUNT}:{alias} already exists"
            )));
        }
        saved.aliases.insert(alias.to_owned(), key_id);
        self.save(&saved)
    }

    /// The aliases and the key id each names.
    pub fn aliases(&self) -> Vec<(String, String)> {
        let saved = self.saved.lock().expect("kms lock");
        saved
            .aliases
            .iter()
            .map(|(a, k)| (a.clone(), k.clone()))
            .collect()
    }

    /// CreateKey.
    pub fn create_key(
        &self,
        description: &str,
        policy: Option<&str>,
        principals: &dyn Principals,
    ) -> Result<KeyMetadata, KmsError> {
        self.create_key_at(
            &uuid::Uuid::new_v4().to_string(),
            description,
            policy,
            principals,
        )
    }

    /// CreateKey at a chosen key id: a key already in the account at an id known beforehand (the
    /// tests' key named by `BucketKmsKeyArn`, the same in every test that uses one).
    pub fn create_key_at(
        &self,
        key_id: &str,
        description: &str,
        policy: Option<&str>,
        principals: &dyn Principals,
    ) -> Result<KeyMetadata, KmsError> {
        let policy = policy.map_or_else(|| default_policy().to_string(), str::to_owned);
        let (parsed, text) = Self::check_policy(&policy, principals)?;
        if self
            .saved
            .lock()
            .expect("kms lock")
            .keys
            .contains_key(key_id)
        {
            return Err(KmsError::AlreadyExists(format!(
                "{} exists",
                key_arn(key_id)
            )));
        }
        let key_id = key_id.to_owned();
        let record = KeyRecord {
            key_id: key_id.clone(),
            arn: key_arn(&key_id),
            description: description.to_owned(),
            policy: text,
            enabled: true,
            created_ms: now_ms(),
            logical_id: None,
            material: new_material(),
        };
        let mut saved = self.saved.lock().expect("kms lock");
        saved.keys.insert(key_id.clone(), record.clone());
        if let Err(err) = self.save(&saved) {
            saved.keys.remove(&key_id);
            return Err(err);
        }
        self.policies
            .lock()
            .expect("kms lock")
            .insert(record.arn.clone(), Arc::new(parsed));
        Ok(metadata(&record))
    }

    /// The key a key id, key ARN, alias name or alias ARN names.
    pub fn describe(&self, key: &str) -> Result<KeyMetadata, KmsError> {
        let saved = self.saved.lock().expect("kms lock");
        resolve(&saved, key).map(metadata)
    }

    /// Every key.
    pub fn list(&self) -> Vec<KeyMetadata> {
        let saved = self.saved.lock().expect("kms lock");
        saved.keys.values().map(metadata).collect()
    }

    /// GetKeyPolicy: the policy as JSON text.
    pub fn policy_text(&self, key: &str) -> Result<String, KmsError> {
        let saved = self.saved.lock().expect("kms lock");
        resolve(&saved, key).map(|record| record.policy.clone())
    }

    /// The parsed policy of the key `arn`, for IAM; None for a key KMS does not know.
    pub fn policy(&self, arn: &str) -> Option<Arc<Policy>> {
        self.policies.lock().expect("kms lock").get(arn).cloned()
    }

    /// PutKeyPolicy.
    pub fn put_policy(
        &self,
        key: &str,
        policy: &str,
        principals: &dyn Principals,
    ) -> Result<(), KmsError> {
        let (parsed, text) = Self::check_policy(policy, principals)?;
        let mut saved = self.saved.lock().expect("kms lock");
        let key_id = resolve(&saved, key)?.key_id.clone();
        let record = saved.keys.get_mut(&key_id).expect("resolved");
        let previous = std::mem::replace(&mut record.policy, text);
        let arn = record.arn.clone();
        if let Err(err) = self.save(&saved) {
            if let Some(record) = saved.keys.get_mut(&key_id) {
                record.policy = previous;
            }
            return Err(err);
        }
        self.policies
            .lock()
            .expect("kms lock")
            .insert(arn, Arc::new(parsed));
        Ok(())
    }

    /// EnableKey / DisableKey.
    pub fn set_enabled(&self, key: &str, enabled: bool) -> Result<(), KmsError> {
        let mut saved = self.saved.lock().expect("kms lock");
        let key_id = resolve(&saved, key)?.key_id.clone();
        let record = saved.keys.get_mut(&key_id).expect("resolved");
        let previous = std::mem::replace(&mut record.enabled, enabled);
        if let Err(err) = self.save(&saved) {
            if let Some(record) = saved.keys.get_mut(&key_id) {
                record.enabled = previous;
            }
            return Err(err);
        }
        Ok(())
    }

    /// The ARN of the enabled key `key` names, as S3 checks a key before using it.
    pub fn usable(&self, key: &str) -> Result<String, KmsError> {
        let saved = self.saved.lock().expect("kms lock");
        let record = resolve(&saved, key)?;
        if !record.enabled {
            return Err(KmsError::Disabled(format!("{} is disabled.", record.arn)));
        }
        Ok(record.arn.clone())
    }

    /// Encrypt: a blob naming the key, bound to `context`. Returns (blob, key ARN).
    pub fn encrypt(
        &self,
        key: &str,
        plaintext: &[u8],
        context: &BTreeMap<String, String>,
    ) -> Result<(Vec<u8>, String), KmsError> {
        if plaintext.is_empty() || plaintext.len() > 4096 {
            return Err(KmsError::Validation(
                "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length between 1 and 4096".into(),
            ));
        }
        let saved = self.saved.lock().expect("kms lock");
        let record = resolve(&saved, key)?;
        if !record.enabled {
            return Err(KmsError::Disabled(format!("{} is disabled.", record.arn)));
        }
        let sealing = cipher(record)?;
        let mut sealed = plaintext.to_vec();
        let nonce = sealing
            .seal_in_place_append_tag(Aad::from(context_aad(context)), &mut sealed)
            .map_err(|_| KmsError::Internal("encryption failed".into()))?;
        let id = record.key_id.as_bytes();
        let mut blob = Vec::with_capacity(5 + id.len() + NONCE_LEN + sealed.len());
        blob.extend_from_slice(BLOB_MAGIC);
        blob.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
        blob.extend_from_slice(id);
        blob.extend_from_slice(nonce.as_ref());
        blob.extend_from_slice(&sealed);
        Ok((blob, record.arn.clone()))
    }

    /// The key ARN a ciphertext blob names, before it is decrypted (IAM checks that key).
    pub fn key_of_blob(&self, blob: &[u8]) -> Result<String, KmsError> {
        let (key_id, _) = split_blob(blob)?;
        let saved = self.saved.lock().expect("kms lock");
        saved
            .keys
            .get(key_id)
            .map(|record| record.arn.clone())
            .ok_or_else(invalid_ciphertext)
    }

    /// Decrypt: the plaintext and the key ARN. A different context, or a blob this stack did
    /// not make, is `InvalidCiphertextException`.
    pub fn decrypt(
        &self,
        blob: &[u8],
        context: &BTreeMap<String, String>,
    ) -> Result<(Vec<u8>, String), KmsError> {
        let (key_id, rest) = split_blob(blob)?;
        let saved = self.saved.lock().expect("kms lock");
        let record = saved.keys.get(key_id).ok_or_else(invalid_ciphertext)?;
        if !record.enabled {
            return Err(KmsError::Disabled(format!("{} is disabled.", record.arn)));
        }
        if rest.len() < NONCE_LEN {
            return Err(invalid_ciphertext());
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| invalid_ciphertext())?;
        let mut in_out = sealed.to_vec();
        let plaintext = cipher(record)?
            .open_in_place(nonce, Aad::from(context_aad(context)), &mut in_out)
            .map_err(|_| invalid_ciphertext())?
            .to_vec();
        Ok((plaintext, record.arn.clone()))
    }
}

fn invalid_ciphertext() -> KmsError {
    KmsError::InvalidCiphertext(String::new())
}

fn split_blob(blob: &[u8]) -> Result<(&str, &[u8]), KmsError> {
    let rest = blob
        .strip_prefix(BLOB_MAGIC.as_slice())
        .ok_or_else(invalid_ciphertext)?;
    let (&length, rest) = rest.split_first().ok_or_else(invalid_ciphertext)?;
    let length = usize::from(length);
    if rest.len() < length {
        return Err(invalid_ciphertext());
    }
    let (id, rest) = rest.split_at(length);
    let id = std::str::from_utf8(id).map_err(|_| invalid_ciphertext())?;
    Ok((id, rest))
}

fn new_material() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system's random source");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn cipher(record: &KeyRecord) -> Result<RandomizedNonceKey, KmsError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&record.material)
        .map_err(|err| KmsError::Internal(format!("{}: unreadable material: {err}", record.arn)))?;
    RandomizedNonceKey::new(&AES_256_GCM, &bytes)
        .map_err(|_| KmsError::Internal(format!("{}: unusable material", record.arn)))
}

fn parse_policy(text: &str) -> Result<Policy, String> {
    let document: Value = serde_json::from_str(text).map_err(|err| err.to_string())?;
    Policy::parse(&document, true).map_err(|err| err.0)
}

fn metadata(record: &KeyRecord) -> KeyMetadata {
    KeyMetadata {
        key_id: record.key_id.clone(),
        arn: record.arn.clone(),
        description: record.description.clone(),
        enabled: record.enabled,
        created_ms: record.created_ms,
        from_template: record.logical_id.is_some(),
    }
}

/// The key `key` names: a key id, key ARN, `alias/<name>` or an alias ARN, in this account
/// and region.
fn resolve<'a>(saved: &'a Saved, key: &str) -> Result<&'a KeyRecord, KmsError> {
    let prefix = format!("arn:aws:kms:{REGION}:{ACCOUNT}:");
    let local = key.strip_prefix(&prefix).unwrap_or(key);
    let key_id = if local.starts_with("alias/") {
        saved.aliases.get(local).map(String::as_str)
    } else {
        Some(local.strip_prefix("key/").unwrap_or(local))
    };
    key_id.and_then(|id| saved.keys.get(id)).ok_or_else(|| {
        KmsError::NotFound(if key.contains("alias/") {
            format!("Alias {key} is not found.")
        } else {
            format!(
                "Key '{}' does not exist",
                key_arn(local.trim_start_matches("key/"))
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Known(Vec<String>);
    impl Principals for Known {
        fn exists(&self, arn: &str) -> bool {
            self.0.iter().any(|known| known == arn)
        }
    }

    fn kms() -> (tempfile::TempDir, Kms) {
        let dir = tempfile::tempdir().unwrap();
        let kms = Kms::open(dir.path().join("kms")).unwrap();
        (dir, kms)
    }

    fn root() -> Known {
        Known(vec![format!("arn:aws:iam::{ACCOUNT}:root")])
    }

    #[test]
    fn a_ciphertext_decrypts_only_with_its_context_and_names_its_key() {
        let (_dir, kms) = kms();
        let key = kms.create_key("k", None, &root()).unwrap();
        let context = BTreeMap::from([("aws:s3:arn".to_owned(), "arn:aws:s3:::b".to_owned())]);
        let (blob, arn) = kms.encrypt(&key.key_id, b"secret", &context).unwrap();
        assert_eq!(arn, key.arn);
        assert!(!blob.windows(6).any(|w| w == b"secret"));
        assert_eq!(kms.key_of_blob(&blob).unwrap(), key.arn);
        assert_eq!(kms.decrypt(&blob, &context).unwrap().0, b"secret");
        let other = BTreeMap::from([("aws:s3:arn".to_owned(), "arn:aws:s3:::c".to_owned())]);
        assert_eq!(
            kms.decrypt(&blob, &other).unwrap_err().code(),
            "InvalidCiphertextException"
        );
        assert_eq!(
            kms.decrypt(b"not a blob", &context).unwrap_err().code(),
            "InvalidCiphertextException"
        );
        kms.set_enabled(&key.arn, false).unwrap();
        assert_eq!(
            kms.decrypt(&blob, &context).unwrap_err().code(),
            "DisabledException"
        );
    }

    #[test]
    fn a_policy_naming_a_principal_that_does_not_exist_is_refused() {
        let (_dir, kms) = kms();
        let naming = |principal: &str| {
            serde_json::json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": principal},
                "Action": "kms:Decrypt", "Resource": "*"}]})
            .to_string()
        };
        let missing = format!(
            "arn:aws:iam::{ACCOUNT}:role/aws-service-role/macie.amazonaws.com/AWSServiceRoleForAmazonMacie"
        );
        let err = kms
            .create_key("k", Some(&naming(&missing)), &root())
            .unwrap_err();
        assert_eq!(err.code(), "MalformedPolicyDocumentException");
        assert!(err.to_string().contains(&missing), "{err}");
        assert!(kms.list().is_empty());
        // `*` with a condition on the principal's ARN names nobody, and is taken.
        let key = kms.create_key("k", Some(&naming("*")), &root()).unwrap();
        assert!(
            kms.put_policy(&key.key_id, &naming(&missing), &root())
                .is_err()
        );
        assert!(kms.policy_text(&key.key_id).unwrap().contains("\"*\""));
    }

    #[test]
    fn keys_aliases_and_policies_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let key = {
            let kms = Kms::open(dir.path().join("kms")).unwrap();
            let key = kms.create_key("second key", None, &root()).unwrap();
            kms.set_alias("alias/second", &key.arn, false).unwrap();
            key
        };
        let kms = Kms::open(dir.path().join("kms")).unwrap();
        assert_eq!(kms.describe("alias/second").unwrap(), key);
        assert_eq!(
            kms.describe(&format!("arn:aws:kms:{REGION}:{ACCOUNT}:alias/second"))
                .unwrap(),
            key
        );
        assert!(kms.policy(&key.arn).is_some());
        assert_eq!(
            kms.describe("alias/none").unwrap_err().code(),
            "NotFoundException"
        );
        assert!(kms.set_alias("alias/aws/s3", &key.arn, false).is_err());
    }
}
