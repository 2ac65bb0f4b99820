//! The boosting loop: per bag and iteration, draw rows and inputs, grow a tree on the
//! gradients, add its values to every row's score.

use linfa::traits::Fit;
use ndarray::{ArrayView1, ArrayView2};

use super::binning::Binned;
use super::grow::{predict_binned, to_value_tree, BinTree};
use super::histogram::cores;
use super::partition::Sample;
use super::sampling;
use super::scorer::{number_leaves, Mask};
use super::{Arithmetic, Booster, Tree, ValidBoostingParams};
use crate::error::{Error, Result};
use crate::learn::{labelled, Labelled};
use crate::rng::Rng;

impl<'a> Fit<ArrayView2<'a, f64>, ArrayView1<'a, bool>, Error> for ValidBoostingParams {
    type Object = Booster;

    /// Fits the ensemble on the records (rows × inputs) and their labels.
    fn fit(&self, dataset: &Labelled<'a>) -> Result<Booster> {
        let p = &self.params;
        let x = dataset.records().view();
        let (n, n_inputs) = x.dim();
        let targets = dataset.targets();
        let Some(y) = targets.as_slice() else {
            let owned: Vec<bool> = targets.to_vec();
            return self.fit(&labelled(x, &owned));
        };
        if n != y.len() {
            return Err(Error::MismatchedLengths {
                what: "labels against rows of inputs",
                expected: n,
                found: y.len(),
            });
        }
        let positives = y.iter().filter(|&&b| b).count();
        if positives == 0 || positives == n {
            return Err(Error::TooFewClasses { what: "fitting gradient boosting" });
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
        Ok(Booster { base_score, n_inputs, trees, arithmetic: Arithmetic::Double })
    }
}

impl ValidBoostingParams {
    /// One boosting run with its own seed.
    fn boost(&self, binned: &Binned, y: &[bool], base_score: f64, seed: u64) -> Vec<Tree> {
        let _busy = cores::enter();
        let p = &self.params;
        let n = y.len();
        let n_inputs = binned.edges.len();
        let mut raw = vec![base_score; n];
        let mut rng = Rng::new(seed);
        let mut trees = Vec::with_capacity(p.max_iter);
        let n_sample = ((n as f64 * p.subsample).round() as usize).clamp(1, n);
        let n_cols = ((n_inputs as f64 * p.colsample).round() as usize).clamp(1, n_inputs.max(1));
        let mut columns: Vec<usize> = (0..n_inputs).collect();
        let mut taken = Vec::new();
        let mut sample = Sample::new(binned, n_sample);
        let mut rows: Vec<u32> = Vec::with_capacity(n);
        for _ in 0..p.max_iter {
            // Exactly n_sample rows, uniformly, in increasing order (the records' locality).
            sampling::draw_rows(&mut rng, n, n_sample, &mut taken, &mut rows);
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
}

/// Adds `tree`'s value at each row to `raw`, every row of the data (those the tree grew on
/// and the others alike). The leaves of a tree with few of them are found as in
/// [`crate::learn::gbdt::scorer`], sixty-four rows at a time from the bins of the inputs the tree splits
/// on, read in order: a few vector instructions a split for all the rows, where walking each
/// row down the tree is a mispredicted branch or more a row.
pub(super) fn add_tree(tree: &BinTree, binned: &Binned, raw: &mut [f64]) {
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
    let splits: Vec<(&[u8], M, M, Option<u8>)> = nodes
        .into_iter()
        .map(|(node, left_leaves)| {
            let f = tree.feature[node] as usize;
            let missing = binned.missing[f].filter(|_| tree.missing_left[node]);
            (binned.column(f), M::from_rank(tree.bin[node]), M::from_u64(left_leaves), missing)
        })
        .collect();
    let all = M::all(leaves);
    for (start, raw) in (0..raw.len()).step_by(ROWS).zip(raw.chunks_mut(ROWS)) {
        let mut masks = [all; ROWS];
        for &(column, bin, clear, missing) in &splits {
            let column = &column[start..start + raw.len()];
            match missing {
                None => {
                    for (mask, &b) in masks.iter_mut().zip(column) {
                        *mask = mask.clear_if_above(M::from_rank(b), bin, clear);
                    }
                }
                // Missing values go left: their bin counts as the lowest.
                Some(m) => {
                    for (mask, &b) in masks.iter_mut().zip(column) {
                        let b = if b == m { 0 } else { b };
                        *mask = mask.clear_if_above(M::from_rank(b), bin, clear);
                    }
                }
            }
        }
        for (r, mask) in raw.iter_mut().zip(masks) {
            *r += values[mask.lowest() & (M::TABLE - 1)];
        }
    }
}
