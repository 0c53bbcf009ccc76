//! Peak memory while scanning large files: 1 GiB of CSV, of JSON (one array), of Parquet, of
//! Avro, and of ZIP and TAR archives of CSV files, each generated to a temporary directory
//! first. Peak RSS is the process's high-water mark (`VmHWM`), reset before each scan
//! (`/proc/self/clear_refs`, Linux >= 4.0) so that generating the file does not count; where the
//! reset is refused, the figure says so. Each line also gives the values planted in the file
//! and the detections found, which must be equal.
//!
//! `cargo bench -p macie-classifier --bench memory` (size: `CLASSIFIER_GIB`, default 1, or
//! `CLASSIFIER_MIB`; formats:
//! `CLASSIFIER_FORMATS`, default `csv,json,parquet,avro,zip,tar`).

use std::io::{BufWriter, Cursor, Write};
use std::time::Instant;

use macie_classifier::corpus::{Document, Generator, Kind};
use macie_classifier::{Classifier, Config, MANAGED, encode};

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// 4 MiB CSV documents until `target` bytes, counting the managed values planted in them.
struct Documents {
    generator: Generator,
    target: u64,
    written: u64,
    planted: u64,
}

impl Documents {
    fn new(target: u64) -> Self {
        Self {
            generator: Generator::new(3),
            target,
            written: 0,
            planted: 0,
        }
    }

    fn next_document(&mut self, kind: Kind) -> Option<Document> {
        if self.written >= self.target {
            return None;
        }
        let doc = self.generator.document(kind, 4 << 20, 0.05);
        self.written += doc.body.len() as u64;
        self.planted += doc
            .planted
            .iter()
            .filter(|(label, _)| MANAGED.iter().any(|m| m.id == **label))
            .map(|(_, n)| n)
            .sum::<u64>();
        Some(doc)
    }
}

const COLUMNS: &[&str] = &["id", "name", "card number", "ssn", "notes"];

