//! One key's versions as S3 keeps them, and the rules that change them: what a write does under
//! each versioning state, what a delete does with and without a version id, which version a read
//! sees, and how a conditional write (`If-None-Match: *`, `If-Match: <etag>`) is judged against
//! the current version. Pure and in memory; [`Store`](crate::s3::store::Store) persists it.
//!
//! S3's rules, from the S3 User Guide ("Working with objects in a versioning-enabled bucket",
//! "... versioning-suspended bucket", "How to prevent object overwrites with conditional writes"):
//! * unversioned: a key has at most one version, the `null` one; a write replaces it, a delete
//!   removes it;
//! * versioning enabled: every write adds a version with a new id; a delete without a version id
//!   adds a delete marker, which hides the key but removes nothing; a delete with a version id
//!   removes that version for good, and the next one down becomes current;
//! * versioning suspended: writes and deletes without a version id replace the `null` version
//!   (a delete with a `null` delete marker); versions with ids stay;
//! * a conditional write looks only at the current version, and a current delete marker counts
//!   as no object.

use serde::{Deserialize, Serialize};

use crate::s3::store::{ObjectMeta, StoreError};

/// A bucket's versioning state. A bucket that was ever versioned can only be suspended, not
/// returned to unversioned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    #[default]
    Unversioned,
    Enabled,
    Suspended,
}

/// A delete marker: the current version of a deleted key in a versioned bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub key: String,
    /// `None` is the `null` version.
    pub version_id: Option<String>,
    pub last_modified_ms: i64,
}

/// One version of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Entry {
    Object(Box<ObjectMeta>),
    DeleteMarker(Marker),
}

impl Entry {
    pub fn version_id(&self) -> Option<&str> {
        match self {
            Self::Object(meta) => meta.version_id.as_deref(),
            Self::DeleteMarker(marker) => marker.version_id.as_deref(),
        }
    }

    pub fn key(&self) -> &str {
        match self {
            Self::Object(meta) => &meta.key,
            Self::DeleteMarker(marker) => &marker.key,
        }
    }

    pub fn last_modified_ms(&self) -> i64 {
        match self {
            Self::Object(meta) => meta.last_modified_ms,
            Self::DeleteMarker(marker) => marker.last_modified_ms,
        }
    }

    fn matches(&self, version: Option<&str>) -> bool {
        self.version_id() == version
    }
}

/// The version a request names: `versionId=null` is the `null` version.
pub fn requested(version_id: Option<&str>) -> Option<Option<&str>> {
    version_id.map(|id| (id != "null").then_some(id))
}

/// A condition on the destination of a write, judged against its current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// `If-None-Match: *`: only if the key has no current object.
    IfAbsent,
    /// `If-Match: <etag>` (without quotes): only over the current object with this ETag.
    IfMatch(String),
}

/// What a delete did, as the response headers tell it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Deletion {
    /// The version removed or the delete marker added (`None`: the `null` version).
    pub version_id: Option<String>,
    /// The version removed or added is a delete marker.
    pub delete_marker: bool,
    /// The data files of removed object versions.
    pub removed: Vec<ObjectMeta>,
}

/// A key's versions, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    pub entries: Vec<Entry>,
}

impl Chain {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The current object; `None` when the key has none or its current version is a delete marker.
    pub fn current_object(&self) -> Option<&ObjectMeta> {
        match self.entries.first() {
            Some(Entry::Object(meta)) => Some(meta),
            _ => None,
        }
    }

    /// The object a read names: the current one (`None`), or one version (`Some(None)` is
    /// `null`).
    pub fn find(&self, version: Option<Option<&str>>) -> Result<&ObjectMeta, StoreError> {
        match version {
            None => self.current_object().ok_or(StoreError::NoSuchKey),
            Some(id) => match self.entries.iter().find(|entry| entry.matches(id)) {
                Some(Entry::Object(meta)) => Ok(meta),
                Some(Entry::DeleteMarker(_)) => Err(StoreError::MethodNotAllowed),
                None => Err(StoreError::NoSuchVersion),
            },
        }
    }

