//! Inferring a schema from a CSV: every value read once, in bounded memory, each column given
//! the kind, range, levels and spellings its values suggest, with notes saying what was seen
//! and what to check. `mlgate init` writes a starting configuration from it.
//!
//! The rules, in the order they are tried on a column (the label aside):
//!
//! 1. blank in every row, or a single value → `ignore` (nothing to learn from);
//! 2. named like an identifier (`id`, `customer_id`, `CustomerID`), unique and never blank → `id`;
//! 3. every value a known boolean spelling (TRUE/FALSE, true/false, yes/no, Y/N, T/F, 1/0 …)
//!    with both truths seen → `boolean`: a column of 0 and 1 is taken for a flag, not a count;
//! 4. every value a whole number → `integer` (a non-unique one named like an identifier is a
//!    code: `categorical`); else every value a decimal number → `numeric`. The range is the
//!    data's, widened by [`MARGIN`] of its span on both sides without crossing 0; a
//!    non-negative, right-skewed column (skewness ≥ [`HEAVY_TAIL_SKEW`], largest value ≥ 10)
//!    gets `transform = "log1p"` and no `max`; whole numbers from 1 with at most 20 values
//!    may be codes (a browser, a region): they stay integers, untransformed, with a word to
//!    check;
//! 5. otherwise text: unique per row with more than [`MAX_LEVELS`] values and never blank →
//!    `id` (the first such column; later ones `ignore`); at most [`MAX_LEVELS`] distinct values
//!    → `categorical` with its `levels`; more → `categorical` without levels, or `ignore` when
//!    nearly every row differs (free text).
//!
//! A column with blank values gets `missing = "allow"` (an `id` never does: it becomes
//! `ignore`). The label is the column named by the caller, else the one column named `label`,
//! `target`, `class`, `outcome` or `y` with exactly two values; its positive value is the
//! true one of a boolean pair, else the rarer one.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::PathBuf;

use crate::data::reader::{CsvSource, LabelPolicy};
use crate::data::report::{echo, HeaderProblem};
use crate::data::schema::{Column, ColumnKind, Missing, Schema, Transform};
use crate::error::{Error, Result};

/// Distinct values listed as a categorical column's `levels` at most; tracked per column.
pub const MAX_LEVELS: usize = 50;
/// Distinct values counted per column at most (as 64-bit hashes); uniqueness beyond is taken
/// on trust from this many.
pub const MAX_COUNTED: usize = 100_000;
/// Share of a numeric column's span added below its smallest and above its largest value.
pub const MARGIN: f64 = 0.1;
/// Sample skewness from which a non-negative column is called heavy-tailed.
pub const HEAVY_TAIL_SKEW: f64 = 2.0;
/// Column names (compared without case) taken for the label when the caller names none.
pub const LABEL_NAMES: [&str; 5] = ["label", "target", "class", "outcome", "y"];

/// Spellings of true, each paired with the false spelling at the same place.
const TRUE_SPELLINGS: [&str; 14] =
    ["TRUE", "true", "True", "yes", "Yes", "YES", "Y", "y", "T", "t", "1", "on", "On", "ON"];
const FALSE_SPELLINGS: [&str; 14] =
    ["FALSE", "false", "False", "no", "No", "NO", "N", "n", "F", "f", "0", "off", "Off", "OFF"];

/// What the caller tells inference.
#[derive(Debug, Clone)]
pub struct InferOptions {
    /// Field delimiter of the file.
    pub delimiter: char,
    /// The label column, when the caller names it.
    pub label: Option<String>,
}

impl Default for InferOptions {
    fn default() -> Self {
        InferOptions { delimiter: ',', label: None }
    }
}

/// A file's inferred schema: one column per header column, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Inference {
    /// Data rows read.
    pub rows: u64,
    /// Field delimiter.
    pub delimiter: char,
    /// The columns with what was seen.
    pub columns: Vec<InferredColumn>,
    /// How the label was found.
    pub label: LabelChoice,
}

/// How the label column was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelChoice {
    /// Named by the caller.
    Given,
    /// The one column with a label's name and two values.
    Named,
    /// None given, none obvious: the columns with exactly two values, which could be.
    Missing {
        /// Names of the two-valued columns.
        candidates: Vec<String>,
    },
}

