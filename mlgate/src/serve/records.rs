//! A JSON request's records, read strictly and straight into the fields the scorer reads: a key
//! given twice, a key the schema does not have, a value that is not a scalar or is too long is a
//! broken value (the first [`MAX_KEPT_ERRORS`] listed, every one counted by column and rule).
//! The request is never held as a JSON tree: an unknown key's value is skipped unread.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use model::data::report::{echo, MAX_KEPT_ERRORS};
use model::data::schema::ColumnKind;
use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::Value;

use super::Loaded;

/// The longest id a record or a feedback item may carry, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// The longest value of any other column, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024;
/// The column under which keys the schema does not have are counted: one series for them all,
/// so that clients cannot make the counts (or the metrics) grow without bound.
pub const UNKNOWN_COLUMN: &str = "(unknown)";

/// A value broken in a request: which record, which column, the value, the rule.
#[derive(Serialize)]
pub struct Broken {
    pub record: u64,
    pub column: String,
    pub value: String,
    pub rule: String,
    pub detail: String,
}

/// The broken values of a request: the first ones listed, all counted.
#[derive(Default)]
pub struct Tally {
    /// The first [`MAX_KEPT_ERRORS`].
    pub listed: Vec<Broken>,
    /// (column, rule) → broken values; unknown keys under [`UNKNOWN_COLUMN`].
    pub counts: BTreeMap<(String, String), u64>,
    /// Every broken value.
    pub total: u64,
}

impl Tally {
    pub fn push(&mut self, counted_as: &str, broken: Broken) {
        self.total += 1;
        *self.counts.entry((counted_as.to_string(), broken.rule.clone())).or_default() += 1;
        if self.listed.len() < MAX_KEPT_ERRORS {
            self.listed.push(broken);
        }
    }
}

/// What a request's records became.
#[derive(Default)]
pub struct Records {
    /// Each record's fields in the compiled columns' order, with its index.
    pub rows: Vec<(u64, csv::ByteRecord)>,
    /// Records in the request (counted to the end even past the limit, then not kept).
    pub count: usize,
    /// Records with at least one broken value found while reading.
    pub bad_records: u64,
    pub tally: Tally,
}

/// How a JSON value becomes a column's text, beyond a string's own.
pub enum Kind<'a> {
    /// A boolean column: the spellings a JSON `true` and `false` become.
    Boolean(&'a (String, String)),
    /// A categorical column, with its declared levels when it has them.
    Categorical(Option<&'a [String]>),
    /// Any other column: a value's JSON text.
    Other,
}

/// A JSON value as the text a CSV field would hold; `None` for an array or an object.
fn field_text(value: &Value, kind: &Kind) -> Option<String> {
    match value {
        Value::Null => Some(String::new()),
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(match (kind, n.as_f64()) {
            // A level coded as an integer (a browser id, `83`) sent as the number `83.0`: JSON
            // does not tell 83 from 83.0, so the number is the level `83`, as the CSV text `83`
            // would be — unless `83.0` itself is a declared level.
            (Kind::Categorical(levels), Some(x))
                if n.is_f64()
                    && x.fract() == 0.0
                    && x.abs() < 9.0e15
                    && !levels.is_some_and(|l| l.contains(&n.to_string())) =>
            {
                format!("{}", x as i64)
            }
            _ => n.to_string(),
        }),
        Value::Bool(b) => Some(match kind {
            Kind::Boolean((t, f)) => {
                if *b {
                    t.clone()
                } else {
                    f.clone()
                }
            }
            _ => b.to_string(),
        }),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// What reading needs of the served model.
struct Layout<'a> {
    loaded: &'a Loaded,
    kinds: Vec<Kind<'a>>,
    /// The id column's index among the compiled columns, when the schema has one.
    id: Option<usize>,
}

/// Reads `{"records": [{column: value, …}, …]}`; a syntax error, or another shape, is `Err`.
/// Records past `max_records` are counted, not kept.
pub fn read(bytes: &[u8], loaded: &Loaded, max_records: usize) -> Result<Records, serde_json::Error> {
    let schema = &loaded.compiled.artifact().schema;
    let kinds = loaded
        .compiled
        .columns()
        .iter()
        .zip(&loaded.booleans)
        .map(|(name, boolean)| match (boolean, schema.column(name).map(|c| &c.kind)) {
            (Some(spellings), _) => Kind::Boolean(spellings),
            (None, Some(ColumnKind::Categorical { levels })) => Kind::Categorical(levels.as_deref()),
            _ => Kind::Other,
        })
        .collect();
    let id = schema.id().and_then(|c| loaded.index.get(&c.name).copied());
    let layout = Layout { loaded, kinds, id };
    let mut records = Records::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Request { layout: &layout, out: &mut records, max_records }.deserialize(&mut de)?;
    de.end()?;
    Ok(records)
}

/// The request object: `records` and nothing else.
struct Request<'a> {
    layout: &'a Layout<'a>,
    out: &'a mut Records,
    max_records: usize,
}

impl<'de> DeserializeSeed<'de> for Request<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Request<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with `records`")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<String>()? {
            if key != "records" {
                return Err(A::Error::unknown_field(&echo(&key), &["records"]));
            }
            if seen {
                return Err(A::Error::duplicate_field("records"));
            }
            seen = true;
            map.next_value_seed(RecordList {
                layout: self.layout,
                out: &mut *self.out,
                max_records: self.max_records,
            })?;
        }
        if !seen {
            return Err(A::Error::missing_field("records"));
        }
        Ok(())
    }
}