/// The rows of CSV documents, for the tabular formats.
fn rows(docs: &mut Documents) -> impl Iterator<Item = Vec<String>> + '_ {
    std::iter::from_fn(move || docs.next_document(Kind::Csv)).flat_map(|doc| {
        let mut reader = csv::Reader::from_reader(Cursor::new(doc.body));
        reader
            .records()
            .map(|r| {
                r.expect("csv")
                    .iter()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    })
}

/// Writes the file for `format`; returns its size and the values planted in it.
fn write(format: &str, path: &std::path::Path, target: u64) -> (u64, u64) {
    let file = std::fs::File::create(path).expect("create");
    let mut docs = Documents::new(target);
    match format {
        "csv" | "json" => {
            let mut out = BufWriter::new(file);
            let json = format == "json";
            let kind = if json { Kind::JsonLines } else { Kind::Csv };
            if json {
                out.write_all(b"[\n").expect("write");
            }
            let mut first = true;
            while let Some(doc) = docs.next_document(kind) {
                let body = if json {
                    // JSON Lines records joined into one array.
                    let lines = String::from_utf8(doc.body).expect("utf-8");
                    let mut joined = lines.trim_end().replace('\n', ",\n");
                    if !first {
                        joined.insert_str(0, ",\n");
                    }
                    joined.into_bytes()
                } else if !first {
                    // One header only.
                    let at = doc
                        .body
                        .iter()
                        .position(|b| *b == b'\n')
                        .map_or(0, |i| i + 1);
                    doc.body[at..].to_vec()
                } else {
                    doc.body
                };
                first = false;
                out.write_all(&body).expect("write");
            }
            if json {
                out.write_all(b"\n]\n").expect("write");
            }
            out.into_inner().expect("flush");
        }
        "parquet" => {
            encode::parquet(BufWriter::new(file), COLUMNS, rows(&mut docs), 100_000)
                .expect("parquet");
        }
        "avro" => {
            encode::avro(BufWriter::new(file), COLUMNS, rows(&mut docs)).expect("avro");
        }
        "zip" | "tar" => {
            let files = std::iter::from_fn(|| docs.next_document(Kind::Csv))
                .map(|doc| (doc.name, doc.body));
            if format == "zip" {
                encode::zip(BufWriter::new(file), files).expect("zip");
            } else {
                encode::tar(BufWriter::new(file), files).expect("tar");
            }
        }
        other => panic!("unknown format {other}"),
    }
    let size = std::fs::metadata(path).expect("metadata").len();
    (size, docs.planted)
}

/// Runs this bench again to write one file; the child prints its size and planted count.
fn write_in_child(format: &str, path: &std::path::Path, target: u64) -> (u64, u64) {
    let output = std::process::Command::new(std::env::current_exe().expect("current exe"))
        .env(WRITE_VAR, format!("{format}:{target}:{}", path.display()))
        .output()
        .expect("run the writer");
    assert!(output.status.success(), "writer failed: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut figures = text
        .split_whitespace()
        .map(|n| n.parse::<u64>().expect("a number"));
    (figures.next().unwrap(), figures.next().unwrap())
}

const WRITE_VAR: &str = "CLASSIFIER_MEMORY_WRITE";

fn main() {
    if let Ok(job) = std::env::var(WRITE_VAR) {
        let mut parts = job.splitn(3, ':');
        let (format, target, path) = (
            parts.next().unwrap(),
            parts.next().unwrap().parse().unwrap(),
            parts.next().unwrap(),
        );
        let (size, planted) = write(format, std::path::Path::new(path), target);
        println!("{size} {planted}");
        return;
    }
    let gib: u64 = std::env::var("CLASSIFIER_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let formats = std::env::var("CLASSIFIER_FORMATS")
        .unwrap_or_else(|_| "csv,json,parquet,avro,zip,tar".to_owned());
    // CLASSIFIER_MIB, when set, overrides the size (for a quick look).
    let target = std::env::var("CLASSIFIER_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(gib << 30, |mib| mib << 20);
    let dir = std::env::temp_dir().join(format!("classifier-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let classifier = Classifier::new(Config::default());
    let mut results = Vec::new();
    for format in formats.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let name = format!("big.{format}");
        let path = dir.join(&name);
        // What a file holds is 1 GiB of data before compression: the archives and columnar
        // files are smaller on disk.
        // Written by a child process: the writers' buffers (a Parquet row group is held until
        // it is written) would otherwise stay in this process's RSS and hide the scan's peak.
        let (size, planted) = write_in_child(format, &path, target);
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let before = peak_rss_kib();
        let started = Instant::now();
        let report = classifier.classify_file(&path);
        let seconds = started.elapsed().as_secs_f64();
        let after = peak_rss_kib();
        std::fs::remove_file(&path).ok();
        let found: u64 = report.detections.iter().map(|d| d.count).sum();
        println!(
            "{name}: {:.2} GiB on disk, {:.2} GiB classified, status {}, {found} detections of {planted} planted, {seconds:.1} s ({:.0} MB/s of data), peak RSS during the scan {:.1} MiB ({} {:.1} MiB)",
            size as f64 / (1u64 << 30) as f64,
            report.size_classified as f64 / (1u64 << 30) as f64,
            report.status.as_str(),
            target as f64 / 1e6 / seconds,
            after as f64 / 1024.0,
            if reset {
                "RSS when it started"
            } else {
                "peak could not be reset; before the scan"
            },
            before as f64 / 1024.0
        );
        results.push(serde_json::json!({"file": name, "bytes_on_disk": size, "data_bytes": target, "seconds": seconds, "peak_rss_mib": after as f64 / 1024.0, "peak_reset": reset, "status": report.status.as_str(), "planted": planted, "found": found}));
    }
    std::fs::remove_dir_all(&dir).ok();
    println!(
        "{}",
        serde_json::json!({"bench": "memory", "files": results})
    );
}
