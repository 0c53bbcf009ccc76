//! Parquet, row group by row group: each row is a record, each column's value is read at its
//! JSONPath (`$.customer.ssn`), with the column names on the way as its keywords. Only a row
//! group's current pages are in memory. Byte arrays without a string annotation (as Hive and
//! older Spark write strings) are read as text.

use std::fs::File;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};

use super::Stop;
use super::json::Records;
use crate::Session;

pub(super) fn read(session: &mut Session<'_>, file: File) -> Result<(), Stop> {
    let reader = SerializedFileReader::new(file).map_err(|err| Stop::format("Parquet", &err))?;
    let mut records = Records::new();
    let result = read_rows(session, &reader, &mut records);
    records.flush(session);
    result
}

fn read_rows(
    session: &mut Session<'_>,
    reader: &SerializedFileReader<File>,
    records: &mut Records,
) -> Result<(), Stop> {
    let metadata = reader.metadata();
    for group in 0..metadata.num_row_groups() {
        let what = || format!("Parquet row group {group}");
        let group_reader = reader
            .get_row_group(group)
            .map_err(|err| Stop::format(&what(), &err))?;
        let rows = group_reader
            .get_row_iter(None)
            .map_err(|err| Stop::format(&what(), &err))?;
        for row in rows {
            let row = row.map_err(|err| Stop::format(&what(), &err))?;
            row_value(records, &row);
            records.end_record(session);
        }
        let size = metadata.row_group(group).compressed_size();
        session.classified += u64::try_from(size).unwrap_or(0);
    }
    Ok(())
}

fn row_value(records: &mut Records, row: &Row) {
    records.start_object();
    for (name, field) in row.get_column_iter() {
        records.key(name);
        value(records, field);
    }
    records.end_object();
}

fn value(records: &mut Records, field: &Field) {
    match field {
        Field::Null | Field::Bool(_) => records.scalar(),
        Field::Byte(v) => records.number(v),
        Field::Short(v) => records.number(v),
        Field::Int(v) => records.number(v),
        Field::Long(v) => records.number(v),
        Field::UByte(v) => records.number(v),
        Field::UShort(v) => records.number(v),
        Field::UInt(v) => records.number(v),
        Field::ULong(v) => records.number(v),
        Field::Float16(v) => records.number(v),
        Field::Float(v) => records.number(v),
        Field::Double(v) => records.number(v),
        Field::Decimal(_) => records.number(field),
        Field::Str(text) => records.string(text),
        Field::Bytes(bytes) => records.string(&super::delimited::decode(bytes.data())),
        // Dates and times as text (`1990-04-12`), as a date of birth would be written.
        Field::Date(_)
        | Field::TimeMillis(_)
        | Field::TimeMicros(_)
        | Field::TimestampMillis(_)
        | Field::TimestampMicros(_) => records.string(&field.to_string()),
        Field::Group(row) => row_value(records, row),
        Field::ListInternal(list) => {
            records.start_array();
            for element in list.elements() {
                value(records, element);
            }
            records.end_array();
        }
        Field::MapInternal(map) => {
            records.start_object();
            for (key, element) in map.entries() {
                match key {
                    Field::Str(key) => records.key(key),
                    other => records.key(&other.to_string()),
                }
                value(records, element);
            }
            records.end_object();
        }
    }
}
