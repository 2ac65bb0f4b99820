//! `cargo xtask bench`: measure what users wait for — the whole gate against the same gate in
//! scikit-learn, throughput and memory at 100 k to 5 M rows, imported LightGBM and XGBoost models
//! against the libraries' own predict, and the build a runner pays — and
//! write BENCHMARKS.md. Runs the release binary; no test asserts a time.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::test::{clean_env, workspace_root};

#[derive(clap::Args)]
pub struct Args {
    /// Rows of the generated data sets.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000,5000000")]
    sizes: Vec<usize>,
    /// Runs of each measurement (the largest size gets at most 3).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Skip the cold build of mlgate (minutes).
    #[arg(long)]
    skip_build_cost: bool,
    /// Skip scikit-learn (and MLflow).
    #[arg(long)]
    skip_python: bool,
    /// Skip the serving section (`serve` against `mlflow models serve`).
    #[arg(long)]
    skip_serve: bool,
    /// Measure only the serving section and put it in place in the existing report.
    #[arg(long, conflicts_with = "skip_serve")]
    serve_only: bool,
    /// Skip the static-binary section (musl and mimalloc against glibc).
    #[arg(long)]
    skip_static: bool,
    /// Measure only the static-binary section and put it in place in the existing report.
    #[arg(long, conflicts_with_all = ["skip_static", "serve_only"])]
    static_only: bool,
    /// Skip the imported-model section (LightGBM and XGBoost against `mlgate predict`).
    #[arg(long)]
    skip_import: bool,
    /// Measure only the imported-model section and put it in place in the existing report.
    #[arg(long, conflicts_with_all = ["skip_import", "serve_only", "static_only"])]
    import_only: bool,
    /// Skip the training section (mlgate against LightGBM, XGBoost and HistGradientBoosting).
    #[arg(long)]
    skip_train: bool,
    /// Measure only the training section and put it in place in the existing report.
    #[arg(long, conflicts_with_all = ["skip_train", "serve_only", "static_only", "import_only"])]
    train_only: bool,
    /// Measure only the whole gate and the scale sections and put them in place in the existing report.
    #[arg(long, conflicts_with_all = ["serve_only", "static_only", "import_only", "train_only"])]
    gate_only: bool,
    /// Measure only the cold build and put its section in place in the existing report.
    #[arg(long, conflicts_with_all = ["skip_build_cost", "serve_only", "static_only", "import_only", "train_only", "gate_only"])]
    build_cost_only: bool,
    /// Rows of the generated files of the training section.
    #[arg(long, value_delimiter = ',', default_value = "1000000,5000000,10000000")]
    train_sizes: Vec<usize>,
    /// Runs of each learner from 5 M rows up in the training section, and of the Parquet
    /// comparison (at most `--runs`).
    #[arg(long, default_value_t = 3)]
    large_runs: usize,
    /// Rows built from a Parquet copy against the same CSV in the training section (0 skips).
    #[arg(long, default_value_t = 10_000_000)]
    parquet_rows: usize,
    /// Also build 50 M generated rows once in the training section (time and peak memory).
    #[arg(long)]
    huge: bool,
    /// Rows of the CSV the imported models score.
    #[arg(long, default_value_t = 1_000_000)]
    import_rows: usize,
    /// Seconds of each load run of the serving section.
    #[arg(long, default_value_t = 10.0)]
    serve_seconds: f64,
    /// Where to write the report.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
}

/// One timed run of a child process.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Peak resident memory, MB (MiB as the kernel counts).
    pub max_rss_mb: f64,
    /// User and system CPU seconds of the process and the children it waited for.
    pub cpu_seconds: f64,
}

/// Runs a command to completion and measures its wall time and peak resident memory.
pub fn measure(mut command: Command) -> Result<Sample> {
    command.stdout(std::process::Stdio::null());
    measure_with_stdout(command)
}

