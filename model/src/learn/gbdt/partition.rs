//! The rows growing one tree as records (gradients and bins, see [`Layout`]) in one buffer,
//! and the partition of a leaf's records into its children, in place.

use std::ops::Range;

use super::binning::{Binned, Layout};
use super::{histogram, sampling};

/// Gradient and hessian in one word, as `f32`s (LightGBM's precision for them too): a record
/// is a word shorter, and moving records is most of a split's cost. Sums stay in `f64`.
pub(super) fn pack(g: f64, h: f64) -> u64 {
    u64::from((g as f32).to_bits()) | u64::from((h as f32).to_bits()) << 32
}

/// The gradient and hessian of the log loss at score `raw` for label `y`, packed ([`pack`]).
/// Both come from `e = exp(−|raw|)`: the probability of the less likely class is `e / (1 + e)`
/// and the hessian `e / (1 + e)²`, each to the relative precision of `e` (where `p · (1 − p)`
/// loses it to the cancellation in `1 − p` as `p` nears 1).
#[inline(always)]
pub(super) fn gradient(raw: f64, y: bool) -> u64 {
    let e = exp_negative(-raw.abs());
    let big = 1.0 / (1.0 + e);
    let small = e * big;
    // The gradient `p − y` is `p` or `−(1 − p)`: the larger or the smaller of the two as the
    // label and the score's sign differ or agree. Chosen with bit masks: a branch on the label
    // would be mispredicted on every other row.
    let larger = u64::from(y != (raw >= 0.0)).wrapping_neg();
    let g = f64::from_bits((big.to_bits() & larger) | (small.to_bits() & !larger) | u64::from(y) << 63);
    pack(g, (small * big).max(1e-16))
}

/// `exp(x)` for `x <= 0`, to a relative error below 1e-11 (far below the `f32` the gradients
/// are stored in), in a few dozen instructions of plain arithmetic: `x = n ln 2 + r` with
/// `|r| <= ln 2 / 2`, `e^r` by its Taylor series to the ninth power, `2^n` by the exponent's
/// bits. Below −700 it is `exp(−700)`, which `1 + e` does not tell from 0.
#[inline(always)]
fn exp_negative(x: f64) -> f64 {
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let x = x.max(-700.0);
    // Rounded to the nearest whole number (halves away from 0): `x` is not positive.
    let n = (x * std::f64::consts::LOG2_E - 0.5) as i64;
    let nf = n as f64;
    let r = (x - nf * LN2_HI) - nf * LN2_LO;
    // 1/k! for k = 9 down to 0, by Horner's rule.
    const TAYLOR: [f64; 10] = [
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ];
    let e = TAYLOR.iter().fold(0.0, |e, &c| e * r + c);
    e * f64::from_bits(((1023 + n) as u64) << 52)
}

/// Writes the records of `rows` into `out` (one record each, `width` words of bins after the
/// gradient's word): the gradients of the log loss at the scores `raw` and the labels `y`.
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
            record[0] = gradient(f64::from(raw[r]), y[r]);
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

    /// [`Sample::fill_from`] with the `len` rows set in `taken` (positions among `stage_rows`
    /// when given), the rows of the first half of its words and those of the second filled side
    /// by side when a core is idle (see [`histogram::join`]): each record is written alike
    /// either way. Returns where the second half's records start: the sample's two shards,
    /// which a tree's leaves split separately (see [`Sample::partition_shards`]).
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
        let fill = |out: &mut [u64], first: usize, words: &[u64]| {
            let drawn = sampling::taken_rows_at(words, first);
            match stage_rows {
                Some(stage_rows) => fill_records(width, out, binned, drawn.map(|p| stage_rows[p as usize]), raw, y),
                None => fill_records(width, out, binned, drawn, raw, y),
            }
        };
        let mid = taken.len() / 2;
        let before: usize = taken[..mid].iter().map(|w| w.count_ones() as usize).sum();
        let (mine, theirs) = self.records.split_at_mut(before * (width + 1));
        histogram::join(len, || fill(theirs, mid, &taken[mid..]), || fill(mine, 0, &taken[..mid]));
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
        let (right_b, left_a) = histogram::join(
            rows,
            || partition_records(layout, binned, b, feature, bin, missing_left),
            || partition_records(layout, binned, a, feature, bin, missing_left),
        );
        [first.start + left_a, second.start + right_b]
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
            let x = -745.0 * f64::from(i) / 200_000.0;
            let (fast, exact) = (exp_negative(x), x.max(-700.0).exp());
            assert!((fast - exact).abs() <= 1e-11 * exact, "exp({x}): {fast} against {exact}");
        }
        for i in -4000..=4000 {
            let raw = f64::from(i) / 100.0;
            for y in [false, true] {
                let p = 1.0 / (1.0 + (-raw).exp());
                // The hessian in the exact form, the gradient of the less likely class as 1 − p
                // would lose it.
                let q = 1.0 / (1.0 + raw.exp());
                let h = (p * q).max(1e-16);
                let g = if y { -q } else { p };
                let (fg, fh) = unpack(gradient(raw, y));
                assert!(
                    (fg - g).abs() <= 1e-6 * g.abs() && (fh - h).abs() <= 1e-6 * h,
                    "{raw} {y}: {fg} {fh}, {g} {h}"
                );
            }
        }
    }
}
