//! JSON documents (streamed event by event, so a large array never sits in memory) and JSON
//! Lines (one record per line). Every key on a value's path is a keyword context for it, as in
//! Macie; keys themselves are scanned too. A record is a top-level array element, or the whole
//! document; in JSON Lines, a line.

use std::io::BufRead;
use std::sync::Arc;

use json_event_parser::{JsonEvent, ReaderJsonParser, SliceJsonParser};

use super::{BATCH_BYTES, Stop};
use crate::Session;
use crate::batch::{Batch, Place};

/// A JSON Lines record longer than this is refused as malformed rather than buffered.
const MAX_LINE: u64 = 64 << 20;

enum Frame {
    Object { key: Option<String> },
    Array { index: u64 },
}

/// Tracks the path of the current value.
#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
}

fn path_element(out: &mut String, key: &str) {
    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        out.push('.');
        out.push_str(key);
    } else {
        out.push_str("['");
        out.push_str(&key.replace('\\', "\\\\").replace('\'', "\\'"));
        out.push_str("']");
    }
}

impl Walker {
    /// `$.a.b[2]` and the keys on the way, lower-cased (`a b`). The path is relative to the
    /// record, so a top-level array's index is not part of it.
    fn path(&self) -> (Arc<str>, Arc<str>) {
        let mut path = String::from("$");
        let mut keys = String::new();
        let within_record = match self.stack.first() {
            Some(Frame::Array { .. }) => &self.stack[1..],
            _ => &self.stack[..],
        };
        for frame in within_record {
            match frame {
                Frame::Object { key: Some(key) } => {
                    path_element(&mut path, key);
                    if !keys.is_empty() {
                        keys.push(' ');
                    }
                    keys.push_str(&key.to_lowercase());
                }
                Frame::Object { key: None } => {}
                Frame::Array { index } => {
                    path.push('[');
                    path.push_str(&index.to_string());
                    path.push(']');
                }
            }
        }
        (Arc::from(path), Arc::from(keys))
    }

    /// The record a value belongs to: its top-level array element, else `fallback`.
    fn record(&self, fallback: u64) -> u64 {
        match self.stack.first() {
            Some(Frame::Array { index }) => *index,
            _ => fallback,
        }
    }

    fn value_done(&mut self) {
        if let Some(Frame::Array { index }) = self.stack.last_mut() {
            *index += 1;
        }
    }

    /// Handles one event; returns false at the end of the input.
    fn event(&mut self, event: JsonEvent<'_>, record: u64, batch: &mut Batch) -> bool {
        match event {
            JsonEvent::String(value) | JsonEvent::Number(value) => {
                let (path, keys) = self.path();
                let index = self.record(record);
                batch.push(&value, Place::Record { index, path }, keys);
                self.value_done();
            }
            JsonEvent::Boolean(_) | JsonEvent::Null => self.value_done(),
            JsonEvent::StartObject => self.stack.push(Frame::Object { key: None }),
            JsonEvent::StartArray => self.stack.push(Frame::Array { index: 0 }),
            JsonEvent::EndObject | JsonEvent::EndArray => {
                self.stack.pop();
                self.value_done();
            }
            JsonEvent::ObjectKey(key) => {
                let (path, _) = self.path();
                let index = self.record(record);
                batch.push(&key, Place::Record { index, path }, Arc::from(""));
                if let Some(Frame::Object { key: current }) = self.stack.last_mut() {
                    *current = Some(key.into_owned());
                }
            }
            JsonEvent::Eof => return false,
        }
        true
    }
}

