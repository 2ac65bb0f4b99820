//! `cargo xtask predict`: score a CSV with an artifact, one output row per input row, in order.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use model::{Artifact, LabelPolicy};
use xshell::Shell;

use crate::{context::load_data, output};

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
    let data = load_data(&args.data, &artifact.schema, LabelPolicy::Optional, None)?;
    let scores = artifact.score(&data).context("cannot score the data")?;
    let mut csv = String::with_capacity(scores.probabilities.len() * 24 + 32);
    csv.push_str("probability,prediction\n");
    let mut positives = 0usize;
    for &p in &scores.probabilities {
        let prediction = u8::from(p >= artifact.threshold.value);
        positives += usize::from(prediction);
        let _ = writeln!(csv, "{p},{prediction}");
    }
    output::write(&args.out, csv.as_bytes())?;
    for (column, rows) in &scores.unseen_levels {
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
        data.len(),
        args.data.display(),
        args.model.display(),
        artifact.threshold.value,
        positives,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
