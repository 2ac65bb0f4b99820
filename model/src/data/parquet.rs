//! The Parquet reader: a file's columns checked against the schema (each column's type must be
//! able to hold its kind), then its rows handed to a [`RowSink`] as the text fields a CSV of the
//! same data holds, so that the one set of column rules checks them.
//!
//! Rows are read in batches of [`BATCH`] across the columns of one row group at a time: memory
//! stays flat whatever the size of the file or of its row groups. A value becomes the text the
//! CSV reader would have read: a number its shortest round-trip decimal (a 32-bit float its own,
//! so `0.1f32` is `0.1`), a boolean the schema's first spelling of true or false (of `positive`
//! and `negative` for the label), a string its bytes, a null the column's first spelling of a
//! missing value (the empty value, refused where missing values are). The file's position of a
//! row is its 1-based row number; errors are completed with the row group holding it.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use parquet::basic::{ConvertedType, LogicalType, Type as Physical};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, FloatType, Int32Type, Int64Type};
use parquet::file::reader::{FileReader, RowGroupReader};
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::schema::types::ColumnDescriptor;
use sha2::{Digest, Sha256};

use crate::data::reader::{check_header, LabelPolicy, RowSink, RowSource};
use crate::data::report::{DataError, Rule};
use crate::data::schema::{ColumnKind, Missing, Schema};
use crate::error::{Error, Result};

/// Rows read from every column at once: a few hundred kilobytes of values whatever the file.
pub const BATCH: usize = 4096;

/// The type a Parquet column holds, as Arrow would read it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    Bool,
    Int {
        bits: u8,
        signed: bool,
    },
    Float32,
    Float64,
    Utf8,
    Binary,
    /// Anything no column kind reads (dates, decimals, nested types, …), named as Arrow names it.
    Other(String),
}

impl Held {
    fn of(desc: &ColumnDescriptor) -> Held {
        if desc.max_rep_level() > 0 || desc.path().parts().len() > 1 {
            return Held::Other("a nested type (List, Map or Struct)".into());
        }
        let logical = desc.logical_type_ref();
        let converted = desc.converted_type();
        match desc.physical_type() {
            Physical::BOOLEAN => Held::Bool,
            physical @ (Physical::INT32 | Physical::INT64) => {
                let width = if physical == Physical::INT32 { 32 } else { 64 };
                match (logical, converted) {
                    (Some(LogicalType::Integer(int)), _) => {
                        Held::Int { bits: int.bit_width as u8, signed: int.is_signed }
                    }
                    (Some(other), _) => Held::Other(logical_name(other)),
                    (None, ConvertedType::NONE) => Held::Int { bits: width, signed: true },
                    (None, ConvertedType::INT_8) => Held::Int { bits: 8, signed: true },
                    (None, ConvertedType::INT_16) => Held::Int { bits: 16, signed: true },
                    (None, ConvertedType::INT_32) => Held::Int { bits: 32, signed: true },
                    (None, ConvertedType::INT_64) => Held::Int { bits: 64, signed: true },
                    (None, ConvertedType::UINT_8) => Held::Int { bits: 8, signed: false },
                    (None, ConvertedType::UINT_16) => Held::Int { bits: 16, signed: false },
                    (None, ConvertedType::UINT_32) => Held::Int { bits: 32, signed: false },
                    (None, ConvertedType::UINT_64) => Held::Int { bits: 64, signed: false },
                    (None, other) => Held::Other(format!("{other}")),
                }
            }
            Physical::FLOAT => Held::Float32,
            Physical::DOUBLE => Held::Float64,
            Physical::BYTE_ARRAY => match (logical, converted) {
                (Some(LogicalType::String | LogicalType::Enum | LogicalType::Json), _) => Held::Utf8,
                (Some(other), _) => Held::Other(logical_name(other)),
                (None, ConvertedType::UTF8 | ConvertedType::ENUM | ConvertedType::JSON) => Held::Utf8,
                (None, ConvertedType::NONE) => Held::Binary,
                (None, other) => Held::Other(format!("{other}")),
            },
            Physical::INT96 => Held::Other("Timestamp (INT96)".into()),
            Physical::FIXED_LEN_BYTE_ARRAY => match logical {
                Some(other) => Held::Other(logical_name(other)),
                None => Held::Other("FixedSizeBinary".into()),
            },
        }
    }

