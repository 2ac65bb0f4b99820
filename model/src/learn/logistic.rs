//! L2-regularised logistic regression, fitted by linfa-logistic and kept as plain weights.

use linfa::prelude::*;
use linfa::traits::PredictInplace;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, ArrayBase, ArrayView1, ArrayView2, Data, Ix2};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ParamError, Result};
use crate::learn::sigmoid;

/// Hyper-parameters, as written in `[model.logistic_regression]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogisticParams {
    /// Weight of the L2 penalty `alpha/2 · |w|²` on the summed log loss (scikit-learn's `1/C`).
    pub alpha: f64,
    /// Iterations of the L-BFGS solver.
    pub max_iterations: u64,
    /// The solver stops when the norm of the gradient of the *mean* log loss falls below this
    /// (linfa's objective is a sum over rows, so its tolerance is this times the row count:
    /// a fixed tolerance on the sum would demand ever more iterations as data grows).
    pub gradient_tolerance: f64,
}

impl Default for LogisticParams {
    fn default() -> Self {
        LogisticParams { alpha: 1.0, max_iterations: 500, gradient_tolerance: 1e-6 }
    }
}

/// Solver iterations allowed at most: each is a pass over the training rows.
pub const MAX_ITERATIONS: u64 = 100_000;

/// Parameters that passed [`LogisticParams::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct ValidLogisticParams(LogisticParams);

impl LogisticParams {
    /// Checks every parameter's range; the message names the key.
    pub fn check(&self) -> std::result::Result<(), ParamError> {
        if !(self.alpha >= 0.0 && self.alpha.is_finite()) {
            return Err(ParamError::out_of_range("alpha", self.alpha, ">= 0 and finite"));
        }
        if !(1..=MAX_ITERATIONS).contains(&self.max_iterations) {
            return Err(ParamError::out_of_range(
                "max_iterations",
                self.max_iterations,
                format!("in 1..={MAX_ITERATIONS}"),
            ));
        }
        if !(self.gradient_tolerance > 0.0 && self.gradient_tolerance.is_finite()) {
            return Err(ParamError::out_of_range("gradient_tolerance", self.gradient_tolerance, "> 0 and finite"));
        }
        Ok(())
    }

    /// Validates the parameters.
    pub fn validate(&self) -> Result<ValidLogisticParams> {
        self.check().map_err(|p| Error::Param(p.under("logistic_regression")))?;
        Ok(ValidLogisticParams(self.clone()))
    }
}

/// A fitted logistic regression: `sigmoid(w·x + b)` is the positive-class probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    /// One weight per input.
    pub weights: Vec<f64>,
    /// The intercept.
    pub intercept: f64,
}

impl<'a> Fit<ArrayView2<'a, f64>, ArrayView1<'a, bool>, Error> for ValidLogisticParams {
    type Object = Logistic;

    /// Fits on the records (rows × inputs) and their labels.
    fn fit(&self, dataset: &DatasetBase<ArrayView2<'a, f64>, ArrayView1<'a, bool>>) -> Result<Logistic> {
        let (x, y) = (dataset.records(), dataset.targets());
        if x.nrows() != y.len() {
            return Err(Error::MismatchedLengths {
                what: "labels against rows of inputs",
                expected: x.nrows(),
                found: y.len(),
            });
        }
        let targets: Array1<bool> = y.to_owned();
        // Column-major inputs: linfa's gradient is `xᵀ·v`, which ndarray computes with a strided
        // loop when x is row-major (most of the fit's time at a million rows) and with a
        // contiguous one when it is column-major.
        let column_major = x.t().as_standard_layout().reversed_axes().into_owned();
        let dataset = linfa::Dataset::new(column_major, targets);
        let fitted = LogisticRegression::default()
            .alpha(self.0.alpha)
            .max_iterations(self.0.max_iterations)
            .gradient_tolerance(self.0.gradient_tolerance * x.nrows() as f64)
            .fit(&dataset)
            .map_err(Error::LogisticSolver)?;
        // linfa models the probability of whichever class it calls "positive" (the one that
        // sorts last); turn the weights around when that is not our positive class.
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        Ok(Logistic {
            weights: fitted.params().iter().map(|w| sign * w).collect(),
            intercept: sign * fitted.intercept(),
        })
    }
}

impl Logistic {
    /// Checks that there is one finite weight per input and a finite intercept.
    pub fn check(&self, n_inputs: usize) -> std::result::Result<(), String> {
        if self.weights.len() != n_inputs {
            return Err(format!("{} weights for {n_inputs} inputs", self.weights.len()));
        }
        if let Some(w) = self.weights.iter().chain([&self.intercept]).find(|w| !w.is_finite()) {
            return Err(format!("a weight is {w}"));
        }
        Ok(())
    }

    /// Positive-class probability of one row of inputs.
    pub fn probability(&self, x: &[f64]) -> f64 {
        sigmoid(self.weights.iter().zip(x).map(|(w, v)| w * v).sum::<f64>() + self.intercept)
    }
}

impl<D: Data<Elem = f64>> PredictInplace<ArrayBase<D, Ix2>, Array1<f64>> for Logistic {
    /// Positive-class probabilities of the rows of `x`.
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<f64>) {
        for (row, p) in x.rows().into_iter().zip(y.iter_mut()) {
            *p = sigmoid(self.weights.iter().zip(row).map(|(w, v)| w * v).sum::<f64>() + self.intercept);
        }
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<f64> {
        Array1::zeros(x.nrows())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn probability_is_of_the_positive_class_even_when_it_is_the_majority() {
        // Nine positives, three negatives: linfa's "positive" would be the majority class.
        let x = array![[0.0], [0.1], [0.2], [0.3], [1.0], [1.1], [1.2], [1.3], [1.4], [1.5], [1.6], [1.7]];
        let y = [false, false, false, true, true, true, true, true, true, true, true, true];
        let fit = |labels: &[bool]| {
            let targets = ndarray::ArrayView1::from(labels);
            LogisticParams { alpha: 0.01, ..Default::default() }
                .validate()
                .unwrap()
                .fit(&DatasetBase::new(x.view(), targets))
                .unwrap()
        };
        let model = fit(&y);
        assert!(model.probability(&[1.5]) > 0.9);
        assert!(model.probability(&[0.0]) < 0.5);
        let flipped: Vec<bool> = y.iter().map(|b| !b).collect();
        let model = fit(&flipped);
        assert!(model.probability(&[1.5]) < 0.1);
        // Batch prediction through linfa's trait gives the row-by-row probabilities.
        let batch = model.predict(&x);
        assert_eq!(batch[4], model.probability(&[1.0]));
    }
}
