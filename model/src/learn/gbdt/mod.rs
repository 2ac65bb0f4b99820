//! Histogram gradient-boosted trees for binary log loss, grown leaf by leaf (the algorithm of
//! LightGBM and scikit-learn's HistGradientBoosting), deterministic for a fixed seed.
//!
//! linfa 0.8 has no gradient boosting; this is the project's own, small enough to read in one
//! sitting, serialisable, and single-threaded so that a seed fixes every bit of the model.

use std::borrow::Cow;

use linfa::traits::PredictInplace;
use ndarray::{Array1, ArrayBase, Data, Ix2};
use serde::{Deserialize, Serialize};

use crate::data::dataset::{Dataset, Rows};
use crate::error::{Error, ParamError, Result};
use crate::learn::features::Preprocessor;
use crate::learn::sigmoid;

/// Calls `$fixed::<N>($args)` with N = `$width` when it is at most 16 (records of a known
/// width are copied as arrays, not by a call to `memcpy` each), `$otherwise` beyond.
macro_rules! with_row_width {
    ($width:expr, $fixed:ident, ($($arg:expr),*), $otherwise:block) => {
        match $width {
            1 => $fixed::<1>($($arg),*),
            2 => $fixed::<2>($($arg),*),
            3 => $fixed::<3>($($arg),*),
            4 => $fixed::<4>($($arg),*),
            5 => $fixed::<5>($($arg),*),
            6 => $fixed::<6>($($arg),*),
            7 => $fixed::<7>($($arg),*),
            8 => $fixed::<8>($($arg),*),
            9 => $fixed::<9>($($arg),*),
            10 => $fixed::<10>($($arg),*),
            11 => $fixed::<11>($($arg),*),
            12 => $fixed::<12>($($arg),*),
            13 => $fixed::<13>($($arg),*),
            14 => $fixed::<14>($($arg),*),
            15 => $fixed::<15>($($arg),*),
            16 => $fixed::<16>($($arg),*),
            _ => $otherwise,
        }
    };
}

mod binning;
mod boost;
mod cores;
mod grow;
mod histogram;
mod partition;
mod sampling;
pub mod scorer;

/// The training rows of a build quantised to bins once, straight from the data set's columns
/// (see [`TrainingBins::new`]): what [`ValidBoostingParams::fit_warm`] fits on.
pub struct TrainingBins {
    binned: binning::Binned,
}

impl TrainingBins {
    /// The bins of the viewed rows of `data`, encoded by `preprocessing`, with at most `max_bins`
    /// bins an input (and a bin of its own for a missing value): one byte an input and row; the
    /// rows are never held as a matrix of numbers.
    pub fn new(preprocessing: &Preprocessor, data: &Dataset, rows: Rows<'_>, max_bins: usize) -> Result<TrainingBins> {
        Ok(TrainingBins { binned: binning::Binned::from_columns(preprocessing, data, rows, max_bins)? })
    }

    /// [`TrainingBins::new`], giving up `data` (when owned) once its values are binned: the
    /// rows' records are then assembled without the data set beside them.
    pub fn releasing(
        preprocessing: &Preprocessor,
        data: Cow<'_, Dataset>,
        rows: Rows<'_>,
        max_bins: usize,
    ) -> Result<TrainingBins> {
        let columns = binning::ColumnBins::new(preprocessing, &data, rows, max_bins)?;
        drop(data);
        Ok(TrainingBins { binned: columns.assemble() })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.binned.n_rows
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.binned.n_rows == 0
    }

    /// Number of model inputs.
    pub fn width(&self) -> usize {
        self.binned.edges.len()
    }

    /// Writes, row-major ([`TrainingBins::width`] values a row), inputs for the rows at
    /// `positions` that a model fitted on these bins scores exactly as it scores the rows'
    /// own inputs: a value of the row's bin (see the tests).
    pub fn representatives(&self, positions: &[usize], out: &mut [f64]) {
        self.binned.representatives(positions, out);
    }
}

/// Splits that would leave a child with less total hessian than this are not considered.
const MIN_CHILD_HESSIAN: f64 = 1e-3;

