//! Stratified, seeded splits of row indices: hold-out fractions and k folds.

use crate::rng::Rng;

/// Splits rows into (kept, held out), holding out `fraction` of each class, rounded, at least
/// one row of each class that has two or more rows. Both lists come back sorted.
pub fn stratified_holdout(labels: &[bool], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = Rng::new(seed);
    let mut kept = Vec::new();
    let mut held = Vec::new();
    for class in [false, true] {
        let mut rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rng.shuffle(&mut rows);
        let mut n_held = (rows.len() as f64 * fraction).round() as usize;
        if rows.len() >= 2 {
            n_held = n_held.clamp(1, rows.len() - 1);
        } else {
            n_held = 0;
        }
        held.extend_from_slice(&rows[..n_held]);
        kept.extend_from_slice(&rows[n_held..]);
    }
    kept.sort_unstable();
    held.sort_unstable();
    (kept, held)
}

/// Assigns every row to one of `k` folds so that each fold has the same share of each class
/// (to within one row). Returns the fold of each row.
pub fn stratified_folds(labels: &[bool], k: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let mut fold = vec![0; labels.len()];
    let mut offset = 0;
    for class in [false, true] {
        let mut rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rng.shuffle(&mut rows);
        for (j, &row) in rows.iter().enumerate() {
            fold[row] = (j + offset) % k;
        }
        // Continue the round-robin where the first class stopped, so fold sizes stay balanced.
        offset = (offset + rows.len()) % k;
    }
    fold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdout_is_stratified_disjoint_and_complete() {
        let labels: Vec<bool> = (0..1000).map(|i| i % 10 == 0).collect();
        let (kept, held) = stratified_holdout(&labels, 0.2, 3);
        assert_eq!(kept.len() + held.len(), 1000);
        assert_eq!(held.iter().filter(|&&i| labels[i]).count(), 20);
        assert_eq!(held.len(), 200);
        let mut all: Vec<usize> = kept.iter().chain(&held).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert_eq!(stratified_holdout(&labels, 0.2, 3), (kept, held));
    }

    #[test]
    fn folds_balance_classes() {
        let labels: Vec<bool> = (0..103).map(|i| i % 4 == 0).collect();
        let folds = stratified_folds(&labels, 5, 9);
        for f in 0..5 {
            let pos = (0..103).filter(|&i| folds[i] == f && labels[i]).count();
            let all = (0..103).filter(|&i| folds[i] == f).count();
            assert!((5..=6).contains(&pos), "fold {f} has {pos} positives");
            assert!((20..=21).contains(&all), "fold {f} has {all} rows");
        }
    }
}
