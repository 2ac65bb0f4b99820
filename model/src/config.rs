//! The pipeline configuration (`pipeline.toml`): data, schema, model, split and threshold.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::gate::AcceptanceConfig;
use crate::gbdt::BoostingParams;
use crate::logistic::LogisticParams;
use crate::monitor::MonitorConfig;
use crate::schema::Schema;
use crate::staging::StagingConfig;

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
    /// Training CSV; a relative path is taken from the configuration file's folder.
    pub path: PathBuf,
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

/// A model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Histogram gradient-boosted trees (this crate's own implementation).
    #[default]
    GradientBoosting,
    /// L2-regularised logistic regression (linfa-logistic).
    LogisticRegression,
}

impl Family {
    /// The name used in configurations and reports.
    pub fn name(self) -> &'static str {
        match self {
            Family::GradientBoosting => "gradient_boosting",
            Family::LogisticRegression => "logistic_regression",
        }
    }
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
    /// Refit on all training rows (fit + validation) once the threshold is chosen.
    #[serde(default = "default_true")]
    pub refit: bool,
}

fn default_seed() -> u64 {
    42
}
fn default_validation_fraction() -> f64 {
    0.2
}
fn default_true() -> bool {
    true
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig { seed: default_seed(), validation_fraction: default_validation_fraction(), refit: true }
    }
}

/// The `[threshold]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// What the threshold maximises on the validation rows.
    #[serde(default)]
    pub optimise: ThresholdObjective,
    /// The threshold itself, when `optimise = "fixed"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

impl Default for ThresholdConfig {
    fn default() -> Self {
        ThresholdConfig { optimise: ThresholdObjective::F1, value: None }
    }
}

/// The criterion the decision threshold maximises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdObjective {
    /// F1 of the positive class.
    #[default]
    F1,
    /// Accuracy.
    Accuracy,
    /// Youden's J: recall + specificity - 1 (balanced accuracy).
    Youden,
    /// No optimisation: `value` is used as is.
    Fixed,
}

impl PipelineConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<PipelineConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        PipelineConfig::parse(&text, path)
    }

    /// Parses and checks a configuration; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<PipelineConfig> {
        let config: PipelineConfig = toml::from_str(text)
            .map_err(|e| Error::Config { path: path.to_path_buf(), message: e.to_string().trim_end().to_string() })?;
        config.check().map_err(|message| Error::Config { path: path.to_path_buf(), message })?;
        Ok(config)
    }

    /// Checks what types alone cannot: ranges, the schema's own rules.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("name: must not be empty".into());
        }
        self.schema.check().map_err(|m| format!("schema.{m}"))?;
        let f = self.split.validation_fraction;
        if !(f > 0.0 && f < 1.0) {
            return Err(format!("split.validation_fraction: {f} is not strictly between 0 and 1"));
        }
        self.model.gradient_boosting.check().map_err(|m| format!("model.gradient_boosting.{m}"))?;
        self.model.logistic_regression.check().map_err(|m| format!("model.logistic_regression.{m}"))?;
        self.staging.check()?;
        self.acceptance.check()?;
        self.monitor.check()?;
        match (self.threshold.optimise, self.threshold.value) {
            (ThresholdObjective::Fixed, None) => Err("threshold.value: required when optimise = \"fixed\"".into()),
            (ThresholdObjective::Fixed, Some(v)) if !(0.0..=1.0).contains(&v) => {
                Err(format!("threshold.value: {v} is not a probability"))
            }
            (ThresholdObjective::Fixed, Some(_)) => Ok(()),
            (_, Some(_)) => Err("threshold.value: only used with optimise = \"fixed\"".into()),
            (_, None) => Ok(()),
        }
    }

    /// sha256 of the configuration as the pipeline understood it (canonical JSON), so that
    /// reformatting the file or reordering its keys does not change the hash.
    pub fn hash(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("a configuration always serialises");
        hex(&Sha256::digest(&canonical))
    }
}

/// Lower-case hexadecimal of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
