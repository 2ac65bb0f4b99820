//! What validation reports: the rule a value broke, each broken value located exactly, the
//! header's problems, and a file's report with exact counts and column statistics. Types only,
//! and the tally that fills them: the Markdown is rendered elsewhere.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// How many located errors a report keeps; counts stay exact beyond it.
pub const MAX_KEPT_ERRORS: usize = 100;
/// How many errors a summary prints before the counts.
pub const SUMMARY_ERRORS: usize = 20;

/// What validation saw in one file: exact error counts, the first errors, column statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    /// The file, as named by the caller.
    pub file: String,
    /// sha256 of the file's bytes.
    pub sha256: String,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Data rows read (the header excluded).
    pub rows: u64,
    /// Total number of broken values.
    pub error_count: u64,
    /// Rows with at least one broken value.
    pub rows_with_errors: u64,
    /// The first errors, in file order (at most [`MAX_KEPT_ERRORS`]).
    pub errors: Vec<DataError>,
    /// Exact count of errors per column and rule.
    pub counts: Vec<RuleCount>,
    /// Statistics of each schema column present in the file.
    pub columns: Vec<ColumnSummary>,
    /// Header columns that the schema does not declare (read, then ignored).
    pub unused_columns: Vec<String>,
    /// Rows that repeat an earlier row exactly.
    pub duplicate_rows: u64,
    /// Label counts, when the file has a label column.
    pub class_balance: Option<ClassBalance>,
}

/// Number of errors for one column and rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleCount {
    /// Column name (`*` for row-level errors).
    pub column: String,
    /// The rule broken.
    pub rule: Rule,
    /// How many values broke it.
    pub count: u64,
}

/// Statistics of one column over its valid values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSummary {
    /// Column name.
    pub name: String,
    /// Kind, as in the schema (`numeric`, `categorical`, ...).
    pub kind: String,
    /// Valid values.
    pub count: u64,
    /// Missing values: empty values where a value is required (errors), or values spelled as
    /// missing in a column that allows them.
    pub missing: u64,
    /// `missing` over the rows read.
    #[serde(default)]
    pub missing_share: f64,
    /// Smallest value (numeric and integer columns).
    pub min: Option<f64>,
    /// Largest value (numeric and integer columns).
    pub max: Option<f64>,
    /// Mean (numeric and integer columns).
    pub mean: Option<f64>,
    /// Distinct values (categorical, boolean and label columns).
    pub distinct: Option<u64>,
    /// Count of each level, when there are few enough to list.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub levels: BTreeMap<String, u64>,
    /// The most common levels with their counts, when there are too many to list them all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_levels: Vec<(String, u64)>,
    /// Levels that differ from a more common one only by case or surrounding whitespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub near_duplicates: Vec<NearDuplicate>,
}

/// A level written like another, more common one but for case or surrounding whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NearDuplicate {
    /// The level as written.
    pub level: String,
    /// The more common spelling it resembles.
    pub like: String,
    /// Rows with this spelling.
    pub count: u64,
}

/// Label counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassBalance {
    /// Rows of the positive class.
    pub positive: u64,
    /// Rows of the negative class.
    pub negative: u64,
    /// positive / (positive + negative).
    pub positive_rate: f64,
}

/// Longest value echoed in an error, in characters.
pub const ECHO_CHARS: usize = 200;

/// `value` as errors echo it: whole when short, else its first [`ECHO_CHARS`] characters and
/// its length, so that a megabyte of garbage in a cell does not flood a terminal or a report.
pub fn echo(value: &str) -> String {
    match value.char_indices().nth(ECHO_CHARS) {
        None => value.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes in all)", &value[..cut], value.len()),
    }
}

/// Broken values as they are found: exact counts per column and rule, the first
/// [`MAX_KEPT_ERRORS`] located. Validation and scoring both count through it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErrorTally {
    /// The first errors, in the order they were pushed.
    pub errors: Vec<DataError>,
    /// Errors per column and rule.
    pub counts: BTreeMap<(String, Rule), u64>,
    /// Every broken value.
    pub error_count: u64,
    /// Rows with at least one broken value (counted by the caller, who knows the rows).
    pub rows_with_errors: u64,
}

impl ErrorTally {
    /// Counts one broken value, keeping it when there is room.
    pub fn push(&mut self, e: DataError) {
        self.error_count += 1;
        *self.counts.entry((e.column.clone(), e.rule)).or_default() += 1;
        if self.errors.len() < MAX_KEPT_ERRORS {
            self.errors.push(e);
        }
    }

    /// Adds a later part's tally (a later block of the same file).
    pub fn merge(&mut self, later: ErrorTally) {
        self.error_count += later.error_count;
        self.rows_with_errors += later.rows_with_errors;
        for (k, v) in later.counts {
            *self.counts.entry(k).or_default() += v;
        }
        let room = MAX_KEPT_ERRORS.saturating_sub(self.errors.len());
        self.errors.extend(later.errors.into_iter().take(room));
    }

    /// The counts, ordered by column and rule, as a report lists them.
    pub fn rule_counts(&self) -> Vec<RuleCount> {
        self.counts
            .iter()
            .map(|((column, rule), &count)| RuleCount { column: column.clone(), rule: *rule, count })
            .collect()
    }
}

impl ValidationReport {
    /// True when no value broke the schema.
    pub fn passed(&self) -> bool {
        self.error_count == 0
    }

