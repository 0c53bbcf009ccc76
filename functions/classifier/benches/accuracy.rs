//! Precision and recall per identifier on the labelled corpus.
//!
//! `cargo bench -p macie-classifier --bench accuracy` (seed: `CLASSIFIER_SEED`, default 1;
//! documents: `CLASSIFIER_DOCUMENTS`, default 300). Prints a table, then one JSON line.

use std::collections::{BTreeMap, BTreeSet};

use macie_classifier::corpus::Generator;
use macie_classifier::{Classifier, Config};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Default, serde::Serialize)]
struct Score {
    true_positives: u64,
    false_positives: u64,
    false_negatives: u64,
}

fn main() {
    let seed = env("CLASSIFIER_SEED", 1);
    let documents = env("CLASSIFIER_DOCUMENTS", 300) as usize;
    let classifier = Classifier::new(Config {
        custom: macie_classifier::corpus::example_custom_identifiers(),
        ..Config::default()
    });
    let mut scores: BTreeMap<String, Score> = BTreeMap::new();
    let mut decoys = 0u64;
    for doc in Generator::new(seed).mixed(documents, 20_000, 0.4) {
        decoys += doc.decoys;
        let report = classifier.classify(&doc.name, None, doc.body.as_slice());
        let found: BTreeMap<String, u64> = report
            .detections
            .iter()
            .map(|d| (d.identifier.label().to_owned(), d.count))
            .collect();
        let ids: BTreeSet<String> = found
            .keys()
            .cloned()
            .chain(doc.planted.keys().map(|k| k.to_string()))
            .collect();
        for id in ids {
            let (f, p) = (
                found.get(&id).copied().unwrap_or(0),
                doc.planted.get(id.as_str()).copied().unwrap_or(0),
            );
            let score = scores.entry(id).or_default();
            score.true_positives += f.min(p);
            score.false_positives += f.saturating_sub(p);
            score.false_negatives += p.saturating_sub(f);
        }
    }
    println!(
        "seed {seed}, {documents} documents (text, CSV, JSON Lines; 20 kB each), {decoys} near-misses planted"
    );
    println!(
        "{:<42} {:>8} {:>8} {:>8} {:>10} {:>8}",
        "identifier", "planted", "found", "wrong", "precision", "recall"
    );
    let mut json = serde_json::Map::new();
    for (id, s) in &scores {
        let precision =
            s.true_positives as f64 / (s.true_positives + s.false_positives).max(1) as f64;
        let recall = s.true_positives as f64 / (s.true_positives + s.false_negatives).max(1) as f64;
        println!(
            "{id:<42} {:>8} {:>8} {:>8} {:>10.4} {:>8.4}",
            s.true_positives + s.false_negatives,
            s.true_positives,
            s.false_positives,
            precision,
            recall
        );
        json.insert(
            id.to_string(),
            serde_json::json!({"precision": precision, "recall": recall, "counts": s}),
        );
    }
    println!(
        "{}",
        serde_json::json!({"bench": "accuracy", "seed": seed, "documents": documents, "near_misses": decoys, "identifiers": json})
    );
}
