//! The event log's files, and `feedback export`'s Parquet: tables written with the `parquet`
//! crate's column writers (no Arrow; Snappy, as the data reader reads it) and read back with its
//! row reader. A schema column is stored by its kind, as a pyarrow user expects and as `build`
//! reads it: `numeric` a double, `integer` a 64-bit integer, `boolean` a boolean, every other
//! kind (the label in its own words) a UTF-8 string; a missing value is a null.
//!
//! Two kinds of files, each named `KIND-MILLIS-RANDOM.parquet` under
//! `model=NAME/version=vN/hour=YYYY-MM-DDTHH/` (Hive's partitioning, the hour in UTC):
//! `predictions` (the columns of [`PREDICTION_COLUMNS`], then the record's schema columns, the
//! artifact's schema in the key-value metadata under [`SCHEMA_KEY`]) and `feedback` (the columns
//! of [`FEEDBACK_COLUMNS`]).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::writer::SerializedFileWriter;
use parquet::record::Field;
use parquet::schema::types::Type;

use model::data::schema::{Column, ColumnKind, Missing};

/// The key-value metadata key of a predictions file's schema (the artifact's, as JSON).
pub const SCHEMA_KEY: &str = "mlgate.schema";

/// The columns every predictions file starts with, before the record's schema columns.
pub const PREDICTION_COLUMNS: [(&str, Stored); 8] = [
    ("mlgate_time", Stored::Timestamp),
    ("mlgate_id", Stored::Text),
    ("mlgate_receipt", Stored::Text),
    ("mlgate_model", Stored::Text),
    ("mlgate_version", Stored::Text),
    ("mlgate_role", Stored::Text),
    ("mlgate_probability", Stored::Double),
    ("mlgate_decision", Stored::Boolean),
];

/// The columns of a feedback file: when, which prediction (by `id` on the replica's log, or by
/// its receipt's tag), what it answered, and the label (true: positive).
pub const FEEDBACK_COLUMNS: [(&str, Stored); 9] = [
    ("mlgate_time", Stored::Timestamp),
    ("mlgate_model", Stored::Text),
    ("mlgate_version", Stored::Text),
    ("mlgate_role", Stored::Text),
    ("mlgate_id", Stored::Text),
    ("mlgate_receipt", Stored::Text),
    ("mlgate_probability", Stored::Double),
    ("mlgate_decision", Stored::Boolean),
    ("mlgate_label", Stored::Boolean),
];

/// Rows of one row group of a file written by [`TableWriter`].
pub const ROW_GROUP: usize = 65_536;

/// How a column is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A double (`numeric`, probabilities).
    Double,
    /// A 64-bit integer (`integer`).
    Integer,
    /// A boolean.
    Boolean,
    /// A UTF-8 string.
    Text,
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp,
}

impl Stored {
    /// How a schema column of `kind` is stored.
    pub fn of(kind: &ColumnKind) -> Stored {
        match kind {
            ColumnKind::Numeric { .. } => Stored::Double,
            ColumnKind::Integer { .. } => Stored::Integer,
            ColumnKind::Boolean { .. } => Stored::Boolean,
            _ => Stored::Text,
        }
    }

    fn parquet_type(self, name: &str) -> Result<Type> {
        let (physical, logical) = match self {
            Stored::Double => (Physical::DOUBLE, None),
            Stored::Integer => (Physical::INT64, None),
            Stored::Boolean => (Physical::BOOLEAN, None),
            Stored::Text => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
            Stored::Timestamp => (Physical::INT64, Some(LogicalType::timestamp(true, TimeUnit::MILLIS))),
        };
        Type::primitive_type_builder(name, physical)
            .with_repetition(Repetition::OPTIONAL)
            .with_logical_type(logical)
            .build()
            .with_context(|| format!("column `{name}`"))
    }
}

/// One value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// A missing value.
    Null,
    /// A double.
    Double(f64),
    /// A whole number.
    Integer(i64),
    /// A boolean.
    Boolean(bool),
    /// A string.
    Text(String),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
}

