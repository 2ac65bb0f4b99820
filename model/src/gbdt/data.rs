//! What a tree is grown from: the inputs quantised to bins ([`Binned`]), the rows of one tree
//! with their gradients in leaf order ([`Sample`]), and the histograms built over them.

use std::ops::Range;

use ndarray::ArrayView2;

use super::sigmoid;

/// At most this many rows per feature are sorted to place bin edges (as scikit-learn does).
const BINNING_SAMPLE: usize = 200_000;

/// Calls `$fixed::<N>($args)` with N = `$width` when it is at most 16 (records of a known
/// width are copied as arrays, not by a call to `memcpy` each), `$otherwise` beyond.
macro_rules! with_row_width {
    ($width:expr, $fixed:ident, ($($arg:expr),*), $otherwise:block) => {
        match $width {
            1 => $fixed::<1>($($arg),*),
            2 => $fixed::<2>($($arg),*),
            3 => $fixed::<3>($($arg),*),
            4 => $fixed::<4>($($arg),*),
            5 => $fixed::<5>($($arg),*),
            6 => $fixed::<6>($($arg),*),
            7 => $fixed::<7>($($arg),*),
            8 => $fixed::<8>($($arg),*),
            9 => $fixed::<9>($($arg),*),
            10 => $fixed::<10>($($arg),*),
            11 => $fixed::<11>($($arg),*),
            12 => $fixed::<12>($($arg),*),
            13 => $fixed::<13>($($arg),*),
            14 => $fixed::<14>($($arg),*),
            15 => $fixed::<15>($($arg),*),
            16 => $fixed::<16>($($arg),*),
            _ => $otherwise,
        }
    };
}

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
    /// Inputs where one bin holds most rows (one-hot levels): each row lists only its other
    /// bins, and the common bin is the node's total minus the rest. A row of the Online
    /// Shoppers data touches 18 histogram slots this way instead of 75.
    pub(super) sparse: Vec<(usize, u8)>,
    /// What a histogram reads of each row, `layout.fixed` words a row (see [`Layout`]).
    pub(super) rows: Vec<u64>,
    pub(super) layout: Layout,
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
        let histogram_len = offsets.last().copied().unwrap_or(0);
        let column_major = &bins;
        let uncommon = |r: usize| sparse.iter().filter(move |&&(f, common)| column_major[f * n_rows + r] != common);
        let slots = (0..n_rows).map(|r| uncommon(r).count()).max().unwrap_or(0);
        let layout = Layout::new(dense.len(), slots);
        let mut rows = vec![0u64; n_rows * layout.fixed];
        for (r, record) in rows.chunks_exact_mut(layout.fixed.max(1)).enumerate().take(n_rows) {
            // The same layout as a sample's records, less the gradient's word in front.
            let head = 1;
            for (j, &f) in dense.iter().enumerate() {
                record[layout.dense - head + j / 8] |= u64::from(bins[f * n_rows + r]) << (8 * (j % 8));
            }
            let mut slot = uncommon(r).map(|&(f, _)| (offsets[f] + bins[f * n_rows + r] as usize) as u64);
            for word in &mut record[layout.slots - head..] {
                let low = slot.next().unwrap_or(histogram_len as u64);
                let high = slot.next().unwrap_or(histogram_len as u64);
                *word = low | high << 32;
            }
        }
        Binned { n_rows, bins, edges, offsets, dense, sparse, rows, layout }
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

/// Gradient and hessian in one word, as `f32`s (LightGBM's precision for them too): a record
/// is a word shorter, and moving records is most of a split's cost. Sums stay in `f64`.
pub(super) fn pack(g: f64, h: f64) -> u64 {
    u64::from((g as f32).to_bits()) | u64::from((h as f32).to_bits()) << 32
}

pub(super) fn unpack(word: u64) -> (f64, f64) {
    (f64::from(f32::from_bits(word as u32)), f64::from(f32::from_bits((word >> 32) as u32)))
}

