//! A validated data set held by column: numbers, categorical levels, booleans and the label.

use crate::data::report::ValidationReport;
use crate::data::schema::Schema;

/// The values of one feature column, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    /// Numeric and integer columns (NaN: missing, in a column that allows it).
    Number(Vec<f64>),
    /// Categorical columns: a dictionary of levels (in order of first appearance) and a code
    /// per row.
    Level {
        /// Distinct levels seen.
        levels: Vec<String>,
        /// Index into `levels`, one per row.
        codes: Vec<u32>,
    },
    /// Boolean columns (`None`: missing).
    Bool(Vec<Option<bool>>),
}

/// The level code of a missing value in [`ColumnValues::Level`] (numbers are NaN when missing).
pub const MISSING_CODE: u32 = u32::MAX;

impl ColumnValues {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            ColumnValues::Number(v) => v.len(),
            ColumnValues::Level { codes, .. } => codes.len(),
            ColumnValues::Bool(v) => v.len(),
        }
    }

    /// True when the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A new column made of the given rows, in the given order.
    pub fn select(&self, rows: Rows<'_>) -> ColumnValues {
        match self {
            ColumnValues::Number(v) => ColumnValues::Number(rows.iter().map(|i| v[i]).collect()),
            ColumnValues::Level { levels, codes } => {
                ColumnValues::Level { levels: levels.clone(), codes: rows.iter().map(|i| codes[i]).collect() }
            }
            ColumnValues::Bool(v) => ColumnValues::Bool(rows.iter().map(|i| v[i]).collect()),
        }
    }
}

/// Some rows of a data set, named by index, without copying them: what a build fits, validates
/// and measures on (a copy of each would cost the data set's size again).
#[derive(Debug, Clone, Copy)]
pub enum Rows<'a> {
    /// The rows from `start` (included) to `end` (excluded), in order.
    Span {
        /// First row.
        start: usize,
        /// One past the last row.
        end: usize,
    },
    /// The listed rows, in the listed order.
    Listed(&'a [usize]),
}

impl<'a> Rows<'a> {
    /// Every row of a data set of `n` rows.
    pub fn all(n: usize) -> Rows<'static> {
        Rows::Span { start: 0, end: n }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Rows::Span { start, end } => end - start,
            Rows::Listed(rows) => rows.len(),
        }
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The data set's index of the `k`-th row of the view.
    pub fn get(&self, k: usize) -> usize {
        match self {
            Rows::Span { start, .. } => start + k,
            Rows::Listed(rows) => rows[k],
        }
    }

    /// The view's rows `from` (included) to `to` (excluded).
    pub fn slice(&self, from: usize, to: usize) -> Rows<'a> {
        match *self {
            Rows::Span { start, .. } => Rows::Span { start: start + from, end: start + to },
            Rows::Listed(rows) => Rows::Listed(&rows[from..to]),
        }
    }

    /// The data set's indices, in the view's order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + 'a {
        let (span, listed) = match *self {
            Rows::Span { start, end } => (Some(start..end), None),
            Rows::Listed(rows) => (None, Some(rows.iter().copied())),
        };
        span.into_iter().flatten().chain(listed.into_iter().flatten())
    }
}

/// The line (1-based; a Parquet file's row) where each row of a data set starts, held as runs
/// of consecutive lines: a file's rows mostly follow each other line by line, so a million
/// rows are a few runs, not eight megabytes of numbers. Only a skipped row or a quoted field
/// over several lines starts a new run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lines {
    /// The first row of each run and its line; a run ends where the next one starts.
    runs: Vec<(usize, u64)>,
    len: usize,
}

impl Lines {
    /// Appends the next row's line.
    pub fn push(&mut self, line: u64) {
        let follows =
            self.runs.last().is_some_and(|&(row, first)| first.checked_add((self.len - row) as u64) == Some(line));
        if !follows {
            self.runs.push((self.len, line));
        }
        self.len += 1;
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The line of row `row`; panics when there is no such row, as indexing does.
    pub fn get(&self, row: usize) -> u64 {
        assert!(row < self.len, "row {row} of {} rows", self.len);
        let (start, first) = self.runs[self.runs.partition_point(|r| r.0 <= row) - 1];
        first + (row - start) as u64
    }

    /// The rows' lines, in order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.runs.iter().enumerate().flat_map(|(k, &(start, first))| {
            let end = self.runs.get(k + 1).map_or(self.len, |r| r.0);
            (0..(end - start) as u64).map(move |i| first + i)
        })
    }
}

impl FromIterator<u64> for Lines {
    fn from_iter<I: IntoIterator<Item = u64>>(lines: I) -> Lines {
        let mut out = Lines::default();
        lines.into_iter().for_each(|line| out.push(line));
        out
    }
}

/// Rows that passed validation, held by column in the order of the schema's feature columns.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The schema the rows were checked against.
    pub schema: Schema,
    /// One entry per feature column of the schema, in declaration order.
    pub features: Vec<(String, ColumnValues)>,
    /// The label of each row (true = positive) when the file had a label column.
    pub labels: Option<Vec<bool>>,
    /// The 1-based line in the source file where each row starts.
    pub lines: Lines,
    /// A stable hash of each row's schema columns but the label (see [`crate::pipeline::staging`]).
    pub row_keys: Vec<u64>,
    /// What validation saw.
    pub report: ValidationReport,
}

impl Dataset {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// True when the data set has no rows.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The labels, or an error naming the file when the data had no label column.
    pub fn require_labels(&self) -> crate::Result<&[bool]> {
        self.labels.as_deref().ok_or_else(|| crate::Error::Unusable {
            path: self.report.file.clone().into(),
            problem: format!("the label column `{}` is required here", self.schema.label().name),
        })
    }

    /// A new data set made of the given rows, in the given order (the report is kept as is:
    /// it describes the file the rows came from).
    pub fn select(&self, rows: &[usize]) -> Dataset {
        Dataset {
            schema: self.schema.clone(),
            features: self.features.iter().map(|(n, c)| (n.clone(), c.select(Rows::Listed(rows)))).collect(),
            labels: self.labels.as_ref().map(|l| rows.iter().map(|&i| l[i]).collect()),
            lines: rows.iter().map(|&i| self.lines.get(i)).collect(),
            row_keys: rows.iter().map(|&i| self.row_keys[i]).collect(),
            report: self.report.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_kept_as_runs_and_read_back_as_pushed() {
        let pushed: Vec<u64> = vec![2, 3, 4, 7, 8, 9, 10, 12, 12, 13, 1, u64::MAX - 1, u64::MAX, 5];
        let lines: Lines = pushed.iter().copied().collect();
        assert_eq!(lines.len(), pushed.len());
        assert_eq!(lines.iter().collect::<Vec<_>>(), pushed);
        for (row, &line) in pushed.iter().enumerate() {
            assert_eq!(lines.get(row), line, "row {row}");
        }
        // 2-4, 7-10, 12, 12-13, 1, MAX-1..MAX, 5.
        assert_eq!(lines.runs.len(), 7);
        let consecutive: Lines = (2..1_000_002).collect();
        assert_eq!((consecutive.len(), consecutive.runs.len()), (1_000_000, 1));
        assert_eq!(consecutive.get(999_999), 1_000_001);
        assert!(Lines::default().is_empty() && Lines::default().iter().next().is_none());
    }

    #[test]
    #[should_panic(expected = "row 3 of 3 rows")]
    fn a_row_beyond_the_last_has_no_line() {
        let lines: Lines = [5, 6, 7].into_iter().collect();
        lines.get(3);
    }
}
