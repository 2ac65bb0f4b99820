//! The versioned model artifact: one JSON file holding everything needed to predict and to
//! trace a model back to its data, configuration and commit, sealed by a sha256.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::dataset::Dataset;
use crate::data::record::Record;
use crate::data::schema::Schema;
use crate::error::{Error, Result};
use crate::eval::drift::Reference;
use crate::eval::metrics::MetricSet;
use crate::eval::threshold::Threshold;
use crate::learn::features::Preprocessor;
use crate::learn::model::FittedModel;
use crate::pipeline::config::PipelineConfig;
use crate::pipeline::staging::StagingSpec;

/// The artifact format this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// Where a model came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// The training data file, as named on the command line or in the configuration.
    pub data_file: String,
    /// sha256 of the training data's bytes.
    pub data_sha256: String,
    /// Rows in the training file.
    pub rows_total: u64,
    /// Rows of the training file held out as staging (never trained on).
    pub rows_staging: u64,
    /// Rows the validation model was fitted on.
    pub rows_fit: u64,
    /// Rows held out to choose the threshold and measure validation metrics.
    pub rows_validation: u64,
    /// Rows the final model was fitted on (all rows when refitting).
    pub rows_final_fit: u64,
    /// The configuration file.
    pub config_file: String,
    /// sha256 of the configuration as understood (see [`PipelineConfig::hash`]).
    pub config_sha256: String,
    /// The git commit of the working tree, when built inside a git checkout.
    pub git_commit: Option<String>,
    /// Version of the model crate that built the artifact.
    pub crate_version: String,
    /// Creation time, RFC 3339, UTC.
    pub created_at: String,
}

/// Where a model trained by another library came from (see [`crate::pipeline::import`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The library: `lightgbm` or `xgboost`.
    pub library: String,
    /// The library's version as the model file states it (LightGBM: its format, `v4`;
    /// XGBoost: `3.2.0`), when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library_version: Option<String>,
    /// The model file, as named to the import.
    pub file: String,
    /// sha256 of the model file's bytes.
    pub sha256: String,
    /// The objective as the file names it.
    pub objective: String,
    /// Number of trees.
    pub trees: usize,
}

/// Everything needed to score data and to explain where the model came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// The model's name (from the configuration).
    pub name: String,
    /// The schema new data is validated against.
    pub schema: Schema,
    /// The fitted feature encoders.
    pub preprocessing: Preprocessor,
    /// The fitted model.
    pub model: FittedModel,
    /// The decision threshold.
    pub threshold: Threshold,
    /// Metrics on the validation rows, of the model fitted without them.
    pub validation: MetricSet,
    /// How acceptance finds the staging rows again.
    pub staging: StagingSpec,
    /// The training distribution of each feature, for drift monitoring.
    pub reference: Reference,
    /// The configuration the model was built with.
    pub config: PipelineConfig,
    /// Provenance.
    pub lineage: Lineage,
    /// The library that trained the model, for a model imported from another library (absent
    /// for a model this crate fitted, and in artifacts written before imports existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// The file layout: the checksum covers the exact bytes of `artifact`.
#[derive(Deserialize)]
struct Envelope<'a> {
    format_version: u64,
    sha256: String,
    #[serde(borrow)]
    artifact: &'a serde_json::value::RawValue,
}

/// Probabilities of a batch, with what the encoders could not place.
#[derive(Debug, Clone)]
pub struct Scores {
    /// Positive-class probability of each row, in order.
    pub probabilities: Vec<f64>,
    /// Column → rows whose level was not seen in training.
    pub unseen_levels: BTreeMap<String, u64>,
}

impl Artifact {
    fn body(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an artifact always serialises")
    }

    /// sha256 of the artifact's content, as recorded in its file.
    pub fn checksum(&self) -> String {
        format!("{:x}", Sha256::digest(self.body()))
    }

