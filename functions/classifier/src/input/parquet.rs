//! Parquet, row group by row group: each row is a record, each column's value is read at its
//! JSONPath (`$.customer.ssn`), with the column names on the way as its keywords. Only a row
//! group's current pages are in memory. Byte arrays without a string annotation (as Hive and
//! older Spark write strings) are read as text.
//!
//! A flat table of strings and plain numbers (what most data lake tables are) is read column
//! by column, each value straight into a batch as CSV cells are; anything else (nested groups,
//! lists, maps, dates, timestamps, decimals) through the row API, which builds each row.

use std::fs::File;

use parquet::basic::{ConvertedType, LogicalType, Type as PhysicalType};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::DataType;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use parquet::schema::types::ColumnDescriptor;

use super::json::Records;
use super::{BATCH_BYTES, Stop};
use crate::Session;
use crate::batch::{Batch, Place, Span};

/// Records read from a column at a time.
const RECORDS_PER_READ: usize = 4096;

pub(super) fn read(session: &mut Session<'_>, file: File) -> Result<(), Stop> {
    let reader = SerializedFileReader::new(file).map_err(|err| Stop::format("Parquet", &err))?;
    let schema = reader.metadata().file_metadata().schema_descr();
    if schema.columns().iter().all(|column| flat(column)) {
        return read_columns(session, &reader);
    }
    let mut records = Records::new();
    let result = read_rows(session, &reader, &mut records);
    records.flush(session);
    result
}

/// A top-level column whose values read as they are stored: text, or a plain number.
fn flat(column: &ColumnDescriptor) -> bool {
    let plain = matches!(column.converted_type(), ConvertedType::NONE);
    let top_level = column.path().parts().len() == 1 && column.max_rep_level() == 0;
    let readable = match column.physical_type() {
        PhysicalType::BYTE_ARRAY => {
            matches!(
                column.logical_type_ref(),
                None | Some(LogicalType::String | LogicalType::Json | LogicalType::Enum)
            ) && matches!(
                column.converted_type(),
                ConvertedType::NONE
                    | ConvertedType::UTF8
                    | ConvertedType::JSON
                    | ConvertedType::ENUM
            )
        }
        PhysicalType::INT32
        | PhysicalType::INT64
        | PhysicalType::FLOAT
        | PhysicalType::DOUBLE
        | PhysicalType::BOOLEAN => plain && column.logical_type_ref().is_none(),
        _ => false,
    };
    top_level && readable
}

/// A flat table, column by column: each value a cell at `$.column` of its row, the column's
/// name its keyword context (and scanned itself once per row group).
fn read_columns(
    session: &mut Session<'_>,
    reader: &SerializedFileReader<File>,
) -> Result<(), Stop> {
    let metadata = reader.metadata();
    let schema = metadata.file_metadata().schema_descr();
    let mut batch = Batch::default();
    let mut first_row = 0u64;
    let result = (|| {
        for group in 0..metadata.num_row_groups() {
            let what = || format!("Parquet row group {group}");
            let group_reader = reader
                .get_row_group(group)
                .map_err(|err| Stop::format(&what(), &err))?;
            for (index, column) in schema.columns().iter().enumerate() {
                let column_reader = group_reader
                    .get_column_reader(index)
                    .map_err(|err| Stop::format(&what(), &err))?;
                let mut cells = Cells::new(session, &mut batch, column, first_row);
                let read = match column_reader {
                    ColumnReader::ByteArrayColumnReader(r) => cells.read(r, |v, out| {
                        out.push_str(&super::delimited::decode(v.data()));
                    }),
                    ColumnReader::Int32ColumnReader(r) => cells.read(r, number),
                    ColumnReader::Int64ColumnReader(r) => cells.read(r, number),
                    ColumnReader::FloatColumnReader(r) => cells.read(r, number),
                    ColumnReader::DoubleColumnReader(r) => cells.read(r, number),
                    // Nothing to scan in a boolean.
                    ColumnReader::BoolColumnReader(_) => Ok(()),
                    _ => Err(Stop::Malformed(format!(
                        "Parquet column {} changed type",
                        column.name()
                    ))),
                };
                read.map_err(|err| match err {
                    Stop::Malformed(detail) => Stop::Malformed(format!("{}: {detail}", what())),
                    other => other,
                })?;
            }
            let rows = metadata.row_group(group).num_rows();
            first_row += u64::try_from(rows).unwrap_or(0);
            let size = metadata.row_group(group).compressed_size();
            session.classified += u64::try_from(size).unwrap_or(0);
        }
        Ok(())
    })();
    session.scan(&batch);
    result
}

