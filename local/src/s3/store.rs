//! The local S3's storage: buckets and objects in a data directory that survives restarts.
//!
//! Each object version's bytes live in their own file that is never changed after it is written.
//! A small JSON record per key names the current file, with the object's ETag, metadata and tags.
//! Writing that record is the commit: a crash leaves either the old object or the new one, never
//! a mix. Copies hard-link the bytes, so copying an object of any size is instant, and a reader
//! that opened a file keeps reading it even if the object is replaced meanwhile.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tracing::warn;

use macie_pipeline::tags::Tag;

pub use crate::clock::now_ms;

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
    #[error("a precondition failed")]
    PreconditionFailed,
    #[error("the upload does not exist")]
    NoSuchUpload,
    #[error("invalid part: {0}")]
    InvalidPart(String),
    #[error("part {0} is smaller than the 5 MiB minimum")]
    EntityTooSmall(i32),
    #[error("the range is not satisfiable")]
    InvalidRange,
    #[error(transparent)]
    Io(#[from] io::Error),
}

type Result<T> = std::result::Result<T, StoreError>;

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
}

/// An object's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub key: String,
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

#[cfg(test)]
impl ObjectMeta {
    /// A record for tests of code that reads records.
    pub fn for_test(key: &str, size: u64, attributes: Attributes) -> Self {
        Self {
            key: key.to_owned(),
            etag: "0".into(),
            size,
            last_modified_ms: 0,
            attributes,
            tags: Vec::new(),
            data: String::new(),
        }
    }
}

/// A condition on an object's ETag.
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
}

struct Upload {
    meta: UploadMeta,
    parts: BTreeMap<i32, PartMeta>,
}

struct BucketState {
    created_ms: i64,
    objects: BTreeMap<String, ObjectMeta>,
    uploads: HashMap<String, Upload>,
}

