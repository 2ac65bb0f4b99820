//! Scoring many rows with a boosted ensemble: the trees laid out by input and threshold
//! (QuickScorer, Lucchese et al., SIGIR 2015), sixty-four rows at a time across SIMD lanes
//! (V-QuickScorer, Lucchese et al., SIGIR 2016), instead of walked node by node.
//!
//! Each tree keeps a bit per leaf, leaves numbered left to right. A split whose test fails
//! (`x > threshold`, or `x` is NaN: the row goes right) rules out every leaf of its left
//! subtree. The row's leaf in a tree is the lowest bit left once every failed test has cleared
//! its bits.
//!
//! Each input's thresholds, over all trees, are few (a fit bins an input into at most 256
//! bins), so a value is first turned into its rank: how many of its input's thresholds it
//! fails. A test then fails exactly when the rank exceeds the test's own threshold's rank, a
//! comparison of small integers. A block of sixty-four rows keeps, per tree, sixty-four masks
//! side by side, and every test updates all of them at once without a branch: compilers turn that loop
//! into a few vector instructions on any x86-64 or aarch64 (portable code; no `unsafe`, no
//! CPU-specific build). Walking 300 trees node by node instead mispredicts about a branch a
//! node, and scanning each row's failed tests branch by branch about one per input.
//!
//! A split that sends a missing value (NaN) left, which a rank cannot say, is handled by
//! ranking NaN below every threshold of its input (it passes every test) and clearing, for the
//! rows whose value is NaN, the left leaves of the input's tests that send NaN right. A
//! categorical split (imported models) turns each row's code into a bit of a word (codes below
//! 62, then a bit for any other number and one for NaN) and tests it against the word of the
//! values it sends left, sixty-four rows at once as well.
//!
//! A tree with more than 32 leaves (XGBoost's depth 6 makes up to 64) keeps several 16-bit
//! masks, its leaves left to right, rather than one 64-bit mask: a test clears bits of the
//! masks its left leaves fall in, and the row's leaf is the lowest bit of the masks put side by
//! side. Baseline x86-64 (SSE2) updates eight 16-bit lanes an instruction, and two 64-bit ones
//! in several.
//!
//! The leaf values are added in the trees' order, in the ensemble's [`Arithmetic`], so the
//! scores are bit for bit those of [`Booster::decision`].

use crate::learn::gbdt::{sigmoid, sigmoid_f32, Arithmetic, Booster, CategorySplit};

/// Rows scored side by side.
const LANES: usize = 64;
/// Rows whose leaf values are added side by side.
const GROUP: usize = 8;

/// A [`Booster`] compiled for scoring; see the module's documentation.
#[derive(Debug, Clone)]
pub struct Forest {
    kernel: Kernel,
}

/// The compiled trees, with a leaf mask as wide as the largest tree needs: the narrower the
/// masks, the more of them a vector instruction updates.
#[derive(Debug, Clone)]
enum Kernel {
    Leaves8(Compiled<u8>),
    Leaves16(Compiled<u16>),
    Leaves32(Compiled<u32>),
}

/// A failed test clears the `clear` leaves of mask `part` (see [`Compiled::parts`]) in the
/// rows whose rank on input `slot` exceeds `rank`.
#[derive(Debug, Clone, Copy)]
struct Test<M> {
    slot: u32,
    part: u32,
    rank: M,
    clear: M,
}

/// A categorical split: it clears the `clear` leaves of mask `part` in the rows whose code on
/// categorical slot `slot` is not among `left` (see [`code_bit`]).
#[derive(Debug, Clone, Copy)]
struct CategoryTest<M> {
    slot: u32,
    part: u32,
    clear: M,
    left: u64,
    /// `left` in words as wide as a mask (see [`Compiled::narrow_codes`]).
    narrow_left: M,
}

/// Codes a compiled categorical split may list: below 62, each a bit of a word whose last two
/// bits stand for every other number (62) and for NaN (63).
const LISTABLE_CODES: u32 = 62;
const OTHER_BIT: u64 = 1 << 62;
const NAN_BIT: u64 = 1 << 63;

/// A value's bit among a categorical slot's codes.
fn code_bit(x: f64) -> u64 {
    if x.is_nan() {
        NAN_BIT
    } else if x >= 0.0 && x < f64::from(LISTABLE_CODES) {
        1 << (x as u64)
    } else {
        OTHER_BIT
    }
}

/// The bits of the values a categorical split sends left; `None` when it lists a code past
/// [`LISTABLE_CODES`].
fn left_bits(split: &CategorySplit, missing_left: bool) -> Option<u64> {
    let mut listed = 0u64;
    for &code in &split.codes {
        if code >= LISTABLE_CODES {
            return None;
        }
        listed |= 1 << code;
    }
    let codes = if split.listed_left { listed } else { !listed & (OTHER_BIT - 1) | OTHER_BIT };
    Some(codes | if missing_left { NAN_BIT } else { 0 })
}