impl Cell {
    /// The value of `column` whose text (as the scorer read it, checked by the column's rules)
    /// is `raw`; text that its kind cannot hold (which a checked value never is) is a null.
    pub fn of(column: &Column, raw: &[u8]) -> Cell {
        let text = String::from_utf8_lossy(raw);
        if column.missing == Missing::Allow && column.missing_values.iter().any(|m| *m == text) {
            return Cell::Null;
        }
        match &column.kind {
            ColumnKind::Numeric { .. } => text.parse().map_or(Cell::Null, Cell::Double),
            ColumnKind::Integer { .. } => text.parse().map_or(Cell::Null, Cell::Integer),
            ColumnKind::Boolean { true_values, false_values } => {
                if true_values.iter().any(|t| *t == text) {
                    Cell::Boolean(true)
                } else if false_values.iter().any(|f| *f == text) {
                    Cell::Boolean(false)
                } else {
                    Cell::Null
                }
            }
            _ => Cell::Text(text.into_owned()),
        }
    }

    /// The text a CSV of `column` holds for this value (the reader of Parquet files gives the
    /// same): a number its shortest round-trip decimal, a boolean the column's first spelling,
    /// a null its first spelling of a missing value.
    pub fn text(&self, column: &Column) -> String {
        match self {
            Cell::Null => column.missing_values.first().cloned().unwrap_or_default(),
            Cell::Double(x) => format!("{x}"),
            Cell::Integer(n) | Cell::Timestamp(n) => format!("{n}"),
            Cell::Boolean(b) => match &column.kind {
                ColumnKind::Boolean { true_values, false_values } => {
                    let spellings = if *b { true_values } else { false_values };
                    spellings.first().cloned().unwrap_or_else(|| b.to_string())
                }
                _ => b.to_string(),
            },
            Cell::Text(s) => s.clone(),
        }
    }
}

/// One column's values, as its column writer takes them.
enum Values {
    Double(Vec<f64>),
    Integer(Vec<i64>),
    Boolean(Vec<bool>),
    Text(Vec<ByteArray>),
}

struct Buffered {
    values: Values,
    /// 1 for a value, 0 for a null.
    defined: Vec<i16>,
}

impl Buffered {
    fn new(stored: Stored) -> Buffered {
        let values = match stored {
            Stored::Double => Values::Double(Vec::new()),
            Stored::Integer | Stored::Timestamp => Values::Integer(Vec::new()),
            Stored::Boolean => Values::Boolean(Vec::new()),
            Stored::Text => Values::Text(Vec::new()),
        };
        Buffered { values, defined: Vec::new() }
    }

    /// Adds `cell`; one its column cannot hold is a null.
    fn push(&mut self, cell: Cell) {
        match (&mut self.values, cell) {
            (Values::Double(v), Cell::Double(x)) => v.push(x),
            (Values::Double(v), Cell::Integer(n)) => v.push(n as f64),
            (Values::Integer(v), Cell::Integer(n) | Cell::Timestamp(n)) => v.push(n),
            (Values::Boolean(v), Cell::Boolean(b)) => v.push(b),
            (Values::Text(v), Cell::Text(s)) => v.push(ByteArray::from(s.into_bytes())),
            _ => {
                self.defined.push(0);
                return;
            }
        }
        self.defined.push(1);
    }

    fn clear(&mut self) {
        self.defined.clear();
        match &mut self.values {
            Values::Double(v) => v.clear(),
            Values::Integer(v) => v.clear(),
            Values::Boolean(v) => v.clear(),
            Values::Text(v) => v.clear(),
        }
    }
}

/// A Parquet file written row group by row group: rows pushed, buffered column by column, each
/// [`ROW_GROUP`] of them written out.
pub struct TableWriter<W: std::io::Write + Send> {
    writer: SerializedFileWriter<W>,
    columns: Vec<Buffered>,
    rows: usize,
}