/// One column: its declaration and the notes that explain it.
#[derive(Debug, Clone, PartialEq)]
pub struct InferredColumn {
    /// The column as it would be declared.
    pub column: Column,
    /// What was seen and inferred, in words (`integer, 0 … 27 in 9,864 rows`).
    pub seen: String,
    /// What a person should check, in words (none when nothing is doubtful).
    pub check: Vec<String>,
    /// Its two values as (positive, negative) when the column has exactly two and could be
    /// the label.
    pub as_label: Option<(String, String)>,
}

impl Inference {
    /// The schema, when a label was chosen.
    pub fn schema(&self) -> Option<Schema> {
        if let LabelChoice::Missing { .. } = self.label {
            return None;
        }
        Some(Schema { delimiter: self.delimiter, columns: self.columns.iter().map(|c| c.column.clone()).collect() })
    }
}

/// Reads every row of `reader` (named `name` in errors) and infers its schema.
pub fn infer<R: Read>(reader: R, name: &str, options: &InferOptions) -> Result<Inference> {
    let unusable = |problem: String| unusable(name, problem);
    if !options.delimiter.is_ascii() {
        return Err(unusable(format!("the delimiter {:?} is not a single ASCII character", options.delimiter)));
    }
    // No column declared yet: the reader checks only that the header has no name twice.
    let empty = Schema { delimiter: options.delimiter, columns: Vec::new() };
    let mut source = CsvSource::open(reader, name, &empty, LabelPolicy::Optional)?;
    let header = source.header().to_vec();
    check_header(&header, options.delimiter, name)?;
    if let Some(label) = &options.label {
        if !header.contains(label) {
            return Err(unusable(format!(
                "the label {label:?} is not a column of the header ({})",
                echo(&header.join(", "))
            )));
        }
    }
    let mut tallies: Vec<Tally> = header.iter().map(|_| Tally::default()).collect();
    let mut rows = 0u64;
    source.drive(&mut |line: u64, record: &mut csv::ByteRecord| {
        if record.len() != header.len() {
            return Err(unusable(format!(
                "line {line}: {} fields where the header has {}",
                record.len(),
                header.len()
            )));
        }
        for (i, (field, tally)) in record.iter().zip(&mut tallies).enumerate() {
            let value = std::str::from_utf8(field)
                .map_err(|_| unusable(format!("line {line}: column `{}`: the value is not UTF-8 text", header[i])))?;
            tally.add(value);
        }
        rows += 1;
        Ok(())
    })?;
    if rows == 0 {
        return Err(unusable("the file has a header but no data rows".into()));
    }
    decide(name, header, tallies, rows, options)
}

fn unusable(name: &str, problem: String) -> Error {
    Error::Unusable { path: PathBuf::from(name), problem }
}

/// Header problems a schema cannot hold: a single column that is split on another delimiter,
/// a column without a name.
fn check_header(header: &[String], delimiter: char, name: &str) -> Result<()> {
    if header.len() == 1 {
        if let Some(found) = [',', ';', '\t', '|'].into_iter().find(|d| *d != delimiter && header[0].contains(*d)) {
            let problem = HeaderProblem::WrongDelimiter { expected: delimiter, found };
            return Err(Error::Header { path: PathBuf::from(name), problem });
        }
    }
    match header.iter().position(|h| h.trim().is_empty()) {
        Some(i) => Err(unusable(name, format!("column {} of the header has no name; every column needs one", i + 1))),
        None => Ok(()),
    }
}

/// What one column's values showed, in bounded memory.
#[derive(Debug)]
struct Tally {
    blank: u64,
    present: u64,
    integer: bool,
    numeric: bool,
    min: f64,
    max: f64,
    /// Exact bounds while every value is a whole number.
    int_min: i64,
    int_max: i64,
    /// Sums of powers of (value − the first value), for the skewness.
    shift: Option<f64>,
    sums: [f64; 3],
    /// Distinct values in order of appearance with their counts, until there are more than
    /// [`MAX_LEVELS`].
    levels: Option<Vec<(String, u64)>>,
    index: HashMap<String, usize>,
    /// Hashes of the distinct values, until there are [`MAX_COUNTED`].
    hashes: HashSet<u64>,
    /// Values hashed: those present before the set was full.
    hashed: u64,
    /// A value repeated an earlier one (among those counted).
    repeated: bool,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            blank: 0,
            present: 0,
            integer: true,
            numeric: true,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            int_min: i64::MAX,
            int_max: i64::MIN,
            shift: None,
            sums: [0.0; 3],
            levels: Some(Vec::new()),
            index: HashMap::new(),
            hashes: HashSet::new(),
            hashed: 0,
            repeated: false,
        }
    }
}

