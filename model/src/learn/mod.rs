//! Fitting and scoring models: feature encoders, splits, the two model families and the fitted
//! model with its batch scorer. Knows nothing of evaluation, gates, registries or configuration
//! files.

pub mod features;
pub mod foreign;
pub mod gbdt;
pub mod logistic;
pub mod model;
pub mod split;

/// Labelled inputs as linfa's families take them: rows × inputs, borrowed, and their labels.
pub type Labelled<'a> = linfa::DatasetBase<ndarray::ArrayView2<'a, f64>, ndarray::ArrayView1<'a, bool>>;

/// Borrows `x` (rows × inputs) and `y` (one label a row) as a [`Labelled`] data set.
pub fn labelled<'a>(x: ndarray::ArrayView2<'a, f64>, y: &'a [bool]) -> Labelled<'a> {
    linfa::DatasetBase::new(x, ndarray::ArrayView1::from(y))
}

/// The logistic function: a log-odds score to a probability.
pub(crate) fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}
