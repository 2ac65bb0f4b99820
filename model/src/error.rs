//! The library's one error type: every failure the model crate can report, each a variant a
//! caller can tell apart. Part of the foundation: it knows the data layer's report types (a
//! validation failure carries its report) and nothing else of the crate.

use std::fmt;
use std::path::PathBuf;

use crate::data::report::{DataError, HeaderProblem, ValidationReport};

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
    #[error("{}: {problem}", path.display())]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong, naming the key.
        problem: ConfigProblem,
    },
    /// The CSV header does not match the schema.
    #[error("{}: line 1 (header): {problem}", path.display())]
    Header {
        /// The data file.
        path: PathBuf,
        /// What is wrong with the header.
        problem: HeaderProblem,
    },
    /// A column of a Parquet file has a type that cannot hold the column's kind in the schema
    /// (a configuration error: the schema or the file must change).
    #[error("{}: column `{column}` is {found} in the file, which cannot hold kind = \"{kind}\" (it takes {accepted})", path.display())]
    ColumnType {
        /// The data file.
        path: PathBuf,
        /// The column.
        column: String,
        /// The column's kind in the schema.
        kind: &'static str,
        /// The file's type of the column, named as Arrow names it (`Float64`, `Utf8`, …).
        found: String,
        /// The types that hold the kind.
        accepted: &'static str,
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
    /// A single record names a column the schema does not declare.
    #[error("record: column `{column}` is not in the schema")]
    UnknownColumn {
        /// The column named.
        column: String,
    },
    /// An output path exists and is not a regular file (nor a link to one): it is never
    /// replaced.
    #[error("{}: refusing to write over a {kind}: outputs are regular files", path.display())]
    NotARegularFile {
        /// The path given.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// More rows were invalid than the share allowed when invalid rows are skipped.
    #[error(
        "{file}: {invalid} of {rows} rows are invalid ({:.2} %), more than the {share} allowed (see the rejects file)",
        100.0 * *invalid as f64 / (*rows).max(1) as f64
    )]
    TooManyInvalid {
        /// The data file.
        file: String,
        /// Invalid rows.
        invalid: u64,
        /// Rows read.
        rows: u64,
        /// The share allowed.
        share: f64,
    },
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
    /// A parameter given to a function is out of its range.
    #[error("invalid parameter: {0}")]
    Param(ParamError),
    /// Two inputs that go together have different lengths.
    #[error("{what}: {found} where {expected} were expected")]
    MismatchedLengths {
        /// What was compared with what.
        what: &'static str,
        /// The length required.
        expected: usize,
        /// The length found.
        found: usize,
    },
    /// There are no rows to work on.
    #[error("no rows {what}")]
    NoRows {
        /// What needed rows (for example "to score").
        what: &'static str,
    },
    /// A score given to a metric is NaN or infinite.
    #[error("score {value} is not finite")]
    NonFiniteScore {
        /// The score.
        value: f64,
    },
    /// The rows hold a single class where both are needed.
    #[error("{what} needs both classes; the data has only one")]
    TooFewClasses {
        /// What needed both classes.
        what: &'static str,
    },
    /// The data lacks a column the model reads.
    #[error("the data has no column `{column}` that the model needs")]
    MissingColumn {
        /// The column.
        column: String,
    },
    /// A column's values are not of the kind the model's encoder was fitted on.
    #[error("column `{column}` does not have the kind the model was trained with")]
    EncoderKind {
        /// The column.
        column: String,
    },
    /// The model encodes a column twice.
    #[error("the model encodes column `{column}` twice")]
    EncodedTwice {
        /// The column.
        column: String,
    },
    /// A model file of another library could not be read as one.
    #[error("{file}: not a readable {library} model: {problem}")]
    ForeignModel {
        /// The file, as the caller named it.
        file: String,
        /// The library (`lightgbm`, `xgboost`).
        library: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A model of another library that is not imported (its objective, number of classes,
    /// linear trees, booster), or whose features do not match the configuration's schema;
    /// the reason names what was found.
    #[error("{file}: the {library} model cannot be imported: {reason}")]
    ImportRefused {
        /// The file, as the caller named it.
        file: String,
        /// The library (`lightgbm`, `xgboost`).
        library: &'static str,
        /// What was found, and what is imported instead.
        reason: String,
    },
    /// linfa-logistic's solver failed.
    #[error("training failed: logistic regression: {0}")]
    LogisticSolver(#[source] linfa_logistic::error::Error),
    /// linfa refused the data set given to a model.
    #[error("training failed: {0}")]
    Linfa(#[from] linfa::Error),
    /// The staging rows hold a single class.
    #[error("{file}: the {rows} staging rows hold a single class; acceptance needs both (is this the right file?)")]
    StagingSingleClass {
        /// The staging file.
        file: String,
        /// Staging rows read.
        rows: u64,
    },
    /// The candidate's staging rows were chosen by row keys of a scheme this build no longer
    /// computes: they cannot be found again.
    #[error(
        "model `{model}` chose its staging rows by the {scheme} row keys of an earlier mlgate, which this version no \
         longer computes (it keys rows by their values, so that a CSV and a Parquet file of the same data agree); \
         its staging rows cannot be found again: rebuild the model with this version (`mlgate build`) and run \
         acceptance on the new artifact"
    )]
    StagingKeysOutdated {
        /// The candidate's name.
        model: String,
        /// The scheme its artifact records.
        scheme: &'static str,
    },
    /// Production reads another number of rows of the staging file than the candidate.
    #[error("production {version} reads {production} rows of {file}, the candidate {candidate}")]
    ProductionRowsDiffer {
        /// Production's version.
        version: String,
        /// The staging file.
        file: String,
        /// Rows production read.
        production: u64,
        /// Rows the candidate read.
        candidate: u64,
    },
    /// The registry's files are unreadable or inconsistent.
    #[error("registry: {}: {message}", path.display())]
    RegistryCorrupt {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Another writer held the registry's lock for longer than the timeout.
    #[error("{}: another writer has held the registry's lock for {seconds} s; is a job stuck? (the lock is released when its process ends)", path.display())]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long this writer waited.
        seconds: f64,
    },
    /// The registry was damaged by hand in a way no writer leaves it; nothing is written.
    #[error("registry {}: {problem}; `mlgate registry --check` lists every problem", root.display())]
    RegistryDamaged {
        /// The registry.
        root: PathBuf,
        /// What is broken and how to repair it.
        problem: String,
    },
    /// Deploy found no staged version.
    #[error("nothing to deploy: no version is staged; run acceptance first")]
    NothingStaged,
    /// The version did not pass acceptance, and no `--force` overrides it.
    #[error("{version} did not pass acceptance ({}); deploy --force --reason TEXT overrides", failed.join("; "))]
    VerdictFailed {
        /// The version.
        version: String,
        /// Its failed checks, in words.
        failed: Vec<String>,
    },
    /// The version's artifact is not the one its verdict judged.
    #[error("{version}: its artifact (sha256 {actual}) is not the one acceptance judged ({judged})")]
    NotTheJudgedArtifact {
        /// The version.
        version: String,
        /// The artifact's checksum now.
        actual: String,
        /// The checksum the verdict is bound to.
        judged: String,
    },
    /// A version named on the command line is not one of the registry's.
    #[error("{version} is not a version of this registry (it has {})", if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    UnknownVersion {
        /// The version named.
        version: String,
        /// The versions there are.
        known: Vec<String>,
    },
    /// Rollback found no production.
    #[error("nothing to roll back: no version is in production")]
    NothingInProduction,
    /// The rollback target is production already.
    #[error("{version} is already in production")]
    AlreadyInProduction {
        /// The version.
        version: String,
    },
    /// Production has no predecessor to roll back to.
    #[error("nothing to roll back to: {}", no_earlier_production(version, others))]
    NoEarlierProduction {
        /// The version in production.
        version: String,
        /// The other versions that have been in production (rolled back from, so not behind it).
        others: Vec<String>,
    },
    /// `rollback --to` named a version that failed acceptance and was never in production:
    /// putting it there is a deploy, not a return.
    #[error(
        "{version} did not pass acceptance ({}) and has never been in production: rollback returns to an \
         earlier production; `deploy --version {version} --force --reason TEXT` puts it in production anyway",
        failed.join("; ")
    )]
    NeverInProduction {
        /// The version.
        version: String,
        /// Its failed checks, in words.
        failed: Vec<String>,
    },
    /// The version was marked breached (rolled back on evidence), and no `--force` overrides
    /// the mark.
    #[error(
        "{version} is {mark}; it stays out of production unless `{command} --force --reason TEXT` overrides the mark"
    )]
    MarkedBreached {
        /// The version.
        version: String,
        /// The mark in words: when, by whom, why.
        mark: String,
        /// The command that would override it (without `--force --reason`).
        command: String,
    },
    /// Deploy found nothing staged because a rollback on evidence took `staging` off the version
    /// it marked breached.
    #[error(
        "nothing to deploy: no version is staged since {version} was {mark} (staging was taken off it); run \
         acceptance on a new candidate, or `deploy --version {version} --force --reason TEXT` puts it back"
    )]
    StagingBreached {
        /// The version marked.
        version: String,
        /// The mark in words: when, by whom, why.
        mark: String,
    },
    /// The rollback target cannot be loaded.
    #[error("cannot roll back to {version}: {source}")]
    RollbackTarget {
        /// The version asked for.
        version: String,
        /// Why it cannot be loaded.
        source: Box<Error>,
    },
    /// A rollout is open, and the change asked for (another rollout, a deploy) must wait for it
    /// to close.
    #[error(
        "a rollout is open: {rollout}, started {since}; `mlgate rollout promote` or `mlgate rollout abort \
         --reason TEXT` closes it first"
    )]
    RolloutOpen {
        /// The open rollout in words.
        rollout: String,
        /// When it started.
        since: String,
    },
    /// A rollout needs a production to compare its candidate with.
    #[error("nothing in production to roll out against: a rollout compares its candidate with production; `mlgate deploy` puts the first version there")]
    RolloutWithoutProduction,
    /// A rollout was asked for without a version, and none is staged.
    #[error("nothing to roll out: no version is staged; run acceptance on a candidate, or name one with --version")]
    NothingToRollOut,
    /// The rollout's candidate is the version in production.
    #[error("{version} is already in production: a rollout releases another version beside it")]
    RolloutOfProduction {
        /// The version.
        version: String,
    },
    /// Only a version whose verdict passed can be a rollout's candidate (no flag overrides this).
    #[error("{version} did not pass acceptance ({}): only a version whose verdict passed can be rolled out", failed.join("; "))]
    RolloutVerdictFailed {
        /// The version.
        version: String,
        /// Its failed checks, in words.
        failed: Vec<String>,
    },
    /// The rollout's candidate is marked breached (rolled back or aborted on evidence).
    #[error("{version} is {mark}: a version marked breached is not rolled out again")]
    RolloutCandidateBreached {
        /// The version.
        version: String,
        /// The mark in words: when, by whom, why.
        mark: String,
    },
    /// A change to the open rollout was asked for, and none is open.
    #[error("no rollout is open; `mlgate rollout start` opens one")]
    NoRollout,
    /// A step of the rollout was asked for from a step it is no longer at: another writer moved
    /// it meanwhile (compare-and-swap).
    #[error(
        "the rollout is at step {actual}, not at step {expected}: another writer moved it ({rollout}); nothing changed"
    )]
    RolloutStepMoved {
        /// The open rollout in words.
        rollout: String,
        /// The step (from 1) the caller saw.
        expected: usize,
        /// The step (from 1) it is at.
        actual: usize,
    },
    /// The rollout is at its last step: there is no next weight, promoting ends it.
    #[error("the rollout is at its last step ({rollout}): `mlgate rollout promote` ends it")]
    RolloutLastStep {
        /// The open rollout in words.
        rollout: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }

    /// True for a refusal of the registry (a failed verdict, nothing to deploy or roll back
    /// to): a decision, as a failed gate is, rather than an error to fix.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Error::NothingStaged
                | Error::VerdictFailed { .. }
                | Error::NotTheJudgedArtifact { .. }
                | Error::NothingInProduction
                | Error::AlreadyInProduction { .. }
                | Error::NoEarlierProduction { .. }
                | Error::NeverInProduction { .. }
                | Error::RollbackTarget { .. }
                | Error::UnknownVersion { .. }
                | Error::MarkedBreached { .. }
                | Error::StagingBreached { .. }
                | Error::RolloutOpen { .. }
                | Error::RolloutWithoutProduction
                | Error::NothingToRollOut
                | Error::RolloutOfProduction { .. }
                | Error::RolloutVerdictFailed { .. }
                | Error::RolloutCandidateBreached { .. }
                | Error::NoRollout
                | Error::RolloutStepMoved { .. }
                | Error::RolloutLastStep { .. }
        )
    }
}

