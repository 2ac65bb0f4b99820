//! Histogram gradient-boosted trees for binary log loss, grown leaf by leaf (the algorithm of
//! LightGBM and scikit-learn's HistGradientBoosting), deterministic for a fixed seed.
//!
//! linfa 0.8 has no gradient boosting; this is the project's own, small enough to read in one
//! sitting, serialisable, and single-threaded so that a seed fixes every bit of the model.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::Rng;

/// At most this many rows per feature are sorted to place bin edges (as scikit-learn does).
const BINNING_SAMPLE: usize = 200_000;
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

/// Inputs quantised to at most 256 bins per input, stored by column.
struct Binned {
    n_rows: usize,
    bins: Vec<u8>,
    /// Upper edge of each bin but the last: value `x` falls in the first bin whose edge is >= x.
    edges: Vec<Vec<f64>>,
    /// Where each input's bins start in a histogram (inputs have as many bins as they need,
    /// so a one-hot input costs two slots, not 256).
    offsets: Vec<usize>,
    /// Inputs whose histograms are built from every row's bin.
    dense: Vec<usize>,
    /// The dense inputs' bins again, row by row (`dense.len()` bytes a row): a histogram pass
    /// reads one cache line per row instead of one per row and input.
    dense_rows: Vec<u8>,
    /// Inputs where one bin holds most rows (one-hot levels): each row lists only its other
    /// bins, and the common bin is the node's total minus the rest. A row of the Online
    /// Shoppers data touches 18 histogram slots this way instead of 75.
    sparse: Vec<(usize, u8)>,
    /// Row r's uncommon sparse bins are `entries[row_start[r]..row_start[r + 1]]`, each a
    /// histogram index.
    row_start: Vec<u32>,
    entries: Vec<u32>,
}

/// An input is stored sparsely when its most common bin holds at least this share of rows.
const SPARSE_SHARE: f64 = 0.8;

impl Binned {
    fn new(x: ArrayView2<f64>, max_bins: usize) -> Binned {
        let (n_rows, n_inputs) = x.dim();
        let mut bins = vec![0u8; n_rows * n_inputs];
        let mut edges = Vec::with_capacity(n_inputs);
        let stride = n_rows.div_ceil(BINNING_SAMPLE).max(1);
        for f in 0..n_inputs {
            let column = x.column(f);
            let mut sample: Vec<f64> = column.iter().step_by(stride).copied().collect();
            sample.sort_by(f64::total_cmp);
            let mut distinct = sample.clone();
            distinct.dedup();
            let e: Vec<f64> = if distinct.len() <= max_bins {
                distinct.windows(2).map(|w| w[0] + (w[1] - w[0]) / 2.0).collect()
            } else {
                let mut cuts: Vec<f64> = (1..max_bins).map(|k| sample[k * sample.len() / max_bins]).collect();
                cuts.dedup();
                // The largest value needs a bin above the last edge.
                if cuts.last() == sample.last() {
                    cuts.pop();
                }
                cuts
            };
            let out = &mut bins[f * n_rows..(f + 1) * n_rows];
            for (o, &v) in out.iter_mut().zip(column.iter()) {
                *o = e.partition_point(|&edge| edge < v) as u8;
            }
            edges.push(e);
        }
        let mut offsets = Vec::with_capacity(n_inputs + 1);
        offsets.push(0);
        for e in &edges {
            offsets.push(offsets.last().copied().unwrap_or(0) + e.len() + 1);
        }
        let mut dense = Vec::new();
        let mut sparse = Vec::new();
        for (f, e) in edges.iter().enumerate() {
            let mut counts = vec![0usize; e.len() + 1];
            for &b in &bins[f * n_rows..(f + 1) * n_rows] {
                counts[b as usize] += 1;
            }
            let (common, &most) =
                counts.iter().enumerate().max_by_key(|(b, c)| (**c, std::cmp::Reverse(*b))).unwrap_or((0, &0));
            if n_rows > 0 && most as f64 >= SPARSE_SHARE * n_rows as f64 {
                sparse.push((f, common as u8));
            } else {
                dense.push(f);
            }
        }
        let mut dense_rows = vec![0u8; n_rows * dense.len()];
        for (j, &f) in dense.iter().enumerate() {
            for (r, &b) in bins[f * n_rows..(f + 1) * n_rows].iter().enumerate() {
                dense_rows[r * dense.len() + j] = b;
            }
        }
        let mut row_start = Vec::with_capacity(n_rows + 1);
        let mut entries = Vec::new();
        row_start.push(0u32);
        for r in 0..n_rows {
            for &(f, common) in &sparse {
                let b = bins[f * n_rows + r];
                if b != common {
                    entries.push((offsets[f] + b as usize) as u32);
                }
            }
            row_start.push(entries.len() as u32);
        }
        Binned { n_rows, bins, edges, offsets, dense, dense_rows, sparse, row_start, entries }
    }

