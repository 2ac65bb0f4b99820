//! What every subcommand needs: the configuration, paths resolved as documented, validated
//! data, the registry, and who acts when.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use model::lifecycle::registry::Actor;
use model::pipeline::build::BuildContext;
use model::{LabelPolicy, PipelineConfig};
use xshell::Shell;

use crate::clock::now_rfc3339;
use crate::output;
use crate::store::{Location, Store, Timeouts};

/// Loads a configuration, naming the file on error.
pub fn load_config(path: &Path) -> Result<PipelineConfig> {
    PipelineConfig::load(path).with_context(|| format!("cannot use configuration {}", path.display()))
}

/// Parses a path flag, accepting an empty value (which then means "the default"): the GitHub
/// Action passes its inputs as they are, and clap's own path parser refuses "".
pub fn path_or_empty(value: &str) -> std::result::Result<PathBuf, String> {
    Ok(PathBuf::from(value))
}

/// The data file: the flag as given, else the configuration's path taken from the
/// configuration file's folder. An empty flag counts as absent (the GitHub Action passes its
/// `data` input, empty by default).
pub fn data_path(flag: Option<PathBuf>, config: &PipelineConfig, config_path: &Path) -> PathBuf {
    flag.filter(|p| !p.as_os_str().is_empty()).unwrap_or_else(|| relative_to_config(&config.data.path, config_path))
}

/// A data file ready to read: the file given, or the local copy of an object
/// (`s3://BUCKET/KEY`, removed when this is dropped), its format, and its name as given.
pub struct DataFile {
    /// The local file.
    pub path: PathBuf,
    /// The file or object as given: what errors, reports and lineage name.
    pub name: String,
    /// CSV or Parquet: the extension, else the configuration's `[data] format`, else CSV.
    pub format: model::Format,
    _copy: Option<tempfile::TempPath>,
}

impl DataFile {
    /// `given` (a path, or an object `s3://BUCKET/KEY` copied to a temporary file with the
    /// registry's S3 client, credentials and limits), in the format its name says, else
    /// `configured`.
    pub fn open(given: &Path, configured: Option<model::Format>) -> Result<DataFile> {
        let name = given.display().to_string();
        let format = model::Format::of(&name, configured);
        if !crate::store::fetch::is_object(&name) {
            return Ok(DataFile { path: given.to_path_buf(), name, format, _copy: None });
        }
        let copy = crate::store::fetch::fetch(&name, registry_timeouts()?.s3)?;
        Ok(DataFile { path: copy.to_path_buf(), name, format, _copy: Some(copy) })
    }

    /// Reads and validates the file against `schema`; with `skip`, leaves invalid rows out.
    pub fn load(
        &self,
        schema: &model::Schema,
        label: LabelPolicy,
        skip: Option<model::data::validation::SkipInvalid>,
    ) -> model::Result<model::Dataset> {
        model::load(&self.path, &self.name, self.format, schema, label, skip)
    }
}

/// Reads and validates a data file (CSV or Parquet, local or `s3://`, the format as
/// [`DataFile::open`] says); when validation fails and `report_dir` is given, the failed report
/// is still written there as validation.json / validation.md.
pub fn load_data(
    path: &Path,
    format: Option<model::Format>,
    schema: &model::Schema,
    label: LabelPolicy,
    report_dir: Option<&Path>,
) -> Result<model::Dataset> {
    let file = DataFile::open(path, format)?;
    match file.load(schema, label, None) {
        Ok(data) => {
            for c in &data.report.columns {
                for d in &c.near_duplicates {
                    eprintln!(
                        "warning: {}: column `{}`: level {:?} ({} rows) differs from {:?} only in case or surrounding spaces",
                        file.name, c.name, d.level, d.count, d.like
                    );
                }
            }
            Ok(data)
        }
        Err(model::Error::Validation(report)) => {
            if let Some(dir) = report_dir {
                write_validation(dir, &report)?;
                eprintln!("validation report: {}", dir.join("validation.json").display());
            }
            Err(model::Error::Validation(report)).context("the data does not follow the schema")
        }
        Err(e) => Err(e).context("cannot load the data"),
    }
}

