//! Measuring scores: metrics and curves, the paired bootstrap and McNemar's test, drift, the
//! choice of the decision threshold. Knows nothing of how the scores were made.

pub mod calibration;
pub mod compare;
pub mod drift;
pub mod metrics;
pub mod threshold;
