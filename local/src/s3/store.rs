//! The local S3's storage: buckets and object versions in a data directory that survives
//! restarts.
//!
//! Each object version's bytes live in their own file that is never changed after it is written.
//! A small JSON record per key lists its versions (see [`versions`](crate::s3::versions)), each
//! with its ETag, metadata and tags. Writing that record is the commit: a crash leaves either the
//! old versions or the new ones, never a mix. Copies hard-link the bytes, so copying an object of
//! any size is instant, and a reader that opened a file keeps reading it even if the version is
//! deleted meanwhile.
//!
//! Conditional writes are judged when they commit, against the key's current version; a delete
//! of the key between a conditional write's start and its commit makes it fail with
//! `ConditionalRequestConflict`, as S3 does.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tracing::warn;

use macie_pipeline::tags::Tag;

pub use crate::clock::now_ms;
use crate::json_file::{read as read_json, write as write_json};
use crate::s3::versions::{Chain, requested};
pub use crate::s3::versions::{Deletion, Entry, Marker, Versioning, WriteCondition};

/// S3's smallest part, except for the last one.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// Why a store operation failed; the S3 service maps each to its S3 error code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the bucket does not exist")]
    NoSuchBucket,
    #[error("the bucket already exists")]
    BucketExists,
    #[error("the bucket is not empty")]
    BucketNotEmpty,
    #[error("the key does not exist")]
    NoSuchKey,
    #[error("the version does not exist")]
    NoSuchVersion,
    #[error("the version is a delete marker")]
    MethodNotAllowed,
    #[error("a precondition failed")]
    PreconditionFailed,
    #[error("the key was deleted while a conditional write was in progress")]
    ConditionalConflict,
    #[error("the upload does not exist")]
    NoSuchUpload,
    #[error("invalid part: {0}")]
    InvalidPart(String),
    #[error("part {0} is smaller than the 5 MiB minimum")]
    EntityTooSmall(i32),
    #[error("the range is not satisfiable")]
    InvalidRange,
    #[error("{0}")]
    InvalidVersioning(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

type Result<T> = std::result::Result<T, StoreError>;

/// A saved record, or None if there is none; one that cannot be read is an error naming it.
fn load<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match read_json::<T>(path) {
        Ok(record) => Ok(Some(record)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io::Error::new(
            err.kind(),
            format!(
                "the S3 record {} cannot be read ({err}); move it away to start without it",
                path.display()
            ),
        )),
    }
}

/// What an object carries besides its bytes and tags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    /// Milliseconds since the epoch.
    pub expires_ms: Option<i64>,
    pub website_redirect_location: Option<String>,
    pub storage_class: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The KMS key an SSE-KMS object is encrypted with: reading it needs `kms:Decrypt` on
    /// that key as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// Encrypted under an S3 Bucket Key: the key's encryption context is then the bucket's
    /// ARN, not the object's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kms_bucket_key: bool,
}

/// A bucket's default encryption: SSE-S3, or SSE-KMS with a key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DefaultEncryption {
    /// `None` for SSE-S3; the key's ARN for SSE-KMS.
    pub kms_key: Option<String>,
    /// S3 Bucket Keys on.
    #[serde(default)]
    pub bucket_key: bool,
}

/// One object version's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub key: String,
    /// `None` is the `null` version (every version of an unversioned bucket).
    #[serde(default)]
    pub version_id: Option<String>,
    /// Without quotes.
    pub etag: String,
    pub size: u64,
    pub last_modified_ms: i64,
    pub attributes: Attributes,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The file in the bucket's `data/` directory that holds the bytes.
    data: String,
}

impl ObjectMeta {
    /// The version id as S3 reports it: `null` for the null version.
    pub fn version_label(&self) -> &str {
        self.version_id.as_deref().unwrap_or("null")
    }
}

#[cfg(test)]
impl ObjectMeta {
    /// A record for tests of code that reads records.
    pub fn for_test(key: &str, size: u64, attributes: Attributes) -> Self {
        Self {
            key: key.to_owned(),
            version_id: None,
            etag: "0".into(),
            size,
            last_modified_ms: 0,
            attributes,
            tags: Vec::new(),
            data: String::new(),
        }
    }
}

/// A condition on a source object's ETag (reads, copy sources, deletes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Any existing object.
    Any,
    /// An object with this ETag (without quotes).
    ETag(String),
}

impl Match {
    fn holds(&self, meta: &ObjectMeta) -> bool {
        match self {
            Self::Any => true,
            Self::ETag(etag) => etag == &meta.etag,
        }
    }
}

/// A page of a listing.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub objects: Vec<ObjectMeta>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or prefix returned: where the next page starts after.
    pub last: Option<String>,
}

