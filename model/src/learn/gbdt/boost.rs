//! The boosting loop: per bag and iteration, draw rows and inputs, grow a tree on the
//! gradients, add its values to every row's score.

use std::ops::Range;

use linfa::traits::Fit;
use ndarray::{ArrayView1, ArrayView2};

use super::binning::Binned;
use super::cores;
use super::grow::{leaf_node, predict_binned, to_value_tree, BinTree};
use super::partition::{gradient, Sample};
use super::sampling;
use super::scorer::{number_leaves, Mask};
use super::{Arithmetic, Booster, TrainingBins, Tree, ValidBoostingParams};
use crate::error::{Error, Result};
use crate::learn::{labelled, Labelled};
use crate::rng::Rng;

impl<'a> Fit<ArrayView2<'a, f64>, ArrayView1<'a, bool>, Error> for ValidBoostingParams {
    type Object = Booster;

    /// Fits the ensemble on the records (rows × inputs) and their labels.
    fn fit(&self, dataset: &Labelled<'a>) -> Result<Booster> {
        let p = &self.params;
        let x = dataset.records().view();
        let n = x.nrows();
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
        check_rows(n)?;
        let binned = Binned::new(x, p.max_bins);
        let base_score = base_score(positives, n);
        let mut boosters = self.fit_stages(&binned, y, base_score, &[(None, p.max_iter)], None);
        Ok(boosters.pop().expect("one booster a stage"))
    }
}

/// A fit names its rows in 32 bits: more rows are refused, not wrapped around.
fn check_rows(n: usize) -> Result<()> {
    if n > u32::MAX as usize {
        return Err(Error::MismatchedLengths {
            what: "rows to fit on (each a 32-bit number)",
            expected: u32::MAX as usize,
            found: n,
        });
    }
    Ok(())
}

/// Checks a fit's labels (one a row of `binned`) and rows (positions in `binned`, every row
/// when `None`): returns how many of the rows are positive, and how many rows there are.
fn check_fit(binned: &Binned, y: &[bool], rows: Option<&[u32]>) -> Result<(usize, usize)> {
    if y.len() != binned.n_rows {
        return Err(Error::MismatchedLengths {
            what: "labels against rows of bins",
            expected: binned.n_rows,
            found: y.len(),
        });
    }
    check_rows(binned.n_rows)?;
    if let Some(&r) = rows.and_then(|rows| rows.iter().find(|&&r| r as usize >= binned.n_rows)) {
        return Err(Error::MismatchedLengths {
            what: "rows to fit on against rows of bins",
            expected: binned.n_rows,
            found: r as usize + 1,
        });
    }
    let (positives, n) = match rows {
        Some(rows) => (rows.iter().filter(|&&r| y[r as usize]).count(), rows.len()),
        None => (y.iter().filter(|&&b| b).count(), y.len()),
    };
    if positives == 0 || positives == n {
        return Err(Error::TooFewClasses { what: "fitting gradient boosting" });
    }
    Ok((positives, n))
}

/// Log-odds of the positive rate.
fn base_score(positives: usize, n: usize) -> f64 {
    let rate = positives as f64 / n as f64;
    (rate / (1.0 - rate)).ln()
}

/// One bag's boosting, kept between stages: a later stage goes on from the scores, draws and
/// trees where the earlier one stopped.
struct Run {
    /// The score of every row of the bins, the rows of later stages included, in `f32`: it
    /// only feeds the gradients, which are stored as `f32` (see [`super::partition::pack`]),
    /// and it is the largest thing a fit holds but its sample. Its rounding adds up over the
    /// trees, so the model is not the one `f64` scores gave bit for bit; cross-validated
    /// quality on the Online Shoppers data is unchanged to four digits (BENCHMARKS.md).
    raw: Vec<f32>,
    rng: Rng,
    /// The inputs, in the order of the last draw of them.
    columns: Vec<usize>,
    trees: Vec<Tree>,
    /// The trees as they were grown, on bin numbers, when their leaves are to be refitted.
    grown: Vec<BinTree>,
}

