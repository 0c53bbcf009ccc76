//! Reading objects: format by extension, gzip by magic bytes, a size limit enforced while
//! streaming, binary content refused, and each format cut into batches of cells.

mod delimited;
mod json;
mod text;

use std::io::{self, BufRead, BufReader, Read};

use crate::report::{ObjectReport, Status};
use crate::{Classifier, Session};

/// Bytes of the start of an object searched for NUL to tell binary from text.
const SNIFF_BYTES: usize = 8192;
/// Batches are scanned once they hold this much text.
pub(crate) const BATCH_BYTES: usize = 256 << 10;

/// Formats Macie does not analyse (media, executables) and formats it analyses but this
/// classifier does not parse (office documents, PDF, archives other than gzip, Avro, Parquet):
/// both are reported as unsupported, so the pipeline holds them for review.
const UNSUPPORTED_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp", "heic", "ico", "mp3", "wav", "flac",
    "ogg", "aac", "m4a", "mp4", "mov", "avi", "mkv", "webm", "exe", "dll", "so", "dylib", "bin",
    "class", "jar", "iso", "dmg", "zip", "tar", "tgz", "7z", "rar", "bz2", "xz", "zst", "pdf",
    "doc", "docx", "xls", "xlsx", "ppt", "pptx", "avro", "parquet", "orc",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Delimited(u8),
    Json,
    JsonLines,
}

fn extension(name: &str) -> Option<String> {
    name.rsplit(['/', '\\'])
        .next()
        .and_then(|file| file.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase())
}

fn without_extension(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(stem, _)| stem)
}

/// The MIME type Macie reports for an object of this name.
pub fn mime_type(name: &str) -> &'static str {
    match extension(name).as_deref() {
        Some("csv") => "text/csv",
        Some("tsv") => "text/tab-separated-values",
        Some("json" | "jsonl" | "ndjson") => "application/json",
        Some("html" | "htm") => "text/html",
        Some("xml") => "application/xml",
        Some("gz" | "gzip") => "application/gzip",
        Some("zip") => "application/zip",
        Some("pdf") => "application/pdf",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some(ext) if UNSUPPORTED_EXTENSIONS.contains(&ext) => "application/octet-stream",
        _ => "text/plain",
    }
}

fn format(name: &str) -> Format {
    match extension(name).as_deref() {
        Some("csv") => Format::Delimited(b','),
        Some("tsv" | "tab") => Format::Delimited(b'\t'),
        Some("json") => Format::Json,
        Some("jsonl" | "ndjson") => Format::JsonLines,
        _ => Format::Text,
    }
}

/// The marker error of [`Limited`].
#[derive(Debug, thiserror::Error)]
#[error("the object is larger than the size limit")]
struct OverLimit;

/// Counts the bytes read and fails once they pass the limit, so a small gzip that inflates to
/// gigabytes is stopped while streaming.
struct Limited<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::other(OverLimit));
        }
        Ok(n)
    }
}

/// A report for an object that could not be opened at all.
pub(crate) fn unreadable(name: &str, err: &io::Error) -> ObjectReport {
    ObjectReport {
        status: Status::Skipped,
        reason: Some("UNABLE_TO_PARSE_FILE"),
        detail: Some(format!("cannot read {name}: {err}")),
        mime_type: mime_type(name),
        size_classified: 0,
        detections: Vec::new(),
    }
}

/// Why reading stopped early.
pub(crate) enum Stop {
    Io(io::Error),
    /// The content is not valid for its format (e.g. JSON syntax).
    Malformed(String),
    /// JSON nested deeper than the parser follows.
    TooDeep(String),
}

impl From<io::Error> for Stop {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}

pub(crate) fn classify(
    classifier: &Classifier,
    name: &str,
    size: Option<u64>,
    body: impl Read,
) -> ObjectReport {
    let mut session = Session::new(classifier);
    let limit = classifier.config.size_limit;
    let ext = extension(name);
    let skipped = |session: Session<'_>, reason, detail: String, mime| {
        session.finish(Status::Skipped, Some(reason), Some(detail), mime)
    };
    if let Some(ext) = ext
        .as_deref()
        .filter(|e| UNSUPPORTED_EXTENSIONS.contains(e))
    {
        return skipped(
            session,
            "UNSUPPORTED_FILE_TYPE_EXCEPTION",
            format!(".{ext} files are not analysed"),
            mime_type(name),
        );
    }
    if let Some(size) = size.filter(|s| *s > limit) {
        return skipped(
            session,
            "FILE_EXCEEDS_SIZE_LIMIT",
            format!("{size} bytes is over the {limit}-byte limit"),
            mime_type(name),
        );
    }
    let mut raw = BufReader::with_capacity(64 << 10, body);
    let gzip = match raw.fill_buf() {
        Ok(start) => start.starts_with(&[0x1f, 0x8b]),
        Err(err) => return unreadable(name, &err),
    };
    let named_gzip = matches!(ext.as_deref(), Some("gz" | "gzip"));
    if named_gzip && !gzip {
        return skipped(
            session,
            "MALFORMED_FILE",
            "named .gz but not gzip data".into(),
            "application/gzip",
        );
    }
    let inner_name = if named_gzip {
        without_extension(name)
    } else {
        name
    };
    let (mime, format) = if gzip {
        ("application/gzip", format(inner_name))
    } else {
        (mime_type(name), format(name))
    };
    let source: Box<dyn Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(raw))
    } else {
        Box::new(raw)
    };
    let mut reader = BufReader::with_capacity(
        64 << 10,
        Limited {
            inner: source,
            read: 0,
            limit,
        },
    );
    match reader.fill_buf() {
        Ok(start) if start[..start.len().min(SNIFF_BYTES)].contains(&0) => {
            return skipped(
                session,
                "UNSUPPORTED_FILE_TYPE_EXCEPTION",
                "binary content".into(),
                mime,
            );
        }
        Ok(_) => {}
        Err(err) => return stopped(session, Stop::Io(err), gzip, mime),
    }
    let outcome = match format {
        Format::Text => text::read(&mut reader, &mut session),
        Format::Delimited(delimiter) => delimited::read(&mut reader, delimiter, &mut session),
        Format::Json => json::read_document(&mut reader, &mut session),
        Format::JsonLines => json::read_lines(&mut reader, &mut session),
    };
    match outcome {
        Ok(()) => session.finish(Status::Complete, None, None, mime),
        Err(stop) => stopped(session, stop, gzip, mime),
    }
}

