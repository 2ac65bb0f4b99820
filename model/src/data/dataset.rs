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
    pub lines: Vec<u64>,
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
            lines: rows.iter().map(|&i| self.lines[i]).collect(),
            row_keys: rows.iter().map(|&i| self.row_keys[i]).collect(),
            report: self.report.clone(),
        }
    }
}