/// Hyper-parameters of gradient boosting, as written in `[model.gradient_boosting]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoostingParams {
    /// Shrinkage applied to each tree.
    pub learning_rate: f64,
    /// Number of trees.
    pub max_iter: usize,
    /// Leaves per tree.
    pub max_leaf_nodes: usize,
    /// Depth limit (none when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<usize>,
    /// Fewest training rows in a leaf.
    pub min_samples_leaf: usize,
    /// L2 penalty on leaf values.
    pub l2_regularization: f64,
    /// Bins per feature (2 to 256).
    pub max_bins: usize,
    /// Fraction of rows drawn (without replacement) to grow each tree.
    pub subsample: f64,
    /// Fraction of inputs considered by each tree.
    pub colsample: f64,
    /// Independent ensembles (each with its own draws of rows and inputs) whose log-odds are
    /// averaged; they are fitted in parallel.
    pub bags: usize,
}

impl Default for BoostingParams {
    fn default() -> Self {
        BoostingParams {
            learning_rate: 0.05,
            max_iter: 300,
            max_leaf_nodes: 15,
            max_depth: None,
            min_samples_leaf: 20,
            l2_regularization: 1.0,
            max_bins: 255,
            subsample: 1.0,
            colsample: 1.0,
            bags: 1,
        }
    }
}

/// Trees per bag allowed at most (`max_iter`): each is a pass over the training rows.
pub const MAX_TREES: usize = 10_000;
/// Leaves per tree allowed at most (`max_leaf_nodes`).
pub const MAX_LEAVES: usize = 4_096;
/// Rows a leaf may be asked to hold at least, at most (`min_samples_leaf`): beyond a billion no
/// split of any data this crate loads is possible.
pub const MAX_LEAF_ROWS: usize = 1_000_000_000;
/// Depth allowed at most (`max_depth`).
pub const MAX_DEPTH: usize = 64;

/// Parameters that passed [`BoostingParams::check`], with the seed of the random draws.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidBoostingParams {
    params: BoostingParams,
    seed: u64,
}

impl BoostingParams {
    /// Checks every parameter's range; the error names the key and its bound.
    pub fn check(&self) -> std::result::Result<(), ParamError> {
        let p = self;
        if !(p.learning_rate > 0.0 && p.learning_rate <= 1.0) {
            return Err(ParamError::out_of_range("learning_rate", p.learning_rate, "in (0, 1]"));
        }
        if !(1..=MAX_TREES).contains(&p.max_iter) {
            return Err(ParamError::out_of_range("max_iter", p.max_iter, format!("in 1..={MAX_TREES}")));
        }
        if !(2..=MAX_LEAVES).contains(&p.max_leaf_nodes) {
            return Err(ParamError::out_of_range("max_leaf_nodes", p.max_leaf_nodes, format!("in 2..={MAX_LEAVES}")));
        }
        if p.bags == 0 || p.bags > 64 {
            return Err(ParamError::out_of_range("bags", p.bags, "in 1..=64"));
        }
        if let Some(d) = p.max_depth.filter(|d| !(1..=MAX_DEPTH).contains(d)) {
            return Err(ParamError::out_of_range("max_depth", d, format!("in 1..={MAX_DEPTH}")));
        }
        if !(1..=MAX_LEAF_ROWS).contains(&p.min_samples_leaf) {
            return Err(ParamError::out_of_range(
                "min_samples_leaf",
                p.min_samples_leaf,
                format!("in 1..={MAX_LEAF_ROWS}"),
            ));
        }
        if !(p.l2_regularization >= 0.0 && p.l2_regularization.is_finite()) {
            return Err(ParamError::out_of_range("l2_regularization", p.l2_regularization, ">= 0 and finite"));
        }
        if !(2..=256).contains(&p.max_bins) {
            return Err(ParamError::out_of_range("max_bins", p.max_bins, "in 2..=256"));
        }
        for (k, v) in [("subsample", p.subsample), ("colsample", p.colsample)] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(ParamError::out_of_range(k, v, "in (0, 1]"));
            }
        }
        Ok(())
    }

    /// Validates the parameters and binds the seed of subsampling.
    pub fn validate(&self, seed: u64) -> Result<ValidBoostingParams> {
        self.check().map_err(|p| Error::Param(p.under("gradient_boosting")))?;
        Ok(ValidBoostingParams { params: self.clone(), seed })
    }
}

/// One fitted tree, stored as parallel arrays (compact in JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Input index tested by each node, or -1 for a leaf.
    pub feature: Vec<i32>,
    /// Split value (`x <= threshold` goes left) or, for a leaf, its output.
    pub value: Vec<f64>,
    /// Left child of each split node (0 for leaves).
    pub left: Vec<u32>,
    /// Right child of each split node (0 for leaves).
    pub right: Vec<u32>,
    /// Per node, whether a missing value (NaN) goes left; empty when none does (a NaN fails
    /// `x <= threshold` and goes right).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_left: Vec<bool>,
    /// Per node, the categorical split that replaces `x <= threshold` (its `value` is then
    /// unused); empty when the tree has none, as every tree this crate fits (imported models
    /// have them: see [`CategorySplit`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<Option<CategorySplit>>,
}