impl Tally {
    fn add(&mut self, value: &str) {
        // Only the empty value is blank: validation coerces nothing, so a spelling such as
        // "NA" is a value here as it is there.
        if value.is_empty() {
            self.blank += 1;
            return;
        }
        self.present += 1;
        if self.integer {
            match value.parse::<i64>() {
                Ok(i) => {
                    self.int_min = self.int_min.min(i);
                    self.int_max = self.int_max.max(i);
                }
                Err(_) => self.integer = false,
            }
        }
        if self.numeric {
            match value.parse::<f64>() {
                Ok(x) if x.is_finite() => {
                    self.min = self.min.min(x);
                    self.max = self.max.max(x);
                    let d = x - *self.shift.get_or_insert(x);
                    self.sums[0] += d;
                    self.sums[1] += d * d;
                    self.sums[2] += d * d * d;
                }
                _ => self.numeric = false,
            }
        }
        if let Some(levels) = &mut self.levels {
            match self.index.get(value) {
                Some(&i) => levels[i].1 += 1,
                None if levels.len() < MAX_LEVELS => {
                    self.index.insert(value.to_string(), levels.len());
                    levels.push((value.to_string(), 1));
                }
                None => {
                    self.levels = None;
                    self.index = HashMap::new();
                }
            }
        }
        if self.hashes.len() < MAX_COUNTED {
            self.hashed += 1;
            let mut h = std::collections::hash_map::DefaultHasher::new();
            value.hash(&mut h);
            if !self.hashes.insert(h.finish()) {
                self.repeated = true;
            }
        }
    }

    /// Distinct values: exact up to [`MAX_COUNTED`].
    fn distinct(&self) -> usize {
        self.levels.as_ref().map_or(self.hashes.len(), Vec::len)
    }

    /// Every value differs from the others (as far as counted), and none is blank.
    fn unique(&self) -> bool {
        !self.repeated && self.blank == 0
    }

    /// More than half the values differ from every other (measured on the values counted).
    fn mostly_distinct(&self) -> bool {
        self.hashes.len() as u64 * 2 > self.hashed
    }

    fn skewness(&self) -> f64 {
        let n = self.present as f64;
        let mean = self.sums[0] / n;
        let var = self.sums[1] / n - mean * mean;
        if var <= 0.0 {
            return 0.0;
        }
        let third = self.sums[2] / n - 3.0 * mean * self.sums[1] / n + 2.0 * mean.powi(3);
        third / var.powf(1.5)
    }

    /// (true spellings, false spellings) seen, when every value is a known boolean spelling
    /// and both truths appear.
    fn boolean(&self) -> Option<(Vec<String>, Vec<String>)> {
        let levels = self.levels.as_ref()?;
        let (mut t, mut f) = (Vec::new(), Vec::new());
        for (value, _) in levels {
            if TRUE_SPELLINGS.contains(&value.as_str()) {
                t.push(value.clone());
            } else if FALSE_SPELLINGS.contains(&value.as_str()) {
                f.push(value.clone());
            } else {
                return None;
            }
        }
        (!t.is_empty() && !f.is_empty()).then_some((t, f))
    }

    /// (positive, negative) when the column has exactly two values, none blank.
    fn two_values(&self) -> Option<(String, String)> {
        let levels = self.levels.as_ref().filter(|l| l.len() == 2 && self.blank == 0)?;
        let ((a, na), (b, nb)) = (&levels[0], &levels[1]);
        let truth = |v: &str| TRUE_SPELLINGS.iter().position(|t| *t == v);
        let falsity = |v: &str| FALSE_SPELLINGS.iter().position(|f| *f == v);
        Some(match (truth(a), falsity(b), truth(b), falsity(a)) {
            (Some(_), Some(_), _, _) => (a.clone(), b.clone()),
            (_, _, Some(_), Some(_)) => (b.clone(), a.clone()),
            // No spelling says which is true: the rarer value is the event to predict (a
            // purchase, a churn); on a tie, the later in sort order.
            _ if na < nb || (na == nb && a > b) => (a.clone(), b.clone()),
            _ => (b.clone(), a.clone()),
        })
    }
}

