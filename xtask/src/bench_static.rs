//! The static-binary section of `cargo xtask bench`: the Linux release binary built for musl
//! (statically linked, mimalloc as its allocator), as the release workflow ships it, against the
//! glibc build of the same sources — `build`, `predict` and `serve`, the two binaries
//! alternating (A B A B) in one run, compared by the ratio of their medians.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Result};
use xshell::{cmd, Shell};

use crate::bench::{fmt_time, measure, summarise, Sample, Summary};
use crate::bench_serve::{free_port, load, records, wait_until_answering, Server};
use crate::test::clean_env;

/// Rows of the generated file that `build` and `predict` run on.
const ROWS: usize = 1_000_000;

/// The musl target of this machine's architecture, when it is Linux.
fn musl_target() -> Option<&'static str> {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => Some("x86_64-unknown-linux-musl"),
        ("linux", "aarch64") => Some("aarch64-unknown-linux-musl"),
        _ => None,
    }
}

/// One measure of both binaries: glibc's samples, then musl's.
struct Pair {
    what: String,
    glibc: Vec<Sample>,
    musl: Vec<Sample>,
}

/// The whole section, appended to `md`; `glibc` is the release binary already built.
pub fn section(
    sh: &Shell,
    root: &Path,
    work: &Path,
    glibc: &Path,
    runs: usize,
    serve_seconds: f64,
    md: &mut String,
) -> Result<()> {
    let _ = writeln!(md, "## Static binary: musl and mimalloc against glibc\n");
    let Some(target) = musl_target() else {
        let _ = writeln!(md, "Skipped: the static binaries are built for Linux only.\n");
        return Ok(());
    };
    eprintln!("==> bench: building the static release binary ({target})");
    if let Err(e) = clean_env(cmd!(sh, "cargo build --release --locked --package mlgate --target {target}")).run() {
        let _ = writeln!(
            md,
            "Skipped: the static build failed ({e}); it needs `rustup target add {target}` and musl-gcc (Debian's \
             `musl-tools`).\n"
        );
        return Ok(());
    }
    let musl = root.join(format!("target/{target}/release/mlgate"));
    let linkage = Command::new("file")
        .arg("-b")
        .arg(&musl)
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split(',')
                .find(|f| f.contains("linked"))
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default();

    let csv = work.join(format!("customers_{ROWS}.csv"));
    if !csv.exists() {
        eprintln!("==> bench: generating {ROWS} rows");
        crate::gen_data::write_generated(&csv, ROWS, 1)?;
    }
    let config = work.join("static_gradient_boosting.toml");
    let text = std::fs::read_to_string(root.join("pipeline.toml"))?
        .replace("path = \"data/customers.csv\"", &format!("path = {:?}", csv.display().to_string()))
        .replace("family = \"logistic_regression\"", "family = \"gradient_boosting\"");
    std::fs::write(&config, text)?;

    let binaries = [("glibc", glibc), ("musl", musl.as_path())];
    let mut pairs = Vec::new();
    let model_dir = |name: &str| work.join(format!("static_model_{name}"));
    pairs.push(alternate(&format!("`build`, gradient boosting, {ROWS} rows"), runs, &binaries, |name, bin| {
        let mut c = Command::new(bin);
        c.arg("build").arg("--config").arg(&config).arg("--out").arg(model_dir(name));
        c
    })?);
    // Both score the same artifact: only the scoring differs.
    let model = model_dir("glibc").join("model.json");
    let predictions = work.join("static_predictions.csv");
    pairs.push(alternate(&format!("`predict`, gradient boosting, {ROWS} rows"), runs, &binaries, |_, bin| {
        let mut c = Command::new(bin);
        c.arg("predict").arg("--model").arg(&model).arg("--data").arg(&csv).arg("--out").arg(&predictions);
        c
    })?);

    let _ = writeln!(
        md,
        "The release binary for `{target}` ({linkage}; mimalloc as its global allocator, musl's own serialises \
         threads; freed memory given back at once) against `target/release/mlgate` (glibc), built from the same sources in the same run. The two \
         alternate, glibc then musl, {runs} runs each; times are medians with the range (min–max). `build` and \
         `predict` run on `cargo xtask gen-data --rows {ROWS} --seed 1` with `pipeline.toml`'s gradient boosting (both \
         score the glibc build's artifact). This section alone: `cargo xtask bench --static-only` (`--runs`, \
         `--serve-seconds`).\n"
    );
    let _ = writeln!(md, "| measure | glibc | musl + mimalloc | glibc time / musl time |\n|---|---|---|---:|");
    let mut verdicts = Vec::new();
    for pair in &pairs {
        let (g, m) = (summarise(&pair.glibc), summarise(&pair.musl));
        let _ = writeln!(
            md,
            "| {} | {}, {:.0} MB | {}, {:.0} MB | {:.2} |",
            pair.what,
            fmt_time(&g),
            g.rss_mb,
            fmt_time(&m),
            m.rss_mb,
            g.median / m.median
        );
        verdicts.push(verdict(&pair.what, &g, &m));
    }
    match serve(glibc, &musl, root, work, runs, serve_seconds)? {
        Some((rates_glibc, rates_musl, p99)) => {
            let (g, m) = (median(&rates_glibc), median(&rates_musl));
            let range = |r: &[f64]| {
                let (lo, hi) = (r.iter().copied().fold(f64::INFINITY, f64::min), r.iter().copied().fold(0.0, f64::max));
                format!("{:.0} ({lo:.0}–{hi:.0})", median(r))
            };
            let _ = writeln!(
                md,
                "| `serve`, 1-record requests/s, 8 connections, {serve_seconds:.0} s a run (p99, median of the runs: glibc {:.2} ms, musl {:.2} ms) | {} | {} | {:.2} |",
                p99.0,
                p99.1,
                range(&rates_glibc),
                range(&rates_musl),
                m / g
            );
            let lowest_glibc = rates_glibc.iter().copied().fold(f64::INFINITY, f64::min);
            verdicts.push(if m >= g {
                "`serve`: musl served more requests/s".to_string()
            } else if m >= lowest_glibc {
                "`serve`: musl's median within glibc's range".to_string()
            } else {
                format!("`serve`: **musl slower**, {:.1} % fewer requests/s", (1.0 - m / g) * 100.0)
            });
        }
        None => {
            let _ = writeln!(md, "| `serve` | skipped: `../shared/data/online-shoppers/train.csv` is absent | | |");
        }
    }
    let _ = writeln!(md, "\n{} (a ratio ≥ 1 means the static binary is no slower).\n", verdicts.join("; "));
    Ok(())
}

