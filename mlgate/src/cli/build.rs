//! `mlgate build`: validate the training data, train, write the artifact and the report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use model::Artifact;
use xshell::Shell;

use crate::cli::context::{training_data, DataArgs};

/// The flags of `mlgate build`.
#[derive(clap::Args)]
pub struct Args {
    /// `--config`, and `--data`: the training CSV.
    #[command(flatten)]
    pub input: DataArgs,
    /// Folder for model.json and validation.json.
    #[arg(long, default_value = "target/model")]
    pub out: PathBuf,
}

/// Runs `mlgate build`.
pub fn run(sh: &Shell, args: Args) -> Result<ExitCode> {
    let started = Instant::now();
    let (config_path, config, data_path) = args.input.resolve()?;
    let (data, context) = training_data(sh, &config_path, &config, &data_path, &args.out)?;
    // The data set is given up: the build releases it once the training rows are binned.
    let artifact = model::pipeline::build::build_owned(&config, data, &context).context("cannot build the model")?;
    let model_path = args.out.join("model.json");
    artifact.save(&model_path).with_context(|| format!("cannot write {}", model_path.display()))?;
    print_summary(&artifact, &model_path);
    eprintln!("built in {:.2} s", started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

fn print_summary(artifact: &Artifact, path: &Path) {
    let v = &artifact.validation;
    println!("model      {} ({})", artifact.name, artifact.model.family().name());
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