/// `--skip-invalid` and `--max-invalid`, shared by the subcommands that score a file
/// (`predict`, `monitor`): the same flags, the same rejects file, the same limit.
#[derive(clap::Args, Clone, Default)]
pub struct SkipInvalidArgs {
    /// Score the valid rows and write each broken value of the invalid ones (line, column, value,
    /// rule) to this CSV, instead of stopping at the first invalid row.
    #[arg(long, value_name = "REJECTS.csv")]
    pub skip_invalid: Option<PathBuf>,
    /// With --skip-invalid: fail when more than this share of the rows is invalid.
    #[arg(long, default_value_t = 0.01, requires = "skip_invalid", value_parser = share)]
    pub max_invalid: f64,
}

impl SkipInvalidArgs {
    /// The share of invalid rows allowed, when invalid rows are skipped.
    pub fn max_share(&self) -> Option<f64> {
        self.skip_invalid.as_ref().map(|_| self.max_invalid)
    }

    /// Runs `read` with the rejects file's writer (a sink without --skip-invalid). The rejects
    /// file is written whole, by rename, even when `read` fails: it says what was wrong.
    pub fn with_rejects<T>(
        &self,
        read: impl FnOnce(&mut (dyn std::io::Write + Send)) -> model::Result<T>,
    ) -> Result<model::Result<T>> {
        match &self.skip_invalid {
            None => Ok(read(&mut std::io::sink())),
            Some(path) => model::atomic::write_with(path, |rejects| Ok(read(rejects)))
                .with_context(|| format!("cannot write {}", path.display())),
        }
    }
}

/// A share in [0, 1], as a flag gives it.
pub fn share(value: &str) -> std::result::Result<f64, String> {
    let share: f64 = value.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&share) {
        Ok(share)
    } else {
        Err(format!("{share} is not a share in [0, 1]"))
    }
}

/// [`load_data`] that, with `--skip-invalid`, leaves invalid rows out (each broken value in the
/// rejects file) and fails only past `--max-invalid`.
pub fn load_data_skipping(
    path: &Path,
    format: Option<model::Format>,
    schema: &model::Schema,
    label: LabelPolicy,
    report_dir: Option<&Path>,
    skip: &SkipInvalidArgs,
) -> Result<model::Dataset> {
    let Some(max_share) = skip.max_share() else { return load_data(path, format, schema, label, report_dir) };
    let file = DataFile::open(path, format)?;
    let loaded = skip.with_rejects(|rejects| {
        file.load(schema, label, Some(model::data::validation::SkipInvalid { max_share, rejects }))
    })?;
    match loaded {
        Ok(data) => Ok(data),
        Err(e @ model::Error::TooManyInvalid { .. }) => Err(anyhow::Error::new(e).context(format!(
            "too many invalid rows to go on; each broken value is in {}",
            skip.skip_invalid.as_deref().unwrap_or(Path::new("")).display()
        ))),
        Err(model::Error::Validation(report)) => {
            if let Some(dir) = report_dir {
                write_validation(dir, &report)?;
            }
            Err(model::Error::Validation(report)).context("the data does not follow the schema")
        }
        Err(e) => Err(e).context("cannot load the data"),
    }
}

/// The labelled data a model is made from (`build`, `import`): read and validated (the report
/// written to `out` as validation.json and validation.md, whatever the outcome), its summary
/// printed, and the context the artifact's lineage records (configuration file, commit, time).
pub fn training_data(
    sh: &Shell,
    config_path: &Path,
    config: &PipelineConfig,
    data_path: &Path,
    out: &Path,
) -> Result<(model::Dataset, BuildContext)> {
    let data = load_data(data_path, config.data.format, &config.schema, LabelPolicy::Required, Some(out))?;
    write_validation(out, &data.report)?;
    eprintln!(
        "validated {}: {} rows, {} exact duplicates, sha256 {}",
        data_path.display(),
        data.len(),
        data.report.duplicate_rows,
        &data.report.sha256[..12]
    );
    let context = BuildContext {
        config_file: config_path.display().to_string(),
        git_commit: crate::store::git::head_commit(sh),
        created_at: now_rfc3339(),
    };
    Ok((data, context))
}

/// Writes validation.json and validation.md.
pub fn write_validation(dir: &Path, report: &model::ValidationReport) -> Result<()> {
    output::write_json(&dir.join("validation.json"), report)?;
    output::write(&dir.join("validation.md"), model::render::validation::validation_markdown(report).as_bytes())
}