#[derive(Debug, Clone)]
struct Compiled<M> {
    base_score: f64,
    arithmetic: Arithmetic,
    /// For each input some test reads (its slot): the input's index and its thresholds,
    /// ascending and distinct.
    inputs: Vec<(usize, Vec<f64>)>,
    /// By slot: whether some test of the slot sends NaN left (NaN then ranks 0, and
    /// `missing_tests` send it right where it goes right).
    nan_low: Vec<bool>,
    /// By slot, then rank: a slot's ranks stay in registers while its tests run.
    tests: Vec<Test<M>>,
    /// The tests of `nan_low` slots that send NaN right, by slot (their rank unused).
    missing_tests: Vec<Test<M>>,
    /// The inputs categorical splits read (their categorical slots).
    category_inputs: Vec<usize>,
    /// Whether every code the categorical splits list is below `M::BITS - 2`: the codes' words
    /// are then as wide as a mask (the last two bits for any other number and for NaN), and
    /// a vector instruction tests as many lanes as it updates masks.
    narrow_codes: bool,
    /// Categorical splits.
    categories: Vec<CategoryTest<M>>,
    /// Tree t's leaf values, left to right, from `t * table`, zeros after its last leaf.
    leaf_values: Vec<f64>,
    /// Entries of a tree's table of leaf values: a power of two above the leaves its masks hold.
    table: usize,
    /// By tree: its first mask and how many it has. A tree with more leaves than a mask holds
    /// (a depth-6 tree has up to 64) has several, `M::BITS` leaves each, left to right: a test
    /// clears bits of the masks its left leaves fall in, and a row's leaf is the lowest bit of
    /// them all. Narrow masks, several a tree, take fewer vector instructions than one wide mask.
    parts: Vec<(u32, u32)>,
    /// Whether some tree has several masks.
    several: bool,
    /// By mask: every leaf it stands for set.
    all_leaves: Vec<M>,
}

/// A leaf mask: an unsigned integer with a bit per leaf.
pub(crate) trait Mask: Copy + Default + Ord + std::fmt::Debug + Send + Sync + 'static {
    const BITS: u32;
    /// Entries of a tree's table of leaf values: a power of two above `BITS`.
    const TABLE: usize = 2 * Self::BITS as usize;
    fn from_u64(bits: u64) -> Self;
    fn to_u64(self) -> u64;
    /// The first `leaves` bits set (at most `BITS`).
    fn all(leaves: usize) -> Self {
        Self::from_u64(if leaves >= 64 { u64::MAX } else { (1u64 << leaves) - 1 })
    }
    fn from_rank(rank: u8) -> Self;
    fn lowest(self) -> usize;
    /// `self` without the `clear` bits when `rank > test`, unchanged otherwise; written
    /// without a branch so that a loop over lanes becomes vector instructions.
    fn clear_if_above(self, rank: Self, test: Self, clear: Self) -> Self;
    /// `self` without the `clear` bits where `fails` is all ones (unchanged where it is zero).
    fn clear_where(self, fails: Self, clear: Self) -> Self;
    /// All ones when `code` and `left` have no bit in common, else zero (without a branch).
    fn fails_if_disjoint(code: Self, left: Self) -> Self;
}

macro_rules! impl_mask {
    ($($t:ty: $fails:item)*) => {$(
        impl Mask for $t {
            const BITS: u32 = <$t>::BITS;
            fn from_u64(bits: u64) -> Self {
                bits as $t
            }
            #[inline(always)]
            fn to_u64(self) -> u64 {
                self as u64
            }
            fn from_rank(rank: u8) -> Self {
                <$t>::from(rank)
            }
            #[inline(always)]
            fn lowest(self) -> usize {
                self.trailing_zeros() as usize
            }
            #[inline(always)]
            fn clear_if_above(self, rank: Self, test: Self, clear: Self) -> Self {
                $fails
                self & !(fails(rank, test) & clear)
            }
            #[inline(always)]
            fn clear_where(self, fails: Self, clear: Self) -> Self {
                self & !(fails & clear)
            }
            #[inline(always)]
            fn fails_if_disjoint(code: Self, left: Self) -> Self {
                // `hit | -hit` has its top bit set exactly when `hit` is not zero.
                let hit = code & left;
                ((hit | hit.wrapping_neg()) >> (<$t>::BITS - 1)).wrapping_sub(1)
            }
        }
    )*};
}
// All ones when `rank > test`, else zero, in arithmetic rather than a comparison, which
// compilers tend to turn into a branch per lane. Ranks are at most 255: in a byte, saturating
// subtraction; in wider words, the sign bit of `test - rank`, which baseline x86-64 (SSE2) has
// vector instructions for on every width (it has no unsigned saturation or minimum past 16
// bits, and no 64-bit comparison, so that the byte's arithmetic left the 64-bit masks to
// scalar code).
impl_mask! {
    u8: #[inline(always)] fn fails(rank: u8, test: u8) -> u8 { rank.saturating_sub(test).min(1).wrapping_neg() }
    u16: #[inline(always)] fn fails(rank: u16, test: u16) -> u16 { (test.wrapping_sub(rank) >> 15).wrapping_neg() }
    u32: #[inline(always)] fn fails(rank: u32, test: u32) -> u32 { (test.wrapping_sub(rank) >> 31).wrapping_neg() }
    u64: #[inline(always)] fn fails(rank: u64, test: u64) -> u64 { (test.wrapping_sub(rank) >> 63).wrapping_neg() }
}

