//! `cargo xtask predict`: score a CSV with an artifact, one output row per input row, in order,
//! streamed in blocks scored on every core.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use model::Artifact;
use xshell::Shell;

use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// Model artifact (model.json written by `build`).
    #[arg(long)]
    model: PathBuf,
    /// CSV to score; the label column may be absent.
    #[arg(long)]
    data: PathBuf,
    /// Output CSV: columns `probability` and `prediction` (0 or 1).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(_sh: &Shell, args: Args) -> Result<ExitCode> {
    let artifact = Artifact::load(&args.model).context("cannot load the model")?;
    let input = std::fs::File::open(&args.data).with_context(|| format!("cannot read {}", args.data.display()))?;
    // Renamed into place only when every row was valid and scored: a failed run leaves no
    // half-written predictions.
    let summary = model::atomic::write_with(&args.out, |writer| {
        model::pipeline::scoring::score_csv(
            &artifact,
            std::io::BufReader::new(input),
            &args.data.display().to_string(),
            writer,
        )
    })
    .map_err(|e| match e {
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
    eprintln!(
        "scored {} rows of {} with {} (threshold {:.4}): {} predicted to purchase; wrote {}",
        summary.rows,
        args.data.display(),
        args.model.display(),
        artifact.threshold.value,
        summary.positives,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
