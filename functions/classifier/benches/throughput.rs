//! Single-core throughput on a mixed corpus (text, CSV, JSON Lines; ~5% of lines carry a planted
//! value or a near-miss), then the same CSV documents as Parquet, Avro, gzip, ZIP and TAR
//! objects, in MB/s of the data they hold (the CSV's bytes), with their detections against the
//! CSV's. ZIP and Parquet given as a stream are copied to a temporary file first; that is
//! counted.
//!
//! `cargo bench -p macie-classifier --bench throughput` (size: at least `CLASSIFIER_MB`, default
//! 100, in whole 1 MB documents).
//! Prints a table, then one JSON line.

use std::time::Instant;

use std::io::{Cursor, Write};

use macie_classifier::corpus::{Document, Generator, Kind};
use macie_classifier::{Classifier, Config, encode};

const COLUMNS: &[&str] = &["id", "name", "card number", "ssn", "notes"];

/// A CSV document's rows (header left out).
fn rows(doc: &Document) -> Vec<Vec<String>> {
    csv::Reader::from_reader(doc.body.as_slice())
        .records()
        .map(|r| r.expect("csv").iter().map(str::to_owned).collect())
        .collect()
}

/// The document as an object of `format`: its name and bytes.
fn encoded(format: &str, doc: &Document) -> (String, Vec<u8>) {
    let stem = doc.name.trim_end_matches(".csv");
    let bytes = match format {
        "parquet" => encode::parquet(Vec::new(), COLUMNS, rows(doc), 100_000).expect("parquet"),
        "avro" => encode::avro(Vec::new(), COLUMNS, rows(doc)).expect("avro"),
        "csv.gz" => {
            let mut out = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            out.write_all(&doc.body).expect("gzip");
            out.finish().expect("gzip")
        }
        "zip" => encode::zip(
            Cursor::new(Vec::new()),
            [(doc.name.clone(), doc.body.clone())],
        )
        .expect("zip")
        .into_inner(),
        "tar" => encode::tar(Vec::new(), [(doc.name.clone(), doc.body.clone())]).expect("tar"),
        other => panic!("unknown format {other}"),
    };
    (format!("{stem}.{format}"), bytes)
}

fn main() {
    let megabytes: usize = std::env::var("CLASSIFIER_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let classifier = Classifier::new(Config::default());
    let mut generator = Generator::new(1);
    // At least `megabytes` in all: whole 1 MB documents, a third of them per format.
    let per_kind = megabytes.div_ceil(3);
    let mut results = Vec::new();
    let (mut total_bytes, mut total_seconds) = (0usize, 0f64);
    for (label, kind) in [
        ("text", Kind::Text),
        ("csv", Kind::Csv),
        ("jsonl", Kind::JsonLines),
    ] {
        // 1 MB documents, as objects in a data lake are usually larger than a line.
        let docs: Vec<_> = (0..per_kind)
            .map(|_| generator.document(kind, 1_000_000, 0.05))
            .collect();
        let bytes: usize = docs.iter().map(|d| d.body.len()).sum();
        let started = Instant::now();
        let mut detections = 0u64;
        for doc in &docs {
            let report = classifier.classify(&doc.name, None, doc.body.as_slice());
            detections += report.detections.iter().map(|d| d.count).sum::<u64>();
        }
        let seconds = started.elapsed().as_secs_f64();
        total_bytes += bytes;
        total_seconds += seconds;
        println!(
            "{label:<6} {:>8.1} MB in {seconds:>6.2} s = {:>7.1} MB/s ({detections} detections)",
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / seconds
        );
        results.push(serde_json::json!({"format": label, "bytes": bytes, "seconds": seconds, "mb_per_s": bytes as f64 / 1e6 / seconds}));
    }
    let overall = total_bytes as f64 / 1e6 / total_seconds;
    println!(
        "mixed  {:>8.1} MB in {total_seconds:>6.2} s = {overall:>7.1} MB/s (one core)",
        total_bytes as f64 / 1e6
    );
    // The CSV documents again, in each container or binary format.
    let docs: Vec<_> = (0..per_kind)
        .map(|_| generator.document(Kind::Csv, 1_000_000, 0.05))
        .collect();
    let data: usize = docs.iter().map(|d| d.body.len()).sum();
    let count = |name: &str, bytes: &[u8]| -> u64 {
        let report = classifier.classify(name, Some(bytes.len() as u64), bytes);
        assert_eq!(
            report.status.as_str(),
            "COMPLETE",
            "{name}: {:?}",
            report.detail
        );
        report.detections.iter().map(|d| d.count).sum()
    };
    let expected: u64 = docs.iter().map(|d| count(&d.name, &d.body)).sum();
    let mut containers = Vec::new();
    for format in ["parquet", "avro", "csv.gz", "zip", "tar"] {
        let objects: Vec<_> = docs.iter().map(|doc| encoded(format, doc)).collect();
        let stored: usize = objects.iter().map(|(_, b)| b.len()).sum();
        let started = Instant::now();
        let detections: u64 = objects.iter().map(|(name, bytes)| count(name, bytes)).sum();
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{format:<7} {:>7.1} MB of data ({:.1} MB stored) in {seconds:>6.2} s = {:>7.1} MB/s ({detections} detections, {expected} in the CSV)",
            data as f64 / 1e6,
            stored as f64 / 1e6,
            data as f64 / 1e6 / seconds
        );
        containers.push(serde_json::json!({"format": format, "data_bytes": data, "stored_bytes": stored, "seconds": seconds, "mb_per_s": data as f64 / 1e6 / seconds, "detections": detections, "csv_detections": expected}));
    }
    println!(
        "{}",
        serde_json::json!({"bench": "throughput", "mb_per_s": overall, "formats": results, "containers": containers})
    );
}
