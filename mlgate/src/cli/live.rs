//! `mlgate monitor --live`: the live analysis of the served model (the checks planned and judged
//! by `model::lifecycle::live`, measured by [`crate::prometheus`]), ending healthy, breached or
//! inconclusive; on a breach of a check that rolls back, the rollback's target judged, then a
//! rollback in the registry (the servers follow it). While a rollout is open, the rollout is
//! analysed instead (`live_rollout.rs`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use model::eval::metrics::MetricSet;
use model::lifecycle::gate::AcceptanceRecord;
use model::lifecycle::live::{
    conclude, judge_target, plan, plan_target, served_inconclusive, Analysis, Conclusion, Status,
};
use model::lifecycle::registry::{Outcome, Registry, PRODUCTION};
use model::pipeline::config::{LiveConfig, OnBreach};
use model::pipeline::rollout::RolloutConfig;
use model::render::live::live_markdown;
use xshell::Shell;

use crate::cli::context::{actor, RegistryArgs};
use crate::output;

/// What `monitor --live` was asked.
pub struct LiveArgs<'a> {
    /// `--config` and `--registry`.
    pub pipeline: RegistryArgs,
    /// Prometheus's base URL.
    pub prometheus: &'a str,
    /// The folder for report.md and monitor.json.
    pub out: &'a Path,
    /// Roll back on a breach.
    pub rollback_on_breach: bool,
    /// Open or update the alert issue on a breach (or a rollout's abort).
    pub alert: bool,
    /// Analyse the open rollout (the default when one is open).
    pub rollout: bool,
}

/// A version's figures at acceptance, from its `metrics.json` in the registry.
fn accepted(registry: &Registry, version: &str) -> Result<MetricSet> {
    let bytes =
        registry.read_file(version, "metrics.json").with_context(|| format!("{version} has no metrics.json"))?;
    let record: AcceptanceRecord =
        serde_json::from_slice(&bytes).with_context(|| format!("{version}/metrics.json is unreadable"))?;
    Ok(record.candidate)
}

