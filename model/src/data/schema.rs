//! The declared shape of the data: columns, their kinds and the rules each value must follow.

use serde::{Deserialize, Serialize};

use crate::data::report::{DataError, Rule};
use crate::error::ParamError;

/// A column as declared in the pipeline configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawColumn")]
pub struct Column {
    /// Name in the CSV header.
    pub name: String,
    /// What the column holds, with its rules.
    #[serde(flatten)]
    pub kind: ColumnKind,
    /// Whether a value may be missing (`missing = "allow"`); refused by default.
    #[serde(default, skip_serializing_if = "Missing::is_refuse")]
    pub missing: Missing,
    /// The spellings of a missing value when missing values are allowed (default: the empty
    /// value alone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_values: Vec<String>,
    /// The largest share of missing values a file may hold (more is a data error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_missing: Option<f64>,
}

/// Whether a column's value may be missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// A value is required (an empty one breaks rule `missing`).
    #[default]
    Refuse,
    /// A value may be missing: it is then neither checked nor coerced, and the models handle it
    /// (gradient boosting learns where it goes at each split; logistic regression imputes it and
    /// reads an indicator).
    Allow,
}

impl Missing {
    fn is_refuse(&self) -> bool {
        *self == Missing::Refuse
    }
}

/// What a column holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColumnKind {
    /// A real number (f64); NaN and infinities are refused.
    Numeric {
        /// Smallest allowed value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        /// Largest allowed value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
        /// Transform applied before standardisation.
        #[serde(default, skip_serializing_if = "Transform::is_none")]
        transform: Transform,
    },
    /// A whole number, used as a numeric feature.
    Integer {
        /// Smallest allowed value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<i64>,
        /// Largest allowed value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<i64>,
        /// Transform applied before standardisation.
        #[serde(default, skip_serializing_if = "Transform::is_none")]
        transform: Transform,
    },
    /// A category, one-hot encoded; integer codes (such as a browser id) belong here too.
    Categorical {
        /// The allowed levels; any level is allowed when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        levels: Option<Vec<String>>,
    },
    /// A yes/no value with declared spellings.
    Boolean {
        /// Spellings of true.
        #[serde(rename = "true", default = "default_true")]
        true_values: Vec<String>,
        /// Spellings of false.
        #[serde(rename = "false", default = "default_false")]
        false_values: Vec<String>,
    },
    /// The binary label to predict; exactly one column has this kind.
    Label {
        /// The spelling of the positive class.
        positive: String,
        /// The spelling of the negative class.
        negative: String,
    },
    /// The row's identifier (a session or customer id): required, never a feature, carried
    /// to predictions; when a schema has one, it alone decides a row's staging membership.
    Id,
    /// A column that is read but neither checked nor used (a free-text note).
    Ignore,
}

impl ColumnKind {
    /// The kind's name as a configuration writes it (`numeric`, `categorical`, …).
    pub fn name(&self) -> &'static str {
        match self {
            ColumnKind::Numeric { .. } => "numeric",
            ColumnKind::Integer { .. } => "integer",
            ColumnKind::Categorical { .. } => "categorical",
            ColumnKind::Boolean { .. } => "boolean",
            ColumnKind::Label { .. } => "label",
            ColumnKind::Id => "id",
            ColumnKind::Ignore => "ignore",
        }
    }
}

/// A column as written in a file: every key any kind may have. serde cannot deny unknown
/// keys through `flatten`, so a column is read flat and then checked key by key against its kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    name: String,
    kind: String,
    min: Option<Bound>,
    max: Option<Bound>,
    transform: Option<Transform>,
    levels: Option<Vec<String>>,
    #[serde(rename = "true")]
    true_values: Option<Vec<String>>,
    #[serde(rename = "false")]
    false_values: Option<Vec<String>>,
    positive: Option<String>,
    negative: Option<String>,
    missing: Option<Missing>,
    missing_values: Option<Vec<String>>,
    max_missing: Option<f64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Bound {
    Int(i64),
    Float(f64),
}

