//! The imported-model section of `cargo xtask bench`: a LightGBM and an XGBoost model (each
//! library's default size) trained on generated customers, imported by `mlgate import`, then the
//! same CSV scored by `mlgate predict` and by the library's own predict as its users run it —
//! pandas reading the CSV, the library predicting on every core, pandas writing the output.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::bench::{fmt_time, measure, measure_with_stdout, summarise};

/// The Python with LightGBM, XGBoost, scikit-learn, pandas and pyarrow: `.ci/learners` when
/// `.ci/run` made it, else an environment of the same pinned packages made once under target/bench.
pub fn learners_env(sh: &Shell, root: &Path, work: &Path) -> Option<PathBuf> {
    let ci = root.join(".ci/learners/bin/python");
    if ci.is_file() {
        return Some(ci);
    }
    let venv = work.join("learners-venv");
    let python = venv.join("bin/python");
    if !venv.join(".installed-2").exists() {
        eprintln!("==> bench: creating a Python environment with LightGBM and XGBoost");
        let ok = cmd!(sh, "python3 -m venv {venv}").run().is_ok()
            && cmd!(
                sh,
                "{python} -m pip install --quiet --disable-pip-version-check lightgbm==4.7.0 xgboost-cpu==3.2.0 pandas==3.1.1 numpy==2.4.6 scikit-learn==1.9.1 pyarrow==26.0.1"
            )
            .run()
            .is_ok()
            && std::fs::write(venv.join(".installed-2"), b"").is_ok();
        if !ok {
            eprintln!("warning: no LightGBM/XGBoost environment; the imported-model section is skipped");
            return None;
        }
    }
    Some(python)
}

/// Writes the section: `rows` scored, `runs` runs of each side.
pub fn section(
    bin: &Path,
    root: &Path,
    work: &Path,
    python: Option<&Path>,
    rows: usize,
    runs: usize,
    md: &mut String,
) -> Result<()> {
    let _ = writeln!(md, "## Imported models: `mlgate predict` against the libraries' own predict\n");
    let Some(python) = python else {
        let _ = writeln!(md, "Skipped: no Python environment with LightGBM and XGBoost.\n");
        return Ok(());
    };
    let script = root.join("bench/learners_predict.py");
    let csv = work.join(format!("customers_{rows}.csv"));
    if !csv.exists() {
        crate::gen_data::write_generated(&csv, rows, 1)?;
    }
    let train = work.join("import_train.csv");
    crate::gen_data::write_generated(&train, 50_000, 2)?;
    let base = std::fs::read_to_string(root.join("pipeline.toml"))?;
    let config = work.join("bench_import.toml");
    std::fs::write(
        &config,
        base.replace("path = \"data/customers.csv\"", &format!("path = {:?}", train.display().to_string())),
    )?;
    let mb = std::fs::metadata(&csv)?.len() as f64 / 1e6;
    // The machine may be shared: the load it had says how far the times are its own.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .map_or(String::new(), |l| format!(" The load average (1 min) was {l} when the section began."));
    let _ = writeln!(
        md,
        "Each library's classifier at its default size (100 trees; LightGBM 31 leaves, XGBoost depth 6) trained \
         on 50,000 generated customers (`pipeline.toml`'s schema: two categorical columns as pandas categories), \
         saved in its own format and imported with `mlgate import`; then the same {rows}-row CSV ({mb:.0} MB, \
         `customers_csv({rows}, 1)`) scored to an output CSV of probability and decision. The library's side is \
         `bench/learners_predict.py predict`: pandas `read_csv` (categories and booleans typed while reading), \
         the library's predict on every core, pandas `to_csv` — the whole process timed, as mlgate's is. \
         {runs} runs each, the two scorers alternately; `cargo xtask bench --import-only` measures this \
         section alone.{load}\n"
    );
    let _ = writeln!(
        md,
        "| model | scorer | time | peak memory | read / predict / write (library's fastest run) | mlgate's speed-up: whole process / read + predict + write alone |\n|---|---|---|---:|---|---:|"
    );
    let setup = Setup { bin, python, script: &script, config: &config, train: &train, csv: &csv, work, runs };
    for (library, flag, file) in [("lightgbm", "--lightgbm", "model.txt"), ("xgboost", "--xgboost", "model.json")] {
        let name = if library == "lightgbm" { "LightGBM" } else { "XGBoost" };
        match compare(&setup, library, flag, file) {
            Ok(rows) => md.push_str(&rows.replace("NAME", name)),
            Err(e) => {
                eprintln!("warning: imported {library}: {e:#}");
                let _ = writeln!(md, "| {name} | failed: {} | | | | |", format!("{e:#}").replace('|', "/"));
            }
        }
    }
    md.push('\n');
    Ok(())
}

