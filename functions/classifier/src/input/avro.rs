//! Avro object container files, block by block: each datum is a record, each field's value is
//! read at its JSONPath, with the field names on the way as its keywords. The codecs are null,
//! deflate, snappy and zstandard; a file with another is reported unreadable.

use std::cell::Cell;
use std::io::Read;

use apache_avro::types::Value;

use super::json::Records;
use super::{Counting, Stop};
use crate::Session;

pub(super) fn read(session: &mut Session<'_>, body: impl Read) -> Result<(), Stop> {
    let read = Cell::new(0u64);
    let before = session.classified;
    let mut records = Records::new();
    let result = (|| {
        let reader = apache_avro::Reader::new(Counting {
            inner: body,
            read: &read,
        })
        .map_err(|err| Stop::format("Avro", &err))?;
        for (index, datum) in reader.enumerate() {
            let datum = datum.map_err(|err| Stop::format(&format!("Avro record {index}"), &err))?;
            value(&mut records, &datum);
            records.end_record(session);
            session.classified = before + read.get();
        }
        Ok(())
    })();
    records.flush(session);
    result
}

fn value(records: &mut Records, datum: &Value) {
    match datum {
        Value::Null | Value::Boolean(_) => records.scalar(),
        Value::Date(days) => records.string(&date(i64::from(*days) * 86_400)),
        Value::Int(v) | Value::TimeMillis(v) => records.number(v),
        Value::Long(v) | Value::TimeMicros(v) => records.number(v),
        Value::TimestampMillis(ms) | Value::LocalTimestampMillis(ms) => {
            records.string(&date(ms.div_euclid(1000)));
        }
        Value::TimestampMicros(us) | Value::LocalTimestampMicros(us) => {
            records.string(&date(us.div_euclid(1_000_000)));
        }
        Value::TimestampNanos(ns) | Value::LocalTimestampNanos(ns) => {
            records.string(&date(ns.div_euclid(1_000_000_000)));
        }
        Value::Float(v) => records.number(v),
        Value::Double(v) => records.number(v),
        Value::Bytes(bytes) | Value::Fixed(_, bytes) => {
            records.string(&super::delimited::decode(bytes));
        }
        Value::String(text) | Value::Enum(_, text) => records.string(text),
        Value::Uuid(uuid) => records.string(&uuid.to_string()),
        // The unscaled digits: an identifier stored as decimal(38, 0) reads as written.
        Value::Decimal(decimal) => records.number(num_bigint::BigInt::from(decimal.clone())),
        Value::BigDecimal(decimal) => records.number(decimal),
        Value::Duration(_) => records.scalar(),
        Value::Union(_, inner) => value(records, inner),
        Value::Array(items) => {
            records.start_array();
            for item in items {
                value(records, item);
            }
            records.end_array();
        }
        Value::Map(entries) => {
            records.start_object();
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort();
            for key in keys {
                records.map_key(key);
                value(records, &entries[key]);
            }
            records.end_object();
        }
        Value::Record(fields) => {
            records.start_object();
            for (name, field) in fields {
                records.key(name);
                value(records, field);
            }
            records.end_object();
        }
    }
}

/// A time as text, the date first (`1990-04-12 00:00:00`), so a date of birth stored as a
/// timestamp is seen as a date.
fn date(seconds: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(at) => {
            let (date, clock) = (at.date(), at.time());
            if clock == time::Time::MIDNIGHT {
                format!("{date}")
            } else {
                format!(
                    "{date} {:02}:{:02}:{:02}",
                    clock.hour(),
                    clock.minute(),
                    clock.second()
                )
            }
        }
        Err(_) => seconds.to_string(),
    }
}
