//! From a configuration and a validated data set to a sealed artifact and back: the
//! configuration, the build, cross-validation, the artifact, batch scoring, staging rows, the
//! starting configuration written from a data file. Knows nothing of gates, registries or
//! reports.

pub mod artifact;
pub mod build;
pub mod config;
pub mod crossval;
pub mod import;
pub mod rollout;
pub mod scoring;
pub mod staging;
pub mod starter;