/// What every library's comparison uses.
struct Setup<'a> {
    bin: &'a Path,
    python: &'a Path,
    script: &'a Path,
    config: &'a Path,
    train: &'a Path,
    csv: &'a Path,
    work: &'a Path,
    runs: usize,
}

fn s(p: &Path) -> String {
    p.to_str().expect("paths under the workspace are UTF-8").to_string()
}

/// Trains `library`'s model, imports it, and times both scorers: the two table rows (`NAME` for
/// the library's name).
fn compare(setup: &Setup<'_>, library: &str, flag: &str, file: &str) -> Result<String> {
    let Setup { bin, python, script, config, train, csv, work, runs } = *setup;
    eprintln!("==> bench: imported {library}: training");
    let model_path = work.join(format!("import_{library}_{file}"));
    let out = Command::new(python)
        .arg(script)
        .args(["train", library, &s(config), &s(train), &s(&model_path)])
        .output()
        .context("cannot run bench/learners_predict.py")?;
    if !out.status.success() {
        bail!("training {library} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let imported = work.join(format!("imported_{library}"));
    let mut import = Command::new(bin);
    import.args(["import", flag, &s(&model_path), "--config", &s(config), "--out", &s(&imported)]);
    measure(import).with_context(|| format!("mlgate import of the {library} model"))?;
    let artifact = imported.join("model.json");
    let threshold = model::Artifact::load(&artifact)?.threshold.value;
    let predictions = work.join("import_predictions.csv");

    // The two scorers alternate (mlgate, the library, mlgate, …), so that a change in the
    // machine's load between runs falls on both alike.
    eprintln!("==> bench: imported {library}: mlgate predict and {library}'s predict, alternately");
    let timings = work.join("import_phases.json");
    let mut phases = Vec::new();
    let (mut ours, mut theirs) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        let mut c = Command::new(bin);
        c.args(["predict", "--model", &s(&artifact), "--data", &s(csv), "--out", &s(&predictions)]);
        ours.push(measure(c)?);
        let mut c = Command::new(python);
        c.arg(script).args([
            "predict",
            library,
            &s(config),
            &s(&model_path),
            &s(csv),
            &s(&predictions),
            &threshold.to_string(),
        ]);
        // The phases the script prints go to a file.
        c.stdout(std::fs::File::create(&timings)?);
        theirs.push(measure_with_stdout(c)?);
        let text = std::fs::read_to_string(&timings).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            phases.push((f("read_s"), f("predict_s"), f("write_s")));
        }
    }
    let _ = std::fs::remove_file(&predictions);
    let (ours, theirs) = (summarise(&ours), summarise(&theirs));
    let fastest = phases.iter().min_by(|a, b| (a.0 + a.1 + a.2).total_cmp(&(b.0 + b.1 + b.2)));
    let phase = fastest.map_or("?".into(), |(r, p, w)| format!("{r:.2} / {p:.2} / {w:.2} s"));
    // Against the whole process (what a job waits for), and against the library's read, predict
    // and write alone (without starting Python and importing the libraries).
    let alone = fastest.map_or("?".into(), |(r, p, w)| format!("{:.1}×", (r + p + w) / ours.min));
    let mut rows = String::new();
    let _ = writeln!(
        rows,
        "| NAME | `mlgate predict` (imported) | {} | {:.0} MB | | {:.1}× / {alone} |",
        fmt_time(&ours),
        ours.rss_mb,
        theirs.median / ours.median
    );
    let _ =
        writeln!(rows, "| NAME | {library} + pandas | {} | {:.0} MB | {phase} | |", fmt_time(&theirs), theirs.rss_mb);
    Ok(rows)
}
