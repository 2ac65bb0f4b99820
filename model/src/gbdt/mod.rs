//! Histogram gradient-boosted trees for binary log loss, grown leaf by leaf (the algorithm of
//! LightGBM and scikit-learn's HistGradientBoosting), deterministic for a fixed seed.
//!
//! linfa 0.8 has no gradient boosting; this is the project's own, small enough to read in one
//! sitting, serialisable, and single-threaded so that a seed fixes every bit of the model.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::forest::{number_leaves, Mask};
use crate::rng::Rng;
use data::{histogram, Bin, Binned, Sample};

mod data;

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

/// Parameters that passed [`BoostingParams::check`], with the seed of the random draws.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidBoostingParams {
    params: BoostingParams,
    seed: u64,
}

impl BoostingParams {
    /// Checks every parameter's range; the message names the key.
    pub fn check(&self) -> std::result::Result<(), String> {
        let p = self;
        if !(p.learning_rate > 0.0 && p.learning_rate <= 1.0) {
            return Err(format!("learning_rate: {} is not in (0, 1]", p.learning_rate));
        }
        if p.max_iter == 0 {
            return Err("max_iter: must be at least 1".into());
        }
        if p.max_leaf_nodes < 2 {
            return Err("max_leaf_nodes: must be at least 2".into());
        }
        if p.bags == 0 || p.bags > 64 {
            return Err(format!("bags: {} is not in 1..=64", p.bags));
        }
        if p.max_depth == Some(0) {
            return Err("max_depth: must be at least 1".into());
        }
        if p.min_samples_leaf == 0 {
            return Err("min_samples_leaf: must be at least 1".into());
        }
        if !(p.l2_regularization >= 0.0 && p.l2_regularization.is_finite()) {
            return Err(format!("l2_regularization: {} is not >= 0", p.l2_regularization));
        }
        if !(2..=256).contains(&p.max_bins) {
            return Err(format!("max_bins: {} is not in 2..=256", p.max_bins));
        }
        for (k, v) in [("subsample", p.subsample), ("colsample", p.colsample)] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(format!("{k}: {v} is not in (0, 1]"));
            }
        }
        Ok(())
    }

    /// Validates the parameters and binds the seed of subsampling.
    pub fn validate(&self, seed: u64) -> Result<ValidBoostingParams> {
        self.check().map_err(|m| Error::InvalidInput(format!("gradient boosting: {m}")))?;
        Ok(ValidBoostingParams { params: self.clone(), seed })
    }
}

/// One fitted tree, stored as parallel arrays (compact in JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Input index tested by each node, or -1 for a leaf.
    pub feature: Vec<i32>,
    /// Split value (`x <= threshold` goes left) or, for a leaf, its output.
    pub value: Vec<f64>,
    /// Left child of each split node (0 for leaves).
    pub left: Vec<u32>,
    /// Right child of each split node (0 for leaves).
    pub right: Vec<u32>,
}

impl Tree {
    fn predict(&self, x: &[f64]) -> f64 {
        let mut n = 0usize;
        loop {
            let f = self.feature[n];
            if f < 0 {
                return self.value[n];
            }
            n = if x[f as usize] <= self.value[n] { self.left[n] } else { self.right[n] } as usize;
        }
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
}

impl Booster {
    /// Raw score (log-odds) of one row of inputs.
    pub fn decision(&self, x: &[f64]) -> f64 {
        self.base_score + self.trees.iter().map(|t| t.predict(x)).sum::<f64>()
    }

