//! Choosing the decision threshold on validation rows: the cut that maximises a criterion.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ParamError, Result};

/// The `[threshold]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdConfig {
    /// What the threshold maximises on the validation rows.
    #[serde(default)]
    pub optimise: ThresholdObjective,
    /// The threshold itself, when `optimise = "fixed"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

impl Default for ThresholdConfig {
    fn default() -> Self {
        ThresholdConfig { optimise: ThresholdObjective::F1, value: None }
    }
}

impl ThresholdConfig {
    /// Checks the section: a fixed threshold needs its value, a probability; the others none.
    pub fn check(&self) -> std::result::Result<(), ParamError> {
        match (self.optimise, self.value) {
            (ThresholdObjective::Fixed, None) => {
                Err(ParamError::invalid("threshold.value", "required when optimise = \"fixed\""))
            }
            (ThresholdObjective::Fixed, Some(v)) if !(0.0..=1.0).contains(&v) => {
                Err(ParamError::out_of_range("threshold.value", v, "a probability"))
            }
            (ThresholdObjective::Fixed, Some(_)) => Ok(()),
            (_, Some(_)) => Err(ParamError::invalid("threshold.value", "only used with optimise = \"fixed\"")),
            (_, None) => Ok(()),
        }
    }
}

/// The criterion the decision threshold maximises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdObjective {
    /// F1 of the positive class.
    #[default]
    F1,
    /// Accuracy.
    Accuracy,
    /// Youden's J: recall + specificity - 1 (balanced accuracy).
    Youden,
    /// No optimisation: `value` is used as is.
    Fixed,
}

/// The decision threshold stored in an artifact: predict positive when probability >= value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// The cut.
    pub value: f64,
    /// What it maximised (or `fixed`).
    pub objective: ThresholdObjective,
    /// The criterion's value on the validation rows at this cut.
    pub validation_score: f64,
}

/// Chooses the threshold on validation labels and probabilities.
///
/// Candidate cuts lie halfway between consecutive distinct probabilities, so the choice does
/// not hug one validation row's score. Ties in the criterion go to the higher cut.
pub fn choose(config: &ThresholdConfig, labels: &[bool], probabilities: &[f64]) -> Result<Threshold> {
    if labels.len() != probabilities.len() || labels.is_empty() {
        if labels.is_empty() {
            return Err(Error::NoRows { what: "to choose a threshold on" });
        }
        return Err(Error::MismatchedLengths {
            what: "probabilities against labels",
            expected: labels.len(),
            found: probabilities.len(),
        });
    }
    let p = labels.iter().filter(|&&y| y).count() as f64;
    let n = labels.len() as f64 - p;
    let score = |tp: f64, fp: f64| -> f64 {
        let fn_ = p - tp;
        let tn = n - fp;
        match config.optimise {
            ThresholdObjective::F1 => {
                if tp == 0.0 {
                    0.0
                } else {
                    2.0 * tp / (2.0 * tp + fp + fn_)
                }
            }
            ThresholdObjective::Accuracy => (tp + tn) / (p + n),
            ThresholdObjective::Youden => {
                let recall = if p > 0.0 { tp / p } else { 0.0 };
                let specificity = if n > 0.0 { tn / n } else { 0.0 };
                recall + specificity - 1.0
            }
            ThresholdObjective::Fixed => unreachable!("fixed thresholds are not searched"),
        }
    };
    if config.optimise == ThresholdObjective::Fixed {
        config.check().map_err(Error::Param)?;
        let value = config.value.unwrap_or_default();
        let (mut tp, mut fp) = (0.0, 0.0);
        for (&y, &s) in labels.iter().zip(probabilities) {
            if s >= value {
                if y {
                    tp += 1.0
                } else {
                    fp += 1.0
                }
            }
        }
        let f1 = if tp == 0.0 { 0.0 } else { 2.0 * tp / (2.0 * tp + fp + (p - tp)) };
        return Ok(Threshold { value, objective: ThresholdObjective::Fixed, validation_score: f1 });
    }
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
    // Cutting above every score predicts nothing positive.
    let mut best = (score(0.0, 0.0), 1.0_f64.max(probabilities[order[0]]) + f64::EPSILON);
    let (mut tp, mut fp) = (0.0, 0.0);
    for (k, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let next = order.get(k + 1).map(|&j| probabilities[j]);
        if next == Some(probabilities[i]) {
            continue;
        }
        let cut = match next {
            Some(lower) => lower + (probabilities[i] - lower) / 2.0,
            None => probabilities[i],
        };
        let s = score(tp, fp);
        if s > best.0 {
            best = (s, cut);
        }
    }
    Ok(Threshold { value: best.1, objective: config.optimise, validation_score: best.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(optimise: ThresholdObjective) -> ThresholdConfig {
        ThresholdConfig { optimise, value: None }
    }

    #[test]
    fn f1_cut_lies_between_the_scores_that_separate_best() {
        let y = [true, true, false, true, false, false];
        let p = [0.9, 0.8, 0.7, 0.6, 0.2, 0.1];
        let t = choose(&config(ThresholdObjective::F1), &y, &p).unwrap();
        // Cutting between 0.6 and 0.2 gives tp 3, fp 1: F1 = 6/7, the best available.
        assert!((t.value - 0.4).abs() < 1e-12);
        assert!((t.validation_score - 6.0 / 7.0).abs() < 1e-12);
    }

    #[test]
    fn accuracy_may_prefer_predicting_nothing_positive() {
        let y = [false, false, false, true];
        let p = [0.9, 0.5, 0.4, 0.3];
        let t = choose(&config(ThresholdObjective::Accuracy), &y, &p).unwrap();
        assert!(t.value > 0.9);
        assert_eq!(t.validation_score, 0.75);
    }

    #[test]
    fn fixed_threshold_is_kept() {
        let c = ThresholdConfig { optimise: ThresholdObjective::Fixed, value: Some(0.3) };
        let t = choose(&c, &[true, false], &[0.4, 0.2]).unwrap();
        assert_eq!(t.value, 0.3);
        assert_eq!(t.validation_score, 1.0);
    }
}