impl ValidBoostingParams {
    /// Fits on the rows at `first` (positions in `bins`; every row when `None`) for `max_iter`
    /// rounds, then, when `more` is given, goes on growing the same ensemble on every row of
    /// `bins` for that many more rounds (a warm start: the scores of all rows are kept from
    /// the first trees on, so the second model costs only its extra rounds). `y` holds the
    /// label of each row of `bins`. Returns the first model, and the continued one when asked;
    /// the continued model's first trees are the first model's (bag by bag).
    pub fn fit_warm(
        &self,
        bins: &TrainingBins,
        y: &[bool],
        first: Option<&[u32]>,
        more: Option<usize>,
    ) -> Result<(Booster, Option<Booster>)> {
        let binned = &bins.binned;
        let (positives, n) = check_fit(binned, y, first)?;
        let mut stages = vec![(first, self.params.max_iter)];
        stages.extend(more.map(|rounds| (None, rounds)));
        let mut boosters = self.fit_stages(binned, y, base_score(positives, n), &stages, None).into_iter();
        let first = boosters.next().expect("one booster a stage");
        Ok((first, boosters.next()))
    }

    /// Fits on the rows at `first` (positions in `bins`), then fits the leaf values of the same
    /// trees again on every row of `bins`, tree by tree (LightGBM's `refit` without decay):
    /// each leaf's value becomes the Newton step of all the rows that fall in it, at the
    /// scores the refitted trees before it give them, from the log-odds of all the rows. The
    /// trees' splits are those the first fit chose; the second model costs a pass over the
    /// rows a tree, not a fit. Returns the first model and the refitted one.
    pub fn fit_refitted(&self, bins: &TrainingBins, y: &[bool], first: &[u32]) -> Result<(Booster, Booster)> {
        let binned = &bins.binned;
        let (positives, _) = check_fit(binned, y, Some(first))?;
        let all = base_score(y.iter().filter(|&&b| b).count(), y.len());
        let stages = [(Some(first), self.params.max_iter)];
        let mut boosters =
            self.fit_stages(binned, y, base_score(positives, first.len()), &stages, Some(all)).into_iter();
        let first = boosters.next().expect("one booster a stage");
        Ok((first, boosters.next().expect("the refitted booster")))
    }

