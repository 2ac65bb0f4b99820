//! Monitoring the production model on new labelled data: its metrics against thresholds and
//! against what it measured at acceptance, and the drift of every feature.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::artifact::Artifact;
use crate::dataset::Dataset;
use crate::drift::{DriftLevel, DriftThresholds, FeatureDrift};
use crate::error::Result;
use crate::gate::{check_bounds, threshold_checks, Check};
use crate::metrics::MetricSet;

/// The `[monitor]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// Lowest acceptable value per metric on new data.
    #[serde(default)]
    pub min: BTreeMap<String, f64>,
    /// Highest acceptable value per metric on new data.
    #[serde(default)]
    pub max: BTreeMap<String, f64>,
    /// Largest tolerated drop per metric from the value measured at acceptance.
    #[serde(default = "default_max_drop")]
    pub max_drop: BTreeMap<String, f64>,
    /// Consecutive breaching runs before an automatic rollback.
    #[serde(default = "default_failure_limit")]
    pub failure_limit: u64,
    /// Breach when the share of features with major drift exceeds this (off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_drifted_share: Option<f64>,
    /// Drift thresholds.
    #[serde(default)]
    pub drift: DriftThresholds,
}

fn default_max_drop() -> BTreeMap<String, f64> {
    BTreeMap::from([("roc_auc".to_string(), 0.05), ("f1".to_string(), 0.1)])
}

fn default_failure_limit() -> u64 {
    1
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            min: BTreeMap::new(),
            max: BTreeMap::new(),
            max_drop: default_max_drop(),
            failure_limit: default_failure_limit(),
            max_drifted_share: None,
            drift: DriftThresholds::default(),
        }
    }
}

impl MonitorConfig {
    /// Checks the section; the message names the key.
    pub fn check(&self) -> std::result::Result<(), String> {
        check_bounds("monitor", &self.min, &self.max)?;
        check_bounds("monitor", &self.max_drop, &BTreeMap::new())
            .map_err(|m| m.replace("monitor.min", "monitor.max_drop"))?;
        if self.failure_limit == 0 {
            return Err("monitor.failure_limit: must be at least 1".into());
        }
        if let Some(s) = self.max_drifted_share {
            if !(0.0..=1.0).contains(&s) {
                return Err(format!("monitor.max_drifted_share: {s} is not in [0, 1]"));
            }
        }
        let d = &self.drift;
        if !(0.0 < d.psi_moderate
            && d.psi_moderate <= d.psi_major
            && 0.0 < d.js_moderate
            && d.js_moderate <= d.js_major)
        {
            return Err("monitor.drift: thresholds must be positive with moderate <= major".into());
        }
        Ok(())
    }
}

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
    let mut checks = threshold_checks("monitor", &config.min, &config.max, &metrics);
    if let Some(accepted) = accepted {
        for (metric, allowed) in &config.max_drop {
            let (now, then) = (metrics.get(metric).unwrap_or(f64::NAN), accepted.get(metric).unwrap_or(f64::NAN));
            let drop = if crate::compare::lower_is_better(metric) { now - then } else { then - now };
            checks.push(Check {
                gate: "monitor".into(),
                metric: metric.clone(),
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
            gate: "monitor".into(),
            metric: "drift".into(),
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
