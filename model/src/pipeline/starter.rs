//! A starting `pipeline.toml` written from an inferred schema (`mlgate init`): every column
//! declared with what was seen as comments, and the other sections with defaults that work on
//! a first data set. Text, not serde: the comments are the point.

use std::fmt::Write;

use crate::data::infer::{thousands, Inference, LabelChoice, MAX_LEVELS};
use crate::data::schema::{Column, ColumnKind, Missing, Transform};

/// Rows from which a tenth, rather than a fifth, is enough staging data.
pub const LARGE_DATA_ROWS: u64 = 10_000;

/// The configuration's text: `name` names the model, `data_path` is written as `[data] path`
/// (relative to the configuration's folder, as the caller worked it out).
pub fn starter_toml(name: &str, data_path: &str, inference: &Inference) -> String {
    let mut out = String::new();
    let w = &mut out;
    comment(
        w,
        &format!(
            "Written by `mlgate init` from {data_path} ({} rows, {} columns). Each column says what was \
             inferred from the data; lines starting with `# check:` deserve a look before the first \
             build. A categorical column's levels are those seen: add any that new data may hold. \
             README, \"The configuration\", documents every key.",
            thousands(inference.rows),
            inference.columns.len()
        ),
    );
    if let LabelChoice::Missing { candidates } = &inference.label {
        line(w, "#");
        line(w, "# FIXME: choose the label. No column was named with --label and none is obviously the");
        line(w, "# label: set one column's kind to \"label\" with its `positive` and `negative` spellings.");
        if candidates.is_empty() {
            line(w, "# No column has exactly two values and no blank, as a label must.");
        } else {
            line(w, &format!("# Columns with exactly two values: {}.", candidates.join(", ")));
            line(w, "# Each of them shows below the lines to put in place of its kind.");
        }
    }
    line(w, "");
    line(w, &format!("name = {}", quote(name)));
    line(w, "");
    line(w, "[data]");
    line(w, "# Relative to this file's folder.");
    line(w, &format!("path = {}", quote(data_path)));
    line(w, "");
    line(w, "[schema]");
    line(w, &format!("delimiter = {}", quote(&inference.delimiter.to_string())));
    let missing_label = matches!(inference.label, LabelChoice::Missing { .. });
    for c in &inference.columns {
        line(w, "");
        line(w, "[[schema.columns]]");
        comment(w, &format!("inferred: {}", c.seen));
        for check in &c.check {
            comment(w, &format!("check: {check}"));
        }
        column(w, &c.column);
        if let (true, Some((positive, negative))) = (missing_label, &c.as_label) {
            line(w, "# To make this column the label, put these lines in place of its kind and spellings:");
            line(w, "# kind = \"label\"");
            line(w, &format!("# positive = {}", quote(positive)));
            line(w, &format!("# negative = {}", quote(negative)));
        }
    }
    line(w, "");
    sections(w, inference.rows);
    out
}

/// The sections after the schema.
fn sections(w: &mut String, rows: u64) {
    let (fraction, share) = if rows >= LARGE_DATA_ROWS { ("0.1", "A tenth") } else { ("0.2", "A fifth") };
    let text = format!(
        r#"[model]
# Gradient boosting: a robust first choice on tabular data (no scaling needed, missing values
# learnt at each split). "logistic_regression" is the alternative: faster, and linear.
family = "gradient_boosting"

[model.gradient_boosting]
# The values tuned on the Online Shoppers data; `mlgate cv` compares others on yours.
learning_rate = 0.03
max_iter = 300
max_leaf_nodes = 8
min_samples_leaf = 30
l2_regularization = 1.0
subsample = 0.8
colsample = 0.5

[model.logistic_regression]
# Used when family = "logistic_regression".
alpha = 1.0
max_iterations = 500

[split]
seed = 42
validation_fraction = 0.2

[threshold]
optimise = "f1"

[staging]
# {share} of the rows (those whose row hash falls below the fraction) is held out of every
# build and judges each candidate at acceptance: {staging} rows of these {rows}.
fraction = {fraction}
salt = "staging"

[acceptance]
# A floor that only stops a model little better than chance: raise it to what the use case
# needs. Each candidate is also compared with production on the ranking metrics.
min = {{ roc_auc = 0.6 }}
compare = ["roc_auc", "average_precision"]
margin = 0.01

[registry]
# Relative to this file's folder; `--registry` overrides it.
path = "registry"
"#,
        staging = thousands((rows as f64 * fraction.parse::<f64>().expect("a literal")).round() as u64),
        rows = thousands(rows),
    );
    w.push_str(&text);
}

fn column(w: &mut String, c: &Column) {
    line(w, &format!("name = {}", quote(&c.name)));
    match &c.kind {
        ColumnKind::Numeric { min, max, transform } => {
            line(w, "kind = \"numeric\"");
            bounds(w, min.map(float), max.map(float), *transform);
        }
        ColumnKind::Integer { min, max, transform } => {
            line(w, "kind = \"integer\"");
            bounds(w, min.map(|m| m.to_string()), max.map(|m| m.to_string()), *transform);
        }
        ColumnKind::Categorical { levels } => {
            line(w, "kind = \"categorical\"");
            if let Some(levels) = levels {
                list(w, "levels", levels);
            }
        }
        ColumnKind::Boolean { true_values, false_values } => {
            line(w, "kind = \"boolean\"");
            list(w, "true", true_values);
            list(w, "false", false_values);
        }
        ColumnKind::Label { positive, negative } => {
            line(w, "kind = \"label\"");
            line(w, &format!("positive = {}", quote(positive)));
            line(w, &format!("negative = {}", quote(negative)));
        }
        ColumnKind::Id => line(w, "kind = \"id\""),
        ColumnKind::Ignore => line(w, "kind = \"ignore\""),
    }
    if c.missing == Missing::Allow {
        line(w, "missing = \"allow\"");
    }
}

