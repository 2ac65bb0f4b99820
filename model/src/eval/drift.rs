//! Feature drift: a reference of each feature's training distribution, stored in the artifact,
//! and its distance to new data — PSI on quantile bins for numbers, Jensen–Shannon divergence for
//! levels.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::data::dataset::{ColumnValues, Dataset, Rows};

/// Proportions are floored at this before logarithms, so that an empty bin does not make the
/// PSI infinite.
const FLOOR: f64 = 1e-4;
/// Quantile bins of a numeric reference.
const BINS: usize = 10;

/// The training distribution of one feature column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FeatureReference {
    /// Quantile bins: `x <= edges[0]` is bin 0, …, `x > edges[last]` the last bin.
    Numeric {
        /// Column name.
        column: String,
        /// Upper edges of all bins but the last.
        edges: Vec<f64>,
        /// Training share of each bin.
        shares: Vec<f64>,
        /// Training share of missing values, a bin of its own (absent: none were missing).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        missing: Option<f64>,
    },
    /// Shares of each level (booleans as `true` / `false`).
    Levels {
        /// Column name.
        column: String,
        /// Training share of each level.
        shares: BTreeMap<String, f64>,
        /// Training share of missing values, a level of its own (absent: none were missing).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        missing: Option<f64>,
    },
}

/// The training reference of every feature column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// One entry per feature column.
    pub features: Vec<FeatureReference>,
}

/// How far a feature moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftLevel {
    /// Below the moderate threshold.
    None,
    /// At or above the moderate threshold.
    Moderate,
    /// At or above the major threshold.
    Major,
}

/// How a feature's drift is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftStatistic {
    /// Population stability index, for numeric features over the training deciles.
    Psi,
    /// Jensen–Shannon divergence, for levels and booleans.
    JensenShannon,
}

impl std::fmt::Display for DriftStatistic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DriftStatistic::Psi => "psi",
            DriftStatistic::JensenShannon => "jensen_shannon",
        })
    }
}

/// Drift of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureDrift {
    /// Column name.
    pub column: String,
    /// The statistic measured.
    pub statistic: DriftStatistic,
    /// Its value.
    pub value: f64,
    /// Classified against the thresholds.
    pub level: DriftLevel,
    /// The bins or levels whose share moved most: (name, reference share, new share).
    pub largest_moves: Vec<(String, f64, f64)>,
}

/// Thresholds of drift, from `[monitor]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriftThresholds {
    /// PSI at which a numeric feature has moved moderately.
    pub psi_moderate: f64,
    /// PSI at which a numeric feature has moved majorly.
    pub psi_major: f64,
    /// Jensen–Shannon divergence (base 2) at which levels have moved moderately.
    pub js_moderate: f64,
    /// Jensen–Shannon divergence (base 2) at which levels have moved majorly.
    pub js_major: f64,
}

impl Default for DriftThresholds {
    fn default() -> Self {
        DriftThresholds { psi_moderate: 0.1, psi_major: 0.25, js_moderate: 0.05, js_major: 0.1 }
    }
}

fn level(value: f64, moderate: f64, major: f64) -> DriftLevel {
    if value >= major {
        DriftLevel::Major
    } else if value >= moderate {
        DriftLevel::Moderate
    } else {
        DriftLevel::None
    }
}

impl Reference {
    /// Records the distribution of each feature of the training rows.
    pub fn fit(data: &Dataset) -> Reference {
        Reference::fit_rows(data, Rows::all(data.len()))
    }

    /// [`Reference::fit`] on some rows of `data`: the same reference as on a copy of those rows,
    /// one column copied at a time.
    pub fn fit_rows(data: &Dataset, rows: Rows<'_>) -> Reference {
        let features = data
            .features
            .iter()
            .map(|(column, values)| {
                let values = match rows {
                    Rows::Span { .. } => std::borrow::Cow::Borrowed(values),
                    Rows::Listed(_) => std::borrow::Cow::Owned(values.select(rows)),
                };
                (column, values)
            })
            .map(|(column, values)| match values.as_ref() {
                ColumnValues::Number(all) => {
                    let mut v: Vec<f64> = all.iter().filter(|x| !x.is_nan()).collect();
                    let missing = (v.len() < all.len()).then(|| (all.len() - v.len()) as f64 / all.len() as f64);
                    // Sorted in place: the shares count values, whatever their order. Values that
                    // compare equal have the same bits, so an unstable sort's order is the
                    // stable one's.
                    v.sort_unstable_by(f64::total_cmp);
                    let sorted = &v;
                    if sorted.is_empty() {
                        return FeatureReference::Numeric {
                            column: column.clone(),
                            edges: Vec::new(),
                            shares: vec![0.0],
                            missing,
                        };
                    }
                    let mut edges: Vec<f64> =
                        (1..BINS).map(|k| sorted[(k * sorted.len() / BINS).min(sorted.len() - 1)]).collect();
                    edges.dedup();
                    if edges.last() == sorted.last() && edges.len() > 1 {
                        edges.pop();
                    }
                    // Shares of all rows: with the missing share they sum to one.
                    let present = v.len() as f64 / all.len() as f64;
                    let shares = numeric_shares(&v, &edges).into_iter().map(|s| s * present).collect();
                    FeatureReference::Numeric { column: column.clone(), edges, shares, missing }
                }
                other => {
                    let (shares, missing) = level_shares(other);
                    FeatureReference::Levels {
                        column: column.clone(),
                        shares,
                        missing: (missing > 0.0).then_some(missing),
                    }
                }
            })
            .collect();
        Reference { features }
    }

