//! Feature encoding fitted on training rows: standardised numbers, one-hot levels with an
//! "unknown" slot, booleans as 0/1; and, for a model imported from another library, a
//! category's code in the model's own numbering.

use std::collections::BTreeMap;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::data::dataset::{ColumnValues, Dataset, Rows, MISSING_CODE};
use crate::data::record::Record;
use crate::data::schema::{same, ColumnKind, Missing, Parsed, Schema, Transform};
use crate::error::{Error, Result};

/// How one input column becomes one or more model inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "encoding", rename_all = "snake_case")]
pub enum Encoder {
    /// `(transform(x) - mean) / scale`.
    Standardise {
        /// Input column.
        column: String,
        /// Transform applied first.
        transform: Transform,
        /// Mean of the transformed training values.
        mean: f64,
        /// Standard deviation of the transformed training values (1 when constant).
        scale: f64,
        /// What a missing value becomes (absent: the column refuses missing values).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        missing: Option<MissingRule<f64>>,
    },
    /// One input per training level, plus a last input for levels never seen in training.
    OneHot {
        /// Input column.
        column: String,
        /// Levels seen in training, sorted.
        levels: Vec<String>,
        /// What a missing value becomes (absent: the column refuses missing values).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        missing: Option<MissingRule<String>>,
    },
    /// The level's index in `levels` (the numbering of categories of a model trained
    /// elsewhere: its category codes); NaN for a missing value and for a level not in
    /// `levels`, which each split sends its missing values' way (as LightGBM's Python package
    /// makes an unseen category missing).
    Code {
        /// Input column.
        column: String,
        /// The model's categories, in the order of their codes.
        levels: Vec<String>,
        /// What a missing value becomes: only [`MissingRule::Nan`] (absent: the column refuses
        /// missing values).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        missing: Option<MissingRule<String>>,
    },
    /// 1 for true, 0 for false.
    Boolean {
        /// Input column.
        column: String,
        /// What a missing value becomes (absent: the column refuses missing values).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        missing: Option<MissingRule<bool>>,
    },
}

/// What an encoder writes for a missing value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingRule<T> {
    /// The training rows' median (numbers) or most frequent value in its place, and 1 in an
    /// indicator input after the encoder's own: what the logistic family reads.
    Impute(T),
    /// NaN in every input of the encoder: gradient boosting sends it the way each split
    /// learned to.
    Nan,
}

/// How the encoders of a build handle missing values: the model family decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingHandling {
    /// Impute and add an indicator (a linear model cannot read NaN).
    Impute,
    /// Pass NaN on (trees learn a direction for it at each split).
    Nan,
}

impl<T> MissingRule<T> {
    fn indicator(rule: &Option<MissingRule<T>>) -> usize {
        usize::from(matches!(rule, Some(MissingRule::Impute(_))))
    }
}

impl Encoder {
    /// The column it reads.
    pub fn column(&self) -> &str {
        match self {
            Encoder::Standardise { column, .. }
            | Encoder::OneHot { column, .. }
            | Encoder::Code { column, .. }
            | Encoder::Boolean { column, .. } => column,
        }
    }

    /// True when values of a column of this kind are what the encoder reads.
    pub fn accepts(&self, kind: &ColumnKind) -> bool {
        matches!(
            (self, kind),
            (Encoder::Standardise { .. }, ColumnKind::Numeric { .. } | ColumnKind::Integer { .. })
                | (Encoder::OneHot { .. } | Encoder::Code { .. }, ColumnKind::Categorical { .. })
                | (Encoder::Boolean { .. }, ColumnKind::Boolean { .. })
        )
    }

