//! A Macie-compatible sensitive-data classifier.
//!
//! It finds what Amazon Macie's managed data identifiers find (card numbers with Luhn and issuer
//! checks, SSNs with their range rules, AWS credentials, private keys, IBANs with mod-97, and the
//! keyword-bound identifiers), applies custom data identifiers and allow lists with Macie's
//! semantics, and reports per object in Macie's shape: status, detections with counts and
//! occurrences, severity and finding type. It reads plain text (UTF-8 or Latin-1), CSV/TSV, JSON
//! and JSON Lines, Parquet and Avro, in gzip, ZIP and TAR archives or not, with bounded memory. What it cannot read
//! is reported as SKIPPED or PARTIAL with Macie's reason, never as clean.
//!
//! ```
//! use macie_classifier::{Classifier, Config};
//! let classifier = Classifier::new(Config::default());
//! let report = classifier.classify("customers.csv", None, "name,ssn\nJane,123-45-6789\n".as_bytes());
//! assert_eq!(report.detections[0].identifier.label(), "USA_SOCIAL_SECURITY_NUMBER");
//! ```

mod batch;
pub mod checks;
pub mod corpus;
pub mod custom;
pub mod encode;
pub mod identifier;
mod input;
mod keywords;
mod managed;
pub mod report;

use std::io::Read;
use std::path::Path;

pub use batch::Occurrence;
pub use custom::{AllowList, CustomDefinition, CustomIdentifier, DefinitionError};
pub use identifier::{Category, MANAGED, Managed, Selection};
pub use input::mime_type;
pub use report::{Detection, Identifier, ObjectReport, Severity, Status};

use batch::{Batch, Locator};
use managed::{ManagedMatcher, Surroundings};

/// Occurrences kept per identifier and object: Macie's discovery results list up to 1,000.
pub const MAX_KEPT_OCCURRENCES: usize = 1000;

/// Default limit on an object's (decompressed) size. Macie's quotas differ by file type; this
/// classifier uses one limit, which callers set (the local Macie uses its own option).
pub const DEFAULT_SIZE_LIMIT: u64 = 20 << 30;

/// What a classification job uses.
#[derive(Debug, Clone)]
pub struct Config {
    pub managed: Selection,
    pub custom: Vec<CustomIdentifier>,
    pub allow: AllowList,
    /// Objects larger than this (before or after decompression) are not classified in full.
    pub size_limit: u64,
    /// How far into archives the classifier goes.
    pub archives: ArchiveLimits,
    /// Macie's size quotas by file type, applied to an object's stored size besides
    /// `size_limit`.
    pub types: TypeLimits,
}

/// Macie's per-type quotas on an object's stored size (its quotas page: Avro, Parquet, gzip and
/// ZIP 8 GB, text and TAR 20 GB; read here as GiB). An object over its type's quota is not
/// analysed: `FILE_EXCEEDS_SIZE_LIMIT`, or `ARCHIVE_EXCEEDS_SIZE_LIMIT` for an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeLimits {
    /// Avro and Parquet.
    pub columnar: u64,
    /// gzip and ZIP.
    pub compressed: u64,
    /// TAR.
    pub tar: u64,
    /// Text, CSV/TSV, JSON and JSON Lines.
    pub text: u64,
}

impl Default for TypeLimits {
    fn default() -> Self {
        Self {
            columnar: 8 << 30,
            compressed: 8 << 30,
            tar: 20 << 30,
            text: 20 << 30,
        }
    }
}

/// Macie's quotas for archives (ZIP, TAR and gzip, nested in each other): what is past them
/// is not analysed, and the archive is reported with the quota's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Levels of archives inside archives (the outermost is the first).
    pub max_depth: u32,
    /// Files in an archive, nested ones included.
    pub max_files: u64,
    /// Bytes all the files of an archive inflate to.
    pub max_extracted_bytes: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        Self {
            max_depth: 10,
            max_files: 1_000_000,
            max_extracted_bytes: 10 << 30,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            managed: Selection::All,
            custom: Vec::new(),
            allow: AllowList::default(),
            size_limit: DEFAULT_SIZE_LIMIT,
            archives: ArchiveLimits::default(),
            types: TypeLimits::default(),
        }
    }
}

/// A compiled classifier; cheap to share between threads.
#[derive(Debug, Clone)]
pub struct Classifier {
    config: Config,
    managed: ManagedMatcher,
}

impl Classifier {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            managed: ManagedMatcher::new(),
        }
    }

    /// Classifies one object read from `body`. `name` (key or file name) gives the format by
    /// its extension; `size`, when known, lets an oversized object be skipped without reading.
    ///
    /// ZIP archives and Parquet files are read from a temporary file (their index is at the
    /// end); a caller with the object in a file passes it to [`Classifier::classify_open_file`]
    /// instead.
    pub fn classify<'a>(
        &self,
        name: &str,
        size: Option<u64>,
        body: impl Read + 'a,
    ) -> ObjectReport {
        input::classify(self, name, size, input::Body::Stream(Box::new(body)))
    }

    /// Classifies an object held in an open file, read from wherever its format needs.
    pub fn classify_open_file(&self, name: &str, file: std::fs::File) -> ObjectReport {
        let size = file.metadata().ok().map(|m| m.len());
        input::classify(self, name, size, input::Body::File(file))
    }

    /// Classifies a file.
    pub fn classify_file(&self, path: &Path) -> ObjectReport {
        let name = path.to_string_lossy();
        match std::fs::File::open(path) {
            Ok(file) => self.classify_open_file(&name, file),
            Err(err) => input::unreadable(&name, &err),
        }
    }
}