    /// Checks that every numeric reference has one share more than it has edges, edges that are
    /// numbers in increasing order, and shares in [0, 1].
    pub fn check(&self) -> std::result::Result<(), String> {
        for reference in &self.features {
            let (column, shares): (&str, Vec<f64>) = match reference {
                FeatureReference::Numeric { column, edges, shares, .. } => {
                    if shares.len() != edges.len() + 1 || edges.iter().any(|e| e.is_nan()) {
                        return Err(format!(
                            "the drift reference of `{column}` has {} edges and {} shares",
                            edges.len(),
                            shares.len()
                        ));
                    }
                    if edges.windows(2).any(|w| w[0] >= w[1]) {
                        return Err(format!("the drift reference of `{column}` has edges out of order"));
                    }
                    (column, shares.clone())
                }
                FeatureReference::Levels { column, shares, .. } => (column, shares.values().copied().collect()),
            };
            if shares.iter().any(|s| !(0.0..=1.0).contains(s)) {
                return Err(format!("the drift reference of `{column}` has a share outside [0, 1]"));
            }
        }
        Ok(())
    }

    /// Drift of each feature of `data` (same schema) against this reference.
    pub fn compare(&self, data: &Dataset, thresholds: &DriftThresholds) -> Vec<FeatureDrift> {
        let mut out = Vec::new();
        for reference in &self.features {
            let (FeatureReference::Numeric { column, .. } | FeatureReference::Levels { column, .. }) = reference;
            let Some((_, values)) = data.features.iter().find(|(n, _)| n == column) else { continue };
            match (reference, values) {
                (FeatureReference::Numeric { edges, shares, missing, .. }, ColumnValues::Number(all)) => {
                    let v: Vec<f64> = all.iter().filter(|x| !x.is_nan()).collect();
                    let present = v.len() as f64 / all.len().max(1) as f64;
                    let mut new: Vec<f64> = numeric_shares(&v, edges).into_iter().map(|s| s * present).collect();
                    let mut shares = shares.clone();
                    let new_missing = 1.0 - present;
                    // Missing values are a bin of their own, when either side has any.
                    let with_missing = missing.is_some() || new_missing > 0.0;
                    if with_missing {
                        shares.push(missing.unwrap_or(0.0));
                        new.push(new_missing);
                    }
                    let value = psi(&shares, &new);
                    let bins = edges.len() + 1;
                    let names: Vec<String> = (0..shares.len())
                        .map(|b| {
                            match (
                                b.checked_sub(1).and_then(|p| edges.get(p)).map(|&e| short(e)),
                                edges.get(b).map(|&e| short(e)),
                            ) {
                                _ if b == bins => "missing".into(),
                                (None, Some(hi)) => format!("≤ {hi}"),
                                (Some(lo), Some(hi)) => format!("({lo}, {hi}]"),
                                (Some(lo), None) => format!("> {lo}"),
                                (None, None) => "all".into(),
                            }
                        })
                        .collect();
                    let moves = largest_moves(names.into_iter().zip(shares.iter().copied().zip(new)).collect());
                    out.push(FeatureDrift {
                        column: column.clone(),
                        statistic: DriftStatistic::Psi,
                        value,
                        level: level(value, thresholds.psi_moderate, thresholds.psi_major),
                        largest_moves: moves,
                    });
                }
                (FeatureReference::Levels { shares, missing, .. }, values) => {
                    let (mut new, new_missing) = level_shares(values);
                    let mut shares = shares.clone();
                    // Missing values are a level of their own, under a name no level can have.
                    const MISSING: &str = "\u{0}missing";
                    if missing.is_some() || new_missing > 0.0 {
                        shares.insert(MISSING.into(), missing.unwrap_or(0.0));
                        new.insert(MISSING.into(), new_missing);
                    }
                    let mut names: Vec<&String> = shares.keys().chain(new.keys()).collect();
                    names.sort();
                    names.dedup();
                    let pairs: Vec<(String, (f64, f64))> = names
                        .into_iter()
                        .map(|n| (n.clone(), (*shares.get(n).unwrap_or(&0.0), *new.get(n).unwrap_or(&0.0))))
                        .collect();
                    let (p, q): (Vec<f64>, Vec<f64>) = pairs.iter().map(|(_, pq)| *pq).unzip();
                    let value = jensen_shannon(&p, &q);
                    out.push(FeatureDrift {
                        column: column.clone(),
                        statistic: DriftStatistic::JensenShannon,
                        value,
                        level: level(value, thresholds.js_moderate, thresholds.js_major),
                        largest_moves: largest_moves(pairs),
                    });
                }
                _ => {}
            }
        }
        out
    }
}

