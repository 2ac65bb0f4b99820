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

/// Rows a batch carries from the reading thread of [`Beside`] to the sink's.
const BATCH_ROWS: usize = 1024;
/// Batches read ahead of the sink at most: memory stays flat whatever the file's size.
const BATCHES_AHEAD: usize = 4;

/// A source whose rows are read (the file's bytes parsed into fields, hashed and their lines
/// counted) on a thread of its own while the sink checks and keeps them on the caller's, when
/// the machine has a second core; on one, as the source alone. The sink sees the same rows in
/// the same order with the same lines, and the first error is the one reading alone gives: the
/// sink's on a row before the one the source failed on, else the source's.
pub struct Beside<S>(pub S);

impl<S: RowSource + Send> RowSource for Beside<S> {
    fn header(&self) -> &[String] {
        self.0.header()
    }

    fn name(&self) -> &str {
        self.0.name()
    }

    fn drive(&mut self, sink: &mut impl RowSink) -> Result<()> {
        if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
            return self.0.drive(sink);
        }
        type Batch = Vec<(u64, csv::ByteRecord)>;
        let (full, filled) = std::sync::mpsc::sync_channel::<Batch>(BATCHES_AHEAD);
        let (done, emptied) = std::sync::mpsc::channel::<Batch>();
        let name = self.0.name().to_string();
        let source = &mut self.0;
        std::thread::scope(|scope| {
            let reading = std::thread::Builder::new().name("reader".into()).spawn_scoped(scope, move || {
                let mut batch: Batch = Vec::with_capacity(BATCH_ROWS);
                // Records the sink is done with, to read the next rows into.
                let mut spare: Vec<csv::ByteRecord> = Vec::new();
                // The sink stopped (an error, or it panicked): nothing more to send.
                let mut stopped = false;
                let read = source.drive(&mut |line: u64, record: &mut csv::ByteRecord| -> Result<()> {
                    let mut kept = spare.pop().unwrap_or_default();
                    std::mem::swap(&mut kept, record);
                    batch.push((line, kept));
                    if batch.len() == BATCH_ROWS {
                        if full.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS))).is_err() {
                            stopped = true;
                            return Err(Error::Unusable {
                                path: PathBuf::new(),
                                problem: "the rows' reader stopped".into(),
                            });
                        }
                        while let Ok(mut back) = emptied.try_recv() {
                            spare.extend(back.drain(..).map(|(_, r)| r));
                        }
                    }
                    Ok(())
                });
                if !stopped && !batch.is_empty() {
                    // Rows before a failure of the source are the sink's too.
                    let _ = full.send(batch);
                }
                read
            });
            // The system refused a thread (it is out of them): said, nothing read.
            let reading = reading.map_err(|e| Error::Io { path: PathBuf::from(&name), source: e })?;
            let mut outcome = Ok(());
            'batches: for mut batch in filled.iter() {
                for (line, record) in &mut batch {
                    if let Err(e) = sink.row(*line, record) {
                        outcome = Err(e);
                        break 'batches;
                    }
                }
                let _ = done.send(batch);
            }
            // The reading thread's next send fails, and it stops.
            drop(filled);
            let read = match reading.join() {
                Ok(read) => read,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            outcome.and(read)
        })
    }

    fn finish(self) -> Result<(String, u64)> {
        self.0.finish()
    }

    fn locate(&self, errors: &mut [DataError]) {
        self.0.locate(errors);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        let schema: Schema = toml::from_str(
            "[[columns]]\nname = \"a\"\nkind = \"numeric\"\n[[columns]]\nname = \"b\"\nkind = \"label\"\npositive = \"1\"\nnegative = \"0\"\n",
        )
        .unwrap();
        schema.check().unwrap();
        schema
    }

    /// A file of `rows` rows (more than a few batches), with CRLF and LF line ends and blank
    /// lines between.
    fn text(rows: usize) -> Vec<u8> {
        let mut text = String::from("a,b\r\n");
        for i in 0..rows {
            text.push_str(&format!("{i},{}{}", i * 7 % 13, if i % 3 == 0 { "\r\n" } else { "\n" }));
            if i % 1000 == 999 {
                text.push_str("\n\n");
            }
        }
        text.into_bytes()
    }

    /// Fails with an I/O error once `fail_at` bytes were read.
    struct Failing {
        bytes: Vec<u8>,
        at: usize,
        fail_at: usize,
    }

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.at >= self.fail_at {
                return Err(std::io::Error::other("the disk went away"));
            }
            let n = buf.len().min(self.fail_at - self.at).min(100);
            buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    type Seen = Vec<(u64, Vec<Vec<u8>>)>;

    /// The rows a source gives (stopping with an error at the row numbered `fail_on`, when
    /// given), with what `drive` and `finish` returned.
    fn collect(source: &mut impl RowSource, fail_on: Option<usize>) -> (Seen, std::result::Result<(), String>) {
        let mut seen: Seen = Vec::new();
        let outcome = source.drive(&mut |line: u64, record: &mut csv::ByteRecord| -> Result<()> {
            if fail_on == Some(seen.len()) {
                return Err(Error::Unusable { path: "sink".into(), problem: format!("refused line {line}") });
            }
            // Keep some records by swapping them out, as the validation does with its own.
            let mut kept = csv::ByteRecord::new();
            if line.is_multiple_of(2) {
                std::mem::swap(&mut kept, record);
            } else {
                kept = record.clone();
            }
            seen.push((line, kept.iter().map(<[u8]>::to_vec).collect()));
            Ok(())
        });
        (seen, outcome.map_err(|e| e.to_string()))
    }

    #[test]
    fn rows_read_beside_are_the_rows_read_alone_with_their_lines_hash_and_errors() {
        let bytes = text(5000);
        let open = || CsvSource::open(std::io::Cursor::new(bytes.clone()), "t.csv", &schema(), LabelPolicy::Optional);
        let (mut alone, mut beside) = (open().unwrap(), Beside(open().unwrap()));
        let (rows_alone, outcome_alone) = collect(&mut alone, None);
        let (rows_beside, outcome_beside) = collect(&mut beside, None);
        assert_eq!(rows_alone.len(), 5000);
        assert_eq!(rows_alone.last().unwrap().0, 5000 + 1 + 2 * 4, "lines count the blank ones");
        assert_eq!(rows_beside, rows_alone);
        assert_eq!((outcome_alone, outcome_beside), (Ok(()), Ok(())));
        assert_eq!(beside.finish().unwrap(), alone.finish().unwrap());

        // The sink refuses a row: it saw the same rows before it, and its error is the one.
        for fail_on in [0, 1023, 1024, 3001, 4999] {
            let (rows_alone, outcome_alone) = collect(&mut open().unwrap(), Some(fail_on));
            let (rows_beside, outcome_beside) = collect(&mut Beside(open().unwrap()), Some(fail_on));
            assert_eq!(rows_alone.len(), fail_on);
            assert_eq!(rows_beside, rows_alone);
            assert!(outcome_alone.as_ref().unwrap_err().contains("refused line"), "{outcome_alone:?}");
            assert_eq!(outcome_beside, outcome_alone);
        }

        // The file fails part way: every row before is handed on, then the reader's error; a
        // sink that refused a row before that point is the error instead.
        let failing = |fail_at| {
            let reader = Failing { bytes: bytes.clone(), at: 0, fail_at };
            CsvSource::open(reader, "t.csv", &schema(), LabelPolicy::Optional).unwrap()
        };
        for (fail_at, fail_on) in [(20_000, None), (30_000, Some(10)), (30_000, Some(4900))] {
            let (rows_alone, outcome_alone) = collect(&mut failing(fail_at), fail_on);
            let (rows_beside, outcome_beside) = collect(&mut Beside(failing(fail_at)), fail_on);
            assert!(rows_alone.len() > 1000 || fail_on == Some(10), "{}", rows_alone.len());
            assert_eq!(rows_beside, rows_alone);
            let expected = if fail_on == Some(10) { "refused line" } else { "the disk went away" };
            assert!(outcome_alone.as_ref().unwrap_err().contains(expected), "{outcome_alone:?}");
            assert_eq!(outcome_beside, outcome_alone);
        }
    }
}