    fn histogram_len(&self) -> usize {
        self.offsets.last().copied().unwrap_or(0)
    }

    fn column(&self, f: usize) -> &[u8] {
        &self.bins[f * self.n_rows..(f + 1) * self.n_rows]
    }
}

#[derive(Clone, Copy, Default)]
struct Bin {
    g: f64,
    h: f64,
    n: u32,
}

#[derive(Clone, Copy)]
struct Split {
    gain: f64,
    feature: usize,
    bin: usize,
}

/// A leaf of the tree being grown: its rows are `rows[start..end]`.
struct Leaf {
    node: usize,
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
        let p = &self.params;
        let n = y.len();
        let n_inputs = binned.edges.len();
        let mut raw = vec![base_score; n];
        let mut g = vec![0.0; n];
        let mut h = vec![0.0; n];
        let mut rng = Rng::new(seed);
        let mut trees = Vec::with_capacity(p.max_iter);
        let all_rows: Vec<u32> = (0..n as u32).collect();
        let n_sample = ((n as f64 * p.subsample).round() as usize).clamp(1, n);
        let n_cols = ((n_inputs as f64 * p.colsample).round() as usize).clamp(1, n_inputs.max(1));
        let mut columns: Vec<usize> = (0..n_inputs).collect();
        let mut chosen = vec![false; n];
        for _ in 0..p.max_iter {
            let rows: Vec<u32> = if n_sample < n {
                // Selection sampling (Knuth's algorithm S): exactly n_sample rows, uniformly,
                // in increasing order, in one sequential pass (a shuffle of a million rows per
                // tree is mostly cache misses).
                let mut needed = n_sample;
                let mut picked = Vec::with_capacity(n_sample);
                for (i, slot) in chosen.iter_mut().enumerate() {
                    let take = (rng.uniform() * (n - i) as f64) < needed as f64;
                    *slot = take;
                    if take {
                        picked.push(i as u32);
                        needed -= 1;
                    }
                }
                picked
            } else {
                all_rows.clone()
            };
            // Gradients of the log loss, needed only where the tree looks.
            for &r in &rows {
                let i = r as usize;
                let prob = sigmoid(raw[i]);
                g[i] = prob - f64::from(u8::from(y[i]));
                h[i] = (prob * (1.0 - prob)).max(1e-16);
            }
            let allowed: Vec<bool> = if n_cols < n_inputs {
                rng.shuffle(&mut columns);
                let mut a = vec![false; n_inputs];
                columns[..n_cols].iter().for_each(|&c| a[c] = true);
                a
            } else {
                vec![true; n_inputs]
            };
            let sampled = n_sample < n;
            let (tree, rows, leaves) = self.grow(binned, &g, &h, rows, &allowed);
            // Rows that grew the tree sit in their leaves' ranges; only the others walk it.
            for &(node, start, end) in &leaves {
                for &r in &rows[start..end] {
                    raw[r as usize] += tree.value[node];
                }
            }
            if sampled {
                for (i, r) in raw.iter_mut().enumerate() {
                    if !chosen[i] {
                        *r += predict_binned(&tree, binned, i);
                    }
                }
            }
            trees.push(to_value_tree(&tree, binned));
        }
        trees
    }

    /// Grows one tree on `rows`; returns it, the rows reordered so that each leaf's rows are
    /// contiguous, and each leaf as (node, start, end) into them.
    #[allow(clippy::type_complexity)]
    fn grow(
        &self,
        binned: &Binned,
        g: &[f64],
        h: &[f64],
        mut rows: Vec<u32>,
        allowed: &[bool],
    ) -> (BinTree, Vec<u32>, Vec<(usize, usize, usize)>) {
        let p = &self.params;
        let mut tree = BinTree { feature: vec![-1], bin: vec![0], value: vec![0.0], left: vec![0], right: vec![0] };
        let (sg, sh) = rows.iter().fold((0.0, 0.0), |(a, b), &r| (a + g[r as usize], b + h[r as usize]));
        let mut root =
            Leaf { node: 0, start: 0, end: rows.len(), depth: 0, g: sg, h: sh, hist: Vec::new(), split: None };
        root.hist = histogram(binned, g, h, &rows[..], allowed, (sg, sh));
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
            let column = binned.column(split.feature);
            let segment = &mut rows[leaf.start..leaf.end];
            let mut mid = 0;
            // Partition the leaf's rows and sum the left child's gradients in the same pass.
            let (mut lg, mut lh) = (0.0, 0.0);
            for k in 0..segment.len() {
                let r = segment[k];
                if usize::from(column[r as usize]) <= split.bin {
                    lg += g[r as usize];
                    lh += h[r as usize];
                    segment.swap(k, mid);
                    mid += 1;
                }
            }
            let mid = leaf.start + mid;
            let left_id = tree.push();
            let right_id = tree.push();
            tree.feature[leaf.node] = split.feature as i32;
            tree.bin[leaf.node] = split.bin as u8;
            tree.left[leaf.node] = left_id as u32;
            tree.right[leaf.node] = right_id as u32;
            let mut left = Leaf {
                node: left_id,
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
                start: mid,
                end: leaf.end,
                depth: leaf.depth + 1,
                g: leaf.g - lg,
                h: leaf.h - lh,
                hist: Vec::new(),
                split: None,
            };
            // Build the smaller child's histogram; the larger one is the parent's minus it.
            let (small, large) = if left.end - left.start <= right.end - right.start {
                (&mut left, &mut right)
            } else {
                (&mut right, &mut left)
            };
            small.hist = histogram(binned, g, h, &rows[small.start..small.end], allowed, (small.g, small.h));
            let mut parent = leaf.hist;
            for (pb, sb) in parent.iter_mut().zip(&small.hist) {
                pb.g -= sb.g;
                pb.h -= sb.h;
                pb.n -= sb.n;
            }
            large.hist = parent;
            n_leaves += 1;
            for child in [left, right] {
                let mut child = child;
                child.split = self.best_split(binned, &child, allowed);
                leaves.push(child);
            }
        }
        for leaf in &leaves {
            tree.value[leaf.node] = -p.learning_rate * leaf.g / (leaf.h + p.l2_regularization);
        }
        let ranges = leaves.iter().map(|l| (l.node, l.start, l.end)).collect();
        (tree, rows, ranges)
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
                    best = Some(Split { gain, feature: f, bin: b });
                }
            }
        }
        best
    }
}

