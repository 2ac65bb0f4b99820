//! The pipeline configuration (`pipeline.toml`): data, schema, model, split and threshold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::schema::Schema;
use crate::error::{ConfigProblem, Error, ParamError, Result};
use crate::eval::drift::DriftThresholds;
use crate::eval::metrics::Metric;
use crate::eval::threshold::ThresholdConfig;
use crate::learn::gbdt::BoostingParams;
use crate::learn::logistic::LogisticParams;
use crate::learn::model::Family;
use crate::pipeline::rollout::RolloutConfig;
use crate::pipeline::staging::StagingConfig;

/// A whole pipeline configuration, as read from one TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Name of the model: it names artifacts and reports.
    pub name: String,
    /// Where the training data lives.
    pub data: DataConfig,
    /// The declared columns.
    pub schema: Schema,
    /// Which model to fit, with its hyper-parameters.
    #[serde(default)]
    pub model: ModelConfig,
    /// How training rows are split into fit and validation rows.
    #[serde(default)]
    pub split: SplitConfig,
    /// How the decision threshold is chosen.
    #[serde(default)]
    pub threshold: ThresholdConfig,
    /// Where acceptance data comes from.
    #[serde(default)]
    pub staging: StagingConfig,
    /// The acceptance gate.
    #[serde(default)]
    pub acceptance: AcceptanceConfig,
    /// The model registry.
    #[serde(default)]
    pub registry: RegistryConfig,
    /// Monitoring of the production model.
    #[serde(default)]
    pub monitor: MonitorConfig,
    /// Progressive delivery of a candidate beside production (`mlgate rollout`). Absent, or at
    /// its defaults, it is left out of the configuration's hash.
    #[serde(default, skip_serializing_if = "RolloutConfig::is_default")]
    pub rollout: RolloutConfig,
}

/// The `[registry]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// The registry folder; a relative path is taken from the configuration file's folder.
    #[serde(default = "default_registry")]
    pub path: PathBuf,
}

fn default_registry() -> PathBuf {
    PathBuf::from("registry")
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig { path: default_registry() }
    }
}

/// The `[data]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Training data: a CSV or Parquet file (a relative path is taken from the configuration
    /// file's folder), or an object `s3://BUCKET/KEY`.
    pub path: PathBuf,
    /// The format of data files whose extension does not say (`.parquet`, `.csv`, …): `csv`
    /// (the default) or `parquet`; it applies to every data file the configuration's commands
    /// read (`[data] path`, `[staging] path`, `--data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<crate::data::reader::Format>,
}

/// The `[model]` section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The model family to fit.
    #[serde(default)]
    pub family: Family,
    /// Hyper-parameters of gradient boosting.
    #[serde(default)]
    pub gradient_boosting: BoostingParams,
    /// Hyper-parameters of logistic regression.
    #[serde(default)]
    pub logistic_regression: LogisticParams,
}

/// The `[split]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// Seed of every random choice of the pipeline.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Fraction of training rows held out (stratified) to choose the threshold and report
    /// validation metrics.
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
    /// How the final model sees all training rows (fit + validation) once the threshold is
    /// chosen.
    #[serde(default)]
    pub refit: Refit,
}

/// `[split] refit`: what the final model is, once the validation fit has been measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Refit {
    /// `true`, the default: fitted on every training row as cheaply as the family allows.
    /// Gradient boosting keeps the validation fit's trees and fits their leaf values again on
    /// all the rows (LightGBM's `refit`), a pass over the rows a tree; logistic regression
    /// fits again.
    #[default]
    Yes,
    /// `"full"`: fitted again from scratch on every training row (for gradient boosting, a
    /// second whole fit beside the validation fit).
    Full,
    /// `false`: the validation fit, measured as it is, is the final model.
    No,
}

impl Serialize for Refit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Refit::Yes => serializer.serialize_bool(true),
            Refit::No => serializer.serialize_bool(false),
            Refit::Full => serializer.serialize_str("full"),
        }
    }
}

