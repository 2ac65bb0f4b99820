//! Streaming CSV loading with lazy, exhaustive validation against a schema, and its report.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::hex;
use crate::dataset::{ColumnValues, Dataset};
use crate::error::{DataError, Error, HeaderProblem, Result, Rule};
use crate::schema::{ColumnKind, Parsed, Schema};
use crate::staging::RowHasher;

/// How many located errors a report keeps; counts stay exact beyond it.
pub const MAX_KEPT_ERRORS: usize = 100;
/// How many errors a summary prints before the counts.
pub const SUMMARY_ERRORS: usize = 20;
/// Categorical columns with at most this many distinct levels list each level's count.
const MAX_LISTED_LEVELS: usize = 50;

/// Whether the label column must be present in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelPolicy {
    /// Training and evaluation data: the label column is required.
    Required,
    /// Data to score: the label column may be absent (it is read when present).
    Optional,
}

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
    /// Empty values.
    pub missing: u64,
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

    /// The report as Markdown, for reports and job summaries.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let status = if self.passed() { "✅ passed" } else { "❌ failed" };
        s.push_str(&format!(
            "**Data validation {status}** — `{}`: {} rows, sha256 `{}`, {} exact duplicate rows",
            self.file,
            self.rows,
            &self.sha256[..12.min(self.sha256.len())],
            self.duplicate_rows
        ));
        if let Some(b) = &self.class_balance {
            s.push_str(&format!(
                ", {} positive / {} negative ({:.2} % positive)",
                b.positive,
                b.negative,
                100.0 * b.positive_rate
            ));
        }
        s.push_str("\n\n");
        if !self.passed() {
            s.push_str("| line | column | value | rule |\n|---:|---|---|---|\n");
            for e in self.errors.iter().take(SUMMARY_ERRORS) {
                s.push_str(&format!(
                    "| {} | `{}` | `{}` | {} ({}) |\n",
                    e.line,
                    e.column,
                    e.value.replace('|', "\\|").replace('`', "'"),
                    e.rule.describe(),
                    e.detail.replace('|', "\\|")
                ));
            }
            s.push_str("\n| column | rule | count |\n|---|---|---:|\n");
            for c in &self.counts {
                s.push_str(&format!("| `{}` | {} | {} |\n", c.column, c.rule.describe(), c.count));
            }
            s.push('\n');
        }
        s.push_str("| column | kind | count | missing | min | max | mean | distinct |\n|---|---|---:|---:|---:|---:|---:|---:|\n");
        let num = |x: Option<f64>| x.map(|v| format!("{v:.4}")).unwrap_or_default();
        for c in &self.columns {
            s.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} | {} | {} |\n",
                c.name,
                c.kind,
                c.count,
                c.missing,
                num(c.min),
                num(c.max),
                num(c.mean),
                c.distinct.map(|d| d.to_string()).unwrap_or_default()
            ));
        }
        s
    }
}

/// Reads and validates a CSV file.
pub fn load_csv(path: &Path, schema: &Schema, label: LabelPolicy) -> Result<Dataset> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    read_csv(file, &path.display().to_string(), schema, label)
}

/// Reads and validates CSV from any reader; `name` names the source in errors.
pub fn read_csv<R: Read>(reader: R, name: &str, schema: &Schema, label: LabelPolicy) -> Result<Dataset> {
    let mut hashing = HashingReader::new(reader);
    match validate(&mut hashing, name, schema, label) {
        Ok(mut dataset) => {
            (dataset.report.sha256, dataset.report.bytes) = hashing.finish();
            Ok(dataset)
        }
        Err(Error::Validation(mut report)) => {
            // Read what the CSV reader left, so that the hash covers the whole file.
            let mut rest = Vec::new();
            hashing.read_to_end(&mut rest).map_err(|e| Error::io(name, e))?;
            (report.sha256, report.bytes) = hashing.finish();
            Err(Error::Validation(report))
        }
        Err(other) => Err(other),
    }
}

/// Passes bytes through to the CSV parser while hashing them and noting where lines end, so
/// that line numbers are exact whatever the line terminator (the csv crate's own count is off
/// by one with CRLF).
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    /// Offsets of `\n` bytes read but not yet passed by a record end.
    newlines: VecDeque<u64>,
    /// 1 + the newlines popped so far: the line the parser has reached.
    line: u64,
}