/// `--config` and `--data`, shared by the subcommands that read a data set.
#[derive(clap::Args, Clone, Default)]
pub struct DataArgs {
    /// Pipeline configuration (TOML).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// CSV or Parquet file, or an object s3://BUCKET/KEY (default: the configuration's `[data]
    /// path`; an empty value means the default).
    #[arg(long, value_parser = path_or_empty)]
    pub data: Option<PathBuf>,
}

impl DataArgs {
    /// Loads the configuration; returns its path, itself and the data file to read.
    pub fn resolve(self) -> Result<(PathBuf, PipelineConfig, PathBuf)> {
        let config_path = crate::cli::config_path(self.config);
        let config = load_config(&config_path)?;
        let data = data_path(self.data, &config, &config_path);
        Ok((config_path, config, data))
    }
}

/// `--config` and `--registry`, shared by the subcommands that work on the registry.
#[derive(clap::Args, Clone, Default)]
pub struct RegistryArgs {
    /// Pipeline configuration (TOML).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Registry: a folder, or git+URL#BRANCH (default: the configuration's `[registry] path`).
    #[arg(long)]
    pub registry: Option<String>,
}

impl RegistryArgs {
    /// Loads the configuration and opens its registry.
    pub fn open(self) -> Result<(PipelineConfig, Store)> {
        let config_path = crate::cli::config_path(self.config);
        let config = load_config(&config_path)?;
        let registry = registry(self.registry, &config, &config_path)?;
        Ok((config, registry))
    }
}

/// The registry: the flag as given (a relative folder from the current directory), else the
/// configuration's `[registry] path` (a relative folder from the configuration file's folder).
pub fn registry(flag: Option<String>, config: &PipelineConfig, config_path: &Path) -> Result<Store> {
    let location = match flag.filter(|f| !f.is_empty()) {
        Some(flag) => Location::parse(&flag, Path::new(""))?,
        None => {
            let base = config_path.parent().unwrap_or(Path::new(""));
            Location::parse(&config.registry.path.to_string_lossy(), base)?
        }
    };
    open_registry(location)
}

/// Opens a registry location, waiting on a held lock for `MLGATE_LOCK_TIMEOUT_SECS` (default
/// 120 s), each request to a remote registry bounded by [`registry_timeouts`].
pub fn open_registry(location: Location) -> Result<Store> {
    let timeout = std::env::var("MLGATE_LOCK_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(model::lifecycle::registry::LOCK_TIMEOUT, std::time::Duration::from_secs_f64);
    Store::open(location, |notice| eprintln!("note: {notice}"), timeout, registry_timeouts()?)
}

/// How long one request to a remote registry may take: `MLGATE_REGISTRY_TIMEOUT_SECS` for
/// every git command and S3 call when set, else 60 s for a git command and 30 s for an S3 call.
/// The one place the variable is read.
pub fn registry_timeouts() -> Result<Timeouts> {
    let Ok(text) = std::env::var("MLGATE_REGISTRY_TIMEOUT_SECS") else { return Ok(Timeouts::default()) };
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Timeouts::all(std::time::Duration::from_secs_f64(s))),
        _ => anyhow::bail!("MLGATE_REGISTRY_TIMEOUT_SECS={text:?} is not a number of seconds in (0, 86400]"),
    }
}

/// `error` with the context that says what an operation of the registry did not do: "refused"
/// for a refusal (nothing was changed, by decision), "failed" for anything else.
pub fn registry_failure(error: model::Error, operation: &str) -> anyhow::Error {
    let context = if error.is_refusal() { format!("{operation} refused") } else { format!("{operation} failed") };
    anyhow::Error::new(error).context(context)
}

/// A path from a configuration file, taken from that file's folder when relative (an object,
/// `s3://…`, as it is).
pub fn relative_to_config(path: &Path, config_path: &Path) -> PathBuf {
    match config_path.parent() {
        Some(dir) if path.is_relative() && !crate::store::fetch::is_object(&path.to_string_lossy()) => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// Who acts: `GITHUB_ACTOR` on GitHub Actions, else the OS user; now; the checkout's commit.
pub fn actor(sh: &Shell) -> Actor {
    let who = ["GITHUB_ACTOR", "USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        // SAFETY: getuid has no preconditions and cannot fail.
        .unwrap_or_else(|| format!("uid {}", unsafe { libc::getuid() }));
    Actor { who, when: now_rfc3339(), commit: crate::store::git::head_commit(sh) }
}
