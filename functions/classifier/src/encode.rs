//! Writers of the binary formats the classifier reads, for tests and benches: a table (column
//! names and rows of text) as Parquet or Avro, and files as a ZIP or TAR archive. Each streams
//! what it is given, so a benchmark can write a 1 GiB input without holding it.

use std::io::{Seek, Write};
use std::sync::Arc;

use parquet::basic::{Compression, ConvertedType, Repetition, Type as PhysicalType};
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

/// A table as Parquet: one optional UTF-8 column per name (any name, spaces included),
/// `rows_per_group` rows in each row group, snappy-compressed as Spark writes by default.
pub fn parquet<W: Write + Send>(
    out: W,
    columns: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
    rows_per_group: usize,
) -> Result<W, String> {
    let err = |err: parquet::errors::ParquetError| err.to_string();
    let fields = columns
        .iter()
        .map(|name| {
            Type::primitive_type_builder(name, PhysicalType::BYTE_ARRAY)
                .with_repetition(Repetition::OPTIONAL)
                .with_converted_type(ConvertedType::UTF8)
                .build()
                .map(Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let schema = Arc::new(
        Type::group_type_builder("rows")
            .with_fields(fields)
            .build()
            .map_err(err)?,
    );
    let properties = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let mut writer = SerializedFileWriter::new(out, schema, properties).map_err(err)?;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let group: Vec<Vec<String>> = rows.by_ref().take(rows_per_group.max(1)).collect();
        let mut group_writer = writer.next_row_group().map_err(err)?;
        let mut column = 0;
        while let Some(mut column_writer) = group_writer.next_column().map_err(err)? {
            let values: Vec<ByteArray> = group
                .iter()
                .filter_map(|row| row.get(column))
                .map(|value| ByteArray::from(value.as_str()))
                .collect();
            let levels: Vec<i16> = group
                .iter()
                .map(|row| i16::from(row.get(column).is_some()))
                .collect();
            column_writer
                .typed::<ByteArrayType>()
                .write_batch(&values, Some(&levels), None)
                .map_err(err)?;
            column_writer.close().map_err(err)?;
            column += 1;
        }
        group_writer.close().map_err(err)?;
    }
    writer.into_inner().map_err(err)
}

/// A table as an Avro object container file: a record of optional strings, one per column
/// (names made valid Avro names: `card number` becomes `card_number`), snappy-compressed.
pub fn avro<W: Write>(
    out: W,
    columns: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
) -> Result<W, String> {
    use apache_avro::types::Value;
    let names: Vec<String> = columns.iter().map(|name| avro_name(name)).collect();
    let fields: Vec<serde_json::Value> = names
        .iter()
        .map(|name| serde_json::json!({"name": name, "type": ["null", "string"], "default": null}))
        .collect();
    let schema = apache_avro::Schema::parse(
        &serde_json::json!({"type": "record", "name": "row", "fields": fields}),
    )
    .map_err(|err| err.to_string())?;
    let mut writer = apache_avro::Writer::with_codec(&schema, out, apache_avro::Codec::Snappy)
        .map_err(|err| err.to_string())?;
    for row in rows {
        let record = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let value = match row.get(i) {
                    Some(text) => Value::Union(1, Box::new(Value::String(text.clone()))),
                    None => Value::Union(0, Box::new(Value::Null)),
                };
                (name.clone(), value)
            })
            .collect();
        writer
            .append_value(Value::Record(record))
            .map_err(|err| err.to_string())?;
    }
    writer.into_inner().map_err(|err| err.to_string())
}

fn avro_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    out
}

/// Files as a ZIP archive, deflated.
pub fn zip<W: Write + Seek>(
    out: W,
    files: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> Result<W, String> {
    let mut writer = zip::ZipWriter::new(out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in files {
        writer
            .start_file(name, options)
            .map_err(|err| err.to_string())?;
        writer.write_all(&bytes).map_err(|err| err.to_string())?;
    }
    writer.finish().map_err(|err| err.to_string())
}

/// Files as a TAR archive (GNU headers).
pub fn tar<W: Write>(
    out: W,
    files: impl IntoIterator<Item = (String, Vec<u8>)>,
) -> Result<W, String> {
    let mut builder = tar::Builder::new(out);
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, name, bytes.as_slice())
            .map_err(|err| err.to_string())?;
    }
    builder.into_inner().map_err(|err| err.to_string())
}
