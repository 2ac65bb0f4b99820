//! `mlgate monitor --live`: the live analysis of the served model (the checks planned and judged
//! by `model::lifecycle::live`, measured by [`crate::prometheus`]) and, on a breach, a rollback
//! in the registry (the servers follow it).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use model::lifecycle::live::{plan, CheckRun};
use model::lifecycle::registry::{Outcome, PRODUCTION};
use model::pipeline::config::LiveConfig;
use model::render::live::{live_markdown, show};
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
    /// Open or update the alert issue on a breach.
    pub alert: bool,
}

/// Runs `mlgate monitor --live`.
pub fn run(sh: &Shell, args: LiveArgs) -> Result<ExitCode> {
    // The defaults of [monitor.live] need no configuration file: with --registry and no
    // pipeline.toml here, they apply.
    let defaults_only = args.pipeline.config.is_none()
        && args.pipeline.registry.as_deref().is_some_and(|r| !r.is_empty())
        && !std::path::Path::new("pipeline.toml").exists();
    let (live, mut registry) = if defaults_only {
        let flag = args.pipeline.registry.clone().unwrap_or_default();
        let location = crate::store::Location::parse(&flag, Path::new(""))?;
        (LiveConfig::default(), crate::cli::context::open_registry(location)?)
    } else {
        let (config, registry) = args.pipeline.open()?;
        (config.monitor.live, registry)
    };
    let location = registry.location().to_string();
    // The URL as printed and recorded: a `user:password@` in it is for Prometheus alone.
    let prometheus = crate::output::redact(args.prometheus);
    let Some(version) = registry.alias(PRODUCTION)? else {
        let line = format!("nothing to analyse yet: no model is in production in {location}");
        output::write(&args.out.join("report.md"), format!("## Nothing in production yet\n\n{line}.\n").as_bytes())?;
        output::write_json(
            &args.out.join("monitor.json"),
            &serde_json::json!({"schema_version": 1, "mode": "live", "status": "no_production"}),
        )?;
        println!("status     {line}");
        return Ok(ExitCode::SUCCESS);
    };
    let artifact = registry.artifact(&version).with_context(|| format!("cannot load production {version}"))?;
    let checks = plan(&live, &version)?;
    eprintln!(
        "analysing {version} with {} checks against {} (at most {:.0} s)",
        checks.len(),
        prometheus,
        checks.iter().map(|c| c.interval_seconds * (c.count.saturating_sub(1)) as f64).fold(0.0, f64::max)
    );
    let runs = crate::prometheus::analyse(args.prometheus, checks)?;
    let unmeasured: Vec<&CheckRun> = runs.iter().filter(|r| r.errors == r.check.count).collect();
    if let Some(r) = unmeasured.first() {
        let error = r.measurements.iter().find_map(|m| m.error.clone()).unwrap_or_default();
        bail!("check `{}` could not be measured once: {error}", r.check.name);
    }
    let breached: Vec<&CheckRun> = runs.iter().filter(|r| r.breached).collect();
    let breach = !breached.is_empty();
    let failed: Vec<String> = breached
        .iter()
        .map(|r| {
            let last = r.measurements.iter().rev().find_map(|m| m.value);
            format!(
                "{} {} failed {} of {} times (last {})",
                r.check.name,
                r.check.condition,
                r.failures,
                r.check.count,
                show(last)
            )
        })
        .collect();
    let reason = if breach {
        format!("live analysis breach: {}", failed.join("; "))
    } else {
        format!("live analysis healthy ({} checks)", runs.len())
    };
    let who = actor(sh);
    let (rolled_back_to, action) = registry.transact(&who, |registry| {
        if registry.alias(PRODUCTION)?.as_deref() != Some(version.as_str()) {
            bail!("production moved while {version} was being analysed; run the analysis again");
        }
        registry.record_monitoring(
            &version,
            if breach { Outcome::Breached } else { Outcome::Healthy },
            &reason,
            &who,
        )?;
        if !breach {
            return Ok((None, None));
        }
        if !args.rollback_on_breach {
            return Ok((None, Some("Run with --rollback-on-breach to roll back automatically.".to_string())));
        }
        match registry.rollback_breached(None, &format!("automatic rollback: {reason}"), None, &who) {
            Ok((from, to)) => Ok((Some(to.clone()), Some(format!("Rolled back production from {from} to {to}.")))),
            Err(e) => Ok((None, Some(format!("Automatic rollback impossible: {e}.")))),
        }
    })?;
    let md = live_markdown(&artifact.name, &version, &prometheus, &runs, action.as_deref());
    let record = serde_json::json!({
        "schema_version": 1,
        "mode": "live",
        "model": artifact.name,
        "version": version,
        "prometheus": prometheus,
        "outcome": { "breach": breach, "checks": runs, "failed": failed },
        "rolled_back_to": rolled_back_to,
    });
    let monitor_json = args.out.join("monitor.json");
    let report_md = args.out.join("report.md");
    output::write(&report_md, md.as_bytes()).and_then(|()| output::write_json(&monitor_json, &record)).with_context(
        || {
            format!(
                "the analysis IS recorded in {location} ({}){}; only its report in {} is missing",
                if breach { "breach" } else { "healthy" },
                rolled_back_to
                    .as_ref()
                    .map(|to| format!(" and production WAS rolled back from {version} to {to}"))
                    .unwrap_or_default(),
                args.out.display()
            )
        },
    )?;
    for r in &runs {
        let values: Vec<String> = r.measurements.iter().map(|m| show(m.value)).collect();
        println!(
            "check      {:<20} {:<10} {}{}",
            r.check.name,
            r.check.condition,
            values.join(", "),
            if r.breached { "  BREACH" } else { "" }
        );
    }
    println!("report     {}", report_md.display());
    if let Some(a) = &action {
        println!("{a}");
    }
    if args.alert && breach {
        crate::cli::alert::raise(&monitor_json, &report_md, "mlgate-alert")?;
    }
    Ok(output::monitoring_status(breach, "", &failed))
}
