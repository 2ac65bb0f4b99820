//! A validated data set held by column: numbers, categorical levels, booleans and the label.

use crate::data::report::ValidationReport;
use crate::data::schema::Schema;

/// The values of one feature column, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    /// Numeric and integer columns (NaN: missing, in a column that allows it).
    Number(Numbers),
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
            ColumnValues::Number(v) => ColumnValues::Number(v.select(rows)),
            ColumnValues::Level { levels, codes } => {
                ColumnValues::Level { levels: levels.clone(), codes: rows.iter().map(|i| codes[i]).collect() }
            }
            ColumnValues::Bool(v) => ColumnValues::Bool(rows.iter().map(|i| v[i]).collect()),
        }
    }
}

/// The values of a numeric or integer column. While every value is a whole number that a
/// 32-bit integer holds (−2,147,483,647 to 2,147,483,647, not −0) or missing, they are held in
/// four bytes each, else as `f64`s: an integer column of a large file takes half the memory.
/// Read back, a value is the `f64` it was, bit for bit; a missing value (any NaN) reads back
/// as `f64::NAN`.
#[derive(Debug, Clone)]
pub enum Numbers {
    /// Whole numbers; `i32::MIN` is a missing value.
    Whole(Vec<i32>),
    /// Any numbers.
    Float(Vec<f64>),
}

/// A missing value among [`Numbers::Whole`] (the one whole number not held that way).
const MISSING_WHOLE: i32 = i32::MIN;

/// `x` as a [`Numbers::Whole`] value, when it reads back as the same bits (so not −0).
#[inline]
fn whole(x: f64) -> Option<i32> {
    if x.is_nan() {
        return Some(MISSING_WHOLE);
    }
    let w = x as i32;
    (w != MISSING_WHOLE && f64::from(w).to_bits() == x.to_bits()).then_some(w)
}

#[inline]
fn from_whole(w: i32) -> f64 {
    if w == MISSING_WHOLE {
        f64::NAN
    } else {
        f64::from(w)
    }
}

impl Default for Numbers {
    fn default() -> Numbers {
        Numbers::Whole(Vec::new())
    }
}

impl Numbers {
    /// Appends a value; the first that is not a whole number turns the column to `f64`s.
    pub fn push(&mut self, x: f64) {
        match self {
            Numbers::Whole(v) => match whole(x) {
                Some(w) => v.push(w),
                None => {
                    let mut floats = Vec::with_capacity(v.len() + 1);
                    floats.extend(v.iter().map(|&w| from_whole(w)));
                    floats.push(x);
                    *self = Numbers::Float(floats);
                }
            },
            Numbers::Float(v) => v.push(x),
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Numbers::Whole(v) => v.len(),
            Numbers::Float(v) => v.len(),
        }
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i` (NaN when missing); panics beyond the last, as indexing does.
    #[inline]
    pub fn get(&self, i: usize) -> f64 {
        match self {
            Numbers::Whole(v) => from_whole(v[i]),
            Numbers::Float(v) => v[i],
        }
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        let (whole, float) = match self {
            Numbers::Whole(v) => (Some(v.iter().map(|&w| from_whole(w))), None),
            Numbers::Float(v) => (None, Some(v.iter().copied())),
        };
        whole.into_iter().flatten().chain(float.into_iter().flatten())
    }

    /// The values of the given rows, in the given order, held as these are.
    pub fn select(&self, rows: Rows<'_>) -> Numbers {
        match self {
            Numbers::Whole(v) => Numbers::Whole(rows.iter().map(|i| v[i]).collect()),
            Numbers::Float(v) => Numbers::Float(rows.iter().map(|i| v[i]).collect()),
        }
    }
}

/// Equal when the values are, as `f64`s (NaN equals nothing), however they are held.
impl PartialEq for Numbers {
    fn eq(&self, other: &Numbers) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl FromIterator<f64> for Numbers {
    fn from_iter<I: IntoIterator<Item = f64>>(values: I) -> Numbers {
        let values = values.into_iter();
        let mut out = Numbers::Whole(Vec::with_capacity(values.size_hint().0));
        values.into_iter().for_each(|x| out.push(x));
        out
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
/// rows are a few runs, not eight megabytes of numbers. A skipped row, a blank line or a quoted
/// field over several lines starts a new run (at worst, a run a row: 16 bytes a row against
/// the 8 of a plain list; so are rows picked out of order by [`Dataset::select`]).
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
    fn whole_numbers_are_held_in_four_bytes_and_read_back_bit_for_bit() {
        let whole = [0.0, 1.0, -7.0, 2_147_483_647.0, -2_147_483_647.0, f64::NAN, 29.0];
        let numbers: Numbers = whole.iter().copied().collect();
        assert!(matches!(numbers, Numbers::Whole(_)));
        let back: Vec<f64> = numbers.iter().collect();
        for (k, (a, b)) in whole.iter().zip(&back).enumerate() {
            assert_eq!((a.to_bits(), a.is_nan()), (b.to_bits(), b.is_nan()), "value {k}");
            assert!(numbers.get(k).to_bits() == a.to_bits() || (a.is_nan() && numbers.get(k).is_nan()));
        }
        // Each of these turns the column to f64s, keeping the values before it.
        for odd in [0.5, -0.0, 2_147_483_648.0, -2_147_483_648.0, 1e300, f64::INFINITY] {
            let mut numbers: Numbers = whole.iter().copied().collect();
            numbers.push(odd);
            numbers.push(3.0);
            assert!(matches!(numbers, Numbers::Float(_)), "{odd}");
            let back: Vec<f64> = numbers.iter().collect();
            assert_eq!(back.len(), whole.len() + 2);
            assert_eq!(back[whole.len()].to_bits(), odd.to_bits(), "{odd}");
            assert!(back[5].is_nan() && back[6] == 29.0 && back[8] == 3.0);
        }
        // Equality is the values', however they are held.
        let floats = Numbers::Float(vec![1.0, 2.0]);
        assert_eq!(floats, [1.0, 2.0].into_iter().collect::<Numbers>());
        assert_ne!(floats, [1.0, 3.0].into_iter().collect::<Numbers>());
        let rows = [2, 0, 6];
        let picked = numbers.select(Rows::Listed(&rows));
        assert_eq!(picked.iter().collect::<Vec<_>>(), vec![-7.0, 0.0, 29.0]);
        assert!(matches!(picked, Numbers::Whole(_)));
    }

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
