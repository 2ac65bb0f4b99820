//! Growing one tree leaf by leaf on a sample's records: the best split of each leaf from its
//! histogram, the larger child's histogram by subtraction, splits on bin numbers.

use std::ops::Range;

use super::binning::Binned;
use super::histogram::{histogram, subtract, Bin};
use super::partition::{unpack, Sample};
use super::{Tree, ValidBoostingParams, MIN_CHILD_HESSIAN};

#[derive(Clone, Copy)]
struct Split {
    gain: f64,
    feature: usize,
    bin: usize,
    /// Gradient and hessian sums of the rows going left (from the histogram, so that the
    /// partition pass need not read gradients).
    left_g: f64,
    left_h: f64,
    /// Missing values go left (they go right otherwise, as NaN fails `x <= threshold`).
    missing_left: bool,
}

/// A leaf of the tree being grown: its rows are the records `rows[0]` of the sample's first
/// shard and `rows[1]` of its second.
struct Leaf {
    node: usize,
    rows: [Range<usize>; 2],
    depth: usize,
    g: f64,
    h: f64,
    hist: Vec<Bin>,
    split: Option<Split>,
}

impl Leaf {
    fn len(&self) -> usize {
        self.rows[0].len() + self.rows[1].len()
    }
}

impl ValidBoostingParams {
    /// Grows one tree on the rows of `sample`, which it reorders as it splits them; its
    /// second shard starts at the record `shard`.
    pub(super) fn grow(&self, binned: &Binned, sample: &mut Sample, shard: usize, allowed: &[bool]) -> BinTree {
        let p = &self.params;
        let mut tree = BinTree {
            feature: vec![-1],
            bin: vec![0],
            value: vec![0.0],
            left: vec![0],
            right: vec![0],
            missing_left: vec![false],
        };
        let n = sample.len();
        let stride = sample.layout.stride;
        let (sg, sh) =
            sample.records.chunks_exact(stride).map(|r| unpack(r[0])).fold((0.0, 0.0), |(a, b), (g, h)| (a + g, b + h));
        let mut root =
            Leaf { node: 0, rows: [0..shard, shard..n], depth: 0, g: sg, h: sh, hist: Vec::new(), split: None };
        root.hist = histogram(binned, sample, root.rows.clone(), allowed, (sg, sh));
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
            let missing = binned.missing[split.feature].filter(|_| split.missing_left);
            let [mid_a, mid_b] =
                sample.partition_shards(binned, split.feature, split.bin as u8, missing, leaf.rows.clone());
            let [a, b] = &leaf.rows;
            // After the last split nothing reads the leaves' histograms.
            let last = n_leaves + 1 == p.max_leaf_nodes;
            let left_id = tree.push();
            let right_id = tree.push();
            tree.feature[leaf.node] = split.feature as i32;
            tree.bin[leaf.node] = split.bin as u8;
            tree.missing_left[leaf.node] = split.missing_left;
            tree.left[leaf.node] = left_id as u32;
            tree.right[leaf.node] = right_id as u32;
            let (lg, lh) = (split.left_g, split.left_h);
            let mut left = Leaf {
                node: left_id,
                rows: [a.start..mid_a, b.start..mid_b],
                depth: leaf.depth + 1,
                g: lg,
                h: lh,
                hist: Vec::new(),
                split: None,
            };
            let mut right = Leaf {
                node: right_id,
                rows: [mid_a..a.end, mid_b..b.end],
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
            let (small, large) =
                if left.len() <= right.len() { (&mut left, &mut right) } else { (&mut right, &mut left) };
            small.hist = histogram(binned, sample, small.rows.clone(), allowed, (small.g, small.h));
            large.hist = subtract(leaf.hist, &small.hist);
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
        if p.max_depth.is_some_and(|d| leaf.depth >= d) || leaf.len() < 2 * p.min_samples_leaf {
            return None;
        }
        let n = leaf.len() as u32;
        let lambda = p.l2_regularization;
        let parent = leaf.g * leaf.g / (leaf.h + lambda);
        let mut best: Option<Split> = None;
        // Scans the cuts of one input's bins in order, the left side starting from `start`
        // (nothing, or the missing rows), and keeps the best split in `best`.
        let scan = |best: &mut Option<Split>, f: usize, bins: &[Bin], start: Bin, missing_left: bool| {
            let (mut lg, mut lh, mut ln) = (start.g, start.h, start.n);
            for (b, bin) in bins.iter().enumerate() {
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
                    *best = Some(Split { gain, feature: f, bin: b, left_g: lg, left_h: lh, missing_left });
                }
            }
        };
        for (f, _) in allowed.iter().enumerate().filter(|(_, a)| **a) {
            let hist = &leaf.hist[binned.offsets[f]..binned.offsets[f + 1]];
            scan(&mut best, f, &hist[..hist.len() - 1], Bin::default(), false);
            // With missing values (their bin is the last), each cut but the one between the
            // regular bins and the missing bin is tried again with the missing rows on the left.
            if binned.missing[f].is_some() && hist.len() > 2 {
                scan(&mut best, f, &hist[..hist.len() - 2], hist[hist.len() - 1], true);
            }
        }
        best
    }
}

