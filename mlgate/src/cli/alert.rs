//! `mlgate alert`: turn a monitoring breach into a GitHub issue — opened once, then updated
//! on every breaching run, never duplicated.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::Value;
use xshell::Shell;

use crate::github::{ApiError, GitHub};

/// The flags of `mlgate alert`.
#[derive(clap::Args)]
pub struct Args {
    /// monitor.json written by `mlgate monitor`.
    #[arg(long, default_value = "target/monitor/monitor.json")]
    monitor: PathBuf,
    /// report.md written beside it.
    #[arg(long, default_value = "target/monitor/report.md")]
    report: PathBuf,
    /// Label of alert issues.
    #[arg(long, default_value = "mlgate-alert")]
    label: String,
}

/// Runs `mlgate alert`.
pub fn run(_sh: &Shell, args: Args) -> Result<ExitCode> {
    raise(&args.monitor, &args.report, &args.label)
}

/// Opens or updates the alert issue of the breach `monitor` (a monitor.json, of a batch run, a
/// live analysis or a rollout's abort) records, with `report` as its body; nothing when it
/// records none.
pub fn raise(monitor_path: &std::path::Path, report_path: &std::path::Path, label: &str) -> Result<ExitCode> {
    let monitor: Value = serde_json::from_slice(
        &std::fs::read(monitor_path).with_context(|| format!("cannot read {}", monitor_path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", monitor_path.display()))?;
    if monitor["status"] == "no_production" {
        println!("alert      none: no model is in production yet");
        return Ok(ExitCode::SUCCESS);
    }
    if monitor["status"] == "no_rollout" {
        println!("alert      none: no rollout is open");
        return Ok(ExitCode::SUCCESS);
    }
    let breach = monitor["outcome"]["breach"].as_bool().context("monitor.json has no outcome.breach")?;
    if !breach && monitor["mode"] == "rollout" {
        println!("alert      none: the rollout was not aborted");
        return Ok(ExitCode::SUCCESS);
    }
    if !breach {
        println!("alert      none: production is healthy");
        return Ok(ExitCode::SUCCESS);
    }
    let model = monitor["model"].as_str().unwrap_or("model");
    let version = monitor["version"].as_str().unwrap_or("?");
    let report =
        std::fs::read_to_string(report_path).with_context(|| format!("cannot read {}", report_path.display()))?;
    let marker = format!("<!-- mlgate-alert model={} -->", model.replace("--", "-"));
    let body = format!("{marker}\n{report}");
    let title = match monitor["candidate"].as_str().filter(|_| monitor["mode"] == "rollout") {
        Some(candidate) => format!("mlgate: the rollout of {model} {candidate} against {version} was aborted"),
        None => format!("mlgate: production model {model} ({version}) breached its monitoring checks"),
    };
    let token = std::env::var("GITHUB_TOKEN").context("GITHUB_TOKEN is not set")?;
    let github = GitHub::from_env(&token)?;
    match github.upsert_issue(&marker, &title, &body, label) {
        Ok(done) => {
            println!("alert      {} {}", if done.created { "opened" } else { "updated" }, done.url);
            Ok(ExitCode::SUCCESS)
        }
        Err(ApiError::Forbidden(m)) => {
            anyhow::bail!("the token may not open issues ({}): give the workflow `issues: write`", github.scrub(&m))
        }
        Err(ApiError::Other(e)) => Err(anyhow::anyhow!("{}", github.scrub(&format!("{e:#}")))),
    }
}
