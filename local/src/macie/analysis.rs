//! Whether the emulated Macie can read an object, and its text when it can. What it cannot read
//! gets Macie's status and reason (specs/macie2.md §8), never a clean result: `SKIPPED` with
//! `FILE_EXCEEDS_SIZE_LIMIT`, `UNSUPPORTED_FILE_TYPE_EXCEPTION` (media, executables, binary
//! content, and formats this emulator does not parse), `MALFORMED_FILE` (a corrupt gzip) or
//! `UNABLE_TO_PARSE_FILE` (text that is not UTF-8).

use std::io::Read;

use crate::s3::store::ObjectMeta;

/// Bytes of an object's start searched for NUL to tell binary from text.
const SNIFF_BYTES: usize = 8192;

/// Extensions Macie does not analyse (images, audio, video, executables), and formats Macie
/// supports but this emulator does not parse: both are reported unsupported, so they are held.
const UNSUPPORTED_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp", "heic", "ico", "mp3", "wav", "flac",
    "ogg", "aac", "m4a", "mp4", "mov", "avi", "mkv", "webm", "exe", "dll", "so", "dylib", "bin",
    "class", "jar", "iso", "dmg", "zip", "tar", "tgz", "7z", "rar", "bz2", "xz", "pdf", "doc",
    "docx", "xls", "xlsx", "avro", "parquet",
];

/// What the emulated Macie made of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// `COMPLETE` or `SKIPPED`.
    pub status: &'static str,
    pub reason: Option<&'static str>,
    pub mime_type: &'static str,
    /// The text to classify, when the status is `COMPLETE`.
    pub text: Option<String>,
}

impl Analysis {
    fn skipped(reason: &'static str, mime_type: &'static str) -> Self {
        Self {
            status: "SKIPPED",
            reason: Some(reason),
            mime_type,
            text: None,
        }
    }
}

fn extension(key: &str) -> Option<String> {
    key.rsplit('/')
        .next()
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase())
}

/// The MIME type Macie reports for a key.
pub fn mime_type(key: &str) -> &'static str {
    match extension(key).as_deref() {
        Some("csv") => "text/csv",
        Some("tsv") => "text/tab-separated-values",
        Some("json" | "jsonl") => "application/json",
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

/// Reads `object` from `body` (at most `size_limit` bytes, decompressed) and decides.
pub fn analyse(object: &ObjectMeta, body: impl Read, size_limit: u64) -> Analysis {
    let mime = mime_type(&object.key);
    if object.size > size_limit {
        return Analysis::skipped("FILE_EXCEEDS_SIZE_LIMIT", mime);
    }
    let ext = extension(&object.key);
    if ext
        .as_deref()
        .is_some_and(|e| UNSUPPORTED_EXTENSIONS.contains(&e))
    {
        return Analysis::skipped("UNSUPPORTED_FILE_TYPE_EXCEPTION", mime);
    }
    let mut bytes = Vec::new();
    if body.take(size_limit).read_to_end(&mut bytes).is_err() {
        return Analysis::skipped("UNABLE_TO_PARSE_FILE", mime);
    }
    let gzip = matches!(ext.as_deref(), Some("gz" | "gzip")) || bytes.starts_with(&[0x1f, 0x8b]);
    if gzip {
        let mut inflated = Vec::new();
        // One byte past the limit tells an over-limit archive from one exactly at it.
        let read = flate2::read::MultiGzDecoder::new(bytes.as_slice())
            .take(size_limit + 1)
            .read_to_end(&mut inflated);
        match read {
            Err(_) => return Analysis::skipped("MALFORMED_FILE", "application/gzip"),
            Ok(n) if n as u64 > size_limit => {
                return Analysis::skipped("FILE_EXCEEDS_SIZE_LIMIT", "application/gzip");
            }
            Ok(_) => bytes = inflated,
        }
    }
    let mime = if gzip { "application/gzip" } else { mime };
    if bytes.iter().take(SNIFF_BYTES).any(|b| *b == 0) {
        return Analysis::skipped("UNSUPPORTED_FILE_TYPE_EXCEPTION", mime);
    }
    match String::from_utf8(bytes) {
        Ok(text) => Analysis {
            status: "COMPLETE",
            reason: None,
            mime_type: mime,
            text: Some(text),
        },
        Err(_) => Analysis::skipped("UNABLE_TO_PARSE_FILE", mime),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::store::Attributes;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn run(key: &str, bytes: &[u8], limit: u64) -> Analysis {
        let meta = ObjectMeta::for_test(key, bytes.len() as u64, Attributes::default());
        analyse(&meta, bytes, limit)
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn readable_text_is_analysed_completely() {
        let analysis = run("a/b.csv", b"name,card\nx,1\n", 1024);
        assert_eq!(analysis.status, "COMPLETE");
        assert_eq!(analysis.mime_type, "text/csv");
        assert_eq!(analysis.text.as_deref(), Some("name,card\nx,1\n"));
    }

    #[test]
    fn what_cannot_be_read_is_skipped_with_macies_reason() {
        let reason = |key: &str, bytes: &[u8], limit| run(key, bytes, limit).reason;
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
            reason("latin1.txt", b"caf\xe9", 1024),
            Some("UNABLE_TO_PARSE_FILE")
        );
        let mut corrupt = gzip(b"some text that compresses");
        corrupt.truncate(corrupt.len() / 2);
        assert_eq!(
            reason("data.csv.gz", &corrupt, 1024),
            Some("MALFORMED_FILE")
        );
    }

    #[test]
    fn gzip_is_decompressed_and_its_size_checked_after() {
        let analysis = run("data.csv.gz", &gzip(b"ssn,123-45-6789\n"), 1024);
        assert_eq!(analysis.status, "COMPLETE");
        assert_eq!(analysis.mime_type, "application/gzip");
        assert_eq!(analysis.text.as_deref(), Some("ssn,123-45-6789\n"));
        // A small archive that inflates past the limit is not analysed in part.
        let bomb = gzip(&[b'a'; 10_000]);
        assert!(bomb.len() < 1000);
        assert_eq!(
            run("bomb.gz", &bomb, 1000).reason,
            Some("FILE_EXCEEDS_SIZE_LIMIT")
        );
        // Gzip content under another name is recognised by its magic bytes.
        assert_eq!(run("export.dat", &gzip(b"x"), 1024).status, "COMPLETE");
    }
}