/// True when a name reads as an identifier: `id`, `…_id`, `…-id`, `… id`, `CustomerID`,
/// `sessionId` (but not `paid` or `VALID`).
pub fn named_like_id(name: &str) -> bool {
    let lower = name.to_lowercase();
    if lower == "id" || ["_id", "-id", " id", ".id"].iter().any(|s| lower.ends_with(s)) {
        return true;
    }
    let camel = name.strip_suffix("ID").or_else(|| name.strip_suffix("Id"));
    camel.and_then(|rest| rest.chars().last()).is_some_and(|c| c.is_lowercase())
}

fn decide(
    name: &str,
    header: Vec<String>,
    tallies: Vec<Tally>,
    rows: u64,
    options: &InferOptions,
) -> Result<Inference> {
    let label_index = match &options.label {
        Some(given) => header.iter().position(|h| h == given),
        None => {
            let named: Vec<usize> = (0..header.len())
                .filter(|&i| {
                    LABEL_NAMES.contains(&header[i].to_lowercase().as_str()) && tallies[i].two_values().is_some()
                })
                .collect();
            (named.len() == 1).then(|| named[0])
        }
    };
    let mut columns = Vec::with_capacity(header.len());
    // Identifiers by name first: a text column unique per row comes second to them.
    let named_id =
        (0..header.len()).find(|&i| Some(i) != label_index && named_like_id(&header[i]) && tallies[i].unique());
    let mut id_free = named_id.is_none();
    for (i, (column_name, tally)) in header.iter().zip(&tallies).enumerate() {
        let column = if Some(i) == label_index {
            label_column(name, column_name, tally, rows)?
        } else {
            let mut column = feature_column(column_name, tally, rows, named_id == Some(i), &mut id_free);
            column.as_label = tally.two_values();
            column
        };
        columns.push(column);
    }
    let label = match (label_index, &options.label) {
        (Some(_), Some(_)) => LabelChoice::Given,
        (Some(_), None) => LabelChoice::Named,
        (None, _) => LabelChoice::Missing {
            candidates: columns.iter().filter(|c| c.as_label.is_some()).map(|c| c.column.name.clone()).collect(),
        },
    };
    if label_index.is_some()
        && !columns
            .iter()
            .any(|c| !matches!(c.column.kind, ColumnKind::Label { .. } | ColumnKind::Id | ColumnKind::Ignore))
    {
        return Err(unusable(
            name,
            "no column besides the label can be a feature (each is blank, constant or an identifier)".into(),
        ));
    }
    Ok(Inference { rows, delimiter: options.delimiter, columns, label })
}

fn label_column(file: &str, name: &str, tally: &Tally, rows: u64) -> Result<InferredColumn> {
    let unusable = |problem: String| unusable(file, problem);
    if tally.blank > 0 {
        return Err(unusable(format!(
            "label column `{name}`: {} of {} rows are blank; a label needs a value in every row",
            tally.blank, rows
        )));
    }
    let Some((positive, negative)) = tally.two_values() else {
        let seen = match &tally.levels {
            Some(levels) => {
                let listed: Vec<String> = levels.iter().map(|(v, n)| format!("{:?} ({n})", echo(v))).collect();
                format!("{} distinct values: {}", levels.len(), listed.join(", "))
            }
            None => format!("more than {MAX_LEVELS} distinct values"),
        };
        return Err(unusable(format!("label column `{name}` must hold exactly two distinct values; it has {seen}")));
    };
    let count = |v: &str| tally.levels.as_ref().and_then(|l| l.iter().find(|(k, _)| k == v)).map_or(0, |(_, n)| *n);
    let p = count(&positive);
    let mut check = Vec::new();
    if tally.boolean().is_none() {
        check.push(format!("positive is the rarer value {positive:?}: swap `positive` and `negative` if {negative:?} is the event to predict"));
    }
    Ok(InferredColumn {
        column: plain(name, ColumnKind::Label { positive: positive.clone(), negative: negative.clone() }, false),
        seen: format!(
            "label, {positive:?} in {} of {} rows ({:.1} %), {negative:?} in the others",
            thousands(p),
            thousands(rows),
            100.0 * p as f64 / rows as f64
        ),
        check,
        as_label: None,
    })
}

