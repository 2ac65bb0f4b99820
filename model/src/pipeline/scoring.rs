//! Streaming batch scoring: CSV in, `[id,][kept columns,]probability,prediction` CSV out, in
//! blocks of rows that are checked, encoded and scored on every core while the next block is
//! read. Memory stays flat whatever the file's size; every value is still checked against the
//! schema. Strict by default; asked to, it scores the valid rows and writes the invalid ones,
//! located, to a rejects file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::sync::mpsc;

use crate::data::reader::{CsvSource, LabelPolicy, RowSource};
use crate::data::report::{echo, DataError, ErrorTally, Rule, ValidationReport};
use crate::data::schema::{Column, ColumnKind, Parsed};
use crate::data::validation::check_invalid_share;
use crate::error::{Error, Result};
use crate::learn::features::Encoder;
use crate::learn::model::Prepared;
use crate::pipeline::artifact::Artifact;

/// The text a [`Field::Text`] holds, and how a value that displays becomes one.
pub use compact_str::{CompactString, ToCompactString};

/// Rows per block handed to a worker.
const BLOCK: usize = 8192;

/// What a scoring run saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreSummary {
    /// Rows scored.
    pub rows: u64,
    /// Rows predicted positive.
    pub positives: u64,
    /// Column → rows whose level was not seen in training.
    pub unseen_levels: BTreeMap<String, u64>,
    /// sha256 of the input's bytes.
    pub sha256: String,
    /// Rows left out as invalid (only when invalid rows are skipped).
    pub skipped: u64,
}

/// What [`score_csv_with`] writes besides the scores, and what it does with an invalid row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreOptions {
    /// Input columns carried to the output, after the id column (when the schema has one).
    pub keep: Vec<String>,
    /// Score the valid rows and write the invalid ones to the rejects writer, failing only when
    /// more than this share of the rows is invalid; `None` stops at the first invalid row.
    pub skip_invalid: Option<f64>,
}

pub use crate::data::report::{csv_field, REJECTS_HEADER};

/// One block's outcome.
#[derive(Default)]
struct BlockResult {
    text: String,
    /// The probability of each valid row, in order.
    probabilities: Vec<f64>,
    /// Lines of the rejects file (when invalid rows are skipped).
    rejects: String,
    rows: u64,
    positives: u64,
    unseen: BTreeMap<String, u64>,
    tally: ErrorTally,
}

/// How each model input is read from a record, and how the model is evaluated. It owns what
/// it compiled and names the artifact's columns and encoders by index, so that it can be kept
/// beside its artifact (see [`Compiled`]).
struct Plan {
    prepared: Prepared,
    /// Schema columns present in the file: (index in the schema's columns, field index).
    checked: Vec<(usize, usize)>,
    /// For each entry of `checked`, how the model reads its column; `None` for a column the
    /// model does not read (checked all the same).
    encoders: Vec<Option<Input>>,
    header_len: usize,
    /// Fields written before the scores, in order: the id, then the kept columns.
    carried: Vec<usize>,
    /// Invalid rows are skipped (and written to the rejects), not the end of the output.
    skip: bool,
    /// Output lines are written (batch scoring); otherwise only the probabilities are kept.
    text: bool,
}

/// A column the model reads.
struct Input {
    /// Index in the artifact's encoders.
    encoder: usize,
    /// Where its inputs start in a row of model inputs.
    offset: usize,
    /// For an integer column, the encoded values of 0, 1, 2, …: integers repeat, and the
    /// encoding (a logarithm, a division) costs more than looking it up. The same arithmetic,
    /// so the same bits.
    by_integer: Vec<f64>,
}

/// Integers from 0 up to this many get their encoding looked up.
const INTEGER_TABLE: i64 = 1024;

/// A record's value given typed, as a JSON body gives it, rather than as the text of a CSV field:
/// checked by the same rules ([`Field::check`]) as the text [`Field::text`] a CSV field would
/// hold, without being written out and parsed back.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// Text, checked as a CSV field's (a JSON string; the empty text for `null`); up to 24
    /// bytes held inline, without an allocation of its own.
    Text(CompactString),
    /// A whole number as written (a JSON integer).
    Int(i64),
    /// A whole number above `i64::MAX` as written.
    UInt(u64),
    /// A number written with a fraction or an exponent (a JSON float); an integer column reads a
    /// fraction-less one as whole (`48.0` is 48: JSON, and JSON Schema's `integer`, do not tell
    /// them apart).
    Float(f64),
    /// A boolean (a JSON `true` or `false`).
    Bool(bool),
}

