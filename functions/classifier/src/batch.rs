//! A batch of text cut into cells: the unit every matcher scans. Readers fill batches (a block of
//! lines, the cells of CSV records, the values of JSON records) so that one regex pass covers
//! many small values; cells are separated by a newline so no match joins two of them.

use serde::Serialize;

/// A string stored in a batch's `meta` arena (column names, JSON paths, keyword contexts), so
/// that the many small values of CSV and JSON cost no allocation each.
pub(crate) type Span = (u32, u32);

/// The empty string in any batch.
pub(crate) const EMPTY: Span = (0, 0);

/// Where a cell's text came from.
#[derive(Debug, Clone)]
pub(crate) enum Place {
    /// A run of lines of plain text, starting at `first_line` (1-based) and `first_column`
    /// (1-based; above 1 only when a very long line was cut).
    Lines { first_line: u64, first_column: u64 },
    /// A CSV/TSV cell; `row` counts the header row as 1.
    Cell {
        row: u64,
        column: u32,
        column_name: Span,
    },
    /// A JSON value (or object key) in record `index` (0-based), at `path`.
    Record { index: u64, path: Span },
}

/// One cell of a batch: `text[start..end]`.
#[derive(Debug, Clone)]
pub(crate) struct Cell {
    pub start: usize,
    pub end: usize,
    /// Matches starting at or after this offset belong to the next batch (a long line cut with
    /// an overlap, so a value across the cut is still seen whole once).
    pub accept_before: usize,
    pub place: Place,
    /// Context that counts as being near every match in the cell: the column name or the JSON
    /// path's keys, space-separated.
    pub context: Span,
}

#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub text: String,
    pub cells: Vec<Cell>,
    meta: String,
}

impl Batch {
    /// Stores `value` in the arena.
    pub fn meta(&mut self, value: &str) -> Span {
        let start = self.meta.len();
        self.meta.push_str(value);
        (start as u32, self.meta.len() as u32)
    }

    /// A string stored with [`Batch::meta`].
    pub fn meta_str(&self, span: Span) -> &str {
        &self.meta[span.0 as usize..span.1 as usize]
    }

    /// Adds `value` as a cell.
    pub fn push(&mut self, value: &str, place: Place, context: Span) {
        let start = self.text.len();
        self.text.push_str(value);
        let end = self.text.len();
        self.text.push('\n');
        self.cells.push(Cell {
            start,
            end,
            accept_before: end,
            place,
            context,
        });
    }

    pub fn len(&self) -> usize {
        self.text.len()
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.cells.clear();
        self.meta.clear();
    }
}

/// Where an occurrence is, in Macie's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Occurrence {
    /// Plain text: 1-based line and column (in characters).
    Line { line: u64, column: u64 },
    /// CSV/TSV: 1-based row (the header is row 1) and column.
    Cell {
        row: u64,
        column: u32,
        #[serde(rename = "columnName")]
        column_name: String,
    },
    /// JSON/JSON Lines: 0-based record and the value's JSONPath.
    Record {
        #[serde(rename = "recordIndex")]
        record_index: u64,
        #[serde(rename = "jsonPath")]
        json_path: String,
    },
}

/// The spreadsheet reference of a cell, e.g. `B2`.
pub fn cell_reference(row: u64, column: u32) -> String {
    let mut letters = Vec::new();
    let mut n = column;
    while n > 0 {
        let rem = (n - 1) % 26;
        letters.push(b'A' + rem as u8);
        n = (n - 1) / 26;
    }
    letters.reverse();
    format!("{}{row}", String::from_utf8_lossy(&letters))
}

/// Finds the cell holding each match of a batch, and the line and column of matches in text,
/// incrementally: matches arrive in ascending order, so each lookup continues from the last.
pub(crate) struct Locator<'b> {
    batch: &'b Batch,
    cell: usize,
    /// Line-counting cursor inside the current cell: (offset, line, column at offset).
    cursor: Option<(usize, u64, u64)>,
}

impl<'b> Locator<'b> {
    pub fn new(batch: &'b Batch) -> Self {
        Self {
            batch,
            cell: 0,
            cursor: None,
        }
    }

    /// The cell wholly containing `start..end`, if any (and if the match is this batch's to
    /// count).
    pub fn cell(&mut self, start: usize, end: usize) -> Option<&'b Cell> {
        let cells = &self.batch.cells;
        if self.cell >= cells.len() || cells[self.cell].start > start {
            self.cell = cells.partition_point(|c| c.end < start);
            self.cursor = None;
        }
        while self.cell < cells.len() && cells[self.cell].end < start {
            self.cell += 1;
            self.cursor = None;
        }
        let cell = cells.get(self.cell)?;
        (cell.start <= start && end <= cell.end && start < cell.accept_before).then_some(cell)
    }

    /// Where the match at `start` (inside `cell`, the last one returned) is.
    pub fn occurrence(&mut self, cell: &Cell, start: usize) -> Occurrence {
        match &cell.place {
            Place::Lines {
                first_line,
                first_column,
            } => {
                let (from, mut line, mut column) = match self.cursor {
                    Some(c) if c.0 <= start => c,
                    _ => (cell.start, *first_line, *first_column),
                };
                for ch in self.batch.text[from..start].chars() {
                    if ch == '\n' {
                        line += 1;
                        column = 1;
                    } else {
                        column += 1;
                    }
                }
                self.cursor = Some((start, line, column));
                Occurrence::Line { line, column }
            }
            Place::Cell {
                row,
                column,
                column_name,
            } => Occurrence::Cell {
                row: *row,
                column: *column,
                column_name: self.batch.meta_str(*column_name).to_owned(),
            },
            Place::Record { index, path } => Occurrence::Record {
                record_index: *index,
                json_path: self.batch.meta_str(*path).to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_references_are_spreadsheet_style() {
        assert_eq!(cell_reference(2, 1), "A2");
        assert_eq!(cell_reference(7, 26), "Z7");
        assert_eq!(cell_reference(1, 27), "AA1");
        assert_eq!(cell_reference(3, 703), "AAA3");
    }

    #[test]
    fn the_locator_finds_cells_and_counts_lines_and_columns() {
        let mut batch = Batch::default();
        let lines = Place::Lines {
            first_line: 10,
            first_column: 1,
        };
        batch.push("ab\ncdé x", lines, EMPTY);
        let path = batch.meta("$.a");
        let context = batch.meta("a");
        batch.push("cell", Place::Record { index: 3, path }, context);
        let mut locator = Locator::new(&batch);
        let first = locator.cell(1, 2).unwrap();
        assert_eq!(
            locator.occurrence(first, 1),
            Occurrence::Line {
                line: 10,
                column: 2
            }
        );
        let x = batch.text.find('x').unwrap();
        let cell = locator.cell(x, x + 1).unwrap();
        assert_eq!(
            locator.occurrence(cell, x),
            Occurrence::Line {
                line: 11,
                column: 5
            }
        );
        // A match across the separator belongs to no cell.
        let end_of_first = batch.cells[0].end;
        assert!(locator.cell(end_of_first - 1, end_of_first + 2).is_none());
        let second = batch.cells[1].start;
        let cell = locator.cell(second, second + 4).unwrap();
        assert_eq!(
            locator.occurrence(cell, second),
            Occurrence::Record {
                record_index: 3,
                json_path: "$.a".into()
            }
        );
    }
}