/// Sums of gradient, hessian and rows per bin of each allowed input over `rows`, whose totals
/// are `total` (needed to fill the common bin of sparse inputs).
fn histogram(binned: &Binned, g: &[f64], h: &[f64], rows: &[u32], allowed: &[bool], total: (f64, f64)) -> Vec<Bin> {
    let mut hist = vec![Bin::default(); binned.histogram_len()];
    let gh: Vec<(f64, f64)> = rows.iter().map(|&r| (g[r as usize], h[r as usize])).collect();
    let width = binned.dense.len();
    let active: Vec<(usize, usize)> =
        binned.dense.iter().enumerate().filter(|(_, &f)| allowed[f]).map(|(j, &f)| (j, binned.offsets[f])).collect();
    if !active.is_empty() {
        for (&r, &(gr, hr)) in rows.iter().zip(&gh) {
            let row = &binned.dense_rows[r as usize * width..(r as usize + 1) * width];
            for &(j, offset) in &active {
                let bin = &mut hist[offset + row[j] as usize];
                bin.g += gr;
                bin.h += hr;
                bin.n += 1;
            }
        }
    }
    if binned.sparse.is_empty() {
        return hist;
    }
    for (&r, &(gr, hr)) in rows.iter().zip(&gh) {
        let r = r as usize;
        for &slot in &binned.entries[binned.row_start[r] as usize..binned.row_start[r + 1] as usize] {
            let bin = &mut hist[slot as usize];
            bin.g += gr;
            bin.h += hr;
            bin.n += 1;
        }
    }
    for &(f, common) in &binned.sparse {
        let bins = &mut hist[binned.offsets[f]..binned.offsets[f + 1]];
        let (mut og, mut oh, mut on) = (0.0, 0.0, 0u32);
        for (b, bin) in bins.iter().enumerate() {
            if b != common as usize {
                og += bin.g;
                oh += bin.h;
                on += bin.n;
            }
        }
        bins[common as usize] = Bin { g: total.0 - og, h: total.1 - oh, n: rows.len() as u32 - on };
    }
    hist
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

fn predict_binned(tree: &BinTree, binned: &Binned, row: usize) -> f64 {
    let mut n = 0usize;
    loop {
        let f = tree.feature[n];
        if f < 0 {
            return tree.value[n];
        }
        let b = binned.bins[f as usize * binned.n_rows + row];
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
        let (x, y) = xor_data(500, 3);
        let params = BoostingParams { max_iter: 5, ..BoostingParams::default() }.validate(0).unwrap();
        let binned = Binned::new(x.view(), 255);
        let g: Vec<f64> = y.iter().map(|&b| if b { -0.5 } else { 0.5 }).collect();
        let h = vec![0.25; 500];
        let (tree, _, _) = params.grow(&binned, &g, &h, (0..500).collect(), &[true; 3]);
        let value_tree = to_value_tree(&tree, &binned);
        for i in 0..500 {
            assert_eq!(predict_binned(&tree, &binned, i), value_tree.predict(x.row(i).as_slice().unwrap()));
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
    fn refuses_a_single_class() {
        let (x, _) = xor_data(50, 5);
        let y = vec![true; 50];
        let r = BoostingParams::default().validate(0).unwrap().fit(x.view(), &y);
        assert!(matches!(r, Err(Error::Training(_))));
    }
}
