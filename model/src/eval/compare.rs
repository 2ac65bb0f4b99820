//! Comparing two models on the same rows: paired, stratified bootstrap confidence intervals of
//! each metric's difference, and McNemar's exact test on the rows where their decisions differ;
//! and comparing them from counts alone, as live traffic gives them: paired from the four cells
//! of a 2×2 table (both right, only one right, both wrong), unpaired from two binomial samples.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ParamError, Result};
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

/// How often two models were right on the same records: the 2×2 table of a paired comparison.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairCounts {
    /// Records both got right.
    pub both_right: u64,
    /// Records only the baseline got right.
    pub baseline_only: u64,
    /// Records only the candidate got right.
    pub candidate_only: u64,
    /// Records both got wrong.
    pub both_wrong: u64,
}

impl PairCounts {
    /// Every record of the table.
    pub fn total(&self) -> u64 {
        self.both_right + self.baseline_only + self.candidate_only + self.both_wrong
    }

    /// The candidate's right answers.
    pub fn candidate_right(&self) -> u64 {
        self.both_right + self.candidate_only
    }

    /// The baseline's right answers.
    pub fn baseline_right(&self) -> u64 {
        self.both_right + self.baseline_only
    }
}

/// The difference candidate − baseline of a rate (accuracy: right answers over answers judged),
/// with its bootstrap confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateDifference {
    /// The candidate's rate.
    pub candidate: f64,
    /// The baseline's rate.
    pub baseline: f64,
    /// candidate − baseline.
    pub delta: f64,
    /// Lower end of the confidence interval of the difference.
    pub ci_low: f64,
    /// Upper end of the confidence interval of the difference.
    pub ci_high: f64,
    /// The interval's confidence.
    pub confidence: f64,
}

impl RateDifference {
    /// The candidate is worse beyond the noise: the whole interval lies below zero.
    pub fn significant_drop(&self) -> bool {
        self.ci_high < 0.0
    }
}

/// A paired comparison from counts: the accuracy difference and McNemar's exact test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    /// The table compared.
    pub counts: PairCounts,
    /// candidate − baseline of the accuracy, with its bootstrap interval.
    pub accuracy: RateDifference,
    /// McNemar's exact test on the discordant records (`production_only`: the baseline's).
    pub mcnemar: McNemar,
}

fn check_confidence(confidence: f64) -> Result<()> {
    if confidence > 0.0 && confidence < 1.0 {
        Ok(())
    } else {
        Err(Error::Param(ParamError::out_of_range("confidence", confidence, "in (0, 1)")))
    }
}

fn check_resamples(resamples: usize) -> Result<()> {
    if resamples >= 2 {
        Ok(())
    } else {
        Err(Error::Param(ParamError::out_of_range("resamples", resamples, "at least 2")))
    }
}

/// A draw of Bin(n, p): the successes among `n` trials, found by jumping from one success to the
/// next over geometric gaps, so that a draw is exact for any `n` (no normal approximation, no
/// probability that underflows) and costs about n·min(p, 1 − p) steps.
fn binomial(rng: &mut Rng, n: u64, p: f64) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    if p > 0.5 {
        return n - binomial(rng, n, 1.0 - p);
    }
    // P(gap ≥ k) = (1 − p)^k: the failures before the next success.
    let ln_q = (-p).ln_1p();
    let (mut successes, mut used) = (0, 0u64);
    loop {
        let u = 1.0 - rng.uniform(); // in (0, 1]
        let gap = (u.ln() / ln_q).floor();
        if gap >= (n - used) as f64 {
            return successes;
        }
        used += gap as u64 + 1;
        successes += 1;
    }
}

/// The percentile interval of sorted resampled differences.
fn interval(mut deltas: Vec<f64>, confidence: f64) -> (f64, f64) {
    deltas.sort_by(f64::total_cmp);
    let alpha = (1.0 - confidence) / 2.0;
    (percentile(&deltas, alpha), percentile(&deltas, 1.0 - alpha))
}

