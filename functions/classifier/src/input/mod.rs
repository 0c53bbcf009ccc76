//! Reading objects: the format by magic bytes and extension, containers opened (gzip, ZIP and
//! TAR archives within Macie's nesting, file-count and extraction quotas), a size limit enforced
//! while streaming, binary content refused, and each format cut into batches of cells.

mod archive;
mod avro;
mod delimited;
mod json;
mod parquet;
mod text;

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Seek};
use std::rc::Rc;

use crate::report::{ObjectReport, Status};
use crate::{ArchiveLimits, Classifier, Session};

/// Bytes of the start of an object read to tell its format (and binary from text).
const SNIFF_BYTES: usize = 8192;
/// Batches are scanned once they hold this much text.
pub(crate) const BATCH_BYTES: usize = 256 << 10;
/// Unprocessed archive members named in a report's detail (the count is always given).
const NAMED_MEMBERS: usize = 5;

/// Formats Macie does not analyse (media, executables) and formats it analyses but this
/// classifier does not parse (office documents, PDF, archives other than gzip, ZIP and TAR, ORC):
/// both are reported as unsupported, so the pipeline holds them for review.
const UNSUPPORTED_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp", "heic", "ico", "mp3", "wav", "flac",
    "ogg", "aac", "m4a", "mp4", "mov", "avi", "mkv", "webm", "exe", "dll", "so", "dylib", "bin",
    "class", "jar", "iso", "dmg", "7z", "rar", "bz2", "xz", "zst", "pdf", "doc", "docx", "xls",
    "xlsx", "ppt", "pptx", "orc",
];

/// How an object's bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gzip,
    Zip,
    Tar,
    Parquet,
    Avro,
    /// Text of some format; NUL bytes at the start mean binary, which is not read.
    Text(Format),
}

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

/// The name of what a gzip holds: `a.csv.gz` holds `a.csv`, `a.tgz` holds `a.tar`.
fn inside_gzip(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) if ext.eq_ignore_ascii_case("tgz") => format!("{stem}.tar"),
        Some((stem, ext)) if matches!(ext.to_ascii_lowercase().as_str(), "gz" | "gzip") => {
            stem.to_owned()
        }
        _ => name.to_owned(),
    }
}

/// The MIME type Macie reports for an object of this name.
pub fn mime_type(name: &str) -> &'static str {
    match extension(name).as_deref() {
        Some("csv") => "text/csv",
        Some("tsv") => "text/tab-separated-values",
        Some("json" | "jsonl" | "ndjson") => "application/json",
        Some("html" | "htm") => "text/html",
        Some("xml") => "application/xml",
        Some("gz" | "gzip" | "tgz") => "application/gzip",
        Some("zip") => "application/zip",
        Some("tar") => "application/x-tar",
        Some("parquet") => "application/vnd.apache.parquet",
        Some("avro") => "application/avro",
        Some("pdf") => "application/pdf",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some(ext) if UNSUPPORTED_EXTENSIONS.contains(&ext) => "application/octet-stream",
        _ => "text/plain",
    }
}

impl Kind {
    /// What the bytes say, else what the name says.
    fn of(name: &str, head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            Self::Zip
        } else if head.starts_with(b"PAR1") {
            Self::Parquet
        } else if head.starts_with(b"Obj\x01") {
            Self::Avro
        } else if head.get(257..262) == Some(b"ustar") {
            Self::Tar
        } else {
            match extension(name).as_deref() {
                // An old (v7) TAR has no magic; an empty one is all zeros.
                Some("tar") => Self::Tar,
                Some("csv") => Self::Text(Format::Delimited(b',')),
                Some("tsv" | "tab") => Self::Text(Format::Delimited(b'\t')),
                Some("json") => Self::Text(Format::Json),
                Some("jsonl" | "ndjson") => Self::Text(Format::JsonLines),
                _ => Self::Text(Format::Text),
            }
        }
    }

    /// The kind the name promises, for a container or binary format; an object named so whose
    /// bytes say otherwise is malformed.
    fn named(name: &str) -> Option<Self> {
        match extension(name).as_deref() {
            Some("gz" | "gzip" | "tgz") => Some(Self::Gzip),
            Some("zip") => Some(Self::Zip),
            Some("parquet") => Some(Self::Parquet),
            Some("avro") => Some(Self::Avro),
            _ => None,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Zip => "ZIP",
            Self::Tar => "TAR",
            Self::Parquet => "Parquet",
            Self::Avro => "Avro",
            Self::Text(_) => "text",
        }
    }

    fn mime(self, name: &str) -> &'static str {
        match self {
            Self::Gzip => "application/gzip",
            Self::Zip => "application/zip",
            Self::Tar => "application/x-tar",
            Self::Parquet => "application/vnd.apache.parquet",
            Self::Avro => "application/avro",
            Self::Text(_) => mime_type(name),
        }
    }
}