impl<R> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), bytes: 0, newlines: VecDeque::new(), line: 1 }
    }

    /// The sha256 and size of everything read.
    pub(crate) fn finish(self) -> (String, u64) {
        (hex(&self.hasher.finalize()), self.bytes)
    }

    /// The 1-based line on which a record starts, given the parser's position just after the
    /// record (`end`) and the newlines inside the record's fields. Asked in file order.
    ///
    /// The csv crate's own record positions point where the parser resumed reading: before
    /// skipped blank lines, and on the `\n` of a CRLF. Counting back from the record's end
    /// avoids both.
    pub(crate) fn record_start_line(&mut self, end: u64, newlines_inside: u64) -> u64 {
        let mut last_popped = None;
        while self.newlines.front().is_some_and(|&o| o < end) {
            last_popped = self.newlines.pop_front();
            self.line += 1;
        }
        // With an LF terminator the parser has consumed it; with CRLF it stops after the `\r`;
        // at the end of a file without a final newline there is none.
        let terminator_counted = end > 0 && last_popped == Some(end - 1);
        let last_line = if terminator_counted { self.line - 1 } else { self.line };
        last_line.saturating_sub(newlines_inside).max(1)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        for (i, _) in buf[..n].iter().enumerate().filter(|(_, b)| **b == b'\n') {
            self.newlines.push_back(self.bytes + i as u64);
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Per-column state while reading.
struct ColumnState {
    /// Index of the column in the CSV record.
    field: usize,
    schema_index: usize,
    values: Option<Builder>,
    summary: ColumnSummary,
    sum: f64,
    /// Rows per level code (categorical) or per false/true (boolean, label).
    counts: Vec<u64>,
    label: bool,
}

enum Builder {
    Number(Vec<f64>),
    Level { index: HashMap<String, u32>, levels: Vec<String>, codes: Vec<u32> },
    Bool(Vec<bool>),
}

fn kind_name(kind: &ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Numeric { .. } => "numeric",
        ColumnKind::Integer { .. } => "integer",
        ColumnKind::Categorical { .. } => "categorical",
        ColumnKind::Boolean { .. } => "boolean",
        ColumnKind::Label { .. } => "label",
        ColumnKind::Ignore => "ignore",
    }
}

fn validate<R: Read>(
    reader: &mut HashingReader<R>,
    name: &str,
    schema: &Schema,
    label_policy: LabelPolicy,
) -> Result<Dataset> {
    let path = || std::path::PathBuf::from(name);
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(schema.delimiter as u8)
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let csv_error = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(source) => Error::Io { path: path(), source },
        other => Error::Unusable { path: path(), problem: format!("unreadable CSV: {other:?}") },
    };

    let mut record = csv::ByteRecord::new();
    if !csv.read_byte_record(&mut record).map_err(csv_error)? {
        return Err(Error::Header { path: path(), problem: HeaderProblem::Empty });
    }
    let mut header: Vec<String> = Vec::with_capacity(record.len());
    for (i, f) in record.iter().enumerate() {
        let mut s = String::from_utf8_lossy(f).into_owned();
        if i == 0 {
            // A UTF-8 byte-order mark, as spreadsheet programs write it, is not part of the name.
            if let Some(stripped) = s.strip_prefix('\u{feff}') {
                s = stripped.to_string();
            }
        }
        header.push(s);
    }
    check_header(&header, schema, label_policy).map_err(|problem| Error::Header { path: path(), problem })?;

    let position = |n: &str| header.iter().position(|h| h == n);
    let mut states: Vec<ColumnState> = Vec::new();
    let mut label_state: Option<usize> = None;
    for (schema_index, column) in schema.columns.iter().enumerate() {
        let Some(field) = position(&column.name) else { continue };
        let values = match &column.kind {
            ColumnKind::Numeric { .. } | ColumnKind::Integer { .. } => Some(Builder::Number(Vec::new())),
            ColumnKind::Categorical { .. } => {
                Some(Builder::Level { index: HashMap::new(), levels: Vec::new(), codes: Vec::new() })
            }
            ColumnKind::Boolean { .. } | ColumnKind::Label { .. } => Some(Builder::Bool(Vec::new())),
            ColumnKind::Ignore => None,
        };
        if matches!(column.kind, ColumnKind::Label { .. }) {
            label_state = Some(states.len());
        }
        states.push(ColumnState {
            field,
            schema_index,
            values,
            summary: ColumnSummary {
                name: column.name.clone(),
                kind: kind_name(&column.kind).into(),
                count: 0,
                missing: 0,
                min: None,
                max: None,
                mean: None,
                distinct: None,
                levels: BTreeMap::new(),
            },
            sum: 0.0,
            counts: if matches!(column.kind, ColumnKind::Boolean { .. } | ColumnKind::Label { .. }) {
                vec![0, 0]
            } else {
                Vec::new()
            },
            label: matches!(column.kind, ColumnKind::Label { .. }),
        });
    }
    let unused_columns: Vec<String> = header.iter().filter(|h| schema.column(h).is_none()).cloned().collect();

    let mut errors: Vec<DataError> = Vec::new();
    let mut error_count = 0u64;
    let mut rows_with_errors = 0u64;
    let mut counts: BTreeMap<(String, Rule), u64> = BTreeMap::new();
    let mut lines: Vec<u64> = Vec::new();
    // Every row's 128-bit hash, sorted at the end to count repeats: a set of a million rows
    // missed the cache on nearly every insert, a sort reads memory in order.
    let mut row_hashes: Vec<(u64, u64)> = Vec::new();
    let mut row_keys: Vec<u64> = Vec::new();
    let mut rows = 0u64;

    let mut report_error = |e: DataError, counts: &mut BTreeMap<(String, Rule), u64>| {
        error_count += 1;
        *counts.entry((e.column.clone(), e.rule)).or_default() += 1;
        if errors.len() < MAX_KEPT_ERRORS {
            errors.push(e);
        }
    };

    while csv.read_byte_record(&mut record).map_err(csv_error)? {
        let end = csv.position().byte();
        let inside = record.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
        let line = csv.get_mut().record_start_line(end, inside);
        // A blank line is not a row; csv already skips those, this guards a lone delimiter-free
        // empty field as the last line.
        if record.len() == 1 && record[0].is_empty() && header.len() > 1 {
            continue;
        }
        rows += 1;
        lines.push(line);
        // Duplicates are judged on the whole row as written, 128 bits so that a collision is
        // out of the question; the row key (staging membership) on the schema's columns.
        let mut whole = RowHasher::default();
        for f in record.iter() {
            whole.field(f);
        }
        row_hashes.push(whole.finish128());
        if record.len() != header.len() {
            row_keys.push(0);
            rows_with_errors += 1;
            report_error(
                DataError {
                    file: name.into(),
                    line,
                    column: "*".into(),
                    value: format!("{} fields", record.len()),
                    rule: Rule::FieldCount,
                    detail: format!("the header has {} fields", header.len()),
                },
                &mut counts,
            );
            for state in states.iter_mut() {
                push_placeholder(state);
            }
            continue;
        }
        let mut row_ok = true;
        let mut key = RowHasher::default();
        for state in states.iter_mut() {
            if state.label {
                // The label is not part of a row's identity: data to score has none.
            } else {
                key.field(&record[state.field]);
            }
            let column = &schema.columns[state.schema_index];
            let raw = &record[state.field];
            // Checked and recorded in one step: carrying the outcome with its error's text
            // through one more `Result` cost a fifth of the loading time in moves.
            let failed = match std::str::from_utf8(raw) {
                Ok(text) => match column.check(text) {
                    Ok(value) => {
                        record_value(state, value);
                        None
                    }
                    Err((rule, detail)) => Some((rule, detail, text.to_string())),
                },
                Err(_) => {
                    Some((Rule::Utf8, "the file must be UTF-8".to_string(), String::from_utf8_lossy(raw).into_owned()))
                }
            };
            if let Some((rule, detail, value)) = failed {
                row_ok = false;
                if rule == Rule::Missing {
                    state.summary.missing += 1;
                }
                report_error(
                    DataError { file: name.into(), line, column: column.name.clone(), value, rule, detail },
                    &mut counts,
                );
                push_placeholder(state);
            }
        }
        row_keys.push(key.finish());
        if !row_ok {
            rows_with_errors += 1;
        }
    }

    row_hashes.sort_unstable();
    let duplicate_rows = row_hashes.windows(2).filter(|w| w[0] == w[1]).count() as u64;
    drop(row_hashes);
    let mut columns = Vec::with_capacity(states.len());
    for state in &mut states {
        let s = &mut state.summary;
        if s.count > 0 && s.min.is_some() {
            s.mean = Some(state.sum / s.count as f64);
        }
        let named: Vec<(String, u64)> = match &state.values {
            Some(Builder::Level { levels, .. }) => levels.iter().cloned().zip(state.counts.iter().copied()).collect(),
            Some(Builder::Bool(_)) => {
                vec![("false".to_string(), state.counts[0]), ("true".to_string(), state.counts[1])]
            }
            _ => Vec::new(),
        };
        if matches!(state.values, Some(Builder::Level { .. }) | Some(Builder::Bool(_))) {
            let present: Vec<(String, u64)> = named.into_iter().filter(|(_, c)| *c > 0).collect();
            s.distinct = Some(present.len() as u64);
            if present.len() <= MAX_LISTED_LEVELS {
                s.levels = present.into_iter().collect();
            }
        }
        columns.push(s.clone());
    }
    let class_balance = label_state.map(|i| {
        let positive = match &states[i].values {
            Some(Builder::Bool(v)) => v.iter().filter(|b| **b).count() as u64,
            _ => 0,
        };
        let counted = states[i].summary.count;
        let negative = counted - positive.min(counted);
        ClassBalance {
            positive,
            negative,
            positive_rate: if counted == 0 { 0.0 } else { positive as f64 / counted as f64 },
        }
    });
    let report = ValidationReport {
        file: name.into(),
        sha256: String::new(),
        bytes: 0,
        rows,
        error_count,
        rows_with_errors,
        errors,
        counts: counts.into_iter().map(|((column, rule), count)| RuleCount { column, rule, count }).collect(),
        columns,
        unused_columns,
        duplicate_rows,
        class_balance,
    };
    if !report.passed() {
        return Err(Error::Validation(Box::new(report)));
    }
    if rows == 0 {
        return Err(Error::Unusable { path: path(), problem: "the file has a header but no data rows".into() });
    }

    let mut features = Vec::new();
    let mut labels = None;
    for state in states {
        let column = &schema.columns[state.schema_index];
        let values = match state.values {
            None => continue,
            Some(Builder::Number(v)) => ColumnValues::Number(v),
            Some(Builder::Level { levels, codes, .. }) => ColumnValues::Level { levels, codes },
            Some(Builder::Bool(v)) => {
                if matches!(column.kind, ColumnKind::Label { .. }) {
                    labels = Some(v);
                    continue;
                }
                ColumnValues::Bool(v)
            }
        };
        features.push((column.name.clone(), values));
    }
    Ok(Dataset { schema: schema.clone(), features, labels, lines, row_keys, report })
}