    /// Boosts each bag through the stages (rows, rounds) in turn; one model a stage, each with
    /// every tree grown up to the end of its stage.
    fn fit_stages(
        &self,
        binned: &Binned,
        y: &[bool],
        base_score: f64,
        stages: &[(Option<&[u32]>, usize)],
        refit: Option<f64>,
    ) -> Vec<Booster> {
        let p = &self.params;
        let n_inputs = binned.edges.len();
        let seeds: Vec<u64> = (0..p.bags as u64).map(|b| self.seed.wrapping_add(b)).collect();
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(seeds.len());
        // A bag's trees, and how many of them each stage had grown at its end.
        let bag = |seed: u64| {
            let mut run = Run {
                raw: vec![base_score as f32; binned.n_rows],
                rng: Rng::new(seed),
                columns: (0..n_inputs).collect(),
                trees: Vec::with_capacity(stages.iter().map(|s| s.1).sum()),
                grown: Vec::new(),
            };
            let mut ends = Vec::with_capacity(stages.len() + 1);
            for &(rows, rounds) in stages {
                self.boost(binned, y, &mut run, rows, rounds, refit.is_some());
                ends.push(run.trees.len());
            }
            if let Some(base) = refit {
                // The refit keeps scores of its own.
                run.raw = Vec::new();
                let refitted = self.refit_leaves(binned, y, base, &run.grown);
                run.trees.extend(refitted);
                ends.push(run.trees.len());
            }
            (run.trees, ends)
        };
        // Each bag depends only on its seed, and the bags are joined in seed order, so the
        // model is the same whatever the number of threads.
        let bags: Vec<(Vec<Tree>, Vec<usize>)> = if threads <= 1 {
            seeds.iter().map(|&seed| bag(seed)).collect()
        } else {
            std::thread::scope(|scope| {
                let chunks: Vec<_> = seeds
                    .chunks(seeds.len().div_ceil(threads))
                    .map(|chunk| {
                        let bag = &bag;
                        scope.spawn(move || chunk.iter().map(|&seed| bag(seed)).collect::<Vec<_>>())
                    })
                    .collect();
                chunks.into_iter().flat_map(|c| c.join().expect("a boosting thread panicked")).collect()
            })
        };
        let scale = 1.0 / p.bags as f64;
        let models = stages.len() + usize::from(refit.is_some());
        (0..models)
            .map(|stage| {
                // A grown stage's model holds every tree up to its end; the refitted one only
                // its own trees.
                let from = |ends: &[usize]| if stage == stages.len() { ends[stage - 1] } else { 0 };
                let mut trees = Vec::with_capacity(bags.iter().map(|(_, ends)| ends[stage] - from(ends)).sum());
                for (bag, ends) in &bags {
                    for tree in &bag[from(ends)..ends[stage]] {
                        let mut tree = tree.clone();
                        if p.bags > 1 {
                            for (v, &f) in tree.value.iter_mut().zip(&tree.feature) {
                                if f < 0 {
                                    *v *= scale;
                                }
                            }
                        }
                        trees.push(tree);
                    }
                }
                let base_score = if stage == stages.len() { refit.unwrap_or(base_score) } else { base_score };
                Booster { base_score, n_inputs, trees, arithmetic: Arithmetic::Double }
            })
            .collect()
    }
}

impl ValidBoostingParams {
    /// `rounds` rounds of one bag's boosting run on the rows at `stage_rows` (positions in
    /// `binned`; all its rows when `None`).
    fn boost(&self, binned: &Binned, y: &[bool], run: &mut Run, stage_rows: Option<&[u32]>, rounds: usize, keep: bool) {
        let _busy = cores::enter();
        let p = &self.params;
        let Run { raw, rng, columns, trees, grown } = run;
        let n = stage_rows.map_or(binned.n_rows, <[u32]>::len);
        let n_inputs = binned.edges.len();
        let n_sample = ((n as f64 * p.subsample).round() as usize).clamp(1, n);
        let n_cols = ((n_inputs as f64 * p.colsample).round() as usize).clamp(1, n_inputs.max(1));
        let mut taken = Vec::new();
        let mut sample = Sample::new(binned, n_sample);
        for _ in 0..rounds {
            // Exactly n_sample rows, uniformly, read in increasing order (the records'
            // locality) from the draw's bits; a draw names positions among the stage's rows.
            sampling::draw(rng, n, n_sample, &mut taken);
            let shard = sample.fill_drawn(binned, &taken, stage_rows, n_sample, raw, y);
            let allowed: Vec<bool> = if n_cols < n_inputs {
                rng.shuffle(columns);
                let mut a = vec![false; n_inputs];
                columns[..n_cols].iter().for_each(|&c| a[c] = true);
                a
            } else {
                vec![true; n_inputs]
            };
            let tree = self.grow(binned, &mut sample, shard, &allowed);
            add_tree(&tree, binned, raw);
            trees.push(to_value_tree(&tree, binned));
            if keep {
                grown.push(tree);
            }
        }
    }