impl Bound {
    fn as_f64(&self) -> f64 {
        match *self {
            Bound::Int(i) => i as f64,
            Bound::Float(f) => f,
        }
    }
}

impl TryFrom<RawColumn> for Column {
    type Error = String;

    fn try_from(raw: RawColumn) -> std::result::Result<Column, String> {
        let name = raw.name;
        let mut present: Vec<&str> = Vec::new();
        for (key, set) in [
            ("min", raw.min.is_some()),
            ("max", raw.max.is_some()),
            ("transform", raw.transform.is_some()),
            ("levels", raw.levels.is_some()),
            ("true", raw.true_values.is_some()),
            ("false", raw.false_values.is_some()),
            ("positive", raw.positive.is_some()),
            ("negative", raw.negative.is_some()),
        ] {
            if set {
                present.push(key);
            }
        }
        let allowed: &[&str] = match raw.kind.as_str() {
            "numeric" | "integer" => &["min", "max", "transform"],
            "categorical" => &["levels"],
            "boolean" => &["true", "false"],
            "label" => &["positive", "negative"],
            "ignore" | "id" => &[],
            other => {
                return Err(format!(
                    "column `{name}`: unknown kind {other:?}; expected one of numeric, integer, categorical, boolean, label, id, ignore"
                ))
            }
        };
        if let Some(key) = present.iter().find(|k| !allowed.contains(k)) {
            return Err(format!("column `{name}`: key `{key}` does not apply to kind = {:?}", raw.kind));
        }
        let missing = raw.missing.unwrap_or_default();
        if missing == Missing::Allow && matches!(raw.kind.as_str(), "label" | "id" | "ignore") {
            return Err(format!(
                "column `{name}`: `missing = \"allow\"` applies to feature columns, not kind = {:?}",
                raw.kind
            ));
        }
        if missing == Missing::Refuse && (raw.missing_values.is_some() || raw.max_missing.is_some()) {
            return Err(format!("column `{name}`: `missing_values` and `max_missing` need `missing = \"allow\"`"));
        }
        let missing_values = match (missing, raw.missing_values) {
            (Missing::Refuse, _) => Vec::new(),
            (Missing::Allow, None) => vec![String::new()],
            (Missing::Allow, Some(v)) if v.is_empty() => {
                return Err(format!(
                    "column `{name}`: `missing_values` is empty: leave it out for the empty value alone"
                ))
            }
            (Missing::Allow, Some(v)) => v,
        };
        if let Some(share) = raw.max_missing.filter(|s| !(0.0..=1.0).contains(s)) {
            return Err(format!("column `{name}`: `max_missing` {share} is not a share in [0, 1]"));
        }
        let kind = match raw.kind.as_str() {
            "numeric" => ColumnKind::Numeric {
                min: raw.min.map(|b| b.as_f64()),
                max: raw.max.map(|b| b.as_f64()),
                transform: raw.transform.unwrap_or_default(),
            },
            "integer" => {
                let int = |b: Option<Bound>, key: &str| match b {
                    None => Ok(None),
                    Some(Bound::Int(i)) => Ok(Some(i)),
                    Some(Bound::Float(_)) => {
                        Err(format!("column `{name}`: `{key}` of an integer column must be a whole number"))
                    }
                };
                ColumnKind::Integer {
                    min: int(raw.min, "min")?,
                    max: int(raw.max, "max")?,
                    transform: raw.transform.unwrap_or_default(),
                }
            }
            "categorical" => ColumnKind::Categorical { levels: raw.levels },
            "boolean" => ColumnKind::Boolean {
                true_values: raw.true_values.unwrap_or_else(default_true),
                false_values: raw.false_values.unwrap_or_else(default_false),
            },
            "label" => ColumnKind::Label {
                positive: raw.positive.ok_or_else(|| format!("column `{name}`: a label needs `positive`"))?,
                negative: raw.negative.ok_or_else(|| format!("column `{name}`: a label needs `negative`"))?,
            },
            "id" => ColumnKind::Id,
            _ => ColumnKind::Ignore,
        };
        Ok(Column { name, kind, missing, missing_values, max_missing: raw.max_missing })
    }
}