/// Runs `mlgate monitor --live`.
pub fn run(sh: &Shell, args: LiveArgs) -> Result<ExitCode> {
    // The defaults of [monitor.live] need no configuration file: with --registry and no
    // pipeline.toml here, they apply.
    let defaults_only = args.pipeline.config.is_none()
        && args.pipeline.registry.as_deref().is_some_and(|r| !r.is_empty())
        && !std::path::Path::new("pipeline.toml").exists();
    let (live, rollout_config, configured_name, mut registry) = if defaults_only {
        let flag = args.pipeline.registry.clone().unwrap_or_default();
        let location = crate::store::Location::parse(&flag, Path::new(""))?;
        (LiveConfig::default(), RolloutConfig::default(), None, crate::cli::context::open_registry(location)?)
    } else {
        let (config, registry) = args.pipeline.open()?;
        (config.monitor.live, config.rollout, Some(config.name), registry)
    };
    let location = registry.location().to_string();
    // The URL as printed and recorded: a `user:password@` in it is for Prometheus alone.
    let prometheus = crate::output::redact(args.prometheus);
    let Some(version) = registry.alias(PRODUCTION)? else {
        let line = format!("nothing to analyse yet: no model is in production in {location}");
        output::write(&args.out.join("report.md"), format!("## Nothing in production yet\n\n{line}.\n").as_bytes())?;
        output::write_json(
            &args.out.join("monitor.json"),
            &serde_json::json!({"schema_version": 2, "mode": "live", "status": "no_production"}),
        )?;
        println!("status     {line}");
        return Ok(ExitCode::SUCCESS);
    };
    let artifact = registry.artifact(&version).with_context(|| format!("cannot load production {version}"))?;
    // `$model`: the configuration's name, else the name production's artifact records.
    let model = configured_name.unwrap_or_else(|| artifact.name.clone());
    // An open rollout is what the servers are doing: it is what is analysed.
    match registry.state()?.rollout {
        Some(rollout) => {
            return crate::cli::live_rollout::run(crate::cli::live_rollout::RolloutArgs {
                registry,
                model,
                config: rollout_config,
                rollout,
                prometheus: args.prometheus,
                out: args.out,
                alert: args.alert,
                who: actor(sh),
            })
        }
        None if args.rollout => {
            let line = format!("nothing to analyse: no rollout is open in {location}");
            output::write(&args.out.join("report.md"), format!("## No rollout open\n\n{line}.\n").as_bytes())?;
            output::write_json(
                &args.out.join("monitor.json"),
                &serde_json::json!({"schema_version": 2, "mode": "rollout", "model": model, "status": "no_rollout"}),
            )?;
            println!("status     {line}");
            return Ok(ExitCode::SUCCESS);
        }
        None => {}
    }
    let figures = accepted(&registry, &version)?;
    // Prometheus that cannot be reached, or refuses, stops here: nothing is recorded.
    let served = crate::prometheus::served(args.prometheus, &model)
        .with_context(|| format!("cannot ask Prometheus at {prometheus} what serves `{model}`"))?;
    let mut analysis = Analysis {
        model: model.clone(),
        version: version.clone(),
        prometheus: prometheus.clone(),
        served,
        checks: Vec::new(),
        conclusion: Conclusion { status: Status::Inconclusive, reasons: Vec::new(), rollback: false },
        target: None,
        target_checks: Vec::new(),
        action: None,
    };
    if let Some(why) = served_inconclusive(&model, &version, &analysis.served) {
        analysis.conclusion.reasons.push(why);
    } else {
        let checks = plan(&live, &model, &version, &figures)?;
        eprintln!(
            "analysing {model} {version} with {} checks against {} (at most {:.0} s)",
            checks.len(),
            prometheus,
            checks.iter().map(|c| c.interval_seconds * (c.count.saturating_sub(1)) as f64).fold(0.0, f64::max)
        );
        analysis.checks = crate::prometheus::analyse(args.prometheus, checks)?;
        analysis.conclusion = conclude(&analysis.checks);
    }
    let status = analysis.conclusion.status;
    // Before a rollback, the version it would put back is judged: by its figures at acceptance
    // and, when it has some in the window, by its live figures on the same checks.
    if status == Status::Breached && analysis.conclusion.rollback && args.rollback_on_breach {
        if let Some(target) = registry.rollback_target()? {
            match accepted(&registry, &target) {
                Ok(theirs) => {
                    let checks = plan_target(&live, &model, &target, &theirs)?;
                    analysis.target_checks = crate::prometheus::analyse(args.prometheus, checks)?;
                    analysis.target =
                        Some(judge_target(&analysis.checks, &version, &target, &theirs, &analysis.target_checks));
                }
                Err(e) => {
                    analysis.target = Some(model::lifecycle::live::TargetJudgement {
                        target: target.clone(),
                        allowed: false,
                        findings: vec![format!("{e:#}: the target cannot be judged")],
                    })
                }
            }
        }
    }
    let reason = match status {
        Status::Healthy => format!("live analysis healthy ({} checks)", analysis.checks.len()),
        Status::Breached => format!("live analysis breach: {}", analysis.conclusion.reasons.join("; ")),
        Status::Inconclusive => format!("live analysis inconclusive: {}", analysis.conclusion.reasons.join("; ")),
    };
    let outcome = match status {
        Status::Healthy => Outcome::Healthy,
        Status::Breached => Outcome::Breached,
        Status::Inconclusive => Outcome::Inconclusive,
    };
    let who = actor(sh);
    let (breaches, rolled_back_to, action) = registry.transact(&who, |registry| {
        if registry.alias(PRODUCTION)?.as_deref() != Some(version.as_str()) {
            bail!("production moved while {version} was being analysed; run the analysis again");
        }
        let breaches = registry.record_monitoring(&version, outcome, &reason, &who)?;
        let (to, action) = decide(registry, &analysis, &reason, args.rollback_on_breach, &who)?;
        Ok((breaches, to, action))
    })?;
    analysis.action = action;
    let md = live_markdown(&analysis);
    let failed: Vec<String> = analysis.checks.iter().filter(|r| r.breached).map(|r| r.describe()).collect();
    let record = serde_json::json!({
        "schema_version": 2,
        "mode": "live",
        "model": analysis.model,
        "version": version,
        "prometheus": prometheus,
        "status": status,
        "served": analysis.served,
        "outcome": {
            "breach": status == Status::Breached,
            "status": status,
            "reasons": analysis.conclusion.reasons,
            "checks": analysis.checks,
            "failed": failed,
        },
        "rollback_target": analysis.target,
        "rollback_target_checks": analysis.target_checks,
        "action": analysis.action,
        "consecutive_breaches": breaches,
        "rolled_back_to": rolled_back_to,
    });
    let monitor_json = args.out.join("monitor.json");
    let report_md = args.out.join("report.md");
    output::write(&report_md, md.as_bytes()).and_then(|()| output::write_json(&monitor_json, &record)).with_context(
        || {
            format!(
                "the analysis IS recorded in {location} ({}){}; only its report in {} is missing",
                status.name(),
                rolled_back_to
                    .as_ref()
                    .map(|to| format!(" and production WAS rolled back from {version} to {to}"))
                    .unwrap_or_default(),
                args.out.display()
            )
        },
    )?;
    for r in &analysis.checks {
        let values: Vec<String> = r.measurements.iter().map(|m| m.shown()).collect();
        println!(
            "check      {:<20} {:<10} {}{}",
            r.check.name,
            r.check.condition,
            values.join(", "),
            if r.breached { format!("  BREACH ({})", r.check.on_breach.name()) } else { String::new() }
        );
    }
    println!("report     {}", report_md.display());
    if let Some(a) = &analysis.action {
        println!("{a}");
    }
    match status {
        Status::Inconclusive => Ok(output::inconclusive_status(&analysis.conclusion.reasons)),
        Status::Healthy => Ok(output::monitoring_status(false, "", &[])),
        Status::Breached => {
            if args.alert {
                crate::cli::alert::raise(&monitor_json, &report_md, "mlgate-alert")?;
            }
            Ok(output::monitoring_status(true, &format!(" ({breaches} consecutive)"), &failed))
        }
    }
}

