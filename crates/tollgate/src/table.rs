//! The one way the CLI prints a listing: a header row and rows, every column
//! as wide as its widest cell (in terminal columns), two spaces between
//! columns, numbers right-aligned, no trailing spaces. Plain text only, so
//! that output piped to a file or another program is the same as on screen.

use unicode_width::UnicodeWidthStr;

/// A table to print; cells are strings (an empty one prints as blanks).
#[derive(Debug)]
pub struct Table {
    header: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Row>,
}

#[derive(Debug)]
struct Row {
    cells: Vec<String>,
    /// Lines printed under the row, indented (e.g. an audit entry's change).
    notes: Vec<String>,
}

impl Table {
    /// A table with these column headers; a header starting with `>` (not
    /// printed) marks a right-aligned column.
    pub fn new(header: &[&str]) -> Self {
        Self {
            right: header.iter().map(|h| h.starts_with('>')).collect(),
            header: header
                .iter()
                .map(|h| h.trim_start_matches('>').to_owned())
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; it must have one cell per column.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.row_with_notes(cells, Vec::new());
    }

    /// Adds a row followed by indented note lines.
    pub fn row_with_notes<S: Into<String>>(
        &mut self,
        cells: impl IntoIterator<Item = S>,
        notes: Vec<String>,
    ) {
        let cells: Vec<String> = cells.into_iter().map(Into::into).collect();
        assert_eq!(
            cells.len(),
            self.header.len(),
            "a table row needs one cell per column"
        );
        self.rows.push(Row { cells, notes });
    }

    /// The table as text, one line per row (and note), each ending in `\n`.
    pub fn render(&self) -> String {
        let header = self.header.clone();
        let rows: Vec<Vec<String>> = std::iter::once(header)
            .chain(self.rows.iter().map(|r| r.cells.clone()))
            .collect();
        let widths: Vec<usize> = (0..self.header.len())
            .map(|i| rows.iter().map(|r| r[i].width()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for (n, cells) in rows.iter().enumerate() {
            let mut line = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = " ".repeat(widths[i] - cell.width());
                if self.right[i] {
                    line.push_str(&pad);
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&pad);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
            if n > 0 {
                for note in &self.rows[n - 1].notes {
                    out.push_str("    ");
                    out.push_str(note);
                    out.push('\n');
                }
            }
        }
        out
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell_and_numbers_align_right() {
        let mut t = Table::new(&["NAME", "PLAN", ">TOTAL"]);
        t.row(["acme", "team", "1,250.00"]);
        t.row(["a-very-long-tenant-name", "", "0.00"]);
        t.row(["globex", "free", ""]);
        assert_eq!(
            t.render(),
            "NAME                     PLAN     TOTAL\n\
             acme                     team  1,250.00\n\
             a-very-long-tenant-name            0.00\n\
             globex                   free\n"
        );
    }

    #[test]
    fn wide_characters_count_as_two_columns_and_notes_follow_their_row() {
        let mut t = Table::new(&["CODE", "TITLE"]);
        t.row_with_notes(["welcome", "Willkommen 10 %"], vec!["after: {}".into()]);
        t.row(["日本", "x"]);
        assert_eq!(
            t.render(),
            "CODE     TITLE\n\
             welcome  Willkommen 10 %\n    after: {}\n\
             日本     x\n"
        );
    }

    #[test]
    fn an_empty_table_is_its_header() {
        let t = Table::new(&["ID", ">N"]);
        assert_eq!(t.render(), "ID  N\n");
    }
}