fn bounds(w: &mut String, min: Option<String>, max: Option<String>, transform: Transform) {
    if let Some(min) = min {
        line(w, &format!("min = {min}"));
    }
    if let Some(max) = max {
        line(w, &format!("max = {max}"));
    }
    if transform == Transform::Log1p {
        line(w, "transform = \"log1p\"");
    }
}

/// `key = [...]` on one line when short, else wrapped (at most [`MAX_LEVELS`] items).
fn list(w: &mut String, key: &str, items: &[String]) {
    debug_assert!(items.len() <= MAX_LEVELS);
    let quoted: Vec<String> = items.iter().map(|i| quote(i)).collect();
    let one = format!("{key} = [{}]", quoted.join(", "));
    if one.len() <= 100 {
        line(w, &one);
        return;
    }
    line(w, &format!("{key} = ["));
    let mut current = String::from("   ");
    for q in quoted {
        if current.len() + q.len() + 2 > 100 {
            line(w, &current);
            current = String::from("   ");
        }
        let _ = write!(current, " {q},");
    }
    line(w, &current);
    line(w, "]");
}

/// An f64 as TOML reads it back: a whole number short enough for an i64 as an integer (`0`,
/// not `0.0`), any other as a float (`1e20` as `100000000000000000000.0`, which TOML would not
/// read as an integer).
fn float(x: f64) -> String {
    let s = x.to_string();
    if s.contains(['.', 'e', 'E']) || x.abs() < 1e15 {
        s
    } else {
        format!("{s}.0")
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `text` as comment lines of at most 100 characters, cut between words.
fn comment(w: &mut String, text: &str) {
    let mut current = String::from("#");
    for word in text.split(' ') {
        if current.len() > 1 && current.len() + 1 + word.len() > 100 {
            line(w, &current);
            current = String::from("# ");
        } else {
            current.push(' ');
        }
        current.push_str(word);
    }
    line(w, &current);
}

fn line(w: &mut String, text: &str) {
    w.push_str(text);
    w.push('\n');
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::data::infer::{infer, InferOptions};
    use crate::data::validation::{read_csv, LabelPolicy};
    use crate::pipeline::config::PipelineConfig;

    fn csv() -> String {
        let mut s = String::from("id,\"odd \"\"name\"\"\",score,level,flag,bought\n");
        for i in 0..400 {
            let flag = if i % 5 == 0 {
                ""
            } else if i % 2 == 0 {
                "TRUE"
            } else {
                "FALSE"
            };
            let level = format!("L\\{}", i % 60);
            let bought = if (i * 7) % 10 < 3 { "yes" } else { "no" };
            s.push_str(&format!("r{i},{},{},{level},{flag},{bought}\n", i % 13, -1.5 + (i % 17) as f64 * 0.37));
        }
        s
    }

    #[test]
    fn the_starter_parses_and_validates_the_file_it_was_made_from() {
        let data = csv();
        let options = InferOptions { delimiter: ',', label: Some("bought".into()) };
        let inference = infer(data.as_bytes(), "x.csv", &options).unwrap();
        let text = starter_toml("x", "x.csv", &inference);
        let config = PipelineConfig::parse(&text, Path::new("pipeline.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(config.schema, inference.schema().unwrap(), "the text says what was inferred");
        assert_eq!(config.name, "x");
        assert_eq!(config.data.path, Path::new("x.csv"));
        assert_eq!(config.staging.fraction, 0.2);
        read_csv(data.as_bytes(), "x.csv", &config.schema, LabelPolicy::Required).unwrap();
        assert!(text.contains("# inferred: label, \"yes\" in 120 of 400 rows (30.0 %)"), "{text}");
        assert!(!text.contains("FIXME"), "{text}");
    }

    #[test]
    fn without_a_label_the_starter_says_what_to_fix_and_how() {
        let inference = infer(csv().as_bytes(), "x.csv", &InferOptions::default()).unwrap();
        let text = starter_toml("x", "x.csv", &inference);
        assert!(text.contains("# FIXME: choose the label."), "{text}");
        assert!(text.contains("# Columns with exactly two values: bought."), "{text}");
        let err = PipelineConfig::parse(&text, Path::new("p.toml")).unwrap_err();
        assert!(err.to_string().contains("no column has kind = \"label\""), "{err}");
        // Following the comment makes it complete.
        let fixed = text.replace(
            "name = \"bought\"\nkind = \"boolean\"\ntrue = [\"yes\"]\nfalse = [\"no\"]\n",
            "name = \"bought\"\nkind = \"label\"\npositive = \"yes\"\nnegative = \"no\"\n",
        );
        PipelineConfig::parse(&fixed, Path::new("p.toml")).unwrap_or_else(|e| panic!("{e}\n{fixed}"));
    }

    #[test]
    fn floats_stay_floats_and_strings_are_escaped() {
        assert_eq!(float(1e20), "100000000000000000000.0");
        assert_eq!(float(0.22), "0.22");
        assert_eq!(float(-3.0), "-3");
        assert_eq!(float(0.0), "0");
        assert_eq!(quote("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\u0001\"");
    }
}
