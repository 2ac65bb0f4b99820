//! Comparing two models on the same rows: paired, stratified bootstrap confidence intervals of
//! each metric's difference, and McNemar's exact test on the rows where their decisions differ.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::eval::metrics::Metric;
use crate::rng::Rng;

/// One model's scores on the compared rows.
#[derive(Debug, Clone, Copy)]
pub struct Scored<'a> {
    /// Probabilities.
    pub probabilities: &'a [f64],
    /// The model's own decision threshold.
    pub threshold: f64,
}

/// The difference candidate − production of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// The metric.
    pub metric: Metric,
    /// Candidate's value on all rows.
    pub candidate: f64,
    /// Production's value on all rows.
    pub production: f64,
    /// candidate − production.
    pub delta: f64,
    /// Lower end of the confidence interval of the difference.
    pub ci_low: f64,
    /// Upper end of the confidence interval of the difference.
    pub ci_high: f64,
}

/// McNemar's exact test on the rows where the two models' decisions differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Rows the candidate gets right and production wrong.
    pub candidate_only: u64,
    /// Rows production gets right and the candidate wrong.
    pub production_only: u64,
    /// Two-sided exact p-value (binomial, p = 1/2, on the discordant rows).
    pub p_value: f64,
}

/// Weighted metric of one model: each row counts `w[i]` times (a bootstrap resample).
/// `order` sorts rows by the model's probability, descending.
fn weighted_metric(metric: Metric, y: &[bool], s: Scored, order: &[usize], w: &[u32]) -> f64 {
    let p = s.probabilities;
    match metric {
        Metric::RocAuc | Metric::AveragePrecision => {
            let (pos_total, neg_total) =
                y.iter().zip(w).fold(
                    (0.0, 0.0),
                    |(a, b), (&yi, &wi)| {
                        if yi {
                            (a + f64::from(wi), b)
                        } else {
                            (a, b + f64::from(wi))
                        }
                    },
                );
            if pos_total == 0.0 || neg_total == 0.0 {
                return f64::NAN;
            }
            // Walk from the highest score, one group of tied scores at a time.
            let (mut tp, mut fp) = (0.0, 0.0);
            let mut auc = 0.0;
            let mut ap = 0.0;
            let mut k = 0;
            while k < order.len() {
                let (mut gp, mut gn) = (0.0, 0.0);
                let score = p[order[k]];
                while k < order.len() && p[order[k]] == score {
                    let i = order[k];
                    if y[i] {
                        gp += f64::from(w[i]);
                    } else {
                        gn += f64::from(w[i]);
                    }
                    k += 1;
                }
                // Negatives in the group rank below the positives above them and tie (one half)
                // with the positives in the group.
                auc += gn * (tp + gp / 2.0);
                if gp > 0.0 {
                    ap += gp / pos_total * (tp + gp) / (tp + gp + fp + gn);
                }
                tp += gp;
                fp += gn;
            }
            if metric == Metric::RocAuc {
                auc / (pos_total * neg_total)
            } else {
                ap
            }
        }
        Metric::LogLoss | Metric::Brier => {
            let (mut total, mut n) = (0.0, 0.0);
            for i in 0..y.len() {
                if w[i] == 0 {
                    continue;
                }
                let q = p[i].clamp(f64::EPSILON, 1.0 - f64::EPSILON);
                let loss = if metric == Metric::Brier {
                    (p[i] - f64::from(u8::from(y[i]))).powi(2)
                } else if y[i] {
                    -q.ln()
                } else {
                    -(1.0 - q).ln()
                };
                total += f64::from(w[i]) * loss;
                n += f64::from(w[i]);
            }
            total / n
        }
        Metric::F1 | Metric::Accuracy | Metric::Precision | Metric::Recall => {
            let (mut tp, mut fp, mut tn, mut fn_) = (0.0, 0.0, 0.0, 0.0);
            for i in 0..y.len() {
                let wi = f64::from(w[i]);
                match (y[i], p[i] >= s.threshold) {
                    (true, true) => tp += wi,
                    (false, true) => fp += wi,
                    (false, false) => tn += wi,
                    (true, false) => fn_ += wi,
                }
            }
            let div = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
            match metric {
                Metric::F1 => div(2.0 * tp, 2.0 * tp + fp + fn_),
                Metric::Accuracy => div(tp + tn, tp + fp + tn + fn_),
                Metric::Precision => div(tp, tp + fp),
                _ => div(tp, tp + fn_),
            }
        }
    }
}

