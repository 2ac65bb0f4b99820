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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parquet::basic::Compression;
    use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, FloatType, Int32Type, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    use super::*;
    use crate::data::reader::Format;
    use crate::data::validation::{load, read_csv};

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
        let text = r#"
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
        let schema: Schema = toml::from_str(text).unwrap();
        schema.check().unwrap();
        schema
    }

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
        // Staging membership and duplicates are judged on the same texts.
        assert_eq!(from_parquet.row_keys, from_csv.row_keys);
        assert_eq!(from_parquet.report.columns, from_csv.report.columns);
        assert_eq!(from_parquet.report.rows, 300);
        assert_eq!(from_parquet.report.unused_columns, vec!["note".to_string()]);
        // Rows are the file's rows, from 1; a CSV's lines count the header.
        assert_eq!(from_parquet.lines[..3], [1, 2, 3]);
        assert_eq!(from_csv.lines[..3], [2, 3, 4]);
        // The report hashes the file's bytes.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(from_parquet.report.bytes, bytes.len() as u64);
        assert_eq!(from_parquet.report.sha256, format!("{:x}", Sha256::digest(&bytes)));
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