    /// Positive-class probability of one row of inputs.
    pub fn probability(&self, x: &[f64]) -> f64 {
        sigmoid(self.decision(x))
    }
}

pub(crate) fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[derive(Clone, Copy)]
struct Split {
    gain: f64,
    feature: usize,
    bin: usize,
    /// Gradient and hessian sums of the rows going left (from the histogram, so that the
    /// partition pass need not read gradients).
    left_g: f64,
    left_h: f64,
}

/// A leaf of the tree being grown: its rows are the records `start..end` of the sample's
/// buffer `buffer`.
struct Leaf {
    node: usize,
    buffer: usize,
    start: usize,
    end: usize,
    depth: usize,
    g: f64,
    h: f64,
    hist: Vec<Bin>,
    split: Option<Split>,
}

impl ValidBoostingParams {
    /// Fits the ensemble on inputs `x` (rows × inputs) and labels `y`.
    pub fn fit(&self, x: ArrayView2<f64>, y: &[bool]) -> Result<Booster> {
        let p = &self.params;
        let (n, n_inputs) = x.dim();
        if n != y.len() {
            return Err(Error::InvalidInput(format!("{n} rows of inputs but {} labels", y.len())));
        }
        let positives = y.iter().filter(|&&b| b).count();
        if positives == 0 || positives == n {
            return Err(Error::Training("both classes are needed to fit gradient boosting".into()));
        }
        let binned = Binned::new(x, p.max_bins);
        let rate = positives as f64 / n as f64;
        let base_score = (rate / (1.0 - rate)).ln();
        let seeds: Vec<u64> = (0..p.bags as u64).map(|b| self.seed.wrapping_add(b)).collect();
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(seeds.len());
        // Each bag depends only on its seed, and the bags are joined in seed order, so the
        // model is the same whatever the number of threads.
        let mut bags: Vec<Vec<Tree>> = if threads <= 1 {
            seeds.iter().map(|&seed| self.boost(&binned, y, base_score, seed)).collect()
        } else {
            std::thread::scope(|scope| {
                let chunks: Vec<_> = seeds
                    .chunks(seeds.len().div_ceil(threads))
                    .map(|chunk| {
                        let binned = &binned;
                        scope.spawn(move || {
                            chunk.iter().map(|&seed| self.boost(binned, y, base_score, seed)).collect::<Vec<_>>()
                        })
                    })
                    .collect();
                chunks.into_iter().flat_map(|c| c.join().expect("a boosting thread panicked")).collect()
            })
        };
        let scale = 1.0 / p.bags as f64;
        let mut trees = Vec::with_capacity(p.max_iter * p.bags);
        for bag in &mut bags {
            for tree in bag.iter_mut() {
                if p.bags > 1 {
                    for (v, &f) in tree.value.iter_mut().zip(&tree.feature) {
                        if f < 0 {
                            *v *= scale;
                        }
                    }
                }
            }
            trees.append(bag);
        }
        Ok(Booster { base_score, n_inputs, trees })
    }

    /// One boosting run with its own seed.
    fn boost(&self, binned: &Binned, y: &[bool], base_score: f64, seed: u64) -> Vec<Tree> {
        let _busy = data::cores::enter();
        let p = &self.params;
        let n = y.len();
        let n_inputs = binned.edges.len();
        let mut raw = vec![base_score; n];
        let mut rng = Rng::new(seed);
        let mut trees = Vec::with_capacity(p.max_iter);
        let n_sample = ((n as f64 * p.subsample).round() as usize).clamp(1, n);
        let n_cols = ((n_inputs as f64 * p.colsample).round() as usize).clamp(1, n_inputs.max(1));
        let mut columns: Vec<usize> = (0..n_inputs).collect();
        let sampled = n_sample < n;
        let mut sample = Sample::new(binned, n_sample);
        let mut rows: Vec<u32> = Vec::with_capacity(n);
        for _ in 0..p.max_iter {
            // Selection sampling (Knuth's algorithm S): exactly n_sample rows, uniformly, in
            // increasing order, in one sequential pass without branches (a shuffle of a million
            // rows per tree is mostly cache misses; a branch on a coin flip, mispredictions).
            rows.clear();
            if sampled {
                rows.resize(n, 0);
                let (mut needed, mut picked) = (n_sample as i64, 0);
                for i in 0..n {
                    // Row i is taken when `uniform · (n − i) < needed`. `needed` being whole,
                    // the integer part of the product decides the same: the comparison that
                    // the next row waits on is then one of integers, not of floats.
                    let draw = (rng.uniform() * ((n - i) as f64)) as i64;
                    let take = draw < needed;
                    rows[picked] = i as u32;
                    picked += usize::from(take);
                    needed -= i64::from(take);
                }
                rows.truncate(picked);
            } else {
                rows.extend(0..n as u32);
            }
            sample.fill(binned, &rows, &raw, y);
            let allowed: Vec<bool> = if n_cols < n_inputs {
                rng.shuffle(&mut columns);
                let mut a = vec![false; n_inputs];
                columns[..n_cols].iter().for_each(|&c| a[c] = true);
                a
            } else {
                vec![true; n_inputs]
            };
            let tree = self.grow(binned, &mut sample, &allowed);
            add_tree(&tree, binned, &mut raw);
            trees.push(to_value_tree(&tree, binned));
        }
        trees
    }

