//! A JSON request's records, read strictly and straight into the fields the scorer reads: a key
//! given twice, a key the schema does not have, a value that is not a scalar or is too long is a
//! broken value (the first [`MAX_KEPT_ERRORS`] listed, every one counted by column and rule).
//! The request is never held as a JSON tree: an unknown key's value is skipped unread.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use model::data::report::{echo, MAX_KEPT_ERRORS};
use model::data::schema::Column;
use model::pipeline::scoring::{Checked, CompactString, Field, Record as ScoredRecord, ToCompactString};
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
    /// The record's index in the request, from 0 (a CSV body's data rows included).
    pub record: u64,
    /// A CSV body's line the record starts on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
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

/// A record read from a request, its fields in the compiled columns' order: a CSV body's row
/// as text, or a JSON record's values typed (numbers as numbers, booleans as booleans; the
/// scorer checks and encodes them without a text round trip).
#[derive(Debug, Clone, PartialEq)]
pub enum Fields {
    /// A CSV body's row.
    Csv(csv::ByteRecord),
    /// A JSON record's values.
    Json(Vec<Field>),
}

impl Fields {
    /// Field `at` as text (an id, a value echoed).
    pub fn text(&self, at: usize) -> std::borrow::Cow<'_, str> {
        ScoredRecord::text(self, at)
    }

    /// The row with its fields picked by `remap` (each an index into this row's, `None` for
    /// an empty field).
    pub fn remap(&self, remap: &[Option<usize>]) -> Fields {
        match self {
            Fields::Csv(r) => {
                Fields::Csv(remap.iter().map(|at| at.and_then(|at| r.get(at)).unwrap_or_default()).collect())
            }
            Fields::Json(v) => {
                Fields::Json(remap.iter().map(|at| at.and_then(|at| v.get(at)).cloned().unwrap_or_default()).collect())
            }
        }
    }
}

impl ScoredRecord for Fields {
    fn width(&self) -> usize {
        match self {
            Fields::Csv(r) => r.width(),
            Fields::Json(v) => v.width(),
        }
    }
    fn whole(&self) -> Option<&str> {
        match self {
            Fields::Csv(r) => r.whole(),
            Fields::Json(v) => v.whole(),
        }
    }
    fn check_field<'a>(&'a self, at: usize, column: &Column, whole: Option<&'a str>) -> Checked<'a> {
        match self {
            Fields::Csv(r) => r.check_field(at, column, whole),
            Fields::Json(v) => v.check_field(at, column, whole),
        }
    }
    fn text(&self, at: usize) -> std::borrow::Cow<'_, str> {
        match self {
            Fields::Csv(r) => r.text(at),
            Fields::Json(v) => v.text(at),
        }
    }
}

/// What a request's records became.
#[derive(Default)]
pub struct Records {
    /// Each record's fields in the compiled columns' order, with its index.
    pub rows: Vec<(u64, Fields)>,
    /// Records in the request (counted to the end even past the limit, then not kept).
    pub count: usize,
    /// Records with at least one broken value found while reading.
    pub bad_records: u64,
    pub tally: Tally,
}

/// The level a JSON number names in a categorical column: its text, except that a whole
/// number written with a fraction (`83.0`) is the level `83`, as the CSV text `83` would be
/// (JSON does not tell 83 from 83.0) — unless `83.0` itself is a declared level.
fn level_of_number(n: &serde_json::Number, levels: Option<&[String]>) -> CompactString {
    let text = n.to_compact_string();
    match n.as_f64() {
        Some(x)
            if n.is_f64()
                && x.fract() == 0.0
                && x.abs() < 9.0e15
                && !levels.is_some_and(|l| l.iter().any(|l| *l == *text)) =>
        {
            (x as i64).to_compact_string()
        }
        _ => text,
    }
}

/// How a JSON value becomes a column's field, beyond a string's own text.
pub enum Kind {
    /// A boolean column: a JSON boolean is read as the boolean.
    Boolean,
    /// A categorical column, with its declared levels when it has them: a number is its text.
    Categorical(Option<Vec<String>>),
    /// A numeric or an integer column: a number is read as the number.
    Number,
    /// Any other column (the id): a value's JSON text.
    Other,
}

