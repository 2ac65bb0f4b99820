//! The acceptance gate: thresholds on the candidate's staging metrics (gate 1) and, when there
//! is a production model, no significant regression against it on the same rows (gate 2).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::artifact::Lineage;
use crate::compare::{self, lower_is_better, Difference, McNemar, Scored, COMPARABLE};
use crate::error::Result;
use crate::metrics::{CurvePoint, MetricSet};

/// The `[acceptance]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptanceConfig {
    /// Gate 1: lowest acceptable value per metric (e.g. `roc_auc = 0.85`).
    #[serde(default)]
    pub min: BTreeMap<String, f64>,
    /// Gate 1: highest acceptable value per metric (e.g. `log_loss = 0.4`).
    #[serde(default)]
    pub max: BTreeMap<String, f64>,
    /// Gate 2: metrics that fail the gate when they drop significantly. F1 and accuracy are
    /// always shown with their intervals; by default they do not gate, because at a threshold
    /// chosen on a few hundred validation rows they move with the threshold more than with the
    /// model.
    #[serde(default = "default_compare")]
    pub compare: Vec<String>,
    /// Gate 2: the drop tolerated in every compared metric.
    #[serde(default = "default_margin")]
    pub margin: f64,
    /// Gate 2: per-metric tolerated drops, overriding `margin`.
    #[serde(default)]
    pub margins: BTreeMap<String, f64>,
    /// Bootstrap resamples (at least 1,000).
    #[serde(default = "default_resamples")]
    pub resamples: usize,
    /// Confidence level of the intervals.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Seed of the bootstrap.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_compare() -> Vec<String> {
    ["roc_auc", "average_precision"].map(String::from).to_vec()
}
fn default_margin() -> f64 {
    0.01
}
fn default_resamples() -> usize {
    2000
}
fn default_confidence() -> f64 {
    0.95
}
fn default_seed() -> u64 {
    7
}

impl Default for AcceptanceConfig {
    fn default() -> Self {
        AcceptanceConfig {
            min: BTreeMap::new(),
            max: BTreeMap::new(),
            compare: default_compare(),
            margin: default_margin(),
            margins: BTreeMap::new(),
            resamples: default_resamples(),
            confidence: default_confidence(),
            seed: default_seed(),
        }
    }
}

/// Checks metric names in `min` / `max` maps; the message names the key.
pub fn check_bounds(
    section: &str,
    min: &BTreeMap<String, f64>,
    max: &BTreeMap<String, f64>,
) -> std::result::Result<(), String> {
    for (kind, map) in [("min", min), ("max", max)] {
        for (metric, v) in map {
            if !COMPARABLE.contains(&metric.as_str()) {
                return Err(format!("{section}.{kind}.{metric}: unknown metric; known: {}", COMPARABLE.join(", ")));
            }
            if !v.is_finite() {
                return Err(format!("{section}.{kind}.{metric}: must be a finite number"));
            }
        }
    }
    Ok(())
}

impl AcceptanceConfig {
    /// Checks the section; the message names the key.
    pub fn check(&self) -> std::result::Result<(), String> {
        check_bounds("acceptance", &self.min, &self.max)?;
        for m in self.compare.iter().chain(self.margins.keys()) {
            if !COMPARABLE.contains(&m.as_str()) {
                return Err(format!("acceptance.compare: unknown metric `{m}`; known: {}", COMPARABLE.join(", ")));
            }
        }
        let valid = |m: f64| m.is_finite() && m >= 0.0;
        if !valid(self.margin) || self.margins.values().any(|m| !valid(*m)) {
            return Err("acceptance.margin: margins must be >= 0".into());
        }
        if self.resamples < 1000 {
            return Err(format!("acceptance.resamples: {} is below 1000", self.resamples));
        }
        if !(self.confidence > 0.5 && self.confidence < 1.0) {
            return Err(format!("acceptance.confidence: {} is not in (0.5, 1)", self.confidence));
        }
        Ok(())
    }

    fn margin_of(&self, metric: &str) -> f64 {
        *self.margins.get(metric).unwrap_or(&self.margin)
    }

    /// The rule of gate 2, in words, for reports.
    pub fn rule(&self) -> String {
        format!(
            "A metric fails the comparison with production only when it drops by more than its margin \
             ({} unless set per metric) and the {:.0} % paired-bootstrap confidence interval of the \
             difference ({} stratified resamples) lies entirely on the side of a drop.",
            self.margin,
            100.0 * self.confidence,
            self.resamples
        )
    }
}

/// One check of the gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// `threshold` (gate 1) or `regression` (gate 2) or `monitor`.
    pub gate: String,
    /// Metric concerned.
    pub metric: String,
    /// The check in words, e.g. `roc_auc >= 0.85`.
    pub description: String,
    /// The measured value (or the difference for a regression check).
    pub value: f64,
    /// Passed or not.
    pub passed: bool,
}