/// Clears the `clear` bits of the masks whose lane's code (see [`code_bit`]) is not among
/// `left`, without a comparison (baseline x86-64 has no 64-bit one among its vector
/// instructions): `hit | -hit` has its top bit set exactly when `hit` is not zero.
#[inline(always)]
fn clear_category_lanes<M: Mask>(masks: &mut [M; LANES], codes: &[u64; LANES], left: u64, clear: M) {
    for (mask, &code) in masks.iter_mut().zip(codes) {
        let hit = code & left;
        let fails = ((hit | hit.wrapping_neg()) >> 63).wrapping_sub(1);
        *mask = mask.clear_where(M::from_u64(fails), clear);
    }
}

/// [`clear_category_lanes`] with codes as wide as the masks.
#[inline(always)]
fn clear_narrow_category_lanes<M: Mask>(masks: &mut [M; LANES], codes: &[M; LANES], left: M, clear: M) {
    for (mask, &code) in masks.iter_mut().zip(codes) {
        *mask = mask.clear_where(M::fails_if_disjoint(code, left), clear);
    }
}

/// A value's bit among a categorical slot's codes in a word of `bits` bits: codes below
/// `bits - 2`, then a bit for any other number and one for NaN.
fn narrow_code_bit(x: f64, bits: u32) -> u64 {
    let listable = bits - 2;
    if x.is_nan() {
        1 << (bits - 1)
    } else if x >= 0.0 && x < f64::from(listable) {
        1 << (x as u64)
    } else {
        1 << listable
    }
}

/// The word of [`left_bits`] in `bits` bits, when every code the slot's splits list is below
/// `bits - 2` (the codes between are then listed by none: they go where other numbers go).
fn narrow_left_bits(left: u64, bits: u32) -> u64 {
    let listable = bits - 2;
    let other = if left & OTHER_BIT != 0 { 1 << listable } else { 0 };
    let nan = if left & NAN_BIT != 0 { 1 << (bits - 1) } else { 0 };
    left & ((1 << listable) - 1) | other | nan
}

/// Clears the `clear` bits of the masks whose lane's rank exceeds `test`: a function of its
/// own so that the compiler knows the masks and the ranks do not overlap (and uses vector
/// instructions without copying either).
#[inline(always)]
fn clear_lanes<M: Mask>(masks: &mut [M; LANES], ranks: &[M; LANES], test: M, clear: M) {
    for (mask, &rank) in masks.iter_mut().zip(ranks) {
        *mask = mask.clear_if_above(rank, test, clear);
    }
}

impl Forest {
    /// Compiles `booster`; `None` when a tree has more leaves than a 64-bit word holds, when
    /// an input has more than 255 distinct thresholds (a fit never makes more), when a
    /// categorical split lists a code past 61, or for a malformed tree (NaN threshold, a feature or child out of range). Such ensembles are
    /// scored tree by tree.
    pub fn new(booster: &Booster) -> Option<Forest> {
        let mut widest = 1;
        for tree in &booster.trees {
            widest = widest.max(tree.feature.iter().filter(|&&f| f < 0).count());
        }
        let kernel = match widest {
            0..=8 => Kernel::Leaves8(Compiled::new(booster)?),
            9..=16 => Kernel::Leaves16(Compiled::new(booster)?),
            17..=32 => Kernel::Leaves32(Compiled::new(booster)?),
            // Several 16-bit masks a tree: fewer vector instructions than one 64-bit mask.
            33..=64 => Kernel::Leaves16(Compiled::new(booster)?),
            _ => return None,
        };
        Some(Forest { kernel })
    }

    /// Raw score (log-odds) of one row of inputs.
    pub fn decision(&self, x: &[f64]) -> f64 {
        let mut out = [0.0];
        self.scores(x, x.len(), &mut out, &mut Scratch::default());
        out[0]
    }

