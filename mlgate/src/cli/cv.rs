//! `mlgate cv`: stratified k-fold cross-validation of the configured build, optionally
//! against a one-column rule, with the folds exported for other tools.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use model::data::dataset::ColumnValues;
use model::eval::metrics::Confusion;
use model::pipeline::crossval::{cross_validate, mean_std};
use model::{Dataset, LabelPolicy};
use xshell::Shell;

use crate::cli::context::{load_data, DataArgs};
use crate::output;

/// The flags of `mlgate cv`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    input: DataArgs,
    /// Number of folds (2 to 100).
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Seed of the fold assignment.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also score a one-column rule on each held-out fold, e.g. `spending>100`.
    #[arg(long)]
    rule: Option<String>,
    /// Write each fold's train and test rows as CSV into this folder (train_K.csv, test_K.csv).
    #[arg(long)]
    export: Option<PathBuf>,
    /// Write the per-fold results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

struct Rule {
    column: String,
    op: String,
    value: f64,
}

impl Rule {
    fn parse(text: &str) -> Result<Rule> {
        for op in [">=", "<=", ">", "<"] {
            if let Some((column, value)) = text.split_once(op) {
                let value: f64 =
                    value.trim().parse().with_context(|| format!("rule {text:?}: {value:?} is not a number"))?;
                return Ok(Rule { column: column.trim().to_string(), op: op.to_string(), value });
            }
        }
        bail!("rule {text:?}: expected COLUMN>VALUE (or >=, <, <=)")
    }

    fn predict(&self, data: &Dataset) -> Result<Vec<f64>> {
        let Some((_, ColumnValues::Number(values))) = data.features.iter().find(|(n, _)| *n == self.column) else {
            bail!("rule: `{}` is not a numeric feature column", self.column)
        };
        Ok(values
            .iter()
            .map(|x| {
                let hit = match self.op.as_str() {
                    ">=" => x >= self.value,
                    "<=" => x <= self.value,
                    ">" => x > self.value,
                    _ => x < self.value,
                };
                f64::from(u8::from(hit))
            })
            .collect())
    }
}

/// Runs `mlgate cv`.
pub fn run(_sh: &Shell, args: Args) -> Result<ExitCode> {
    let (_, config, path) = args.input.resolve()?;
    let data = load_data(&path, config.data.format, &config.schema, LabelPolicy::Required, None)?;
    let rule = args.rule.as_deref().map(Rule::parse).transpose()?;
    let cv = cross_validate(&config, &data, args.folds, args.seed).context("cross-validation failed")?;

    println!(
        "{}-fold stratified cross-validation of `{}` ({}) on {} ({} rows), fold seed {}",
        args.folds,
        config.name,
        config.model.family.name(),
        path.display(),
        data.len(),
        args.seed
    );
    println!("fold  roc_auc  avg_prec  f1@thr  thr     f1@0.5  accuracy  precision  recall  log_loss");
    for r in &cv.results {
        let t = &r.at_threshold;
        println!(
            "{:>4}  {:.4}   {:.4}    {:.4}  {:.3}  {:.4}  {:.4}    {:.4}     {:.4}  {:.4}",
            r.fold,
            t.roc_auc,
            t.average_precision,
            t.f1,
            t.threshold,
            r.at_half.f1,
            t.accuracy,
            t.precision,
            t.recall,
            t.log_loss
        );
    }
    let summary = |name: &str, f: &dyn Fn(&model::pipeline::crossval::FoldResult) -> f64| {
        let values: Vec<f64> = cv.results.iter().map(f).collect();
        let (m, s) = mean_std(&values);
        println!("mean {name:<18} {m:.4} ± {s:.4}");
    };
    summary("roc_auc", &|r| r.at_threshold.roc_auc);
    summary("average_precision", &|r| r.at_threshold.average_precision);
    summary("f1 (own threshold)", &|r| r.at_threshold.f1);
    summary("f1 (at 0.5)", &|r| r.at_half.f1);
    summary("accuracy", &|r| r.at_threshold.accuracy);
    summary("precision", &|r| r.at_threshold.precision);
    summary("recall", &|r| r.at_threshold.recall);

    if let Some(rule) = &rule {
        let labels = data.require_labels()?;
        let hits = rule.predict(&data)?;
        let mut f1s = Vec::new();
        let mut accs = Vec::new();
        for fold in 0..args.folds {
            let rows: Vec<usize> = (0..data.len()).filter(|&i| cv.assignment[i] == fold).collect();
            let y: Vec<bool> = rows.iter().map(|&i| labels[i]).collect();
            let s: Vec<f64> = rows.iter().map(|&i| hits[i]).collect();
            let c = Confusion::at(&y, &s, 0.5);
            f1s.push(c.f1());
            accs.push(c.accuracy());
        }
        let (f1, f1_sd) = mean_std(&f1s);
        let (acc, acc_sd) = mean_std(&accs);
        println!(
            "rule `{}{}{}` on the same folds: f1 {f1:.4} ± {f1_sd:.4}, accuracy {acc:.4} ± {acc_sd:.4}",
            rule.column, rule.op, rule.value
        );
    }
    if let Some(dir) = &args.export {
        export_folds(&path, config.schema.delimiter, &cv.assignment, args.folds, dir)?;
        println!("wrote the folds to {}", dir.display());
    }
    if let Some(json) = &args.json {
        output::write_json(json, &cv.results)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes train_K.csv and test_K.csv with the original header and rows, byte for byte.
fn export_folds(path: &Path, delimiter: char, assignment: &[usize], folds: usize, dir: &Path) -> Result<()> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter as u8)
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut records = reader.byte_records();
    let header = records.next().context("no header")?.context("cannot read the header")?;
    let rows: Vec<csv::ByteRecord> = records.collect::<std::result::Result<_, _>>().context("cannot read a row")?;
    if rows.len() != assignment.len() {
        bail!("{} rows read back, {} validated", rows.len(), assignment.len());
    }
    for fold in 0..folds {
        for (name, keep) in [("train", false), ("test", true)] {
            let mut w = csv::WriterBuilder::new().delimiter(delimiter as u8).from_writer(Vec::new());
            w.write_byte_record(&header)?;
            for (row, &f) in rows.iter().zip(assignment) {
                if (f == fold) == keep {
                    w.write_byte_record(row)?;
                }
            }
            let bytes = w.into_inner().context("cannot finish the csv")?;
            output::write(&dir.join(format!("{name}_{fold}.csv")), &bytes)?;
        }
    }
    Ok(())
}
