//! Validation of a whole data file against a schema: every value checked (lazily, without
//! stopping at the first error), exact counts and column statistics in the report, and the
//! columnar [`Dataset`] when every value passed. Reads through a [`RowSource`]: a CSV or a
//! Parquet file.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use crate::data::dataset::{ColumnValues, Dataset, MISSING_CODE};
use crate::data::parquet::ParquetSource;
use crate::data::reader::{CsvSource, RowSource};
pub use crate::data::reader::{Format, LabelPolicy};
use crate::data::report::{
    echo, ClassBalance, ColumnSummary, DataError, ErrorTally, NearDuplicate, Rule, ValidationReport,
};
use crate::data::rowhash::RowHasher;
use crate::data::schema::{ColumnKind, Parsed, Schema};
use crate::error::{Error, Result};

/// Categorical columns with at most this many distinct levels list each level's count.
const MAX_LISTED_LEVELS: usize = 50;
/// Columns with more levels list this many of the most common.
const TOP_LEVELS: usize = 20;

/// Levels that differ from a more common level only by case or surrounding whitespace
/// (`" Yes"` beside `"Yes"`): almost always one category written two ways.
fn near_duplicates(levels: &[(String, u64)]) -> Vec<NearDuplicate> {
    let mut groups: HashMap<String, Vec<&(String, u64)>> = HashMap::new();
    for level in levels {
        groups.entry(level.0.trim().to_lowercase()).or_default().push(level);
    }
    let mut found = Vec::new();
    for group in groups.values().filter(|g| g.len() > 1) {
        let like = group.iter().max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0))).expect("a group is not empty");
        for (level, count) in group.iter().map(|l| (&l.0, l.1)).filter(|(l, _)| *l != &like.0) {
            found.push(NearDuplicate { level: level.clone(), like: like.0.clone(), count });
        }
    }
    found.sort_by(|a, b| a.level.cmp(&b.level));
    found
}

/// Reads and validates a CSV file.
pub fn load_csv(path: &Path, schema: &Schema, label: LabelPolicy) -> Result<Dataset> {
    load(path, &path.display().to_string(), Format::Csv, schema, label, None)
}

/// Reads and validates CSV from any reader; `name` names the source in errors.
pub fn read_csv<R: Read>(reader: R, name: &str, schema: &Schema, label: LabelPolicy) -> Result<Dataset> {
    read(CsvSource::open(reader, name, schema, label)?, schema, None)
}

/// Reads and validates the data file at `path`, in `format`, named `name` in errors (an
/// object's URL when the file is its local copy); with `skip`, as [`load_csv_skipping`].
pub fn load(
    path: &Path,
    name: &str,
    format: Format,
    schema: &Schema,
    label: LabelPolicy,
    skip: Option<SkipInvalid>,
) -> Result<Dataset> {
    match format {
        Format::Csv => {
            let file = std::fs::File::open(path).map_err(|e| Error::io(name, e))?;
            read(CsvSource::open(file, name, schema, label)?, schema, skip)
        }
        Format::Parquet => read(ParquetSource::open(path, name, schema, label)?, schema, skip),
    }
}

/// Fails when more than `share` of a file's `rows` were invalid (`--max-invalid`): skipping
/// invalid rows is for the odd broken row, not for a file that is mostly broken.
pub fn check_invalid_share(file: &str, invalid: u64, rows: u64, share: f64) -> Result<()> {
    if rows > 0 && invalid as f64 > share * rows as f64 {
        return Err(Error::TooManyInvalid { file: file.into(), invalid, rows, share });
    }
    Ok(())
}

/// What to do with an invalid row instead of refusing the file (`--skip-invalid`).
pub struct SkipInvalid<'a> {
    /// The largest share of the rows that may be invalid; more fails with
    /// [`Error::TooManyInvalid`].
    pub max_share: f64,
    /// Where each broken value of a skipped row goes, one line each
    /// ([`crate::data::report::REJECTS_HEADER`]).
    pub rejects: &'a mut dyn std::io::Write,
}

/// [`load_csv`] that leaves invalid rows out instead of refusing the file: each of their broken
/// values is written to `skip.rejects`, and the [`Dataset`] holds the valid rows; its report
/// counts the rows read and, in `rows_with_errors`, `error_count` and `counts`, those left out
/// and why. A file-level error (too many missing values) still refuses the file.
pub fn load_csv_skipping(path: &Path, schema: &Schema, label: LabelPolicy, skip: SkipInvalid) -> Result<Dataset> {
    load(path, &path.display().to_string(), Format::Csv, schema, label, Some(skip))
}

