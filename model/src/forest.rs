//! Scoring many rows with a boosted ensemble: the trees laid out by input and threshold
//! (QuickScorer, Lucchese et al., SIGIR 2015) instead of walked node by node.
//!
//! Each tree keeps a bit per leaf, leaves numbered left to right. A split whose test fails
//! (`x > threshold`, the row goes right) rules out every leaf of its left subtree. For each
//! input, the splits on it are sorted by threshold, so a row clears the bits of exactly the
//! splits whose threshold is below its value, in one forward scan that stops at the first
//! threshold at or above the value. The row's leaf in a tree is then the lowest bit still set.
//! The work per row is one AND per failed test, with no branch that depends on which way a row
//! went; walking 300 trees node by node mispredicts about one branch per node.
//!
//! The leaf values are added in the trees' order, so the scores are bit for bit those of
//! [`Booster::decision`].

use crate::gbdt::{sigmoid, Booster, Tree};

/// A failed test clears these leaves of `tree`.
#[derive(Debug, Clone, Copy)]
struct Test {
    threshold: f64,
    tree: u32,
    keep: u64,
}

/// The tests on one input, by ascending threshold.
#[derive(Debug, Clone)]
struct InputTests {
    input: usize,
    tests: Vec<Test>,
}

/// A [`Booster`] compiled for scoring; see the module's documentation.
#[derive(Debug, Clone)]
pub struct Forest {
    base_score: f64,
    inputs: Vec<InputTests>,
    /// Tree t's leaf values, left to right, from `leaf_start[t]`.
    leaf_values: Vec<f64>,
    leaf_start: Vec<usize>,
    /// Every leaf of tree t set.
    all_leaves: Vec<u64>,
}

impl Forest {
    /// Compiles `booster`; `None` when a tree has more leaves than a 64-bit word holds (such
    /// ensembles are scored tree by tree).
    pub fn new(booster: &Booster) -> Option<Forest> {
        let mut by_input: Vec<Vec<Test>> = vec![Vec::new(); booster.n_inputs];
        let mut leaf_values = Vec::new();
        let mut leaf_start = Vec::with_capacity(booster.trees.len());
        let mut all_leaves = Vec::with_capacity(booster.trees.len());
        for (t, tree) in booster.trees.iter().enumerate() {
            leaf_start.push(leaf_values.len());
            let mut splits = Vec::new();
            let leaves = number_leaves(tree, 0, &mut leaf_values, &mut splits)?;
            if leaves > 64 {
                return None;
            }
            all_leaves.push(if leaves == 64 { u64::MAX } else { (1u64 << leaves) - 1 });
            for (node, left_leaves) in splits {
                let input = usize::try_from(tree.feature[node]).ok()?;
                let keep = !left_leaves;
                by_input.get_mut(input)?.push(Test { threshold: tree.value[node], tree: t as u32, keep });
            }
        }
        let inputs = by_input
            .into_iter()
            .enumerate()
            .filter(|(_, tests)| !tests.is_empty())
            .map(|(input, mut tests)| {
                // Equal thresholds keep their tree order; the clearing is the same either way.
                tests.sort_by(|a, b| a.threshold.total_cmp(&b.threshold));
                InputTests { input, tests }
            })
            .collect();
        Some(Forest { base_score: booster.base_score, inputs, leaf_values, leaf_start, all_leaves })
    }

    /// Raw score (log-odds) of one row of inputs; `leaves` is working space, reused between
    /// calls to save an allocation per row.
    pub fn decision(&self, x: &[f64], leaves: &mut Vec<u64>) -> f64 {
        let mut out = [0.0];
        self.decisions::<1>(x, &mut out, leaves);
        out[0]
    }

    /// Positive-class probabilities of rows of `width` inputs each, one after the other in
    /// `x`, written to `out` (as many as there are rows). Rows go four at a time: the sum of a
    /// row's leaves is a chain of 300 additions, each waiting for the one before, and four
    /// rows' chains run side by side.
    pub fn probabilities(&self, x: &[f64], width: usize, out: &mut [f64], leaves: &mut Vec<u64>) {
        let mut quads = out.chunks_exact_mut(4);
        let mut rows = x.chunks_exact(4 * width.max(1));
        for (o, rows) in (&mut quads).zip(&mut rows) {
            self.decisions::<4>(rows, o, leaves);
        }
        for (o, row) in quads.into_remainder().iter_mut().zip(rows.remainder().chunks_exact(width.max(1))) {
            *o = self.decision(row, leaves);
        }
        out.iter_mut().for_each(|p| *p = sigmoid(*p));
    }

