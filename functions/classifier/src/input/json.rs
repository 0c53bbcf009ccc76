//! JSON documents (streamed event by event, so a large array never sits in memory) and JSON
//! Lines (one record per line). Every key on a value's path is a keyword context for it, as in
//! Macie; keys themselves are scanned too. A record is a top-level array element, or the whole
//! document; in JSON Lines, a line.

use std::io::BufRead;

use std::borrow::Cow;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{BATCH_BYTES, Counting, Stop};
use crate::Session;
use crate::batch::{Batch, Place};

/// A JSON Lines record longer than this is refused as malformed rather than buffered.
const MAX_LINE: u64 = 64 << 20;

/// The parse events the walker follows.
enum JsonEvent<'a> {
    String(Cow<'a, str>),
    Number(Cow<'a, str>),
    /// `true`, `false` or `null`: nothing to scan.
    Scalar,
    StartArray,
    EndArray,
    StartObject,
    EndObject,
    ObjectKey(Cow<'a, str>),
}

enum Frame {
    /// `path`/`keys` lengths to cut back to before the next key.
    Object {
        path_len: usize,
        keys_len: usize,
    },
    Array {
        index: u64,
        path_len: usize,
    },
}

/// Tracks the path of the current value incrementally: `path` (`$.a.b[2]`, relative to the
/// record) and `keys` (the keys on the way, lower-cased: `a b`) grow and shrink with the stack,
/// so a value costs a copy into the batch's arena, not an allocation.
struct Walker {
    stack: Vec<Frame>,
    path: String,
    keys: String,
    /// In a JSON document, each element of a top-level array is a record; in JSON Lines, each
    /// line is.
    top_array_is_records: bool,
    /// Whether object keys are scanned. In JSON they are data; in a typed format's records
    /// they are the schema's field names, the same in every record, so they are scanned once
    /// per batch rather than once per record.
    scan_keys: bool,
}

impl Walker {
    fn new(top_array_is_records: bool) -> Self {
        Self {
            stack: Vec::new(),
            path: String::from("$"),
            keys: String::new(),
            top_array_is_records,
            scan_keys: true,
        }
    }
}

pub(super) fn path_element(out: &mut String, key: &str) {
    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        out.push('.');
        out.push_str(key);
    } else {
        out.push_str("['");
        for c in key.chars() {
            if c == '\\' || c == '\'' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push_str("']");
    }
}

impl Walker {
    /// The record a value belongs to: its top-level array element, else `fallback`.
    fn record(&self, fallback: u64) -> u64 {
        match self.stack.first() {
            Some(Frame::Array { index, .. }) if self.top_array_is_records => *index,
            _ => fallback,
        }
    }

    /// Before a value (or container) starts: inside an array, its index joins the path (not
    /// for the top-level array, whose index is the record).
    fn value_starts(&mut self) {
        let depth = self.stack.len();
        if let Some(Frame::Array { index, path_len }) = self.stack.last() {
            self.path.truncate(*path_len);
            if depth > 1 || !self.top_array_is_records {
                self.path.push('[');
                self.path.push_str(&index.to_string());
                self.path.push(']');
            }
        }
    }

    fn value_done(&mut self) {
        if let Some(Frame::Array { index, .. }) = self.stack.last_mut() {
            *index += 1;
        }
    }

    fn push_value(&self, value: &str, record: u64, batch: &mut Batch) {
        let path = batch.meta(&self.path);
        let context = batch.meta(&self.keys);
        let index = self.record(record);
        batch.push(value, Place::Record { index, path }, context);
    }

    /// Follows one event.
    fn event(&mut self, event: JsonEvent<'_>, record: u64, batch: &mut Batch) {
        match event {
            JsonEvent::String(value) | JsonEvent::Number(value) => {
                self.value_starts();
                self.push_value(&value, record, batch);
                self.value_done();
            }
            JsonEvent::Scalar => {
                self.value_starts();
                self.value_done();
            }
            JsonEvent::StartObject => {
                self.value_starts();
                self.stack.push(Frame::Object {
                    path_len: self.path.len(),
                    keys_len: self.keys.len(),
                });
            }
            JsonEvent::StartArray => {
                self.value_starts();
                self.stack.push(Frame::Array {
                    index: 0,
                    path_len: self.path.len(),
                });
            }
            JsonEvent::EndObject | JsonEvent::EndArray => {
                match self.stack.pop() {
                    Some(Frame::Object { path_len, keys_len }) => {
                        self.path.truncate(path_len);
                        self.keys.truncate(keys_len);
                    }
                    Some(Frame::Array { path_len, .. }) => self.path.truncate(path_len),
                    None => {}
                }
                self.value_done();
            }
            JsonEvent::ObjectKey(key) => {
                if let Some(&Frame::Object { path_len, keys_len }) = self.stack.last() {
                    self.path.truncate(path_len);
                    self.keys.truncate(keys_len);
                    // The key itself is scanned too, at its object's path.
                    if self.scan_keys {
                        self.push_value(&key, record, batch);
                    }
                    path_element(&mut self.path, &key);
                    if !self.keys.is_empty() {
                        self.keys.push(' ');
                    }
                    self.keys.extend(key.chars().flat_map(char::to_lowercase));
                }
            }
        }
    }
}

/// Drives a [`Walker`] from serde's deserializer: values are visited as they are parsed, so
/// nothing is materialised beyond the current string.
struct Emitter<'w> {
    walker: Walker,
    batch: &'w mut Batch,
    record: u64,
    /// Formatting buffer for numbers.
    number: String,
}

impl Emitter<'_> {
    fn emit(&mut self, event: JsonEvent<'_>) {
        self.walker.event(event, self.record, self.batch);
    }

    fn number(&mut self, value: impl std::fmt::Display) {
        use std::fmt::Write as _;
        self.number.clear();
        let _ = write!(self.number, "{value}");
        let number = std::mem::take(&mut self.number);
        self.emit(JsonEvent::Number(Cow::Borrowed(&number)));
        self.number = number;
    }
}