fn plain(name: &str, kind: ColumnKind, blanks: bool) -> Column {
    Column {
        name: name.to_string(),
        kind,
        missing: if blanks { Missing::Allow } else { Missing::Refuse },
        missing_values: if blanks { vec![String::new()] } else { Vec::new() },
        max_missing: None,
    }
}

fn feature_column(name: &str, tally: &Tally, rows: u64, is_named_id: bool, id_free: &mut bool) -> InferredColumn {
    let in_rows = format!("in {} rows", thousands(rows));
    let blanks = tally.blank > 0;
    let blank_note =
        if blanks { format!("; {} blank: missing = \"allow\"", thousands(tally.blank)) } else { String::new() };
    let mut check = Vec::new();
    let done = |kind: ColumnKind, seen: String, check: Vec<String>| InferredColumn {
        column: plain(name, kind.clone(), blanks && !matches!(kind, ColumnKind::Id | ColumnKind::Ignore)),
        seen,
        check,
        as_label: None,
    };
    if tally.present == 0 {
        return done(ColumnKind::Ignore, format!("ignore: blank {in_rows}"), check);
    }
    if tally.distinct() == 1 {
        let value = &tally.levels.as_ref().expect("one value is listed")[0].0;
        let blank = if blanks { format!(", {} blank", thousands(tally.blank)) } else { String::new() };
        return done(ColumnKind::Ignore, format!("ignore: always {:?} {in_rows}{blank}", echo(value)), check);
    }
    if is_named_id {
        return done(ColumnKind::Id, format!("id: named like one, unique {in_rows}"), check);
    }
    if let Some((true_values, false_values)) = tally.boolean() {
        if true_values == ["1"] {
            check.push("a column of 0 and 1 is taken for a flag: make it an integer if it counts something".into());
        }
        let seen = format!("boolean, {} / {} {in_rows}{blank_note}", true_values.join(", "), false_values.join(", "));
        return done(ColumnKind::Boolean { true_values, false_values }, seen, check);
    }
    if tally.numeric {
        if tally.integer && named_like_id(name) {
            return categorical(name, tally, &in_rows, &blank_note, "integer codes named like an identifier", blanks);
        }
        return number(name, tally, &in_rows, &blank_note, blanks);
    }
    let many = tally.levels.is_none();
    if many && tally.unique() && *id_free {
        *id_free = false;
        return done(ColumnKind::Id, format!("id: text, unique {in_rows}"), check);
    }
    if many && tally.mostly_distinct() {
        let blank = if blanks { format!(", {} blank", thousands(tally.blank)) } else { String::new() };
        let seen = format!("ignore: text, {} distinct values {in_rows}{blank}", count_distinct(tally));
        check.push(
            "most values differ from all others (free text or a second identifier): not a usable category".into(),
        );
        return done(ColumnKind::Ignore, seen, check);
    }
    categorical(name, tally, &in_rows, &blank_note, "text", blanks)
}

fn categorical(name: &str, tally: &Tally, in_rows: &str, blank_note: &str, what: &str, blanks: bool) -> InferredColumn {
    let mut check = Vec::new();
    let (levels, seen) = match &tally.levels {
        Some(levels) => {
            let mut sorted = levels.clone();
            // The most common first; a stable sort keeps the file's order among equals.
            sorted.sort_by_key(|l| std::cmp::Reverse(l.1));
            let seen = format!("categorical ({what}), {} levels {in_rows}{blank_note}", levels.len());
            (Some(sorted.into_iter().map(|(l, _)| l).collect()), seen)
        }
        None => {
            check.push(format!(
                "more than {MAX_LEVELS} levels: any level is allowed; make it `ignore` if it is free text"
            ));
            (None, format!("categorical ({what}), {} distinct values {in_rows}{blank_note}", count_distinct(tally)))
        }
    };
    InferredColumn { column: plain(name, ColumnKind::Categorical { levels }, blanks), seen, check, as_label: None }
}