    /// The type's name as Arrow writes it.
    fn name(&self) -> String {
        match self {
            Held::Bool => "Boolean".into(),
            Held::Int { bits, signed: true } => format!("Int{bits}"),
            Held::Int { bits, signed: false } => format!("UInt{bits}"),
            Held::Float32 => "Float32".into(),
            Held::Float64 => "Float64".into(),
            Held::Utf8 => "Utf8".into(),
            Held::Binary => "Binary".into(),
            Held::Other(name) => name.clone(),
        }
    }

    /// Whether the type holds `kind`; else the types that do.
    fn holds(&self, kind: &ColumnKind) -> std::result::Result<(), &'static str> {
        let (ok, accepted) = match kind {
            ColumnKind::Numeric { .. } => {
                (matches!(self, Held::Int { .. } | Held::Float32 | Held::Float64), "integer or floating-point types")
            }
            ColumnKind::Integer { .. } => (
                matches!(self, Held::Int { .. } | Held::Float32 | Held::Float64),
                "integer types, or floating-point types holding whole numbers",
            ),
            ColumnKind::Categorical { .. } => (
                matches!(self, Held::Utf8 | Held::Binary | Held::Int { .. }),
                "Utf8 (dictionary-encoded or not), Binary holding UTF-8, or integer codes",
            ),
            ColumnKind::Boolean { .. } => (
                matches!(self, Held::Bool | Held::Utf8 | Held::Binary | Held::Int { .. }),
                "Boolean, or Utf8 and integer values spelled as the schema's `true` and `false`",
            ),
            ColumnKind::Label { .. } => (
                matches!(self, Held::Bool | Held::Utf8 | Held::Binary | Held::Int { .. }),
                "Boolean (true is `positive`), or Utf8 and integer values spelled as `positive` and `negative`",
            ),
            ColumnKind::Id => (matches!(self, Held::Utf8 | Held::Binary | Held::Int { .. }), "Utf8 or integer types"),
            ColumnKind::Ignore => (true, "any type"),
        };
        if ok {
            Ok(())
        } else {
            Err(accepted)
        }
    }
}

/// A logical type's name as Arrow writes the type it reads into.
fn logical_name(logical: &LogicalType) -> String {
    match logical {
        LogicalType::Date => "Date32".into(),
        LogicalType::Decimal(d) => format!("Decimal128({}, {})", d.precision, d.scale),
        LogicalType::Timestamp(_) => "Timestamp".into(),
        LogicalType::Time(_) => "Time".into(),
        LogicalType::Float16 => "Float16".into(),
        other => {
            let debug = format!("{other:?}");
            debug.split([' ', '{', '(']).next().unwrap_or("an unknown type").to_string()
        }
    }
}

/// How a column's values become text.
#[derive(Debug, Clone)]
struct Render {
    /// The spellings of false and true (a boolean column).
    bools: [Vec<u8>; 2],
    /// The text of a null.
    null: Vec<u8>,
    /// An unsigned integer column (its values are stored as signed bits).
    unsigned: bool,
}

/// One column's reader in the current row group, with its batch.
enum Values {
    Bool(ColumnReaderImpl<BoolType>, Vec<bool>),
    Int32(ColumnReaderImpl<Int32Type>, Vec<i32>),
    Int64(ColumnReaderImpl<Int64Type>, Vec<i64>),
    Float32(ColumnReaderImpl<FloatType>, Vec<f32>),
    Float64(ColumnReaderImpl<DoubleType>, Vec<f64>),
    Bytes(ColumnReaderImpl<ByteArrayType>, Vec<ByteArray>),
    /// A column nothing reads (a type no kind holds, in a column the schema does not use): its
    /// field is empty.
    Unread,
}

struct Cursor {
    values: Values,
    defs: Vec<i16>,
    max_def: i16,
    next: usize,
}

/// A Parquet file being read: its columns checked, its rows still to come.
pub struct ParquetSource {
    reader: SerializedFileReader<File>,
    path: PathBuf,
    name: String,
    header: Vec<String>,
    /// For each header column: its leaf index in the file, whether it is read, and how.
    columns: Vec<(usize, bool, Render)>,
    /// The 1-based row each row group starts with.
    starts: Vec<u64>,
}