struct RecordList<'a> {
    layout: &'a Layout<'a>,
    out: &'a mut Records,
    max_records: usize,
}

impl<'de> DeserializeSeed<'de> for RecordList<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordList<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            if self.out.count >= self.max_records {
                // Past the limit the request is refused whole: the rest is counted, not read.
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    self.out.count += 1;
                }
                return Ok(());
            }
            let index = self.out.count as u64;
            let read = seq.next_element_seed(Record { layout: self.layout, out: &mut *self.out, index })?;
            if read.is_none() {
                return Ok(());
            }
            self.out.count += 1;
        }
    }
}

struct Record<'a> {
    layout: &'a Layout<'a>,
    out: &'a mut Records,
    index: u64,
}

impl<'de> DeserializeSeed<'de> for Record<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Record<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record: an object of column: value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Record { layout, out, index } = self;
        let loaded = layout.loaded;
        let columns = loaded.compiled.columns();
        let mut fields = vec![String::new(); columns.len()];
        let mut seen = vec![false; columns.len()];
        let mut unread_seen: HashSet<usize> = HashSet::new();
        let before = out.tally.total;
        let broken = |column: &str, value: String, rule: &str, detail: String| Broken {
            record: index,
            column: column.to_string(),
            value,
            rule: rule.into(),
            detail,
        };
        let twice = |column: &str| {
            broken(
                column,
                String::new(),
                "duplicate_key",
                format!("`{column}` is given more than once in the record: which value is meant is not guessed"),
            )
        };
        while let Some(key) = map.next_key::<String>()? {
            let Some(&at) = loaded.index.get(&key) else {
                map.next_value::<IgnoredAny>()?;
                match loaded.unread.iter().position(|c| *c == key) {
                    Some(u) if !unread_seen.insert(u) => out.tally.push(&key, twice(&key)),
                    Some(_) => {}
                    None => out.tally.push(
                        UNKNOWN_COLUMN,
                        broken(
                            &echo(&key),
                            String::new(),
                            "unknown_column",
                            format!("the model's columns are {}", columns.join(", ")),
                        ),
                    ),
                }
                continue;
            };
            let value: Value = map.next_value()?;
            let column = &columns[at];
            if std::mem::replace(&mut seen[at], true) {
                out.tally.push(column, twice(column));
                continue;
            }
            let limit = if layout.id == Some(at) { MAX_ID_BYTES } else { MAX_VALUE_BYTES };
            match field_text(&value, &layout.kinds[at]) {
                Some(text) if text.len() > limit => out.tally.push(
                    column,
                    broken(
                        column,
                        echo(&text),
                        "too_long",
                        format!("{} bytes; a value of `{column}` has at most {limit}", text.len()),
                    ),
                ),
                Some(text) => fields[at] = text,
                None => out.tally.push(
                    column,
                    broken(
                        column,
                        echo(&value.to_string()),
                        "not_a_scalar",
                        "a value is a string, a number, a boolean or null".into(),
                    ),
                ),
            }
        }
        out.bad_records += u64::from(out.tally.total > before);
        out.rows.push((index, fields.iter().collect()));
        Ok(())
    }
}