/// Marks the I/O error that stops a read at a quota, with Macie's reason for it.
#[derive(Debug, thiserror::Error)]
#[error("{what} is larger than the {limit}-byte quota")]
struct OverQuota {
    reason: &'static str,
    what: &'static str,
    limit: u64,
}

/// Marks compressed data that does not decompress.
#[derive(Debug, thiserror::Error)]
#[error("corrupt {what} data: {source}")]
struct Corrupt {
    what: &'static str,
    source: io::Error,
}

/// Counts the bytes read and fails once they pass a quota: an object's size limit (so a small
/// gzip that inflates to gigabytes is stopped while streaming), or the extraction quota every
/// file of an archive shares (the count is then shared too).
struct Limited<R> {
    inner: R,
    read: Rc<Cell<u64>>,
    quota: OverQuota,
}

impl<R: Read> Limited<R> {
    /// An object's own size limit.
    fn size(inner: R, limit: u64) -> Self {
        Self {
            inner,
            read: Rc::default(),
            quota: OverQuota {
                reason: "FILE_EXCEEDS_SIZE_LIMIT",
                what: "the object",
                limit,
            },
        }
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        if self.read.get() > self.quota.limit {
            let OverQuota {
                reason,
                what,
                limit,
            } = self.quota;
            return Err(io::Error::other(OverQuota {
                reason,
                what,
                limit,
            }));
        }
        Ok(n)
    }
}

/// A decompressing reader whose data errors are marked [`Corrupt`], so they read as a
/// malformed object rather than as a failed read.
struct Decoded<R> {
    inner: R,
    what: &'static str,
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|source| {
            if matches!(
                source.kind(),
                io::ErrorKind::InvalidInput
                    | io::ErrorKind::InvalidData
                    | io::ErrorKind::UnexpectedEof
            ) && !is_marked(&source)
            {
                io::Error::other(Corrupt {
                    what: self.what,
                    source,
                })
            } else {
                source
            }
        })
    }
}

/// Counts the bytes a reader hands out.
pub(super) struct Counting<'c, R> {
    pub inner: R,
    pub read: &'c Cell<u64>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

/// One of this module's markers, found anywhere in an error's chain (through `io::Error`s
/// wrapped by parsers), as Macie's reason and a detail.
fn marker(err: &(dyn std::error::Error + 'static)) -> Option<(&'static str, String)> {
    let mut at = err;
    for _ in 0..32 {
        if let Some(quota) = at.downcast_ref::<OverQuota>() {
            return Some((quota.reason, at.to_string()));
        }
        if at.is::<Corrupt>() {
            return Some(("MALFORMED_FILE", at.to_string()));
        }
        // `io::Error::source` skips the error it wraps; look at that one first.
        at = match at.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => inner,
            None => at.source()?,
        };
    }
    None
}

fn is_marked(err: &io::Error) -> bool {
    marker(err).is_some()
}

/// Why an object (or an archive member) was not read in full, in Macie's terms.
#[derive(Debug)]
pub(crate) struct Unread {
    reason: &'static str,
    detail: String,
}

