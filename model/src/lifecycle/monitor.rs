//! Monitoring the production model on new data: with labels, its metrics against thresholds
//! and against what it measured at acceptance; without, the performance its probabilities
//! promise; always, the drift of its scores and of every feature.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::data::dataset::Dataset;
use crate::data::report::{RuleCount, ValidationReport};
use crate::error::Result;
use crate::eval::calibration::{estimate, expected_calibration_error, Estimate, ScoreDistribution};
use crate::eval::compare::{paired_bootstrap, paired_bootstrap_estimated_f1, Scored};
use crate::eval::drift::{DriftLevel, FeatureDrift};
use crate::eval::metrics::Metric;
use crate::eval::metrics::MetricSet;
use crate::lifecycle::gate::{threshold_checks, AcceptanceRecord, Check, GateKind, Measure, Quantity};
use crate::pipeline::artifact::Artifact;
use crate::pipeline::config::{AcceptanceConfig, MonitorConfig};

/// What one monitoring run found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorOutcome {
    /// Metrics of the production model on the new data, at its threshold (when it is labelled).
    pub metrics: Option<MetricSet>,
    /// Metrics it had at acceptance, when known.
    pub accepted: Option<MetricSet>,
    /// The performance its probabilities promise on the new data, were they calibrated.
    pub estimated: Estimate,
    /// Its expected calibration error on the staging rows at acceptance, when known: how far
    /// the estimate's assumption held there.
    pub accepted_calibration_error: Option<f64>,
    /// The positive rate of the new data's labels, when it has them.
    pub positive_rate: Option<f64>,
    /// The positive rate of the staging rows at acceptance, when known.
    pub accepted_positive_rate: Option<f64>,
    /// The share of the new rows predicted positive.
    pub predicted_positive_rate: f64,
    /// The share of the staging rows predicted positive at acceptance, when known.
    pub accepted_predicted_positive_rate: Option<f64>,
    /// PSI of the scores against those at acceptance, when known.
    pub score_psi: Option<f64>,
    /// Every check.
    pub checks: Vec<Check>,
    /// Drift of each feature.
    pub drift: Vec<FeatureDrift>,
    /// Share of features with major drift.
    pub drifted_share: f64,
    /// Levels unseen in training, per column.
    pub unseen_levels: BTreeMap<String, u64>,
    /// True when a check failed.
    pub breach: bool,
}

/// The rows a monitoring run left out (`--skip-invalid`): how many of how many, and which rule
/// of which column they broke.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataQuality {
    /// Data rows read.
    pub rows: u64,
    /// Rows refused (left out of every figure of the run).
    pub refused: u64,
    /// `refused` over `rows`.
    pub refused_share: f64,
    /// The largest share allowed (`--max-invalid`).
    pub max_share: f64,
    /// Where each broken value is listed.
    pub rejects_file: String,
    /// Broken values per column and rule.
    pub counts: Vec<RuleCount>,
}

impl DataQuality {
    /// What the validation of a data set read with skipping says about the rows it left out.
    pub fn of(report: &ValidationReport, max_share: f64, rejects_file: &str) -> DataQuality {
        DataQuality {
            rows: report.rows,
            refused: report.rows_with_errors,
            refused_share: report.rows_with_errors as f64 / report.rows.max(1) as f64,
            max_share,
            rejects_file: rejects_file.to_string(),
            counts: report.counts.clone(),
        }
    }
}

/// The rollback target against production on the rows of a monitoring run both scored: the
/// acceptance gate's paired bootstrap of target − production (ROC AUC with labels, the estimated
/// F1 without), a rollback only when the whole interval lies above zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetComparison {
    /// The rollback target.
    pub version: String,
    /// `roc_auc` with labels, `estimated_f1` without.
    pub measure: String,
    /// Production's figure on the paired rows.
    pub production: f64,
    /// The target's figure on the same rows.
    pub target: f64,
    /// Rows both scored.
    pub rows: u64,
    /// target − production.
    pub delta: f64,
    /// Lower end of the confidence interval of `delta`.
    pub ci_low: f64,
    /// Upper end.
    pub ci_high: f64,
    /// The interval's confidence (`[acceptance] confidence`).
    pub confidence: f64,
    /// True when the target is better beyond the noise: `ci_low > 0`.
    pub significant: bool,
}

