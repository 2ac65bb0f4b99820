//! Stratified k-fold cross-validation of a whole build (split, fit, threshold) — the honest
//! estimate of how a configuration does on data it has not seen.

use serde::{Deserialize, Serialize};

use crate::data::dataset::Dataset;
use crate::error::{ParamError, Result};
use crate::eval::metrics::MetricSet;
use crate::learn::split::stratified_folds;
use crate::pipeline::build::{build_owned, check_trainable, BuildContext};
use crate::pipeline::config::PipelineConfig;

/// Folds allowed at most: each is a whole build.
pub const MAX_FOLDS: usize = 100;

/// Metrics of one fold's held-out rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldResult {
    /// Fold number, from 0.
    pub fold: usize,
    /// At the threshold the build chose on its own validation rows.
    pub at_threshold: MetricSet,
    /// At 0.5, to compare with tools that do not choose a threshold.
    pub at_half: MetricSet,
}

/// Every fold, with the row assignment used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossValidation {
    /// Number of folds.
    pub folds: usize,
    /// Seed of the fold assignment.
    pub seed: u64,
    /// Per-fold results.
    pub results: Vec<FoldResult>,
    /// The fold of each row of the data.
    pub assignment: Vec<usize>,
}

/// Mean and sample standard deviation.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// Runs `folds`-fold stratified cross-validation of the full build on `data`.
pub fn cross_validate(config: &PipelineConfig, data: &Dataset, folds: usize, seed: u64) -> Result<CrossValidation> {
    check_trainable(data)?;
    if !(2..=MAX_FOLDS).contains(&folds) {
        return Err(crate::Error::Param(ParamError::out_of_range("folds", folds, format!("in 2..={MAX_FOLDS}"))));
    }
    let labels = data.require_labels()?;
    let assignment = stratified_folds(labels, folds, seed);
    let mut results = Vec::with_capacity(folds);
    for fold in 0..folds {
        let train_rows: Vec<usize> = (0..data.len()).filter(|&i| assignment[i] != fold).collect();
        let test_rows: Vec<usize> = (0..data.len()).filter(|&i| assignment[i] == fold).collect();
        let artifact = build_owned(config, data.select(&train_rows), &BuildContext::default())?;
        let test = data.select(&test_rows);
        let test_labels = test.require_labels()?;
        let scores = artifact.score(&test)?;
        results.push(FoldResult {
            fold,
            at_threshold: MetricSet::compute(test_labels, &scores.probabilities, artifact.threshold.value)?,
            at_half: MetricSet::compute(test_labels, &scores.probabilities, 0.5)?,
        });
    }
    Ok(CrossValidation { folds, seed, results, assignment })
}
