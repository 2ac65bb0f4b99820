//! What a tree is grown from: the inputs quantised to bins ([`Binned`]), the rows of one tree
//! with their gradients in leaf order ([`Sample`]), and the histograms built over them.

use std::ops::Range;

use ndarray::ArrayView2;

use super::sigmoid;

/// At most this many rows per feature are sorted to place bin edges (as scikit-learn does).
const BINNING_SAMPLE: usize = 200_000;

/// Inputs quantised to at most 256 bins per input, stored by column.
pub(super) struct Binned {
    pub(super) n_rows: usize,
    pub(super) bins: Vec<u8>,
    /// Upper edge of each bin but the last: value `x` falls in the first bin whose edge is >= x.
    pub(super) edges: Vec<Vec<f64>>,
    /// Where each input's bins start in a histogram (inputs have as many bins as they need,
    /// so a one-hot input costs two slots, not 256).
    pub(super) offsets: Vec<usize>,
    /// Inputs whose histograms are built from every row's bin.
    pub(super) dense: Vec<usize>,
    /// The dense inputs' bins again, row by row, eight to a word (`words_per_row` words a
    /// row): moving a row's bins is a copy of one or two words.
    pub(super) dense_rows: Vec<u64>,
    pub(super) words_per_row: usize,
    /// Inputs where one bin holds most rows (one-hot levels): each row lists only its other
    /// bins, and the common bin is the node's total minus the rest. A row of the Online
    /// Shoppers data touches 18 histogram slots this way instead of 75.
    pub(super) sparse: Vec<(usize, u8)>,
    /// The most uncommon sparse bins any row has.
    pub(super) slots_per_row: usize,
    /// Row r's uncommon sparse bins as histogram indices, `slots_per_row` a row, padded at the
    /// end with [`Binned::histogram_len`] (past the last bin).
    pub(super) sparse_rows: Vec<u32>,
}

/// An input is stored sparsely when its most common bin holds at least this share of rows.
const SPARSE_SHARE: f64 = 0.8;

impl Binned {
    pub(super) fn new(x: ArrayView2<f64>, max_bins: usize) -> Binned {
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
        let words_per_row = dense.len().div_ceil(8);
        let mut dense_rows = vec![0u64; n_rows * words_per_row];
        for (j, &f) in dense.iter().enumerate() {
            for (r, &b) in bins[f * n_rows..(f + 1) * n_rows].iter().enumerate() {
                dense_rows[r * words_per_row + j / 8] |= u64::from(b) << (8 * (j % 8));
            }
        }
        let histogram_len = offsets.last().copied().unwrap_or(0);
        let column_major = &bins;
        let uncommon = |r: usize| sparse.iter().filter(move |&&(f, common)| column_major[f * n_rows + r] != common);
        let slots_per_row = (0..n_rows).map(|r| uncommon(r).count()).max().unwrap_or(0);
        let mut sparse_rows = vec![histogram_len as u32; n_rows * slots_per_row];
        for r in 0..n_rows {
            let out = &mut sparse_rows[r * slots_per_row..(r + 1) * slots_per_row];
            for (o, &(f, _)) in out.iter_mut().zip(uncommon(r)) {
                *o = (offsets[f] + bins[f * n_rows + r] as usize) as u32;
            }
        }
        Binned { n_rows, bins, edges, offsets, dense, dense_rows, words_per_row, sparse, slots_per_row, sparse_rows }
    }

    pub(super) fn histogram_len(&self) -> usize {
        self.offsets.last().copied().unwrap_or(0)
    }

    pub(super) fn column(&self, f: usize) -> &[u8] {
        &self.bins[f * self.n_rows..(f + 1) * self.n_rows]
    }
}

#[derive(Clone, Copy, Default)]
pub(super) struct Bin {
    pub(super) g: f64,
    pub(super) h: f64,
    pub(super) n: u32,
}

/// The rows growing one tree, with everything a histogram reads of them (gradients, dense
/// bins, sparse slots) stored in the rows' order. Partitioning a leaf moves all of it, so that
/// each leaf's data is contiguous and a histogram reads memory front to back: gathering it
/// row by row through the row numbers was a cache miss or more per row at a million rows.
pub(super) struct Sample {
    pub(super) rows: Vec<u32>,
    pub(super) gh: Vec<[f64; 2]>,
    /// `Binned::dense_rows` of each row.
    pub(super) dense: Vec<u64>,
    /// `Binned::sparse_rows` of each row.
    pub(super) slots: Vec<u32>,
    pub(super) words: usize,
    pub(super) slots_per_row: usize,
    /// Which side of the split each row of the leaf being partitioned goes to.
    pub(super) goes_left: Vec<bool>,
}

