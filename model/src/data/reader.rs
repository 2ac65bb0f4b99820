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
    csv: Parser<R>,
    name: String,
    header: Vec<String>,
}

/// What turns a CSV's bytes into records: the csv crate's reader (a file), or the same
/// parser's core run directly over a body already in memory, with a state machine built once a
/// thread and reused (a request: building csv_core's DFA took a third of a one-record CSV
/// request, 19 of 54 µs). Both read with the same options: no header row of their own (the
/// header is read as the first record), any number of fields, `"` quoting, any line ending.
enum Parser<R: Read> {
    Stream(Box<csv::Reader<HashingReader<R>>>),
    Core(Box<CoreParser<R>>),
}

/// [`Parser::Core`]: csv_core's reader over a buffered input, as the csv crate drives it.
struct CoreParser<R: Read> {
    core: PooledCore,
    input: std::io::BufReader<HashingReader<R>>,
    /// Bytes consumed so far (where the next record's parsing starts).
    byte: u64,
    eof: bool,
    /// The current record's field bytes and the end of each field in them.
    fields: Vec<u8>,
    ends: Vec<usize>,
}

thread_local! {
    /// csv_core's readers built on this thread and not in use, with their delimiters.
    static CORES: std::cell::RefCell<Vec<(u8, csv_core::Reader)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The readers kept a thread: one for each delimiter in use at once, of a few delimiters.
const CORES_KEPT: usize = 4;

/// A csv_core reader with csv's default options for a delimiter, taken from this thread's
/// readers (reset) or built, and given back to them when dropped. (Readers are reused, not
/// copied: csv-core 0.1's `Clone` of its state machine copies only part of it.)
struct PooledCore {
    delimiter: u8,
    reader: csv_core::Reader,
}

impl PooledCore {
    fn take(delimiter: u8) -> PooledCore {
        let kept = CORES.with(|cores| {
            let mut cores = cores.borrow_mut();
            let at = cores.iter().position(|(d, _)| *d == delimiter)?;
            Some(cores.swap_remove(at).1)
        });
        let reader = match kept {
            Some(mut reader) => {
                reader.reset();
                reader
            }
            None => csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
        };
        PooledCore { delimiter, reader }
    }
}

impl Drop for PooledCore {
    fn drop(&mut self) {
        let reader = std::mem::take(&mut self.reader);
        // A thread being torn down has no readers left to keep them in.
        let _ = CORES.try_with(|cores| {
            let mut cores = cores.borrow_mut();
            if cores.len() < CORES_KEPT {
                cores.push((self.delimiter, reader));
            }
        });
    }
}

impl<R: Read> Parser<R> {
    /// Where the parser resumes: the bytes consumed so far.
    fn byte(&self) -> u64 {
        match self {
            Parser::Stream(csv) => csv.position().byte(),
            Parser::Core(p) => p.byte,
        }
    }

    /// The next record into `record`; false at the end of the input.
    fn read(&mut self, record: &mut csv::ByteRecord) -> std::result::Result<bool, csv::Error> {
        match self {
            Parser::Stream(csv) => csv.read_byte_record(record),
            Parser::Core(p) => p.read(record).map_err(csv::Error::from),
        }
    }

    fn hashing(&mut self) -> &mut HashingReader<R> {
        match self {
            Parser::Stream(csv) => csv.get_mut(),
            Parser::Core(p) => p.input.get_mut(),
        }
    }

    fn into_hashing(self) -> HashingReader<R> {
        match self {
            Parser::Stream(csv) => csv.into_inner(),
            Parser::Core(p) => p.input.into_inner(),
        }
    }
}

impl<R: Read> CoreParser<R> {
    /// The loop of the csv crate's `read_byte_record` (csv 1.4, `Reader::read_byte_record_impl`)
    /// with its options here: `flexible`, no trimming, the header read as a record.
    fn read(&mut self, record: &mut csv::ByteRecord) -> std::io::Result<bool> {
        use csv_core::ReadRecordResult::*;
        use std::io::BufRead;
        record.clear();
        if self.eof {
            return Ok(false);
        }
        let (mut out, mut end) = (0, 0);
        loop {
            let input = self.input.fill_buf()?;
            // An empty input is the end of the data: the last record, if unterminated, comes out.
            let (result, read, written, ended) =
                self.core.reader.read_record(input, &mut self.fields[out..], &mut self.ends[end..]);
            self.input.consume(read);
            self.byte += read as u64;
            out += written;
            end += ended;
            match result {
                InputEmpty => {}
                OutputFull => {
                    let grown = (self.fields.len() * 2).max(64);
                    self.fields.resize(grown, 0);
                }
                OutputEndsFull => {
                    let grown = (self.ends.len() * 2).max(16);
                    self.ends.resize(grown, 0);
                }
                Record => {
                    let mut start = 0;
                    for &stop in &self.ends[..end] {
                        record.push_field(&self.fields[start..stop]);
                        start = stop;
                    }
                    return Ok(true);
                }
                End => {
                    self.eof = true;
                    return Ok(false);
                }
            }
        }
    }
}

impl<'a> CsvSource<&'a [u8]> {
    /// [`CsvSource::open`] of a body already in memory (a request's): the same records, lines,
    /// hash and errors, without building the parser's state machine each time.
    pub fn open_body(body: &'a [u8], name: &str, schema: &Schema, label: LabelPolicy) -> Result<CsvSource<&'a [u8]>> {
        let input = std::io::BufReader::with_capacity(body.len().clamp(64, 8 * 1024), HashingReader::new(body));
        let core = CoreParser {
            core: PooledCore::take(schema.delimiter as u8),
            input,
            byte: 0,
            eof: false,
            fields: vec![0; body.len().clamp(64, 8 * 1024)],
            ends: vec![0; 64],
        };
        CsvSource::start(Parser::Core(Box::new(core)), name, schema, label)
    }
}

impl<R: Read> CsvSource<R> {
    /// Reads the header of `reader` (named `name` in errors) and checks it against `schema`.
    pub fn open(reader: R, name: &str, schema: &Schema, label: LabelPolicy) -> Result<CsvSource<R>> {
        let csv = csv::ReaderBuilder::new()
            .delimiter(schema.delimiter as u8)
            .has_headers(false)
            .flexible(true)
            .from_reader(HashingReader::new(reader));
        CsvSource::start(Parser::Stream(Box::new(csv)), name, schema, label)
    }

    /// Reads the header with `csv` and checks it against `schema`.
    fn start(csv: Parser<R>, name: &str, schema: &Schema, label: LabelPolicy) -> Result<CsvSource<R>> {
        let mut source = CsvSource { csv, name: name.to_string(), header: Vec::new() };
        let mut record = csv::ByteRecord::new();
        if !source.csv.read(&mut record).map_err(|e| source.csv_error(e))? {
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
            let resume = self.csv.byte();
            match self.csv.read(&mut record) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => return Err(self.csv_error(e)),
            }
            let line = self.csv.hashing().line_from(resume);
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
        let mut hashing = self.csv.into_hashing();
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

    /// Everything a source gives of `bytes`: its header (or its error), then each row with its
    /// line, the error that stopped it, and the hash and size of the bytes.
    fn everything<R: Read>(source: Result<CsvSource<R>>) -> String {
        let mut source = match source {
            Ok(s) => s,
            Err(e) => return format!("open: {e}"),
        };
        let mut out = format!("header {:?}\n", source.header());
        let driven = source.drive(&mut |line: u64, record: &mut csv::ByteRecord| -> Result<()> {
            out.push_str(&format!("{line}: {:?}\n", record.iter().map(|f| f.to_vec()).collect::<Vec<_>>()));
            // A sink may keep the record, leaving a buffer of its own in its place.
            *record = csv::ByteRecord::with_capacity(3, 1);
            Ok(())
        });
        if let Err(e) = driven {
            out.push_str(&format!("error: {e}\n"));
        }
        out.push_str(&format!("{:?}", source.finish().map_err(|e| e.to_string())));
        out
    }

    #[test]
    fn a_body_in_memory_reads_as_the_same_bytes_read_as_a_stream() {
        let mut semicolons = schema();
        semicolons.delimiter = ';';
        let mut wide = String::from("a,b");
        let mut row = String::from("1,0");
        for i in 0..150 {
            wide.push_str(&format!(",x{i}"));
            row.push_str(",7");
        }
        let commas = schema();
        let bodies: Vec<(Vec<u8>, &Schema)> = vec![
            (text(5000), &commas),
            (b"a,b\n1,0".to_vec(), &commas),
            ("\u{feff}a,b\r1,0\r\r2,1\r".as_bytes().to_vec(), &commas),
            (b"a,b\n\"1\n2\",\"x\"\"y\"\n3,1\n\n".to_vec(), &commas),
            (b"a,b\n\"1,0\n2,1\n".to_vec(), &commas),
            (format!("a,b\n{},1\r\n3,0\n", "9".repeat(20_000)).into_bytes(), &commas),
            (format!("{wide}\n{row}\n{row}").into_bytes(), &commas),
            (b"a,b\n1,\xff\xfe\n2,1\n".to_vec(), &commas),
            (b"".to_vec(), &commas),
            (b"\n\n".to_vec(), &commas),
            (b"a,b\n".to_vec(), &commas),
            (b"x,b\n1,0\n".to_vec(), &commas),
            (b"a;b\n1;0\n2;\"1\"\n".to_vec(), &semicolons),
            (b"a,b\n1,0\n".to_vec(), &semicolons),
        ];
        // Twice over, so that the second round reuses the first round's parsers; and with a
        // body held open meanwhile, so that two are in use on one thread at once.
        let held = CsvSource::open_body(b"a,b\n5,1\n", "held.csv", &schema(), LabelPolicy::Optional);
        for round in 0..2 {
            for (i, (body, schema)) in bodies.iter().enumerate() {
                let streamed = everything(CsvSource::open(
                    std::io::Cursor::new(body.clone()),
                    "t.csv",
                    schema,
                    LabelPolicy::Optional,
                ));
                let in_memory = everything(CsvSource::open_body(body, "t.csv", schema, LabelPolicy::Optional));
                assert_eq!(in_memory, streamed, "body {i}, round {round}");
            }
        }
        let held = everything(held);
        assert!(held.contains("2: [[53], [49]]"), "{held}");
        // The cases are what they say: a few are errors, the long field came through whole.
        let long = everything(CsvSource::open_body(&bodies[5].0, "t.csv", bodies[5].1, LabelPolicy::Optional));
        assert!(long.contains(&format!("2: [{:?}, [49]]\n3: [[51], [48]]", vec![b'9'; 20_000])), "{}", &long[..200]);
        let missing = everything(CsvSource::open_body(&bodies[11].0, "t.csv", bodies[11].1, LabelPolicy::Optional));
        assert!(missing.starts_with("open: "), "{missing}");
        let split = everything(CsvSource::open_body(&bodies[3].0, "t.csv", bodies[3].1, LabelPolicy::Optional));
        assert!(split.contains("2: [[49, 10, 50], [120, 34, 121]]\n4: [[51], [49]]"), "{split}");
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
