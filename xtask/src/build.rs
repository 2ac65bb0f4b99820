//! `cargo xtask build`: validate the training data, train, write the artifact and the report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use model::train::BuildContext;
use model::{Artifact, LabelPolicy, PipelineConfig};
use xshell::{cmd, Shell};

use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// Pipeline configuration (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Training CSV; defaults to the configuration's `[data] path`.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Folder for model.json and validation.json.
    #[arg(long, default_value = "target/model")]
    out: PathBuf,
}

/// Loads a configuration, naming the file on error.
pub fn load_config(path: &Path) -> Result<PipelineConfig> {
    PipelineConfig::load(path).with_context(|| format!("cannot use configuration {}", path.display()))
}

/// The data file: the flag as given, else the configuration's path taken from the
/// configuration file's folder.
pub fn data_path(flag: Option<PathBuf>, config: &PipelineConfig, config_path: &Path) -> PathBuf {
    flag.unwrap_or_else(|| match config_path.parent() {
        Some(dir) if config.data.path.is_relative() => dir.join(&config.data.path),
        _ => config.data.path.clone(),
    })
}

/// Reads and validates a CSV; when validation fails and `report_dir` is given, the failed
/// report is still written there as validation.json / validation.md.
pub fn load_data(
    path: &Path,
    schema: &model::Schema,
    label: LabelPolicy,
    report_dir: Option<&Path>,
) -> Result<model::Dataset> {
    match model::load_csv(path, schema, label) {
        Ok(data) => Ok(data),
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

/// Writes validation.json and validation.md.
pub fn write_validation(dir: &Path, report: &model::ValidationReport) -> Result<()> {
    output::write_json(&dir.join("validation.json"), report)?;
    output::write(&dir.join("validation.md"), report.to_markdown().as_bytes())
}

/// The commit of the checkout, with `-dirty` when the tree has uncommitted changes.
pub fn git_commit(sh: &Shell) -> Option<String> {
    let head = cmd!(sh, "git rev-parse HEAD").quiet().ignore_stderr().read().ok()?;
    let dirty = cmd!(sh, "git status --porcelain --untracked-files=no")
        .quiet()
        .ignore_stderr()
        .read()
        .map(|s| !s.trim().is_empty())
        .unwrap_or(false);
    Some(if dirty { format!("{head}-dirty") } else { head })
}

/// Now, or `SOURCE_DATE_EPOCH` when set (reproducible builds), as RFC 3339.
pub fn now_rfc3339() -> String {
    let time = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(|secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .unwrap_or_else(std::time::SystemTime::now);
    humantime::format_rfc3339_seconds(time).to_string()
}

pub fn run(sh: &Shell, args: Args) -> Result<ExitCode> {
    let started = Instant::now();
    let config_path = crate::config_path(args.config);
    let config = load_config(&config_path)?;
    let data_path = data_path(args.data, &config, &config_path);
    let data = load_data(&data_path, &config.schema, LabelPolicy::Required, Some(&args.out))?;
    write_validation(&args.out, &data.report)?;
    eprintln!(
        "validated {}: {} rows, {} exact duplicates, sha256 {}",
        data_path.display(),
        data.len(),
        data.report.duplicate_rows,
        &data.report.sha256[..12]
    );
    let context = BuildContext {
        config_file: config_path.display().to_string(),
        git_commit: git_commit(sh),
        created_at: now_rfc3339(),
    };
    let artifact = model::train::build(&config, &data, &context).context("cannot build the model")?;
    let model_path = args.out.join("model.json");
    artifact.save(&model_path).with_context(|| format!("cannot write {}", model_path.display()))?;
    print_summary(&artifact, &model_path);
    eprintln!("built in {:.2} s", started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

fn print_summary(artifact: &Artifact, path: &Path) {
    let v = &artifact.validation;
    println!("model      {} ({})", artifact.name, artifact.model.family());
    println!("artifact   {} (sha256 {})", path.display(), &artifact.checksum()[..12]);
    println!(
        "rows       {} total: fitted on {}, validated on {}, final fit on {}",
        artifact.lineage.rows_total,
        artifact.lineage.rows_fit,
        artifact.lineage.rows_validation,
        artifact.lineage.rows_final_fit
    );
    println!(
        "threshold  {:.4} (maximises {:?} on the validation rows)",
        artifact.threshold.value, artifact.threshold.objective
    );
    println!(
        "validation roc_auc {:.4}  f1 {:.4}  accuracy {:.4}  precision {:.4}  recall {:.4}  log_loss {:.4}",
        v.roc_auc, v.f1, v.accuracy, v.precision, v.recall, v.log_loss
    );
}
