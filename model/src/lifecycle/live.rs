//! The live analysis of a served model, as Argo Rollouts' AnalysisTemplate runs one: each check
//! a PromQL query measured `count` times, `interval` apart, against a condition; a breach when
//! more than `failure_limit` measurements fail. This file plans the checks, judges their
//! measurements series by series, concludes (healthy, breached or inconclusive) and judges a
//! rollback's target; asking Prometheus is the caller's.
//!
//! The default quality checks add up over every replica: accuracy, F1 and ROC AUC are computed
//! from the sums of `mlgate_feedback_outcomes_total` and of the `mlgate_feedback_probability`
//! histogram over the window, never from one replica's figure, and compared with the version's
//! figures at acceptance (its `metrics.json`, which the caller reads from the registry).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, ParamError, Result};
use crate::eval::metrics::{Metric, MetricSet};
use crate::pipeline::config::{Condition, LiveCheck, LiveConfig, OnBreach};

/// One series of an answer: its labels and its value, as Prometheus gave them.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels (none for a scalar or an aggregate without grouping).
    pub labels: BTreeMap<String, String>,
    /// Its value; NaN and the infinities included.
    pub value: f64,
}

/// The figure at acceptance a default quality check is measured against.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AcceptanceFigure {
    /// The metric.
    pub metric: Metric,
    /// The version's value on its staging rows at acceptance.
    pub value: f64,
    /// The largest drop tolerated.
    pub max_drop: f64,
}

/// A check ready to run: its query with `$model`, `$version`, `$window` and `$min_feedback`
/// filled in.
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
    /// What a breach does.
    pub on_breach: OnBreach,
    /// For a default quality check: the figure at acceptance its condition is drawn from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acceptance: Option<AcceptanceFigure>,
}

/// One series of a measurement, judged on its own.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// The series' labels, as `{name="value", …}` (`{}` for none).
    pub labels: String,
    /// Its value, when finite.
    pub value: Option<f64>,
    /// Whether it met the condition (NaN and the infinities never do).
    pub passed: bool,
    /// Why it failed without a finite value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One measurement: every series of the answer judged, the worst of them counting. `passed` is
/// `None` without a series (no data) or when the answer could not be used (`error`).
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// The worst series' value, when finite.
    pub value: Option<f64>,
    /// Whether every series met the condition; `None` without data or on an error.
    pub passed: Option<bool>,
    /// The worst series' labels, when the answer held several series.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worst: Option<String>,
    /// Why the worst series failed without a finite value (NaN, ±Inf).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every series of the answer, when it held more than one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<Series>,
    /// Why the measurement could not be taken or used (unreachable, refused, malformed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `{a="x", b="y"}`, the labels as PromQL writes them.