    /// `grown`'s trees with their leaf values fitted again on every row of `binned`, in order,
    /// from the score `base` (see [`ValidBoostingParams::fit_refitted`]). Each tree is one
    /// pass over the rows: the last tree's values added to their scores, then each row's leaf
    /// and gradient. The rows are summed in blocks of [`REFIT_BLOCK`], the blocks' sums added
    /// in order, the first half of the blocks and the second side by side when a core is idle:
    /// the same sums either way.
    fn refit_leaves(&self, binned: &Binned, y: &[bool], base: f64, grown: &[BinTree]) -> Vec<Tree> {
        let _busy = cores::enter();
        let p = &self.params;
        let n = binned.n_rows;
        let mut raw = vec![base as f32; n];
        let mut leaf = vec![0u16; n];
        let mid = (n.div_ceil(REFIT_BLOCK) / 2) * REFIT_BLOCK;
        // The values of the last tree's leaves, not yet in `raw`.
        let mut last: Vec<f32> = Vec::new();
        grown
            .iter()
            .map(|tree| {
                let leaves = leaf_nodes(tree);
                let pass = |first: usize, leaf: &mut [u16], raw: &mut [f32]| {
                    leaf.chunks_mut(REFIT_BLOCK)
                        .zip(raw.chunks_mut(REFIT_BLOCK))
                        .enumerate()
                        .map(|(b, (leaf, raw))| {
                            let start = first + b * REFIT_BLOCK;
                            refit_block(tree, &leaves, binned, start, leaf, raw, &y[start..], &last)
                        })
                        .collect::<Vec<_>>()
                };
                let (leaf_mine, leaf_theirs) = leaf.split_at_mut(mid);
                let (raw_mine, raw_theirs) = raw.split_at_mut(mid);
                let (theirs, mine) =
                    cores::join(n, || pass(mid, leaf_theirs, raw_theirs), || pass(0, leaf_mine, raw_mine));
                let mut total = vec![(0.0f64, 0.0f64); leaves.len()];
                for block in mine.iter().chain(&theirs) {
                    for (t, s) in total.iter_mut().zip(block) {
                        t.0 += s.0;
                        t.1 += s.1;
                    }
                }
                let mut tree = tree.clone();
                last = leaves
                    .iter()
                    .zip(&total)
                    .map(|(&node, &(g, h))| {
                        tree.value[node] = -p.learning_rate * g / (h + p.l2_regularization);
                        tree.value[node] as f32
                    })
                    .collect();
                to_value_tree(&tree, binned)
            })
            .collect()
    }
}

/// Adds `tree`'s value at each row to `raw`, every row of the data (those the tree grew on
/// and the others alike). The leaves of a tree with few of them are found as in
/// [`crate::learn::gbdt::scorer`], sixty-four rows at a time from the bins of the inputs the tree splits
/// on, read in order: a few vector instructions a split for all the rows, where walking each
/// row down the tree is a mispredicted branch or more a row.
pub(super) fn add_tree(tree: &BinTree, binned: &Binned, raw: &mut [f32]) {
    // The rows in two halves, side by side when a core is idle.
    let mid = (raw.len() / 2).next_multiple_of(64).min(raw.len());
    let rows = raw.len();
    let (mine, theirs) = raw.split_at_mut(mid);
    cores::join(rows, || add_rows(tree, binned, mid, theirs), || add_rows(tree, binned, 0, mine));
}

/// [`add_tree`] for the rows from `first` on, one score each in `raw`.
fn add_rows(tree: &BinTree, binned: &Binned, first: usize, raw: &mut [f32]) {
    let leaves = tree.feature.iter().filter(|&&f| f < 0).count();
    match leaves {
        0..=8 => add_tree_as::<u8>(tree, binned, first, raw),
        9..=16 => add_tree_as::<u16>(tree, binned, first, raw),
        17..=32 => add_tree_as::<u32>(tree, binned, first, raw),
        33..=64 => add_tree_as::<u64>(tree, binned, first, raw),
        _ => {
            for (row, r) in (first..).zip(raw.iter_mut()) {
                *r += predict_binned(tree, binned, row) as f32;
            }
        }
    }
}

