//! Binary classification metrics, computed here rather than by linfa (whose binary precision and
//! recall are swapped and whose AUC breaks on a score of exactly 0).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Counts of a binary confusion matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Confusion {
    /// Positives predicted positive.
    pub tp: u64,
    /// Negatives predicted positive.
    pub fp: u64,
    /// Negatives predicted negative.
    pub tn: u64,
    /// Positives predicted negative.
    pub r#fn: u64,
}

impl Confusion {
    /// Counts predictions `score >= threshold` against labels.
    pub fn at(labels: &[bool], scores: &[f64], threshold: f64) -> Confusion {
        let mut c = Confusion::default();
        for (&y, &s) in labels.iter().zip(scores) {
            match (y, s >= threshold) {
                (true, true) => c.tp += 1,
                (false, true) => c.fp += 1,
                (false, false) => c.tn += 1,
                (true, false) => c.r#fn += 1,
            }
        }
        c
    }

    /// Rows counted.
    pub fn total(&self) -> u64 {
        self.tp + self.fp + self.tn + self.r#fn
    }

    /// (tp + tn) / total.
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.total())
    }

    /// tp / (tp + fp); 0 when nothing is predicted positive (scikit-learn's `zero_division=0`).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// tp / (tp + fn); 0 when there is no positive.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.r#fn)
    }

    /// tn / (tn + fp).
    pub fn specificity(&self) -> f64 {
        ratio(self.tn, self.tn + self.fp)
    }

    /// Harmonic mean of precision and recall: 2tp / (2tp + fp + fn).
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.r#fn)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// A metric of [`MetricSet`], by the name configurations and reports use.
///
/// The variants are declared in the alphabetical order of their names, so that maps keyed by
/// metric (`min = { roc_auc = 0.8, f1 = 0.5 }`) keep the order they had as maps of names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Accuracy at the threshold.
    Accuracy,
    /// Average precision.
    AveragePrecision,
    /// Mean squared error of the probabilities.
    Brier,
    /// F1 at the threshold.
    F1,
    /// Mean log loss.
    LogLoss,
    /// Precision at the threshold.
    Precision,
    /// Recall at the threshold.
    Recall,
    /// Area under the ROC curve.
    RocAuc,
}

impl Metric {
    /// Every metric, in the order reports show them: ranking metrics, then thresholded ones,
    /// then the probability losses.
    pub const REPORTED: [Metric; 8] = [
        Metric::RocAuc,
        Metric::AveragePrecision,
        Metric::F1,
        Metric::Accuracy,
        Metric::Precision,
        Metric::Recall,
        Metric::LogLoss,
        Metric::Brier,
    ];

    /// The name used in configurations, JSON and reports.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::AveragePrecision => "average_precision",
            Metric::Brier => "brier",
            Metric::F1 => "f1",
            Metric::LogLoss => "log_loss",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::RocAuc => "roc_auc",
        }
    }

    /// True for the losses, where lower is better.
    pub fn lower_is_better(self) -> bool {
        matches!(self, Metric::LogLoss | Metric::Brier)
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Every metric of a scored set at one decision threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSet {
    /// Rows scored.
    pub rows: u64,
    /// Positive rows.
    pub positives: u64,
    /// The decision threshold used for the thresholded metrics.
    pub threshold: f64,
    /// Accuracy at the threshold.
    pub accuracy: f64,
    /// Precision at the threshold.
    pub precision: f64,
    /// Recall at the threshold.
    pub recall: f64,
    /// F1 at the threshold.
    pub f1: f64,
    /// Area under the ROC curve (ties count one half).
    pub roc_auc: f64,
    /// Average precision (area under the precision–recall step curve, as scikit-learn).
    pub average_precision: f64,
    /// Mean log loss of the probabilities.
    pub log_loss: f64,
    /// Mean squared error of the probabilities.
    pub brier: f64,
    /// The confusion matrix at the threshold.
    pub confusion: Confusion,
}

impl MetricSet {
    /// Computes every metric; both classes must be present.
    pub fn compute(labels: &[bool], probabilities: &[f64], threshold: f64) -> Result<MetricSet> {
        check_inputs(labels, probabilities)?;
        let confusion = Confusion::at(labels, probabilities, threshold);
        Ok(MetricSet {
            rows: labels.len() as u64,
            positives: confusion.tp + confusion.r#fn,
            threshold,
            accuracy: confusion.accuracy(),
            precision: confusion.precision(),
            recall: confusion.recall(),
            f1: confusion.f1(),
            roc_auc: roc_auc(labels, probabilities)?,
            average_precision: average_precision(labels, probabilities)?,
            log_loss: log_loss(labels, probabilities)?,
            brier: brier(labels, probabilities)?,
            confusion,
        })
    }

    /// The value of a metric.
    pub fn get(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Accuracy => self.accuracy,
            Metric::Precision => self.precision,
            Metric::Recall => self.recall,
            Metric::F1 => self.f1,
            Metric::RocAuc => self.roc_auc,
            Metric::AveragePrecision => self.average_precision,
            Metric::LogLoss => self.log_loss,
            Metric::Brier => self.brier,
        }
    }
}