    /// The file's bytes: format version, checksum, content.
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = self.body();
        let sum = format!("{:x}", Sha256::digest(&body));
        let mut out = format!("{{\"format_version\":{FORMAT_VERSION},\"sha256\":\"{sum}\",\"artifact\":").into_bytes();
        out.extend_from_slice(&body);
        out.extend_from_slice(b"}\n");
        out
    }

    /// Writes the artifact atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::atomic::write(path, &self.to_bytes())
    }

    /// Reads an artifact, refusing another format version or content that does not match its
    /// checksum.
    pub fn load(path: &Path) -> Result<Artifact> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Artifact::from_bytes(&bytes, path)
    }

    /// Parses an artifact's bytes; `path` only names the file in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Artifact> {
        let corrupt = |message: String| Error::ArtifactCorrupt { path: path.to_path_buf(), message };
        let envelope: Envelope = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
        if envelope.format_version != FORMAT_VERSION {
            return Err(Error::ArtifactVersion {
                path: path.to_path_buf(),
                found: envelope.format_version,
                expected: FORMAT_VERSION,
            });
        }
        let actual = format!("{:x}", Sha256::digest(envelope.artifact.get().as_bytes()));
        if actual != envelope.sha256 {
            return Err(Error::ArtifactChecksum { path: path.to_path_buf(), recorded: envelope.sha256, actual });
        }
        let artifact: Artifact = serde_json::from_str(envelope.artifact.get()).map_err(|e| corrupt(e.to_string()))?;
        artifact.check().map_err(corrupt)?;
        Ok(artifact)
    }

    /// Checks what a checksum cannot: that the content is a model this build can run (an
    /// artifact edited by hand and sealed again may hold a tree that loops, weights of the wrong
    /// length, a schema without a label).
    pub fn check(&self) -> std::result::Result<(), String> {
        self.schema.check().map_err(|p| format!("schema: {p}"))?;
        self.preprocessing.check(&self.schema)?;
        self.model.check(self.preprocessing.width())?;
        self.reference.check()?;
        let t = self.threshold.value;
        if !(0.0..=1.0).contains(&t) {
            return Err(format!("the threshold {t} is not a probability"));
        }
        if let StagingSpec::Holdout { fraction, .. } = self.staging {
            if !(fraction > 0.0 && fraction < 1.0) {
                return Err(format!("the staging fraction {fraction} is not strictly between 0 and 1"));
            }
        }
        Ok(())
    }

    /// Parses `(column, value)` pairs into a record with this model's schema.
    pub fn record<'a>(&self, fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Record> {
        Record::parse(&self.schema, fields)
    }

    /// Probability that the session ends in a purchase.
    pub fn probability(&self, record: &Record) -> f64 {
        let mut inputs = vec![0.0; self.preprocessing.width()];
        self.preprocessing.encode_record(record, &mut inputs);
        self.model.probability(&inputs)
    }

    /// The seed's function: 1 when the customer is predicted to purchase, else 0, at the
    /// artifact's own threshold.
    pub fn predict_customer_behavior(&self, record: &Record) -> u8 {
        u8::from(self.probability(record) >= self.threshold.value)
    }

    /// Scores every row of a data set validated with this model's schema.
    pub fn score(&self, data: &Dataset) -> Result<Scores> {
        let encoded = self.preprocessing.transform(data)?;
        let width = encoded.matrix.ncols().max(1);
        let inputs = encoded.matrix.as_slice().expect("encoded matrices are row-major and contiguous");
        let mut probabilities = vec![0.0; data.len()];
        let scorer = &self.model.scorer();
        // Rows are independent: score them on every core, each thread its own block of rows.
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
        let block = data.len().div_ceil(threads).max(4096);
        std::thread::scope(|scope| {
            for (out, rows) in probabilities.chunks_mut(block).zip(inputs.chunks(block * width)) {
                scope.spawn(move || scorer.probabilities(rows, width, out));
            }
        });
        Ok(Scores { probabilities, unseen_levels: encoded.unseen_levels })
    }
}
