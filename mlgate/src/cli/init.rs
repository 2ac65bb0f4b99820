//! `mlgate init`: write a starting pipeline.toml from a CSV, its schema inferred from the data.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use model::data::infer::{infer, InferOptions, Inference, LabelChoice};
use model::data::schema::ColumnKind;
use model::pipeline::starter::starter_toml;
use model::PipelineConfig;
use xshell::Shell;

/// The flags of `mlgate init`.
#[derive(clap::Args)]
pub struct Args {
    /// The CSV to infer the schema from (read once, whole).
    #[arg(long)]
    data: PathBuf,
    /// The label column (default: the one column named label, target, class, outcome or y
    /// with two values; else none, and the file says what to fix).
    #[arg(long)]
    label: Option<String>,
    /// The configuration to write; an existing file is never replaced.
    #[arg(long, default_value = "pipeline.toml")]
    out: PathBuf,
    /// The model's name (default: the CSV's file name without its extension).
    #[arg(long)]
    name: Option<String>,
    /// Field delimiter of the CSV.
    #[arg(long, default_value_t = ',')]
    delimiter: char,
}

/// Runs `mlgate init`.
pub fn run(_sh: &Shell, args: Args) -> Result<ExitCode> {
    if args.out.symlink_metadata().is_ok() {
        bail!("{} exists: refusing to overwrite it (remove it, or write elsewhere with --out)", args.out.display());
    }
    let name = match args.name {
        Some(name) => name,
        None => args
            .data
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .context("--data names no file")?,
    };
    let file = File::open(&args.data).with_context(|| format!("cannot read {}", args.data.display()))?;
    let options = InferOptions { delimiter: args.delimiter, label: args.label };
    let inference = infer(BufReader::with_capacity(1 << 16, file), &args.data.display().to_string(), &options)
        .with_context(|| format!("cannot infer a schema from {}", args.data.display()))?;
    let data_path = path_from_config(&args.data, &args.out)?;
    let text = starter_toml(&name, &data_path, &inference);
    if inference.schema().is_some() {
        // What init writes must be what the pipeline reads: a failure here is init's bug.
        PipelineConfig::parse(&text, &args.out).context("the configuration written does not parse (a bug of init)")?;
    }
    write_new(&args.out, text.as_bytes())?;
    summarise(&args.out, &inference);
    Ok(ExitCode::SUCCESS)
}

/// The data file as the configuration names it: relative to the configuration's folder when
/// both are on one tree, else absolute; `/`-separated.
fn path_from_config(data: &Path, config: &Path) -> Result<String> {
    let data = std::fs::canonicalize(data).with_context(|| format!("cannot resolve {}", data.display()))?;
    let folder = match config.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let folder = std::fs::canonicalize(&folder)
        .with_context(|| format!("the folder {} of --out does not exist", folder.display()))?;
    let path = relative(&data, &folder).unwrap_or(data);
    Ok(path.to_string_lossy().replace('\\', "/"))
}

/// `to` relative to the folder `from`, both absolute; `None` when they share nothing but the
/// root (`/work/shared/x.csv` from `/tmp/a` reads better whole than as `../../work/shared/x.csv`).
fn relative(to: &Path, from: &Path) -> Option<PathBuf> {
    let (to, from): (Vec<Component>, Vec<Component>) = (to.components().collect(), from.components().collect());
    let common = to.iter().zip(&from).take_while(|(a, b)| a == b).count();
    let root_only = common == 0 || (common == 1 && matches!(to[0], Component::RootDir) && from.len() > 1);
    if root_only {
        return None;
    }
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for c in &to[common..] {
        path.push(c.as_os_str());
    }
    Some(path)
}

/// Writes a new file, failing when one appeared meanwhile (never replacing it); a file left
/// half written by a failure is removed.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    if let Err(e) = file.write_all(bytes).and_then(|()| file.sync_all()) {
        let _ = std::fs::remove_file(path);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// Says what was written on stdout, and what to check on stderr.
fn summarise(out: &Path, inference: &Inference) {
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for c in &inference.columns {
        let kind = c.column.kind.name();
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((kind, 1)),
        }
    }
    let counts: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!(
        "wrote {}: {} columns ({}) from {} rows",
        out.display(),
        inference.columns.len(),
        counts.join(", "),
        model::data::infer::thousands(inference.rows)
    );
    for c in &inference.columns {
        for check in &c.check {
            eprintln!("check: column `{}`: {check}", c.column.name);
        }
    }
    match &inference.label {
        LabelChoice::Given => {}
        LabelChoice::Named => {
            if let Some(label) = inference.columns.iter().find(|c| matches!(c.column.kind, ColumnKind::Label { .. })) {
                eprintln!(
                    "note: `{}` was taken for the label by its name; --label COL chooses another",
                    label.column.name
                );
            }
        }
        LabelChoice::Missing { candidates } => {
            eprintln!(
                "note: no label: pass --label COL, or set one column's kind to \"label\" in {} (see its FIXME){}",
                out.display(),
                if candidates.is_empty() {
                    String::new()
                } else {
                    format!("; columns with two values: {}", candidates.join(", "))
                }
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_path_walks_up_then_down() {
        let rel = |a: &str, b: &str| relative(Path::new(a), Path::new(b)).unwrap();
        assert_eq!(rel("/w/data/x.csv", "/w"), Path::new("data/x.csv"));
        assert_eq!(rel("/w/data/x.csv", "/w/configs"), Path::new("../data/x.csv"));
        assert_eq!(rel("/w/x.csv", "/w"), Path::new("x.csv"));
        assert_eq!(relative(Path::new("/x.csv"), Path::new("/a/b")), None, "only the root in common");
        assert_eq!(rel("/x.csv", "/"), Path::new("x.csv"));
    }
}
