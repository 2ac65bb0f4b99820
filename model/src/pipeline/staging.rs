//! Which rows are staging rows: a property of each row's content, not of the file it sits in.
//!
//! A row is held out as staging when a salted hash of its feature values falls below the
//! configured fraction. So a retrain with another seed, a model built on a sample, and a model
//! built on a grown file all hold out the same sessions: production never trained on the rows a
//! candidate is compared on, and exact duplicate rows never straddle the split. Per class the
//! held-out share equals the fraction in expectation (the hash ignores the label) rather than
//! exactly; the report shows both classes' counts.

use serde::{Deserialize, Serialize};

use crate::data::rowhash::{KeyScheme, RowHasher};
use crate::error::ParamError;
use crate::rng::mix;

/// The `[staging]` section: where acceptance data comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagingConfig {
    /// A separate staging CSV; when absent, staging rows are held out of the training data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<std::path::PathBuf>,
    /// Share of the training data's rows held out as staging (when `path` is absent).
    #[serde(default = "default_fraction")]
    pub fraction: f64,
    /// Salt of the row hash: another salt draws other staging rows.
    #[serde(default = "default_salt")]
    pub salt: String,
}

fn default_fraction() -> f64 {
    0.2
}

fn default_salt() -> String {
    "staging".into()
}

impl Default for StagingConfig {
    fn default() -> Self {
        StagingConfig { path: None, fraction: default_fraction(), salt: default_salt() }
    }
}

/// How an artifact's staging rows are found again: recorded in the artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum StagingSpec {
    /// Rows of the training file whose hash falls below `fraction`.
    Holdout {
        /// Share held out.
        fraction: f64,
        /// Salt of the row hash.
        salt: String,
        /// How many rows of the training file were held out.
        rows: u64,
        /// Positives among them.
        positives: u64,
        /// What the rows' keys were computed from ([`KeyScheme::Text`] when the artifact
        /// records none: it was built before the scheme was recorded). Acceptance refuses to
        /// find staging rows again by keys of another scheme than the data's.
        #[serde(default = "KeyScheme::unrecorded", skip_serializing_if = "KeyScheme::is_text")]
        keys: KeyScheme,
    },
    /// A separate file.
    File {
        /// The staging file as configured.
        path: String,
    },
}

impl StagingSpec {
    /// True when a row with this key is a staging row of a hold-out split (the key and the
    /// split's of one [`KeyScheme`]).
    pub fn is_staging(fraction: f64, salt: &str, key: u64) -> bool {
        let mut h = RowHasher::default();
        h.field(salt.as_bytes());
        let salted = mix(key ^ h.finish());
        (salted >> 11) as f64 * (1.0 / (1u64 << 53) as f64) < fraction
    }
}

impl StagingConfig {
    /// Checks the section; the message names the key.
    pub fn check(&self) -> std::result::Result<(), ParamError> {
        if self.path.is_none() && !(self.fraction > 0.0 && self.fraction < 1.0) {
            return Err(ParamError::out_of_range("staging.fraction", self.fraction, "strictly between 0 and 1"));
        }
        Ok(())
    }

    /// Splits row keys into (training rows, staging rows) when staging is held out of the
    /// training data; all rows train when a separate staging file is configured.
    pub fn split(&self, keys: &[u64]) -> (Vec<usize>, Vec<usize>) {
        if self.path.is_some() {
            return ((0..keys.len()).collect(), Vec::new());
        }
        (0..keys.len()).partition(|&i| !StagingSpec::is_staging(self.fraction, &self.salt, keys[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fields: &[&str]) -> u64 {
        RowHasher::key_of(fields)
    }

    #[test]
    fn the_key_scheme_is_recorded_and_an_artifact_without_one_keyed_by_text() {
        let old = r#"{"source":"holdout","fraction":0.2,"salt":"staging","rows":10,"positives":3}"#;
        let spec: StagingSpec = serde_json::from_str(old).unwrap();
        assert!(matches!(spec, StagingSpec::Holdout { keys: KeyScheme::Text, .. }), "{spec:?}");
        // An older artifact writes again to the bytes its checksum covers.
        assert_eq!(serde_json::to_string(&spec).unwrap(), old);
        let new = StagingSpec::Holdout {
            fraction: 0.2,
            salt: "staging".into(),
            rows: 10,
            positives: 3,
            keys: KeyScheme::CURRENT,
        };
        let text = serde_json::to_string(&new).unwrap();
        assert!(text.ends_with(r#","keys":"values"}"#), "{text}");
        assert_eq!(serde_json::from_str::<StagingSpec>(&text).unwrap(), new);
    }

    #[test]
    fn membership_depends_on_the_row_alone_and_matches_the_fraction() {
        let keys: Vec<u64> = (0..20_000).map(|i| key(&[&i.to_string(), "x"])).collect();
        let config = StagingConfig::default();
        let (train, staging) = config.split(&keys);
        assert_eq!(train.len() + staging.len(), 20_000);
        let share = staging.len() as f64 / 20_000.0;
        assert!((share - 0.2).abs() < 0.01, "{share}");
        // A subset of the rows keeps exactly the same membership.
        let subset: Vec<u64> = keys.iter().step_by(7).copied().collect();
        let (_, sub_staging) = config.split(&subset);
        let expected: Vec<usize> = staging.iter().filter(|&&i| i % 7 == 0).map(|&i| i / 7).collect();
        assert_eq!(sub_staging, expected);
        // Another salt draws other rows.
        let other = StagingConfig { salt: "other".into(), ..StagingConfig::default() };
        assert_ne!(other.split(&keys).1, staging);
    }
}