fn descending(p: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    order
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    // Linear interpolation between closest ranks (numpy's default).
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Paired, class-stratified bootstrap of candidate − production for each metric: every resample
/// draws positives from the positives and negatives from the negatives, with replacement, and
/// scores both models on the same draw.
pub fn paired_bootstrap(
    labels: &[bool],
    candidate: Scored,
    production: Scored,
    metrics: &[Metric],
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Result<Vec<Difference>> {
    let n = labels.len();
    for (what, p) in [
        ("the candidate's probabilities against the labels", candidate.probabilities),
        ("production's probabilities against the labels", production.probabilities),
    ] {
        if p.len() != n {
            return Err(Error::MismatchedLengths { what, expected: n, found: p.len() });
        }
    }
    let positives: Vec<usize> = (0..n).filter(|&i| labels[i]).collect();
    let negatives: Vec<usize> = (0..n).filter(|&i| !labels[i]).collect();
    if positives.is_empty() || negatives.is_empty() {
        return Err(Error::TooFewClasses { what: "comparing two models" });
    }
    let order_c = descending(candidate.probabilities);
    let order_p = descending(production.probabilities);
    let ones = vec![1u32; n];
    let mut rng = Rng::new(seed);
    let mut deltas: Vec<Vec<f64>> = vec![Vec::with_capacity(resamples); metrics.len()];
    let mut w = vec![0u32; n];
    for _ in 0..resamples {
        w.iter_mut().for_each(|x| *x = 0);
        for class in [&positives, &negatives] {
            for _ in 0..class.len() {
                w[class[rng.below(class.len())]] += 1;
            }
        }
        for (k, m) in metrics.iter().enumerate() {
            let d = weighted_metric(*m, labels, candidate, &order_c, &w)
                - weighted_metric(*m, labels, production, &order_p, &w);
            deltas[k].push(d);
        }
    }
    let alpha = (1.0 - confidence) / 2.0;
    Ok(metrics
        .iter()
        .zip(deltas)
        .map(|(m, mut d)| {
            d.sort_by(f64::total_cmp);
            let c = weighted_metric(*m, labels, candidate, &order_c, &ones);
            let p = weighted_metric(*m, labels, production, &order_p, &ones);
            Difference {
                metric: *m,
                candidate: c,
                production: p,
                delta: c - p,
                ci_low: percentile(&d, alpha),
                ci_high: percentile(&d, 1.0 - alpha),
            }
        })
        .collect())
}

/// The F1 a model's probabilities promise on weighted rows, were they calibrated (the estimate
/// of `eval::calibration::estimate`, each row counted `w[i]` times).
fn weighted_estimated_f1(s: Scored, w: &[u32]) -> f64 {
    let (mut tp, mut fp, mut fn_) = (0.0, 0.0, 0.0);
    for (&p, &wi) in s.probabilities.iter().zip(w) {
        let wi = f64::from(wi);
        if p >= s.threshold {
            tp += wi * p;
            fp += wi * (1.0 - p);
        } else {
            fn_ += wi * p;
        }
    }
    if tp == 0.0 {
        0.0
    } else {
        2.0 * tp / (2.0 * tp + fp + fn_)
    }
}

/// [`paired_bootstrap`] without labels: candidate − production of the F1 each model's
/// probabilities promise, both on the same draw of rows (with replacement, not stratified: there
/// are no classes to keep). Reported as [`Metric::F1`].
pub fn paired_bootstrap_estimated_f1(
    candidate: Scored,
    production: Scored,
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Result<Difference> {
    let n = production.probabilities.len();
    if candidate.probabilities.len() != n {
        let what = "the candidate's probabilities against production's";
        return Err(Error::MismatchedLengths { what, expected: n, found: candidate.probabilities.len() });
    }
    if n == 0 {
        return Err(Error::NoRows { what: "comparing two models" });
    }
    let mut rng = Rng::new(seed);
    let mut w = vec![0u32; n];
    let mut deltas = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        w.iter_mut().for_each(|x| *x = 0);
        for _ in 0..n {
            w[rng.below(n)] += 1;
        }
        deltas.push(weighted_estimated_f1(candidate, &w) - weighted_estimated_f1(production, &w));
    }
    deltas.sort_by(f64::total_cmp);
    let ones = vec![1u32; n];
    let (c, p) = (weighted_estimated_f1(candidate, &ones), weighted_estimated_f1(production, &ones));
    let alpha = (1.0 - confidence) / 2.0;
    Ok(Difference {
        metric: Metric::F1,
        candidate: c,
        production: p,
        delta: c - p,
        ci_low: percentile(&deltas, alpha),
        ci_high: percentile(&deltas, 1.0 - alpha),
    })
}

/// McNemar's exact test of the two models' decisions at their own thresholds.
pub fn mcnemar(labels: &[bool], candidate: Scored, production: Scored) -> McNemar {
    let (mut b, mut c) = (0u64, 0u64);
    for (i, &y) in labels.iter().enumerate() {
        let cand_right = (candidate.probabilities[i] >= candidate.threshold) == y;
        let prod_right = (production.probabilities[i] >= production.threshold) == y;
        match (cand_right, prod_right) {
            (true, false) => b += 1,
            (false, true) => c += 1,
            _ => {}
        }
    }
    McNemar { candidate_only: b, production_only: c, p_value: binomial_two_sided(b.min(c), b + c) }
}

/// Two-sided exact binomial p-value at p = 1/2: min(1, 2·P(X ≤ k)), X ~ Bin(n, 1/2).
pub fn binomial_two_sided(k: u64, n: u64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    // Sum in log space: terms of C(n, i)/2^n underflow for large n.
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_c = 0.0; // ln C(n, 0)
    let mut total = 0.0;
    for i in 0..=k {
        if i > 0 {
            ln_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        total += (ln_c + ln_half_n).exp();
    }
    (2.0 * total).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_matches_scipy() {
        // scipy.stats.binomtest(k, n, 0.5).pvalue, computed once.
        assert!((binomial_two_sided(2, 10) - 0.109375).abs() < 1e-12);
        assert!((binomial_two_sided(0, 5) - 0.0625).abs() < 1e-12);
        assert_eq!(binomial_two_sided(5, 10), 1.0);
        assert!((binomial_two_sided(30, 100) - 7.85013964559367e-05).abs() < 1e-15);
    }

    #[test]
    fn unweighted_metrics_equal_the_metrics_module() {
        let y = [true, false, true, true, false, false, true, false, false, true, false, false];
        let p = [0.9, 0.8, 0.8, 0.7, 0.55, 0.4, 0.4, 0.3, 0.0, 0.35, 0.1, 1.0];
        let s = Scored { probabilities: &p, threshold: 0.5 };
        let m = crate::eval::metrics::MetricSet::compute(&y, &p, 0.5).unwrap();
        let order = descending(&p);
        let ones = [1u32; 12];
        for name in Metric::REPORTED {
            let w = weighted_metric(name, &y, s, &order, &ones);
            assert!((w - m.get(name)).abs() < 1e-12, "{name}: {w} vs {:?}", m.get(name));
        }
    }

    #[test]
    fn weights_count_rows_repeatedly() {
        let y = [true, false, true, false];
        let p = [0.9, 0.6, 0.4, 0.1];
        let s = Scored { probabilities: &p, threshold: 0.5 };
        let order = descending(&p);
        let w = [2u32, 1, 0, 3];
        let yy = [true, true, false, false, false, false];
        let pp = [0.9, 0.9, 0.6, 0.1, 0.1, 0.1];
        let m = crate::eval::metrics::MetricSet::compute(&yy, &pp, 0.5).unwrap();
        for name in Metric::REPORTED {
            let v = weighted_metric(name, &y, s, &order, &w);
            assert!((v - m.get(name)).abs() < 1e-12, "{name}");
        }
    }

    #[test]
    fn the_unweighted_estimated_f1_is_the_calibration_estimate_and_its_interval_follows_the_gap() {
        let mut rng = Rng::new(8);
        let sure: Vec<f64> = (0..800).map(|i| if i % 3 == 0 { 0.9 + 0.09 * rng.uniform() } else { 0.05 }).collect();
        let unsure: Vec<f64> = sure.iter().map(|p| 0.35 + 0.3 * p).collect();
        let at = |p: &[f64]| crate::eval::calibration::estimate(p, 0.5).unwrap().f1;
        let s = |p: &'static [f64]| Scored { probabilities: p, threshold: 0.5 };
        let (sure, unsure): (&'static [f64], &'static [f64]) = (sure.leak(), unsure.leak());
        let d = paired_bootstrap_estimated_f1(s(sure), s(unsure), 300, 0.95, 1).unwrap();
        assert!((d.candidate - at(sure)).abs() < 1e-12 && (d.production - at(unsure)).abs() < 1e-12, "{d:?}");
        assert!(d.delta > 0.1 && d.ci_low > 0.0, "{d:?}");
        let same = paired_bootstrap_estimated_f1(s(sure), s(sure), 300, 0.95, 1).unwrap();
        assert!(same.delta == 0.0 && same.ci_low == 0.0 && same.ci_high == 0.0, "{same:?}");
        assert!(matches!(
            paired_bootstrap_estimated_f1(s(sure), s(&[]), 10, 0.95, 1),
            Err(Error::MismatchedLengths { .. })
        ));
    }

    #[test]
    fn identical_models_have_a_zero_interval_and_a_worse_one_a_negative_one() {
        let mut rng = Rng::new(3);
        let y: Vec<bool> = (0..600).map(|i| i % 4 == 0).collect();
        let good: Vec<f64> = y.iter().map(|&t| if t { 0.6 } else { 0.3 } + 0.35 * rng.uniform()).collect();
        let bad: Vec<f64> = y.iter().map(|&t| if t { 0.45 } else { 0.35 } + 0.35 * rng.uniform()).collect();
        let metrics = vec![Metric::RocAuc, Metric::F1];
        let same = paired_bootstrap(
            &y,
            Scored { probabilities: &good, threshold: 0.5 },
            Scored { probabilities: &good, threshold: 0.5 },
            &metrics,
            500,
            0.95,
            1,
        )
        .unwrap();
        assert!(same.iter().all(|d| d.delta == 0.0 && d.ci_low == 0.0 && d.ci_high == 0.0));
        let worse = paired_bootstrap(
            &y,
            Scored { probabilities: &bad, threshold: 0.5 },
            Scored { probabilities: &good, threshold: 0.5 },
            &metrics,
            500,
            0.95,
            1,
        )
        .unwrap();
        assert!(worse[0].delta < -0.1 && worse[0].ci_high < 0.0, "{:?}", worse[0]);
    }
}
