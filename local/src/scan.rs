//! `scan PATH...`: the built-in classifier on local files, to see what Macie would flag before
//! paying for a job, or to gate a CI pipeline on the exit code.

use std::io::Write;
use std::path::PathBuf;

use macie_classifier::{
    AllowList, Classifier, Config, CustomDefinition, CustomIdentifier, ObjectReport, Selection,
};
use serde_json::json;

/// How the results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

/// What a scan is asked to do.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub paths: Vec<PathBuf>,
    pub format: Format,
    /// A JSON file holding an array of custom data identifiers in Macie's
    /// CreateCustomDataIdentifier shape (name, regex, keywords, ignoreWords,
    /// maximumMatchDistance, severityLevels).
    pub custom_identifiers: Option<PathBuf>,
    /// Files of allow-list phrases, one per line.
    pub allow_words: Vec<PathBuf>,
    pub allow_regexes: Vec<String>,
    pub managed: Selection,
    pub size_limit: u64,
}

/// The worst thing a scan found, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Clean,
    /// Something could not be classified in full (and nothing sensitive was found).
    Unclassified,
    Sensitive,
}

/// Builds the classifier the options describe; every bad definition is an error naming it.
pub fn classifier(options: &ScanOptions) -> Result<Classifier, String> {
    let mut custom = Vec::new();
    if let Some(path) = &options.custom_identifiers {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        let definitions: Vec<CustomDefinition> = serde_json::from_str(&text).map_err(|err| {
            format!(
                "{}: expected a JSON array of custom data identifiers: {err}",
                path.display()
            )
        })?;
        for definition in definitions {
            custom.push(CustomIdentifier::new(definition).map_err(|err| err.to_string())?);
        }
    }
    let mut allow = AllowList::default();
    for path in &options.allow_words {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        allow.add_words(&text);
    }
    for regex in &options.allow_regexes {
        allow.add_regex(regex).map_err(|err| err.to_string())?;
    }
    Ok(Classifier::new(Config {
        managed: options.managed.clone(),
        custom,
        allow,
        size_limit: options.size_limit,
        ..Config::default()
    }))
}

/// Every file under `paths`, directories walked recursively, in a stable order.
fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut found = Vec::new();
    let mut pending: Vec<PathBuf> = paths.iter().rev().cloned().collect();
    while let Some(path) = pending.pop() {
        let meta = std::fs::metadata(&path)
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&path)
                .map_err(|err| format!("cannot list {}: {err}", path.display()))?
                .map(|entry| entry.map(|e| e.path()))
                .collect::<Result<_, _>>()
                .map_err(|err| format!("cannot list {}: {err}", path.display()))?;
            entries.sort();
            pending.extend(entries.into_iter().rev());
        } else {
            found.push(path);
        }
    }
    Ok(found)
}

fn verdict(report: &ObjectReport) -> Verdict {
    if report.is_sensitive() {
        Verdict::Sensitive
    } else if report.is_clean() {
        Verdict::Clean
    } else {
        Verdict::Unclassified
    }
}

fn summary(report: &ObjectReport) -> String {
    let found: Vec<String> = report
        .detections
        .iter()
        .map(|d| format!("{} x{}", d.identifier.label(), d.count))
        .collect();
    let mut parts = Vec::new();
    if let Some(severity) = report.severity() {
        parts.push(format!(
            "{} {}",
            severity.description(),
            report
                .finding_type()
                .unwrap_or_default()
                .trim_start_matches("SensitiveData:S3Object/")
        ));
        parts.push(found.join(", "));
    }
    if let Some(reason) = report.reason {
        parts.push(format!(
            "{} {reason}: {}",
            report.status.as_str(),
            report.detail.as_deref().unwrap_or("")
        ));
    }
    if parts.is_empty() {
        "clean".into()
    } else {
        parts.join("; ")
    }
}

