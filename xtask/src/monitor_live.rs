//! `cargo xtask monitor --live`: the analysis of a served model against Prometheus, as Argo
//! Rollouts' AnalysisTemplate runs it — each check a PromQL query measured `count` times,
//! `interval` apart, against a condition, a breach when more than `failure_limit` measurements
//! fail — and, on a breach, a rollback in the registry (the servers follow it).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use model::lifecycle::registry::PRODUCTION;
use model::pipeline::config::{Condition, LiveCheck, LiveConfig};
use model::render::table::{code, text};
use serde::Serialize;
use xshell::Shell;

use crate::context::{actor, RegistryArgs};
use crate::output;

/// A check ready to run: its query with `$version`, `$window` and `$min_feedback` filled in.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    pub name: String,
    pub query: String,
    pub condition: String,
    #[serde(skip)]
    parsed: Condition,
    pub interval_seconds: f64,
    pub count: u64,
    pub failure_limit: u64,
}

/// One measurement: the value, whether it met the condition (`None`: no data, inconclusive),
/// or the error that prevented it.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub value: Option<f64>,
    pub passed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A check's run.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRun {
    #[serde(flatten)]
    pub check: Planned,
    pub measurements: Vec<Measurement>,
    pub failures: u64,
    pub inconclusive: u64,
    pub errors: u64,
    pub breached: bool,
}

/// The checks `[monitor.live]` asks for: the defaults (unless `defaults = false`), then its own.
pub fn plan(live: &LiveConfig, version: &str) -> Result<Vec<Planned>> {
    let check = |name: &str, query: String, condition: String| LiveCheck {
        name: name.to_string(),
        query,
        condition,
        interval_seconds: None,
        count: None,
        failure_limit: None,
    };
    let mut checks: Vec<LiveCheck> = Vec::new();
    if live.defaults {
        let predict = r#"route="/v1/predict""#;
        checks.push(check(
            "error_rate",
            format!(
                r#"(sum(rate(mlgate_http_requests_total{{{predict},status=~"5.."}}[$window])) or vector(0)) / sum(rate(mlgate_http_requests_total{{{predict}}}[$window]))"#
            ),
            format!("<= {}", live.max_error_rate),
        ));
        checks.push(check(
            "p99_latency_seconds",
            format!(
                r#"histogram_quantile(0.99, sum by (le) (rate(mlgate_http_request_duration_seconds_bucket{{{predict}}}[$window])))"#
            ),
            format!("<= {}", live.max_p99_seconds),
        ));
        for (metric, drop) in [("accuracy", live.max_accuracy_drop), ("f1", live.max_f1_drop)] {
            checks.push(check(
                &format!("{metric}_drop"),
                format!(
                    r#"max(mlgate_model_acceptance{{version="$version",metric="{metric}"}}) - max(mlgate_live_{metric}{{version="$version"}} and on() (max(mlgate_live_feedback_window{{version="$version"}}) >= $min_feedback))"#
                ),
                format!("<= {drop}"),
            ));
        }
        checks.push(check(
            "drifted_share",
            "max(mlgate_drifted_features_share and on() (max(mlgate_drift_window_rows) >= $min_feedback))".into(),
            format!("<= {}", live.max_drifted_share),
        ));
    }
    checks.extend(live.checks.iter().cloned());
    checks
        .into_iter()
        .map(|c| {
            let parsed = Condition::parse(&c.condition).map_err(|e| anyhow::anyhow!("check `{}`: {e}", c.name))?;
            let query = c
                .query
                .replace("$version", version)
                .replace("$window", &live.window)
                .replace("$min_feedback", &live.min_feedback.to_string());
            Ok(Planned {
                name: c.name,
                query,
                condition: c.condition,
                parsed,
                interval_seconds: c.interval_seconds.unwrap_or(live.interval_seconds),
                count: c.count.unwrap_or(live.count),
                failure_limit: c.failure_limit.unwrap_or(live.failure_limit),
            })
        })
        .collect()
}

/// Asks Prometheus's HTTP API for an instant query; the first sample's value, `None` when the
/// result is empty.
async fn query(client: &reqwest::Client, base: &str, promql: &str) -> Result<Option<f64>> {
    let url = format!("{}/api/v1/query", base.trim_end_matches('/'));
    let response =
        client.get(&url).query(&[("query", promql)]).send().await.with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let body = response.text().await.with_context(|| format!("cannot read the answer of {url}"))?;
    let doc: serde_json::Value =
        serde_json::from_str(&body).with_context(|| format!("{url} answered {status} with no JSON"))?;
    if doc["status"] != "success" {
        bail!(
            "Prometheus refused the query ({status}): {} {}",
            doc["errorType"].as_str().unwrap_or(""),
            doc["error"].as_str().unwrap_or(&body)
        );
    }
    let data = &doc["data"];
    let value = match data["resultType"].as_str() {
        Some("vector") => data["result"].get(0).map(|s| &s["value"][1]),
        Some("scalar") => Some(&data["result"][1]),
        other => {
            bail!("the query gives a {} result; a check needs an instant vector or a scalar", other.unwrap_or("?"))
        }
    };
    match value.and_then(|v| v.as_str()) {
        None => Ok(None),
        Some(text) => {
            let v: f64 = text.parse().with_context(|| format!("Prometheus gave the value `{text}`"))?;
            // NaN is what a ratio of empty rates gives: no data, not a measurement.
            Ok(v.is_finite().then_some(v))
        }
    }
}

