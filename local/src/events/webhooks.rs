//! A webhook receiver on the stack's port, `/_local/webhooks/<name>`, standing in for the
//! ticketing or incident system an API destination calls: it answers 200 and records each
//! request (method, query, headers, body) in `<data>/webhooks/<name>.jsonl`, so a test or a
//! person sees exactly what that system would get. `GET` lists what was received.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use http::HeaderMap;
use serde_json::{Value, json};

use crate::clock::{now_ms, rfc3339_ms};

/// The path prefix the receiver answers under.
pub const PREFIX: &str = "/_local/webhooks/";

pub struct Webhooks {
    dir: PathBuf,
    lock: Mutex<()>,
}

/// A name that is not a safe file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a webhook name is 1 to 64 letters, digits, '-' or '_', not {0:?}")]
pub struct BadName(pub String);

fn checked(name: &str) -> Result<&str, BadName> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(name)
    } else {
        Err(BadName(name.to_owned()))
    }
}

impl Webhooks {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            lock: Mutex::new(()),
        }
    }

    /// Where the requests to `name` are recorded.
    pub fn path(&self, name: &str) -> Result<PathBuf, BadName> {
        Ok(self.dir.join(format!("{}.jsonl", checked(name)?)))
    }

    /// Records one request to `name`.
    pub fn record(
        &self,
        name: &str,
        method: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), String> {
        let path = self.path(name).map_err(|err| err.to_string())?;
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    json!(String::from_utf8_lossy(value.as_bytes())),
                )
            })
            .collect();
        let text = String::from_utf8_lossy(body);
        let line = json!({
            "receivedAt": rfc3339_ms(now_ms()),
            "method": method,
            "query": query,
            "headers": headers,
            "body": serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text.into_owned())),
        });
        let _guard = self.lock.lock().expect("webhooks lock");
        std::fs::create_dir_all(&self.dir).map_err(|err| err.to_string())?;
        crate::events::append_line(&path, &line).map_err(|err| format!("{}: {err}", path.display()))
    }

    /// The requests `name` received, oldest first.
    pub fn received(&self, name: &str) -> Result<Vec<Value>, BadName> {
        Ok(received_in(&self.path(name)?))
    }
}

/// The requests recorded in a webhook's file.
pub fn received_in(path: &Path) -> Vec<Value> {
    crate::events::logged(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_recorded_with_their_headers_and_json_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let hooks = Webhooks::new(dir.path());
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "k".parse().unwrap());
        hooks
            .record("tickets", "POST", None, &headers, br#"{"id": "e-1"}"#)
            .unwrap();
        hooks
            .record("tickets", "POST", Some("a=1"), &HeaderMap::new(), b"plain")
            .unwrap();
        let received = hooks.received("tickets").unwrap();
        assert_eq!(received.len(), 2);
        assert_eq!(received[0]["headers"]["x-api-key"], "k");
        assert_eq!(received[0]["body"]["id"], "e-1");
        assert_eq!(received[1]["body"], "plain");
        assert_eq!(received[1]["query"], "a=1");
        assert!(hooks.record("../x", "POST", None, &headers, b"").is_err());
        assert!(hooks.received("").is_err());
    }
}
