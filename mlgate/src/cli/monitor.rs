//! `mlgate monitor`: score the production model on new data (skipping invalid rows when told
//! to), check its metrics and the features' drift, count breaches, and roll back when told to
//! and the rollback target is better beyond the noise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use model::data::validation::SkipInvalid;
use model::lifecycle::gate::AcceptanceRecord;
use model::lifecycle::monitor::{compare_rollback_target, DataQuality, MonitorOutcome, TargetComparison};
use model::lifecycle::registry::{Actor, Outcome, Registry, PRODUCTION};
use model::{Artifact, Dataset, LabelPolicy, PipelineConfig};
use serde::Serialize;
use xshell::Shell;

use crate::cli::context::{actor, load_data_skipping, DataFile, RegistryArgs, SkipInvalidArgs};
use crate::output;

const DEFAULT_OUT: &str = "target/monitor";

/// The flags of `mlgate monitor`.
#[derive(clap::Args)]
pub struct Args {
    /// New sessions (labelled or not): a CSV or Parquet file, or an object s3://BUCKET/KEY; not
    /// with --live.
    #[arg(long, required_unless_present = "live", conflicts_with = "live")]
    data: Option<PathBuf>,
    /// Analyse the served model live instead: the `[monitor.live]` checks against Prometheus.
    /// Exits 0 healthy, 1 breached, 3 inconclusive (nothing measured, or not production served).
    #[arg(long, requires = "prometheus", conflicts_with = "skip_invalid")]
    live: bool,
    /// Prometheus's base URL (with --live), e.g. http://127.0.0.1:9090.
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,
    /// With --live: open or update the alert issue on a breach, or when a rollout is aborted
    /// (GITHUB_TOKEN, GITHUB_REPOSITORY).
    #[arg(long, requires = "live")]
    alert: bool,
    /// With --live: analyse the open rollout, candidate against baseline (the default when a
    /// rollout is open), and step, promote or abort it. Exits 0 waiting, stepped or promoted,
    /// 1 aborted, 3 inconclusive (too little feedback after the step's pause); with no rollout
    /// open, says so and exits 0.
    #[arg(long, requires = "live")]
    rollout: bool,
    /// `--config` (its `[monitor]` section holds the thresholds) and `--registry`.
    #[command(flatten)]
    pipeline: RegistryArgs,
    /// Folder for report.md and monitor.json (with --live, default target/monitor-live).
    #[arg(long, default_value = DEFAULT_OUT)]
    out: PathBuf,
    /// `--skip-invalid` and `--max-invalid` (not with --live).
    #[command(flatten)]
    skip: SkipInvalidArgs,
    /// Roll back automatically once `failure_limit` consecutive runs have breached, when the
    /// rollback target is better on the same rows beyond the noise (the acceptance gate's paired
    /// bootstrap); the version rolled back from is marked breached.
    #[arg(long, num_args = 0..=1, default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    rollback_on_breach: bool,
}

/// `monitor.json`.
#[derive(Serialize)]
struct MonitorRecord<'a> {
    schema_version: u32,
    model: &'a str,
    version: &'a str,
    data_file: String,
    data_sha256: &'a str,
    outcome: &'a MonitorOutcome,
    consecutive_breaches: u64,
    failure_limit: u64,
    rolled_back_to: Option<String>,
    /// The rollback target scored on the same rows, when a rollback was considered.
    rollback_comparison: Option<TargetComparison>,
    /// The rows refused, with --skip-invalid.
    #[serde(skip_serializing_if = "Option::is_none")]
    data_quality: Option<&'a DataQuality>,
}

/// Scores the rollback target on the monitored file (read through its own schema, skipping the
/// rows it finds invalid when production's reading did) and compares it with production on the
/// rows both read: the acceptance gate's paired bootstrap.
fn compare_target(
    registry: &Registry,
    target: &str,
    data_path: &Path,
    config: &PipelineConfig,
    production: (&Artifact, &Dataset),
    skipping: bool,
) -> Result<TargetComparison> {
    let artifact = registry.artifact(target).with_context(|| format!("cannot load the rollback target {target}"))?;
    let schema = &artifact.schema;
    let file = DataFile::open(data_path, config.data.format)?;
    let rows = if skipping {
        // The limit was production's to apply; the target only has to read what it can.
        let skip = SkipInvalid { max_share: 1.0, rejects: &mut std::io::sink() };
        file.load(schema, LabelPolicy::Optional, Some(skip))
    } else {
        file.load(schema, LabelPolicy::Optional, None)
    }
    .with_context(|| format!("the rollback target {target} cannot read {}", data_path.display()))?;
    compare_rollback_target(&config.acceptance, production, target, (&artifact, &rows))
        .with_context(|| format!("cannot compare the rollback target {target} with production"))
}