impl ParquetSource {
    /// Opens the Parquet file at `path` (named `name` in errors) and checks its columns against
    /// `schema`: every schema column present (the label only when `label` requires it), each
    /// of a type that holds its kind ([`Error::ColumnType`] otherwise).
    pub fn open(path: &Path, name: &str, schema: &Schema, label: LabelPolicy) -> Result<ParquetSource> {
        let unreadable = |e: parquet::errors::ParquetError| Error::Unusable {
            path: PathBuf::from(name),
            problem: format!("not a readable Parquet file: {e}"),
        };
        let file = File::open(path).map_err(|e| Error::io(name, e))?;
        let reader = SerializedFileReader::new(file).map_err(unreadable)?;
        let descr = reader.metadata().file_metadata().schema_descr_ptr();
        let mut header = Vec::new();
        let mut columns = Vec::new();
        for (leaf, desc) in descr.columns().iter().enumerate() {
            // A nested column's leaves are named by their path; the top-level field's name is
            // what a schema would name, and no kind reads it.
            let field = desc.path().parts()[0].clone();
            if header.contains(&field) {
                continue;
            }
            let held = Held::of(desc);
            let column = schema.column(&field);
            if let Some(column) = column {
                held.holds(&column.kind).map_err(|accepted| Error::ColumnType {
                    path: PathBuf::from(name),
                    column: field.clone(),
                    kind: column.kind.name(),
                    found: held.name(),
                    accepted,
                })?;
            }
            let bools = match column.map(|c| &c.kind) {
                Some(ColumnKind::Boolean { true_values, false_values }) => {
                    [false_values[0].clone().into_bytes(), true_values[0].clone().into_bytes()]
                }
                Some(ColumnKind::Label { positive, negative }) => {
                    [negative.clone().into_bytes(), positive.clone().into_bytes()]
                }
                _ => [b"false".to_vec(), b"true".to_vec()],
            };
            let null = match column {
                Some(c) if c.missing == Missing::Allow => c.missing_values[0].clone().into_bytes(),
                _ => Vec::new(),
            };
            let unsigned = matches!(held, Held::Int { signed: false, .. });
            columns.push((leaf, !matches!(held, Held::Other(_)), Render { bools, null, unsigned }));
            header.push(field);
        }
        check_header(&header, schema, label).map_err(|problem| Error::Unusable {
            path: PathBuf::from(name),
            problem: format!("the file's columns: {problem}"),
        })?;
        let mut starts = Vec::with_capacity(reader.num_row_groups());
        let mut next = 1u64;
        for group in reader.metadata().row_groups() {
            starts.push(next);
            next += group.num_rows().max(0) as u64;
        }
        Ok(ParquetSource { reader, path: path.to_path_buf(), name: name.to_string(), header, columns, starts })
    }

    fn unreadable(&self, group: usize, e: impl std::fmt::Display) -> Error {
        let e = e.to_string();
        let problem = match e.split_once("Disabled feature at compile time: ") {
            Some((_, codec)) => format!(
                "row group {group}: compressed with {codec}, which this build does not read (Snappy or none: \
                 write the file with compression=\"snappy\")"
            ),
            None => format!("row group {group}: unreadable: {e}"),
        };
        Error::Unusable { path: PathBuf::from(&self.name), problem }
    }

    fn cursors(&self, g: usize, group: &dyn RowGroupReader) -> Result<Vec<Cursor>> {
        let descr = self.reader.metadata().file_metadata().schema_descr_ptr();
        let mut cursors = Vec::with_capacity(self.columns.len());
        for &(leaf, read, _) in &self.columns {
            let max_def = descr.column(leaf).max_def_level();
            let values = if !read {
                Values::Unread
            } else {
                match group.get_column_reader(leaf).map_err(|e| self.unreadable(g, e))? {
                    ColumnReader::BoolColumnReader(r) => Values::Bool(r, Vec::new()),
                    ColumnReader::Int32ColumnReader(r) => Values::Int32(r, Vec::new()),
                    ColumnReader::Int64ColumnReader(r) => Values::Int64(r, Vec::new()),
                    ColumnReader::FloatColumnReader(r) => Values::Float32(r, Vec::new()),
                    ColumnReader::DoubleColumnReader(r) => Values::Float64(r, Vec::new()),
                    ColumnReader::ByteArrayColumnReader(r) => Values::Bytes(r, Vec::new()),
                    _ => Values::Unread,
                }
            };
            cursors.push(Cursor { values, defs: Vec::new(), max_def, next: 0 });
        }
        Ok(cursors)
    }
}

