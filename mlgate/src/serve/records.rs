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
    /// An integer column.
    Integer,
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
            // An integer sent as `48.0` (a pandas column of floats, as MLflow's clients send one)
            // is the number 48: JSON, and JSON Schema's `integer`, do not tell them apart.
            (Kind::Integer, Some(x))
                if n.is_f64() && x.fract() == 0.0 && (i64::MIN as f64..i64::MAX as f64).contains(&x) =>
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

impl<'a> Layout<'a> {
    fn new(loaded: &'a Loaded) -> Layout<'a> {
        let schema = &loaded.compiled.artifact().schema;
        let kinds = loaded
            .compiled
            .columns()
            .iter()
            .zip(&loaded.booleans)
            .map(|(name, boolean)| match (boolean, schema.column(name).map(|c| &c.kind)) {
                (Some(spellings), _) => Kind::Boolean(spellings),
                (None, Some(ColumnKind::Categorical { levels })) => Kind::Categorical(levels.as_deref()),
                (None, Some(ColumnKind::Integer { .. })) => Kind::Integer,
                _ => Kind::Other,
            })
            .collect();
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
}

/// One record being read: its fields so far.
pub struct Draft {
    index: u64,
    fields: Vec<String>,
    seen: Vec<bool>,
    unread_seen: HashSet<usize>,
    before: u64,
}

impl<'a> Builder<'a> {
    /// Reads records for `loaded`, keeping at most `max_records` (the rest counted).
    pub fn new(loaded: &'a Loaded, max_records: usize) -> Builder<'a> {
        Builder { layout: Layout::new(loaded), out: Records::default(), max_records }
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
    pub fn start(&self) -> Draft {
        let n = self.columns().len();
        Draft {
            index: self.out.count as u64,
            fields: vec![String::new(); n],
            seen: vec![false; n],
            unread_seen: HashSet::new(),
            before: self.out.tally.total,
        }
    }

    /// Keeps a record read whole.
    pub fn finish(&mut self, draft: Draft) {
        self.out.bad_records += u64::from(self.out.tally.total > draft.before);
        self.out.rows.push((draft.index, draft.fields.iter().collect()));
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
        if let Some(&at) = loaded.index.get(key) {
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
        let column = &b.columns()[at];
        if std::mem::replace(&mut self.seen[at], true) {
            b.out.tally.push(column, self.twice(column));
            return;
        }
        let limit = if b.layout.id == Some(at) { MAX_ID_BYTES } else { MAX_VALUE_BYTES };
        match field_text(value, &b.layout.kinds[at]) {
            Some(text) if text.len() > limit => b.out.tally.push(
                column,
                Builder::broken(
                    self.index,
                    column,
                    echo(&text),
                    "too_long",
                    format!("{} bytes; a value of `{column}` has at most {limit}", text.len()),
                ),
            ),
            Some(text) => self.fields[at] = text,
            None => b.out.tally.push(
                column,
                Builder::broken(
                    self.index,
                    column,
                    echo(&value.to_string()),
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
        while let Some(key) = map.next_key::<String>()? {
            match draft.key(b, &key) {
                // An unknown key's value is skipped unread.
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
                Some(at) => {
                    let value: Value = map.next_value()?;
                    draft.value(b, at, &value);
                }
            }
        }
        b.finish(draft);
        Ok(())
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
