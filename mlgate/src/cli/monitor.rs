//! `mlgate monitor`: score the production model on new labelled data, check its metrics
//! and the features' drift, count breaches, and roll back when told to.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use model::lifecycle::gate::AcceptanceRecord;
use model::lifecycle::registry::{Outcome, PRODUCTION};
use model::LabelPolicy;
use serde::Serialize;
use xshell::Shell;

use crate::cli::context::{actor, load_data, RegistryArgs};
use crate::output;

const DEFAULT_OUT: &str = "target/monitor";

/// The flags of `mlgate monitor`.
#[derive(clap::Args)]
pub struct Args {
    /// New sessions (labelled or not); not with --live.
    #[arg(long, required_unless_present = "live", conflicts_with = "live")]
    data: Option<PathBuf>,
    /// Analyse the served model live instead: the `[monitor.live]` checks against Prometheus.
    /// Exits 0 healthy, 1 breached, 3 inconclusive (nothing measured, or not production served).
    #[arg(long, requires = "prometheus")]
    live: bool,
    /// Prometheus's base URL (with --live), e.g. http://127.0.0.1:9090.
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,
    /// With --live: open or update the alert issue on a breach (GITHUB_TOKEN, GITHUB_REPOSITORY).
    #[arg(long, requires = "live")]
    alert: bool,
    /// `--config` (its `[monitor]` section holds the thresholds) and `--registry`.
    #[command(flatten)]
    pipeline: RegistryArgs,
    /// Folder for report.md and monitor.json (with --live, default target/monitor-live).
    #[arg(long, default_value = DEFAULT_OUT)]
    out: PathBuf,
    /// Roll back automatically once `failure_limit` consecutive runs have breached.
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
    outcome: &'a model::lifecycle::monitor::MonitorOutcome,
    consecutive_breaches: u64,
    failure_limit: u64,
    rolled_back_to: Option<String>,
    /// The rollback target scored on the same data, when a rollback was considered.
    rollback_comparison: Option<Comparison>,
}

/// Production and the rollback target on the same data.
#[derive(Serialize)]
struct Comparison {
    version: String,
    /// `roc_auc` with labels, `estimated_f1` without.
    measure: &'static str,
    production: f64,
    target: f64,
}

/// Scores the rollback target on the monitored data: ROC AUC with labels, the estimated F1
/// without.
fn compare_target(
    registry: &model::lifecycle::registry::Registry,
    target: &str,
    data: &std::path::Path,
    config: &model::pipeline::config::MonitorConfig,
    production: &model::lifecycle::monitor::MonitorOutcome,
) -> Result<Comparison> {
    let artifact = registry.artifact(target).with_context(|| format!("cannot load the rollback target {target}"))?;
    let rows = load_data(data, &artifact.schema, LabelPolicy::Optional, None)
        .with_context(|| format!("the rollback target {target} cannot read {}", data.display()))?;
    let theirs = model::lifecycle::monitor::evaluate(config, &artifact, &rows, None)
        .with_context(|| format!("cannot score the rollback target {target}"))?;
    let (measure, production, target_score) = match (&production.metrics, &theirs.metrics) {
        (Some(p), Some(t)) => ("roc_auc", p.roc_auc, t.roc_auc),
        _ => ("estimated_f1", production.estimated.f1, theirs.estimated.f1),
    };
    Ok(Comparison { version: target.to_string(), measure, production, target: target_score })
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
    let data = load_data(&data_path, &artifact.schema, LabelPolicy::Optional, Some(&args.out))?;
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
        let mut rolled_back_to = None;
        let mut action = None;
        let mut rollback_comparison = None;
        if outcome.breach && breaches >= config.monitor.failure_limit {
            if args.rollback_on_breach {
                // The target is scored on the same data first: a rollback to a model that does no
                // better would only trade one breach for another.
                let comparison = match registry.rollback_target()? {
                    Some(target) => Some(compare_target(registry, &target, &data_path, &config.monitor, &outcome)?),
                    None => None,
                };
                match &comparison {
                    Some(c) if c.target < c.production => {
                        action = Some(format!(
                            "No automatic rollback: {} scores {} {:.4} on this data, production {:.4}.",
                            c.version, c.measure, c.target, c.production
                        ));
                    }
                    _ => {
                        let compared = comparison
                            .as_ref()
                            .map(|c| {
                                format!(
                                    " ({} scores {} {:.4} on this data, production {:.4})",
                                    c.version, c.measure, c.target, c.production
                                )
                            })
                            .unwrap_or_default();
                        let why = format!(
                            "automatic rollback after {breaches} consecutive breaching run(s): {}{compared}",
                            failed.join("; ")
                        );
                        match registry.rollback(None, &why, None, &who) {
                            Ok((from, to)) => {
                                action = Some(format!("Rolled back production from {from} to {to}{compared}."));
                                rolled_back_to = Some(to);
                            }
                            Err(e) => action = Some(format!("Automatic rollback impossible: {e}.")),
                        }
                    }
                }
                rollback_comparison = comparison;
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