/// A split on a category's code (an input holding 0, 1, 2, … as the encoder numbers the
/// levels): the codes it lists go one way, every other number the other way, and a missing
/// value (NaN) where the tree's `missing_left` says.
///
/// LightGBM lists the codes that go left, XGBoost those that go right; a negative number, or
/// one past the codes a split can list (2^24, XGBoost's bound), is an unlisted code for both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategorySplit {
    /// The listed codes, ascending and distinct.
    pub codes: Vec<u32>,
    /// Whether the listed codes go left (else they go right and every other code left).
    pub listed_left: bool,
}

/// Codes at or above this are never listed by a categorical split (XGBoost refuses them as
/// categories: a float32 holds every integer below it exactly).
pub const MAX_CATEGORY_CODE: u32 = 1 << 24;

impl CategorySplit {
    /// Whether a value that is not missing goes left.
    fn goes_left(&self, x: f64) -> bool {
        let listed =
            x >= 0.0 && x < f64::from(MAX_CATEGORY_CODE) && self.codes.binary_search(&(x.trunc() as u32)).is_ok();
        listed == self.listed_left
    }
}

impl Tree {
    fn predict(&self, x: &[f64]) -> f64 {
        let mut n = 0usize;
        loop {
            let f = self.feature[n];
            if f < 0 {
                return self.value[n];
            }
            let x = x[f as usize];
            let left = match self.categories.get(n) {
                Some(Some(split)) if !x.is_nan() => split.goes_left(x),
                _ => x <= self.value[n] || (x.is_nan() && self.missing_left.get(n) == Some(&true)),
            };
            n = if left { self.left[n] } else { self.right[n] } as usize;
        }
    }
}

/// The arithmetic of a [`Booster`]'s sum and logistic function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arithmetic {
    /// Leaf values added in double precision from the base score, `1 / (1 + exp(-z))` in
    /// double precision (this crate's fits; LightGBM's).
    #[default]
    Double,
    /// XGBoost's: the base score and each leaf value added in single precision, in the
    /// trees' order, and its single-precision logistic function (the values must be
    /// single-precision numbers).
    Single,
}

impl Arithmetic {
    fn is_double(&self) -> bool {
        *self == Arithmetic::Double
    }
}

/// A fitted boosted ensemble: `sigmoid(base + Σ trees)` is the positive-class probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Booster {
    /// Log-odds of the training positive rate.
    pub base_score: f64,
    /// Number of inputs expected.
    pub n_inputs: usize,
    /// The trees, in boosting order.
    pub trees: Vec<Tree>,
    /// How the score is added up and turned into a probability (absent: double precision).
    #[serde(default, skip_serializing_if = "Arithmetic::is_double")]
    pub arithmetic: Arithmetic,
}

impl Booster {
    /// Raw score (log-odds) of one row of inputs.
    pub fn decision(&self, x: &[f64]) -> f64 {
        match self.arithmetic {
            Arithmetic::Double => self.base_score + self.trees.iter().map(|t| t.predict(x)).sum::<f64>(),
            Arithmetic::Single => {
                let mut sum = self.base_score as f32;
                for tree in &self.trees {
                    sum += tree.predict(x) as f32;
                }
                f64::from(sum)
            }
        }
    }

    /// Positive-class probability of one row of inputs.
    pub fn probability(&self, x: &[f64]) -> f64 {
        match self.arithmetic {
            Arithmetic::Double => sigmoid(self.decision(x)),
            Arithmetic::Single => f64::from(sigmoid_f32(self.decision(x) as f32)),
        }
    }
}

/// XGBoost's logistic function (`common::Sigmoid(float)`), operation for operation: the
/// exponent capped at 88.7 and an epsilon of 1e-16 added to the denominator.
pub(crate) fn sigmoid_f32(z: f32) -> f32 {
    const EPS: f32 = 1e-16;
    let x = (-z).min(88.7);
    let denominator = x.exp() + 1.0 + EPS;
    1.0 / denominator
}

