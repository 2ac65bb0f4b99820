//! The acceptance gate: thresholds on the candidate's staging metrics (gate 1), a ranking better
//! than a constant score's (the baseline) and, when there is a production model, no significant
//! regression against it on the same rows (gate 2).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::eval::calibration::{CalibrationBin, ScoreDistribution};
use crate::eval::compare::{self, Difference, McNemar, Scored};
use crate::eval::drift::FeatureDrift;
use crate::eval::metrics::{CurvePoint, Metric, MetricSet};
use crate::pipeline::artifact::{Lineage, Origin};
use crate::pipeline::config::AcceptanceConfig;

/// Which gate a check belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateKind {
    /// Gate 1: a bound on one of the candidate's metrics.
    Threshold,
    /// Gate 2: no significant drop against production.
    Regression,
    /// The baseline: significantly better ranking than a constant score on the same rows.
    Baseline,
    /// A monitoring check of production on new data.
    Monitor,
}

/// What a check measures: a metric, or another quantity of the scored rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Measure {
    /// A metric of the scored rows.
    Metric(Metric),
    /// Another quantity.
    Quantity(Quantity),
}

/// The measures that are not metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// The share of features with major drift.
    Drift,
    /// The positive rate of the labels.
    PositiveRate,
    /// The PSI of the scores against those at acceptance.
    ScorePsi,
}

/// One check of the gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Gate 1, gate 2 or monitoring.
    pub gate: GateKind,
    /// What is measured.
    pub metric: Measure,
    /// The check in words, e.g. `roc_auc >= 0.85`.
    pub description: String,
    /// The measured value (or the difference for a regression check).
    pub value: f64,
    /// Passed or not.
    pub passed: bool,
}

/// Gate 1: `min` and `max` bounds against a metric set.
pub fn threshold_checks(
    gate: GateKind,
    min: &BTreeMap<Metric, f64>,
    max: &BTreeMap<Metric, f64>,
    metrics: &MetricSet,
) -> Vec<Check> {
    let mut checks = Vec::new();
    type Holds = fn(&f64, &f64) -> bool;
    for (bounds, op, holds) in [(min, ">=", f64::ge as Holds), (max, "<=", f64::le as Holds)] {
        for (&metric, bound) in bounds {
            let value = metrics.get(metric);
            checks.push(Check {
                gate,
                metric: Measure::Metric(metric),
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
    /// Production's curves on the same rows, for the charts beside the candidate's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curves: Option<Curves>,
}

/// The comparison with the trivial model: one constant score for every staging row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineComparison {
    /// The constant's ROC AUC is 0.5 and its average precision the rows' positive rate.
    pub positive_rate: f64,
    /// Candidate − constant per ranking metric, with confidence intervals (the constant's value
    /// in `production`).
    pub differences: Vec<Difference>,
}

/// Curves for reports, thinned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curves {
    /// ROC: x = false-positive rate, y = true-positive rate.
    pub roc: Vec<CurvePoint>,
    /// Precision–recall: x = recall, y = precision.
    pub precision_recall: Vec<CurvePoint>,
}

/// Where staging rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StagingSource {
    /// Rows of the training file held out by the row-hash rule.
    Holdout,
    /// A separate staging file.
    File,
}

/// Where the staging rows came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagingSummary {
    /// Held out of the training file, or a file of its own.
    pub source: StagingSource,
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
    /// The comparison with a constant score, unless `[acceptance] baseline = false`. Files of
    /// schema version 1 have none: they read as `None`, and their checks are never `baseline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineComparison>,
    /// Curve points of the candidate.
    pub curves: Curves,
    /// Levels unseen in training, per column, in the staging data.
    pub unseen_levels: BTreeMap<String, u64>,
    /// Drift of each feature of the staging rows against the training reference.
    #[serde(default)]
    pub drift: Vec<FeatureDrift>,
    /// The candidate's lineage.
    pub lineage: Lineage,
    /// The library that trained the candidate, for a model imported from another library
    /// (absent for mlgate's own, and in files written before imports existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// The candidate's reliability table on the staging rows.
    #[serde(default)]
    pub calibration: Vec<CalibrationBin>,
    /// How the candidate's scores on the staging rows are spread (monitoring's reference for
    /// prediction drift).
    #[serde(default)]
    pub scores: Option<ScoreDistribution>,
    /// The label, as the schema names it: reports speak of it, not of "purchases".
    #[serde(default)]
    pub label: Option<LabelWords>,
}

/// The label's name and spellings, for the words of reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelWords {
    /// The label column's name.
    pub name: String,
    /// The positive class's spelling.
    pub positive: String,
    /// The negative class's spelling.
    pub negative: String,
}

impl LabelWords {
    /// The words of a schema's label.
    pub fn of(schema: &crate::data::schema::Schema) -> LabelWords {
        match &schema.label().kind {
            crate::data::schema::ColumnKind::Label { positive, negative } => {
                LabelWords { name: schema.label().name.clone(), positive: positive.clone(), negative: negative.clone() }
            }
            _ => unreachable!("a checked schema's label column has kind label"),
        }
    }
}

/// Runs the baseline check: candidate − a constant score on the same labelled rows, for ROC AUC
/// and average precision, with the paired bootstrap of gate 2. A metric passes only when the
/// whole confidence interval lies above zero: a candidate that ranks no better than chance fails.
pub fn compare_with_constant(
    config: &AcceptanceConfig,
    labels: &[bool],
    candidate: Scored,
) -> Result<(BaselineComparison, Vec<Check>)> {
    let positive_rate = labels.iter().filter(|&&y| y).count() as f64 / labels.len().max(1) as f64;
    // Every row tied: AUC 0.5 and average precision the positive rate, in every stratified
    // resample (it keeps each class's count). The threshold decides nothing compared here.
    let constant = vec![positive_rate; labels.len()];
    let differences = compare::paired_bootstrap(
        labels,
        candidate,
        Scored { probabilities: &constant, threshold: 0.5 },
        &[Metric::RocAuc, Metric::AveragePrecision],
        config.resamples,
        config.confidence,
        config.seed,
    )?;
    let checks = differences
        .iter()
        .map(|d| Check {
            gate: GateKind::Baseline,
            metric: Measure::Metric(d.metric),
            description: format!(
                "{} above a constant score's ({:.4}): Δ {:+.4} ({:.0} % CI {:+.4} … {:+.4})",
                d.metric,
                d.production,
                d.delta,
                100.0 * config.confidence,
                d.ci_low,
                d.ci_high
            ),
            value: d.delta,
            passed: d.ci_low > 0.0,
        })
        .collect();
    Ok((BaselineComparison { positive_rate, differences }, checks))
}

/// Runs gate 2: compares candidate and production on the same labelled rows.
pub fn compare_with_production(
    config: &AcceptanceConfig,
    labels: &[bool],
    candidate: Scored,
    production: Scored,
) -> Result<(Vec<Difference>, McNemar, Vec<Check>)> {
    // Every gated metric, and F1 and accuracy for the report, in the report's order.
    let shown: Vec<Metric> = Metric::REPORTED
        .into_iter()
        .filter(|m| config.compare.contains(m) || [Metric::F1, Metric::Accuracy].contains(m))
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
            let margin = config.margin_of(d.metric);
            let (dropped, real) = if d.metric.lower_is_better() {
                (d.delta > margin, d.ci_low > 0.0)
            } else {
                (d.delta < -margin, d.ci_high < 0.0)
            };
            Check {
                gate: GateKind::Regression,
                metric: Measure::Metric(d.metric),
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