fn number(value: &impl std::fmt::Display, out: &mut String) {
    use std::fmt::Write as _;
    let _ = write!(out, "{value}");
}

/// One column chunk's values, pushed into the batch as cells.
struct Cells<'a, 's, 'c> {
    session: &'a mut Session<'c>,
    batch: &'a mut Batch,
    column: &'s ColumnDescriptor,
    /// Row of the chunk's first value, across the file.
    first_row: u64,
    /// The column's path and keyword context in the batch's arena, stored again after a flush.
    spans: Option<(Span, Span)>,
    text: String,
}

impl<'a, 's, 'c> Cells<'a, 's, 'c> {
    fn new(
        session: &'a mut Session<'c>,
        batch: &'a mut Batch,
        column: &'s ColumnDescriptor,
        first_row: u64,
    ) -> Self {
        Self {
            session,
            batch,
            column,
            first_row,
            spans: None,
            text: String::new(),
        }
    }

    fn spans(&mut self) -> (Span, Span) {
        if let Some(spans) = self.spans {
            return spans;
        }
        let name = self.column.name();
        let mut path = String::from("$");
        super::json::path_element(&mut path, name);
        let spans = (
            self.batch.meta(&path),
            self.batch.meta(&name.to_lowercase()),
        );
        self.spans = Some(spans);
        spans
    }

    fn read<T: DataType>(
        &mut self,
        mut reader: ColumnReaderImpl<T>,
        mut show: impl FnMut(&T::T, &mut String),
    ) -> Result<(), Stop> {
        // The name is scanned once per row group, at the record's root, as a JSON key is.
        let root = self.batch.meta("$");
        self.batch.push(
            self.column.name(),
            Place::Record {
                index: self.first_row,
                path: root,
            },
            crate::batch::EMPTY,
        );
        let max_def = self.column.max_def_level();
        let mut row = self.first_row;
        let (mut defs, mut values) = (Vec::new(), Vec::new());
        loop {
            defs.clear();
            values.clear();
            let (records, _, levels) = reader
                .read_records(RECORDS_PER_READ, Some(&mut defs), None, &mut values)
                .map_err(|err| Stop::format("Parquet", &err))?;
            if records == 0 {
                return Ok(());
            }
            // A required column has no levels: every record holds a value.
            let present: Box<dyn Iterator<Item = bool>> = if max_def == 0 {
                Box::new(std::iter::repeat_n(true, records))
            } else {
                Box::new(defs[..levels].iter().map(|level| *level == max_def))
            };
            let mut values = values.iter();
            for is_value in present {
                if is_value {
                    let Some(value) = values.next() else {
                        return Err(Stop::Malformed(format!(
                            "column {} has fewer values than its levels say",
                            self.column.name()
                        )));
                    };
                    self.text.clear();
                    show(value, &mut self.text);
                    let (path, context) = self.spans();
                    self.batch
                        .push(&self.text, Place::Record { index: row, path }, context);
                }
                row += 1;
            }
            if self.batch.len() >= BATCH_BYTES {
                self.session.scan(self.batch);
                self.batch.clear();
                self.spans = None;
            }
        }
    }
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
                    Field::Str(key) => records.map_key(key),
                    other => records.map_key(&other.to_string()),
                }
                value(records, element);
            }
            records.end_object();
        }
    }
}