fn number(name: &str, tally: &Tally, in_rows: &str, blank_note: &str, blanks: bool) -> InferredColumn {
    let (lo, hi) = (tally.min, tally.max);
    // Whole numbers from 1 with few values are as often codes (a browser, a region) as counts:
    // kept as numbers, with a word to check, and never transformed.
    let code_like = tally.integer && lo >= 1.0 && tally.distinct() <= 20;
    let heavy = !code_like && lo >= 0.0 && hi >= 10.0 && tally.skewness() >= HEAVY_TAIL_SKEW;
    let (wide_lo, wide_hi) = widen(lo, hi);
    let transform = if heavy { Transform::Log1p } else { Transform::None };
    let mut check = Vec::new();
    let what = if tally.integer { "integer" } else { "numeric" };
    let mut seen = format!("{what}, {} … {} {in_rows}{blank_note}", short(lo), short(hi));
    if heavy {
        seen.push_str(&format!(
            "; heavy-tailed (skewness {:.1}): log1p, and no max, as new data may go well beyond",
            tally.skewness()
        ));
    } else {
        seen.push_str(&format!("; range widened by {:.0} %", 100.0 * MARGIN));
    }
    if code_like {
        check.push(format!(
            "{} distinct whole numbers from {}: if they are codes rather than amounts, make it categorical",
            tally.distinct(),
            short(lo)
        ));
    }
    let kind = if tally.integer {
        // Float arithmetic may round a large whole number inwards: the exact bounds cap it.
        let (min, max) = ((wide_lo.floor() as i64).min(tally.int_min), (wide_hi.ceil() as i64).max(tally.int_max));
        ColumnKind::Integer { min: Some(min), max: (!heavy).then_some(max), transform }
    } else {
        let (min, max) = nice_bounds(lo, hi, wide_lo, wide_hi);
        ColumnKind::Numeric { min: Some(min), max: (!heavy).then_some(max), transform }
    };
    InferredColumn { column: plain(name, kind, blanks), seen, check, as_label: None }
}

/// `[lo, hi]` widened by [`MARGIN`] of its span on each side, never crossing 0.
fn widen(lo: f64, hi: f64) -> (f64, f64) {
    let margin = MARGIN * (hi - lo);
    let mut wide = (lo - margin, hi + margin);
    if lo >= 0.0 {
        wide.0 = wide.0.max(0.0);
    }
    if hi <= 0.0 {
        wide.1 = wide.1.min(0.0);
    }
    wide
}

/// The widened bounds rounded outwards to the margin's first significant digit, so that the
/// configuration reads `0.22` rather than `0.22000000000000003`; still holding `[lo, hi]`.
fn nice_bounds(lo: f64, hi: f64, wide_lo: f64, wide_hi: f64) -> (f64, f64) {
    let margin = MARGIN * (hi - lo);
    let step = 10f64.powf(margin.log10().floor());
    let decimals = (-margin.log10().floor()).clamp(0.0, 15.0) as usize;
    let round = |x: f64, up: bool| {
        // The tolerance keeps 0.2 + 0.02 = 0.22000000000000003 at 0.22 (the margin, at least
        // one step, keeps the data inside).
        let r = if up { (x / step - 1e-6).ceil() * step } else { (x / step + 1e-6).floor() * step };
        format!("{r:.decimals$}").parse::<f64>().unwrap_or(x)
    };
    let (mut a, mut b) = (round(wide_lo, false), round(wide_hi, true));
    // A bound that rounding put past 0 or inside the data falls back to the exact one.
    if (lo >= 0.0 && a < 0.0) || a > lo || !a.is_finite() {
        a = wide_lo;
    }
    if (hi <= 0.0 && b > 0.0) || b < hi || !b.is_finite() {
        b = wide_hi;
    }
    (a, b)
}

fn count_distinct(tally: &Tally) -> String {
    if tally.hashes.len() >= MAX_COUNTED {
        format!("at least {}", thousands(MAX_COUNTED as u64))
    } else {
        thousands(tally.distinct() as u64)
    }
}

/// A number as a comment shows it: whole numbers whole, others with at most six significant
/// digits.
fn short(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        thousands_signed(x as i64)
    } else {
        let s = format!("{x:.6}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s.len() > 12 {
            format!("{x:.3e}")
        } else {
            s.to_string()
        }
    }
}

fn thousands_signed(n: i64) -> String {
    if n < 0 {
        format!("-{}", thousands(n.unsigned_abs()))
    } else {
        thousands(n as u64)
    }
}