    pub fn find_mut(
        &mut self,
        version: Option<Option<&str>>,
    ) -> Result<&mut ObjectMeta, StoreError> {
        let index = match version {
            None => match self.entries.first() {
                Some(Entry::Object(_)) => 0,
                _ => return Err(StoreError::NoSuchKey),
            },
            Some(id) => self
                .entries
                .iter()
                .position(|entry| entry.matches(id))
                .ok_or(StoreError::NoSuchVersion)?,
        };
        match &mut self.entries[index] {
            Entry::Object(meta) => Ok(meta),
            Entry::DeleteMarker(_) => Err(StoreError::MethodNotAllowed),
        }
    }

    /// Judges a write condition against the current version.
    pub fn check(&self, condition: &WriteCondition) -> Result<(), StoreError> {
        match (condition, self.current_object()) {
            (WriteCondition::IfAbsent, None) => Ok(()),
            (WriteCondition::IfAbsent, Some(_)) => Err(StoreError::PreconditionFailed),
            (WriteCondition::IfMatch(_), None) => Err(StoreError::NoSuchKey),
            (WriteCondition::IfMatch(etag), Some(current)) if *etag == current.etag => Ok(()),
            (WriteCondition::IfMatch(_), Some(_)) => Err(StoreError::PreconditionFailed),
        }
    }

    /// Makes `entry` the current version. Without versioning, or suspended, it replaces the
    /// `null` version; returns the object versions it replaced, whose bytes go.
    pub fn push(&mut self, entry: Entry, versioning: Versioning) -> Vec<ObjectMeta> {
        let mut replaced = Vec::new();
        if versioning != Versioning::Enabled {
            debug_assert!(entry.version_id().is_none());
            if let Some(index) = self.entries.iter().position(|e| e.version_id().is_none())
                && let Entry::Object(old) = self.entries.remove(index)
            {
                replaced.push(*old);
            }
        }
        self.entries.insert(0, entry);
        replaced
    }

    /// A delete without a version id. `marker` is the delete marker a versioned bucket adds
    /// (with its new id, or `null` when suspended); unversioned buckets add none.
    pub fn delete_current(&mut self, versioning: Versioning, marker: Marker) -> Deletion {
        match versioning {
            Versioning::Unversioned => {
                let removed = match self.entries.first() {
                    Some(Entry::Object(_)) => match self.entries.remove(0) {
                        Entry::Object(meta) => vec![*meta],
                        Entry::DeleteMarker(_) => unreachable!("checked above"),
                    },
                    _ => Vec::new(),
                };
                Deletion {
                    version_id: None,
                    delete_marker: false,
                    removed,
                }
            }
            Versioning::Enabled | Versioning::Suspended => {
                let version_id = marker.version_id.clone();
                let removed = self.push(Entry::DeleteMarker(marker), versioning);
                Deletion {
                    version_id,
                    delete_marker: true,
                    removed,
                }
            }
        }
    }