    /// Grows one tree on the rows of `sample` (in its buffer 0), which it moves between its
    /// buffers as it splits them.
    fn grow(&self, binned: &Binned, sample: &mut Sample, allowed: &[bool]) -> BinTree {
        let p = &self.params;
        let mut tree = BinTree { feature: vec![-1], bin: vec![0], value: vec![0.0], left: vec![0], right: vec![0] };
        let n = sample.len();
        let stride = sample.layout.stride;
        let (sg, sh) = sample.buffers[0]
            .chunks_exact(stride)
            .map(|r| data::unpack(r[0]))
            .fold((0.0, 0.0), |(a, b), (g, h)| (a + g, b + h));
        let mut root =
            Leaf { node: 0, buffer: 0, start: 0, end: n, depth: 0, g: sg, h: sh, hist: Vec::new(), split: None };
        root.hist = histogram(binned, sample, 0, 0..n, allowed, (sg, sh));
        root.split = self.best_split(binned, &root, allowed);
        let mut leaves = vec![root];
        let mut n_leaves = 1;
        while n_leaves < p.max_leaf_nodes {
            // The leaf with the largest gain splits next; ties go to the oldest node.
            let Some(pick) = leaves
                .iter()
                .enumerate()
                .filter_map(|(i, l)| l.split.map(|s| (i, s.gain, l.node)))
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.2.cmp(&a.2)))
                .map(|(i, _, _)| i)
            else {
                break;
            };
            let leaf = leaves.swap_remove(pick);
            let split = leaf.split.expect("picked leaves have a split");
            let mid = sample.partition(binned, split.feature, split.bin as u8, leaf.start..leaf.end, leaf.buffer);
            let buffer = 1 - leaf.buffer;
            // After the last split nothing reads the leaves' histograms.
            let last = n_leaves + 1 == p.max_leaf_nodes;
            let left_id = tree.push();
            let right_id = tree.push();
            tree.feature[leaf.node] = split.feature as i32;
            tree.bin[leaf.node] = split.bin as u8;
            tree.left[leaf.node] = left_id as u32;
            tree.right[leaf.node] = right_id as u32;
            let (lg, lh) = (split.left_g, split.left_h);
            let mut left = Leaf {
                node: left_id,
                buffer,
                start: leaf.start,
                end: mid,
                depth: leaf.depth + 1,
                g: lg,
                h: lh,
                hist: Vec::new(),
                split: None,
            };
            let mut right = Leaf {
                node: right_id,
                buffer,
                start: mid,
                end: leaf.end,
                depth: leaf.depth + 1,
                g: leaf.g - lg,
                h: leaf.h - lh,
                hist: Vec::new(),
                split: None,
            };
            n_leaves += 1;
            if last {
                leaves.extend([left, right]);
                break;
            }
            // Build the smaller child's histogram; the larger one is the parent's minus it.
            let (small, large) = if left.end - left.start <= right.end - right.start {
                (&mut left, &mut right)
            } else {
                (&mut right, &mut left)
            };
            small.hist = histogram(binned, sample, buffer, small.start..small.end, allowed, (small.g, small.h));
            let mut parent = leaf.hist;
            for (pb, sb) in parent.iter_mut().zip(&small.hist) {
                pb.g -= sb.g;
                pb.h -= sb.h;
                pb.n -= sb.n;
            }
            large.hist = parent;
            for child in [left, right] {
                let mut child = child;
                child.split = self.best_split(binned, &child, allowed);
                leaves.push(child);
            }
        }
        for leaf in &leaves {
            tree.value[leaf.node] = -p.learning_rate * leaf.g / (leaf.h + p.l2_regularization);
        }
        tree
    }

    fn best_split(&self, binned: &Binned, leaf: &Leaf, allowed: &[bool]) -> Option<Split> {
        let p = &self.params;
        if p.max_depth.is_some_and(|d| leaf.depth >= d) || leaf.end - leaf.start < 2 * p.min_samples_leaf {
            return None;
        }
        let n = (leaf.end - leaf.start) as u32;
        let lambda = p.l2_regularization;
        let parent = leaf.g * leaf.g / (leaf.h + lambda);
        let mut best: Option<Split> = None;
        for (f, _) in allowed.iter().enumerate().filter(|(_, a)| **a) {
            let hist = &leaf.hist[binned.offsets[f]..binned.offsets[f + 1]];
            let (mut lg, mut lh, mut ln) = (0.0, 0.0, 0u32);
            for (b, bin) in hist.iter().enumerate().take(hist.len() - 1) {
                lg += bin.g;
                lh += bin.h;
                ln += bin.n;
                if (ln as usize) < p.min_samples_leaf {
                    continue;
                }
                if ((n - ln) as usize) < p.min_samples_leaf {
                    break;
                }
                let (rg, rh) = (leaf.g - lg, leaf.h - lh);
                if lh < MIN_CHILD_HESSIAN || rh < MIN_CHILD_HESSIAN {
                    continue;
                }
                let gain = lg * lg / (lh + lambda) + rg * rg / (rh + lambda) - parent;
                if gain > 1e-12 && best.is_none_or(|s| gain > s.gain) {
                    best = Some(Split { gain, feature: f, bin: b, left_g: lg, left_h: lh });
                }
            }
        }
        best
    }
}