/// A JSON value as the field a column of `kind` reads; `None` for an array or an object.
fn field_of(value: &Value, kind: &Kind) -> Option<Field> {
    Some(match value {
        Value::Null => Field::default(),
        Value::String(s) => Field::Text(s.as_str().into()),
        Value::Number(n) => match kind {
            Kind::Number => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Field::Int(i),
                (None, Some(u)) => Field::UInt(u),
                // Without arbitrary precision every JSON number is one of the three.
                _ => Field::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            // A level coded as an integer (a browser id, `83`) sent as the number `83.0`: JSON
            // does not tell 83 from 83.0, so the number is the level `83`, as the CSV text `83`
            // would be — unless `83.0` itself is a declared level.
            Kind::Categorical(levels) => Field::Text(level_of_number(n, levels.as_deref())),
            _ => Field::Text(n.to_compact_string()),
        },
        Value::Bool(b) => match kind {
            Kind::Boolean => Field::Bool(*b),
            _ => Field::Text(b.to_compact_string()),
        },
        Value::Array(_) | Value::Object(_) => return None,
    })
}

/// What reading needs of the served model.
struct Layout<'a> {
    loaded: &'a Loaded,
    kinds: &'a [Kind],
    /// The id column's index among the compiled columns, when the schema has one.
    id: Option<usize>,
}

impl<'a> Layout<'a> {
    fn new(loaded: &'a Loaded) -> Layout<'a> {
        let schema = &loaded.compiled.artifact().schema;
        let kinds = &loaded.kinds;
        let id = schema.id().and_then(|c| loaded.index.get(&c.name).copied());
        Layout { loaded, kinds, id }
    }
}

/// Records being read, from whatever shape a protocol gives them in (objects of column: value,
/// rows of values with their column names, columns of values): every value goes through the
/// same checks, so that every route refuses the same values for the same reasons.
pub struct Builder<'a> {
    layout: Layout<'a>,
    out: Records,
    max_records: usize,
    /// Which compiled columns the record being read has given, for its duplicate keys: one
    /// buffer for every record.
    seen: Vec<bool>,
}

/// One record being read: its fields so far.
pub struct Draft {
    index: u64,
    fields: Vec<Field>,
    unread_seen: HashSet<usize>,
    before: u64,
    /// The compiled column tried first for the next key: the one after the last key's.
    next: usize,
}

impl<'a> Builder<'a> {
    /// Reads records for `loaded`, keeping at most `max_records` (the rest counted).
    pub fn new(loaded: &'a Loaded, max_records: usize) -> Builder<'a> {
        Builder { layout: Layout::new(loaded), out: Records::default(), max_records, seen: Vec::new() }
    }

    /// The compiled columns: a row of values without names is in this order.
    pub fn columns(&self) -> &'a [String] {
        self.layout.loaded.compiled.columns()
    }

    /// Whether the records kept have reached the limit: a further one is only counted.
    pub fn full(&self) -> bool {
        self.out.count >= self.max_records
    }

    /// Counts a record past the limit without reading it.
    pub fn skip(&mut self) {
        self.out.count += 1;
    }

    /// Starts the next record.
    pub fn start(&mut self) -> Draft {
        let n = self.columns().len();
        self.seen.clear();
        self.seen.resize(n, false);
        Draft {
            index: self.out.count as u64,
            fields: vec![Field::default(); n],
            unread_seen: HashSet::new(),
            before: self.out.tally.total,
            next: 0,
        }
    }

    /// Keeps a record read whole.
    pub fn finish(&mut self, draft: Draft) {
        self.out.bad_records += u64::from(self.out.tally.total > draft.before);
        self.out.rows.push((draft.index, Fields::Json(draft.fields)));
        self.out.count += 1;
    }

    /// What was read.
    pub fn into_records(self) -> Records {
        self.out
    }

    fn broken(index: u64, column: &str, value: String, rule: &str, detail: String) -> Broken {
        Broken { record: index, line: None, column: column.to_string(), value, rule: rule.into(), detail }
    }
}

impl Draft {
    fn twice(&self, column: &str) -> Broken {
        Builder::broken(
            self.index,
            column,
            String::new(),
            "duplicate_key",
            format!("`{column}` is given more than once in the record: which value is meant is not guessed"),
        )
    }