/// `12330` as `12,330`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(csv: &str, label: Option<&str>) -> Result<Inference> {
        infer(csv.as_bytes(), "t.csv", &InferOptions { delimiter: ',', label: label.map(String::from) })
    }

    fn kind<'a>(inference: &'a Inference, name: &str) -> &'a Column {
        &inference.columns.iter().find(|c| c.column.name == name).unwrap().column
    }

    /// `rows` rows of a little of everything.
    fn sample(rows: usize) -> String {
        let mut s = String::from("customer_id,age,amount,visits,plan,member,note,bought\n");
        for i in 0..rows {
            let amount = if i % 50 == 0 { 5000.0 + i as f64 } else { (i % 97) as f64 * 1.25 };
            let member = ["yes", "no", ""][i % 3];
            let plan = ["basic", "pro", "team"][i % 3];
            let bought = if i % 4 == 0 { "yes" } else { "no" };
            s.push_str(&format!("C{i:05},{},{amount},{},{plan},{member},note {i},{bought}\n", 20 + i % 50, i % 7));
        }
        s
    }

    #[test]
    fn kinds_ranges_and_spellings_follow_the_data() {
        let inference = run(&sample(300), Some("bought")).unwrap();
        assert_eq!(inference.rows, 300);
        assert_eq!(inference.label, LabelChoice::Given);
        assert_eq!(kind(&inference, "customer_id").kind, ColumnKind::Id);
        // 20 … 69 widened by 10 % of 49 (4.9): 15.1 … 73.9, rounded outwards.
        assert_eq!(
            kind(&inference, "age").kind,
            ColumnKind::Integer { min: Some(15), max: Some(74), transform: Transform::None }
        );
        assert_eq!(
            kind(&inference, "amount").kind,
            ColumnKind::Numeric { min: Some(0.0), max: None, transform: Transform::Log1p },
            "a non-negative column with a heavy right tail"
        );
        assert_eq!(
            kind(&inference, "plan").kind,
            ColumnKind::Categorical { levels: Some(vec!["basic".into(), "pro".into(), "team".into()]) }
        );
        let member = kind(&inference, "member");
        assert_eq!(
            member.kind,
            ColumnKind::Boolean { true_values: vec!["yes".into()], false_values: vec!["no".into()] }
        );
        assert_eq!(member.missing, Missing::Allow);
        assert_eq!(kind(&inference, "note").kind, ColumnKind::Ignore, "unique text after the id is free text");
        assert_eq!(
            kind(&inference, "bought").kind,
            ColumnKind::Label { positive: "yes".into(), negative: "no".into() }
        );
        let schema = inference.schema().unwrap();
        schema.check().unwrap();
        // The schema validates the very file it was inferred from.
        crate::data::validation::read_csv(sample(300).as_bytes(), "t.csv", &schema, LabelPolicy::Required).unwrap();
    }

    #[test]
    fn the_label_is_found_by_name_or_left_to_the_caller() {
        let named = run("x,target\n1,a\n2,b\n3,b\n", None).unwrap();
        assert_eq!(named.label, LabelChoice::Named);
        // "a" is the rarer value: the event to predict.
        assert_eq!(kind(&named, "target").kind, ColumnKind::Label { positive: "a".into(), negative: "b".into() });
        let none = run("x,Revenue,Weekend\n1,TRUE,no\n2,FALSE,yes\n3,FALSE,no\n", None).unwrap();
        assert_eq!(none.label, LabelChoice::Missing { candidates: vec!["Revenue".into(), "Weekend".into()] });
        assert!(none.schema().is_none());
    }

    #[test]
    fn a_label_without_exactly_two_values_or_with_blanks_is_refused_naming_them() {
        let three = run("x,y\n1,a\n2,b\n3,c\n", Some("y")).unwrap_err();
        assert!(
            matches!(&three, Error::Unusable { problem, .. } if problem.contains("exactly two") && problem.contains("\"c\" (1)")),
            "{three}"
        );
        let blank = run("x,y\n1,a\n2,\n3,b\n", Some("y")).unwrap_err();
        assert!(
            matches!(&blank, Error::Unusable { problem, .. } if problem.contains("1 of 3 rows are blank")),
            "{blank}"
        );
        let absent = run("x,y\n1,a\n", Some("z")).unwrap_err();
        assert!(
            matches!(&absent, Error::Unusable { problem, .. } if problem.contains("label \"z\" is not a column")),
            "{absent}"
        );
    }

    #[test]
    fn header_and_row_problems_are_typed_errors() {
        assert!(matches!(run("", None), Err(Error::Header { problem: HeaderProblem::Empty, .. })));
        assert!(matches!(
            run("a;b;c\n1;2;3\n", None),
            Err(Error::Header { problem: HeaderProblem::WrongDelimiter { found: ';', .. }, .. })
        ));
        assert!(matches!(
            run("a,a\n1,2\n", None),
            Err(Error::Header { problem: HeaderProblem::DuplicateColumn(_), .. })
        ));
        assert!(
            matches!(run("a,,c\n1,2,3\n", None), Err(Error::Unusable { problem, .. }) if problem.contains("column 2"))
        );
        assert!(
            matches!(run("a,b\n1,2\n3\n", None), Err(Error::Unusable { problem, .. }) if problem.starts_with("line 3:"))
        );
        assert!(matches!(run("a,b\n", None), Err(Error::Unusable { problem, .. }) if problem.contains("no data rows")));
    }

    #[test]
    fn zero_one_is_a_flag_integer_codes_named_as_ids_are_categories_constants_are_ignored() {
        let mut s = String::from("flag,shop_id,count,same,y\n");
        for i in 0..100 {
            s.push_str(&format!("{},{},{},k,{}\n", i % 2, i % 4, i % 9, if i % 3 == 0 { "1" } else { "0" }));
        }
        let inference = run(&s, Some("y")).unwrap();
        assert_eq!(
            kind(&inference, "flag").kind,
            ColumnKind::Boolean { true_values: vec!["1".into()], false_values: vec!["0".into()] }
        );
        assert!(matches!(kind(&inference, "shop_id").kind, ColumnKind::Categorical { levels: Some(_) }));
        assert!(matches!(kind(&inference, "count").kind, ColumnKind::Integer { min: Some(0), max: Some(9), .. }));
        assert_eq!(kind(&inference, "same").kind, ColumnKind::Ignore);
        assert_eq!(kind(&inference, "y").kind, ColumnKind::Label { positive: "1".into(), negative: "0".into() });
    }

    #[test]
    fn past_the_counted_values_text_is_judged_on_those_counted() {
        let rows = MAX_COUNTED + 50_000;
        let mut s = String::from("key,note,city,y\n");
        for i in 0..rows {
            // key: unique; note: repeats only after 120,000 rows; city: 200 values.
            s.push_str(&format!("k{i},n{},c{},{}\n", i % 120_000, i % 200, if i % 3 == 0 { "a" } else { "b" }));
        }
        let inference = run(&s, Some("y")).unwrap();
        assert_eq!(kind(&inference, "key").kind, ColumnKind::Id);
        assert_eq!(kind(&inference, "note").kind, ColumnKind::Ignore, "free text, though it repeats later");
        assert_eq!(kind(&inference, "city").kind, ColumnKind::Categorical { levels: None });
    }

    #[test]
    fn widened_ranges_hold_the_data_and_never_cross_zero() {
        for (lo, hi) in
            [(0.0, 0.2), (0.013, 0.2), (-5.5, 3.25), (1e-9, 3e-9), (-1e6, -2.0), (17.0, 17.5), (0.0, 63974.0)]
        {
            let (a, b) = widen(lo, hi);
            let (a, b) = nice_bounds(lo, hi, a, b);
            assert!(a <= lo && b >= hi, "{lo} … {hi} → {a} … {b}");
            assert!(lo < 0.0 || a >= 0.0, "{lo} … {hi} → {a}");
            assert!(hi > 0.0 || b <= 0.0, "{lo} … {hi} → {b}");
        }
        let (a, b) = widen(0.0, 0.2);
        assert_eq!(nice_bounds(0.0, 0.2, a, b), (0.0, 0.22));
    }

    #[test]
    fn names_read_as_identifiers_only_at_a_word_boundary() {
        for yes in ["id", "ID", "customer_id", "CustomerID", "sessionId", "order-id"] {
            assert!(named_like_id(yes), "{yes}");
        }
        for no in ["paid", "VALID", "idle", "Android", "grid"] {
            assert!(!named_like_id(no), "{no}");
        }
        assert_eq!(thousands(12330), "12,330");
        assert_eq!(thousands(999), "999");
    }
}