/// The report for a read that stopped early: PARTIAL when something was classified (its
/// detections stand), SKIPPED when nothing was.
fn stopped(session: Session<'_>, stop: Stop, gzip: bool, mime: &'static str) -> ObjectReport {
    let (reason, detail) = match stop {
        Stop::Io(err)
            if err
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<OverLimit>().is_some()) =>
        {
            ("FILE_EXCEEDS_SIZE_LIMIT", err.to_string())
        }
        Stop::Io(err)
            if gzip
                && matches!(
                    err.kind(),
                    io::ErrorKind::InvalidInput
                        | io::ErrorKind::InvalidData
                        | io::ErrorKind::UnexpectedEof
                ) =>
        {
            ("MALFORMED_FILE", format!("corrupt gzip data: {err}"))
        }
        Stop::Io(err) => ("UNABLE_TO_PARSE_FILE", format!("read failed: {err}")),
        Stop::Malformed(detail) => ("MALFORMED_FILE", detail),
        Stop::TooDeep(detail) => ("JSON_NESTING_LEVEL_OVER_LIMIT", detail),
    };
    let status = if session.classified > 0 {
        Status::Partial
    } else {
        Status::Skipped
    };
    session.finish(status, Some(reason), Some(detail), mime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn run(name: &str, bytes: &[u8], limit: u64) -> ObjectReport {
        let classifier = Classifier::new(Config {
            size_limit: limit,
            ..Config::default()
        });
        classifier.classify(name, Some(bytes.len() as u64), bytes)
    }

    #[test]
    fn what_cannot_be_read_is_never_clean_and_says_why() {
        let reason = |name: &str, bytes: &[u8], limit| {
            let report = run(name, bytes, limit);
            assert!(!report.is_clean(), "{name}");
            report.reason
        };
        assert_eq!(
            reason("big.csv", &[b'a'; 100], 99),
            Some("FILE_EXCEEDS_SIZE_LIMIT")
        );
        assert_eq!(
            reason("photo.png", b"\x89PNG", 1024),
            Some("UNSUPPORTED_FILE_TYPE_EXCEPTION")
        );
        assert_eq!(
            reason("blob", b"ab\0cd", 1024),
            Some("UNSUPPORTED_FILE_TYPE_EXCEPTION")
        );
        assert_eq!(
            reason("report.pdf", b"%PDF-1.7", 1024),
            Some("UNSUPPORTED_FILE_TYPE_EXCEPTION")
        );
        assert_eq!(reason("x.gz", b"not gzip", 1024), Some("MALFORMED_FILE"));
        let mut corrupt = gzip(&b"ssn 123-45-6789 and some text that compresses ".repeat(50));
        corrupt.truncate(corrupt.len() / 2);
        assert_eq!(
            reason("data.txt.gz", &corrupt, 1 << 20),
            Some("MALFORMED_FILE")
        );
    }

    #[test]
    fn gzip_is_streamed_and_its_inflated_size_checked() {
        let report = run("data.csv.gz", &gzip(b"ssn,x\n123-45-6789,1\n"), 1024);
        assert_eq!(report.status, Status::Complete);
        assert_eq!(report.mime_type, "application/gzip");
        // The CSV under the compression is read as CSV: the header is the keyword.
        assert_eq!(
            report.detections[0].identifier.label(),
            "USA_SOCIAL_SECURITY_NUMBER"
        );
        // A small archive that inflates past the limit is not reported clean.
        let bomb = gzip(&vec![b'a'; 100_000]);
        assert!(bomb.len() < 1000);
        let report = run("bomb.gz", &bomb, 10_000);
        assert_eq!(report.reason, Some("FILE_EXCEEDS_SIZE_LIMIT"));
        assert_ne!(report.status, Status::Complete);
        // Gzip content under another name is recognised by its magic bytes.
        assert_eq!(
            run("export.dat", &gzip(b"x"), 1024).status,
            Status::Complete
        );
    }

    #[test]
    fn formats_come_from_the_name_under_the_compression() {
        assert_eq!(format("a/b.csv"), Format::Delimited(b','));
        assert_eq!(
            format(without_extension("a/b.tsv.gz")),
            Format::Delimited(b'\t')
        );
        assert_eq!(format("x.JSONL"), Format::JsonLines);
        assert_eq!(format("README"), Format::Text);
        assert_eq!(mime_type("x.json"), "application/json");
        assert_eq!(mime_type("dir.v2/file"), "text/plain");
    }
}