pub fn labels_text(labels: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

impl Measurement {
    /// Judges every series of an answer against `check`'s condition; the measurement passes when
    /// every series does, and shows the worst (NaN and ±Inf fail, with the reason). No series:
    /// no data.
    pub fn of(check: &Planned, samples: Vec<Sample>) -> Measurement {
        let cond = check.parsed;
        let judged: Vec<Series> = samples
            .iter()
            .map(|s| Series {
                labels: labels_text(&s.labels),
                value: s.value.is_finite().then_some(s.value),
                passed: s.value.is_finite() && cond.holds(s.value),
                reason: (!s.value.is_finite()).then(|| format!("Prometheus answered {}", prom_text(s.value))),
            })
            .collect();
        // The worst: a value that is no number first, then the one furthest on the failing side.
        let badness = |s: &Series| match s.value {
            None => f64::INFINITY,
            Some(v) if cond.op.starts_with('<') => v,
            Some(v) => -v,
        };
        let worst =
            judged.iter().enumerate().max_by(|(_, a), (_, b)| badness(a).total_cmp(&badness(b))).map(|(i, _)| i);
        let Some(w) = worst else {
            return Measurement {
                value: None,
                passed: None,
                worst: None,
                reason: None,
                series: Vec::new(),
                error: None,
            };
        };
        let several = judged.len() > 1;
        Measurement {
            value: judged[w].value,
            passed: Some(judged.iter().all(|s| s.passed)),
            worst: several.then(|| judged[w].labels.clone()),
            reason: judged[w].reason.clone(),
            series: if several { judged } else { Vec::new() },
            error: None,
        }
    }

    /// A measurement that could not be taken or used: unmeasurable, neither passed nor failed.
    pub fn failed(error: String) -> Measurement {
        Measurement { value: None, passed: None, worst: None, reason: None, series: Vec::new(), error: Some(error) }
    }

    /// The measurement as reports show it: the value (and the worst series' labels), `NaN` or
    /// `+Inf` when that is what failed, "no data", or "unmeasurable".
    pub fn shown(&self) -> String {
        let value = match (self.value, &self.reason, &self.error) {
            (_, _, Some(_)) => return "unmeasurable".into(),
            (Some(v), _, _) => format!("{v:.4}"),
            (None, Some(reason), _) => reason.trim_start_matches("Prometheus answered ").to_string(),
            (None, None, None) => return "no data".into(),
        };
        match &self.worst {
            Some(labels) => format!("{value} at {labels}"),
            None => value,
        }
    }
}

fn prom_text(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "+Inf"
    } else {
        "-Inf"
    }
}

/// Where a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Every measurement passed.
    Passed,
    /// Some measurements failed, no more than the limit.
    WithinLimit,
    /// More measurements failed than the limit.
    Breached,
    /// No measurement had data (not enough feedback or traffic yet).
    NoData,
    /// No measurement could be used, and at least one could not be taken (see their errors).
    Unmeasurable,
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
    pub no_data: u64,
    /// Measurements that could not be taken or used.
    pub errors: u64,
    /// Where it ended.
    pub status: CheckStatus,
    /// More failures than the limit.
    pub breached: bool,
}

impl CheckRun {
    /// Judges a check's measurements.
    pub fn judge(check: Planned, measurements: Vec<Measurement>) -> CheckRun {
        let failures = measurements.iter().filter(|m| m.passed == Some(false)).count() as u64;
        let errors = measurements.iter().filter(|m| m.error.is_some()).count() as u64;
        let no_data = measurements.iter().filter(|m| m.passed.is_none() && m.error.is_none()).count() as u64;
        let measured = measurements.len() as u64 - errors - no_data;
        let breached = failures > check.failure_limit;
        let status = if breached {
            CheckStatus::Breached
        } else if measured == 0 && errors > 0 {
            CheckStatus::Unmeasurable
        } else if measured == 0 {
            CheckStatus::NoData
        } else if failures == 0 {
            CheckStatus::Passed
        } else {
            CheckStatus::WithinLimit
        };
        CheckRun { check, measurements, failures, no_data, errors, status, breached }
    }

    /// The last measured value (finite), the figure a breach is described by.
    pub fn last_value(&self) -> Option<f64> {
        self.measurements.iter().rev().find_map(|m| m.value)
    }

    /// The first error of its measurements.
    pub fn first_error(&self) -> Option<&str> {
        self.measurements.iter().find_map(|m| m.error.as_deref())
    }

    /// One line on a breach: `accuracy >= 0.843 failed 3 of 3 times (last 0.6050)`.
    pub fn describe(&self) -> String {
        let last =
            self.measurements.iter().rev().find(|m| m.passed == Some(false)).map_or("no data".into(), |m| m.shown());
        format!(
            "{} {} failed {} of {} times (last {last})",
            self.check.name, self.check.condition, self.failures, self.check.count
        )
    }
}

/// How an analysis ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Checks were measured and none breached.
    Healthy,
    /// A check breached.
    Breached,
    /// Nothing could be judged: no check measured, a check unmeasurable, or the version analysed
    /// is not the one served. Never a rollback, never a reset of the breach count.
    Inconclusive,
}