impl<'de> DeserializeSeed<'de> for &mut Emitter<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &mut Emitter<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        let _ = v;
        self.emit(JsonEvent::Scalar);
        Ok(())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.emit(JsonEvent::Scalar);
        Ok(())
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.number(v);
        Ok(())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.number(v);
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.number(v);
        Ok(())
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.emit(JsonEvent::String(Cow::Borrowed(v)));
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.emit(JsonEvent::StartArray);
        while seq.next_element_seed(&mut *self)?.is_some() {}
        self.emit(JsonEvent::EndArray);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.emit(JsonEvent::StartObject);
        while map.next_key_seed(Key(&mut *self))?.is_some() {
            map.next_value_seed(&mut *self)?;
        }
        self.emit(JsonEvent::EndObject);
        Ok(())
    }
}

/// An object key, emitted without being copied into a `String`.
struct Key<'e, 'w>(&'e mut Emitter<'w>);

impl<'de> DeserializeSeed<'de> for Key<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.0.emit(JsonEvent::ObjectKey(Cow::Borrowed(v)));
        Ok(())
    }
}

/// Why a JSON parse stopped, in Macie's terms.
fn stop(err: serde_json::Error, what: &str) -> Stop {
    if err.is_io() {
        return Stop::Io(std::io::Error::from(err));
    }
    if err.to_string().contains("recursion limit") {
        return Stop::TooDeep(format!("{what}: {err}"));
    }
    Stop::Malformed(format!("{what}: {err}"))
}

pub(super) fn read_document(
    reader: &mut impl BufRead,
    session: &mut Session<'_>,
) -> Result<(), Stop> {
    let before = session.classified;
    let mut batch = Batch::default();
    // serde_json pulls bytes one at a time from a `Read`; the BufReader under it keeps that
    // cheap. Flushed batches count as classified while streaming (so a later error reads as
    // PARTIAL); at the end, the bytes actually read do.
    let read = std::cell::Cell::new(0u64);
    let mut deserializer = serde_json::Deserializer::from_reader(Counting {
        inner: reader,
        read: &read,
    });
    let result = {
        let mut emitter = Emitter {
            walker: Walker::new(true),
            batch: &mut batch,
            record: 0,
            number: String::new(),
        };
        FlushingSeed {
            emitter: &mut emitter,
            session,
        }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end())
    };
    // A document that breaks before its first value was not classified at all (SKIPPED). The
    // session may hold earlier objects (members of the same archive): count this one's bytes.
    let saw_values = session.classified > before || !batch.cells.is_empty();
    session.scan(&batch);
    session.classified = if result.is_ok() || saw_values {
        before + read.get()
    } else {
        before
    };
    result.map_err(|err| stop(err, "JSON"))
}

/// The top-level value, with batches flushed between the elements of a top-level array so a
/// large array is scanned as it streams. (A top-level object is flushed at its end; its values
/// are kept in the batch meanwhile.)
struct FlushingSeed<'e, 'w, 's, 'c> {
    emitter: &'e mut Emitter<'w>,
    session: &'s mut Session<'c>,
}

impl<'de> DeserializeSeed<'de> for FlushingSeed<'_, '_, '_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FlushingSeed<'_, '_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON document")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.emitter.emit(JsonEvent::StartArray);
        while seq.next_element_seed(&mut *self.emitter)?.is_some() {
            if self.emitter.batch.len() >= BATCH_BYTES {
                self.session.scan(self.emitter.batch);
                self.session.classified += self.emitter.batch.len() as u64;
                self.emitter.batch.clear();
            }
        }
        self.emitter.emit(JsonEvent::EndArray);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.emitter.visit_map(map)
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        self.emitter.visit_bool(v)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.emitter.visit_unit()
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.emitter.visit_u64(v)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.emitter.visit_i64(v)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.emitter.visit_f64(v)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.emitter.visit_str(v)
    }
}