impl<W: std::io::Write + Send> TableWriter<W> {
    /// A file of `columns` (name, how stored) written to `out`, with `metadata` (key, value).
    pub fn new(out: W, columns: &[(String, Stored)], metadata: Vec<(String, String)>) -> Result<TableWriter<W>> {
        let fields =
            columns.iter().map(|(name, stored)| stored.parquet_type(name).map(Arc::new)).collect::<Result<Vec<_>>>()?;
        let schema = Type::group_type_builder("schema").with_fields(fields).build().context("the file's schema")?;
        let metadata = metadata.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect();
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("mlgate {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(metadata))
            .build();
        let writer = SerializedFileWriter::new(out, Arc::new(schema), Arc::new(properties))
            .context("cannot start a Parquet file")?;
        Ok(TableWriter { writer, columns: columns.iter().map(|(_, s)| Buffered::new(*s)).collect(), rows: 0 })
    }

    /// Adds a row: one cell per column, in order.
    pub fn push(&mut self, row: impl IntoIterator<Item = Cell>) -> Result<()> {
        for (column, cell) in self.columns.iter_mut().zip(row) {
            column.push(cell);
        }
        self.rows += 1;
        if self.rows == ROW_GROUP {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the rows buffered as a row group.
    fn flush(&mut self) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut group = self.writer.next_row_group().context("cannot write a row group")?;
        for column in &mut self.columns {
            let mut writer = group.next_column()?.context("fewer columns than the schema's")?;
            let defined = Some(column.defined.as_slice());
            match &column.values {
                Values::Double(v) => writer.typed::<DoubleType>().write_batch(v, defined, None),
                Values::Integer(v) => writer.typed::<Int64Type>().write_batch(v, defined, None),
                Values::Boolean(v) => writer.typed::<BoolType>().write_batch(v, defined, None),
                Values::Text(v) => writer.typed::<ByteArrayType>().write_batch(v, defined, None),
            }
            .context("cannot write a column")?;
            writer.close().context("cannot write a column")?;
            column.clear();
        }
        group.close().context("cannot write a row group")?;
        self.rows = 0;
        Ok(())
    }

    /// Writes what is left and the footer; the output.
    pub fn finish(mut self) -> Result<W> {
        self.flush()?;
        self.writer.into_inner().context("cannot finish the Parquet file")
    }
}

/// A file of the event log, read whole (a batch of events: at most `--event-log-batch` rows).
#[derive(Debug)]
pub struct EventFile {
    /// The columns, in order.
    pub columns: Vec<String>,
    /// The key-value metadata.
    pub metadata: HashMap<String, String>,
    /// The rows, each one cell per column.
    pub rows: Vec<Vec<Cell>>,
}

impl EventFile {
    /// Reads a file's `bytes`; errors name it `name`.
    pub fn read(bytes: Vec<u8>, name: &str) -> Result<EventFile> {
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes))
            .with_context(|| format!("{name}: not a readable Parquet file"))?;
        let file = reader.metadata().file_metadata();
        let columns: Vec<String> = file.schema_descr().columns().iter().map(|c| c.name().to_string()).collect();
        let metadata = file
            .key_value_metadata()
            .map(|kv| kv.iter().map(|k| (k.key.clone(), k.value.clone().unwrap_or_default())).collect())
            .unwrap_or_default();
        let mut rows = Vec::new();
        let iter = reader.get_row_iter(None).with_context(|| format!("{name}: not a readable Parquet file"))?;
        for (i, row) in iter.enumerate() {
            let row = row.with_context(|| format!("{name}: row {}: cannot be read", i + 1))?;
            let cells = row
                .get_column_iter()
                .map(|(column, field)| {
                    cell(field)
                        .with_context(|| format!("{name}: row {}: column `{column}`: a type no event has", i + 1))
                })
                .collect::<Result<Vec<Cell>>>()?;
            rows.push(cells);
        }
        Ok(EventFile { columns, metadata, rows })
    }