impl Default for Field {
    fn default() -> Field {
        Field::Text(CompactString::const_new(""))
    }
}

/// The text of a JSON float as serde_json writes it (the shortest that reads back the same).
fn float_text(x: f64) -> String {
    match serde_json::Number::from_f64(x) {
        Some(n) => n.to_string(),
        None => x.to_string(),
    }
}

impl Field {
    /// The text a CSV field would hold for this value: a number as JSON writes it, a boolean as
    /// `true` or `false`.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Field::Text(s) => std::borrow::Cow::Borrowed(s.as_str()),
            Field::Int(i) => i.to_string().into(),
            Field::UInt(u) => u.to_string().into(),
            Field::Float(x) => float_text(*x).into(),
            Field::Bool(b) => std::borrow::Cow::Borrowed(if *b { "true" } else { "false" }),
        }
    }

    /// The text a column of `kind` reads for this value: [`Field::text`], but an integer
    /// column's fraction-less float as the whole number it is (`48.0` as `48`).
    pub fn text_as(&self, kind: &ColumnKind) -> std::borrow::Cow<'_, str> {
        match (self, kind, self.whole()) {
            (Field::Float(_), ColumnKind::Integer { .. }, Some(whole)) => whole.to_string().into(),
            _ => self.text(),
        }
    }

    /// The value as the whole number an integer column reads, when it is one.
    fn whole(&self) -> Option<i64> {
        match *self {
            Field::Int(i) => Some(i),
            Field::UInt(u) => i64::try_from(u).ok(),
            Field::Float(x) if x.fract() == 0.0 && (i64::MIN as f64..i64::MAX as f64).contains(&x) => Some(x as i64),
            _ => None,
        }
    }

    /// Checks the value by `column`'s rules and parses it, as [`Column::check`] does the text
    /// [`Field::text`] (an integer column's `48.0` as `48`), with the same rule and detail on
    /// failure: a number for a numeric or integer column, and a boolean for a boolean column,
    /// without going through text. A number or a boolean for a column of levels or ids is
    /// refused as the text it would be is not a value borrowed from the record: give it as
    /// [`Field::Text`] (a server renders such a value as its text when it reads it).
    pub fn check<'a>(&'a self, column: &Column) -> std::result::Result<Parsed<'a>, (Rule, String)> {
        use crate::data::schema::{check_bounds, Missing};
        let number = matches!(self, Field::Int(_) | Field::UInt(_) | Field::Float(_));
        match (self, &column.kind) {
            (Field::Text(text), _) => column.check(text),
            (_, ColumnKind::Ignore) => Ok(Parsed::Ignored),
            (Field::Bool(b), ColumnKind::Boolean { .. }) => Ok(Parsed::Bool(*b)),
            // A spelling of a missing value that is the value's text (`-999`, `true`).
            _ if column.missing == Missing::Allow
                && column.missing_values.iter().any(|m| !m.is_empty() && *m == *self.text_as(&column.kind)) =>
            {
                Ok(Parsed::Missing)
            }
            (_, ColumnKind::Numeric { min, max, .. }) if number => {
                let x = match *self {
                    Field::Int(i) => i as f64,
                    Field::UInt(u) => u as f64,
                    Field::Float(x) => x,
                    _ => unreachable!("a number"),
                };
                if !x.is_finite() {
                    return Err((Rule::NotFinite, "NaN and infinities are refused".into()));
                }
                check_bounds(x, *min, *max)?;
                Ok(Parsed::Number(x))
            }
            (_, ColumnKind::Integer { min, max, .. }) if number => {
                let x = self.whole().ok_or_else(|| (Rule::NotAnInteger, "expected a whole number".to_string()))?;
                check_bounds(x as f64, min.map(|m| m as f64), max.map(|m| m as f64))?;
                Ok(Parsed::Number(x as f64))
            }
            (
                _,
                ColumnKind::Numeric { .. }
                | ColumnKind::Integer { .. }
                | ColumnKind::Boolean { .. }
                | ColumnKind::Label { .. },
            ) => {
                // The text decides (a boolean for a number, a number for a boolean); what these
                // kinds parse to borrows nothing from it.
                match column.check(&self.text_as(&column.kind)) {
                    Ok(Parsed::Number(x)) => Ok(Parsed::Number(x)),
                    Ok(Parsed::Bool(b)) => Ok(Parsed::Bool(b)),
                    Ok(Parsed::Label(b)) => Ok(Parsed::Label(b)),
                    Ok(_) => Ok(Parsed::Missing),
                    Err(e) => Err(e),
                }
            }
            _ => Err((Rule::UndeclaredLevel, "a level or an id is given as text (a string)".into())),
        }
    }
}