/// The records of a typed format (Avro, Parquet), fed value by value and read as JSON Lines
/// records are: the field names on a value's path are its keyword context, keys are scanned
/// too, and an occurrence is the record's index and the value's JSONPath.
pub(super) struct Records {
    walker: Walker,
    batch: Batch,
    record: u64,
    number: String,
    /// The record being read is the batch's first.
    first_in_batch: bool,
}

impl Records {
    pub fn new() -> Self {
        Self {
            walker: Walker::new(false),
            batch: Batch::default(),
            record: 0,
            number: String::new(),
            first_in_batch: true,
        }
    }

    fn event(&mut self, event: JsonEvent<'_>) {
        self.walker.event(event, self.record, &mut self.batch);
    }

    /// A field name of the schema: scanned in the first record of each batch only.
    pub fn key(&mut self, key: &str) {
        self.walker.scan_keys = self.first_in_batch;
        self.event(JsonEvent::ObjectKey(Cow::Borrowed(key)));
    }

    /// A key of a map value: data, scanned wherever it is.
    pub fn map_key(&mut self, key: &str) {
        self.walker.scan_keys = true;
        self.event(JsonEvent::ObjectKey(Cow::Borrowed(key)));
    }

    pub fn string(&mut self, value: &str) {
        self.event(JsonEvent::String(Cow::Borrowed(value)));
    }

    pub fn number(&mut self, value: impl std::fmt::Display) {
        use std::fmt::Write as _;
        let mut number = std::mem::take(&mut self.number);
        number.clear();
        let _ = write!(number, "{value}");
        self.event(JsonEvent::Number(Cow::Borrowed(&number)));
        self.number = number;
    }

    /// A value with nothing to scan (null, a boolean).
    pub fn scalar(&mut self) {
        self.event(JsonEvent::Scalar);
    }

    pub fn start_object(&mut self) {
        self.event(JsonEvent::StartObject);
    }

    pub fn end_object(&mut self) {
        self.event(JsonEvent::EndObject);
    }

    pub fn start_array(&mut self) {
        self.event(JsonEvent::StartArray);
    }

    pub fn end_array(&mut self) {
        self.event(JsonEvent::EndArray);
    }

    /// Ends a record; a full batch is scanned.
    pub fn end_record(&mut self, session: &mut Session<'_>) {
        self.record += 1;
        self.first_in_batch = false;
        if self.batch.len() >= BATCH_BYTES {
            self.flush(session);
        }
    }

    /// Scans what the batch holds (at the end, or before an error is reported, so that what
    /// was read counts).
    pub fn flush(&mut self, session: &mut Session<'_>) {
        session.scan(&self.batch);
        self.batch.clear();
        self.first_in_batch = true;
    }
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
            let mut emitter = Emitter {
                walker: Walker::new(false),
                batch: &mut batch,
                record: index,
                number: String::new(),
            };
            let mut deserializer = serde_json::Deserializer::from_slice(&line);
            let parsed = (&mut emitter)
                .deserialize(&mut deserializer)
                .and_then(|()| deserializer.end());
            if let Err(err) = parsed {
                session.scan(&batch);
                return Err(stop(err, &format!("JSON Lines record {index}")));
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
    fn paths_follow_nested_arrays_and_odd_keys() {
        let report = classify(
            "x.json",
            r#"{"a": [[1, "ssn 123-45-6789"], {"it's": {"ssn": "234-56-7890"}}]}"#,
        );
        let paths: Vec<_> = report.detections[0].occurrences.clone();
        assert_eq!(
            paths,
            [
                Occurrence::Record {
                    record_index: 0,
                    json_path: "$.a[0][1]".into()
                },
                Occurrence::Record {
                    record_index: 0,
                    json_path: "$.a[1]['it\\'s'].ssn".into()
                },
            ]
        );
        let report = classify("x.jsonl", "[\"a\"]\n[\"b\", \"ssn 123-45-6789\"]\n");
        assert_eq!(
            report.detections[0].occurrences,
            [Occurrence::Record {
                record_index: 1,
                json_path: "$[1]".into()
            }]
        );
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
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let report = classify("deep.json", &deep);
        assert_eq!(report.reason, Some("JSON_NESTING_LEVEL_OVER_LIMIT"));
        assert!(!report.is_clean());
        let report = classify("trailing.json", "{} {}");
        assert_eq!(report.reason, Some("MALFORMED_FILE"));
        let report = classify("text.json", "not json at all");
        assert_eq!(
            (report.status, report.reason),
            (Status::Skipped, Some("MALFORMED_FILE"))
        );
        let report = classify("x.jsonl", "{\"a\": 1}\nnot json\n");
        assert_eq!(report.reason, Some("MALFORMED_FILE"));
        assert!(!report.is_clean());
    }
}