    /// The index of column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

fn cell(field: &Field) -> Option<Cell> {
    Some(match field {
        Field::Null => Cell::Null,
        Field::Bool(b) => Cell::Boolean(*b),
        Field::Long(n) => Cell::Integer(*n),
        Field::Int(n) => Cell::Integer(i64::from(*n)),
        Field::Double(x) => Cell::Double(*x),
        Field::Float(x) => Cell::Double(f64::from(*x)),
        Field::Str(s) => Cell::Text(s.clone()),
        Field::TimestampMillis(t) => Cell::Timestamp(*t),
        Field::TimestampMicros(t) => Cell::Timestamp(t / 1000),
        _ => return None,
    })
}

/// A partition's value as a path segment: characters other than letters, digits, `.`, `_` and
/// `-` escaped as `%XX` (Hive's escaping), so that no name makes another folder.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The value of a path segment [`escape`] wrote.
pub fn unescape(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes.get(i + 1..i + 3).and_then(|d| std::str::from_utf8(d).ok());
        if let Some(b) = digits.filter(|_| bytes[i] == b'%').and_then(|d| u8::from_str_radix(d, 16).ok()) {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The hour partition of `millis` since the Unix epoch: `YYYY-MM-DDTHH`, UTC.
pub fn hour_of(millis: i64) -> String {
    let seconds = u64::try_from(millis.max(0) / 1000).unwrap_or(0);
    let text = humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds));
    text.to_string()[..13].to_string()
}

/// Where a file of the log is: its model, version and hour partitions and its kind
/// (`predictions` or `feedback`), from its key; `None` for a key the log does not write.
pub fn place(key: &str) -> Option<(String, String, String, &str)> {
    let parts: Vec<&str> = key.split('/').collect();
    let n = parts.len();
    if n < 4 {
        return None;
    }
    let model = unescape(parts[n - 4].strip_prefix("model=")?);
    let version = unescape(parts[n - 3].strip_prefix("version=")?);
    let hour = parts[n - 2].strip_prefix("hour=")?.to_string();
    let file = parts[n - 1];
    if !file.ends_with(".parquet") {
        return None;
    }
    let kind = if file.starts_with("predictions-") {
        "predictions"
    } else if file.starts_with("feedback-") {
        "feedback"
    } else {
        return None;
    };
    Some((model, version, hour, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_written_reads_back_with_its_nulls_and_metadata() {
        let columns = vec![
            ("t".to_string(), Stored::Timestamp),
            ("x".to_string(), Stored::Double),
            ("n".to_string(), Stored::Integer),
            ("b".to_string(), Stored::Boolean),
            ("s".to_string(), Stored::Text),
        ];
        let mut writer = TableWriter::new(Vec::new(), &columns, vec![("k".into(), "v".into())]).unwrap();
        writer
            .push([
                Cell::Timestamp(5),
                Cell::Double(0.5),
                Cell::Integer(-3),
                Cell::Boolean(true),
                Cell::Text("é".into()),
            ])
            .unwrap();
        writer.push([Cell::Null, Cell::Null, Cell::Null, Cell::Null, Cell::Null]).unwrap();
        let bytes = writer.finish().unwrap();
        let file = EventFile::read(bytes, "t.parquet").unwrap();
        assert_eq!(file.columns, ["t", "x", "n", "b", "s"]);
        assert_eq!(file.metadata["k"], "v");
        assert_eq!(
            file.rows[0],
            [Cell::Timestamp(5), Cell::Double(0.5), Cell::Integer(-3), Cell::Boolean(true), Cell::Text("é".into())]
        );
        assert_eq!(file.rows[1], vec![Cell::Null; 5]);
        assert!(EventFile::read(b"not parquet".to_vec(), "bad.parquet")
            .unwrap_err()
            .to_string()
            .contains("bad.parquet"));
    }

    #[test]
    fn partitions_escape_and_are_found_again() {
        assert_eq!(escape("a/b c"), "a%2Fb%20c");
        assert_eq!(unescape(&escape("a/b c=%")), "a/b c=%");
        assert_eq!(hour_of(0), "1970-01-01T00");
        assert_eq!(hour_of(1_700_000_000_000), "2023-11-14T22");
        let key = "p/model=a%2Fb/version=v2/hour=2023-11-14T22/feedback-1-x.parquet";
        assert_eq!(place(key), Some(("a/b".into(), "v2".into(), "2023-11-14T22".into(), "feedback")));
        assert_eq!(place("model=a/version=v2/hour=h/other.parquet"), None);
    }
}
