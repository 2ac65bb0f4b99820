//! Inputs quantised to bins ([`Binned`]): bin edges from (a sample of) each input's sorted
//! values, the bins stored by column, sparse inputs listed by their uncommon bins.

use std::collections::BTreeMap;

use ndarray::ArrayView2;

use super::cores;
use crate::data::dataset::{Dataset, Rows};
use crate::error::Result;
use crate::learn::features::Preprocessor;

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
    /// Inputs where one bin holds most rows (one-hot levels): each row lists only its other
    /// bins, and the common bin is the node's total minus the rest. A row of the Online
    /// Shoppers data touches 18 histogram slots this way instead of 75.
    pub(super) sparse: Vec<(usize, u8)>,
    /// What a histogram reads of each row, `layout.fixed` words a row (see [`Layout`]).
    pub(super) rows: Vec<u64>,
    pub(super) layout: Layout,
    /// Per input, the bin of a missing value (NaN), after its regular bins, when the training
    /// rows had any; a split learns which side it goes to.
    pub(super) missing: Vec<Option<u8>>,
}

/// An input is stored sparsely when its most common bin holds at least this share of rows.
const SPARSE_SHARE: f64 = 0.8;

/// The bin edges of an input from a sample of its values that are not missing.
fn edges_of(mut sample: Vec<f64>, has_missing: bool, max_bins: usize) -> Vec<f64> {
    // The missing bin must fit in a byte after the regular ones.
    let max_bins = if has_missing { max_bins.min(255) } else { max_bins };
    // Values equal by `total_cmp` have the same bits: any sort gives the same order.
    sample.sort_unstable_by(f64::total_cmp);
    let mut distinct = sample.clone();
    distinct.dedup();
    if distinct.len() <= max_bins {
        distinct.windows(2).map(|w| w[0] + (w[1] - w[0]) / 2.0).collect()
    } else {
        let mut cuts: Vec<f64> = (1..max_bins).map(|k| sample[k * sample.len() / max_bins]).collect();
        cuts.dedup();
        // The largest value needs a bin above the last edge.
        if cuts.last() == sample.last() {
            cuts.pop();
        }
        cuts
    }
}

/// The bin of value `v` of an input with edges `e`.
#[inline]
fn bin_of(e: &[f64], missing_bin: Option<u8>, v: f64) -> u8 {
    match missing_bin {
        Some(m) if v.is_nan() => m,
        _ => e.partition_point(|&edge| edge < v) as u8,
    }
}

impl Binned {
    pub(super) fn new(x: ArrayView2<f64>, max_bins: usize) -> Binned {
        let (n_rows, n_inputs) = x.dim();
        let mut bins = vec![0u8; n_rows * n_inputs];
        let mut edges = Vec::with_capacity(n_inputs);
        let stride = n_rows.div_ceil(BINNING_SAMPLE).max(1);
        let mut missing = Vec::with_capacity(n_inputs);
        for f in 0..n_inputs {
            let column = x.column(f);
            let has_missing = column.iter().any(|v| v.is_nan());
            let e = edges_of(
                column.iter().step_by(stride).copied().filter(|v| !v.is_nan()).collect(),
                has_missing,
                max_bins,
            );
            let out = &mut bins[f * n_rows..(f + 1) * n_rows];
            let missing_bin = has_missing.then_some((e.len() + 1) as u8);
            for (o, &v) in out.iter_mut().zip(column.iter()) {
                *o = bin_of(&e, missing_bin, v);
            }
            edges.push(e);
            missing.push(missing_bin);
        }
        Binned::assemble(n_rows, bins, edges, missing)
    }

    /// The bins [`Binned::new`] gives the matrix `preprocessing` makes of the viewed rows of
    /// `data`, made from the data set's columns a few thousand rows at a time: the training set
    /// is never held as numbers, only as one byte per input and row.
    pub(super) fn from_columns(
        preprocessing: &Preprocessor,
        data: &Dataset,
        rows: Rows<'_>,
        max_bins: usize,
    ) -> Result<Binned> {
        Ok(ColumnBins::new(preprocessing, data, rows, max_bins)?.assemble())
    }
}

/// The bins of [`Binned::from_columns`] by column, before the rows' records are assembled
/// from them: the data set they came from can be released in between.
pub(super) struct ColumnBins {
    n_rows: usize,
    bins: Vec<u8>,
    edges: Vec<Vec<f64>>,
    missing: Vec<Option<u8>>,
}

