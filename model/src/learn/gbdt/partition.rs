//! The rows growing one tree as records (gradients and bins, see [`Layout`]) in one buffer,
//! and the partition of a leaf's records into its children, in place.

use std::ops::Range;

use super::binning::{Binned, Layout};
use super::cores;

/// Gradient and hessian in one word, as `f32`s (LightGBM's precision for them too): a record
/// is a word shorter, and moving records is most of a split's cost. Sums stay in `f64`.
pub(super) fn pack(g: f32, h: f32) -> u64 {
    u64::from(g.to_bits()) | u64::from(h.to_bits()) << 32
}

/// The gradient and hessian of the log loss at score `raw` for label `y`, in single precision
/// (the precision they are stored in). Both come from `e = exp(−|raw|)`: the probability of
/// the less likely class is `e / (1 + e)` and the hessian `e / (1 + e)²`, each to the relative
/// precision of `e` (where `p · (1 − p)` loses it to the cancellation in `1 − p` as `p` nears
/// 1). Plain arithmetic the compiler vectorises, four rows to an instruction.
#[inline(always)]
pub(super) fn gradient(raw: f32, y: bool) -> (f32, f32) {
    let e = exp_negative(-raw.abs());
    let big = 1.0 / (1.0 + e);
    let small = e * big;
    // The gradient `p − y` is `p` or `−(1 − p)`: the larger or the smaller of the two as the
    // label and the score's sign differ or agree. Chosen with bit masks: a branch on the label
    // would be mispredicted on every other row.
    let larger = u32::from(y != (raw >= 0.0)).wrapping_neg();
    let g = f32::from_bits((big.to_bits() & larger) | (small.to_bits() & !larger) | u32::from(y) << 31);
    (g, (small * big).max(1e-16))
}