async fn run_check(client: reqwest::Client, base: String, check: Planned) -> CheckRun {
    let mut measurements = Vec::new();
    for i in 0..check.count {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs_f64(check.interval_seconds)).await;
        }
        let m = match query(&client, &base, &check.query).await {
            Ok(Some(value)) => Measurement { value: Some(value), passed: Some(check.parsed.holds(value)), error: None },
            Ok(None) => Measurement { value: None, passed: None, error: None },
            Err(e) => Measurement { value: None, passed: None, error: Some(format!("{e:#}")) },
        };
        measurements.push(m);
    }
    let failures = measurements.iter().filter(|m| m.passed == Some(false)).count() as u64;
    let errors = measurements.iter().filter(|m| m.error.is_some()).count() as u64;
    let inconclusive = measurements.iter().filter(|m| m.passed.is_none() && m.error.is_none()).count() as u64;
    let breached = failures > check.failure_limit;
    CheckRun { check, measurements, failures, inconclusive, errors, breached }
}

/// Runs every check at once, each on its own schedule.
pub fn analyse(base: &str, checks: Vec<Planned>) -> Result<Vec<CheckRun>> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start a runtime")?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("mlgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot make an HTTP client")?;
    Ok(runtime.block_on(async {
        let tasks: Vec<_> =
            checks.into_iter().map(|c| tokio::spawn(run_check(client.clone(), base.to_string(), c))).collect();
        let mut runs = Vec::new();
        for t in tasks {
            runs.push(t.await.expect("a check's task does not panic"));
        }
        runs
    }))
}

fn show(v: Option<f64>) -> String {
    v.map_or("no data".into(), |v| format!("{v:.4}"))
}

fn report(model: &str, version: &str, prometheus: &str, runs: &[CheckRun], action: Option<&str>) -> String {
    let breach = runs.iter().any(|r| r.breached);
    let mut md = format!(
        "## {} Live analysis of {} {version}\n\n{} checks against Prometheus at {}.\n\n",
        if breach { "🚨" } else { "✅" },
        code(model),
        runs.len(),
        code(prometheus)
    );
    md.push_str("| check | condition | measurements | failed | no data | verdict |\n|---|---|---|---|---|---|\n");
    for r in runs {
        let values: Vec<String> = r.measurements.iter().map(|m| show(m.value)).collect();
        md.push_str(&format!(
            "| {} | {} | {} | {} of {} (limit {}) | {} | {} |\n",
            text(&r.check.name),
            text(&r.check.condition),
            values.join(", "),
            r.failures,
            r.check.count,
            r.check.failure_limit,
            r.inconclusive + r.errors,
            if r.breached {
                "🚨 breach"
            } else if r.failures + r.errors + r.inconclusive == 0 {
                "✅ passed"
            } else if r.inconclusive + r.errors == r.check.count {
                "➖ inconclusive"
            } else {
                "✅ within the limit"
            }
        ));
    }
    let errors: Vec<String> = runs
        .iter()
        .flat_map(|r| r.measurements.iter().filter_map(|m| m.error.as_ref().map(|e| format!("{}: {e}", r.check.name))))
        .collect();
    if let Some(first) = errors.first() {
        md.push_str(&format!("\n{} measurement(s) failed to run; the first: {}\n", errors.len(), text(first)));
    }
    md.push_str("\n<details><summary>Queries</summary>\n\n");
    for r in runs {
        md.push_str(&format!("- {}: {}\n", code(&r.check.name), code(&r.check.query)));
    }
    md.push_str("\n</details>\n");
    if let Some(a) = action {
        md.push_str(&format!("\n{a}\n"));
    }
    md
}

pub struct LiveArgs<'a> {
    pub pipeline: RegistryArgs,
    pub prometheus: &'a str,
    pub out: &'a Path,
    pub rollback_on_breach: bool,
    pub alert: bool,
}

pub fn run(sh: &Shell, args: LiveArgs) -> Result<ExitCode> {
    // The defaults of [monitor.live] need no configuration file: with --registry and no
    // pipeline.toml here, they apply.
    let defaults_only = args.pipeline.config.is_none()
        && args.pipeline.registry.as_deref().is_some_and(|r| !r.is_empty())
        && !std::path::Path::new("pipeline.toml").exists();
    let (live, mut registry) = if defaults_only {
        let flag = args.pipeline.registry.clone().unwrap_or_default();
        let location = crate::store::Location::parse(&flag, Path::new(""))?;
        (LiveConfig::default(), crate::context::open_registry(location)?)
    } else {
        let (config, registry) = args.pipeline.open()?;
        (config.monitor.live, registry)
    };
    let location = registry.location().to_string();
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
        args.prometheus,
        checks.iter().map(|c| c.interval_seconds * (c.count.saturating_sub(1)) as f64).fold(0.0, f64::max)
    );
    let runs = analyse(args.prometheus, checks)?;
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
        registry.record_monitoring(&version, breach, &reason, &who)?;
        if !breach {
            return Ok((None, None));
        }
        if !args.rollback_on_breach {
            return Ok((None, Some("Run with --rollback-on-breach to roll back automatically.".to_string())));
        }
        match registry.rollback(None, &format!("automatic rollback: {reason}"), None, &who) {
            Ok((from, to)) => Ok((Some(to.clone()), Some(format!("Rolled back production from {from} to {to}.")))),
            Err(e) => Ok((None, Some(format!("Automatic rollback impossible: {e}.")))),
        }
    })?;
    let md = report(&artifact.name, &version, args.prometheus, &runs, action.as_deref());
    let record = serde_json::json!({
        "schema_version": 1,
        "mode": "live",
        "model": artifact.name,
        "version": version,
        "prometheus": args.prometheus,
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
        crate::alert::raise(&monitor_json, &report_md, "mlgate-alert")?;
    }
    Ok(crate::monitor::status(breach, "", &failed))
}
