//! The rows a tree grows on: exactly `k` of `n`, uniformly without replacement, in
//! increasing order, drawn with a few random words per 64 rows rather than a draw per row.
//!
//! Each row is first taken with probability ≈ `k / n` (rounded to [`PRECISION`] bits), 64 rows
//! at a time: a word whose bits are each set with probability `0.b₁b₂…b₈` is built from eight
//! random words, `m = b ? m | r : m & r` from the last bit to the first. The count is then
//! corrected to exactly `k` by dropping uniformly chosen taken rows (or taking uniformly chosen
//! others), a few hundred at a million rows. Every step treats the rows alike, so every set of
//! `k` rows is equally likely: the set is a uniform draw without replacement, as Knuth's
//! selection sampling gave, at an eighth of a random word per row instead of one.

use crate::rng::Rng;

/// Bits of the take probability: 8 random words per 64 rows, and a probability within 1/512
/// of `k / n`, which leaves about `n / 512` rows to correct.
const PRECISION: u32 = 8;

/// Sets in `taken` (one bit a row, the rows `0..n`) exactly `k` rows, uniformly without
/// replacement; `k` is clamped to `n`. Read in order, its set bits are the rows in increasing order.
pub(super) fn draw(rng: &mut Rng, n: usize, k: usize, taken: &mut Vec<u64>) {
    let k = k.min(n);
    let words = n.div_ceil(64);
    taken.clear();
    if k == n {
        taken.resize(words, u64::MAX);
        if !n.is_multiple_of(64) {
            taken[words - 1] = (1u64 << (n % 64)) - 1;
        }
        return;
    }
    taken.resize(words, 0);
    // The probability's bits, first after the point first; trailing zero bits cost nothing.
    let p = ((k as f64 / n as f64) * f64::from(1u32 << PRECISION)).round() as u32;
    let mut count = 0usize;
    if p > 0 {
        let (p, bits) = if p >= 1 << PRECISION {
            (u32::MAX, 0)
        } else {
            let zeros = p.trailing_zeros();
            (p >> zeros, PRECISION - zeros)
        };
        for (w, word) in taken.iter_mut().enumerate() {
            let mut m = if bits == 0 { u64::MAX } else { 0 };
            for b in 0..bits {
                let r = rng.next_u64();
                m = if (p >> b) & 1 == 1 { m | r } else { m & r };
            }
            // The last word's rows beyond `n` are never taken.
            if w + 1 == words && !n.is_multiple_of(64) {
                m &= (1u64 << (n % 64)) - 1;
            }
            *word = m;
            count += m.count_ones() as usize;
        }
    }
    // Corrections: a uniformly chosen row, kept only if it is on the side to shrink (as likely
    // as not at worst: the larger side is the one to shrink or the other to grow).
    let drop_taken = count > k;
    while count != k {
        let r = rng.below(n);
        let (word, bit) = (r / 64, 1u64 << (r % 64));
        if (taken[word] & bit != 0) == drop_taken {
            taken[word] ^= bit;
            count = if drop_taken { count - 1 } else { count + 1 };
        }
    }
}

/// The rows set in `taken`, in increasing order.
#[cfg(test)]
pub(super) fn taken_rows(taken: &[u64]) -> impl Iterator<Item = u32> + '_ {
    taken.iter().enumerate().flat_map(|(w, &word)| {
        let mut m = word;
        std::iter::from_fn(move || {
            (m != 0).then(|| {
                let row = (w * 64) as u32 + m.trailing_zeros();
                m &= m - 1;
                row
            })
        })
    })
}

/// [`draw`], its rows listed in `rows`.
#[cfg(test)]
fn draw_rows(rng: &mut Rng, n: usize, k: usize, taken: &mut Vec<u64>, rows: &mut Vec<u32>) {
    draw(rng, n, k, taken);
    rows.clear();
    rows.extend(taken_rows(taken));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_exactly_k_distinct_rows_in_increasing_order() {
        let (mut taken, mut rows) = (Vec::new(), Vec::new());
        let mut rng = Rng::new(5);
        for (n, k) in
            [(1, 1), (2, 1), (63, 10), (64, 64), (65, 1), (1000, 800), (1000, 3), (1000, 999), (100_003, 80_002)]
        {
            for _ in 0..3 {
                draw_rows(&mut rng, n, k, &mut taken, &mut rows);
                assert_eq!(rows.len(), k, "{k} of {n}");
                assert!(rows.windows(2).all(|w| w[0] < w[1]), "{k} of {n}: increasing, hence distinct");
                assert!(rows.iter().all(|&r| (r as usize) < n));
            }
        }
        draw_rows(&mut rng, 10, 20, &mut taken, &mut rows);
        assert_eq!(rows, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn a_seed_fixes_the_rows() {
        let draw = |seed| {
            let (mut taken, mut rows) = (Vec::new(), Vec::new());
            let mut rng = Rng::new(seed);
            (0..3)
                .map(|_| {
                    draw_rows(&mut rng, 10_000, 7_000, &mut taken, &mut rows);
                    rows.clone()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(11), draw(11));
        assert_ne!(draw(11), draw(12));
        let trees = draw(11);
        assert_ne!(trees[0], trees[1], "each tree draws again");
    }

    /// Each row is taken `k / n` of the time, and each pair of rows `k(k−1) / n(n−1)` of the
    /// time (what a uniform draw without replacement gives): checked within five standard
    /// errors over many draws, for probabilities that need rows dropped and rows added.
    #[test]
    fn rows_and_pairs_of_rows_are_taken_as_often_as_a_uniform_draw_takes_them() {
        let (mut taken, mut rows) = (Vec::new(), Vec::new());
        let mut rng = Rng::new(9);
        let draws = 20_000;
        for (n, k) in [(130, 104), (130, 13), (70, 35), (97, 61)] {
            // Neighbours in one word of bits, across two words, and the ends.
            let pairs: Vec<(usize, usize)> =
                [(0, 1), (1, 2), (62, 63), (63, 64), (0, n - 1)].into_iter().filter(|&(_, b)| b < n).collect();
            let mut once = vec![0u32; n];
            let mut together = vec![0u32; pairs.len()];
            for _ in 0..draws {
                draw_rows(&mut rng, n, k, &mut taken, &mut rows);
                let mut is_in = vec![false; n];
                for &r in &rows {
                    once[r as usize] += 1;
                    is_in[r as usize] = true;
                }
                for (t, &(a, b)) in together.iter_mut().zip(&pairs) {
                    *t += u32::from(is_in[a] && is_in[b]);
                }
            }
            let p = k as f64 / n as f64;
            let (expected, sd) = (draws as f64 * p, (draws as f64 * p * (1.0 - p)).sqrt());
            for (r, &c) in once.iter().enumerate() {
                assert!(
                    (f64::from(c) - expected).abs() < 5.0 * sd,
                    "{k} of {n}: row {r} taken {c} times, not {expected}"
                );
            }
            let q = p * (k - 1) as f64 / (n - 1) as f64;
            let (expected, sd) = (draws as f64 * q, (draws as f64 * q * (1.0 - q)).sqrt());
            for (&c, &(a, b)) in together.iter().zip(&pairs) {
                assert!(
                    (f64::from(c) - expected).abs() < 5.0 * sd,
                    "{k} of {n}: rows {a} and {b} taken together {c} times, not {expected}"
                );
            }
        }
    }
}