/// A tree while it grows: splits on bin numbers.
struct BinTree {
    feature: Vec<i32>,
    bin: Vec<u8>,
    value: Vec<f64>,
    left: Vec<u32>,
    right: Vec<u32>,
}

impl BinTree {
    fn push(&mut self) -> usize {
        self.feature.push(-1);
        self.bin.push(0);
        self.value.push(0.0);
        self.left.push(0);
        self.right.push(0);
        self.feature.len() - 1
    }
}

/// Adds `tree`'s value at each row to `raw`, every row of the data (those the tree grew on
/// and the others alike). The leaves of a tree with few of them are found as in
/// [`crate::forest`], sixty-four rows at a time from the bins of the inputs the tree splits
/// on, read in order: a few vector instructions a split for all the rows, where walking each
/// row down the tree is a mispredicted branch or more a row.
fn add_tree(tree: &BinTree, binned: &Binned, raw: &mut [f64]) {
    let leaves = tree.feature.iter().filter(|&&f| f < 0).count();
    match leaves {
        0..=8 => add_tree_as::<u8>(tree, binned, raw),
        9..=16 => add_tree_as::<u16>(tree, binned, raw),
        17..=32 => add_tree_as::<u32>(tree, binned, raw),
        33..=64 => add_tree_as::<u64>(tree, binned, raw),
        _ => {
            for (row, r) in raw.iter_mut().enumerate() {
                *r += predict_binned(tree, binned, row);
            }
        }
    }
}