/// A record as [`Compiled::score`] reads it: a CSV row's fields, or typed [`Field`]s.
pub trait Record {
    /// Its number of fields.
    fn width(&self) -> usize;
    /// Field `at` checked by `column`'s rules; on failure the rule, its detail and the value
    /// to echo in the error.
    fn check_field<'a>(&'a self, at: usize, column: &Column, whole: Option<&'a str>) -> Checked<'a>;
    /// The record's text checked as UTF-8 once, when it is text.
    fn whole(&self) -> Option<&str> {
        None
    }
    /// Field `at` as text (for the columns batch scoring carries to its output).
    fn text(&self, at: usize) -> std::borrow::Cow<'_, str>;
}

/// A field checked: its value, or the rule broken, the detail and the value as echoed.
pub type Checked<'a> = std::result::Result<Parsed<'a>, (Rule, String, String)>;

impl Record for csv::ByteRecord {
    fn width(&self) -> usize {
        self.len()
    }
    fn whole(&self) -> Option<&str> {
        std::str::from_utf8(self.as_slice()).ok()
    }
    fn check_field<'a>(&'a self, at: usize, column: &Column, whole: Option<&'a str>) -> Checked<'a> {
        let raw = &self[at];
        // The record's text checked as UTF-8 once, rather than field by field (a field cut
        // inside a character is still caught: it is not a slice of the text).
        let text = match whole.zip(self.range(at)).and_then(|(whole, range)| whole.get(range)) {
            Some(text) => Ok(text),
            None => std::str::from_utf8(raw),
        };
        let Ok(text) = text else {
            return Err((Rule::Utf8, "the file must be UTF-8".into(), echo(&String::from_utf8_lossy(raw))));
        };
        column.check(text).map_err(|(rule, detail)| (rule, detail, echo(text)))
    }
    fn text(&self, at: usize) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self[at])
    }
}

impl Record for Vec<Field> {
    fn width(&self) -> usize {
        self.len()
    }
    fn check_field<'a>(&'a self, at: usize, column: &Column, _: Option<&'a str>) -> Checked<'a> {
        let field = &self[at];
        field.check(column).map_err(|(rule, detail)| (rule, detail, echo(&field.text_as(&column.kind))))
    }
    fn text(&self, at: usize) -> std::borrow::Cow<'_, str> {
        self[at].text()
    }
}

