//! The library's one error type: every failure the model crate can report, typed.

use std::fmt;
use std::path::PathBuf;

use crate::validation::ValidationReport;

/// Result of every fallible operation of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong between a CSV file and a prediction.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The pipeline configuration is invalid.
    #[error("{}: {message}", path.display())]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// The CSV header does not match the schema.
    #[error("{}: line 1 (header): {problem}", path.display())]
    Header {
        /// The data file.
        path: PathBuf,
        /// What is wrong with the header.
        problem: HeaderProblem,
    },
    /// One or more rows broke the schema; the report holds the first errors and exact counts.
    #[error("{}", .0.summary())]
    Validation(Box<ValidationReport>),
    /// The data is well-formed but cannot train a model (no rows, a single class, ...).
    #[error("{}: {problem}", path.display())]
    Unusable {
        /// The data file.
        path: PathBuf,
        /// Why it cannot be used.
        problem: String,
    },
    /// A single record given for prediction breaks the schema.
    #[error("record: {0}")]
    Record(DataError),
    /// A model artifact could not be parsed (truncated or not an artifact).
    #[error("{}: not a readable model artifact: {message}", path.display())]
    ArtifactCorrupt {
        /// The artifact file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A model artifact was written by an incompatible format version.
    #[error("{}: artifact format version {found}, this build reads version {expected}", path.display())]
    ArtifactVersion {
        /// The artifact file.
        path: PathBuf,
        /// The version found in the file.
        found: u64,
        /// The version this build reads.
        expected: u64,
    },
    /// A model artifact's content does not match its recorded checksum (it was altered).
    #[error("{}: checksum mismatch: recorded {recorded}, content hashes to {actual}; the file was altered", path.display())]
    ArtifactChecksum {
        /// The artifact file.
        path: PathBuf,
        /// The checksum stored in the file.
        recorded: String,
        /// The checksum of the content as found.
        actual: String,
    },
    /// The registry's files are unreadable or inconsistent.
    #[error("registry: {0}")]
    Registry(String),
    /// The registry refused an operation (nothing staged, a failed verdict, nothing to roll
    /// back to, ...).
    #[error("{0}")]
    Refused(String),
    /// Fitting a model failed.
    #[error("training failed: {0}")]
    Training(String),
    /// An argument given to a function is out of its domain (empty input, mismatched lengths, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// What can be wrong with a CSV header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderProblem {
    /// The file is empty: there is no header.
    Empty,
    /// A schema column is absent from the header.
    MissingColumn(String),
    /// A column name appears twice.
    DuplicateColumn(String),
    /// The header splits on another delimiter than the one configured.
    WrongDelimiter {
        /// The delimiter the schema expects.
        expected: char,
        /// The delimiter the header appears to use.
        found: char,
    },
}

impl fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderProblem::Empty => write!(f, "the file is empty, a header row is required"),
            HeaderProblem::MissingColumn(c) => write!(f, "column `{c}` of the schema is missing"),
            HeaderProblem::DuplicateColumn(c) => write!(f, "column `{c}` appears more than once"),
            HeaderProblem::WrongDelimiter { expected, found } => write!(
                f,
                "the header is delimited by {found:?}, not {expected:?}: was the file written with another delimiter?"
            ),
        }
    }
}

/// The rule a value broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The row has another number of fields than the header.
    FieldCount,
    /// The bytes of the row are not UTF-8.
    Utf8,
    /// The value is empty where a value is required.
    Missing,
    /// The value does not parse as a number.
    NotANumber,
    /// The value parses to NaN or an infinity.
    NotFinite,
    /// The value does not parse as an integer.
    NotAnInteger,
    /// The value is below the declared minimum.
    BelowMin,
    /// The value is above the declared maximum.
    AboveMax,
    /// The value is not one of the declared levels.
    UndeclaredLevel,
    /// The value is not one of the declared boolean spellings.
    NotABoolean,
    /// The label is neither the positive nor the negative spelling.
    NotALabel,
}

impl Rule {
    /// A short description of the rule, for summaries.
    pub fn describe(self) -> &'static str {
        match self {
            Rule::FieldCount => "wrong number of fields",
            Rule::Utf8 => "not valid UTF-8",
            Rule::Missing => "missing value",
            Rule::NotANumber => "not a number",
            Rule::NotFinite => "NaN or infinite",
            Rule::NotAnInteger => "not an integer",
            Rule::BelowMin => "below the minimum",
            Rule::AboveMax => "above the maximum",
            Rule::UndeclaredLevel => "undeclared level",
            Rule::NotABoolean => "not a declared boolean spelling",
            Rule::NotALabel => "not a declared label spelling",
        }
    }
}

/// One value that broke the schema, located exactly.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataError {
    /// The data file (empty for a single record).
    pub file: String,
    /// 1-based line number in the file; the header is line 1.
    pub line: u64,
    /// The column name (or `*` for a row-level error).
    pub column: String,
    /// The offending value, as written.
    pub value: String,
    /// The rule broken.
    pub rule: Rule,
    /// The rule, spelled out with its parameters (for example `must be >= 0`).
    pub detail: String,
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: column `{}`: value {:?}: {} ({})",
            self.file,
            self.line,
            self.column,
            self.value,
            self.rule.describe(),
            self.detail
        )
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }
}
