//! mlgate's model crate: schema-validated data → features → fitted model → sealed artifact →
//! predictions and metrics. No printing, no process exit, no network: callers decide that.
#![warn(missing_docs)]

pub mod artifact;
pub mod atomic;
pub mod compare;
pub mod config;
pub mod crossval;
pub mod dataset;
pub mod drift;
pub mod error;
pub mod features;
pub mod forest;
pub mod gate;
pub mod gbdt;
pub mod generate;
pub mod logistic;
pub mod metrics;
pub mod monitor;
pub mod record;
pub mod registry;
pub mod report;
pub mod rng;
pub mod schema;
pub mod scoring;
pub mod split;
pub mod staging;
pub mod threshold;
pub mod train;
pub mod validation;

pub use artifact::{Artifact, FittedModel, Scores};
pub use config::PipelineConfig;
pub use dataset::Dataset;
pub use error::{DataError, Error, HeaderProblem, Result, Rule};
pub use metrics::MetricSet;
pub use record::Record;
pub use schema::Schema;
pub use validation::{load_csv, read_csv, LabelPolicy, ValidationReport};
