//! Histograms of gradient and hessian sums per bin over a leaf's records, summed by one
//! thread or, for a large leaf when a core is idle, by two.

use std::ops::Range;

use super::binning::Binned;
use super::binning::Layout;
use super::cores::{self, join_with};
use super::partition::{unpack, Sample};

#[derive(Clone, Copy, Default)]
pub(super) struct Bin {
    pub(super) g: f64,
    pub(super) h: f64,
    pub(super) n: u32,
}

/// Sums of gradient, hessian and rows per bin of each allowed input over the records of
/// `ranges` (a leaf's records in each of the sample's two shards), whose totals are `total`
/// (needed to fill the common bin of sparse inputs). Each shard is summed on its own, on two
/// threads when the leaf is large and a core is idle (see [`cores::join`]), and the second shard's
/// sums added to the first's: the histogram is the same, bit for bit, with or without the
/// second thread.
pub(super) fn histogram(
    binned: &Binned,
    sample: &Sample,
    ranges: [Range<usize>; 2],
    allowed: &[bool],
    total: (f64, f64),
) -> Vec<Bin> {
    let rows = ranges[0].len() + ranges[1].len();
    let helper = cores::helper(rows);
    histogram_with(binned, sample, ranges, allowed, total, helper.is_some())
}

fn histogram_with(
    binned: &Binned,
    sample: &Sample,
    ranges: [Range<usize>; 2],
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
    let rows = (ranges[0].len() + ranges[1].len()) as u32;
    let stride = layout.stride;
    let [first, second] = ranges.map(|r| &sample.records[r.start * stride..r.end * stride]);
    let mut hist = if second.is_empty() {
        sums(binned, first, layout, &dense)
    } else {
        let (theirs, mut hist) =
            join_with(helped, || sums(binned, second, layout, &dense), || sums(binned, first, layout, &dense));
        for (bin, other) in hist.iter_mut().zip(&theirs) {
            bin.g += other.g;
            bin.h += other.h;
            bin.n += other.n;
        }
        hist
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

/// The sums of `records` for the `dense` inputs and the sparse ones' slots.
fn sums(binned: &Binned, records: &[u64], layout: Layout, dense: &[(usize, usize, u32, usize)]) -> Vec<Bin> {
    // With a constant width the records are arrays: a record's words are read at fixed offsets.
    fn fixed<const N: usize>(
        binned: &Binned,
        records: &[u64],
        layout: Layout,
        dense: &[(usize, usize, u32, usize)],
    ) -> Vec<Bin> {
        sums_of(N, binned, records, layout, dense)
    }
    with_row_width!(layout.stride, fixed, (binned, records, layout, dense), {
        sums_of(layout.stride, binned, records, layout, dense)
    })
}

/// [`sums`] of records `stride` words long. Records are taken two at a time, the first's dense
/// bins summed into one set of 256 bins an input and the second's into another, the two sets
/// added at the end (the first's then the second's, whatever the threads): two rows in the same
/// bin one after the other, as the rows of an input with few bins often are, no longer wait on
/// each other's addition.
#[inline(always)]
fn sums_of(
    stride: usize,
    binned: &Binned,
    records: &[u64],
    layout: Layout,
    dense: &[(usize, usize, u32, usize)],
) -> Vec<Bin> {
    let mut hist = vec![Bin::default(); binned.histogram_len()];
    let padding = binned.histogram_len() as u16;
    let slot_at: Vec<(usize, u32)> = (0..layout.n_slots).map(|i| layout.slot(i, 1)).collect();
    // Each dense input sums into 256 bins of its own: a byte indexes them without a bounds
    // check, where `offset + byte` into the whole histogram needed one (and an addition).
    let mut slabs = vec![[Bin::default(); 256]; 2 * dense.len()];
    let (even, odd) = slabs.split_at_mut(dense.len());
    // A row's slots come first, then the padding, which would make one long chain of
    // additions to the same bin.
    let add_slots = |hist: &mut [Bin], record: &[u64], g: f64, h: f64| {
        for &(word, shift) in &slot_at {
            let slot = (record[word] >> shift) as u16;
            if slot == padding {
                break;
            }
            let bin = &mut hist[usize::from(slot)];
            bin.g += g;
            bin.h += h;
            bin.n += 1;
        }
    };
    let mut pairs = records.chunks_exact(2 * stride);
    for pair in &mut pairs {
        let (a, b) = pair.split_at(stride);
        let ((ga, ha), (gb, hb)) = (unpack(a[0]), unpack(b[0]));
        for ((&(_, word, shift, _), first), second) in dense.iter().zip(even.iter_mut()).zip(odd.iter_mut()) {
            let bin = &mut first[(a[word] >> shift) as u8 as usize];
            bin.g += ga;
            bin.h += ha;
            bin.n += 1;
            let bin = &mut second[(b[word] >> shift) as u8 as usize];
            bin.g += gb;
            bin.h += hb;
            bin.n += 1;
        }
        add_slots(&mut hist, a, ga, ha);
        add_slots(&mut hist, b, gb, hb);
    }
    if let Some(record) = pairs.remainder().get(..stride) {
        let (g, h) = unpack(record[0]);
        for (&(_, word, shift, _), slab) in dense.iter().zip(even.iter_mut()) {
            let bin = &mut slab[(record[word] >> shift) as u8 as usize];
            bin.g += g;
            bin.h += h;
            bin.n += 1;
        }
        add_slots(&mut hist, record, g, h);
    }
    for ((&(f, _, _, offset), first), second) in dense.iter().zip(even.iter()).zip(odd.iter()) {
        let end = binned.offsets[f + 1];
        for ((bin, a), b) in hist[offset..end].iter_mut().zip(first).zip(second) {
            *bin = Bin { g: a.g + b.g, h: a.h + b.h, n: a.n + b.n };
        }
    }
    hist
}

/// The larger child's histogram from its parent's and its sibling's: `parent − small`, bin by
/// bin, in place of `parent`. Only the smaller child's records are read again (LightGBM's
/// and scikit-learn's subtraction trick).
pub(super) fn subtract(mut parent: Vec<Bin>, small: &[Bin]) -> Vec<Bin> {
    for (pb, sb) in parent.iter_mut().zip(small) {
        pb.g -= sb.g;
        pb.h -= sb.h;
        pb.n -= sb.n;
    }
    parent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::sigmoid;
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
        // Three dense inputs (the slots start after a byte of padding), then six (no padding,
        // and with three rare yes/no inputs, slots in the dense bins' word and in the next).
        let mut rng = Rng::new(3);
        for (x, dense) in [(mixed(2000, 1), 3), (numbered(2000, 1), 3), (six_slots_rows(&mut rng), 6)] {
            let binned = Binned::new(x.view(), 255);
            assert_eq!(binned.dense.len(), dense);
            assert!(dense != 6 || binned.layout.n_slots == 3, "{} slots", binned.layout.n_slots);
            records_hold_every_bin_of(&binned);
        }
        // Over 255 inputs of 256 bins, a histogram index no longer fits in a slot: the rare
        // yes/no inputs, sparse otherwise, are held densely too.
        let mut x = Array2::zeros((600, 262));
        for i in 0..600 {
            for f in 0..258 {
                x[[i, f]] = rng.normal();
            }
            for f in 258..262 {
                x[[i, f]] = if rng.uniform() < 0.05 { 1.0 } else { 0.0 };
            }
        }
        let few = Binned::new(x.slice(ndarray::s![.., 250..]).view(), 255);
        assert_eq!(few.sparse.len(), 4, "alone, the rare inputs are sparse");
        let binned = Binned::new(x.view(), 255);
        assert!(binned.histogram_len() > usize::from(u16::MAX));
        assert!(binned.sparse.is_empty() && binned.dense.len() == 262);
        records_hold_every_bin_of(&binned);
    }

    /// Six continuous inputs and three rare yes/no ones, some rows having all three.
    fn six_slots_rows(rng: &mut Rng) -> Array2<f64> {
        let mut x = Array2::zeros((3000, 9));
        for i in 0..3000 {
            for f in 0..6 {
                x[[i, f]] = rng.normal();
            }
            let all = i % 50 == 0;
            for f in 6..9 {
                x[[i, f]] = if all || rng.uniform() < 0.1 { 1.0 } else { 0.0 };
            }
        }
        x
    }

    fn records_hold_every_bin_of(binned: &Binned) {
        let with_slots = binned.histogram_len() <= usize::from(u16::MAX);
        assert!(!with_slots || (!binned.sparse.is_empty() && !binned.dense.is_empty()));
        let n = binned.n_rows;
        let mut sample = Sample::new(binned, n);
        let rows: Vec<u32> = (0..n as u32).rev().step_by(3).collect();
        sample.fill(binned, &rows, &vec![0.3; n], &vec![true; n]);
        let layout = sample.layout;
        let padding = binned.histogram_len() as u64;
        for (record, &r) in sample.records.chunks_exact(layout.stride).zip(&rows) {
            let r = r as usize;
            let (g, h) = unpack(record[0]);
            let p = sigmoid(0.3);
            assert!((g - (p - 1.0)).abs() < 1e-7 && (h - p * (1.0 - p)).abs() < 1e-7);
            for (j, &f) in binned.dense.iter().enumerate() {
                let b = (record[layout.dense + j / 8] >> (8 * (j % 8))) as u8;
                assert_eq!(b, binned.column(f)[r], "row {r}, dense input {f}");
            }
            let slots: Vec<u64> = (0..layout.n_slots)
                .map(|i| layout.slot(i, 1))
                .map(|(word, shift)| u64::from((record[word] >> shift) as u16))
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
    fn a_histogram_of_two_shards_helped_by_a_second_thread_is_the_same_bit_for_bit() {
        let x = mixed(3000, 3);
        let binned = Binned::new(x.view(), 255);
        let mut sample = Sample::new(&binned, 3000);
        let rows: Vec<u32> = (0..3000).collect();
        let raw: Vec<f32> = (0..3000).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect();
        let labels: Vec<bool> = (0..3000).map(|i| (i * 31) % 7 < 3).collect();
        sample.fill(&binned, &rows, &raw, &labels);
        let total = sample
            .records
            .chunks_exact(sample.layout.stride)
            .map(|r| unpack(r[0]))
            .fold((0.0, 0.0), |(a, b), (g, h)| (a + g, b + h));
        for allowed in [
            vec![true; 7],
            vec![true, false, true, false, true, true, false],
            vec![false, true, true, true, true, true, true],
        ] {
            let shards = [100..1700, 1700..2900];
            let alone = histogram_with(&binned, &sample, shards.clone(), &allowed, total, false);
            let helped = histogram_with(&binned, &sample, shards, &allowed, total, true);
            assert!(alone.iter().any(|b| b.n > 0));
            for (a, b) in alone.iter().zip(&helped) {
                assert_eq!((a.g.to_bits(), a.h.to_bits(), a.n), (b.g.to_bits(), b.h.to_bits(), b.n));
            }
            // The two shards' sums are those of their rows as one.
            let one = histogram_with(&binned, &sample, [100..2900, 2900..2900], &allowed, total, false);
            for (a, b) in alone.iter().zip(&one) {
                assert_eq!(a.n, b.n);
                assert!((a.g - b.g).abs() < 1e-9 && (a.h - b.h).abs() < 1e-9);
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

    /// The row of each record of `range`, read back from its first two bins.
    fn rows_of(binned: &Binned, sample: &Sample, range: Range<usize>) -> Vec<usize> {
        let layout = sample.layout;
        let bin = |record: &[u64], f: usize| {
            let j = binned.dense.iter().position(|&d| d == f).expect("dense");
            (record[layout.dense + j / 8] >> (8 * (j % 8))) as u8 as usize
        };
        sample.records[range.start * layout.stride..range.end * layout.stride]
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
            assert_eq!(rows_of(&binned, &sample, 0..1000), (0..1000).collect::<Vec<_>>());
            let mid = sample.partition(&binned, feature, bin, None, 100..900);
            // Records outside the range are where they were.
            assert_eq!(rows_of(&binned, &sample, 0..100), (0..100).collect::<Vec<_>>());
            assert_eq!(rows_of(&binned, &sample, 900..1000), (900..1000).collect::<Vec<_>>());
            let column = binned.column(feature);
            let left = rows_of(&binned, &sample, 100..mid);
            let right = rows_of(&binned, &sample, mid..900);
            assert!(!left.is_empty() && !right.is_empty(), "input {feature}");
            assert!(left.iter().all(|&r| column[r] <= bin) && right.iter().all(|&r| column[r] > bin));
            // The left side keeps its order.
            assert!(left.windows(2).all(|w| w[0] < w[1]));
            let mut all: Vec<usize> = left.into_iter().chain(right).collect();
            all.sort_unstable();
            assert_eq!(all, (100..900).collect::<Vec<_>>());
        }
    }

    #[test]
    fn the_larger_childs_histogram_by_subtraction_is_its_direct_sum() {
        let x = mixed(4000, 5);
        let binned = Binned::new(x.view(), 255);
        let mut sample = Sample::new(&binned, 4000);
        let rows: Vec<u32> = (0..4000).filter(|r| r % 5 != 2).collect();
        let raw: Vec<f32> = (0..4000).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect();
        let labels: Vec<bool> = (0..4000).map(|i| (i * 31) % 7 < 3).collect();
        sample.fill(&binned, &rows, &raw, &labels);
        let n = rows.len();
        let totals = |sample: &Sample, range: Range<usize>| {
            let stride = sample.layout.stride;
            sample.records[range.start * stride..range.end * stride]
                .chunks_exact(stride)
                .map(|r| unpack(r[0]))
                .fold((0.0, 0.0), |(a, b), (g, h)| (a + g, b + h))
        };
        let allowed = vec![true; 7];
        // On a dense input (0) and on a sparse one (a one-hot level), the sample in two shards.
        let shard = n / 3;
        for (feature, bin) in [(0, 100), (3, 0)] {
            let total = |sample: &Sample, [a, b]: &[Range<usize>; 2]| {
                let (ta, tb) = (totals(sample, a.clone()), totals(sample, b.clone()));
                (ta.0 + tb.0, ta.1 + tb.1)
            };
            let root = [0..shard, shard..n];
            let parent = histogram_with(&binned, &sample, root.clone(), &allowed, total(&sample, &root), false);
            let [ma, mb] = sample.partition_shards(&binned, feature, bin, None, root);
            let (left, right) = ([0..ma, shard..mb], [ma..shard, mb..n]);
            let size = |r: &[Range<usize>; 2]| r[0].len() + r[1].len();
            let (small, large) = if size(&left) <= size(&right) { (left, right) } else { (right, left) };
            assert!(size(&small) > 0 && size(&small) < size(&large), "input {feature}");
            let small = histogram_with(&binned, &sample, small.clone(), &allowed, total(&sample, &small), false);
            let direct = histogram_with(&binned, &sample, large.clone(), &allowed, total(&sample, &large), true);
            let subtracted = subtract(parent, &small);
            assert!(direct.iter().filter(|b| b.n > 0).count() > 20);
            for (i, (d, s)) in direct.iter().zip(&subtracted).enumerate() {
                assert_eq!(d.n, s.n, "input {feature}, bin {i}");
                assert!((d.g - s.g).abs() < 1e-9 && (d.h - s.h).abs() < 1e-9, "input {feature}, bin {i}");
            }
            // The rows in their first order again for the next split.
            sample.fill(&binned, &rows, &raw, &labels);
        }
    }
}