impl Status {
    /// The name reports and `monitor.json` use.
    pub fn name(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Breached => "breached",
            Status::Inconclusive => "inconclusive",
        }
    }
}

/// What the checks' runs conclude.
#[derive(Debug, Clone, Serialize)]
pub struct Conclusion {
    /// Healthy, breached or inconclusive.
    pub status: Status,
    /// Why: every breached check, or what kept the analysis from concluding.
    pub reasons: Vec<String>,
    /// A breached check says to roll back (`on_breach = "rollback"`).
    pub rollback: bool,
}

/// Concludes the runs: breached when a check breached; otherwise inconclusive when no check was
/// measured or a check could not be measured at all; otherwise healthy.
pub fn conclude(runs: &[CheckRun]) -> Conclusion {
    let breached: Vec<&CheckRun> = runs.iter().filter(|r| r.breached).collect();
    if !breached.is_empty() {
        return Conclusion {
            status: Status::Breached,
            reasons: breached
                .iter()
                .map(|r| format!("{} [on breach: {}]", r.describe(), r.check.on_breach.name()))
                .collect(),
            rollback: breached.iter().any(|r| r.check.on_breach == OnBreach::Rollback),
        };
    }
    let unmeasurable: Vec<String> = runs
        .iter()
        .filter(|r| r.status == CheckStatus::Unmeasurable)
        .map(|r| format!("check `{}` could not be measured: {}", r.check.name, r.first_error().unwrap_or("?")))
        .collect();
    let measured = runs.iter().any(|r| !matches!(r.status, CheckStatus::NoData | CheckStatus::Unmeasurable));
    if !measured {
        let mut reasons = vec![format!(
            "no check could be measured ({} without data, {} unmeasurable): Prometheus has no figures of this model and version",
            runs.iter().filter(|r| r.status == CheckStatus::NoData).count(),
            unmeasurable.len()
        )];
        reasons.extend(unmeasurable);
        return Conclusion { status: Status::Inconclusive, reasons, rollback: false };
    }
    if !unmeasurable.is_empty() {
        return Conclusion { status: Status::Inconclusive, reasons: unmeasurable, rollback: false };
    }
    Conclusion { status: Status::Healthy, reasons: Vec::new(), rollback: false }
}

/// The versions `mlgate_model_info{model}` shows served, with their replicas; `None` when
/// `production` is served (possibly beside others, named by the report), else why the analysis
/// is inconclusive.
pub fn served_inconclusive(model: &str, production: &str, served: &[Served]) -> Option<String> {
    if served.is_empty() {
        return Some(format!(
            "Prometheus sees no replica serving `{model}` (no mlgate_model_info{{model=\"{model}\"}}): nothing to judge"
        ));
    }
    if served.iter().any(|s| s.version == production) {
        return None;
    }
    let list: Vec<String> = served.iter().map(|s| format!("{} on {} replica(s)", s.version, s.replicas)).collect();
    Some(format!(
        "Prometheus sees `{model}` served as {} but production is {production}: the figures are not about production",
        list.join(", ")
    ))
}