/// Reads the next `n` rows of one column into its batch; the rows read.
fn fill(cursor: &mut Cursor, n: usize) -> parquet::errors::Result<usize> {
    cursor.defs.clear();
    cursor.next = 0;
    let defs = Some(&mut cursor.defs);
    let (rows, _, _) = match &mut cursor.values {
        Values::Bool(r, v) => {
            v.clear();
            r.read_records(n, defs, None, v)?
        }
        Values::Int32(r, v) => {
            v.clear();
            r.read_records(n, defs, None, v)?
        }
        Values::Int64(r, v) => {
            v.clear();
            r.read_records(n, defs, None, v)?
        }
        Values::Float32(r, v) => {
            v.clear();
            r.read_records(n, defs, None, v)?
        }
        Values::Float64(r, v) => {
            v.clear();
            r.read_records(n, defs, None, v)?
        }
        Values::Bytes(r, v) => {
            v.clear();
            r.read_records(n, defs, None, v)?
        }
        Values::Unread => (n, 0, 0),
    };
    Ok(rows)
}

/// Appends the text of row `row` of the batch of `cursor` to `record`.
fn push(cursor: &mut Cursor, row: usize, render: &Render, record: &mut csv::ByteRecord, text: &mut String) {
    use std::fmt::Write;
    if matches!(cursor.values, Values::Unread) {
        record.push_field(b"");
        return;
    }
    if cursor.max_def > 0 && cursor.defs[row] < cursor.max_def {
        record.push_field(&render.null);
        return;
    }
    let i = cursor.next;
    cursor.next += 1;
    text.clear();
    // Writing into a String cannot fail.
    let _ = match &cursor.values {
        Values::Bool(_, v) => {
            record.push_field(&render.bools[usize::from(v[i])]);
            return;
        }
        Values::Bytes(_, v) => {
            record.push_field(v[i].data());
            return;
        }
        Values::Int32(_, v) if render.unsigned => write!(text, "{}", v[i] as u32),
        Values::Int32(_, v) => write!(text, "{}", v[i]),
        Values::Int64(_, v) if render.unsigned => write!(text, "{}", v[i] as u64),
        Values::Int64(_, v) => write!(text, "{}", v[i]),
        Values::Float32(_, v) => write!(text, "{}", v[i]),
        Values::Float64(_, v) => write!(text, "{}", v[i]),
        Values::Unread => Ok(()),
    };
    record.push_field(text.as_bytes());
}

impl RowSource for ParquetSource {
    fn header(&self) -> &[String] {
        &self.header
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn drive(&mut self, sink: &mut impl RowSink) -> Result<()> {
        let mut record = csv::ByteRecord::new();
        let mut text = String::new();
        let mut row_number = 0u64;
        for g in 0..self.reader.num_row_groups() {
            let group = self.reader.get_row_group(g).map_err(|e| self.unreadable(g, e))?;
            let rows = group.metadata().num_rows().max(0) as u64;
            let mut cursors = self.cursors(g, &*group)?;
            let mut left = rows;
            while left > 0 {
                let n = left.min(BATCH as u64) as usize;
                for (c, cursor) in cursors.iter_mut().enumerate() {
                    let got = fill(cursor, n).map_err(|e| self.unreadable(g, e))?;
                    if got != n {
                        let column = &self.header[c];
                        return Err(self.unreadable(g, format!("column `{column}` ends after {got} of {n} rows")));
                    }
                }
                for row in 0..n {
                    record.clear();
                    for (cursor, (_, _, render)) in cursors.iter_mut().zip(&self.columns) {
                        push(cursor, row, render, &mut record, &mut text);
                    }
                    row_number += 1;
                    sink.row(row_number, &mut record)?;
                }
                left -= n as u64;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<(String, u64)> {
        let mut file = File::open(&self.path).map_err(|e| Error::io(&self.name, e))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 16];
        let mut bytes = 0u64;
        loop {
            let n = file.read(&mut buffer).map_err(|e| Error::io(&self.name, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            bytes += n as u64;
        }
        Ok((format!("{:x}", hasher.finalize()), bytes))
    }

    fn locate(&self, errors: &mut [DataError]) {
        for e in errors.iter_mut().filter(|e| e.rule != Rule::TooManyMissing && e.line > 0) {
            e.row_group = Some(self.starts.partition_point(|&s| s <= e.line).saturating_sub(1) as u32);
        }
    }
}