/// `exp(x)` for `x <= 0` in single precision, to a relative error below 1e-6, in plain
/// arithmetic: `x = n ln 2 + r` with `|r| <= ln 2 / 2`, `e^r` by its Taylor series to the
/// seventh power, `2^n` by the exponent's bits. Below −87 it is `exp(−87)`, which `1 + e`
/// does not tell from 1.
#[inline(always)]
fn exp_negative(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5 · 2²³ rounds a number of magnitude below 2²² to the nearest whole one (halves
    // to even), which the sum's last bits then hold: float arithmetic the compiler keeps in
    // vectors, where a cast to an integer (`as i32`, which saturates and turns NaN into 0)
    // was compiled one lane at a time, and was half the time of filling a tree's records.
    const ROUND: f32 = 12_582_912.0;
    let x = x.max(-87.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let nf = t - ROUND;
    let n = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = (x - nf * LN2_HI) - nf * LN2_LO;
    // 1/k! for k = 7 down to 0, by Horner's rule.
    const TAYLOR: [f32; 8] = [1.0 / 5_040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0];
    let e = TAYLOR.iter().fold(0.0, |e, &c| e * r + c);
    e * f32::from_bits(((127 + n) as u32) << 23)
}

/// Where a fit's records come from: the rows set in `words` (the words of a draw from the
/// `first`; positions among `stage_rows` when given, of the `n` positions there are), their
/// scores `raw` and labels `y` (one a row of the bins).
struct Drawn<'a> {
    words: &'a [u64],
    first: usize,
    n: usize,
    stage_rows: Option<&'a [u32]>,
    raw: &'a [f32],
    y: &'a [bool],
}

/// The records of the `drawn` rows into `out`, in order. The gradients of a word's 64 rows are
/// worked out together, in a loop the compiler vectorises, whether the draw took a row or not
/// (it takes most), then each taken row's record written.
fn fill_words<const N: usize>(out: &mut [u64], binned: &Binned, drawn: &Drawn) {
    fill_words_any(N, out, binned, drawn);
}

#[inline(always)]
fn fill_words_any(width: usize, out: &mut [u64], binned: &Binned, drawn: &Drawn) {
    let Drawn { words, first, n, stage_rows, raw, y } = *drawn;
    let (mut scores, mut labels, mut packed) = ([0f32; 64], [false; 64], [0u64; 64]);
    let mut records = out.chunks_exact_mut(width + 1);
    for (w, &word) in words.iter().enumerate() {
        if word == 0 {
            continue;
        }
        let start = (first + w) * 64;
        let len = (n - start).min(64);
        match stage_rows {
            Some(stage_rows) => {
                for ((s, l), &r) in scores.iter_mut().zip(labels.iter_mut()).zip(&stage_rows[start..start + len]) {
                    (*s, *l) = (raw[r as usize], y[r as usize]);
                }
            }
            None => {
                scores[..len].copy_from_slice(&raw[start..start + len]);
                labels[..len].copy_from_slice(&y[start..start + len]);
            }
        }
        for ((p, &s), &l) in packed.iter_mut().zip(&scores).zip(&labels) {
            let (g, h) = gradient(s, l);
            *p = pack(g, h);
        }
        let mut m = word;
        while m != 0 {
            let bit = m.trailing_zeros() as usize;
            m &= m - 1;
            let row = stage_rows.map_or(start + bit, |rows| rows[start + bit] as usize);
            let Some(record) = records.next() else { return };
            record[0] = packed[bit];
            record[1..].copy_from_slice(&binned.rows[row * width..(row + 1) * width]);
        }
    }
}

/// Writes the records of `rows` into `out` (one record each, `width` words of bins after the
/// gradient's word): the gradients of the log loss at the scores `raw` and the labels `y`.
#[cfg(test)]
fn fill_records(
    width: usize,
    out: &mut [u64],
    binned: &Binned,
    rows: impl Iterator<Item = u32>,
    raw: &[f32],
    y: &[bool],
) {
    // Inlined into `fixed` with a constant width, the copy becomes a few moves.
    #[inline(always)]
    fn any(n: usize, out: &mut [u64], source: &[u64], rows: impl Iterator<Item = u32>, raw: &[f32], y: &[bool]) {
        for (record, r) in out.chunks_exact_mut(n + 1).zip(rows) {
            let r = r as usize;
            let (g, h) = gradient(raw[r], y[r]);
            record[0] = pack(g, h);
            record[1..].copy_from_slice(&source[r * n..(r + 1) * n]);
        }
    }
    fn fixed<const N: usize>(
        out: &mut [u64],
        source: &[u64],
        rows: impl Iterator<Item = u32>,
        raw: &[f32],
        y: &[bool],
    ) {
        any(N, out, source, rows, raw, y);
    }
    with_row_width!(width, fixed, (out, &binned.rows, rows, raw, y), { any(width, out, &binned.rows, rows, raw, y) });
}

pub(super) fn unpack(word: u64) -> (f64, f64) {
    (f64::from(f32::from_bits(word as u32)), f64::from(f32::from_bits((word >> 32) as u32)))
}

/// The rows growing one tree, as records (see [`Layout`]) in one buffer. Each leaf's records
/// are contiguous; splitting a leaf reorders its records in place, its left child's first. A
/// histogram reads memory front to back and a split swaps records within the leaf: gathering
/// gradients and bins row by row through the row numbers was a cache miss or more per row at a
/// million rows. In place, a fit holds its sample once (a second buffer to split into was a
/// third of a build's peak memory).
pub(super) struct Sample {
    pub(super) records: Vec<u64>,
    pub(super) layout: Layout,
}

impl Sample {
    pub(super) fn new(binned: &Binned, capacity: usize) -> Sample {
        let layout = binned.layout;
        Sample { records: Vec::with_capacity(capacity * layout.stride), layout }
    }

    pub(super) fn len(&self) -> usize {
        self.records.len() / self.layout.stride
    }

    /// Takes `rows` with their data and the gradients of the log loss at the current scores.
    #[cfg(test)]
    pub(super) fn fill(&mut self, binned: &Binned, rows: &[u32], raw: &[f32], y: &[bool]) {
        self.fill_from(binned, rows.iter().copied(), rows.len(), raw, y);
    }

    /// [`Sample::fill`] from the `len` rows `rows` yields; the caller's count is trusted.
    #[cfg(test)]
    pub(super) fn fill_from(
        &mut self,
        binned: &Binned,
        rows: impl Iterator<Item = u32>,
        len: usize,
        raw: &[f32],
        y: &[bool],
    ) {
        let width = self.layout.fixed;
        // Every word is written below: only a longer sample than the last pays for zeroes
        // (the same length every tree of a fit).
        self.records.resize(len * (width + 1), 0);
        fill_records(width, &mut self.records, binned, rows, raw, y);
    }

    /// Takes the `len` rows set in `taken` (positions among `stage_rows` when given) with
    /// their data and the gradients of the log loss at the scores `raw`. The rows of the first
    /// half of its words and those of the second are filled side by side when a core is idle
    /// (see [`cores::join`]), each record written alike either way. Returns where the second
    /// half's records start: the sample's two shards, which a tree's leaves split separately
    /// (see [`Sample::partition_shards`]).
    pub(super) fn fill_drawn(
        &mut self,
        binned: &Binned,
        taken: &[u64],
        stage_rows: Option<&[u32]>,
        len: usize,
        raw: &[f32],
        y: &[bool],
    ) -> usize {
        let width = self.layout.fixed;
        self.records.resize(len * (width + 1), 0);
        let n = stage_rows.map_or(binned.n_rows, <[u32]>::len);
        let fill = |out: &mut [u64], first: usize, words: &[u64]| {
            let drawn = Drawn { words, first, n, stage_rows, raw, y };
            with_row_width!(width, fill_words, (out, binned, &drawn), { fill_words_any(width, out, binned, &drawn) })
        };
        let mid = taken.len() / 2;
        let before: usize = taken[..mid].iter().map(|w| w.count_ones() as usize).sum();
        let (mine, theirs) = self.records.split_at_mut(before * (width + 1));
        cores::join(len, || fill(theirs, mid, &taken[mid..]), || fill(mine, 0, &taken[..mid]));
        before
    }

    /// [`partition_records`] of a leaf's records in each shard, `ranges[0]` before
    /// `ranges[1]`, side by side when the leaf is large and a core is idle; returns where each
    /// shard's right side starts. Each shard is split alike either way.
    pub(super) fn partition_shards(
        &mut self,
        binned: &Binned,
        feature: usize,
        bin: u8,
        missing_left: Option<u8>,
        ranges: [Range<usize>; 2],
    ) -> [usize; 2] {
        let layout = self.layout;
        let [first, second] = ranges;
        let rows = first.len() + second.len();
        let (a, b) = self.records.split_at_mut(second.start * layout.stride);
        let a = &mut a[first.start * layout.stride..first.end * layout.stride];
        let b = &mut b[..second.len() * layout.stride];
        let (left_b, left_a) = cores::join(
            rows,
            || partition_records(layout, binned, b, feature, bin, missing_left),
            || partition_records(layout, binned, a, feature, bin, missing_left),
        );
        [first.start + left_a, second.start + left_b]
    }

    /// [`partition_records`] on the records of `range`: returns where the right side starts.
    #[cfg(test)]
    pub(super) fn partition(
        &mut self,
        binned: &Binned,
        feature: usize,
        bin: u8,
        missing_left: Option<u8>,
        range: Range<usize>,
    ) -> usize {
        let stride = self.layout.stride;
        let records = &mut self.records[range.start * stride..range.end * stride];
        range.start + partition_records(self.layout, binned, records, feature, bin, missing_left)
    }
}

/// Reorders `records` (whole records of `layout`), those whose bin of input `feature` is at
/// most `bin` first, and returns how many went left. Each record is swapped with the first of
/// those going right so far (or with itself), and that place moves on when it went left: no
/// branch depends on the data, as which side a row goes to is as good as random and a
/// mispredicted branch per row costs more than the swap. The left side keeps its order.
fn partition_records(
    layout: Layout,
    binned: &Binned,
    records: &mut [u64],
    feature: usize,
    bin: u8,
    missing_left: Option<u8>,
) -> usize {
    #[inline(always)]
    fn any(n: usize, records: &mut [u64], goes_left: &impl Fn(&[u64]) -> bool) -> usize {
        let mut left = 0;
        for i in 0..records.len() / n {
            let l = goes_left(&records[i * n..(i + 1) * n]);
            for k in 0..n {
                records.swap(left * n + k, i * n + k);
            }
            left += usize::from(l);
        }
        left
    }
    // With a constant width the records are arrays, and a swap a few moves.
    fn fixed<const N: usize>(records: &mut [u64], goes_left: &impl Fn(&[u64]) -> bool) -> usize {
        let (records, _) = records.as_chunks_mut::<N>();
        let mut left = 0;
        for i in 0..records.len() {
            let l = goes_left(&records[i]);
            records.swap(left, i);
            left += usize::from(l);
        }
        left
    }
    let stride = layout.stride;
    let left = match binned.dense.iter().position(|&f| f == feature) {
        Some(j) => {
            let (word, shift) = (layout.dense + j / 8, 8 * (j % 8));
            match missing_left {
                None => {
                    let goes_left = move |r: &[u64]| (r[word] >> shift) as u8 <= bin;
                    with_row_width!(stride, fixed, (records, &goes_left), { any(stride, records, &goes_left) })
                }
                Some(m) => {
                    let goes_left = move |r: &[u64]| {
                        let b = (r[word] >> shift) as u8;
                        (b <= bin) | (b == m)
                    };
                    with_row_width!(stride, fixed, (records, &goes_left), { any(stride, records, &goes_left) })
                }
            }
        }
        None => {
            // The row's bin is the common one unless a slot falls in the input's bins.
            let (first, count) =
                (binned.offsets[feature] as u64, (binned.offsets[feature + 1] - binned.offsets[feature]) as u64);
            let common = binned.sparse.iter().find(|s| s.0 == feature).map_or(0, |s| s.1);
            let slot_at: Vec<(usize, u32)> = (0..layout.n_slots).map(|i| layout.slot(i, 1)).collect();
            let slot_at = &slot_at[..];
            let goes_left = move |r: &[u64]| {
                let mut b = u64::from(common);
                for &(word, shift) in slot_at {
                    let at = u64::from((r[word] >> shift) as u16).wrapping_sub(first);
                    b = if at < count { at } else { b };
                }
                (b <= u64::from(bin)) | missing_left.is_some_and(|m| b == u64::from(m))
            };
            with_row_width!(stride, fixed, (records, &goes_left), { any(stride, records, &goes_left) })
        }
    };
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradients_are_those_of_the_log_loss_to_the_precision_they_are_stored_in() {
        for i in 0..=200_000 {
            let x = -90.0 * i as f32 / 200_000.0;
            let (fast, exact) = (f64::from(exp_negative(x)), f64::from(x.max(-87.0)).exp());
            assert!((fast - exact).abs() <= 1e-6 * exact, "exp({x}): {fast} against {exact}");
        }
        for i in -4000..=4000 {
            let raw = i as f32 / 100.0;
            let exact = f64::from(raw);
            for y in [false, true] {
                let p = 1.0 / (1.0 + (-exact).exp());
                // The hessian in the exact form, the gradient of the less likely class as 1 − p
                // would lose it.
                let q = 1.0 / (1.0 + exact.exp());
                let h = (p * q).max(1e-16);
                let g = if y { -q } else { p };
                let (fg, fh) = gradient(raw, y);
                let (fg, fh) = (f64::from(fg), f64::from(fh));
                assert!(
                    (fg - g).abs() <= 2e-6 * g.abs() && (fh - h).abs() <= 2e-6 * h,
                    "{raw} {y}: {fg} {fh}, {g} {h}"
                );
                assert_eq!(unpack(pack(fg as f32, fh as f32)), (fg, fh));
            }
        }
    }
}