fn add_tree_as<M: Mask>(tree: &BinTree, binned: &Binned, first: usize, raw: &mut [f32]) {
    let mut values = Vec::with_capacity(M::TABLE);
    let table = leaf_masks::<M>(tree, binned, &mut values);
    values.resize(M::TABLE, 0.0);
    let values: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
    table.for_each(first..first + raw.len(), |start, masks| {
        for (r, mask) in raw[start - first..start - first + masks.len()].iter_mut().zip(masks) {
            *r += values[mask.lowest() & (M::TABLE - 1)];
        }
    });
}

/// Rows a block of the leaves' refit sums (see [`ValidBoostingParams::refit_leaves`]).
const REFIT_BLOCK: usize = 1 << 16;

/// A tree's splits as masks of leaves (numbered left to right, their values appended to
/// `values`): each split with the leaves of its left subtree, which a row going right rules
/// out.
struct LeafMasks<'a, M> {
    splits: Vec<(&'a [u8], M, M, Option<u8>)>,
    all: M,
}

fn leaf_masks<'a, M: Mask>(tree: &BinTree, binned: &'a Binned, values: &mut Vec<f64>) -> LeafMasks<'a, M> {
    let mut nodes = Vec::new();
    let leaves = number_leaves(&tree.feature, &tree.left, &tree.right, &tree.value, values, &mut nodes)
        .expect("a grown tree is sound");
    let splits = nodes
        .into_iter()
        .map(|(node, left_leaves)| {
            let f = tree.feature[node] as usize;
            let missing = binned.missing[f].filter(|_| tree.missing_left[node]);
            (binned.column(f), M::from_rank(tree.bin[node]), M::from_u64(left_leaves), missing)
        })
        .collect();
    LeafMasks { splits, all: M::all(leaves) }
}

impl<M: Mask> LeafMasks<'_, M> {
    /// Calls `each` with the first row and the masks of each run of (at most) 64 rows of
    /// `rows`, in order: a row's leaf is its mask's lowest bit.
    #[inline(always)]
    fn for_each(&self, rows: Range<usize>, mut each: impl FnMut(usize, &[M])) {
        const ROWS: usize = 64;
        let mut start = rows.start;
        while start < rows.end {
            let len = ROWS.min(rows.end - start);
            let mut masks = [self.all; ROWS];
            let masks = &mut masks[..len];
            for &(column, bin, clear, missing) in &self.splits {
                let column = &column[start..start + len];
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
            each(start, masks);
            start += len;
        }
    }
}

/// The leaves of `tree` in the order [`number_leaves`] numbers them (left to right).
fn leaf_nodes(tree: &BinTree) -> Vec<usize> {
    fn walk(tree: &BinTree, node: usize, leaves: &mut Vec<usize>) {
        if tree.feature[node] < 0 {
            leaves.push(node);
        } else {
            walk(tree, tree.left[node] as usize, leaves);
            walk(tree, tree.right[node] as usize, leaves);
        }
    }
    let mut leaves = Vec::new();
    walk(tree, 0, &mut leaves);
    leaves
}

/// The number (see [`leaf_nodes`]) of the leaf each row of `binned` from `first` on falls in,
/// one row a place of `out`; `leaves` are the tree's leaf nodes.
fn leaf_numbers(tree: &BinTree, leaves: &[usize], binned: &Binned, first: usize, out: &mut [u16]) {
    fn masked<M: Mask>(tree: &BinTree, binned: &Binned, first: usize, out: &mut [u16]) {
        let table = leaf_masks::<M>(tree, binned, &mut Vec::new());
        table.for_each(first..first + out.len(), |start, masks| {
            for (o, mask) in out[start - first..start - first + masks.len()].iter_mut().zip(masks) {
                *o = mask.lowest() as u16;
            }
        });
    }
    match leaves.len() {
        0..=8 => masked::<u8>(tree, binned, first, out),
        9..=16 => masked::<u16>(tree, binned, first, out),
        17..=32 => masked::<u32>(tree, binned, first, out),
        33..=64 => masked::<u64>(tree, binned, first, out),
        _ => {
            let mut number = vec![0u16; tree.feature.len()];
            for (k, &node) in leaves.iter().enumerate() {
                number[node] = k as u16;
            }
            for (row, o) in (first..).zip(out.iter_mut()) {
                *o = number[leaf_node(tree, binned, row)];
            }
        }
    }
}