/// Why reading stopped early.
pub(crate) enum Stop {
    Io(io::Error),
    /// The content is not valid for its format (e.g. JSON syntax).
    Malformed(String),
    /// JSON nested deeper than the parser follows.
    TooDeep(String),
    /// Any other reason Macie names.
    Other(&'static str, String),
}

impl From<io::Error> for Stop {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}

impl Stop {
    /// A format library's error, unless one of this module's markers is in its chain.
    fn format(what: &str, err: &(dyn std::error::Error + 'static)) -> Self {
        match marker(err) {
            Some((reason, detail)) => Self::Other(reason, detail),
            None => Self::Malformed(format!("{what}: {err}")),
        }
    }

    fn unread(self) -> Unread {
        let (reason, detail) = match self {
            Self::Io(err) => marker(&err)
                .unwrap_or_else(|| ("UNABLE_TO_PARSE_FILE", format!("read failed: {err}"))),
            Self::Malformed(detail) => ("MALFORMED_FILE", detail),
            Self::TooDeep(detail) => ("JSON_NESTING_LEVEL_OVER_LIMIT", detail),
            Self::Other(reason, detail) => (reason, detail),
        };
        Unread { reason, detail }
    }
}

/// An object's bytes: a stream, or a file that can be read from any offset (what ZIP and
/// Parquet need: their index is at the end). A stream of either is spooled to a temporary file.
pub(crate) enum Body<'a> {
    Stream(Box<dyn Read + 'a>),
    File(File),
}

impl<'a> Body<'a> {
    /// The first bytes, and the body to read from its start.
    fn sniff(self) -> io::Result<(Vec<u8>, Self)> {
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        match self {
            Self::Stream(mut stream) => {
                stream
                    .by_ref()
                    .take(SNIFF_BYTES as u64)
                    .read_to_end(&mut head)?;
                let again = Cursor::new(head.clone()).chain(stream);
                Ok((head, Self::Stream(Box::new(again))))
            }
            Self::File(mut file) => {
                file.by_ref()
                    .take(SNIFF_BYTES as u64)
                    .read_to_end(&mut head)?;
                file.rewind()?;
                Ok((head, Self::File(file)))
            }
        }
    }

    /// The body as a stream that fails once it passes `limit` bytes.
    fn limited(self, limit: u64) -> Limited<Box<dyn Read + 'a>> {
        Limited::size(self.into_read(), limit)
    }

    fn into_read(self) -> Box<dyn Read + 'a> {
        match self {
            Self::Stream(stream) => stream,
            Self::File(file) => Box::new(file),
        }
    }

    /// A file to read from any offset: this one, or the stream copied to a temporary file
    /// (within the size limit).
    fn into_file(self, limit: u64) -> Result<File, Stop> {
        match self {
            Self::File(file) => Ok(file),
            Self::Stream(stream) => {
                let mut file = tempfile::tempfile().map_err(|err| {
                    Stop::Other(
                        "UNABLE_TO_PARSE_FILE",
                        format!("no temporary file to read it from: {err}"),
                    )
                })?;
                io::copy(&mut Limited::size(stream, limit), &mut file)?;
                file.rewind()?;
                Ok(file)
            }
        }
    }
}

/// An object being read, with the archives it is in: their depth, the quotas they share, and
/// the members that could not be read.
pub(crate) struct Nest {
    limits: ArchiveLimits,
    /// Archives (gzip included) around what is being read.
    depth: u32,
    /// The path of what is being read, inside the outermost archive (`a.tar/b.zip/c.csv`).
    path: String,
    files: u64,
    extracted: Rc<Cell<u64>>,
    unprocessed: Vec<String>,
    unprocessed_count: u64,
    /// Set when a file inside was nested past the quota: the archive's reason then.
    quota: Option<&'static str>,
    /// The outermost object's MIME type, once known.
    mime: Option<&'static str>,
}

impl Nest {
    fn new(limits: ArchiveLimits) -> Self {
        Self {
            limits,
            depth: 0,
            path: String::new(),
            files: 0,
            extracted: Rc::new(Cell::new(0)),
            unprocessed: Vec::new(),
            unprocessed_count: 0,
            quota: None,
            mime: None,
        }
    }