    /// A key of the record: `Some(at)` when its value is to be read (the compiled column `at`);
    /// `None` when it is not (a column of the schema the model does not read, or a key the
    /// schema does not have, counted here).
    pub fn key(&mut self, b: &mut Builder, key: &str) -> Option<usize> {
        let loaded = b.layout.loaded;
        // Clients send every record's keys in one order, mostly the columns' own: the column
        // after the last key's is tried first, by comparing names rather than hashing.
        if loaded.compiled.columns().get(self.next).is_some_and(|c| c == key) {
            self.next += 1;
            return Some(self.next - 1);
        }
        if let Some(&at) = loaded.index.get(key) {
            self.next = at + 1;
            return Some(at);
        }
        match loaded.unread.iter().position(|c| c == key) {
            Some(u) if !self.unread_seen.insert(u) => b.out.tally.push(key, self.twice(key)),
            Some(_) => {}
            None => b.out.tally.push(
                UNKNOWN_COLUMN,
                Builder::broken(
                    self.index,
                    &echo(key),
                    String::new(),
                    "unknown_column",
                    format!("the model's columns are {}", b.columns().join(", ")),
                ),
            ),
        }
        None
    }

    /// The value of the compiled column `at`.
    pub fn value(&mut self, b: &mut Builder, at: usize, value: &Value) {
        let field = field_of(value, &b.layout.kinds[at]).ok_or_else(|| value.to_string());
        self.put(b, at, field);
    }

    /// The field of the compiled column `at`, or the JSON text of a value that is not a scalar.
    fn put(&mut self, b: &mut Builder, at: usize, field: Result<Field, String>) {
        let column = &b.columns()[at];
        if std::mem::replace(&mut b.seen[at], true) {
            b.out.tally.push(column, self.twice(column));
            return;
        }
        let limit = if b.layout.id == Some(at) { MAX_ID_BYTES } else { MAX_VALUE_BYTES };
        match field {
            Ok(Field::Text(text)) if text.len() > limit => b.out.tally.push(
                column,
                Builder::broken(
                    self.index,
                    column,
                    echo(&text),
                    "too_long",
                    format!("{} bytes; a value of `{column}` has at most {limit}", text.len()),
                ),
            ),
            // A number's or a boolean's text is far shorter than any limit.
            Ok(field) => self.fields[at] = field,
            Err(json) => b.out.tally.push(
                column,
                Builder::broken(
                    self.index,
                    column,
                    echo(&json),
                    "not_a_scalar",
                    "a value is a string, a number, a boolean or null".into(),
                ),
            ),
        }
    }

    /// A row of values whose count is not its names' (nothing of it is read).
    pub fn field_count(&mut self, b: &mut Builder, found: usize, names: &[&str]) {
        b.out.tally.push(
            "*",
            Builder::broken(
                self.index,
                "*",
                format!("{found} values"),
                "field_count",
                format!("a row has {} values, one for each of {}", names.len(), echo(&names.join(", "))),
            ),
        );
    }

    /// A record given as `(column, value)` pairs, in order (a key given twice is refused).
    pub fn entries<'k, 'v>(&mut self, b: &mut Builder, entries: impl IntoIterator<Item = (&'k str, &'v Value)>) {
        for (key, value) in entries {
            if let Some(at) = self.key(b, key) {
                self.value(b, at, value);
            }
        }
    }
}

/// Reads `{"records": [{column: value, …}, …]}`; a syntax error, or another shape, is `Err`.
/// Records past `max_records` are counted, not kept.
pub fn read(bytes: &[u8], loaded: &Loaded, max_records: usize) -> Result<Records, serde_json::Error> {
    let mut builder = Builder::new(loaded, max_records);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Request { builder: &mut builder }.deserialize(&mut de)?;
    de.end()?;
    Ok(builder.into_records())
}

/// The request object: `records` and nothing else.
struct Request<'a, 'b> {
    builder: &'a mut Builder<'b>,
}

impl<'de> DeserializeSeed<'de> for Request<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Request<'_, '_> {
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
            map.next_value_seed(RecordList { builder: &mut *self.builder })?;
        }
        if !seen {
            return Err(A::Error::missing_field("records"));
        }
        Ok(())
    }
}