impl<'de> Deserialize<'de> for Refit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Refit, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Refit;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or \"full\"")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> std::result::Result<Refit, E> {
                Ok(if v { Refit::Yes } else { Refit::No })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Refit, E> {
                match v {
                    "full" => Ok(Refit::Full),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

fn default_seed() -> u64 {
    42
}
fn default_validation_fraction() -> f64 {
    0.2
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig { seed: default_seed(), validation_fraction: default_validation_fraction(), refit: Refit::Yes }
    }
}

impl PipelineConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<PipelineConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        PipelineConfig::parse(&text, path)
    }

    /// Parses and checks a configuration; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<PipelineConfig> {
        let config: PipelineConfig = toml::from_str(text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            problem: ConfigProblem::Syntax(e.to_string().trim_end().to_string()),
        })?;
        config.check().map_err(|p| Error::Config { path: path.to_path_buf(), problem: ConfigProblem::Param(p) })?;
        Ok(config)
    }

    /// Checks what types alone cannot: ranges, the schema's own rules.
    pub fn check(&self) -> std::result::Result<(), ParamError> {
        if self.name.trim().is_empty() {
            return Err(ParamError::invalid("name", "must not be empty"));
        }
        self.schema.check().map_err(|p| p.under("schema"))?;
        let f = self.split.validation_fraction;
        if !(f > 0.0 && f < 1.0) {
            return Err(ParamError::out_of_range("split.validation_fraction", f, "strictly between 0 and 1"));
        }
        self.model.gradient_boosting.check().map_err(|p| p.under("model.gradient_boosting"))?;
        self.model.logistic_regression.check().map_err(|p| p.under("model.logistic_regression"))?;
        self.staging.check()?;
        self.acceptance.check()?;
        self.monitor.check()?;
        self.rollout.check()?;
        self.threshold.check()
    }

    /// sha256 of the configuration as the pipeline understood it (canonical JSON), so that
    /// reformatting the file or reordering its keys does not change the hash.
    pub fn hash(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("a configuration always serialises");
        format!("{:x}", Sha256::digest(&canonical))
    }
}

/// Bootstrap resamples allowed at most: each costs a pass over the staging rows per metric.
pub const MAX_RESAMPLES: usize = 100_000;
/// Consecutive breaching runs allowed at most before a rollback.
pub const MAX_FAILURE_LIMIT: u64 = 1_000;

/// The `[acceptance]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptanceConfig {
    /// Gate 1: lowest acceptable value per metric (e.g. `roc_auc = 0.85`).
    #[serde(default)]
    pub min: BTreeMap<Metric, f64>,
    /// Gate 1: highest acceptable value per metric (e.g. `log_loss = 0.4`).
    #[serde(default)]
    pub max: BTreeMap<Metric, f64>,
    /// Gate 2: metrics that fail the gate when they drop significantly. F1 and accuracy are
    /// always shown with their intervals; by default they do not gate, because at a threshold
    /// chosen on a few hundred validation rows they move with the threshold more than with the
    /// model.
    #[serde(default = "default_compare")]
    pub compare: Vec<Metric>,
    /// Gate 2: the drop tolerated in every compared metric.
    #[serde(default = "default_margin")]
    pub margin: f64,
    /// Gate 2: per-metric tolerated drops, overriding `margin`.
    #[serde(default)]
    pub margins: BTreeMap<Metric, f64>,
    /// Bootstrap resamples (at least 1,000).
    #[serde(default = "default_resamples")]
    pub resamples: usize,
    /// Confidence level of the intervals.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Seed of the bootstrap.
    #[serde(default = "default_bootstrap_seed")]
    pub seed: u64,
    /// The baseline check: the candidate must rank better than a constant score (ROC AUC above
    /// 0.5, average precision above the positive rate), judged by the lower end of the same
    /// paired bootstrap. On unless `baseline = false`: without it, a model that says "yes" to
    /// everyone passes a gate on F1 alone when most rows are positive.
    #[serde(default = "default_baseline")]
    pub baseline: bool,
}

fn default_compare() -> Vec<Metric> {
    vec![Metric::RocAuc, Metric::AveragePrecision]
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
fn default_bootstrap_seed() -> u64 {
    7
}
fn default_baseline() -> bool {
    true
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
            seed: default_bootstrap_seed(),
            baseline: default_baseline(),
        }
    }
}

