//! Validation of a whole data file against a schema: every value checked (lazily, without
//! stopping at the first error), exact counts and column statistics in the report, and the
//! columnar [`Dataset`] when every value passed. Reads through a [`RowSource`]: a CSV or a
//! Parquet file.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use crate::data::dataset::{ColumnValues, Dataset, MISSING_CODE};
use crate::data::parquet::ParquetSource;
use crate::data::reader::{Beside, CsvSource, RowSource};
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
            read(Beside(CsvSource::open(file, name, schema, label)?), schema, skip)
        }
        Format::Parquet => read(Beside(ParquetSource::open(path, name, schema, label)?), schema, skip),
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
    /// Whether the column's value is part of the row's key: the id's alone when the file has
    /// one, else every column's but the label's.
    keyed: bool,
}

enum Builder {
    Number(crate::data::dataset::Numbers),
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
            ColumnKind::Numeric { .. } | ColumnKind::Integer { .. } => Some(Builder::Number(Default::default())),
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
            keyed: false,
        });
    }
    let id_field = schema.id().and_then(|c| header.iter().position(|h| *h == c.name));
    for state in &mut states {
        // A row is its id: adding or removing a feature keeps its staging membership. The
        // label is not part of a row's identity: data to score has none.
        state.keyed = match id_field {
            Some(field) => state.field == field,
            None => !state.label,
        };
    }
    let unused_columns: Vec<String> = header.iter().filter(|h| schema.column(h).is_none()).map(|h| echo(h)).collect();

    let mut tally = ErrorTally::default();
    let mut lines = crate::data::dataset::Lines::default();
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
        // Duplicates are judged on the values of every column the schema reads, 128 bits so
        // that a collision is out of the question; the row key (staging membership) on the
        // keyed columns' values. Values, not text: a CSV and a Parquet file of the same data
        // agree (see `rowhash`).
        let mut whole = RowHasher::default();
        if record.len() != header.len() {
            for f in record.iter() {
                whole.refused(f);
            }
            row_hashes.push(whole.finish128());
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
        for state in states.iter_mut() {
            let column = &schema.columns[state.schema_index];
            let raw = &record[state.field];
            // Checked and recorded in one step: carrying the outcome with its error's text
            // through one more `Result` cost a fifth of the loading time in moves.
            let failed = match std::str::from_utf8(raw) {
                Ok(text) => match column.check(text) {
                    Ok(value) => {
                        whole.value(&value);
                        if state.keyed {
                            key.value(&value);
                        }
                        record_value(state, value);
                        None
                    }
                    Err((rule, detail)) => Some((rule, detail, echo(text))),
                },
                Err(_) => Some((Rule::Utf8, "the file must be UTF-8".to_string(), echo(&String::from_utf8_lossy(raw)))),
            };
            if let Some((rule, detail, value)) = failed {
                whole.refused(raw);
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
        row_hashes.push(whole.finish128());
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

/// Parquet files, written by the parquet crate itself, validated as their CSV twins are.
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parquet::basic::Compression;
    use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, FloatType, Int32Type, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    use std::fs::File;
    use std::path::{Path, PathBuf};

    use sha2::{Digest, Sha256};

    use super::*;
    use crate::data::parquet::BATCH;

    /// One column's values in a test file; `None` is a null.
    enum Col {
        F64(Vec<Option<f64>>),
        F32(Vec<Option<f32>>),
        I64(Vec<Option<i64>>),
        I32(Vec<Option<i32>>),
        Bool(Vec<Option<bool>>),
        Str(Vec<Option<&'static str>>),
    }

    fn split<T: Clone>(v: &[Option<T>]) -> (Vec<T>, Vec<i16>) {
        (v.iter().flatten().cloned().collect(), v.iter().map(|x| i16::from(x.is_some())).collect())
    }

    /// Writes a Parquet file with the parquet crate itself: `message` declares the columns,
    /// each row group gives every column's values in declaration order.
    fn write(path: &Path, message: &str, groups: Vec<Vec<Col>>) {
        let schema = Arc::new(parse_message_type(message).unwrap());
        let props = Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
        let mut writer = SerializedFileWriter::new(File::create(path).unwrap(), schema, props).unwrap();
        for group in groups {
            let mut rows = writer.next_row_group().unwrap();
            for col in group {
                let mut column = rows.next_column().unwrap().unwrap();
                match col {
                    Col::F64(v) => {
                        let (values, defs) = split(&v);
                        column.typed::<DoubleType>().write_batch(&values, Some(&defs), None).unwrap();
                    }
                    Col::F32(v) => {
                        let (values, defs) = split(&v);
                        column.typed::<FloatType>().write_batch(&values, Some(&defs), None).unwrap();
                    }
                    Col::I64(v) => {
                        let (values, defs) = split(&v);
                        column.typed::<Int64Type>().write_batch(&values, Some(&defs), None).unwrap();
                    }
                    Col::I32(v) => {
                        let (values, defs) = split(&v);
                        column.typed::<Int32Type>().write_batch(&values, Some(&defs), None).unwrap();
                    }
                    Col::Bool(v) => {
                        let (values, defs) = split(&v);
                        column.typed::<BoolType>().write_batch(&values, Some(&defs), None).unwrap();
                    }
                    Col::Str(v) => {
                        let (values, defs) = split(&v);
                        let values: Vec<ByteArray> = values.into_iter().map(ByteArray::from).collect();
                        column.typed::<ByteArrayType>().write_batch(&values, Some(&defs), None).unwrap();
                    }
                }
                column.close().unwrap();
            }
            rows.close().unwrap();
        }
        writer.close().unwrap();
    }

    const MESSAGE: &str = "message m {
        optional int64 id;
        optional double spend;
        optional float ratio;
        optional int32 visits;
        optional binary region (UTF8);
        optional int64 browser;
        optional boolean member;
        optional boolean bought;
        optional binary note (UTF8);
    }";

    fn schema() -> Schema {
        schema_from(SCHEMA)
    }

    fn schema_from(text: &str) -> Schema {
        let schema: Schema = toml::from_str(text).unwrap();
        schema.check().unwrap();
        schema
    }

    const SCHEMA: &str = r#"
            [[columns]]
            name = "id"
            kind = "id"
            [[columns]]
            name = "spend"
            kind = "numeric"
            min = 0
            missing = "allow"
            [[columns]]
            name = "ratio"
            kind = "numeric"
            [[columns]]
            name = "visits"
            kind = "integer"
            min = 0
            [[columns]]
            name = "region"
            kind = "categorical"
            missing = "allow"
            missing_values = ["NA"]
            [[columns]]
            name = "browser"
            kind = "categorical"
            [[columns]]
            name = "member"
            kind = "boolean"
            true = ["yes", "y"]
            false = ["no"]
            [[columns]]
            name = "bought"
            kind = "label"
            positive = "TRUE"
            negative = "FALSE"
        "#;

    /// Rows 0..n of the data, split in two row groups at `cut` (one when `cut` is `n`), as
    /// Parquet columns.
    fn groups(n: usize, cut: usize) -> Vec<Vec<Col>> {
        let rows: Vec<usize> = (0..n).collect();
        [&rows[..cut], &rows[cut..]]
            .into_iter()
            .filter(|part| !part.is_empty())
            .map(|part| {
                vec![
                    Col::I64(part.iter().map(|&i| Some(1000 + i as i64)).collect()),
                    Col::F64(part.iter().map(|&i| (i % 7 != 3).then_some(i as f64 * 1.25 + 0.1)).collect()),
                    Col::F32(part.iter().map(|&i| Some(0.1 * (i % 10) as f32)).collect()),
                    Col::I32(part.iter().map(|&i| Some((i * 3 % 11) as i32)).collect()),
                    Col::Str(part.iter().map(|&i| (i % 5 != 0).then_some(["north", "south", "east"][i % 3])).collect()),
                    Col::I64(part.iter().map(|&i| Some((i % 4) as i64 + 1)).collect()),
                    Col::Bool(part.iter().map(|&i| Some(i % 3 == 0)).collect()),
                    Col::Bool(part.iter().map(|&i| Some(i % 2 == 0)).collect()),
                    Col::Str(part.iter().map(|&i| Some(if i % 2 == 0 { "a" } else { "b" })).collect()),
                ]
            })
            .collect()
    }

    /// The same rows as a CSV writes them.
    fn csv(n: usize) -> String {
        let mut text = "id,spend,ratio,visits,region,browser,member,bought,note\n".to_string();
        for i in 0..n {
            let spend = if i % 7 != 3 { format!("{}", i as f64 * 1.25 + 0.1) } else { String::new() };
            let region = if i % 5 != 0 { ["north", "south", "east"][i % 3] } else { "NA" };
            text.push_str(&format!(
                "{},{spend},{},{},{region},{},{},{},{}\n",
                1000 + i,
                0.1 * (i % 10) as f32,
                i * 3 % 11,
                i % 4 + 1,
                if i % 3 == 0 { "yes" } else { "no" },
                if i % 2 == 0 { "TRUE" } else { "FALSE" },
                if i % 2 == 0 { "a" } else { "b" },
            ));
        }
        text
    }

    /// Columns compared bit for bit (NaN, a missing number, equals itself), briefly on failure.
    fn same(a: &crate::data::dataset::Dataset, b: &crate::data::dataset::Dataset) -> bool {
        format!("{:?}", a.features) == format!("{:?}", b.features)
    }

    fn parquet(dir: &tempfile::TempDir, name: &str, message: &str, groups: Vec<Vec<Col>>) -> PathBuf {
        let path = dir.path().join(name);
        write(&path, message, groups);
        path
    }

    #[test]
    fn a_parquet_file_gives_the_dataset_its_csv_gives() {
        let dir = tempfile::tempdir().unwrap();
        let path = parquet(&dir, "train.parquet", MESSAGE, groups(300, 120));
        let from_parquet =
            load(&path, "train.parquet", Format::Parquet, &schema(), LabelPolicy::Required, None).unwrap();
        let from_csv = read_csv(csv(300).as_bytes(), "train.csv", &schema(), LabelPolicy::Required).unwrap();
        assert!(same(&from_parquet, &from_csv));
        assert_eq!(from_parquet.labels, from_csv.labels);
        // Staging membership and duplicates are judged on the same values.
        assert_eq!(from_parquet.row_keys, from_csv.row_keys);
        assert_eq!(from_parquet.report.columns, from_csv.report.columns);
        assert_eq!(from_parquet.report.rows, 300);
        assert_eq!(from_parquet.report.unused_columns, vec!["note".to_string()]);
        // Rows are the file's rows, from 1; a CSV's lines count the header.
        assert_eq!(from_parquet.lines.iter().take(3).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(from_csv.lines.iter().take(3).collect::<Vec<_>>(), [2, 3, 4]);
        // The report hashes the file's bytes.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(from_parquet.report.bytes, bytes.len() as u64);
        assert_eq!(from_parquet.report.sha256, format!("{:x}", Sha256::digest(&bytes)));
    }

    #[test]
    fn a_csv_spelled_otherwise_and_its_parquet_twin_give_the_same_row_keys() {
        // What pyarrow's CSV reader makes of a CSV: `12.30` the double 12.3, `007` the integer
        // 7, `y` and `yes` (spellings of true) a boolean, a blank cell a null. The row keys and
        // the duplicates follow the values, whatever their text.
        let csv = "id,spend,ratio,visits,region,browser,member,bought,note\n\
                   0007,12.30,0.50,007,north,1,y,TRUE,a\n\
                   8,,0.25,3,NA,2,no,FALSE,b\n\
                   9,-0.0,1.0,0,south,3,yes,FALSE,c\n\
                   +10,1e1,0.125,010,east,4,yes,TRUE,d\n\
                   0010,10.000,0.125,10,east,4,y,TRUE,e\n";
        let columns = vec![
            Col::I64(vec![Some(7), Some(8), Some(9), Some(10), Some(10)]),
            Col::F64(vec![Some(12.3), None, Some(0.0), Some(10.0), Some(10.0)]),
            Col::F32(vec![Some(0.5), Some(0.25), Some(1.0), Some(0.125), Some(0.125)]),
            Col::I32(vec![Some(7), Some(3), Some(0), Some(10), Some(10)]),
            Col::Str(vec![Some("north"), None, Some("south"), Some("east"), Some("east")]),
            Col::I64(vec![Some(1), Some(2), Some(3), Some(4), Some(4)]),
            Col::Bool(vec![Some(true), Some(false), Some(true), Some(true), Some(true)]),
            Col::Bool(vec![Some(true), Some(false), Some(false), Some(true), Some(true)]),
            Col::Str(vec![Some("a"), Some("b"), Some("c"), Some("d"), Some("e")]),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = parquet(&dir, "twin.parquet", MESSAGE, vec![columns]);
        // With the id, a row's key is its id's value; without one, every value but the label's.
        let without_id = schema_from(&SCHEMA.replace("kind = \"id\"", "kind = \"ignore\""));
        for schema in [schema(), without_id] {
            let from_parquet =
                load(&path, "twin.parquet", Format::Parquet, &schema, LabelPolicy::Required, None).unwrap();
            let from_csv = read_csv(csv.as_bytes(), "twin.csv", &schema, LabelPolicy::Required).unwrap();
            assert_eq!(from_parquet.row_keys, from_csv.row_keys);
            assert_eq!(from_parquet.labels, from_csv.labels);
            // The last two rows are one row written twice.
            let keys = &from_csv.row_keys;
            assert_eq!(keys[3], keys[4]);
            let distinct: std::collections::BTreeSet<u64> = keys.iter().copied().collect();
            assert_eq!(distinct.len(), 4, "{keys:?}");
            assert_eq!((from_csv.report.duplicate_rows, from_parquet.report.duplicate_rows), (1, 1));
        }
        // The id alone keys a row: `0007` and 7 are one id.
        let with_id = read_csv(csv.as_bytes(), "twin.csv", &schema(), LabelPolicy::Required).unwrap();
        let mut id = RowHasher::default();
        id.value(&Parsed::Id("7"));
        assert_eq!(with_id.row_keys[0], id.finish());
    }

    #[test]
    fn rows_are_streamed_across_batches_and_row_groups() {
        // Row groups larger and smaller than a batch, cut off a batch's boundary.
        let dir = tempfile::tempdir().unwrap();
        let n = 2 * BATCH + 77;
        let path = parquet(&dir, "big.parquet", MESSAGE, groups(n, BATCH + 5));
        let data = load(&path, "big.parquet", Format::Parquet, &schema(), LabelPolicy::Required, None).unwrap();
        let from_csv = read_csv(csv(n).as_bytes(), "big.csv", &schema(), LabelPolicy::Required).unwrap();
        assert_eq!(data.len(), n);
        assert!(same(&data, &from_csv));
        assert_eq!(data.row_keys, from_csv.row_keys);
    }

    #[test]
    fn bad_values_and_refused_nulls_name_file_row_group_row_column_value_and_rule() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = groups(40, 10);
        // Row 13 (the second group's fourth row): a non-integer in the integer column read
        // from floats, a null in a column that refuses missing values, a negative spend.
        let message = MESSAGE.replace("optional int32 visits", "optional double visits");
        data[1][3] = Col::F64((10..40).map(|i| Some(if i == 12 { 2.5 } else { (i * 3 % 11) as f64 })).collect());
        data[0][3] = Col::F64((0..10).map(|i| Some((i * 3 % 11) as f64)).collect());
        data[1][2] = Col::F32((10..40).map(|i| (i != 12).then_some(0.5)).collect());
        data[1][1] = Col::F64((10..40).map(|i| Some(if i == 30 { -1.0 } else { 1.0 })).collect());
        let path = parquet(&dir, "bad.parquet", &message, data);
        let err = load(&path, "bad.parquet", Format::Parquet, &schema(), LabelPolicy::Required, None).unwrap_err();
        let Error::Validation(report) = err else { panic!("{err}") };
        assert_eq!(report.error_count, 3, "{}", report.summary());
        assert_eq!(report.rows_with_errors, 2);
        let found: Vec<(u64, Option<u32>, &str, &str, Rule)> =
            report.errors.iter().map(|e| (e.line, e.row_group, e.column.as_str(), e.value.as_str(), e.rule)).collect();
        assert_eq!(
            found,
            [
                (13, Some(1), "ratio", "", Rule::Missing),
                (13, Some(1), "visits", "2.5", Rule::NotAnInteger),
                (31, Some(1), "spend", "-1", Rule::BelowMin),
            ]
        );
        assert_eq!(report.file, "bad.parquet");
        assert!(
            report.errors[1]
                .to_string()
                .starts_with("bad.parquet: row group 1, row 13: column `visits`: value \"2.5\""),
            "{}",
            report.errors[1]
        );
    }

    #[test]
    fn not_a_number_and_infinities_are_refused_as_in_a_csv() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = groups(20, 20);
        data[0][2] = Col::F32((0..20).map(|i| Some([f32::NAN, f32::INFINITY, 0.5][i % 3])).collect());
        let path = parquet(&dir, "nan.parquet", MESSAGE, data);
        let Error::Validation(report) =
            load(&path, "nan.parquet", Format::Parquet, &schema(), LabelPolicy::Required, None).unwrap_err()
        else {
            panic!()
        };
        assert!(report.errors.iter().all(|e| e.rule == Rule::NotFinite && e.column == "ratio"));
        assert_eq!(report.error_count, 14);
        assert_eq!(report.errors[0].row_group, Some(0));
    }

    #[test]
    fn a_type_that_cannot_hold_the_kind_is_named_with_both_types() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("optional double spend", "optional binary spend (UTF8)", 1, "spend", "numeric", "Utf8"),
            ("optional int64 browser", "optional double browser", 5, "browser", "categorical", "Float64"),
            ("optional int64 id", "optional double id", 0, "id", "id", "Float64"),
            ("optional int32 visits", "optional int32 visits (DATE)", 3, "visits", "integer", "Date32"),
        ];
        for (from, to, index, column, kind, found) in cases {
            let mut data = groups(10, 10);
            data[0][index] = match found {
                "Utf8" => Col::Str(vec![Some("1"); 10]),
                "Float64" => Col::F64(vec![Some(1.0); 10]),
                _ => Col::I32(vec![Some(1); 10]),
            };
            let path = parquet(&dir, "wrong.parquet", &MESSAGE.replace(from, to), data);
            match load(&path, "wrong.parquet", Format::Parquet, &schema(), LabelPolicy::Required, None) {
                Err(Error::ColumnType { path, column: c, kind: k, found: f, .. }) => {
                    assert_eq!(
                        (path.to_str().unwrap(), c.as_str(), k, f.as_str()),
                        ("wrong.parquet", column, kind, found)
                    );
                }
                other => panic!("{to}: {other:?}"),
            }
        }
    }

    #[test]
    fn strings_and_integers_hold_booleans_and_labels_by_their_spellings() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = groups(12, 12);
        data[0][6] = Col::Str((0..12).map(|i| Some(["yes", "y", "no"][i % 3])).collect());
        data[0][7] = Col::Str((0..12).map(|i| Some(if i == 5 { "true" } else { "FALSE" })).collect());
        let message = MESSAGE
            .replace("optional boolean member", "optional binary member (UTF8)")
            .replace("optional boolean bought", "optional binary bought (UTF8)");
        let path = parquet(&dir, "spelled.parquet", &message, data);
        let Error::Validation(report) =
            load(&path, "spelled.parquet", Format::Parquet, &schema(), LabelPolicy::Required, None).unwrap_err()
        else {
            panic!()
        };
        // "true" is no spelling of the label's; every spelling of `member` is.
        assert_eq!(report.error_count, 1);
        assert_eq!((report.errors[0].line, report.errors[0].rule), (6, Rule::NotALabel));
    }

    #[test]
    fn a_missing_column_and_a_file_that_is_not_parquet_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = groups(10, 10);
        data[0].remove(4);
        let path = parquet(&dir, "less.parquet", &MESSAGE.replace("optional binary region (UTF8);", ""), data);
        let err = load(&path, "less.parquet", Format::Parquet, &schema(), LabelPolicy::Required, None).unwrap_err();
        assert!(err.to_string().contains("column `region` of the schema is missing"), "{err}");
        let csv_path = dir.path().join("data.parquet");
        std::fs::write(&csv_path, csv(5)).unwrap();
        let err = load(&csv_path, "data.parquet", Format::Parquet, &schema(), LabelPolicy::Required, None).unwrap_err();
        assert!(matches!(err, Error::Unusable { .. }), "{err}");
        assert!(err.to_string().starts_with("data.parquet: not a readable Parquet file"), "{err}");
    }

    #[test]
    fn the_format_is_the_extensions_else_the_configured_one() {
        assert_eq!(Format::of("a/train.parquet", None), Format::Parquet);
        assert_eq!(Format::of("s3://b/k/train.PQ", Some(Format::Csv)), Format::Parquet);
        assert_eq!(Format::of("train.csv", Some(Format::Parquet)), Format::Csv);
        assert_eq!(Format::of("s3://bucket/part-0000", Some(Format::Parquet)), Format::Parquet);
        assert_eq!(Format::of("data.v2/part", None), Format::Csv);
    }
}