    /// Positive-class probabilities of rows of `width` inputs each, one after the other in
    /// `x`, written to `out` (as many as there are rows).
    pub fn probabilities(&self, x: &[f64], width: usize, out: &mut [f64], scratch: &mut Scratch) {
        self.scores(x, width, out, scratch);
        let arithmetic = match &self.kernel {
            Kernel::Leaves8(c) => c.arithmetic,
            Kernel::Leaves16(c) => c.arithmetic,
            Kernel::Leaves32(c) => c.arithmetic,
        };
        match arithmetic {
            Arithmetic::Double => out.iter_mut().for_each(|p| *p = sigmoid(*p)),
            Arithmetic::Single => out.iter_mut().for_each(|p| *p = f64::from(sigmoid_f32(*p as f32))),
        }
    }

    fn scores(&self, x: &[f64], width: usize, out: &mut [f64], scratch: &mut Scratch) {
        match &self.kernel {
            Kernel::Leaves8(c) => c.scores(x, width, out, &mut scratch.m8),
            Kernel::Leaves16(c) => c.scores(x, width, out, &mut scratch.m16),
            Kernel::Leaves32(c) => c.scores(x, width, out, &mut scratch.m32),
        }
    }
}

/// Working space for [`Forest::probabilities`], reused between calls to save allocations.
#[derive(Debug, Default)]
pub struct Scratch {
    m8: Lanes<u8>,
    m16: Lanes<u16>,
    m32: Lanes<u32>,
}

/// A block's ranks (by slot) and leaf masks (by tree), a lane per row; by slot, 1 in the lanes
/// whose value is NaN, and whether any is.
#[derive(Debug, Default)]
struct Lanes<M> {
    ranks: Vec<[M; LANES]>,
    masks: Vec<[M; LANES]>,
    nan: Vec<[M; LANES]>,
    any_nan: Vec<bool>,
    codes: Vec<[u64; LANES]>,
    /// By categorical slot, its codes' words as wide as a mask.
    narrow_codes: Vec<[M; LANES]>,
    /// By tree with several masks, its masks side by side in one word.
    whole: Vec<[u64; LANES]>,
}

impl<M: Mask> Compiled<M> {
    fn new(booster: &Booster) -> Option<Compiled<M>> {
        let mut thresholds: Vec<Vec<f64>> = vec![Vec::new(); booster.n_inputs];
        let mut widest = 1;
        for tree in &booster.trees {
            widest = widest.max(tree.feature.iter().filter(|&&f| f < 0).count());
        }
        if widest > 64 {
            return None;
        }
        let bits = M::BITS as usize;
        let several = widest > bits;
        let table = 2 * widest.next_power_of_two().max(bits);
        let mut leaf_values = Vec::with_capacity(booster.trees.len() * table);
        let mut all_leaves = Vec::with_capacity(booster.trees.len());
        let mut parts = Vec::with_capacity(booster.trees.len());
        // (input, threshold, mask, its left leaves, NaN goes left)
        let mut raw = Vec::new();
        let mut categories = Vec::new();
        let mut category_inputs: Vec<usize> = Vec::new();
        let mut widest_code = 0;
        for tree in &booster.trees {
            let start = leaf_values.len();
            let mut splits = Vec::new();
            let leaves =
                number_leaves(&tree.feature, &tree.left, &tree.right, &tree.value, &mut leaf_values, &mut splits)?;
            if leaves > widest {
                return None;
            }
            leaf_values.resize(start + table, 0.0);
            let first = all_leaves.len();
            for part in 0..leaves.div_ceil(bits) {
                all_leaves.push(M::all((leaves - part * bits).min(bits)));
            }
            parts.push((first as u32, (all_leaves.len() - first) as u32));
            // A split's left leaves, mask by mask: (mask, its bits among them).
            let masks = |left_leaves: u64| {
                (first..all_leaves.len()).filter_map(move |part| {
                    let shifted = left_leaves >> ((part - first) * bits);
                    let own = if bits == 64 { shifted } else { shifted & ((1 << bits) - 1) };
                    (own != 0).then(|| (part as u32, M::from_u64(own)))
                })
            };
            for (node, left_leaves) in splits {
                let input = usize::try_from(tree.feature[node]).ok()?;
                let missing_left = tree.missing_left.get(node) == Some(&true);
                if input >= booster.n_inputs {
                    return None;
                }
                if let Some(Some(split)) = tree.categories.get(node) {
                    let slot = match category_inputs.iter().position(|&i| i == input) {
                        Some(slot) => slot,
                        None => {
                            category_inputs.push(input);
                            category_inputs.len() - 1
                        }
                    };
                    let left = left_bits(split, missing_left)?;
                    widest_code = split.codes.iter().fold(widest_code, |w, &c| w.max(c + 1));
                    for (part, clear) in masks(left_leaves) {
                        categories.push(CategoryTest {
                            slot: slot as u32,
                            part,
                            clear,
                            left,
                            narrow_left: M::default(),
                        });
                    }
                    continue;
                }
                let threshold = tree.value[node];
                if threshold.is_nan() {
                    return None;
                }
                thresholds.get_mut(input)?.push(threshold);
                for (part, clear) in masks(left_leaves) {
                    raw.push((input, threshold, part, clear, missing_left));
                }
            }
        }
        let narrow_codes = widest_code <= M::BITS - 2;
        if narrow_codes {
            for test in &mut categories {
                test.narrow_left = M::from_u64(narrow_left_bits(test.left, M::BITS));
            }
        }
        let mut slot_of = vec![u32::MAX; booster.n_inputs];
        let mut inputs = Vec::new();
        for (input, mut cuts) in thresholds.into_iter().enumerate() {
            if cuts.is_empty() {
                continue;
            }
            cuts.sort_by(f64::total_cmp);
            cuts.dedup_by(|a, b| a == b);
            if cuts.len() > 255 {
                return None;
            }
            slot_of[input] = inputs.len() as u32;
            inputs.push((input, cuts));
        }
        let mut nan_low = vec![false; inputs.len()];
        for &(input, _, _, _, missing_left) in &raw {
            nan_low[slot_of[input] as usize] |= missing_left;
        }
        let mut tests = Vec::with_capacity(raw.len());
        let mut missing_tests = Vec::new();
        for (input, threshold, part, clear, missing_left) in raw {
            let slot = slot_of[input];
            let cuts = &inputs[slot as usize].1;
            let rank = cuts.partition_point(|c| *c < threshold) as u8;
            let test = Test { slot, part, rank: M::from_rank(rank), clear };
            if nan_low[slot as usize] && !missing_left {
                missing_tests.push(test);
            }
            tests.push(test);
        }
        // Equal keys keep their tree order; the clearing is the same either way.
        tests.sort_by_key(|t| (t.slot, t.rank));
        missing_tests.sort_by_key(|t| t.slot);
        Some(Compiled {
            base_score: booster.base_score,
            arithmetic: booster.arithmetic,
            inputs,
            nan_low,
            tests,
            missing_tests,
            category_inputs,
            narrow_codes,
            categories,
            leaf_values,
            table,
            parts,
            several,
            all_leaves,
        })
    }

