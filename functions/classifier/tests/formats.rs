//! Parquet, Avro, ZIP and TAR: planted values are found where they are, what cannot be read is
//! never reported clean, and Macie's archive quotas hold.

use std::io::{Cursor, Write};

use macie_classifier::encode;
use macie_classifier::{
    ArchiveLimits, Classifier, Config, ObjectReport, Occurrence, Status, TypeLimits,
};

const COLUMNS: &[&str] = &["name", "ssn", "notes"];

fn rows() -> Vec<Vec<String>> {
    vec![
        vec![
            "Jane".into(),
            "123-45-6789".into(),
            "card 4111 1111 1111 1111".into(),
        ],
        vec!["John".into(), "234-56-7890".into(), "nothing here".into()],
        vec![
            "Ann".into(),
            "not an ssn".into(),
            "call (206) 555-0100".into(),
        ],
    ]
}

fn classify(name: &str, bytes: &[u8]) -> ObjectReport {
    Classifier::new(Config::default()).classify(name, Some(bytes.len() as u64), bytes)
}

fn with(config: Config, name: &str, bytes: &[u8]) -> ObjectReport {
    Classifier::new(config).classify(name, Some(bytes.len() as u64), bytes)
}

/// Identifier label and count of each detection.
fn found(report: &ObjectReport) -> Vec<(String, u64)> {
    let mut found: Vec<_> = report
        .detections
        .iter()
        .map(|d| (d.identifier.label().to_owned(), d.count))
        .collect();
    found.sort();
    found
}

fn planted() -> Vec<(String, u64)> {
    vec![
        ("CREDIT_CARD_NUMBER".into(), 1),
        ("PHONE_NUMBER".into(), 1),
        ("USA_SOCIAL_SECURITY_NUMBER".into(), 2),
    ]
}