/// Where things sit in a row's record of words. A record is the gradient and hessian
/// ([`pack`]), the dense inputs' bins eight to a word, then the uncommon sparse bins as
/// histogram indices two to a word, padded with [`Binned::histogram_len`]. [`Binned::rows`]
/// holds the last two parts of every row; a [`Sample`] whole records. No row number: a sparse
/// input's bin is read from the slots, and every word less is less to move in a split.
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    /// Words of a record in a sample.
    pub(super) stride: usize,
    /// Words of a row in `Binned::rows`.
    pub(super) fixed: usize,
    /// Record word where the dense bins start.
    dense: usize,
    /// Record word where the sparse slots start.
    slots: usize,
}

impl Layout {
    fn new(dense: usize, slots: usize) -> Layout {
        let fixed = dense.div_ceil(8) + slots.div_ceil(2);
        Layout { stride: 1 + fixed, fixed, dense: 1, slots: 1 + dense.div_ceil(8) }
    }
}

/// The rows growing one tree, as records (see [`Layout`]) in two buffers. Each leaf's records
/// are contiguous in one of them; splitting a leaf writes its children to the other. A
/// histogram reads memory front to back and a split moves each row once: gathering gradients
/// and bins row by row through the row numbers was a cache miss or more per row at a million
/// rows.
pub(super) struct Sample {
    pub(super) buffers: [Vec<u64>; 2],
    pub(super) layout: Layout,
}

impl Sample {
    pub(super) fn new(binned: &Binned, capacity: usize) -> Sample {
        let layout = binned.layout;
        Sample { buffers: [Vec::with_capacity(capacity * layout.stride), Vec::new()], layout }
    }

    pub(super) fn len(&self) -> usize {
        self.buffers[0].len() / self.layout.stride
    }

    /// Takes `rows` with their data and the gradients of the log loss at the current scores,
    /// into buffer 0.
    pub(super) fn fill(&mut self, binned: &Binned, rows: &[u32], raw: &[f64], y: &[bool]) {
        // Inlined into `fixed` with a constant width, the copy becomes a few moves.
        #[inline(always)]
        fn any(n: usize, out: &mut Vec<u64>, source: &[u64], rows: &[u32], raw: &[f64], y: &[bool]) {
            for &r in rows {
                let r = r as usize;
                let prob = sigmoid(raw[r]);
                let (g, h) = (prob - f64::from(u8::from(y[r])), (prob * (1.0 - prob)).max(1e-16));
                out.push(pack(g, h));
                out.extend_from_slice(&source[r * n..(r + 1) * n]);
            }
        }
        fn fixed<const N: usize>(out: &mut Vec<u64>, source: &[u64], rows: &[u32], raw: &[f64], y: &[bool]) {
            any(N, out, source, rows, raw, y);
        }
        let out = &mut self.buffers[0];
        out.clear();
        let width = self.layout.fixed;
        with_row_width!(width, fixed, (out, &binned.rows, rows, raw, y), {
            any(width, out, &binned.rows, rows, raw, y)
        });
        let len = out.len();
        self.buffers[1].resize(len, 0);
    }

    /// Writes the records of `range` from buffer `from` to the other buffer, those whose bin
    /// of input `feature` is at most `bin` first, and returns where the others start. No
    /// branch depends on the data: which side a row goes to is as good as random, and a
    /// mispredicted branch per row costs more than the copy. The left side keeps its order,
    /// the right side is reversed.
    pub(super) fn partition(
        &mut self,
        binned: &Binned,
        feature: usize,
        bin: u8,
        range: Range<usize>,
        from: usize,
    ) -> usize {
        // Inlined into `fixed` with a constant width, the copies become a few moves.
        #[inline(always)]
        fn any(n: usize, source: &[u64], out: &mut [u64], goes_left: &impl Fn(&[u64]) -> bool) -> usize {
            let (mut left, mut right) = (0, source.len() / n);
            for record in source.chunks_exact(n) {
                let l = goes_left(record);
                let to = if l { left } else { right - 1 };
                out[to * n..(to + 1) * n].copy_from_slice(record);
                left += usize::from(l);
                right -= usize::from(!l);
            }
            left
        }
        fn fixed<const N: usize>(source: &[u64], out: &mut [u64], goes_left: &impl Fn(&[u64]) -> bool) -> usize {
            any(N, source, out, goes_left)
        }
        let stride = self.layout.stride;
        let [a, b] = &mut self.buffers;
        let (source, out) = if from == 0 { (&a[..], &mut b[..]) } else { (&b[..], &mut a[..]) };
        let words = range.start * stride..range.end * stride;
        let (source, out) = (&source[words.clone()], &mut out[words]);
        let left = match binned.dense.iter().position(|&f| f == feature) {
            Some(j) => {
                let (word, shift) = (self.layout.dense + j / 8, 8 * (j % 8));
                let goes_left = move |r: &[u64]| (r[word] >> shift) as u8 <= bin;
                with_row_width!(stride, fixed, (source, out, &goes_left), { any(stride, source, out, &goes_left) })
            }
            None => {
                // The row's bin is the common one unless a slot falls in the input's bins.
                let (first, count) =
                    (binned.offsets[feature] as u64, (binned.offsets[feature + 1] - binned.offsets[feature]) as u64);
                let common = binned.sparse.iter().find(|s| s.0 == feature).map_or(0, |s| s.1);
                let slots = self.layout.slots;
                let goes_left = move |r: &[u64]| {
                    let mut b = u64::from(common);
                    for &word in &r[slots..] {
                        for slot in [word & 0xffff_ffff, word >> 32] {
                            let at = slot.wrapping_sub(first);
                            b = if at < count { at } else { b };
                        }
                    }
                    b <= u64::from(bin)
                };
                with_row_width!(stride, fixed, (source, out, &goes_left), { any(stride, source, out, &goes_left) })
            }
        };
        range.start + left
    }
}