/// Checks the bounds of a `min` / `max` / `max_drop` map: finite numbers.
fn check_bounds(section: &str, maps: [(&str, &BTreeMap<Metric, f64>); 2]) -> std::result::Result<(), ParamError> {
    for (kind, map) in maps {
        for (metric, v) in map {
            if !v.is_finite() {
                return Err(ParamError::out_of_range(format!("{section}.{kind}.{metric}"), v, "a finite number"));
            }
        }
    }
    Ok(())
}

impl AcceptanceConfig {
    /// Checks the section; the message names the key.
    pub fn check(&self) -> std::result::Result<(), ParamError> {
        check_bounds("acceptance", [("min", &self.min), ("max", &self.max)])?;
        let valid = |m: f64| m.is_finite() && m >= 0.0;
        if !valid(self.margin) {
            return Err(ParamError::out_of_range("acceptance.margin", self.margin, ">= 0"));
        }
        if let Some((metric, m)) = self.margins.iter().find(|(_, m)| !valid(**m)) {
            return Err(ParamError::out_of_range(format!("acceptance.margins.{metric}"), m, ">= 0"));
        }
        if !(1000..=MAX_RESAMPLES).contains(&self.resamples) {
            return Err(ParamError::out_of_range(
                "acceptance.resamples",
                self.resamples,
                format!("in 1000..={MAX_RESAMPLES}"),
            ));
        }
        if !(self.confidence > 0.5 && self.confidence < 1.0) {
            return Err(ParamError::out_of_range("acceptance.confidence", self.confidence, "in (0.5, 1)"));
        }
        Ok(())
    }

    /// The drop tolerated in `metric`.
    pub fn margin_of(&self, metric: Metric) -> f64 {
        *self.margins.get(&metric).unwrap_or(&self.margin)
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

/// The `[monitor]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// Lowest acceptable value per metric on new data.
    #[serde(default)]
    pub min: BTreeMap<Metric, f64>,
    /// Highest acceptable value per metric on new data.
    #[serde(default)]
    pub max: BTreeMap<Metric, f64>,
    /// Largest tolerated drop per metric from the value measured at acceptance.
    #[serde(default = "default_max_drop")]
    pub max_drop: BTreeMap<Metric, f64>,
    /// Consecutive breaching runs before an automatic rollback.
    #[serde(default = "default_failure_limit")]
    pub failure_limit: u64,
    /// Breach when the share of features with major drift exceeds this (off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_drifted_share: Option<f64>,
    /// Drift thresholds.
    #[serde(default)]
    pub drift: DriftThresholds,
    /// Breach when the positive rate of labelled new data moves further than this (absolute)
    /// from the staging rows' at acceptance.
    #[serde(default = "default_max_label_shift")]
    pub max_label_shift: f64,
    /// Breach when the PSI of production's scores on the new data against its scores on the
    /// staging rows at acceptance is above this.
    #[serde(default = "default_max_prediction_psi")]
    pub max_prediction_psi: f64,
    /// Live analysis against Prometheus (`monitor --live`).
    #[serde(default, skip_serializing_if = "LiveConfig::is_default")]
    pub live: LiveConfig,
}

/// The `[monitor.live]` section: checks of a served model, each a PromQL query measured
/// `count` times, `interval_seconds` apart, against a condition; more than `failure_limit`
/// failed measurements are a breach (Argo Rollouts' analysis, without Kubernetes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// Seconds between two measurements of a check.
    pub interval_seconds: f64,
    /// Measurements of each check.
    pub count: u64,
    /// Failed measurements a check tolerates; one more is a breach.
    pub failure_limit: u64,
    /// The range of the rates the default checks take (a PromQL duration).
    pub window: String,
    /// Joined predictions (over every replica, within the window) a version needs before its
    /// live accuracy, F1 and ROC AUC are judged; below it those checks are unmeasured.
    pub min_feedback: u64,
    /// Default check: the share of prediction requests answered 5xx.
    pub max_error_rate: f64,
    /// Default check: the 99th percentile of prediction latency, in seconds.
    pub max_p99_seconds: f64,
    /// Default check: the largest drop of live accuracy from the version's at acceptance.
    pub max_accuracy_drop: f64,
    /// Default check: the largest drop of live F1 from the version's at acceptance.
    pub max_f1_drop: f64,
    /// Default check: the largest drop of live ROC AUC from the version's at acceptance.
    pub max_roc_auc_drop: f64,
    /// Default check: the largest share of features with major rolling drift.
    pub max_drifted_share: f64,
    /// Run the default checks (besides `checks`).
    pub defaults: bool,
    /// Checks of one's own.
    pub checks: Vec<LiveCheck>,
}

