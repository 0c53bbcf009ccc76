//! Single-core throughput on a mixed corpus (text, CSV, JSON Lines; ~5% of lines carry a planted
//! value or a near-miss).
//!
//! `cargo bench -p macie-classifier --bench throughput` (size: at least `CLASSIFIER_MB`, default
//! 100, in whole 1 MB documents).
//! Prints a table, then one JSON line.

use std::time::Instant;

use macie_classifier::corpus::{Generator, Kind};
use macie_classifier::{Classifier, Config};

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
    println!(
        "{}",
        serde_json::json!({"bench": "throughput", "mb_per_s": overall, "formats": results})
    );
}