    /// Reads one member of the archive being read; an `Err` stops the whole archive (a quota
    /// every member shares was passed), a member that cannot be read is counted and named.
    pub(super) fn member(
        &mut self,
        session: &mut Session<'_>,
        name: &str,
        size: Option<u64>,
        body: impl Read,
    ) -> Result<(), Stop> {
        self.files += 1;
        if self.files > self.limits.max_files {
            return Err(Stop::Other(
                "ARCHIVE_TOTAL_DOCUMENTS_PROCESSED_OVER_LIMIT",
                format!("more than {} files", self.limits.max_files),
            ));
        }
        let outer = self.path.len();
        self.path.push('/');
        self.path.push_str(name);
        let counted = Limited {
            inner: body,
            read: Rc::clone(&self.extracted),
            quota: OverQuota {
                reason: "ARCHIVE_TOTAL_BYTES_EXTRACTED_OVER_LIMIT",
                what: "what the archive's files inflate to",
                limit: self.limits.max_extracted_bytes,
            },
        };
        let result = read(session, name, size, Body::Stream(Box::new(counted)), self);
        let result = match result {
            // Quotas every file of the archive shares end the archive, not just this file.
            Err(unread)
                if matches!(
                    unread.reason,
                    "ARCHIVE_TOTAL_BYTES_EXTRACTED_OVER_LIMIT"
                        | "ARCHIVE_TOTAL_DOCUMENTS_PROCESSED_OVER_LIMIT"
                ) =>
            {
                Err(Stop::Other(unread.reason, unread.detail))
            }
            Err(unread) => {
                self.skipped(&self.path.clone(), unread);
                Ok(())
            }
            Ok(()) => Ok(()),
        };
        self.path.truncate(outer);
        result
    }

    /// Counts a member that was not read, naming the first few.
    pub(super) fn skipped(&mut self, path: &str, unread: Unread) {
        self.unprocessed_count += 1;
        // Nested too deep is the outermost archive's reason, as Macie reports it; any other
        // file that is not read leaves the archive with unprocessed files.
        if unread.reason == "ARCHIVE_NESTING_LEVEL_OVER_LIMIT" {
            self.quota.get_or_insert(unread.reason);
        }
        if self.unprocessed.len() < NAMED_MEMBERS {
            let path = path.trim_start_matches('/');
            self.unprocessed
                .push(format!("{path}: {} ({})", unread.reason, unread.detail));
        }
    }