fn read<S: RowSource>(mut source: S, schema: &Schema, skip: Option<SkipInvalid>) -> Result<Dataset> {
    let outcome = validate(&mut source, schema, skip);
    match outcome {
        Ok(mut dataset) => {
            source.locate(&mut dataset.report.errors);
            (dataset.report.sha256, dataset.report.bytes) = source.finish()?;
            Ok(dataset)
        }
        Err(Error::Validation(mut report)) => {
            source.locate(&mut report.errors);
            (report.sha256, report.bytes) = source.finish()?;
            Err(Error::Validation(report))
        }
        Err(other) => Err(other),
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
    Bool(Vec<Option<bool>>),
}

fn validate<S: RowSource>(source: &mut S, schema: &Schema, mut skip: Option<SkipInvalid>) -> Result<Dataset> {
    let name = source.name().to_string();
    let header = source.header().to_vec();
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
            ColumnKind::Id | ColumnKind::Ignore => None,
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
                kind: column.kind.name().into(),
                count: 0,
                missing: 0,
                missing_share: 0.0,
                min: None,
                max: None,
                mean: None,
                distinct: None,
                levels: BTreeMap::new(),
                top_levels: Vec::new(),
                near_duplicates: Vec::new(),
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
    let id_field = schema.id().and_then(|c| header.iter().position(|h| *h == c.name));
    let unused_columns: Vec<String> = header.iter().filter(|h| schema.column(h).is_none()).map(|h| echo(h)).collect();

    let mut tally = ErrorTally::default();
    let mut lines: Vec<u64> = Vec::new();
    // Every row's 128-bit hash, sorted at the end to count repeats: a set of a million rows
    // missed the cache on nearly every insert, a sort reads memory in order.
    let mut row_hashes: Vec<(u64, u64)> = Vec::new();
    let mut row_keys: Vec<u64> = Vec::new();
    let mut rows = 0u64;

    if let Some(skip) = skip.as_mut() {
        skip.rejects.write_all(crate::data::report::REJECTS_HEADER.as_bytes()).map_err(|e| Error::io("rejects", e))?;
    }
    source.drive(&mut |line: u64, record: &mut csv::ByteRecord| -> Result<()> {
        rows += 1;
        if let Some(skip) = skip.as_mut() {
            // Checked once before anything is recorded: a row left out leaves no trace in the
            // columns, the statistics or the row keys.
            if let Some(errors) = row_errors(&name, line, record, header.len(), &states, schema) {
                let mut text = String::new();
                for e in &errors {
                    e.write_reject(&mut text);
                }
                skip.rejects.write_all(text.as_bytes()).map_err(|e| Error::io("rejects", e))?;
                tally.rows_with_errors += 1;
                errors.into_iter().for_each(|e| tally.push(e));
                return Ok(());
            }
        }
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
            tally.rows_with_errors += 1;
            tally.push(DataError {
                file: name.clone(),
                line,
                row_group: None,
                column: "*".into(),
                value: format!("{} fields", record.len()),
                rule: Rule::FieldCount,
                detail: format!("the header has {} fields", header.len()),
            });
            for state in states.iter_mut() {
                push_placeholder(state);
            }
            return Ok(());
        }
        // Errors of this row, by field, pushed in the file's column order at the row's end.
        let mut row_errors: Vec<(usize, DataError)> = Vec::new();
        let mut key = RowHasher::default();
        if let Some(field) = id_field {
            // A row is its id: adding or removing a feature keeps its staging membership.
            key.field(&record[field]);
        }
        for state in states.iter_mut() {
            if state.label || id_field.is_some() {
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
                    Err((rule, detail)) => Some((rule, detail, echo(text))),
                },
                Err(_) => Some((Rule::Utf8, "the file must be UTF-8".to_string(), echo(&String::from_utf8_lossy(raw)))),
            };
            if let Some((rule, detail, value)) = failed {
                if rule == Rule::Missing {
                    state.summary.missing += 1;
                }
                let error = DataError {
                    file: name.clone(),
                    line,
                    row_group: None,
                    column: column.name.clone(),
                    value,
                    rule,
                    detail,
                };
                row_errors.push((state.field, error));
                push_placeholder(state);
            }
        }
        row_keys.push(key.finish());
        if !row_errors.is_empty() {
            tally.rows_with_errors += 1;
            row_errors.sort_by_key(|(field, _)| *field);
            row_errors.into_iter().for_each(|(_, e)| tally.push(e));
        }
        Ok(())
    })?;

    // With skipping, the rows left out are counted apart: what follows is about the rows kept.
    let skipped_rows = if skip.is_some() { tally.rows_with_errors } else { 0 };
    let skipped_errors = if skip.is_some() { tally.error_count } else { 0 };
    let kept = rows - skipped_rows;
    if let Some(skip) = &skip {
        check_invalid_share(&name, skipped_rows, rows, skip.max_share)?;
    }
    for state in &states {
        let column = &schema.columns[state.schema_index];
        let missing = state.summary.missing;
        let rows = kept;
        if let Some(max) = column.max_missing.filter(|&max| rows > 0 && missing as f64 > max * rows as f64) {
            tally.push(DataError {
                file: name.clone(),
                line: 1,
                row_group: None,
                column: column.name.clone(),
                value: format!("{missing} of {rows} rows missing ({:.2} %)", 100.0 * missing as f64 / rows as f64),
                rule: Rule::TooManyMissing,
                detail: format!("max_missing = {max}"),
            });
        }
    }
    row_hashes.sort_unstable();
    let duplicate_rows = row_hashes.windows(2).filter(|w| w[0] == w[1]).count() as u64;
    drop(row_hashes);
    let mut columns = Vec::with_capacity(states.len());
    for state in &mut states {
        let s = &mut state.summary;
        s.missing_share = if kept == 0 { 0.0 } else { s.missing as f64 / kept as f64 };
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
            let mut present: Vec<(String, u64)> = named.into_iter().filter(|(_, c)| *c > 0).collect();
            s.distinct = Some(present.len() as u64);
            s.near_duplicates = near_duplicates(&present);
            if present.len() <= MAX_LISTED_LEVELS {
                s.levels = present.into_iter().collect();
            } else {
                present.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                present.truncate(TOP_LEVELS);
                s.top_levels = present;
            }
        }
        columns.push(s.clone());
    }
    let class_balance = label_state.map(|i| {
        let positive = match &states[i].values {
            Some(Builder::Bool(v)) => v.iter().filter(|b| **b == Some(true)).count() as u64,
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
        file: name.clone(),
        sha256: String::new(),
        bytes: 0,
        rows,
        error_count: tally.error_count,
        rows_with_errors: tally.rows_with_errors,
        counts: tally.rule_counts(),
        errors: tally.errors,
        columns,
        unused_columns,
        duplicate_rows,
        class_balance,
    };
    if report.error_count > skipped_errors {
        return Err(Error::Validation(Box::new(report)));
    }
    if kept == 0 {
        let problem = if rows == 0 { "the file has a header but no data rows" } else { "no row of the file is valid" };
        return Err(Error::Unusable { path: name.into(), problem: problem.into() });
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
                    // A label is never missing: its column refuses `missing = "allow"`.
                    labels = Some(v.into_iter().map(|b| b.unwrap_or(false)).collect());
                    continue;
                }
                ColumnValues::Bool(v)
            }
        };
        features.push((column.name.clone(), values));
    }
    Ok(Dataset { schema: schema.clone(), features, labels, lines, row_keys, report })
}