fn check_inputs(labels: &[bool], scores: &[f64]) -> Result<()> {
    if labels.len() != scores.len() {
        return Err(Error::MismatchedLengths {
            what: "scores against labels",
            expected: labels.len(),
            found: scores.len(),
        });
    }
    if labels.is_empty() {
        return Err(Error::NoRows { what: "to score" });
    }
    if let Some(s) = scores.iter().find(|s| !s.is_finite()) {
        return Err(Error::NonFiniteScore { value: *s });
    }
    Ok(())
}

fn check_both_classes(labels: &[bool], metric: &'static str) -> Result<(u64, u64)> {
    let p = labels.iter().filter(|&&y| y).count() as u64;
    let n = labels.len() as u64 - p;
    if p == 0 || n == 0 {
        return Err(Error::TooFewClasses { what: metric });
    }
    Ok((p, n))
}

/// Indices of scores sorted from highest to lowest (stable).
fn descending(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order
}

/// Area under the ROC curve by the rank-sum (Mann–Whitney) formula, ties averaged.
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> Result<f64> {
    check_inputs(labels, scores)?;
    let (p, n) = check_both_classes(labels, "ROC AUC")?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their mean.
        let mean_rank = (i + j + 2) as f64 / 2.0;
        rank_sum += mean_rank * order[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j + 1;
    }
    Ok((rank_sum - (p * (p + 1)) as f64 / 2.0) / (p as f64 * n as f64))
}

/// A point of a curve at one distinct threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Scores >= this are predicted positive (+∞, written `null` in JSON, for the ROC curve's
    /// first point).
    #[serde(with = "infinite_as_null")]
    pub threshold: f64,
    /// False-positive rate (ROC) or recall (precision–recall).
    pub x: f64,
    /// True-positive rate (ROC) or precision (precision–recall).
    pub y: f64,
}

/// JSON has no infinity: +∞ is written as `null` and read back as +∞.
mod infinite_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.serialize_f64(*x)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

/// Cumulative (fp, tp) at each distinct score, from the highest.
fn cumulative(labels: &[bool], scores: &[f64]) -> Vec<(f64, u64, u64)> {
    let order = descending(scores);
    let mut out = Vec::new();
    let (mut tp, mut fp) = (0u64, 0u64);
    for (k, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_tie = k + 1 == order.len() || scores[order[k + 1]] != scores[i];
        if last_of_tie {
            out.push((scores[i], fp, tp));
        }
    }
    out
}

/// ROC curve: (fpr, tpr) at every distinct threshold, from (0, 0) at +inf (as scikit-learn's
/// `roc_curve(drop_intermediate=False)`).
pub fn roc_curve(labels: &[bool], scores: &[f64]) -> Result<Vec<CurvePoint>> {
    check_inputs(labels, scores)?;
    let (p, n) = check_both_classes(labels, "the ROC curve")?;
    let mut points = vec![CurvePoint { threshold: f64::INFINITY, x: 0.0, y: 0.0 }];
    points.extend(cumulative(labels, scores).into_iter().map(|(t, fp, tp)| CurvePoint {
        threshold: t,
        x: fp as f64 / n as f64,
        y: tp as f64 / p as f64,
    }));
    Ok(points)
}

