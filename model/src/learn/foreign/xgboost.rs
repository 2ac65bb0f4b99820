//! XGBoost's JSON model (`save_model("model.json")`) read into a [`super::ForeignModel`].

use super::{ForeignModel, ReadError};

/// Reads an XGBoost JSON model.
pub fn read(_bytes: &[u8]) -> Result<ForeignModel, ReadError> {
    Err(ReadError::Unsupported("XGBoost models are not read yet".into()))
}
