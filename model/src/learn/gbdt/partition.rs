//! The rows growing one tree as records (gradients and bins, see [`Layout`]) in two buffers,
//! and the partition of a leaf's records into its children.

use std::ops::Range;

use super::binning::{Binned, Layout};
use super::sigmoid;

/// Gradient and hessian in one word, as `f32`s (LightGBM's precision for them too): a record
/// is a word shorter, and moving records is most of a split's cost. Sums stay in `f64`.
pub(super) fn pack(g: f64, h: f64) -> u64 {
    u64::from((g as f32).to_bits()) | u64::from((h as f32).to_bits()) << 32
}

pub(super) fn unpack(word: u64) -> (f64, f64) {
    (f64::from(f32::from_bits(word as u32)), f64::from(f32::from_bits((word >> 32) as u32)))
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
        missing_left: Option<u8>,
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
                match missing_left {
                    None => {
                        let goes_left = move |r: &[u64]| (r[word] >> shift) as u8 <= bin;
                        with_row_width!(stride, fixed, (source, out, &goes_left), {
                            any(stride, source, out, &goes_left)
                        })
                    }
                    Some(m) => {
                        let goes_left = move |r: &[u64]| {
                            let b = (r[word] >> shift) as u8;
                            (b <= bin) | (b == m)
                        };
                        with_row_width!(stride, fixed, (source, out, &goes_left), {
                            any(stride, source, out, &goes_left)
                        })
                    }
                }
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
                    (b <= u64::from(bin)) | missing_left.is_some_and(|m| b == u64::from(m))
                };
                with_row_width!(stride, fixed, (source, out, &goes_left), { any(stride, source, out, &goes_left) })
            }
        };
        range.start + left
    }
}
