//! Writing a JSON file atomically: to a temporary name beside it, then renamed over it, so a
//! reader (or a restarted stack) sees the old file or the new one, never half of one. Every
//! service of the stack saves its state with this one writer, and every caller gets the error.
//!
//! One policy for what a failed save means, in every service: a request that changes state
//! saves first and fails when the save fails (S3 and Macie with their internal error, Step
//! Functions with `InternalFailure`), leaving memory as it was; work with no caller (a Macie job
//! running, an execution advancing) logs the failure, goes on in memory and saves again at its
//! next change, so a restart resumes from the last save. A saved file that cannot be read stops
//! the stack from opening, naming the file, rather than being skipped.

use std::io;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Serializes `value` to `path`, replacing what was there.
pub fn write<T: Serialize + ?Sized>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    write_bytes(path, &bytes)
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temporary = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

/// Reads a JSON file written by [`write`].
pub fn read<T: DeserializeOwned>(path: &Path) -> io::Result<T> {
    serde_json::from_slice(&std::fs::read(path)?).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write(&path, &serde_json::json!({"n": 1})).unwrap();
        write(&path, &serde_json::json!({"n": 2})).unwrap();
        assert_eq!(read::<serde_json::Value>(&path).unwrap()["n"], 2);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(write(&dir.path().join("missing/a.json"), &1).is_err());
    }
}