pub(super) fn read_document(
    reader: &mut impl BufRead,
    session: &mut Session<'_>,
) -> Result<(), Stop> {
    let mut parser = ReaderJsonParser::new(reader);
    let mut walker = Walker::default();
    let mut batch = Batch::default();
    loop {
        let event = parser.parse_next().map_err(|err| match err {
            json_event_parser::JsonParseError::Io(io) => Stop::Io(io),
            json_event_parser::JsonParseError::Syntax(syntax) => {
                Stop::Malformed(format!("JSON syntax error: {syntax}"))
            }
        });
        let event = match event {
            Ok(event) => event,
            Err(stop) => {
                session.scan(&batch);
                session.classified += batch.len() as u64;
                return Err(stop);
            }
        };
        if !walker.event(event, 0, &mut batch) {
            break;
        }
        if batch.len() >= BATCH_BYTES {
            session.scan(&batch);
            session.classified += batch.len() as u64;
            batch.clear();
        }
    }
    session.scan(&batch);
    session.classified += batch.len() as u64;
    Ok(())
}

pub(super) fn read_lines(reader: &mut impl BufRead, session: &mut Session<'_>) -> Result<(), Stop> {
    let mut line = Vec::new();
    let mut batch = Batch::default();
    let mut index = 0u64;
    loop {
        line.clear();
        let read = std::io::Read::take(&mut *reader, MAX_LINE + 1).read_until(b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        if read as u64 > MAX_LINE {
            session.scan(&batch);
            return Err(Stop::Malformed(format!(
                "JSON Lines record {index} is longer than {MAX_LINE} bytes"
            )));
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            let mut parser = SliceJsonParser::new(&line);
            let mut walker = Walker::default();
            loop {
                match parser.parse_next() {
                    Ok(event) => {
                        if !walker.event(event, index, &mut batch) {
                            break;
                        }
                    }
                    Err(err) => {
                        session.scan(&batch);
                        return Err(Stop::Malformed(format!("JSON Lines record {index}: {err}")));
                    }
                }
            }
            index += 1;
        }
        session.classified += read as u64;
        if batch.len() >= BATCH_BYTES {
            session.scan(&batch);
            batch.clear();
        }
    }
    session.scan(&batch);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{Classifier, Config, Occurrence, Status};

    fn classify(name: &str, text: &str) -> crate::ObjectReport {
        Classifier::new(Config::default()).classify(name, None, text.as_bytes())
    }

    #[test]
    fn a_key_on_the_path_is_a_keyword() {
        let report = classify(
            "people.json",
            r#"[{"name": "Jane", "ids": {"ssn": "123-45-6789"}}, {"ref": "234-56-7890", "social security": ["345-67-8901"]}]"#,
        );
        let ssn = &report.detections[0];
        assert_eq!(ssn.count, 2);
        assert_eq!(
            ssn.occurrences,
            [
                Occurrence::Record {
                    record_index: 0,
                    json_path: "$.ids.ssn".into()
                },
                Occurrence::Record {
                    record_index: 1,
                    json_path: "$['social security'][0]".into()
                },
            ]
        );
        assert_eq!(report.status, Status::Complete);
    }

    #[test]
    fn json_lines_records_are_lines() {
        let report = classify(
            "events.jsonl",
            "{\"card\": \"4111111111111111\"}\n\n{\"user\": {\"phone\": \"+1 206 555 0100\"}}\n",
        );
        let found: Vec<_> = report
            .detections
            .iter()
            .map(|d| (d.identifier.label(), d.occurrences[0].clone()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "CREDIT_CARD_NUMBER",
                    Occurrence::Record {
                        record_index: 0,
                        json_path: "$.card".into()
                    }
                ),
                (
                    "PHONE_NUMBER",
                    Occurrence::Record {
                        record_index: 1,
                        json_path: "$.user.phone".into()
                    }
                ),
            ]
        );
    }

    #[test]
    fn broken_json_is_malformed_and_what_was_read_still_counts() {
        let report = classify("x.json", r#"{"ssn": "123-45-6789", "#);
        assert_eq!(report.status, Status::Partial);
        assert_eq!(report.reason, Some("MALFORMED_FILE"));
        assert_eq!(report.detections.len(), 1);
        let report = classify("x.jsonl", "{\"a\": 1}\nnot json\n");
        assert_eq!(report.reason, Some("MALFORMED_FILE"));
        assert!(!report.is_clean());
    }
}