impl ColumnBins {
    pub(super) fn new(preprocessing: &Preprocessor, data: &Dataset, rows: Rows<'_>, max_bins: usize) -> Result<Self> {
        let (n_rows, n_inputs) = (rows.len(), preprocessing.width());
        // The view's first and second halves are encoded side by side when a core is idle
        // (see [`cores::join`]).
        let mid = n_rows / 2;
        let halves = [rows.slice(0, mid), rows.slice(mid, n_rows)];
        let encode =
            |half: Rows<'_>, each: &mut dyn FnMut(usize, &[f64])| encoded_chunks(preprocessing, data, half, each);
        // Pass one: which inputs have a missing value (it decides how many regular bins fit).
        let has_missing = |half: Rows<'_>| {
            let mut has = vec![false; n_inputs];
            encode(half, &mut |_, encoded| {
                for row in encoded.chunks_exact(n_inputs.max(1)) {
                    for (m, v) in has.iter_mut().zip(row) {
                        *m |= v.is_nan();
                    }
                }
            })
            .map(|()| has)
        };
        let (second, first) = cores::join(n_rows, || has_missing(halves[1]), || has_missing(halves[0]));
        let (first, second) = (first?, second?);
        let has_missing: Vec<bool> = first.iter().zip(&second).map(|(a, b)| a | b).collect();
        // The edges from the same sample of rows as `Binned::new` takes.
        let stride = n_rows.div_ceil(BINNING_SAMPLE).max(1);
        let sampled: Vec<usize> = (0..n_rows).step_by(stride).map(|k| rows.get(k)).collect();
        let sample = preprocessing.transform_rows(data, Rows::Listed(&sampled))?.matrix;
        let edges: Vec<Vec<f64>> = (0..n_inputs)
            .map(|f| {
                let values = sample.column(f).iter().copied().filter(|v| !v.is_nan()).collect();
                edges_of(values, has_missing[f], max_bins)
            })
            .collect();
        drop(sample);
        let missing: Vec<Option<u8>> =
            edges.iter().zip(&has_missing).map(|(e, &m)| m.then_some((e.len() + 1) as u8)).collect();
        // Pass two: the bins, each half of each input's column written by its half's thread.
        let mut bins = vec![0u8; n_rows * n_inputs];
        let (mut firsts, mut seconds): (Vec<&mut [u8]>, Vec<&mut [u8]>) =
            bins.chunks_mut(n_rows.max(1)).map(|column| column.split_at_mut(mid)).unzip();
        let bin_half = |half: Rows<'_>, columns: &mut [&mut [u8]]| {
            encode(half, &mut |start, encoded| {
                for (r, row) in encoded.chunks_exact(n_inputs.max(1)).enumerate() {
                    for (f, &v) in row.iter().enumerate() {
                        columns[f][start + r] = bin_of(&edges[f], missing[f], v);
                    }
                }
            })
        };
        let (second, first) =
            cores::join(n_rows, || bin_half(halves[1], &mut seconds), || bin_half(halves[0], &mut firsts));
        first.and(second)?;
        Ok(ColumnBins { n_rows, bins, edges, missing })
    }

    pub(super) fn assemble(self) -> Binned {
        Binned::assemble(self.n_rows, self.bins, self.edges, self.missing)
    }
}

/// Rows encoded at a time while binning, by each of the two halves: two buffers of a few
/// hundred kilobytes, as large together as the one of 4,096 rows before the halves.
const ENCODED_ROWS: usize = 2048;

/// Calls `each(start, encoded rows)` for the rows of `rows`, [`ENCODED_ROWS`] at a time, `start`
/// counted from the view's first row.
fn encoded_chunks(
    preprocessing: &Preprocessor,
    data: &Dataset,
    rows: Rows<'_>,
    each: &mut dyn FnMut(usize, &[f64]),
) -> Result<()> {
    let (n_rows, n_inputs) = (rows.len(), preprocessing.width());
    // Levels no encoder knew are counted while encoding; binning has no use for them.
    let mut unseen = BTreeMap::new();
    let mut buffer = vec![0.0; ENCODED_ROWS.min(n_rows) * n_inputs];
    for start in (0..n_rows).step_by(ENCODED_ROWS) {
        let end = (start + ENCODED_ROWS).min(n_rows);
        let out = &mut buffer[..(end - start) * n_inputs];
        out.iter_mut().for_each(|x| *x = 0.0);
        preprocessing.encode_rows(data, rows.slice(start, end), out, &mut unseen)?;
        each(start, out);
    }
    Ok(())
}

