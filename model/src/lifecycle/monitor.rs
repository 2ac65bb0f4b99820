//! Monitoring the production model on new labelled data: its metrics against thresholds and
//! against what it measured at acceptance, and the drift of every feature.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::data::dataset::Dataset;
use crate::error::Result;
use crate::eval::drift::{DriftLevel, FeatureDrift};
use crate::eval::metrics::MetricSet;
use crate::lifecycle::gate::{threshold_checks, Check, DriftShare, GateKind, Measure};
use crate::pipeline::artifact::Artifact;
use crate::pipeline::config::MonitorConfig;

/// What one monitoring run found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorOutcome {
    /// Metrics of the production model on the new data, at its threshold.
    pub metrics: MetricSet,
    /// Metrics it had at acceptance, when known.
    pub accepted: Option<MetricSet>,
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

/// Scores the production artifact on labelled new data and runs every check.
pub fn evaluate(
    config: &MonitorConfig,
    artifact: &Artifact,
    data: &Dataset,
    accepted: Option<&MetricSet>,
) -> Result<MonitorOutcome> {
    let labels = data.require_labels()?;
    let scores = artifact.score(data)?;
    let metrics = MetricSet::compute(labels, &scores.probabilities, artifact.threshold.value)?;
    let mut checks = threshold_checks(GateKind::Monitor, &config.min, &config.max, &metrics);
    if let Some(accepted) = accepted {
        for (&metric, allowed) in &config.max_drop {
            let (now, then) = (metrics.get(metric), accepted.get(metric));
            let drop = if metric.lower_is_better() { now - then } else { then - now };
            checks.push(Check {
                gate: GateKind::Monitor,
                metric: Measure::Metric(metric),
                description: format!("{metric} drop from acceptance ({then:.4} → {now:.4}) <= {allowed}"),
                value: drop,
                passed: drop <= *allowed,
            });
        }
    }
    let drift = artifact.reference.compare(data, &config.drift);
    let major = drift.iter().filter(|d| d.level == DriftLevel::Major).count();
    let drifted_share = if drift.is_empty() { 0.0 } else { major as f64 / drift.len() as f64 };
    if let Some(limit) = config.max_drifted_share {
        checks.push(Check {
            gate: GateKind::Monitor,
            metric: Measure::Drift(DriftShare::Drift),
            description: format!("share of features with major drift <= {limit}"),
            value: drifted_share,
            passed: drifted_share <= limit,
        });
    }
    let breach = checks.iter().any(|c| !c.passed);
    Ok(MonitorOutcome {
        metrics,
        accepted: accepted.cloned(),
        checks,
        drift,
        drifted_share,
        unseen_levels: scores.unseen_levels,
        breach,
    })
}