/// After `failure_limit` breaching runs with --rollback-on-breach: rolls back, marking
/// production breached, only when the target is better on the same rows beyond the noise.
/// Returns the version rolled back to, the comparison, and what was done, in words.
fn roll_back_on_evidence(
    registry: &Registry,
    compare: impl FnOnce(&str) -> Result<TargetComparison>,
    why: &str,
    who: &Actor,
) -> Result<(Option<String>, Option<TargetComparison>, String)> {
    let comparison = match registry.rollback_target()? {
        None => None,
        Some(target) => match compare(&target) {
            Ok(c) => Some(c),
            Err(e) => return Ok((None, None, format!("Automatic rollback impossible: {e:#}."))),
        },
    };
    if let Some(c) = comparison.as_ref().filter(|c| !c.significant) {
        let action = format!(
            "No automatic rollback: {}; a rollback needs the target better beyond the noise, so production stays and the breach is recorded.",
            c.describe()
        );
        return Ok((None, comparison, action));
    }
    let compared = comparison.as_ref().map(|c| format!(" ({})", c.describe())).unwrap_or_default();
    match registry.rollback_breached(None, &format!("{why}{compared}"), None, who) {
        Ok((from, to)) => {
            let action = format!("Rolled back production from {from} to {to}{compared}; {from} is marked breached.");
            Ok((Some(to), comparison, action))
        }
        Err(e) => Ok((None, comparison, format!("Automatic rollback impossible: {e}."))),
    }
}