/// What a breach does in the registry, inside its transaction: nothing unless a check that
/// rolls back breached, rolling back was asked for and the target was judged no worse (and is
/// still the one the registry would go to). Returns the version rolled back to and the sentence
/// that says what was done, or why not.
fn decide(
    registry: &Registry,
    analysis: &Analysis,
    reason: &str,
    rollback_on_breach: bool,
    who: &model::lifecycle::registry::Actor,
) -> Result<(Option<String>, Option<String>)> {
    let c = &analysis.conclusion;
    if c.status != Status::Breached {
        return Ok((None, None));
    }
    if !c.rollback {
        let alerts: Vec<&str> = analysis.checks.iter().filter(|r| r.breached).map(|r| r.check.name.as_str()).collect();
        return Ok((
            None,
            Some(format!(
                "No rollback: only checks that alert breached ({}); the previous version would see the same \
                 inputs, load and errors, so a rollback cannot fix them (`on_breach = \"{}\"`).",
                alerts.join(", "),
                OnBreach::Alert.name()
            )),
        ));
    }
    if !rollback_on_breach {
        return Ok((None, Some("Run with --rollback-on-breach to roll back automatically.".to_string())));
    }
    if let Some(t) = &analysis.target {
        if !t.allowed {
            let why: Vec<&str> = t.findings.iter().map(String::as_str).collect();
            return Ok((None, Some(format!("No rollback to {}: {}.", t.target, why.join("; ")))));
        }
        if registry.rollback_target()?.as_deref() != Some(t.target.as_str()) {
            return Ok((
                None,
                Some(format!("No rollback: the registry's rollback target moved from {} while it was judged; run the analysis again.", t.target)),
            ));
        }
    }
    // The version left is marked breached: staging moves off it and a plain deploy cannot bring
    // it back.
    match registry.rollback_breached(None, &format!("automatic rollback: {reason}"), None, who) {
        Ok((from, to)) => Ok((
            Some(to.clone()),
            Some(format!("Rolled back production from {from} to {to}; {from} is marked breached.")),
        )),
        Err(e) => Ok((None, Some(format!("Automatic rollback impossible: {e}.")))),
    }
}