/// `text` as it goes between the quotes of a PromQL string literal (quotes and backslashes
/// escaped), so that a model's name cannot change a query.
pub fn promql_string(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The default checks' queries, placeholders left in.
mod queries {
    /// Requests to the prediction route of the model.
    const REQUESTS: &str = r#"mlgate_http_requests_total{model="$model",route="/v1/predict""#;
    const LATENCY: &str = r#"mlgate_http_request_duration_seconds_bucket{model="$model",route="/v1/predict""#;
    const OUTCOMES: &str = r#"mlgate_feedback_outcomes_total{model="$model",version="$version""#;
    const BINS: &str = r#"mlgate_feedback_probability_bin_total{model="$model",version="$version""#;
    const BUCKETS: &str = r#"mlgate_feedback_probability_bucket{model="$model",version="$version""#;
    const COUNTS: &str = r#"mlgate_feedback_probability_count{model="$model",version="$version""#;

    /// Joined predictions of the version over every replica in the window, `>= $min_feedback`.
    fn enough() -> String {
        format!("and on() (sum(increase({OUTCOMES}}}[$window])) >= $min_feedback)")
    }

    fn outcomes(filter: &str) -> String {
        format!("sum(increase({OUTCOMES}{filter}}}[$window]))")
    }

    pub fn error_rate() -> String {
        format!(
            r#"(sum(rate({REQUESTS},status=~"5.."}}[$window])) or vector(0)) / (sum(rate({REQUESTS}}}[$window])) > 0)"#
        )
    }

    pub fn p99_latency() -> String {
        format!(
            r#"histogram_quantile(0.99, sum by (le) (rate({LATENCY}}}[$window]))) and on() (sum(rate({LATENCY},le="+Inf"}}[$window])) > 0)"#
        )
    }

    pub fn accuracy() -> String {
        format!("{} / {} {}", outcomes(r#",outcome=~"true_positive|true_negative""#), outcomes(""), enough())
    }

    pub fn f1() -> String {
        let tp = outcomes(r#",outcome="true_positive""#);
        let errors = outcomes(r#",outcome=~"false_positive|false_negative""#);
        format!("(2 * {tp}) / (2 * {tp} + {errors} > 0) {}", enough())
    }

    /// ROC AUC from the per-class bins: Σ_bin n0(bin)·(N1 − C1(le=bin) + ½·n1(bin)) / (N0·N1).
    pub fn roc_auc() -> String {
        let n = |label: &str| format!(r#"sum by (bin) (increase({BINS},label="{label}"}}[$window]))"#);
        let total = |label: &str| format!(r#"sum(increase({COUNTS},label="{label}"}}[$window]))"#);
        let c1 = format!(
            r#"sum by (bin) (label_replace(increase({BUCKETS},label="1"}}[$window]), "bin", "$1", "le", "(.*)"))"#
        );
        let above = format!("({} - on() group_right {c1}) + on(bin) (0.5 * {} or 0 * {c1})", total("1"), n("1"));
        format!("sum({} * on(bin) ({above})) / ({} * {} > 0) {}", n("0"), total("0"), total("1"), enough())
    }

    pub fn drifted_share() -> String {
        let rows = r#"mlgate_drift_window_rows{model="$model"}"#;
        format!(
            r#"sum(mlgate_drifted_features_share{{model="$model"}} * ({rows} > 0)) / sum({rows} > 0) and on() (sum({rows}) >= $min_feedback)"#
        )
    }
}

/// A default check of `[monitor.live]`.
fn default_check(name: &str, query: String, condition: String, on_breach: OnBreach) -> LiveCheck {
    LiveCheck {
        name: name.to_string(),
        query,
        condition,
        interval_seconds: None,
        count: None,
        failure_limit: None,
        on_breach,
    }
}

/// The checks `[monitor.live]` asks for `model`'s `version`, whose figures at acceptance are
/// `accepted` (its `metrics.json`): the defaults (unless `defaults = false`), then its own.
///
/// Defaults: the error rate, the p99 latency and the drifted share alert; accuracy, F1 and ROC
/// AUC from the feedback of every replica roll back, each judged against its figure at
/// acceptance less the tolerated drop, once `min_feedback` predictions have joined in the window.
pub fn plan(live: &LiveConfig, model: &str, version: &str, accepted: &MetricSet) -> Result<Vec<Planned>> {
    let mut checks: Vec<(LiveCheck, Option<AcceptanceFigure>)> = Vec::new();
    if live.defaults {
        checks.push((
            default_check("error_rate", queries::error_rate(), format!("<= {}", live.max_error_rate), OnBreach::Alert),
            None,
        ));
        checks.push((
            default_check(
                "p99_latency_seconds",
                queries::p99_latency(),
                format!("<= {}", live.max_p99_seconds),
                OnBreach::Alert,
            ),
            None,
        ));
        for (metric, query, max_drop) in [
            (Metric::Accuracy, queries::accuracy(), live.max_accuracy_drop),
            (Metric::F1, queries::f1(), live.max_f1_drop),
            (Metric::RocAuc, queries::roc_auc(), live.max_roc_auc_drop),
        ] {
            let value = accepted.get(metric);
            if !value.is_finite() {
                return Err(Error::Param(ParamError::invalid(
                    format!("monitor.live {}", metric.name()),
                    format!("{version}'s {metric} at acceptance is {value}: no live figure can be compared with it"),
                )));
            }
            // Rounded at the sixth decimal, so that the condition reads as the arithmetic does.
            let bound = ((value - max_drop) * 1e6).round() / 1e6;
            checks.push((
                default_check(metric.name(), query, format!(">= {bound}"), OnBreach::Rollback),
                Some(AcceptanceFigure { metric, value, max_drop }),
            ));
        }
        checks.push((
            default_check(
                "drifted_share",
                queries::drifted_share(),
                format!("<= {}", live.max_drifted_share),
                OnBreach::Alert,
            ),
            None,
        ));
    }
    checks.extend(live.checks.iter().cloned().map(|c| (c, None)));
    let min_feedback = live.min_feedback.max(1).to_string();
    let model = promql_string(model);
    checks
        .into_iter()
        .map(|(c, acceptance)| {
            let parsed = Condition::parse(&c.condition)
                .map_err(|why| Error::Param(ParamError::invalid(format!("monitor.live.checks.{}", c.name), why)))?;
            let query = c
                .query
                .replace("$model", &model)
                .replace("$version", version)
                .replace("$window", &live.window)
                .replace("$min_feedback", &min_feedback);
            Ok(Planned {
                name: c.name,
                query,
                condition: c.condition,
                parsed,
                interval_seconds: c.interval_seconds.unwrap_or(live.interval_seconds),
                count: c.count.unwrap_or(live.count),
                failure_limit: c.failure_limit.unwrap_or(live.failure_limit),
                on_breach: c.on_breach,
                acceptance,
            })
        })
        .collect()
}

/// The checks the rollback target is measured on: `plan`'s checks that roll back, for `target`
/// (its own figures at acceptance), measured once each.
pub fn plan_target(live: &LiveConfig, model: &str, target: &str, accepted: &MetricSet) -> Result<Vec<Planned>> {
    Ok(plan(live, model, target, accepted)?
        .into_iter()
        .filter(|c| c.on_breach == OnBreach::Rollback)
        .map(|c| Planned { count: 1, failure_limit: 0, ..c })
        .collect())
}

/// Whether production may be rolled back to `target`.
#[derive(Debug, Clone, Serialize)]
pub struct TargetJudgement {
    /// The version a rollback would put back.
    pub target: String,
    /// True when the target is no worse on every breached check that rolls back.
    pub allowed: bool,
    /// What was compared, one line each; the refusals first.
    pub findings: Vec<String>,
}

/// Judges a rollback to `target` on the breached checks that roll back (`runs` of `version`):
/// - by acceptance: for a default quality check, the target's figure at acceptance (`accepted`)
///   must be at least the breached version's last live figure (a target that was no better on
///   its own staging rows than the current version now is would not help);
/// - live: when the target has figures in the window (`target_live`, from [`plan_target`]),
///   none of its measurements of the same checks may fail.
///
/// A check of one's own has no figure at acceptance; only its live figures judge the target.
pub fn judge_target(
    runs: &[CheckRun],
    version: &str,
    target: &str,
    accepted: &MetricSet,
    target_live: &[CheckRun],
) -> TargetJudgement {
    let mut refusals = Vec::new();
    let mut fine = Vec::new();
    for r in runs.iter().filter(|r| r.breached && r.check.on_breach == OnBreach::Rollback) {
        if let (Some(figure), Some(live)) = (r.check.acceptance, r.last_value()) {
            let theirs = accepted.get(figure.metric);
            let line =
                format!("{target}'s {} at acceptance {theirs:.4} against {version}'s live {live:.4}", figure.metric);
            if theirs.is_finite() && theirs >= live {
                fine.push(line);
            } else {
                refusals.push(format!("{line}: the target is no better"));
            }
        }
        if let Some(t) = target_live.iter().find(|t| t.check.name == r.check.name) {
            match t.measurements.iter().find(|m| m.passed.is_some()) {
                Some(m) if m.passed == Some(false) => refusals.push(format!(
                    "{target}'s live {} in the window is {}, which fails {}",
                    r.check.name,
                    m.shown(),
                    t.check.condition
                )),
                Some(m) => {
                    fine.push(format!("{target}'s live {} {} passes {}", r.check.name, m.shown(), t.check.condition))
                }
                None => fine.push(format!("{target} has no live {} in the window", r.check.name)),
            }
        }
    }
    let allowed = refusals.is_empty();
    refusals.extend(fine);
    TargetJudgement { target: target.to_string(), allowed, findings: refusals }
}

/// A version Prometheus sees served, and by how many replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Served {
    /// The version (`mlgate_model_info{version}`).
    pub version: String,
    /// Replicas reporting it.
    pub replicas: u64,
}

/// One analysis, whole: what `monitor.json` records and the report shows.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    /// The model's name (`$model`).
    pub model: String,
    /// The version analysed: production in the registry.
    pub version: String,
    /// Prometheus's URL, without credentials.
    pub prometheus: String,
    /// The versions Prometheus sees served for the model.
    pub served: Vec<Served>,
    /// The checks' runs (none when the served version made the analysis inconclusive).
    pub checks: Vec<CheckRun>,
    /// What they conclude.
    pub conclusion: Conclusion,
    /// The rollback target's judgement, when a rollback was considered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetJudgement>,
    /// The target's live checks, when a rollback was considered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub target_checks: Vec<CheckRun>,
    /// What was done about it, in a sentence or two.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(condition: &str) -> Planned {
        Planned {
            name: "c".into(),
            query: "q".into(),
            condition: condition.into(),
            parsed: Condition::parse(condition).unwrap(),
            interval_seconds: 1.0,
            count: 3,
            failure_limit: 1,
            on_breach: OnBreach::Rollback,
            acceptance: None,
        }
    }

    fn sample(instance: &str, value: f64) -> Sample {
        Sample { labels: BTreeMap::from([("instance".to_string(), instance.to_string())]), value }
    }

    #[test]
    fn several_series_are_judged_each_and_the_worst_counts() {
        let c = check(">= 0.8");
        let m = Measurement::of(&c, vec![sample("a", 0.9), sample("b", 0.5), sample("c", 0.95)]);
        assert_eq!(m.passed, Some(false));
        assert_eq!(m.value, Some(0.5));
        assert_eq!(m.worst.as_deref(), Some("{instance=\"b\"}"));
        assert_eq!(m.series.len(), 3);
        assert_eq!(m.shown(), "0.5000 at {instance=\"b\"}");
        // The order of the answer does not matter.
        let m = Measurement::of(&c, vec![sample("b", 0.5), sample("a", 0.9)]);
        assert_eq!((m.passed, m.value), (Some(false), Some(0.5)));
        // For an upper bound, the largest is the worst.
        let m = Measurement::of(&check("<= 0.3"), vec![sample("a", 0.1), sample("b", 0.2)]);
        assert_eq!((m.passed, m.value), (Some(true), Some(0.2)));
    }

    #[test]
    fn nan_and_infinities_fail_with_their_reason_and_no_series_is_no_data() {
        let c = check("<= 0.3");
        for (v, text) in [(f64::NAN, "NaN"), (f64::INFINITY, "+Inf"), (f64::NEG_INFINITY, "-Inf")] {
            let m = Measurement::of(&c, vec![sample("a", 0.1), sample("b", v)]);
            assert_eq!(m.passed, Some(false));
            assert_eq!(m.value, None);
            assert_eq!(m.reason.as_deref(), Some(format!("Prometheus answered {text}").as_str()));
            assert_eq!(m.shown(), format!("{text} at {{instance=\"b\"}}"));
        }
        let m = Measurement::of(&c, Vec::new());
        assert_eq!((m.passed, m.shown().as_str()), (None, "no data"));
        assert_eq!(Measurement::failed("malformed".into()).shown(), "unmeasurable");
    }

    #[test]
    fn a_run_ends_healthy_breached_or_inconclusive_never_healthy_when_blind() {
        let c = check(">= 0.8");
        let none = || Measurement::of(&c, Vec::new());
        let good = || Measurement::of(&c, vec![sample("a", 0.9)]);
        let bad = || Measurement::of(&c, vec![sample("a", 0.1)]);
        let blind = CheckRun::judge(c.clone(), vec![none(), none(), none()]);
        assert_eq!(blind.status, CheckStatus::NoData);
        let conclusion = conclude(&[blind.clone(), blind.clone()]);
        assert_eq!(conclusion.status, Status::Inconclusive);
        assert!(conclusion.reasons[0].contains("no check could be measured"), "{:?}", conclusion.reasons);
        let broken = CheckRun::judge(c.clone(), vec![Measurement::failed("malformed answer".into()), none(), none()]);
        assert_eq!(broken.status, CheckStatus::Unmeasurable);
        let healthy = CheckRun::judge(c.clone(), vec![good(), bad(), good()]);
        assert_eq!(healthy.status, CheckStatus::WithinLimit);
        assert_eq!(conclude(&[healthy.clone(), blind.clone()]).status, Status::Healthy);
        let unmeasured = conclude(&[healthy.clone(), broken.clone()]);
        assert_eq!(unmeasured.status, Status::Inconclusive);
        assert!(unmeasured.reasons[0].contains("malformed answer"), "{:?}", unmeasured.reasons);
        let breach = CheckRun::judge(c.clone(), vec![bad(), bad(), good()]);
        let conclusion = conclude(&[healthy, breach.clone(), broken]);
        assert_eq!(conclusion.status, Status::Breached);
        assert!(conclusion.rollback);
        let alert_only = CheckRun::judge(Planned { on_breach: OnBreach::Alert, ..c }, breach.measurements);
        assert!(!conclude(&[alert_only]).rollback);
    }

    #[test]
    fn the_served_version_must_be_production() {
        let served = |v: &str, replicas| Served { version: v.into(), replicas };
        assert!(served_inconclusive("m", "v2", &[]).unwrap().contains("no replica serving `m`"));
        let other = served_inconclusive("m", "v2", &[served("v1", 3)]).unwrap();
        assert!(other.contains("v1 on 3 replica(s)") && other.contains("production is v2"), "{other}");
        assert_eq!(served_inconclusive("m", "v2", &[served("v1", 1), served("v2", 2)]), None);
    }

    fn accepted(accuracy: f64, f1: f64, roc_auc: f64) -> MetricSet {
        let labels = [true, false, true, false];
        let mut m = MetricSet::compute(&labels, &[0.9, 0.1, 0.8, 0.3], 0.5).unwrap();
        (m.accuracy, m.f1, m.roc_auc) = (accuracy, f1, roc_auc);
        m
    }

    #[test]
    fn defaults_are_scoped_by_model_and_version_and_say_what_a_breach_does() {
        let live = LiveConfig::default();
        let planned = plan(&live, "shop \"x\"", "v3", &accepted(0.893, 0.6, 0.9)).unwrap();
        let by_name: BTreeMap<&str, &Planned> = planned.iter().map(|p| (p.name.as_str(), p)).collect();
        assert_eq!(by_name["accuracy"].condition, ">= 0.843");
        assert_eq!(by_name["f1"].condition, ">= 0.5");
        assert_eq!(by_name["roc_auc"].condition, ">= 0.85");
        for p in &planned {
            assert!(p.query.contains(r#"model="shop \"x\"""#), "{}", p.query);
            assert!(!p.query.contains("max(") && !p.query.contains("min("), "{}", p.query);
            assert!(!p.query.contains("$model") && !p.query.contains("$window"), "{}", p.query);
            let rolls_back = matches!(p.name.as_str(), "accuracy" | "f1" | "roc_auc");
            assert_eq!(p.on_breach == OnBreach::Rollback, rolls_back, "{}", p.name);
            if rolls_back {
                assert!(p.query.contains(r#"version="v3""#) && p.query.contains(">= 200"), "{}", p.query);
            }
        }
        // A check of one's own: every placeholder, and it alerts unless it says otherwise.
        let mut live = LiveConfig { defaults: false, ..LiveConfig::default() };
        live.checks.push(default_check(
            "own",
            r#"sum(x{model="$model",version="$version"}[$window]) >= $min_feedback"#.into(),
            "< 1".into(),
            OnBreach::Alert,
        ));
        let own = plan(&live, "m", "v1", &accepted(0.9, 0.9, 0.9)).unwrap();
        assert_eq!(own[0].query, r#"sum(x{model="m",version="v1"}[5m]) >= 200"#);
        assert!(plan_target(&live, "m", "v1", &accepted(0.9, 0.9, 0.9)).unwrap().is_empty());
    }

    #[test]
    fn a_target_no_better_than_the_breached_version_is_refused() {
        let live = LiveConfig::default();
        let planned = plan(&live, "m", "v2", &accepted(0.9, 0.8, 0.9)).unwrap();
        let accuracy = planned.iter().find(|p| p.name == "accuracy").unwrap().clone();
        let run = CheckRun::judge(
            accuracy.clone(),
            (0..3).map(|_| Measurement::of(&accuracy, vec![sample("", 0.7)])).collect(),
        );
        assert!(run.breached);
        // v1 accepted at 0.69: below v2's live 0.70.
        let refused = judge_target(std::slice::from_ref(&run), "v2", "v1", &accepted(0.69, 0.8, 0.9), &[]);
        assert!(!refused.allowed);
        assert!(
            refused.findings[0].contains("v1's accuracy at acceptance 0.6900 against v2's live 0.7000"),
            "{refused:?}"
        );
        // v1 accepted at 0.88: allowed, unless its own live figures in the window fail.
        let better = accepted(0.88, 0.8, 0.9);
        assert!(judge_target(std::slice::from_ref(&run), "v2", "v1", &better, &[]).allowed);
        let target_checks = plan_target(&live, "m", "v1", &better).unwrap();
        assert_eq!(target_checks.len(), 3);
        let t = target_checks.iter().find(|p| p.name == "accuracy").unwrap().clone();
        let failing = CheckRun::judge(t.clone(), vec![Measurement::of(&t, vec![sample("", 0.5)])]);
        let refused = judge_target(std::slice::from_ref(&run), "v2", "v1", &better, &[failing]);
        assert!(!refused.allowed);
        assert!(
            refused.findings[0].contains("v1's live accuracy in the window is 0.5000, which fails >= 0.83"),
            "{refused:?}"
        );
        let quiet = CheckRun::judge(t.clone(), vec![Measurement::of(&t, Vec::new())]);
        assert!(judge_target(&[run], "v2", "v1", &better, &[quiet]).allowed);
    }
}