fn default_true() -> Vec<String> {
    vec!["TRUE".into(), "true".into()]
}

fn default_false() -> Vec<String> {
    vec!["FALSE".into(), "false".into()]
}

/// A monotone transform applied to a numeric column before standardisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// The value as is.
    #[default]
    None,
    /// `ln(1 + x)`, for heavy-tailed non-negative columns such as durations.
    Log1p,
}

impl Transform {
    fn is_none(&self) -> bool {
        *self == Transform::None
    }

    /// Applies the transform.
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Transform::None => x,
            Transform::Log1p => x.ln_1p(),
        }
    }
}

/// The columns of a data set, with exactly one label column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// Field delimiter of the CSV files (a single ASCII character).
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// The columns, in the order features are built (the CSV may order them otherwise).
    pub columns: Vec<Column>,
}

fn default_delimiter() -> char {
    ','
}

/// A value parsed according to its column's kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A numeric or integer value.
    Number(f64),
    /// A categorical level, as written.
    Level(String),
    /// A boolean.
    Bool(bool),
    /// The label: true for the positive class.
    Label(bool),
    /// The row's identifier.
    Id(String),
    /// A missing value (in a column that allows them).
    Missing,
    /// The value of an ignored column.
    Ignored,
}

impl Value {
    /// The value as [`Parsed`], its text borrowed.
    pub fn as_parsed(&self) -> Parsed<'_> {
        match self {
            Value::Number(x) => Parsed::Number(*x),
            Value::Level(l) => Parsed::Level(l),
            Value::Bool(b) => Parsed::Bool(*b),
            Value::Label(b) => Parsed::Label(*b),
            Value::Id(id) => Parsed::Id(id),
            Value::Missing => Parsed::Missing,
            Value::Ignored => Parsed::Ignored,
        }
    }
}