/// Why no production precedes `version`: none other ever was, or those that were have been
/// rolled back from (a rollback pops them), so only `--to` can name them.
fn no_earlier_production(version: &str, others: &[String]) -> String {
    match others {
        [] => format!("{version} is the only version that has been in production"),
        _ => format!(
            "no earlier production is left behind {version} ({} {} in production, and production has since \
             rolled back past them); `rollback --to VERSION` names one",
            others.join(", "),
            if others.len() == 1 { "was" } else { "were" }
        ),
    }
}

/// What is wrong with a configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigProblem {
    /// The TOML does not parse or does not fit the configuration's shape (the parser's message,
    /// which names the key).
    Syntax(String),
    /// A parameter is out of its range or contradicts another.
    Param(ParamError),
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigProblem::Syntax(m) => f.write_str(m),
            ConfigProblem::Param(p) => p.fmt(f),
        }
    }
}

/// A parameter that its check refused, naming its key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// A value outside its documented range.
    #[error("{key}: {value} is not {bound}")]
    OutOfRange {
        /// The key, as written in the configuration (`model.gradient_boosting.max_iter`).
        key: String,
        /// The value given.
        value: String,
        /// The range, in words (`in 1..=100000`).
        bound: String,
    },
    /// A value that contradicts the rules of its key, or another key.
    #[error("{key}: {why}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        why: String,
    },
}

impl ParamError {
    /// A value out of its range.
    pub fn out_of_range(key: impl Into<String>, value: impl fmt::Display, bound: impl Into<String>) -> ParamError {
        ParamError::OutOfRange { key: key.into(), value: value.to_string(), bound: bound.into() }
    }

    /// A value that breaks a rule of its key.
    pub fn invalid(key: impl Into<String>, why: impl Into<String>) -> ParamError {
        ParamError::Invalid { key: key.into(), why: why.into() }
    }

    /// The same problem, its key under `section` (`learning_rate` → `model.gradient_boosting.learning_rate`).
    pub fn under(self, section: &str) -> ParamError {
        match self {
            ParamError::OutOfRange { key, value, bound } => {
                ParamError::OutOfRange { key: format!("{section}.{key}"), value, bound }
            }
            ParamError::Invalid { key, why } => ParamError::Invalid { key: format!("{section}.{key}"), why },
        }
    }

    /// The key concerned.
    pub fn key(&self) -> &str {
        match self {
            ParamError::OutOfRange { key, .. } | ParamError::Invalid { key, .. } => key,
        }
    }
}
