//! mlgate's model crate: schema-validated data → features → fitted model → sealed artifact →
//! predictions, metrics, gates and the registry. No printing, no process exit, no network:
//! callers decide that.
//!
//! The crate is layered; a layer uses the ones before it and knows nothing of those after it
//! (ARCHITECTURE.md, checked by the tidy test `tests/tidy.rs`):
//!
//! 0. [`error`], [`rng`], [`atomic`]: the foundation every layer may use;
//! 1. [`data`]: what enters (schema, CSV and Parquet readers, validation, dataset, records);
//! 2. [`learn`] and [`eval`], side by side and blind to each other: fitting and scoring models;
//!    measuring and comparing scores;
//! 3. [`pipeline`]: the configuration, the build, cross-validation, the artifact, batch scoring,
//!    staging rows;
//! 4. [`lifecycle`]: acceptance, the gate, monitoring, the registry;
//! 5. [`render`]: Markdown for people; nothing in the library uses it.
#![warn(missing_docs)]

pub mod atomic;
pub mod error;
pub mod rng;

pub mod data;
pub mod eval;
pub mod learn;
pub mod lifecycle;
pub mod pipeline;
pub mod render;

pub use data::dataset::Dataset;
pub use data::record::Record;
pub use data::report::{DataError, HeaderProblem, Rule, ValidationReport};
pub use data::schema::Schema;
pub use data::validation::{load, load_csv, read_csv, Format, LabelPolicy};
pub use error::{Error, Result};
pub use eval::metrics::{Metric, MetricSet};
pub use learn::model::{Family, FittedModel};
pub use pipeline::artifact::{Artifact, Scores};
pub use pipeline::config::PipelineConfig;