impl Tree {
    /// Checks that the tree is one a fit could have made: parallel arrays of one length, every
    /// split on an input below `n_inputs` with a threshold that is a number, and both children
    /// after their parent (so that every walk from the root ends at a leaf), leaf values finite.
    pub fn check(&self, n_inputs: usize) -> std::result::Result<(), String> {
        let n = self.feature.len();
        if n == 0
            || self.value.len() != n
            || self.left.len() != n
            || self.right.len() != n
            || !(self.missing_left.is_empty() || self.missing_left.len() == n)
            || !(self.categories.is_empty() || self.categories.len() == n)
        {
            return Err(format!(
                "a tree's arrays differ in length (feature {n}, value {}, left {}, right {}) or are empty",
                self.value.len(),
                self.left.len(),
                self.right.len()
            ));
        }
        for node in 0..n {
            let value = self.value[node];
            match usize::try_from(self.feature[node]) {
                Err(_) if self.feature[node] == -1 => {
                    if !value.is_finite() {
                        return Err(format!("leaf {node} has the value {value}"));
                    }
                    if matches!(self.categories.get(node), Some(Some(_))) {
                        return Err(format!("leaf {node} has a categorical split"));
                    }
                }
                Err(_) => return Err(format!("node {node} tests input {}", self.feature[node])),
                Ok(f) if f >= n_inputs => {
                    return Err(format!("node {node} tests input {f}, the model has {n_inputs}"));
                }
                Ok(_) => {
                    match self.categories.get(node) {
                        Some(Some(split))
                            if split.codes.windows(2).any(|w| w[0] >= w[1])
                                || split.codes.last().is_some_and(|&c| c >= MAX_CATEGORY_CODE) =>
                        {
                            return Err(format!(
                                "node {node} lists categories that are not ascending, distinct and below \
                                 {MAX_CATEGORY_CODE}"
                            ));
                        }
                        Some(Some(_)) => {}
                        _ if value.is_nan() => return Err(format!("node {node} splits at NaN")),
                        _ => {}
                    }
                    for child in [self.left[node], self.right[node]] {
                        let child = child as usize;
                        if child <= node || child >= n {
                            return Err(format!("node {node} has the child {child}, outside {}..{n}", node + 1));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Booster {
    /// Checks every tree (see [`Tree::check`]) and the base score.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !self.base_score.is_finite() {
            return Err(format!("the base score is {}", self.base_score));
        }
        for (i, tree) in self.trees.iter().enumerate() {
            tree.check(self.n_inputs).map_err(|m| format!("tree {i}: {m}"))?;
        }
        Ok(())
    }
}

impl<D: Data<Elem = f64>> PredictInplace<ArrayBase<D, Ix2>, Array1<f64>> for Booster {
    /// Positive-class probabilities of the rows of `x`, through the compiled forest when the
    /// ensemble compiles (the same bits as the tree walk).
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array1<f64>) {
        let rows = x.as_standard_layout();
        let inputs = rows.as_slice().expect("a standard-layout array is contiguous");
        let out = y.as_slice_mut().expect("a fresh target is contiguous");
        match scorer::Forest::new(self) {
            Some(forest) => forest.probabilities(inputs, x.ncols(), out, &mut scorer::Scratch::default()),
            None => {
                for (p, row) in out.iter_mut().zip(inputs.chunks_exact(x.ncols().max(1))) {
                    *p = self.probability(row);
                }
            }
        }
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array1<f64> {
        Array1::zeros(x.nrows())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::labelled;
    use crate::rng::Rng;
    use linfa::traits::{Fit, Predict};
    use ndarray::Array2;

    use super::binning::Binned;
    use super::boost::add_tree;
    use super::grow::{predict_binned, to_value_tree};
    use super::partition::Sample;

    fn xor_data(n: usize, seed: u64) -> (Array2<f64>, Vec<bool>) {
        let mut rng = Rng::new(seed);
        let mut x = Array2::zeros((n, 3));
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let a = rng.uniform();
            let b = rng.uniform();
            x[[i, 0]] = a;
            x[[i, 1]] = b;
            x[[i, 2]] = rng.normal();
            y.push((a > 0.5) != (b > 0.5));
        }
        (x, y)
    }

    #[test]
    fn learns_an_interaction_that_no_linear_model_can() {
        let (x, y) = xor_data(2000, 1);
        let model = BoostingParams::default().validate(0).unwrap().fit(&labelled(x.view(), &y)).unwrap();
        let (xt, yt) = xor_data(1000, 2);
        let correct = (0..1000).filter(|&i| (model.probability(xt.row(i).as_slice().unwrap()) >= 0.5) == yt[i]).count();
        assert!(correct > 950, "{correct} of 1000 correct");
        // Batch prediction through linfa's trait gives the row-by-row probabilities, bit for bit.
        let batch = model.predict(&xt);
        for i in 0..1000 {
            assert_eq!(batch[i].to_bits(), model.probability(xt.row(i).as_slice().unwrap()).to_bits());
        }
    }

    /// Scores added from the bins (dense and sparse inputs, missing bins) are the value tree's
    /// at each row's own inputs.
    #[test]
    fn scores_added_from_sparse_and_missing_bins_are_the_value_trees() {
        let n = 3000;
        let mut rng = Rng::new(4);
        let mut x = Array2::zeros((n, 9));
        for i in 0..n {
            x[[i, 0]] = rng.normal();
            x[[i, 1]] = if rng.uniform() < 0.1 { f64::NAN } else { rng.normal() };
            x[[i, 2 + (rng.uniform() * 6.0) as usize]] = 1.0;
            x[[i, 8]] = if rng.uniform() < 0.05 { 1.0 } else { 0.0 };
        }
        let y: Vec<bool> = (0..n)
            .map(|i| x[[i, 3]] + x[[i, 8]] + 0.5 * x[[i, 0]] + rng.normal() > 0.6 || x[[i, 1]].is_nan())
            .collect();
        let binned = Binned::new(x.view(), 255);
        assert!(binned.sparse.len() >= 6 && binned.missing[1].is_some());
        let rows: Vec<u32> = (0..n as u32).collect();
        let mut split_on_sparse = false;
        for leaves in [4, 12, 40, 90] {
            let params = BoostingParams { max_leaf_nodes: leaves, min_samples_leaf: 5, ..BoostingParams::default() }
                .validate(0)
                .unwrap();
            let mut sample = Sample::new(&binned, n);
            sample.fill(&binned, &rows, &vec![0.0; n], &y);
            let tree = params.grow(&binned, &mut sample, n / 2, &[true; 9]);
            split_on_sparse |= tree.feature.iter().any(|&f| f >= 2 && binned.sparse.iter().any(|s| s.0 == f as usize));
            let value_tree = to_value_tree(&tree, &binned);
            let mut raw = vec![1.0f32; n];
            add_tree(&tree, &binned, &mut raw);
            for (i, added) in raw.iter().enumerate() {
                let value = value_tree.predict(x.row(i).as_slice().unwrap());
                assert_eq!(predict_binned(&tree, &binned, i), value, "row {i}, {leaves} leaves");
                assert_eq!(added.to_bits(), (1.0 + value as f32).to_bits(), "row {i}, {leaves} leaves");
            }
        }
        assert!(split_on_sparse, "a tree splits on a sparse input");
    }

    #[test]
    fn binned_and_value_trees_agree_on_training_rows() {
        let (x, _) = xor_data(1000, 3);
        // Labels unrelated to the inputs: every split gains a little, so trees grow wide.
        let mut rng = Rng::new(9);
        let y: Vec<bool> = (0..1000).map(|_| rng.uniform() < 0.4).collect();
        let binned = Binned::new(x.view(), 255);
        let rows: Vec<u32> = (0..1000).collect();
        // Leaf masks of each width, and trees too wide for one (walked row by row).
        for leaves in [3, 8, 9, 16, 31, 64, 90] {
            let params = BoostingParams { max_leaf_nodes: leaves, min_samples_leaf: 2, ..BoostingParams::default() }
                .validate(0)
                .unwrap();
            let mut sample = Sample::new(&binned, 1000);
            // At scores of zero the gradients are ±0.5 and the hessians 0.25.
            sample.fill(&binned, &rows, &[0.0; 1000], &y);
            let tree = params.grow(&binned, &mut sample, 600, &[true; 3]);
            assert_eq!(tree.feature.iter().filter(|&&f| f < 0).count(), leaves);
            let value_tree = to_value_tree(&tree, &binned);
            let start: Vec<f32> = (0..1000).map(|i| i as f32 / 100.0).collect();
            let mut raw = start.clone();
            add_tree(&tree, &binned, &mut raw);
            for i in 0..1000 {
                let value = value_tree.predict(x.row(i).as_slice().unwrap());
                assert_eq!(predict_binned(&tree, &binned, i), value);
                assert_eq!(raw[i].to_bits(), (start[i] + value as f32).to_bits(), "row {i}, {leaves} leaves");
            }
        }
    }

    #[test]
    fn same_seed_same_model_with_subsampling() {
        let (x, y) = xor_data(800, 4);
        let params = BoostingParams { max_iter: 20, subsample: 0.7, colsample: 0.7, ..BoostingParams::default() };
        let a = params.validate(11).unwrap().fit(&labelled(x.view(), &y)).unwrap();
        let b = params.validate(11).unwrap().fit(&labelled(x.view(), &y)).unwrap();
        let c = params.validate(12).unwrap().fit(&labelled(x.view(), &y)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn wide_inputs_take_the_general_record_path() {
        // 140 inputs: 18 words of dense bins, past the widths copied as fixed-size arrays.
        let (n, width) = (1500, 140);
        let mut rng = Rng::new(9);
        let mut x = Array2::zeros((n, width));
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            for j in 0..width {
                x[[i, j]] = rng.normal();
            }
            y.push(x[[i, 0]] + x[[i, 139]] > 0.0);
        }
        let binned = Binned::new(x.view(), 255);
        assert!(binned.layout.stride > 16, "stride {}", binned.layout.stride);
        let params = BoostingParams { max_iter: 60, subsample: 0.8, ..BoostingParams::default() };
        let model = params.validate(1).unwrap().fit(&labelled(x.view(), &y)).unwrap();
        let correct = (0..n).filter(|&i| (model.probability(x.row(i).as_slice().unwrap()) >= 0.5) == y[i]).count();
        assert!(correct > n * 9 / 10, "{correct} of {n} correct");
    }

    #[test]
    fn refuses_a_single_class() {
        let (x, _) = xor_data(50, 5);
        let y = vec![true; 50];
        let r = BoostingParams::default().validate(0).unwrap().fit(&labelled(x.view(), &y));
        assert!(matches!(r, Err(Error::TooFewClasses { .. })));
    }

    #[test]
    fn missing_values_learn_their_direction_and_every_path_agrees_on_them() {
        // Input 0 is missing in a third of the rows; a row is positive when input 0 is low or
        // missing: the best cut sends missing values left, with the low ones.
        let mut rng = Rng::new(21);
        let n = 3000;
        let mut x = Array2::zeros((n, 3));
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let missing = rng.uniform() < 0.33;
            let (a, b) = (rng.uniform(), rng.uniform());
            x[[i, 0]] = if missing { f64::NAN } else { a };
            x[[i, 1]] = b;
            x[[i, 2]] = if rng.uniform() < 0.1 { f64::NAN } else { rng.normal() };
            y.push(missing || a < 0.4);
        }
        let params = BoostingParams { max_iter: 60, ..BoostingParams::default() }.validate(3).unwrap();
        let model = params.fit(&labelled(x.view(), &y)).unwrap();
        let correct = (0..n).filter(|&i| (model.probability(x.row(i).as_slice().unwrap()) >= 0.5) == y[i]).count();
        assert!(correct as f64 > 0.97 * n as f64, "{correct} of {n}");
        assert!(model.trees.iter().any(|t| t.missing_left.iter().any(|&m| m)), "some split sends missing values left");
        model.check().unwrap();
        // The batch path (which walks trees that send NaN left) gives the row-by-row values.
        let batch = model.predict(&x);
        for i in 0..n {
            assert_eq!(batch[i].to_bits(), model.probability(x.row(i).as_slice().unwrap()).to_bits());
        }

        // The grown tree, walked on bins, its leaf masks, and the value tree agree on every row.
        let binned = Binned::new(x.view(), 255);
        assert!(binned.missing[0].is_some() && binned.missing[1].is_none());
        let rows: Vec<u32> = (0..n as u32).collect();
        let mut sample = Sample::new(&binned, n);
        let raw0 = vec![0.0; n];
        sample.fill(&binned, &rows, &raw0, &y);
        let tree = params.grow(&binned, &mut sample, n / 3, &[true; 3]);
        let value_tree = to_value_tree(&tree, &binned);
        let mut raw = vec![0.0; n];
        add_tree(&tree, &binned, &mut raw);
        for (i, &added) in raw.iter().enumerate() {
            let value = value_tree.predict(x.row(i).as_slice().unwrap());
            assert_eq!(predict_binned(&tree, &binned, i), value, "row {i}");
            assert_eq!(added, value as f32, "row {i}");
        }
    }
}

#[cfg(test)]
mod training_bins_tests {
    //! The bins a build makes from the data set's columns, the warm start, and the validation
    //! probabilities read from the bins.

    use linfa::traits::Fit;

    use super::binning::Binned;
    use super::*;
    use crate::data::dataset::{Dataset, Rows};
    use crate::data::reader::LabelPolicy;
    use crate::data::schema::Schema;
    use crate::data::validation::read_csv;
    use crate::learn::features::{MissingHandling, Preprocessor};
    use crate::learn::labelled;
    use crate::rng::Rng;

    const SCHEMA: &str = r#"
[[columns]]
name = "amount"
kind = "numeric"
missing = "allow"
transform = "log1p"
[[columns]]
name = "visits"
kind = "integer"
[[columns]]
name = "color"
kind = "categorical"
missing = "allow"
[[columns]]
name = "weekend"
kind = "boolean"
missing = "allow"
true = ["yes"]
false = ["no"]
[[columns]]
name = "bought"
kind = "label"
positive = "1"
negative = "0"
"#;

    const COLORS: [&str; 7] = ["red", "green", "blue", "cyan", "magenta", "yellow", "black"];

    /// `n` rows of every kind of column, each but `visits` missing in some rows, the label
    /// depending on each.
    fn mixed(n: usize, seed: u64) -> Dataset {
        let schema: Schema = toml::from_str(SCHEMA).unwrap();
        let mut rng = Rng::new(seed);
        let mut csv = String::from("amount,visits,color,weekend,bought\n");
        for _ in 0..n {
            let amount = (rng.uniform() >= 0.1).then(|| (3.0 + rng.normal()).exp());
            let visits = (rng.uniform() * 30.0) as u32;
            let color = (rng.uniform() >= 0.05).then(|| (rng.uniform() * 7.0) as usize);
            let weekend = [Some(true), Some(false), None][(rng.uniform() * 3.0) as usize];
            let logit = amount.map_or(1.0, |a| (a / 20.0).ln()) + 0.05 * f64::from(visits) - 1.0
                + color.map_or(0.5, |c| c as f64 * 0.3 - 0.9)
                + if weekend == Some(true) { 0.7 } else { 0.0 }
                + rng.normal();
            csv.push_str(&format!(
                "{},{visits},{},{},{}\n",
                amount.map_or(String::new(), |a| format!("{a:.4}")),
                color.map_or("", |c| COLORS[c]),
                weekend.map_or("", |w| if w { "yes" } else { "no" }),
                u8::from(logit > 0.0)
            ));
        }
        read_csv(csv.as_bytes(), "mixed.csv", &schema, LabelPolicy::Required).unwrap()
    }

    fn assert_same_bins(a: &Binned, b: &Binned) {
        assert_eq!(a.n_rows, b.n_rows);
        assert_eq!(a.edges, b.edges);
        assert_eq!(a.missing, b.missing);
        assert!(a.bins == b.bins, "the bins differ");
        assert_eq!(a.offsets, b.offsets);
        assert_eq!(a.dense, b.dense);
        assert_eq!(a.sparse, b.sparse);
        assert_eq!(
            (a.layout.stride, a.layout.fixed, a.layout.dense, a.layout.slot_byte, a.layout.n_slots),
            (b.layout.stride, b.layout.fixed, b.layout.dense, b.layout.slot_byte, b.layout.n_slots)
        );
        assert!(a.rows == b.rows, "the row records differ");
    }

    #[test]
    fn bins_from_the_columns_are_the_bins_of_the_encoded_matrix() {
        // More rows than the binning sample, so that the edges come from every k-th row; a
        // view that skips rows, as a build's pool does.
        let data = mixed(230_000, 1);
        let rows: Vec<usize> = (0..data.len()).filter(|i| i % 5 != 3).collect();
        let view = Rows::Listed(&rows);
        for how in [MissingHandling::Nan, MissingHandling::Impute] {
            let preprocessing = Preprocessor::fit_rows(&data, view, how).unwrap();
            let matrix = preprocessing.transform_rows(&data, view).unwrap().matrix;
            for max_bins in [255, 16] {
                let from_columns = Binned::from_columns(&preprocessing, &data, view, max_bins).unwrap();
                assert_same_bins(&from_columns, &Binned::new(matrix.view(), max_bins));
                assert!(from_columns.missing.iter().any(Option::is_some) == (how == MissingHandling::Nan));
            }
        }
        // Every row, as a span.
        let small = mixed(3000, 2);
        let preprocessing = Preprocessor::fit(&small, MissingHandling::Nan).unwrap();
        let matrix = preprocessing.transform(&small).unwrap().matrix;
        let all = Binned::from_columns(&preprocessing, &small, Rows::all(small.len()), 255).unwrap();
        assert_same_bins(&all, &Binned::new(matrix.view(), 255));
    }

    /// The data, its encoders, its bins and labels, and the fit and held-out positions.
    fn prepared(n: usize) -> (Dataset, Preprocessor, TrainingBins, Vec<bool>, Vec<u32>, Vec<usize>) {
        let data = mixed(n, 3);
        let preprocessing = Preprocessor::fit(&data, MissingHandling::Nan).unwrap();
        let bins = TrainingBins::new(&preprocessing, &data, Rows::all(data.len()), 255).unwrap();
        let y = data.labels.clone().unwrap();
        let (fit, held): (Vec<usize>, Vec<usize>) = (0..n).partition(|i| i % 4 != 0);
        (data, preprocessing, bins, y, fit.into_iter().map(|r| r as u32).collect(), held)
    }

    #[test]
    fn warm_start_is_deterministic_and_continues_the_first_models_trees() {
        let (_, _, bins, y, fit, _) = prepared(4000);
        for bags in [1, 2] {
            let params = BoostingParams { max_iter: 25, subsample: 0.8, colsample: 0.5, bags, ..Default::default() };
            let warm = |seed: u64| params.validate(seed).unwrap().fit_warm(&bins, &y, Some(&fit), Some(10)).unwrap();
            let (first, last) = warm(7);
            let last = last.unwrap();
            assert_eq!((first.clone(), Some(last.clone())), warm(7), "the same seed, the same models");
            assert_ne!(first, warm(8).0);
            assert_eq!(first.trees.len(), 25 * bags);
            assert_eq!(last.trees.len(), 35 * bags);
            assert_eq!(first.base_score, last.base_score);
            // Bag by bag, the continued model starts with the first model's trees.
            for bag in 0..bags {
                assert_eq!(first.trees[bag * 25..(bag + 1) * 25], last.trees[bag * 35..bag * 35 + 25]);
            }
            let (alone, none) = params.validate(7).unwrap().fit_warm(&bins, &y, Some(&fit), None).unwrap();
            assert_eq!((alone, none), (first, None));
        }
    }

    #[test]
    fn a_warm_start_on_every_row_is_the_plain_fit() {
        let (data, preprocessing, bins, y, _, _) = prepared(3000);
        let params = BoostingParams { max_iter: 30, subsample: 0.7, ..Default::default() }.validate(5).unwrap();
        let every: Vec<u32> = (0..data.len() as u32).collect();
        let (warm, _) = params.fit_warm(&bins, &y, None, None).unwrap();
        let matrix = preprocessing.transform(&data).unwrap().matrix;
        assert_eq!(warm, params.fit(&labelled(matrix.view(), &y)).unwrap());
        assert_eq!(params.fit_warm(&bins, &y, Some(&every), None).unwrap().0, warm, "every row listed");
        let beyond = [0, data.len() as u32];
        assert!(
            matches!(params.fit_warm(&bins, &y, Some(&beyond), None), Err(Error::MismatchedLengths { .. })),
            "a row the bins do not have"
        );
    }

    #[test]
    fn the_held_out_rows_score_from_their_bins_as_from_their_inputs() {
        let (data, preprocessing, bins, y, fit, held) = prepared(5000);
        let params = BoostingParams { max_iter: 60, max_leaf_nodes: 12, ..Default::default() }.validate(1).unwrap();
        let (first, last) = params.fit_warm(&bins, &y, Some(&fit), Some(20)).unwrap();
        let inputs = preprocessing.transform_rows(&data, Rows::Listed(&held)).unwrap().matrix;
        let inputs = inputs.as_slice().unwrap();
        let width = bins.width();
        let mut representatives = vec![0.0; held.len() * width];
        bins.representatives(&held, &mut representatives);
        assert!(representatives.iter().any(|x| x.is_nan()), "missing values are represented");
        for booster in [first, last.unwrap()] {
            assert!(booster.trees.iter().any(|t| !t.missing_left.is_empty()));
            // The batch scorer an artifact scores with.
            let forest = scorer::Forest::new(&booster).expect("a fitted model compiles");
            let (mut from_bins, mut from_inputs) = (vec![0.0; held.len()], vec![0.0; held.len()]);
            forest.probabilities(&representatives, width, &mut from_bins, &mut scorer::Scratch::default());
            forest.probabilities(inputs, width, &mut from_inputs, &mut scorer::Scratch::default());
            for (k, (a, b)) in from_bins.iter().zip(&from_inputs).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "held-out row {k}");
                let row = &inputs[k * width..(k + 1) * width];
                assert_eq!(b.to_bits(), booster.probability(row).to_bits(), "held-out row {k}, one at a time");
            }
        }
    }
}