/// Rows from which a histogram is worth a second thread, when a core is idle (a thread costs
/// tens of microseconds; fifty thousand rows, about a millisecond of sums).
const HELPED_ROWS: usize = 50_000;

/// Sums of gradient, hessian and rows per bin of each allowed input over the records of
/// `range` in buffer `buffer`, whose totals are `total` (needed to fill the common bin of
/// sparse inputs). When a core is idle (see [`cores`]), a second thread sums half of the
/// inputs: each bin is still summed by one thread in the records' order, so the histogram is
/// the same, bit for bit, with or without it.
pub(super) fn histogram(
    binned: &Binned,
    sample: &Sample,
    buffer: usize,
    range: Range<usize>,
    allowed: &[bool],
    total: (f64, f64),
) -> Vec<Bin> {
    let helper = if range.len() >= HELPED_ROWS { cores::claim() } else { None };
    histogram_with(binned, sample, buffer, range, allowed, total, helper.is_some())
}

fn histogram_with(
    binned: &Binned,
    sample: &Sample,
    buffer: usize,
    range: Range<usize>,
    allowed: &[bool],
    total: (f64, f64),
    helped: bool,
) -> Vec<Bin> {
    let layout = sample.layout;
    // For each allowed dense input: the input, its record word, shift, and first bin.
    let dense: Vec<(usize, usize, u32, usize)> = binned
        .dense
        .iter()
        .enumerate()
        .filter(|(_, &f)| allowed[f])
        .map(|(j, &f)| (f, layout.dense + j / 8, 8 * (j % 8) as u32, binned.offsets[f]))
        .collect();
    let rows = range.len() as u32;
    let stride = layout.stride;
    let records = &sample.buffers[buffer][range.start * stride..range.end * stride];
    let mut hist = if helped {
        // The helper takes the sparse slots and the second half of the dense inputs.
        let (mine, theirs) = dense.split_at(dense.len().div_ceil(2));
        std::thread::scope(|scope| {
            // A thread the system refuses to start leaves the work to this one.
            let Ok(helper) =
                std::thread::Builder::new().spawn_scoped(scope, || sums(binned, records, layout, theirs, true))
            else {
                return sums(binned, records, layout, &dense, true);
            };
            let mut hist = sums(binned, records, layout, mine, false);
            let other = helper.join().expect("a histogram thread panicked");
            let sparse = binned.sparse.iter().map(|&(f, _)| f);
            for f in theirs.iter().map(|d| d.0).chain(sparse) {
                let bins = binned.offsets[f]..binned.offsets[f + 1];
                hist[bins.clone()].copy_from_slice(&other[bins]);
            }
            hist
        })
    } else {
        sums(binned, records, layout, &dense, true)
    };
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

/// The sums of `records` for the `dense` inputs, and for the sparse ones' slots if `slots`.
fn sums(
    binned: &Binned,
    records: &[u64],
    layout: Layout,
    dense: &[(usize, usize, u32, usize)],
    slots: bool,
) -> Vec<Bin> {
    let mut hist = vec![Bin::default(); binned.histogram_len()];
    let padding = binned.histogram_len() as u64;
    for record in records.chunks_exact(layout.stride) {
        let (g, h) = unpack(record[0]);
        for &(_, word, shift, offset) in dense {
            let bin = &mut hist[offset + (record[word] >> shift) as u8 as usize];
            bin.g += g;
            bin.h += h;
            bin.n += 1;
        }
        if !slots {
            continue;
        }
        // A row's slots come first, then the padding, which would make one long chain of
        // additions to the same bin.
        let slots = record[layout.slots..].iter().flat_map(|&w| [w & 0xffff_ffff, w >> 32]);
        for slot in slots.take_while(|&slot| slot != padding) {
            let bin = &mut hist[slot as usize];
            bin.g += g;
            bin.h += h;
            bin.n += 1;
        }
    }
    hist
}

/// How many threads are boosting or helping, against the cores there are: a fit lends an idle
/// core to the other fit's histograms (a build's validation fit ends before its final fit,
/// which has a quarter more rows).
pub(super) mod cores {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;

    static BUSY: AtomicUsize = AtomicUsize::new(0);

    fn available() -> usize {
        static CORES: OnceLock<usize> = OnceLock::new();
        *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// A core in use for as long as it lives.
    pub(in crate::gbdt) struct Busy(());

    impl Drop for Busy {
        fn drop(&mut self) {
            BUSY.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Counts a boosting thread in, whatever the others do.
    pub(in crate::gbdt) fn enter() -> Busy {
        BUSY.fetch_add(1, Ordering::AcqRel);
        Busy(())
    }

    /// A core for a helper thread, if one is idle.
    pub(in crate::gbdt) fn claim() -> Option<Busy> {
        let cores = available();
        BUSY.fetch_update(Ordering::AcqRel, Ordering::Acquire, |busy| (busy < cores).then_some(busy + 1)).ok()?;
        Some(Busy(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use ndarray::Array2;

    /// Inputs of every kind: continuous, a yes/no, and one-hot levels (stored sparsely).
    fn mixed(n: usize, seed: u64) -> Array2<f64> {
        let mut rng = Rng::new(seed);
        let mut x = Array2::zeros((n, 7));
        for i in 0..n {
            x[[i, 0]] = rng.normal();
            x[[i, 1]] = if rng.uniform() < 0.4 { 1.0 } else { 0.0 };
            let level = 2 + (rng.uniform() * 5.0) as usize;
            x[[i, level]] = 1.0;
        }
        x
    }

    #[test]
    fn records_hold_every_bin_of_their_row() {
        let x = mixed(2000, 1);
        let binned = Binned::new(x.view(), 255);
        assert!(!binned.sparse.is_empty() && !binned.dense.is_empty());
        let mut sample = Sample::new(&binned, 2000);
        let rows: Vec<u32> = (0..2000).rev().step_by(3).collect();
        sample.fill(&binned, &rows, &vec![0.3; 2000], &vec![true; 2000]);
        let layout = sample.layout;
        let padding = binned.histogram_len() as u64;
        for (record, &r) in sample.buffers[0].chunks_exact(layout.stride).zip(&rows) {
            let r = r as usize;
            let (g, h) = unpack(record[0]);
            let p = sigmoid(0.3);
            assert!((g - (p - 1.0)).abs() < 1e-7 && (h - p * (1.0 - p)).abs() < 1e-7);
            for (j, &f) in binned.dense.iter().enumerate() {
                let b = (record[layout.dense + j / 8] >> (8 * (j % 8))) as u8;
                assert_eq!(b, binned.column(f)[r], "row {r}, dense input {f}");
            }
            let slots: Vec<u64> = record[layout.slots..]
                .iter()
                .flat_map(|&w| [w & 0xffff_ffff, w >> 32])
                .filter(|&s| s != padding)
                .collect();
            let expected: Vec<u64> = binned
                .sparse
                .iter()
                .filter(|&&(f, common)| binned.column(f)[r] != common)
                .map(|&(f, _)| (binned.offsets[f] + binned.column(f)[r] as usize) as u64)
                .collect();
            assert_eq!(slots, expected, "row {r}");
        }
    }

    #[test]
    fn a_histogram_helped_by_a_second_thread_is_the_same_bit_for_bit() {
        let x = mixed(3000, 3);
        let binned = Binned::new(x.view(), 255);
        let mut sample = Sample::new(&binned, 3000);
        let rows: Vec<u32> = (0..3000).collect();
        let raw: Vec<f64> = (0..3000).map(|i| ((i * 7919) % 101) as f64 / 50.0 - 1.0).collect();
        let labels: Vec<bool> = (0..3000).map(|i| (i * 31) % 7 < 3).collect();
        sample.fill(&binned, &rows, &raw, &labels);
        let total = sample.buffers[0]
            .chunks_exact(sample.layout.stride)
            .map(|r| unpack(r[0]))
            .fold((0.0, 0.0), |(a, b), (g, h)| (a + g, b + h));
        for allowed in [
            vec![true; 7],
            vec![true, false, true, false, true, true, false],
            vec![false, true, true, true, true, true, true],
        ] {
            let alone = histogram_with(&binned, &sample, 0, 100..2900, &allowed, total, false);
            let helped = histogram_with(&binned, &sample, 0, 100..2900, &allowed, total, true);
            assert!(alone.iter().any(|b| b.n > 0));
            for (a, b) in alone.iter().zip(&helped) {
                assert_eq!((a.g.to_bits(), a.h.to_bits(), a.n), (b.g.to_bits(), b.h.to_bits(), b.n));
            }
        }
    }

    /// Rows whose first two inputs spell their number (bins: `r % 250` and `r / 250`), then a
    /// continuous input and one-hot levels (stored sparsely).
    fn numbered(n: usize, seed: u64) -> Array2<f64> {
        let mut rng = Rng::new(seed);
        let mut x = Array2::zeros((n, 11));
        for i in 0..n {
            x[[i, 0]] = (i % 250) as f64;
            x[[i, 1]] = (i / 250) as f64;
            x[[i, 2]] = rng.normal();
            x[[i, 3 + (rng.uniform() * 8.0) as usize]] = 1.0;
        }
        x
    }

    /// The row of each record of `range` in `buffer`, read back from its first two bins.
    fn rows_of(binned: &Binned, sample: &Sample, buffer: usize, range: Range<usize>) -> Vec<usize> {
        let layout = sample.layout;
        let bin = |record: &[u64], f: usize| {
            let j = binned.dense.iter().position(|&d| d == f).expect("dense");
            (record[layout.dense + j / 8] >> (8 * (j % 8))) as u8 as usize
        };
        sample.buffers[buffer][range.start * layout.stride..range.end * layout.stride]
            .chunks_exact(layout.stride)
            .map(|record| bin(record, 0) + 250 * bin(record, 1))
            .collect()
    }

    #[test]
    fn a_partition_splits_on_dense_and_sparse_inputs_alike() {
        let x = numbered(1000, 2);
        let binned = Binned::new(x.view(), 255);
        assert!(binned.sparse.iter().any(|s| s.0 == 4) && binned.dense.contains(&2));
        for (feature, bin) in [(2, 100), (4, 0), (5, 0), (0, 17)] {
            let mut sample = Sample::new(&binned, 1000);
            let rows: Vec<u32> = (0..1000).collect();
            sample.fill(&binned, &rows, &[0.0; 1000], &[false; 1000]);
            assert_eq!(rows_of(&binned, &sample, 0, 0..1000), (0..1000).collect::<Vec<_>>());
            let mid = sample.partition(&binned, feature, bin, 100..900, 0);
            let column = binned.column(feature);
            let left = rows_of(&binned, &sample, 1, 100..mid);
            let right = rows_of(&binned, &sample, 1, mid..900);
            assert!(!left.is_empty() && !right.is_empty(), "input {feature}");
            assert!(left.iter().all(|&r| column[r] <= bin) && right.iter().all(|&r| column[r] > bin));
            // The left side keeps its order.
            assert!(left.windows(2).all(|w| w[0] < w[1]));
            let mut all: Vec<usize> = left.into_iter().chain(right).collect();
            all.sort_unstable();
            assert_eq!(all, (100..900).collect::<Vec<_>>());
        }
    }
}