pub(crate) fn check_header(
    header: &[String],
    schema: &Schema,
    label: LabelPolicy,
) -> std::result::Result<(), HeaderProblem> {
    let expected = schema.delimiter;
    if header.len() == 1 && schema.columns.len() > 1 {
        if let Some(found) = [',', ';', '\t', '|'].into_iter().find(|d| *d != expected && header[0].contains(*d)) {
            return Err(HeaderProblem::WrongDelimiter { expected, found });
        }
    }
    let mut seen = HashSet::new();
    for h in header {
        if !seen.insert(h.as_str()) {
            return Err(HeaderProblem::DuplicateColumn(h.clone()));
        }
    }
    for c in &schema.columns {
        let optional = label == LabelPolicy::Optional && matches!(c.kind, ColumnKind::Label { .. });
        if !optional && !seen.contains(c.name.as_str()) {
            return Err(HeaderProblem::MissingColumn(c.name.clone()));
        }
    }
    Ok(())
}

fn record_value(state: &mut ColumnState, value: Parsed<'_>) {
    let s = &mut state.summary;
    s.count += 1;
    match (value, state.values.as_mut()) {
        (Parsed::Number(x), Some(Builder::Number(v))) => {
            v.push(x);
            state.sum += x;
            s.min = Some(s.min.map_or(x, |m| m.min(x)));
            s.max = Some(s.max.map_or(x, |m| m.max(x)));
        }
        (Parsed::Level(level), Some(Builder::Level { index, levels, codes })) => {
            let code = match index.get(level) {
                Some(c) => *c,
                None => {
                    let c = levels.len() as u32;
                    index.insert(level.to_string(), c);
                    levels.push(level.to_string());
                    state.counts.push(0);
                    c
                }
            };
            codes.push(code);
            state.counts[code as usize] += 1;
        }
        (Parsed::Bool(b) | Parsed::Label(b), Some(Builder::Bool(v))) => {
            v.push(b);
            state.counts[usize::from(b)] += 1;
        }
        _ => {}
    }
}

/// Keeps columns aligned when a value is broken; the data set is never returned then.
fn push_placeholder(state: &mut ColumnState) {
    match state.values.as_mut() {
        Some(Builder::Number(v)) => v.push(0.0),
        Some(Builder::Level { codes, .. }) => codes.push(0),
        Some(Builder::Bool(v)) => v.push(false),
        None => {}
    }
}
