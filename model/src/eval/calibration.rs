//! Probabilities without labels: how calibrated a model was where labels were known (the
//! reliability table), the distribution of its scores, and the performance its probabilities
//! promise where labels are not known yet (confidence-based performance estimation, as NannyML's
//! CBPE: under calibration, a row scored `p` is positive with probability `p`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::eval::drift::psi;

/// Equal-width bins of probability in the reliability table and the score distribution.
pub const BINS: usize = 10;

fn bin_of(p: f64) -> usize {
    ((p * BINS as f64) as usize).min(BINS - 1)
}

/// One bin of the reliability table: the rows scored in `[low, high)` (the last bin closed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    /// Lowest probability of the bin.
    pub low: f64,
    /// Highest probability of the bin.
    pub high: f64,
    /// Rows scored in the bin.
    pub rows: u64,
    /// Their mean probability.
    pub mean_probability: f64,
    /// The share of them that were positive.
    pub positive_rate: f64,
}

/// The reliability table of labelled rows: per bin of probability that holds rows, the mean
/// probability and the observed positive rate. A calibrated model has them equal.
pub fn calibration(labels: &[bool], probabilities: &[f64]) -> Result<Vec<CalibrationBin>> {
    if labels.len() != probabilities.len() {
        return Err(Error::MismatchedLengths {
            what: "probabilities against labels",
            expected: labels.len(),
            found: probabilities.len(),
        });
    }
    let mut sums = [(0u64, 0.0f64, 0u64); BINS];
    for (&y, &p) in labels.iter().zip(probabilities) {
        let b = &mut sums[bin_of(p)];
        b.0 += 1;
        b.1 += p;
        b.2 += u64::from(y);
    }
    Ok(sums
        .iter()
        .enumerate()
        .filter(|(_, &(rows, _, _))| rows > 0)
        .map(|(k, &(rows, sum, positives))| CalibrationBin {
            low: k as f64 / BINS as f64,
            high: (k + 1) as f64 / BINS as f64,
            rows,
            mean_probability: sum / rows as f64,
            positive_rate: positives as f64 / rows as f64,
        })
        .collect())
}

/// The expected calibration error of a reliability table: the rows' mean gap between predicted
/// and observed positive rates.
pub fn expected_calibration_error(table: &[CalibrationBin]) -> f64 {
    let n: u64 = table.iter().map(|b| b.rows).sum();
    if n == 0 {
        return f64::NAN;
    }
    table.iter().map(|b| b.rows as f64 / n as f64 * (b.mean_probability - b.positive_rate).abs()).sum()
}

/// How a model's scores are spread: the share of rows in each bin of probability, and the
/// share predicted positive at its threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreDistribution {
    /// Share of rows in each of the [`BINS`] bins.
    pub shares: Vec<f64>,
    /// Share of rows at or above the threshold.
    pub predicted_positive_rate: f64,
    /// Rows.
    pub rows: u64,
}

impl ScoreDistribution {
    /// The distribution of `probabilities` at `threshold`.
    pub fn of(probabilities: &[f64], threshold: f64) -> ScoreDistribution {
        let mut counts = [0u64; BINS];
        let mut positive = 0u64;
        for &p in probabilities {
            counts[bin_of(p)] += 1;
            positive += u64::from(p >= threshold);
        }
        let n = probabilities.len().max(1) as f64;
        ScoreDistribution {
            shares: counts.iter().map(|&c| c as f64 / n).collect(),
            predicted_positive_rate: positive as f64 / n,
            rows: probabilities.len() as u64,
        }
    }

    /// The PSI of `self` (new scores) against `reference`.
    pub fn psi_against(&self, reference: &ScoreDistribution) -> f64 {
        psi(&reference.shares, &self.shares)
    }
}

/// The performance the probabilities promise, were they calibrated: the expected confusion
/// matrix at the threshold, and the metrics it gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Expected accuracy.
    pub accuracy: f64,
    /// Expected precision.
    pub precision: f64,
    /// Expected recall.
    pub recall: f64,
    /// Expected F1.
    pub f1: f64,
    /// Expected positive rate (the mean probability).
    pub positive_rate: f64,
}

/// Confidence-based performance estimation: a row scored `p` counts `p` positive and `1 − p`
/// negative, whichever side of the threshold it falls on.
pub fn estimate(probabilities: &[f64], threshold: f64) -> Result<Estimate> {
    if probabilities.is_empty() {
        return Err(Error::NoRows { what: "to estimate performance on" });
    }
    let (mut tp, mut fp, mut fn_, mut tn) = (0.0, 0.0, 0.0, 0.0);
    for &p in probabilities {
        if p >= threshold {
            tp += p;
            fp += 1.0 - p;
        } else {
            fn_ += p;
            tn += 1.0 - p;
        }
    }
    let div = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let n = probabilities.len() as f64;
    Ok(Estimate {
        accuracy: (tp + tn) / n,
        precision: div(tp, tp + fp),
        recall: div(tp, tp + fn_),
        f1: div(2.0 * tp, 2.0 * tp + fp + fn_),
        positive_rate: (tp + fn_) / n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_estimate_is_the_expected_confusion_matrix() {
        // Scores 0.9, 0.6, 0.3, 0.1 at 0.5: TP 1.5, FP 0.5, FN 0.4, TN 1.6 (computed by hand).
        let e = estimate(&[0.9, 0.6, 0.3, 0.1], 0.5).unwrap();
        assert!((e.accuracy - 3.1 / 4.0).abs() < 1e-12);
        assert!((e.precision - 1.5 / 2.0).abs() < 1e-12);
        assert!((e.recall - 1.5 / 1.9).abs() < 1e-12);
        assert!((e.f1 - 3.0 / 3.9).abs() < 1e-12);
        assert!((e.positive_rate - 0.475).abs() < 1e-12);
        assert!(matches!(estimate(&[], 0.5), Err(Error::NoRows { .. })));
    }

    #[test]
    fn calibrated_scores_estimate_what_labels_measure() {
        // Labels drawn with the scores' own probabilities: the estimate meets the truth.
        let mut rng = crate::rng::Rng::new(5);
        let p: Vec<f64> = (0..200_000).map(|_| rng.uniform()).collect();
        let y: Vec<bool> = p.iter().map(|&p| rng.uniform() < p).collect();
        let m = crate::eval::metrics::MetricSet::compute(&y, &p, 0.5).unwrap();
        let e = estimate(&p, 0.5).unwrap();
        assert!((e.accuracy - m.accuracy).abs() < 0.005 && (e.f1 - m.f1).abs() < 0.005, "{e:?} vs {m:?}");
        let table = calibration(&y, &p).unwrap();
        assert!(expected_calibration_error(&table) < 0.01);
        assert_eq!(table.iter().map(|b| b.rows).sum::<u64>(), 200_000);
    }

    #[test]
    fn the_score_distribution_moves_when_the_scores_do() {
        let a: Vec<f64> = (0..1000).map(|i| i as f64 / 1000.0).collect();
        let b: Vec<f64> = a.iter().map(|p| p * p).collect();
        let (da, db) = (ScoreDistribution::of(&a, 0.5), ScoreDistribution::of(&b, 0.5));
        assert_eq!(da.psi_against(&da), 0.0);
        assert!(db.psi_against(&da) > 0.25);
        assert!((da.predicted_positive_rate - 0.5).abs() < 1e-12);
    }
}