/// `runs` runs of each binary, alternating.
fn alternate(
    what: &str,
    runs: usize,
    binaries: &[(&str, &Path); 2],
    command: impl Fn(&str, &Path) -> Command,
) -> Result<Pair> {
    let mut samples = [Vec::new(), Vec::new()];
    for run in 0..runs {
        for (k, (name, bin)) in binaries.iter().enumerate() {
            eprintln!("==> bench: {what}, {name}, run {}/{runs}", run + 1);
            samples[k].push(measure(command(name, bin))?);
        }
    }
    let [glibc, musl] = samples;
    Ok(Pair { what: what.to_string(), glibc, musl })
}

/// Whether musl's median time is no slower than glibc's, or within glibc's own spread.
fn verdict(what: &str, glibc: &Summary, musl: &Summary) -> String {
    let what = what.split(',').next().unwrap_or(what);
    if musl.median <= glibc.median {
        format!("{what}: musl as fast or faster")
    } else if musl.median <= glibc.max {
        format!("{what}: musl's median within glibc's range")
    } else {
        format!("{what}: **musl slower**, by {:.1} %", (musl.median / glibc.median - 1.0) * 100.0)
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    }
}

/// Both binaries serve the same registry (the Online Shoppers model, deployed by the glibc
/// binary); the same client loads one then the other, `runs` times. Requests/s of each run,
/// and each binary's median over the runs of their p99 latency (ms).
#[allow(clippy::type_complexity)]
fn serve(
    glibc: &Path,
    musl: &Path,
    root: &Path,
    work: &Path,
    runs: usize,
    seconds: f64,
) -> Result<Option<(Vec<f64>, Vec<f64>, (f64, f64))>> {
    let train = root.join("../shared/data/online-shoppers/train.csv");
    if !train.is_file() {
        return Ok(None);
    }
    let dir = work.join("static_serve");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let config = root.join("configs/online-shoppers.toml");
    let registry = dir.join("registry");
    let model = dir.join("model");
    let (c, t, r, m) = (
        config.to_str().unwrap_or(""),
        train.to_str().unwrap_or(""),
        registry.to_str().unwrap_or(""),
        model.to_str().unwrap_or(""),
    );
    let (artifact, acceptance) = (format!("{m}/model.json"), format!("{m}/acceptance"));
    let steps = [
        vec!["build", "--config", c, "--data", t, "--out", m],
        vec!["acceptance", "--config", c, "--model", &artifact, "--data", t, "--registry", r, "--out", &acceptance],
        vec!["deploy", "--config", c, "--registry", r],
    ];
    for args in steps {
        let out = Command::new(glibc).args(&args).output()?;
        if !out.status.success() {
            bail!("mlgate {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let start = |bin: &Path| -> Result<Server> {
        let port = free_port()?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("--registry")
            .arg(&registry)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--poll", "60"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let server = Server { child, port };
        wait_until_answering(port, "/readyz", Duration::from_secs(60))?;
        Ok(server)
    };
    let servers = [start(glibc)?, start(musl)?];
    let body = serde_json::to_vec(&serde_json::json!({ "records": records(&train, 1, "Revenue")? }))?;
    let duration = Duration::from_secs_f64(seconds);
    let mut rates = [Vec::new(), Vec::new()];
    let mut p99s = [Vec::new(), Vec::new()];
    for run in 0..runs {
        for (k, server) in servers.iter().enumerate() {
            eprintln!("==> bench: serve, {}, run {}/{runs}", ["glibc", "musl"][k], run + 1);
            let r = load(server.port, "/v1/predict", &body, 8, None, duration, None)?;
            if r.failed > 0 {
                bail!("{} of the requests to the {} server failed", r.failed, ["glibc", "musl"][k]);
            }
            rates[k].push(r.rate());
            p99s[k].push(r.quantile_ms(0.99));
        }
    }
    let [rates_glibc, rates_musl] = rates;
    Ok(Some((rates_glibc, rates_musl, (median(&p99s[0]), median(&p99s[1])))))
}