    /// Counts a file of the archive being read that cannot even be opened (encrypted, or of
    /// an entry type with no data this reader knows).
    pub(super) fn unopened(&mut self, name: &str, unread: Unread) {
        self.files += 1;
        let path = format!("{}/{name}", self.path);
        self.skipped(&path, unread);
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

pub(crate) fn classify(
    classifier: &Classifier,
    name: &str,
    size: Option<u64>,
    body: Body<'_>,
) -> ObjectReport {
    let mut session = Session::new(classifier);
    let mut nest = Nest::new(classifier.config.archives);
    let result = read(&mut session, name, size, body, &mut nest);
    let mime = nest.mime.unwrap_or_else(|| mime_type(name));
    let unread = match result {
        Err(unread) => Some(unread),
        Ok(()) if nest.unprocessed_count > 0 => Some(Unread {
            reason: nest.quota.unwrap_or("ARCHIVE_CONTAINS_UNPROCESSED_FILES"),
            detail: format!(
                "{} of {} files not analysed: {}",
                nest.unprocessed_count,
                nest.files,
                nest.unprocessed.join("; ")
            ),
        }),
        Ok(()) => None,
    };
    match unread {
        None => session.finish(Status::Complete, None, None, mime),
        // What was classified stands (PARTIAL); nothing classified is SKIPPED. Never clean.
        Some(Unread { reason, detail }) => {
            let status = if session.classified > 0 {
                Status::Partial
            } else {
                Status::Skipped
            };
            session.finish(status, Some(reason), Some(detail), mime)
        }
    }
}

/// Reads one object, or one member of an archive, into the session.
fn read(
    session: &mut Session<'_>,
    name: &str,
    size: Option<u64>,
    body: Body<'_>,
    nest: &mut Nest,
) -> Result<(), Unread> {
    let limit = session.classifier.config.size_limit;
    if let Some(ext) = extension(name).filter(|e| UNSUPPORTED_EXTENSIONS.contains(&e.as_str())) {
        nest.mime.get_or_insert_with(|| mime_type(name));
        return Err(Unread {
            reason: "UNSUPPORTED_FILE_TYPE_EXCEPTION",
            detail: format!(".{ext} files are not analysed"),
        });
    }
    let (head, body) = body.sniff().map_err(|err| Stop::Io(err).unread())?;
    let kind = Kind::of(name, &head);
    nest.mime.get_or_insert_with(|| kind.mime(name));
    if let Some(named) = Kind::named(name).filter(|named| *named != kind) {
        return Err(Unread {
            reason: "MALFORMED_FILE",
            detail: format!(
                "named as {} but not {} data",
                named.describe(),
                named.describe()
            ),
        });
    }
    let container = matches!(kind, Kind::Gzip | Kind::Zip | Kind::Tar);
    // The stored size against Macie's quota for the type, within the caller's own limit.
    let types = &session.classifier.config.types;
    let quota = match kind {
        Kind::Parquet | Kind::Avro => types.columnar,
        Kind::Gzip | Kind::Zip => types.compressed,
        Kind::Tar => types.tar,
        Kind::Text(_) => types.text,
    }
    .min(limit);
    if let Some(size) = size.filter(|size| *size > quota) {
        return Err(Unread {
            reason: if container {
                "ARCHIVE_EXCEEDS_SIZE_LIMIT"
            } else {
                "FILE_EXCEEDS_SIZE_LIMIT"
            },
            detail: format!(
                "{size} bytes is over the {quota}-byte limit for {} objects",
                kind.describe()
            ),
        });
    }
    if container && nest.depth >= nest.limits.max_depth {
        return Err(Unread {
            reason: "ARCHIVE_NESTING_LEVEL_OVER_LIMIT",
            detail: format!("more than {} levels of archives", nest.limits.max_depth),
        });
    }
    nest.depth += u32::from(container);
    // The format libraries read hostile bytes; a panic in one is this object's failure to be
    // read, not the job's.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match kind {
        Kind::Gzip => {
            let inflated = Decoded {
                inner: flate2::read::MultiGzDecoder::new(body.into_read()),
                what: "gzip",
            };
            let limited = Limited::size(inflated, limit);
            // What a gzip holds is one object, read as if it were not compressed.
            read(
                session,
                &inside_gzip(name),
                None,
                Body::Stream(Box::new(limited)),
                nest,
            )
            .map_err(|unread| Stop::Other(unread.reason, unread.detail))
        }
        Kind::Zip => body
            .into_file(limit)
            .and_then(|file| archive::read_zip(session, file, nest)),
        Kind::Tar => archive::read_tar(session, body.limited(limit), nest),
        Kind::Parquet => body
            .into_file(limit)
            .and_then(|file| parquet::read(session, file)),
        Kind::Avro => avro::read(session, body.limited(limit)),
        Kind::Text(_) if head.contains(&0) => Err(Stop::Other(
            "UNSUPPORTED_FILE_TYPE_EXCEPTION",
            "binary content".into(),
        )),
        Kind::Text(format) => {
            let mut reader = BufReader::with_capacity(64 << 10, body.limited(limit));
            match format {
                Format::Text => text::read(&mut reader, session),
                Format::Delimited(delimiter) => delimited::read(&mut reader, delimiter, session),
                Format::Json => json::read_document(&mut reader, session),
                Format::JsonLines => json::read_lines(&mut reader, session),
            }
        }
    }))
    .unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Stop::Other(
            "UNABLE_TO_PARSE_FILE",
            format!("the {} reader failed: {what}", kind.describe()),
        ))
    });
    nest.depth -= u32::from(container);
    outcome.map_err(Stop::unread)
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
    fn formats_come_from_the_bytes_then_the_name_under_the_compression() {
        let text = Kind::Text;
        assert_eq!(Kind::of("a/b.csv", b"x,y"), text(Format::Delimited(b',')));
        assert_eq!(
            Kind::of(&inside_gzip("a/b.tsv.gz"), b"x"),
            text(Format::Delimited(b'\t'))
        );
        assert_eq!(inside_gzip("logs.tgz"), "logs.tar");
        assert_eq!(Kind::of("x.JSONL", b"{}"), text(Format::JsonLines));
        assert_eq!(Kind::of("README", b"hello"), text(Format::Text));
        assert_eq!(Kind::of("export.csv", b"PK\x03\x04rest"), Kind::Zip);
        assert_eq!(Kind::of("part-0", b"PAR1...."), Kind::Parquet);
        assert_eq!(Kind::of("events", b"Obj\x01..."), Kind::Avro);
        let mut tar_head = vec![0u8; 512];
        tar_head[257..262].copy_from_slice(b"ustar");
        assert_eq!(Kind::of("bundle", &tar_head), Kind::Tar);
        assert_eq!(mime_type("x.json"), "application/json");
        assert_eq!(mime_type("dir.v2/file"), "text/plain");
    }
}