/// [`measure`] for a command whose standard output the caller has directed.
///
/// Linux starts a child's peak (`ru_maxrss`) at the peak of the memory it was started from,
/// which is this process's: a bench that once held a large file in memory would have every
/// later child measured at least that large. This process's peak is reset to its present
/// size first (`/proc/self/clear_refs`, `5`, Linux 4.0 and later; without it the bench stops
/// rather than write figures that may be its own): a child's figure is still at least what the
/// bench holds when it starts the child.
pub fn measure_with_stdout(mut command: Command) -> Result<Sample> {
    reset_own_peak()?;
    command.stderr(std::process::Stdio::piped());
    let started = Instant::now();
    let child = command.spawn().with_context(|| format!("cannot start {command:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, not yet waited for; the pointers are valid for the call.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = started.elapsed().as_secs_f64();
    if waited != pid {
        bail!("wait4 failed for {command:?}");
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let mut err = String::new();
        if let Some(mut e) = child.stderr {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        bail!("{command:?} failed: {}", err.lines().rev().take(5).collect::<Vec<_>>().join(" | "));
    }
    // ru_maxrss is in KiB on Linux.
    Ok(Sample { seconds, max_rss_mb: usage.ru_maxrss as f64 / 1024.0, cpu_seconds: cpu_seconds(&usage) })
}

/// Resets this process's peak resident set to its present size, so that the children it starts
/// next start from that (see [`measure_with_stdout`]), after giving back to the system the memory
/// its allocator keeps freed (the serving section's client threads leave tens of MB in glibc's
/// arenas, which would otherwise count in every later child's figure).
fn reset_own_peak() -> Result<()> {
    // SAFETY: malloc_trim only returns free memory of glibc's arenas to the system.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
    std::fs::write("/proc/self/clear_refs", "5")
        .context("cannot reset the bench's own peak memory (/proc/self/clear_refs), which its children's would include")
}

/// The user and system CPU seconds of a `getrusage` or `wait4` account.
pub fn cpu_seconds(usage: &libc::rusage) -> f64 {
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub rss_mb: f64,
}

pub fn summarise(samples: &[Sample]) -> Summary {
    let mut t: Vec<f64> = samples.iter().map(|s| s.seconds).collect();
    t.sort_by(f64::total_cmp);
    let median = if t.len() % 2 == 1 { t[t.len() / 2] } else { (t[t.len() / 2 - 1] + t[t.len() / 2]) / 2.0 };
    Summary { median, min: t[0], max: t[t.len() - 1], rss_mb: samples.iter().map(|s| s.max_rss_mb).fold(0.0, f64::max) }
}

pub fn fmt_time(s: &Summary) -> String {
    format!("{:.3} s ({:.3}–{:.3})", s.median, s.min, s.max)
}

fn xtask(bin: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.args(args);
    c
}

pub fn run(sh: &Shell, args: Args) -> Result<ExitCode> {
    let root = workspace_root(sh)?;
    sh.change_dir(&root);
    eprintln!("==> bench: building the release binary");
    clean_env(cmd!(sh, "cargo build --release --locked --package mlgate"))
        .run()
        .context("cannot build the release binary")?;
    let bin = root.join("target/release/mlgate");
    let work = root.join("target/bench");
    std::fs::create_dir_all(&work)?;
    if args.serve_only
        || args.static_only
        || args.import_only
        || args.train_only
        || args.gate_only
        || args.build_cost_only
    {
        // Each section measured, with its heading (the text it starts with) and the option.
        let mut sections: Vec<(&str, &str, String)> = Vec::new();
        let mut section = String::new();
        if args.train_only {
            train(sh, &bin, &root, &work, &args, &mut section)?;
            sections.push(("## Training: ", "--train-only", section));
        } else if args.import_only {
            let learners = crate::bench_import::learners_env(sh, &root, &work);
            let runs = args.runs.min(3);
            crate::bench_import::section(
                &bin,
                &root,
                &work,
                learners.as_deref(),
                args.import_rows,
                runs,
                &mut section,
            )?;
            sections.push(("## Imported models: ", "--import-only", section));
        } else if args.serve_only {
            let mlflow = if args.skip_python { None } else { mlflow_env(sh, &work) };
            crate::bench_serve::section(&bin, &root, &work, mlflow.as_deref(), args.serve_seconds, &mut section)?;
            sections.push(("## Serving: ", "--serve-only", section));
        } else if args.gate_only {
            let python = if args.skip_python { None } else { python_env(sh, &work) };
            gate(&bin, &root, &work, python.as_deref(), args.runs, &mut section)?;
            let mut scaled = String::new();
            scale(&bin, &root, &work, python.as_deref(), &args, &mut scaled)?;
            sections.push(("## The whole gate on the Online Shoppers data", "--gate-only", section));
            sections.push(("## Scale: ", "--gate-only", scaled));
        } else if args.build_cost_only {
            build_cost(&root, &work, &mut section)?;
            sections.push(("## What a runner pays to build the action", "--build-cost-only", section));
        } else {
            crate::bench_static::section(sh, &root, &work, &bin, args.runs, args.serve_seconds, &mut section)?;
            sections.push(("## Static binary: ", "--static-only", section));
        }
        let path = root.join(&args.out);
        let mut report = std::fs::read_to_string(&path).unwrap_or_default();
        let now = mlgate::clock::now_rfc3339();
        for (heading, option, section) in &sections {
            report = put_in_place(&report, heading, &stamped(section, option, &now));
            println!("wrote the section {heading:?} of {}", args.out.display());
        }
        mlgate::output::write(&path, report.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `cargo xtask bench` (release build of mlgate), {}. Times are wall-clock medians \
         with the range (min–max) of the runs; memory is the peak resident set of the process. \
         Regenerate with `cargo xtask bench` (options: `--sizes`, `--runs`, `--skip-build-cost`, \
         `--skip-python`, `--skip-static`, `--skip-import`, `--skip-train`; `--train-sizes`, `--large-runs`, `--parquet-rows`, `--huge` \
         for the training section; `--gate-only`, `--train-only`, `--serve-only`, `--import-only`, `--static-only` and `--build-cost-only` measure their sections alone).\n",
        mlgate::clock::now_rfc3339()
    );
    machine(sh, &mut md);

    let python = if args.skip_python { None } else { python_env(sh, &work) };
    gate(&bin, &root, &work, python.as_deref(), args.runs, &mut md)?;
    scale(&bin, &root, &work, python.as_deref(), &args, &mut md)?;
    if !args.skip_train {
        train(sh, &bin, &root, &work, &args, &mut md)?;
    }
    if !args.skip_serve {
        let mlflow = if args.skip_python { None } else { mlflow_env(sh, &work) };
        crate::bench_serve::section(&bin, &root, &work, mlflow.as_deref(), args.serve_seconds, &mut md)?;
    }
    if !args.skip_import && !args.skip_python {
        let learners = crate::bench_import::learners_env(sh, &root, &work);
        let runs = args.runs.min(3);
        crate::bench_import::section(&bin, &root, &work, learners.as_deref(), args.import_rows, runs, &mut md)?;
    }
    if !args.skip_static {
        crate::bench_static::section(sh, &root, &work, &bin, args.runs, args.serve_seconds, &mut md)?;
    }
    if !args.skip_build_cost {
        build_cost(&root, &work, &mut md)?;
    }
    // The hand-kept record of targets and of what changed, with its own measured figures.
    if let Ok(history) = std::fs::read_to_string(root.join("bench/history.md")) {
        md.push_str(&history);
    }
    mlgate::output::write(&root.join(&args.out), md.as_bytes())?;
    println!("wrote {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// The training section (`bench_train.rs`), with the learners' Python unless `--skip-python`.
fn train(sh: &Shell, bin: &Path, root: &Path, work: &Path, args: &Args, md: &mut String) -> Result<()> {
    let python = if args.skip_python { None } else { crate::bench_import::learners_env(sh, root, work) };
    let options = crate::bench_train::Options {
        sizes: &args.train_sizes,
        runs: args.runs,
        large_runs: args.large_runs,
        parquet_rows: args.parquet_rows,
        huge: args.huge,
    };
    crate::bench_train::section(bin, root, work, python.as_deref(), &options, md)
}

/// `section` with a line after its heading saying it was measured alone, with `option`, at `now`
/// (the report's own date is that of the last whole run).
fn stamped(section: &str, option: &str, now: &str) -> String {
    match section.split_once('\n') {
        Some((heading, rest)) => format!("{heading}\n\n*Measured alone: `cargo xtask bench {option}`, {now}.*\n{rest}"),
        None => section.to_string(),
    }
}

/// `old` with the section that starts with `heading` replaced by `section`, or `section` put
/// before the build cost's section (at the end when there is none).
fn put_in_place(old: &str, heading: &str, section: &str) -> String {
    match old.find(heading) {
        Some(at) => {
            let end = old[at + heading.len()..].find("\n## ").map_or(old.len(), |e| at + heading.len() + e + 1);
            format!("{}{section}{}", &old[..at], &old[end..])
        }
        None => match old.find("\n## What a runner pays") {
            Some(at) => format!("{}\n{section}{}", &old[..at], &old[at + 1..]),
            None => format!("{old}\n{section}"),
        },
    }
}

fn machine(sh: &Shell, md: &mut String) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<f64>().unwrap_or(0.0))
        })
        .map_or("?".to_string(), |kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0));
    let rustc = cmd!(sh, "rustc --version").read().unwrap_or_default();
    let _ = writeln!(md, "Machine: {cpu}, {cores} cores, {mem} of memory; {rustc}.\n");
}

/// A virtual environment with scikit-learn and pandas, made once under target/bench.
fn python_env(sh: &Shell, work: &Path) -> Option<PathBuf> {
    let venv = work.join("venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        eprintln!("==> bench: creating a Python environment with scikit-learn and pandas");
        let ok = cmd!(sh, "python3 -m venv {venv}").run().is_ok()
            && cmd!(sh, "{python} -m pip install --quiet scikit-learn pandas").run().is_ok();
        if !ok {
            eprintln!("warning: no Python environment; scikit-learn is skipped");
            return None;
        }
    }
    Some(python)
}

/// A virtual environment with MLflow, scikit-learn and pandas, made once under target/bench.
fn mlflow_env(sh: &Shell, work: &Path) -> Option<PathBuf> {
    let venv = work.join("mlflow-venv");
    let python = venv.join("bin/python");
    if !venv.join("bin/mlflow").exists() {
        eprintln!("==> bench: creating a Python environment with MLflow (minutes, once)");
        let ok = cmd!(sh, "python3 -m venv {venv}").run().is_ok()
            && cmd!(sh, "{python} -m pip install --quiet --disable-pip-version-check mlflow scikit-learn pandas")
                .run()
                .is_ok();
        if !ok {
            eprintln!("warning: no MLflow environment; MLflow is skipped");
            return None;
        }
    }
    Some(python)
}

fn gate(bin: &Path, root: &Path, work: &Path, python: Option<&Path>, runs: usize, md: &mut String) -> Result<()> {
    let train = root.join("../shared/data/online-shoppers/train.csv");
    let _ = writeln!(md, "## The whole gate on the Online Shoppers data\n");
    if !train.is_file() {
        let _ = writeln!(md, "Skipped: `{}` is absent.\n", train.display());
        return Ok(());
    }
    let config = root.join("configs/online-shoppers.toml");
    let (train_s, config_s) = (train.to_str().unwrap(), config.to_str().unwrap());
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for run in 0..runs {
        eprintln!("==> bench: gate run {}/{runs}", run + 1);
        let dir = work.join(format!("gate{run}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let d = dir.to_str().unwrap();
        // Build then acceptance, as one user-visible step: load, validate, train, evaluate, report.
        let mut c = Command::new("sh");
        c.arg("-c").arg(
            "\"$0\" build --config \"$1\" --data \"$2\" --out \"$3/model\" && \"$0\" acceptance --config \"$1\" --model \"$3/model/model.json\" --data \"$2\" --registry \"$3/registry\" --out \"$3/acceptance\"",
        )
        .args([bin.to_str().unwrap(), config_s, train_s, d]);
        ours.push(measure(c)?);
        if let Some(py) = python {
            let mut c = Command::new(py);
            c.arg(root.join("../shared/anchors/sklearn_gate.py")).arg(&train).arg(dir.join("python"));
            theirs.push(measure(c)?);
        }
    }
    let o = summarise(&ours);
    let _ = writeln!(md, "| gate | time | peak memory |\n|---|---|---:|");
    let _ = writeln!(
        md,
        "| mlgate: `build` + `acceptance` (GBDT, 2 fits of 300 trees, bootstrap-ready report) | {} | {:.0} MB |",
        fmt_time(&o),
        o.rss_mb
    );
    if !theirs.is_empty() {
        let p = summarise(&theirs);
        let _ = writeln!(
            md,
            "| Python: `sklearn_gate.py` (pandas + HistGradientBoosting, 1 fit) | {} | {:.0} MB |",
            fmt_time(&p),
            p.rss_mb
        );
        let _ = writeln!(
            md,
            "\n**mlgate is {:.1}× faster** (ratio of medians, {runs} runs each, alternating).\n",
            p.median / o.median
        );
    }
    let _ = writeln!(
        md,
        "Commands: `target/release/mlgate build --config configs/online-shoppers.toml --data TRAIN --out D/model && \
         target/release/mlgate acceptance --config configs/online-shoppers.toml --model D/model/model.json --data TRAIN \
         --registry D/registry --out D/acceptance` against `python ../shared/anchors/sklearn_gate.py TRAIN D/python` \
         (TRAIN = `../shared/data/online-shoppers/train.csv`, a fresh D each run).\n"
    );
    Ok(())
}

fn scale(bin: &Path, root: &Path, work: &Path, python: Option<&Path>, args: &Args, md: &mut String) -> Result<()> {
    let _ = writeln!(md, "## Scale: generated customers, default schema\n");
    let _ = writeln!(
        md,
        "Files written by `cargo xtask gen-data --rows N --seed 1`; configuration `pipeline.toml` with its data path \
         replaced, for each model family. `build` is validate + split + both fits + threshold + drift reference + artifact. \
         `predict` is validate + encode + score + write the output CSV.\n"
    );
    let _ = writeln!(md, "| rows | CSV | step | time | throughput | peak memory |\n|---:|---:|---|---|---:|---:|");
    let mut python_rows = String::new();
    let base = std::fs::read_to_string(root.join("pipeline.toml"))?;
    for &rows in &args.sizes {
        let csv = work.join(format!("customers_{rows}.csv"));
        if !csv.exists() {
            eprintln!("==> bench: generating {rows} rows");
            // What `cargo xtask gen-data --rows N --seed 1` writes (the mlgate binary has no gen-data).
            crate::gen_data::write_generated(&csv, rows, 1)?;
        }
        let mb = std::fs::metadata(&csv)?.len() as f64 / 1e6;
        let runs = if rows >= 5_000_000 { args.runs.min(3) } else { args.runs };
        let mut configs = Vec::new();
        for family in ["logistic_regression", "gradient_boosting"] {
            let text = base
                .replace("path = \"data/customers.csv\"", &format!("path = {:?}", csv.display().to_string()))
                .replace("family = \"logistic_regression\"", &format!("family = \"{family}\""));
            let path = work.join(format!("bench_{family}.toml"));
            std::fs::write(&path, text)?;
            configs.push((family, path));
        }
        let row = |md: &mut String, step: &str, s: &Summary, throughput: String| {
            let _ =
                writeln!(md, "| {rows} | {mb:.0} MB | {step} | {} | {throughput} | {:.0} MB |", fmt_time(s), s.rss_mb);
        };
        eprintln!("==> bench: {rows} rows: validate");
        let cfg = configs[0].1.to_str().unwrap().to_string();
        let out = work.join("out");
        let out_s = out.to_str().unwrap().to_string();
        let samples: Vec<Sample> = (0..runs)
            .map(|_| measure(xtask(bin, &["validate", "--config", &cfg, "--out", &out_s])))
            .collect::<Result<_>>()?;
        let s = summarise(&samples);
        row(md, "load + validate", &s, format!("{:.0} MB/s", mb / s.median));
        for (family, config) in &configs {
            eprintln!("==> bench: {rows} rows: build {family}");
            let model_dir = work.join(format!("model_{family}"));
            let c = config.to_str().unwrap();
            let m = model_dir.to_str().unwrap();
            let samples: Vec<Sample> =
                (0..runs).map(|_| measure(xtask(bin, &["build", "--config", c, "--out", m]))).collect::<Result<_>>()?;
            let s = summarise(&samples);
            row(md, &format!("build, {family}"), &s, format!("{:.0} rows/s", rows as f64 / s.median));
            eprintln!("==> bench: {rows} rows: predict {family}");
            let model = model_dir.join("model.json");
            let pred = work.join("predictions.csv");
            let samples: Vec<Sample> = (0..runs)
                .map(|_| {
                    measure(xtask(
                        bin,
                        &[
                            "predict",
                            "--model",
                            model.to_str().unwrap(),
                            "--data",
                            csv.to_str().unwrap(),
                            "--out",
                            pred.to_str().unwrap(),
                        ],
                    ))
                })
                .collect::<Result<_>>()?;
            let s = summarise(&samples);
            row(
                md,
                &format!("predict, {family}"),
                &s,
                format!("{:.0} MB/s, {:.2} M rows/s", mb / s.median, rows as f64 / s.median / 1e6),
            );
        }
        if let Some(py) = python {
            eprintln!("==> bench: {rows} rows: scikit-learn");
            let mut c = Command::new(py);
            c.arg(root.join("bench/sklearn_scale.py")).arg(&csv);
            c.stdout(std::process::Stdio::piped());
            let started = Instant::now();
            let output = c.output().context("cannot run bench/sklearn_scale.py")?;
            let wall = started.elapsed();
            if output.status.success() {
                let v: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
                let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
                let _ = writeln!(
                    python_rows,
                    "| {rows} | {:.2} s ({:.0} MB/s) | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.0} s |",
                    f("load_s"),
                    mb / f("load_s"),
                    f("logistic_fit_s"),
                    f("logistic_predict_s"),
                    f("hist_gb_fit_s"),
                    f("hist_gb_predict_s"),
                    wall.as_secs_f64()
                );
            } else {
                let _ = writeln!(
                    python_rows,
                    "| {rows} | failed: {} | | | | | |",
                    String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("")
                );
            }
        }
    }
    if !python_rows.is_empty() {
        let _ = writeln!(
            md,
            "\nscikit-learn on the same files (`bench/sklearn_scale.py`, one run each; pandas `read_csv`, then \
             LogisticRegression and HistGradientBoosting with the same hyper-parameters, each fitted on every row once \
             and predicting every row):\n"
        );
        let _ = writeln!(md, "| rows | load | logistic fit | logistic predict | HGB fit | HGB predict | whole script |\n|---:|---|---|---|---|---|---|");
        md.push_str(&python_rows);
    }
    md.push('\n');
    Ok(())
}

fn build_cost(root: &Path, work: &Path, md: &mut String) -> Result<()> {
    let _ = writeln!(md, "## What a runner pays to build the action\n");
    let target = work.join("cold-target");
    let _ = std::fs::remove_dir_all(&target);
    eprintln!("==> bench: cold release build of mlgate (minutes)");
    let before = crate::bench_train::load_average();
    let timed_build = |what: &str, timings: bool| -> Result<Sample> {
        let mut c = Command::new("cargo");
        c.current_dir(root)
            .args(["build", "--release", "--locked", "--package", "mlgate", "--target-dir"])
            .arg(&target);
        if timings {
            c.arg("--timings");
        }
        for key in crate::nested_cargo::inherited_cargo_variables() {
            c.env_remove(key);
        }
        measure(c).with_context(|| format!("{what} failed"))
    };
    let cold = timed_build("cold build", true)?;
    let units = std::fs::read_to_string(target.join("cargo-timings/cargo-timing.html"))
        .ok()
        .and_then(|html| longest_units(&html));
    let main_rs = root.join("mlgate/src/main.rs");
    let text = std::fs::read(&main_rs)?;
    std::fs::write(&main_rs, &text)?; // touch
    let warm = timed_build("rebuild", false)?;
    let _ = std::fs::remove_dir_all(&target);
    let _ = writeln!(
        md,
        "| build | time | CPU |\n|---|---:|---:|\n| cold `cargo build --release --package mlgate` (empty target folder, crates already downloaded) | {:.0} s | {:.0} s |\n| rebuild after touching `mlgate/src/main.rs` | {:.0} s | {:.0} s |\n",
        cold.seconds, cold.cpu_seconds, warm.seconds, warm.cpu_seconds
    );
    let _ = writeln!(
        md,
        "One run each (a cold build takes minutes); `--skip-build-cost` leaves this out. Load average (1 / 5 / 15 min): \
         {before} before, {} after: the build's CPU seconds are far less disturbed by other work than its wall time.\n",
        crate::bench_train::load_average()
    );
    if let Some(units) = units {
        let _ = writeln!(md, "{units}\n");
    }
    let _ = writeln!(md, "{}\n", cold_build_target(cold, crate::bench_serve::cores()));
    Ok(())
}

/// Issue 25's target for the cold build (at most 120 s on this machine), with the gap and its
/// measured reason when missed: CPU-seconds spread over every core are the least a build can take.
fn cold_build_target(cold: Sample, cores: usize) -> String {
    let least = cold.cpu_seconds / cores.max(1) as f64;
    let verdict = if cold.seconds <= 120.0 {
        "met".to_string()
    } else {
        format!(
            "**missed** (gap: {:.0} s; why: the build used {:.0} CPU-seconds, and on {cores} cores that is at least \
             {least:.0} s in whatever order the crates compile{})",
            cold.seconds - 120.0,
            cold.cpu_seconds,
            if least > 120.0 {
                ": only less work to compile would bring it under 120 s".to_string()
            } else {
                format!("; the other {:.0} s went to compiling fewer crates at once than cores", cold.seconds - least)
            }
        )
    };
    format!("Issue 25's target, a cold build in at most 120 s: {:.0} s — {verdict}.", cold.seconds)
}

/// What `cargo build --timings` says of a cold build: the crates that took longest, and how long
/// fewer than two crates were compiling (when that is short, the build is bound by CPU, and only
/// less work makes it faster, not another order).
fn longest_units(html: &str) -> Option<String> {
    let start = html.find("const UNIT_DATA = ")? + "const UNIT_DATA = ".len();
    let end = start + html[start..].find(";\n")?;
    let units: Vec<serde_json::Value> = serde_json::from_str(&html[start..end]).ok()?;
    let span = |u: &serde_json::Value| (u["start"].as_f64().unwrap_or(0.0), u["duration"].as_f64().unwrap_or(0.0));
    let wall = units.iter().map(|u| span(u).0 + span(u).1).fold(0.0, f64::max);
    let total: f64 = units.iter().map(|u| span(u).1).sum();
    let mut alone = 0.0;
    let mut t = 0.0;
    while t < wall {
        if units.iter().filter(|u| (span(u).0..span(u).0 + span(u).1).contains(&t)).count() < 2 {
            alone += 0.5;
        }
        t += 0.5;
    }
    let mut sorted: Vec<&serde_json::Value> = units.iter().collect();
    sorted.sort_by(|a, b| span(b).1.total_cmp(&span(a).1));
    let longest: Vec<String> = sorted
        .iter()
        .take(6)
        .map(|u| {
            let (from, took) = span(u);
            format!("{} {:.0} s (from {:.0} s)", u["name"].as_str().unwrap_or("?"), took, from)
        })
        .collect();
    Some(format!(
        "From `--timings`: {} compilations, {total:.0} s of compiling in {wall:.0} s; fewer than two at once for \
         {alone:.0} s. Longest: {}.",
        units.len(),
        longest.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timings_report_gives_the_longest_crates_and_the_time_fewer_than_two_ran() {
        // The shape `cargo build --timings` writes: the units as a JSON array in a script.
        let html = "<script>\nconst UNIT_DATA = [\
            {\"i\":0,\"name\":\"parquet\",\"start\":0.0,\"duration\":25.5},\
            {\"i\":1,\"name\":\"model\",\"start\":0.0,\"duration\":51.2},\
            {\"i\":2,\"name\":\"mlgate\",\"start\":51.2,\"duration\":10.0}];\nconst CONCURRENCY_DATA = {};\n</script>";
        let text = longest_units(html).unwrap();
        assert!(text.starts_with("From `--timings`: 3 compilations, 87 s of compiling in 61 s"), "{text}");
        // Two units run together for 25.5 s; one alone from 25.5 s to 61.2 s.
        assert!(text.contains("fewer than two at once for 36 s"), "{text}");
        assert!(
            text.contains("Longest: model 51 s (from 0 s), parquet 26 s (from 0 s), mlgate 10 s (from 51 s)."),
            "{text}"
        );
        assert_eq!(longest_units("<html>no timings</html>"), None);
    }

    #[test]
    fn a_section_measured_alone_replaces_its_old_self_and_says_when() {
        let old = "# Benchmarks\n\n## Scale: old\n\nold table\n\n## What a runner pays to build the action\n\nold build\n\n## Targets and what changed\n\nhistory\n";
        let scale = stamped("## Scale: new\n\nnew table\n\n", "--gate-only", "2026-12-06T05:30:00Z");
        assert_eq!(
            scale,
            "## Scale: new\n\n*Measured alone: `cargo xtask bench --gate-only`, 2026-12-06T05:30:00Z.*\n\nnew table\n\n"
        );
        let built = stamped("## What a runner pays to build the action\n\nnew build\n\n", "--build-cost-only", "now");
        let report =
            put_in_place(&put_in_place(old, "## Scale: ", &scale), "## What a runner pays to build the action", &built);
        assert!(!report.contains("old table") && !report.contains("old build"), "{report}");
        assert!(
            report.contains("new table")
                && report.contains("new build")
                && report.ends_with("## Targets and what changed\n\nhistory\n"),
            "{report}"
        );
        assert_eq!(report.matches("## ").count(), 3, "{report}");
    }

    #[test]
    fn the_cold_build_target_says_why_it_is_missed() {
        let build = |seconds, cpu_seconds| Sample { seconds, max_rss_mb: 0.0, cpu_seconds };
        assert_eq!(
            cold_build_target(build(100.0, 190.0), 2),
            "Issue 25's target, a cold build in at most 120 s: 100 s — met."
        );
        let bound = cold_build_target(build(140.0, 270.0), 2);
        assert!(bound.contains("**missed** (gap: 20 s; why: the build used 270 CPU-seconds"), "{bound}");
        assert!(bound.contains("at least 135 s in whatever order"), "{bound}");
        assert!(bound.contains("only less work to compile"), "{bound}");
        let idle = cold_build_target(build(150.0, 200.0), 2);
        assert!(idle.contains("at least 100 s") && idle.contains("the other 50 s went to compiling fewer"), "{idle}");
    }

    #[test]
    fn a_measured_child_reports_its_cpu_and_memory_and_a_failing_one_its_error() {
        let mut busy = Command::new("sh");
        busy.args(["-c", "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done"]);
        let sample = measure(busy).unwrap();
        assert!(sample.cpu_seconds > 0.0 && sample.max_rss_mb > 0.0);
        let mut failing = Command::new("sh");
        failing.args(["-c", "echo the reason >&2; exit 3"]);
        let err = measure(failing).unwrap_err().to_string();
        assert!(err.contains("the reason"), "{err}");
    }

    /// Held by the tests that measure memory: each one's held memory would be the other's floor.
    static MEMORY_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_child_is_measured_from_its_own_peak_not_from_the_bench_s() {
        let _one_at_a_time = MEMORY_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        // The bench once held 300 MB (as it did a generated file before it streamed them).
        let held = vec![1u8; 300 << 20];
        assert_eq!(held.iter().step_by(4096).map(|&b| b as usize).sum::<usize>(), (300 << 20) / 4096);
        drop(held);
        let sample = measure(Command::new("true")).unwrap();
        assert!(sample.max_rss_mb < 100.0, "`true` measured at {} MB", sample.max_rss_mb);
    }

    #[test]
    fn a_child_is_measured_without_the_memory_the_bench_freed_but_its_allocator_kept() {
        let _one_at_a_time = MEMORY_TESTS.lock().unwrap_or_else(|e| e.into_inner());
        // Small blocks come from the allocator's arenas, and freed ones stay there while a
        // later block is live; the serving section's client left such memory behind.
        let blocks: Vec<Box<[u8]>> = (0..150_000).map(|i| vec![i as u8; 1024].into_boxed_slice()).collect();
        let live = vec![7u8; 1024];
        assert_eq!(blocks.iter().map(|b| b[0] as usize).sum::<usize>() % 256, (0..150_000usize).sum::<usize>() % 256);
        drop(blocks);
        let sample = measure(Command::new("true")).unwrap();
        assert!(sample.max_rss_mb < 100.0, "`true` measured at {} MB", sample.max_rss_mb);
        assert_eq!(live[0], 7);
    }

    #[test]
    fn a_generated_file_holds_what_the_generator_writes_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("customers.csv");
        crate::gen_data::write_generated(&path, 2_500, 7).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), model::data::generate::customers_csv(2_500, 7));
    }
}