/// One block of [`ValidBoostingParams::refit_leaves`]'s pass for `tree` (its leaf nodes
/// `leaves`) over the rows from `first`, their leaves in `leaf` and scores in `raw`: adds
/// `last[leaf]` (the tree before's values, when there is one) to each score, writes each
/// row's leaf, and returns the sums of gradient and hessian of each leaf. A run of 64 rows
/// is done at once: its gradients in one loop the compiler vectorises (in single precision,
/// [`gradient`]), then summed into two
/// tables by turns (a row's sum need not wait for the last row's when both fell in the same
/// leaf), which are added at the end.
#[allow(clippy::too_many_arguments)]
fn refit_block(
    tree: &BinTree,
    leaves: &[usize],
    binned: &Binned,
    first: usize,
    leaf: &mut [u16],
    raw: &mut [f32],
    y: &[bool],
    last: &[f32],
) -> Vec<(f64, f64)> {
    const ROWS: usize = 64;
    if !last.is_empty() {
        for (r, &l) in raw.iter_mut().zip(leaf.iter()) {
            *r += last[usize::from(l)];
        }
    }
    leaf_numbers(tree, leaves, binned, first, leaf);
    let mut tables = vec![[0.0f64; 2]; 2 * leaves.len()];
    let (mut gs, mut hs) = ([0f32; ROWS], [0f32; ROWS]);
    for ((leaf, raw), y) in leaf.chunks(ROWS).zip(raw.chunks(ROWS)).zip(y.chunks(ROWS)) {
        for (((g, h), &r), &y) in gs.iter_mut().zip(hs.iter_mut()).zip(raw).zip(y) {
            (*g, *h) = gradient(r, y);
        }
        for (i, ((&l, &g), &h)) in leaf.iter().zip(&gs).zip(&hs).enumerate() {
            let t = &mut tables[2 * usize::from(l) + (i & 1)];
            t[0] += f64::from(g);
            t[1] += f64::from(h);
        }
    }
    tables.chunks_exact(2).map(|t| (t[0][0] + t[1][0], t[0][1] + t[1][1])).collect()
}

#[cfg(test)]
mod tests {
    use super::super::BoostingParams;
    use super::*;
    use crate::learn::sigmoid;
    use ndarray::Array2;

    /// The leaf `x` falls in, walking the tree on its inputs (not on bins).
    fn leaf_of(tree: &Tree, x: &[f64]) -> usize {
        let mut n = 0;
        while tree.feature[n] >= 0 {
            let v = x[tree.feature[n] as usize];
            let left = v <= tree.value[n] || (v.is_nan() && tree.missing_left.get(n) == Some(&true));
            n = if left { tree.left[n] } else { tree.right[n] } as usize;
        }
        n
    }