impl Binned {
    /// Writes, row-major, a value of each input for each listed row that falls in the row's bin
    /// and compares with every edge (a fitted tree's only thresholds) as the row's own value
    /// does: the bin's upper edge, the largest finite number for the last regular bin, NaN for
    /// the missing bin. A tree fitted on these bins scores these values exactly as the row.
    pub(super) fn representatives(&self, positions: &[usize], out: &mut [f64]) {
        let n_inputs = self.edges.len();
        for (row, &r) in out.chunks_exact_mut(n_inputs.max(1)).zip(positions) {
            for (f, x) in row.iter_mut().enumerate() {
                let b = self.bins[f * self.n_rows + r];
                *x = match self.missing[f] {
                    Some(m) if b == m => f64::NAN,
                    _ => self.edges[f].get(b as usize).copied().unwrap_or(f64::MAX),
                };
            }
        }
    }

    /// The per-row records and the dense or sparse choice of each input, from the bins.
    fn assemble(n_rows: usize, bins: Vec<u8>, edges: Vec<Vec<f64>>, missing: Vec<Option<u8>>) -> Binned {
        let n_inputs = edges.len();
        let mut offsets = Vec::with_capacity(n_inputs + 1);
        offsets.push(0);
        for (e, m) in edges.iter().zip(&missing) {
            offsets.push(offsets.last().copied().unwrap_or(0) + e.len() + 1 + usize::from(m.is_some()));
        }
        let mut dense = Vec::new();
        let mut sparse = Vec::new();
        for (f, e) in edges.iter().enumerate() {
            let mut counts = vec![0usize; e.len() + 1 + usize::from(missing[f].is_some())];
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
        // A slot is a histogram index in 16 bits, with `histogram_len` as padding: when the
        // histogram has more than 65,535 bins (over 255 inputs of 256 bins), every input is
        // held densely.
        if histogram_len > usize::from(u16::MAX) {
            dense = (0..n_inputs).collect();
            sparse.clear();
        }
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
            for i in 0..layout.n_slots {
                let (word, shift) = layout.slot(i, 0);
                record[word] |= slot.next().unwrap_or(histogram_len as u64) << shift;
            }
        }
        Binned { n_rows, bins, edges, offsets, dense, sparse, rows, layout, missing }
    }

    pub(super) fn histogram_len(&self) -> usize {
        self.offsets.last().copied().unwrap_or(0)
    }

    pub(super) fn column(&self, f: usize) -> &[u8] {
        &self.bins[f * self.n_rows..(f + 1) * self.n_rows]
    }
}

/// Where things sit in a row's record of words. A record is the gradient and hessian
/// ([`super::partition::pack`]), then the row's bytes: the dense inputs' bins, one byte each,
/// then (from an even byte) the uncommon sparse bins as 16-bit histogram indices, padded with
/// [`Binned::histogram_len`]. [`Binned::rows`] holds the row's bytes; a [`Sample`] whole
/// records. No row number: a sparse input's bin is read from the slots, and every word less is
/// less to move in a split (the slots may share the dense bins' last word).
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    /// Words of a record in a sample.
    pub(super) stride: usize,
    /// Words of a row in `Binned::rows`.
    pub(super) fixed: usize,
    /// Record word where the dense bins start.
    pub(super) dense: usize,
    /// Byte of a row's bytes where the sparse slots start.
    pub(super) slot_byte: usize,
    /// Slots of a row.
    pub(super) n_slots: usize,
}

impl Layout {
    pub(super) fn new(dense: usize, slots: usize) -> Layout {
        let slot_byte = dense.next_multiple_of(2);
        let fixed = if slots == 0 { dense.div_ceil(8) } else { (slot_byte + 2 * slots).div_ceil(8) };
        Layout { stride: 1 + fixed, fixed, dense: 1, slot_byte, n_slots: slots }
    }

    /// The word and shift of slot `i`, among words with `head` words before the row's bytes
    /// (1 in a sample's record, 0 in [`Binned::rows`]). A slot never straddles two words.
    pub(super) fn slot(&self, i: usize, head: usize) -> (usize, u32) {
        let byte = self.slot_byte + 2 * i;
        debug_assert!(byte % 8 <= 6, "slot {i} straddles two words");
        (head + byte / 8, 8 * (byte % 8) as u32)
    }
}