/// A tree while it grows: splits on bin numbers.
#[derive(Clone)]
pub(super) struct BinTree {
    pub(super) feature: Vec<i32>,
    pub(super) bin: Vec<u8>,
    pub(super) value: Vec<f64>,
    pub(super) left: Vec<u32>,
    pub(super) right: Vec<u32>,
    pub(super) missing_left: Vec<bool>,
}

impl BinTree {
    fn push(&mut self) -> usize {
        self.feature.push(-1);
        self.bin.push(0);
        self.value.push(0.0);
        self.left.push(0);
        self.right.push(0);
        self.missing_left.push(false);
        self.feature.len() - 1
    }
}

/// The value of `row`'s leaf, walking down the tree.
pub(super) fn predict_binned(tree: &BinTree, binned: &Binned, row: usize) -> f64 {
    tree.value[leaf_node(tree, binned, row)]
}

/// The leaf `row` falls in, walking down the tree.
pub(super) fn leaf_node(tree: &BinTree, binned: &Binned, row: usize) -> usize {
    let mut n = 0usize;
    loop {
        let f = tree.feature[n];
        if f < 0 {
            return n;
        }
        let b = binned.column(f as usize)[row];
        let left = b <= tree.bin[n] || (tree.missing_left[n] && binned.missing[f as usize] == Some(b));
        n = if left { tree.left[n] } else { tree.right[n] } as usize;
    }
}

/// Replaces bin numbers by the real split values: `bin <= b` is `x <= edges[b]`.
pub(super) fn to_value_tree(tree: &BinTree, binned: &Binned) -> Tree {
    let value = (0..tree.feature.len())
        .map(|n| match tree.feature[n] {
            f if f < 0 => tree.value[n],
            // The cut between an input's regular bins and its missing bin: every number goes
            // left (the largest finite number, since JSON has no infinity).
            f => binned.edges[f as usize].get(tree.bin[n] as usize).copied().unwrap_or(f64::MAX),
        })
        .collect();
    let missing_left = if tree.missing_left.iter().any(|&m| m) { tree.missing_left.clone() } else { Vec::new() };
    Tree {
        feature: tree.feature.clone(),
        value,
        left: tree.left.clone(),
        right: tree.right.clone(),
        missing_left,
        categories: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::BoostingParams;
    use crate::learn::labelled;
    use crate::rng::Rng;
    use linfa::traits::Fit;
    use ndarray::Array2;

    /// A fit of the default build's shape (300 trees of 8 leaves, subsample 0.8, colsample
    /// 0.5) on 100,000 rows of continuous, yes/no and one-hot inputs; also the workload to count
    /// instructions on: `valgrind --tool=callgrind <test binary> --exact learn::gbdt::grow::tests::profile_fit`.
    #[test]
    fn profile_fit() {
        let n = 100_000;
        let mut rng = Rng::new(1);
        let mut x = Array2::zeros((n, 20));
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            for f in 0..8 {
                x[[i, f]] = rng.normal();
            }
            x[[i, 8]] = f64::from(u8::from(rng.uniform() < 0.3));
            x[[i, 9]] = (rng.uniform() * 20.0).floor();
            x[[i, 10 + rng.below(10)]] = 1.0;
            let score = x[[i, 0]] - 0.5 * x[[i, 1]] * x[[i, 2]] + 0.8 * x[[i, 8]] + 0.3 * x[[i, 12]] - 1.0;
            y.push(rng.uniform() < crate::learn::sigmoid(score));
        }
        let params = BoostingParams {
            learning_rate: 0.03,
            max_leaf_nodes: 8,
            min_samples_leaf: 30,
            subsample: 0.8,
            colsample: 0.5,
            ..BoostingParams::default()
        };
        let model = params.validate(0).expect("valid").fit(&labelled(x.view(), &y)).expect("fits");
        assert_eq!(model.trees.len(), 300);
        // It learns the signal: its log loss on these rows is well below the base rate's.
        let rate = y.iter().filter(|&&b| b).count() as f64 / n as f64;
        let (mut fitted, mut constant) = (0.0, 0.0);
        for (i, &label) in y.iter().enumerate() {
            let p = model.probability(x.row(i).as_slice().expect("rows are contiguous"));
            let (p, q) = if label { (p, rate) } else { (1.0 - p, 1.0 - rate) };
            fitted -= p.ln();
            constant -= q.ln();
        }
        assert!(fitted < 0.9 * constant, "log loss {fitted} against the base rate's {constant}");
    }
}
