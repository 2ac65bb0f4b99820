//! The one reader of data files: a [`RowSource`] hands every row to a [`RowSink`]. The CSV
//! reader is here: bytes hashed as they pass, the header read (byte-order mark dropped) and
//! checked against the schema, every data row handed on with the exact line it starts on. The
//! Parquet reader (`parquet.rs`) gives its rows the same way. Validation and streaming scoring
//! plug into a source; neither reads a file format itself.

use std::collections::{HashSet, VecDeque};
use std::io::Read;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::data::report::{DataError, HeaderProblem};
use crate::data::schema::{ColumnKind, Schema};
use crate::error::{Error, Result};

/// Whether the label column must be present in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelPolicy {
    /// Training and evaluation data: the label column is required.
    Required,
    /// Data to score: the label column may be absent (it is read when present).
    Optional,
}

/// What consumes the rows of a [`CsvSource`], one at a time, in file order.
pub trait RowSink {
    /// One data row, starting on 1-based `line`. The sink may keep the record by swapping it
    /// with a buffer of its own: the reader then reads the next row into that buffer.
    fn row(&mut self, line: u64, record: &mut csv::ByteRecord) -> Result<()>;
}

impl<F: FnMut(u64, &mut csv::ByteRecord) -> Result<()>> RowSink for F {
    fn row(&mut self, line: u64, record: &mut csv::ByteRecord) -> Result<()> {
        self(line, record)
    }
}

/// The format of a data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Delimited text with a header row.
    #[default]
    Csv,
    /// Apache Parquet, read row group by row group (`parquet.rs`).
    Parquet,
}

impl Format {
    /// The format of a file named `name`: its extension when it says (`.parquet`, `.parq`,
    /// `.pq`; `.csv`, `.tsv`, `.txt`), else `configured` (the configuration's `[data] format`),
    /// else CSV.
    pub fn of(name: &str, configured: Option<Format>) -> Format {
        let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).filter(|e| !e.contains('/'));
        match extension.as_deref() {
            Some("parquet" | "parq" | "pq") => Format::Parquet,
            Some("csv" | "tsv" | "txt") => Format::Csv,
            _ => configured.unwrap_or_default(),
        }
    }
}

/// Where rows come from, whatever the file's format: a header of column names checked against
/// the schema, then every row as text fields in the header's order, each with its position
/// (a CSV's line, a Parquet file's 1-based row).
pub trait RowSource {
    /// The column names, in the order of a row's fields.
    fn header(&self) -> &[String];
    /// The name the source goes by in errors.
    fn name(&self) -> &str;
    /// Hands every row to `sink`, in order; stops at the first error of the source or the sink.
    fn drive(&mut self, sink: &mut impl RowSink) -> Result<()>;
    /// The sha256 and the size of the file's bytes, once every row was read.
    fn finish(self) -> Result<(String, u64)>
    where
        Self: Sized;
    /// Completes where `errors` are (a Parquet file's row group); nothing to add for a CSV.
    fn locate(&self, _errors: &mut [DataError]) {}
}

impl<R: Read> RowSource for CsvSource<R> {
    fn header(&self) -> &[String] {
        CsvSource::header(self)
    }

    fn name(&self) -> &str {
        CsvSource::name(self)
    }

    fn drive(&mut self, sink: &mut impl RowSink) -> Result<()> {
        CsvSource::drive(self, sink)
    }

    fn finish(self) -> Result<(String, u64)> {
        CsvSource::finish(self)
    }
}

/// A CSV file being read: its header checked, its rows still to come.
pub struct CsvSource<R: Read> {
    csv: csv::Reader<HashingReader<R>>,
    name: String,
    header: Vec<String>,
}

impl<R: Read> CsvSource<R> {
    /// Reads the header of `reader` (named `name` in errors) and checks it against `schema`.
    pub fn open(reader: R, name: &str, schema: &Schema, label: LabelPolicy) -> Result<CsvSource<R>> {
        let csv = csv::ReaderBuilder::new()
            .delimiter(schema.delimiter as u8)
            .has_headers(false)
            .flexible(true)
            .from_reader(HashingReader::new(reader));
        let mut source = CsvSource { csv, name: name.to_string(), header: Vec::new() };
        let mut record = csv::ByteRecord::new();
        if !source.csv.read_byte_record(&mut record).map_err(|e| source.csv_error(e))? {
            return Err(Error::Header { path: source.path(), problem: HeaderProblem::Empty });
        }
        source.header = record.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect();
        if let Some(first) = source.header.first_mut() {
            // A UTF-8 byte-order mark, as spreadsheet programs write it, is not part of the name.
            if let Some(stripped) = first.strip_prefix('\u{feff}') {
                *first = stripped.to_string();
            }
        }
        check_header(&source.header, schema, label)
            .map_err(|problem| Error::Header { path: source.path(), problem })?;
        Ok(source)
    }