/// Precision–recall curve: (recall, precision) at every distinct threshold, from the highest.
pub fn precision_recall_curve(labels: &[bool], scores: &[f64]) -> Result<Vec<CurvePoint>> {
    check_inputs(labels, scores)?;
    let (p, _) = check_both_classes(labels, "the precision-recall curve")?;
    Ok(cumulative(labels, scores)
        .into_iter()
        .map(|(t, fp, tp)| CurvePoint { threshold: t, x: tp as f64 / p as f64, y: tp as f64 / (tp + fp) as f64 })
        .collect())
}

/// Average precision: Σ (Rₙ − Rₙ₋₁) Pₙ over distinct thresholds (scikit-learn's definition, no
/// interpolation).
pub fn average_precision(labels: &[bool], scores: &[f64]) -> Result<f64> {
    let curve = precision_recall_curve(labels, scores)?;
    let mut ap = 0.0;
    let mut previous_recall = 0.0;
    for point in curve {
        ap += (point.x - previous_recall) * point.y;
        previous_recall = point.x;
    }
    Ok(ap)
}

/// Mean log loss, probabilities clipped to [ε, 1 − ε] with ε the f64 machine epsilon (as
/// scikit-learn ≥ 1.5 does).
pub fn log_loss(labels: &[bool], probabilities: &[f64]) -> Result<f64> {
    check_inputs(labels, probabilities)?;
    let eps = f64::EPSILON;
    let total: f64 = labels
        .iter()
        .zip(probabilities)
        .map(|(&y, &p)| {
            let p = p.clamp(eps, 1.0 - eps);
            if y {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    Ok(total / labels.len() as f64)
}

/// Brier score: mean of (p − y)².
pub fn brier(labels: &[bool], probabilities: &[f64]) -> Result<f64> {
    check_inputs(labels, probabilities)?;
    let total: f64 = labels.iter().zip(probabilities).map(|(&y, &p)| (p - f64::from(u8::from(y))).powi(2)).sum();
    Ok(total / labels.len() as f64)
}

/// At most `max_points` points of a curve, evenly spread over its length, first and last kept.
pub fn thin(points: &[CurvePoint], max_points: usize) -> Vec<CurvePoint> {
    if points.len() <= max_points || max_points < 2 {
        return points.to_vec();
    }
    let last = points.len() - 1;
    let mut out: Vec<CurvePoint> = (0..max_points).map(|k| points[k * last / (max_points - 1)]).collect();
    out.dedup_by(|a, b| a.threshold == b.threshold);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values computed once with scikit-learn 1.9.1 on exactly these inputs:
    //   y = [1,0,1,1,0,0,1,0,0,1,0,0]
    //   p = [0.9,0.8,0.8,0.7,0.55,0.4,0.4,0.3,0.0,0.35,0.1,1.0]
    //   accuracy_score, precision_score, recall_score, f1_score at p >= 0.5, roc_auc_score,
    //   average_precision_score, log_loss, brier_score_loss, confusion_matrix,
    //   roc_curve(drop_intermediate=False), precision_recall_curve.
    // The inputs hold ties across classes, a score of exactly 0 and one of exactly 1.
    const Y: [bool; 12] = [true, false, true, true, false, false, true, false, false, true, false, false];
    const P: [f64; 12] = [0.9, 0.8, 0.8, 0.7, 0.55, 0.4, 0.4, 0.3, 0.0, 0.35, 0.1, 1.0];

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn thresholded_metrics_match_scikit_learn() {
        let m = MetricSet::compute(&Y, &P, 0.5).unwrap();
        close(m.accuracy, 0.5833333333333334);
        close(m.precision, 0.5);
        close(m.recall, 0.6);
        close(m.f1, 0.5454545454545454);
        // scikit-learn's confusion_matrix(...).ravel() is tn, fp, fn, tp = 4, 3, 2, 3.
        assert_eq!(m.confusion, Confusion { tp: 3, fp: 3, tn: 4, r#fn: 2 });
    }

    #[test]
    fn ranking_and_probability_metrics_match_scikit_learn() {
        close(roc_auc(&Y, &P).unwrap(), 0.6571428571428571);
        close(average_precision(&Y, &P).unwrap(), 0.5311111111111111);
        close(log_loss(&Y, &P).unwrap(), 3.506312662367931);
        close(brier(&Y, &P).unwrap(), 0.2604166666666667);
    }

    #[test]
    fn curves_match_scikit_learn() {
        let roc = roc_curve(&Y, &P).unwrap();
        let fpr = [
            0.0,
            1.0 / 7.0,
            1.0 / 7.0,
            2.0 / 7.0,
            2.0 / 7.0,
            3.0 / 7.0,
            4.0 / 7.0,
            4.0 / 7.0,
            5.0 / 7.0,
            6.0 / 7.0,
            1.0,
        ];
        let tpr = [0.0, 0.0, 0.2, 0.4, 0.6, 0.6, 0.8, 1.0, 1.0, 1.0, 1.0];
        let thr = [f64::INFINITY, 1.0, 0.9, 0.8, 0.7, 0.55, 0.4, 0.35, 0.3, 0.1, 0.0];
        assert_eq!(roc.len(), 11);
        for (k, pt) in roc.iter().enumerate() {
            close(pt.x, fpr[k]);
            close(pt.y, tpr[k]);
            assert_eq!(pt.threshold, thr[k]);
        }
        // scikit-learn lists the PR curve from the lowest threshold and appends (recall 0,
        // precision 1); ours runs from the highest threshold without that sentinel.
        let pr = precision_recall_curve(&Y, &P).unwrap();
        let precision =
            [0.0, 0.5, 0.5, 0.6, 0.5, 0.5, 0.5555555555555556, 0.5, 0.45454545454545453, 0.4166666666666667];
        let recall = [0.0, 0.2, 0.4, 0.6, 0.6, 0.8, 1.0, 1.0, 1.0, 1.0];
        assert_eq!(pr.len(), 10);
        for (k, pt) in pr.iter().enumerate() {
            close(pt.y, precision[k]);
            close(pt.x, recall[k]);
        }
    }

    #[test]
    fn curves_survive_a_json_round_trip() {
        let roc = roc_curve(&Y, &P).unwrap();
        let json = serde_json::to_string(&roc).unwrap();
        assert!(json.starts_with(r#"[{"threshold":null,"#), "{json}");
        let back: Vec<CurvePoint> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, roc);
    }

    #[test]
    fn auc_is_right_when_a_score_is_exactly_zero() {
        // linfa 0.8.1 gets this wrong; a perfect ranking must give 1.
        close(roc_auc(&[false, false, true], &[0.0, 0.0, 0.5]).unwrap(), 1.0);
        close(roc_auc(&[false, true], &[0.0, 0.0]).unwrap(), 0.5);
    }

    #[test]
    fn single_class_and_mismatched_inputs_are_typed_errors() {
        assert!(matches!(roc_auc(&[true, true], &[0.1, 0.2]), Err(Error::TooFewClasses { .. })));
        assert!(matches!(log_loss(&[true], &[0.1, 0.2]), Err(Error::MismatchedLengths { expected: 1, found: 2, .. })));
        assert!(matches!(brier(&[], &[]), Err(Error::NoRows { .. })));
        assert!(matches!(brier(&[true], &[f64::NAN]), Err(Error::NonFiniteScore { .. })));
    }

    #[test]
    fn zero_division_gives_zero_as_scikit_learn() {
        let c = Confusion::at(&[true, false], &[0.1, 0.2], 0.5);
        assert_eq!(c.precision(), 0.0);
        assert_eq!(c.f1(), 0.0);
    }
}
