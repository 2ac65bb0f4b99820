//! The live analysis of a served model, as Argo Rollouts' AnalysisTemplate runs one: each check
//! a PromQL query measured `count` times, `interval` apart, against a condition; a breach when
//! more than `failure_limit` measurements fail. This file plans the checks and judges their
//! measurements; asking Prometheus is the caller's.

use serde::Serialize;

use crate::error::{Error, ParamError, Result};
use crate::pipeline::config::{Condition, LiveCheck, LiveConfig};

/// A check ready to run: its query with `$version`, `$window` and `$min_feedback` filled in.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    /// Its name in reports.
    pub name: String,
    /// The PromQL query, placeholders filled in.
    pub query: String,
    /// The condition a measurement must meet, as written.
    pub condition: String,
    #[serde(skip)]
    parsed: Condition,
    /// Seconds between two measurements.
    pub interval_seconds: f64,
    /// Measurements to take.
    pub count: u64,
    /// Failed measurements tolerated; one more is a breach.
    pub failure_limit: u64,
}

/// One measurement: the value, whether it met the condition (`None`: no data, inconclusive),
/// or the error that prevented it.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// The value Prometheus gave, when it gave one.
    pub value: Option<f64>,
    /// Whether the value met the condition; `None` without a value.
    pub passed: Option<bool>,
    /// Why the measurement could not be taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Measurement {
    /// A measurement of `value` (`None`: no data) against `check`'s condition.
    pub fn of(check: &Planned, value: Option<f64>) -> Measurement {
        Measurement { value, passed: value.map(|v| check.parsed.holds(v)), error: None }
    }

    /// A measurement that could not be taken.
    pub fn failed(error: String) -> Measurement {
        Measurement { value: None, passed: None, error: Some(error) }
    }
}

/// A check's run.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRun {
    /// The check.
    #[serde(flatten)]
    pub check: Planned,
    /// Its measurements, in order.
    pub measurements: Vec<Measurement>,
    /// Measurements that did not meet the condition.
    pub failures: u64,
    /// Measurements without data.
    pub inconclusive: u64,
    /// Measurements that could not be taken.
    pub errors: u64,
    /// More failures than the limit.
    pub breached: bool,
}

impl CheckRun {
    /// Judges a check's measurements.
    pub fn judge(check: Planned, measurements: Vec<Measurement>) -> CheckRun {
        let failures = measurements.iter().filter(|m| m.passed == Some(false)).count() as u64;
        let errors = measurements.iter().filter(|m| m.error.is_some()).count() as u64;
        let inconclusive = measurements.iter().filter(|m| m.passed.is_none() && m.error.is_none()).count() as u64;
        let breached = failures > check.failure_limit;
        CheckRun { check, measurements, failures, inconclusive, errors, breached }
    }
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
            let parsed = Condition::parse(&c.condition)
                .map_err(|why| Error::Param(ParamError::invalid(format!("monitor.live.checks.{}", c.name), why)))?;
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