/// Classifies the files on every core (each file is read as a stream, so memory stays small),
/// returning the reports in the files' order.
fn classify_all(classifier: &Classifier, files: &[PathBuf]) -> Vec<ObjectReport> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len().max(1));
    let mut results: Vec<(usize, ObjectReport)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(path) = files.get(i) else {
                            return done;
                        };
                        done.push((i, classifier.classify_file(path)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a classifier thread does not panic"))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, report)| report).collect()
}

/// Scans every file and prints the results; returns the worst verdict.
pub fn run(options: &ScanOptions, out: &mut impl Write) -> Result<Verdict, String> {
    let classifier = classifier(options)?;
    let files = files(&options.paths)?;
    let mut worst = Verdict::Clean;
    let mut counts = [0usize; 3];
    let mut entries = Vec::new();
    let write_err = |err: std::io::Error| format!("cannot write the results: {err}");
    for (path, report) in files.iter().zip(classify_all(&classifier, &files)) {
        let v = verdict(&report);
        counts[v as usize] += 1;
        worst = worst.max(v);
        match options.format {
            Format::Table => writeln!(out, "{}\t{}", path.display(), summary(&report)).map_err(write_err)?,
            Format::Json => entries.push(json!({
                "path": path.display().to_string(),
                "verdict": match v { Verdict::Clean => "clean", Verdict::Unclassified => "unclassified", Verdict::Sensitive => "sensitive" },
                "detail": report.detail,
                "severity": report.severity().map(|s| s.description()),
                "type": report.finding_type(),
                "result": report.macie_result(macie_classifier::MAX_KEPT_OCCURRENCES),
            })),
        }
    }
    let [clean, unclassified, sensitive] = counts;
    match options.format {
        Format::Table => writeln!(
            out,
            "{} file(s): {sensitive} with sensitive data, {unclassified} not classified in full, {clean} clean",
            files.len()
        )
        .map_err(write_err)?,
        Format::Json => writeln!(
            out,
            "{}",
            json!({"files": entries, "summary": {"files": files.len(), "sensitive": sensitive, "unclassified": unclassified, "clean": clean}})
        )
        .map_err(write_err)?,
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(paths: Vec<PathBuf>) -> ScanOptions {
        ScanOptions {
            paths,
            format: Format::Table,
            custom_identifiers: None,
            allow_words: Vec::new(),
            allow_regexes: Vec::new(),
            managed: Selection::All,
            size_limit: macie_classifier::DEFAULT_SIZE_LIMIT,
        }
    }

    #[test]
    fn the_worst_file_decides_and_every_file_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("clean.txt"), "nothing to see").unwrap();
        std::fs::write(dir.path().join("sub/photo.png"), b"\x89PNG").unwrap();
        let mut out = Vec::new();
        let verdict = run(&options(vec![dir.path().into()]), &mut out).unwrap();
        assert_eq!(verdict, Verdict::Unclassified);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("clean.txt\tclean"), "{text}");
        assert!(text.contains("UNSUPPORTED_FILE_TYPE_EXCEPTION"), "{text}");
        std::fs::write(dir.path().join("sub/keys.env"), "AKIAIOSFODNN7EXAMPLE").unwrap();
        let verdict = run(&options(vec![dir.path().into()]), &mut Vec::new()).unwrap();
        assert_eq!(verdict, Verdict::Sensitive);
    }

    #[test]
    fn custom_identifiers_and_allow_lists_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("parts.txt");
        std::fs::write(&data, "part P-AB1234, part P-ZZ9999").unwrap();
        let custom = dir.path().join("custom.json");
        std::fs::write(
            &custom,
            r#"[{"name": "part number", "regex": "P-[A-Z]{2}[0-9]{4}", "keywords": ["part"]}]"#,
        )
        .unwrap();
        let words = dir.path().join("allow.txt");
        std::fs::write(&words, "P-ZZ9999\n").unwrap();
        let mut opts = options(vec![data]);
        opts.custom_identifiers = Some(custom.clone());
        opts.allow_words = vec![words];
        opts.format = Format::Json;
        let mut out = Vec::new();
        assert_eq!(run(&opts, &mut out).unwrap(), Verdict::Sensitive);
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let detection = &json["files"][0]["result"]["customDataIdentifiers"]["detections"][0];
        assert_eq!(detection["name"], "part number");
        assert_eq!(detection["count"], 1);
        assert_eq!(
            json["files"][0]["type"],
            "SensitiveData:S3Object/CustomIdentifier"
        );
        // A definition Macie would refuse is an error that names it.
        std::fs::write(&custom, r#"[{"name": "bad", "regex": "(?=x)"}]"#).unwrap();
        let err = run(&opts, &mut Vec::new()).unwrap_err();
        assert!(
            err.contains("\"bad\"") && err.contains("lookahead"),
            "{err}"
        );
    }
}