/// Per-identifier running totals.
#[derive(Debug, Default, Clone)]
struct Tally {
    count: u64,
    occurrences: Vec<Occurrence>,
}

impl Tally {
    fn add(&mut self, occurrence: Occurrence) {
        self.count += 1;
        if self.occurrences.len() < MAX_KEPT_OCCURRENCES {
            self.occurrences.push(occurrence);
        }
    }
}

/// One object's classification in progress.
struct Session<'c> {
    classifier: &'c Classifier,
    /// Managed identifiers (in [`MANAGED`] order), then custom ones.
    tallies: Vec<Tally>,
    classified: u64,
}

impl<'c> Session<'c> {
    fn new(classifier: &'c Classifier) -> Self {
        Self {
            classifier,
            tallies: vec![Tally::default(); MANAGED.len() + classifier.config.custom.len()],
            classified: 0,
        }
    }

    /// Runs every identifier over a batch.
    fn scan(&mut self, batch: &Batch) {
        let config = &self.classifier.config;
        let text = batch.text.as_str();
        if config.managed != Selection::None {
            let matcher = &self.classifier.managed;
            let mut locator = Locator::new(batch);
            let mut at = 0;
            while let Some((shape, start, end)) = matcher.find_at(text, at) {
                at = matcher.resume_after_miss(shape, text, start, end);
                let Some(cell) = locator.cell(start, end) else {
                    continue;
                };
                let around = Surroundings {
                    cell: &text[cell.start..cell.end],
                    cell_start: cell.start,
                    context: batch.meta_str(cell.context),
                };
                let Some(hit) = matcher.validate(shape, text, start, end, &around) else {
                    continue;
                };
                // What was reported is consumed; what the candidate matched beyond it is not.
                at = hit.end.max(start + 1);
                if !config.managed.includes(MANAGED[hit.identifier].id)
                    || config.allow.allows(&text[hit.start..hit.end])
                {
                    continue;
                }
                let occurrence = locator.occurrence(cell, hit.start);
                self.tallies[hit.identifier].add(occurrence);
            }
        }
        for (i, identifier) in config.custom.iter().enumerate() {
            let mut locator = Locator::new(batch);
            for (start, end) in identifier.find_iter(text) {
                let Some(cell) = locator.cell(start, end) else {
                    continue;
                };
                let cell_text = &text[cell.start..cell.end];
                if !identifier.accepts(
                    cell_text,
                    start - cell.start,
                    end - cell.start,
                    batch.meta_str(cell.context),
                ) || config.allow.allows(&text[start..end])
                {
                    continue;
                }
                let occurrence = locator.occurrence(cell, start);
                self.tallies[MANAGED.len() + i].add(occurrence);
            }
        }
    }

    /// The report: detections that count (custom ones below their lowest threshold do not).
    fn finish(
        self,
        status: Status,
        reason: Option<&'static str>,
        detail: Option<String>,
        mime_type: &'static str,
    ) -> ObjectReport {
        let custom = &self.classifier.config.custom;
        let detections = self
            .tallies
            .into_iter()
            .enumerate()
            .filter(|(_, t)| t.count > 0)
            .filter_map(|(i, tally)| {
                let (identifier, severity) = match MANAGED.get(i) {
                    Some(m) => (
                        Identifier::Managed(m),
                        Severity::managed(m.category, tally.count),
                    ),
                    None => {
                        let c = &custom[i - MANAGED.len()];
                        (
                            Identifier::Custom {
                                id: c.id.clone(),
                                name: c.name.clone(),
                                arn: c.arn.clone(),
                            },
                            c.severity(tally.count)?,
                        )
                    }
                };
                Some(Detection {
                    identifier,
                    count: tally.count,
                    occurrences: tally.occurrences,
                    severity,
                })
            })
            .collect();
        ObjectReport {
            status,
            reason,
            detail,
            mime_type,
            size_classified: self.classified,
            detections,
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the bytes and whatever the name says, classification ends with a report
        /// that is never "clean" unless the whole input was read.
        #[test]
        fn any_input_gets_a_report(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            name in prop::sample::select(vec!["a.txt", "a.csv", "a.tsv", "a.json", "a.jsonl", "a.gz", "a.csv.gz", "a", "a.png", "a.zip", "a.tar", "a.tgz", "a.parquet", "a.avro"]),
        ) {
            let report = Classifier::new(Config::default()).classify(name, Some(bytes.len() as u64), bytes.as_slice());
            if report.is_clean() {
                prop_assert_eq!(report.reason, None);
            } else if report.status != Status::Complete {
                prop_assert!(report.reason.is_some());
            }
            prop_assert!(report.size_classified <= bytes.len() as u64 || name.ends_with(".gz"));
        }

        /// A valid card number is found wherever it sits between words, in any format.
        #[test]
        fn a_card_is_found_among_any_words(
            before in "[a-z ]{0,60}",
            after in "[a-z ]{0,60}",
            name in prop::sample::select(vec!["a.txt", "a.csv", "a.jsonl"]),
        ) {
            let sentence = format!("{before} 4111 1111 1111 1111 {after}");
            let body = match name {
                "a.jsonl" => serde_json::json!({ "note": sentence }).to_string(),
                "a.csv" => format!("note\n\"{sentence}\"\n"),
                _ => sentence,
            };
            let report = Classifier::new(Config::default()).classify(name, None, body.as_bytes());
            let cards: u64 = report
                .detections
                .iter()
                .filter(|d| d.identifier.label().starts_with("CREDIT_CARD_NUMBER"))
                .map(|d| d.count)
                .sum();
            prop_assert_eq!(cards, 1);
        }
    }
}