    /// A delete with a version id: removes that version (object or marker) for good. Deleting a
    /// version that does not exist succeeds and removes nothing, as in S3.
    pub fn delete_version(&mut self, version: Option<&str>) -> Deletion {
        let Some(index) = self.entries.iter().position(|e| e.matches(version)) else {
            return Deletion {
                version_id: version.map(str::to_owned),
                ..Deletion::default()
            };
        };
        match self.entries.remove(index) {
            Entry::Object(meta) => Deletion {
                version_id: meta.version_id.clone(),
                delete_marker: false,
                removed: vec![*meta],
            },
            Entry::DeleteMarker(marker) => Deletion {
                version_id: marker.version_id,
                delete_marker: true,
                removed: Vec::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::store::Attributes;

    fn object(version: Option<&str>, etag: &str) -> Entry {
        let mut meta = ObjectMeta::for_test("k", 1, Attributes::default());
        meta.version_id = version.map(str::to_owned);
        meta.etag = etag.to_owned();
        Entry::Object(Box::new(meta))
    }

    fn marker(version: Option<&str>) -> Marker {
        Marker {
            key: "k".into(),
            version_id: version.map(str::to_owned),
            last_modified_ms: 0,
        }
    }

    #[test]
    fn without_versioning_a_write_replaces_and_a_delete_removes() {
        let mut chain = Chain::default();
        assert!(
            chain
                .push(object(None, "a"), Versioning::Unversioned)
                .is_empty()
        );
        let replaced = chain.push(object(None, "b"), Versioning::Unversioned);
        assert_eq!(replaced.len(), 1);
        assert_eq!(replaced[0].etag, "a");
        assert_eq!(chain.entries.len(), 1);
        let deleted = chain.delete_current(Versioning::Unversioned, marker(None));
        assert!(!deleted.delete_marker && deleted.removed.len() == 1 && chain.is_empty());
    }

    #[test]
    fn with_versioning_writes_stack_and_a_plain_delete_only_hides() {
        let mut chain = Chain::default();
        chain.push(object(Some("v1"), "a"), Versioning::Enabled);
        chain.push(object(Some("v2"), "b"), Versioning::Enabled);
        assert_eq!(chain.current_object().unwrap().etag, "b");
        let deleted = chain.delete_current(Versioning::Enabled, marker(Some("m1")));
        assert!(deleted.delete_marker && deleted.removed.is_empty());
        assert_eq!(chain.entries.len(), 3);
        assert!(matches!(chain.find(None), Err(StoreError::NoSuchKey)));
        assert_eq!(chain.find(Some(Some("v1"))).unwrap().etag, "a");
        assert!(matches!(
            chain.find(Some(Some("m1"))),
            Err(StoreError::MethodNotAllowed)
        ));
        assert!(matches!(
            chain.find(Some(Some("nope"))),
            Err(StoreError::NoSuchVersion)
        ));
        // Removing the marker brings v2 back; removing v2 for good makes v1 current.
        assert!(chain.delete_version(Some("m1")).delete_marker);
        assert_eq!(chain.current_object().unwrap().etag, "b");
        assert_eq!(chain.delete_version(Some("v2")).removed.len(), 1);
        assert_eq!(chain.current_object().unwrap().etag, "a");
        assert!(chain.delete_version(Some("gone")).removed.is_empty());
    }

    #[test]
    fn suspended_writes_replace_only_the_null_version() {
        let mut chain = Chain::default();
        chain.push(object(Some("v1"), "a"), Versioning::Enabled);
        chain.push(object(None, "b"), Versioning::Suspended);
        let replaced = chain.push(object(None, "c"), Versioning::Suspended);
        assert_eq!(replaced[0].etag, "b");
        assert_eq!(chain.entries.len(), 2);
        let deleted = chain.delete_current(Versioning::Suspended, marker(None));
        assert_eq!(deleted.removed[0].etag, "c");
        assert_eq!(chain.entries.len(), 2);
        assert_eq!(chain.find(Some(Some("v1"))).unwrap().etag, "a");
    }

    #[test]
    fn conditions_look_at_the_current_version_and_a_marker_is_no_object() {
        let mut chain = Chain::default();
        assert!(chain.check(&WriteCondition::IfAbsent).is_ok());
        assert!(matches!(
            chain.check(&WriteCondition::IfMatch("a".into())),
            Err(StoreError::NoSuchKey)
        ));
        chain.push(object(Some("v1"), "a"), Versioning::Enabled);
        assert!(matches!(
            chain.check(&WriteCondition::IfAbsent),
            Err(StoreError::PreconditionFailed)
        ));
        assert!(chain.check(&WriteCondition::IfMatch("a".into())).is_ok());
        assert!(matches!(
            chain.check(&WriteCondition::IfMatch("b".into())),
            Err(StoreError::PreconditionFailed)
        ));
        chain.delete_current(Versioning::Enabled, marker(Some("m")));
        assert!(chain.check(&WriteCondition::IfAbsent).is_ok());
        assert!(matches!(
            chain.check(&WriteCondition::IfMatch("a".into())),
            Err(StoreError::NoSuchKey)
        ));
    }

    #[test]
    fn null_in_a_request_names_the_null_version() {
        assert_eq!(requested(None), None);
        assert_eq!(requested(Some("null")), Some(None));
        assert_eq!(requested(Some("abc")), Some(Some("abc")));
    }
}