    /// Raw scores of `N` rows, one after the other in `x`.
    fn decisions<const N: usize>(&self, x: &[f64], out: &mut [f64], leaves: &mut Vec<u64>) {
        let trees = self.all_leaves.len();
        let width = x.len() / N;
        leaves.clear();
        for _ in 0..N {
            leaves.extend_from_slice(&self.all_leaves);
        }
        for (row, set) in x.chunks_exact(width.max(1)).zip(leaves.chunks_exact_mut(trees.max(1))) {
            for input in &self.inputs {
                let value = row[input.input];
                // `value <= threshold` goes left; NaN never does, as in the tree walk.
                for test in &input.tests {
                    if value <= test.threshold {
                        break;
                    }
                    set[test.tree as usize] &= test.keep;
                }
            }
        }
        // Each row's leaves are added in the trees' order, starting from -0.0 as `Iterator::sum`
        // does, so that the scores are bit for bit those of the tree walk.
        let mut sums = [-0.0f64; N];
        for (t, &start) in self.leaf_start.iter().enumerate() {
            for (r, sum) in sums.iter_mut().enumerate() {
                *sum += self.leaf_values[start + leaves[r * trees + t].trailing_zeros() as usize];
            }
        }
        for (o, sum) in out.iter_mut().zip(sums) {
            *o = self.base_score + sum;
        }
    }
}

/// Numbers the leaves under `node` left to right (appending their values), records for each
/// split the bits of its left subtree's leaves, and returns how many leaves there are. `None`
/// for a malformed tree (a child index out of range, or deeper than a sound tree can be).
fn number_leaves(tree: &Tree, node: usize, values: &mut Vec<f64>, splits: &mut Vec<(usize, u64)>) -> Option<usize> {
    fn walk(
        tree: &Tree,
        node: usize,
        depth: usize,
        first: usize,
        values: &mut Vec<f64>,
        splits: &mut Vec<(usize, u64)>,
    ) -> Option<usize> {
        if depth > tree.feature.len() {
            return None;
        }
        if *tree.feature.get(node)? < 0 {
            values.push(*tree.value.get(node)?);
            return Some(1);
        }
        let at = splits.len();
        splits.push((node, 0));
        let left = walk(tree, *tree.left.get(node)? as usize, depth + 1, first, values, splits)?;
        let right = walk(tree, *tree.right.get(node)? as usize, depth + 1, first + left, values, splits)?;
        if first + left <= 64 {
            let bits = if left == 64 { u64::MAX } else { ((1u64 << left) - 1) << first };
            splits[at].1 = bits;
        }
        Some(left + right)
    }
    walk(tree, node, 0, 0, values, splits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gbdt::BoostingParams;
    use crate::rng::Rng;
    use ndarray::Array2;

    fn data(n: usize, seed: u64) -> (Array2<f64>, Vec<bool>) {
        let mut rng = Rng::new(seed);
        let mut x = Array2::zeros((n, 4));
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let (a, b) = (rng.uniform(), rng.normal());
            x[[i, 0]] = a;
            x[[i, 1]] = b;
            x[[i, 2]] = if rng.uniform() < 0.3 { 1.0 } else { 0.0 };
            x[[i, 3]] = (rng.uniform() * 5.0).floor();
            y.push(a + 0.3 * b + 0.2 * x[[i, 2]] - 0.1 * x[[i, 3]] + 0.3 * rng.normal() > 0.4);
        }
        (x, y)
    }

    #[test]
    fn scores_are_bit_for_bit_those_of_the_tree_walk() {
        let (x, y) = data(3000, 1);
        for leaves in [2, 8, 31, 64] {
            let params =
                BoostingParams { max_iter: 40, max_leaf_nodes: leaves, min_samples_leaf: 5, ..Default::default() };
            let booster = params.validate(3).unwrap().fit(x.view(), &y).unwrap();
            let forest = Forest::new(&booster).expect("at most 64 leaves a tree");
            let (xt, _) = data(2000, 2);
            let mut scratch = Vec::new();
            for row in xt.rows() {
                let row = row.as_slice().unwrap();
                assert_eq!(forest.decision(row, &mut scratch).to_bits(), booster.decision(row).to_bits());
            }
            // Values on the thresholds themselves, and beyond every threshold, and NaN.
            for tree in &booster.trees {
                for (n, &f) in tree.feature.iter().enumerate() {
                    if f >= 0 {
                        let mut row = xt.row(0).to_vec();
                        row[f as usize] = tree.value[n];
                        assert_eq!(forest.decision(&row, &mut scratch).to_bits(), booster.decision(&row).to_bits());
                    }
                }
            }
            let flat: Vec<f64> = xt.iter().copied().take(4 * 103).collect();
            let mut out = vec![0.0; 103];
            forest.probabilities(&flat, 4, &mut out, &mut scratch);
            for (row, p) in flat.chunks_exact(4).zip(&out) {
                assert_eq!(p.to_bits(), booster.probability(row).to_bits());
            }
            for v in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e300, -1e300] {
                let row = [v; 4];
                assert_eq!(forest.decision(&row, &mut scratch).to_bits(), booster.decision(&row).to_bits());
            }
        }
    }

    #[test]
    fn trees_with_more_than_64_leaves_are_left_to_the_walk() {
        let (x, y) = data(3000, 4);
        let params = BoostingParams { max_iter: 2, max_leaf_nodes: 80, min_samples_leaf: 2, ..Default::default() };
        let booster = params.validate(3).unwrap().fit(x.view(), &y).unwrap();
        assert!(booster.trees.iter().any(|t| t.feature.iter().filter(|&&f| f < 0).count() > 64));
        assert!(Forest::new(&booster).is_none());
    }
}