/// Runs `mlgate monitor`.
pub fn run(sh: &Shell, args: Args) -> Result<ExitCode> {
    let Some(data) = args.data.clone() else {
        let out = if args.out == std::path::Path::new(DEFAULT_OUT) {
            PathBuf::from("target/monitor-live")
        } else {
            args.out.clone()
        };
        return crate::cli::live::run(
            sh,
            crate::cli::live::LiveArgs {
                pipeline: args.pipeline,
                prometheus: args.prometheus.as_deref().unwrap_or_default(),
                out: &out,
                rollback_on_breach: args.rollback_on_breach,
                alert: args.alert,
                rollout: args.rollout,
            },
        );
    };
    let data_path = data;
    let (config, mut registry) = args.pipeline.open()?;
    let location = registry.location().to_string();
    let Some(version) = registry.alias(PRODUCTION)? else {
        // A new project's scheduled run: nothing to watch yet is no failure.
        let line = format!("nothing to monitor yet: no model is in production in {location}");
        output::write(&args.out.join("report.md"), format!("## Nothing in production yet\n\n{line}.\n").as_bytes())?;
        output::write_json(
            &args.out.join("monitor.json"),
            &serde_json::json!({"schema_version": 1, "status": "no_production"}),
        )?;
        println!("status     {line}");
        return Ok(ExitCode::SUCCESS);
    };
    let artifact = registry.artifact(&version).with_context(|| format!("cannot load production {version}"))?;
    // Labels arrive late in production: without them, monitoring estimates instead of measuring.
    let data = load_data_skipping(
        &data_path,
        config.data.format,
        &artifact.schema,
        LabelPolicy::Optional,
        Some(&args.out),
        &args.skip,
    )?;
    let quality = args
        .skip
        .skip_invalid
        .as_ref()
        .map(|rejects| DataQuality::of(&data.report, args.skip.max_invalid, &rejects.display().to_string()));
    if let Some(q) = &quality {
        eprintln!(
            "refused {} of {} rows ({:.2} %); each broken value is in {}",
            q.refused,
            q.rows,
            100.0 * q.refused_share,
            q.rejects_file
        );
    }
    let accepted = match registry.read_file(&version, "metrics.json") {
        Ok(bytes) => Some(
            serde_json::from_slice::<AcceptanceRecord>(&bytes)
                .with_context(|| format!("{version}/metrics.json is unreadable"))?,
        ),
        Err(e) => {
            eprintln!("warning: {version} has no acceptance metrics ({e}); only the [monitor] bounds apply");
            None
        }
    };
    let outcome = model::lifecycle::monitor::evaluate(&config.monitor, &artifact, &data, accepted.as_ref())
        .context("cannot evaluate the production model")?;
    let failed: Vec<String> = outcome.checks.iter().filter(|c| !c.passed).map(|c| c.description.clone()).collect();
    let reason = if outcome.breach {
        format!("breach on {}: {}", data_path.display(), failed.join("; "))
    } else {
        format!("healthy on {}", data_path.display())
    };
    let who = actor(sh);
    // The run is recorded, and a rollback made, in one transaction on the production it judged.
    let (breaches, rolled_back_to, action, rollback_comparison) = registry.transact(&who, |registry| {
        if registry.alias(PRODUCTION)?.as_deref() != Some(version.as_str()) {
            bail!("production moved while {version} was being monitored; run monitoring again");
        }
        let breaches = registry.record_monitoring(&version, if outcome.breach { Outcome::Breached } else { Outcome::Healthy }, &reason, &who)?;
        let (mut rolled_back_to, mut action, mut rollback_comparison) = (None, None, None);
        if outcome.breach && breaches >= config.monitor.failure_limit {
            if args.rollback_on_breach {
                let why = format!(
                    "automatic rollback after {breaches} consecutive breaching run(s): {}",
                    failed.join("; ")
                );
                let skipping = args.skip.skip_invalid.is_some();
                let compare =
                    |target: &str| compare_target(registry, target, &data_path, &config, (&artifact, &data), skipping);
                let done = roll_back_on_evidence(registry, compare, &why, &who)?;
                (rolled_back_to, rollback_comparison, action) = (done.0, done.1, Some(done.2));
            } else {
                action = Some(format!(
                    "{breaches} consecutive breaching run(s), limit {}: run with --rollback-on-breach to roll back automatically.",
                    config.monitor.failure_limit
                ));
            }
        }
        Ok((breaches, rolled_back_to, action, rollback_comparison))
    })?;
    let data_file = data_path.display().to_string();
    let report = model::render::report::monitor_markdown(
        &artifact.name,
        &version,
        &data_file,
        &outcome,
        action.as_deref(),
        &model::lifecycle::gate::LabelWords::of(&artifact.schema),
        quality.as_ref(),
    );
    let record = MonitorRecord {
        schema_version: 1,
        model: &artifact.name,
        version: &version,
        data_file,
        data_sha256: &data.report.sha256,
        outcome: &outcome,
        consecutive_breaches: breaches,
        failure_limit: config.monitor.failure_limit,
        rolled_back_to: rolled_back_to.clone(),
        rollback_comparison,
        data_quality: quality.as_ref(),
    };
    output::write(&args.out.join("report.md"), report.as_bytes())
        .and_then(|()| output::write_json(&args.out.join("monitor.json"), &record))
        .with_context(|| {
            let rolled = match &rolled_back_to {
                Some(to) => format!(" and production WAS rolled back from {version} to {to}"),
                None => String::new(),
            };
            format!(
                "the monitoring run IS recorded in {} ({}, {breaches} consecutive breach(es)){rolled}; only its report in {} is missing",
                location,
                if outcome.breach { "breach" } else { "healthy" },
                args.out.display()
            )
        })?;
    match &outcome.metrics {
        Some(m) => println!(
            "production {version} on {} rows: roc_auc {:.4}  f1 {:.4}  accuracy {:.4}",
            m.rows, m.roc_auc, m.f1, m.accuracy
        ),
        None => println!(
            "production {version} on {} unlabelled rows: estimated f1 {:.4}  accuracy {:.4} (assuming calibration), predicted positive {:.2} %",
            data.len(),
            outcome.estimated.f1,
            outcome.estimated.accuracy,
            100.0 * outcome.predicted_positive_rate
        ),
    }
    let moved: Vec<&str> = outcome
        .drift
        .iter()
        .filter(|d| d.level == model::eval::drift::DriftLevel::Major)
        .map(|d| d.column.as_str())
        .collect();
    if !moved.is_empty() {
        println!("drift      major in {}", moved.join(", "));
    }
    println!("report     {}", args.out.join("report.md").display());
    if let Some(a) = &action {
        println!("{a}");
    }
    Ok(output::monitoring_status(outcome.breach, &format!(" ({breaches} consecutive)"), &failed))
}