    /// Writes one checked value's inputs into `out` (which starts at the encoder's first input
    /// and is zero beyond the value's own slot). Returns `Some(true)` for a level unseen in
    /// training, `None` when the value is not of the encoder's kind (see [`Encoder::accepts`]).
    pub fn write(&self, value: Parsed<'_>, out: &mut [f64]) -> Option<bool> {
        match (self, value) {
            (Encoder::Standardise { transform, mean, scale, .. }, Parsed::Number(x)) => {
                out[0] = (transform.apply(x) - mean) / scale;
                Some(false)
            }
            (Encoder::OneHot { levels, .. }, Parsed::Level(l)) => {
                // Levels are sorted; a few are scanned faster than searched.
                let slot = if levels.len() <= 16 {
                    levels.iter().position(|k| same(k, l))
                } else {
                    levels.binary_search_by(|k| k.as_str().cmp(l)).ok()
                }
                .unwrap_or(levels.len());
                out[slot] = 1.0;
                Some(slot == levels.len())
            }
            (Encoder::Code { levels, .. }, Parsed::Level(l)) => {
                let code = levels.iter().position(|k| same(k, l));
                out[0] = code.map_or(f64::NAN, |c| c as f64);
                Some(code.is_none())
            }
            (Encoder::Boolean { .. }, Parsed::Bool(b)) => {
                out[0] = f64::from(u8::from(b));
                Some(false)
            }
            (_, Parsed::Missing) => {
                self.write_missing(out)?;
                Some(false)
            }
            _ => None,
        }
    }

    /// Writes a missing value's inputs (see [`MissingRule`]); `None` when the encoder's column
    /// refuses missing values.
    fn write_missing(&self, out: &mut [f64]) -> Option<()> {
        let width = self.width();
        let imputed = match self {
            Encoder::Standardise { missing: Some(MissingRule::Impute(x)), .. } => Parsed::Number(*x),
            Encoder::OneHot { missing: Some(MissingRule::Impute(level)), .. } => Parsed::Level(level),
            Encoder::Boolean { missing: Some(MissingRule::Impute(b)), .. } => Parsed::Bool(*b),
            Encoder::Standardise { missing: Some(MissingRule::Nan), .. }
            | Encoder::OneHot { missing: Some(MissingRule::Nan), .. }
            | Encoder::Code { missing: Some(MissingRule::Nan | MissingRule::Impute(_)), .. }
            | Encoder::Boolean { missing: Some(MissingRule::Nan), .. } => {
                out[..width].iter_mut().for_each(|x| *x = f64::NAN);
                return Some(());
            }
            _ => return None,
        };
        self.write(imputed, out)?;
        out[width - 1] = 1.0;
        Some(())
    }

    /// How many model inputs it writes.
    pub fn width(&self) -> usize {
        match self {
            Encoder::Standardise { missing, .. } => 1 + MissingRule::indicator(missing),
            Encoder::Boolean { missing, .. } => 1 + MissingRule::indicator(missing),
            Encoder::OneHot { levels, missing, .. } => levels.len() + 1 + MissingRule::indicator(missing),
            Encoder::Code { .. } => 1,
        }
    }
}

/// The fitted encoders of every feature column, in schema order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    /// One encoder per feature column.
    pub encoders: Vec<Encoder>,
}

/// Matrix of model inputs and how many values were levels unseen in training, per column.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// rows × inputs.
    pub matrix: Array2<f64>,
    /// Column → number of rows whose level was not seen in training.
    pub unseen_levels: BTreeMap<String, u64>,
}

impl Preprocessor {
    /// Fits the encoders on the given rows; a column that allows missing values gets the
    /// missing rule `how` asks for, fitted on these rows (the median, the most frequent value).
    pub fn fit(data: &Dataset, how: MissingHandling) -> Result<Preprocessor> {
        Preprocessor::fit_rows(data, Rows::all(data.len()), how)
    }