fn parquet_bytes(rows_per_group: usize) -> Vec<u8> {
    encode::parquet(Vec::new(), COLUMNS, rows(), rows_per_group).unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn zip(files: Vec<(&str, Vec<u8>)>) -> Vec<u8> {
    let files = files.into_iter().map(|(n, b)| (n.to_owned(), b));
    encode::zip(Cursor::new(Vec::new()), files)
        .unwrap()
        .into_inner()
}

fn tar(files: Vec<(&str, Vec<u8>)>) -> Vec<u8> {
    let files = files.into_iter().map(|(n, b)| (n.to_owned(), b));
    encode::tar(Vec::new(), files).unwrap()
}

fn csv() -> Vec<u8> {
    b"name,ssn\nJane,123-45-6789\n".to_vec()
}

#[test]
fn parquet_values_are_found_at_their_record_and_column() {
    // Two row groups: the second is read too, its records numbered on from the first.
    let bytes = parquet_bytes(2);
    let report = classify("exports/part-00000.snappy.parquet", &bytes);
    assert_eq!(report.status, Status::Complete, "{:?}", report.detail);
    assert_eq!(report.mime_type, "application/vnd.apache.parquet");
    assert_eq!(found(&report), planted());
    let ssn = report
        .detections
        .iter()
        .find(|d| d.identifier.label() == "USA_SOCIAL_SECURITY_NUMBER")
        .unwrap();
    // The column name is the SSN's keyword; the place is the record and the column's path.
    assert_eq!(
        ssn.occurrences,
        [
            Occurrence::Record {
                record_index: 0,
                json_path: "$.ssn".into()
            },
            Occurrence::Record {
                record_index: 1,
                json_path: "$.ssn".into()
            },
        ]
    );
    let phone = report
        .detections
        .iter()
        .find(|d| d.identifier.label() == "PHONE_NUMBER")
        .unwrap();
    assert_eq!(
        phone.occurrences,
        [Occurrence::Record {
            record_index: 2,
            json_path: "$.notes".into()
        }]
    );
    assert!(report.size_classified > 0);
    // From an open file (read in place) as from a stream (spooled): the same report.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    std::fs::write(&path, &bytes).unwrap();
    let from_file = Classifier::new(Config::default()).classify_file(&path);
    assert_eq!(found(&from_file), planted());
    assert_eq!(from_file.status, Status::Complete);
}

#[test]
fn a_column_name_is_scanned_once_per_row_group_not_once_per_row() {
    // Field names are the schema's, the same in every record.
    let columns = ["id", "card 4111 1111 1111 1111"];
    let rows: Vec<Vec<String>> = (0..50).map(|i| vec![i.to_string(), "x".into()]).collect();
    let bytes = encode::parquet(Vec::new(), &columns, rows, 7).unwrap();
    let report = classify("t.parquet", &bytes);
    assert_eq!(report.status, Status::Complete);
    // 50 rows in groups of 7: 8 row groups.
    assert_eq!(found(&report), [("CREDIT_CARD_NUMBER".to_owned(), 8)]);
}

/// A Parquet file with a `name` string column and a `dob` DATE column (days since 1970).
fn parquet_with_dates(days: &[i32]) -> Vec<u8> {
    use parquet::data_type::{ByteArray, ByteArrayType, Int32Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use std::sync::Arc;
    let schema = parquet::schema::parser::parse_message_type(
        "message people { REQUIRED BYTE_ARRAY name (UTF8); REQUIRED INT32 dob (DATE); }",
    )
    .unwrap();
    let mut writer = SerializedFileWriter::new(
        Vec::new(),
        Arc::new(schema),
        Arc::new(WriterProperties::builder().build()),
    )
    .unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut column = group.next_column().unwrap().unwrap();
    let names: Vec<ByteArray> = days.iter().map(|_| ByteArray::from("Jane")).collect();
    column
        .typed::<ByteArrayType>()
        .write_batch(&names, None, None)
        .unwrap();
    column.close().unwrap();
    let mut column = group.next_column().unwrap().unwrap();
    column
        .typed::<Int32Type>()
        .write_batch(days, None, None)
        .unwrap();
    column.close().unwrap();
    group.close().unwrap();
    writer.into_inner().unwrap()
}

#[test]
fn parquet_dates_are_read_as_dates_and_a_reader_panic_is_that_object_s_failure() {
    // 1990-04-12 is day 7406: a date of birth under the `dob` column.
    let report = classify("people.parquet", &parquet_with_dates(&[7406]));
    assert_eq!(report.status, Status::Complete, "{:?}", report.detail);
    assert_eq!(found(&report), [("DATE_OF_BIRTH".to_owned(), 1)]);
    assert_eq!(
        report.detections[0].occurrences,
        [Occurrence::Record {
            record_index: 0,
            json_path: "$.dob".into()
        }]
    );
    // A date past the calendar's end makes the Parquet library panic while it formats the row:
    // the object is reported unreadable, never clean, and the caller carries on.
    let report = classify("people.parquet", &parquet_with_dates(&[7406, i32::MAX]));
    assert!(!report.is_clean(), "{report:?}");
    assert_eq!(
        report.reason,
        Some("UNABLE_TO_PARSE_FILE"),
        "{:?}",
        report.detail
    );
    assert!(
        report
            .detail
            .as_deref()
            .unwrap()
            .contains("Parquet reader failed"),
        "{:?}",
        report.detail
    );
}

#[test]
fn avro_values_are_found_at_their_record_and_field() {
    let bytes = encode::avro(Vec::new(), COLUMNS, rows()).unwrap();
    let report = classify("events.avro", &bytes);
    assert_eq!(report.status, Status::Complete, "{:?}", report.detail);
    assert_eq!(report.mime_type, "application/avro");
    assert_eq!(found(&report), planted());
    let card = &report.detections[0];
    assert_eq!(card.identifier.label(), "CREDIT_CARD_NUMBER");
    assert_eq!(
        card.occurrences,
        [Occurrence::Record {
            record_index: 0,
            json_path: "$.notes".into()
        }]
    );
    // Under a name that says nothing, the bytes say Avro.
    assert_eq!(found(&classify("events-0001", &bytes)), planted());
}

#[test]
fn avro_map_keys_are_data_read_in_every_record() {
    use apache_avro::types::Value;
    let schema = apache_avro::Schema::parse_str(
        r#"{"type": "record", "name": "event", "fields": [
            {"name": "attributes", "type": {"type": "map", "values": "string"}}
        ]}"#,
    )
    .unwrap();
    let mut writer = apache_avro::Writer::new(&schema, Vec::new()).unwrap();
    for _ in 0..3 {
        let attributes = [("4111 1111 1111 1111".to_owned(), Value::String("x".into()))];
        writer
            .append_value(Value::Record(vec![(
                "attributes".into(),
                Value::Map(attributes.into_iter().collect()),
            )]))
            .unwrap();
    }
    let report = classify("events.avro", &writer.into_inner().unwrap());
    assert_eq!(report.status, Status::Complete, "{:?}", report.detail);
    let cards: u64 = report
        .detections
        .iter()
        .filter(|d| d.identifier.label().starts_with("CREDIT_CARD_NUMBER"))
        .map(|d| d.count)
        .sum();
    assert_eq!(cards, 3, "{:?}", found(&report));
}