fn process<R: Record>(artifact: &Artifact, plan: &Plan, name: &str, block: &[(u64, R)]) -> BlockResult {
    let mut out = BlockResult { text: String::with_capacity(block.len() * 24), ..BlockResult::default() };
    let width = artifact.preprocessing.width();
    let mut encoded: Vec<f64> = Vec::with_capacity(block.len() * width);
    let threshold = artifact.threshold.value;
    // The carried fields of the scored rows, one after another, and where each row's end: one
    // buffer for the block, not a string per row (the static binary's memcpy and allocator make
    // many small ones costly).
    let mut carried = String::new();
    let mut carried_ends: Vec<usize> = Vec::new();
    for (line, record) in block {
        let fail = |out: &mut BlockResult, column: &str, value: String, rule: Rule, detail: String| {
            let error = DataError {
                file: name.into(),
                line: *line,
                row_group: None,
                column: column.into(),
                value,
                rule,
                detail,
            };
            if plan.skip {
                error.write_reject(&mut out.rejects);
            }
            out.tally.push(error);
        };
        out.rows += 1;
        if record.width() != plan.header_len {
            out.tally.rows_with_errors += 1;
            let detail = format!("the header has {} fields", plan.header_len);
            fail(&mut out, "*", format!("{} fields", record.width()), Rule::FieldCount, detail);
            continue;
        }
        let errors_before = out.tally.error_count;
        // Encoded rows are kept, one after the other, and scored together at the end of the
        // block. Each value is encoded as soon as it is checked (carrying checked values from
        // one loop to another cost more than the encoding); a row with an error is dropped
        // (no output is written for a block with an error anyway).
        let at = encoded.len();
        encoded.resize(at + width, 0.0);
        let inputs = &mut encoded[at..];
        let whole = record.whole();
        for (&(column, field), encoder) in plan.checked.iter().zip(&plan.encoders) {
            let column = &artifact.schema.columns[column];
            let value = match record.check_field(field, column, whole) {
                Ok(value) => value,
                Err((rule, detail, value)) => {
                    fail(&mut out, &column.name, value, rule, detail);
                    continue;
                }
            };
            let Some(Input { encoder, offset, by_integer }) = encoder else { continue };
            let encoder = &artifact.preprocessing.encoders[*encoder];
            let unseen = match value {
                Parsed::Number(x) if x >= 0.0 && (x as usize) < by_integer.len() => {
                    inputs[*offset] = by_integer[x as usize];
                    false
                }
                _ => encoder.write(value, &mut inputs[*offset..]).expect("the plan pairs each column with its encoder"),
            };
            if unseen {
                *out.unseen.entry(column.name.clone()).or_default() += 1;
            }
        }
        if out.tally.error_count > errors_before {
            out.tally.rows_with_errors += 1;
            encoded.truncate(at);
        } else if plan.text && !plan.carried.is_empty() {
            for &field in &plan.carried {
                csv_field(&mut carried, &record.text(field));
                carried.push(',');
            }
            carried_ends.push(carried.len());
        }
    }
    if out.tally.error_count > 0 && !plan.skip {
        return out;
    }
    let mut probabilities = vec![0.0; encoded.len() / width.max(1)];
    plan.prepared.probabilities(&artifact.model, &encoded, width, &mut probabilities);
    for (i, &p) in probabilities.iter().enumerate() {
        let prediction = u8::from(p >= threshold);
        out.positives += u64::from(prediction);
        if !plan.text {
            continue;
        }
        if let Some(&end) = carried_ends.get(i) {
            let start = if i == 0 { 0 } else { carried_ends[i - 1] };
            out.text.push_str(&carried[start..end]);
        }
        let _ = write!(out.text, "{p}");
        out.text.push(',');
        out.text.push(if prediction == 1 { '1' } else { '0' });
        out.text.push('\n');
    }
    out.probabilities = probabilities;
    out
}

/// Compiles how `artifact` reads rows laid out as `header`: each schema column present is
/// checked; each of the model's inputs must be there.
fn plan(artifact: &Artifact, header: &[String], options: &ScoreOptions, text: bool) -> Result<Plan> {
    let schema = &artifact.schema;
    let mut checked: Vec<(usize, usize)> = schema
        .columns
        .iter()
        .enumerate()
        .filter_map(|(c, column)| header.iter().position(|h| *h == column.name).map(|i| (c, i)))
        .collect();
    // Checked in the file's column order, so that a row's errors come in that order.
    checked.sort_by_key(|&(_, field)| field);
    let mut encoders: Vec<Option<Input>> = checked.iter().map(|_| None).collect();
    let mut offset = 0;
    for (e, encoder) in artifact.preprocessing.encoders.iter().enumerate() {
        let column = encoder.column();
        let source = checked
            .iter()
            .position(|&(c, _)| schema.columns[c].name == *column)
            .ok_or_else(|| Error::MissingColumn { column: column.to_string() })?;
        let kind = &schema.columns[checked[source].0].kind;
        if !encoder.accepts(kind) {
            return Err(Error::EncoderKind { column: column.to_string() });
        }
        if encoders[source].is_some() {
            return Err(Error::EncodedTwice { column: column.to_string() });
        }
        let by_integer = match (encoder, kind) {
            (Encoder::Standardise { transform, mean, scale, .. }, ColumnKind::Integer { max, .. }) => {
                let high = max.unwrap_or(i64::MAX).min(INTEGER_TABLE - 1);
                (0..=high).map(|x| (transform.apply(x as f64) - mean) / scale).collect()
            }
            _ => Vec::new(),
        };
        encoders[source] = Some(Input { encoder: e, offset, by_integer });
        offset += encoder.width();
    }
    let field_of = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| Error::MissingColumn { column: name.to_string() })
    };
    let mut carried: Vec<usize> = Vec::new();
    for name in schema.id().map(|c| c.name.as_str()).into_iter().chain(options.keep.iter().map(String::as_str)) {
        let field = field_of(name)?;
        if !carried.contains(&field) {
            carried.push(field);
        }
    }
    Ok(Plan {
        prepared: artifact.model.prepare(),
        checked,
        encoders,
        header_len: header.len(),
        carried,
        skip: options.skip_invalid.is_some(),
        text,
    })
}