    /// The failure summary: the first errors, then the exact counts per column and rule.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}: {} invalid value{} in {} of {} rows",
            self.file,
            self.error_count,
            if self.error_count == 1 { "" } else { "s" },
            self.rows_with_errors,
            self.rows
        );
        for e in self.errors.iter().take(SUMMARY_ERRORS) {
            s.push_str(&format!("\n  {e}"));
        }
        if self.error_count > SUMMARY_ERRORS as u64 {
            s.push_str(&format!("\n  ... and {} more", self.error_count - SUMMARY_ERRORS as u64));
        }
        s.push_str("\nerrors per column and rule:");
        for c in &self.counts {
            s.push_str(&format!("\n  {:>8}  {}: {}", c.count, c.column, c.rule.describe()));
        }
        s
    }
}

/// What can be wrong with a CSV header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderProblem {
    /// The file is empty: there is no header.
    Empty,
    /// A schema column is absent from the header.
    MissingColumn(String),
    /// A column name appears twice.
    DuplicateColumn(String),
    /// The header splits on another delimiter than the one configured.
    WrongDelimiter {
        /// The delimiter the schema expects.
        expected: char,
        /// The delimiter the header appears to use.
        found: char,
    },
}

impl fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderProblem::Empty => write!(f, "the file is empty, a header row is required"),
            HeaderProblem::MissingColumn(c) => write!(f, "column `{c}` of the schema is missing"),
            HeaderProblem::DuplicateColumn(c) => write!(f, "column `{c}` appears more than once"),
            HeaderProblem::WrongDelimiter { expected, found } => write!(
                f,
                "the header is delimited by {found:?}, not {expected:?}: was the file written with another delimiter?"
            ),
        }
    }
}

/// The rule a value broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The row has another number of fields than the header.
    FieldCount,
    /// The bytes of the row are not UTF-8.
    Utf8,
    /// The value is empty where a value is required.
    Missing,
    /// The value does not parse as a number.
    NotANumber,
    /// The value parses to NaN or an infinity.
    NotFinite,
    /// The value does not parse as an integer.
    NotAnInteger,
    /// The value is below the declared minimum.
    BelowMin,
    /// The value is above the declared maximum.
    AboveMax,
    /// The value is not one of the declared levels.
    UndeclaredLevel,
    /// The value is not one of the declared boolean spellings.
    NotABoolean,
    /// The label is neither the positive nor the negative spelling.
    NotALabel,
    /// A column that allows missing values has more of them than its `max_missing`.
    TooManyMissing,
}

impl Rule {
    /// The rule's name, as JSON writes it.
    pub fn name(self) -> &'static str {
        match self {
            Rule::FieldCount => "field_count",
            Rule::Utf8 => "utf8",
            Rule::Missing => "missing",
            Rule::NotANumber => "not_a_number",
            Rule::NotFinite => "not_finite",
            Rule::NotAnInteger => "not_an_integer",
            Rule::BelowMin => "below_min",
            Rule::AboveMax => "above_max",
            Rule::UndeclaredLevel => "undeclared_level",
            Rule::NotABoolean => "not_a_boolean",
            Rule::NotALabel => "not_a_label",
            Rule::TooManyMissing => "too_many_missing",
        }
    }

    /// A short description of the rule, for summaries.
    pub fn describe(self) -> &'static str {
        match self {
            Rule::FieldCount => "wrong number of fields",
            Rule::Utf8 => "not valid UTF-8",
            Rule::Missing => "missing value",
            Rule::NotANumber => "not a number",
            Rule::NotFinite => "NaN or infinite",
            Rule::NotAnInteger => "not an integer",
            Rule::BelowMin => "below the minimum",
            Rule::AboveMax => "above the maximum",
            Rule::UndeclaredLevel => "undeclared level",
            Rule::NotABoolean => "not a declared boolean spelling",
            Rule::NotALabel => "not a declared label spelling",
            Rule::TooManyMissing => "too many missing values",
        }
    }
}

/// The header of a rejects file (`--skip-invalid`): one line per broken value.
pub const REJECTS_HEADER: &str = "line,column,value,rule,detail\n";

/// `text` as a CSV field: quoted (quotes doubled) when it holds a comma, a quote or a line break.
pub fn csv_field(out: &mut String, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// One value that broke the schema, located exactly.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataError {
    /// The data file (empty for a single record).
    pub file: String,
    /// 1-based line number in a CSV file, where the header is line 1; in a Parquet file, the
    /// 1-based row of the file.
    pub line: u64,
    /// The row group of a Parquet file (0-based, as Parquet tools count them) that holds the
    /// row; absent for a CSV file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_group: Option<u32>,
    /// The column name (or `*` for a row-level error).
    pub column: String,
    /// The offending value, as written.
    pub value: String,
    /// The rule broken.
    pub rule: Rule,
    /// The rule, spelled out with its parameters (for example `must be >= 0`).
    pub detail: String,
}

impl DataError {
    /// Appends this error as a line of a rejects file ([`REJECTS_HEADER`]).
    pub fn write_reject(&self, out: &mut String) {
        out.push_str(&self.line.to_string());
        out.push(',');
        csv_field(out, &self.column);
        out.push(',');
        csv_field(out, &self.value);
        out.push(',');
        out.push_str(self.rule.name());
        out.push(',');
        csv_field(out, &self.detail);
        out.push('\n');
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.row_group {
            Some(group) => write!(f, "{}: row group {group}, row {}", self.file, self.line)?,
            None => write!(f, "{}:{}", self.file, self.line)?,
        }
        write!(f, ": column `{}`: value {:?}: {} ({})", self.column, self.value, self.rule.describe(), self.detail)
    }
}