    /// [`Preprocessor::fit`] on some rows of `data` only: the same encoders as on a copy of
    /// those rows, without the copy.
    pub fn fit_rows(data: &Dataset, rows: Rows<'_>, how: MissingHandling) -> Result<Preprocessor> {
        let mut encoders = Vec::with_capacity(data.features.len());
        for (name, values) in &data.features {
            let column = data.schema.column(name).expect("data set columns come from its schema");
            let allows = column.missing == Missing::Allow;
            let encoder = match (values, &column.kind) {
                (
                    ColumnValues::Number(all),
                    ColumnKind::Numeric { transform, .. } | ColumnKind::Integer { transform, .. },
                ) => {
                    let mut v: Vec<f64> = rows.iter().map(|i| all.get(i)).filter(|x| !x.is_nan()).collect();
                    if v.is_empty() {
                        return Err(Error::NoRows { what: "with a value to fit the encoders on" });
                    }
                    let n = v.len() as f64;
                    let mean = v.iter().map(|&x| transform.apply(x)).sum::<f64>() / n;
                    let var = v.iter().map(|&x| (transform.apply(x) - mean).powi(2)).sum::<f64>() / n;
                    let scale = if var.sqrt() > 1e-12 { var.sqrt() } else { 1.0 };
                    let missing = rule(allows, how, allows.then(|| median(&mut v)));
                    Encoder::Standardise { column: name.clone(), transform: *transform, mean, scale, missing }
                }
                (ColumnValues::Level { levels, codes }, _) => {
                    let mut counts = vec![0u64; levels.len()];
                    for c in rows.iter().map(|i| codes[i]).filter(|&c| c != MISSING_CODE) {
                        counts[c as usize] += 1;
                    }
                    let mut seen: Vec<String> =
                        levels.iter().zip(&counts).filter(|(_, c)| **c > 0).map(|(l, _)| l.clone()).collect();
                    seen.sort();
                    // The most frequent level; ties to the first in sort order.
                    let mode = levels
                        .iter()
                        .zip(&counts)
                        .filter(|(_, c)| **c > 0)
                        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                        .map(|(l, _)| l.clone());
                    if allows && mode.is_none() && how == MissingHandling::Impute {
                        return Err(Error::NoRows { what: "with a value to fit the encoders on" });
                    }
                    Encoder::OneHot { column: name.clone(), levels: seen, missing: rule(allows, how, mode) }
                }
                (ColumnValues::Bool(v), _) => {
                    let trues = rows.iter().filter(|&i| v[i] == Some(true)).count();
                    let falses = rows.iter().filter(|&i| v[i] == Some(false)).count();
                    Encoder::Boolean { column: name.clone(), missing: rule(allows, how, Some(trues > falses)) }
                }
                _ => return Err(Error::EncoderKind { column: name.clone() }),
            };
            encoders.push(encoder);
        }
        Ok(Preprocessor { encoders })
    }

