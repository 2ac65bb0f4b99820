//! `cargo xtask gen-data`: write data/customers.csv from the seeded generator.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use model::data::generate::{customers_csv, DEFAULT_ROWS, DEFAULT_SEED};
use xshell::Shell;

#[derive(clap::Args)]
pub struct Args {
    /// Where to write.
    #[arg(long, default_value = "data/customers.csv")]
    out: PathBuf,
    /// Rows to draw (1 to 10,000,000: the file is built in memory).
    #[arg(long, default_value_t = DEFAULT_ROWS, value_parser = parse_rows)]
    rows: usize,
    /// Seed of the draw.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Only check that the file holds exactly what the generator writes.
    #[arg(long)]
    check: bool,
}

pub fn run(_sh: &Shell, args: Args) -> Result<ExitCode> {
    if args.check {
        let csv = customers_csv(args.rows, args.seed);
        let existing =
            std::fs::read_to_string(&args.out).with_context(|| format!("cannot read {}", args.out.display()))?;
        if existing != csv {
            bail!("{} differs from the generator's output; run `cargo xtask gen-data`", args.out.display());
        }
        println!("{} is up to date", args.out.display());
    } else {
        write_generated(&args.out, args.rows, args.seed)?;
        println!("wrote {} rows to {} (seed {})", args.rows, args.out.display(), args.seed);
    }
    Ok(ExitCode::SUCCESS)
}

/// A row count in 1..=10,000,000.
fn parse_rows(value: &str) -> std::result::Result<usize, String> {
    let rows: usize = value.parse().map_err(|e| format!("{e}"))?;
    if (1..=10_000_000).contains(&rows) {
        Ok(rows)
    } else {
        Err(format!("{rows} is not in 1..=10000000"))
    }
}

/// Writes the generated CSV of `rows` rows drawn with `seed` to `path` (what `cargo xtask gen-data
/// --rows N --seed SEED` writes) row by row, atomically: however large, never held in memory.
pub fn write_generated(path: &Path, rows: usize, seed: u64) -> Result<()> {
    model::atomic::write_with(path, |w| {
        model::data::generate::write_customers(w, rows, seed)
            .map_err(|source| model::error::Error::Io { path: path.to_path_buf(), source })
    })
    .with_context(|| format!("cannot write {}", path.display()))
}
