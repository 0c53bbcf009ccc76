//! CSV and TSV. The first row is taken as the header: each header cell is a keyword context for
//! its column's values (as in Macie), and is also scanned itself, in case the file has no header.

use std::borrow::Cow;
use std::io::BufRead;

use super::{BATCH_BYTES, Stop};
use crate::Session;
use crate::batch::{Batch, EMPTY, Place, Span};

/// UTF-8 if it is, else Latin-1.
pub(super) fn decode(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()),
    }
}

pub(super) fn read(
    reader: &mut impl BufRead,
    delimiter: u8,
    session: &mut Session<'_>,
) -> Result<(), Stop> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .buffer_capacity(64 << 10)
        .from_reader(reader);
    let mut record = csv::ByteRecord::new();
    // The header as written and lower-cased (the keyword context of its column).
    let mut header: Vec<(String, String)> = Vec::new();
    // The header's spans in the current batch's arena, stored again after each flush.
    let mut spans: Vec<(Span, Span)> = Vec::new();
    let mut batch = Batch::default();
    let mut row = 0u64;
    let mut consumed = 0u64;
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(err) => {
                session.scan(&batch);
                return Err(match err.into_kind() {
                    csv::ErrorKind::Io(io) => Stop::Io(io),
                    other => Stop::Malformed(format!("CSV row {}: {other:?}", row + 1)),
                });
            }
        }
        row += 1;
        if row == 1 {
            header = record
                .iter()
                .map(|field| {
                    let name = decode(field);
                    (name.trim().to_owned(), name.to_lowercase())
                })
                .collect();
        }
        if spans.len() != header.len() {
            spans = header
                .iter()
                .map(|(name, context)| (batch.meta(name), batch.meta(context)))
                .collect();
        }
        for (i, field) in record.iter().enumerate() {
            let (name, context) = match spans.get(i) {
                Some(&(name, context)) if row > 1 => (name, context),
                Some(&(name, _)) => (name, EMPTY),
                None => (EMPTY, EMPTY),
            };
            batch.push(
                &decode(field),
                Place::Cell {
                    row,
                    column: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    column_name: name,
                },
                context,
            );
        }
        if batch.len() >= BATCH_BYTES {
            session.scan(&batch);
            batch.clear();
            spans.clear();
        }
        let position = csv.position().byte();
        session.classified += position - consumed;
        consumed = position;
    }
    session.scan(&batch);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{Classifier, Config, Occurrence};

    #[test]
    fn a_header_is_a_keyword_for_its_column() {
        let csv = "name,ssn,notes\nJane,123-45-6789,x\nJohn,234-56-7890,also 345-67-8901\n";
        let report =
            Classifier::new(Config::default()).classify("people.csv", None, csv.as_bytes());
        let ssn = &report.detections[0];
        assert_eq!(ssn.identifier.label(), "USA_SOCIAL_SECURITY_NUMBER");
        // The notes column has no keyword: its number is not an SSN.
        assert_eq!(ssn.count, 2);
        assert_eq!(
            ssn.occurrences[1],
            Occurrence::Cell {
                row: 3,
                column: 2,
                column_name: "ssn".into()
            }
        );
        assert_eq!(report.size_classified, csv.len() as u64);
    }

    #[test]
    fn tsv_and_quoted_cells_with_delimiters_inside() {
        let tsv = "id\tcard number\n1\t\"4111 1111 1111 1111\"\n";
        let report = Classifier::new(Config::default()).classify("x.tsv", None, tsv.as_bytes());
        assert_eq!(
            report.detections[0].identifier.label(),
            "CREDIT_CARD_NUMBER"
        );
        let csv = "memo\n\"phone, call (206) 555-0100\"\n";
        let report = Classifier::new(Config::default()).classify("x.csv", None, csv.as_bytes());
        assert_eq!(report.detections[0].identifier.label(), "PHONE_NUMBER");
    }

    #[test]
    fn values_in_adjacent_cells_do_not_join() {
        // "123" and "45-6789" side by side must not read as 123-45-6789.
        let csv = "ssn,ssn\n123,45-6789\n";
        let report = Classifier::new(Config::default()).classify("x.csv", None, csv.as_bytes());
        assert!(report.detections.is_empty(), "{:?}", report.detections);
    }
}