/// An artifact compiled once for scoring single records, as a server does: the records' fields
/// are the schema's id and feature columns, in [`Compiled::columns`]'s order, given as text;
/// each is checked by the same rules and encoded by the same code as [`score_csv_with`], so
/// that a record's probability is the one batch scoring writes for the same row, bit for bit.
#[derive(Debug)]
pub struct Compiled {
    artifact: Artifact,
    columns: Vec<String>,
    plan: Plan,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan").field("checked", &self.checked).field("header_len", &self.header_len).finish()
    }
}

/// What [`Compiled::score`] found: every record's probability when all were valid; otherwise
/// the broken values (and no probabilities).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordScores {
    /// One probability per record, in order (empty when a record was invalid).
    pub probabilities: Vec<f64>,
    /// Column → records whose level was not seen in training.
    pub unseen_levels: BTreeMap<String, u64>,
    /// The broken values, located by the numbers the records were given.
    pub errors: ErrorTally,
}

impl Compiled {
    /// Compiles `artifact` (already checked by [`Artifact::from_bytes`]).
    pub fn new(artifact: Artifact) -> Result<Compiled> {
        let columns: Vec<String> = artifact
            .schema
            .columns
            .iter()
            .filter(|c| !matches!(c.kind, ColumnKind::Label { .. } | ColumnKind::Ignore))
            .map(|c| c.name.clone())
            .collect();
        let plan = plan(&artifact, &columns, &ScoreOptions::default(), false)?;
        Ok(Compiled { artifact, columns, plan })
    }

    /// The artifact compiled.
    pub fn artifact(&self) -> &Artifact {
        &self.artifact
    }

    /// The fields of a record, in the order [`Compiled::score`] reads them.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Checks and scores records laid out as [`Compiled::columns`] (an absent value as an empty
    /// field, as in a CSV file), each with the number its errors carry as their `line` (a
    /// server passes the record's index); `name` names their source in the errors. A record is
    /// a CSV row's text ([`csv::ByteRecord`]) or typed values (`Vec<`[`Field`]`>`): the same
    /// rules, the same encoding, the same probability.
    pub fn score<R: Record>(&self, name: &str, records: &[(u64, R)]) -> RecordScores {
        let result = process(&self.artifact, &self.plan, name, records);
        let valid = result.tally.error_count == 0;
        RecordScores {
            probabilities: if valid { result.probabilities } else { Vec::new() },
            unseen_levels: result.unseen,
            errors: result.tally,
        }
    }
}

/// A CSV body's rows laid out as [`Compiled::columns`], ready for [`Compiled::score`]: what a
/// server reads from a `text/csv` request, straight into the compiled plan's fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CsvRows {
    /// Each kept row's fields in the compiled columns' order, with the line it starts on.
    pub rows: Vec<(u64, csv::ByteRecord)>,
    /// Data rows in the body (counted to the end even past the limit, then not kept).
    pub count: usize,
    /// Values broken before scoring, by line: a row whose number of fields is not the header's,
    /// a value of a column the model does not read (the label, an ignored column) that breaks
    /// its rule — the checks [`score_csv_with`] makes of the same file.
    pub errors: ErrorTally,
}