    /// Raw scores of the rows of `x`, `width` inputs each, into `out`.
    fn scores(&self, x: &[f64], width: usize, out: &mut [f64], lanes: &mut Lanes<M>) {
        let width = width.max(1);
        lanes.ranks.resize(self.inputs.len(), [M::default(); LANES]);
        lanes.nan.resize(self.inputs.len(), [M::default(); LANES]);
        lanes.any_nan.resize(self.inputs.len(), false);
        if self.narrow_codes {
            lanes.narrow_codes.resize(self.category_inputs.len(), [M::default(); LANES]);
        } else {
            lanes.codes.resize(self.category_inputs.len(), [0; LANES]);
        }
        lanes.masks.resize(self.all_leaves.len(), [M::default(); LANES]);
        let mut blocks = out.chunks_exact_mut(LANES);
        let mut rows = x.chunks_exact(LANES * width);
        for (out, rows) in (&mut blocks).zip(&mut rows) {
            self.block(rows, width, out, lanes);
        }
        // The last rows: a full block whose extra lanes repeat the last row.
        let out = blocks.into_remainder();
        if let Some(last) = rows.remainder().chunks_exact(width).last() {
            let mut padded = rows.remainder().to_vec();
            while padded.len() < LANES * width {
                padded.extend_from_slice(last);
            }
            let mut all = [0.0; LANES];
            self.block(&padded, width, &mut all, lanes);
            out.copy_from_slice(&all[..out.len()]);
        }
    }