/// A JSON array of records (objects of column: value), read straight into a [`Builder`].
pub struct RecordList<'a, 'b> {
    /// Where the records go.
    pub builder: &'a mut Builder<'b>,
}

impl<'de> DeserializeSeed<'de> for RecordList<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordList<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            if self.builder.full() {
                // Past the limit the request is refused whole: the rest is counted, not read.
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    self.builder.skip();
                }
                return Ok(());
            }
            if seq.next_element_seed(Record { builder: &mut *self.builder })?.is_none() {
                return Ok(());
            }
        }
    }
}

struct Record<'a, 'b> {
    builder: &'a mut Builder<'b>,
}

impl<'de> DeserializeSeed<'de> for Record<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Record<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record: an object of column: value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let b = self.builder;
        let mut draft = b.start();
        // Each key looked up as read (not kept), each value read straight into its column's field.
        while let Some(key) = map.next_key_seed(KeySeed { draft: &mut draft, builder: &mut *b })? {
            match key {
                // An unknown key's value is skipped unread.
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
                Some(at) => {
                    let field = map.next_value_seed(FieldSeed { kind: &b.layout.kinds[at] })?;
                    draft.put(b, at, field);
                }
            }
        }
        b.finish(draft);
        Ok(())
    }
}

/// A record's key, looked up among the compiled columns as it is read ([`Draft::key`]).
struct KeySeed<'a, 'b> {
    draft: &'a mut Draft,
    builder: &'a mut Builder<'b>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_, '_> {
    type Value = Option<usize>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_, '_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a column's name")
    }
    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.draft.key(self.builder, key))
    }
}

/// A record's value read straight into the field its column reads ([`field_of`] of the value,
/// without building it first); `Err` holds the JSON text of an array or an object.
struct FieldSeed<'a> {
    kind: &'a Kind,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = Result<Field, String>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = Result<Field, String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value")
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(field_of(&Value::Bool(v), self.kind).ok_or_else(String::new))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(match self.kind {
            Kind::Number => Ok(Field::Int(v)),
            kind => field_of(&Value::from(v), kind).ok_or_else(String::new),
        })
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(match self.kind {
            Kind::Number => Ok(match i64::try_from(v) {
                Ok(i) => Field::Int(i),
                Err(_) => Field::UInt(v),
            }),
            kind => field_of(&Value::from(v), kind).ok_or_else(String::new),
        })
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(match self.kind {
            Kind::Number => Ok(Field::Float(v)),
            // JSON numbers are finite: `from_f64` is always `Some`.
            kind => field_of(&serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number), kind)
                .ok_or_else(String::new),
        })
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Ok(Field::Text(v.into())))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Ok(Field::Text(v.into())))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(Field::default()))
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(Field::default()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let value = <Value as serde::Deserialize>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Err(value.to_string()))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let value = <Value as serde::Deserialize>::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(Err(value.to_string()))
    }
}

/// A JSON object read as its `(key, value)` pairs in order, a key given twice kept twice (so
/// that it can be refused rather than silently overwritten, as a map would).
#[derive(Debug, Default)]
pub struct Entries<V>(pub Vec<(String, V)>);

impl<'de, V: serde::Deserialize<'de>> serde::Deserialize<'de> for Entries<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Pairs<V>(std::marker::PhantomData<V>);
        impl<'de, V: serde::Deserialize<'de>> Visitor<'de> for Pairs<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<V>, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(Entries(pairs))
            }
        }
        d.deserialize_map(Pairs(std::marker::PhantomData))
    }
}

/// A table as the protocols give one: a list of records (objects of column: value) or of rows
/// (values in the order of [`Builder::columns`]), or columns (an object of column: values).
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum Table {
    /// Records or rows, one an element.
    Rows(Vec<Row>),
    /// Column → its values, one a record.
    Columns(Entries<Vec<Value>>),
}

/// One element of a [`Table::Rows`].
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum Row {
    /// An object of column: value.
    Record(Entries<Value>),
    /// Values in a known order of columns.
    Values(Vec<Value>),
}

/// What a table's shape may be, for the 400 of a body that has none of them.
pub const TABLE_SHAPES: &str = "a list of records ([{column: value, …}, …]), a list of rows in the model's column \
     order ([[value, …], …]) or an object of columns ({column: [value, …], …})";