impl Sample {
    pub(super) fn new(binned: &Binned, capacity: usize) -> Sample {
        let (words, slots_per_row) = (binned.words_per_row, binned.slots_per_row);
        Sample {
            rows: Vec::with_capacity(capacity),
            gh: Vec::with_capacity(capacity),
            dense: Vec::with_capacity(capacity * words),
            slots: Vec::with_capacity(capacity * slots_per_row),
            words,
            slots_per_row,
            goes_left: Vec::with_capacity(capacity),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Takes `rows` with their data and the gradients of the log loss at the current scores.
    pub(super) fn fill(&mut self, binned: &Binned, rows: &[u32], raw: &[f64], y: &[bool]) {
        self.rows.clear();
        self.rows.extend_from_slice(rows);
        self.gh.clear();
        self.gh.extend(rows.iter().map(|&r| {
            let prob = sigmoid(raw[r as usize]);
            [prob - f64::from(u8::from(y[r as usize])), (prob * (1.0 - prob)).max(1e-16)]
        }));
        gather_rows(&binned.dense_rows, self.words, rows, &mut self.dense);
        gather_rows(&binned.sparse_rows, self.slots_per_row, rows, &mut self.slots);
    }

    /// Moves the rows of `range` whose bin of input `feature` is at most `bin` to its front,
    /// keeping the order on both sides, and returns where the others start. With `rows_only`
    /// the rest of the data is left as it was (stale).
    pub(super) fn partition(
        &mut self,
        binned: &Binned,
        feature: usize,
        bin: u8,
        range: Range<usize>,
        scratch: &mut Sample,
        rows_only: bool,
    ) -> usize {
        self.goes_left.clear();
        match binned.dense.iter().position(|&f| f == feature) {
            // A dense input's bins are in the sample, in order; a sparse one's are read by row.
            Some(j) => {
                let w = self.words;
                let words = &self.dense[range.start * w..range.end * w];
                let shift = 8 * (j % 8);
                self.goes_left.extend(words.chunks_exact(w).map(|row| (row[j / 8] >> shift) as u8 <= bin));
            }
            None => {
                let column = binned.column(feature);
                self.goes_left.extend(self.rows[range.clone()].iter().map(|&r| column[r as usize] <= bin));
            }
        }
        let side = &self.goes_left;
        let n_left = side.iter().filter(|&&l| l).count();
        let left = range.start + n_left;
        move_rows(&mut self.rows, &mut scratch.rows, 1, range.start, side, n_left);
        if rows_only {
            return left;
        }
        move_rows(&mut self.gh, &mut scratch.gh, 1, range.start, side, n_left);
        move_rows(&mut self.dense, &mut scratch.dense, self.words, range.start, side, n_left);
        move_rows(&mut self.slots, &mut scratch.slots, self.slots_per_row, range.start, side, n_left);
        left
    }
}

/// Calls `$fixed::<_, N>($args)` with N = `$width` when it is at most 16 (rows of a known
/// width are copied as arrays, not by a call to `memcpy` per row), `$otherwise` beyond.
macro_rules! with_row_width {
    ($width:expr, $fixed:ident, ($($arg:expr),*), $otherwise:block) => {
        match $width {
            0 => {}
            1 => $fixed::<_, 1>($($arg),*),
            2 => $fixed::<_, 2>($($arg),*),
            3 => $fixed::<_, 3>($($arg),*),
            4 => $fixed::<_, 4>($($arg),*),
            5 => $fixed::<_, 5>($($arg),*),
            6 => $fixed::<_, 6>($($arg),*),
            7 => $fixed::<_, 7>($($arg),*),
            8 => $fixed::<_, 8>($($arg),*),
            9 => $fixed::<_, 9>($($arg),*),
            10 => $fixed::<_, 10>($($arg),*),
            11 => $fixed::<_, 11>($($arg),*),
            12 => $fixed::<_, 12>($($arg),*),
            13 => $fixed::<_, 13>($($arg),*),
            14 => $fixed::<_, 14>($($arg),*),
            15 => $fixed::<_, 15>($($arg),*),
            16 => $fixed::<_, 16>($($arg),*),
            _ => $otherwise,
        }
    };
}

/// Copies the items (`per_row` a row) of each of `rows` from `source` to `out`.
pub(super) fn gather_rows<T: Copy>(source: &[T], per_row: usize, rows: &[u32], out: &mut Vec<T>) {
    pub(super) fn fixed<T: Copy, const N: usize>(source: &[T], rows: &[u32], out: &mut Vec<T>) {
        for &r in rows {
            let row: [T; N] = source[r as usize * N..(r as usize + 1) * N].try_into().expect("N items a row");
            out.extend_from_slice(&row);
        }
    }
    out.clear();
    with_row_width!(per_row, fixed, (source, rows, out), {
        let n = per_row;
        rows.iter().for_each(|&r| out.extend_from_slice(&source[r as usize * n..(r as usize + 1) * n]))
    });
}

/// Stable partition of the rows from `start` on (`per_row` items a row) by `goes_left`, of
/// which `n_left` are true: each row is written once to its place in `scratch`, then the whole
/// range is copied back. No branch depends on the data: which side a row goes to is as good
/// as random, and a mispredicted branch per row costs more than the copies.
pub(super) fn move_rows<T: Copy + Default>(
    data: &mut [T],
    scratch: &mut Vec<T>,
    per_row: usize,
    start: usize,
    goes_left: &[bool],
    n_left: usize,
) {
    pub(super) fn fixed<T: Copy, const N: usize>(region: &[T], out: &mut [T], goes_left: &[bool], n_left: usize) {
        let (mut left, mut right) = (0, n_left);
        for (row, &l) in region.chunks_exact(N).zip(goes_left) {
            let to = if l { left } else { right };
            out[to * N..(to + 1) * N].copy_from_slice(row);
            left += usize::from(l);
            right += usize::from(!l);
        }
    }
    if per_row == 0 {
        return;
    }
    let region = &mut data[start * per_row..(start + goes_left.len()) * per_row];
    if scratch.len() < region.len() {
        scratch.resize(region.len(), T::default());
    }
    let out = &mut scratch[..region.len()];
    with_row_width!(per_row, fixed, (region, out, goes_left, n_left), {
        let (n, mut left, mut right) = (per_row, 0, n_left);
        for (row, &l) in region.chunks_exact(n).zip(goes_left) {
            let to = if l { left } else { right };
            out[to * n..(to + 1) * n].copy_from_slice(row);
            left += usize::from(l);
            right += usize::from(!l);
        }
    });
    region.copy_from_slice(out);
}

/// Sums of gradient, hessian and rows per bin of each allowed input over the rows of `sample`
/// in `range`, whose totals are `total` (needed to fill the common bin of sparse inputs).
pub(super) fn histogram(
    binned: &Binned,
    sample: &Sample,
    range: Range<usize>,
    allowed: &[bool],
    total: (f64, f64),
) -> Vec<Bin> {
    let mut hist = vec![Bin::default(); binned.histogram_len()];
    let (w, k) = (sample.words, sample.slots_per_row);
    let active: Vec<(usize, usize)> =
        binned.dense.iter().enumerate().filter(|(_, &f)| allowed[f]).map(|(j, &f)| (j, binned.offsets[f])).collect();
    let rows = range.len() as u32;
    let padding = binned.histogram_len() as u32;
    let gh = &sample.gh[range.clone()];
    let dense = &sample.dense[range.start * w..range.end * w];
    let slots = &sample.slots[range.start * k..range.end * k];
    for (i, &[g, h]) in gh.iter().enumerate() {
        let row = &dense[i * w..(i + 1) * w];
        for &(j, offset) in &active {
            let b = (row[j / 8] >> (8 * (j % 8))) as u8;
            let bin = &mut hist[offset + b as usize];
            bin.g += g;
            bin.h += h;
            bin.n += 1;
        }
        // A row's slots come first, then the padding, which would make one long chain of
        // additions to the same bin.
        for &slot in slots[i * k..(i + 1) * k].iter().take_while(|&&slot| slot != padding) {
            let bin = &mut hist[slot as usize];
            bin.g += g;
            bin.h += h;
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
        bins[common as usize] = Bin { g: total.0 - og, h: total.1 - oh, n: rows - on };
    }
    hist
}
