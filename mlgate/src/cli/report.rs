//! `mlgate report`: the acceptance report where reviewers look — one sticky comment on the
//! pull request, the job summary, the step outputs — and, with `--fail-on-reject`, the verdict
//! as the step's exit code.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use model::lifecycle::gate::AcceptanceRecord;
use xshell::Shell;

use crate::exit::Exit;
use crate::github::{pull_request_number, ApiError, GitHub};
use crate::output;

/// The flags of `mlgate report`.
#[derive(clap::Args)]
pub struct Args {
    /// metrics.json written by acceptance.
    #[arg(long, default_value = "target/acceptance/metrics.json")]
    metrics: PathBuf,
    /// validation.json written by build (its summary goes in the report when present).
    #[arg(long, default_value = "target/model/validation.json")]
    validation: PathBuf,
    /// The configuration the report is about: one comment per configuration (named by its path
    /// from the repository root on GitHub Actions).
    #[arg(long, default_value = "pipeline.toml")]
    config: String,
    /// Told apart from other reports of the same configuration (the legs of a matrix): one
    /// comment per configuration and key.
    #[arg(long, default_value = "")]
    comment_key: String,
    /// Where to write the comment's Markdown.
    #[arg(long, default_value = "target/acceptance/comment.md")]
    out: PathBuf,
    /// auto: comment on pull requests when the token may; always: fail when the comment cannot
    /// be posted; never: job summary and outputs only.
    #[arg(long, value_enum, default_value_t = CommentMode::Auto)]
    comment: CommentMode,
    /// Exit 1 when the verdict is a rejection (after reporting).
    #[arg(long)]
    fail_on_reject: bool,
    /// How the steps before went, as `STEP=OUTCOME,…` (`validate`, `build`, `acceptance`; the
    /// outcomes GitHub gives: success, failure, cancelled, skipped). A failed step makes the
    /// report say what failed instead of reading the acceptance report.
    #[arg(long, value_delimiter = ',', value_parser = outcome)]
    outcomes: Vec<(String, String)>,
    /// Folder of the steps' logs (`STEP.log`), quoted in a failure report.
    #[arg(long)]
    logs: Option<PathBuf>,
}

fn outcome(text: &str) -> std::result::Result<(String, String), String> {
    let (step, outcome) = text.split_once('=').ok_or_else(|| format!("`{text}` is not STEP=OUTCOME"))?;
    Ok((step.trim().to_string(), outcome.trim().to_ascii_lowercase()))
}

/// A step's name in a report.
fn step_title(step: &str) -> String {
    match step {
        "validate" => "data validation".into(),
        "build" => "the build".into(),
        "acceptance" => "acceptance".into(),
        other => format!("step `{other}`"),
    }
}

/// Whether the pull-request comment is posted.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CommentMode {
    /// On pull requests, when the token may comment.
    Auto,
    /// Always; fail when the comment cannot be posted.
    Always,
    /// Never: job summary and outputs only.
    Never,
}

/// Largest job summary GitHub accepts per step.
const SUMMARY_LIMIT: usize = 1024 * 1024;

/// The hidden marker that finds this configuration's comment again: its path from the
/// repository root, and the key when one is given.
pub fn marker(config: &str, key: &str) -> String {
    let clean = |s: &str| s.replace("--", "-").replace('>', "");
    let path = output::workspace_path(config);
    match key.trim() {
        "" => format!("<!-- mlgate-report config={} -->", clean(&path)),
        key => format!("<!-- mlgate-report config={} key={} -->", clean(&path), clean(key)),
    }
}

/// Runs `mlgate report`.
pub fn run(_sh: &Shell, args: Args) -> Result<ExitCode> {
    let failed = args.outcomes.iter().find(|(_, o)| o == "failure" || o == "cancelled").map(|(s, _)| s.clone());
    match (failed, args.metrics.is_file()) {
        (Some(step), _) => return report_failure(&args, &step),
        (None, false) if !args.outcomes.is_empty() => return report_failure(&args, "acceptance"),
        _ => {}
    }
    let bytes = std::fs::read(&args.metrics).with_context(|| format!("cannot read {}", args.metrics.display()))?;
    let record: AcceptanceRecord = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not an acceptance report", args.metrics.display()))?;
    let validation = std::fs::read(&args.validation).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let marker = marker(&args.config, &args.comment_key);
    let provenance = crate::github::provenance(&crate::clock::now_rfc3339());
    let body = model::render::report::pull_request_markdown(
        &record,
        validation.as_ref(),
        &marker,
        model::render::report::COMMENT_LIMIT,
        "the job summary and in `metrics.json`",
        &provenance,
    );
    output::write(&args.out, body.as_bytes())?;
    println!("report     {} ({} bytes)", args.out.display(), body.len());

    let summary = model::render::report::pull_request_markdown(
        &record,
        validation.as_ref(),
        &marker,
        SUMMARY_LIMIT,
        "`metrics.json` and `report.md`",
        &provenance,
    );
    append_summary(&summary)?;

    let comment_url = comment(&args, &body)?;
    let verdict = if record.passed { "passed" } else { "failed" };
    let metrics_json = serde_json::json!({
        "model": record.model,
        "version": record.version,
        "passed": record.passed,
        "candidate": record.candidate,
        "production": record.production.as_ref().map(|p| serde_json::json!({"version": p.version, "metrics": p.metrics})),
        "failed_checks": record.checks.iter().filter(|c| !c.passed).map(|c| c.description.clone()).collect::<Vec<_>>(),
    });
    write_outputs(&[
        ("passed", record.passed.to_string()),
        ("verdict", verdict.to_string()),
        ("metrics-json", metrics_json.to_string()),
        ("report-path", absolute(&args.out)),
        ("model-version", record.version.clone().unwrap_or_default()),
        ("comment-url", comment_url.unwrap_or_default()),
    ])?;
    if !record.passed {
        println!("verdict    FAILED");
        if args.fail_on_reject {
            for c in record.checks.iter().filter(|c| !c.passed) {
                println!("::error title=acceptance failed::{}", output::escape_data(&c.description));
            }
            return Ok(Exit::Refused.into());
        }
    } else {
        println!("verdict    passed");
    }
    Ok(ExitCode::SUCCESS)
}

