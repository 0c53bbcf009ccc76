//! Plain text, read in blocks of whole lines. UTF-8 is expected; from the first byte sequence
//! that is not UTF-8 on, the rest is read as Latin-1 (every byte is a character there). A line
//! longer than a block is cut with an overlap so that a value across the cut is seen whole, once.

use std::borrow::Cow;
use std::io::{BufRead, Read};

use super::Stop;
use crate::Session;
use crate::batch::{Batch, EMPTY, Place};

const BLOCK: usize = 1 << 20;
/// Longer than any managed identifier's value, and than most custom ones.
const OVERLAP: usize = 4096;

pub(super) fn read(reader: &mut impl BufRead, session: &mut Session<'_>) -> Result<(), Stop> {
    let mut buf: Vec<u8> = Vec::with_capacity(BLOCK);
    let mut batch = Batch::default();
    let (mut line, mut column) = (1u64, 1u64);
    let mut latin1 = false;
    loop {
        let want = BLOCK - buf.len();
        let got = reader.by_ref().take(want as u64).read_to_end(&mut buf)?;
        let eof = got < want;
        if buf.is_empty() {
            return Ok(());
        }
        // Where this block ends, where the next starts, and whether a line was cut.
        let (mut cut, cut_line) = if eof {
            (buf.len(), false)
        } else {
            match memchr::memrchr(b'\n', &buf) {
                Some(newline) => (newline + 1, false),
                None => (buf.len(), true),
            }
        };
        if !latin1 && let Err(err) = std::str::from_utf8(&buf[..cut]) {
            match err.error_len() {
                // A character split by a cut: leave it for the next block.
                None if cut_line => cut = err.valid_up_to(),
                _ => latin1 = true,
            }
        }
        let text: Cow<'_, str> = if latin1 {
            Cow::Owned(buf[..cut].iter().map(|&b| char::from(b)).collect())
        } else {
            Cow::Borrowed(std::str::from_utf8(&buf[..cut]).expect("checked above"))
        };
        // The next block starts OVERLAP characters before a cut, else at the cut.
        let next_in_text = if cut_line {
            text.floor_char_boundary(text.len().saturating_sub(OVERLAP))
        } else {
            text.len()
        };
        batch.clear();
        batch.push(
            &text,
            Place::Lines {
                first_line: line,
                first_column: column,
            },
            EMPTY,
        );
        batch.cells[0].accept_before = next_in_text;
        session.scan(&batch);
        let consumed = &text[..next_in_text];
        for ch in consumed.chars() {
            if ch == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        let next = if latin1 {
            consumed.chars().count()
        } else {
            consumed.len()
        };
        let next = if next == 0 { cut } else { next };
        // Bytes of the input, not of the decoded text (Latin-1 grows in UTF-8).
        session.classified += next as u64;
        buf.drain(..next);
        if eof && buf.is_empty() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Classifier, Config, Occurrence};

    fn lines_of(text: &[u8]) -> Vec<(String, Occurrence)> {
        let report = Classifier::new(Config::default()).classify("notes.txt", None, text);
        report
            .detections
            .iter()
            .flat_map(|d| {
                d.occurrences
                    .iter()
                    .map(|o| (d.identifier.label().to_owned(), o.clone()))
            })
            .collect()
    }

    #[test]
    fn occurrences_have_lines_and_columns() {
        let found = lines_of("first line\nxx SSN: 123-45-6789\n\nAKIAIOSFODNN7EXAMPLE".as_bytes());
        assert_eq!(
            found,
            [
                (
                    "AWS_CREDENTIALS".into(),
                    Occurrence::Line { line: 4, column: 1 }
                ),
                (
                    "USA_SOCIAL_SECURITY_NUMBER".into(),
                    Occurrence::Line { line: 2, column: 9 }
                ),
            ]
        );
    }

    #[test]
    fn latin1_text_is_read() {
        let found = lines_of(b"caf\xe9 cr\xe8me\nSSN: 123-45-6789\n");
        assert_eq!(found[0].1, Occurrence::Line { line: 2, column: 6 });
    }

    #[test]
    fn a_value_across_a_block_boundary_is_found_once() {
        for pad in [
            super::BLOCK - 30,
            super::BLOCK - 10,
            super::BLOCK - 2,
            super::BLOCK + 5,
        ] {
            // One long line: no newline to cut at.
            let mut text = "x".repeat(pad).into_bytes();
            text.extend_from_slice(b" card 4111 1111 1111 1111 ");
            text.extend(std::iter::repeat_n(b'y', super::BLOCK));
            let found = lines_of(&text);
            assert_eq!(found.len(), 1, "pad {pad}: {found:?}");
            assert_eq!(
                found[0].1,
                Occurrence::Line {
                    line: 1,
                    column: pad as u64 + 7
                },
                "pad {pad}"
            );
        }
    }

    #[test]
    fn multibyte_characters_across_a_cut_survive() {
        let mut text = "é".repeat(super::BLOCK / 2 + 1).into_bytes();
        text.extend_from_slice(b" SSN 123-45-6789");
        let found = lines_of(&text);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].1,
            Occurrence::Line {
                line: 1,
                column: (super::BLOCK / 2 + 1) as u64 + 6
            }
        );
    }
}