/// A value checked against its column, text borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Parsed<'a> {
    /// A numeric or integer value.
    Number(f64),
    /// A categorical level, as written.
    Level(&'a str),
    /// A boolean.
    Bool(bool),
    /// The label: true for the positive class.
    Label(bool),
    /// The row's identifier, as written.
    Id(&'a str),
    /// A missing value (in a column that allows them).
    Missing,
    /// The value of an ignored column.
    Ignored,
}

impl Schema {
    /// Checks the schema itself: names unique and non-empty, exactly one label, sane ranges.
    /// Returns a message naming the offending key.
    pub fn check(&self) -> std::result::Result<(), ParamError> {
        if !self.delimiter.is_ascii() {
            return Err(ParamError::invalid(
                "delimiter",
                format!("{:?} is not a single ASCII character", self.delimiter),
            ));
        }
        if self.columns.is_empty() {
            return Err(ParamError::invalid("columns", "no column is declared"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, c) in self.columns.iter().enumerate() {
            let key = format!("columns[{i}] (`{}`)", c.name);
            if c.name.is_empty() {
                return Err(ParamError::invalid(format!("columns[{i}].name"), "empty column name"));
            }
            if !seen.insert(c.name.as_str()) {
                return Err(ParamError::invalid(format!("{key}.name"), "column declared twice"));
            }
            match &c.kind {
                ColumnKind::Numeric { min, max, transform } => {
                    for (k, v) in [("min", min), ("max", max)] {
                        if let Some(v) = v {
                            if !v.is_finite() {
                                return Err(ParamError::invalid(format!("{key}.{k}"), "must be finite"));
                            }
                        }
                    }
                    check_range(&key, *min, *max, *transform)?;
                }
                ColumnKind::Integer { min, max, transform } => {
                    check_range(&key, min.map(|v| v as f64), max.map(|v| v as f64), *transform)?;
                }
                ColumnKind::Categorical { levels: Some(levels) } => {
                    if levels.is_empty() {
                        return Err(ParamError::invalid(
                            format!("{key}.levels"),
                            "an empty list allows no value; leave it out to allow any",
                        ));
                    }
                    let distinct: std::collections::BTreeSet<_> = levels.iter().collect();
                    if distinct.len() != levels.len() {
                        return Err(ParamError::invalid(format!("{key}.levels"), "a level is listed twice"));
                    }
                }
                ColumnKind::Boolean { true_values, false_values } => {
                    if true_values.is_empty() || false_values.is_empty() {
                        return Err(ParamError::invalid(
                            key.clone(),
                            "`true` and `false` need at least one spelling each",
                        ));
                    }
                    if true_values.iter().any(|t| false_values.contains(t)) {
                        return Err(ParamError::invalid(key.clone(), "a spelling is both true and false"));
                    }
                }
                ColumnKind::Label { positive, negative } => {
                    if positive == negative {
                        return Err(ParamError::invalid(
                            key.clone(),
                            "`positive` and `negative` are the same spelling",
                        ));
                    }
                }
                ColumnKind::Categorical { levels: None } | ColumnKind::Id | ColumnKind::Ignore => {}
            }
        }
        if self.columns.iter().filter(|c| c.kind == ColumnKind::Id).count() > 1 {
            return Err(ParamError::invalid(
                "columns",
                "more than one column has kind = \"id\"; at most one is allowed",
            ));
        }
        let labels = self.columns.iter().filter(|c| matches!(c.kind, ColumnKind::Label { .. })).count();
        match labels {
            0 => Err(ParamError::invalid("columns", "no column has kind = \"label\"; exactly one is required")),
            1 => {
                if self.feature_columns().next().is_none() {
                    Err(ParamError::invalid("columns", "no feature column is declared besides the label"))
                } else {
                    Ok(())
                }
            }
            n => Err(ParamError::invalid(
                "columns",
                format!("{n} columns have kind = \"label\"; exactly one is allowed"),
            )),
        }
    }

    /// The label column.
    pub fn label(&self) -> &Column {
        self.columns
            .iter()
            .find(|c| matches!(c.kind, ColumnKind::Label { .. }))
            .expect("a checked schema has exactly one label column")
    }

    /// The columns used as features, in declaration order.
    pub fn feature_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns
            .iter()
            .filter(|c| !matches!(c.kind, ColumnKind::Label { .. } | ColumnKind::Id | ColumnKind::Ignore))
    }

    /// The id column, when there is one.
    pub fn id(&self) -> Option<&Column> {
        self.columns.iter().find(|c| c.kind == ColumnKind::Id)
    }

    /// Looks up a column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

fn check_range(
    key: &str,
    min: Option<f64>,
    max: Option<f64>,
    transform: Transform,
) -> std::result::Result<(), ParamError> {
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo > hi {
            return Err(ParamError::invalid(key, format!("min {lo} is greater than max {hi}")));
        }
    }
    if transform == Transform::Log1p && !min.is_some_and(|m| m >= 0.0) {
        return Err(ParamError::invalid(
            format!("{key}.transform"),
            "log1p needs `min` >= 0 so that every value has a logarithm",
        ));
    }
    Ok(())
}

/// `a == b`, compared inline: values are a few bytes long, and a call to the C library's
/// `memcmp` for each of them cost more than the comparison (measured in `predict`).
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

impl Column {
    /// Checks one raw value and parses it, borrowing text values; on failure returns the rule
    /// broken and its detail. The hot path of validation: it allocates only on failure.
    pub fn check<'a>(&self, raw: &'a str) -> std::result::Result<Parsed<'a>, (Rule, String)> {
        match &self.kind {
            ColumnKind::Ignore => Ok(Parsed::Ignored),
            _ if self.missing == Missing::Allow && self.missing_values.iter().any(|m| same(m, raw)) => {
                Ok(Parsed::Missing)
            }
            _ if raw.is_empty() => Err((Rule::Missing, "a value is required".into())),
            ColumnKind::Numeric { min, max, .. } => {
                let x: f64 = raw.parse().map_err(|_| (Rule::NotANumber, "expected a decimal number".to_string()))?;
                if !x.is_finite() {
                    return Err((Rule::NotFinite, "NaN and infinities are refused".into()));
                }
                check_bounds(x, *min, *max)?;
                Ok(Parsed::Number(x))
            }
            ColumnKind::Integer { min, max, .. } => {
                let x: i64 = raw.parse().map_err(|_| (Rule::NotAnInteger, "expected a whole number".to_string()))?;
                check_bounds(x as f64, min.map(|m| m as f64), max.map(|m| m as f64))?;
                Ok(Parsed::Number(x as f64))
            }
            ColumnKind::Categorical { levels } => match levels {
                Some(levels) if !levels.iter().any(|l| same(l, raw)) => {
                    Err((Rule::UndeclaredLevel, format!("declared levels: {}{}", levels.join(", "), hint(levels, raw))))
                }
                _ => Ok(Parsed::Level(raw)),
            },
            ColumnKind::Boolean { true_values, false_values } => {
                if true_values.iter().any(|t| same(t, raw)) {
                    Ok(Parsed::Bool(true))
                } else if false_values.iter().any(|t| same(t, raw)) {
                    Ok(Parsed::Bool(false))
                } else {
                    let spellings: Vec<String> = true_values.iter().chain(false_values).cloned().collect();
                    Err((
                        Rule::NotABoolean,
                        format!(
                            "true is {}, false is {}{}",
                            true_values.join("/"),
                            false_values.join("/"),
                            hint(&spellings, raw)
                        ),
                    ))
                }
            }
            ColumnKind::Label { positive, negative } => {
                if raw == positive {
                    Ok(Parsed::Label(true))
                } else if raw == negative {
                    Ok(Parsed::Label(false))
                } else {
                    Err((Rule::NotALabel, format!("positive is {positive:?}, negative is {negative:?}")))
                }
            }
            ColumnKind::Id => Ok(Parsed::Id(raw)),
        }
    }

    /// Parses one raw value into an owned [`Value`]; on failure returns the rule broken and its
    /// detail.
    pub fn parse(&self, raw: &str) -> std::result::Result<Value, (Rule, String)> {
        Ok(match self.check(raw)? {
            Parsed::Number(x) => Value::Number(x),
            Parsed::Level(l) => Value::Level(l.to_string()),
            Parsed::Bool(b) => Value::Bool(b),
            Parsed::Label(b) => Value::Label(b),
            Parsed::Id(id) => Value::Id(id.to_string()),
            Parsed::Missing => Value::Missing,
            Parsed::Ignored => Value::Ignored,
        })
    }

    /// Parses one raw value of a single record (no file, no line).
    pub fn parse_record_value(&self, raw: &str) -> crate::Result<Value> {
        self.parse(raw).map_err(|(rule, detail)| {
            crate::Error::Record(DataError {
                file: String::new(),
                line: 0,
                row_group: None,
                column: self.name.clone(),
                value: crate::data::report::echo(raw),
                rule,
                detail,
            })
        })
    }
}

/// "; `Yes` differs only in case or spaces" when `raw` is one of `known` but for case or
/// surrounding whitespace (`" yes"` for `"Yes"`), else nothing.
fn hint(known: &[String], raw: &str) -> String {
    let folded = raw.trim().to_lowercase();
    match known.iter().find(|k| k.trim().to_lowercase() == folded) {
        Some(k) => format!("; {k:?} differs only in case or surrounding spaces"),
        None => String::new(),
    }
}

pub(crate) fn check_bounds(x: f64, min: Option<f64>, max: Option<f64>) -> std::result::Result<(), (Rule, String)> {
    if let Some(m) = min {
        if x < m {
            return Err((Rule::BelowMin, format!("must be >= {m}")));
        }
    }
    if let Some(m) = max {
        if x > m {
            return Err((Rule::AboveMax, format!("must be <= {m}")));
        }
    }
    Ok(())
}