/// The report of a run that stopped at `step`: the comment, the job summary and the outputs
/// say what failed (the job has failed already, at that step).
fn report_failure(args: &Args, step: &str) -> Result<ExitCode> {
    let validation: Option<model::ValidationReport> =
        std::fs::read(&args.validation).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let log = args
        .logs
        .as_ref()
        .and_then(|dir| std::fs::read(dir.join(format!("{step}.log"))).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|| "(no output was kept)".into());
    // The log is the job's own output; a token in it is never repeated.
    let token = std::env::var("GITHUB_TOKEN").unwrap_or_default();
    let log = if token.is_empty() { log } else { log.replace(&token, "***") };
    let title = step_title(step);
    let validation = validation.filter(|v| step == "validate" || !v.passed());
    let marker = marker(&args.config, &args.comment_key);
    let provenance = crate::github::provenance(&crate::clock::now_rfc3339());
    let render =
        |limit| model::render::report::failure_markdown(&marker, &title, validation.as_ref(), &log, limit, &provenance);
    let body = render(model::render::report::COMMENT_LIMIT);
    output::write(&args.out, body.as_bytes())?;
    println!("report     {} ({} bytes): {title} failed", args.out.display(), body.len());
    append_summary(&render(SUMMARY_LIMIT))?;
    let comment_url = comment(args, &body)?;
    write_outputs(&[
        ("passed", "false".into()),
        ("verdict", "error".into()),
        ("failed-step", step.to_string()),
        ("report-path", absolute(&args.out)),
        ("comment-url", comment_url.unwrap_or_default()),
    ])?;
    println!("verdict    not evaluated: {title} failed");
    Ok(ExitCode::SUCCESS)
}

fn absolute(path: &Path) -> String {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string()
}

/// Posts or updates the comment; returns its URL. A token that may not write (a pull request
/// from a fork) gives a warning, not a failure, unless `--comment always`.
fn comment(args: &Args, body: &str) -> Result<Option<String>> {
    if args.comment == CommentMode::Never {
        return Ok(None);
    }
    let strict = args.comment == CommentMode::Always;
    let pr = pull_request_number()?;
    let token = std::env::var("GITHUB_TOKEN").unwrap_or_default();
    let skip = |why: &str| -> Result<Option<String>> {
        if strict {
            bail!("--comment always: {why}");
        }
        println!("comment    skipped: {why}");
        Ok(None)
    };
    let Some(pr) = pr else { return skip("the triggering event is not a pull request") };
    if token.is_empty() {
        return skip("no token (GITHUB_TOKEN) was given");
    }
    let github = GitHub::from_env(&token)?;
    match github.upsert_comment(pr, &marker(&args.config, &args.comment_key), body) {
        Ok(done) => {
            println!("comment    {} {}", if done.created { "created" } else { "updated" }, done.url);
            Ok(Some(done.url))
        }
        Err(ApiError::Forbidden(message)) => {
            let why = format!(
                "the token may not comment on pull request #{pr} ({}); a pull request from a fork gets a read-only token. The report is in the job summary.",
                github.scrub(&message)
            );
            if strict {
                bail!("{why}");
            }
            println!("::warning title=mlgate report not posted::{}", output::escape_data(&why));
            Ok(None)
        }
        Err(ApiError::Other(e)) => {
            Err(anyhow::anyhow!("{}", github.scrub(&format!("{e:#}")))).context("cannot post the report")
        }
    }
}

/// Appends to `$GITHUB_STEP_SUMMARY` when running on GitHub Actions.
fn append_summary(markdown: &str) -> Result<()> {
    let Ok(path) = std::env::var("GITHUB_STEP_SUMMARY") else { return Ok(()) };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open the job summary {path}"))?;
    f.write_all(markdown.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .with_context(|| format!("cannot write the job summary {path}"))
}

/// Writes step outputs to `$GITHUB_OUTPUT`, each value under a random delimiter so that no value
/// can end it early or inject another output.
pub fn write_outputs(outputs: &[(&str, String)]) -> Result<()> {
    let Ok(path) = std::env::var("GITHUB_OUTPUT") else { return Ok(()) };
    let mut text = String::new();
    for (name, value) in outputs {
        let delimiter = loop {
            let d = format!("mlgate_{:016x}", random_u64());
            if !value.contains(&d) {
                break d;
            }
        };
        text.push_str(&format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"));
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open the step outputs {path}"))?;
    f.write_all(text.as_bytes()).with_context(|| format!("cannot write the step outputs {path}"))
}

/// 64 unpredictable bits from the OS-seeded hasher of the standard library.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}