    /// The header's column names, as written.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// The name the source goes by in errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(&self.name)
    }

    fn csv_error(&self, e: csv::Error) -> Error {
        match e.into_kind() {
            csv::ErrorKind::Io(source) => Error::Io { path: self.path(), source },
            other => Error::Unusable { path: self.path(), problem: format!("unreadable CSV: {other:?}") },
        }
    }

    /// Hands every data row to `sink`, in order, with the line it starts on. Blank lines are
    /// not rows. Stops at the first error of the reader or of the sink.
    pub fn drive(&mut self, sink: &mut impl RowSink) -> Result<()> {
        let mut record = csv::ByteRecord::new();
        loop {
            // Where the parser resumes: the end of the previous record (on the LF of a CRLF,
            // before skipped blank lines).
            let resume = self.csv.position().byte();
            match self.csv.read_byte_record(&mut record) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => return Err(self.csv_error(e)),
            }
            let line = self.csv.get_mut().line_from(resume);
            // A blank line is not a row; csv already skips those, this guards a lone
            // delimiter-free empty field as the last line.
            if record.len() == 1 && record[0].is_empty() && self.header.len() > 1 {
                continue;
            }
            sink.row(line, &mut record)?;
        }
    }

    /// Reads whatever the parser left (so that the hash covers the whole file) and returns the
    /// sha256 and the size of the file's bytes.
    pub fn finish(self) -> Result<(String, u64)> {
        let path = self.path();
        let mut hashing = self.csv.into_inner();
        std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| Error::io(path, e))?;
        Ok(hashing.finish())
    }
}

/// Passes bytes through to the CSV parser while hashing them and noting where lines break,
/// so that line numbers are exact whatever the line endings: LF, CRLF or a lone CR, each one
/// break (the csv crate's own count is off with CRLF and knows no lone CR).
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    /// Offsets of the CR and LF bytes read but not yet passed, each with whether it begins a
    /// line break (a CR, or an LF that no CR precedes).
    breaks: VecDeque<(u64, bool)>,
    /// The last byte read was a CR (an LF first in the next read continues its break).
    after_cr: bool,
    /// 1 + the breaks passed so far.
    line: u64,
}

impl<R> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), bytes: 0, breaks: VecDeque::new(), after_cr: false, line: 1 }
    }

    /// The sha256 and size of everything read.
    fn finish(self) -> (String, u64) {
        (format!("{:x}", self.hasher.finalize()), self.bytes)
    }

    /// The 1-based line on which the record starts that the parser read from byte `resume`
    /// on: one more than the line breaks before its first byte. Line-break bytes right at
    /// `resume` are the rest of the previous record's CRLF or skipped blank lines, not the
    /// record. Asked in file order.
    fn line_from(&mut self, resume: u64) -> u64 {
        let mut start = resume;
        while let Some(&(offset, begins)) = self.breaks.front() {
            if offset > start {
                break;
            }
            if offset == start {
                start += 1;
            }
            self.breaks.pop_front();
            self.line += u64::from(begins);
        }
        self.line
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = &buf[..n];
        self.hasher.update(read);
        for (i, &b) in read.iter().enumerate() {
            if b == b'\r' || b == b'\n' {
                let after_cr = if i == 0 { self.after_cr } else { read[i - 1] == b'\r' };
                self.breaks.push_back((self.bytes + i as u64, b == b'\r' || !after_cr));
            }
        }
        if let Some(&last) = read.last() {
            self.after_cr = last == b'\r';
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Checks a header against the schema: no name twice, every schema column present (the label
/// only when `label` requires it), and a hint when the file is split on another delimiter.
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
            return Err(HeaderProblem::DuplicateColumn(crate::data::report::echo(h)));
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