impl Builder<'_> {
    /// Reads a [`Table`]; `Err` says why its shape is not one (columns of unequal lengths).
    pub fn table(&mut self, table: &Table) -> Result<(), String> {
        match table {
            Table::Rows(rows) => {
                let names: Vec<&str> = self.columns().iter().map(String::as_str).collect();
                for row in rows {
                    match row {
                        Row::Record(entries) => self.record(entries.0.iter().map(|(k, v)| (k.as_str(), v))),
                        Row::Values(values) => self.row(&names, values.iter()),
                    }
                }
                Ok(())
            }
            Table::Columns(columns) => {
                let n = columns.0.first().map_or(0, |(_, values)| values.len());
                if let Some((name, values)) = columns.0.iter().find(|(_, values)| values.len() != n) {
                    return Err(format!(
                        "the columns' lists differ in length: `{}` has {} values, `{}` {n}",
                        echo(name),
                        values.len(),
                        echo(&columns.0[0].0)
                    ));
                }
                for i in 0..n {
                    self.record(columns.0.iter().map(|(k, values)| (k.as_str(), &values[i])));
                }
                Ok(())
            }
        }
    }

    /// One record given as `(column, value)` pairs (counted only past the limit).
    pub fn record<'k, 'v>(&mut self, entries: impl IntoIterator<Item = (&'k str, &'v Value)>) {
        if self.full() {
            self.skip();
            return;
        }
        let mut draft = self.start();
        draft.entries(self, entries);
        self.finish(draft);
    }

    /// One row of values for the columns `names`, in order (counted only past the limit).
    pub fn row<'v>(&mut self, names: &[&str], values: impl ExactSizeIterator<Item = &'v Value>) {
        if self.full() {
            self.skip();
            return;
        }
        let mut draft = self.start();
        if values.len() == names.len() {
            draft.entries(self, names.iter().copied().zip(values));
        } else {
            draft.field_count(self, values.len(), names);
        }
        self.finish(draft);
    }
}

#[cfg(test)]
mod tests {

    use model::data::schema::ColumnKind;
    use serde_json::json;

    use super::*;

    /// A model of the repository's configuration whose `spending` allows missing values, one
    /// of them spelled as a number (`-999`).
    fn loaded() -> Loaded {
        let text = include_str!("../../../pipeline.toml").replace(
            "name = \"spending\"\nkind = \"numeric\"\nmin = 0\n",
            "name = \"spending\"\nkind = \"numeric\"\nmin = 0\nmissing = \"allow\"\nmissing_values = [\"\", \"-999\"]\n",
        );
        assert!(text.contains("\"-999\""), "the configuration's `spending` is as this test expects");
        super::super::test_model(&text)
    }

    /// The text a JSON value became before values were read typed (a CSV field's): the
    /// reference the typed reading must agree with.
    fn old_text(value: &Value, kind: &ColumnKind) -> String {
        match (value, kind) {
            (Value::Null, _) => String::new(),
            (Value::String(s), _) => s.clone(),
            (Value::Bool(b), ColumnKind::Boolean { true_values, false_values }) => {
                if *b {
                    true_values[0].clone()
                } else {
                    false_values[0].clone()
                }
            }
            (Value::Bool(b), _) => b.to_string(),
            (Value::Number(n), ColumnKind::Categorical { levels }) => level_of_number(n, levels.as_deref()).to_string(),
            (Value::Number(n), ColumnKind::Integer { .. }) => match n.as_f64() {
                Some(x) if n.is_f64() && x.fract() == 0.0 && (i64::MIN as f64..i64::MAX as f64).contains(&x) => {
                    format!("{}", x as i64)
                }
                _ => n.to_string(),
            },
            (Value::Number(n), _) => n.to_string(),
            _ => unreachable!("scalars only"),
        }
    }

