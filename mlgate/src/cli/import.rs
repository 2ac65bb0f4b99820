//! `mlgate import`: an artifact from a model LightGBM or XGBoost trained and saved in its own
//! format, converted exactly, its threshold chosen and its reference measured on `--data`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use model::pipeline::import::{Library, Source};
use model::Artifact;
use xshell::Shell;

use crate::cli::context::{training_data, DataArgs};
use crate::exit::Exit;
use crate::output;

/// The flags of `mlgate import`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["lightgbm", "xgboost"])))]
pub struct Args {
    /// A LightGBM model saved in its text format (`booster.save_model("model.txt")`).
    #[arg(long, value_name = "MODEL.txt")]
    pub lightgbm: Option<PathBuf>,
    /// An XGBoost model saved in its JSON format (`model.save_model("model.json")`).
    #[arg(long, value_name = "MODEL.json")]
    pub xgboost: Option<PathBuf>,
    /// `--config` (the schema the model's features are mapped to, by name), and `--data`: a
    /// labelled CSV the threshold is chosen on and the drift reference measured on.
    #[command(flatten)]
    pub input: DataArgs,
    /// Folder for model.json and validation.json.
    #[arg(long, default_value = "target/model")]
    pub out: PathBuf,
}

impl Args {
    /// The library and the file, as the flags name them.
    fn source(&self) -> (Library, &Path) {
        match (&self.lightgbm, &self.xgboost) {
            (Some(path), _) => (Library::LightGbm, path),
            (None, Some(path)) => (Library::XgBoost, path),
            (None, None) => unreachable!("clap requires --lightgbm or --xgboost"),
        }
    }
}

/// Runs `mlgate import`. A model mlgate cannot convert exactly (another objective, several
/// classes, linear trees, features that do not match the schema) is refused: exit 1; a file
/// that is no model of the library, or unreadable data, is the user's to fix: exit 2.
pub fn run(sh: &Shell, args: Args) -> Result<ExitCode> {
    let started = Instant::now();
    let (library, model_path) = args.source();
    let model_path = model_path.to_path_buf();
    let bytes = std::fs::read(&model_path).with_context(|| format!("cannot read {}", model_path.display()))?;
    let (config_path, config, data_path) = args.input.clone().resolve()?;
    let (data, context) = training_data(sh, &config_path, &config, &data_path, &args.out)?;
    let name = model_path.display().to_string();
    let source = Source { library, path: &name, bytes: &bytes };
    let artifact = match model::pipeline::import::import(&config, &source, &data, &context) {
        Ok(artifact) => artifact,
        // The model is what it is (another objective, several classes, features the schema does
        // not have): no flag makes mlgate score it exactly. A refusal, exit 1.
        Err(e @ model::Error::ImportRefused { .. }) => {
            // The message names the file, the library and what was found.
            output::report_error(&anyhow::Error::new(e));
            return Ok(Exit::Refused.into());
        }
        Err(e) => return Err(e).context("cannot import the model"),
    };
    let out_path = args.out.join("model.json");
    artifact.save(&out_path).with_context(|| format!("cannot write {}", out_path.display()))?;
    print_summary(&artifact, &out_path);
    eprintln!("imported in {:.2} s", started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

fn print_summary(artifact: &Artifact, path: &Path) {
    let v = &artifact.validation;
    match &artifact.origin {
        Some(o) => {
            println!(
                "model      {} ({}, trained by {} {})",
                artifact.name,
                artifact.model.family().name(),
                o.library,
                o.library_version.as_deref().unwrap_or("(version not stated in the file)")
            );
            println!(
                "source     {} (sha256 {}): objective {}, {} trees",
                o.file,
                &o.sha256[..12],
                o.objective,
                o.trees
            );
        }
        None => println!("model      {} ({})", artifact.name, artifact.model.family().name()),
    }
    println!("artifact   {} (sha256 {})", path.display(), &artifact.checksum()[..12]);
    let l = &artifact.lineage;
    println!(
        "rows       {} in --data: {} staging rows set aside as [staging] says, the threshold chosen and the \
         validation metrics measured on the other {}",
        l.rows_total, l.rows_staging, l.rows_validation
    );
    println!("threshold  {:.4} (maximises {:?} on those rows)", artifact.threshold.value, artifact.threshold.objective);
    println!(
        "validation roc_auc {:.4}  f1 {:.4}  accuracy {:.4}  precision {:.4}  recall {:.4}  log_loss {:.4}",
        v.roc_auc, v.f1, v.accuracy, v.precision, v.recall, v.log_loss
    );
}