#[test]
fn archives_are_read_file_by_file_and_nested() {
    let parquet = parquet_bytes(100);
    let inner = zip(vec![
        ("deep/table.parquet", parquet),
        ("readme.txt", b"nothing".to_vec()),
    ]);
    let bytes = tar(vec![
        ("export/people.csv", csv()),
        ("export/more.zip", inner),
        (
            "export/notes.json.gz",
            gzip(br#"{"memo": "call (206) 555-0199"}"#),
        ),
    ]);
    let expected = vec![
        ("CREDIT_CARD_NUMBER".to_owned(), 1),
        ("PHONE_NUMBER".into(), 2),
        ("USA_SOCIAL_SECURITY_NUMBER".into(), 3),
    ];
    let report = classify("bundle.tar", &bytes);
    assert_eq!(report.status, Status::Complete, "{:?}", report.detail);
    assert_eq!(report.mime_type, "application/x-tar");
    assert_eq!(found(&report), expected);
    // The same TAR gzip-compressed, under either name.
    for name in ["bundle.tgz", "bundle.tar.gz"] {
        let report = classify(name, &gzip(&bytes));
        assert_eq!(
            report.status,
            Status::Complete,
            "{name}: {:?}",
            report.detail
        );
        assert_eq!(report.mime_type, "application/gzip");
        assert_eq!(found(&report), expected, "{name}");
    }
    // And the other way round: a ZIP holding the TAR.
    let report = classify("outer.zip", &zip(vec![("bundle.tar", bytes)]));
    assert_eq!(report.mime_type, "application/zip");
    assert_eq!(found(&report), expected);
    // A clean archive is clean.
    let report = classify(
        "clean.zip",
        &zip(vec![("a.txt", b"hello".to_vec()), ("b/", Vec::new())]),
    );
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn an_archive_with_a_file_it_cannot_read_is_partial_and_names_it() {
    let bytes = zip(vec![
        ("people.csv", csv()),
        ("photo.png", b"\x89PNG\r\n".to_vec()),
        ("blob.dat", b"ab\0cd".to_vec()),
    ]);
    let report = classify("mixed.zip", &bytes);
    assert_eq!(report.status, Status::Partial);
    assert_eq!(report.reason, Some("ARCHIVE_CONTAINS_UNPROCESSED_FILES"));
    let detail = report.detail.clone().unwrap();
    assert!(detail.starts_with("2 of 3 files not analysed"), "{detail}");
    assert!(
        detail.contains("photo.png: UNSUPPORTED_FILE_TYPE_EXCEPTION"),
        "{detail}"
    );
    assert!(
        detail.contains("blob.dat: UNSUPPORTED_FILE_TYPE_EXCEPTION"),
        "{detail}"
    );
    // What it could read still counts.
    assert_eq!(
        found(&report),
        [("USA_SOCIAL_SECURITY_NUMBER".to_owned(), 1)]
    );
    // With nothing readable inside, the archive is skipped.
    let report = classify("photos.zip", &zip(vec![("photo.png", b"\x89PNG".to_vec())]));
    assert_eq!(report.status, Status::Skipped);
    assert_eq!(report.reason, Some("ARCHIVE_CONTAINS_UNPROCESSED_FILES"));
}

#[test]
fn an_encrypted_file_in_a_zip_is_named_and_holds_the_archive() {
    let mut bytes = zip(vec![
        ("people.csv", csv()),
        ("notes.txt", b"hello".to_vec()),
    ]);
    // Mark the first file encrypted (general purpose bit 0) in its local and central headers,
    // as a password-protected ZIP has it.
    let local = bytes.windows(4).position(|w| w == b"PK\x03\x04").unwrap();
    bytes[local + 6] |= 1;
    let central = bytes.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    bytes[central + 8] |= 1;
    let report = classify("locked.zip", &bytes);
    assert_eq!(report.reason, Some("ARCHIVE_CONTAINS_UNPROCESSED_FILES"));
    assert_eq!(report.status, Status::Partial, "the other file was read");
    let detail = report.detail.unwrap();
    assert!(detail.starts_with("1 of 2 files not analysed"), "{detail}");
    assert!(
        detail.contains("people.csv: UNSUPPORTED_FILE_TYPE_EXCEPTION"),
        "{detail}"
    );
    assert!(report.detections.is_empty());
}

#[test]
fn archive_quotas_stop_the_archive_with_their_reason() {
    let limits = |limits: ArchiveLimits| Config {
        archives: limits,
        ..Config::default()
    };
    // Nesting: three levels allowed, a fourth archive is not opened.
    let mut nested = csv();
    let mut name = "people.csv".to_owned();
    for level in 0..4 {
        nested = zip(vec![(&name, nested)]);
        name = format!("level{level}.zip");
    }
    let three = ArchiveLimits {
        max_depth: 3,
        ..ArchiveLimits::default()
    };
    let report = with(limits(three), &name, &nested);
    assert_eq!(report.reason, Some("ARCHIVE_NESTING_LEVEL_OVER_LIMIT"));
    assert_eq!(report.status, Status::Skipped);
    let four = ArchiveLimits {
        max_depth: 4,
        ..ArchiveLimits::default()
    };
    let report = with(limits(four), &name, &nested);
    assert_eq!(report.status, Status::Complete, "{:?}", report.detail);
    assert_eq!(
        found(&report),
        [("USA_SOCIAL_SECURITY_NUMBER".to_owned(), 1)]
    );
    // A gzip is a level too: no endless gzip-in-gzip.
    let mut gz = csv();
    for _ in 0..4 {
        gz = gzip(&gz);
    }
    let report = with(limits(three), "people.csv.gz.gz.gz.gz", &gz);
    assert_eq!(report.reason, Some("ARCHIVE_NESTING_LEVEL_OVER_LIMIT"));

    // Files: the first ones are read, then the archive stops.
    let files: Vec<_> = (0..5)
        .map(|i| (["a.csv", "b.csv", "c.csv", "d.csv", "e.csv"][i], csv()))
        .collect();
    let bytes = tar(files);
    let three_files = ArchiveLimits {
        max_files: 3,
        ..ArchiveLimits::default()
    };
    let report = with(limits(three_files), "many.tar", &bytes);
    assert_eq!(
        report.reason,
        Some("ARCHIVE_TOTAL_DOCUMENTS_PROCESSED_OVER_LIMIT")
    );
    assert_eq!(report.status, Status::Partial);
    assert_eq!(
        found(&report),
        [("USA_SOCIAL_SECURITY_NUMBER".to_owned(), 3)]
    );

    // Bytes extracted: a small archive that inflates past the quota.
    let bomb = zip(vec![("a.txt", vec![b'a'; 600]), ("b.txt", vec![b'b'; 600])]);
    let little = ArchiveLimits {
        max_extracted_bytes: 1000,
        ..ArchiveLimits::default()
    };
    let report = with(limits(little), "bomb.zip", &bomb);
    assert_eq!(
        report.reason,
        Some("ARCHIVE_TOTAL_BYTES_EXTRACTED_OVER_LIMIT")
    );
    assert!(!report.is_clean());
    // One member over the size limit is that member's reason, and the archive is partial.
    let big = zip(vec![("big.txt", vec![b'a'; 5000]), ("people.csv", csv())]);
    let config = Config {
        size_limit: 4000,
        ..Config::default()
    };
    let report = with(config, "big.zip", &big);
    assert_eq!(report.reason, Some("ARCHIVE_CONTAINS_UNPROCESSED_FILES"));
    assert!(
        report
            .detail
            .unwrap()
            .contains("big.txt: FILE_EXCEEDS_SIZE_LIMIT")
    );
}

#[test]
fn each_type_has_its_own_size_quota_as_in_macie() {
    let quotas = TypeLimits {
        columnar: 300,
        compressed: 300,
        tar: 50_000,
        text: 50_000,
    };
    let config = || Config {
        types: quotas,
        ..Config::default()
    };
    let parquet = parquet_bytes(100);
    assert!(parquet.len() > 300, "{}", parquet.len());
    let report = with(config(), "t.parquet", &parquet);
    assert_eq!(report.reason, Some("FILE_EXCEEDS_SIZE_LIMIT"), "{report:?}");
    assert_eq!(report.status, Status::Skipped);
    // An archive over its quota is not opened.
    let big = zip(vec![(
        "a.txt",
        (0..3000).map(|i| (i % 251) as u8 | 1).collect(),
    )]);
    assert!(big.len() > 300);
    let report = with(config(), "big.zip", &big);
    assert_eq!(report.reason, Some("ARCHIVE_EXCEEDS_SIZE_LIMIT"));
    // The same bytes as a TAR are within the TAR quota; text within the text quota.
    let tar_bytes = tar(vec![("people.csv", csv())]);
    assert_eq!(with(config(), "b.tar", &tar_bytes).status, Status::Complete);
    assert_eq!(
        with(config(), "people.csv", &csv()).status,
        Status::Complete
    );
    // A file inside an archive has its type's quota too.
    let inside = tar(vec![("t.parquet", parquet), ("people.csv", csv())]);
    let report = with(config(), "bundle.tar", &inside);
    assert_eq!(report.reason, Some("ARCHIVE_CONTAINS_UNPROCESSED_FILES"));
    assert!(
        report
            .detail
            .unwrap()
            .contains("t.parquet: FILE_EXCEEDS_SIZE_LIMIT")
    );
    // An archive inside over its quota is that file's reason; the outer archive has
    // unprocessed files (only nesting past the quota is the outer archive's own reason).
    let report = with(config(), "outer.tar", &tar(vec![("big.zip", big)]));
    assert_eq!(report.reason, Some("ARCHIVE_CONTAINS_UNPROCESSED_FILES"));
    let detail = report.detail.unwrap();
    assert!(
        detail.contains("big.zip: ARCHIVE_EXCEEDS_SIZE_LIMIT"),
        "{detail}"
    );
}

#[test]
fn broken_or_mislabelled_inputs_are_never_clean() {
    let parquet = parquet_bytes(100);
    let zip_bytes = zip(vec![("people.csv", csv())]);
    let avro = encode::avro(Vec::new(), COLUMNS, rows()).unwrap();
    let tar_bytes = tar(vec![("people.csv", csv())]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("table.parquet", parquet[..parquet.len() / 2].to_vec()),
        ("table.parquet", b"name,ssn\n".to_vec()),
        ("bundle.zip", zip_bytes[..zip_bytes.len() - 10].to_vec()),
        ("bundle.zip", b"just text".to_vec()),
        ("events.avro", avro[..avro.len() - 20].to_vec()),
        ("events.avro", b"{\"a\": 1}".to_vec()),
        ("bundle.tar", tar_bytes[..700].to_vec()),
        ("bundle.tgz", gzip(&tar_bytes)[..40].to_vec()),
    ];
    for (name, bytes) in cases {
        let report = classify(name, &bytes);
        assert!(
            !report.is_clean(),
            "{name} ({} bytes) read as clean: {report:?}",
            bytes.len()
        );
        assert_ne!(report.status, Status::Complete, "{name}");
        assert!(report.reason.is_some(), "{name}");
    }
    // A truncated Parquet file has no footer: nothing was read, and it says so.
    let report = classify("table.parquet", &parquet[..parquet.len() / 2]);
    assert_eq!(report.status, Status::Skipped);
    assert_eq!(report.reason, Some("MALFORMED_FILE"));
}