/// A bin edge, short enough to read: four significant digits.
fn short(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = (3 - x.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{x:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn largest_moves(mut pairs: Vec<(String, (f64, f64))>) -> Vec<(String, f64, f64)> {
    pairs.sort_by(|a, b| (b.1 .1 - b.1 .0).abs().total_cmp(&(a.1 .1 - a.1 .0).abs()).then(a.0.cmp(&b.0)));
    pairs.into_iter().take(3).map(|(n, (e, a))| (n, e, a)).collect()
}

fn numeric_shares(values: &[f64], edges: &[f64]) -> Vec<f64> {
    let mut counts = vec![0u64; edges.len() + 1];
    for &x in values {
        counts[edges.partition_point(|&e| e < x)] += 1;
    }
    let n = values.len().max(1) as f64;
    counts.into_iter().map(|c| c as f64 / n).collect()
}

/// The share of each level of the rows, and the share missing.
fn level_shares(values: &ColumnValues) -> (BTreeMap<String, f64>, f64) {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut missing = 0u64;
    match values {
        ColumnValues::Level { levels, codes } => {
            let mut per_code = vec![0u64; levels.len()];
            for &c in codes {
                match per_code.get_mut(c as usize) {
                    Some(n) => *n += 1,
                    None => missing += 1,
                }
            }
            for (l, c) in levels.iter().zip(per_code) {
                if c > 0 {
                    *counts.entry(l.clone()).or_default() += c;
                }
            }
        }
        ColumnValues::Bool(v) => {
            for b in v {
                match b {
                    Some(b) => *counts.entry(b.to_string()).or_default() += 1,
                    None => missing += 1,
                }
            }
        }
        ColumnValues::Number(_) => {}
    }
    let n = values.len().max(1) as f64;
    (counts.into_iter().map(|(k, c)| (k, c as f64 / n)).collect(), missing as f64 / n)
}

/// Population stability index: Σ (a − e) · ln(a / e), shares floored at 1e-4.
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    expected
        .iter()
        .zip(actual)
        .map(|(&e, &a)| {
            let (e, a) = (e.max(FLOOR), a.max(FLOOR));
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// Jensen–Shannon divergence in bits (0 = same distribution, 1 = disjoint).
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let kl = |a: &[f64], m: &[f64]| -> f64 {
        a.iter().zip(m).filter(|(x, _)| **x > 0.0).map(|(&x, &y)| x * (x / y).log2()).sum::<f64>()
    };
    let m: Vec<f64> = p.iter().zip(q).map(|(a, b)| (a + b) / 2.0).collect();
    (0.5 * kl(p, &m) + 0.5 * kl(q, &m)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_matches_a_hand_computation() {
        // (0.3-0.25)·ln(0.3/0.25) + (0.2-0.25)·ln(0.2/0.25) + 2·0 = 0.0091161 + 0.0111572
        let v = psi(&[0.25, 0.25, 0.25, 0.25], &[0.3, 0.2, 0.25, 0.25]);
        assert!((v - 0.020_273_255_405_408).abs() < 1e-12, "{v}");
        assert_eq!(psi(&[0.5, 0.5], &[0.5, 0.5]), 0.0);
    }

    #[test]
    fn jensen_shannon_is_zero_for_equal_and_one_for_disjoint() {
        assert!(jensen_shannon(&[0.5, 0.5], &[0.5, 0.5]).abs() < 1e-15);
        assert!((jensen_shannon(&[1.0, 0.0], &[0.0, 1.0]) - 1.0).abs() < 1e-12);
        // scipy 1.x: jensenshannon([0.1,0.4,0.5], [0.3,0.3,0.4], base=2)**2, computed once.
        let v = jensen_shannon(&[0.1, 0.4, 0.5], &[0.3, 0.3, 0.4]);
        assert!((v - 0.046_930_300_568_985).abs() < 1e-12, "{v}");
    }
}