impl Compiled {
    /// Reads a CSV body (`name` in errors) through the one CSV reader — its header checked
    /// against the schema as [`score_csv_with`] checks a file's (the label may be absent) — into
    /// rows of [`Compiled::columns`]' fields, keeping at most `max_rows` of them.
    pub fn read_csv(&self, input: &[u8], name: &str, max_rows: usize) -> Result<CsvRows> {
        let schema = &self.artifact.schema;
        let mut source = CsvSource::open_body(input, name, schema, LabelPolicy::Optional)?;
        let header = source.header().to_vec();
        // The header's check guarantees every compiled column is there.
        let fields: Vec<usize> = self
            .columns
            .iter()
            .map(|c| header.iter().position(|h| h == c).ok_or_else(|| Error::MissingColumn { column: c.clone() }))
            .collect::<Result<_>>()?;
        // Schema columns present that the plan does not read: checked all the same.
        let others: Vec<(usize, usize)> = schema
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| !self.columns.contains(&c.name))
            .filter_map(|(i, c)| header.iter().position(|h| *h == c.name).map(|f| (i, f)))
            .collect();
        let mut out = CsvRows::default();
        let header_len = header.len();
        source.drive(&mut |line: u64, record: &mut csv::ByteRecord| -> Result<()> {
            out.count += 1;
            if out.count > max_rows {
                return Ok(());
            }
            let fail = |out: &mut CsvRows, column: &str, value: String, rule: Rule, detail: String| {
                out.errors.push(DataError {
                    file: name.into(),
                    line,
                    row_group: None,
                    column: column.into(),
                    value,
                    rule,
                    detail,
                });
            };
            if record.len() != header_len {
                out.errors.rows_with_errors += 1;
                let detail = format!("the header has {header_len} fields");
                fail(&mut out, "*", format!("{} fields", record.len()), Rule::FieldCount, detail);
                return Ok(());
            }
            let before = out.errors.error_count;
            for &(column, field) in &others {
                let column = &schema.columns[column];
                let raw = &record[field];
                match std::str::from_utf8(raw) {
                    Err(_) => {
                        let value = echo(&String::from_utf8_lossy(raw));
                        fail(&mut out, &column.name, value, Rule::Utf8, "the file must be UTF-8".into());
                    }
                    Ok(text) => {
                        if let Err((rule, detail)) = column.check(text) {
                            fail(&mut out, &column.name, echo(text), rule, detail);
                        }
                    }
                }
            }
            out.errors.rows_with_errors += u64::from(out.errors.error_count > before);
            let mut row = csv::ByteRecord::with_capacity(record.as_slice().len(), fields.len());
            for &f in &fields {
                row.push_field(&record[f]);
            }
            out.rows.push((line, row));
            Ok(())
        })?;
        if out.count == 0 {
            return Err(Error::Unusable {
                path: std::path::PathBuf::from(name),
                problem: "the file has a header but no data rows".into(),
            });
        }
        Ok(out)
    }
}

/// Scores every row of `input` (CSV with a header; the label column may be absent) and writes
/// `probability,prediction` lines, in order, to `output`. On any invalid value nothing more is
/// written, the rest is still checked, and the error carries the report: callers write to a
/// temporary file and keep it only on success.
pub fn score_csv<R: Read, W: Write + Send>(
    artifact: &Artifact,
    input: R,
    name: &str,
    output: &mut W,
) -> Result<ScoreSummary> {
    score_csv_with(artifact, input, name, output, &ScoreOptions::default(), &mut std::io::sink())
}

/// [`score_csv`] with options: the id column (when the schema has one) and the `keep` columns
/// are written before the scores; with `skip_invalid`, invalid rows are left out of the output
/// and written to `rejects` (one line per broken value, [`REJECTS_HEADER`]), and the run fails
/// only when their share of the rows is above the limit.
pub fn score_csv_with<R: Read, W: Write + Send, J: Write + Send + ?Sized>(
    artifact: &Artifact,
    input: R,
    name: &str,
    output: &mut W,
    options: &ScoreOptions,
    rejects: &mut J,
) -> Result<ScoreSummary> {
    let source = CsvSource::open(input, name, &artifact.schema, LabelPolicy::Optional)?;
    score_source_with(artifact, source, output, options, rejects)
}