impl TargetComparison {
    /// The comparison in words: both figures, the difference and its interval, and whether it is
    /// significant.
    pub fn describe(&self) -> String {
        format!(
            "{} scores {} {:.4} on these rows, production {:.4}: Δ {:+.4}, {} ({:.0} % CI {:+.4} … {:+.4}, paired bootstrap on {} rows)",
            self.version,
            self.measure,
            self.target,
            self.production,
            self.delta,
            if self.significant { "significant" } else { "not significant" },
            100.0 * self.confidence,
            self.ci_low,
            self.ci_high,
            self.rows
        )
    }
}

/// Scores production and the rollback target (each with its own artifact, on its own reading of
/// the same file) and compares them on the rows both read, paired by line, with the acceptance
/// gate's bootstrap settings.
pub fn compare_rollback_target(
    acceptance: &AcceptanceConfig,
    production: (&Artifact, &Dataset),
    version: &str,
    target: (&Artifact, &Dataset),
) -> Result<TargetComparison> {
    let ours = production.0.score(production.1)?.probabilities;
    let theirs = target.0.score(target.1)?.probabilities;
    // Each model read the file through its own schema: with invalid rows skipped, each may have
    // left out other rows. The comparison is on the rows both kept.
    let position: std::collections::HashMap<u64, usize> =
        target.1.lines.iter().enumerate().map(|(i, line)| (line, i)).collect();
    let (mut p, mut t, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for (i, line) in production.1.lines.iter().enumerate() {
        if let Some(&j) = position.get(&line) {
            p.push(ours[i]);
            t.push(theirs[j]);
            if let Some(l) = &production.1.labels {
                labels.push(l[i]);
            }
        }
    }
    let ours = Scored { probabilities: &p, threshold: production.0.threshold.value };
    let theirs = Scored { probabilities: &t, threshold: target.0.threshold.value };
    let (measure, d) = if production.1.labels.is_some() {
        let d = paired_bootstrap(
            &labels,
            theirs,
            ours,
            &[Metric::RocAuc],
            acceptance.resamples,
            acceptance.confidence,
            acceptance.seed,
        )?;
        ("roc_auc", d.into_iter().next().expect("one metric asked, one difference"))
    } else {
        let d =
            paired_bootstrap_estimated_f1(theirs, ours, acceptance.resamples, acceptance.confidence, acceptance.seed)?;
        ("estimated_f1", d)
    };
    Ok(TargetComparison {
        version: version.to_string(),
        measure: measure.into(),
        production: d.production,
        target: d.candidate,
        rows: p.len() as u64,
        delta: d.delta,
        ci_low: d.ci_low,
        ci_high: d.ci_high,
        confidence: acceptance.confidence,
        significant: d.ci_low > 0.0,
    })
}

/// Metrics an estimate gives (those at a threshold); ranking metrics need labels.
fn estimated_value(e: &Estimate, metric: Metric) -> Option<f64> {
    match metric {
        Metric::Accuracy => Some(e.accuracy),
        Metric::Precision => Some(e.precision),
        Metric::Recall => Some(e.recall),
        Metric::F1 => Some(e.f1),
        _ => None,
    }
}

/// Scores the production artifact on new data and runs every check: with labels, its metrics
/// against the bounds and its acceptance figures, and the labels' positive rate; without, the
/// performance its probabilities promise; always, the drift of its scores and of every feature.
pub fn evaluate(
    config: &MonitorConfig,
    artifact: &Artifact,
    data: &Dataset,
    accepted: Option<&AcceptanceRecord>,
) -> Result<MonitorOutcome> {
    let scores = artifact.score(data)?;
    let threshold = artifact.threshold.value;
    let estimated = estimate(&scores.probabilities, threshold)?;
    let metrics = match &data.labels {
        Some(labels) => Some(MetricSet::compute(labels, &scores.probabilities, threshold)?),
        None => None,
    };
    let then = accepted.map(|a| &a.candidate);
    let mut checks = Vec::new();
    let check = |metric: Measure, description: String, value: f64, passed: bool| Check {
        gate: GateKind::Monitor,
        metric,
        description,
        value,
        passed,
    };
    match &metrics {
        Some(metrics) => {
            checks.extend(threshold_checks(GateKind::Monitor, &config.min, &config.max, metrics));
            if let Some(then) = then {
                for (&metric, allowed) in &config.max_drop {
                    let (now, was) = (metrics.get(metric), then.get(metric));
                    let drop = if metric.lower_is_better() { now - was } else { was - now };
                    let description = format!("{metric} drop from acceptance ({was:.4} → {now:.4}) <= {allowed}");
                    checks.push(check(Measure::Metric(metric), description, drop, drop <= *allowed));
                }
            }
        }
        None => {
            if let Some(then) = then {
                for (&metric, allowed) in &config.max_drop {
                    let Some(now) = estimated_value(&estimated, metric) else { continue };
                    let was = then.get(metric);
                    let drop = was - now;
                    let description = format!(
                        "estimated {metric} drop from acceptance ({was:.4} → {now:.4}, no labels) <= {allowed}"
                    );
                    checks.push(check(Measure::Metric(metric), description, drop, drop <= *allowed));
                }
            }
        }
    }
    let positive_rate = data.labels.as_ref().map(|l| l.iter().filter(|&&y| y).count() as f64 / l.len().max(1) as f64);
    let accepted_positive_rate = accepted.map(|a| a.staging.positives as f64 / a.staging.rows.max(1) as f64);
    if let (Some(now), Some(was)) = (positive_rate, accepted_positive_rate) {
        let shift = (now - was).abs();
        let limit = config.max_label_shift;
        let description = format!("positive rate of the labels moved from {was:.4} to {now:.4}, by at most {limit}");
        checks.push(check(Measure::Quantity(Quantity::PositiveRate), description, shift, shift <= limit));
    }
    let distribution = ScoreDistribution::of(&scores.probabilities, threshold);
    let reference = accepted.and_then(|a| a.scores.as_ref());
    let score_psi = reference.map(|r| distribution.psi_against(r));
    if let Some(psi) = score_psi {
        let limit = config.max_prediction_psi;
        let description = format!("PSI of the scores against acceptance <= {limit}");
        checks.push(check(Measure::Quantity(Quantity::ScorePsi), description, psi, psi <= limit));
    }
    let drift = artifact.reference.compare(data, &config.drift);
    let major = drift.iter().filter(|d| d.level == DriftLevel::Major).count();
    let drifted_share = if drift.is_empty() { 0.0 } else { major as f64 / drift.len() as f64 };
    if let Some(limit) = config.max_drifted_share {
        let description = format!("share of features with major drift <= {limit}");
        checks.push(check(Measure::Quantity(Quantity::Drift), description, drifted_share, drifted_share <= limit));
    }
    let breach = checks.iter().any(|c| !c.passed);
    Ok(MonitorOutcome {
        metrics,
        accepted: then.cloned(),
        estimated,
        accepted_calibration_error: accepted
            .filter(|a| !a.calibration.is_empty())
            .map(|a| expected_calibration_error(&a.calibration)),
        positive_rate,
        accepted_positive_rate,
        predicted_positive_rate: distribution.predicted_positive_rate,
        accepted_predicted_positive_rate: reference.map(|r| r.predicted_positive_rate),
        score_psi,
        checks,
        drift,
        drifted_share,
        unseen_levels: scores.unseen_levels,
        breach,
    })
}