/// Gate 1: `min` and `max` bounds against a metric set.
pub fn threshold_checks(
    gate: &str,
    min: &BTreeMap<String, f64>,
    max: &BTreeMap<String, f64>,
    metrics: &MetricSet,
) -> Vec<Check> {
    let mut checks = Vec::new();
    type Holds = fn(&f64, &f64) -> bool;
    for (bounds, op, holds) in [(min, ">=", f64::ge as Holds), (max, "<=", f64::le as Holds)] {
        for (metric, bound) in bounds {
            let value = metrics.get(metric).unwrap_or(f64::NAN);
            checks.push(Check {
                gate: gate.into(),
                metric: metric.clone(),
                description: format!("{metric} {op} {bound}"),
                value,
                passed: holds(&value, bound),
            });
        }
    }
    checks
}

/// The comparison with production.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductionComparison {
    /// Registry version of production.
    pub version: String,
    /// Production's metrics on the same rows, at its own threshold.
    pub metrics: MetricSet,
    /// Candidate − production per compared metric, with confidence intervals.
    pub differences: Vec<Difference>,
    /// McNemar's exact test of the decisions.
    pub mcnemar: McNemar,
    /// Staging rows that production's own training data may have held (it was built with
    /// another staging rule): the comparison favours production by that much.
    pub overlap_warning: Option<String>,
}

/// Curves for reports, thinned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curves {
    /// ROC: x = false-positive rate, y = true-positive rate.
    pub roc: Vec<CurvePoint>,
    /// Precision–recall: x = recall, y = precision.
    pub precision_recall: Vec<CurvePoint>,
}

/// Where the staging rows came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagingSummary {
    /// `holdout` or `file`.
    pub source: String,
    /// The data file read.
    pub file: String,
    /// sha256 of that file.
    pub data_sha256: String,
    /// Staging rows scored.
    pub rows: u64,
    /// Positives among them.
    pub positives: u64,
}

/// `metrics.json`: everything acceptance measured and decided (schema documented in README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptanceRecord {
    /// Version of this document's layout.
    pub schema_version: u32,
    /// Model name.
    pub model: String,
    /// sha256 of the candidate artifact.
    pub artifact_sha256: String,
    /// Registry version the candidate was registered as.
    pub version: Option<String>,
    /// True when every check passed.
    pub passed: bool,
    /// Every check, gate 1 then gate 2.
    pub checks: Vec<Check>,
    /// The rule of gate 2, in words.
    pub rule: String,
    /// The staging data.
    pub staging: StagingSummary,
    /// The candidate's metrics on staging, at its own threshold.
    pub candidate: MetricSet,
    /// The comparison with production, when there is one.
    pub production: Option<ProductionComparison>,
    /// Curve points of the candidate.
    pub curves: Curves,
    /// Levels unseen in training, per column, in the staging data.
    pub unseen_levels: BTreeMap<String, u64>,
    /// Drift of each feature of the staging rows against the training reference.
    #[serde(default)]
    pub drift: Vec<crate::drift::FeatureDrift>,
    /// The candidate's lineage.
    pub lineage: Lineage,
}

/// Runs gate 2: compares candidate and production on the same labelled rows.
pub fn compare_with_production(
    config: &AcceptanceConfig,
    labels: &[bool],
    candidate: Scored,
    production: Scored,
) -> Result<(Vec<Difference>, McNemar, Vec<Check>)> {
    // Every gated metric, and F1 and accuracy for the report, in the report's order.
    let shown: Vec<String> = crate::report::REPORTED
        .iter()
        .filter(|m| config.compare.iter().any(|c| c == *m) || ["f1", "accuracy"].contains(m))
        .map(|m| m.to_string())
        .collect();
    let differences = compare::paired_bootstrap(
        labels,
        candidate,
        production,
        &shown,
        config.resamples,
        config.confidence,
        config.seed,
    )?;
    let checks = differences
        .iter()
        .filter(|d| config.compare.contains(&d.metric))
        .map(|d| {
            let margin = config.margin_of(&d.metric);
            let (dropped, real) = if lower_is_better(&d.metric) {
                (d.delta > margin, d.ci_low > 0.0)
            } else {
                (d.delta < -margin, d.ci_high < 0.0)
            };
            Check {
                gate: "regression".into(),
                metric: d.metric.clone(),
                description: format!(
                    "{} vs production: Δ {:+.4} ({:.0} % CI {:+.4} … {:+.4}), margin {margin}",
                    d.metric,
                    d.delta,
                    100.0 * config.confidence,
                    d.ci_low,
                    d.ci_high
                ),
                value: d.delta,
                passed: !(dropped && real),
            }
        })
        .collect();
    let mcnemar = compare::mcnemar(labels, candidate, production);
    Ok((differences, mcnemar, checks))
}
