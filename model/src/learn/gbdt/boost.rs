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
        let mut boosters = self.fit_stages(&binned, y, base_score, &[(None, p.max_iter)]);
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
        if y.len() != binned.n_rows {
            return Err(Error::MismatchedLengths {
                what: "labels against rows of bins",
                expected: binned.n_rows,
                found: y.len(),
            });
        }
        check_rows(binned.n_rows)?;
        if let Some(&r) = first.and_then(|rows| rows.iter().find(|&&r| r as usize >= binned.n_rows)) {
            return Err(Error::MismatchedLengths {
                what: "rows to fit on against rows of bins",
                expected: binned.n_rows,
                found: r as usize + 1,
            });
        }
        let (positives, n) = match first {
            Some(rows) => (rows.iter().filter(|&&r| y[r as usize]).count(), rows.len()),
            None => (y.iter().filter(|&&b| b).count(), y.len()),
        };
        if positives == 0 || positives == n {
            return Err(Error::TooFewClasses { what: "fitting gradient boosting" });
        }
        let mut stages = vec![(first, self.params.max_iter)];
        stages.extend(more.map(|rounds| (None, rounds)));
        let mut boosters = self.fit_stages(binned, y, base_score(positives, n), &stages).into_iter();
        let first = boosters.next().expect("one booster a stage");
        Ok((first, boosters.next()))
    }

    /// Boosts each bag through the stages (rows, rounds) in turn; one model a stage, each with
    /// every tree grown up to the end of its stage.
    fn fit_stages(
        &self,
        binned: &Binned,
        y: &[bool],
        base_score: f64,
        stages: &[(Option<&[u32]>, usize)],
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
            };
            let mut ends = Vec::with_capacity(stages.len());
            for &(rows, rounds) in stages {
                self.boost(binned, y, &mut run, rows, rounds);
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
        (0..stages.len())
            .map(|stage| {
                let mut trees = Vec::with_capacity(bags.iter().map(|(_, ends)| ends[stage]).sum());
                for (bag, ends) in &bags {
                    for tree in &bag[..ends[stage]] {
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
                Booster { base_score, n_inputs, trees, arithmetic: Arithmetic::Double }
            })
            .collect()
    }
}

impl ValidBoostingParams {
    /// `rounds` rounds of one bag's boosting run on the rows at `stage_rows` (positions in
    /// `binned`; all its rows when `None`).
    fn boost(&self, binned: &Binned, y: &[bool], run: &mut Run, stage_rows: Option<&[u32]>, rounds: usize) {
        let _busy = cores::enter();
        let p = &self.params;
        let Run { raw, rng, columns, trees } = run;
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
            let drawn = sampling::taken_rows(&taken);
            match stage_rows {
                Some(stage_rows) => sample.fill_from(binned, drawn.map(|p| stage_rows[p as usize]), n_sample, raw, y),
                None => sample.fill_from(binned, drawn, n_sample, raw, y),
            }
            let allowed: Vec<bool> = if n_cols < n_inputs {
                rng.shuffle(columns);
                let mut a = vec![false; n_inputs];
                columns[..n_cols].iter().for_each(|&c| a[c] = true);
                a
            } else {
                vec![true; n_inputs]
            };
            let tree = self.grow(binned, &mut sample, &allowed);
            add_tree(&tree, binned, raw);
            trees.push(to_value_tree(&tree, binned));
        }
    }
}

/// Adds `tree`'s value at each row to `raw`, every row of the data (those the tree grew on
/// and the others alike). The leaves of a tree with few of them are found as in
/// [`crate::learn::gbdt::scorer`], sixty-four rows at a time from the bins of the inputs the tree splits
/// on, read in order: a few vector instructions a split for all the rows, where walking each
/// row down the tree is a mispredicted branch or more a row.
pub(super) fn add_tree(tree: &BinTree, binned: &Binned, raw: &mut [f32]) {
    let leaves = tree.feature.iter().filter(|&&f| f < 0).count();
    match leaves {
        0..=8 => add_tree_as::<u8>(tree, binned, raw),
        9..=16 => add_tree_as::<u16>(tree, binned, raw),
        17..=32 => add_tree_as::<u32>(tree, binned, raw),
        33..=64 => add_tree_as::<u64>(tree, binned, raw),
        _ => {
            for (row, r) in raw.iter_mut().enumerate() {
                *r += predict_binned(tree, binned, row) as f32;
            }
        }
    }
}

fn add_tree_as<M: Mask>(tree: &BinTree, binned: &Binned, raw: &mut [f32]) {
    const ROWS: usize = 64;
    // Leaves numbered left to right, their values in a table of `M::TABLE`; each split with
    // the leaves of its left subtree, which a row going right rules out.
    let mut values = Vec::with_capacity(M::TABLE);
    let mut nodes = Vec::new();
    let leaves = number_leaves(&tree.feature, &tree.left, &tree.right, &tree.value, &mut values, &mut nodes)
        .expect("a grown tree is sound");
    values.resize(M::TABLE, 0.0);
    let values: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
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