/// Buckets and objects under one directory.
pub struct Store {
    root: PathBuf,
    state: Mutex<BTreeMap<String, BucketState>>,
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let temporary = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    fs::write(
        &temporary,
        serde_json::to_vec(value).map_err(io::Error::other)?,
    )?;
    fs::rename(&temporary, path)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<T> {
    serde_json::from_slice(&fs::read(path)?).map_err(io::Error::other)
}

fn key_file(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.json")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// Opens (or creates) the store under `root`, loading every bucket and object.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(root.join("buckets"))?;
        let mut buckets = BTreeMap::new();
        for entry in fs::read_dir(root.join("buckets"))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let dir = entry.path();
            let Ok(record) = read_json::<BucketRecord>(&dir.join("bucket.json")) else {
                continue;
            };
            buckets.insert(name, Self::load_bucket(&dir, record)?);
        }
        Ok(Self {
            root,
            state: Mutex::new(buckets),
        })
    }

    fn load_bucket(dir: &Path, record: BucketRecord) -> Result<BucketState> {
        let mut objects = BTreeMap::new();
        for entry in fs::read_dir(dir.join("keys"))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                match read_json::<ObjectMeta>(&path) {
                    Ok(meta) if dir.join("data").join(&meta.data).exists() => {
                        objects.insert(meta.key.clone(), meta);
                    }
                    Ok(meta) => warn!(key = meta.key, "object record without data, dropped"),
                    Err(err) => warn!(?path, %err, "unreadable object record, dropped"),
                }
            } else {
                // A temporary file of a write that never committed.
                let _ = fs::remove_file(path);
            }
        }
        // Bytes no record points to belong to writes that never committed, or were replaced.
        let referenced: std::collections::HashSet<&str> =
            objects.values().map(|m| m.data.as_str()).collect();
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
            let Ok(meta) = read_json::<UploadMeta>(&upload_dir.join("upload.json")) else {
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
                    && let Ok(part) = read_json::<PartMeta>(&path)
                {
                    parts.insert(number, part);
                }
            }
            uploads.insert(
                entry.file_name().to_string_lossy().into_owned(),
                Upload { meta, parts },
            );
        }
        Ok(BucketState {
            created_ms: record.created_ms,
            objects,
            uploads,
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
        };
        write_json(&dir.join("bucket.json"), &record)?;
        state.insert(
            name.to_owned(),
            BucketState {
                created_ms: record.created_ms,
                objects: BTreeMap::new(),
                uploads: HashMap::new(),
            },
        );
        Ok(())
    }

    pub fn delete_bucket(&self, name: &str) -> Result<()> {
        let mut state = self.lock();
        let bucket = state.get(name).ok_or(StoreError::NoSuchBucket)?;
        if !bucket.objects.is_empty() {
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
            .map(|(name, b)| (name.clone(), b.created_ms))
            .collect()
    }

    pub fn bucket_exists(&self, name: &str) -> bool {
        self.lock().contains_key(name)
    }

    /// The object's record.
    pub fn head(&self, bucket: &str, key: &str) -> Result<ObjectMeta> {
        let state = self.lock();
        let bucket = state.get(bucket).ok_or(StoreError::NoSuchBucket)?;
        bucket
            .objects
            .get(key)
            .cloned()
            .ok_or(StoreError::NoSuchKey)
    }

    /// The object's record and an open handle on its bytes.
    pub fn open_object(&self, bucket: &str, key: &str) -> Result<(ObjectMeta, fs::File)> {
        let state = self.lock();
        let meta = state
            .get(bucket)
            .ok_or(StoreError::NoSuchBucket)?
            .objects
            .get(key)
            .cloned()
            .ok_or(StoreError::NoSuchKey)?;
        let file = fs::File::open(self.bucket_dir(bucket).join("data").join(&meta.data))?;
        Ok((meta, file))
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

    /// Stores an object from `body`, replacing any object with the same key.
    pub async fn put<S, E>(
        &self,
        bucket: &str,
        key: &str,
        body: S,
        attributes: Attributes,
        tags: Vec<Tag>,
        condition: Option<Match>,
    ) -> Result<ObjectMeta>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        if !self.bucket_exists(bucket) {
            return Err(StoreError::NoSuchBucket);
        }
        let dir = self.bucket_dir(bucket).join("data");
        let (data, md5, size) = self.write_data(&dir, body).await?;
        let meta = ObjectMeta {
            key: key.to_owned(),
            etag: hex(&md5),
            size,
            last_modified_ms: now_ms(),
            attributes,
            tags,
            data,
        };
        self.commit(bucket, meta, condition.as_ref())
    }

    /// Makes `meta` the object's current version. The replaced bytes are removed.
    fn commit(
        &self,
        bucket: &str,
        meta: ObjectMeta,
        condition: Option<&Match>,
    ) -> Result<ObjectMeta> {
        let dir = self.bucket_dir(bucket);
        let replaced = {
            let mut state = self.lock();
            let Some(state) = state.get_mut(bucket) else {
                let _ = fs::remove_file(dir.join("data").join(&meta.data));
                return Err(StoreError::NoSuchBucket);
            };
            if let Some(condition) = condition {
                let current = state.objects.get(&meta.key);
                if !current.is_some_and(|c| condition.holds(c)) {
                    let _ = fs::remove_file(dir.join("data").join(&meta.data));
                    return Err(StoreError::PreconditionFailed);
                }
            }
            write_json(&dir.join("keys").join(key_file(&meta.key)), &meta)?;
            state.objects.insert(meta.key.clone(), meta.clone())
        };
        if let Some(old) = replaced
            && old.data != meta.data
        {
            let _ = fs::remove_file(dir.join("data").join(old.data));
        }
        Ok(meta)
    }

    /// Copies an object, with `make` deciding the copy's attributes and tags from the source's.
    /// `condition` is checked against the source at the moment of the copy.
    pub fn copy(
        &self,
        source: (&str, &str),
        condition: Option<&Match>,
        target: (&str, &str),
        make: impl FnOnce(&ObjectMeta) -> (Attributes, Vec<Tag>),
    ) -> Result<ObjectMeta> {
        let (source_bucket, source_key) = source;
        let (target_bucket, target_key) = target;
        let data = uuid::Uuid::new_v4().simple().to_string();
        let meta = {
            let state = self.lock();
            if !state.contains_key(target_bucket) {
                return Err(StoreError::NoSuchBucket);
            }
            let source = state
                .get(source_bucket)
                .ok_or(StoreError::NoSuchBucket)?
                .objects
                .get(source_key)
                .ok_or(StoreError::NoSuchKey)?;
            if condition.is_some_and(|c| !c.holds(source)) {
                return Err(StoreError::PreconditionFailed);
            }
            // Linked while the source cannot be replaced: its bytes are exactly the ones checked.
            let from = self
                .bucket_dir(source_bucket)
                .join("data")
                .join(&source.data);
            let to = self.bucket_dir(target_bucket).join("data").join(&data);
            if fs::hard_link(&from, &to).is_err() {
                fs::copy(&from, &to)?;
            }
            let (attributes, tags) = make(source);
            ObjectMeta {
                key: target_key.to_owned(),
                etag: source.etag.clone(),
                size: source.size,
                last_modified_ms: now_ms(),
                attributes,
                tags,
                data,
            }
        };
        self.commit(target_bucket, meta, None)
    }

    /// Deletes an object. With a condition, a missing object is `NoSuchKey` and a different one
    /// `PreconditionFailed`; without one, deleting a missing object succeeds (as in S3).
    pub fn delete(&self, bucket: &str, key: &str, condition: Option<&Match>) -> Result<bool> {
        let dir = self.bucket_dir(bucket);
        let removed = {
            let mut state = self.lock();
            let state = state.get_mut(bucket).ok_or(StoreError::NoSuchBucket)?;
            match (state.objects.get(key), condition) {
                (None, Some(_)) => return Err(StoreError::NoSuchKey),
                (None, None) => return Ok(false),
                (Some(current), Some(condition)) if !condition.holds(current) => {
                    return Err(StoreError::PreconditionFailed);
                }
                _ => {}
            }
            fs::remove_file(dir.join("keys").join(key_file(key)))?;
            state.objects.remove(key)
        };
        if let Some(old) = removed {
            let _ = fs::remove_file(dir.join("data").join(old.data));
        }
        Ok(true)
    }

    /// Replaces an object's tags.
    pub fn set_tags(&self, bucket: &str, key: &str, tags: Vec<Tag>) -> Result<ObjectMeta> {
        let mut state = self.lock();
        let state = state.get_mut(bucket).ok_or(StoreError::NoSuchBucket)?;
        let meta = state.objects.get_mut(key).ok_or(StoreError::NoSuchKey)?;
        let mut updated = meta.clone();
        updated.tags = tags;
        write_json(
            &self.bucket_dir(bucket).join("keys").join(key_file(key)),
            &updated,
        )?;
        *meta = updated.clone();
        Ok(updated)
    }

    /// Lists keys after `after` that start with `prefix`. With a delimiter, keys sharing the part
    /// up to the next delimiter are rolled into one common prefix. At most `max` entries.
    pub fn list(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        delimiter: Option<&str>,
        max: usize,
    ) -> Result<Listing> {
        let state = self.lock();
        let objects = &state.get(bucket).ok_or(StoreError::NoSuchBucket)?.objects;
        let mut listing = Listing::default();
        let start = match after {
            Some(after) if after.as_bytes() >= prefix.as_bytes() => {
                std::ops::Bound::Excluded(after.to_owned())
            }
            _ => std::ops::Bound::Included(prefix.to_owned()),
        };
        let mut count = 0;
        for (key, meta) in objects.range((start, std::ops::Bound::Unbounded)) {
            if !key.starts_with(prefix) {
                break;
            }
            let rolled = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
                key[prefix.len()..]
                    .find(d)
                    .map(|at| key[..prefix.len() + at + d.len()].to_owned())
            });
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
        state.uploads.insert(
            id.clone(),
            Upload {
                meta,
                parts: BTreeMap::new(),
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

    /// Copies bytes `range` (inclusive, or the whole object) of a source object into a part.
    pub fn copy_part(
        &self,
        source: (&str, &str),
        condition: Option<&Match>,
        range: Option<(u64, u64)>,
        target: (&str, &str, &str, i32),
    ) -> Result<String> {
        let (bucket, key, id, number) = target;
        let dir = self.upload_dir(bucket, key, id)?;
        let (meta, mut file) = self.open_object(source.0, source.1)?;
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
        Ok(etag)
    }

    /// Assembles the listed parts (number, ETag) into the object and ends the upload.
    pub fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
        parts: &[(i32, String)],
    ) -> Result<ObjectMeta> {
        let dir = self.upload_dir(bucket, key, id)?;
        let upload = {
            let state = self.lock();
            let upload = state
                .get(bucket)
                .and_then(|b| b.uploads.get(id))
                .ok_or(StoreError::NoSuchUpload)?;
            (upload.meta.clone(), upload.parts.clone())
        };
        let (meta, stored) = upload;
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
            etag: format!("{}-{}", hex(&Md5::digest(&md5s)), parts.len()),
            size,
            last_modified_ms: now_ms(),
            attributes: meta.attributes,
            tags: meta.tags,
            data,
        };
        let committed = self.commit(bucket, object, None)?;
        self.abort_upload(bucket, key, id)?;
        Ok(committed)
    }

    /// Ends an upload and removes its parts.
    pub fn abort_upload(&self, bucket: &str, key: &str, id: &str) -> Result<()> {
        let dir = self.upload_dir(bucket, key, id)?;
        self.lock().get_mut(bucket).map(|b| b.uploads.remove(id));
        fs::remove_dir_all(dir)?;
        Ok(())
    }
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
        store.set_tags("b", "a", vec![Tag::new("k", "v")]).unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let meta = store.head("b", "a").unwrap();
        assert_eq!(meta.etag, hex(&Md5::digest(b"a")));
        assert_eq!(meta.tags, vec![Tag::new("k", "v")]);
        assert_eq!(store.head("b", "b/c").unwrap().size, 3);
    }

    #[tokio::test]
    async fn conditional_delete_checks_the_etag() {
        let (_dir, store) = store_with(&["k"]).await;
        let wrong = Match::ETag("0000".into());
        assert!(matches!(
            store.delete("b", "k", Some(&wrong)),
            Err(StoreError::PreconditionFailed)
        ));
        let right = Match::ETag(store.head("b", "k").unwrap().etag);
        assert!(store.delete("b", "k", Some(&right)).unwrap());
        assert!(matches!(
            store.delete("b", "k", Some(&right)),
            Err(StoreError::NoSuchKey)
        ));
        assert!(!store.delete("b", "k", None).unwrap());
    }

    #[tokio::test]
    async fn a_copy_keeps_its_bytes_when_the_source_is_replaced() {
        let (_dir, store) = store_with(&["src"]).await;
        store.create_bucket("c").unwrap();
        store
            .copy(("b", "src"), None, ("c", "dst"), |m| {
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
            .complete_upload("b", "big", &id, &[(1, one), (2, two)])
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
            store.complete_upload("b", "k", &id, &[(1, one), (2, two)]),
            Err(StoreError::EntityTooSmall(1))
        ));
    }
}