/// A page of a version listing: versions and delete markers, each key's newest first.
#[derive(Debug, Clone, Default)]
pub struct VersionListing {
    /// Each entry with whether it is its key's current version.
    pub entries: Vec<(Entry, bool)>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// Where the next page starts: after this key, or after this version of it.
    pub next_key_marker: Option<String>,
    pub next_version_id_marker: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UploadMeta {
    key: String,
    initiated_ms: i64,
    attributes: Attributes,
    tags: Vec<Tag>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartMeta {
    etag: String,
    size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct BucketRecord {
    created_ms: i64,
    #[serde(default)]
    versioning: Versioning,
    /// None: S3's default for every bucket, SSE-S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encryption: Option<DefaultEncryption>,
    /// The bucket's notification configuration sends its events to EventBridge.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    eventbridge: bool,
}

/// A key's record on disk. Records written before versioning held one object.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum KeyRecord {
    Versions { key: String, versions: Vec<Entry> },
    Single(Box<ObjectMeta>),
}

struct Upload {
    meta: UploadMeta,
    parts: BTreeMap<i32, PartMeta>,
    /// The key's delete count when the upload started: a conditional completion after a
    /// delete of the key is a conflict.
    deletes_at_start: u64,
}

struct BucketState {
    /// The bucket's settings, as `bucket.json` holds them.
    settings: BucketRecord,
    keys: BTreeMap<String, Chain>,
    uploads: HashMap<String, Upload>,
    /// Deletes per key since the store opened, for conditional-write conflicts.
    deletes: HashMap<String, u64>,
}

impl BucketState {
    fn deletes_of(&self, key: &str) -> u64 {
        self.deletes.get(key).copied().unwrap_or(0)
    }

    fn current(&self, key: &str) -> Result<&ObjectMeta> {
        self.keys
            .get(key)
            .and_then(Chain::current_object)
            .ok_or(StoreError::NoSuchKey)
    }

    fn version(&self, key: &str, version: Option<&str>) -> Result<&ObjectMeta> {
        match self.keys.get(key) {
            Some(chain) => chain.find(requested(version)),
            None if version.is_some() => Err(StoreError::NoSuchVersion),
            None => Err(StoreError::NoSuchKey),
        }
    }

    /// A version id for a new version: a fresh one with versioning on, else `null`.
    fn new_version_id(&self) -> Option<String> {
        (self.settings.versioning == Versioning::Enabled).then(version_id)
    }
}

/// A new, unique version id in S3's alphabet (letters, digits, `.`, `_`), 32 characters.
fn version_id() -> String {
    let mut random = [0u8; 24];
    random[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    random[16..].copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..8]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(random)
        .replace('-', ".")
}

/// Buckets and objects under one directory.
pub struct Store {
    root: PathBuf,
    state: Mutex<BTreeMap<String, BucketState>>,
    notifier: std::sync::OnceLock<ObjectCreatedNotifier>,
    /// The last sequencer given out, so that each is greater than the one before.
    sequencer: std::sync::atomic::AtomicU64,
}

/// What S3 tells EventBridge about a new object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCreated {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub version_id: Option<String>,
    /// A hexadecimal string that orders the events of one key.
    pub sequencer: String,
    /// The API that created it: `PutObject`, `CopyObject` or `CompleteMultipartUpload`.
    pub reason: &'static str,
}

/// Receives [`ObjectCreated`]; called outside the store's lock.
pub type ObjectCreatedNotifier = Box<dyn Fn(ObjectCreated) + Send + Sync>;

fn key_file(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.json")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// Opens (or creates) the store under `root`, loading every bucket and object. A record that
    /// is there but cannot be read fails the open, naming the file: dropping it would lose
    /// objects without a word (see [`crate::json_file`]).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(root.join("buckets"))?;
        let mut buckets = BTreeMap::new();
        for entry in fs::read_dir(root.join("buckets"))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let dir = entry.path();
            // A folder without its record is a bucket whose creation never committed.
            let Some(record) = load::<BucketRecord>(&dir.join("bucket.json"))? else {
                continue;
            };
            buckets.insert(name, Self::load_bucket(&dir, record)?);
        }
        Ok(Self {
            root,
            state: Mutex::new(buckets),
            notifier: std::sync::OnceLock::new(),
            sequencer: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn load_bucket(dir: &Path, record: BucketRecord) -> Result<BucketState> {
        let mut keys = BTreeMap::new();
        for entry in fs::read_dir(dir.join("keys"))? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                // A temporary file of a write that never committed.
                let _ = fs::remove_file(path);
                continue;
            }
            let (key, entries) = match load::<KeyRecord>(&path)? {
                Some(KeyRecord::Versions { key, versions }) => (key, versions),
                Some(KeyRecord::Single(meta)) => (meta.key.clone(), vec![Entry::Object(meta)]),
                None => continue,
            };
            let entries: Vec<Entry> = entries
                .into_iter()
                .filter(|entry| match entry {
                    Entry::Object(meta) if !dir.join("data").join(&meta.data).exists() => {
                        warn!(key = meta.key, "object version without data, dropped");
                        false
                    }
                    _ => true,
                })
                .collect();
            if !entries.is_empty() {
                keys.insert(key, Chain { entries });
            }
        }
        // Bytes no record points to belong to writes that never committed, or were replaced.
        let referenced: std::collections::HashSet<&str> = keys
            .values()
            .flat_map(|chain| &chain.entries)
            .filter_map(|entry| match entry {
                Entry::Object(meta) => Some(meta.data.as_str()),
                Entry::DeleteMarker(_) => None,
            })
            .collect();
        for entry in fs::read_dir(dir.join("data"))? {
            let entry = entry?;
            if !referenced.contains(entry.file_name().to_string_lossy().as_ref()) {
                let _ = fs::remove_file(entry.path());
            }
        }
        let mut uploads = HashMap::new();
        for entry in fs::read_dir(dir.join("uploads"))? {
            let entry = entry?;
            let upload_dir = entry.path();
            let Some(meta) = load::<UploadMeta>(&upload_dir.join("upload.json"))? else {
                continue;
            };
            let mut parts = BTreeMap::new();
            for part in fs::read_dir(&upload_dir)? {
                let path = part?.path();
                let name = path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                if let Some(number) = name
                    .strip_prefix("part-")
                    .and_then(|n| n.strip_suffix(".json"))
                    .and_then(|n| n.parse::<i32>().ok())
                    && let Some(part) = load::<PartMeta>(&path)?
                {
                    parts.insert(number, part);
                }
            }
            uploads.insert(
                entry.file_name().to_string_lossy().into_owned(),
                Upload {
                    meta,
                    parts,
                    deletes_at_start: 0,
                },
            );
        }
        Ok(BucketState {
            settings: record,
            keys,
            uploads,
            deletes: HashMap::new(),
        })
    }

    fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.join("buckets").join(bucket)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BucketState>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes a key's record, or removes it once the key has no versions left.
    fn persist(&self, bucket: &str, key: &str, chain: Option<&Chain>) -> io::Result<()> {
        let path = self.bucket_dir(bucket).join("keys").join(key_file(key));
        match chain {
            Some(chain) if !chain.is_empty() => write_json(
                &path,
                &KeyRecord::Versions {
                    key: key.to_owned(),
                    versions: chain.entries.clone(),
                },
            ),
            _ => match fs::remove_file(&path) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
                _ => Ok(()),
            },
        }
    }

    /// Removes the bytes of versions that are gone.
    fn remove_data(&self, bucket: &str, removed: &[ObjectMeta]) {
        for meta in removed {
            let _ = fs::remove_file(self.bucket_dir(bucket).join("data").join(&meta.data));
        }
    }

    pub fn create_bucket(&self, name: &str) -> Result<()> {
        let mut state = self.lock();
        if state.contains_key(name) {
            return Err(StoreError::BucketExists);
        }
        let dir = self.bucket_dir(name);
        for sub in ["keys", "data", "uploads"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let record = BucketRecord {
            created_ms: now_ms(),
            versioning: Versioning::Unversioned,
            encryption: None,
            eventbridge: false,
        };
        write_json(&dir.join("bucket.json"), &record)?;
        state.insert(
            name.to_owned(),
            BucketState {
                settings: record,
                keys: BTreeMap::new(),
                uploads: HashMap::new(),
                deletes: HashMap::new(),
            },
        );
        Ok(())
    }

    pub fn delete_bucket(&self, name: &str) -> Result<()> {
        let mut state = self.lock();
        let bucket = state.get(name).ok_or(StoreError::NoSuchBucket)?;
        if !bucket.keys.is_empty() {
            return Err(StoreError::BucketNotEmpty);
        }
        state.remove(name);
        fs::remove_dir_all(self.bucket_dir(name))?;
        Ok(())
    }

    /// Every bucket with its creation time.
    pub fn buckets(&self) -> Vec<(String, i64)> {
        self.lock()
            .iter()
            .map(|(name, b)| (name.clone(), b.settings.created_ms))
            .collect()
    }

    pub fn bucket_exists(&self, name: &str) -> bool {
        self.lock().contains_key(name)
    }

    /// A bucket's settings, read under the lock.
    fn setting<T>(&self, bucket: &str, read: impl FnOnce(&BucketRecord) -> T) -> Result<T> {
        Ok(read(
            &self
                .lock()
                .get(bucket)
                .ok_or(StoreError::NoSuchBucket)?
                .settings,
        ))
    }

    pub fn versioning(&self, bucket: &str) -> Result<Versioning> {
        self.setting(bucket, |settings| settings.versioning)
    }

    /// Turns versioning on or suspends it. A bucket cannot go back to unversioned.
    pub fn set_versioning(&self, bucket: &str, versioning: Versioning) -> Result<()> {
        if versioning == Versioning::Unversioned {
            return Err(StoreError::InvalidVersioning(
                "versioning can be Enabled or Suspended".into(),
            ));
        }
        self.update_bucket(bucket, |record| record.versioning = versioning)
    }

    /// Whether the bucket sends its events to EventBridge.
    pub fn eventbridge(&self, bucket: &str) -> Result<bool> {
        self.setting(bucket, |settings| settings.eventbridge)
    }

    /// Turns the bucket's EventBridge notifications on or off (its notification
    /// configuration's `EventBridgeConfiguration`).
    pub fn set_eventbridge(&self, bucket: &str, on: bool) -> Result<()> {
        self.update_bucket(bucket, |record| record.eventbridge = on)
    }

    /// Calls `notify` with every object created in a bucket that sends its events to
    /// EventBridge, once it is committed.
    pub fn notify_created(&self, notify: ObjectCreatedNotifier) {
        let _ = self.notifier.set(notify);
    }

    /// Changes a bucket's settings, saving them first: a failed save changes nothing.
    fn update_bucket(&self, bucket: &str, change: impl FnOnce(&mut BucketRecord)) -> Result<()> {
        let mut state = self.lock();
        let state = state.get_mut(bucket).ok_or(StoreError::NoSuchBucket)?;
        let mut record = state.settings.clone();
        change(&mut record);
        write_json(&self.bucket_dir(bucket).join("bucket.json"), &record)?;
        state.settings = record;
        Ok(())
    }

    /// The bucket's default encryption; None is SSE-S3, every bucket's default.
    pub fn encryption(&self, bucket: &str) -> Result<Option<DefaultEncryption>> {
        self.setting(bucket, |settings| settings.encryption.clone())
    }

    /// Sets (PutBucketEncryption) or removes (DeleteBucketEncryption) the default encryption.
    pub fn set_encryption(
        &self,
        bucket: &str,
        encryption: Option<DefaultEncryption>,
    ) -> Result<()> {
        self.update_bucket(bucket, |record| record.encryption = encryption)
    }

    /// The current object's record.
    pub fn head(&self, bucket: &str, key: &str) -> Result<ObjectMeta> {
        self.head_version(bucket, key, None)
    }

    /// The record of one version (`None`: the current one; `null`: the null version).
    pub fn head_version(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<ObjectMeta> {
        let state = self.lock();
        let bucket = state.get(bucket).ok_or(StoreError::NoSuchBucket)?;
        bucket.version(key, version).cloned()
    }

    /// The current object's record and an open handle on its bytes.
    pub fn open_object(&self, bucket: &str, key: &str) -> Result<(ObjectMeta, fs::File)> {
        self.open_version(bucket, key, None)
    }

    /// One version's record and an open handle on its bytes.
    pub fn open_version(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<(ObjectMeta, fs::File)> {
        let state = self.lock();
        let meta = state
            .get(bucket)
            .ok_or(StoreError::NoSuchBucket)?
            .version(key, version)?
            .clone();
        let file = fs::File::open(self.bucket_dir(bucket).join("data").join(&meta.data))?;
        Ok((meta, file))
    }

    /// The key's delete count now, for a conditional write about to start.
    fn deletes_now(&self, bucket: &str, key: &str) -> Result<u64> {
        Ok(self
            .lock()
            .get(bucket)
            .ok_or(StoreError::NoSuchBucket)?
            .deletes_of(key))
    }

    /// Writes `body` to a new data file of `bucket`, returning its name, MD5 and size.
    async fn write_data<S, E>(&self, dir: &Path, mut body: S) -> Result<(String, [u8; 16], u64)>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let name = uuid::Uuid::new_v4().simple().to_string();
        let path = dir.join(&name);
        let mut file = tokio::fs::File::create(&path).await?;
        let mut md5 = Md5::new();
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|err| io::Error::other(err.to_string()))?;
            md5.update(&chunk);
            size += chunk.len() as u64;
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk).await?;
        }
        tokio::io::AsyncWriteExt::flush(&mut file).await?;
        Ok((name, md5.finalize().into(), size))
    }

    /// Stores an object from `body` as the key's new current version, if `condition` holds when
    /// it commits.
    pub async fn put<S, E>(
        &self,
        bucket: &str,
        key: &str,
        body: S,
        attributes: Attributes,
        tags: Vec<Tag>,
        condition: Option<WriteCondition>,
    ) -> Result<ObjectMeta>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let deletes_at_start = self.deletes_now(bucket, key)?;
        let dir = self.bucket_dir(bucket).join("data");
        let (data, md5, size) = self.write_data(&dir, body).await?;
        let meta = ObjectMeta {
            key: key.to_owned(),
            version_id: None,
            etag: hex(&md5),
            size,
            last_modified_ms: now_ms(),
            attributes,
            tags,
            data,
        };
        self.commit(
            bucket,
            meta,
            condition.as_ref(),
            deletes_at_start,
            "PutObject",
        )
    }

    /// Makes `meta` the key's current version (with a new version id when versioning is on),
    /// if `condition` holds and the key was not deleted since `deletes_at_start`. The bytes of a
    /// version it replaces are removed; so are its own if it does not commit.
    fn commit(
        &self,
        bucket: &str,
        mut meta: ObjectMeta,
        condition: Option<&WriteCondition>,
        deletes_at_start: u64,
        reason: &'static str,
    ) -> Result<ObjectMeta> {
        let committed = (|| {
            let mut state = self.lock();
            let state = state.get_mut(bucket).ok_or(StoreError::NoSuchBucket)?;
            if let Some(condition) = condition {
                if state.deletes_of(&meta.key) != deletes_at_start {
                    return Err(StoreError::ConditionalConflict);
                }
                if let Some(chain) = state.keys.get(&meta.key) {
                    chain.check(condition)?;
                } else {
                    Chain::default().check(condition)?;
                }
            }
            meta.version_id = state.new_version_id();
            let versioning = state.settings.versioning;
            let chain = state.keys.entry(meta.key.clone()).or_default();
            let replaced = chain.push(Entry::Object(Box::new(meta.clone())), versioning);
            self.persist(bucket, &meta.key, Some(chain))?;
            Ok((replaced, state.settings.eventbridge))
        })();
        match committed {
            Ok((replaced, eventbridge)) => {
                self.remove_data(bucket, &replaced);
                if eventbridge && let Some(notify) = self.notifier.get() {
                    notify(ObjectCreated {
                        bucket: bucket.to_owned(),
                        key: meta.key.clone(),
                        size: meta.size,
                        etag: meta.etag.clone(),
                        version_id: meta.version_id.clone(),
                        sequencer: self.next_sequencer(),
                        reason,
                    });
                }
                Ok(meta)
            }
            Err(err) => {
                self.remove_data(bucket, std::slice::from_ref(&meta));
                Err(err)
            }
        }
    }

    /// A sequencer greater than every one before: the time in microseconds, or one more than
    /// the last, in hexadecimal as S3 writes it.
    fn next_sequencer(&self) -> String {
        use std::sync::atomic::Ordering;
        let now = u64::try_from(now_ms()).unwrap_or(0) * 1000;
        let mut last = self.sequencer.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self
                .sequencer
                .compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return format!("{next:016X}"),
                Err(current) => last = current,
            }
        }
    }

    /// Copies an object version (`source.2`, or the current one), with `make` deciding the copy's
    /// attributes and tags from the source's. `source_condition` is checked against the source
    /// at the moment of the copy, `condition` against the target when the copy commits. Returns
    /// the source version copied and the new version.
    pub fn copy(
        &self,
        source: (&str, &str, Option<&str>),
        source_condition: Option<&Match>,
        target: (&str, &str),
        condition: Option<&WriteCondition>,
        make: impl FnOnce(&ObjectMeta) -> (Attributes, Vec<Tag>),
    ) -> Result<(ObjectMeta, ObjectMeta)> {
        let (source_bucket, source_key, source_version) = source;
        let (target_bucket, target_key) = target;
        let data = uuid::Uuid::new_v4().simple().to_string();
        let (copied, meta, deletes_at_start) = {
            let state = self.lock();
            let deletes_at_start = state
                .get(target_bucket)
                .ok_or(StoreError::NoSuchBucket)?
                .deletes_of(target_key);
            let source = state
                .get(source_bucket)
                .ok_or(StoreError::NoSuchBucket)?
                .version(source_key, source_version)?;
            if source_condition.is_some_and(|c| !c.holds(source)) {
                return Err(StoreError::PreconditionFailed);
            }
            // Linked while the source cannot change: its bytes are exactly the ones checked.
            let from = self
                .bucket_dir(source_bucket)
                .join("data")
                .join(&source.data);
            let to = self.bucket_dir(target_bucket).join("data").join(&data);
            if fs::hard_link(&from, &to).is_err() {
                fs::copy(&from, &to)?;
            }
            let (attributes, tags) = make(source);
            let meta = ObjectMeta {
                key: target_key.to_owned(),
                version_id: None,
                etag: source.etag.clone(),
                size: source.size,
                last_modified_ms: now_ms(),
                attributes,
                tags,
                data,
            };
            (source.clone(), meta, deletes_at_start)
        };
        let meta = self.commit(
            target_bucket,
            meta,
            condition,
            deletes_at_start,
            "CopyObject",
        )?;
        Ok((copied, meta))
    }

    /// Deletes as S3 does: with a version id, that version for good; without one, the current
    /// object (unversioned), or by adding a delete marker (versioned). With a condition, a key
    /// without a current object is `NoSuchKey` and a different one `PreconditionFailed`; without
    /// one, deleting a missing object succeeds (as in S3).
    pub fn delete(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        condition: Option<&Match>,
    ) -> Result<Deletion> {
        let deletion = {
            let mut state = self.lock();
            let state = state.get_mut(bucket).ok_or(StoreError::NoSuchBucket)?;
            if let Some(condition) = condition {
                let target = match version {
                    None => state.current(key)?,
                    Some(_) => state.version(key, version)?,
                };
                if !condition.holds(target) {
                    return Err(StoreError::PreconditionFailed);
                }
            }
            let marker = Marker {
                key: key.to_owned(),
                version_id: state.new_version_id(),
                last_modified_ms: now_ms(),
            };
            let versioning = state.settings.versioning;
            let chain = state.keys.entry(key.to_owned()).or_default();
            let deletion = match requested(version) {
                Some(id) => chain.delete_version(id),
                None => chain.delete_current(versioning, marker),
            };
            let chain = (!chain.is_empty()).then_some(&*chain);
            self.persist(bucket, key, chain)?;
            if chain.is_none() {
                state.keys.remove(key);
            }
            *state.deletes.entry(key.to_owned()).or_default() += 1;
            deletion
        };
        self.remove_data(bucket, &deletion.removed);
        Ok(deletion)
    }

    /// Replaces the tags of a version (`None`: the current one). No new version is made.
    pub fn set_tags(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
        tags: Vec<Tag>,
    ) -> Result<ObjectMeta> {
        let mut state = self.lock();
        let state = state.get_mut(bucket).ok_or(StoreError::NoSuchBucket)?;
        let chain = match state.keys.get_mut(key) {
            Some(chain) => chain,
            None if version.is_some() => return Err(StoreError::NoSuchVersion),
            None => return Err(StoreError::NoSuchKey),
        };
        let meta = chain.find_mut(requested(version))?;
        meta.tags = tags;
        let updated = meta.clone();
        self.persist(bucket, key, Some(chain))?;
        Ok(updated)
    }

    /// Lists keys with a current object after `after` that start with `prefix`. With a
    /// delimiter, keys sharing the part up to the next delimiter are rolled into one common
    /// prefix. At most `max` entries.
    pub fn list(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        delimiter: Option<&str>,
        max: usize,
    ) -> Result<Listing> {
        let state = self.lock();
        let keys = &state.get(bucket).ok_or(StoreError::NoSuchBucket)?.keys;
        let mut listing = Listing::default();
        let mut count = 0;
        for (key, chain) in keys_from(keys, prefix, after, true) {
            let Some(meta) = chain.current_object() else {
                continue;
            };
            let rolled = rolled_up(key, prefix, delimiter);
            if let Some(common) = &rolled
                && (listing.common_prefixes.last() == Some(common)
                    || after.is_some_and(|a| a.starts_with(common.as_str())))
            {
                continue;
            }
            if count == max {
                listing.truncated = true;
                break;
            }
            count += 1;
            match rolled {
                Some(common) => {
                    listing.last = Some(common.clone());
                    listing.common_prefixes.push(common);
                }
                None => {
                    listing.last = Some(key.clone());
                    listing.objects.push(meta.clone());
                }
            }
        }
        Ok(listing)
    }

    /// Lists every version and delete marker of the keys that start with `prefix`, after
    /// `key_marker` (or, with `version_marker`, after that version of it), each key's newest
    /// first. Common prefixes and `max` work as for [`list`](Self::list); a version counts as one
    /// entry.
    pub fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: Option<&str>,
        version_marker: Option<&str>,
        delimiter: Option<&str>,
        max: usize,
    ) -> Result<VersionListing> {
        let state = self.lock();
        let keys = &state.get(bucket).ok_or(StoreError::NoSuchBucket)?.keys;
        let mut listing = VersionListing::default();
        let resume_in_key = key_marker.is_some() && version_marker.is_some();
        let mut count = 0;
        'keys: for (key, chain) in keys_from(keys, prefix, key_marker, !resume_in_key) {
            let rolled = rolled_up(key, prefix, delimiter);
            if let Some(common) = rolled {
                if listing.common_prefixes.last() == Some(&common)
                    || key_marker.is_some_and(|m| m.starts_with(common.as_str()))
                {
                    continue;
                }
                if count == max {
                    listing.truncated = true;
                    break;
                }
                count += 1;
                listing.next_key_marker = Some(common.clone());
                listing.next_version_id_marker = None;
                listing.common_prefixes.push(common);
                continue;
            }
            let mut entries = chain.entries.iter().enumerate().peekable();
            if resume_in_key && Some(key.as_str()) == key_marker {
                let marker = requested(version_marker).flatten();
                // Skip up to and including the version the previous page ended with.
                for (_, entry) in entries.by_ref() {
                    if entry.version_id() == marker {
                        break;
                    }
                }
            }
            for (index, entry) in entries {
                if count == max {
                    listing.truncated = true;
                    break 'keys;
                }
                count += 1;
                listing.next_key_marker = Some(key.clone());
                listing.next_version_id_marker =
                    Some(entry.version_id().unwrap_or("null").to_owned());
                listing.entries.push((entry.clone(), index == 0));
            }
        }
        if !listing.truncated {
            listing.next_key_marker = None;
            listing.next_version_id_marker = None;
        }
        Ok(listing)
    }

    /// Starts a multipart upload and returns its id.
    pub fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        attributes: Attributes,
        tags: Vec<Tag>,
    ) -> Result<String> {
        let mut state = self.lock();
        let state = state.get_mut(bucket).ok_or(StoreError::NoSuchBucket)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.bucket_dir(bucket).join("uploads").join(&id);
        fs::create_dir_all(&dir)?;
        let meta = UploadMeta {
            key: key.to_owned(),
            initiated_ms: now_ms(),
            attributes,
            tags,
        };
        write_json(&dir.join("upload.json"), &meta)?;
        let deletes_at_start = state.deletes_of(key);
        state.uploads.insert(
            id.clone(),
            Upload {
                meta,
                parts: BTreeMap::new(),
                deletes_at_start,
            },
        );
        Ok(id)
    }

    fn upload_dir(&self, bucket: &str, key: &str, id: &str) -> Result<PathBuf> {
        let state = self.lock();
        let bucket_state = state.get(bucket).ok_or(StoreError::NoSuchBucket)?;
        match bucket_state.uploads.get(id) {
            Some(upload) if upload.meta.key == key => {
                Ok(self.bucket_dir(bucket).join("uploads").join(id))
            }
            _ => Err(StoreError::NoSuchUpload),
        }
    }

    fn record_part(
        &self,
        bucket: &str,
        id: &str,
        number: i32,
        part: PartMeta,
        dir: &Path,
    ) -> Result<()> {
        write_json(&dir.join(format!("part-{number}.json")), &part)?;
        let mut state = self.lock();
        let upload = state
            .get_mut(bucket)
            .and_then(|b| b.uploads.get_mut(id))
            .ok_or(StoreError::NoSuchUpload)?;
        upload.parts.insert(number, part);
        Ok(())
    }

    /// Stores one part from `body`; returns its ETag.
    pub async fn put_part<S, E>(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
        number: i32,
        body: S,
    ) -> Result<String>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let dir = self.upload_dir(bucket, key, id)?;
        let (name, md5, size) = self.write_data(&dir, body).await?;
        fs::rename(dir.join(&name), dir.join(format!("part-{number}")))?;
        let etag = hex(&md5);
        self.record_part(
            bucket,
            id,
            number,
            PartMeta {
                etag: etag.clone(),
                size,
            },
            &dir,
        )?;
        Ok(etag)
    }

    /// Copies bytes `range` (inclusive, or the whole object) of a source version into a part.
    /// Returns the part's ETag and the source version copied.
    pub fn copy_part(
        &self,
        source: (&str, &str, Option<&str>),
        condition: Option<&Match>,
        range: Option<(u64, u64)>,
        target: (&str, &str, &str, i32),
    ) -> Result<(String, ObjectMeta)> {
        let (bucket, key, id, number) = target;
        let dir = self.upload_dir(bucket, key, id)?;
        let (meta, mut file) = self.open_version(source.0, source.1, source.2)?;
        if condition.is_some_and(|c| !c.holds(&meta)) {
            return Err(StoreError::PreconditionFailed);
        }
        let (start, end) = range.unwrap_or((0, meta.size.saturating_sub(1)));
        if meta.size == 0 && range.is_none() {
            fs::write(dir.join(format!("part-{number}")), b"")?;
        } else {
            if start > end || end >= meta.size {
                return Err(StoreError::InvalidRange);
            }
            file.seek(SeekFrom::Start(start))?;
            let mut reader = file.take(end - start + 1);
            let mut out = fs::File::create(dir.join(format!("part-{number}")))?;
            io::copy(&mut reader, &mut out)?;
            out.flush()?;
        }
        let bytes_path = dir.join(format!("part-{number}"));
        let mut md5 = Md5::new();
        let mut reader = fs::File::open(&bytes_path)?;
        let mut buffer = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = reader.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            md5.update(&buffer[..n]);
            size += n as u64;
        }
        let etag = hex(&md5.finalize());
        self.record_part(
            bucket,
            id,
            number,
            PartMeta {
                etag: etag.clone(),
                size,
            },
            &dir,
        )?;
        Ok((etag, meta))
    }

    /// Assembles the listed parts (number, ETag) into the object and ends the upload, if
    /// `condition` holds. A precondition that fails leaves the upload to complete or abort; a
    /// conflict (the key was deleted since the upload started) ends it, as S3 does: start again.
    pub fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
        parts: &[(i32, String)],
        condition: Option<&WriteCondition>,
    ) -> Result<ObjectMeta> {
        let dir = self.upload_dir(bucket, key, id)?;
        let (meta, stored, deletes_at_start) = {
            let state = self.lock();
            let upload = state
                .get(bucket)
                .and_then(|b| b.uploads.get(id))
                .ok_or(StoreError::NoSuchUpload)?;
            (
                upload.meta.clone(),
                upload.parts.clone(),
                upload.deletes_at_start,
            )
        };
        if parts.is_empty() {
            return Err(StoreError::InvalidPart("no parts were listed".into()));
        }
        let mut previous = 0;
        let mut md5s = Vec::new();
        for (index, (number, etag)) in parts.iter().enumerate() {
            if *number <= previous {
                return Err(StoreError::InvalidPart(
                    "parts must be in ascending order".into(),
                ));
            }
            previous = *number;
            let part = stored
                .get(number)
                .filter(|p| p.etag == etag.trim_matches('"'))
                .ok_or_else(|| {
                    StoreError::InvalidPart(format!(
                        "part {number} was not uploaded with that ETag"
                    ))
                })?;
            if index + 1 < parts.len() && part.size < MIN_PART_SIZE {
                return Err(StoreError::EntityTooSmall(*number));
            }
            md5s.extend(
                (0..part.etag.len())
                    .step_by(2)
                    .filter_map(|i| u8::from_str_radix(&part.etag[i..i + 2], 16).ok()),
            );
        }
        let data = uuid::Uuid::new_v4().simple().to_string();
        let target = self.bucket_dir(bucket).join("data").join(&data);
        let mut out = fs::File::create(&target)?;
        let mut size = 0;
        for (number, _) in parts {
            let mut part = fs::File::open(dir.join(format!("part-{number}")))?;
            size += io::copy(&mut part, &mut out)?;
        }
        out.flush()?;
        let object = ObjectMeta {
            key: key.to_owned(),
            version_id: None,
            etag: format!("{}-{}", hex(&Md5::digest(&md5s)), parts.len()),
            size,
            last_modified_ms: now_ms(),
            attributes: meta.attributes,
            tags: meta.tags,
            data,
        };
        match self.commit(
            bucket,
            object,
            condition,
            deletes_at_start,
            "CompleteMultipartUpload",
        ) {
            Ok(committed) => {
                self.abort_upload(bucket, key, id)?;
                Ok(committed)
            }
            Err(StoreError::ConditionalConflict) => {
                self.abort_upload(bucket, key, id)?;
                Err(StoreError::ConditionalConflict)
            }
            Err(err) => Err(err),
        }
    }

    /// Ends an upload and removes its parts.
    pub fn abort_upload(&self, bucket: &str, key: &str, id: &str) -> Result<()> {
        let dir = self.upload_dir(bucket, key, id)?;
        self.lock().get_mut(bucket).map(|b| b.uploads.remove(id));
        fs::remove_dir_all(dir)?;
        Ok(())
    }
}

