//! What the fuzz targets share: the small schema of the integration tests, and a valid row of
//! any schema (to score an artifact that loaded).

use std::path::Path;

use model::data::schema::{ColumnKind, Schema};
use model::PipelineConfig;

/// The integration tests' small configuration: one column of each kind.
pub const SMALL_CONFIG: &str = include_str!("../../tests/data/small.toml");

/// The small configuration, parsed.
pub fn small_config() -> PipelineConfig {
    PipelineConfig::parse(SMALL_CONFIG, Path::new("small.toml")).expect("the small config is valid")
}

/// A CSV of `rows` rows that follows `schema`: a header and, per column, a value its rules
/// accept (the label's positive spelling on even rows, negative on odd ones).
pub fn valid_csv(schema: &Schema, rows: usize) -> String {
    let delimiter = schema.delimiter.to_string();
    let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    let mut out = quote_all(&names, &delimiter);
    for row in 0..rows {
        let values: Vec<String> = schema
            .columns
            .iter()
            .map(|c| match &c.kind {
                ColumnKind::Numeric { min, max, .. } => {
                    format!("{}", min.or(*max).unwrap_or(0.0) + if max.is_none() { row as f64 } else { 0.0 })
                }
                ColumnKind::Integer { min, max, .. } => format!("{}", min.or(*max).unwrap_or(0)),
                ColumnKind::Categorical { levels } => {
                    levels.as_ref().map_or("a".to_string(), |l| l[row % l.len()].clone())
                }
                ColumnKind::Boolean { true_values, .. } => true_values[0].clone(),
                ColumnKind::Label { positive, negative } => if row % 2 == 0 { positive } else { negative }.clone(),
                ColumnKind::Id => format!("row{row}"),
                ColumnKind::Ignore => String::new(),
            })
            .collect();
        out.push_str(&quote_all(&values.iter().map(String::as_str).collect::<Vec<_>>(), &delimiter));
    }
    out
}

fn quote_all(fields: &[&str], delimiter: &str) -> String {
    let quoted: Vec<String> = fields.iter().map(|f| format!("\"{}\"", f.replace('"', "\"\""))).collect();
    quoted.join(delimiter) + "\n"
}