    /// Every kind of value a client may send, in every kind of column, read typed, is checked
    /// and scored exactly as its text was: the same probability to the bit, or the same error
    /// (rule, column, value, detail).
    #[test]
    fn typed_values_are_checked_and_scored_as_their_text_was() {
        let loaded = loaded();
        let columns = loaded.compiled.columns().to_vec();
        let schema = loaded.compiled.artifact().schema.clone();
        // A valid record: the first generated customer, numbers as numbers.
        let csv = model::data::generate::customers_csv(3, 9);
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let row: Vec<&str> = lines.next().unwrap().split(',').collect();
        let mut base = serde_json::Map::new();
        for (name, text) in header.iter().zip(&row) {
            if !columns.iter().any(|c| c == name) {
                continue;
            }
            let value = match schema.column(name).map(|c| &c.kind) {
                Some(ColumnKind::Integer { .. } | ColumnKind::Numeric { .. }) => {
                    serde_json::from_str::<Value>(text).unwrap_or_else(|_| json!(text))
                }
                Some(ColumnKind::Boolean { .. }) => json!(*text == "yes"),
                _ => json!(text),
            };
            base.insert(name.to_string(), value);
        }
        let tricky: Vec<(&str, Value)> = vec![
            ("age", json!(30)),
            ("age", json!(30.0)),
            ("age", json!(30.5)),
            ("age", json!("30")),
            ("age", json!("30.0")),
            ("age", json!(" 30")),
            ("age", json!(null)),
            ("age", json!(17)),
            ("age", json!(111.0)),
            ("age", json!(1e300)),
            ("age", json!(-0.0)),
            ("age", json!(u64::MAX)),
            ("age", json!(true)),
            ("spending", json!(12.5)),
            ("spending", json!(12)),
            ("spending", json!("12.5")),
            ("spending", json!(-999)),
            ("spending", json!(-999.0)),
            ("spending", json!("-999")),
            ("spending", json!(-1)),
            ("spending", json!(-1e-300)),
            ("spending", json!(null)),
            ("spending", json!("NaN")),
            ("spending", json!("inf")),
            ("spending", json!(1.7976931348623157e308)),
            ("spending", json!(u64::MAX)),
            ("spending", json!(false)),
            ("region", json!("north")),
            ("region", json!("nowhere")),
            ("region", json!(3)),
            ("region", json!(3.0)),
            ("region", json!(null)),
            ("device", json!("smartwatch")),
            ("device", json!(7.0)),
            ("newsletter", json!(true)),
            ("newsletter", json!(false)),
            ("newsletter", json!("yes")),
            ("newsletter", json!("true")),
            ("newsletter", json!(1)),
            ("newsletter", json!(null)),
        ];
        let mut refused = 0;
        for (column, value) in tricky {
            assert!(base.contains_key(column), "{column} is a compiled column");
            let mut record = base.clone();
            record.insert(column.to_string(), value.clone());
            let body = serde_json::to_vec(&json!({ "records": [record] })).unwrap();
            let read = read(&body, &loaded, 10).unwrap();
            assert_eq!(read.tally.total, 0, "{column} = {value}: no value is refused while reading");
            let typed = &read.rows[0].1;
            assert!(matches!(typed, Fields::Json(_)));
            let text: csv::ByteRecord = columns
                .iter()
                .map(|c| old_text(&record[c.as_str()], &schema.column(c).unwrap().kind))
                .collect::<Vec<String>>()
                .iter()
                .collect();
            let ours = loaded.compiled.score("request", &[(0, typed.clone())]);
            let theirs = loaded.compiled.score("request", &[(0, Fields::Csv(text))]);
            assert_eq!(ours, theirs, "{column} = {value}");
            refused += usize::from(theirs.errors.error_count > 0);
        }
        // Both outcomes are exercised.
        assert!((10..30).contains(&refused), "{refused} refused");
    }

    /// A number read typed keeps its value to the bit, as its shortest text does.
    #[test]
    fn numbers_are_read_to_the_bit() {
        let loaded = loaded();
        let at = loaded.index["spending"];
        for x in [0.1, 1.0 / 3.0, 123456.789e-3, 5e-324, 1e22] {
            let mut record = serde_json::Map::new();
            record.insert("spending".into(), json!(x));
            let body = serde_json::to_vec(&json!({ "records": [record] })).unwrap();
            let read = read(&body, &loaded, 10).unwrap();
            let Fields::Json(fields) = &read.rows[0].1 else { panic!("a JSON record") };
            assert_eq!(fields[at], Field::Float(x));
        }
    }
}