/// Paired comparison of two models on the same records, from the 2×2 table of their pair counts:
/// McNemar's exact test on the discordant records, and the bootstrap interval of the accuracy
/// difference, each resample a multinomial draw of as many records over the four cells at their
/// observed shares (seeded: the same table and seed give the same interval).
pub fn paired_from_counts(
    counts: PairCounts,
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Result<PairedComparison> {
    check_confidence(confidence)?;
    check_resamples(resamples)?;
    let n = counts.total();
    if n == 0 {
        return Err(Error::NoRows { what: "in the pair counts of a paired comparison" });
    }
    let total = n as f64;
    let (p_baseline, p_candidate) = (counts.baseline_only as f64 / total, counts.candidate_only as f64 / total);
    let mut rng = Rng::new(seed);
    let deltas: Vec<f64> = (0..resamples)
        .map(|_| {
            // A multinomial draw, cell by cell: the baseline's wins, then the candidate's among
            // the rest; the two concordant cells do not move the difference.
            let b = binomial(&mut rng, n, p_baseline);
            let rest = 1.0 - p_baseline;
            let c = if rest > 0.0 { binomial(&mut rng, n - b, (p_candidate / rest).min(1.0)) } else { 0 };
            (c as f64 - b as f64) / total
        })
        .collect();
    let (ci_low, ci_high) = interval(deltas, confidence);
    let (candidate, baseline) = (counts.candidate_right() as f64 / total, counts.baseline_right() as f64 / total);
    let (b, c) = (counts.candidate_only, counts.baseline_only);
    Ok(PairedComparison {
        counts,
        accuracy: RateDifference { candidate, baseline, delta: candidate - baseline, ci_low, ci_high, confidence },
        mcnemar: McNemar { candidate_only: b, production_only: c, p_value: binomial_two_sided(b.min(c), b + c) },
    })
}

/// Unpaired comparison of two rates measured on different records (the candidate right on
/// `candidate.0` of `candidate.1`, the baseline on `baseline.0` of `baseline.1`): the bootstrap
/// interval of the difference, each resample a binomial draw of each sample at its observed rate
/// (seeded: the same counts and seed give the same interval).
pub fn unpaired_rates(
    candidate: (u64, u64),
    baseline: (u64, u64),
    resamples: usize,
    confidence: f64,
    seed: u64,
) -> Result<RateDifference> {
    check_confidence(confidence)?;
    check_resamples(resamples)?;
    for (what, (k, n)) in [("the candidate's", candidate), ("the baseline's", baseline)] {
        if n == 0 {
            return Err(Error::NoRows { what: "in one of the two samples of an unpaired comparison" });
        }
        if k > n {
            return Err(Error::Param(ParamError::invalid(
                "rates",
                format!("{what} right answers ({k}) exceed its answers judged ({n})"),
            )));
        }
    }
    let rate = |(k, n): (u64, u64)| k as f64 / n as f64;
    let (pc, pb) = (rate(candidate), rate(baseline));
    let mut rng = Rng::new(seed);
    let deltas: Vec<f64> = (0..resamples)
        .map(|_| {
            let c = binomial(&mut rng, candidate.1, pc) as f64 / candidate.1 as f64;
            let b = binomial(&mut rng, baseline.1, pb) as f64 / baseline.1 as f64;
            c - b
        })
        .collect();
    let (ci_low, ci_high) = interval(deltas, confidence);
    Ok(RateDifference { candidate: pc, baseline: pb, delta: pc - pb, ci_low, ci_high, confidence })
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

    #[test]
    fn binomial_draws_have_the_binomial_mean_and_variance() {
        let mut rng = Rng::new(11);
        for (n, p) in [(10u64, 0.3), (1_000, 0.02), (100_000, 0.85), (50, 0.5), (7, 1.0), (7, 0.0)] {
            let draws: Vec<f64> = (0..4000).map(|_| binomial(&mut rng, n, p) as f64).collect();
            assert!(draws.iter().all(|&d| d >= 0.0 && d <= n as f64));
            let mean = draws.iter().sum::<f64>() / draws.len() as f64;
            let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (draws.len() - 1) as f64;
            let (m, v) = (n as f64 * p, n as f64 * p * (1.0 - p));
            assert!((mean - m).abs() <= 4.0 * (v / 4000.0).sqrt() + 1e-12, "Bin({n}, {p}): mean {mean}, not {m}");
            assert!((var - v).abs() <= 0.1 * v + 1e-12, "Bin({n}, {p}): variance {var}, not {v}");
        }
    }

    fn table(both_right: u64, baseline_only: u64, candidate_only: u64, both_wrong: u64) -> PairCounts {
        PairCounts { both_right, baseline_only, candidate_only, both_wrong }
    }

    #[test]
    fn a_clear_drop_is_significant_equal_rates_are_not_and_small_samples_are_inconclusive() {
        // Paired: the candidate loses 80 records the baseline gets right and wins 20.
        let drop = paired_from_counts(table(700, 80, 20, 200), 2000, 0.95, 1).unwrap();
        assert!((drop.accuracy.delta + 0.06).abs() < 1e-12, "{drop:?}");
        assert!((drop.accuracy.candidate - 0.72).abs() < 1e-12 && (drop.accuracy.baseline - 0.78).abs() < 1e-12);
        assert!(drop.accuracy.significant_drop() && drop.mcnemar.p_value < 1e-8, "{drop:?}");
        assert_eq!((drop.mcnemar.candidate_only, drop.mcnemar.production_only), (20, 80));
        // 2·Σ_{i≤20} C(100, i)/2^100, computed once exactly with Python's fractions.
        assert!((drop.mcnemar.p_value - 1.1159089057251951e-09).abs() < 1e-15, "{}", drop.mcnemar.p_value);
        let same = paired_from_counts(table(700, 50, 50, 200), 2000, 0.95, 1).unwrap();
        assert!(same.accuracy.delta == 0.0 && same.accuracy.ci_low < 0.0 && same.accuracy.ci_high > 0.0);
        assert!(!same.accuracy.significant_drop() && same.mcnemar.p_value == 1.0);
        // Identical decisions: nothing varies.
        let twins = paired_from_counts(table(90, 0, 0, 10), 500, 0.95, 1).unwrap();
        assert_eq!((twins.accuracy.ci_low, twins.accuracy.ci_high), (0.0, 0.0));
        // Twenty records, the candidate behind by two: no conclusion.
        let small = paired_from_counts(table(14, 3, 1, 2), 2000, 0.95, 1).unwrap();
        assert!(small.accuracy.delta < 0.0 && !small.accuracy.significant_drop(), "{small:?}");

        // Unpaired: 70 % against 85 % on a thousand records each.
        let drop = unpaired_rates((700, 1000), (850, 1000), 2000, 0.95, 1).unwrap();
        assert!((drop.delta + 0.15).abs() < 1e-12 && drop.significant_drop(), "{drop:?}");
        let same = unpaired_rates((850, 1000), (425, 500), 2000, 0.95, 1).unwrap();
        assert!(same.delta.abs() < 1e-12 && same.ci_low < 0.0 && same.ci_high > 0.0, "{same:?}");
        let small = unpaired_rates((7, 10), (9, 10), 2000, 0.95, 1).unwrap();
        assert!(small.delta < -0.19 && !small.significant_drop(), "{small:?}");
        // A better candidate is no drop.
        assert!(!unpaired_rates((950, 1000), (850, 1000), 2000, 0.95, 1).unwrap().significant_drop());
    }

    #[test]
    fn intervals_match_the_normal_approximation_on_large_samples() {
        // Independent reference: the normal interval of a difference of proportions,
        // delta ± z·√(p1(1−p1)/n1 + p2(1−p2)/n2), and of a paired difference,
        // delta ± z·√((p01 + p10 − (p01 − p10)²)/n); z = 1.959964 at 95 %.
        let z = 1.959964;
        let d = unpaired_rates((8_000, 10_000), (4_250, 5_000), 4000, 0.95, 2).unwrap();
        let half = z * (0.8 * 0.2 / 10_000.0 + 0.85 * 0.15 / 5_000.0f64).sqrt();
        for (got, want) in [(d.ci_low, -0.05 - half), (d.ci_high, -0.05 + half)] {
            assert!((got - want).abs() < 0.08 * half, "unpaired {d:?}: {got} against {want}");
        }
        let p = paired_from_counts(table(6_000, 1_200, 800, 2_000), 4000, 0.95, 2).unwrap();
        let (p10, p01) = (0.12, 0.08);
        let half = z * ((p01 + p10 - (p01 - p10) * (p01 - p10)) / 10_000.0f64).sqrt();
        for (got, want) in [(p.accuracy.ci_low, -0.04 - half), (p.accuracy.ci_high, -0.04 + half)] {
            assert!((got - want).abs() < 0.08 * half, "paired {p:?}: {got} against {want}");
        }
        // The same counts and seed give the same interval.
        assert_eq!(p, paired_from_counts(table(6_000, 1_200, 800, 2_000), 4000, 0.95, 2).unwrap());
        assert_eq!(d, unpaired_rates((8_000, 10_000), (4_250, 5_000), 4000, 0.95, 2).unwrap());
    }

    #[test]
    fn intervals_cover_the_true_difference_as_often_as_their_confidence_says() {
        // Simulated traffic with known rates (a fixed seed): the share of intervals that hold the
        // true difference is close to the confidence asked, at two confidences. Too narrow or too
        // wide an interval (a wrong variance, a wrong percentile) moves it out of the bounds.
        let mut world = Rng::new(2024);
        let runs = 300;
        let (mut paired, mut unpaired) = ([0u32; 2], [0u32; 2]);
        let shares = [0.70, 0.09, 0.05, 0.16]; // both right, baseline only, candidate only, both wrong
        let true_paired = shares[2] - shares[1];
        let (pc, pb, nc, nb) = (0.80, 0.85, 300u64, 500u64);
        for run in 0..runs {
            let mut cells = [0u64; 4];
            for _ in 0..400 {
                let u = world.uniform();
                let cell = if u < shares[0] {
                    0
                } else if u < shares[0] + shares[1] {
                    1
                } else if u < shares[0] + shares[1] + shares[2] {
                    2
                } else {
                    3
                };
                cells[cell] += 1;
            }
            let counts = table(cells[0], cells[1], cells[2], cells[3]);
            let kc = (0..nc).filter(|_| world.chance(pc)).count() as u64;
            let kb = (0..nb).filter(|_| world.chance(pb)).count() as u64;
            for (i, confidence) in [0.95, 0.80].into_iter().enumerate() {
                let p = paired_from_counts(counts, 1000, confidence, run).unwrap().accuracy;
                paired[i] += u32::from(p.ci_low <= true_paired && true_paired <= p.ci_high);
                let u = unpaired_rates((kc, nc), (kb, nb), 1000, confidence, run).unwrap();
                unpaired[i] += u32::from(u.ci_low <= pc - pb && pc - pb <= u.ci_high);
            }
        }
        let share = |hits: u32| f64::from(hits) / f64::from(runs as u32);
        for (what, hits) in [("paired", paired), ("unpaired", unpaired)] {
            let (at95, at80) = (share(hits[0]), share(hits[1]));
            assert!((0.91..=0.985).contains(&at95), "{what}: 95 % intervals cover {at95}");
            assert!((0.73..=0.87).contains(&at80), "{what}: 80 % intervals cover {at80}");
        }
    }

    #[test]
    fn counts_that_cannot_be_compared_are_refused_by_name() {
        assert!(matches!(paired_from_counts(PairCounts::default(), 100, 0.95, 1), Err(Error::NoRows { .. })));
        assert!(matches!(unpaired_rates((0, 0), (1, 2), 100, 0.95, 1), Err(Error::NoRows { .. })));
        let e = unpaired_rates((3, 2), (1, 2), 100, 0.95, 1).unwrap_err();
        assert!(e.to_string().contains("right answers (3) exceed its answers judged (2)"), "{e}");
        for confidence in [0.0, 1.0, f64::NAN] {
            let e = paired_from_counts(table(1, 1, 1, 1), 100, confidence, 1).unwrap_err();
            assert!(matches!(e, Error::Param(ParamError::OutOfRange { .. })), "{e}");
        }
        assert!(matches!(unpaired_rates((1, 2), (1, 2), 1, 0.95, 1), Err(Error::Param(_))));
    }
}