    /// Checks the encoders against the schema they read: each a feature column of the kind it
    /// encodes, none twice, numbers finite and scales positive, levels sorted and distinct.
    pub fn check(&self, schema: &Schema) -> std::result::Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for e in &self.encoders {
            let name = e.column();
            let column = schema
                .feature_columns()
                .find(|c| c.name == name)
                .ok_or_else(|| format!("an encoder reads `{name}`, which is not a feature column of the schema"))?;
            if !e.accepts(&column.kind) || !seen.insert(name) {
                return Err(format!("the encoder of `{name}` does not match its column, or is there twice"));
            }
            let has_rule = match e {
                Encoder::Standardise { missing, .. } => missing.is_some(),
                Encoder::OneHot { missing, .. } => missing.is_some(),
                Encoder::Code { missing, .. } => missing.is_some(),
                Encoder::Boolean { missing, .. } => missing.is_some(),
            };
            if has_rule != (column.missing == Missing::Allow) {
                return Err(format!("`{name}`: the encoder's rule for missing values does not match the column's"));
            }
            match e {
                Encoder::Standardise { mean, scale, .. }
                    if !(mean.is_finite() && scale.is_finite() && *scale > 0.0) =>
                {
                    return Err(format!("`{name}` is standardised with mean {mean} and scale {scale}"));
                }
                Encoder::Standardise { missing: Some(MissingRule::Impute(x)), .. } if !x.is_finite() => {
                    return Err(format!("`{name}` imputes {x}"));
                }
                Encoder::OneHot { levels, .. } if levels.windows(2).any(|w| w[0] >= w[1]) => {
                    return Err(format!("the levels of `{name}` are not sorted and distinct"));
                }
                Encoder::Code { missing: Some(MissingRule::Impute(_)), .. } => {
                    return Err(format!("`{name}` is coded and imputed: a code's missing value is NaN"));
                }
                Encoder::Code { levels, .. }
                    if levels.iter().enumerate().any(|(i, l)| levels[..i].iter().any(|k| same(k, l))) =>
                {
                    return Err(format!("the levels of `{name}` are not distinct"));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Number of model inputs.
    pub fn width(&self) -> usize {
        self.encoders.iter().map(Encoder::width).sum()
    }

    /// Encodes every row of a data set read with the same schema.
    pub fn transform(&self, data: &Dataset) -> Result<Encoded> {
        self.transform_rows(data, Rows::all(data.len()))
    }

    /// Encodes some rows of a data set read with the same schema, in the view's order.
    pub fn transform_rows(&self, data: &Dataset, rows: Rows<'_>) -> Result<Encoded> {
        let mut matrix = Array2::<f64>::zeros((rows.len(), self.width()));
        let mut unseen_levels = BTreeMap::new();
        let out = matrix.as_slice_mut().expect("a fresh matrix is contiguous");
        self.encode_rows(data, rows, out, &mut unseen_levels)?;
        Ok(Encoded { matrix, unseen_levels })
    }

    /// Writes the inputs of the viewed rows of `data` into `out`, row-major ([`Preprocessor::width`]
    /// values a row), which must hold zeros; counts the levels unseen in training into `unseen_levels`.
    /// A caller that cannot afford the whole matrix encodes its rows a slice at a time.
    pub fn encode_rows(
        &self,
        data: &Dataset,
        rows: Rows<'_>,
        out: &mut [f64],
        unseen_levels: &mut BTreeMap<String, u64>,
    ) -> Result<()> {
        let width = self.width();
        debug_assert_eq!(out.len(), rows.len() * width);
        let mut offset = 0;
        for e in &self.encoders {
            let w = e.width();
            // The encoder's inputs in the `k`-th row of the view.
            let at = |k: usize| k * width + offset;
            let missing = |out: &mut [f64], k: usize| {
                let start = at(k);
                e.write_missing(&mut out[start..start + w])
                    .ok_or_else(|| Error::EncoderKind { column: e.column().to_string() })
            };
            let values = data
                .features
                .iter()
                .find(|(name, _)| name == e.column())
                .map(|(_, v)| v)
                .ok_or_else(|| Error::MissingColumn { column: e.column().to_string() })?;
            match (e, values) {
                (Encoder::Standardise { transform, mean, scale, .. }, ColumnValues::Number(v)) => {
                    for (k, i) in rows.iter().enumerate() {
                        let x = v.get(i);
                        if x.is_nan() {
                            missing(out, k)?;
                        } else {
                            out[at(k)] = (transform.apply(x) - mean) / scale;
                        }
                    }
                }
                (Encoder::OneHot { column, levels, .. }, ColumnValues::Level { levels: data_levels, codes }) => {
                    // Map the data's level codes to training slots once, not once per row.
                    let slot: Vec<usize> =
                        data_levels.iter().map(|l| levels.binary_search(l).unwrap_or(levels.len())).collect();
                    let mut unseen = 0u64;
                    for (k, i) in rows.iter().enumerate() {
                        let c = codes[i];
                        if c == MISSING_CODE {
                            missing(out, k)?;
                            continue;
                        }
                        let s = slot[c as usize];
                        unseen += u64::from(s == levels.len());
                        out[at(k) + s] = 1.0;
                    }
                    if unseen > 0 {
                        *unseen_levels.entry(column.clone()).or_default() += unseen;
                    }
                }
                (Encoder::Code { column, levels, .. }, ColumnValues::Level { levels: data_levels, codes }) => {
                    let code: Vec<Option<usize>> =
                        data_levels.iter().map(|l| levels.iter().position(|k| same(k, l))).collect();
                    let mut unseen = 0u64;
                    for (k, i) in rows.iter().enumerate() {
                        let c = codes[i];
                        if c == MISSING_CODE {
                            missing(out, k)?;
                            continue;
                        }
                        let code = code[c as usize];
                        unseen += u64::from(code.is_none());
                        out[at(k)] = code.map_or(f64::NAN, |c| c as f64);
                    }
                    if unseen > 0 {
                        *unseen_levels.entry(column.clone()).or_default() += unseen;
                    }
                }
                (Encoder::Boolean { .. }, ColumnValues::Bool(v)) => {
                    for (k, i) in rows.iter().enumerate() {
                        match v[i] {
                            Some(b) => out[at(k)] = f64::from(u8::from(b)),
                            None => missing(out, k)?,
                        }
                    }
                }
                _ => return Err(Error::EncoderKind { column: e.column().to_string() }),
            }
            offset += w;
        }
        Ok(())
    }

    /// Encodes one record into `out` (length [`Preprocessor::width`]); returns the columns
    /// whose level was not seen in training.
    pub fn encode_record(&self, record: &Record, out: &mut [f64]) -> Vec<String> {
        out.iter_mut().for_each(|x| *x = 0.0);
        let mut unseen = Vec::new();
        let mut offset = 0;
        for e in &self.encoders {
            // A record is parsed with the artifact's schema, so each column is present with its
            // kind; anything else is a bug in Record::parse.
            let value = record.get(e.column()).map(|v| v.as_parsed());
            match value.and_then(|v| e.write(v, &mut out[offset..])) {
                Some(true) => unseen.push(e.column().to_string()),
                Some(false) => {}
                None => unreachable!("record checked against the schema lacks column `{}`", e.column()),
            }
            offset += e.width();
        }
        unseen
    }
}

/// The median of `values` (not empty), the mean of the two middle values for an even count.
fn median(values: &mut [f64]) -> f64 {
    // The middle value in sorted order, found without sorting the rest; for an even count the
    // value before it is the largest of those before.
    let n = values.len();
    let (before, &mut middle, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        middle
    } else {
        // An even count has values before the middle: `middle` is never the fallback.
        let below = before.iter().copied().max_by(f64::total_cmp).unwrap_or(middle);
        (below + middle) / 2.0
    }
}

/// The missing rule of a column: none when it refuses missing values, else as `how` asks.
fn rule<T>(allows: bool, how: MissingHandling, fill: Option<T>) -> Option<MissingRule<T>> {
    match how {
        _ if !allows => None,
        MissingHandling::Nan => Some(MissingRule::Nan),
        MissingHandling::Impute => fill.map(MissingRule::Impute),
    }
}

#[cfg(test)]
mod tests {
    use super::median;
    use crate::rng::Rng;

    #[test]
    fn the_median_is_the_middle_of_the_sorted_values() {
        let sorted_median = |values: &[f64]| {
            let mut v = values.to_vec();
            v.sort_by(f64::total_cmp);
            let n = v.len();
            if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            }
        };
        let mut rng = Rng::new(5);
        for n in [1, 2, 3, 4, 10, 11, 1000, 1001] {
            for repeats in [false, true] {
                let values: Vec<f64> =
                    (0..n).map(|_| if repeats { (rng.uniform() * 4.0).floor() - 2.0 } else { rng.normal() }).collect();
                let expected = sorted_median(&values);
                assert_eq!(median(&mut values.clone()).to_bits(), expected.to_bits(), "{n} values");
            }
        }
        assert_eq!(median(&mut [3.0, -1.0, 7.0, 5.0]), 4.0);
        assert_eq!(median(&mut [2.0]), 2.0);
    }
}
