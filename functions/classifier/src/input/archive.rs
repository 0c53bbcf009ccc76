//! ZIP and TAR archives: each file inside is read as an object of its own (archives inside
//! archives too, within Macie's nesting quota), into the same report. A file that cannot be read
//! makes the archive PARTIAL (`ARCHIVE_CONTAINS_UNPROCESSED_FILES`), never clean; a quota every
//! file shares (file count, bytes extracted) stops the archive.

use std::fs::File;
use std::io::Read;

use super::{Decoded, Nest, Stop, Unread};
use crate::Session;

pub(super) fn read_zip(session: &mut Session<'_>, file: File, nest: &mut Nest) -> Result<(), Stop> {
    let mut archive = zip::ZipArchive::new(file).map_err(|err| Stop::format("ZIP", &err))?;
    for index in 0..archive.len() {
        let name = archive
            .name_for_index(index)
            .and_then(Result::ok)
            .map_or_else(|| format!("entry {index}"), std::borrow::Cow::into_owned);
        let entry = match archive.by_index(index) {
            Ok(entry) => entry,
            // An encrypted file, or a compression method this reader lacks.
            Err(zip::result::ZipError::UnsupportedArchive(what)) => {
                nest.unopened(
                    &name,
                    Unread {
                        reason: "UNSUPPORTED_FILE_TYPE_EXCEPTION",
                        detail: what.to_string(),
                    },
                );
                continue;
            }
            Err(err) => return Err(Stop::format(&format!("ZIP entry {name}"), &err)),
        };
        // Directories hold nothing; a link's content is a path, not data.
        if entry.is_dir() || entry.is_symlink() {
            continue;
        }
        let size = entry.size();
        let inflated = Decoded {
            inner: entry,
            what: "ZIP",
        };
        nest.member(session, &name, Some(size), inflated)?;
    }
    Ok(())
}

pub(super) fn read_tar(
    session: &mut Session<'_>,
    body: impl Read,
    nest: &mut Nest,
) -> Result<(), Stop> {
    use tar::EntryType;
    let mut archive = tar::Archive::new(body);
    let entries = archive.entries().map_err(|err| Stop::format("TAR", &err))?;
    for entry in entries {
        let entry = entry.map_err(|err| Stop::format("TAR", &err))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous => {}
            // No data of their own: directories, links, devices, FIFOs, and metadata (a `git
            // archive` starts with a pax global header).
            EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink
            | EntryType::Directory
            | EntryType::Symlink
            | EntryType::Link
            | EntryType::Char
            | EntryType::Block
            | EntryType::Fifo => continue,
            other => {
                nest.unopened(
                    &name,
                    Unread {
                        reason: "UNSUPPORTED_FILE_TYPE_EXCEPTION",
                        detail: format!("TAR entry type {other:?}"),
                    },
                );
                continue;
            }
        }
        let size = entry.size();
        // The next entry's header comes after this one's data, read or not.
        nest.member(session, &name, Some(size), entry)?;
    }
    Ok(())
}