fn add_tree_as<M: Mask>(tree: &BinTree, binned: &Binned, raw: &mut [f64]) {
    const ROWS: usize = 64;
    // Leaves numbered left to right, their values in a table of `M::TABLE`; each split with
    // the leaves of its left subtree, which a row going right rules out.
    let mut values = Vec::with_capacity(M::TABLE);
    let mut nodes = Vec::new();
    let leaves = number_leaves(&tree.feature, &tree.left, &tree.right, &tree.value, &mut values, &mut nodes)
        .expect("a grown tree is sound");
    values.resize(M::TABLE, 0.0);
    let splits: Vec<(&[u8], M, M)> = nodes
        .into_iter()
        .map(|(node, left_leaves)| {
            (binned.column(tree.feature[node] as usize), M::from_rank(tree.bin[node]), M::from_u64(left_leaves))
        })
        .collect();
    let all = M::all(leaves);
    for (start, raw) in (0..raw.len()).step_by(ROWS).zip(raw.chunks_mut(ROWS)) {
        let mut masks = [all; ROWS];
        for &(column, bin, clear) in &splits {
            for (mask, &b) in masks.iter_mut().zip(&column[start..start + raw.len()]) {
                *mask = mask.clear_if_above(M::from_rank(b), bin, clear);
            }
        }
        for (r, mask) in raw.iter_mut().zip(masks) {
            *r += values[mask.lowest() & (M::TABLE - 1)];
        }
    }
}

/// The value of `row`'s leaf, walking down the tree.
fn predict_binned(tree: &BinTree, binned: &Binned, row: usize) -> f64 {
    let mut n = 0usize;
    loop {
        let f = tree.feature[n];
        if f < 0 {
            return tree.value[n];
        }
        let b = binned.column(f as usize)[row];
        n = if b <= tree.bin[n] { tree.left[n] } else { tree.right[n] } as usize;
    }
}

/// Replaces bin numbers by the real split values: `bin <= b` is `x <= edges[b]`.
fn to_value_tree(tree: &BinTree, binned: &Binned) -> Tree {
    let value = (0..tree.feature.len())
        .map(|n| match tree.feature[n] {
            f if f < 0 => tree.value[n],
            f => binned.edges[f as usize][tree.bin[n] as usize],
        })
        .collect();
    Tree { feature: tree.feature.clone(), value, left: tree.left.clone(), right: tree.right.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

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
        let model = BoostingParams::default().validate(0).unwrap().fit(x.view(), &y).unwrap();
        let (xt, yt) = xor_data(1000, 2);
        let correct = (0..1000).filter(|&i| (model.probability(xt.row(i).as_slice().unwrap()) >= 0.5) == yt[i]).count();
        assert!(correct > 950, "{correct} of 1000 correct");
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
            let tree = params.grow(&binned, &mut sample, &[true; 3]);
            assert_eq!(tree.feature.iter().filter(|&&f| f < 0).count(), leaves);
            let value_tree = to_value_tree(&tree, &binned);
            let start: Vec<f64> = (0..1000).map(|i| i as f64 / 100.0).collect();
            let mut raw = start.clone();
            add_tree(&tree, &binned, &mut raw);
            for i in 0..1000 {
                let value = value_tree.predict(x.row(i).as_slice().unwrap());
                assert_eq!(predict_binned(&tree, &binned, i), value);
                assert_eq!(raw[i].to_bits(), (start[i] + value).to_bits(), "row {i}, {leaves} leaves");
            }
        }
    }

    #[test]
    fn same_seed_same_model_with_subsampling() {
        let (x, y) = xor_data(800, 4);
        let params = BoostingParams { max_iter: 20, subsample: 0.7, colsample: 0.7, ..BoostingParams::default() };
        let a = params.validate(11).unwrap().fit(x.view(), &y).unwrap();
        let b = params.validate(11).unwrap().fit(x.view(), &y).unwrap();
        let c = params.validate(12).unwrap().fit(x.view(), &y).unwrap();
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
        let model = params.validate(1).unwrap().fit(x.view(), &y).unwrap();
        let correct = (0..n).filter(|&i| (model.probability(x.row(i).as_slice().unwrap()) >= 0.5) == y[i]).count();
        assert!(correct > n * 9 / 10, "{correct} of {n} correct");
    }

    #[test]
    fn refuses_a_single_class() {
        let (x, _) = xor_data(50, 5);
        let y = vec![true; 50];
        let r = BoostingParams::default().validate(0).unwrap().fit(x.view(), &y);
        assert!(matches!(r, Err(Error::Training(_))));
    }
}