/// What a breach of a live check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBreach {
    /// Roll production back (with `--rollback-on-breach`, once the target is judged no worse):
    /// for evidence about the model itself, such as its accuracy on feedback.
    Rollback,
    /// Breach and alert, never roll back: for what the previous version would suffer too
    /// (drift of the inputs, latency, errors).
    Alert,
}

impl OnBreach {
    /// The name written in the configuration and reports.
    pub fn name(self) -> &'static str {
        match self {
            OnBreach::Rollback => "rollback",
            OnBreach::Alert => "alert",
        }
    }
}

/// One check of `[monitor.live]`: in the query, `$model` is the model's name, `$version` the
/// version analysed, `$window` the section's window and `$min_feedback` its minimum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveCheck {
    /// Its name in reports.
    pub name: String,
    /// The PromQL query; every series it returns is judged, the worst counts (none: no data).
    pub query: String,
    /// What a healthy measurement satisfies: `< x`, `<= x`, `> x`, `>= x`.
    pub condition: String,
    /// Overrides the section's interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<f64>,
    /// Overrides the section's count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Overrides the section's failure limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<u64>,
    /// What a breach does: `alert` (the default for a check of one's own) or `rollback`.
    #[serde(default = "default_on_breach")]
    pub on_breach: OnBreach,
}

fn default_on_breach() -> OnBreach {
    OnBreach::Alert
}

/// A parsed condition: the comparison and its bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    /// `<`, `<=`, `>` or `>=`.
    pub op: &'static str,
    /// The bound.
    pub bound: f64,
}

impl Condition {
    /// Parses `< x`, `<= x`, `> x`, `>= x`.
    pub fn parse(text: &str) -> std::result::Result<Condition, String> {
        let t = text.trim();
        let (op, rest) = ["<=", ">=", "<", ">"]
            .iter()
            .find_map(|op| t.strip_prefix(op).map(|rest| (*op, rest)))
            .ok_or_else(|| format!("`{text}` does not start with <, <=, > or >="))?;
        let bound: f64 = rest.trim().parse().map_err(|_| format!("`{}` in `{text}` is not a number", rest.trim()))?;
        if !bound.is_finite() {
            return Err(format!("the bound of `{text}` is not finite"));
        }
        Ok(Condition { op, bound })
    }

    /// True when `value` satisfies the condition (NaN never does).
    pub fn holds(&self, value: f64) -> bool {
        match self.op {
            "<" => value < self.bound,
            "<=" => value <= self.bound,
            ">" => value > self.bound,
            _ => value >= self.bound,
        }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.op, self.bound)
    }
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            interval_seconds: 10.0,
            count: 3,
            failure_limit: 1,
            window: "5m".into(),
            min_feedback: 200,
            max_error_rate: 0.01,
            max_p99_seconds: 0.25,
            max_accuracy_drop: 0.05,
            max_f1_drop: 0.1,
            max_roc_auc_drop: 0.05,
            max_drifted_share: 0.3,
            defaults: true,
            checks: Vec::new(),
        }
    }
}

impl LiveConfig {
    fn is_default(&self) -> bool {
        *self == LiveConfig::default()
    }