    /// Raw scores of `LANES` rows.
    fn block(&self, x: &[f64], width: usize, out: &mut [f64], lanes: &mut Lanes<M>) {
        for (slot, ((input, cuts), ranks)) in self.inputs.iter().zip(lanes.ranks.iter_mut()).enumerate() {
            if !self.nan_low[slot] {
                for (rank, row) in ranks.iter_mut().zip(x.chunks_exact(width)) {
                    let value = row[*input];
                    // How many thresholds send the value right: `value <= threshold` goes left,
                    // NaN never does (as in the tree walk).
                    let above = if value.is_nan() { cuts.len() } else { cuts.partition_point(|c| *c < value) };
                    *rank = M::from_rank(above as u8);
                }
                continue;
            }
            // Some test of the input sends NaN left: NaN passes every test (rank 0), and the
            // missing tests clear the left leaves of the others.
            let nan = &mut lanes.nan[slot];
            let mut any_nan = false;
            for ((rank, row), nan) in ranks.iter_mut().zip(x.chunks_exact(width)).zip(nan.iter_mut()) {
                let value = row[*input];
                let above = if value.is_nan() { 0 } else { cuts.partition_point(|c| *c < value) };
                *rank = M::from_rank(above as u8);
                *nan = M::from_rank(u8::from(value.is_nan()));
                any_nan |= value.is_nan();
            }
            lanes.any_nan[slot] = any_nan;
        }
        for (masks, &all) in lanes.masks.iter_mut().zip(&self.all_leaves) {
            *masks = [all; LANES];
        }
        for test in &self.tests {
            clear_lanes(&mut lanes.masks[test.part as usize], &lanes.ranks[test.slot as usize], test.rank, test.clear);
        }
        for test in &self.missing_tests {
            if !lanes.any_nan[test.slot as usize] {
                continue;
            }
            clear_lanes(&mut lanes.masks[test.part as usize], &lanes.nan[test.slot as usize], M::default(), test.clear);
        }
        if self.narrow_codes {
            for (&input, codes) in self.category_inputs.iter().zip(lanes.narrow_codes.iter_mut()) {
                for (code, row) in codes.iter_mut().zip(x.chunks_exact(width)) {
                    *code = M::from_u64(narrow_code_bit(row[input], M::BITS));
                }
            }
            for test in &self.categories {
                clear_narrow_category_lanes(
                    &mut lanes.masks[test.part as usize],
                    &lanes.narrow_codes[test.slot as usize],
                    test.narrow_left,
                    test.clear,
                );
            }
        } else {
            for (&input, codes) in self.category_inputs.iter().zip(lanes.codes.iter_mut()) {
                for (code, row) in codes.iter_mut().zip(x.chunks_exact(width)) {
                    *code = code_bit(row[input]);
                }
            }
            for test in &self.categories {
                clear_category_lanes(
                    &mut lanes.masks[test.part as usize],
                    &lanes.codes[test.slot as usize],
                    test.left,
                    test.clear,
                );
            }
        }
        if !self.several {
            self.sums(&lanes.masks, out);
            return;
        }
        lanes.whole.resize(self.parts.len(), [0; LANES]);
        for (whole, &(first, n)) in lanes.whole.iter_mut().zip(&self.parts) {
            *whole = [0; LANES];
            for (i, part) in lanes.masks[first as usize..][..n as usize].iter().enumerate() {
                join_lanes(whole, part, i * M::BITS as usize);
            }
        }
        self.sums(&lanes.whole, out);
    }

    /// The rows' scores from each tree's leaf mask (a lane per row), in the ensemble's
    /// arithmetic.
    fn sums<K: Mask>(&self, masks: &[[K; LANES]], out: &mut [f64]) {
        let table = self.table;
        if self.arithmetic == Arithmetic::Single {
            // From the base score, each tree's leaf in the trees' order, in single precision.
            let mut sums = [self.base_score as f32; LANES];
            for (masks, values) in masks.iter().zip(self.leaf_values.chunks_exact(table)) {
                for (sum, mask) in sums.iter_mut().zip(masks) {
                    *sum += values[mask.lowest() & (table - 1)] as f32;
                }
            }
            for (o, sum) in out.iter_mut().zip(sums) {
                *o = f64::from(sum);
            }
            return;
        }
        // Each row's leaves are added in the trees' order, starting from -0.0 as
        // `Iterator::sum` does, so that the scores are bit for bit those of the tree walk.
        // Eight rows at a time: eight sums stay in registers, and eight chains of additions
        // run side by side.
        let mut sums = [-0.0f64; LANES];
        for (lane, sums) in sums.chunks_exact_mut(GROUP).enumerate() {
            let mut acc = [-0.0f64; GROUP];
            for (masks, values) in masks.iter().zip(self.leaf_values.chunks_exact(table)) {
                let masks = &masks[lane * GROUP..][..GROUP];
                for (acc, mask) in acc.iter_mut().zip(masks) {
                    // The mask keeps the index in the table for the compiler (it does not
                    // change it: the lowest bit is at most the mask's width, below `table`).
                    *acc += values[mask.lowest() & (table - 1)];
                }
            }
            sums.copy_from_slice(&acc);
        }
        for (o, sum) in out.iter_mut().zip(sums) {
            *o = self.base_score + sum;
        }
    }
}

/// Puts a tree's mask `part` (its leaves from `shift` on) into the word of all its leaves.
#[inline(always)]
fn join_lanes<M: Mask>(whole: &mut [u64; LANES], part: &[M; LANES], shift: usize) {
    for (whole, &part) in whole.iter_mut().zip(part) {
        *whole |= part.to_u64() << shift;
    }
}