/// The keys of `keys` from `prefix` on, after `after` (or from it, unless `exclusive`), while
/// they start with `prefix`.
fn keys_from<'a>(
    keys: &'a BTreeMap<String, Chain>,
    prefix: &'a str,
    after: Option<&str>,
    exclusive: bool,
) -> impl Iterator<Item = (&'a String, &'a Chain)> + 'a {
    let start = match after {
        Some(after) if after.as_bytes() >= prefix.as_bytes() => {
            if exclusive {
                std::ops::Bound::Excluded(after.to_owned())
            } else {
                std::ops::Bound::Included(after.to_owned())
            }
        }
        _ => std::ops::Bound::Included(prefix.to_owned()),
    };
    keys.range((start, std::ops::Bound::Unbounded))
        .take_while(move |(key, _)| key.starts_with(prefix))
}

/// The common prefix `key` rolls up into under `delimiter`, if any.
fn rolled_up(key: &str, prefix: &str, delimiter: Option<&str>) -> Option<String> {
    delimiter.filter(|d| !d.is_empty()).and_then(|d| {
        key[prefix.len()..]
            .find(d)
            .map(|at| key[..prefix.len() + at + d.len()].to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(
        text: &'static str,
    ) -> impl Stream<Item = std::result::Result<Bytes, io::Error>> + Unpin {
        futures::stream::iter([Ok(Bytes::from_static(text.as_bytes()))])
    }

    async fn store_with(keys: &[&'static str]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_bucket("b").unwrap();
        for key in keys {
            store
                .put("b", key, body(key), Attributes::default(), vec![], None)
                .await
                .unwrap();
        }
        (dir, store)
    }

    #[tokio::test]
    async fn objects_survive_a_reopen() {
        let (dir, store) = store_with(&["a", "b/c"]).await;
        store
            .set_tags("b", "a", None, vec![Tag::new("k", "v")])
            .unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let meta = store.head("b", "a").unwrap();
        assert_eq!(meta.etag, hex(&Md5::digest(b"a")));
        assert_eq!(meta.tags, vec![Tag::new("k", "v")]);
        assert_eq!(store.head("b", "b/c").unwrap().size, 3);
    }

    #[tokio::test]
    async fn a_damaged_object_record_stops_the_open_and_names_the_file() {
        let (dir, store) = store_with(&["a"]).await;
        drop(store);
        let keys = dir.path().join("buckets").join("b").join("keys");
        let record = fs::read_dir(&keys)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.extension().is_some_and(|e| e == "json"))
            .expect("the object's record");
        fs::write(&record, b"{\"key\": ").unwrap();
        let err = Store::open(dir.path())
            .err()
            .expect("a damaged record does not drop the object silently");
        assert!(
            err.to_string().contains(&record.display().to_string()),
            "{err}"
        );
    }

    #[tokio::test]
    async fn conditional_delete_checks_the_etag() {
        let (_dir, store) = store_with(&["k"]).await;
        let wrong = Match::ETag("0000".into());
        assert!(matches!(
            store.delete("b", "k", None, Some(&wrong)),
            Err(StoreError::PreconditionFailed)
        ));
        let right = Match::ETag(store.head("b", "k").unwrap().etag);
        assert_eq!(
            store
                .delete("b", "k", None, Some(&right))
                .unwrap()
                .removed
                .len(),
            1
        );
        assert!(matches!(
            store.delete("b", "k", None, Some(&right)),
            Err(StoreError::NoSuchKey)
        ));
        assert!(
            store
                .delete("b", "k", None, None)
                .unwrap()
                .removed
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_copy_keeps_its_bytes_when_the_source_is_replaced() {
        let (_dir, store) = store_with(&["src"]).await;
        store.create_bucket("c").unwrap();
        store
            .copy(("b", "src", None), None, ("c", "dst"), None, |m| {
                (m.attributes.clone(), vec![])
            })
            .unwrap();
        store
            .put("b", "src", body("new"), Attributes::default(), vec![], None)
            .await
            .unwrap();
        let (_, mut file) = store.open_object("c", "dst").unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "src");
    }

    #[tokio::test]
    async fn listing_pages_and_rolls_up_prefixes() {
        let (_dir, store) = store_with(&["a/1", "a/2", "b", "c/x/1", "c/y"]).await;
        let page = store.list("b", "", None, Some("/"), 1000).unwrap();
        assert_eq!(page.common_prefixes, vec!["a/", "c/"]);
        assert_eq!(
            page.objects
                .iter()
                .map(|o| o.key.as_str())
                .collect::<Vec<_>>(),
            vec!["b"]
        );
        let first = store.list("b", "", None, None, 2).unwrap();
        assert!(first.truncated);
        let second = store
            .list("b", "", first.last.as_deref(), None, 10)
            .unwrap();
        assert_eq!(
            second
                .objects
                .iter()
                .map(|o| o.key.as_str())
                .collect::<Vec<_>>(),
            vec!["b", "c/x/1", "c/y"]
        );
        let after_prefix = store.list("b", "", Some("a/"), Some("/"), 10).unwrap();
        assert_eq!(after_prefix.common_prefixes, vec!["c/"]);
        let c = store.list("b", "c/", None, Some("/"), 10).unwrap();
        assert_eq!(c.common_prefixes, vec!["c/x/"]);
    }

    #[tokio::test]
    async fn multipart_uploads_assemble_in_order() {
        let (_dir, store) = store_with(&[]).await;
        let id = store
            .create_upload("b", "big", Attributes::default(), vec![])
            .unwrap();
        let big = vec![b'x'; MIN_PART_SIZE as usize];
        let one = store
            .put_part(
                "b",
                "big",
                &id,
                1,
                futures::stream::iter([Ok::<_, io::Error>(Bytes::from(big))]),
            )
            .await
            .unwrap();
        let two = store
            .put_part("b", "big", &id, 2, body("tail"))
            .await
            .unwrap();
        let meta = store
            .complete_upload("b", "big", &id, &[(1, one), (2, two)], None)
            .unwrap();
        assert_eq!(meta.size, MIN_PART_SIZE + 4);
        assert!(meta.etag.ends_with("-2"));
        assert!(matches!(
            store.abort_upload("b", "big", &id),
            Err(StoreError::NoSuchUpload)
        ));
    }

    #[tokio::test]
    async fn small_parts_other_than_the_last_are_refused() {
        let (_dir, store) = store_with(&[]).await;
        let id = store
            .create_upload("b", "k", Attributes::default(), vec![])
            .unwrap();
        let one = store.put_part("b", "k", &id, 1, body("a")).await.unwrap();
        let two = store.put_part("b", "k", &id, 2, body("b")).await.unwrap();
        assert!(matches!(
            store.complete_upload("b", "k", &id, &[(1, one), (2, two)], None),
            Err(StoreError::EntityTooSmall(1))
        ));
    }

    async fn put(store: &Store, bucket: &str, key: &str, text: &'static str) -> ObjectMeta {
        store
            .put(bucket, key, body(text), Attributes::default(), vec![], None)
            .await
            .unwrap()
    }

    fn text_of(store: &Store, bucket: &str, key: &str, version: Option<&str>) -> String {
        let (_, mut file) = store.open_version(bucket, key, version).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        text
    }

    #[tokio::test]
    async fn conditional_puts_check_the_current_version_when_they_commit() {
        let (_dir, store) = store_with(&[]).await;
        let absent = Some(WriteCondition::IfAbsent);
        let first = store
            .put(
                "b",
                "k",
                body("one"),
                Attributes::default(),
                vec![],
                absent.clone(),
            )
            .await
            .unwrap();
        assert!(matches!(
            store
                .put("b", "k", body("two"), Attributes::default(), vec![], absent)
                .await,
            Err(StoreError::PreconditionFailed)
        ));
        let stale = Some(WriteCondition::IfMatch("0000".into()));
        assert!(matches!(
            store
                .put("b", "k", body("two"), Attributes::default(), vec![], stale)
                .await,
            Err(StoreError::PreconditionFailed)
        ));
        let current = Some(WriteCondition::IfMatch(first.etag.clone()));
        store
            .put(
                "b",
                "k",
                body("two"),
                Attributes::default(),
                vec![],
                current,
            )
            .await
            .unwrap();
        assert_eq!(text_of(&store, "b", "k", None), "two");
        let missing = Some(WriteCondition::IfMatch(first.etag));
        assert!(matches!(
            store
                .put(
                    "b",
                    "none",
                    body("x"),
                    Attributes::default(),
                    vec![],
                    missing
                )
                .await,
            Err(StoreError::NoSuchKey)
        ));
        // A refused write leaves no bytes behind.
        let files = fs::read_dir(store.bucket_dir("b").join("data"))
            .unwrap()
            .count();
        assert_eq!(files, 1);
    }

    #[tokio::test]
    async fn a_delete_during_a_conditional_write_is_a_conflict() {
        let (_dir, store) = store_with(&["k"]).await;
        let (sender, receiver) =
            futures::channel::mpsc::unbounded::<std::result::Result<Bytes, io::Error>>();
        let write = store.put(
            "b",
            "k2",
            receiver,
            Attributes::default(),
            vec![],
            Some(WriteCondition::IfAbsent),
        );
        let interfere = async {
            sender
                .unbounded_send(Ok(Bytes::from_static(b"part")))
                .unwrap();
            tokio::task::yield_now().await;
            store.delete("b", "k2", None, None).unwrap();
            drop(sender);
        };
        let (written, ()) = tokio::join!(write, interfere);
        assert!(matches!(written, Err(StoreError::ConditionalConflict)));
        // Unconditional writes do not conflict.
        store.delete("b", "k", None, None).unwrap();
        put(&store, "b", "k", "again").await;
    }

    #[tokio::test]
    async fn a_conditional_copy_checks_the_target_and_an_unconditional_one_replaces() {
        let (_dir, store) = store_with(&["src", "other"]).await;
        let (copied, meta) = store
            .copy(
                ("b", "src", None),
                None,
                ("b", "dst"),
                Some(&WriteCondition::IfAbsent),
                |m| (m.attributes.clone(), m.tags.clone()),
            )
            .unwrap();
        assert_eq!(
            (copied.key.as_str(), meta.etag.as_str()),
            ("src", copied.etag.as_str())
        );
        let again = store.copy(
            ("b", "other", None),
            None,
            ("b", "dst"),
            Some(&WriteCondition::IfAbsent),
            |m| (m.attributes.clone(), vec![]),
        );
        assert!(matches!(again, Err(StoreError::PreconditionFailed)));
        assert_eq!(text_of(&store, "b", "dst", None), "src");
        store
            .copy(
                ("b", "other", None),
                None,
                ("b", "dst"),
                Some(&WriteCondition::IfMatch(meta.etag)),
                |m| (m.attributes.clone(), vec![]),
            )
            .unwrap();
        assert_eq!(text_of(&store, "b", "dst", None), "other");
    }

    #[tokio::test]
    async fn a_versioned_bucket_keeps_every_version_until_one_is_deleted_by_id() {
        let (dir, store) = store_with(&[]).await;
        store.set_versioning("b", Versioning::Enabled).unwrap();
        let one = put(&store, "b", "k", "one").await;
        let two = put(&store, "b", "k", "two").await;
        let (v1, v2) = (
            one.version_id.clone().unwrap(),
            two.version_id.clone().unwrap(),
        );
        assert_ne!(v1, v2);
        assert_eq!(v1.len(), 32);
        assert_eq!(text_of(&store, "b", "k", None), "two");
        assert_eq!(text_of(&store, "b", "k", Some(&v1)), "one");
        // A plain delete hides the key behind a marker and removes nothing.
        let hidden = store.delete("b", "k", None, None).unwrap();
        assert!(hidden.delete_marker && hidden.removed.is_empty());
        assert!(matches!(store.head("b", "k"), Err(StoreError::NoSuchKey)));
        assert!(
            store
                .list("b", "", None, None, 10)
                .unwrap()
                .objects
                .is_empty()
        );
        assert_eq!(text_of(&store, "b", "k", Some(&v2)), "two");
        // Versions survive a reopen.
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.versioning("b").unwrap(), Versioning::Enabled);
        let listed = store.list_versions("b", "", None, None, None, 10).unwrap();
        let kinds: Vec<(bool, bool)> = listed
            .entries
            .iter()
            .map(|(entry, latest)| (matches!(entry, Entry::DeleteMarker(_)), *latest))
            .collect();
        assert_eq!(kinds, vec![(true, true), (false, false), (false, false)]);
        // Deleting versions by id removes them for good; the marker too.
        let marker = hidden.version_id.unwrap();
        assert!(
            store
                .delete("b", "k", Some(&marker), None)
                .unwrap()
                .delete_marker
        );
        assert_eq!(text_of(&store, "b", "k", None), "two");
        for version in [&v2, &v1] {
            assert_eq!(
                store
                    .delete("b", "k", Some(version), None)
                    .unwrap()
                    .removed
                    .len(),
                1
            );
        }
        assert!(
            store
                .list_versions("b", "", None, None, None, 10)
                .unwrap()
                .entries
                .is_empty()
        );
        assert_eq!(
            fs::read_dir(store.bucket_dir("b").join("data"))
                .unwrap()
                .count(),
            0
        );
        assert!(matches!(
            store.head_version("b", "k", Some(&v1)),
            Err(StoreError::NoSuchVersion)
        ));
    }

    #[tokio::test]
    async fn a_conditional_delete_in_a_versioned_bucket_adds_a_marker_only_over_that_etag() {
        let (_dir, store) = store_with(&[]).await;
        store.set_versioning("b", Versioning::Enabled).unwrap();
        let one = put(&store, "b", "k", "one").await;
        put(&store, "b", "k", "two").await;
        assert!(matches!(
            store.delete("b", "k", None, Some(&Match::ETag(one.etag))),
            Err(StoreError::PreconditionFailed)
        ));
        assert_eq!(text_of(&store, "b", "k", None), "two");
        store.delete("b", "k", None, None).unwrap();
        assert!(matches!(
            store.delete("b", "k", None, Some(&Match::Any)),
            Err(StoreError::NoSuchKey)
        ));
    }

    #[tokio::test]
    async fn version_listings_page_within_a_key() {
        let (_dir, store) = store_with(&[]).await;
        store.set_versioning("b", Versioning::Enabled).unwrap();
        for text in ["1", "2", "3"] {
            put(&store, "b", "a", text).await;
        }
        put(&store, "b", "b", "x").await;
        put(&store, "b", "p/q", "y").await;
        let mut seen = Vec::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let page = store
                .list_versions(
                    "b",
                    "",
                    key_marker.as_deref(),
                    version_marker.as_deref(),
                    Some("/"),
                    2,
                )
                .unwrap();
            seen.extend(
                page.entries
                    .iter()
                    .map(|(e, latest)| (e.key().to_owned(), *latest)),
            );
            seen.extend(page.common_prefixes.iter().map(|p| (p.clone(), false)));
            if !page.truncated {
                break;
            }
            key_marker = page.next_key_marker;
            version_marker = page.next_version_id_marker;
        }
        let expected: Vec<(String, bool)> = [
            ("a", true),
            ("a", false),
            ("a", false),
            ("b", true),
            ("p/", false),
        ]
        .iter()
        .map(|(k, l)| ((*k).to_owned(), *l))
        .collect();
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn suspending_versioning_replaces_only_the_null_version() {
        let (_dir, store) = store_with(&["k"]).await;
        store.set_versioning("b", Versioning::Enabled).unwrap();
        let versioned = put(&store, "b", "k", "versioned").await;
        store.set_versioning("b", Versioning::Suspended).unwrap();
        put(&store, "b", "k", "null one").await;
        put(&store, "b", "k", "null two").await;
        let listed = store.list_versions("b", "", None, None, None, 10).unwrap();
        assert_eq!(listed.entries.len(), 2);
        assert_eq!(text_of(&store, "b", "k", Some("null")), "null two");
        assert_eq!(
            text_of(&store, "b", "k", versioned.version_id.as_deref()),
            "versioned"
        );
        assert!(matches!(
            store.set_versioning("b", Versioning::Unversioned),
            Err(StoreError::InvalidVersioning(_))
        ));
    }

    #[tokio::test]
    async fn a_conditional_completion_checks_the_target_and_a_conflict_ends_the_upload() {
        let (_dir, store) = store_with(&["k"]).await;
        let id = store
            .create_upload("b", "k", Attributes::default(), vec![])
            .unwrap();
        let part = store.put_part("b", "k", &id, 1, body("p")).await.unwrap();
        let parts = [(1, part)];
        assert!(matches!(
            store.complete_upload("b", "k", &id, &parts, Some(&WriteCondition::IfAbsent)),
            Err(StoreError::PreconditionFailed)
        ));
        // The upload survives a failed precondition...
        store.delete("b", "k", None, None).unwrap();
        // ...but a delete since it started is a conflict that ends it.
        assert!(matches!(
            store.complete_upload("b", "k", &id, &parts, Some(&WriteCondition::IfAbsent)),
            Err(StoreError::ConditionalConflict)
        ));
        assert!(matches!(
            store.abort_upload("b", "k", &id),
            Err(StoreError::NoSuchUpload)
        ));
    }

    #[tokio::test]
    async fn records_written_before_versioning_still_load() {
        let (dir, store) = store_with(&["old"]).await;
        let meta = store.head("b", "old").unwrap();
        drop(store);
        let path = dir.path().join("buckets/b/keys").join(key_file("old"));
        fs::write(&path, serde_json::to_vec(&meta).unwrap()).unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.head("b", "old").unwrap(), meta);
        assert_eq!(text_of(&store, "b", "old", Some("null")), "old");
    }
}