/// [`score_csv_with`] on rows from any [`RowSource`] (a CSV or a Parquet file, opened with the
/// label optional).
pub fn score_source_with<S: RowSource, W: Write + Send, J: Write + Send + ?Sized>(
    artifact: &Artifact,
    mut source: S,
    output: &mut W,
    options: &ScoreOptions,
    rejects: &mut J,
) -> Result<ScoreSummary> {
    let schema = &artifact.schema;
    let name = &source.name().to_string();
    let path = || std::path::PathBuf::from(name);
    let header = source.header().to_vec();
    let plan = plan(artifact, &header, options, true)?;
    let mut output_header = String::new();
    for &field in &plan.carried {
        csv_field(&mut output_header, &header[field]);
        output_header.push(',');
    }
    output_header.push_str("probability,prediction\n");
    let skip = plan.skip;

    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let mut totals = BlockResult::default();
    let mut write_error: Option<std::io::Error> = None;
    // Blocks travel reader → worker → back to the reader, so that their records' buffers are
    // reused instead of allocated and freed for every row.
    type Block = Vec<(u64, csv::ByteRecord)>;
    let (job_tx, job_rx) = mpsc::sync_channel::<(usize, Block, usize)>(threads * 2);
    let job_rx = std::sync::Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, BlockResult)>();
    let (recycle_tx, recycle_rx) = mpsc::channel::<Block>();
    std::thread::scope(|scope| -> Result<()> {
        let job_tx = job_tx;
        for _ in 0..threads {
            let (job_rx, done_tx, recycle_tx, plan) = (&job_rx, done_tx.clone(), recycle_tx.clone(), &plan);
            scope.spawn(move || loop {
                let job = job_rx.lock().expect("a worker panicked").recv();
                let Ok((id, block, used)) = job else { break };
                let result = process(artifact, plan, name, &block[..used]);
                let _ = recycle_tx.send(block);
                if done_tx.send((id, result)).is_err() {
                    break;
                }
            });
        }
        drop(recycle_tx);
        drop(done_tx);
        // The writer keeps the blocks' order and stops writing at the first invalid block.
        let writer = scope.spawn(|| {
            let mut pending: BTreeMap<usize, BlockResult> = BTreeMap::new();
            let mut next = 0;
            let mut totals = BlockResult::default();
            let mut write_error = None;
            if let Err(e) = output.write_all(output_header.as_bytes()) {
                write_error = Some(e);
            }
            if skip {
                if let Err(e) = rejects.write_all(REJECTS_HEADER.as_bytes()) {
                    write_error = Some(e);
                }
            }
            for (id, result) in done_rx {
                pending.insert(id, result);
                while let Some(r) = pending.remove(&next) {
                    next += 1;
                    let clean = totals.tally.error_count == 0 && r.tally.error_count == 0;
                    if (clean || skip) && write_error.is_none() {
                        if let Err(e) = output.write_all(r.text.as_bytes()) {
                            write_error = Some(e);
                        }
                        if let Err(e) = rejects.write_all(r.rejects.as_bytes()) {
                            write_error = Some(e);
                        }
                    }
                    totals.rows += r.rows;
                    totals.positives += r.positives;
                    for (k, v) in r.unseen {
                        *totals.unseen.entry(k).or_default() += v;
                    }
                    totals.tally.merge(r.tally);
                }
            }
            (totals, write_error)
        });
        let fresh = || -> Block { (0..BLOCK).map(|_| (0, csv::ByteRecord::new())).collect() };
        let mut block = fresh();
        let mut used = 0;
        let mut id = 0;
        source.drive(&mut |line: u64, record: &mut csv::ByteRecord| -> Result<()> {
            // The block keeps the record; the reader reads the next row into the block's old one.
            block[used].0 = line;
            std::mem::swap(&mut block[used].1, record);
            used += 1;
            if used == BLOCK {
                let next = recycle_rx.try_recv().unwrap_or_else(|_| fresh());
                job_tx.send((id, std::mem::replace(&mut block, next), used)).expect("workers run");
                used = 0;
                id += 1;
            }
            Ok(())
        })?;
        if used > 0 {
            job_tx.send((id, block, used)).expect("workers run");
        }
        drop(job_tx);
        let (t, e) = writer.join().expect("the writer panicked");
        totals = t;
        write_error = e;
        Ok(())
    })?;
    if let Some(e) = write_error {
        return Err(Error::io("output", e));
    }
    source.locate(&mut totals.tally.errors);
    let (sha256, bytes) = source.finish()?;
    let skipped = totals.tally.rows_with_errors;
    if let Some(share) = options.skip_invalid {
        check_invalid_share(name, skipped, totals.rows, share)?;
    }
    if totals.tally.error_count > 0 && !skip {
        return Err(Error::Validation(Box::new(ValidationReport {
            file: name.into(),
            sha256,
            bytes,
            rows: totals.rows,
            error_count: totals.tally.error_count,
            rows_with_errors: totals.tally.rows_with_errors,
            counts: totals.tally.rule_counts(),
            errors: totals.tally.errors,
            columns: Vec::new(),
            unused_columns: header.iter().filter(|h| schema.column(h).is_none()).map(|h| echo(h)).collect(),
            duplicate_rows: 0,
            class_balance: None,
        })));
    }
    if totals.rows == 0 {
        return Err(Error::Unusable { path: path(), problem: "the file has a header but no data rows".into() });
    }
    Ok(ScoreSummary {
        rows: totals.rows - skipped,
        positives: totals.positives,
        unseen_levels: totals.unseen,
        sha256,
        skipped,
    })
}
