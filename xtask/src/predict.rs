//! `cargo xtask predict`: score a CSV with an artifact, one output row per input row, in order,
//! streamed in blocks scored on every core.

use std::io::BufWriter;
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
    // Written beside the target and renamed into place only when every row was valid and
    // scored: a failed run leaves no half-written predictions.
    let dir = match args.out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        args.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    let scored = (|| -> Result<model::scoring::ScoreSummary> {
        let file = std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        let summary = model::scoring::score_csv(
            &artifact,
            std::io::BufReader::new(input),
            &args.data.display().to_string(),
            &mut writer,
        )
        .map_err(|e| match e {
            e @ model::Error::Validation(_) => {
                anyhow::Error::new(e).context("the data does not follow the model's schema")
            }
            e => anyhow::Error::new(e).context("cannot score the data"),
        })?;
        let file = writer
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        file.sync_all().with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &args.out).with_context(|| format!("cannot write {}", args.out.display()))?;
        Ok(summary)
    })();
    let summary = match scored {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
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
