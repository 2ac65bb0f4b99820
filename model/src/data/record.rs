//! One customer session given field by field, checked against the schema, for single predictions.

use std::collections::BTreeMap;

use crate::data::report::{DataError, Rule};
use crate::data::schema::{ColumnKind, Schema, Value};
use crate::error::{Error, Result};

/// A single row's feature values, each parsed by its column's rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    values: BTreeMap<String, Value>,
}

impl Record {
    /// Parses `(column, raw value)` pairs with the schema's rules. Every feature column is
    /// required; the label and ignored columns may be given or not; unknown columns are refused.
    pub fn parse<'a>(schema: &Schema, fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Record> {
        let mut values = BTreeMap::new();
        for (name, raw) in fields {
            let column = schema.column(name).ok_or_else(|| Error::UnknownColumn { column: name.to_string() })?;
            let value = column.parse_record_value(raw)?;
            values.insert(name.to_string(), value);
        }
        for column in schema.feature_columns() {
            if !values.contains_key(&column.name) {
                return Err(Error::Record(DataError {
                    file: String::new(),
                    line: 0,
                    row_group: None,
                    column: column.name.clone(),
                    value: String::new(),
                    rule: Rule::Missing,
                    detail: "every feature column needs a value".into(),
                }));
            }
        }
        values.retain(|name, _| {
            schema.column(name).is_some_and(|c| !matches!(c.kind, ColumnKind::Label { .. } | ColumnKind::Ignore))
        });
        Ok(Record { values })
    }

    /// The parsed value of a column.
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.values.get(column)
    }
}
