//! Peak memory while scanning large files: a 1 GiB CSV and a 1 GiB JSON document (one array),
//! generated to a temporary directory first. Peak RSS is the process's high-water mark
//! (`VmHWM`), reset before each scan (`/proc/self/clear_refs`, Linux >= 4.0) so that generating
//! the file does not count; where the reset is refused, the figure says so.
//!
//! `cargo bench -p macie-classifier --bench memory` (size: `CLASSIFIER_GIB`, default 1).

use std::io::{BufWriter, Write};
use std::time::Instant;

use macie_classifier::corpus::{Generator, Kind};
use macie_classifier::{Classifier, Config};

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

fn main() {
    let gib: u64 = std::env::var("CLASSIFIER_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let target = gib << 30;
    let dir = std::env::temp_dir().join(format!("classifier-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let classifier = Classifier::new(Config::default());
    let mut results = Vec::new();
    for (name, kind) in [("big.csv", Kind::Csv), ("big.json", Kind::JsonLines)] {
        let path = dir.join(name);
        let mut out = BufWriter::new(std::fs::File::create(&path).expect("create"));
        let mut generator = Generator::new(3);
        let mut written = 0u64;
        let json = name.ends_with(".json");
        if json {
            out.write_all(b"[\n").expect("write");
        }
        while written < target {
            let doc = generator.document(kind, 4 << 20, 0.05);
            let body = if json {
                // JSON Lines records joined into one array.
                let lines = String::from_utf8(doc.body).expect("utf-8");
                let mut joined = lines.trim_end().replace('\n', ",\n");
                if written > 0 {
                    joined.insert_str(0, ",\n");
                }
                joined.into_bytes()
            } else if written > 0 {
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
            out.write_all(&body).expect("write");
            written += body.len() as u64;
        }
        if json {
            out.write_all(b"\n]\n").expect("write");
        }
        out.flush().expect("flush");
        drop(out);
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let before = peak_rss_kib();
        let started = Instant::now();
        let report = classifier.classify_file(&path);
        let seconds = started.elapsed().as_secs_f64();
        let after = peak_rss_kib();
        std::fs::remove_file(&path).ok();
        println!(
            "{name}: {:.2} GiB, status {}, {} detections, {seconds:.1} s ({:.0} MB/s), peak RSS during the scan {:.1} MiB ({} {:.1} MiB)",
            written as f64 / (1u64 << 30) as f64,
            report.status.as_str(),
            report.detections.iter().map(|d| d.count).sum::<u64>(),
            written as f64 / 1e6 / seconds,
            after as f64 / 1024.0,
            if reset {
                "RSS when it started"
            } else {
                "peak could not be reset; before the scan"
            },
            before as f64 / 1024.0
        );
        results.push(serde_json::json!({"file": name, "bytes": written, "seconds": seconds, "peak_rss_mib": after as f64 / 1024.0, "peak_reset": reset, "status": report.status.as_str()}));
    }
    std::fs::remove_dir_all(&dir).ok();
    println!(
        "{}",
        serde_json::json!({"bench": "memory", "files": results})
    );
}