/// Numbers the leaves of a tree given as parallel arrays (a [`crate::learn::gbdt::Tree`], or a tree
/// on bins while it grows) left to right, appending their values; records for each split the
/// bits of its left subtree's leaves, and returns how many leaves there are. `None` for a malformed tree
/// (a child index out of range, or deeper than a sound tree can be).
pub(crate) fn number_leaves(
    feature: &[i32],
    left: &[u32],
    right: &[u32],
    value: &[f64],
    values: &mut Vec<f64>,
    splits: &mut Vec<(usize, u64)>,
) -> Option<usize> {
    type Arrays<'a> = (&'a [i32], &'a [u32], &'a [u32], &'a [f64]);
    fn walk(
        tree: Arrays,
        node: usize,
        depth: usize,
        first: usize,
        values: &mut Vec<f64>,
        splits: &mut Vec<(usize, u64)>,
    ) -> Option<usize> {
        let (feature, left, right, value) = tree;
        if depth > feature.len() {
            return None;
        }
        if *feature.get(node)? < 0 {
            values.push(*value.get(node)?);
            return Some(1);
        }
        let at = splits.len();
        splits.push((node, 0));
        let l = walk(tree, *left.get(node)? as usize, depth + 1, first, values, splits)?;
        let r = walk(tree, *right.get(node)? as usize, depth + 1, first + l, values, splits)?;
        if first + l <= 64 {
            splits[at].1 = if l == 64 { u64::MAX } else { ((1u64 << l) - 1) << first };
        }
        Some(l + r)
    }
    walk((feature, left, right, value), 0, 0, 0, values, splits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::gbdt::{Arithmetic, BoostingParams, CategorySplit, Tree};
    use crate::rng::Rng;
    use linfa::traits::Fit;
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
        for leaves in [2, 8, 12, 31, 64] {
            let params =
                BoostingParams { max_iter: 40, max_leaf_nodes: leaves, min_samples_leaf: 5, ..Default::default() };
            let booster = params.validate(3).unwrap().fit(&crate::learn::labelled(x.view(), &y)).unwrap();
            let forest = Forest::new(&booster).expect("at most 64 leaves a tree");
            let (xt, _) = data(2000, 2);
            let mut scratch = Scratch::default();
            for row in xt.rows() {
                let row = row.as_slice().unwrap();
                assert_eq!(forest.decision(row).to_bits(), booster.decision(row).to_bits());
            }
            // Values on the thresholds themselves, and beyond every threshold, and NaN.
            for tree in &booster.trees {
                for (n, &f) in tree.feature.iter().enumerate() {
                    if f >= 0 {
                        let mut row = xt.row(0).to_vec();
                        row[f as usize] = tree.value[n];
                        assert_eq!(forest.decision(&row).to_bits(), booster.decision(&row).to_bits());
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
                assert_eq!(forest.decision(&row).to_bits(), booster.decision(&row).to_bits());
            }
        }
    }

    /// A stump on input 0 at `threshold`, leaves -1 and +1.
    fn stump(threshold: f64) -> Tree {
        Tree {
            feature: vec![0, -1, -1],
            value: vec![threshold, -1.0, 1.0],
            left: vec![1, 0, 0],
            right: vec![2, 0, 0],
            missing_left: Vec::new(),
            categories: Vec::new(),
        }
    }

    #[test]
    fn ensembles_a_fit_never_makes_are_left_to_the_walk_or_scored_alike() {
        // 255 distinct thresholds on an input rank in a byte; 256 do not.
        let booster = |n: usize| Booster {
            base_score: 0.25,
            n_inputs: 2,
            trees: (0..n).map(|i| stump(i as f64 / 4.0 - 10.0)).collect(),
            arithmetic: Arithmetic::Double,
        };
        let fits = booster(255);
        let forest = Forest::new(&fits).expect("255 thresholds an input");
        let mut scratch = Scratch::default();
        let rows: Vec<f64> = (-50..400).flat_map(|i| [i as f64 / 8.0 - 10.0, 0.0]).collect();
        let mut out = vec![0.0; rows.len() / 2];
        forest.probabilities(&rows, 2, &mut out, &mut scratch);
        for (row, p) in rows.chunks_exact(2).zip(&out) {
            assert_eq!(p.to_bits(), fits.probability(row).to_bits(), "{row:?}");
        }
        assert!(Forest::new(&booster(256)).is_none());
        // Equal thresholds in several trees share a rank; a NaN threshold is refused.
        let twice = Booster {
            base_score: 0.0,
            n_inputs: 2,
            trees: vec![stump(0.5), stump(0.5), stump(-0.0), stump(0.0)],
            arithmetic: Arithmetic::Double,
        };
        let forest = Forest::new(&twice).expect("compiles");
        for x in [-1.0, -0.0, 0.0, 0.25, 0.5, 0.75, f64::NAN] {
            assert_eq!(forest.decision(&[x, 0.0]).to_bits(), twice.decision(&[x, 0.0]).to_bits(), "{x}");
        }
        assert!(Forest::new(&Booster {
            base_score: 0.0,
            n_inputs: 2,
            trees: vec![stump(f64::NAN)],
            arithmetic: Arithmetic::Double
        })
        .is_none());
        // An input out of range is refused rather than read out of bounds.
        let mut wide = stump(0.5);
        wide.feature[0] = 2;
        assert!(Forest::new(&Booster {
            base_score: 0.0,
            n_inputs: 2,
            trees: vec![wide],
            arithmetic: Arithmetic::Double
        })
        .is_none());
    }

    /// A random tree of `depth` on four inputs: numerical splits on inputs 0 and 1 (at a few
    /// shared thresholds, NaN sent either way), categorical splits on inputs 2 and 3 (codes
    /// listed left or right, NaN either way); leaves single-precision numbers.
    fn imported_tree(rng: &mut Rng, depth: usize, codes: u32) -> Tree {
        fn grow(tree: &mut Tree, rng: &mut Rng, depth: usize, n_codes: u32) -> u32 {
            let at = tree.feature.len();
            tree.left.push(0);
            tree.right.push(0);
            tree.missing_left.push(rng.uniform() < 0.5);
            if depth == 0 {
                tree.feature.push(-1);
                tree.value.push(f64::from(rng.normal() as f32));
                tree.categories.push(None);
                tree.missing_left[at] = false;
                return at as u32;
            }
            let feature = (rng.uniform() * 4.0) as i32;
            tree.feature.push(feature);
            if feature >= 2 {
                let codes = (0..n_codes).filter(|_| rng.uniform() < 0.4).collect();
                tree.value.push(0.0);
                tree.categories.push(Some(CategorySplit { codes, listed_left: rng.uniform() < 0.5 }));
            } else {
                tree.value.push([-1.0, -0.5, 0.0, 0.5, 1.0][(rng.uniform() * 5.0) as usize]);
                tree.categories.push(None);
            }
            tree.left[at] = grow(tree, rng, depth - 1, n_codes);
            tree.right[at] = grow(tree, rng, depth - 1, n_codes);
            at as u32
        }
        let mut tree = Tree::default();
        grow(&mut tree, rng, depth, codes);
        tree
    }

    #[test]
    fn imported_trees_compile_to_the_bits_of_the_walk() {
        let mut rng = Rng::new(5);
        // Trees of up to 32 leaves (a mask each), and of up to 64 (XGBoost's depth 6: several).
        // Categorical splits listing codes below 10 (their words as wide as the masks) and
        // below 40 (in 64-bit words).
        for (arithmetic, deepest, codes) in [
            (Arithmetic::Double, 5, 10),
            (Arithmetic::Single, 5, 10),
            (Arithmetic::Double, 6, 10),
            (Arithmetic::Single, 6, 10),
            (Arithmetic::Double, 5, 40),
            (Arithmetic::Single, 6, 40),
        ] {
            let trees = (0..40).map(|i| imported_tree(&mut rng, 1 + i % deepest, codes)).collect();
            let booster = Booster { base_score: -0.3, n_inputs: 4, trees, arithmetic };
            booster.check().unwrap();
            let forest = Forest::new(&booster).expect("compiles");
            let number = |rng: &mut Rng| match rng.uniform() {
                u if u < 0.2 => f64::NAN,
                u if u < 0.4 => [-1.0, -0.5, 0.0, -0.0, 0.5, 1.0][(rng.uniform() * 6.0) as usize],
                _ => rng.normal(),
            };
            let code = |rng: &mut Rng| match rng.uniform() {
                u if u < 0.15 => f64::NAN,
                u if u < 0.25 => {
                    [-1.0, 16_777_216.0, 3.5, 11.0, 20.0, 61.0, f64::INFINITY][(rng.uniform() * 7.0) as usize]
                }
                _ => (rng.uniform() * f64::from(codes)).floor(),
            };
            let rows: Vec<f64> =
                (0..1001).flat_map(|_| [number(&mut rng), number(&mut rng), code(&mut rng), code(&mut rng)]).collect();
            let mut out = vec![0.0; 1001];
            forest.probabilities(&rows, 4, &mut out, &mut Scratch::default());
            for (row, p) in rows.chunks_exact(4).zip(&out) {
                assert_eq!(p.to_bits(), booster.probability(row).to_bits(), "{arithmetic:?} {row:?}");
                assert_eq!(forest.decision(row).to_bits(), booster.decision(row).to_bits(), "{row:?}");
            }
            // A split listing a code past those a word holds is left to the walk.
            let mut wide = booster.clone();
            let split = wide.trees.iter_mut().flat_map(|t| t.categories.iter_mut()).flatten().next().unwrap();
            split.codes.push(62);
            assert!(Forest::new(&wide).is_none());
        }
    }

    #[test]
    fn trees_with_more_than_64_leaves_are_left_to_the_walk() {
        let (x, y) = data(3000, 4);
        let params = BoostingParams { max_iter: 2, max_leaf_nodes: 80, min_samples_leaf: 2, ..Default::default() };
        let booster = params.validate(3).unwrap().fit(&crate::learn::labelled(x.view(), &y)).unwrap();
        assert!(booster.trees.iter().any(|t| t.feature.iter().filter(|&&f| f < 0).count() > 64));
        assert!(Forest::new(&booster).is_none());
    }
}
