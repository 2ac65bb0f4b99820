//! `mlgate predict`: score a CSV with an artifact (a file, or a registry's version), one output
//! row per input row, in order, streamed in blocks scored on every core.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use model::data::parquet::ParquetSource;
use model::lifecycle::registry::PRODUCTION;
use model::pipeline::scoring::{score_csv_with, score_source_with, ScoreOptions};
use model::Artifact;
use xshell::Shell;

use crate::cli::context::{open_registry, DataFile, SkipInvalidArgs};
use crate::output;
use crate::store::Location;

/// The flags of `mlgate predict`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["model", "registry"])))]
pub struct Args {
    /// Model artifact (model.json written by `build`).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Score with a registry's model instead: a folder, git+URL#BRANCH or s3://BUCKET/PREFIX.
    #[arg(long)]
    registry: Option<String>,
    /// With --registry: the alias whose version scores (default `production`).
    #[arg(long, conflicts_with_all = ["model", "registry_version"])]
    alias: Option<String>,
    /// With --registry: the version that scores, e.g. `v3`.
    #[arg(long = "version", id = "registry_version", value_name = "VERSION", conflicts_with = "model")]
    version: Option<String>,
    /// CSV or Parquet file (by its extension), or an object s3://BUCKET/KEY, to score; the label
    /// column may be absent.
    #[arg(long)]
    data: PathBuf,
    /// Output CSV: the id column (when the schema has one), the `--keep` columns, then
    /// `probability` and `prediction` (0 or 1).
    #[arg(long)]
    out: PathBuf,
    /// Input columns to carry to the output, comma-separated, after the id.
    #[arg(long, value_delimiter = ',')]
    keep: Vec<String>,
    /// `--skip-invalid` and `--max-invalid`.
    #[command(flatten)]
    skip: SkipInvalidArgs,
}

/// The artifact that scores, and how to name it: the file of `--model`, or the version of a
/// registry that `--version` names or `--alias` points at.
fn artifact(args: &Args) -> Result<(Artifact, String)> {
    let (Some(flag), None) = (&args.registry, &args.model) else {
        let path = args.model.as_ref().expect("clap requires --model or --registry");
        return Ok((Artifact::load(path).context("cannot load the model")?, path.display().to_string()));
    };
    let location = Location::parse(flag, Path::new(""))?;
    let store = open_registry(location.clone())?;
    let version = match (&args.version, args.alias.as_deref().unwrap_or(PRODUCTION)) {
        (Some(version), _) => version.clone(),
        (None, alias) => {
            store.alias(alias).with_context(|| format!("cannot read the aliases of {location}"))?.with_context(
                || format!("no version is `{alias}` in {location}: name one with --version (`registry` lists them)"),
            )?
        }
    };
    let artifact = store.artifact(&version).with_context(|| format!("cannot load {version} from {location}"))?;
    Ok((artifact, format!("{version} of {location}")))
}

/// Runs `mlgate predict`.
pub fn run(_sh: &Shell, args: Args) -> Result<ExitCode> {
    let (artifact, model_name) = artifact(&args)?;
    // A Parquet file is told by its extension here: predict reads no configuration.
    let file = DataFile::open(&args.data, None)?;
    let input = std::fs::File::open(&file.path).with_context(|| format!("cannot read {}", file.name))?;
    let options = ScoreOptions { keep: args.keep.clone(), skip_invalid: args.skip.max_share() };
    let name = &file.name;
    // Renamed into place only when every row (or, skipping invalid rows, enough of them) was
    // valid and scored: a failed run leaves no half-written predictions. The rejects file is
    // kept either way: it says what was wrong.
    let score = |rejects: &mut (dyn std::io::Write + Send)| {
        model::atomic::write_with(&args.out, |writer| match file.format {
            model::Format::Csv => {
                score_csv_with(&artifact, std::io::BufReader::new(&input), name, writer, &options, rejects)
            }
            model::Format::Parquet => {
                let source = ParquetSource::open(&file.path, name, &artifact.schema, model::LabelPolicy::Optional)?;
                score_source_with(&artifact, source, writer, &options, rejects)
            }
        })
    };
    let scored = args.skip.with_rejects(score)?;
    let summary = scored.map_err(|e| match e {
        e @ model::Error::Validation(_) => anyhow::Error::new(e).context("the data does not follow the model's schema"),
        e => anyhow::Error::new(e).context("cannot score the data"),
    })?;
    for (column, rows) in &summary.unseen_levels {
        eprintln!("warning: column `{column}`: {rows} rows have a level not seen in training (scored as unknown)");
        if output::on_github_actions() {
            println!(
                "::warning::{}",
                output::escape_data(&format!("column `{column}`: {rows} rows have a level not seen in training"))
            );
        }
    }
    let label = model::lifecycle::gate::LabelWords::of(&artifact.schema);
    if let Some(path) = &args.skip.skip_invalid {
        eprintln!("skipped {} invalid rows; each broken value is in {}", summary.skipped, path.display());
    }
    eprintln!(
        "scored {} rows of {} with {} (threshold {:.4}): {} predicted {} = {}; wrote {}",
        summary.rows,
        args.data.display(),
        model_name,
        artifact.threshold.value,
        summary.positives,
        label.name,
        label.positive,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