/// The broken values of one row, in the file's column order, or `None` when it is valid.
fn row_errors(
    name: &str,
    line: u64,
    record: &csv::ByteRecord,
    fields: usize,
    states: &[ColumnState],
    schema: &Schema,
) -> Option<Vec<DataError>> {
    let error = |column: &str, value: String, rule: Rule, detail: String| DataError {
        file: name.to_string(),
        line,
        row_group: None,
        column: column.to_string(),
        value,
        rule,
        detail,
    };
    if record.len() != fields {
        let value = format!("{} fields", record.len());
        return Some(vec![error("*", value, Rule::FieldCount, format!("the header has {fields} fields"))]);
    }
    let mut errors: Vec<(usize, DataError)> = Vec::new();
    for state in states {
        let column = &schema.columns[state.schema_index];
        let raw = &record[state.field];
        let failed = match std::str::from_utf8(raw) {
            Ok(text) => column.check(text).err().map(|(rule, detail)| (rule, detail, echo(text))),
            Err(_) => Some((Rule::Utf8, "the file must be UTF-8".to_string(), echo(&String::from_utf8_lossy(raw)))),
        };
        if let Some((rule, detail, value)) = failed {
            errors.push((state.field, error(&column.name, value, rule, detail)));
        }
    }
    errors.sort_by_key(|(field, _)| *field);
    (!errors.is_empty()).then(|| errors.into_iter().map(|(_, e)| e).collect())
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
            v.push(Some(b));
            state.counts[usize::from(b)] += 1;
        }
        (Parsed::Missing, Some(builder)) => {
            s.count -= 1;
            s.missing += 1;
            match builder {
                Builder::Number(v) => v.push(f64::NAN),
                Builder::Level { codes, .. } => codes.push(MISSING_CODE),
                Builder::Bool(v) => v.push(None),
            }
        }
        _ => {}
    }
}

/// Keeps columns aligned when a value is broken; the data set is never returned then.
fn push_placeholder(state: &mut ColumnState) {
    match state.values.as_mut() {
        Some(Builder::Number(v)) => v.push(0.0),
        Some(Builder::Level { codes, .. }) => codes.push(0),
        Some(Builder::Bool(v)) => v.push(None),
        None => {}
    }
}