    /// Checks the section; the message names the key.
    pub fn check(&self) -> std::result::Result<(), ParamError> {
        let seconds = |key: &str, s: f64| {
            if s.is_finite() && s > 0.0 && s <= 86_400.0 {
                Ok(())
            } else {
                Err(ParamError::out_of_range(format!("monitor.live.{key}"), s, "in (0, 86400]"))
            }
        };
        let count = |key: &str, n: u64| {
            if (1..=1000).contains(&n) {
                Ok(())
            } else {
                Err(ParamError::out_of_range(format!("monitor.live.{key}"), n, "in 1..=1000"))
            }
        };
        seconds("interval_seconds", self.interval_seconds)?;
        count("count", self.count)?;
        if self.failure_limit >= self.count {
            return Err(ParamError::out_of_range("monitor.live.failure_limit", self.failure_limit, "below count"));
        }
        let window_ok = self.window.len() > 1
            && self.window[..self.window.len() - 1].bytes().all(|b| b.is_ascii_digit())
            && self.window.ends_with(['s', 'm', 'h', 'd']);
        if !window_ok {
            return Err(ParamError::Invalid {
                key: "monitor.live.window".into(),
                why: format!("`{}` is not a PromQL duration such as 30s, 5m or 1h", self.window),
            });
        }
        for (key, v) in [
            ("max_error_rate", self.max_error_rate),
            ("max_accuracy_drop", self.max_accuracy_drop),
            ("max_f1_drop", self.max_f1_drop),
            ("max_roc_auc_drop", self.max_roc_auc_drop),
            ("max_drifted_share", self.max_drifted_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(ParamError::out_of_range(format!("monitor.live.{key}"), v, "in [0, 1]"));
            }
        }
        seconds("max_p99_seconds", self.max_p99_seconds)?;
        for c in &self.checks {
            let key = format!("monitor.live.checks `{}`", c.name);
            Condition::parse(&c.condition).map_err(|why| ParamError::Invalid { key: key.clone(), why })?;
            if c.query.trim().is_empty() {
                return Err(ParamError::Invalid { key, why: "the query is empty".into() });
            }
            if let Some(s) = c.interval_seconds {
                seconds("checks.interval_seconds", s)?;
            }
            let n = c.count.unwrap_or(self.count);
            count("checks.count", n)?;
            if c.failure_limit.unwrap_or(self.failure_limit) >= n {
                return Err(ParamError::Invalid { key, why: "failure_limit must be below count".into() });
            }
        }
        if !self.defaults && self.checks.is_empty() {
            return Err(ParamError::Invalid {
                key: "monitor.live".into(),
                why: "defaults = false and no checks: nothing would be analysed".into(),
            });
        }
        Ok(())
    }
}

fn default_max_label_shift() -> f64 {
    0.05
}

fn default_max_prediction_psi() -> f64 {
    0.25
}

fn default_max_drop() -> BTreeMap<Metric, f64> {
    BTreeMap::from([(Metric::RocAuc, 0.05), (Metric::F1, 0.1)])
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
            max_label_shift: default_max_label_shift(),
            max_prediction_psi: default_max_prediction_psi(),
            live: LiveConfig::default(),
        }
    }
}

impl MonitorConfig {
    /// Checks the section; the message names the key.
    pub fn check(&self) -> std::result::Result<(), ParamError> {
        check_bounds("monitor", [("min", &self.min), ("max", &self.max)])?;
        check_bounds("monitor", [("max_drop", &self.max_drop), ("max_drop", &BTreeMap::new())])?;
        if !(1..=MAX_FAILURE_LIMIT).contains(&self.failure_limit) {
            return Err(ParamError::out_of_range(
                "monitor.failure_limit",
                self.failure_limit,
                format!("in 1..={MAX_FAILURE_LIMIT}"),
            ));
        }
        if !(0.0..=1.0).contains(&self.max_label_shift) {
            return Err(ParamError::out_of_range("monitor.max_label_shift", self.max_label_shift, "in [0, 1]"));
        }
        if !(self.max_prediction_psi > 0.0 && self.max_prediction_psi.is_finite()) {
            return Err(ParamError::out_of_range(
                "monitor.max_prediction_psi",
                self.max_prediction_psi,
                "> 0 and finite",
            ));
        }
        if let Some(s) = self.max_drifted_share {
            if !(0.0..=1.0).contains(&s) {
                return Err(ParamError::out_of_range("monitor.max_drifted_share", s, "in [0, 1]"));
            }
        }
        self.live.check()?;
        let d = &self.drift;
        if !(0.0 < d.psi_moderate
            && d.psi_moderate <= d.psi_major
            && 0.0 < d.js_moderate
            && d.js_moderate <= d.js_major
            && d.psi_major.is_finite()
            && d.js_major.is_finite())
        {
            return Err(ParamError::Invalid {
                key: "monitor.drift".into(),
                why: "thresholds must be positive and finite with moderate <= major".into(),
            });
        }
        Ok(())
    }
}
