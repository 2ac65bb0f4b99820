//! The build: split, fit encoders and model, choose the threshold, measure, refit, seal.

use linfa::traits::Fit;

use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use crate::eval::drift::Reference;
use crate::eval::metrics::MetricSet;
use crate::eval::threshold;
use crate::learn::features::{MissingHandling, Preprocessor};
use crate::learn::labelled;
use crate::learn::model::{Family, FittedModel};
use crate::learn::split::stratified_holdout;
use crate::pipeline::artifact::{Artifact, Lineage};
use crate::pipeline::config::PipelineConfig;
use crate::pipeline::staging::StagingSpec;

/// What the caller knows that the library must not find out by itself (clock, git).
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    /// The configuration file's name.
    pub config_file: String,
    /// The git commit, when there is one.
    pub git_commit: Option<String>,
    /// Creation time, RFC 3339.
    pub created_at: String,
}

/// Encoders and model fitted together on some rows.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// The encoders.
    pub preprocessing: Preprocessor,
    /// The model.
    pub model: FittedModel,
}

impl Fitted {
    /// Probabilities of every row of `data`.
    pub fn probabilities(&self, data: &Dataset) -> Result<Vec<f64>> {
        let encoded = self.preprocessing.transform(data)?;
        let inputs = encoded.matrix.as_slice().expect("encoded matrices are row-major and contiguous");
        let mut probabilities = vec![0.0; data.len()];
        self.model.scorer().probabilities(inputs, encoded.matrix.ncols(), &mut probabilities);
        Ok(probabilities)
    }
}

/// Fits encoders and the configured model on all rows of `data`.
pub fn fit(config: &PipelineConfig, data: &Dataset) -> Result<Fitted> {
    let labels = data.require_labels()?;
    // A linear model cannot read NaN: it imputes; trees learn where a missing value goes.
    let how = match config.model.family {
        Family::GradientBoosting => MissingHandling::Nan,
        Family::LogisticRegression => MissingHandling::Impute,
    };
    let preprocessing = Preprocessor::fit(data, how)?;
    let encoded = preprocessing.transform(data)?;
    let rows = labelled(encoded.matrix.view(), labels);
    let model = match config.model.family {
        Family::GradientBoosting => {
            FittedModel::GradientBoosting(config.model.gradient_boosting.validate(config.split.seed)?.fit(&rows)?)
        }
        Family::LogisticRegression => {
            FittedModel::LogisticRegression(config.model.logistic_regression.validate()?.fit(&rows)?)
        }
    };
    Ok(Fitted { preprocessing, model })
}

/// Refuses data that cannot train a model: no rows or a single class.
pub fn check_trainable(data: &Dataset) -> Result<()> {
    let labels = data.require_labels()?;
    let positives = labels.iter().filter(|&&y| y).count();
    let unusable = |problem: String| Error::Unusable { path: data.report.file.clone().into(), problem };
    if labels.is_empty() {
        return Err(unusable("no data rows to train on".into()));
    }
    if positives == 0 || positives == labels.len() {
        let class = if positives == 0 { "negative" } else { "positive" };
        return Err(unusable(format!(
            "all {} rows are {class}: a classifier needs both classes in its training data",
            labels.len()
        )));
    }
    if positives < 2 || labels.len() - positives < 2 {
        return Err(unusable("each class needs at least two rows: one to fit, one to validate".into()));
    }
    Ok(())
}

/// Builds an artifact: sets the staging rows aside (see [`crate::pipeline::staging`]), holds out a
/// stratified validation split of the rest, fits on the remainder, chooses the threshold and
/// measures on the validation rows, then (by default) refits on every non-staging row.
pub fn build(config: &PipelineConfig, data: &Dataset, context: &BuildContext) -> Result<Artifact> {
    data.require_labels()?;
    let (pool_rows, staging_rows) = config.staging.split(&data.row_keys);
    let pool = data.select(&pool_rows);
    check_trainable(&pool)?;
    let labels = pool.require_labels()?;
    let (fit_rows, validation_rows) = stratified_holdout(labels, config.split.validation_fraction, config.split.seed);
    let fit_data = pool.select(&fit_rows);
    let validation_data = pool.select(&validation_rows);
    let validation_labels = validation_data.require_labels()?;

    // The validation fit and the final refit are independent: fit them on both cores.
    let (fitted, refitted) = std::thread::scope(|scope| {
        let refit = config.split.refit.then(|| scope.spawn(|| fit(config, &pool)));
        let fitted = fit(config, &fit_data);
        (fitted, refit.map(|h| h.join().expect("the refit thread panicked")))
    });
    let fitted = fitted?;
    let probabilities = fitted.probabilities(&validation_data)?;
    let threshold = threshold::choose(&config.threshold, validation_labels, &probabilities)?;
    let validation = MetricSet::compute(validation_labels, &probabilities, threshold.value)?;

    let (final_fit, rows_final_fit) = match refitted {
        Some(refit) => (refit?, pool.len()),
        None => (fitted, fit_rows.len()),
    };

    let staging = match &config.staging.path {
        Some(path) => StagingSpec::File { path: path.display().to_string() },
        None => {
            let all_labels = data.require_labels()?;
            StagingSpec::Holdout {
                fraction: config.staging.fraction,
                salt: config.staging.salt.clone(),
                rows: staging_rows.len() as u64,
                positives: staging_rows.iter().filter(|&&i| all_labels[i]).count() as u64,
                keys: crate::data::rowhash::KeyScheme::CURRENT,
            }
        }
    };

    Ok(Artifact {
        name: config.name.clone(),
        schema: data.schema.clone(),
        preprocessing: final_fit.preprocessing,
        model: final_fit.model,
        threshold,
        validation,
        staging,
        reference: Reference::fit(&pool),
        config: config.clone(),
        lineage: Lineage {
            data_file: data.report.file.clone(),
            data_sha256: data.report.sha256.clone(),
            rows_total: data.len() as u64,
            rows_staging: staging_rows.len() as u64,
            rows_fit: fit_rows.len() as u64,
            rows_validation: validation_rows.len() as u64,
            rows_final_fit: rows_final_fit as u64,
            config_file: context.config_file.clone(),
            config_sha256: config.hash(),
            git_commit: context.git_commit.clone(),
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            created_at: context.created_at.clone(),
        },
        origin: None,
    })
}
