//! `mlgate validate`: check a CSV against the configured schema and write the report.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use model::LabelPolicy;
use xshell::Shell;

use crate::cli::context::{load_data, write_validation, DataArgs};

/// The flags of `mlgate validate`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    input: DataArgs,
    /// Folder for validation.json and validation.md.
    #[arg(long, default_value = "target/validation")]
    out: PathBuf,
    /// Accept a file without the label column (data to score).
    #[arg(long)]
    unlabelled: bool,
}

/// Runs `mlgate validate`.
pub fn run(_sh: &Shell, args: Args) -> Result<ExitCode> {
    let (_, config, path) = args.input.resolve()?;
    let label = if args.unlabelled { LabelPolicy::Optional } else { LabelPolicy::Required };
    let data = load_data(&path, config.data.format, &config.schema, label, Some(&args.out))?;
    write_validation(&args.out, &data.report)?;
    println!(
        "{}: valid, {} rows, {} exact duplicates, sha256 {}",
        path.display(),
        data.len(),
        data.report.duplicate_rows,
        data.report.sha256
    );
    Ok(ExitCode::SUCCESS)
}