    /// Continuous inputs (one with missing values), a yes/no, and a label that depends on them.
    fn rows(n: usize, seed: u64) -> (Array2<f64>, Vec<bool>) {
        let mut rng = Rng::new(seed);
        let mut x = Array2::zeros((n, 4));
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            x[[i, 0]] = rng.normal();
            x[[i, 1]] = rng.normal();
            x[[i, 2]] = if rng.uniform() < 0.2 { f64::NAN } else { rng.normal() };
            x[[i, 3]] = f64::from(u8::from(rng.uniform() < 0.3));
            let missing = if x[[i, 2]].is_nan() { 0.7 } else { 0.4 * x[[i, 2]] };
            y.push(rng.uniform() < sigmoid(x[[i, 0]] - 0.6 * x[[i, 1]] + missing + 0.8 * x[[i, 3]] - 0.5));
        }
        (x, y)
    }

    /// Worked out again here from the rows' inputs, in `f64` with the exact logistic
    /// function: each refitted leaf's value is the Newton step of all the rows in it, at the
    /// scores of the refitted trees before it, from the log-odds of all the rows; the splits
    /// are the first fit's.
    fn check_refit(x: &Array2<f64>, y: &[bool], params: &ValidBoostingParams, first: &Booster, refitted: &Booster) {
        let n = y.len();
        let positives = y.iter().filter(|&&b| b).count() as f64;
        let base = (positives / (n as f64 - positives)).ln();
        assert!((refitted.base_score - base).abs() < 1e-12);
        assert_eq!(refitted.trees.len(), first.trees.len());
        let mut score = vec![base; n];
        let (lr, l2) = (params.params.learning_rate, params.params.l2_regularization);
        let mut largest = 0.0f64;
        for (a, b) in first.trees.iter().zip(&refitted.trees) {
            assert_eq!(
                (&a.feature, &a.left, &a.right, &a.missing_left),
                (&b.feature, &b.left, &b.right, &b.missing_left)
            );
            let mut sums = vec![(0.0, 0.0); b.feature.len()];
            let leaves: Vec<usize> = (0..n).map(|i| leaf_of(b, x.row(i).as_slice().unwrap())).collect();
            for (i, &leaf) in leaves.iter().enumerate() {
                let p = sigmoid(score[i]);
                sums[leaf].0 += p - f64::from(u8::from(y[i]));
                sums[leaf].1 += p * (1.0 - p);
            }
            for (node, &f) in b.feature.iter().enumerate() {
                if f >= 0 {
                    assert_eq!(a.value[node], b.value[node], "a split's threshold");
                } else {
                    let expected = -lr * sums[node].0 / (sums[node].1 + l2);
                    let error = (b.value[node] - expected).abs();
                    assert!(error <= 1e-4 * expected.abs() + 1e-7, "{} against {expected}", b.value[node]);
                    largest = largest.max(expected.abs());
                }
            }
            for (s, &leaf) in score.iter_mut().zip(&leaves) {
                *s += b.value[leaf];
            }
        }
        assert!(largest > 0.01, "the leaves hold something to check: {largest}");
    }

    #[test]
    fn a_refit_keeps_the_splits_and_fits_each_leaf_to_every_row_in_turn() {
        let n = 6000;
        let (x, y) = rows(n, 4);
        let bins = TrainingBins { binned: Binned::new(x.view(), 255) };
        let params = BoostingParams {
            max_iter: 40,
            max_leaf_nodes: 6,
            min_samples_leaf: 20,
            learning_rate: 0.1,
            subsample: 0.8,
            ..BoostingParams::default()
        }
        .validate(3)
        .unwrap();
        let first_rows: Vec<u32> = (0..n as u32).filter(|r| r % 4 != 0).collect();
        let (first, refitted) = params.fit_refitted(&bins, &y, &first_rows).unwrap();
        let (alone, _) = params.fit_warm(&bins, &y, Some(&first_rows), None).unwrap();
        assert_eq!(first, alone, "the first model is the fit on its rows");
        assert_eq!(refitted.trees.len(), 40);
        check_refit(&x, &y, &params, &first, &refitted);
        // Rows in several blocks of the pass, in two halves.
        let (x, y) = rows(3 * REFIT_BLOCK + 17, 5);
        let bins = TrainingBins { binned: Binned::new(x.view(), 255) };
        let params =
            BoostingParams { max_iter: 3, learning_rate: 0.3, ..BoostingParams::default() }.validate(1).unwrap();
        let rows: Vec<u32> = (0..x.nrows() as u32).step_by(2).collect();
        let (first, refitted) = params.fit_refitted(&bins, &y, &rows).unwrap();
        check_refit(&x, &y, &params, &first, &refitted);
        assert_eq!(params.fit_refitted(&bins, &y, &rows).unwrap().1, refitted, "the same model every time");
    }
}
